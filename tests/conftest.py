"""Shared fixtures: a fixed clock, a test PKI, and the rule that CI never skips.

Tests that need a system program call :func:`require_program`. Locally a missing
program skips the test; in CI (``CI=true``) it fails it, so a CI run can never pass
by skipping the real-server tests.
"""

from __future__ import annotations

import datetime
import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from staplecheck.testing import CA, Identity

NOW = datetime.datetime(2026, 11, 21, 12, 0, 0, tzinfo=datetime.timezone.utc)
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_program(name: str) -> str:
    """The path of ``name``; skip (locally) or fail (in CI) when it is missing."""
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/local/sbin/{name}") if os.path.exists(p)),
        None,
    )
    if path is None:
        message = f"{name} is not installed"
        if IN_CI:
            pytest.fail(f"{message}, and CI must not skip (.ci/run installs it)")
        pytest.skip(message)
    return path


@pytest.fixture
def frequent_thread_switches() -> Iterator[None]:
    """Switch threads every 10 µs, not every 5 ms, so races between configuring the
    shared context, handshaking and attaching verdicts have room to show."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


@pytest.fixture
def now() -> datetime.datetime:
    return NOW


@dataclass(frozen=True)
class PKI:
    """A root, an intermediate under it, and leaves issued by the intermediate."""

    root: CA
    intermediate: CA
    leaf: Identity
    must_staple_leaf: Identity


@pytest.fixture(scope="session")
def pki() -> PKI:
    root = CA(now=NOW)
    intermediate = root.create_intermediate()
    return PKI(
        root=root,
        intermediate=intermediate,
        leaf=intermediate.issue_cert("localhost", "127.0.0.1"),
        must_staple_leaf=intermediate.issue_cert("localhost", "127.0.0.1", must_staple=True),
    )
