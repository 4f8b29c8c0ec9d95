"""Does a long-lived StapleAdapter session leak memory over many new connections?

Ten in-process stapling servers on 127.0.0.1 (good, revoked, unknown, missing, and
missing on a must-staple certificate, each in TLS 1.2 and 1.3) share one CA; one
``requests.Session`` with ``StapleAdapter("soft-fail")`` is used by 8 threads. Every
request sends ``Connection: close``, so every request is a new TCP connection and a
full TLS handshake with its own staple verdict (``tests/loadfarm.py``).

After a warm-up (default 1,000 connections), the script makes the measured
connections (default 10,000) in steps of 1,000. After each step it collects garbage
and reads the client process's resident set size (``VmRSS`` in /proc/self/status),
the number of Python objects the garbage collector tracks, and the server process's
RSS. By default the servers run in a child process, so the client's figures
are staplecheck's, requests' and urllib3's alone; ``--servers same`` runs them in the
client's process, as ``tests/test_load.py`` does, and then both are counted.

Resident memory also grows with glibc's per-thread malloc arenas (up to 8 per core,
each fragmenting on its own) when many threads allocate: the servers start a thread
per connection. Run with ``MALLOC_ARENA_MAX=2`` to tell fragmentation from a leak.

Every outcome is checked against the server it went to (status, serial number,
host, port, body) and each server's own counters against what the clients saw; the
script exits 1 if any check fails. The memory figures are a report, judged against
the target "growth <= 20 MiB over 10,000 connections" but never failing the run.

    python benchmarks/load_memory.py                  # 1,000 warm-up + 10,000 (about 30-40 s)
    python benchmarks/load_memory.py --servers same   # servers in the client's process
    MALLOC_ARENA_MAX=2 python benchmarks/load_memory.py
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import OpenSSL  # noqa: E402
import requests  # noqa: E402

import staplecheck  # noqa: E402
from staplecheck import SHARED_CACHE, StapleAdapter  # noqa: E402
from staplecheck.tls._pyopenssl import _DEFAULT_LOG  # noqa: E402
from tests.loadfarm import Farm, Tally, object_count, rss_mb  # noqa: E402

TARGET_MIB = 20.0
"""Growth target over 10,000 connections (scaled for other counts)."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--warm-up", type=int, default=1_000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--step", type=int, default=1_000)
    parser.add_argument("--seconds", type=float, default=600.0, help="stop after this long")
    parser.add_argument(
        "--servers",
        choices=["child", "same"],
        default="child",
        help="run the servers in a child process (default) or in this one",
    )
    args = parser.parse_args()

    print(
        f"staplecheck {staplecheck.__version__} ({Path(staplecheck.__file__).parent}), "
        f"Python {platform.python_version()}, pyOpenSSL {OpenSSL.__version__} "
        f"({OpenSSL.SSL.OpenSSL_version(OpenSSL.SSL.OPENSSL_VERSION).decode()}), "
        f"requests {requests.__version__}"
    )
    failures: list[str] = []
    in_child = args.servers == "child"
    with (
        tempfile.TemporaryDirectory() as directory,
        Farm(directory, in_child=in_child) as farm,
    ):
        server_rss = (lambda: rss_mb(farm.child_pid)) if in_child else (lambda: 0.0)
        session = requests.Session()
        session.trust_env = False
        adapter = StapleAdapter("soft-fail")
        session.mount("https://", adapter)
        where = "in a child process" if in_child else "in this process"
        print(
            f"{len(farm.targets)} servers ({where}), {args.threads} client threads, one session; "
            f"warm-up {args.warm_up}, then {args.connections} new connections; "
            f"MALLOC_ARENA_MAX={os.environ.get('MALLOC_ARENA_MAX', 'unset')}"
        )
        start = time.monotonic()
        deadline = start + args.seconds
        rss_start = rss_mb()
        warm = farm.run(session, args.warm_up, threads=args.threads, seconds=args.seconds)
        failures += _failures("warm-up", warm)
        rss_before, objects_before = rss_mb(), object_count()
        servers_before = server_rss()
        print(f"client RSS at start {rss_start:.1f} MiB; after warm-up {rss_before:.1f} MiB\n")
        print(
            f"{'connections':>11} {'RSS MiB':>8} {'step':>7} {'objects':>8} {'conn/s':>7}"
            f"{'  server RSS' if in_child else ''}"
        )
        samples = [(0, rss_before)]
        done, previous, step = 0, rss_before, 0
        while done < args.connections and time.monotonic() < deadline:
            count = min(args.step, args.connections - done)
            step += 1
            tally = farm.run(
                session,
                count,
                threads=args.threads,
                seconds=deadline - time.monotonic(),
                seed=step,
            )
            failures += _failures(f"step {step}", tally)
            done += tally.connections
            rss, objects = rss_mb(), object_count()
            samples.append((done, rss))
            row = f"{done:>11} {rss:>8.1f} {rss - previous:>+7.2f} {objects:>8} {tally.rate:>7.0f}"
            print(row + (f" {server_rss():>11.1f}" if in_child else ""))
            previous = rss
        rss_after, objects_after = rss_mb(), object_count()
        servers_after = server_rss()
        seconds = time.monotonic() - start
        session.close()

    growth = rss_after - rss_before
    per_1000 = growth / done * 1000 if done else 0.0
    half = samples[len(samples) // 2 :]
    slope = _slope(half) * 1000
    target = TARGET_MIB * done / 10_000
    print()
    print(f"connections measured:   {done} (+{args.warm_up} warm-up) in {seconds:.1f} s")
    print(f"misattributed outcomes: {sum(1 for f in failures if 'server (' in f)}")
    print(f"client RSS before/after: {rss_before:.1f} / {rss_after:.1f} MiB")
    if in_child:
        print(f"server RSS before/after: {servers_before:.1f} / {servers_after:.1f} MiB")
    print(f"RSS growth:             {growth:+.2f} MiB, {per_1000:+.3f} MiB per 1000 connections")
    print(f"second-half slope:      {slope:+.3f} MiB per 1000 connections (least squares)")
    print(f"Python objects:         {objects_before} -> {objects_after}")
    print(
        f"staplecheck state:      evidence cache {len(SHARED_CACHE.evidence)}, certificate "
        f"cache {len(SHARED_CACHE.certificates)}, pyOpenSSL contexts "
        f"{len(adapter.ssl_context._contexts)}, log rate-limit entries {len(_DEFAULT_LOG._last)}"
    )
    verdict = "met" if growth <= target else "MISSED"
    print(f"target:                 growth <= {target:.1f} MiB over {done}: {verdict}")
    for failure in failures[:20]:
        print("FAILED:", failure)
    return 1 if failures else 0


def _failures(label: str, tally: Tally) -> list[str]:
    return [f"{label}: {problem}" for problem in tally.wrong + tally.server_mismatches]


def _slope(points: list[tuple[int, float]]) -> float:
    """Least-squares slope of RSS (MiB) against connections."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((x - mean_x) ** 2 for x, _ in points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / var if var else 0.0


if __name__ == "__main__":
    sys.exit(main())
