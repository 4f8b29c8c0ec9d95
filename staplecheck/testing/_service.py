"""What every test server here shares: start, stop, and a ``with`` block for both."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import TracebackType
from typing import Any, TypeVar

__all__ = ["LoopbackHTTPServer", "Service"]

_S = TypeVar("_S", bound="Service")


class Service:
    """A server a test starts and must stop: ``with Server(...) as s`` does both."""

    def start(self: _S) -> _S:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self: _S) -> _S:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class LoopbackHTTPServer(socketserver.ThreadingMixIn, HTTPServer):
    """A threaded HTTP server on a loopback address for the test servers here: no DNS
    lookup at bind, a thread per connection that ``server_close()`` joins, and
    :meth:`close_connections` to unblock every connection's thread when stopping."""

    daemon_threads = False  # so that server_close() joins them
    block_on_close = True
    allow_reuse_address = True
    request_queue_size = 128  # socketserver's 5 resets clients that arrive together

    def __init__(
        self, host: str, port: int, handler: type[BaseHTTPRequestHandler], name: str
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._name = name
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__((host, port), handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks the host name up; a loopback test server
        # does not need that (and it can be slow without DNS).
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        threading.current_thread().name = f"{self._name}-{self.server_address[1]} request"
        with self._open_lock:
            self._open.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._open_lock:
                self._open.discard(request)

    def close_connections(self) -> None:
        """Shut down every open connection, which unblocks its thread."""
        with self._open_lock:
            for sock in list(self._open):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that went away is its own business
