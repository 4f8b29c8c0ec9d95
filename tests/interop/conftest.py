"""Interop tests start from an empty results file (see matrix.py)."""

from __future__ import annotations

import pytest

from .matrix import RESULTS


@pytest.fixture(scope="session", autouse=True)
def _fresh_interop_results() -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("", encoding="utf-8")
