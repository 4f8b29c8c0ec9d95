"""What do staplecheck's httpx transports cost, against plain httpx (issue 9)?

The PKI of ``bench_https.py`` (ECDSA P-256 root, intermediate, a leaf for
``localhost``, a good staple from the intermediate) served by nginx on 127.0.0.1 with
``ssl_stapling_file``, HTTP/2 on (ALPN ``h2`` and ``http/1.1``), TLS 1.3 only, session
tickets and cache off (every new connection is a full handshake). Clients, all with
``trust_env=False`` and the same root CA:

- plain: ``httpx.Client`` / ``httpx.AsyncClient`` with a stdlib context trusting the
  root (``verify=ssl.create_default_context(cafile=root)``);
- soft-fail: ``httpx.Client(transport=StapleTransport("soft-fail", verify=root))``
  (``AsyncStapleTransport`` for async);
- off: ``StapleTransport("off", verify=root)`` (pyOpenSSL, no staple asked).

Five measures, each a ratio against a baseline measured in the same run, the clients
interleaved (the first one rotating every round) so that the machine's noise falls on
all of them alike; the judged figure is the ratio of medians, with a bootstrap 95%
interval (rounds resampled whole):

1. new connection per request (``Connection: close``), sync, soft-fail / plain <= 1.05;
2. keep-alive requests on one warm HTTP/1.1 connection, soft-fail / plain <= 1.02
   (full runs add, reported, the transport over memory BIOs as it was before the sync
   transport drove the socket itself);
3. new connection per request, soft-fail / off (same transport class) <= 1.03;
4. async: 200 concurrent requests, each on a new connection, throughput of
   ``AsyncStapleTransport`` / plain ``httpx.AsyncClient`` >= 0.9 (asyncio; trio too,
   reported);
5. HTTP/2: batches of 50 concurrent requests multiplexed on one warm connection
   (async), time per batch soft-fail / plain <= 1.02.

Each row also shows the CPU ratio of medians (the client thread's CPU for 1-3, the
process's for 4-5), not judged: on a shared machine the wall clock of a loopback
request is mostly waiting for nginx and for a CPU.

Every response is checked outside the timed region: 200 ``ok``, the HTTP version
asked for, ``extensions["staple"]`` a good staple (soft-fail), ``None`` (off) or
absent (plain). After the run nginx's access log proves the connection pattern: one
request per connection in 1, 3 and 4 (full TLS 1.3 handshakes, none resumed), one
connection per client in 2 and 5 (HTTP/2.0 in 5), the same request counts per client,
and no connection that carried no request (no gap in nginx's serial numbers). A
failed check exits 1; a missed target does not (it is a report).

    python benchmarks/bench_httpx.py            # ~110 s (more on a loaded machine)
    python benchmarks/bench_httpx.py --quick    # ~20 s (40 s at load average 15)
    python benchmarks/bench_httpx.py --only 2   # one measure (repeatable: --only 2 --only 5)
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
for entry in (str(ROOT), str(ROOT / "benchmarks")):
    if entry not in sys.path:
        sys.path.insert(0, entry)

import anyio  # noqa: E402
import httpcore  # noqa: E402
import httpx  # noqa: E402
import OpenSSL  # noqa: E402
from bench_https import build_pki, ratio_interval, source_state  # noqa: E402

import staplecheck  # noqa: E402
from staplecheck import StapleResult, StapleStatus  # noqa: E402
from staplecheck.httpx import AsyncStapleTransport, StapleTransport  # noqa: E402
from tests.realservers import Nginx  # noqa: E402

NEW_TARGET = 1.05
KEPT_TARGET = 1.02
OFF_TARGET = 1.03
ASYNC_TARGET = 0.90
H2_TARGET = 1.02

MEMORY_BIO = "memory-bio"
"""Measure 2's third client (full runs): soft-fail as before the socket-driven stream."""
CONCURRENT = 200
"""Measure 4: requests in flight at once, each on a new connection."""
STREAMS = 50
"""Measure 5: requests multiplexed at once on the one HTTP/2 connection."""


# --- the server ----------------------------------------------------------------------------


class BenchNginx(Nginx):
    """nginx with HTTP/2, room for 200 concurrent connections, unlimited keep-alive and
    an access log naming path, connection serial, request number on the connection, TLS
    version, session reuse and HTTP version."""

    def config(self, port: int) -> str:
        text = super().config(port)
        log = self.directory / "access.log"
        replacements = {
            " ssl;": " ssl http2;",
            "worker_connections 256;": "worker_connections 2048;",
            "access_log off;\n": (
                "log_format bench '$request_uri $connection $connection_requests "
                "$ssl_protocol $ssl_session_reused $server_protocol';\n"
                f"    access_log {log} bench;\n"
                "    keepalive_requests 10000000;\n"
                "    keepalive_timeout 600s;\n"
            ),
        }
        for old, new in replacements.items():
            if old not in text:
                raise RuntimeError(f"tests.realservers.Nginx.config changed: no {old!r}")
            text = text.replace(old, new, 1)
        return text

    def access_log(self) -> list[list[str]]:
        return [line.split() for line in (self.directory / "access.log").read_text().splitlines()]


# --- checks --------------------------------------------------------------------------------

FAILED: list[str] = []


def check(condition: bool, message: str) -> None:
    if not condition:
        FAILED.append(message)
        print(f"CHECK FAILED: {message}", flush=True)


def check_response(kind: str, response: httpx.Response, http_version: str) -> None:
    """Status, body, HTTP version and the staple verdict the client kind must give."""
    ok = (
        response.status_code == 200
        and response.content == b"ok\n"
        and response.http_version == http_version
    )
    check(ok, f"{kind}: {response.status_code} {response.http_version} {response.content!r}")
    staple = response.extensions.get("staple", "absent")
    if kind == "plain":
        check(staple == "absent", f"plain httpx: a staple extension {staple!r}")
    elif kind == "off":
        check(staple is None, f"off: expected no staple verdict, got {staple!r}")
    else:
        good = isinstance(staple, StapleResult) and staple.status is StapleStatus.GOOD
        check(good, f"{kind}: expected a good staple, got {staple!r}")


# --- sync: measures 1-3 --------------------------------------------------------------------


@dataclass
class SyncClient:
    kind: str
    client: httpx.Client
    url: str
    headers: dict[str, str]
    samples: list[int] = field(default_factory=list)
    cpu: list[int] = field(default_factory=list)
    count: int = 0


def plain_context(root: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=root)


def sync_clients(
    server: BenchNginx, root: str, phase: str, kinds: tuple[str, ...], new: bool
) -> list[SyncClient]:
    clients = []
    for kind in kinds:
        if kind == "plain":
            client = httpx.Client(verify=plain_context(root), trust_env=False)
        elif kind == MEMORY_BIO:
            # The sync transport as it was before it drove the socket: OpenSSL over
            # memory BIOs, which the transport keeps for TCP backends not its own.
            transport = StapleTransport("soft-fail", verify=root)
            transport.network_backend.own_tcp = False
            client = httpx.Client(transport=transport)
        else:
            client = httpx.Client(transport=StapleTransport(kind, verify=root))
        headers = {"Connection": "close"} if new else {}
        url = server.url("localhost", f"/{phase}/{kind}")
        clients.append(SyncClient(kind, client, url, headers))
    return clients


def sync_round_robin(
    clients: list[SyncClient], rounds: int, warmup: int, seconds: float, least: int
) -> int:
    """One request per client per round, the first client rotating; returns timed rounds
    (stops at whole rounds once ``seconds`` have passed, ``least`` rounds at least)."""
    deadline = time.monotonic() + seconds
    done = 0
    for number in range(warmup + rounds):
        shift = number % len(clients)
        for entry in clients[shift:] + clients[:shift]:
            cpu_start = time.thread_time_ns()
            start = time.perf_counter_ns()
            response = entry.client.get(entry.url, headers=entry.headers, timeout=10)
            elapsed = time.perf_counter_ns() - start
            cpu = time.thread_time_ns() - cpu_start
            check_response(entry.kind, response, "HTTP/1.1")
            entry.count += 1
            if number >= warmup:
                entry.samples.append(elapsed)
                entry.cpu.append(cpu)
        if number >= warmup:
            done += 1
            if done >= least and time.monotonic() > deadline:
                break
    for entry in clients:
        entry.client.close()
    return done


# --- async: measures 4-5 -------------------------------------------------------------------


@dataclass
class AsyncClient:
    kind: str
    client: httpx.AsyncClient
    url: str
    headers: dict[str, str]
    http_version: str
    batch: int
    samples: list[int] = field(default_factory=list)
    cpu: list[int] = field(default_factory=list)
    count: int = 0


def async_client(root: str, kind: str, *, http2: bool, connections: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    if kind == "plain":
        return httpx.AsyncClient(
            verify=plain_context(root), http2=http2, limits=limits, trust_env=False
        )
    transport = AsyncStapleTransport(kind, verify=root, http1=not http2, http2=http2, limits=limits)
    return httpx.AsyncClient(transport=transport)


async def gather(tasks: list[Callable[[], Awaitable[httpx.Response]]]) -> list[httpx.Response]:
    """Run the calls concurrently (AnyIO: asyncio or trio); their responses in order."""
    results: list[httpx.Response | None] = [None] * len(tasks)

    async def one(index: int) -> None:
        results[index] = await tasks[index]()

    async with anyio.create_task_group() as group:
        for index in range(len(tasks)):
            group.start_soon(one, index)
    return [response for response in results if response is not None]


async def async_batch(entry: AsyncClient) -> tuple[int, int]:
    """``entry.batch`` concurrent requests; returns the nanoseconds until the last
    response is in (bodies read), and the process's CPU time meanwhile (worker threads
    included)."""

    def call() -> Awaitable[httpx.Response]:
        return entry.client.get(entry.url, headers=entry.headers, timeout=30)

    cpu_start = time.process_time_ns()
    start = time.perf_counter_ns()
    responses = await gather([call] * entry.batch)
    elapsed = time.perf_counter_ns() - start
    cpu = time.process_time_ns() - cpu_start
    check(len(responses) == entry.batch, f"{entry.kind}: {len(responses)} responses")
    for response in responses:
        check_response(entry.kind, response, entry.http_version)
    entry.count += len(responses)
    return elapsed, cpu


async def async_round_robin(
    clients: list[AsyncClient], rounds: int, warmup: int, seconds: float, least: int
) -> int:
    deadline = time.monotonic() + seconds
    done = 0
    try:
        for number in range(warmup + rounds):
            shift = number % len(clients)
            for entry in clients[shift:] + clients[:shift]:
                elapsed, cpu = await async_batch(entry)
                if number >= warmup:
                    entry.samples.append(elapsed)
                    entry.cpu.append(cpu)
            if number >= warmup:
                done += 1
                if done >= least and time.monotonic() > deadline:
                    break
    finally:
        for entry in clients:
            await entry.client.aclose()
    return done


def run_async(
    server: BenchNginx,
    root: str,
    phase: str,
    backend: str,
    *,
    http2: bool,
    rounds: int,
    warmup: int,
    seconds: float,
    least: int,
) -> list[AsyncClient]:
    clients = []
    for kind in ("plain", "soft-fail"):
        connections = 1 if http2 else CONCURRENT
        client = async_client(root, kind, http2=http2, connections=connections)
        headers = {} if http2 else {"Connection": "close"}
        url = server.url("localhost", f"/{phase}/{kind}")
        version = "HTTP/2" if http2 else "HTTP/1.1"
        batch = STREAMS if http2 else CONCURRENT
        clients.append(AsyncClient(kind, client, url, headers, version, batch))

    async def main() -> None:
        await async_round_robin(clients, rounds, warmup, seconds, least)

    anyio.run(main, backend=backend)
    return clients


# --- the access log ------------------------------------------------------------------------


def check_access_log(lines: list[list[str]], phases: dict[str, tuple[str, list[Any]]]) -> list[str]:
    """What nginx saw per client. ``phases``: name -> (pattern, clients), pattern
    ``"new"`` (one request per connection) or ``"one"`` (one connection in all)."""
    by_path: dict[str, list[list[str]]] = {}
    for fields in lines:
        if len(fields) != 6:
            check(False, f"unexpected access log line {fields}")
            continue
        by_path.setdefault(fields[0], []).append(fields)
    summary = []
    for phase, (pattern, clients) in phases.items():
        counts = set()
        for client in clients:
            seen = by_path.get(urlsplit(client.url).path, [])
            name = f"{phase} {client.kind}"
            check(len(seen) == client.count, f"{name}: {client.count} requests, {len(seen)} logged")
            full = all(f[3] == "TLSv1.3" and f[4] == "." for f in seen)
            check(full, f"{name}: a request without a full TLS 1.3 handshake")
            versions = {f[5] for f in seen}
            connections = {f[1] for f in seen}
            if pattern == "new":
                single = len(connections) == len(seen) and all(f[2] == "1" for f in seen)
                check(single, f"{name}: a connection served several requests")
            else:
                check(len(connections) == 1, f"{name}: {len(connections)} connections")
            counts.add(len(seen))
            summary.append(
                f"{name:<22} {len(seen):6} requests on {len(connections):5} connection(s), "
                f"{'/'.join(sorted(versions))}"
            )
        check(len(counts) <= 1, f"{phase}: the clients made different numbers of requests")
    serials = sorted({int(fields[1]) for fields in lines if len(fields) == 6})
    if serials:
        gapless = serials == list(range(serials[0], serials[0] + len(serials)))
        check(gapless, "nginx accepted connections that carried no request")
        summary.append(f"connection serial numbers {serials[0]}-{serials[-1]}, no gap")
    return summary


# --- the report ----------------------------------------------------------------------------


def interval(top: list[int], bottom: list[int], args: argparse.Namespace) -> tuple[float, float]:
    return ratio_interval(top, bottom, args.resamples, args.seed)


def iqr_us(samples: list[int]) -> str:
    q1, _, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    return f"{q1 / 1000:.0f}-{q3 / 1000:.0f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (~15 s)")
    parser.add_argument("--only", type=int, action="append", choices=range(1, 6))
    parser.add_argument("--seconds", type=float, help="time budget (default 100, quick 12)")
    parser.add_argument("--no-trio", action="store_true", help="skip the trio run of 4")
    parser.add_argument("--resamples", type=int, default=200, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=20261206, help="bootstrap seed")
    args = parser.parse_args(argv)
    budget = args.seconds or (12.0 if args.quick else 100.0)
    only = set(args.only or range(1, 6))
    trio = not args.no_trio and importlib.util.find_spec("trio") is not None and 4 in only
    # Shares of the budget: new connections (1, 3), keep-alive (2), async (4), HTTP/2 (5).
    shares = {"new": 0.25, "keep": 0.15, "asyncio": 0.3, "trio": 0.15, "h2": 0.15}
    if not trio:
        shares["asyncio"] += shares.pop("trio")
    warm = 10 if args.quick else 30
    least = 10 if args.quick else 30  # sync rounds at least (async: least // 5 batches)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="bench-httpx-") as tmp:
        setup = build_pki(Path(tmp))
        root = setup.root
        server = BenchNginx(setup.chain, setup.key, setup.staple, tls_versions=("TLSv1.3",))
        phases: dict[str, tuple[str, list[Any]]] = {}
        with server:
            if only & {1, 3}:
                kinds = ("plain", "soft-fail", "off") if 3 in only else ("plain", "soft-fail")
                if 1 not in only:
                    kinds = ("soft-fail", "off")
                new = sync_clients(server, root, "new", kinds, new=True)
                sync_round_robin(new, 100000, warm, shares["new"] * budget, least)
                phases["new"] = ("new", new)
            if 2 in only:
                kinds = ("plain", "soft-fail") if args.quick else ("plain", "soft-fail", MEMORY_BIO)
                kept = sync_clients(server, root, "keep", kinds, new=False)
                sync_round_robin(kept, 1000000, warm * 3, shares["keep"] * budget, least)
                phases["keep"] = ("one", kept)
            if 4 in only:
                for backend in ("asyncio", "trio") if trio else ("asyncio",):
                    clients = run_async(
                        server,
                        root,
                        backend,
                        backend,
                        http2=False,
                        rounds=1000,
                        warmup=0 if args.quick else 1,
                        seconds=shares[backend] * budget,
                        least=least // 5,
                    )
                    phases[backend] = ("new", clients)
            if 5 in only:
                h2 = run_async(
                    server,
                    root,
                    "h2",
                    "asyncio",
                    http2=True,
                    rounds=100000,
                    warmup=warm,
                    seconds=shares["h2"] * budget,
                    least=least,
                )
                phases["h2"] = ("one", h2)
            log_summary = check_access_log(server.access_log(), phases)
    seconds = time.perf_counter() - started

    print(
        f"\nstaplecheck {staplecheck.__version__} ({source_state()}), httpx {httpx.__version__}, "
        f"httpcore {httpcore.__version__}, anyio {version_of('anyio')}, h2 {version_of('h2')}, "
        f"trio {version_of('trio')}, pyOpenSSL {OpenSSL.__version__} "
        f"({OpenSSL.SSL.OpenSSL_version(OpenSSL.SSL.OPENSSL_VERSION).decode()}), "
        f"stdlib ssl ({ssl.OPENSSL_VERSION})"
    )
    print(
        f"Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs; "
        "nginx on 127.0.0.1 (HTTP/2 on), TLS 1.3, ECDSA P-256 chain; "
        f"{seconds:.0f} s; load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    )

    def judged(
        label: str,
        top: Any,
        bottom: Any,
        target: float,
        *,
        at_least: bool = False,
        extra: str = "",
        reported: bool = False,
    ) -> None:
        """A judged row: the wall-clock ratio of medians (a throughput ratio when
        ``at_least``), with its interval; the CPU ratio of medians is shown, not judged."""
        cpu = statistics.median(top.cpu) / statistics.median(bottom.cpu)
        top, bottom = top.samples, bottom.samples
        ratio = statistics.median(top) / statistics.median(bottom)
        low, high = interval(top, bottom, args)
        if at_least:  # a throughput: the inverse ratio of times
            ratio, low, high = 1 / ratio, 1 / high, 1 / low
            verdict = "PASS" if ratio >= target else "MISS"
            sign = ">="
        else:
            verdict = "PASS" if ratio <= target else "MISS"
            sign = "<="
        figure = f"{ratio:.3f}x [{low:.3f}-{high:.3f}] (CPU {cpu:.3f}x)"
        judgement = "reported" if reported else f"{sign} {target:.2f} {verdict}"
        rows.append((f"{label}{extra}", figure, judgement))

    if "new" in phases:
        clients = {c.kind: c for c in phases["new"][1]}
        print(f"\nnew connection per request ({len(clients['soft-fail'].samples)} rounds)")
        for c in clients.values():
            print(
                f"  {c.kind:<10} wall {statistics.median(c.samples) / 1000:7.0f} µs "
                f"(IQR {iqr_us(c.samples)}), client CPU {statistics.median(c.cpu) / 1000:7.0f} µs"
            )
        soft = clients["soft-fail"]
        if "plain" in clients:
            judged(
                "1. new connection, soft-fail / plain",
                soft,
                clients["plain"],
                NEW_TARGET,
                extra=f" ({median_pair(soft, clients['plain'])})",
            )
        if "off" in clients:
            judged(
                "3. new connection, soft-fail / off",
                soft,
                clients["off"],
                OFF_TARGET,
                extra=f" ({median_pair(soft, clients['off'])})",
            )
    if "keep" in phases:
        plain, soft, *memory = phases["keep"][1]
        print(f"\nkeep-alive ({len(soft.samples)} rounds)")
        for c in (plain, soft, *memory):
            print(
                f"  {c.kind:<10} wall {statistics.median(c.samples) / 1000:7.0f} µs "
                f"(IQR {iqr_us(c.samples)}), client CPU {statistics.median(c.cpu) / 1000:7.0f} µs"
            )
        judged(
            "2. keep-alive, soft-fail / plain",
            soft,
            plain,
            KEPT_TARGET,
            extra=f" ({median_pair(soft, plain)})",
        )
        for before in memory:
            judged(
                "2. keep-alive, soft-fail over memory BIOs (before the optimization) / plain",
                before,
                plain,
                KEPT_TARGET,
                extra=f" ({median_pair(before, plain)})",
                reported=True,
            )
    for backend in ("asyncio", "trio"):
        if backend in phases:
            plain, soft = phases[backend][1]
            rounds = len(soft.samples)
            print(f"\n{CONCURRENT} concurrent new connections, {backend} ({rounds} rounds)")
            for c in (plain, soft):
                per_second = CONCURRENT / (statistics.median(c.samples) / 1e9)
                print(
                    f"  {c.kind:<10} {statistics.median(c.samples) / 1e6:7.1f} ms per batch "
                    f"(IQR {iqr_us([s // 1000 for s in c.samples])} ms), "
                    f"{per_second:6.0f} requests/s"
                )
            judged(
                f"4. {CONCURRENT} concurrent new connections ({backend}): "
                "throughput soft-fail / plain",
                soft,
                plain,
                ASYNC_TARGET,
                at_least=True,
                extra=f" ({len(soft.samples)} rounds)",
            )
    if "h2" in phases:
        plain, soft = phases["h2"][1]
        rounds = len(soft.samples)
        print(f"\nHTTP/2, {STREAMS} concurrent streams on one connection ({rounds} rounds)")
        for c in (plain, soft):
            print(
                f"  {c.kind:<10} {statistics.median(c.samples) / 1000:7.0f} µs per batch "
                f"(IQR {iqr_us(c.samples)})"
            )
        judged(
            f"5. HTTP/2, {STREAMS} multiplexed requests on one connection, soft-fail / plain",
            soft,
            plain,
            H2_TARGET,
            extra=f" ({median_pair(soft, plain)})",
        )
    print("\nnginx access log:")
    for line in log_summary:
        print(f"  {line}")
    print("\n| measure | ratio of medians [95% interval] (CPU soft-fail / baseline) | target |")
    print("| --- | --- | --- |")
    for row in sorted(rows, key=lambda row: row[0][:2]):
        print(f"| {' | '.join(row)} |")
    if FAILED:
        print(f"\n{len(FAILED)} checks failed", file=sys.stderr)
        return 1
    return 0


def median_pair(top: Any, bottom: Any) -> str:
    return (
        f"{len(top.samples)} rounds; {statistics.median(top.samples) / 1000:.0f} / "
        f"{statistics.median(bottom.samples) / 1000:.0f} µs"
    )


def version_of(module: str) -> str:
    try:
        return version(module)
    except PackageNotFoundError:
        return "absent"


if __name__ == "__main__":
    sys.exit(main())
