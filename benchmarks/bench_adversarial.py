"""How much can one hostile staple cost, against a normal validation?

Every staple in ``tests/hostile_staples.py`` (the most expensive ones we could build,
each at most 65,000 bytes, the most a TLS 1.3 server can staple) is validated against
the same leaf and issuer as a normal, good staple, all with ``cache=None`` so that
every call does all the work. Rounds visit the staples (and the normal one) in a
shuffled order; each visit times a batch of calls with ``time.perf_counter_ns`` and
the garbage collector off, on fresh staple bytes and freshly loaded certificates. The
judged figure is the median over rounds of each staple's cost divided by the normal
validation's in the same round (a neighbour's burst on this shared machine moves
both). Target: no staple costs more than 20 times a normal validation. It is a
report, not a test: it always exits 0.

    python benchmarks/bench_adversarial.py           # about 30 s
    python benchmarks/bench_adversarial.py --quick   # about 5 s
"""

from __future__ import annotations

import argparse
import datetime
import gc
import os
import platform
import random
import statistics
import sys
import time

import cryptography
from cryptography import x509
from cryptography.hazmat.primitives import serialization

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir))

import staplecheck
from staplecheck import StapleResult, validate_staple
from staplecheck.testing import CA
from tests.hostile_staples import HOSTILE_STAPLES

NOW = datetime.datetime(2026, 11, 21, 12, tzinfo=datetime.timezone.utc)
TARGET = 20.0
NORMAL = "normal good staple"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run (about 5 s)")
    parser.add_argument("--seconds", type=float, default=None, help="time cap of the rounds")
    args = parser.parse_args(argv)
    seconds = args.seconds or (4.0 if args.quick else 25.0)
    batch = 3

    issuer = CA(now=NOW, name="bench adversarial CA")
    leaf = issuer.issue_cert("bench.example")
    staples = {NORMAL: issuer.ocsp_response(leaf)}
    for name, build in HOSTILE_STAPLES.items():
        staples[name] = build(issuer, leaf)
    leaf_der = leaf.cert.public_bytes(serialization.Encoding.DER)
    issuer_der = issuer.cert.public_bytes(serialization.Encoding.DER)
    verdicts: dict[str, StapleResult] = {}

    def timed(der: bytes) -> tuple[float, StapleResult]:
        inputs = [
            (
                bytes(bytearray(der)),
                x509.load_der_x509_certificate(leaf_der),
                x509.load_der_x509_certificate(issuer_der),
            )
            for _ in range(batch)
        ]
        result: StapleResult | None = None
        enabled = gc.isenabled()
        gc.disable()
        try:
            start = time.perf_counter_ns()
            for staple, leaf_cert, issuer_cert in inputs:
                result = validate_staple(staple, leaf_cert, issuer_cert, now=NOW, cache=None)
            elapsed = time.perf_counter_ns() - start
        finally:
            if enabled:
                gc.enable()
        assert result is not None
        return elapsed / batch / 1000, result

    costs: dict[str, list[float]] = {name: [] for name in staples}
    ratios: dict[str, list[float]] = {name: [] for name in staples}
    rng = random.Random(7)
    deadline = time.monotonic() + seconds
    rounds = 0
    while time.monotonic() < deadline or rounds < 5:
        order = list(staples)
        rng.shuffle(order)
        this_round: dict[str, float] = {}
        for name in order:
            this_round[name], verdicts[name] = timed(staples[name])
        for name, micros in this_round.items():
            costs[name].append(micros)
            ratios[name].append(micros / this_round[NORMAL])
        rounds += 1

    print(
        f"staplecheck {staplecheck.__version__}, cryptography {cryptography.__version__}, "
        f"Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs"
    )
    print(f"{rounds} rounds x {batch} calls per staple, shuffled; cache=None; µs per call\n")
    header = f"{'staple':28} {'bytes':>6} {'µs (median)':>12} {'x normal':>9}  verdict"
    print(header)
    print("-" * (len(header) + 40))
    worst_name, worst = "", 0.0
    for name in staples:
        ratio = statistics.median(ratios[name])
        if name != NORMAL and ratio > worst:
            worst_name, worst = name, ratio
        verdict = verdicts[name]
        print(
            f"{name:28} {len(staples[name]):>6} {statistics.median(costs[name]):>12.1f} "
            f"{ratio:>8.2f}x  {verdict.status.value}: {_short(verdict.reason)}"
        )
    outcome = "PASS" if worst <= TARGET else "MISS"
    print(f"\nworst: {worst_name}, {worst:.2f}x a normal validation", end=" ")
    print(f"(target <= {TARGET:.0f}x): {outcome}")
    return 0


def _short(text: str, width: int = 70) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


if __name__ == "__main__":
    raise SystemExit(main())
