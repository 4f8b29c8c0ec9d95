"""urllib3 integration: pools whose responses carry their connection's staple verdict."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from OpenSSL import SSL
from urllib3 import PoolManager, ProxyManager
from urllib3.connection import HTTPSConnection
from urllib3.connectionpool import HTTPSConnectionPool
from urllib3.response import BaseHTTPResponse

from ..revocation import RevocationChecker, RevocationResult
from ..tls._hostpolicy import HostPolicyLike
from ..tls._pyopenssl import Clock, get_revocation_result, get_staple_result
from ..tls._sslcontext import StapleSocket, StapleSSLContext
from ..validation._result import StapleResult

if TYPE_CHECKING:
    # Only for the signature: staplecheck works without requests, httpx or aiohttp.
    import aiohttp
    import httpx
    import requests

__all__ = [
    "StapleHTTPSConnection",
    "StapleHTTPSConnectionPool",
    "pool_manager",
    "proxy_manager",
    "revocation_of",
    "staple_of",
    "use_staple_pools",
]


class StapleHTTPSConnection(HTTPSConnection):
    """An HTTPS connection whose responses carry ``response.staple``.

    The verdict belongs to the TLS connection, so every response on a kept-alive
    connection carries the verdict of the one handshake that opened it.
    """

    def getresponse(self) -> Any:  # urllib3's own signature returns HTTPResponse
        # Read the verdict first: http.client drops ``self.sock`` inside getresponse()
        # when the server closes the connection after this response.
        staple = getattr(self.sock, "staple", None)
        revocation = getattr(self.sock, "revocation", None)
        response = super().getresponse()
        response.staple = staple  # type: ignore[attr-defined]
        response.revocation = revocation  # type: ignore[attr-defined]
        return response


class StapleHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = StapleHTTPSConnection


def use_staple_pools(manager: PoolManager) -> PoolManager:
    """Make ``manager``'s HTTPS pools attach ``response.staple``; return it."""
    manager.pool_classes_by_scheme = {
        **manager.pool_classes_by_scheme,
        "https": StapleHTTPSConnectionPool,
    }
    return manager


def staple_of(
    obj: requests.Response
    | BaseHTTPResponse
    | httpx.Response
    | aiohttp.ClientResponse
    | StapleSocket
    | SSL.Connection
    | None,
) -> StapleResult | None:
    """The staple verdict behind a requests, urllib3, httpx or aiohttp response, a
    :class:`StapleSocket` or a pyOpenSSL connection; ``None`` when there is none
    (policy ``off``, or not made by staplecheck).

    The typed way to read a verdict: ``response.staple`` works too, but type checkers
    do not know requests' and urllib3's responses carry it.
    """
    if isinstance(obj, SSL.Connection):
        return get_staple_result(obj)
    staple = getattr(obj, "staple", None)
    if staple is None and not isinstance(obj, BaseHTTPResponse):
        # A requests.Response: its urllib3 response carries the verdict too.
        raw = getattr(obj, "raw", None)
        if isinstance(raw, BaseHTTPResponse):
            staple = getattr(raw, "staple", None)
    if staple is None:
        staple = _extension(obj, "staple")
    if staple is None:
        staple = _aiohttp_verdict(obj, "staple")
    return staple if isinstance(staple, StapleResult) else None


def revocation_of(
    obj: requests.Response
    | BaseHTTPResponse
    | httpx.Response
    | aiohttp.ClientResponse
    | StapleSocket
    | SSL.Connection
    | None,
) -> RevocationResult | None:
    """The revocation verdict behind a requests, urllib3, httpx or aiohttp response, a
    :class:`StapleSocket` or a pyOpenSSL connection: set when the policy has a fallback
    (``hard-fail``, or ``fallback=...``), ``None`` otherwise. The typed way to read
    ``response.revocation``."""
    if isinstance(obj, SSL.Connection):
        return get_revocation_result(obj)
    found = getattr(obj, "revocation", None)
    if found is None and not isinstance(obj, BaseHTTPResponse):
        raw = getattr(obj, "raw", None)
        if isinstance(raw, BaseHTTPResponse):
            found = getattr(raw, "revocation", None)
    if found is None:
        found = _extension(obj, "revocation")
    if found is None:
        found = _aiohttp_verdict(obj, "revocation")
    return found if isinstance(found, RevocationResult) else None


def _extension(obj: object, name: str) -> object:
    """``obj.extensions[name]``: where staplecheck's httpx transports put verdicts."""
    extensions = getattr(obj, "extensions", None)
    return extensions.get(name) if isinstance(extensions, dict) else None


AIOHTTP_VERDICT = "_staplecheck_verdict"
"""The attribute of an aiohttp connection's protocol (one per TLS connection, shared by
its kept-alive requests) where staplecheck's connector leaves the verdict."""


def _aiohttp_verdict(obj: object, name: str) -> object:
    """``name`` of the verdict behind an aiohttp ``ClientResponse``: on the protocol of
    the connection it came over (which the response keeps after its release)."""
    verdict = getattr(getattr(obj, "_protocol", None), AIOHTTP_VERDICT, None)
    return getattr(verdict, name, None)


def pool_manager(
    policy: HostPolicyLike = "soft-fail",
    *,
    ca_certs: str | os.PathLike[str] | None = None,
    ca_cert_dir: str | os.PathLike[str] | None = None,
    cert_file: str | os.PathLike[str] | None = None,
    key_file: str | os.PathLike[str] | None = None,
    key_password: str | None = None,
    revocation: RevocationChecker | None = None,
    clock: Clock | None = None,
    **kwargs: Any,
) -> PoolManager:
    """A urllib3 ``PoolManager`` that checks staples; responses carry ``.staple``.

    Verification is always on (certifi unless ``ca_certs``/``ca_cert_dir``).
    ``revocation`` answers for policies with a fallback (default: the shared checker);
    ``clock`` gives the time staples are judged at (default: the system clock). Other
    keyword arguments go to ``PoolManager`` (``retries``, ``timeout``, ...).
    """
    context = StapleSSLContext(
        policy,
        cafile=ca_certs,
        capath=ca_cert_dir,
        certfile=cert_file,
        keyfile=key_file,
        password=key_password,
        revocation=revocation,
        clock=clock,
    )
    return use_staple_pools(PoolManager(ssl_context=context, cert_reqs="CERT_REQUIRED", **kwargs))


def proxy_manager(
    proxy_url: str,
    policy: HostPolicyLike = "soft-fail",
    *,
    ca_certs: str | os.PathLike[str] | None = None,
    **kwargs: Any,
) -> ProxyManager:
    """Like :func:`pool_manager`, through an HTTP proxy (HTTPS via CONNECT)."""
    context = StapleSSLContext(policy, cafile=ca_certs)
    manager = ProxyManager(proxy_url, ssl_context=context, cert_reqs="CERT_REQUIRED", **kwargs)
    use_staple_pools(manager)
    return manager
