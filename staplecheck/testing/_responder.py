"""A loopback OCSP responder (RFC 6960) for tests: servers that fetch their staples.

Servers such as nginx, Apache httpd and Caddy fetch the response they staple from the
OCSP URL of the certificate (or a configured one). :class:`OCSPResponder` is that URL:
an HTTP server on 127.0.0.1 and an ephemeral port that answers requests by GET
(``/`` + the URL-encoded base64 DER request, RFC 6960 Appendix A.1) and by POST
(``application/ocsp-request``) with responses signed by one :class:`CA`, for a status
table that tests change at any time::

    issuer = CA().create_intermediate()
    with OCSPResponder(issuer) as responder:
        leaf = issuer.issue_cert("localhost", ocsp_url=responder.url)
        responder.set_status(leaf, "good")       # unknown serials answer "unknown"
        ...                                      # start a server that fetches from it
        responder.set_status(leaf, "revoked", revocation_reason="keyCompromise")
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import datetime
import socket
import struct
import threading
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from cryptography import x509
from cryptography.x509 import ocsp

from ._ocsp import (
    _HASHES,
    REVOCATION_REASONS,
    OCSPEntry,
    RawExtension,
    _key_bits_hash,
    make_ocsp_response,
)
from ._pki import CA, Identity
from ._service import LoopbackHTTPServer, Service

__all__ = ["MISBEHAVIOURS", "OCSPRequestRecord", "OCSPResponder"]

MISBEHAVIOURS = (
    "close",
    "reset",
    "slow",
    "drip",
    "garbage",
    "empty",
    "try-later",
    "forged",
    "other-certificate",
    "oversized",
    "oversized-stream",
    "redirect",
    "http-error",
    "content-type",
    "no-nonce",
    "wrong-nonce",
)
"""What :meth:`OCSPResponder.misbehave` can do (the request is still counted and,
where a response is made, recorded in :attr:`OCSPResponder.history`):

- ``close``: close the connection without sending a byte; ``reset``: close it with a
  TCP reset. (For "connection refused", :meth:`OCSPResponder.stop` the responder and
  keep its URL.)
- ``slow``: wait ``delay`` seconds (default 30; :meth:`~OCSPResponder.stop` ends the
  wait) before answering; ``drip``: send the answer one byte every ``interval``
  seconds (default 0.05), headers included.
- ``garbage``: 200 ``application/ocsp-response`` with ``body`` (default bytes that are
  no OCSP response); ``empty``: the same with an empty body.
- ``try-later``: a ``tryLater`` responseStatus; ``forged``: a well-formed response
  signed by another key (a fresh CA named like this one); ``other-certificate``: a
  properly signed response about serial number + 1 instead of the one asked.
- ``oversized``: a valid response padded to ``size`` bytes (default 1 MiB) with an
  honest Content-Length; ``oversized-stream``: the same with no Content-Length (the
  end of the body is the end of the connection).
- ``redirect``: 302 to ``location`` (default this responder's URL + ``redirected/``).
- ``http-error``: ``status`` (default 500) with no OCSP body.
- ``content-type``: a proper response labelled ``value`` (default ``text/html``).
- ``no-nonce``: never echo the request's nonce; ``wrong-nonce``: echo a different one.
"""

_STATUSES = ("good", "revoked", "unknown")
_NONCE_OID = "1.3.6.1.5.5.7.48.1.2"
_MAX_REQUEST = 64 * 1024
_CONTENT_TYPE = "application/ocsp-response"


@dataclasses.dataclass(frozen=True)
class OCSPRequestRecord:
    """One HTTP request the responder received, and what it answered."""

    method: str
    """``GET`` or ``POST``."""
    serial_number: int | None
    """The serial asked about; ``None`` when the request could not be parsed."""
    answer: str
    """The certificate status answered (``good``, ``revoked``, ``unknown``), or the
    responseStatus when it was not ``successful`` (``malformedRequest``,
    ``unauthorized``, or whatever
    :meth:`~staplecheck.testing.OCSPResponder.set_response_options` forced)."""


class OCSPResponder(Service):
    """An OCSP responder for ``ca``'s certificates on ``http://127.0.0.1:PORT/``.

    - ``statuses`` maps serial numbers (or certificates) to ``"good"``, ``"revoked"``
      or ``"unknown"``; :meth:`set_status` changes it at any time. A serial not in the
      table is answered ``unknown``. A request about another issuer's certificate (the
      CertID's issuer hashes are not ``ca``'s) is answered ``unauthorized``
      (RFC 6960 §2.3); one that does not parse, ``malformedRequest``.
    - Every response is fresh: thisUpdate is the current time (``clock``, default the
      real clock), nextUpdate ``validity`` later (``None``: no nextUpdate). The CertID
      uses the request's hash algorithm, and a request's nonce is echoed.
    - ``response_options`` are extra keyword arguments of
      :func:`~staplecheck.testing.make_ocsp_response` for every response (a delegated
      ``responder=``, ``corrupt_signature=True``, ``response_status="tryLater"``...);
      :meth:`set_response_options` replaces them at any time.

    The socket is bound (so :attr:`url` is known, and a certificate can name it) when
    the object is made, on ``port`` (0: an ephemeral one); ``start()`` (or ``with``)
    serves, ``stop()`` closes the socket and open connections and joins every thread.
    :meth:`pause` holds every answer until :meth:`resume` (a slow responder).
    :attr:`requests` counts the HTTP requests received, :attr:`history` lists the ones
    answered. All methods are thread-safe.
    """

    def __init__(
        self,
        ca: CA,
        statuses: dict[int, str] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        validity: datetime.timedelta | None = datetime.timedelta(days=1),
        clock: Callable[[], datetime.datetime] | None = None,
        **response_options: Any,
    ) -> None:
        self.ca = ca
        self.host = host
        self.validity = validity
        self._clock = clock or (lambda: datetime.datetime.now(datetime.timezone.utc))
        self._lock = threading.Condition()
        self._statuses: dict[int, _Entry] = {}
        self._options: dict[str, Any] = dict(response_options)
        self._history: list[OCSPRequestRecord] = []
        self._arrived = 0
        self._open_gate = threading.Event()
        self._open_gate.set()
        self._stopping = threading.Event()
        self._behaviour: tuple[str, dict[str, Any]] | None = None
        self._forger: CA | None = None
        for serial, status in (statuses or {}).items():
            self.set_status(serial, status)
        self._server = _HTTPServer(host, port, self)
        self.port: int = int(self._server.server_address[1])
        self._thread: threading.Thread | None = None
        self._stopped = False

    # --- the status table --------------------------------------------------------------

    def set_status(
        self,
        cert: int | x509.Certificate | Identity,
        status: str,
        *,
        revocation_reason: str | None = None,
        revocation_time: datetime.datetime | None = None,
    ) -> None:
        """Answer ``status`` for ``cert`` (a serial number, certificate or identity)
        from now on. For ``revoked``: ``revocation_reason`` is a CRLReason name, and
        ``revocation_time`` defaults to now (the clock's)."""
        if status not in _STATUSES:
            raise ValueError(f"status must be one of {_STATUSES}, not {status!r}")
        if revocation_reason is not None and revocation_reason not in REVOCATION_REASONS:
            raise ValueError(f"unknown revocation reason {revocation_reason!r}")
        if status == "revoked" and revocation_time is None:
            revocation_time = self._clock().replace(microsecond=0)
        with self._lock:
            self._statuses[_serial(cert)] = _Entry(status, revocation_reason, revocation_time)

    def status(self, cert: int | x509.Certificate | Identity) -> str:
        """The status answered for ``cert`` now (``unknown`` when it is not in the table)."""
        with self._lock:
            return self._statuses.get(_serial(cert), _UNKNOWN).status

    def set_response_options(self, **options: Any) -> None:
        """Replace the extra :func:`make_ocsp_response` options of every later response."""
        with self._lock:
            self._options = dict(options)

    def misbehave(self, mode: str | None, **params: Any) -> None:
        """Misbehave as ``mode`` (one of ``MISBEHAVIOURS``, with its ``params``)
        from now on; ``None`` behaves again."""
        if mode is not None and mode not in MISBEHAVIOURS:
            raise ValueError(f"mode must be one of {MISBEHAVIOURS} or None, not {mode!r}")
        if mode == "forged" and self._forger is None:
            # Another key under the same name: only the signature can tell them apart.
            forger = CA(name=_common_name(self.ca.cert), now=self.ca.now)
            with self._lock:
                self._forger = forger
        with self._lock:
            self._behaviour = None if mode is None else (mode, dict(params))

    def _current_behaviour(self) -> tuple[str, dict[str, Any]] | None:
        with self._lock:
            return self._behaviour

    # --- what it saw -------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT/`` (``http://[::1]:PORT/`` on IPv6)."""
        name = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{name}:{self.port}/"

    @property
    def requests(self) -> int:
        """How many HTTP requests arrived (answered, held by :meth:`pause`, or refused)."""
        with self._lock:
            return self._arrived

    @property
    def history(self) -> list[OCSPRequestRecord]:
        """Every request so far, oldest first (a copy)."""
        with self._lock:
            return list(self._history)

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> bool:
        """Wait until at least ``count`` requests arrived; whether they did in time."""
        with self._lock:
            return self._lock.wait_for(lambda: self._arrived >= count, timeout)

    def wait_for_answers(self, count: int, timeout: float = 10.0) -> bool:
        """Wait until at least ``count`` requests were answered; whether they were in time."""
        with self._lock:
            return self._lock.wait_for(lambda: len(self._history) >= count, timeout)

    # --- a slow responder ----------------------------------------------------------------

    def pause(self) -> None:
        """Hold the answer to every request from now on (connections stay open)."""
        self._open_gate.clear()

    def resume(self) -> None:
        """Answer the held requests and every later one at once."""
        self._open_gate.set()

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> OCSPResponder:
        if self._stopped:
            raise RuntimeError("a stopped OCSPResponder cannot be started again")
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.02},
                name=f"OCSPResponder-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close every connection and join every thread. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self._stopping.set()  # a "slow" responder stops waiting
        self._open_gate.set()  # held requests are answered (or find their client gone)
        if self._thread is not None:
            self._server.shutdown()  # returns once serve_forever has returned
            self._thread.join()
        self._server.close_connections()
        self._server.server_close()  # joins the request threads (block_on_close)

    # --- answering ---------------------------------------------------------------------

    def respond(self, request_der: bytes, method: str = "POST") -> bytes:
        """The DER response to one DER OCSP request (what the HTTP handler sends);
        records it in :attr:`history`. Misbehaviours that change the response itself
        (``try-later``, ``forged``, ``other-certificate``, ``no-nonce``,
        ``wrong-nonce``) apply here too."""
        behaviour = self._current_behaviour()
        mode = behaviour[0] if behaviour is not None else None
        serial: int | None = None
        try:
            request = ocsp.load_der_ocsp_request(request_der)
            serial = request.serial_number
            algorithm = request.hash_algorithm.name
        except (ValueError, TypeError, NotImplementedError):
            return self._answer(method, serial, "malformedRequest")
        if algorithm not in _HASHES or algorithm == "md5":
            return self._answer(method, serial, "malformedRequest")
        if not self._about_our_certificates(request, algorithm):
            return self._answer(method, serial, "unauthorized")
        with self._lock:
            entry = self._statuses.get(serial, _UNKNOWN)
            options = dict(self._options)
        this_update = self._clock().replace(microsecond=0)
        nonce = _nonce(request)
        if mode == "no-nonce":
            nonce = None
        elif mode == "wrong-nonce" and nonce is not None:
            nonce = dataclasses.replace(nonce, value=_other_nonce(nonce.value))
        extensions = list(options.pop("extensions", ()))
        if nonce is not None:
            extensions.append(nonce)
        options.setdefault("produced_at", this_update)
        if mode == "try-later":
            options["response_status"] = "tryLater"
        elif mode == "forged":
            options["responder"] = self._forger
        forced = options.get("response_status", "successful")
        der = make_ocsp_response(
            self.ca,
            None,
            this_update=this_update,
            extra_entries=[
                OCSPEntry(
                    serial_number=serial + 1 if mode == "other-certificate" else serial,
                    status=entry.status,
                    this_update=this_update,
                    next_update=None if self.validity is None else this_update + self.validity,
                    revocation_time=entry.revocation_time,
                    revocation_reason=entry.revocation_reason,
                    cert_id_hash=algorithm,
                )
            ],
            extensions=extensions,
            **options,
        )
        self._record(method, serial, entry.status if forced == "successful" else forced)
        return der

    def _about_our_certificates(self, request: ocsp.OCSPRequest, algorithm: str) -> bool:
        """Whether the CertID names ``ca`` as the issuer (name and key hashes)."""
        digest = _HASHES[algorithm][1]
        return request.issuer_name_hash == digest(
            self.ca.cert.subject.public_bytes()
        ).digest() and request.issuer_key_hash == _key_bits_hash(self.ca.cert, digest)

    def _answer(self, method: str, serial: int | None, response_status: str) -> bytes:
        self._record(method, serial, response_status)
        return make_ocsp_response(self.ca, None, response_status=response_status)

    def _record(self, method: str, serial: int | None, answer: str) -> None:
        with self._lock:
            self._history.append(OCSPRequestRecord(method, serial, answer))
            self._lock.notify_all()

    def _arrive(self) -> None:
        with self._lock:
            self._arrived += 1
            self._lock.notify_all()

    def _serve_http(self, request_der: bytes, method: str) -> bytes:
        """What the HTTP handler sends: count, wait while paused, answer."""
        self._arrive()
        self._open_gate.wait()
        return self.respond(request_der, method)

    def _reject(self, method: str) -> None:
        """Count a request that carried no OCSP request at all."""
        self._arrive()
        self._record(method, None, "malformedRequest")


@dataclasses.dataclass(frozen=True)
class _Entry:
    status: str
    revocation_reason: str | None = None
    revocation_time: datetime.datetime | None = None


_UNKNOWN = _Entry("unknown")


def _serial(cert: int | x509.Certificate | Identity) -> int:
    if isinstance(cert, Identity):
        return cert.cert.serial_number
    if isinstance(cert, x509.Certificate):
        return cert.serial_number
    return int(cert)


def _nonce(request: ocsp.OCSPRequest) -> RawExtension | None:
    try:
        extension = request.extensions.get_extension_for_class(x509.OCSPNonce)
    except x509.ExtensionNotFound:
        return None
    return RawExtension(oid=_NONCE_OID, value=extension.value.public_bytes())


def _common_name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(names[0].value) if names else "staplecheck test root"


def _other_nonce(value: bytes) -> bytes:
    """The DER of a Nonce OCTET STRING ``value`` with its last octet changed."""
    if len(value) <= 2:
        return b"\x04\x01\x00"
    return value[:-1] + bytes([value[-1] ^ 0xFF])


def _decode_get_path(path: str) -> bytes:
    """The DER request in a GET path: ``/`` + URL-encoded base64 (RFC 6960 A.1).

    The responder may live under a path (``/ocsp/`` + the request): the last path
    segment is taken when it decodes to an OCSP request; otherwise the whole path is
    (clients that do not URL-encode the base64 leave its ``/`` characters raw)."""
    raw = urllib.parse.urlsplit(path).path.lstrip("/")
    if "/" in raw:
        with contextlib.suppress(ValueError, binascii.Error):
            der = _decode_base64(raw.rsplit("/", 1)[-1])
            ocsp.load_der_ocsp_request(der)
            return der
    return _decode_base64(raw)


def _decode_base64(text: str) -> bytes:
    encoded = urllib.parse.unquote(text)
    encoded = encoded.replace("-", "+").replace("_", "/").replace(" ", "+")
    encoded += "=" * (-len(encoded) % 4)
    return base64.b64decode(encoded, validate=True)


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    timeout = 10  # a client that stops sending cannot hold a thread forever

    def do_GET(self) -> None:
        try:
            request = _decode_get_path(self.path)
        except (ValueError, binascii.Error):
            request = b""
        if self._misbehave_before(request, "GET"):
            return
        self._send(self.server.responder._serve_http(request, "GET"))

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self.send_error(411, "Content-Length required")
            self.server.responder._reject("POST")
            return
        if not 0 <= length <= _MAX_REQUEST:
            self.send_error(413, "OCSP request too large")
            self.server.responder._reject("POST")
            return
        body = self.rfile.read(length)
        if self._misbehave_before(body, "POST"):
            return
        self._send(self.server.responder._serve_http(body, "POST"))

    def _misbehave_before(self, request: bytes, method: str) -> bool:
        """Misbehaviours that need no OCSP response; whether one answered."""
        responder = self.server.responder
        behaviour = responder._current_behaviour()
        if behaviour is None:
            return False
        mode, params = behaviour
        if mode in ("close", "reset"):
            responder._arrive()
            if mode == "reset":
                # Closed here with a zero linger, before socketserver's shutdown() could
                # send a FIN: the client sees a reset.
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.connection.close()
            self.close_connection = True
            return True
        if mode == "slow":
            responder._arrive()
            if not responder._stopping.wait(float(params.get("delay", 30.0))):
                self._send(responder.respond(request, method))
            self.close_connection = True
            return True
        if mode in ("garbage", "empty"):
            responder._arrive()
            body = b"" if mode == "empty" else params.get("body", b"\x30\x03not OCSP at all")
            self._write(200, _CONTENT_TYPE, body)
            return True
        if mode == "redirect":
            responder._arrive()
            location = params.get("location", responder.url + "redirected/")
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return True
        if mode == "http-error":
            responder._arrive()
            self._write(int(params.get("status", 500)), "text/plain", b"no answer\n")
            return True
        return False

    def _send(self, der: bytes) -> None:
        behaviour = self.server.responder._current_behaviour()
        mode, params = behaviour if behaviour is not None else (None, {})
        content_type = _CONTENT_TYPE
        if mode == "content-type":
            content_type = params.get("value", "text/html")
        if mode in ("oversized", "oversized-stream"):
            der = der + bytes(max(0, int(params.get("size", 1 << 20)) - len(der)))
        if mode == "oversized-stream":
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.end_headers()  # no Content-Length: HTTP/1.0, the body ends with the connection
            for at in range(0, len(der), 65536):
                self.wfile.write(der[at : at + 65536])
            self.close_connection = True
            return
        if mode == "drip":
            self._drip(content_type, der, float(params.get("interval", 0.05)))
            return
        self._write(200, content_type, der)

    def _write(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        self.wfile.write(body)

    def _drip(self, content_type: str, body: bytes, interval: float) -> None:
        head = (
            f"HTTP/1.0 200 OK\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode("ascii")
        stopping = self.server.responder._stopping
        try:
            for byte in head + body:
                self.wfile.write(bytes((byte,)))
                self.wfile.flush()
                if stopping.wait(interval):
                    break
        except OSError:
            pass  # the client gave up: that is what a drip tests
        self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests read history, not stderr


class _HTTPServer(LoopbackHTTPServer):
    def __init__(self, host: str, port: int, responder: OCSPResponder) -> None:
        self.responder = responder
        super().__init__(host, port, _Handler, "OCSPResponder")
