"""How much does a 100,000-entry CRL cost to judge, and a lookup per connection?

Fetch-free: the CRL (100,000 entries, each with a keyCompromise reason code, signed
by an ECDSA P-256 CA, about 4 MB) is built once. Rounds alternate, in a shuffled
order, ``judge_crl`` (size check, DER walk, issuer name, keyUsage, signature, every
extension and entry checked, the serial index built) and a baseline: what any client
must do with such a CRL at least, ``x509.load_der_x509_crl`` plus one signature
verification with the issuer's key already loaded. The judged figure is the median
over rounds of judge ÷ baseline in the same round. Lookups: ``crl_verdict`` for a
certificate not listed (the common case: ``good``) and for a listed one, with the
certificate object reused (as in one connection) and loaded afresh from DER each call.
Target (issue 8): a lookup ≤ 10 µs. A report, not a test: it always exits 0.

    python benchmarks/bench_crl.py           # about 30 s
    python benchmarks/bench_crl.py --quick   # about 8 s
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
from cryptography.hazmat.primitives.asymmetric import ec

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir))

import staplecheck
from staplecheck.revocation._crl import CRLIndex, crl_verdict, judge_crl
from staplecheck.testing import CA

NOW = datetime.datetime(2026, 11, 21, 12, tzinfo=datetime.timezone.utc)
ENTRIES = 100_000
LOOKUP_TARGET_US = 10.0
SETTINGS = {
    "clock_skew": datetime.timedelta(minutes=5),
    "default_lifetime": datetime.timedelta(days=1),
    "max_age": datetime.timedelta(days=10),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run (about 8 s)")
    args = parser.parse_args(argv)
    seconds = 4.0 if args.quick else 25.0

    issuer = CA(now=NOW, name="bench CRL CA")
    listed = issuer.issue_cert("listed.example", serial_number=ENTRIES // 2)
    fine = issuer.issue_cert("fine.example")
    started = time.perf_counter()
    crl = issuer.crl(range(1, ENTRIES + 1), reason="keyCompromise")
    built = time.perf_counter() - started
    issuer_der = issuer.cert.public_bytes(serialization.Encoding.DER)
    key = issuer.cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)

    def judge() -> float:
        data = bytes(bytearray(crl))
        cert = x509.load_der_x509_certificate(issuer_der)
        start = time.perf_counter()
        index = judge_crl(data, cert, issuer_der=issuer_der, now=NOW, **SETTINGS)
        elapsed = time.perf_counter() - start
        assert isinstance(index, CRLIndex), index
        return elapsed

    def baseline() -> float:
        data = bytes(bytearray(crl))
        start = time.perf_counter()
        loaded = x509.load_der_x509_crl(data)
        assert loaded.is_signature_valid(key)
        return time.perf_counter() - start

    judged: list[float] = []
    floor: list[float] = []
    ratios: list[float] = []
    rng = random.Random(5)
    deadline = time.monotonic() + seconds
    enabled = gc.isenabled()
    gc.disable()
    try:
        while time.monotonic() < deadline or len(ratios) < 5:
            order = [judge, baseline]
            rng.shuffle(order)
            results = {f.__name__: f() for f in order}
            judged.append(results["judge"])
            floor.append(results["baseline"])
            ratios.append(results["judge"] / results["baseline"])
    finally:
        if enabled:
            gc.enable()

    index = judge_crl(crl, issuer.cert, issuer_der=issuer_der, now=NOW, **SETTINGS)
    assert isinstance(index, CRLIndex)
    lookups = {
        "not listed (good), same cert": _lookup(index, fine.cert, None),
        "listed (revoked), same cert": _lookup(index, listed.cert, None),
        "not listed, cert loaded per call": _lookup(index, None, fine.cert),
        "not listed, must_staple given": _lookup(index, fine.cert, None, must_staple=False),
    }

    print(
        f"staplecheck {staplecheck.__version__}, cryptography {cryptography.__version__}, "
        f"Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs"
    )
    print(f"CRL: {ENTRIES} entries, {len(crl)} bytes, ECDSA P-256; built in {built:.2f} s\n")
    print(f"{len(ratios)} rounds, shuffled; seconds (median)")
    print(f"  judge_crl (parse, verify, index)      {statistics.median(judged):8.3f}")
    print(f"  baseline (load_der_x509_crl + verify) {statistics.median(floor):8.3f}")
    print(f"  ratio judge / baseline                {statistics.median(ratios):8.2f}x")
    print(f"  index: {len(index)} serials\n")
    print("crl_verdict, µs per call (median of 7 batches of 20,000)")
    worst = 0.0
    for name, micros in lookups.items():
        print(f"  {name:36} {micros:6.2f}")
        if "loaded per call" not in name:
            worst = max(worst, micros)
    outcome = "PASS" if worst <= LOOKUP_TARGET_US else "MISS"
    print(f"\nlookup target ≤ {LOOKUP_TARGET_US} µs: {outcome} (worst {worst:.2f} µs)")
    return 0


def _lookup(
    index: CRLIndex,
    cert: x509.Certificate | None,
    fresh: x509.Certificate | None,
    must_staple: bool | None = None,
) -> float:
    calls = 20_000
    batches = []
    der = fresh.public_bytes(serialization.Encoding.DER) if fresh else b""
    for _ in range(7):
        start = time.perf_counter()
        if cert is not None:
            for _ in range(calls):
                crl_verdict(index, cert, now=NOW, must_staple=must_staple)
        else:
            for _ in range(calls):
                crl_verdict(index, x509.load_der_x509_certificate(der), now=NOW)
        batches.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(batches)


if __name__ == "__main__":
    raise SystemExit(main())
