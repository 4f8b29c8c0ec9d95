"""A threaded TLS server on loopback that staples a chosen OCSP response and answers HTTP.

For tests and the demo: real handshakes, real staples, no mocks. It binds 127.0.0.1
(or ``::1``) on an ephemeral port and stops everything it started on ``stop()`` or
when its ``with`` block ends.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from typing import Literal

from OpenSSL import SSL, crypto

from ._pki import CA, Identity
from ._service import Service

__all__ = ["StaplingServer"]

TLSVersion = Literal["1.2", "1.3"]
_VERSIONS = {"1.2": SSL.TLS1_2_VERSION, "1.3": SSL.TLS1_3_VERSION}


class StaplingServer(Service):
    """Serve ``identity``'s chain over TLS, stapling ``staple`` (``None`` or ``b""``: none).

    ``staple`` may be a callable, asked on every handshake. ``tls_version`` pins
    ``"1.2"`` or ``"1.3"``. ``client_ca`` requires a client certificate (mutual TLS)
    that chains to ``client_ca``'s root through the certificates of ``client_ca`` and
    its parents. Every request gets ``200`` and ``body``; connections are
    kept alive until the client closes them. ``handshakes`` counts completed
    handshakes, ``requests`` answered requests, ``staples_sent`` the staples handed
    to OpenSSL (which sends none for a self-signed certificate).
    """

    def __init__(
        self,
        identity: Identity,
        staple: bytes | Callable[[], bytes | None] | None = None,
        *,
        tls_version: TLSVersion | None = None,
        client_ca: CA | None = None,
        host: str = "127.0.0.1",
        body: bytes = b"hello from staplecheck\n",
    ) -> None:
        self.identity = identity
        self._staple = staple
        self.host = host
        self.body = body
        self.handshakes = 0
        self.requests = 0
        self.staples_sent = 0
        self._lock = threading.Lock()
        self._context = self._make_context(tls_version, client_ca)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.socket(family, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, 0))
        self.port: int = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._open: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._acceptor: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``https://localhost:PORT/`` (``https://[::1]:PORT/`` on IPv6)."""
        name = f"[{self.host}]" if ":" in self.host else "localhost"
        return f"https://{name}:{self.port}/"

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> StaplingServer:
        self._listener.listen(64)
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)
        self._acceptor.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        try:
            # close() alone does not wake a thread blocked in accept(); shutdown() does.
            _close_quietly(self._listener)
        finally:
            with self._lock:
                for sock in list(self._open):
                    _close_quietly(sock)
            if self._acceptor is not None:
                self._acceptor.join(timeout=5)
            for thread in list(self._threads):
                thread.join(timeout=5)

    # --- internals --------------------------------------------------------------------------

    def _make_context(self, tls_version: TLSVersion | None, client_ca: CA | None) -> SSL.Context:
        context = SSL.Context(SSL.TLS_SERVER_METHOD)
        if tls_version is not None:
            context.set_min_proto_version(_VERSIONS[tls_version])
            context.set_max_proto_version(_VERSIONS[tls_version])
        context.use_certificate(self.identity.cert)
        for extra in self.identity.chain[1:]:
            context.add_extra_chain_cert(extra)
        context.use_privatekey(self.identity.private_key)
        context.set_ocsp_server_callback(self._staple_for_handshake)
        if client_ca is not None:
            store = context.get_cert_store()
            assert store is not None
            for cert in (client_ca.root.cert, *client_ca.chain):
                store.add_cert(crypto.X509.from_cryptography(cert))
            context.set_verify(
                SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, lambda *args: bool(args[-1])
            )
        return context

    def _staple_for_handshake(self, _conn: SSL.Connection, _data: object) -> bytes:
        staple = self._staple() if callable(self._staple) else self._staple
        if staple:
            with self._lock:
                self.staples_sent += 1
        return staple or b""

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            # Blocking: pyOpenSSL turns a socket timeout into WantReadError. stop()
            # shuts every open socket down, which unblocks its thread.
            sock.setblocking(True)
            with self._lock:
                self._open.add(sock)
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket) -> None:
        try:
            connection = SSL.Connection(self._context, sock)
            connection.set_accept_state()
            connection.do_handshake()
            with self._lock:
                self.handshakes += 1
            self._answer_requests(connection)
            # A clean close_notify keeps the session resumable (OpenSSL drops sessions
            # of connections freed without one).
            connection.shutdown()
        except Exception:  # noqa: BLE001 - a test server's thread must never die noisily
            # The client refused us or went away, stop() closed the socket first, or the
            # test's staple callable failed: the client's outcome is what tests check.
            pass
        finally:
            with self._lock:
                self._open.discard(sock)
            _close_quietly(sock)

    def _answer_requests(self, connection: SSL.Connection) -> None:
        buffer = b""
        while not self._stopping.is_set():
            while b"\r\n\r\n" not in buffer:
                chunk = connection.recv(65536)
                if not chunk:
                    return
                buffer += chunk
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            length = _content_length(head)
            while len(buffer) < length:
                chunk = connection.recv(65536)
                if not chunk:
                    return
                buffer += chunk
            buffer = buffer[length:]
            close = b"connection: close" in head.lower()
            with self._lock:
                self.requests += 1
            connection.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                + f"Content-Length: {len(self.body)}\r\n".encode()
                + (b"Connection: close\r\n" if close else b"")
                + b"\r\n"
                + self.body
            )
            if close:
                return


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            try:
                return max(0, int(value.strip()))
            except ValueError:
                return 0
    return 0


def _close_quietly(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
