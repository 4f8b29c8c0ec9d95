"""A loopback CRL distribution point (RFC 5280 §4.2.1.13) for tests.

:class:`CRLServer` serves CRLs over plain HTTP on 127.0.0.1 and an ephemeral port, at
paths a test chooses, and misbehaves on request the ways real distribution points do
(slow, garbage, missing, redirecting, oversized, cut short)::

    issuer = CA().create_intermediate()
    with CRLServer() as server:
        leaf = issuer.issue_cert("localhost", crl_url=server.url("/issuer.crl"))
        server.set_crl("/issuer.crl", issuer.crl([leaf], reason="keyCompromise"))
        ...                                   # a client fetches and judges it
        server.misbehave("slow", delay=3.0)   # every later answer waits 3 s
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
import urllib.parse
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler
from typing import Any

from ._service import LoopbackHTTPServer, Service

__all__ = ["MISBEHAVIOURS", "CRLRequestRecord", "CRLServer"]

MISBEHAVIOURS = (
    "slow",
    "garbage",
    "not-found",
    "server-error",
    "redirect",
    "oversized",
    "truncated",
)
"""What :meth:`CRLServer.misbehave` can do:

- ``slow``: wait ``delay`` seconds (default 5) before answering.
- ``garbage``: answer 200 with bytes that are not a CRL.
- ``not-found``: 404; ``server-error``: 500.
- ``redirect``: 302 to ``location`` (default the same path on this server, with
  ``?redirected``), so a client that follows redirects is seen doing it.
- ``oversized``: 200 with ``size`` bytes (default 33 MiB, over staplecheck's cap) of a
  CRL-looking prefix and zeros, streamed, with an honest Content-Length.
- ``truncated``: 200 with a Content-Length of the whole CRL but only half of it sent.
"""

_CONTENT_TYPE = "application/pkix-crl"  # RFC 2585 §4.2
_CHUNK = 64 * 1024


@dataclasses.dataclass(frozen=True)
class CRLRequestRecord:
    """One request the server received, and how it answered."""

    path: str
    """The path asked for, query string included."""
    status: int
    """The HTTP status sent (200, 302, 404, 500)."""
    behaviour: str | None
    """The misbehaviour applied, or ``None`` for a normal answer."""


@dataclasses.dataclass(frozen=True)
class _Behaviour:
    mode: str
    delay: float = 5.0
    location: str | None = None
    size: int = 33 * 1024 * 1024


class CRLServer(Service):
    """CRLs on ``http://127.0.0.1:PORT/PATH``, for tests.

    ``crls`` maps paths (``"/ca.crl"``) to the bytes served there (DER or PEM, as
    given); :meth:`set_crl` and :meth:`remove_crl` change them at any time. A path
    without a CRL answers 404. :meth:`misbehave` makes one path, or every path, answer
    badly until :meth:`behave`. :attr:`requests` counts the requests received,
    :attr:`history` lists them. The socket is bound when the object is made (so
    :meth:`url` is known before a certificate names it); ``start()`` (or ``with``)
    serves, ``stop()`` closes the socket and open connections and joins every thread.
    All methods are thread-safe.
    """

    def __init__(
        self,
        crls: Mapping[str, bytes] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.host = host
        self._lock = threading.Condition()
        self._crls: dict[str, bytes] = {}
        self._behaviours: dict[str | None, _Behaviour] = {}
        self._history: list[CRLRequestRecord] = []
        self._arrived = 0
        self._server = _HTTPServer(host, port, self)
        self.port: int = int(self._server.server_address[1])
        for path, der in (crls or {}).items():
            self.set_crl(path, der)
        self._thread: threading.Thread | None = None
        self._stopped = False

    # --- what is served ----------------------------------------------------------------

    def set_crl(self, path: str, crl: bytes) -> str:
        """Serve ``crl`` at ``path`` from now on; return its URL."""
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/', not {path!r}")
        with self._lock:
            self._crls[path] = bytes(crl)
        return self.url(path)

    def remove_crl(self, path: str) -> None:
        """Stop serving ``path`` (it answers 404)."""
        with self._lock:
            self._crls.pop(path, None)

    def url(self, path: str = "/") -> str:
        """``http://127.0.0.1:PORT`` + ``path`` (``http://[::1]:PORT...`` on IPv6)."""
        name = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{name}:{self.port}{path}"

    def misbehave(
        self,
        mode: str,
        *,
        path: str | None = None,
        delay: float = 5.0,
        location: str | None = None,
        size: int = 33 * 1024 * 1024,
    ) -> None:
        """Answer ``path`` (default: every path) badly from now on; ``mode`` is one of
        ``MISBEHAVIOURS``."""
        if mode not in MISBEHAVIOURS:
            raise ValueError(f"mode must be one of {MISBEHAVIOURS}, not {mode!r}")
        with self._lock:
            self._behaviours[path] = _Behaviour(mode, delay, location, size)

    def behave(self, path: str | None = None) -> None:
        """Undo :meth:`misbehave` for ``path`` (default: every path and the default)."""
        with self._lock:
            if path is None:
                self._behaviours.clear()
            else:
                self._behaviours.pop(path, None)

    # --- what it saw -------------------------------------------------------------------

    @property
    def requests(self) -> int:
        """How many HTTP requests arrived."""
        with self._lock:
            return self._arrived

    @property
    def history(self) -> list[CRLRequestRecord]:
        """Every answered request so far, oldest first (a copy)."""
        with self._lock:
            return list(self._history)

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> bool:
        """Wait until at least ``count`` requests arrived; whether they did in time."""
        with self._lock:
            return self._lock.wait_for(lambda: self._arrived >= count, timeout)

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> CRLServer:
        if self._stopped:
            raise RuntimeError("a stopped CRLServer cannot be started again")
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.02},
                name=f"CRLServer-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close every connection and join every thread. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        with self._lock:
            self._lock.notify_all()  # wakes slow answers
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
        self._server.close_connections()
        self._server.server_close()

    # --- answering ---------------------------------------------------------------------

    def _plan(self, raw_path: str) -> tuple[bytes | None, _Behaviour | None]:
        path = urllib.parse.urlsplit(raw_path).path
        with self._lock:
            self._arrived += 1
            self._lock.notify_all()
            behaviour = self._behaviours.get(path) or self._behaviours.get(None)
            return self._crls.get(path), behaviour

    def _record(self, path: str, status: int, behaviour: _Behaviour | None) -> None:
        with self._lock:
            self._history.append(
                CRLRequestRecord(path, status, behaviour.mode if behaviour else None)
            )
            self._lock.notify_all()

    def _sleep(self, seconds: float) -> None:
        """Wait ``seconds``, or until the server stops."""
        deadline = time.monotonic() + seconds
        with self._lock:
            self._lock.wait_for(lambda: self._stopped or time.monotonic() >= deadline, seconds)


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    timeout = 10  # a client that stops reading cannot hold a thread forever
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        owner = self.server.owner
        crl, behaviour = owner._plan(self.path)
        mode = behaviour.mode if behaviour else None
        if mode == "redirect" and self.path.endswith("?redirected"):
            behaviour = mode = None  # the default target answers normally: no loop
        if behaviour is not None and mode == "slow":
            owner._sleep(behaviour.delay)
        if mode == "not-found" or (crl is None and mode not in ("garbage", "oversized")):
            self._status(404, behaviour)
        elif mode == "server-error":
            self._status(500, behaviour)
        elif mode == "redirect":
            assert behaviour is not None
            location = behaviour.location or owner.url(self.path.split("?")[0] + "?redirected")
            owner._record(self.path, 302, behaviour)
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif mode == "garbage":
            self._send(b"<html>this is not a CRL</html>\n" * 8, behaviour)
        elif mode == "oversized":
            assert behaviour is not None
            self._send_oversized(behaviour)
        elif mode == "truncated":
            assert crl is not None
            self._send(crl, behaviour, cut=len(crl) // 2)
        else:
            assert crl is not None
            self._send(crl, behaviour)

    def _status(self, code: int, behaviour: _Behaviour | None) -> None:
        self.server.owner._record(self.path, code, behaviour)
        body = f"{code}\n".encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send(self, body: bytes, behaviour: _Behaviour | None, cut: int | None = None) -> None:
        self.server.owner._record(self.path, 200, behaviour)
        self.send_response(200)
        self.send_header("Content-Type", _CONTENT_TYPE)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body if cut is None else body[:cut])

    def _send_oversized(self, behaviour: _Behaviour) -> None:
        self.server.owner._record(self.path, 200, behaviour)
        self.send_response(200)
        self.send_header("Content-Type", _CONTENT_TYPE)
        self.send_header("Content-Length", str(behaviour.size))
        self.end_headers()
        # A SEQUENCE header claiming the whole size, then zeros, streamed: a client
        # must stop reading at its cap, not after the server is done.
        prefix = b"\x30\x84" + (behaviour.size - 6).to_bytes(4, "big")
        sent = 0
        with contextlib.suppress(OSError):
            while sent < behaviour.size:
                chunk = prefix if sent == 0 else bytes(min(_CHUNK, behaviour.size - sent))
                self.wfile.write(chunk)
                sent += len(chunk)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests read history, not stderr


class _HTTPServer(LoopbackHTTPServer):
    def __init__(self, host: str, port: int, owner: CRLServer) -> None:
        self.owner = owner
        super().__init__(host, port, _Handler, "CRLServer")
