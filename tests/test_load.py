"""Load: thousands of new connections from many threads through one StapleAdapter session.

Ten in-process stapling servers (good, revoked, unknown, missing, and missing on a
must-staple certificate, each in TLS 1.2 and 1.3; see ``tests/loadfarm.py``) share one
CA and one intermediate, so only the serial number, the port and the body tell their
verdicts apart. Every request sends ``Connection: close``: each one is a new
connection with a full handshake and its own verdict.

- Attribution: 8 threads, 3,000 connections, threads switching every 10 µs, servers in
  this process; not one verdict, error or body may belong to another server, and each
  server's own counters must match what the clients saw.
- Memory: the client in a process of its own (pytest's process keeps log records), the
  servers in a child of it, so that the measured memory is the client's. After a
  warm-up of 1,000 connections, 3,000 more may not grow its resident memory by more
  than 10 MiB nor its Python objects by more than 1,000, and staplecheck's own state
  (caches, per-configuration contexts, log rate limit) stays within its bounds. The
  10,000-connection measurement is ``benchmarks/load_memory.py``;
  docs/security.md has its figures.

Both loops are bounded in count and in time (45 s each; they take about 8 s each).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from staplecheck import StapleAdapter
from tests.loadfarm import Farm, measure_client

THREADS = 8
CONNECTIONS = 3000
WARM_UP = 1000
MEASURED = 3000
RSS_BOUND_MB = 10.0
"""Measured client growth over these 3,000 connections: 1.9-6.0 MiB, the allocator
settling (glibc's per-thread arenas), not a leak: ``benchmarks/load_memory.py`` shows
the client flat after that (+2.7 MiB over 30,000 connections, +0.03 MiB per 1,000 in
the second half). 10 MiB is 3.4 KiB per connection: leaking an OpenSSL connection
(the SSL object and its buffers, tens of KiB) per connection, or keeping every
handshake's certificates and verdict, exceeds it. Finer leaks are the benchmark's."""
OBJECTS_BOUND = 1000
"""Python objects after a full collection vary by tens between samples; keeping one
object per connection would add 3,000."""
SECONDS = 45.0


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    with Farm(tmp_path_factory.mktemp("load")) as running:
        yield running


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        s.trust_env = False
        s.mount("https://", StapleAdapter("soft-fail"))
        yield s


@pytest.mark.usefixtures("frequent_thread_switches")
def test_thousands_of_new_connections_from_many_threads_are_never_misattributed(
    farm: Farm, session: requests.Session
) -> None:
    tally = farm.run(session, CONNECTIONS, threads=THREADS, seconds=SECONDS, seed=1)
    assert tally.wrong == []
    assert tally.server_mismatches == []
    # Bounded in time too: on a machine too slow for all of them, at least a third.
    assert tally.connections >= CONNECTIONS // 3, tally
    assert tally.connections == sum(t.sent for t in farm.targets)
    assert all(t.sent > 0 for t in farm.targets)  # every server had its share
    print(
        f"\n{tally.connections} connections from {THREADS} threads to {len(farm.targets)} "
        f"servers in {tally.seconds:.1f} s ({tally.rate:.0f}/s), 0 misattributed"
    )


def test_memory_stays_bounded_over_thousands_of_new_connections(
    tmp_path: Path,
) -> None:
    memory = measure_client(tmp_path, WARM_UP, MEASURED, threads=THREADS, seconds=SECONDS)
    tally = memory.measured
    assert memory.warm_up.wrong == []
    assert tally.wrong == []
    assert tally.server_mismatches == []
    assert tally.connections >= MEASURED // 3, tally
    print(
        f"\nRSS {memory.rss_before:.1f} -> {memory.rss_after:.1f} MiB (+{memory.growth:.2f}) "
        f"over {tally.connections} connections after {WARM_UP} warm-up; per 1000: "
        f"{[f'{s:.1f}' for s in memory.samples]}; "
        f"objects {memory.objects_before} -> {memory.objects_after}; {memory.state}"
    )
    assert memory.growth < RSS_BOUND_MB
    assert memory.objects_after - memory.objects_before < OBJECTS_BOUND
    # staplecheck's own state: bounded by design, whatever the number of connections.
    for name, (size, bound) in memory.state.items():
        assert size <= bound, name


def test_the_memory_measurement_sees_a_leak(tmp_path: Path) -> None:
    """The same measurement with a client that keeps every accepted response (about
    400 per 1,000 connections) must break the object bound: the test above can fail."""
    memory = measure_client(
        tmp_path, 100, 1000, threads=THREADS, seconds=SECONDS, keep_responses=True
    )
    assert memory.measured.wrong == []
    assert memory.measured.connections == 1000
    assert memory.objects_after - memory.objects_before > OBJECTS_BOUND, memory
