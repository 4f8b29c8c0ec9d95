"""CI's own machinery: the daemon block around apt-get.

``.ci/without-daemons`` runs for real here against a policy-rc.d in a temporary
directory (``POLICY_RC_D``).
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WITHOUT_DAEMONS = ROOT / ".ci" / "without-daemons"
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
