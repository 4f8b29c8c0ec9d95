"""Adversarial review of issue 9's async paths (review9): findings, each proved here.

Real sockets and servers only: a loopback HTTP server that sends exactly the bytes
given (whole, or dripped in small segments), the testing responders, real handshakes.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest
from cryptography.hazmat.primitives.serialization import Encoding

import staplecheck
from staplecheck import Mode, Policy
from staplecheck.revocation._afetch import afetch_crl
from staplecheck.revocation._async import _threadsafe, _wait
from staplecheck.revocation._fetch import (
    MAX_HEAD_BYTES,
    TOO_MANY_HEADERS,
    FetchError,
    fetch_crl,
    fetch_first,
)
from staplecheck.revocation._steps import Flight
from staplecheck.testing import StaplingServer
from staplecheck.validation._result import StapleResult, StapleStatus
from tests.conftest import IN_CI, require_program
from tests.httpx_helpers import LivePKI, make_live_pki
from tests.httpx_helpers import clock as httpx_clock
from tests.revocation_servers import RevocationPKI, revocation_pki
from tests.test_revocation_adversarial import CRL_HEAD, RawHTTPServer

ROOT = Path(__file__).resolve().parent.parent

BODY = b"0123456789"


def _head_of(size: int) -> bytes:
    """A 200 CRL head of exactly ``size`` bytes (one padding header), body length 10."""
    start = CRL_HEAD + b"Content-Length: 10\r\nX-Pad: "
    end = b"\r\n\r\n"
    padding = size - len(start) - len(end)
    assert padding > 0
    return start + b"p" * padding + end


def _many_headers(count: int) -> bytes:
    lines = b"".join(b"X-%d: v\r\n" % index for index in range(count - 2))
    return CRL_HEAD + b"Content-Length: 10\r\n" + lines + b"\r\n"


# Each case: the bytes a server sends; both fetchers must agree on them.
ANSWERS: list[tuple[str, bytes]] = [
    ("head-at-the-cap", _head_of(MAX_HEAD_BYTES) + BODY),
    ("head-one-over-the-cap", _head_of(MAX_HEAD_BYTES + 1) + BODY),
    ("head-of-18k", _head_of(18_000) + BODY),
    ("head-of-20k", _head_of(20_000) + BODY),
    ("99-headers", _many_headers(99) + BODY),
    ("100-headers", _many_headers(100) + BODY),
    ("100-continue-then-200", b"HTTP/1.1 100 Continue\r\n\r\n" + _head_of(500) + BODY),
    (
        "103-early-hints-then-200",
        b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" + _head_of(500) + BODY,
    ),
    (
        "two-heads-over-the-cap-together",
        b"HTTP/1.1 100 Continue\r\nX-Pad: " + b"p" * 9000 + b"\r\n\r\n" + _head_of(9000) + BODY,
    ),
    ("lf-only-head", CRL_HEAD.replace(b"\r\n", b"\n") + b"Content-Length: 10\n\n" + BODY),
    ("nothing", b""),
    ("100-continue-then-close", b"HTTP/1.1 100 Continue\r\n\r\n"),
]


def _serve(answer: bytes, drip: int | None) -> Callable[[socket.socket], None]:
    """Send ``answer`` whole, or in segments of ``drip`` bytes (one TCP segment each)."""

    def send(sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if drip is None:
            holder[0].send(sock, answer)
            return
        for index in range(0, len(answer), drip):
            holder[0].send(sock, answer[index : index + drip])
            time.sleep(0.0005)  # let each segment be read on its own

    holder: list[RawHTTPServer] = []
    send.holder = holder  # type: ignore[attr-defined]
    return send


def _outcome(call: Callable[[], bytes]) -> str:
    try:
        return "body " + call().hex()
    except FetchError as error:
        return "refused: " + error.reason


@pytest.mark.parametrize("drip", [None, 700], ids=["whole", "dripped"])
@pytest.mark.parametrize("answer", [a for _, a in ANSWERS], ids=[i for i, _ in ANSWERS])
def test_the_async_fetcher_agrees_with_the_blocking_one(answer: bytes, drip: int | None) -> None:
    """Finding 1: h11's buffer limit made the async verdict depend on how the head's
    bytes arrived (a 17 KB head passed whole and failed dripped) and differ from
    http.client's (which takes heads up to 6.5 MB, refuses 100 header lines, and takes a
    103 as the final answer). Now both measure the head whole: same bytes, same
    answer, however they are segmented."""
    serve = _serve(answer, drip)
    with RawHTTPServer(serve) as server:
        serve.holder.append(server)  # type: ignore[attr-defined]
        url = server.url()
        blocking = _outcome(lambda: fetch_crl(url, deadline=time.monotonic() + 5))
        awaited = _outcome(
            lambda: anyio.run(lambda: afetch_crl(url, deadline=time.monotonic() + 5))
        )
    assert blocking == awaited
    if not answer.endswith(BODY):
        assert awaited == "refused: the server closed the connection without answering"
    elif b"X-97:" in answer:  # 100 header lines (http.client counts the blank one)
        assert awaited == f"refused: {TOO_MANY_HEADERS}"
    elif len(answer) - len(BODY) > MAX_HEAD_BYTES:
        assert awaited == f"refused: the response head is over the cap of {MAX_HEAD_BYTES} bytes"
    elif b" 103 " in answer:
        assert awaited.startswith("refused: HTTP 103")
    else:
        assert awaited == "body " + BODY.hex()


# --- a resolver that never answers -------------------------------------------------------------

_DEAD_RESOLVER_CHILD = r"""
import asyncio, json, socket, sys, threading, time
from staplecheck.revocation._afetch import afetch_crl
from staplecheck.revocation._fetch import FetchError

sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sink.bind(("127.0.0.1", 53))  # takes every query, answers none
threading.Thread(target=lambda: [sink.recv(4096) for _ in iter(int, 1)], daemon=True).start()


async def main() -> None:
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    outcomes = await asyncio.gather(
        *(
            afetch_crl(f"http://dead{i}.example.test/x.crl", deadline=time.monotonic() + 0.3)
            for i in range(12)
        ),
        return_exceptions=True,
    )
    fetched = time.monotonic() - started
    reasons = sorted({o.reason if isinstance(o, FetchError) else repr(o) for o in outcomes})
    started = time.monotonic()
    await loop.getaddrinfo("localhost", 80)  # the application's own lookup, from /etc/hosts
    lookup = time.monotonic() - started
    print(json.dumps({"fetched": fetched, "reasons": reasons, "lookup": lookup}))


asyncio.run(main())
"""


def test_a_dead_resolver_does_not_starve_the_event_loops_lookups(tmp_path: Path) -> None:
    """Finding 2: the async fetcher resolved names with the event loop's default
    executor (asyncio: 6 threads on 2 cores). Checks of certificates whose responder
    names a dead resolver never answers left a thread each stuck in getaddrinfo for the
    resolver's timeout, and the application's own lookups queued behind them (2.7 s
    here). Now names are resolved as the blocking fetcher resolves them (daemon
    threads, at most MAX_PENDING_RESOLUTIONS, abandoned at the deadline).

    A private mount and network namespace whose resolv.conf names a loopback UDP
    socket that never answers; the real glibc resolver, real getaddrinfo."""
    unshare = require_program("unshare")
    require_program("ip")
    require_program("mount")
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\noptions timeout:3 attempts:1\n")
    child = tmp_path / "child.py"
    child.write_text(_DEAD_RESOLVER_CHILD)
    user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
    script = (
        f"ip link set lo up && mount --bind {resolv} /etc/resolv.conf && "
        f"exec {sys.executable} {child}"
    )
    done = subprocess.run(
        [unshare, *user, "--mount", "--net", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    if done.returncode != 0 and "unshare failed" in done.stderr and not IN_CI:
        pytest.skip(f"no private namespace here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["fetched"] < 1.5, found
    assert all(
        reason.startswith(("the host name was not resolved within", "no answer within"))
        for reason in found["reasons"]
    ), found
    assert found["lookup"] < 1.0, found  # was 2.7 s: behind twelve hung lookups


# --- a fetcher of the caller's own that overruns the deadline -----------------------------------

SHORT_OCSP = Policy(mode=Mode.HARD_FAIL, fallback=("ocsp",), fallback_timeout=0.5)
SHORT_CRL = Policy(mode=Mode.HARD_FAIL, fallback=("crl",), fallback_timeout=0.5)
MISSING = StapleResult(status=StapleStatus.MISSING, reason="the server sent no staple")


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RevocationPKI]:
    with revocation_pki(str(tmp_path_factory.mktemp("review9"))) as made:
        yield made


@pytest.fixture
def silent() -> Iterator[RawHTTPServer]:
    """A server that takes the request and never answers (until the test ends)."""
    ending = threading.Event()
    with RawHTTPServer(lambda sock: ending.wait(10)) as server:
        yield server
        ending.set()


def _chain(pki: RevocationPKI) -> list[bytes]:
    certs = (pki.leaf.cert, pki.intermediate.cert, pki.root.cert)
    return [cert.public_bytes(Encoding.DER) for cert in certs]


@pytest.mark.anyio
@pytest.mark.parametrize("source", ["ocsp", "crl"])
async def test_a_callers_fetcher_that_overruns_is_given_up_at_the_deadline(
    source: str, pki: RevocationPKI, silent: RawHTTPServer
) -> None:
    """Finding 3: check_async ran a caller's own fetcher in a worker thread and awaited
    it without a limit: one that ignores its deadline (here: the library's fetcher
    called with 3 s more, against a server that never answers) held the check, and
    the connection, 3 s past a 0.5 s budget. Now the step is given up at its
    deadline (the thread is abandoned): no answer in time, the policy decides."""
    pki.reset()

    def late_ocsp(
        urls: Sequence[str], *args: Any, deadline: float, timeout: float, **kwargs: Any
    ) -> Any:
        late = {"deadline": deadline + 3, "timeout": timeout + 3}
        return fetch_first([silent.url("/ocsp")], *args, **late, **kwargs)

    def late_crl(url: str, *, deadline: float, timeout: float, **kwargs: Any) -> bytes:
        return fetch_crl(silent.url(), deadline=deadline + 3, timeout=timeout + 3, **kwargs)

    if source == "ocsp":
        checker, policy = pki.checker(fetch_ocsp=late_ocsp), SHORT_OCSP
    else:
        checker, policy = pki.checker(fetch_crl=late_crl), SHORT_CRL
    started = time.monotonic()
    result = await checker.check_async(_chain(pki), policy, MISSING)
    elapsed = time.monotonic() - started
    assert elapsed < 1.5, elapsed  # was 3.5 s
    assert not result.accepted
    assert result.source is None
    outcomes = {attempt.outcome for attempt in result.attempts}
    assert outcomes <= {"timeout", "failed"}, result.attempts
    assert not checker._flights


# --- wakeups from other threads ----------------------------------------------------------------


@pytest.mark.anyio
async def test_a_task_never_misses_the_wakeup_of_a_flight_a_thread_finishes() -> None:
    """No finding (a question of the brief, answered): a task that waits for a flight a
    thread leads registers its waker under the flight's lock, so a finish at any moment
    (before, during or after the registration) wakes it. 300 races, each with the
    finish at a different point; a lost wakeup would wait the whole 2 s."""
    rounds = 300
    slow = 0
    for index in range(rounds):
        flight = Flight()
        delay = (index % 30) * 10e-6  # 0 to 290 microseconds after the thread starts

        def finish(flight: Flight = flight, delay: float = delay) -> None:
            end = time.perf_counter() + delay
            while time.perf_counter() < end:
                pass
            flight.finish()

        thread = threading.Thread(target=finish)
        thread.start()
        started = time.monotonic()
        assert await _wait(flight, 2.0)
        slow += time.monotonic() - started > 0.5
        thread.join()
    assert slow == 0


def test_a_flight_finished_after_its_waiters_loop_closed_is_harmless() -> None:
    """No finding: a waker whose event loop has closed (asyncio or trio) is dropped
    quietly by the finishing thread, which goes on to wake the others."""
    import asyncio

    import trio

    flight = Flight()

    async def register() -> None:
        flight.on_finish(_threadsafe(lambda: None))

    asyncio.run(register())  # the loop is closed when this returns
    trio.run(register)
    woken = threading.Event()
    flight.on_finish(woken.set)
    flight.finish()  # must not raise
    assert woken.is_set()


# --- httpx (async): a caller's fetcher or store that fails ---------------------------------------


class BrokenStore:
    """A store of the caller's own whose disk is gone: every call raises."""

    def get(self, key: str, *, now: datetime.datetime) -> Any:
        raise OSError(5, "the store's disk is gone")

    def put(self, key: str, der: bytes, *, now: datetime.datetime, expires_at: Any) -> Any:
        raise OSError(5, "the store's disk is gone")

    def mark_failure(self, key: str, *, now: datetime.datetime, until: Any, reason: str) -> Any:
        raise OSError(5, "the store's disk is gone")

    def failure(self, key: str, *, now: datetime.datetime) -> Any:
        raise OSError(5, "the store's disk is gone")

    def delete(self, key: str) -> Any:
        raise OSError(5, "the store's disk is gone")


@pytest.fixture(scope="module")
def httpx_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePKI]:
    made = make_live_pki(tmp_path_factory.mktemp("review9-httpx"))
    with made.responder:
        yield made


@pytest.mark.anyio
@pytest.mark.parametrize("broken", ["fetcher", "store", "late-fetcher"])
async def test_httpx_async_refuses_cleanly_when_the_callers_parts_fail(
    broken: str, httpx_live: LivePKI, silent: RawHTTPServer
) -> None:
    """No finding (a question of the brief, answered): under soft-fail with the OCSP
    fallback, a fetcher or store of the caller's own that raises refuses the connection
    with httpx.ConnectError whose cause is the RevocationError naming the failure (fail
    closed, no traceback from inside), and a fetcher that overruns is given up at the
    policy's 0.5 s budget (finding 3 through a real handshake): no answer, soft-fail
    accepts, in well under the fetcher's 3.5 s."""
    import staplecheck.httpx as sh
    from staplecheck import RevocationChecker, RevocationError
    from staplecheck.clients._httplib import httpx

    def raising(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the caller's fetcher broke")

    def late(urls: Sequence[str], *args: Any, deadline: float, timeout: float, **kw: Any) -> Any:
        return fetch_first(
            [silent.url("/ocsp")], *args, deadline=deadline + 3, timeout=timeout + 3, **kw
        )

    parts: dict[str, Any] = {
        "fetcher": {"fetch_ocsp": raising},
        "store": {"store": BrokenStore()},
        "late-fetcher": {"fetch_ocsp": late},
    }[broken]
    checker = RevocationChecker(clock=httpx_clock, cache=None, **parts)
    policy = Policy(fallback=("ocsp",), fallback_timeout=0.5)
    with StaplingServer(httpx_live.leaf, None) as server:
        async with sh.async_client(
            policy, verify=httpx_live.ca_file, clock=httpx_clock, revocation=checker
        ) as client:
            started = time.monotonic()
            if broken == "late-fetcher":
                response = await client.get(server.url)
                revocation = staplecheck.revocation_of(response)
                assert revocation is not None
                assert revocation.source is None
                assert time.monotonic() - started < 1.5
                return
            with pytest.raises(httpx.ConnectError) as refused:
                await client.get(server.url)
    cause = refused.value.__cause__
    assert isinstance(cause, RevocationError), repr(cause)
    assert not cause.revocation.accepted
    words = "fetcher broke" if broken == "fetcher" else "disk is gone"
    assert words in cause.revocation.reason
