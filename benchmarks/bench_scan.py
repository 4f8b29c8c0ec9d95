"""Issue 10's benchmark: ``staplecheck scan`` of 200 local targets against the same
handshakes made by a plain concurrent script, in the same run.

The fleet: two nginx servers on 127.0.0.1 (TLS 1.3, no session resumption), each
stapling a good OCSP response for an ECDSA leaf whose AIA names the project's OCSP
responder (in this process); the 200 targets are the two servers, 100 times each.

- **scan**: ``staplecheck scan --json --jobs 16 --cafile ROOT TARGET...`` run in
  this process (``cli.main``, its output into memory), the default policy
  (soft-fail) and the default live responder query (one query per certificate per
  run: the run's checker is shared by its workers). Every record must be ``ok`` with a
  ``good`` staple and a ``good`` responder answer.
- **scan --no-responder**: the same without the live query (reported).
- **plain**: the same 200 handshakes by a plain script: 16 threads
  (``concurrent.futures``), each connection a pyOpenSSL ``Connection`` on a context
  made once that verifies the chain against the same root, asks for the staple
  (``request_ocsp``) and keeps its bytes without judging them. Every handshake must
  bring a staple.

Each round runs scan and plain once each, in alternating order; the judged figure is
the median over rounds of scan's wall time divided by plain's in the same round
(target ≤ 1.2×). Memory: the peak of Python allocations (``tracemalloc``) during one
more scan and one more plain run, outside the timed rounds, and the process's
``ru_maxrss`` at the end.

A report, not a test: it exits 0 whether the target passes or misses, 1 when a check
fails.

    python benchmarks/bench_scan.py            # 15 rounds, about 30 s
    python benchmarks/bench_scan.py --quick    # 2 rounds, about 5 s
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import resource
import socket
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for entry in (str(ROOT), str(ROOT / "benchmarks")):
    if entry not in sys.path:
        sys.path.insert(0, entry)

from OpenSSL import SSL  # noqa: E402

from staplecheck.cli._main import main as cli_main  # noqa: E402
from staplecheck.testing import CA, OCSPResponder  # noqa: E402
from tests.realservers import Nginx  # noqa: E402

JOBS = 16
TARGETS = 200
TARGET_RATIO = 1.2


class BenchCheckError(Exception):
    pass


def run_scan(root: str, targets: list[str], *extra: str) -> float:
    out = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(out):
        code = cli_main(["scan", "--json", "--jobs", str(JOBS), "--cafile", root, *extra, *targets])
    elapsed = time.perf_counter() - started
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    if code != 0 or len(records) != len(targets):
        raise BenchCheckError(f"scan exited {code} with {len(records)} records")
    for record in records:
        if record["outcome"] != "ok" or record["staple"]["status"] != "good":
            raise BenchCheckError(f"scan record not ok: {record}")
        if "--no-responder" not in extra and record["responder"]["status"] != "good":
            raise BenchCheckError(f"scan record without the responder's good: {record}")
    return elapsed


def plain_context(root: str) -> SSL.Context:
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.load_verify_locations(root)
    context.set_verify(SSL.VERIFY_PEER, lambda _c, _x, _n, _d, ok: bool(ok))

    def keep(connection: SSL.Connection, staple: bytes, _data: object) -> bool:
        connection.set_app_data(staple)
        return True

    context.set_ocsp_client_callback(keep)
    return context


def plain_handshake(context: SSL.Context, port: int) -> bytes:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.settimeout(None)  # pyOpenSSL drives a blocking socket; nginx is local
    try:
        connection = SSL.Connection(context, sock)
        connection.set_tlsext_host_name(b"localhost")
        connection.request_ocsp()
        connection.set_connect_state()
        connection.do_handshake()
        staple = connection.get_app_data()
        return staple if isinstance(staple, bytes) else b""
    finally:
        sock.close()


def run_plain(context: SSL.Context, ports: list[int]) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=JOBS) as pool:
        staples = list(pool.map(lambda port: plain_handshake(context, port), ports))
    elapsed = time.perf_counter() - started
    if len(staples) != len(ports) or not all(staples):
        raise BenchCheckError("a plain handshake brought no staple")
    return elapsed


def peak_memory(run: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run (about 5 s)")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds (default 15)")
    args = parser.parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 15)
    with contextlib.ExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        ca = CA(key_type="ecdsa", name="bench_scan root")
        issuer = ca.create_intermediate(key_type="ecdsa", name="bench_scan CA")
        responder = stack.enter_context(OCSPResponder(issuer))
        leaf = issuer.issue_cert("localhost", key_type="ecdsa", ocsp_url=responder.url)
        responder.set_status(leaf, "good")
        chain, key = leaf.write(directory, "localhost")
        staple = directory / "staple.der"
        staple.write_bytes(issuer.ocsp_response(leaf, "good"))
        root = ca.write_trust(directory / "root.pem")
        servers = [
            stack.enter_context(Nginx(chain, key, str(staple), tls_versions=("TLSv1.3",)))
            for _ in range(2)
        ]
        ports = [int(server.port or 0) for server in servers] * (TARGETS // len(servers))
        targets = [f"localhost:{port}" for port in ports]
        context = plain_context(root)
        try:
            # warm-up: imports, nginx's first staple, the responder's first answer
            run_plain(context, ports[:20])
            run_scan(root, targets[:20])
            scans: list[float] = []
            plains: list[float] = []
            quiet: list[float] = []
            for index in range(rounds):
                if index % 2:
                    plains.append(run_plain(context, ports))
                    scans.append(run_scan(root, targets))
                else:
                    scans.append(run_scan(root, targets))
                    plains.append(run_plain(context, ports))
                quiet.append(run_scan(root, targets, "--no-responder"))
            scan_peak = peak_memory(lambda: run_scan(root, targets))
            plain_peak = peak_memory(lambda: run_plain(context, ports))
        except BenchCheckError as error:
            print(f"CHECK FAILED: {error}")
            return 1
    ratios = [s / p for s, p in zip(scans, plains, strict=True)]
    ratio = statistics.median(ratios)
    verdict = "PASS" if ratio <= TARGET_RATIO else "MISS"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"bench_scan: {TARGETS} targets, --jobs {JOBS}, {rounds} rounds; Python "
        f"{platform.python_version()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}"
    )
    print()
    print("| measure | median | figure |")
    print("| --- | --- | --- |")
    print(f"| plain script: 200 handshakes | {statistics.median(plains) * 1000:.0f} ms | |")
    print(f"| scan (responder asked) | {statistics.median(scans) * 1000:.0f} ms | |")
    print(f"| scan --no-responder | {statistics.median(quiet) * 1000:.0f} ms | |")
    print(
        f"| scan / plain (median of per-round ratios) | {ratio:.2f}x | target <= "
        f"{TARGET_RATIO}x: {verdict} |"
    )
    print(f"| scan: peak Python memory (tracemalloc) | {scan_peak / 1e6:.1f} MB | |")
    print(f"| plain: peak Python memory (tracemalloc) | {plain_peak / 1e6:.1f} MB | |")
    print(f"| process ru_maxrss at the end | {rss:.0f} MB | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
