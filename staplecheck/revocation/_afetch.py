"""The asynchronous fetcher: the blocking fetcher's rules (:mod:`._fetch`), over AnyIO.

Used by :meth:`RevocationChecker.check_async` (the async httpx transport, aiohttp), so
that a live OCSP query or a CRL download holds no thread and never blocks the event
loop, under asyncio and trio alike. The rules are the same functions as the blocking
fetcher's: :func:`~._fetch.parse_target` (http:// only unless allowed, no credentials,
no port 0, no control characters), :func:`~._fetch.check_head` (200 only, no redirect,
the expected Content-Type, Content-Length headers that agree and fit the cap), the same
byte caps, and :func:`~._fetch.first_answer` to account for a race among responders.
HTTP/1.1 is spoken with h11 (the HTTP/1.1 library httpcore is built on), fed one
response head at a time, so that the head rules are the blocking fetcher's
(``http.client``'s) whatever the segmentation: status lines and headers over
:data:`MAX_HEAD_BYTES` in all, or a head of 100 header lines or more (http.client's
limit), are refused before the body; only ``100 Continue`` is skipped (another ``1xx``
is a final answer, refused as not 200).

Time: everything (name resolution, connecting, every receive) runs under one AnyIO
cancel scope that ends at the earlier of ``deadline`` and ``timeout``; a server that
drips one byte at a time is cut off there. A name is resolved by the blocking
fetcher's resolver (a daemon thread abandoned at the deadline, at most
:data:`~._fetch.MAX_PENDING_RESOLUTIONS` pending), never by the event loop's default
executor, which a dead resolver would fill. No redirect is followed and no proxy
setting is read. Every failure raises :class:`~._fetch.FetchError`.
"""

from __future__ import annotations

import functools
import re
import socket
import ssl
import time
from collections.abc import Callable, Sequence

import anyio
import anyio.abc
import anyio.to_thread
import h11

from ..validation._result import StapleResult
from ._fetch import (
    CRL_TYPES,
    DEFAULT_TIMEOUT,
    MAX_CRL_FETCH_BYTES,
    MAX_HEAD_BYTES,
    MAX_OCSP_FETCH_BYTES,
    MAX_PARALLEL,
    OCSP_TYPES,
    TOO_MANY_HEADERS,
    FetchError,
    Finished,
    FirstAnswer,
    HeadTooLargeError,
    Target,
    _AddrInfo,
    _ResolveTimeoutError,
    check_head,
    first_answer,
    judged,
    ocsp_exchange,
    parse_target,
    resolve_within,
)
from ._ocsp import DEFINITE

__all__ = ["MAX_HEAD_BYTES", "afetch", "afetch_crl", "afetch_first", "afetch_ocsp"]

_CHUNK = 65_536
_HEAD_CHUNK = 4_096
_HEAD_END = re.compile(rb"\n\r?\n")  # where h11 (and http.client) see a head end
_MAX_HEADER_LINES = 100  # http.client's limit (_MAXHEADERS), the blank line included
_USER_AGENT = "staplecheck"


async def afetch(
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
) -> bytes:
    """GET ``url`` (or POST ``body`` as ``content_type``) and return the body: the
    awaitable twin of :func:`~._fetch.fetch`, with the same arguments and rules."""
    start = clock()
    end = min(deadline, start + timeout)

    def fail(reason: str) -> FetchError:
        return FetchError(reason, url, clock() - start)

    try:
        where = parse_target(url, allow_https=allow_https)
    except ValueError as error:
        raise fail(str(error)) from None
    left = end - start
    if left <= 0:
        raise fail("no time left before the deadline")
    try:
        with anyio.fail_after(left):
            stream = await _connect(where, end, clock)
            async with stream:
                return await _exchange(stream, where, body, content_type, accept, max_bytes, fail)
    except FetchError:
        raise
    except _ResolveTimeoutError:
        raise fail(f"the host name was not resolved within {left:.3f} s") from None
    except TimeoutError:
        raise fail(f"no answer within {left:.3f} s") from None
    except HeadTooLargeError as error:
        raise fail(str(error)) from None
    except h11.RemoteProtocolError as error:
        raise fail(f"the server broke HTTP/1.1: {str(error)[:200]}") from None
    except (OSError, anyio.BrokenResourceError, ssl.SSLError, ValueError) as error:
        raise fail(_describe(error)) from None


async def _connect(where: Target, end: float, clock: Callable[[], float]) -> anyio.abc.ByteStream:
    """Connect to the first address of ``where`` that answers (in the order the
    resolver gave, as the blocking fetcher does). A name is resolved by the blocking
    fetcher's resolver (:func:`~._fetch.resolve_within`: a daemon thread abandoned at
    ``end``, at most :data:`~._fetch.MAX_PENDING_RESOLUTIONS` of them left running),
    waited for in a worker thread that ``end`` frees: never the event loop's default
    executor, which a dead resolver would fill for every ``getaddrinfo`` of the
    application (asyncio's own name lookups queue behind it)."""
    found: _AddrInfo
    try:  # an address literal: no resolver, no thread
        found = socket.getaddrinfo(
            where.host, where.port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST
        )
    except socket.gaierror:
        found = await anyio.to_thread.run_sync(
            functools.partial(resolve_within, where.host, where.port, end, clock),
            abandon_on_cancel=True,
        )
    last: OSError | None = None
    for _family, _kind, _proto, _name, address in found:
        ip = str(address[0])
        try:
            if where.scheme == "https":
                return await anyio.connect_tcp(
                    ip,
                    where.port,
                    tls=True,
                    ssl_context=ssl.create_default_context(),
                    tls_hostname=where.host,
                    tls_standard_compatible=False,
                )
            return await anyio.connect_tcp(ip, where.port)
        except OSError as error:
            last = error
    raise last or OSError(f"no address for {where.host}")


async def _exchange(
    stream: anyio.abc.ByteStream,
    where: Target,
    body: bytes | None,
    content_type: str | None,
    accept: frozenset[str],
    max_bytes: int,
    fail: Callable[[str], FetchError],
) -> bytes:
    http = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_BYTES)
    headers = [
        ("Host", _host_header(where)),
        ("User-Agent", _USER_AGENT),
        ("Accept", ", ".join(sorted(accept))),
        ("Connection", "close"),
    ]
    if body is not None:
        headers += [
            ("Content-Type", content_type or "application/octet-stream"),
            ("Content-Length", str(len(body))),
        ]
    method = "POST" if body is not None else "GET"
    request = http.send(h11.Request(method=method, target=where.target, headers=headers))
    if body is not None:
        request = (request or b"") + (http.send(h11.Data(data=body)) or b"")
    request = (request or b"") + (http.send(h11.EndOfMessage()) or b"")
    await stream.send(request)

    heads = _Heads(http, stream)
    response = await heads.next()
    while isinstance(response, h11.InformationalResponse) and response.status_code == 100:
        response = await heads.next()  # 100 Continue, skipped as http.client does
    if isinstance(response, h11.InformationalResponse):
        # http.client takes any other 1xx as the final answer: not 200, refused.
        status, reason = response.status_code, response.reason.decode("latin-1")
        raise fail(f"HTTP {status} {reason[:100]!r}")
    if not isinstance(response, h11.Response):
        raise fail("the server closed the connection without answering")
    heads.rest()
    fields = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in response.headers]

    def header(name: str) -> list[str]:
        wanted = name.lower()
        return [value for key, value in fields if key == wanted]

    chunked = any("chunked" in value.lower() for value in header("Transfer-Encoding"))
    lengths = header("Content-Length")
    length = int(lengths[0]) if lengths and not chunked else None
    try:
        check_head(
            response.status_code,
            response.reason.decode("latin-1"),
            header,
            accept,
            max_bytes,
            length,
        )
    except ValueError as error:
        raise fail(str(error)) from None
    chunks: list[bytes] = []
    total = 0
    while True:
        try:
            event = await _next(http, stream, _CHUNK)
        except h11.RemoteProtocolError:
            if length is not None and total < length:
                raise fail(f"the body was cut short after {total} of {length} bytes") from None
            raise
        if isinstance(event, h11.EndOfMessage):
            break
        if not isinstance(event, h11.Data):
            raise fail(f"unexpected {type(event).__name__} in the body")
        total += len(event.data)
        if total > max_bytes:
            raise fail(f"the body is over the cap of {max_bytes} bytes")
        chunks.append(bytes(event.data))
    if total == 0:
        raise fail("the body is empty")
    return b"".join(chunks)


class _Heads:
    """Feeds h11 the bytes of one response head at a time, found here (its blank line)
    before h11 sees them: a head is measured whole, as http.client measures it, not by
    how much of it happened to arrive in one read."""

    def __init__(self, http: h11.Connection, stream: anyio.abc.ByteStream) -> None:
        self._http = http
        self._stream = stream
        self._pending = bytearray()
        self._taken = 0
        self._ended = False

    async def next(self) -> object:
        """The next head's event; ``None`` when the connection ended before one began."""
        while True:
            found = _HEAD_END.search(self._pending)
            size = found.end() if found is not None else len(self._pending)
            if self._taken + size > MAX_HEAD_BYTES:
                raise HeadTooLargeError
            if found is None and self._ended and not self._pending:
                return None  # the connection ended between heads: no answer
            if found is not None or self._ended:
                head = bytes(self._pending[:size])
                del self._pending[:size]
                self._taken += size
                if head.count(b"\n") - 1 > _MAX_HEADER_LINES:  # lines after the status
                    raise HeadTooLargeError(TOO_MANY_HEADERS)
                self._http.receive_data(head)
                if self._ended and not self._pending:
                    self._http.receive_data(b"")
                event = self._http.next_event()
                if event is h11.NEED_DATA:
                    raise h11.RemoteProtocolError("a malformed response head")
                return event
            try:
                data = await self._stream.receive(_HEAD_CHUNK)
            except anyio.EndOfStream:
                self._ended = True
            else:
                self._pending += data

    def rest(self) -> None:
        """Hand h11 what was read past the final head (the body's first bytes)."""
        if self._pending:
            self._http.receive_data(bytes(self._pending))
            self._pending.clear()
        if self._ended:
            self._http.receive_data(b"")


async def _next(http: h11.Connection, stream: anyio.abc.ByteStream, chunk: int) -> object:
    """The next HTTP event, receiving ``chunk`` bytes at a time as long as it takes
    (h11 bounds an incomplete head; the caller bounds the body)."""
    while True:
        event = http.next_event()
        if event is not h11.NEED_DATA:
            return event
        try:
            data = await stream.receive(chunk)
        except anyio.EndOfStream:
            data = b""
        http.receive_data(data)


def _host_header(where: Target) -> str:
    host = f"[{where.host}]" if ":" in where.host else where.host
    default = 443 if where.scheme == "https" else 80
    return host if where.port == default else f"{host}:{where.port}"


def _describe(error: BaseException) -> str:
    if isinstance(error.__cause__, OSError) and str(error) == "All connection attempts failed":
        error = error.__cause__  # AnyIO's summary of every address tried: the last failure
    if isinstance(error, socket.gaierror):
        return f"the host name cannot be resolved ({error.strerror})"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, ConnectionResetError | anyio.BrokenResourceError):
        return "the connection was reset"
    if isinstance(error, OSError) and error.strerror and "resolve" in str(error).lower():
        return f"the host name cannot be resolved ({error.strerror})"
    text = str(error) or type(error).__name__
    return f"{type(error).__name__}: {text[:200]}"


async def afetch_ocsp(
    url: str,
    request_der: bytes,
    *,
    deadline: float,
    method: str = "POST",
    timeout: float = DEFAULT_TIMEOUT,
    max_bytes: int = MAX_OCSP_FETCH_BYTES,
    allow_https: bool = False,
    clock: Callable[[], float] = time.monotonic,
) -> bytes:
    """Ask the responder at ``url``: the awaitable twin of :func:`~._fetch.fetch_ocsp`."""
    target, body, content_type = ocsp_exchange(url, request_der, method)
    return await afetch(
        target,
        accept=OCSP_TYPES,
        max_bytes=max_bytes,
        deadline=deadline,
        timeout=timeout,
        body=body,
        content_type=content_type,
        allow_https=allow_https,
        clock=clock,
    )


async def afetch_crl(
    url: str,
    *,
    deadline: float,
    timeout: float = DEFAULT_TIMEOUT,
    max_bytes: int = MAX_CRL_FETCH_BYTES,
    allow_https: bool = False,
    clock: Callable[[], float] = time.monotonic,
) -> bytes:
    """GET a CRL: the awaitable twin of :func:`~._fetch.fetch_crl`."""
    return await afetch(
        url,
        accept=CRL_TYPES,
        max_bytes=max_bytes,
        deadline=deadline,
        timeout=timeout,
        allow_https=allow_https,
        clock=clock,
    )


async def afetch_first(
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
    """Ask every responder in ``urls`` at once (tasks; the first :data:`MAX_PARALLEL`)
    and return the first definite answer, cancelling the others: the awaitable twin of
    :func:`~._fetch.fetch_first`, with the same result. ``judge`` runs on the event
    loop (a signature check, no I/O)."""
    start = clock()
    asked = list(urls[:MAX_PARALLEL])
    finished: Finished = {}
    winner: tuple[int, StapleResult, bytes] | None = None

    async def attempt(index: int, url: str, race: anyio.CancelScope) -> None:
        nonlocal winner
        try:
            der = await afetch_ocsp(
                url,
                request_der,
                deadline=deadline,
                method=method,
                timeout=timeout,
                max_bytes=max_bytes,
                allow_https=allow_https,
                clock=clock,
            )
        except FetchError as error:
            end(index, "failed", error.reason)
            return
        except Exception as error:  # noqa: BLE001 - reported like the blocking fetcher
            end(index, "failed", repr(error)[:200])
            return
        result, outcome, reason = judged(der, judge)
        ended = end(index, outcome, reason)
        if ended and winner is None and result is not None and result.status in DEFINITE:
            winner = (index, result, der)
            race.cancel()

    def end(index: int, outcome: str, reason: str) -> bool:
        """Record an attempt that ended before the deadline. One that ends at it is
        left to :func:`first_answer` as ``timeout``, as the blocking race reports it
        (its attempt's own timer and the race's fire at the same instant)."""
        when = clock()
        if when >= deadline:
            return False
        finished[index] = (outcome, reason, when)
        return True

    with anyio.move_on_after(max(deadline - clock(), 0.0)):
        async with anyio.create_task_group() as group:
            for index, url in enumerate(asked):
                group.start_soon(attempt, index, url, group.cancel_scope)
    return first_answer(urls, len(asked), finished, winner, (clock() - start) * 1e3, start)
