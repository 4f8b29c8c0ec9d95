"""What an installed user gets: the version, written once."""

from __future__ import annotations

import importlib.metadata

import pytest

import staplecheck
from staplecheck.cli._main import main


def test_version_is_written_once(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    out = capsys.readouterr().out
    assert out == f"staplecheck {staplecheck.__version__}\n"
    # The package metadata is built from the same attribute (pyproject's dynamic version).
    assert importlib.metadata.version("staplecheck") == staplecheck.__version__
