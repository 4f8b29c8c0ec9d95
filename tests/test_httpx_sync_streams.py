"""The sync httpx transport's two TLS streams behave alike.

Over httpcore's own TCP streams the sync transport lets pyOpenSSL drive the socket
(``_SyncSocketTLSStream``, the keep-alive optimization measured by
benchmarks/bench_httpx.py); over any other TCP backend it keeps the memory-BIO stream
(``_SyncTLSStream``). Every test here runs against both, with real handshakes against
a real TLS server on 127.0.0.1 (the stdlib's ``http.server`` over ``ssl``): keep-alive
on one connection, 8 MB bodies both ways, read and handshake timeouts, a body ended by
a bare TCP close (ragged EOF), an idle connection the server closed (``is_readable``),
a reset during the handshake (a network error, not a TLS refusal), sockets closed,
and HTTP/2 on one connection (nginx).
"""

from __future__ import annotations

import hashlib
import http.server
import socket
import ssl
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

httpx = pytest.importorskip("staplecheck.clients._httplib").httpx

import staplecheck.httpx as sh  # noqa: E402
from staplecheck import StapleStatus  # noqa: E402
from staplecheck.clients import _httpcore  # noqa: E402
from staplecheck.testing import CA  # noqa: E402
from tests.conftest import require_program  # noqa: E402
from tests.httpx_helpers import Http2Nginx, SilentServer  # noqa: E402

BIG = 8 * 1024 * 1024
KINDS = ("socket", "memory")
STREAM_CLASSES = {"socket": _httpcore._SyncSocketTLSStream, "memory": _httpcore._SyncTLSStream}


class PKI:
    def __init__(self, directory: Path) -> None:
        root = CA(key_type="ecdsa", name="streams root")
        leaf = root.issue_cert("localhost", key_type="ecdsa")
        self.chain, self.key = leaf.write(directory, "localhost")
        self.root = root.write_trust(directory / "root.pem")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return PKI(tmp_path_factory.mktemp("streams-pki"))


class Handler(http.server.BaseHTTPRequestHandler):
    """GET /big: 8 MB; GET /silent: no answer until the test ends; GET /bare: an
    HTTP/1.0 body ended by closing TCP without close_notify; GET /drop: answer, then
    close the (keep-alive) connection; POST: the body's SHA-256 and length."""

    protocol_version = "HTTP/1.1"
    server: Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.server.connections.add(self.client_address)
        if self.path == "/big":
            self._answer(bytes(range(256)) * (BIG // 256))
        elif self.path == "/silent":
            self.server.release.wait(30)
        elif self.path == "/bare":
            self.wfile.write(b"HTTP/1.0 200 OK\r\n\r\nuntil the connection ends")
            self.wfile.flush()
            fd = self.connection.detach()  # no close_notify: the TCP stream just ends
            socket.socket(fileno=fd).close()
            self.close_connection = True
        elif self.path == "/drop":
            self._answer(b"dropped after this")
            self.close_connection = True
        else:
            self._answer(b"ok")

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        body = self.rfile.read(length)
        self._answer(f"{hashlib.sha256(body).hexdigest()} {len(body)}".encode())

    def finish(self) -> None:
        super().finish()
        if self.path == "/drop":
            self.server.dropped.set()


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, pki: PKI) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(pki.chain, pki.key)
        self.socket = context.wrap_socket(self.socket, server_side=True)
        self.connections: set[tuple[str, int]] = set()
        self.release = threading.Event()
        self.dropped = threading.Event()
        self.url = f"https://localhost:{self.server_address[1]}"


@pytest.fixture
def server(pki: PKI) -> Iterator[Server]:
    running = Server(pki)
    thread = threading.Thread(target=running.serve_forever, daemon=True)
    thread.start()
    try:
        yield running
    finally:
        running.release.set()
        running.shutdown()
        running.server_close()
        thread.join(timeout=10)


@pytest.fixture(params=KINDS)
def client(request: pytest.FixtureRequest, pki: PKI) -> Iterator[Any]:
    """A client whose transport uses the stream kind asked for."""
    transport = sh.StapleTransport("off", verify=pki.root)
    transport.network_backend.own_tcp = request.param == "socket"
    with httpx.Client(transport=transport) as made:
        made.stream_class = STREAM_CLASSES[request.param]
        yield made


def stream_of(response: Any) -> Any:
    return response.extensions["network_stream"]


def test_the_stream_kind(client: Any, server: Server) -> None:
    response = client.get(server.url + "/")
    assert response.text == "ok"
    assert type(stream_of(response)) is client.stream_class
    assert stream_of(response).get_extra_info("ssl_object").version() == "TLSv1.3"


def test_keep_alive_and_big_bodies_both_ways(client: Any, server: Server) -> None:
    streams = set()
    for _ in range(5):
        response = client.get(server.url + "/")
        assert response.text == "ok"
        streams.add(id(stream_of(response)))
    big = client.get(server.url + "/big")
    assert big.content == bytes(range(256)) * (BIG // 256)
    streams.add(id(stream_of(big)))
    upload = bytes(reversed(range(256))) * (BIG // 256) + b"tail"
    posted = client.post(server.url + "/", content=upload)
    assert posted.text == f"{hashlib.sha256(upload).hexdigest()} {len(upload)}"
    streams.add(id(stream_of(posted)))
    assert len(streams) == 1
    assert len(server.connections) == 1


def test_a_read_timeout(client: Any, server: Server) -> None:
    with pytest.raises(httpx.ReadTimeout):
        client.get(server.url + "/silent", timeout=httpx.Timeout(10, read=0.3))


def test_a_handshake_timeout(client: Any) -> None:
    with SilentServer() as silent, pytest.raises(httpx.ConnectTimeout):
        client.get(silent.url, timeout=0.3)


def test_a_body_ended_by_a_bare_close(client: Any, server: Server) -> None:
    response = client.get(server.url + "/bare")
    assert response.text == "until the connection ends"


def test_an_idle_connection_the_server_closed_is_not_reused(client: Any, server: Server) -> None:
    """httpcore asks ``is_readable`` before reusing an idle connection: a closed one
    reads as readable (EOF), so the next request opens a new connection instead of
    failing on the dead one."""
    assert client.get(server.url + "/drop").text == "dropped after this"
    assert server.dropped.wait(10)
    again = client.get(server.url + "/")
    assert again.text == "ok"
    assert len(server.connections) == 2


def test_a_reset_during_the_handshake_is_a_network_error(client: Any) -> None:
    """A reset (RST) while handshaking: httpx.ConnectError, not a TLS refusal (no
    ssl error as its cause), on both streams."""
    listener = socket.create_server(("127.0.0.1", 0))

    def reset() -> None:
        sock, _ = listener.accept()
        sock.recv(65536)  # the ClientHello
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()

    thread = threading.Thread(target=reset)
    thread.start()
    try:
        with pytest.raises(httpx.ConnectError) as caught:
            client.get(f"https://localhost:{listener.getsockname()[1]}/", timeout=10)
    finally:
        thread.join(timeout=10)
        listener.close()
    assert not isinstance(caught.value.__cause__, ssl.SSLError)


def test_closing_the_client_closes_the_socket(client: Any, server: Server) -> None:
    response = client.get(server.url + "/")
    sock = stream_of(response).get_extra_info("socket")
    assert isinstance(sock, socket.socket)
    assert sock.fileno() >= 0
    client.close()
    assert sock.fileno() == -1


@pytest.fixture(scope="module")
def nginx_h2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    """nginx with HTTP/2 on, stapling a good response for its leaf."""
    require_program("nginx")
    pytest.importorskip("h2")
    directory = tmp_path_factory.mktemp("streams-h2")
    root = CA(key_type="ecdsa", name="streams h2 root")
    intermediate = root.create_intermediate(key_type="ecdsa", name="streams h2 ca")
    leaf = intermediate.issue_cert("localhost", key_type="ecdsa")
    chain, key = leaf.write(directory, "localhost")
    staple = directory / "staple.der"
    staple.write_bytes(intermediate.ocsp_response(leaf, "good"))
    with Http2Nginx(chain, key, staple) as server:
        yield root.write_trust(directory / "root.pem"), server


@pytest.mark.parametrize("kind", KINDS)
def test_http2_on_one_connection(kind: str, nginx_h2: tuple[str, Any]) -> None:
    """Sync HTTP/2 (ALPN h2) on both streams: 30 requests on one connection, every
    response whole, one good staple verdict. (Not from several threads at once:
    httpcore 1.0.9's sync HTTP/2 takes a stream id outside its locks, and two threads
    can send HEADERS on one id, which nginx answers with GOAWAY PROTOCOL_ERROR; plain
    httpx hits it too, more rarely.)"""
    root, server = nginx_h2
    transport = sh.StapleTransport("soft-fail", verify=root, http2=True)
    transport.network_backend.own_tcp = kind == "socket"
    with httpx.Client(transport=transport) as made:
        responses = [made.get(server.url(), timeout=30) for _ in range(30)]
    assert {(r.status_code, r.text, r.http_version) for r in responses} == {(200, "ok\n", "HTTP/2")}
    assert {type(stream_of(r)) for r in responses} == {STREAM_CLASSES[kind]}
    assert len({id(stream_of(r)) for r in responses}) == 1
    verdict = responses[0].extensions["staple"]
    assert verdict is not None
    assert verdict.status is StapleStatus.GOOD
