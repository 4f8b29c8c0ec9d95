"""What does StapleAdapter cost per HTTPS request, against plain requests?

A test PKI (ECDSA P-256 root and intermediate, a leaf for ``localhost``), a good OCSP
staple, and nginx on 127.0.0.1 stapling it (``ssl_stapling on; ssl_stapling_file``),
TLS 1.3 only, no session resumption. Three clients, each a ``requests.Session`` passing
``verify=<root CA file>`` on every request:

- plain: the default ``HTTPAdapter`` (stdlib ``ssl``);
- soft-fail: ``StapleAdapter("soft-fail")`` (pyOpenSSL, asks for and checks the staple);
- off: ``StapleAdapter("off")`` (pyOpenSSL, asks for no staple).

Two phases, each interleaving its clients round-robin, one request per visit, with the
starting client rotating every round so each client runs first, second and third
equally often:

- new connection per request: every request sends ``Connection: close``; nginx closes
  the connection after answering, so the next request opens a new TCP connection and
  does a full TLS handshake, in every client;
- keep-alive: one warm connection per client, reused for every request.

Each request is timed on its own with ``time.perf_counter_ns`` (the client call, from
``session.get`` to the returned response, body read; the garbage collector stays on, as
in an application), and the client thread's CPU time is taken too. The report gives
the median per client and the ratio of medians, with a bootstrap 95% interval (rounds
resampled), judged against the targets:

- (a) new connection, soft-fail / plain <= 1.00;
- (b) keep-alive, soft-fail / plain <= 1.05;
- (c) new connection, soft-fail / off <= 1.03.

Outside the timed region every response is checked: status 200, body ``ok``, and
``response.staple`` a good result (soft-fail) or ``None`` (off). After the run nginx's
access log (one line per request: path, connection serial number, request number on
that connection, TLS version, session reuse) proves that every new-connection request
had a connection of its own with a full TLS 1.3 handshake, the same number in each
client, that each keep-alive client used one connection throughout, and that no
connection carried no request (nginx's connection serial numbers have no gap). It is a
report, not a test: it exits 0 when targets are missed, 1 when a check fails.

The client CPU ratio is printed because on a shared machine the wall clock of a
loopback request is mostly waiting for nginx and for a CPU; it is not judged.

    python benchmarks/bench_https.py           # timed phases capped at 90 s (~95 s in all)
    python benchmarks/bench_https.py --quick   # capped at 12 s (10-14 s in all)
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import OpenSSL  # noqa: E402
import requests  # noqa: E402
import urllib3  # noqa: E402

import staplecheck  # noqa: E402
from staplecheck import StapleAdapter, StapleResult, StapleStatus  # noqa: E402
from staplecheck.testing import CA  # noqa: E402
from tests.realservers import Nginx  # noqa: E402

NEW_TARGET = 1.00
"""(a) new connection per request, soft-fail / plain."""
KEPT_TARGET = 1.05
"""(b) keep-alive, soft-fail / plain."""
OFF_TARGET = 1.03
"""(c) new connection per request, soft-fail / off."""

CLIENTS = ("plain", "soft-fail", "off")
NEW_SHARE = 0.65
"""The new-connection phase's share of the time budget (the rest is keep-alive's)."""


# --- the server ----------------------------------------------------------------------------


class LoggingNginx(Nginx):
    """The colleague's nginx, plus an access log that proves what each request did.

    The log names the request path (one path per client), nginx's connection serial
    number, the request's number on its connection, the TLS version and whether the
    session was resumed. Keep-alive connections are allowed to serve every request of
    a run (nginx's default closes them after 1000 requests).
    """

    def config(self, port: int) -> str:
        text = super().config(port)
        log = self.directory / "access.log"
        replacement = (
            "log_format bench '$request_uri $connection $connection_requests "
            "$ssl_protocol $ssl_session_reused';\n"
            f"    access_log {log} bench;\n"
            "    keepalive_requests 10000000;\n"
            "    keepalive_timeout 600s;\n"
        )
        old = "access_log off;\n"
        if old not in text:
            raise RuntimeError("tests.realservers.Nginx.config changed: no 'access_log off;'")
        return text.replace(old, replacement, 1)

    def access_log(self) -> list[list[str]]:
        return [line.split() for line in (self.directory / "access.log").read_text().splitlines()]


@dataclass
class Setup:
    directory: Path
    chain: str
    key: str
    staple: str
    root: str


def build_pki(directory: Path) -> Setup:
    root = CA(key_type="ecdsa", name="bench_https root")
    intermediate = root.create_intermediate(key_type="ecdsa", name="bench_https intermediate")
    leaf = intermediate.issue_cert("localhost", key_type="ecdsa")
    chain, key = leaf.write(directory, "localhost")
    staple = directory / "staple.der"
    staple.write_bytes(intermediate.ocsp_response(leaf, "good"))
    root_path = root.write_trust(directory / "root.pem")
    return Setup(directory, chain, key, str(staple), root_path)


# --- the clients ---------------------------------------------------------------------------


@dataclass
class Client:
    name: str
    session: requests.Session
    url: str
    headers: dict[str, str]
    check_staple: Callable[[requests.Response], None]
    samples: list[int] = field(default_factory=list)
    cpu: list[int] = field(default_factory=list)
    count: int = 0
    """Requests made, warm-up included."""


def _expect_good(response: requests.Response) -> None:
    staple = getattr(response, "staple", None)
    if not isinstance(staple, StapleResult) or staple.status is not StapleStatus.GOOD:
        raise AssertionError(f"soft-fail: expected a good staple, got {staple!r}")


def _expect_none(response: requests.Response) -> None:
    staple = getattr(response, "staple", "absent")
    if staple is not None:
        raise AssertionError(f"off: expected response.staple None, got {staple!r}")


def _expect_plain(response: requests.Response) -> None:
    if hasattr(response, "staple"):
        raise AssertionError("plain requests: response has a staple attribute")


def make_clients(server: Nginx, phase: str, new_connection: bool) -> dict[str, Client]:
    clients = {}
    for name in CLIENTS:
        session = requests.Session()
        if name == "soft-fail":
            session.mount("https://", StapleAdapter("soft-fail"))
        elif name == "off":
            session.mount("https://", StapleAdapter("off"))
        check = {"plain": _expect_plain, "soft-fail": _expect_good, "off": _expect_none}[name]
        headers = {"Connection": "close"} if new_connection else {}
        url = server.url("localhost", f"/{phase}/{name}")
        clients[name] = Client(name, session, url, headers, check)
    return clients


def request(client: Client, root: str) -> tuple[int, int]:
    """One request, timed; checked after the clocks stop.

    Returns nanoseconds of wall time and of this thread's CPU time.
    """
    cpu_start = time.thread_time_ns()
    start = time.perf_counter_ns()
    response = client.session.get(client.url, headers=client.headers, verify=root, timeout=10)
    elapsed = time.perf_counter_ns() - start
    cpu = time.thread_time_ns() - cpu_start
    if response.status_code != 200 or response.content != b"ok\n":
        raise AssertionError(f"{client.name}: {response.status_code} {response.content!r}")
    client.check_staple(response)
    client.count += 1
    return elapsed, cpu


def run_phase(
    clients: dict[str, Client], root: str, rounds: int, warmup: int, deadline: float
) -> int:
    """Round-robin over the clients, the first client rotating; returns rounds timed.

    Stops early, with whole rounds only, once ``time.monotonic()`` passes ``deadline``.
    """
    order = list(clients.values())
    done = 0
    for round_number in range(warmup + rounds):
        shift = round_number % len(order)
        for client in order[shift:] + order[:shift]:
            elapsed, cpu = request(client, root)
            if round_number >= warmup:
                client.samples.append(elapsed)
                client.cpu.append(cpu)
        if round_number >= warmup:
            done += 1
            if done >= 50 and time.monotonic() > deadline:
                break
    return done


# --- proof from the server's side ----------------------------------------------------------


def check_access_log(
    lines: list[list[str]], new: dict[str, Client], kept: dict[str, Client]
) -> list[str]:
    """What nginx saw, per client; raises AssertionError if a request was not as meant."""
    by_path: dict[str, list[list[str]]] = {}
    for fields in lines:
        if len(fields) != 5:
            raise AssertionError(f"unexpected access log line {fields}")
        by_path.setdefault(fields[0], []).append(fields)
    summary = []
    for phase, clients in (("new", new), ("keep", kept)):
        counts = set()
        for client in clients.values():
            seen = by_path.get(urlsplit(client.url).path, [])
            if len(seen) != client.count:
                raise AssertionError(f"{client.name}: {client.count} requests, {len(seen)} logged")
            bad_tls = [f for f in seen if f[3] != "TLSv1.3" or f[4] != "."]
            if bad_tls:
                raise AssertionError(f"{client.name}: not a full TLS 1.3 handshake: {bad_tls[0]}")
            connections = {f[1] for f in seen}
            if phase == "new":
                reused = [f for f in seen if f[2] != "1"]
                if reused or len(connections) != len(seen):
                    raise AssertionError(f"{client.name}: a connection served several requests")
            elif len(connections) != 1:
                raise AssertionError(f"{client.name}: {len(connections)} keep-alive connections")
            counts.add(len(connections) if phase == "new" else len(seen))
            handshakes = "each a full" if phase == "new" else "one full"
            summary.append(
                f"{phase:>4} {client.name:<9}: {len(seen)} requests on "
                f"{len(connections)} connection(s), {handshakes} TLS 1.3 handshake"
            )
        if len(counts) != 1:
            raise AssertionError(f"{phase}: clients made different numbers of requests")
    # nginx numbers connections in order. A gap would be a connection that carried no
    # request (a retry, a second handshake): every connection must have served one.
    serials = sorted({int(fields[1]) for fields in lines})
    if serials != list(range(serials[0], serials[0] + len(serials))):
        raise AssertionError("nginx accepted connections that carried no request")
    summary.append(f"no other connections: serial numbers {serials[0]}-{serials[-1]}, no gap")
    return summary


# --- the report ----------------------------------------------------------------------------


def source_state() -> str:
    """The commit measured, and whether staplecheck/ had uncommitted changes."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "staplecheck"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "not a git checkout"
    return f"commit {commit}" + (", staplecheck/ with uncommitted changes" if dirty else "")


def median_us(samples: list[int]) -> float:
    return statistics.median(samples) / 1000


def ratio_interval(
    numerator: list[int], denominator: list[int], resamples: int, seed: int
) -> tuple[float, float]:
    """Bootstrap 95% interval of median(numerator) / median(denominator).

    Rounds are resampled whole, so the two samples of one round stay together.
    """
    rng = random.Random(seed)
    n = len(numerator)
    ratios = []
    indices = range(n)
    for _ in range(resamples):
        picks = rng.choices(indices, k=n)
        ratios.append(
            statistics.median([numerator[i] for i in picks])
            / statistics.median([denominator[i] for i in picks])
        )
    low, *_, high = statistics.quantiles(ratios, n=40, method="inclusive")
    return low, high


def verdict(ratio: float, target: float) -> str:
    return "PASS" if ratio <= target else "MISS"


def report(
    new: dict[str, Client],
    kept: dict[str, Client],
    log_summary: list[str],
    args: argparse.Namespace,
    seconds: float,
    load_before: float,
) -> None:
    print(
        f"staplecheck {staplecheck.__version__} ({source_state()}), "
        f"requests {requests.__version__}, "
        f"urllib3 {urllib3.__version__}, "  # type: ignore[attr-defined]
        f"pyOpenSSL {OpenSSL.__version__} "
        f"({OpenSSL.SSL.OpenSSL_version(OpenSSL.SSL.OPENSSL_VERSION).decode()}), "
        f"stdlib ssl ({ssl.OPENSSL_VERSION})"
    )
    print(
        f"Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs; "
        f"nginx on 127.0.0.1, TLS 1.3, ECDSA P-256 chain (root + intermediate + leaf)"
    )
    new_rounds = len(new["plain"].samples)
    kept_rounds = len(kept["plain"].samples)
    print(
        f"{new_rounds} rounds new-connection, {kept_rounds} rounds keep-alive, "
        f"clients interleaved round-robin; {seconds:.0f} s; 1-minute load average "
        f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    )
    print()
    header = f"{'µs per request (median)':<34} {'plain':>8} {'soft-fail':>10} {'off':>8}"
    print(header)
    print("-" * len(header))
    for label, clients in (("new connection", new), ("keep-alive", kept)):
        for clock, attribute in (("wall", "samples"), ("client CPU", "cpu")):
            values = [median_us(getattr(clients[name], attribute)) for name in CLIENTS]
            print(f"{label + ', ' + clock:<34} {values[0]:8.0f} {values[1]:10.0f} {values[2]:8.0f}")
    print()
    judged = (
        ("(a) new connection: soft-fail / plain", new["soft-fail"], new["plain"], NEW_TARGET),
        ("(b) keep-alive:     soft-fail / plain", kept["soft-fail"], kept["plain"], KEPT_TARGET),
        ("(c) new connection: soft-fail / off  ", new["soft-fail"], new["off"], OFF_TARGET),
    )
    print(
        "wall-clock ratio of medians [bootstrap 95% interval], target, verdict; "
        "client CPU ratio (not judged)"
    )
    for label, top, bottom, target in judged:
        ratio = statistics.median(top.samples) / statistics.median(bottom.samples)
        low, high = ratio_interval(top.samples, bottom.samples, args.resamples, args.seed)
        cpu_ratio = statistics.median(top.cpu) / statistics.median(bottom.cpu)
        print(
            f"{label}  {ratio:.3f}x [{low:.3f}-{high:.3f}]  <= {target:.2f}  "
            f"{verdict(ratio, target)}   CPU {cpu_ratio:.3f}x"
        )
    print()
    print("spread: interquartile range of the wall time per client (µs)")
    for label, clients in (("new", new), ("keep", kept)):
        parts = []
        for name in CLIENTS:
            q1, _, q3 = statistics.quantiles(clients[name].samples, n=4, method="inclusive")
            parts.append(f"{name} {q1 / 1000:.0f}-{q3 / 1000:.0f}")
        print(f"  {label:<5} " + "  ".join(parts))
    print()
    print("checked outside the timed region: every response 200 'ok'; response.staple good")
    print(
        f"for all {new['soft-fail'].count + kept['soft-fail'].count} soft-fail requests, "
        f"None for all {new['off'].count + kept['off'].count} off requests "
        "(warm-up included)"
    )
    print("nginx access log:")
    for line in log_summary:
        print(f"  {line}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (under 15 s)")
    parser.add_argument(
        "--rounds", type=int, help="new-connection rounds (default 4000, quick 500)"
    )
    parser.add_argument(
        "--keep-alive-rounds", type=int, help="keep-alive rounds (default 8000, quick 1000)"
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        help="time budget of the two timed phases (default 90, quick 12)",
    )
    parser.add_argument("--resamples", type=int, default=200, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=20261121, help="bootstrap seed")
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 500 if args.quick else 4000
    if args.keep_alive_rounds is None:
        args.keep_alive_rounds = 1000 if args.quick else 8000
    if args.max_seconds is None:
        args.max_seconds = 12.0 if args.quick else 90.0
    warmup = 20 if args.quick else 50
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-https-") as tmp:
        setup = build_pki(Path(tmp))
        server = LoggingNginx(setup.chain, setup.key, setup.staple, tls_versions=("TLSv1.3",))
        with server:
            new = make_clients(server, "new", new_connection=True)
            kept = make_clients(server, "keep", new_connection=False)
            # Each phase has its share of the time budget, warm-up included.
            for clients, rounds, share in (
                (new, args.rounds, NEW_SHARE),
                (kept, args.keep_alive_rounds, 1 - NEW_SHARE),
            ):
                deadline = time.monotonic() + share * args.max_seconds
                run_phase(clients, setup.root, rounds, warmup, deadline)
            try:
                log_summary = check_access_log(server.access_log(), new, kept)
            except AssertionError as error:
                print(f"check failed: {error}", file=sys.stderr)
                return 1
    report(new, kept, log_summary, args, time.perf_counter() - started, load_before)
    return 0


if __name__ == "__main__":
    sys.exit(main())
