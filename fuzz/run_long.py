"""Long fuzzing runs: both harnesses, several workers, a budget of executions or time.

From the repository root::

    python -m fuzz.run_long --out /tmp/fuzz-run --harness validate --workers 1 \\
        --runs 10000000 --seconds 4200
    python -m fuzz.run_long --out /tmp/fuzz-run --harness both --workers 2 --seconds 600

One corpus (PKI, seeds, soundness table) is built in ``OUT/state`` and shared by
every worker. Each harness's workers run at once (each its own libFuzzer process with
its own ``-seed``, sharing ``OUT/corpus-HARNESS`` through libFuzzer's ``-reload``);
the harnesses run one after the other. Workers run with
``STAPLECHECK_FUZZ_KEEP_GOING=1``: a finding (crash, false good, ...) is saved in
``OUT/findings/HARNESS`` and fuzzing goes on; a worker that dies anyway (a hang, a
crash below Python) is restarted with what is left of its budget. ``--runs`` is the
total for each harness, split between its workers; ``--seconds`` caps each harness.
The last line printed per harness is the summary::

    SUMMARY harness=validate workers=1 executions=... seconds=... exec/s=...
    crashes=0 false_good=0 other_findings=0 worker_deaths=0 corpus=... source=...

``source`` is a fingerprint of staplecheck's source files (SHA-256, 16 hex digits),
marked if they changed while the harness ran.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from fuzz import corpus as corpus_module
from fuzz.oracle import FINDINGS_ENV, KEEP_GOING_ENV, KINDS, STATS_ENV

HARNESSES = {"validate": "fuzz.fuzz_validate", "callback": "fuzz.fuzz_callback"}
ROOT = Path(__file__).resolve().parent.parent
_STATUS_LINE = re.compile(r"^#(\d+)\s", re.MULTILINE)
_FINAL_STAT = re.compile(r"stat::number_of_executed_units:\s*(\d+)")


def executions_in(log: str) -> int:
    """Executions a libFuzzer log reports (final stats, else the last status line)."""
    final = _FINAL_STAT.findall(log)
    if final:
        return int(final[-1])
    counted = _STATUS_LINE.findall(log)
    return int(counted[-1]) if counted else 0


def _worker(
    harness: str, index: int, out: Path, runs: int | None, seconds: float
) -> tuple[int, int]:
    """Run one worker until its budget is spent; (executions, deaths)."""
    state = out / "state"
    work = out / f"corpus-{harness}"
    findings = out / "findings" / harness
    logs = out / "logs"
    env = dict(os.environ)
    env.update(
        {
            corpus_module.STATE_ENV: str(state),
            KEEP_GOING_ENV: "1",
            FINDINGS_ENV: str(findings),
        }
    )
    done = deaths = 0
    deadline = time.monotonic() + seconds
    attempt = 0
    processes: list[subprocess.Popen[bytes]] = []
    while time.monotonic() < deadline - 1 and (runs is None or done < runs) and deaths < 20:
        left = int(deadline - time.monotonic())
        log_path = logs / f"{harness}-{index}-{attempt}.log"
        env[STATS_ENV] = str(out / "stats" / f"{harness}-{index}-{attempt}.json")
        command = [
            sys.executable,
            "-m",
            HARNESSES[harness],
            f"-seed={1000 * index + attempt + 1}",
            f"-max_total_time={max(left, 1)}",
            f"-runs={runs - done if runs is not None else -1}",
            "-timeout=30",
            "-reload=30",
            "-print_final_stats=1",
            f"-artifact_prefix={out / 'artifacts'}/{harness}-",
            str(work),
            str(state / "seeds"),
        ]
        with log_path.open("wb") as log:
            process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)
            processes.append(process)
            code = process.wait()
        done += executions_in(log_path.read_text(errors="replace"))
        if code != 0:
            deaths += 1
        attempt += 1
    return done, deaths


def source_fingerprint() -> str:
    """SHA-256 over staplecheck's source files: which code a run fuzzed."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "staplecheck").rglob("*.py")):
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def run_harness(harness: str, out: Path, workers: int, runs: int | None, seconds: float) -> dict:
    import concurrent.futures

    (out / f"corpus-{harness}").mkdir(parents=True, exist_ok=True)
    source = source_fingerprint()
    started = time.monotonic()
    share = None if runs is None else -(-runs // workers)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(lambda i: _worker(harness, i, out, share, seconds), range(workers)))
    elapsed = time.monotonic() - started
    executions = sum(r[0] for r in results)
    deaths = sum(r[1] for r in results)
    findings: Counter[str] = Counter()
    for path in (out / "stats").glob(f"{harness}-*.json"):
        findings.update(json.loads(path.read_text()).get("findings", {}))
    saved: Counter[str] = Counter(
        next((k for k in KINDS if p.name.startswith(f"{k}-")), "other")
        for p in (out / "findings" / harness).glob("*.der")
    )
    for kind, count in saved.items():  # stats may miss a worker's last seconds
        findings[kind] = max(findings[kind], count)
    summary = {
        "harness": harness,
        "workers": workers,
        "executions": executions,
        "seconds": round(elapsed),
        "exec/s": round(executions / elapsed) if elapsed else 0,
        "crashes": findings["crash"],
        "false_good": findings["false-good"],
        "other_findings": sum(findings.values()) - findings["crash"] - findings["false-good"],
        "worker_deaths": deaths,
        "corpus": len(list((out / f"corpus-{harness}").iterdir())),
        "source": source if source == source_fingerprint() else f"{source}(changed during run)",
    }
    (out / f"summary-{harness}.json").write_text(json.dumps(summary, indent=1))
    print("SUMMARY " + " ".join(f"{k}={v}" for k, v in summary.items()), flush=True)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="run directory")
    parser.add_argument("--harness", choices=[*HARNESSES, "both"], default="both")
    parser.add_argument("--workers", type=int, default=1, help="processes per harness")
    parser.add_argument("--runs", type=int, help="total executions per harness")
    parser.add_argument("--seconds", type=float, default=3600, help="time cap per harness")
    options = parser.parse_args(argv)
    out: Path = options.out.resolve()
    for sub in ("logs", "stats", "artifacts", "findings"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    state = out / "state"
    if not (state / "state.json").exists():
        corpus_module.build(state)
    names = list(HARNESSES) if options.harness == "both" else [options.harness]
    summaries = [
        run_harness(name, out, options.workers, options.runs, options.seconds) for name in names
    ]
    bad = sum(s["crashes"] + s["false_good"] + s["other_findings"] for s in summaries)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
