"""httpx integration: transports whose TLS checks OCSP staples (sync and async).

``httpx.Client(transport=StapleTransport())`` or ``staplecheck.httpx.client()``;
``httpx.AsyncClient(transport=AsyncStapleTransport())`` or ``async_client()``. The
transports are httpx's own ``HTTPTransport``/``AsyncHTTPTransport`` (request and
response conversion, exception mapping) over an httpcore pool whose network backend
is staplecheck's (:mod:`._httpcore`).
"""

from __future__ import annotations

import importlib.util
import os
import ssl
import typing
from collections.abc import Iterable

from OpenSSL import SSL

from ..revocation import RevocationChecker
from ..tls._hostpolicy import HostPolicies, HostPolicyLike, as_host_policies
from ..tls._log import VerdictLog
from ..tls._pyopenssl import ClientCert, Clock, TLSConfig, create_context
from ..validation._validate import SHARED_CACHE, StapleCache
from ._httpcore import (
    AsyncStapleBackend,
    StapleBackend,
    StapleSSLObject,
    TLSConnectError,
    alpn_protocols,
)
from ._httplib import httpcore, httpx

__all__ = [
    "REVOCATION_EXTENSION",
    "STAPLE_EXTENSION",
    "AsyncStapleTransport",
    "StapleTransport",
    "async_client",
    "client",
]

STAPLE_EXTENSION = "staple"
"""``response.extensions["staple"]``: the connection's
:class:`~staplecheck.StapleResult` (``None`` under policy ``off``)."""
REVOCATION_EXTENSION = "revocation"
"""``response.extensions["revocation"]``: the connection's
:class:`~staplecheck.RevocationResult` (policies with a fallback; ``None`` otherwise)."""

Verify = typing.Union[bool, str, "os.PathLike[str]"]
Cert = typing.Union[str, tuple[str, str], tuple[str, str, str]]
ProxyLike = typing.Union[str, httpx.URL, httpx.Proxy]

DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)


def _tls_config(verify: Verify, cert: Cert | None, tls: TLSConfig | None) -> TLSConfig:
    if tls is not None:
        if verify is not True or cert is not None:
            raise ValueError("give trust and client certificate in tls=, or verify=/cert=")
        return tls
    if verify is False:
        raise ValueError(
            "staplecheck never turns certificate verification off: no staple can be "
            "trusted without a verified chain (use httpx's own transport for that)"
        )
    if isinstance(verify, ssl.SSLContext):
        raise TypeError(
            "a stdlib ssl.SSLContext cannot ask for a staple: give verify= a CA file "
            "or directory (or tls=TLSConfig(...))"
        )
    cafiles: tuple[str, ...] = ()
    capaths: tuple[str, ...] = ()
    if verify is not True:
        path = os.fspath(verify)
        if os.path.isdir(path):
            capaths = (path,)
        elif os.path.isfile(path):
            cafiles = (path,)
        else:
            raise FileNotFoundError(2, "No such CA file or directory", path)
    client_cert = None
    if isinstance(cert, str):
        client_cert = ClientCert(certfile=cert)
    elif cert is not None:
        password = cert[2].encode() if len(cert) == 3 else None
        client_cert = ClientCert(certfile=cert[0], keyfile=cert[1] or None, password=password)
    return TLSConfig(cafiles=cafiles, capaths=capaths, client_cert=client_cert)


def _proxy(proxy: ProxyLike | None) -> httpx.Proxy | None:
    if proxy is None:
        return None
    found = httpx.Proxy(url=proxy) if isinstance(proxy, (str, httpx.URL)) else proxy
    if found.url.scheme != "http":
        # Refuse rather than hand the connection to a transport that checks nothing.
        raise ValueError(
            f"staplecheck's httpx transports support http:// proxies (CONNECT) only, "
            f"not {found.url.scheme}:// ({found.url}); TLS to the proxy and SOCKS are "
            "not implemented"
        )
    return found


def _placeholder_context() -> ssl.SSLContext:
    """The stdlib context httpcore insists on passing to ``start_tls``: staplecheck's
    streams ignore it. It trusts nothing, so if anything ever handshook with it, that
    handshake would fail rather than go unchecked."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


class _Setup:
    """What both transports build from their arguments."""

    def __init__(
        self,
        policy: HostPolicyLike,
        *,
        verify: Verify,
        cert: Cert | None,
        tls: TLSConfig | None,
        http1: bool,
        http2: bool,
        proxy: ProxyLike | None,
        clock: Clock | None,
        cache: StapleCache | None,
        log: VerdictLog | None,
        revocation: RevocationChecker | None,
    ) -> None:
        self.policies: HostPolicies = as_host_policies(policy)
        self.alpn = alpn_protocols(http1, http2)
        if http2 and importlib.util.find_spec("h2") is None:
            raise ImportError(
                "http2=True needs h2: pip install 'staplecheck[httpx]' 'httpx[http2]'"
            )
        self.proxy = _proxy(proxy)
        self.context: SSL.Context = create_context(
            self.policies,
            config=_tls_config(verify, cert, tls),
            clock=clock,
            cache=cache,
            log=log,
            revocation=revocation,
        )
        self.placeholder = _placeholder_context()

    def proxy_url(self) -> httpcore.URL:
        assert self.proxy is not None
        url = self.proxy.url
        return httpcore.URL(
            scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
        )


def _with_verdicts(response: httpx.Response) -> httpx.Response:
    stream = response.extensions.get("network_stream")
    ssl_object = stream.get_extra_info("ssl_object") if stream is not None else None
    if isinstance(ssl_object, StapleSSLObject):
        response.extensions[STAPLE_EXTENSION] = ssl_object.staple
        response.extensions[REVOCATION_EXTENSION] = ssl_object.revocation
    return response


def _refusal(error: httpx.ConnectError, request: httpx.Request) -> httpx.ConnectError | None:
    """An ``httpx.ConnectError`` whose cause is the TLS refusal itself (staplecheck's
    error or the ``ssl`` one) rather than httpcore's wrapper of it; ``None`` when the
    failure was not TLS's."""
    inner = error.__cause__
    reason = inner.reason if isinstance(inner, TLSConnectError) else None
    if not isinstance(reason, ssl.SSLError):
        return None
    refusal = httpx.ConnectError(str(error), request=request)
    refusal.__cause__ = reason
    return refusal


def _pool_options(
    setup: _Setup,
    limits: httpx.Limits,
    *,
    network_backend: object,
    **settings: typing.Any,
) -> dict[str, typing.Any]:
    """What an httpcore pool or proxy (sync or async) is built with: the transport's
    settings, the placeholder context and the staplecheck backend."""
    return {
        "ssl_context": setup.placeholder,
        "max_connections": limits.max_connections,
        "max_keepalive_connections": limits.max_keepalive_connections,
        "keepalive_expiry": limits.keepalive_expiry,
        "network_backend": network_backend,
        **settings,
    }


def _proxy_options(setup: _Setup) -> dict[str, typing.Any]:
    """The CONNECT proxy's own settings (``setup.proxy`` is set)."""
    assert setup.proxy is not None
    return {
        "proxy_url": setup.proxy_url(),
        "proxy_auth": setup.proxy.raw_auth,
        "proxy_headers": setup.proxy.headers.raw,
    }


class StapleTransport(httpx.HTTPTransport):
    """An httpx transport (sync) that checks OCSP staples on every new TLS connection.

    ``policy`` is a mode (``"soft-fail"``, ``"must-staple"``, ``"hard-fail"``,
    ``"off"``), a :class:`~staplecheck.Policy` or a :class:`~staplecheck.HostPolicies`
    table. Trust: ``verify`` (``True``: certifi; a CA file or directory), ``cert``
    (client certificate: a PEM path, ``(certfile, keyfile)`` or ``(certfile, keyfile,
    password)``), or ``tls`` (a :class:`~staplecheck.TLSConfig`, for CA data, TLS
    versions and ciphers). Verification cannot be turned off. ``proxy``: an ``http://``
    proxy (HTTPS through CONNECT); other schemes raise ``ValueError`` here. ``clock``,
    ``cache``, ``log`` and ``revocation`` are as for
    :func:`staplecheck.create_context`. The other arguments are httpx's.

    Responses carry ``extensions["staple"]`` and ``extensions["revocation"]`` (read
    them with :func:`staplecheck.staple_of` / :func:`staplecheck.revocation_of`). A
    refusal raises ``httpx.ConnectError`` whose ``__cause__`` is the
    :class:`~staplecheck.StapleError` (:class:`~staplecheck.RevocationError`), or the
    ``ssl`` error for chain and host name failures.
    """

    def __init__(
        self,
        policy: HostPolicyLike = "soft-fail",
        *,
        verify: Verify = True,
        cert: Cert | None = None,
        tls: TLSConfig | None = None,
        http1: bool = True,
        http2: bool = False,
        limits: httpx.Limits = DEFAULT_LIMITS,
        proxy: ProxyLike | None = None,
        uds: str | None = None,
        local_address: str | None = None,
        retries: int = 0,
        socket_options: Iterable[typing.Any] | None = None,
        clock: Clock | None = None,
        cache: StapleCache | None = SHARED_CACHE,
        log: VerdictLog | None = None,
        revocation: RevocationChecker | None = None,
    ) -> None:
        setup = _Setup(
            policy,
            verify=verify,
            cert=cert,
            tls=tls,
            http1=http1,
            http2=http2,
            proxy=proxy,
            clock=clock,
            cache=cache,
            log=log,
            revocation=revocation,
        )
        super().__init__(verify=setup.placeholder, trust_env=False, http1=http1, http2=http2)
        self.policies = setup.policies
        self.network_backend = StapleBackend(setup.context, alpn=setup.alpn)
        options = _pool_options(
            setup,
            limits,
            http1=http1,
            http2=http2,
            uds=uds,
            local_address=local_address,
            retries=retries,
            socket_options=socket_options,
            network_backend=self.network_backend,
        )
        self._pool = (
            httpcore.ConnectionPool(**options)
            if setup.proxy is None
            else httpcore.HTTPProxy(**_proxy_options(setup), **options)
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = super().handle_request(request)
        except httpx.ConnectError as error:
            refusal = _refusal(error, request)
            if refusal is None:
                raise
            raise refusal from refusal.__cause__
        return _with_verdicts(response)


class AsyncStapleTransport(httpx.AsyncHTTPTransport):
    """The async twin of :class:`StapleTransport` (asyncio and trio, through AnyIO).

    The handshake's bytes move over AnyIO streams on the event loop; the revocation
    fallback (live OCSP, CRLs: blocking network I/O) runs in a worker thread with the
    policy's time budget, sharing the process's checker (cache and single-flight) with
    sync code.
    """

    def __init__(
        self,
        policy: HostPolicyLike = "soft-fail",
        *,
        verify: Verify = True,
        cert: Cert | None = None,
        tls: TLSConfig | None = None,
        http1: bool = True,
        http2: bool = False,
        limits: httpx.Limits = DEFAULT_LIMITS,
        proxy: ProxyLike | None = None,
        uds: str | None = None,
        local_address: str | None = None,
        retries: int = 0,
        socket_options: Iterable[typing.Any] | None = None,
        clock: Clock | None = None,
        cache: StapleCache | None = SHARED_CACHE,
        log: VerdictLog | None = None,
        revocation: RevocationChecker | None = None,
    ) -> None:
        setup = _Setup(
            policy,
            verify=verify,
            cert=cert,
            tls=tls,
            http1=http1,
            http2=http2,
            proxy=proxy,
            clock=clock,
            cache=cache,
            log=log,
            revocation=revocation,
        )
        super().__init__(verify=setup.placeholder, trust_env=False, http1=http1, http2=http2)
        self.policies = setup.policies
        self.network_backend = AsyncStapleBackend(setup.context, alpn=setup.alpn)
        options = _pool_options(
            setup,
            limits,
            http1=http1,
            http2=http2,
            uds=uds,
            local_address=local_address,
            retries=retries,
            socket_options=socket_options,
            network_backend=self.network_backend,
        )
        self._pool = (
            httpcore.AsyncConnectionPool(**options)
            if setup.proxy is None
            else httpcore.AsyncHTTPProxy(**_proxy_options(setup), **options)
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await super().handle_async_request(request)
        except httpx.ConnectError as error:
            refusal = _refusal(error, request)
            if refusal is None:
                raise
            raise refusal from refusal.__cause__
        return _with_verdicts(response)


def _check_client_kwargs(kwargs: dict[str, typing.Any]) -> None:
    # These would either be ignored by httpx (verify, cert, http2 with a transport) or
    # route requests through a stock transport that checks no staple (proxy, mounts).
    clash = [name for name in ("transport", "mounts") if name in kwargs]
    if clash:
        raise TypeError(f"staplecheck's client makes its own transport; remove {clash}")


def client(
    policy: HostPolicyLike = "soft-fail",
    *,
    verify: Verify = True,
    cert: Cert | None = None,
    tls: TLSConfig | None = None,
    http1: bool = True,
    http2: bool = False,
    limits: httpx.Limits = DEFAULT_LIMITS,
    proxy: ProxyLike | None = None,
    clock: Clock | None = None,
    cache: StapleCache | None = SHARED_CACHE,
    log: VerdictLog | None = None,
    revocation: RevocationChecker | None = None,
    **client_kwargs: typing.Any,
) -> httpx.Client:
    """An ``httpx.Client`` whose every request goes through a :class:`StapleTransport`.

    The one-line switch: ``httpx.Client(...)`` → ``staplecheck.httpx.client(...)``.
    Other keyword arguments (``timeout``, ``headers``, ``base_url``, ...) go to
    ``httpx.Client``; ``transport`` and ``mounts`` are refused (they would bypass
    the staple check). Environment proxies are not used: give ``proxy=``.
    """
    _check_client_kwargs(client_kwargs)
    transport = StapleTransport(
        policy,
        verify=verify,
        cert=cert,
        tls=tls,
        http1=http1,
        http2=http2,
        limits=limits,
        proxy=proxy,
        clock=clock,
        cache=cache,
        log=log,
        revocation=revocation,
    )
    return httpx.Client(transport=transport, **client_kwargs)


def async_client(
    policy: HostPolicyLike = "soft-fail",
    *,
    verify: Verify = True,
    cert: Cert | None = None,
    tls: TLSConfig | None = None,
    http1: bool = True,
    http2: bool = False,
    limits: httpx.Limits = DEFAULT_LIMITS,
    proxy: ProxyLike | None = None,
    clock: Clock | None = None,
    cache: StapleCache | None = SHARED_CACHE,
    log: VerdictLog | None = None,
    revocation: RevocationChecker | None = None,
    **client_kwargs: typing.Any,
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` over an :class:`AsyncStapleTransport`; as :func:`client`."""
    _check_client_kwargs(client_kwargs)
    transport = AsyncStapleTransport(
        policy,
        verify=verify,
        cert=cert,
        tls=tls,
        http1=http1,
        http2=http2,
        limits=limits,
        proxy=proxy,
        clock=clock,
        cache=cache,
        log=log,
        revocation=revocation,
    )
    return httpx.AsyncClient(transport=transport, **client_kwargs)
