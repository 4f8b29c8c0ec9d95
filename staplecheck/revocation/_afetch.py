"""The asynchronous fetcher: the blocking fetcher's rules (:mod:`._fetch`), over AnyIO.

Used by :meth:`RevocationChecker.check_async` (the async httpx transport, aiohttp), so
that a live OCSP query or a CRL download holds no thread and never blocks the event
loop, under asyncio and trio alike. The rules are the same functions as the blocking
fetcher's: :func:`~._fetch.parse_target` (http:// only unless allowed, no credentials,
no port 0, no control characters), :func:`~._fetch.check_head` (200 only, no redirect,
the expected Content-Type, Content-Length headers that agree and fit the cap), the same
byte caps, and :func:`~._fetch.first_answer` to account for a race among responders.
HTTP/1.1 is spoken with h11 (the HTTP/1.1 library httpcore is built on): a status line
and headers larger than :data:`MAX_HEAD_BYTES` are refused before the body.

Time: everything (name resolution, connecting, every receive) runs under one AnyIO
cancel scope that ends at the earlier of ``deadline`` and ``timeout``; a server that
drips one byte at a time is cut off there. Name resolution runs where AnyIO runs it
(a worker thread, abandoned at the deadline). No redirect is followed and no proxy
setting is read. Every failure raises :class:`~._fetch.FetchError`.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Sequence

import anyio
import h11

from ..validation._result import StapleResult
from ._fetch import (
    CRL_TYPES,
    DEFAULT_TIMEOUT,
    MAX_CRL_FETCH_BYTES,
    MAX_OCSP_FETCH_BYTES,
    MAX_PARALLEL,
    OCSP_TYPES,
    FetchError,
    Finished,
    FirstAnswer,
    Target,
    check_head,
    first_answer,
    judged,
    ocsp_exchange,
    parse_target,
)
from ._ocsp import DEFINITE

__all__ = ["MAX_HEAD_BYTES", "afetch", "afetch_crl", "afetch_first", "afetch_ocsp"]

MAX_HEAD_BYTES = 16_384
"""The status line and headers are refused once this many bytes of them are buffered
without their end (h11's limit; read 4 KB at a time, so no head over 20 KB passes)."""

_CHUNK = 65_536
_HEAD_CHUNK = 4_096
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
            return await _exchange(where, body, content_type, accept, max_bytes, fail)
    except FetchError:
        raise
    except TimeoutError:
        raise fail(f"no answer within {left:.3f} s") from None
    except h11.RemoteProtocolError as error:
        raise fail(f"the server broke HTTP/1.1: {str(error)[:200]}") from None
    except (OSError, anyio.BrokenResourceError, ssl.SSLError, ValueError) as error:
        raise fail(_describe(error)) from None


async def _exchange(
    where: Target,
    body: bytes | None,
    content_type: str | None,
    accept: frozenset[str],
    max_bytes: int,
    fail: Callable[[str], FetchError],
) -> bytes:
    if where.scheme == "https":
        stream: anyio.abc.ByteStream = await anyio.connect_tcp(
            where.host,
            where.port,
            tls=True,
            ssl_context=ssl.create_default_context(),
            tls_standard_compatible=False,
        )
    else:
        stream = await anyio.connect_tcp(where.host, where.port)
    async with stream:
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

        response = await _next(http, stream, _HEAD_CHUNK)
        while isinstance(response, h11.InformationalResponse):  # 100 Continue
            response = await _next(http, stream, _HEAD_CHUNK)
        if not isinstance(response, h11.Response):
            raise fail("the server closed the connection without answering")
        fields = [
            (name.decode("latin-1"), value.decode("latin-1")) for name, value in response.headers
        ]

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
