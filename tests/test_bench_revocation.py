"""The revocation benchmark runs: ``benchmarks/bench_revocation.py --quick`` against the
real nginx, OCSP responder and redis-server it starts (and niquests, when its venv
exists), with every check it makes on responses, verdicts and responder queries. Its
figures are not judged here: a loaded CI machine is no place for ratios."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import require_program

ROOT = Path(__file__).resolve().parent.parent


def test_bench_revocation_quick_runs_and_checks_pass() -> None:
    require_program("nginx")
    require_program("redis-server")
    environment = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_revocation.py"), "--quick"],
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
        "| 1. hit (memory) / staple-only |",
        "| 1. hit (sqlite) / staple-only |",
        "| 1. hit (redis) / staple-only |",
        "| 2. cold miss (first contact): added latency / plain POST |",
        "| 3. 16 threads cold: responder queries | 1-1 per trial",
        "| 4. ",
        "| 5. CRL lookup per connection |",
    ):
        assert row in out, out[-3000:]
