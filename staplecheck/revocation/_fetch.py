"""The blocking fetcher: move bytes over HTTP under strict limits, and judge nothing.

Built on the standard library's ``http.client``, not urllib3, because each rule below
is then visible in a few lines rather than configured away: ``http.client`` never
follows a redirect, never reads proxy settings from the environment (``HTTP_PROXY``,
``NO_PROXY``... are ignored: a responder is asked directly, or not at all), keeps no
connection pool that could carry state between certificates, and lets the socket be
made here, so that every receive is bounded by the deadline.

Rules, for OCSP responders and CRL distribution points alike:

- ``http://`` only, unless the caller allows ``https://`` (RFC 6960 and RFC 5280
  sources are signed; TLS to them adds a certificate check that may need the very
  revocation answer being fetched).
- No redirects: a 3xx is a failure that names its Location.
- A byte cap: a Content-Length over it is refused before the body is read, and a body
  without one is refused as soon as it passes the cap.
- Time: ``deadline`` is a ``time.monotonic()`` instant that is never exceeded; each
  attempt also has its own ``timeout``. Connecting and every single receive wait at
  most the time left, so a server that drips one byte at a time is cut off at the
  deadline, not at one timeout per byte. Name resolution (``getaddrinfo``) cannot be
  interrupted in the standard library: it runs in a daemon thread that is abandoned
  at the deadline (at most :data:`MAX_PENDING_RESOLUTIONS` left running), so a hung
  resolver cannot overrun it either; :func:`fetch_first` returns at the deadline
  whatever its threads are doing. Over
  ``https://`` (opt-in) each receive is bounded by the time left when the connection
  was made, not re-armed per receive: the same holds there.
- 200 only, the expected Content-Type only (``application/ocsp-response`` for OCSP;
  ``application/pkix-crl`` for CRLs, and also ``application/x-pkcs7-crl`` (older
  IIS, ADCS) and ``application/octet-stream`` (servers that know no better), since
  the CRL judge reads the bytes whatever they are labelled), and a non-empty body.

Every failure raises :class:`FetchError` (reason, URL, elapsed seconds); no socket,
``http.client`` or ``ssl`` exception escapes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import ipaddress
import os
import queue
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Any

from ..validation._result import StapleResult
from ._ocsp import DEFINITE, OCSP_REQUEST_TYPE, OCSP_RESPONSE_TYPE, get_url

__all__ = [
    "CRL_TYPES",
    "DEFAULT_TIMEOUT",
    "MAX_CRL_FETCH_BYTES",
    "MAX_HEAD_BYTES",
    "MAX_OCSP_FETCH_BYTES",
    "MAX_PARALLEL",
    "MAX_PENDING_RESOLUTIONS",
    "OCSP_TYPES",
    "Attempt",
    "FetchError",
    "FirstAnswer",
    "fetch",
    "fetch_crl",
    "fetch_first",
    "fetch_ocsp",
]

MAX_OCSP_FETCH_BYTES = 65_536
"""The largest OCSP response read: the validator examines nothing larger
(``staplecheck.validation._shape.MAX_RESPONSE_BYTES``); real ones are 0.3-6 KB."""
MAX_CRL_FETCH_BYTES = 32 * 1024 * 1024
"""The largest CRL read: the CRL judge's own cap (``_crl.MAX_CRL_BYTES``)."""
MAX_HEAD_BYTES = 16_384
"""The most bytes of status lines and headers taken before the body (interim ``1xx``
responses included), by the blocking and the async fetcher alike: a response whose
head is longer is refused, however its bytes arrive (one segment or one byte at a
time), so both fetchers give the same answer for the same bytes."""
DEFAULT_TIMEOUT = 2.0
"""Seconds per attempt (DESIGN.md: the whole fallback's default budget is 2 s)."""
MAX_PARALLEL = 8
"""URLs :func:`fetch_first` queries at once; the rest are not asked (a certificate's
AIA with hundreds of URLs must not make hundreds of threads)."""

OCSP_TYPES = frozenset({OCSP_RESPONSE_TYPE})
CRL_TYPES = frozenset(
    {"application/pkix-crl", "application/x-pkcs7-crl", "application/octet-stream"}
)

_CHUNK = 65_536
_USER_AGENT = "staplecheck"


class FetchError(Exception):
    """A fetch failed: ``reason`` says why in words, for the verdict log."""

    def __init__(self, reason: str, url: str, elapsed: float) -> None:
        # A reason may quote what a server sent (a status line, a header): it reaches
        # logs and terminals, so control characters are escaped, never passed on.
        reason = _printable(reason)
        super().__init__(f"{url}: {reason}")
        self.reason = reason
        self.url = url
        self.elapsed = elapsed
        """Seconds from the start of the fetch to the failure."""


def _printable(text: str) -> str:
    """``text`` with every character that is not printable written as its escape."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class _CancelledError(Exception):
    """The attempt was cancelled (another URL answered first)."""


class _Cancel:
    """Shuts down the sockets of attempts that are no longer wanted, which wakes a
    thread blocked in connect or recv at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self.cancelled = False

    def register(self, sock: socket.socket) -> None:
        with self._lock:
            if self.cancelled:
                raise _CancelledError
            self._sockets.add(sock)

    def unregister(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class _DeadlineSocket(socket.socket):
    """A socket whose every receive waits at most until ``deadline``: http.client
    reads the status line, headers and body through ``recv_into``."""

    deadline: float
    clock: Callable[[], float]
    cancel: _Cancel | None

    def recv_into(self, buffer: memoryview | bytearray, nbytes: int = 0, flags: int = 0) -> int:  # type: ignore[override]
        if self.cancel is not None and self.cancel.cancelled:
            raise _CancelledError
        left = self.deadline - self.clock()
        if left <= 0:
            raise TimeoutError("deadline reached")
        self.settimeout(left)
        return super().recv_into(buffer, nbytes, flags)


TOO_MANY_HEADERS = "the response head has 100 header lines or more"
"""http.client's own limit (``_MAXHEADERS``: 100 lines with the blank one), which the
async fetcher applies too."""


class HeadTooLargeError(http.client.HTTPException):
    """The status lines and headers passed :data:`MAX_HEAD_BYTES` (or one head has
    :data:`TOO_MANY_HEADERS`)."""

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason or f"the response head is over the cap of {MAX_HEAD_BYTES} bytes")


class _HeadReader:
    """The response's file while its head is read: counts the bytes of the lines
    http.client reads (it reads the head with ``readline`` only) and refuses the head
    past :data:`MAX_HEAD_BYTES`; closing it closes the file."""

    def __init__(self, fp: Any) -> None:
        self.fp = fp
        self.taken = 0

    def readline(self, limit: int = -1) -> bytes:
        line: bytes = self.fp.readline(limit)
        self.taken += len(line)
        if self.taken > MAX_HEAD_BYTES:
            raise HeadTooLargeError
        return line

    def close(self) -> None:
        self.fp.close()


class _Response(http.client.HTTPResponse):
    """http.client's response, with the head capped at :data:`MAX_HEAD_BYTES` (its own
    limits are 64 KB a line and 100 headers: 6.5 MB)."""

    def begin(self) -> None:
        real = self.fp
        counted: Any = _HeadReader(real)
        self.fp = counted
        try:
            super().begin()
        finally:
            if self.fp is not None:  # not closed by begin() (an empty body)
                self.fp = real


class _Connection(http.client.HTTPConnection):
    """An HTTP connection whose socket is a :class:`_DeadlineSocket`."""

    response_class = _Response

    def __init__(
        self,
        host: str,
        port: int | None,
        deadline: float,
        clock: Callable[[], float],
        cancel: _Cancel | None,
    ) -> None:
        super().__init__(host, port, timeout=max(deadline - clock(), 0.001))
        self._deadline = deadline
        self._clock = clock
        self._cancel = cancel

        self.raw: socket.socket | None = None
        """The TCP socket this connection made (registered with the cancellation)."""
        self.made: socket.socket | None = None
        """The socket it reads from (the TLS one over ``raw`` for https), closed by
        :meth:`discard`."""

    def connect(self) -> None:
        self.sock = self.raw = self.made = _open(
            self.host, self.port, self._deadline, self._clock, self._cancel
        )

    def discard(self) -> None:
        """Close the connection and its socket now. http.client leaves the socket
        open (until garbage collection) when a response was begun and not closed,
        as after a ConnectionError in ``getresponse``."""
        self.close()
        made, self.made = self.made, None
        if made is not None:
            with contextlib.suppress(OSError):
                fd = made.detach()
                if fd >= 0:
                    os.close(fd)


class _TLSConnection(_Connection):
    """``https://`` (only when the caller allows it): the system's default verification."""

    default_port = 443

    def connect(self) -> None:
        raw = _open(self.host, self.port, self._deadline, self._clock, self._cancel)
        self.raw = self.made = raw
        context = ssl.create_default_context()
        self.sock = self.made = context.wrap_socket(raw, server_hostname=self.host)


_AddrInfo = list[tuple[Any, Any, int, str, Any]]

MAX_PENDING_RESOLUTIONS = 32
"""Host name resolutions left running past their deadline, at most: each holds a
thread until the resolver gives up (glibc: 5 s per try), so a dead resolver and a
stream of connections must not pile up threads without bound."""
_pending_resolutions = threading.BoundedSemaphore(MAX_PENDING_RESOLUTIONS)


class _ResolveTimeoutError(TimeoutError):
    """The resolver did not answer before the deadline."""


def resolve_within(
    host: str,
    port: int,
    deadline: float,
    clock: Callable[[], float],
    *,
    slots: threading.BoundedSemaphore = _pending_resolutions,
    wait: bool = False,
) -> _AddrInfo:
    """``getaddrinfo`` within the deadline. The standard library cannot interrupt
    it, and a resolver that never answers holds it for the resolver's own timeouts
    (10 s and more): a name is resolved in a daemon thread, abandoned at the
    deadline, holding one of ``slots`` until it ends (so a dead resolver piles up no
    more threads than that). With every slot taken it fails at once, or, with
    ``wait``, waits for one until the deadline. An address literal needs no resolver
    and no thread."""
    try:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    except socket.gaierror:
        pass  # a name, not an address
    if wait:
        if not slots.acquire(timeout=max(deadline - clock(), 0.0)):
            raise _ResolveTimeoutError(
                "deadline reached while waiting to resolve the host name (every "
                "resolution slot is taken: the resolver does not answer)"
            )
    elif not slots.acquire(blocking=False):
        raise OSError(
            f"{MAX_PENDING_RESOLUTIONS} host name resolutions are still pending "
            "(the resolver does not answer)"
        )
    answer: queue.Queue[_AddrInfo | BaseException] = queue.Queue(maxsize=1)

    def resolve() -> None:
        try:
            answer.put(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except Exception as error:  # noqa: BLE001 - handed to the waiting thread
            answer.put(error)
        finally:
            slots.release()

    try:
        threading.Thread(target=resolve, name="staplecheck-resolve", daemon=True).start()
    except RuntimeError:
        slots.release()
        raise OSError("cannot start a thread to resolve the host name") from None
    try:
        found = answer.get(timeout=max(deadline - clock(), 0.0))
    except queue.Empty:
        raise _ResolveTimeoutError("deadline reached while resolving the host name") from None
    if isinstance(found, BaseException):
        raise found
    return found


def _open(
    host: str, port: int, deadline: float, clock: Callable[[], float], cancel: _Cancel | None
) -> socket.socket:
    """Connect to the first address of ``host`` that answers before ``deadline``."""
    last: OSError | None = None
    for family, kind, proto, _, address in resolve_within(host, port, deadline, clock):
        left = deadline - clock()
        if left <= 0:
            raise TimeoutError("deadline reached while connecting")
        sock = _DeadlineSocket(family, kind, proto)
        sock.deadline, sock.clock, sock.cancel = deadline, clock, cancel
        try:
            if cancel is not None:
                cancel.register(sock)
            sock.settimeout(left)
            sock.connect(address)
            if cancel is not None and cancel.cancelled:  # a shutdown does not stop connect()
                raise _CancelledError
            # http.client sends a POST's headers and body in two writes; with Nagle's
            # algorithm the body waits for the headers' ACK, which a server may delay
            # (40 ms on Linux, 200 ms on Windows). http.client's own connect() sets this.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        except OSError as error:
            if cancel is not None:
                cancel.unregister(sock)
            sock.close()
            last = error
        except _CancelledError:
            if cancel is not None:
                cancel.unregister(sock)
            sock.close()
            raise
    raise last or OSError(f"no address for {host}")


@dataclasses.dataclass(frozen=True, slots=True)
class Target:
    """Where a URL's request goes: the pieces every fetcher connects with."""

    scheme: str
    """``http`` or (when allowed) ``https``."""
    host: str
    """A name or an address literal (without brackets)."""
    port: int
    """Always given: the scheme's default when the URL names none."""
    target: str
    """The request target: path and query."""


def parse_target(url: str, *, allow_https: bool) -> Target:
    """``url`` as a :class:`Target`, or :class:`ValueError` saying why it is not
    fetched (the fetchers' URL rules, in one place)."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as error:  # "Invalid IPv6 URL"
        raise ValueError(f"bad URL ({error})") from None
    scheme = parts.scheme.lower()
    if scheme == "https" and not allow_https:
        raise ValueError("https:// sources are refused unless allowed (allow_https=True)")
    if scheme not in ("http", "https"):
        raise ValueError(
            f"only http:// URLs are fetched, not {parts.scheme or 'a relative URL'}://"
        )
    try:
        host = parts.hostname
        port = parts.port
    except ValueError as error:
        raise ValueError(f"bad URL ({error})") from None
    if not host:
        raise ValueError("the URL has no host")
    if port == 0:
        raise ValueError("bad URL (port 0)")  # http.client would quietly use the default
    if parts.username is not None or parts.password is not None:
        raise ValueError("a URL with credentials is refused")
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    if not (host + target).isprintable() or " " in host + target:
        raise ValueError("bad URL (control characters or spaces)")
    return Target(scheme, host, port or (443 if scheme == "https" else 80), target)


def check_head(
    status: int,
    reason: str,
    header: Callable[[str], Sequence[str]],
    accept: frozenset[str],
    max_bytes: int,
    length: int | None,
) -> None:
    """Refuse (:class:`ValueError`, with the reason) a response whose status line or
    headers already rule it out: not 200 (a redirect names its Location), another
    Content-Type, Content-Length headers that disagree, or a ``length`` (the declared
    Content-Length of a body that is not chunked) over ``max_bytes``."""
    if 300 <= status < 400:
        location = (list(header("Location")) or ["(none)"])[0]
        raise ValueError(
            f"HTTP {status} redirect to {location[:200]!r}: redirects are not followed"
        )
    if status != 200:
        raise ValueError(f"HTTP {status} {reason[:100]!r}")
    declared = (list(header("Content-Type")) or [""])[0].split(";")[0].strip().lower()
    if declared not in accept:
        wanted = " or ".join(sorted(accept))
        raise ValueError(f"Content-Type {declared[:100] or '(none)'!r}, not {wanted}")
    if len({value.strip() for value in header("Content-Length")}) > 1:
        # RFC 9112 §6.3: differing lengths are an unrecoverable error (http.client
        # would take the first one).
        raise ValueError("the response has Content-Length headers that disagree")
    if length is not None and length > max_bytes:
        raise ValueError(f"Content-Length {length} is over the cap of {max_bytes} bytes")


def fetch(
    url: str,
    *,
    accept: frozenset[str],
    max_bytes: int,
    deadline: float,
    timeout: float = DEFAULT_TIMEOUT,
    body: bytes | None = None,
    content_type: str | None = None,
    allow_https: bool = False,
    clock: Callable[[], float] = time.monotonic,
    _cancel: _Cancel | None = None,
) -> bytes:
    """GET ``url`` (or POST ``body`` as ``content_type``) and return the body.

    ``accept``: the Content-Types taken (compared without parameters, case-folded).
    ``deadline``: a ``clock()`` instant (``time.monotonic`` by default) never
    exceeded; the attempt ends at the earlier of it and ``timeout`` seconds from now.
    Raises :class:`FetchError` for every failure (see the module docstring).
    """
    start = clock()
    end = min(deadline, start + timeout)

    def fail(reason: str) -> FetchError:
        return FetchError(reason, url, clock() - start)

    try:
        where = parse_target(url, allow_https=allow_https)
    except ValueError as error:
        raise fail(str(error)) from None
    if end <= start:
        raise fail("no time left before the deadline")
    kind = _TLSConnection if where.scheme == "https" else _Connection
    # The port is always given: http.client would otherwise read one out of an IPv6
    # literal ("::1" would become host "::", port 1).
    try:
        connection = kind(where.host, where.port, end, clock, _cancel)
    except (http.client.HTTPException, ValueError) as error:  # control characters
        raise fail(_describe(error)) from None
    try:
        headers = {"User-Agent": _USER_AGENT, "Accept": ", ".join(sorted(accept))}
        if body is not None:
            headers["Content-Type"] = content_type or "application/octet-stream"
        connection.request("POST" if body is not None else "GET", where.target, body, headers)
        with connection.getresponse() as response:
            return _read(response, accept, max_bytes, fail)
    except FetchError:
        raise
    except _CancelledError:
        raise fail("cancelled: another source answered first") from None
    except TimeoutError as error:
        if _cancel is not None and _cancel.cancelled:
            raise fail("cancelled: another source answered first") from None
        waited = end - start
        if isinstance(error, _ResolveTimeoutError):
            raise fail(f"the host name was not resolved within {waited:.3f} s") from None
        raise fail(f"no answer within {waited:.3f} s") from None
    except (OSError, http.client.HTTPException, ssl.SSLError, ValueError) as error:
        if _cancel is not None and _cancel.cancelled:
            raise fail("cancelled: another source answered first") from None
        raise fail(_describe(error)) from None
    finally:
        if _cancel is not None and connection.raw is not None:
            _cancel.unregister(connection.raw)
        connection.discard()


def _read(
    response: http.client.HTTPResponse,
    accept: frozenset[str],
    max_bytes: int,
    fail: Callable[[str], FetchError],
) -> bytes:
    try:
        check_head(
            response.status,
            response.reason,
            lambda name: response.headers.get_all(name) or [],
            accept,
            max_bytes,
            response.length,  # the Content-Length, when one was sent and not chunked
        )
    except ValueError as error:
        raise fail(str(error)) from None
    length = response.length
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = response.read(min(_CHUNK, max_bytes + 1 - total))
        if not chunk:
            break
        total += len(chunk)
        if total > max_bytes:
            raise fail(f"the body is over the cap of {max_bytes} bytes")
        chunks.append(chunk)
    if length is not None and total < length:
        # http.client's read(amt) ends quietly at the end of the connection: a body
        # shorter than its Content-Length is a truncated one, not a complete answer.
        raise fail(f"the body was cut short after {total} of {length} bytes")
    if total == 0:
        raise fail("the body is empty")
    return b"".join(chunks)


def _resolves_at_once(url: str) -> bool:
    """Whether ``url``'s host is an IP address literal: connected to without asking a
    resolver (``getaddrinfo`` cannot be interrupted at a deadline)."""
    try:
        host = urllib.parse.urlsplit(url).hostname
    except ValueError:
        return False
    if host is None:
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _describe(error: BaseException) -> str:
    if isinstance(error, HeadTooLargeError):
        return str(error)
    if isinstance(error, http.client.HTTPException) and str(error).startswith("got more than"):
        return TOO_MANY_HEADERS
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, http.client.IncompleteRead):
        return f"the body was cut short after {len(error.partial)} bytes"
    if isinstance(error, http.client.RemoteDisconnected):
        return "the server closed the connection without answering"
    if isinstance(error, ConnectionResetError):
        return "the connection was reset"
    if isinstance(error, socket.gaierror):
        return f"the host name cannot be resolved ({error.strerror})"
    text = str(error) or type(error).__name__
    return f"{type(error).__name__}: {text[:200]}"


def fetch_ocsp(
    url: str,
    request_der: bytes,
    *,
    deadline: float,
    method: str = "POST",
    timeout: float = DEFAULT_TIMEOUT,
    max_bytes: int = MAX_OCSP_FETCH_BYTES,
    allow_https: bool = False,
    clock: Callable[[], float] = time.monotonic,
    _cancel: _Cancel | None = None,
) -> bytes:
    """Ask the responder at ``url`` (RFC 6960 Appendix A.1): ``POST`` the DER as
    ``application/ocsp-request`` (the default), or ``GET`` it base64 in the URL
    (RFC 5019 §5; meant for requests of at most 255 bytes). The body must be
    ``application/ocsp-response``; it is not judged here."""
    target, body, content_type = ocsp_exchange(url, request_der, method)
    return fetch(
        target,
        accept=OCSP_TYPES,
        max_bytes=max_bytes,
        deadline=deadline,
        timeout=timeout,
        body=body,
        content_type=content_type,
        allow_https=allow_https,
        clock=clock,
        _cancel=_cancel,
    )


def ocsp_exchange(
    url: str, request_der: bytes, method: str
) -> tuple[str, bytes | None, str | None]:
    """Where and what an OCSP query sends (RFC 6960 Appendix A.1): the URL, the body
    and its Content-Type for a ``POST`` (the DER as ``application/ocsp-request``); the
    URL with the DER base64 in it and no body for a ``GET`` (RFC 5019 §5)."""
    if method == "POST":
        return url, request_der, OCSP_REQUEST_TYPE
    if method == "GET":
        try:
            return get_url(url, request_der), None, None
        except ValueError as error:
            raise FetchError(str(error), url, 0.0) from None
    raise ValueError("method must be 'POST' or 'GET'")


def fetch_crl(
    url: str,
    *,
    deadline: float,
    timeout: float = DEFAULT_TIMEOUT,
    max_bytes: int = MAX_CRL_FETCH_BYTES,
    allow_https: bool = False,
    clock: Callable[[], float] = time.monotonic,
) -> bytes:
    """GET a CRL from a distribution point (RFC 5280 §4.2.1.13); not judged here."""
    return fetch(
        url,
        accept=CRL_TYPES,
        max_bytes=max_bytes,
        deadline=deadline,
        timeout=timeout,
        allow_https=allow_https,
        clock=clock,
    )


# --- several responders at once ------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Attempt:
    """One responder asked, for the verdict log."""

    url: str
    outcome: str
    """``good``, ``revoked``, ``unknown``, ``stale`` or ``invalid`` (a judged
    response); ``failed`` (no response: see ``reason``); ``cancelled`` (another
    answered first); ``timeout`` (still running at the deadline); ``skipped``
    (beyond :data:`MAX_PARALLEL`)."""
    reason: str
    milliseconds: float
    """From the start of :func:`fetch_first` to this attempt's end (or the return)."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class FirstAnswer:
    """What :func:`fetch_first` found."""

    result: StapleResult | None
    """The first definite judgement (good, revoked, unknown), or ``None``."""
    url: str | None
    """Who gave it."""
    der: bytes | None
    """The response it was judged from (for a store)."""
    attempts: tuple[Attempt, ...]
    """Every URL, in the order given."""


def judged(
    der: bytes, judge: Callable[[bytes], StapleResult]
) -> tuple[StapleResult | None, str, str]:
    """``judge``'s verdict on a fetched response, with the attempt's outcome and reason;
    a judge that raises gives no evidence (``invalid``), never an exception."""
    try:
        result = judge(der)
    except Exception as error:  # noqa: BLE001 - a judge that raises: no evidence
        return None, "invalid", f"the judge raised {error!r}"[:300]
    return result, result.status.value, result.reason


Finished = dict[int, tuple[str, str, float]]
"""Attempts that ended, by index: outcome, reason, and the ``clock()`` when it ended."""


_Done = tuple[int, str, str, float, StapleResult | None, bytes | None]


def fetch_first(
    urls: Sequence[str],
    request_der: bytes,
    judge: Callable[[bytes], StapleResult],
    *,
    deadline: float,
    method: str = "POST",
    timeout: float = DEFAULT_TIMEOUT,
    max_bytes: int = MAX_OCSP_FETCH_BYTES,
    allow_https: bool = False,
    clock: Callable[[], float] = time.monotonic,
) -> FirstAnswer:
    """Ask every responder in ``urls`` at once (threads; the first :data:`MAX_PARALLEL`)
    and return the first definite answer (``good``, ``revoked`` or ``unknown`` from
    ``judge``), cancelling the other attempts. Returns by ``deadline`` in every case,
    with ``result=None`` when no responder gave a definite answer in time.

    ``judge`` turns a response's bytes into a verdict (for instance
    :func:`~staplecheck.revocation._ocsp.judge_fetched` with the certificates, nonce
    and time bound in); it runs in the attempt's thread and must not raise (an
    exception counts as ``invalid``). A stale or invalid answer does not end the
    search: another responder may still answer properly. A single URL whose host is an
    IP address is asked in the calling thread (no resolver to outlast the deadline).
    """
    start = clock()
    cancel = _Cancel()
    done: queue.Queue[_Done] = queue.Queue()
    asked = list(urls[:MAX_PARALLEL])

    def attempt(index: int, url: str) -> None:
        result: StapleResult | None = None
        der: bytes | None = None
        try:
            der = fetch_ocsp(
                url,
                request_der,
                deadline=deadline,
                method=method,
                timeout=timeout,
                max_bytes=max_bytes,
                allow_https=allow_https,
                clock=clock,
                _cancel=cancel,
            )
        except FetchError as error:
            outcome = "cancelled" if cancel.cancelled else "failed"
            done.put((index, outcome, error.reason, clock(), None, None))
            return
        except Exception as error:  # noqa: BLE001 - reported, never raised in a thread
            done.put((index, "failed", repr(error)[:200], clock(), None, None))
            return
        result, outcome, reason = judged(der, judge)
        done.put((index, outcome, reason, clock(), result, der))

    if len(asked) == 1 and _resolves_at_once(asked[0]):
        # One responder to ask, named by an address: nothing to race and no name
        # resolution that could outlast the deadline, so no thread to start and hand
        # the answer back (about 100 µs a miss). Every receive still ends by the deadline.
        attempt(0, asked[0])
    else:
        for index, url in enumerate(asked):
            threading.Thread(
                target=attempt, args=(index, url), name=f"staplecheck-ocsp-{index}", daemon=True
            ).start()

    finished: Finished = {}
    winner: tuple[int, StapleResult, bytes] | None = None
    while len(finished) < len(asked):
        left = deadline - clock()
        if left <= 0:
            break
        try:
            index, outcome, reason, when, result, der = done.get(timeout=left)
        except queue.Empty:
            break
        finished[index] = (outcome, reason, when)
        if result is not None and der is not None and result.status in DEFINITE:
            winner = (index, result, der)
            break
    cancel.cancel()
    return first_answer(urls, len(asked), finished, winner, (clock() - start) * 1e3, start)


def first_answer(
    urls: Sequence[str],
    asked: int,
    finished: Finished,
    winner: tuple[int, StapleResult, bytes] | None,
    milliseconds: float,
    start: float,
) -> FirstAnswer:
    """What a race among the first ``asked`` of ``urls`` found, every URL accounted
    for: finished, cancelled by the ``winner``, still running at the end
    (``milliseconds`` after ``start``), or never asked."""
    attempts = []
    for index, url in enumerate(urls):
        if index >= asked:
            attempts.append(
                Attempt(url=url, outcome="skipped", reason="over MAX_PARALLEL", milliseconds=0.0)
            )
        elif index in finished:
            outcome, reason, when = finished[index]
            attempts.append(
                Attempt(url=url, outcome=outcome, reason=reason, milliseconds=(when - start) * 1e3)
            )
        elif winner is not None:
            attempts.append(
                Attempt(
                    url=url,
                    outcome="cancelled",
                    reason="another responder answered first",
                    milliseconds=milliseconds,
                )
            )
        else:
            attempts.append(
                Attempt(
                    url=url,
                    outcome="timeout",
                    reason="no answer before the deadline",
                    milliseconds=milliseconds,
                )
            )
    if winner is None:
        return FirstAnswer(result=None, url=None, der=None, attempts=tuple(attempts))
    index, result, der = winner
    return FirstAnswer(result=result, url=urls[index], der=der, attempts=tuple(attempts))
