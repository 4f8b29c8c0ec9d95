"""Real handshakes against the in-process stapling server: the policy table, TLS 1.2
and 1.3, through requests and through raw pyOpenSSL; and the edge cases the TLS glue
must define: a chain of one, verification off, a resumed session."""

from __future__ import annotations

import contextlib
import datetime
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL

import staplecheck
from staplecheck import (
    StapleAdapter,
    StapleConnection,
    StapleError,
    StapleStatus,
    TLSConfig,
    create_context,
    find_staple_error,
    get_staple_result,
)
from staplecheck.testing import CA, Identity, StaplingServer

from .realservers import OpenSSLServer
from .tls_cases import MODES, POLICY_TABLE, TLS_VERSIONS, StapleCase

NOW = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


ONLY_OFF_CONNECTS = [("off", True), ("soft-fail", False), ("must-staple", False)]


def clock() -> datetime.datetime:
    return NOW


class Site:
    """A PKI anchored at the real time, its trust file, and leaves with and without
    the must-staple extension."""

    def __init__(self, directory: str) -> None:
        self.root = CA(now=NOW)
        self.issuer = self.root.create_intermediate()
        self.plain = self.issuer.issue_cert("localhost", "127.0.0.1")
        self.strict = self.issuer.issue_cert("localhost", "127.0.0.1", must_staple=True)
        self.cafile = self.root.write_trust(os.path.join(directory, "ca.pem"))

    def leaf_for(self, case: StapleCase) -> Identity:
        return self.strict if case.must_staple else self.plain

    def server(self, case: StapleCase, tls_version: str | None = None) -> StaplingServer:
        leaf = self.leaf_for(case)
        return StaplingServer(leaf, case.staple(self.issuer, leaf, NOW), tls_version=tls_version)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    return Site(str(tmp_path_factory.mktemp("site")))


def adapter_session(mode: str) -> requests.Session:
    session = requests.Session()
    session.mount("https://", StapleAdapter(mode, clock=clock))
    return session


# --- the policy table, through requests -------------------------------------------------


@pytest.fixture(scope="module", params=TLS_VERSIONS, ids=lambda v: f"TLS{v}")
def servers(request: pytest.FixtureRequest, site: Site) -> Iterator[dict[str, StaplingServer]]:
    running = {case.name: site.server(case, request.param).start() for case in POLICY_TABLE}
    yield running
    for server in running.values():
        server.stop()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", POLICY_TABLE, ids=lambda c: c.name)
def test_policy_table_through_requests(
    servers: dict[str, StaplingServer], site: Site, case: StapleCase, mode: str
) -> None:
    server = servers[case.name]
    with adapter_session(mode) as session:
        if case.expected_accept(mode):
            response = session.get(server.url, verify=site.cafile, timeout=10)
            assert response.status_code == 200
            if mode == "off":
                assert response.staple is None  # type: ignore[attr-defined]
            else:
                assert response.staple.status is case.status  # type: ignore[attr-defined]
        else:
            with pytest.raises(requests.exceptions.SSLError) as caught:
                session.get(server.url, verify=site.cafile, timeout=10)
            error = find_staple_error(caught.value)
            assert error is not None
            assert error.result.status is case.status
            assert error.result.must_staple is case.must_staple
            message = str(caught.value)
            assert "localhost" in message
            assert case.status.value in message
            assert error.result.reason in message


def test_tls_version_is_the_one_pinned(servers: dict[str, StaplingServer], site: Site) -> None:
    server = servers["good"]
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        context = staplecheck.StapleSSLContext(cafile=site.cafile, clock=clock)
        wrapped = context.wrap_socket(sock, server_hostname="localhost")
        assert wrapped.version() in {"TLSv1.2", "TLSv1.3"}
        assert wrapped.staple is not None
        assert wrapped.staple.status is StapleStatus.GOOD


# --- raw pyOpenSSL ----------------------------------------------------------------------------


def handshake(
    context: SSL.Context, port: int, host: str = "localhost", **kwargs: object
) -> StapleConnection:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setblocking(True)  # pyOpenSSL turns a socket timeout into WantReadError
    connection = StapleConnection(context, sock, server_hostname=host, **kwargs)  # type: ignore[arg-type]
    try:
        connection.do_handshake()
    except BaseException:
        sock.close()
        raise
    return connection


def trust(site: Site) -> TLSConfig:
    return TLSConfig(cafiles=(site.cafile,))


@pytest.mark.parametrize("version", TLS_VERSIONS)
def test_pyopenssl_connection_keeps_the_verdict(site: Site, version: str) -> None:
    good = POLICY_TABLE[0]
    with site.server(good, version) as server:
        context = create_context("must-staple", config=trust(site), clock=clock)
        with contextlib.closing(handshake(context, server.port)) as connection:
            assert connection.staple is not None
            assert connection.staple.status is StapleStatus.GOOD
            assert get_staple_result(connection) is connection.staple


@pytest.mark.parametrize("version", TLS_VERSIONS)
def test_pyopenssl_rejection_is_a_staple_error_naming_host_status_reason(
    site: Site, version: str
) -> None:
    revoked = POLICY_TABLE[1]
    with site.server(revoked, version) as server:
        context = create_context("soft-fail", config=trust(site), clock=clock)
        with pytest.raises(StapleError) as caught:
            handshake(context, server.port)
    assert caught.value.result.status is StapleStatus.REVOKED
    assert caught.value.host == "localhost"
    assert "localhost" in str(caught.value)
    assert "revoked" in str(caught.value)
    assert caught.value.result.reason in str(caught.value)
    assert "revoked" in caught.value.verify_message


def test_plain_pyopenssl_connection_on_a_staplecheck_context(site: Site) -> None:
    """A user's own SSL.Connection that asks for a staple is judged too; a rejection
    fails the handshake (as pyOpenSSL's SSL.Error), and the verdict is readable."""
    revoked = POLICY_TABLE[1]
    with site.server(revoked) as server:
        context = create_context("soft-fail", config=trust(site), clock=clock)
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.setblocking(True)
            connection = SSL.Connection(context, sock)
            connection.set_tlsext_host_name(b"localhost")
            connection.request_ocsp()
            connection.set_connect_state()
            with pytest.raises(SSL.Error):
                connection.do_handshake()
            result = get_staple_result(connection)
    assert result is not None
    assert result.status is StapleStatus.REVOKED


def test_context_not_made_by_staplecheck_is_refused() -> None:
    with pytest.raises(TypeError, match="create_context"):
        StapleConnection(SSL.Context(SSL.TLS_CLIENT_METHOD), None, server_hostname="x")


# --- hostname and chain --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_wrong_hostname_fails_under_every_policy(site: Site, mode: str) -> None:
    other = site.issuer.issue_cert("other.test")
    with StaplingServer(other, site.issuer.ocsp_response(other)) as server:
        with (
            adapter_session(mode) as session,
            pytest.raises(requests.exceptions.SSLError) as caught,
        ):
            session.get(server.url, verify=site.cafile, timeout=10)
        assert "other.test" in str(caught.value) or "match" in str(caught.value)
        context = create_context(mode, config=trust(site), clock=clock)
        with pytest.raises(Exception, match=r"(?i)hostname|match"):
            handshake(context, server.port)


@pytest.mark.parametrize("mode", MODES)
def test_untrusted_chain_fails_under_every_policy(site: Site, mode: str, tmp_path: Path) -> None:
    stranger = CA(now=NOW, name="some other root")
    stranger_file = stranger.write_trust(tmp_path / "other.pem")
    with (
        site.server(POLICY_TABLE[0]) as server,
        adapter_session(mode) as session,
        pytest.raises(requests.exceptions.SSLError) as caught,
    ):
        session.get(server.url, verify=stranger_file, timeout=10)
    assert "certificate verify failed" in str(caught.value)
    assert find_staple_error(caught.value) is None


def self_signed(name: str) -> Identity:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(hours=1))
        .not_valid_after(NOW + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return Identity(cert=cert, private_key=key, chain=(cert,), issuer=CA(now=NOW))


@pytest.mark.parametrize(
    ("mode", "stapled", "accepted", "status"),
    [
        ("soft-fail", False, True, StapleStatus.MISSING),
        ("must-staple", False, False, StapleStatus.MISSING),
        ("soft-fail", True, False, StapleStatus.INVALID),
        ("off", True, True, None),
    ],
)
def test_chain_of_one_has_no_issuer_to_check_a_staple_against(
    site: Site, tmp_path: Path, mode: str, stapled: bool, accepted: bool, status: StapleStatus
) -> None:
    """A self-signed leaf trusted directly verifies as a chain of one certificate.
    Without a staple it is judged missing; a staple cannot be checked: invalid.

    Served by ``openssl s_server``: OpenSSL's server-side status callback, as pyOpenSSL
    drives it, sends no staple for a self-signed certificate."""
    pinned = self_signed("localhost")
    cert_path, key_path = pinned.write(tmp_path, "pinned")
    status_file = None
    if stapled:
        status_file = tmp_path / "staple.der"
        status_file.write_bytes(site.issuer.ocsp_response(site.plain))
    with (
        OpenSSLServer(cert_path, key_path, status_file) as server,
        adapter_session(mode) as session,
    ):
        url = server.url()
        if accepted:
            got = session.get(url, verify=cert_path, timeout=10).staple  # type: ignore[attr-defined]
            assert (got.status if got else None) is status
        else:
            with pytest.raises(requests.exceptions.SSLError) as caught:
                session.get(url, verify=cert_path, timeout=10)
            error = find_staple_error(caught.value)
            assert error is not None
            assert error.result.status is status
            if status is StapleStatus.INVALID:
                assert "no issuer" in error.result.reason


@pytest.mark.parametrize(
    ("mode", "accepted"), [("off", True), ("soft-fail", False), ("must-staple", False)]
)
def test_verification_off_cannot_trust_a_staple(site: Site, mode: str, accepted: bool) -> None:
    with site.server(POLICY_TABLE[0]) as server:
        context = create_context(mode, config=trust(site), clock=clock)
        if accepted:
            with contextlib.closing(handshake(context, server.port, verify=False)) as connection:
                assert connection.staple is None
        else:
            with pytest.raises(StapleError) as caught:
                handshake(context, server.port, verify=False)
            assert caught.value.result.status is StapleStatus.INVALID
            assert "verification is off" in caught.value.result.reason


# --- resumed sessions --------------------------------------------------------------------


def fetch_session(context: SSL.Context, port: int) -> SSL.Session:
    """One full handshake plus a request (TLS 1.3 tickets arrive after it)."""
    with contextlib.closing(handshake(context, port)) as connection:
        return _read_session(connection)


def _read_session(connection: StapleConnection) -> SSL.Session:
    connection.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    while True:
        try:
            if not connection.recv(65536):
                break
        except (SSL.ZeroReturnError, SSL.SysCallError):
            break
    session = connection.get_session()
    assert session is not None
    connection.shutdown()  # without close_notify OpenSSL marks the session unusable
    return session


@pytest.mark.parametrize("version", TLS_VERSIONS)
@pytest.mark.parametrize(
    ("mode", "accepted"), [("off", True), ("soft-fail", False), ("must-staple", False)]
)
def test_resumed_session_carries_no_verdict_and_fails_closed(
    site: Site, version: str, mode: str, accepted: bool
) -> None:
    """staplecheck never resumes sessions itself. If a caller resumes one, the
    handshake brings no verified staple: that is judged invalid, so only 'off'
    connects."""
    with site.server(POLICY_TABLE[0], version) as server:
        context = create_context(mode, config=trust(site), clock=clock)
        context.set_session_cache_mode(SSL.SESS_CACHE_CLIENT)
        session = fetch_session(context, server.port)
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        sock.setblocking(True)
        with sock:
            connection = StapleConnection(context, sock, server_hostname="localhost")
            connection.set_session(session)
            if accepted:
                connection.do_handshake()
                assert connection.staple is None
            else:
                with pytest.raises(StapleError) as caught:
                    connection.do_handshake()
                assert caught.value.result.status is StapleStatus.INVALID
                assert "resumed" in caught.value.result.reason


@pytest.mark.parametrize("plain", [True, False], ids=["SSL.Connection", "StapleConnection"])
def test_idna_2008_names_in_sni(site: Site, plain: bool) -> None:
    """``faß.de`` as urllib3 sends it (IDNA 2008: xn--fa-hia.de), which the stdlib's
    IDNA 2003 codec refuses to decode: SNI is A-labels and is read as such (found by
    the adversarial review of issue 7)."""
    leaf = site.issuer.issue_cert("xn--fa-hia.de")
    context = create_context("must-staple", config=trust(site), clock=clock)
    with (
        StaplingServer(leaf, site.issuer.ocsp_response(leaf)) as server,
        socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock,
    ):
        sock.setblocking(True)
        if plain:
            connection = SSL.Connection(context, sock)
            connection.set_tlsext_host_name(b"xn--fa-hia.de")
            connection.request_ocsp()
            connection.set_connect_state()
        else:
            connection = StapleConnection(context, sock, server_hostname="faß.de")
        connection.do_handshake()
        result = get_staple_result(connection)
    assert result is not None
    assert result.status is StapleStatus.GOOD
