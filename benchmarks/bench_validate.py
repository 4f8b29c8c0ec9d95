"""How much does validate_staple cost over what validation cannot avoid?

For four cases (an ECDSA P-256, RSA-2048 or Ed25519 issuer signing its own responses,
and an ECDSA issuer with an ECDSA delegated responder) this measures, interleaved in
one run:

- floor: the work no validator can skip: parse the DER
  (``ocsp.load_der_ocsp_response``) and verify the signature(s) the case needs with the
  issuer's key; for a delegate, also the delegate certificate's signature
  (``verify_directly_issued_by``) and the response signature with the delegate's key;
- uncached: a staple never seen before, for certificates seen before: what a client
  pays when a server refreshes its staple. Each call gets staple bytes the cache has
  not seen (distinct responses, the evidence map emptied before each batch), with the
  certificate facts (names, keys, hashes) of the same leaf and issuer remembered;
- cold: ``cache=None``, nothing remembered at all (reported, no target);
- cached: the evidence already cached;
- api-cached: the same through the public ``validate_staple``, which must ask
  cryptography for each certificate's DER (re-encoded on every call); reported, no
  target.

The uncached, cold and cached modes call ``judge_staple`` with the leaf and issuer as
the TLS glue hands them over: loaded from the DER OpenSSL gives, with that DER kept
(``CertPair(leaf_der, issuer_der)``, outside the timed region), since every memo is keyed by
complete DER.

Every call gets freshly loaded certificate objects and a fresh bytes object for the
staple, built outside the timed region, so nothing is cached on object identity (not
cryptography's per-object caches, not a hash cached on the bytes). Rounds visit the
sixteen (case, mode) pairs in a shuffled order; each visit times a batch of calls with
``time.perf_counter_ns`` and the garbage collector off. The report gives the median
per call and the ratios to the floor, judged against the targets uncached <= 1.25x
floor and cached <= 0.10x floor. The judged ratio is the median over rounds of the
ratio within each round: measurements milliseconds apart share the machine's load,
so a neighbour's burst does not skew it the way it can skew a ratio of two medians
(both are printed). It is a report, not a test: it always exits 0.

    python benchmarks/bench_validate.py           # under a minute (capped at 55 s)
    python benchmarks/bench_validate.py --quick   # under 10 s
"""

from __future__ import annotations

import argparse
import datetime
import functools
import gc
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cryptography
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509 import ocsp

import staplecheck
from staplecheck import StapleCache, StapleStatus, validate_staple
from staplecheck.testing import CA
from staplecheck.validation._validate import (
    DEFAULT_CLOCK_SKEW,
    DEFAULT_LIFETIME,
    DEFAULT_MAX_AGE,
    CertPair,
    judge_staple,
)

NOW = datetime.datetime(2026, 11, 21, 12, 0, 0, tzinfo=datetime.timezone.utc)
"""The test PKI's clock; responses are produced at NOW and judged a minute later."""
JUDGED_AT = NOW + datetime.timedelta(minutes=1)

UNCACHED_TARGET = 1.25
CACHED_TARGET = 0.10

MODES = ("floor", "uncached", "cold", "cached", "api-cached")
FRESH_STAPLES = 32
"""Distinct responses per case for the uncached mode: at least --batch."""

Inputs = list[tuple[Any, ...]]
Samples = dict[tuple[str, str], list[float]]


# --- the cases ---------------------------------------------------------------------------


@dataclass
class Case:
    name: str
    der: bytes
    leaf_der: bytes
    issuer_der: bytes
    floor: Callable[[bytes, x509.Certificate, x509.Certificate], object]
    cache: StapleCache
    """Warm: holds this staple's evidence (the cached mode)."""
    staples: list[bytes]
    """Distinct responses for the same leaf (the uncached mode)."""
    known: StapleCache
    """Knows the leaf and issuer, never the staple being judged (the uncached mode)."""


def _der_of(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _floor_ecdsa(der: bytes, leaf: x509.Certificate, issuer: x509.Certificate) -> object:
    response = ocsp.load_der_ocsp_response(der)
    key: ec.EllipticCurvePublicKey = issuer.public_key()  # type: ignore[assignment]
    key.verify(response.signature, response.tbs_response_bytes, ec.ECDSA(hashes.SHA256()))
    return response


def _floor_rsa(der: bytes, leaf: x509.Certificate, issuer: x509.Certificate) -> object:
    response = ocsp.load_der_ocsp_response(der)
    key: rsa.RSAPublicKey = issuer.public_key()  # type: ignore[assignment]
    key.verify(response.signature, response.tbs_response_bytes, padding.PKCS1v15(), hashes.SHA256())
    return response


def _floor_ed25519(der: bytes, leaf: x509.Certificate, issuer: x509.Certificate) -> object:
    response = ocsp.load_der_ocsp_response(der)
    key: ed25519.Ed25519PublicKey = issuer.public_key()  # type: ignore[assignment]
    key.verify(response.signature, response.tbs_response_bytes)
    return response


def _floor_delegated(der: bytes, leaf: x509.Certificate, issuer: x509.Certificate) -> object:
    response = ocsp.load_der_ocsp_response(der)
    delegate = response.certificates[0]
    delegate.verify_directly_issued_by(issuer)
    key: ec.EllipticCurvePublicKey = delegate.public_key()  # type: ignore[assignment]
    key.verify(response.signature, response.tbs_response_bytes, ec.ECDSA(hashes.SHA256()))
    return response


def build_cases() -> list[Case]:
    cases = []
    for name, key_type, floor in (
        ("ECDSA P-256", "ecdsa", _floor_ecdsa),
        ("RSA-2048", "rsa", _floor_rsa),
        ("Ed25519", "ed25519", _floor_ed25519),
    ):
        ca = CA(key_type=key_type, name=f"bench {name} CA", now=NOW)  # type: ignore[arg-type]
        cases.append(_case(name, ca, floor))
    ca = CA(key_type="ecdsa", name="bench delegating CA", now=NOW)
    cases.append(_case("delegated (ECDSA)", ca, _floor_delegated, ca.issue_responder()))
    return cases


def _case(name: str, ca: CA, floor: Any, responder: Any = None) -> Case:
    leaf = ca.issue_cert("bench.example", key_type="ecdsa")
    staples = [
        ca.ocsp_response(leaf, "good", responder=responder, this_update=NOW - i * SECOND)
        for i in range(FRESH_STAPLES)
    ]
    return Case(
        name,
        staples[0],
        _der_of(leaf.cert),
        _der_of(ca.cert),
        floor,
        StapleCache(),
        staples,
        StapleCache(),
    )


SECOND = datetime.timedelta(seconds=1)


def mode_function(case: Case, mode: str) -> Callable[..., object]:
    """The callable timed for (case, mode); each is exactly one Python call deep."""
    if mode == "floor":
        return case.floor
    if mode == "api-cached":
        return functools.partial(validate_staple, now=JUDGED_AT, cache=case.cache)
    cache = {"cached": case.cache, "uncached": case.known, "cold": None}[mode]
    return functools.partial(
        judge_staple,
        now=JUDGED_AT,
        clock_skew=DEFAULT_CLOCK_SKEW,
        default_lifetime=DEFAULT_LIFETIME,
        max_age=DEFAULT_MAX_AGE,
        allow_sha1=True,
        chain=(),
        cache=cache,
    )


def fresh_inputs(case: Case, count: int, mode: str) -> Inputs:
    """New staple bytes and newly loaded certificates for each of ``count`` calls;
    for the uncached mode, a different response each call, none of them cached."""
    load = x509.load_der_x509_certificate
    if mode == "uncached":
        case.known.evidence.clear()  # outside the timed region
        staples = case.staples[:count]
    else:
        staples = [case.der] * count
    if mode in ("floor", "api-cached"):
        return [
            (bytes(bytearray(der)), load(case.leaf_der), load(case.issuer_der)) for der in staples
        ]
    return [
        (bytes(bytearray(der)), CertPair(bytes(case.leaf_der), bytes(case.issuer_der)))
        for der in staples
    ]


def check(case: Case, mode: str, out: list[object]) -> None:
    """Every timed call must have done the real work and found the staple good."""
    for value in out:
        if mode == "floor":
            ok = isinstance(value, ocsp.OCSPResponse)
        else:
            ok = isinstance(value, staplecheck.StapleResult) and value.status is StapleStatus.GOOD
        if not ok:
            raise AssertionError(f"{case.name} / {mode}: unexpected result {value!r}")


# --- the measurement ---------------------------------------------------------------------


def time_batch(fn: Callable[..., object], inputs: Inputs) -> tuple[int, list[object]]:
    out: list[object] = [None] * len(inputs)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter_ns()
        for i, arguments in enumerate(inputs):
            out[i] = fn(*arguments)
        elapsed = time.perf_counter_ns() - start
    finally:
        if gc_was_enabled:
            gc.enable()
    return elapsed, out


def run(
    cases: list[Case], rounds: int, batch: int, warmup: int, seed: int, deadline: float
) -> Samples:
    """samples[(case name, mode)] = list of ns per call, one per round.

    Stops early, with whole rounds only, once ``time.monotonic()`` passes ``deadline``.
    """
    functions = {(c.name, m): (c, mode_function(c, m)) for c in cases for m in MODES}
    for case in cases:  # warm the caches (one real validation each)
        for cache in (case.cache, case.known):
            first = validate_staple(case.der, *_load_pair(case), now=JUDGED_AT, cache=cache)
            assert first.status is StapleStatus.GOOD, (case.name, first)
            assert len(cache) == 1
    samples: Samples = {key: [] for key in functions}
    rng = random.Random(seed)
    order = list(functions)
    for round_number in range(warmup + rounds):
        rng.shuffle(order)
        for key in order:
            case, fn = functions[key]
            inputs = fresh_inputs(case, batch, key[1])
            elapsed, out = time_batch(fn, inputs)
            check(case, key[1], out)
            if round_number >= warmup:
                samples[key].append(elapsed / batch)
        gc.collect()
        if round_number >= warmup + 20 and time.monotonic() > deadline:
            break
    for case in cases:  # every cached call hit the one entry warmed above
        assert len(case.cache) == 1, (case.name, len(case.cache))
    return samples


def _load_pair(case: Case) -> tuple[x509.Certificate, x509.Certificate]:
    load = x509.load_der_x509_certificate
    return load(case.leaf_der), load(case.issuer_der)


# --- the report --------------------------------------------------------------------------


def summarize(cases: list[Case], samples: Samples) -> list[dict[str, Any]]:
    rows = []
    for case in cases:
        row: dict[str, Any] = {"case": case.name, "_samples": samples[(case.name, "floor")]}
        for mode in MODES:
            q1, q2, q3 = statistics.quantiles(samples[(case.name, mode)], n=4, method="inclusive")
            row[mode] = q2 / 1000
            row[f"{mode}_iqr"] = (q1 / 1000, q3 / 1000)
        row["uncached_ratio"] = row["uncached"] / row["floor"]
        row["cached_ratio"] = row["cached"] / row["floor"]
        floor = samples[(case.name, "floor")]
        for mode in ("uncached", "cold", "cached", "api-cached"):
            row[f"{mode}_paired"] = statistics.median(
                m / f for m, f in zip(samples[(case.name, mode)], floor, strict=True)
            )
        rows.append(row)
    return rows


def verdict(ratio: float, target: float) -> str:
    return "PASS" if ratio <= target else "MISS"


def report(rows: list[dict[str, Any]], args: argparse.Namespace, seconds: float) -> None:
    done = len(next(iter(rows))["_samples"])
    capped = f" (time cap of {args.max_seconds:.0f} s reached)" if done < args.rounds else ""
    print(
        f"staplecheck {staplecheck.__version__}, cryptography {cryptography.__version__}, "
        f"Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs"
    )
    print(
        f"{done} rounds{capped} x {args.batch} calls per (case, mode), interleaved in "
        f"shuffled order; {seconds:.0f} s"
    )
    print("µs per call (median over rounds); fresh certificate objects and staple bytes")
    print("for every call; ratios are the median over rounds of the ratio within a round")
    print()
    header = (
        f"{'case':<18} {'floor':>8} {'uncached':>9} {'cold':>7} {'cached':>7} {'overhead':>9}"
        f" {'uncached/floor':>15} {'cached/floor':>13} {'cold/floor':>10} {'api-cached':>10}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['case']:<18} {r['floor']:8.1f} {r['uncached']:9.1f} {r['cold']:7.1f}"
            f" {r['cached']:7.2f} {r['uncached'] - r['floor']:9.1f}"
            f" {r['uncached_paired']:9.2f}x {verdict(r['uncached_paired'], UNCACHED_TARGET)}"
            f" {r['cached_paired']:7.3f}x {verdict(r['cached_paired'], CACHED_TARGET)}"
            f" {r['cold_paired']:9.2f}x {r['api-cached_paired']:9.3f}x"
        )
    print()
    print(
        f"targets: uncached <= {UNCACHED_TARGET:.2f}x floor, cached <= {CACHED_TARGET:.2f}x floor;"
        " overhead = uncached - floor (µs); api-cached: validate_staple, no target"
    )
    print()
    print("spread: interquartile range of the per-round means (µs); ratios of the medians")
    for r in rows:
        spread = "  ".join(
            f"{mode} {r[f'{mode}_iqr'][0]:.1f}-{r[f'{mode}_iqr'][1]:.1f}" for mode in MODES
        )
        print(f"  {r['case']:<18} {spread}   {r['uncached_ratio']:.2f}x / {r['cached_ratio']:.3f}x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (under 10 s)")
    parser.add_argument("--rounds", type=int, help="timed rounds (default 1600, quick 300)")
    parser.add_argument("--batch", type=int, default=10, help="calls timed together")
    parser.add_argument("--seed", type=int, default=20261121, help="order shuffle seed")
    parser.add_argument(
        "--max-seconds",
        type=float,
        help="stop after this many seconds even if rounds remain (default 55, quick 8)",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.batch <= FRESH_STAPLES:
        parser.error(f"--batch must be between 1 and {FRESH_STAPLES}")
    if args.rounds is None:
        args.rounds = 300 if args.quick else 1600
    if args.max_seconds is None:
        args.max_seconds = 8.0 if args.quick else 55.0
    warmup = 10 if args.quick else 30
    started = time.perf_counter()
    deadline = time.monotonic() + args.max_seconds
    cases = build_cases()
    samples = run(cases, args.rounds, args.batch, warmup, args.seed, deadline)
    report(summarize(cases, samples), args, time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
