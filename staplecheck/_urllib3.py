"""urllib3 integration: pools whose responses carry their connection's staple verdict."""

from __future__ import annotations

import os
from typing import Any

from urllib3 import PoolManager, ProxyManager
from urllib3.connection import HTTPSConnection
from urllib3.connectionpool import HTTPSConnectionPool
from urllib3.response import BaseHTTPResponse

from ._hostpolicy import HostPolicyLike
from ._result import StapleResult
from ._sslcontext import StapleSSLContext

__all__ = [
    "StapleHTTPSConnection",
    "StapleHTTPSConnectionPool",
    "pool_manager",
    "proxy_manager",
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
        staple = staple_of(self.sock)
        response = super().getresponse()
        response.staple = staple  # type: ignore[attr-defined]
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


def staple_of(obj: Any) -> StapleResult | None:
    """The staple verdict of a urllib3 response or socket (``None`` if there is none)."""
    if isinstance(obj, BaseHTTPResponse):
        return getattr(obj, "staple", None)
    staple = getattr(obj, "staple", None)
    return staple if isinstance(staple, StapleResult) else None


def pool_manager(
    policy: HostPolicyLike = "soft-fail",
    *,
    ca_certs: str | os.PathLike[str] | None = None,
    ca_cert_dir: str | os.PathLike[str] | None = None,
    cert_file: str | os.PathLike[str] | None = None,
    key_file: str | os.PathLike[str] | None = None,
    key_password: str | None = None,
    **kwargs: Any,
) -> PoolManager:
    """A urllib3 ``PoolManager`` that checks staples; responses carry ``.staple``.

    Verification is always on (certifi unless ``ca_certs``/``ca_cert_dir``). Other
    keyword arguments go to ``PoolManager`` (``retries``, ``timeout``, ...).
    """
    context = StapleSSLContext(
        policy,
        cafile=ca_certs,
        capath=ca_cert_dir,
        certfile=cert_file,
        keyfile=key_file,
        password=key_password,
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
