"""The scan benchmark runs: ``benchmarks/bench_scan.py --quick`` against the two nginx
servers and the OCSP responder it starts, with every check it makes on the scan's
records and the plain script's staples. Its figures are not judged here: a loaded CI
machine is no place for ratios."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import require_program

ROOT = Path(__file__).resolve().parent.parent


def test_bench_scan_quick_runs_and_checks_pass() -> None:
    require_program("nginx")
    environment = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_scan.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=str(ROOT),
        env=environment,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "CHECK FAILED" not in out
    for row in (
        "| plain script: 200 handshakes | ",
        "| scan (responder asked) | ",
        "| scan --no-responder | ",
        "| scan / plain (median of per-round ratios) | ",
        "| scan: peak Python memory (tracemalloc) | ",
        "| process ru_maxrss at the end | ",
    ):
        assert row in out, out[-3000:]
