"""The revocation engine driven from an event loop: ``RevocationChecker.check_async``.

The policy table runs through async handshakes in test_revocation_engine.py (the
``httpx-asyncio`` and ``httpx-trio`` clients). Here, what only the async path has:
the async fetchers against lying servers (the same cases as the blocking fetcher),
no thread for a live query, one query shared by threads and tasks of two event loops,
a cancelled leader, a blocking store moved off the loop, and a fetcher of the
caller's own run in a worker thread. Real responders, real CRL servers, real sockets.
"""

from __future__ import annotations

import datetime
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from staplecheck import Mode, Policy
from staplecheck.revocation import RevocationChecker, RevocationResult
from staplecheck.revocation._afetch import MAX_HEAD_BYTES, afetch_crl, afetch_first
from staplecheck.revocation._fetch import FetchError, FirstAnswer, fetch_first
from staplecheck.revocation._ocsp import build_request, judge_fetched
from staplecheck.revocation.stores import SQLiteStore
from staplecheck.validation._result import StapleResult, StapleStatus
from staplecheck.validation._validate import CertPair
from tests.revocation_servers import RevocationPKI, fixed_clock, revocation_pki
from tests.test_revocation_adversarial import (
    CRL_HEAD,
    ESCAPE,
    LYING_ANSWERS,
    LYING_IDS,
    RawHTTPServer,
)

pytestmark = pytest.mark.anyio

MISSING = StapleResult(status=StapleStatus.MISSING, reason="the server sent no staple")
HARD_OCSP = Policy(mode=Mode.HARD_FAIL, fallback=("ocsp",), fallback_timeout=5.0)
HARD_CRL = Policy(mode=Mode.HARD_FAIL, fallback=("crl",), fallback_timeout=5.0)
_FETCH_THREADS = ("staplecheck-ocsp", "staplecheck-resolve", "AnyIO worker", "asyncio_")


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RevocationPKI]:
    with revocation_pki(str(tmp_path_factory.mktemp("revocation-async"))) as made:
        yield made


@pytest.fixture
def live(pki: RevocationPKI) -> Iterator[RevocationPKI]:
    pki.reset()
    yield pki
    pki.responder.resume()
    pki.reset()


def chain_of(pki: RevocationPKI) -> list[bytes]:
    certs = (pki.leaf.cert, pki.intermediate.cert, pki.root.cert)
    return [cert.public_bytes(Encoding.DER) for cert in certs]


# --- the async fetcher against servers that lie ------------------------------------------------


@pytest.mark.parametrize(("answer", "words"), LYING_ANSWERS, ids=LYING_IDS)
async def test_lying_servers_fail_cleanly(answer: bytes, words: str) -> None:
    holder: list[RawHTTPServer] = []
    with RawHTTPServer(lambda sock: holder[0].send(sock, answer)) as server:
        holder.append(server)
        started = time.monotonic()
        with pytest.raises(FetchError, match=words or None) as caught:
            await afetch_crl(server.url(), deadline=started + 2, max_bytes=1_000_000)
        assert time.monotonic() - started < 1.5, caught.value.reason
    assert caught.value.reason.isprintable()


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 2" + ESCAPE + b"\r\n\r\n",
        b"HTTP/1.1 404 " + ESCAPE + b"\r\n\r\n",
        CRL_HEAD.replace(b"pkix-crl", b"x" + ESCAPE) + b"Content-Length: 1\r\n\r\n0",
        b"HTTP/1.1 302 Found\r\nLocation: http://x/" + ESCAPE + b"\r\n\r\n",
    ],
    ids=["status-line", "reason-phrase", "content-type", "location"],
)
async def test_failure_reasons_are_printable(answer: bytes) -> None:
    holder: list[RawHTTPServer] = []
    with RawHTTPServer(lambda sock: holder[0].send(sock, answer)) as server:
        holder.append(server)
        with pytest.raises(FetchError) as caught:
            await afetch_crl(server.url(), deadline=time.monotonic() + 2)
    assert caught.value.reason.isprintable(), caught.value.reason


async def test_a_head_over_the_cap_is_refused_before_any_body() -> None:
    head = CRL_HEAD + b"X-A: " + b"b" * (MAX_HEAD_BYTES + 5_000) + b"\r\n\r\n"
    holder: list[RawHTTPServer] = []
    with RawHTTPServer(lambda sock: holder[0].send(sock, head + bytes(1000))) as server:
        holder.append(server)
        with pytest.raises(FetchError, match="the response head is over the cap of 16384 bytes"):
            await afetch_crl(server.url(), deadline=time.monotonic() + 2)


async def test_a_chunked_body_is_capped_while_it_streams() -> None:
    def endless(sock: socket.socket) -> None:
        holder[0].send(sock, CRL_HEAD + b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n" % 65536 + bytes(65536) + b"\r\n"
        while True:
            holder[0].send(sock, chunk)

    holder: list[RawHTTPServer] = []
    with RawHTTPServer(endless) as server:
        holder.append(server)
        started = time.monotonic()
        with pytest.raises(FetchError, match="over the cap of 100000 bytes"):
            await afetch_crl(server.url(), deadline=started + 5, max_bytes=100_000)
        assert time.monotonic() - started < 2
    assert server.sent < 100_000 + 16 * 1024 * 1024


async def test_a_dripping_server_is_cut_at_the_deadline() -> None:
    stop = threading.Event()

    def drip(sock: socket.socket) -> None:
        for byte in CRL_HEAD + b"Content-Length: 1000\r\n\r\n" + bytes(1000):
            holder[0].send(sock, bytes([byte]))
            if stop.wait(0.05):
                return

    holder: list[RawHTTPServer] = []
    with RawHTTPServer(drip) as server:
        holder.append(server)
        started = time.monotonic()
        with pytest.raises(FetchError, match=r"no answer within 0\.400"):
            await afetch_crl(server.url(), deadline=started + 0.4)
        elapsed = time.monotonic() - started
        stop.set()
    assert 0.4 <= elapsed < 0.8


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("https://127.0.0.1:1/x.crl", "https:// sources are refused"),
        ("ftp://127.0.0.1/x.crl", "only http://"),
        ("http://[::1/x.crl", "bad URL"),
        ("http://127.0.0.1:0/x.crl", "port 0"),
        ("http://user:pw@127.0.0.1/x.crl", "credentials"),
        ("http://127.0.0.1\x01:1/x.crl", "bad URL"),
        ("http://127.0.0.1:1/x\x1b.crl", "bad URL"),
    ],
)
async def test_urls_follow_the_blocking_fetchers_rules(url: str, words: str) -> None:
    with pytest.raises(FetchError, match=words):
        await afetch_crl(url, deadline=time.monotonic() + 1)


async def test_a_closed_port_is_a_clean_failure() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(FetchError, match="connection refused"):
        await afetch_crl(f"http://127.0.0.1:{port}/x.crl", deadline=time.monotonic() + 1)


async def test_the_first_definite_answer_wins_and_the_others_are_cancelled(
    live: RevocationPKI,
) -> None:
    """Same result shape as the blocking race: a silent responder does not hold up
    the honest one, and is reported as cancelled."""
    chain = chain_of(live)
    silent = threading.Event()
    with RawHTTPServer(lambda sock: silent.wait(5)) as server:
        pair = CertPair(chain[0], chain[1])
        request = build_request(pair)
        started = time.monotonic()
        first = await afetch_first(
            [server.url("/ocsp"), live.responder.url],
            request.der,
            lambda der: judge_fetched(
                der,
                pair,
                nonce=None,
                now=fixed_clock(),
                clock_skew=HARD_OCSP.clock_skew,
                default_lifetime=HARD_OCSP.default_lifetime,
                max_age=HARD_OCSP.max_age,
                allow_sha1=False,
                cache=None,
            ),
            deadline=started + 3,
        )
        silent.set()
    assert time.monotonic() - started < 1
    assert first.result is not None
    assert first.result.status is StapleStatus.GOOD
    assert first.url == live.responder.url
    assert [a.outcome for a in first.attempts] == ["cancelled", "good"]


# --- the engine on the loop ----------------------------------------------------------------


def fetch_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(_FETCH_THREADS)]


async def test_a_live_query_holds_no_thread(live: RevocationPKI) -> None:
    """While the responder holds its answer, the check waits on the loop: no fetch
    thread, no worker thread (the blocking path would use one per responder)."""
    checker = live.checker()
    asked = live.responder.requests
    live.responder.pause()
    before = fetch_threads()
    result: list[RevocationResult] = []

    async def check() -> None:
        result.append(await checker.check_async(chain_of(live), HARD_OCSP, MISSING))

    async with anyio.create_task_group() as group:
        group.start_soon(check)
        assert await anyio.to_thread.run_sync(live.responder.wait_for_requests, asked + 1)
        during = fetch_threads()
        live.responder.resume()
    # The wait above used one AnyIO worker thread of its own; the check used none.
    assert [name for name in during if not name.startswith("AnyIO worker")] == [
        name for name in before if not name.startswith("AnyIO worker")
    ]
    assert result[0].status is StapleStatus.GOOD
    assert result[0].source == "ocsp"
    assert result[0].accepted


async def test_the_async_verdict_is_the_blocking_verdict(live: RevocationPKI) -> None:
    """Each answer a responder or a CRL can give, both ways, field by field."""
    for status in ("good", "revoked", "unknown"):
        live.responder.set_status(live.leaf, status)
        for policy in (HARD_OCSP, HARD_CRL):
            if policy is HARD_CRL and status != "good":
                continue
            blocking = live.checker().check(chain_of(live), policy, MISSING)
            awaited = await live.checker().check_async(chain_of(live), policy, MISSING)
            assert (awaited.status, awaited.source, awaited.accepted, awaited.reason) == (
                blocking.status,
                blocking.source,
                blocking.accepted,
                blocking.reason,
            )
            assert [(a.source, a.url, a.outcome) for a in awaited.attempts] == [
                (a.source, a.url, a.outcome) for a in blocking.attempts
            ]


async def test_a_cancelled_leader_leaves_its_followers_an_answer(live: RevocationPKI) -> None:
    """The task asking is cancelled mid-query: its flight is finished, and a task that
    was waiting for it asks for itself within its own budget."""
    checker = live.checker()
    before = live.responder.requests
    live.responder.pause()
    follower: list[RevocationResult] = []

    async def follow() -> None:
        follower.append(await checker.check_async(chain_of(live), HARD_OCSP, MISSING))

    leader = anyio.CancelScope()

    async def lead() -> None:
        with leader:
            await checker.check_async(chain_of(live), HARD_OCSP, MISSING)

    async with anyio.create_task_group() as group:
        group.start_soon(lead)
        assert await anyio.to_thread.run_sync(live.responder.wait_for_requests, before + 1)
        group.start_soon(follow)
        await anyio.sleep(0.05)
        leader.cancel()
        await anyio.sleep(0.05)
        live.responder.resume()
    assert follower[0].status is StapleStatus.GOOD
    assert checker.counts["shared"] >= 1
    assert checker.counts["ocsp_query"] == 2  # the cancelled one, then the follower's


def _run_loop(
    backend: str,
    tasks: int,
    checker: RevocationChecker,
    chain: Sequence[bytes],
    results: list[RevocationResult],
    go: threading.Event,
) -> None:
    async def main() -> None:
        async def one() -> None:
            results.append(await checker.check_async(chain, HARD_OCSP, MISSING))

        async with anyio.create_task_group() as group:
            await anyio.to_thread.run_sync(go.wait)
            for _ in range(tasks):
                group.start_soon(one)

    anyio.run(main, backend=backend)


def test_threads_and_two_event_loops_share_one_query(live: RevocationPKI) -> None:
    """4 threads, 25 asyncio tasks and 25 trio tasks check one certificate cold, on one
    checker: one responder query, and every one of them gets its answer (the waiting
    tasks are woken from whichever thread finished the query)."""
    checker = live.checker()
    chain = chain_of(live)
    before = live.responder.requests
    live.responder.pause()
    results: list[RevocationResult] = []
    go = threading.Event()
    workers = [
        threading.Thread(target=_run_loop, args=("asyncio", 25, checker, chain, results, go)),
        threading.Thread(target=_run_loop, args=("trio", 25, checker, chain, results, go)),
    ] + [
        threading.Thread(target=lambda: results.append(checker.check(chain, HARD_OCSP, MISSING)))
        for _ in range(4)
    ]
    for worker in workers[:2]:
        worker.start()
    go.set()
    for worker in workers[2:]:
        worker.start()
    assert live.responder.wait_for_requests(before + 1)
    time.sleep(0.2)  # every check has joined the flight by now (they wait up to 5 s)
    live.responder.resume()
    for worker in workers:
        worker.join(10)
    assert len(results) == 54
    assert {(r.status, r.accepted) for r in results} == {(StapleStatus.GOOD, True)}
    assert live.responder.requests == before + 1
    assert checker.counts["ocsp_query"] == 1


class ThreadNotingStore:
    """A real SQLite store that notes which thread each call ran in."""

    def __init__(self, path: Path) -> None:
        self.inner = SQLiteStore(str(path))
        self.threads: list[str] = []

    def get(self, key: str, *, now: datetime.datetime) -> Any:
        self.threads.append(threading.current_thread().name)
        return self.inner.get(key, now=now)

    def put(
        self, key: str, der: bytes, *, now: datetime.datetime, expires_at: datetime.datetime
    ) -> None:
        self.threads.append(threading.current_thread().name)
        self.inner.put(key, der, now=now, expires_at=expires_at)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_a_blocking_store_is_used_off_the_loop(live: RevocationPKI, tmp_path: Path) -> None:
    store = ThreadNotingStore(tmp_path / "cache.sqlite")
    checker = live.checker(store=store)
    before = live.responder.requests
    first = await checker.check_async(chain_of(live), HARD_OCSP, MISSING)
    second = await checker.check_async(chain_of(live), HARD_OCSP, MISSING)
    assert (first.source, second.source) == ("ocsp", "cache")
    # Every get and put ran in a worker thread, never on the loop's thread.
    assert len(store.threads) >= 3
    assert threading.main_thread().name not in store.threads
    assert live.responder.requests == before + 1


async def test_a_fetcher_of_the_callers_own_runs_in_a_worker_thread(live: RevocationPKI) -> None:
    """A caller's fetcher blocks: check_async runs it in a worker thread, never on the
    loop, and its answer counts as the default fetcher's would."""
    ran_in: list[str] = []

    def own_fetcher(*args: Any, **kwargs: Any) -> FirstAnswer:
        ran_in.append(threading.current_thread().name)
        return fetch_first(*args, **kwargs)

    checker = live.checker(fetch_ocsp=own_fetcher)
    result = await checker.check_async(chain_of(live), HARD_OCSP, MISSING)
    assert result.status is StapleStatus.GOOD
    assert result.accepted
    assert ran_in
    assert ran_in[0] != threading.main_thread().name


async def test_a_fetcher_that_raises_fails_closed(live: RevocationPKI) -> None:
    def broken(*args: Any, **kwargs: Any) -> FirstAnswer:
        raise RuntimeError("the caller's fetcher broke")

    checker = live.checker(fetch_ocsp=broken)
    with pytest.raises(RuntimeError, match="broke"):
        await checker.check_async(chain_of(live), HARD_OCSP, MISSING)
    # Its flight was finished: the next check asks again (and the honest fetcher answers).
    assert not checker._flights
