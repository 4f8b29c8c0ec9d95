"""staplecheck.aiohttp: the revocation check on aiohttp's own (stdlib) handshakes.

aiohttp cannot ask for a staple, so every connection is judged as one without: the
tests check each policy against a live OCSP responder's answers (good, revoked,
unknown, none), CRLs, must-staple certificates, TLS 1.2 and 1.3, wrong names and
untrusted chains, keep-alive, 120 concurrent tasks, a CONNECT proxy, the event loop
while a responder is slow, cancellation, and the refusal of every way around
verification. Real handshakes only: the in-process stapling server, openssl s_server,
a real OCSP responder and CRL server.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ssl
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

aiohttp = pytest.importorskip("aiohttp")

import staplecheck  # noqa: E402
import staplecheck.aiohttp as sa  # noqa: E402
from staplecheck import (  # noqa: E402
    HostPolicies,
    Policy,
    RevocationError,
    StapleError,
    StapleStatus,
)
from staplecheck.testing import Identity, StaplingServer  # noqa: E402
from tests.conftest import require_program  # noqa: E402
from tests.httpx_helpers import (  # noqa: E402
    NOW,
    LivePKI,
    SilentServer,
    behaving,
    checker,
    clock,
    make_live_pki,
    open_sockets,
)
from tests.realservers import OpenSSLServer  # noqa: E402
from tests.revocation_servers import LEAF_CRL, revocation_pki  # noqa: E402
from tests.test_adapter_features import ConnectProxy  # noqa: E402

T = TypeVar("T")
MODES = ("off", "soft-fail", "must-staple", "hard-fail")


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


def run(coroutine: Awaitable[T]) -> T:
    """Run ``coroutine`` on a new event loop, and keep the loop until the sockets it
    opened are closed: a closed session shuts its TLS connections down on the loop's
    time (aiohttp 3.10 waits for the server's close_notify), and a loop closed before
    then leaves them to the garbage collector (a ResourceWarning)."""

    async def main() -> T:
        before = open_sockets()
        try:
            return await coroutine
        finally:
            await settle(before)

    return asyncio.run(main())


async def settle(count: int) -> None:
    """Wait (5 s at most) until this process holds no more than ``count`` sockets."""
    deadline = time.monotonic() + 5
    while open_sockets() > count and time.monotonic() < deadline:
        await asyncio.sleep(0.02)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePKI]:
    pki = make_live_pki(tmp_path_factory.mktemp("aiohttp-pki"))
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
    """Stapling servers, stopped after the test. They staple a good response: the
    stdlib never asks for it, so it must change nothing."""
    with contextlib.ExitStack() as stack:

        def start(identity: Identity, **options: Any) -> StaplingServer:
            staple = identity.issuer.ocsp_response(identity, "good", this_update=NOW)
            return stack.enter_context(StaplingServer(identity, staple, **options))

        yield start


def new_session(live: LivePKI, policy: Any = "soft-fail", **kwargs: Any) -> Any:
    kwargs.setdefault("verify", live.ca_file)
    kwargs.setdefault("clock", clock)
    kwargs.setdefault("revocation", checker())
    return sa.client_session(policy, **kwargs)


async def fetch(session: Any, url: str, **options: Any) -> Any:
    """GET ``url``; the response, its body read."""
    async with session.get(url, **options) as response:
        await response.read()
        assert response.status == 200
        return response


async def sockets_back_to(count: int) -> None:
    """Assert that this process soon holds no more than ``count`` sockets again: TLS
    transports close on the loop's time, servers and responders on their threads' (an
    earlier test's may close meanwhile, hence no more rather than exactly)."""
    await settle(count)
    assert open_sockets() <= count


def refusal(error: BaseException) -> StapleError:
    """The staplecheck refusal behind an aiohttp error (checked for its shape)."""
    assert isinstance(error, sa.ClientRevocationError), repr(error)
    assert isinstance(error, aiohttp.ClientConnectorCertificateError)
    cause = error.__cause__
    assert isinstance(cause, StapleError), repr(cause)
    assert error.certificate_error is cause
    assert error.error is cause
    assert str(cause) in str(error)
    return cause


# --- the policy table ----------------------------------------------------------------------

# (policy, responder's answer) -> expected: "accept" (and the revocation source), or
# the refusal's class and revocation status. No staple can arrive (the stdlib cannot
# ask), so these are the rows "missing staple" of docs/policies.md.
ANSWERS = ("good", "revoked", "unknown", "no answer")
SOFT_WITH_OCSP = Policy(fallback=("ocsp",))
POLICIES: dict[str, Any] = {
    "off": "off",
    "soft-fail": "soft-fail",
    "must-staple": "must-staple",
    "hard-fail": "hard-fail",
    "soft-fail+ocsp": SOFT_WITH_OCSP,
}
EXPECTED: dict[tuple[str, str], tuple[str, object]] = {}
for _answer in ANSWERS:
    EXPECTED["off", _answer] = ("accept", None)
    EXPECTED["soft-fail", _answer] = ("accept", None)  # no fallback: nobody is asked
    EXPECTED["must-staple", _answer] = ("staple", StapleStatus.MISSING)
for _name in ("hard-fail", "soft-fail+ocsp"):
    EXPECTED[_name, "good"] = ("accept", "ocsp")
    EXPECTED[_name, "revoked"] = ("revocation", StapleStatus.REVOKED)
    EXPECTED[_name, "unknown"] = ("revocation", StapleStatus.UNKNOWN)
EXPECTED["hard-fail", "no answer"] = ("revocation", StapleStatus.MISSING)
EXPECTED["soft-fail+ocsp", "no answer"] = ("accept", None)


@pytest.mark.parametrize("answer", ANSWERS)
def test_policy_table(answer: str, tls: str, live: LivePKI, serve: Serve) -> None:
    server = serve(live.leaf, tls_version=tls)
    if answer == "no answer":
        live.responder.misbehave("close")
    else:
        live.responder.set_status(
            live.leaf, answer, revocation_reason="keyCompromise" if answer == "revoked" else None
        )

    async def one(name: str) -> None:
        expected, detail = EXPECTED[name, answer]
        asked_before = live.responder.requests
        async with new_session(live, POLICIES[name]) as session:
            if expected == "accept":
                response = await fetch(session, server.url)
                staple = staplecheck.staple_of(response)
                revocation = staplecheck.revocation_of(response)
                if name == "off":
                    assert (staple, revocation) == (None, None)
                    return
                assert staple is not None
                assert staple.status is StapleStatus.MISSING, staple
                assert staple.serial_number == live.leaf.cert.serial_number
                if name == "soft-fail":
                    assert revocation is None
                    assert live.responder.requests == asked_before
                else:
                    assert revocation is not None
                    assert revocation.accepted
                    assert revocation.source == detail, revocation
                    if detail == "ocsp":
                        assert revocation.status is StapleStatus.GOOD
                return
            with pytest.raises(aiohttp.ClientConnectionError) as refused:
                await fetch(session, server.url)
            error = refusal(refused.value)
            assert error.result.status is StapleStatus.MISSING
            if expected == "staple":
                assert not isinstance(error, RevocationError)
                assert live.responder.requests == asked_before  # refused before asking
            else:
                assert isinstance(error, RevocationError), repr(error)
                assert error.revocation.status is detail, error.revocation
                assert not error.revocation.accepted

    for name in POLICIES:
        run(one(name))
    assert server.staples_sent == 0  # the stdlib never asked


@pytest.mark.parametrize("mode", ["soft-fail", "hard-fail", "must-staple"])
def test_a_must_staple_certificate_is_refused_without_asking(
    mode: str, live: LivePKI, serve: Serve
) -> None:
    """RFC 7633: only a good staple will do, and aiohttp can never get one."""
    server = serve(live.must_staple_leaf)
    before = live.responder.requests

    async def go() -> None:
        async with new_session(live, mode) as session:
            with pytest.raises(aiohttp.ClientConnectionError) as refused:
                await fetch(session, server.url)
        error = refusal(refused.value)
        assert not isinstance(error, RevocationError)
        assert error.result.status is StapleStatus.MISSING
        assert error.result.must_staple

    run(go())
    assert live.responder.requests == before


def test_off_accepts_a_must_staple_certificate(live: LivePKI, serve: Serve) -> None:
    server = serve(live.must_staple_leaf)

    async def go() -> Any:
        async with new_session(live, "off") as session:
            return await fetch(session, server.url)

    response = run(go())
    assert staplecheck.staple_of(response) is None


def test_crls_answer_too(tmp_path: Path) -> None:
    """A fallback on CRLs only: an empty CRL accepts, one listing the leaf refuses."""
    with revocation_pki(str(tmp_path)) as pki, StaplingServer(pki.leaf, None) as server:
        policy = Policy(mode="hard-fail", fallback=("crl",))  # type: ignore[arg-type]

        async def go() -> Any:
            async with sa.client_session(
                policy, verify=pki.trust, clock=lambda: NOW, revocation=pki.checker()
            ) as session:
                return await fetch(session, server.url)

        revocation = staplecheck.revocation_of(run(go()))
        assert revocation is not None
        assert (revocation.status, revocation.source) == (StapleStatus.GOOD, "crl")
        pki.crls.set_crl(LEAF_CRL, pki.intermediate.crl([pki.leaf]))
        with pytest.raises(aiohttp.ClientConnectionError) as refused:
            run(go())
        error = refusal(refused.value)
        assert isinstance(error, RevocationError)
        assert (error.revocation.status, error.revocation.source) == (StapleStatus.REVOKED, "crl")


class BrokenChecker(staplecheck.RevocationChecker):
    """A caller's checker whose store is down: it raises instead of answering."""

    def check(self, *args: Any, **kwargs: Any) -> staplecheck.RevocationResult:
        raise RuntimeError("the store is down")

    async def check_async(self, *args: Any, **kwargs: Any) -> staplecheck.RevocationResult:
        raise RuntimeError("the store is down")


@pytest.mark.parametrize("mode", ["hard-fail", "soft-fail+ocsp"])
def test_a_failing_checker_refuses(mode: str, live: LivePKI, serve: Serve) -> None:
    """Fail closed, even under soft-fail: the error is the checker's own, not an
    answer nobody gave; and it reaches the caller as a refusal, never raw."""
    server = serve(live.leaf)

    async def go() -> None:
        async with new_session(live, POLICIES[mode], revocation=BrokenChecker()) as session:
            with pytest.raises(aiohttp.ClientConnectionError) as refused:
                await fetch(session, server.url)
        error = refusal(refused.value)
        assert isinstance(error, RevocationError)
        assert "the store is down" in error.revocation.reason

    run(go())


def test_host_policies(live: LivePKI, serve: Serve) -> None:
    server = serve(live.leaf)
    policies = HostPolicies("soft-fail", {"localhost": "must-staple"})

    async def go() -> None:
        async with new_session(live, policies) as session:
            by_ip = await fetch(session, server.url.replace("localhost", "127.0.0.1"))
            assert staplecheck.staple_of(by_ip).status is StapleStatus.MISSING  # type: ignore[union-attr]
            with pytest.raises(aiohttp.ClientConnectionError) as refused:
                await fetch(session, server.url)
            assert refusal(refused.value).host == "localhost"

    run(go())


# --- real servers ----------------------------------------------------------------------------


@pytest.mark.parametrize("tls_version", ["1.2", "1.3"])
def test_openssl_s_server(tls_version: str, live: LivePKI, tmp_path: Path) -> None:
    """openssl s_server, stapling a good response nobody asks for: hard-fail asks the
    responder instead; must-staple refuses, the staple notwithstanding."""
    require_program("openssl")
    chain, key = live.leaf.write(tmp_path)
    staple = tmp_path / "staple.der"
    staple.write_bytes(live.intermediate.ocsp_response(live.leaf, this_update=NOW))
    with OpenSSLServer(chain, key, staple, tls_version=tls_version) as server:  # type: ignore[arg-type]

        async def go(mode: str) -> Any:
            async with new_session(live, mode) as session:
                return await fetch(session, server.url())

        response = run(go("hard-fail"))
        assert response.connection is None  # released: the verdict stays on the response
        revocation = staplecheck.revocation_of(response)
        assert revocation is not None
        assert (revocation.status, revocation.source) == (StapleStatus.GOOD, "ocsp")
        assert revocation.serial_number == live.leaf.cert.serial_number
        with pytest.raises(aiohttp.ClientConnectionError) as refused:
            run(go("must-staple"))
        assert refusal(refused.value).result.status is StapleStatus.MISSING


# --- verification ------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_wrong_names_and_untrusted_chains_are_refused(
    mode: str, tls: str, live: LivePKI, serve: Serve
) -> None:
    wrong_name = serve(live.other, tls_version=tls)
    untrusted = serve(live.foreign_leaf, tls_version=tls)
    before = live.responder.requests

    async def go() -> None:
        async with new_session(live, mode) as session:
            for url in (wrong_name.url, untrusted.url):
                with pytest.raises(aiohttp.ClientConnectorCertificateError) as refused:
                    await fetch(session, url)
                assert not isinstance(refused.value, sa.ClientRevocationError)
                cause = refused.value.certificate_error
                assert isinstance(cause, ssl.SSLCertVerificationError), repr(cause)
                assert not isinstance(cause, StapleError)

    run(go())
    assert live.responder.requests == before


def test_verified_chain_is_the_chain_openssl_built(live: LivePKI, serve: Serve) -> None:
    """Leaf, intermediate, root: DER as issued (3.13's public call or the private one)."""
    server = serve(live.leaf)

    async def go() -> tuple[bytes, ...]:
        context = sa.make_ssl_context(live.ca_file)
        _, writer = await asyncio.open_connection(
            "127.0.0.1", server.port, ssl=context, server_hostname="localhost"
        )
        try:
            return sa.verified_chain(writer.get_extra_info("ssl_object"))
        finally:
            writer.close()
            await writer.wait_closed()

    chain = run(go())
    assert chain == (der(live.leaf.cert), der(live.intermediate.cert), der(live.root.cert))


def test_verification_cannot_be_turned_off(live: LivePKI, serve: Serve, tmp_path: Path) -> None:
    server = serve(live.leaf)
    lax = ssl.create_default_context(cafile=live.ca_file)
    lax.check_hostname = False
    with pytest.raises(ValueError, match="never turns certificate verification off"):
        sa.make_ssl_context(False)
    with pytest.raises(FileNotFoundError):
        sa.make_ssl_context(str(tmp_path / "nothing.pem"))

    async def go() -> None:
        with pytest.raises(ValueError, match="CERT_REQUIRED"):
            sa.StapleConnector(ssl=lax)
        for name in ("ssl_context", "verify_ssl", "fingerprint"):
            with pytest.raises(TypeError, match=name):
                sa.StapleConnector(**{name: None})
        with pytest.raises(TypeError, match="connector"):
            sa.client_session(connector=aiohttp.TCPConnector())
        before = open_sockets()
        async with new_session(live) as session:
            fingerprint = aiohttp.Fingerprint(hashlib.sha256(der(live.leaf.cert)).digest())
            for per_request in (False, fingerprint):
                with pytest.raises(ValueError, match="never connects without verification"):
                    await fetch(session, server.url, ssl=per_request)
            with pytest.raises(ValueError, match="CERT_REQUIRED"):
                await fetch(session, server.url, ssl=lax)
            with pytest.raises(ValueError, match="http:// proxies"):
                await fetch(session, server.url, proxy="https://127.0.0.1:9")
            # A verifying context of the caller's own, per request: checked as usual.
            mine = ssl.create_default_context(cafile=live.ca_file)
            response = await fetch(session, server.url, ssl=mine)
            assert staplecheck.staple_of(response).status is StapleStatus.MISSING  # type: ignore[union-attr]
        await sockets_back_to(before)

    run(go())
    assert server.handshakes == 1


def test_trust_from_a_directory_and_mutual_tls(live: LivePKI, serve: Serve) -> None:
    # TLS 1.2: a server that wants a client certificate refuses its absence inside the
    # handshake. Under TLS 1.3 it does so after the client's handshake is done, racing
    # the request, and aiohttp may then leave its TLS transport to the GC (a warning).
    server = serve(live.leaf, client_ca=live.intermediate, tls_version="1.2")
    certfile, keyfile = live.client_files

    async def go() -> None:
        client = (certfile, keyfile)
        async with new_session(live, "hard-fail", verify=live.ca_dir, cert=client) as session:
            response = await fetch(session, server.url)
        assert staplecheck.revocation_of(response).status is StapleStatus.GOOD  # type: ignore[union-attr]
        async with new_session(live, "hard-fail", verify=live.ca_dir) as session:
            with pytest.raises(aiohttp.ClientConnectorError):
                await fetch(session, server.url)  # no client certificate: the server refuses

    run(go())


# --- keep-alive, concurrency, proxies --------------------------------------------------------


def test_keep_alive_keeps_one_verdict(live: LivePKI, serve: Serve) -> None:
    server = serve(live.leaf)
    before = live.responder.requests

    async def go() -> list[Any]:
        async with new_session(live, "hard-fail") as session:
            return [await fetch(session, server.url) for _ in range(4)]

    responses = run(go())
    assert server.handshakes == 1
    first = staplecheck.revocation_of(responses[0])
    assert first is not None
    assert first.source == "ocsp"
    assert all(staplecheck.revocation_of(r) is first for r in responses)
    assert live.responder.requests == before + 1  # one check for the one connection


def test_concurrent_tasks_misattribute_no_verdict(live: LivePKI, serve: Serve) -> None:
    """120 tasks, a new connection each (120 handshakes and checks), a server whose
    certificate is good and one whose certificate is revoked: every verdict belongs to
    the server asked."""
    good = serve(live.leaf)
    revoked = serve(live.revoked_leaf)
    wrong: list[str] = []
    outcomes = {"good": 0, "refused": 0}

    async def one(session: Any, index: int) -> None:
        ask_good = index % 2 == 0
        try:
            response = await fetch(session, (good if ask_good else revoked).url)
        except aiohttp.ClientConnectionError as error:
            outcomes["refused"] += 1
            cause = error.__cause__
            if not (
                not ask_good
                and isinstance(cause, RevocationError)
                and cause.revocation.serial_number == live.revoked_leaf.cert.serial_number
                and cause.revocation.status is StapleStatus.REVOKED
            ):
                wrong.append(f"refused {ask_good=} {error!r}")
            return
        outcomes["good"] += 1
        revocation = staplecheck.revocation_of(response)
        if not (
            ask_good
            and revocation is not None
            and revocation.status is StapleStatus.GOOD
            and revocation.serial_number == live.leaf.cert.serial_number
        ):
            wrong.append(f"accepted {ask_good=} {revocation!r}")

    async def go() -> None:
        options = {"force_close": True, "limit": 0}
        async with new_session(live, "hard-fail", connector_options=options) as session:
            await asyncio.gather(*(one(session, index) for index in range(120)))

    run(go())
    assert wrong == []
    assert outcomes == {"good": 60, "refused": 60}
    assert good.handshakes + revoked.handshakes == 120


def test_connect_proxy_checks_the_origin(live: LivePKI, serve: Serve) -> None:
    """Through a CONNECT tunnel the handshake is with the origin: its chain is the one
    checked (the proxy speaks no TLS)."""
    good = serve(live.leaf)
    revoked = serve(live.revoked_leaf)

    async def go(proxy: ConnectProxy) -> None:
        async with new_session(live, "hard-fail") as session:
            response = await fetch(session, good.url, proxy=proxy.url)
            revocation = staplecheck.revocation_of(response)
            assert revocation is not None
            assert revocation.status is StapleStatus.GOOD
            assert revocation.serial_number == live.leaf.cert.serial_number
            with pytest.raises(aiohttp.ClientConnectionError) as refused:
                await fetch(session, revoked.url, proxy=proxy.url)
            error = refusal(refused.value)
            assert isinstance(error, RevocationError)
            assert error.revocation.serial_number == live.revoked_leaf.cert.serial_number

    with ConnectProxy() as proxy:
        run(go(proxy))
        assert len(proxy.tunnels) == 2
    assert good.handshakes == revoked.handshakes == 1


# --- the event loop, timeouts, cancellation ------------------------------------------------


def test_the_check_never_blocks_the_event_loop(live: LivePKI, serve: Serve) -> None:
    """hard-fail and a responder that holds its answer for 0.6 s: the request waits for
    it, the event loop keeps running (a 5 ms ticker never stalls long)."""
    server = serve(live.leaf)
    held = 0.6
    before = live.responder.requests
    live.responder.pause()

    async def go() -> tuple[Any, float, list[float]]:
        gaps: list[float] = []
        done = asyncio.Event()

        async def ticker() -> None:
            last = time.monotonic()
            while not done.is_set():
                await asyncio.sleep(0.005)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        async def answer_late() -> None:
            assert await asyncio.to_thread(live.responder.wait_for_requests, before + 1)
            await asyncio.sleep(held)  # the slow responder: what the loop must not wait for
            live.responder.resume()

        policy = Policy(mode="hard-fail", fallback_timeout=10.0)  # type: ignore[arg-type]
        async with new_session(live, policy) as session:
            tasks = [asyncio.create_task(ticker()), asyncio.create_task(answer_late())]
            started = time.monotonic()
            response = await fetch(session, server.url)
            elapsed = time.monotonic() - started
            done.set()
            await asyncio.gather(*tasks)
        return response, elapsed, gaps

    response, elapsed, gaps = run(go())
    revocation = staplecheck.revocation_of(response)
    assert revocation is not None
    assert (revocation.status, revocation.source) == (StapleStatus.GOOD, "ocsp")
    assert elapsed >= held  # the check did wait for the slow responder...
    assert len(gaps) > 20
    assert max(gaps) < 0.25, max(gaps)  # ...while the loop kept ticking


def test_the_request_timeout_bounds_the_check(live: LivePKI, serve: Serve) -> None:
    """A budget of 10 s in the policy, 0.5 s in the request: the request's wins."""
    server = serve(live.leaf)
    live.responder.pause()

    async def go() -> float:
        policy = Policy(mode="hard-fail", fallback_timeout=10.0)  # type: ignore[arg-type]
        timeout = aiohttp.ClientTimeout(total=30, sock_connect=0.5)
        async with new_session(live, policy, timeout=timeout) as session:
            started = time.monotonic()
            with pytest.raises(aiohttp.ClientConnectionError) as refused:
                await fetch(session, server.url)
            error = refusal(refused.value)
            assert isinstance(error, RevocationError)
            assert error.revocation.status is StapleStatus.MISSING
            return time.monotonic() - started

    assert 0.4 < run(go()) < 5  # the policy alone would have waited 10 s


def test_cancellation_mid_handshake_leaves_no_socket(live: LivePKI) -> None:
    async def go() -> None:
        with SilentServer() as silent:
            before = open_sockets()
            async with new_session(live) as session:
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(fetch(session, silent.url), 0.3)
            await sockets_back_to(before)

    run(go())


def test_cancellation_during_the_check_leaves_no_socket(live: LivePKI, serve: Serve) -> None:
    """Cancelled while the check waits for a held responder: the check is cancelled and
    the TLS connection aborted; no socket stays open (the responder's included)."""
    server = serve(live.leaf)
    asked = live.responder.requests + 1

    async def go() -> None:
        before = open_sockets()
        live.responder.pause()
        policy = Policy(mode="hard-fail", fallback_timeout=1.0)  # type: ignore[arg-type]
        async with new_session(live, policy) as session:
            task = asyncio.create_task(fetch(session, server.url))
            assert await asyncio.to_thread(live.responder.wait_for_requests, asked)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        live.responder.resume()
        await sockets_back_to(before)

    run(go())
