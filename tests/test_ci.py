"""CI's own machinery: the daemon block around apt-get, and the tested lower bounds.

``.ci/without-daemons`` runs for real here against a policy-rc.d in a temporary
directory (``POLICY_RC_D``); ``.ci/lower-bounds.txt`` is checked against the package's
own metadata, and against what is installed when CI's lower-bound run says so.
"""

from __future__ import annotations

import importlib.metadata
import os
import signal
import stat
import subprocess
import time
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
WITHOUT_DAEMONS = ROOT / ".ci" / "without-daemons"
LOWER_BOUNDS = ROOT / ".ci" / "lower-bounds.txt"
BLOCK = b"#!/bin/sh\nexit 101\n"
DOCKERS = b"#!/bin/sh\n\n# For most Docker users ...\n\nexit 101\n"


def run(policy: Path, *command: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["bash", str(WITHOUT_DAEMONS), *command],
        env={**os.environ, "POLICY_RC_D": str(policy)},
        capture_output=True,
        timeout=30,
        check=False,
    )


def sees_the_block(policy: Path) -> str:
    """A shell command that fails unless ``policy`` is the executable block."""
    return f'test -x "{policy}" && test "$(cat "{policy}")" = "$(printf "#!/bin/sh\\nexit 101")"'


def test_an_existing_policy_survives_byte_for_byte_even_when_the_command_fails(
    tmp_path: Path,
) -> None:
    policy = tmp_path / "policy-rc.d"
    policy.write_bytes(DOCKERS)
    policy.chmod(0o750)
    before = policy.stat()
    done = run(policy, "bash", "-c", sees_the_block(policy) + " && exit 3")
    assert done.returncode == 3, done.stderr  # the command's failure is CI's failure
    assert policy.read_bytes() == DOCKERS
    assert stat.S_IMODE(policy.stat().st_mode) == 0o750
    assert policy.stat().st_mtime == before.st_mtime
    assert sorted(p.name for p in tmp_path.iterdir()) == ["policy-rc.d"]  # no leftovers


def test_no_policy_before_means_none_after(tmp_path: Path) -> None:
    policy = tmp_path / "policy-rc.d"
    done = run(policy, "bash", "-c", sees_the_block(policy))
    assert done.returncode == 0, done.stderr
    assert not policy.exists()
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_run_still_restores(tmp_path: Path) -> None:
    policy = tmp_path / "policy-rc.d"
    policy.write_bytes(DOCKERS)
    started = tmp_path / "started"
    child = subprocess.Popen(
        ["bash", str(WITHOUT_DAEMONS), "bash", "-c", f'touch "{started}"; sleep 30'],
        env={**os.environ, "POLICY_RC_D": str(policy)},
        start_new_session=True,  # its own process group, as a terminal's Ctrl-C reaches
    )
    try:
        deadline = time.monotonic() + 10
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert started.exists()
        assert policy.read_bytes() == BLOCK
        os.killpg(child.pid, signal.SIGTERM)
        assert child.wait(timeout=10) != 0
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
    assert policy.read_bytes() == DOCKERS


def _lower_bounds() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in LOWER_BOUNDS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            (specifier,) = requirement.specifier
            assert specifier.operator == "==", line
            pins[requirement.name.lower()] = Version(specifier.version)
    return pins


def test_the_tested_lower_bounds_are_the_declared_ones() -> None:
    """Every runtime dependency (and the requests, redis, httpx and aiohttp extras) is pinned in
    .ci/lower-bounds.txt at exactly the lower bound the package declares."""
    declared: dict[str, Version] = {}
    for text in importlib.metadata.requires("staplecheck") or []:
        requirement = Requirement(text)
        marker = str(requirement.marker or "")
        if marker and marker not in {
            'extra == "requests"',
            'extra == "redis"',
            'extra == "httpx"',
            'extra == "aiohttp"',
        }:
            continue  # test and fuzz tools: CI tests their newest releases
        (specifier,) = requirement.specifier
        assert specifier.operator == ">=", text
        declared[requirement.name.lower()] = Version(specifier.version)
    assert _lower_bounds() == declared


def test_installed_versions_meet_the_tested_lower_bounds() -> None:
    """In CI's lower-bound run (STAPLECHECK_LOWER_BOUNDS=1) exactly the pins are
    installed: that run tests what it says it tests."""
    exact = os.environ.get("STAPLECHECK_LOWER_BOUNDS") == "1"
    for name, pin in _lower_bounds().items():
        installed = Version(importlib.metadata.version(name))
        assert installed == pin if exact else installed >= pin, (name, installed, pin)
