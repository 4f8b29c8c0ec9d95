"""staplecheck.httpx, sync: real handshakes against the in-process stapling server (TLS
1.2 and 1.3), nginx with HTTP/2, a CONNECT proxy and a live OCSP responder.

Every row of the policy table under off, soft-fail, must-staple and hard-fail; the
refusal is ``httpx.ConnectError`` caused by staplecheck's error; keep-alive keeps one
verdict; wrong names and untrusted chains are refused under every policy; 8 threads
across a good and a revoked server misattribute nothing.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# httpx, or httpx2 where only it is installed (staplecheck.httpx.FLAVOUR says which).
httpx = pytest.importorskip("staplecheck.clients._httplib").httpx

import staplecheck  # noqa: E402
import staplecheck.httpx as sh  # noqa: E402
from staplecheck import (  # noqa: E402
    HostPolicies,
    Policy,
    RevocationError,
    StapleError,
    StapleStatus,
    TLSConfig,
    VerdictLog,
)
from staplecheck.testing import POLICY_CASES, Identity, StapleCase, StaplingServer  # noqa: E402
from tests.conftest import require_program  # noqa: E402
from tests.httpx_helpers import (  # noqa: E402
    NOW,
    Http2Nginx,
    LivePKI,
    behaving,
    checker,
    clock,
    expected_accept,
    make_live_pki,
    staple_cause,
    verification_cause,
)
from tests.realservers import SERVER_KINDS, launch  # noqa: E402
from tests.test_adapter_features import ConnectProxy  # noqa: E402

MODES = ("off", "soft-fail", "must-staple", "hard-fail")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePKI]:
    pki = make_live_pki(tmp_path_factory.mktemp("httpx-pki"))
    with pki.responder:
        yield pki


@pytest.fixture(autouse=True)
def _responder_behaves(live: LivePKI) -> Iterator[None]:
    yield from behaving(live)


@pytest.fixture(params=["1.2", "1.3"], ids=["tls1.2", "tls1.3"])
def tls(request: pytest.FixtureRequest) -> str:
    version: str = request.param
    return version


@pytest.fixture
def cleanup() -> Iterator[contextlib.ExitStack]:
    with contextlib.ExitStack() as stack:
        yield stack


Serve = Callable[..., StaplingServer]
NewClient = Callable[..., Any]
StartNginx = Callable[[str], Any]


@pytest.fixture
def serve(cleanup: contextlib.ExitStack) -> Serve:
    def start(identity: Identity, staple: str | bytes | None = "good", **options: Any) -> Any:
        der = (
            identity.issuer.ocsp_response(identity, staple, this_update=NOW)
            if isinstance(staple, str)
            else staple
        )
        return cleanup.enter_context(StaplingServer(identity, der, **options))

    return start


@pytest.fixture
def new_client(cleanup: contextlib.ExitStack, live: LivePKI) -> NewClient:
    def make(policy: Any = "soft-fail", **kwargs: Any) -> Any:
        kwargs.setdefault("verify", live.ca_file)
        kwargs.setdefault("clock", clock)
        kwargs.setdefault("revocation", checker())
        return cleanup.enter_context(sh.client(policy, **kwargs))

    return make


# --- the policy table ------------------------------------------------------------------------


@pytest.mark.parametrize("case", POLICY_CASES, ids=lambda c: c.name)
def test_policy_table(
    case: StapleCase, tls: str, live: LivePKI, serve: Serve, new_client: NewClient
) -> None:
    """Every row under every mode: accepted with the verdict on the response, or refused
    with httpx.ConnectError caused by StapleError carrying the same verdict. hard-fail
    asks the responder (good) when the staple is missing or stale."""
    leaf = live.leaf_for(case)
    server = serve(leaf, case.staple(leaf.issuer, leaf, NOW), tls_version=tls)
    for mode in MODES:
        client = new_client(mode)
        if expected_accept(mode, case, StapleStatus.GOOD):
            response = client.get(server.url)
            assert response.status_code == 200
            staple = staplecheck.staple_of(response)
            if mode == "off":
                assert staple is None
                continue
            assert staple is not None
            assert staple.status is case.status, (mode, staple)
            assert response.extensions["staple"] is staple
            revocation = staplecheck.revocation_of(response)
            if mode == "hard-fail":
                assert revocation is not None
                assert revocation.status is StapleStatus.GOOD
                source = "staple" if case.status is StapleStatus.GOOD else "ocsp"
                assert revocation.source == source
            else:
                assert revocation is None
        else:
            with pytest.raises(httpx.ConnectError) as refused:
                client.get(server.url)
            error = staple_cause(refused.value)
            assert error.result.status is case.status, (mode, error.result)
            assert str(error) in str(refused.value)


@pytest.mark.parametrize(
    ("mode", "answer", "accepted"),
    [
        ("hard-fail", "good", True),
        ("hard-fail", "revoked", False),
        ("hard-fail", "unknown", False),
        ("hard-fail", None, False),  # the responder is down
        ("soft-fail+ocsp", "good", True),
        ("soft-fail+ocsp", "revoked", False),
        ("soft-fail+ocsp", None, True),
    ],
)
def test_fallback_decides_a_missing_staple(
    mode: str,
    answer: str | None,
    accepted: bool,
    tls: str,
    live: LivePKI,
    serve: Serve,
    new_client: NewClient,
) -> None:
    """No staple: the fallback asks the certificate's responder (in the calling thread,
    for the sync transport) and its answer decides; a refusal's cause is a
    RevocationError carrying the fallback's verdict."""
    server = serve(live.leaf, None, tls_version=tls)
    if answer is None:
        live.responder.misbehave("close")
    else:
        live.responder.set_status(live.leaf, answer)
    policy: Any = mode
    if mode == "soft-fail+ocsp":
        policy = Policy(fallback=("ocsp",))
    client = new_client(policy)
    if accepted:
        response = client.get(server.url)
        revocation = staplecheck.revocation_of(response)
        assert revocation is not None
        assert staplecheck.staple_of(response).status is StapleStatus.MISSING  # type: ignore[union-attr]
        if answer is None:
            assert revocation.source is None
        else:
            assert (revocation.status, revocation.source) == (StapleStatus.GOOD, "ocsp")
        assert response.extensions["revocation"] is revocation
    else:
        with pytest.raises(httpx.ConnectError) as refused:
            client.get(server.url)
        error = refused.value.__cause__
        assert isinstance(error, RevocationError), repr(error)
        expected = {"revoked": StapleStatus.REVOKED, "unknown": StapleStatus.UNKNOWN}
        if answer in expected:
            assert error.revocation.status is expected[answer]
            assert error.revocation.source == "ocsp"
        else:
            assert error.revocation.source is None
    assert live.responder.requests >= 1


# --- verification is never weakened --------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_wrong_host_name_is_refused_under_every_policy(
    mode: str, tls: str, live: LivePKI, serve: Serve, new_client: NewClient
) -> None:
    server = serve(live.other, "good", tls_version=tls)
    with pytest.raises(httpx.ConnectError) as refused:
        new_client(mode).get(server.url)
    assert "localhost" in str(verification_cause(refused.value))


@pytest.mark.parametrize("mode", MODES)
def test_untrusted_chain_is_refused_under_every_policy(
    mode: str, tls: str, live: LivePKI, serve: Serve, new_client: NewClient
) -> None:
    server = serve(live.foreign_leaf, "good", tls_version=tls)
    with pytest.raises(httpx.ConnectError) as refused:
        new_client(mode).get(server.url)
    assert verification_cause(refused.value).verify_code in (2, 19, 20)
    # And trusting the foreign root does not make the right server trusted.
    right = serve(live.leaf, "good", tls_version=tls)
    with pytest.raises(httpx.ConnectError):
        new_client(mode, verify=live.foreign_ca_file).get(right.url)


def test_files_that_cannot_be_loaded_fail_at_construction(live: LivePKI) -> None:
    bad = live.directory / "not-a-certificate.pem"
    bad.write_text("not a certificate\n")
    with pytest.raises(ssl.SSLError, match="cannot load CA file"):
        sh.StapleTransport(verify=str(bad))
    with pytest.raises(ssl.SSLError, match="cannot load client certificate file"):
        sh.AsyncStapleTransport(cert=str(bad))


def test_verification_cannot_be_turned_off(live: LivePKI) -> None:
    with pytest.raises(ValueError, match="never turns certificate verification off"):
        sh.StapleTransport(verify=False)
    with pytest.raises(TypeError, match="cannot ask for a staple"):
        sh.StapleTransport(verify=ssl.create_default_context())  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError):
        sh.StapleTransport(verify=str(live.directory / "nope.pem"))


# --- connections -----------------------------------------------------------------------------


def test_keep_alive_reuses_one_connection_and_one_verdict(
    live: LivePKI, serve: Serve, new_client: NewClient
) -> None:
    server = serve(live.leaf)
    client = new_client()
    responses = [client.get(server.url) for _ in range(5)]
    assert server.handshakes == 1
    assert server.requests == 5
    first = staplecheck.staple_of(responses[0])
    assert first is not None
    assert first.status is StapleStatus.GOOD
    assert all(staplecheck.staple_of(r) is first for r in responses)


def test_every_new_connection_is_checked(
    live: LivePKI, serve: Serve, new_client: NewClient
) -> None:
    """No keep-alive: each request handshakes, and a staple that turns revoked between
    connections is refused on the next one."""
    staples = [live.intermediate.ocsp_response(live.leaf, this_update=NOW)]
    server = serve(live.leaf, lambda: staples[-1])
    client = new_client(limits=httpx.Limits(max_keepalive_connections=0))
    assert staplecheck.staple_of(client.get(server.url)).status is StapleStatus.GOOD  # type: ignore[union-attr]
    staples.append(live.intermediate.ocsp_response(live.leaf, "revoked", this_update=NOW))
    with pytest.raises(httpx.ConnectError) as refused:
        client.get(server.url)
    assert staple_cause(refused.value).result.status is StapleStatus.REVOKED
    assert server.staples_sent == 2


def test_trust_from_a_ca_directory_and_a_tls_config(
    live: LivePKI, serve: Serve, new_client: NewClient
) -> None:
    server = serve(live.leaf, tls_version="1.2")
    response = new_client(verify=live.ca_dir).get(server.url)
    assert staplecheck.staple_of(response).status is StapleStatus.GOOD  # type: ignore[union-attr]
    config = TLSConfig(cadata=(live.root.cert_pem,), maximum_version=ssl.TLSVersion.TLSv1_2)
    response = new_client(verify=True, tls=config).get(server.url)
    assert staplecheck.staple_of(response).status is StapleStatus.GOOD  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="tls="):
        sh.StapleTransport(verify=live.ca_file, tls=config)


def test_mutual_tls(tls: str, live: LivePKI, serve: Serve, new_client: NewClient) -> None:
    server = serve(live.leaf, tls_version=tls, client_ca=live.root)
    response = new_client(cert=live.client_files).get(server.url)
    assert staplecheck.staple_of(response).status is StapleStatus.GOOD  # type: ignore[union-attr]
    # No client certificate: TLS 1.3 servers refuse after the client's handshake ends,
    # at the first read.
    with pytest.raises((httpx.ConnectError, httpx.ReadError)):
        new_client().get(server.url)
    revoked = serve(live.leaf, "revoked", tls_version=tls, client_ca=live.root)
    with pytest.raises(httpx.ConnectError) as refused:
        new_client(cert=live.client_files).get(revoked.url)
    assert staple_cause(refused.value).result.status is StapleStatus.REVOKED


def test_host_policies_and_the_verdict_log(
    live: LivePKI, serve: Serve, new_client: NewClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Per-host policies: 127.0.0.1 is must-staple, localhost soft-fail; the same
    unstapled server passes under one name and is refused under the other."""
    server = serve(live.leaf, None)
    policies = HostPolicies("soft-fail", {"127.0.0.1": "must-staple"})
    client = new_client(policies, log=VerdictLog())
    response = client.get(server.url)
    assert staplecheck.staple_of(response).status is StapleStatus.MISSING  # type: ignore[union-attr]
    with pytest.raises(httpx.ConnectError) as refused:
        client.get(f"https://127.0.0.1:{server.port}/")
    assert staple_cause(refused.value).result.status is StapleStatus.MISSING


def test_plain_http_requests_carry_no_verdict(live: LivePKI, new_client: NewClient) -> None:
    """An http:// URL goes through the same transport, without TLS and without a
    verdict (the OCSP responder answers GET / with an error status)."""
    response = new_client().get(live.responder.url)
    assert staplecheck.staple_of(response) is None
    assert "staple" not in response.extensions


def test_a_body_ended_by_a_bare_close(live: LivePKI, new_client: NewClient) -> None:
    """An HTTP/1.0 body that ends when the server closes the TCP connection without a
    TLS close_notify (many servers do): the body is read to its end, as with httpx's
    own transport (the stdlib's suppress_ragged_eofs)."""
    from OpenSSL import SSL

    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.use_certificate(live.leaf.cert)
    for extra in live.leaf.chain[1:]:
        context.add_extra_chain_cert(extra)
    context.use_privatekey(live.leaf.private_key)
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        sock, _ = listener.accept()
        with sock:
            connection = SSL.Connection(context, sock)
            connection.set_accept_state()
            connection.do_handshake()
            connection.recv(65536)
            connection.sendall(b"HTTP/1.0 200 OK\r\n\r\nuntil the connection ends")

    server = threading.Thread(target=serve)
    server.start()
    try:
        response = new_client().get(f"https://localhost:{listener.getsockname()[1]}/")
    finally:
        server.join(timeout=10)
        listener.close()
    assert response.text == "until the connection ends"
    assert staplecheck.staple_of(response).status is StapleStatus.MISSING  # type: ignore[union-attr]


# --- proxies ---------------------------------------------------------------------------------


@pytest.fixture
def proxy() -> Iterator[ConnectProxy]:
    with ConnectProxy() as running:
        yield running


def test_connect_proxy_carries_the_check(
    live: LivePKI, serve: Serve, new_client: NewClient, proxy: ConnectProxy
) -> None:
    good = serve(live.leaf)
    response = new_client(proxy=proxy.url).get(good.url)
    assert staplecheck.staple_of(response).status is StapleStatus.GOOD  # type: ignore[union-attr]
    revoked = serve(live.leaf, "revoked")
    with pytest.raises(httpx.ConnectError) as refused:
        new_client(proxy=proxy.url).get(revoked.url)
    assert staple_cause(refused.value).result.status is StapleStatus.REVOKED
    assert proxy.tunnels == [f"localhost:{good.port}", f"localhost:{revoked.port}"]


@pytest.mark.parametrize(
    "url", ["https://127.0.0.1:3128", "socks5://127.0.0.1:1080", "socks5h://127.0.0.1:1080"]
)
def test_a_proxy_the_transport_cannot_honour_is_refused_at_construction(url: str) -> None:
    with pytest.raises(ValueError, match="http:// proxies"):
        sh.StapleTransport(proxy=url)
    with pytest.raises(ValueError, match="http:// proxies"):
        sh.client(proxy=url)


def test_client_refuses_a_transport_or_mounts_that_would_bypass_it() -> None:
    with pytest.raises(TypeError, match="transport"):
        sh.client(transport=httpx.HTTPTransport())
    with pytest.raises(TypeError, match="mounts"):
        sh.client(mounts={"all://": httpx.HTTPTransport()})


# --- HTTP/2 -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nginx_h2(live: LivePKI) -> Iterator[Callable[[str], Any]]:
    require_program("nginx")
    started: list[Any] = []

    def start(status: str) -> Any:
        directory = live.directory / f"nginx-{status}-{len(started)}"
        directory.mkdir()
        chain, key = live.leaf.write(directory)
        staple = directory / "staple.der"
        staple.write_bytes(live.intermediate.ocsp_response(live.leaf, status, this_update=NOW))
        server = Http2Nginx(chain, key, staple)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


def test_http2_via_alpn(live: LivePKI, nginx_h2: StartNginx, new_client: NewClient) -> None:
    server = nginx_h2("good")
    client = new_client(http2=True)
    responses = [client.get(server.url()) for _ in range(3)]
    assert {r.http_version for r in responses} == {"HTTP/2"}
    first = staplecheck.staple_of(responses[0])
    assert first is not None
    assert first.status is StapleStatus.GOOD
    assert all(staplecheck.staple_of(r) is first for r in responses)
    stream = responses[0].extensions["network_stream"]
    assert stream.get_extra_info("ssl_object").selected_alpn_protocol() == "h2"
    # Without http2=True only http/1.1 is offered.
    assert new_client().get(server.url()).http_version == "HTTP/1.1"


def test_http2_refuses_a_revoked_staple(nginx_h2: StartNginx, new_client: NewClient) -> None:
    server = nginx_h2("revoked")
    with pytest.raises(httpx.ConnectError) as refused:
        new_client(http2=True).get(server.url())
    assert staple_cause(refused.value).result.status is StapleStatus.REVOKED


def test_http2_needs_at_least_one_protocol() -> None:
    with pytest.raises(ValueError, match="http1 and http2"):
        sh.StapleTransport(http1=False, http2=False)


# --- threads ----------------------------------------------------------------------------------


def test_threads_misattribute_no_verdict(
    live: LivePKI, serve: Serve, new_client: NewClient, frequent_thread_switches: None
) -> None:
    """8 threads share one client (no keep-alive: every request a new handshake) across
    a good and a revoked server: every verdict belongs to the server that was asked."""
    good = serve(live.leaf, "good")
    revoked = serve(live.revoked_leaf, "revoked")
    client = new_client(limits=httpx.Limits(max_keepalive_connections=0))
    wrong: list[str] = []
    counts = {"good": 0, "refused": 0}
    lock = threading.Lock()

    def work(index: int) -> None:
        for round_ in range(12):
            ask_good = (index + round_) % 2 == 0
            try:
                response = client.get((good if ask_good else revoked).url)
            except httpx.ConnectError as error:
                cause = error.__cause__
                ok = (
                    not ask_good
                    and isinstance(cause, StapleError)
                    and cause.result.status is StapleStatus.REVOKED
                    and cause.result.serial_number == live.revoked_leaf.cert.serial_number
                )
                with lock:
                    counts["refused"] += 1
                    if not ok:
                        wrong.append(f"refused {ask_good=} {cause!r}")
                continue
            staple = staplecheck.staple_of(response)
            ok = (
                ask_good
                and staple is not None
                and staple.status is StapleStatus.GOOD
                and staple.serial_number == live.leaf.cert.serial_number
            )
            with lock:
                counts["good"] += 1
                if not ok:
                    wrong.append(f"accepted {ask_good=} {staple!r}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []
    assert counts == {"good": 48, "refused": 48}


def test_transport_used_directly(live: LivePKI, serve: Serve, tmp_path: Path) -> None:
    """The documented one-line switch: httpx.Client(transport=StapleTransport(...))."""
    server = serve(live.leaf)
    with httpx.Client(transport=sh.StapleTransport(verify=live.ca_file, clock=clock)) as client:
        response = client.get(server.url)
    assert response.extensions[sh.STAPLE_EXTENSION].status is StapleStatus.GOOD


def test_the_flavour_ci_asked_for() -> None:
    """CI's httpx2 run sets STAPLECHECK_HTTPX_FLAVOUR=httpx2 (a venv without httpx):
    the transports must then be built on httpx2, so that run tests what it says."""
    wanted = os.environ.get("STAPLECHECK_HTTPX_FLAVOUR", "httpx")
    assert wanted == sh.FLAVOUR
    assert issubclass(sh.StapleTransport, httpx.HTTPTransport)
    assert httpx.__name__ == wanted


# --- real servers -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_real_servers(kind: str, tls: str, live: LivePKI, new_client: NewClient) -> None:
    """openssl s_server and nginx stapling from a file, TLS 1.2 and 1.3: a good staple
    passes, a revoked one is refused, none is missing (and refused by must-staple)."""
    require_program("openssl" if kind == "s_server" else "nginx")
    directory = live.directory / f"{kind}-{tls}"
    directory.mkdir()
    chain, key = live.leaf.write(directory)
    for status in ("good", "revoked", None):
        staple = None
        if status is not None:
            staple = directory / f"{status}.der"
            der = live.intermediate.ocsp_response(live.leaf, status, this_update=NOW)
            staple.write_bytes(der)
        with launch(kind, chain, key, staple, tls_version=tls) as server:  # type: ignore[arg-type]
            if status == "revoked":
                with pytest.raises(httpx.ConnectError) as refused:
                    new_client().get(server.url())
                assert staple_cause(refused.value).result.status is StapleStatus.REVOKED
                continue
            response = new_client().get(server.url())
            assert response.status_code == 200
            expected = StapleStatus.GOOD if status else StapleStatus.MISSING
            assert staplecheck.staple_of(response).status is expected  # type: ignore[union-attr]
            if status is None:
                with pytest.raises(httpx.ConnectError) as refused:
                    new_client("must-staple").get(server.url())
                assert staple_cause(refused.value).result.status is StapleStatus.MISSING
