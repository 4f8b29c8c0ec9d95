"""A server cannot swap its certificate after the host name was checked.

staplecheck checks the host name (and judges the staple) once, after the first
handshake. A TLS 1.2 server can ask for a renegotiation at any time and present
another certificate there; the standard library re-checks on every handshake, while
staplecheck refuses renegotiation altogether (``SSL_OP_NO_RENEGOTIATION``). The server
here is a real pyOpenSSL TLS 1.2 server that reads the request, switches to a
certificate for another name (valid, from the same CA, with a good staple) and calls
``Connection.renegotiate()`` before it answers.
"""

from __future__ import annotations

import contextlib
import datetime
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import urllib3
from OpenSSL import SSL

from staplecheck import (
    StapleAdapter,
    StapleConnection,
    TLSConfig,
    create_context,
    drive_handshake,
    pool_manager,
)
from staplecheck.testing import CA, Identity

MODES = ("off", "soft-fail", "must-staple")
BODY = b"served after renegotiation\n"


class RenegotiatingServer:
    """TLS 1.2 on 127.0.0.1: handshake as ``first``, read one request, renegotiate as
    ``second``, answer. ``renegotiated`` counts renegotiations that completed."""

    def __init__(self, first: Identity, second: Identity) -> None:
        self._first, self._second = first, second
        self._context = SSL.Context(SSL.TLS_SERVER_METHOD)
        self._context.set_min_proto_version(SSL.TLS1_2_VERSION)
        self._context.set_max_proto_version(SSL.TLS1_2_VERSION)
        self._context.use_certificate(first.cert)  # type: ignore[arg-type]
        self._context.use_privatekey(first.private_key)  # type: ignore[arg-type]
        for extra in first.chain[1:]:
            self._context.add_extra_chain_cert(extra)  # type: ignore[arg-type]
        self._context.set_ocsp_server_callback(self._staple)
        # A resumed renegotiation would send no certificate: force a full handshake.
        self._context.set_options(SSL.OP_NO_TICKET)
        self._context.set_session_cache_mode(SSL.SESS_CACHE_OFF)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.renegotiated = 0
        self.answered = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> RenegotiatingServer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._thread.join(timeout=10)

    def url(self, host: str = "localhost") -> str:
        return f"https://{host}:{self.port}/"

    def _staple(self, connection: SSL.Connection, _data: object) -> bytes:
        # Each certificate gets its own good staple, so only the name can object.
        identity = self._second if connection.get_app_data() else self._first
        return identity.issuer.ocsp_response(identity, "good")

    def _serve(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            with sock:
                sock.setblocking(True)  # pyOpenSSL turns a socket timeout into WantRead
                with contextlib.suppress(SSL.Error, OSError):
                    self._one(SSL.Connection(self._context, sock), sock)

    def _one(self, connection: SSL.Connection, sock: socket.socket) -> None:
        connection.set_accept_state()
        connection.do_handshake()
        request = b""
        while b"\r\n\r\n" not in request:
            request += connection.recv(65536)
        connection.use_certificate(self._second.cert)  # type: ignore[arg-type]
        connection.use_privatekey(self._second.private_key)  # type: ignore[arg-type]
        connection.set_app_data(True)
        connection.renegotiate()
        connection.do_handshake()  # sends HelloRequest
        # The client's new handshake is processed inside recv(); poll until it is done
        # (the client sends no data meanwhile: it waits for the response).
        sock.setblocking(False)
        deadline = time.monotonic() + 10
        while connection.renegotiate_pending():
            if time.monotonic() > deadline:
                return
            try:
                connection.recv(1)
            except SSL.WantReadError:
                select.select([sock], [], [], 0.05)
        sock.setblocking(True)
        self.renegotiated += 1
        connection.sendall(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\n"
            + f"Content-Length: {len(BODY)}\r\n\r\n".encode()
            + BODY
        )
        self.answered += 1
        connection.shutdown()


class PKI:
    def __init__(self, directory: Path) -> None:
        root = CA(now=datetime.datetime.now(datetime.timezone.utc))
        issuer = root.create_intermediate()
        self.localhost = issuer.issue_cert("localhost")
        self.other = issuer.issue_cert("other.test")
        self.ca_file = root.write_trust(directory / "ca.pem")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return PKI(tmp_path_factory.mktemp("renegotiation"))


@pytest.fixture
def server(pki: PKI) -> Iterator[RenegotiatingServer]:
    with RenegotiatingServer(pki.localhost, pki.other) as running:
        yield running


@pytest.mark.parametrize("mode", MODES)
def test_requests_refuses_a_renegotiation_to_another_certificate(
    pki: PKI, server: RenegotiatingServer, mode: str
) -> None:
    with requests.Session() as session:
        session.trust_env = False
        session.mount("https://", StapleAdapter(mode))
        with pytest.raises(requests.exceptions.SSLError, match="handshake failure"):
            session.get(server.url(), verify=pki.ca_file, timeout=10)
    assert (server.renegotiated, server.answered) == (0, 0)


@pytest.mark.parametrize("mode", MODES)
def test_urllib3_refuses_a_renegotiation_to_another_certificate(
    pki: PKI, server: RenegotiatingServer, mode: str
) -> None:
    with (
        pool_manager(mode, ca_certs=pki.ca_file, retries=False) as manager,
        pytest.raises(urllib3.exceptions.SSLError, match="handshake failure"),
    ):
        manager.request("GET", server.url())
    assert (server.renegotiated, server.answered) == (0, 0)


@pytest.mark.parametrize("mode", MODES)
def test_pyopenssl_connection_refuses_renegotiation(
    pki: PKI, server: RenegotiatingServer, mode: str
) -> None:
    context = create_context(mode, config=TLSConfig(cafiles=(pki.ca_file,)))
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        connection = StapleConnection(context, sock, server_hostname="localhost")
        drive_handshake(connection, sock)
        sock.setblocking(True)  # pyOpenSSL turns a socket timeout into WantReadError
        connection.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        with pytest.raises(SSL.Error, match="handshake failure"):
            connection.recv(65536)
        # The certificate whose name was checked is still the one the connection has.
        peer = connection.get_peer_certificate(as_cryptography=True)
        assert peer is not None
        assert peer.subject == pki.localhost.cert.subject
        assert connection.total_renegotiations() == 0
    assert (server.renegotiated, server.answered) == (0, 0)
