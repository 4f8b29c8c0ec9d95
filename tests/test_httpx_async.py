"""staplecheck.httpx, async: the same checks under asyncio and trio (through AnyIO).

Real handshakes against the in-process stapling server (TLS 1.2 and 1.3), nginx with
HTTP/2, a CONNECT proxy and a live OCSP responder. Beyond the sync tests: the fallback
runs off the event loop (the longest loop stall is measured while the responder is
slow), 200 concurrent tasks misattribute nothing, and cancelling a handshake (or the
fallback after it) leaves no socket open.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

# httpx, or httpx2 where only it is installed (staplecheck.httpx.FLAVOUR says which).
httpx = pytest.importorskip("staplecheck.clients._httplib").httpx
pytest.importorskip("anyio")
pytest.importorskip("trio")

import anyio  # noqa: E402
import anyio.to_thread  # noqa: E402

import staplecheck  # noqa: E402
import staplecheck.httpx as sh  # noqa: E402
from staplecheck import Policy, RevocationError, StapleError, StapleStatus  # noqa: E402
from staplecheck.testing import POLICY_CASES, Identity, StapleCase, StaplingServer  # noqa: E402
from tests.conftest import require_program  # noqa: E402
from tests.httpx_helpers import (  # noqa: E402
    NOW,
    Http2Nginx,
    LivePKI,
    SilentServer,
    behaving,
    checker,
    clock,
    expected_accept,
    make_live_pki,
    open_sockets,
    staple_cause,
    verification_cause,
)
from tests.test_adapter_features import ConnectProxy  # noqa: E402

pytestmark = pytest.mark.anyio

MODES = ("off", "soft-fail", "must-staple", "hard-fail")


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    backend: str = request.param
    return backend


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePKI]:
    pki = make_live_pki(tmp_path_factory.mktemp("httpx-async-pki"))
    with pki.responder:
        yield pki


@pytest.fixture(autouse=True)
def _responder_behaves(live: LivePKI) -> Iterator[None]:
    yield from behaving(live)


@pytest.fixture(params=["1.2", "1.3"], ids=["tls1.2", "tls1.3"])
def tls(request: pytest.FixtureRequest) -> str:
    version: str = request.param
    return version


Serve = Callable[..., StaplingServer]


@pytest.fixture
def serve() -> Iterator[Serve]:
    with contextlib.ExitStack() as stack:

        def start(identity: Identity, staple: str | bytes | None = "good", **options: Any) -> Any:
            der = (
                identity.issuer.ocsp_response(identity, staple, this_update=NOW)
                if isinstance(staple, str)
                else staple
            )
            return stack.enter_context(StaplingServer(identity, der, **options))

        yield start


def new_client(live: LivePKI, policy: Any = "soft-fail", **kwargs: Any) -> Any:
    kwargs.setdefault("verify", live.ca_file)
    kwargs.setdefault("clock", clock)
    kwargs.setdefault("revocation", checker())
    return sh.async_client(policy, **kwargs)


# --- the policy table ------------------------------------------------------------------------


@pytest.mark.parametrize("case", POLICY_CASES, ids=lambda c: c.name)
async def test_policy_table(case: StapleCase, tls: str, live: LivePKI, serve: Serve) -> None:
    leaf = live.leaf_for(case)
    server = serve(leaf, case.staple(leaf.issuer, leaf, NOW), tls_version=tls)
    for mode in MODES:
        async with new_client(live, mode) as client:
            if expected_accept(mode, case, StapleStatus.GOOD):
                response = await client.get(server.url)
                assert response.status_code == 200
                staple = staplecheck.staple_of(response)
                if mode == "off":
                    assert staple is None
                    continue
                assert staple is not None
                assert staple.status is case.status, (mode, staple)
                revocation = staplecheck.revocation_of(response)
                if mode == "hard-fail":
                    assert revocation is not None
                    assert revocation.status is StapleStatus.GOOD
                else:
                    assert revocation is None
            else:
                with pytest.raises(httpx.ConnectError) as refused:
                    await client.get(server.url)
                assert staple_cause(refused.value).result.status is case.status, mode


@pytest.mark.parametrize(
    ("mode", "answer", "accepted"),
    [
        ("hard-fail", "good", True),
        ("hard-fail", "revoked", False),
        ("hard-fail", None, False),
        ("soft-fail+ocsp", "revoked", False),
        ("soft-fail+ocsp", None, True),
    ],
)
async def test_fallback_decides_a_missing_staple(
    mode: str, answer: str | None, accepted: bool, live: LivePKI, serve: Serve
) -> None:
    server = serve(live.leaf, None)
    if answer is None:
        live.responder.misbehave("close")
    else:
        live.responder.set_status(live.leaf, answer)
    policy: Any = Policy(fallback=("ocsp",)) if mode == "soft-fail+ocsp" else mode
    async with new_client(live, policy) as client:
        if accepted:
            response = await client.get(server.url)
            revocation = staplecheck.revocation_of(response)
            assert revocation is not None
            assert revocation.source == (None if answer is None else "ocsp")
        else:
            with pytest.raises(httpx.ConnectError) as refused:
                await client.get(server.url)
            error = refused.value.__cause__
            assert isinstance(error, RevocationError), repr(error)
            if answer == "revoked":
                assert error.revocation.status is StapleStatus.REVOKED
    assert live.responder.requests >= 1


async def test_the_fallback_never_blocks_the_event_loop(live: LivePKI, serve: Serve) -> None:
    """hard-fail, no staple, a responder that holds its answer for 0.6 s: the request
    waits for it, but the event loop keeps running (a 5 ms ticker never stalls long)."""
    server = serve(live.leaf, None)
    live.responder.pause()
    gaps: list[float] = []
    done = anyio.Event()
    held = 0.6

    async def ticker() -> None:
        last = time.monotonic()
        while not done.is_set():
            await anyio.sleep(0.005)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    async def answer_late() -> None:
        assert await anyio.to_thread.run_sync(live.responder.wait_for_requests, 1)
        await anyio.sleep(held)  # the slow responder: what the loop must not wait for
        live.responder.resume()

    policy = Policy(mode="hard-fail", fallback_timeout=10.0)  # type: ignore[arg-type]
    async with new_client(live, policy) as client, anyio.create_task_group() as tasks:
        tasks.start_soon(ticker)
        tasks.start_soon(answer_late)
        started = time.monotonic()
        response = await client.get(server.url)
        elapsed = time.monotonic() - started
        done.set()
    revocation = staplecheck.revocation_of(response)
    assert revocation is not None
    assert (revocation.status, revocation.source) == (StapleStatus.GOOD, "ocsp")
    assert elapsed >= held  # the fallback did wait for the slow responder...
    assert len(gaps) > 20
    assert max(gaps) < 0.25, max(gaps)  # ...while the loop kept ticking


async def test_concurrent_tasks_misattribute_no_verdict(live: LivePKI, serve: Serve) -> None:
    """200 tasks, one client without keep-alive (200 handshakes), a good and a revoked
    server: every verdict belongs to the server asked."""
    good = serve(live.leaf, "good")
    revoked = serve(live.revoked_leaf, "revoked")
    wrong: list[str] = []
    outcomes = {"good": 0, "refused": 0}

    async def one(client: Any, index: int) -> None:
        ask_good = index % 2 == 0
        try:
            response = await client.get((good if ask_good else revoked).url)
        except httpx.ConnectError as error:
            cause = error.__cause__
            outcomes["refused"] += 1
            if not (
                not ask_good
                and isinstance(cause, StapleError)
                and cause.result.serial_number == live.revoked_leaf.cert.serial_number
                and cause.result.status is StapleStatus.REVOKED
            ):
                wrong.append(f"refused {ask_good=} {cause!r}")
            return
        outcomes["good"] += 1
        staple = staplecheck.staple_of(response)
        if not (
            ask_good
            and staple is not None
            and staple.status is StapleStatus.GOOD
            and staple.serial_number == live.leaf.cert.serial_number
        ):
            wrong.append(f"accepted {ask_good=} {staple!r}")

    limits = httpx.Limits(max_connections=200, max_keepalive_connections=0)
    async with new_client(live, limits=limits) as client, anyio.create_task_group() as tasks:
        for index in range(200):
            tasks.start_soon(one, client, index)
    assert wrong == []
    assert outcomes == {"good": 100, "refused": 100}


async def test_concurrent_cold_misses_make_one_query_shared_with_sync_code(
    live: LivePKI, serve: Serve
) -> None:
    """30 tasks connect at once to a server that staples nothing, under hard-fail, with
    one checker: the worker threads share one responder query (single-flight), and a
    sync client on the same checker then answers from its cache."""
    server = serve(live.leaf, None)
    shared = checker()
    before = live.responder.requests
    live.responder.pause()  # every task reaches the checker before the answer comes
    results: list[Any] = []
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=0)
    async with new_client(live, "hard-fail", revocation=shared, limits=limits) as client:

        async def one() -> None:
            results.append(await client.get(server.url))

        async def answer_when_asked() -> None:
            assert await anyio.to_thread.run_sync(live.responder.wait_for_requests, before + 1)
            live.responder.resume()

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(answer_when_asked)
            for _ in range(30):
                tasks.start_soon(one)
    assert len(results) == 30
    sources = {staplecheck.revocation_of(r).source for r in results}  # type: ignore[union-attr]
    assert sources <= {"ocsp", "cache"}
    assert live.responder.requests == before + 1
    with sh.client("hard-fail", verify=live.ca_file, clock=clock, revocation=shared) as sync:
        revocation = staplecheck.revocation_of(sync.get(server.url))
    assert revocation is not None
    assert (revocation.status, revocation.source) == (StapleStatus.GOOD, "cache")
    assert live.responder.requests == before + 1


async def test_keep_alive_keeps_one_verdict(live: LivePKI, serve: Serve) -> None:
    server = serve(live.leaf)
    async with new_client(live) as client:
        responses = [await client.get(server.url) for _ in range(4)]
    assert server.handshakes == 1
    first = staplecheck.staple_of(responses[0])
    assert first is not None
    assert first.status is StapleStatus.GOOD
    assert all(staplecheck.staple_of(r) is first for r in responses)


# --- verification, cancellation, timeouts ----------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_wrong_names_and_untrusted_chains_are_refused(
    mode: str, tls: str, live: LivePKI, serve: Serve
) -> None:
    wrong_name = serve(live.other, tls_version=tls)
    untrusted = serve(live.foreign_leaf, tls_version=tls)
    async with new_client(live, mode) as client:
        with pytest.raises(httpx.ConnectError) as refused:
            await client.get(wrong_name.url)
        verification_cause(refused.value)
        with pytest.raises(httpx.ConnectError) as refused:
            await client.get(untrusted.url)
        verification_cause(refused.value)


async def test_cancellation_mid_handshake_leaves_no_socket(live: LivePKI) -> None:
    with SilentServer() as silent:
        before = open_sockets()
        async with new_client(live) as client:
            with anyio.move_on_after(0.3) as scope:
                await client.get(silent.url)
            assert scope.cancelled_caught
        assert open_sockets() == before


async def test_connect_timeout_covers_the_handshake(live: LivePKI) -> None:
    with SilentServer() as silent:
        before = open_sockets()
        async with new_client(live, timeout=httpx.Timeout(5.0, connect=0.3)) as client:
            with pytest.raises(httpx.ConnectTimeout):
                await client.get(silent.url)
        assert open_sockets() == before


async def test_cancellation_during_the_fallback_leaves_no_socket(
    live: LivePKI, serve: Serve
) -> None:
    """Cancelled while the fallback awaits a held responder: the query is awaited on
    the loop (no worker thread), so the cancellation takes effect at once, the TLS
    socket and the query's socket are closed, and nothing is left running or open."""
    server = serve(live.leaf, None)
    before = open_sockets()
    live.responder.pause()
    policy = Policy(mode="hard-fail", fallback_timeout=1.0)  # type: ignore[arg-type]
    async with new_client(live, policy) as client:
        started = time.monotonic()
        with anyio.move_on_after(0.2) as scope:
            await client.get(server.url)
        assert scope.cancelled_caught
        assert time.monotonic() - started < 0.6  # not the 1 s budget: no thread to wait for
    live.responder.resume()
    # The server's and responder's ends close on their own threads' time: wait for them.
    deadline = time.monotonic() + 5
    while open_sockets() != before and time.monotonic() < deadline:
        await anyio.sleep(0.02)
    assert open_sockets() == before


# --- HTTP/2 and proxies ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def nginx_h2(live: LivePKI) -> Iterator[Any]:
    require_program("nginx")
    directory = live.directory / "nginx-h2"
    directory.mkdir()
    chain, key = live.leaf.write(directory)
    staple = directory / "staple.der"
    staple.write_bytes(live.intermediate.ocsp_response(live.leaf, this_update=NOW))
    server = Http2Nginx(chain, key, staple)
    with server:
        yield server


async def test_http2_multiplexes_on_one_checked_connection(live: LivePKI, nginx_h2: Any) -> None:
    async with new_client(live, http2=True) as client:
        responses: list[Any] = []

        async def get() -> None:
            responses.append(await client.get(nginx_h2.url()))

        async with anyio.create_task_group() as tasks:
            for _ in range(30):
                tasks.start_soon(get)
    assert {r.http_version for r in responses} == {"HTTP/2"}
    assert len({id(r.extensions["network_stream"]) for r in responses}) == 1
    staples = {id(staplecheck.staple_of(r)) for r in responses}
    assert len(staples) == 1
    first = staplecheck.staple_of(responses[0])
    assert first is not None
    assert first.status is StapleStatus.GOOD


async def test_connect_proxy(live: LivePKI, serve: Serve) -> None:
    good = serve(live.leaf)
    revoked = serve(live.leaf, "revoked")
    with ConnectProxy() as proxy:
        async with new_client(live, proxy=proxy.url) as client:
            response = await client.get(good.url)
            assert staplecheck.staple_of(response).status is StapleStatus.GOOD  # type: ignore[union-attr]
            with pytest.raises(httpx.ConnectError) as refused:
                await client.get(revoked.url)
            assert staple_cause(refused.value).result.status is StapleStatus.REVOKED
        assert len(proxy.tunnels) == 2
