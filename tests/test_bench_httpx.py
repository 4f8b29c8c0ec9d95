"""The httpx benchmark runs: ``benchmarks/bench_httpx.py --quick`` against the real
nginx (HTTP/2 on, a stapled file) it starts, with every check it makes on responses,
staple verdicts and nginx's access log (one request per connection where the measure
opens new ones, one connection where it keeps one alive). Its figures are not judged
here: a loaded CI machine is no place for ratios."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_program

ROOT = Path(__file__).resolve().parent.parent


def test_bench_httpx_quick_runs_and_checks_pass() -> None:
    require_program("nginx")
    for module in ("httpx", "h2"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed")
    environment = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_httpx.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=str(ROOT),
        env=environment,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "CHECK FAILED" not in out
    rows = [
        "| 1. new connection, soft-fail / plain (",
        "| 2. keep-alive, soft-fail / plain (",
        "| 3. new connection, soft-fail / off (",
        "| 4. 200 concurrent new connections (asyncio): throughput soft-fail / plain (",
        "| 5. HTTP/2, 50 multiplexed requests on one connection, soft-fail / plain (",
    ]
    if importlib.util.find_spec("trio") is not None:
        rows.append("| 4. 200 concurrent new connections (trio): throughput soft-fail / plain (")
    for row in rows:
        assert row in out, out[-3000:]
    # nginx's log: every new-connection request on a connection of its own, the
    # keep-alive and HTTP/2 clients on one connection each.
    assert "h2 soft-fail" in out
    assert "HTTP/2.0" in out
    assert "no gap" in out
