"""Issue 8's benchmarks: what revocation beyond the staple costs per connection.

Real servers on 127.0.0.1 (benchmarks/revocation_setup.py): nginx with the same ECDSA
certificate twice, TLS 1.3, no resumption (one stapling a good response, one stapling
nothing), the project's OCSP responder named in the leaf's AIA (a process of its own
unless ``--in-process-responder``), redis-server for the Redis store. Every client is a
``requests.Session`` sending ``Connection: close`` (a new connection and full
handshake per request) with ``verify=<root CA>``. Each part
interleaves its clients (the starting client rotates every round), times each request
on its own (``perf_counter_ns``), checks every response and verdict outside the timed
region, and judges the ratio of medians, with a bootstrap 95% interval (rounds
resampled):

1. **hit**: the fallback (soft-fail, live OCSP) answered from the store, against
   staple-only (soft-fail against the stapling nginx). Target: memory ≤ 1.03×;
   SQLite and Redis reported. The responder must see no request.
2. **cold miss**: an empty store and validation memo before every request. Added
   latency = median(cold) − median(the same connection without fallback), against a
   plain ``http.client`` POST of the same OCSP request to the same responder
   (``http.client`` is the fetcher's own HTTP stack). Target ≤ 1.2×. The responder
   must see exactly one request per cold connection.
3. **single-flight**: 16 threads connect cold to one host at once (a barrier), first
   as they come, then with the responder held until the 15 followers wait. Target:
   exactly one responder query per trial.
4. **niquests** (benchmarks/bench_niquests.py in a separate venv, default
   /tmp/venv-niquests; "not run" without it): the first request of a new client, and
   100 new connections of a warm one, against the same nginx and responder. Target
   staplecheck ≤ niquests.
5. **CRL**: a 100,000-entry CRL served by the project's CRL server: fetch + judge time
   reported; lookup per connection (``crl_verdict`` on a certificate loaded from DER,
   as a new connection has it) ≤ 10 µs.

A report, not a test: it exits 0 whether targets pass or miss, 1 when a check fails.

    python benchmarks/bench_revocation.py            # about 90 s
    python benchmarks/bench_revocation.py --quick    # about 10 s
"""

from __future__ import annotations

import argparse
import datetime
import gc
import os
import platform
import random
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for entry in (str(ROOT), str(ROOT / "benchmarks")):
    if entry not in sys.path:
        sys.path.insert(0, entry)

import cryptography  # noqa: E402
import OpenSSL  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from revocation_setup import Bench, Client  # noqa: E402

import staplecheck  # noqa: E402
from staplecheck import Policy, StapleStatus  # noqa: E402
from staplecheck.revocation import RevocationChecker, RevocationResult  # noqa: E402
from staplecheck.revocation._crl import CRLIndex, crl_verdict, judge_crl  # noqa: E402
from staplecheck.revocation._fetch import fetch_crl  # noqa: E402
from staplecheck.revocation.stores import MemoryStore  # noqa: E402
from staplecheck.testing import CA, CRLServer  # noqa: E402
from staplecheck.validation._result import StapleResult  # noqa: E402
from staplecheck.validation._validate import StapleCache  # noqa: E402

HIT_TARGET = 1.03
COLD_TARGET = 1.2
CRL_LOOKUP_TARGET_US = 10.0
THREADS = 16
CRL_ENTRIES = 100_000
NIQUESTS_PYTHON = os.environ.get("NIQUESTS_PYTHON", "/tmp/venv-niquests/bin/python")
FAILED: list[str] = []
MISSING = StapleResult(status=StapleStatus.MISSING, reason="the server sent no staple")


def check(condition: bool, message: str) -> None:
    if not condition:
        FAILED.append(message)
        print(f"CHECK FAILED: {message}", flush=True)


def verdict(ratio: float, target: float) -> str:
    return "PASS" if ratio <= target else "MISS"


def median_us(samples: Sequence[int]) -> float:
    return statistics.median(samples) / 1e3


def bootstrap(
    columns: Sequence[Sequence[int]], statistic: Callable[..., float], resamples: int = 200
) -> tuple[float, float]:
    """A 95% interval of ``statistic(*medians)``, rounds resampled together."""
    rng = random.Random(8)
    rounds = len(columns[0])
    values = []
    for _ in range(resamples):
        picks = [rng.randrange(rounds) for _ in range(rounds)]
        medians = [statistics.median(column[i] for i in picks) for column in columns]
        values.append(statistic(*medians))
    values.sort()
    return values[int(0.025 * resamples)], values[int(0.975 * resamples) - 1]


def interleave(
    clients: Sequence[Client],
    rounds: int,
    seconds: float,
    before: Callable[[Client], None],
    after: Callable[[Client, object], None],
    run: Callable[[Client], object],
) -> int:
    """Visit ``clients`` round-robin (the starting one rotating) until ``rounds`` or
    ``seconds``; time only ``run``. Returns the rounds made."""
    deadline = time.monotonic() + seconds
    done = 0
    while done < rounds and (done < 20 or time.monotonic() < deadline):
        shift = done % len(clients)
        for client in (*clients[shift:], *clients[:shift]):
            before(client)
            start = time.perf_counter_ns()
            result = run(client)
            client.samples.append(time.perf_counter_ns() - start)
            after(client, result)
        done += 1
    return done


def revocation_of(response: object) -> RevocationResult:
    result = getattr(response, "revocation", None)
    if not isinstance(result, RevocationResult):
        raise AssertionError(f"no revocation verdict on the response: {result!r}")
    return result


# --- 1. hit ---------------------------------------------------------------------------------


def part_hit(bench: Bench, rounds: int, seconds: float) -> list[tuple[str, str, str]]:
    staple = bench.staple_only()
    clients = [staple]
    for kind in ("memory", "sqlite", "redis"):
        store = bench.store(kind)
        if store is None:
            print(f"  {kind}: not run (no redis-server)")
            continue
        clients.append(bench.fallback(kind, store))
    asked = bench.responder.requests
    for client in clients:  # warm up: the fallback clients query once and store it
        for _ in range(10):
            client.get(bench.root)
    check(
        bench.responder.requests - asked == len(clients) - 1,
        "hit warm-up: one query per fallback client",
    )
    asked = bench.responder.requests
    for client in clients:
        client.samples.clear()

    def run(client: Client) -> object:
        return client.get(bench.root)

    def after(client: Client, response: object) -> None:
        if client is staple:
            result = getattr(response, "staple", None)
            check(result is not None and result.status is StapleStatus.GOOD, "staple good")
        else:
            result = revocation_of(response)
            if result.source != "cache" or result.status is not StapleStatus.GOOD:
                check(False, f"{client.name}: answered by {result.source}, {result.status}")

    done = interleave(clients, rounds, seconds, lambda c: None, after, run)
    check(bench.responder.requests == asked, "hit phase: the responder was asked")
    base = statistics.median(staple.samples)
    print(f"\n1. new connection per request, fallback answered from the store ({done} rounds)")
    print(f"  {'client':10} {'µs median':>10} {'ratio':>8}  95% interval")
    rows = []
    for client in clients:
        ratio = statistics.median(client.samples) / base
        low, high = bootstrap([client.samples, staple.samples], lambda a, b: a / b)
        print(
            f"  {client.name:10} {median_us(client.samples):10.0f} {ratio:7.3f}x  "
            f"[{low:.3f}-{high:.3f}]"
        )
        if client.name == "memory":
            rows.append(
                (
                    "1. hit (memory) / staple-only",
                    f"{ratio:.3f}× [{low:.3f}-{high:.3f}]",
                    f"≤ {HIT_TARGET} {verdict(ratio, HIT_TARGET)}",
                )
            )
        elif client is not staple:
            rows.append((f"1. hit ({client.name}) / staple-only", f"{ratio:.3f}×", "reported"))
    return rows


# --- 2. cold miss ---------------------------------------------------------------------------


def part_cold(bench: Bench, rounds: int, seconds: float) -> list[tuple[str, str, str]]:
    """``cold``: first contact (the store, the validation memo and the checker's plan
    memo emptied before each request). ``expired``: a certificate seen before whose
    answer is no longer stored (the store emptied; plan and certificate facts known;
    each response is new, its ECDSA signature never seen)."""
    memo = StapleCache()
    cold = bench.fallback("cold", cache=memo)
    expired = bench.fallback("expired", cache=StapleCache())
    none = bench.no_staple()
    post = Client("post", none.session, bench.responder.url)
    clients = [cold, expired, none, post]
    queries: dict[str, int] = {}

    def before(client: Client) -> None:
        if client.checker is not None:
            client.checker.store.clear()
            if client is cold:
                memo.clear()
                client.checker._plans.clear()
            queries[client.name] = bench.responder.requests

    def run(client: Client) -> object:
        if client is post:
            return bench.plain_post()
        return client.get(bench.root)

    def after(client: Client, response: object) -> None:
        if client.checker is not None:
            asked = bench.responder.requests - queries[client.name]
            check(asked == 1, f"{client.name}: one query per connection")
            result = revocation_of(response)
            if result.source != "ocsp" or result.status is not StapleStatus.GOOD:
                check(False, f"{client.name}: answered by {result.source}, {result.status}")

    for client in clients:
        for _ in range(5):
            before(client)
            after(client, run(client))
        client.samples.clear()
    done = interleave(clients, rounds, seconds, before, after, run)

    def added_ratio(c: float, n: float, p: float) -> float:
        return (c - n) / p

    cold_us, expired_us, none_us, post_us = (median_us(c.samples) for c in clients)
    ratio = (cold_us - none_us) / post_us
    low, high = bootstrap([cold.samples, none.samples, post.samples], added_ratio)
    again = (expired_us - none_us) / post_us
    again_low, again_high = bootstrap([expired.samples, none.samples, post.samples], added_ratio)
    print(f"\n2. cold miss ({done} rounds; µs medians)")
    print(f"  connection, fallback, first contact:  {cold_us:8.0f}")
    print(f"  connection, fallback, answer expired: {expired_us:8.0f}")
    print(f"  connection, no fallback:              {none_us:8.0f}")
    print(f"  plain POST (http.client):             {post_us:8.0f}")
    print(f"  added by first contact / plain POST:  {ratio:8.3f}x [{low:.3f}-{high:.3f}]")
    print(
        f"  added by expiry / plain POST:         {again:8.3f}x [{again_low:.3f}-{again_high:.3f}]"
    )
    return [
        (
            "2. cold miss (first contact): added latency / plain POST",
            f"{ratio:.3f}× [{low:.3f}-{high:.3f}] ({cold_us - none_us:.0f} / {post_us:.0f} µs)",
            f"≤ {COLD_TARGET} {verdict(ratio, COLD_TARGET)}",
        ),
        (
            "2. cold miss (answer expired): added latency / plain POST",
            f"{again:.3f}× [{again_low:.3f}-{again_high:.3f}]",
            f"≤ {COLD_TARGET} {verdict(again, COLD_TARGET)}",
        ),
    ]


# --- 3. single-flight -----------------------------------------------------------------------


def part_threads(bench: Bench, trials: int) -> list[tuple[str, str, str]]:
    shared = RevocationChecker()  # one checker for all sixteen sessions, as in one process
    clients = [bench.fallback(f"thread{i}", checker=shared) for i in range(THREADS)]
    counts: list[int] = []
    for trial in range(trials):
        held = trial % 2 == 1
        shared.store.clear()
        before_counts = shared.counts
        asked = bench.responder.requests
        barrier = threading.Barrier(THREADS + 1)
        results: list[object] = []
        lock = threading.Lock()

        def worker(
            client: Client,
            barrier: threading.Barrier = barrier,
            results: list[object] = results,
            lock: threading.Lock = lock,
        ) -> None:
            barrier.wait()
            try:
                response = client.get(bench.root)
                outcome: object = revocation_of(response)
            except Exception as error:  # noqa: BLE001 - reported as a failed check
                outcome = error
            with lock:
                results.append(outcome)

        threads = [threading.Thread(target=worker, args=(c,)) for c in clients]
        for thread in threads:
            thread.start()
        if held:
            bench.responder.pause()
        barrier.wait()
        if held:
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                if shared.counts.get("shared", 0) - before_counts.get("shared", 0) >= THREADS - 1:
                    break
                time.sleep(0.002)
            bench.responder.resume()
        for thread in threads:
            thread.join(10)
        counts.append(bench.responder.requests - asked)
        good = [
            r for r in results if isinstance(r, RevocationResult) and r.status is StapleStatus.GOOD
        ]
        check(
            len(good) == THREADS, f"threads: {len(good)} of {THREADS} got good: {results!r}"[:300]
        )
    exact = all(count == 1 for count in counts)
    print(f"\n3. {THREADS} threads connecting cold to one host, {trials} trials")
    print(f"  responder queries per trial: {counts} (odd trials: responder held until the")
    print("  followers waited)")
    return [
        (
            f"3. {THREADS} threads cold: responder queries",
            f"{min(counts)}-{max(counts)} per trial ({trials} trials)",
            f"exactly 1 {'PASS' if exact else 'MISS'}",
        )
    ]


# --- 4. niquests ----------------------------------------------------------------------------


def part_niquests(bench: Bench, rounds: int, connections: int) -> list[tuple[str, str, str]]:
    print("\n4. against niquests (OCSP on, strict mode: signatures checked on loopback too)")
    if not Path(NIQUESTS_PYTHON).exists():
        print(f"  not run: no {NIQUESTS_PYTHON} (python3 -m venv /tmp/venv-niquests && ")
        print("  /tmp/venv-niquests/bin/pip install niquests)")
        return [("4. vs niquests", "not run (no niquests venv)", "")]
    url = bench.plain.url("localhost", "/niquests")
    worker = subprocess.Popen(
        [NIQUESTS_PYTHON, str(ROOT / "benchmarks" / "bench_niquests.py"), "--serve",
         "--url", url, "--ca", bench.root],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=str(bench.directory),
    )  # fmt: skip
    assert worker.stdin is not None
    assert worker.stdout is not None

    def ask(command: str) -> list[str]:
        assert worker.stdin is not None
        assert worker.stdout is not None
        worker.stdin.write(command + "\n")
        worker.stdin.flush()
        reply = worker.stdout.readline().split()
        if not reply or reply[0] != "ok":
            raise RuntimeError(f"bench_niquests.py: {reply!r}")
        return reply[1:]

    try:
        version = ask("version")[0]
        first: dict[str, list[int]] = {"staplecheck": [], "niquests": []}
        many: dict[str, list[int]] = {"staplecheck": [], "niquests": []}
        warm = bench.fallback("warm")
        warm.get(bench.root)
        ask("warm")

        def ours_first() -> int:
            client = bench.fallback("first", cache=StapleCache())
            asked = bench.responder.requests
            start = time.perf_counter_ns()
            response = client.get(bench.root)
            elapsed = time.perf_counter_ns() - start
            result = revocation_of(response)
            check(result.source == "ocsp" and result.status is StapleStatus.GOOD, "ours first")
            check(bench.responder.requests - asked == 1, "ours first: one query")
            client.session.close()
            return elapsed

        def theirs_first() -> int:
            asked = bench.responder.requests
            elapsed, verified = ask("first")
            check(verified == "True", f"niquests first: ocsp_verified {verified}")
            check(bench.responder.requests - asked == 1, "niquests first: one query")
            return int(elapsed)

        def ours_many() -> int:
            asked = bench.responder.requests
            start = time.perf_counter_ns()
            for _ in range(connections):
                response = warm.get(bench.root)
            elapsed = time.perf_counter_ns() - start
            check(revocation_of(response).source == "cache", "ours: cache hits")
            check(bench.responder.requests == asked, "ours: no query when warm")
            return elapsed

        def theirs_many() -> int:
            asked = bench.responder.requests
            elapsed, verified = ask(f"many {connections}")
            check(verified == "True", f"niquests many: ocsp_verified {verified}")
            check(bench.responder.requests == asked, "niquests: no query when warm")
            return int(elapsed)

        for _ in range(3):
            ours_first(), theirs_first()
        for index in range(rounds):
            pairs = [("staplecheck", ours_first), ("niquests", theirs_first)]
            if index % 2:
                pairs.reverse()
            for name, run in pairs:
                first[name].append(run())
            pairs = [("staplecheck", ours_many), ("niquests", theirs_many)]
            if index % 2:
                pairs.reverse()
            for name, run in pairs:
                many[name].append(run())
        ask("quit")
    finally:
        if worker.poll() is None:
            worker.stdin.close()
            try:
                worker.wait(10)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
    rows = []
    print(f"  niquests {version}; {rounds} rounds, alternating; µs medians")
    for label, data in (("first request", first), (f"{connections} new connections", many)):
        ours, theirs = statistics.median(data["staplecheck"]), statistics.median(data["niquests"])
        ratio = ours / theirs
        low, high = bootstrap([data["staplecheck"], data["niquests"]], lambda a, b: a / b)
        print(
            f"  {label:20} staplecheck {ours / 1e3:9.0f}   niquests {theirs / 1e3:9.0f}   "
            f"ratio {ratio:.3f}x [{low:.3f}-{high:.3f}]"
        )
        rows.append(
            (
                f"4. {label}: staplecheck / niquests",
                f"{ratio:.3f}× [{low:.3f}-{high:.3f}]",
                f"≤ 1 {verdict(ratio, 1.0)}",
            )
        )
    return rows


# --- 5. CRL ---------------------------------------------------------------------------------


def part_crl(rounds: int, calls: int) -> list[tuple[str, str, str]]:
    now = datetime.datetime.now(datetime.timezone.utc)
    issuer = CA(name="bench_revocation CRL CA")
    crl = issuer.crl(range(1, CRL_ENTRIES + 1), reason="keyCompromise")
    der = serialization.Encoding.DER
    issuer_der = issuer.cert.public_bytes(der)
    settings = {
        "clock_skew": datetime.timedelta(minutes=5),
        "default_lifetime": datetime.timedelta(days=1),
        "max_age": datetime.timedelta(days=10),
    }
    fetched: list[float] = []
    judged: list[float] = []
    index: object = None
    lookups: dict[str, float] = {}
    with CRLServer({"/ca.crl": crl}) as server:
        url = server.url("/ca.crl")
        fine = issuer.issue_cert("fine.example", crl_url=url)
        listed = issuer.issue_cert("listed.example", serial_number=CRL_ENTRIES // 2, crl_url=url)
        for _ in range(rounds):
            start = time.perf_counter()
            body = fetch_crl(url, deadline=time.monotonic() + 10, timeout=10)
            middle = time.perf_counter()
            cert = x509.load_der_x509_certificate(issuer_der)
            index = judge_crl(body, cert, issuer_der=issuer_der, now=now, **settings)
            end = time.perf_counter()
            check(isinstance(index, CRLIndex), f"the CRL was refused: {index!r}")
            fetched.append(middle - start)
            judged.append(end - middle)
        assert isinstance(index, CRLIndex)
        for name, leaf in (("not listed", fine), ("listed", listed)):
            data = leaf.cert.public_bytes(der)
            expected = StapleStatus.GOOD if leaf is fine else StapleStatus.REVOKED
            held = x509.load_der_x509_certificate(data)
            check(crl_verdict(index, held, now=now).status is expected, f"crl {name}")
            lookups[f"{name}, the engine's certificate"] = _per_call(
                calls, lambda held=held: [held] * calls, lambda c: crl_verdict(index, c, now=now)
            )
            lookups[f"{name}, certificate loaded per call"] = _per_call(
                calls,
                lambda data=data: [x509.load_der_x509_certificate(data) for _ in range(calls)],
                lambda c: crl_verdict(index, c, now=now),
            )
        # The engine, per connection, once the CRL is fetched and judged: plan (memo),
        # the judged CRL's window, the lookup, the verdict and its log.
        checker = RevocationChecker(MemoryStore())
        policy = Policy(fallback=("crl",))
        chain = [fine.cert.public_bytes(der), issuer_der]
        first = checker.check(chain, policy, MISSING)
        check(first.source == "crl" and first.accepted, f"engine CRL: {first!r}"[:200])
        result = checker.check(chain, policy, MISSING)
        check(result.source == "cache" and result.accepted, f"engine CRL: {result!r}"[:200])
        engine = _per_call(
            calls,
            lambda: [[bytes(bytearray(d)) for d in chain] for _ in range(calls)],
            lambda c: checker.check(c, policy, MISSING),
        )
        check(server.requests == rounds + 1, "CRL: fetched once by the engine")
    total = [f + j for f, j in zip(fetched, judged, strict=True)]
    worst = max(v for k, v in lookups.items() if "engine's" in k)
    print(f"\n5. CRL of {CRL_ENTRIES} entries, {len(crl)} bytes, {rounds} rounds (medians)")
    print(f"  fetch (loopback CRL server):      {statistics.median(fetched) * 1e3:8.1f} ms")
    print(f"  judge_crl (parse, verify, index): {statistics.median(judged) * 1e3:8.1f} ms")
    print(f"  fetch + judge:                    {statistics.median(total) * 1e3:8.1f} ms")
    for name, micros in lookups.items():
        print(f"  crl_verdict, {name:38} {micros:6.2f} µs")
    print(f"  RevocationChecker.check per connection, CRL known: {engine:6.2f} µs")
    return [
        (
            f"5. CRL {CRL_ENTRIES:,} entries: fetch + parse",
            f"{statistics.median(total) * 1e3:.0f} ms ({len(crl) / 1e6:.1f} MB)",
            "reported",
        ),
        (
            "5. CRL lookup per connection",
            f"{worst:.2f} µs (whole check {engine:.1f} µs)",
            f"≤ {CRL_LOOKUP_TARGET_US} µs {verdict(worst, CRL_LOOKUP_TARGET_US)}",
        ),
    ]


def _per_call(calls: int, make: Callable[[], list[Any]], run: Callable[[Any], object]) -> float:
    """µs per call of ``run``: the median of 7 batches over arguments ``make`` built
    (outside the timed region), the garbage collector off."""
    batches = []
    for _ in range(7):
        arguments = make()
        enabled = gc.isenabled()
        gc.disable()
        try:
            start = time.perf_counter()
            for argument in arguments:
                run(argument)
            batches.append((time.perf_counter() - start) / len(arguments) * 1e6)
        finally:
            if enabled:
                gc.enable()
    return statistics.median(batches)


# --- the run --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run (about 10 s)")
    parser.add_argument(
        "--parts", default="1,2,3,4,5", help="which parts to run (comma-separated numbers)"
    )
    parser.add_argument(
        "--in-process-responder",
        action="store_true",
        help="run the OCSP responder in this process (default: a process of its own)",
    )
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))
    quick = args.quick
    openssl = OpenSSL.SSL.OpenSSL_version(OpenSSL.SSL.OPENSSL_VERSION).decode()
    print(
        f"staplecheck {staplecheck.__version__}, cryptography {cryptography.__version__}, "
        f"pyOpenSSL {OpenSSL.__version__} ({openssl}), "
        f"Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    rows: list[tuple[str, str, str]] = []
    started = time.monotonic()
    with Bench(with_redis="1" in parts, in_process=args.in_process_responder) as bench:
        if "1" in parts:
            rows += part_hit(bench, 60 if quick else 3000, 2 if quick else 40)
        if "2" in parts:
            rows += part_cold(bench, 60 if quick else 1500, 2 if quick else 25)
        if "3" in parts:
            rows += part_threads(bench, 2 if quick else 20)
        if "4" in parts:
            rows += part_niquests(bench, 3 if quick else 30, 10 if quick else 100)
    if "5" in parts:
        rows += part_crl(1 if quick else 8, 1000 if quick else 5000)
    print(f"\nSummary ({time.monotonic() - started:.0f} s, load average {os.getloadavg()[0]:.1f})")
    print("| measure | result | target |")
    print("| --- | --- | --- |")
    for row in rows:
        print(f"| {' | '.join(row)} |")
    if FAILED:
        print(f"\n{len(FAILED)} checks failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
