"""httpcore network backends whose TLS is a :class:`StapleConnection` over memory BIOs.

httpcore opens a TCP stream through its ``NetworkBackend`` and then calls the stream's
``start_tls()`` with a stdlib ``ssl.SSLContext``, which cannot ask for a staple. The
streams here ignore that context: ``start_tls()`` runs pyOpenSSL over the stream's
bytes (memory BIOs, so the same code serves sockets, CONNECT tunnels and AnyIO
streams), with the trust, client certificate and ALPN protocols the transport was
configured with. The staple is judged in OpenSSL's callback (no I/O there); the
revocation fallback (network I/O) runs after the handshake and before any HTTP byte:
in the calling thread for the sync backend, in a worker thread for the async one, so
the event loop never waits on a responder.

Every failure of ``start_tls()`` is an httpcore ``ConnectError`` (``ConnectTimeout``)
whose ``__cause__`` is staplecheck's error (``StapleError``, ``RevocationError``) or
the ``ssl`` error for chain and host name failures.
"""

from __future__ import annotations

import ssl
import threading
import typing
from collections.abc import Iterable, Sequence

import anyio
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL

from ..revocation import RevocationResult
from ..tls._hostname import peercert_dict
from ..tls._pyopenssl import StapleConnection
from ..validation._result import StapleResult
from ._httplib import httpcore

__all__ = [
    "AsyncStapleBackend",
    "StapleBackend",
    "StapleSSLObject",
    "TLSConnectError",
    "TLSConnectTimeout",
]

_CHUNK = 65536
_RECORD = 16384  # TLS plaintext record size (RFC 8446 §5.1)

SocketOption = typing.Any  # httpcore's SOCKET_OPTION union; passed through untouched


class StapleSSLObject:
    """What ``get_extra_info("ssl_object")`` returns on a staplecheck TLS stream: the
    parts of ``ssl.SSLObject`` httpcore and users read, plus the verdicts."""

    def __init__(self, connection: StapleConnection) -> None:
        self.connection = connection

    @property
    def staple(self) -> StapleResult | None:
        """The staple verdict (``None`` under policy ``off``)."""
        return self.connection.staple

    @property
    def revocation(self) -> RevocationResult | None:
        """The revocation verdict (policies with a fallback; ``None`` otherwise)."""
        return self.connection.revocation

    def selected_alpn_protocol(self) -> str | None:
        chosen = self.connection.get_alpn_proto_negotiated()
        return chosen.decode("ascii", "replace") if chosen else None

    def version(self) -> str | None:
        version = self.connection.get_protocol_version_name()
        return version or None

    def cipher(self) -> tuple[str, str, int] | None:
        name = self.connection.get_cipher_name()
        if name is None:
            return None
        return (
            name,
            self.connection.get_cipher_version() or "",
            self.connection.get_cipher_bits() or 0,
        )

    def getpeercert(self, binary_form: bool = False) -> typing.Any:
        """As ``ssl.SSLObject.getpeercert``: the DER, or the subject and subjectAltName."""
        cert = self.peer_certificate
        if cert is None:
            return None
        if binary_form:
            return cert.public_bytes(serialization.Encoding.DER)
        return peercert_dict(cert)

    @property
    def peer_certificate(self) -> x509.Certificate | None:
        return self.connection.get_peer_certificate(as_cryptography=True)


class _Engine:
    """One :class:`StapleConnection` over memory BIOs. No I/O: the streams feed it the
    bytes they read and send the bytes it :meth:`drain`s."""

    def __init__(self, context: SSL.Context, host: str | None, alpn: Sequence[bytes]) -> None:
        self.connection = StapleConnection(
            context, None, server_hostname=host, defer_revocation=True
        )
        if alpn:
            self.connection.set_alpn_protos(list(alpn))
        self.eof = False

    def handshake(self) -> bool:
        """One step of the handshake: ``True`` when it is done, ``False`` when it needs
        bytes from the peer. Raises staplecheck's or the ``ssl`` module's errors."""
        try:
            self.connection.do_handshake()
        except SSL.WantReadError:
            if self.eof:
                raise ssl.SSLError(
                    1, "the server closed the connection during the handshake"
                ) from None
            return False
        return True

    def feed(self, data: bytes) -> None:
        if data:
            self.connection.bio_write(data)
        else:
            self.eof = True
            self.connection.bio_shutdown()

    def drain(self) -> bytes:
        chunks = []
        while True:
            try:
                chunk = self.connection.bio_read(_CHUNK)
            except SSL.WantReadError:
                break
            chunks.append(chunk)
            if len(chunk) < _CHUNK:  # a memory BIO gives all it holds, up to the size
                break
        return b"".join(chunks)

    def receive(self, max_bytes: int) -> bytes | None:
        """Application bytes; ``b""`` at the end of the stream, ``None`` when more bytes
        from the peer are needed. Raises ``SSL.Error`` for a broken stream."""
        try:
            return self.connection.recv(max_bytes)
        except SSL.WantReadError:
            if self.eof:
                return b""
            return None
        except SSL.ZeroReturnError:
            return b""
        except SSL.Error as error:
            if self.eof and _ragged_eof(error):
                # No close_notify: what the stdlib's default suppress_ragged_eofs
                # gives httpcore too; HTTP framing decides whether the body is whole.
                return b""
            raise

    def send(self, data: bytes) -> int:
        return self.connection.send(data)


def _ragged_eof(error: SSL.Error) -> bool:
    """Whether ``error`` only says the peer's bytes ended without a close_notify (not a
    bad record, which stays an error)."""
    return isinstance(error, SSL.SysCallError) or "unexpected eof" in str(error)


class TLSConnectError(httpcore.ConnectError):
    """httpcore's ``ConnectError`` for a TLS handshake staplecheck refused or that
    failed. ``reason`` is the error itself: httpcore's pool re-raises with ``from
    None``, which drops ``__cause__``, so the transports read it from here."""

    def __init__(self, message: str, reason: BaseException) -> None:
        super().__init__(message)
        self.reason = reason


class TLSConnectTimeout(httpcore.ConnectTimeout):
    """The handshake (or the revocation check) did not finish in time."""


def _connect_failure(error: BaseException) -> Exception:
    """httpcore's error for a failed ``start_tls``, with the reason as its cause."""
    if isinstance(error, (httpcore.ReadTimeout, httpcore.WriteTimeout, TimeoutError)):
        return TLSConnectTimeout(str(error) or "TLS handshake timed out")
    return TLSConnectError(str(error) or type(error).__name__, error)


def alpn_protocols(http1: bool, http2: bool) -> tuple[bytes, ...]:
    """The ALPN protocols to offer for a transport's ``http1``/``http2`` settings."""
    if not (http1 or http2):
        raise ValueError("at least one of http1 and http2 must be enabled")
    return (b"h2",) * http2 + (b"http/1.1",) * http1


# --- sync ------------------------------------------------------------------------------------


class _SyncTLSStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream, engine: _Engine) -> None:
        self._inner = inner
        self._engine = engine
        self._ssl_object = StapleSSLObject(engine.connection)
        # httpcore's HTTP/2 reads and writes from different threads: OpenSSL calls are
        # serialized, and draining+sending is one step so records leave in order.
        self._ssl_lock = threading.RLock()
        self._send_lock = threading.Lock()

    def _flush(self, timeout: float | None) -> None:
        with self._send_lock:
            with self._ssl_lock:
                data = self._engine.drain()
            if data:
                self._inner.write(data, timeout)

    def handshake(self, timeout: float | None) -> None:
        engine = self._engine
        while True:
            with self._ssl_lock:
                done = engine.handshake()
            self._flush(timeout)
            if done:
                break
            data = self._inner.read(_CHUNK, timeout)
            with self._ssl_lock:
                engine.feed(data)
        engine.connection.check_revocation(timeout)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        while True:
            with self._ssl_lock:
                try:
                    data = self._engine.receive(max_bytes)
                except SSL.Error as error:
                    raise httpcore.ReadError(f"TLS error: {error}") from error
            if data is not None:
                # Anything OpenSSL wrote meanwhile (a KeyUpdate answer) leaves, in
                # order, with the next write or before the next wait for bytes.
                return data
            self._flush(timeout)  # before waiting: OpenSSL may need to say something
            incoming = self._inner.read(_CHUNK, timeout)
            with self._ssl_lock:
                self._engine.feed(incoming)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        view = memoryview(buffer)
        with self._send_lock:
            while view:
                with self._ssl_lock:
                    try:
                        sent = self._engine.send(bytes(view[:_RECORD]))
                    except SSL.Error as error:
                        raise httpcore.WriteError(f"TLS error: {error}") from error
                    data = self._engine.drain()
                view = view[sent:]
                self._inner.write(data, timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("staplecheck does not run TLS inside TLS (an https:// proxy)")

    def get_extra_info(self, info: str) -> typing.Any:
        if info == "ssl_object":
            return self._ssl_object
        if info == "is_readable":
            with self._ssl_lock:
                buffered = self._engine.connection.pending() > 0
            return buffered or self._inner.get_extra_info("is_readable")
        return self._inner.get_extra_info(info)


class _SyncPlainStream(httpcore.NetworkStream):
    """A TCP stream whose ``start_tls`` is staplecheck's."""

    def __init__(self, inner: httpcore.NetworkStream, backend: StapleBackend) -> None:
        self._inner = inner
        self._backend = backend

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        # ssl_context is httpcore's stdlib context: unused (it cannot ask for a staple).
        try:
            stream = _SyncTLSStream(self._inner, self._backend.engine(server_hostname))
            stream.handshake(timeout)
        except Exception as error:
            self._inner.close()
            raise _connect_failure(error) from error
        except BaseException:
            self._inner.close()
            raise
        return stream

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class StapleBackend(httpcore.NetworkBackend):
    """An httpcore ``NetworkBackend`` (sync) whose TLS checks staples.

    ``context`` is a pyOpenSSL context from :func:`staplecheck.create_context`;
    ``alpn`` the protocols to offer (``h2`` and/or ``http/1.1``).
    """

    def __init__(
        self,
        context: SSL.Context,
        *,
        alpn: Iterable[bytes] = (b"http/1.1",),
        tcp: httpcore.NetworkBackend | None = None,
    ) -> None:
        self.context = context
        self.alpn = tuple(alpn)
        self._tcp = tcp or httpcore.SyncBackend()

    def engine(self, host: str | None) -> _Engine:
        return _Engine(self.context, host, self.alpn)

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.NetworkStream:
        inner = self._tcp.connect_tcp(host, port, timeout, local_address, socket_options)
        return _SyncPlainStream(inner, self)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.NetworkStream:
        inner = self._tcp.connect_unix_socket(path, timeout, socket_options)
        return _SyncPlainStream(inner, self)

    def sleep(self, seconds: float) -> None:
        self._tcp.sleep(seconds)


# --- async -----------------------------------------------------------------------------------


class _AsyncTLSStream(httpcore.AsyncNetworkStream):
    def __init__(self, inner: httpcore.AsyncNetworkStream, engine: _Engine) -> None:
        self._inner = inner
        self._engine = engine
        self._ssl_object = StapleSSLObject(engine.connection)
        # One event loop thread: OpenSSL calls never interleave, but a send can await
        # in the middle, so draining+sending is one step under a lock (records in order).
        self._send_lock = anyio.Lock()

    async def _flush(self, timeout: float | None) -> None:
        async with self._send_lock:
            data = self._engine.drain()
            if data:
                await self._inner.write(data, timeout)

    async def handshake(self, timeout: float | None) -> None:
        engine = self._engine
        while not engine.handshake():
            await self._flush(timeout)
            engine.feed(await self._inner.read(_CHUNK, timeout))
        await self._flush(timeout)
        # The fallback's queries are awaited (the async fetchers, no thread); what
        # would block (a SQLite or Redis store, a large CRL) runs in a worker thread.
        await engine.connection.check_revocation_async(timeout)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        while True:
            try:
                data = self._engine.receive(max_bytes)
            except SSL.Error as error:
                raise httpcore.ReadError(f"TLS error: {error}") from error
            if data is not None:
                return data
            await self._flush(timeout)
            self._engine.feed(await self._inner.read(_CHUNK, timeout))

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        view = memoryview(buffer)
        async with self._send_lock:
            while view:
                try:
                    sent = self._engine.send(bytes(view[:_RECORD]))
                except SSL.Error as error:
                    raise httpcore.WriteError(f"TLS error: {error}") from error
                view = view[sent:]
                await self._inner.write(self._engine.drain(), timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("staplecheck does not run TLS inside TLS (an https:// proxy)")

    def get_extra_info(self, info: str) -> typing.Any:
        if info == "ssl_object":
            return self._ssl_object
        if info == "is_readable":
            buffered = self._engine.connection.pending() > 0
            return buffered or self._inner.get_extra_info("is_readable")
        return self._inner.get_extra_info(info)


class _AsyncPlainStream(httpcore.AsyncNetworkStream):
    def __init__(self, inner: httpcore.AsyncNetworkStream, backend: AsyncStapleBackend) -> None:
        self._inner = inner
        self._backend = backend

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            stream = _AsyncTLSStream(self._inner, self._backend.engine(server_hostname))
            with anyio.fail_after(timeout):
                await stream.handshake(timeout)
        except Exception as error:
            with anyio.CancelScope(shield=True):
                await self._inner.aclose()
            raise _connect_failure(error) from error
        except BaseException:  # cancelled: close the socket, leave nothing behind
            with anyio.CancelScope(shield=True):
                await self._inner.aclose()
            raise
        return stream

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class AsyncStapleBackend(httpcore.AsyncNetworkBackend):
    """An httpcore ``AsyncNetworkBackend`` (asyncio and trio, through AnyIO) whose TLS
    checks staples; the revocation fallback runs in a worker thread."""

    def __init__(
        self,
        context: SSL.Context,
        *,
        alpn: Iterable[bytes] = (b"http/1.1",),
        tcp: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self.context = context
        self.alpn = tuple(alpn)
        self._tcp = tcp or httpcore.AnyIOBackend()

    def engine(self, host: str | None) -> _Engine:
        return _Engine(self.context, host, self.alpn)

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        inner = await self._tcp.connect_tcp(host, port, timeout, local_address, socket_options)
        return _AsyncPlainStream(inner, self)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        inner = await self._tcp.connect_unix_socket(path, timeout, socket_options)
        return _AsyncPlainStream(inner, self)

    async def sleep(self, seconds: float) -> None:
        await self._tcp.sleep(seconds)
