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
import dataclasses
import datetime
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

__all__ = ["OCSPRequestRecord", "OCSPResponder"]

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
    ``unauthorized``, or whatever :meth:`OCSPResponder.set_response_options` forced)."""


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
        self._open_gate.set()  # held requests are answered (or find their client gone)
        if self._thread is not None:
            self._server.shutdown()  # returns once serve_forever has returned
            self._thread.join()
        self._server.close_connections()
        self._server.server_close()  # joins the request threads (block_on_close)

    # --- answering ---------------------------------------------------------------------

    def respond(self, request_der: bytes, method: str = "POST") -> bytes:
        """The DER response to one DER OCSP request (what the HTTP handler sends);
        records it in :attr:`history`."""
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
        extensions = list(options.pop("extensions", ()))
        if nonce is not None:
            extensions.append(nonce)
        options.setdefault("produced_at", this_update)
        forced = options.get("response_status", "successful")
        der = make_ocsp_response(
            self.ca,
            None,
            this_update=this_update,
            extra_entries=[
                OCSPEntry(
                    serial_number=serial,
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


def _decode_get_path(path: str) -> bytes:
    """The DER request in a GET path: ``/`` + URL-encoded base64 (RFC 6960 A.1)."""
    encoded = urllib.parse.unquote(urllib.parse.urlsplit(path).path.lstrip("/"))
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
        self._send(self.server.responder._serve_http(body, "POST"))

    def _send(self, der: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", _CONTENT_TYPE)
        self.send_header("Content-Length", str(len(der)))
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        self.wfile.write(der)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests read history, not stderr


class _HTTPServer(LoopbackHTTPServer):
    def __init__(self, host: str, port: int, responder: OCSPResponder) -> None:
        self.responder = responder
        super().__init__(host, port, _Handler, "OCSPResponder")
