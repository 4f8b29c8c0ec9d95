"""requests integration: ``session.mount("https://", StapleAdapter())``."""

from __future__ import annotations

from typing import Any

try:
    import requests
    from requests.adapters import HTTPAdapter
except ImportError as error:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "StapleAdapter needs requests: pip install 'staplecheck[requests]'"
    ) from error

from ..revocation import RevocationChecker
from ..tls._hostpolicy import HostPolicies, HostPolicyLike, as_host_policies
from ..tls._log import VerdictLog
from ..tls._pyopenssl import Clock
from ..tls._sslcontext import StapleSSLContext
from ..validation._validate import SHARED_CACHE, StapleCache
from ._urllib3 import revocation_of, staple_of, use_staple_pools

__all__ = ["StapleAdapter", "session"]


class StapleAdapter(HTTPAdapter):
    """A requests transport adapter that checks OCSP staples on every new connection.

    ``verify=`` (bool or CA path), ``cert=`` and HTTP proxies (CONNECT) work as with
    the default adapter. Every HTTPS response carries ``response.staple`` (a
    :class:`StapleResult`; ``None`` under policy ``off``) and, for policies with a
    fallback, ``response.revocation`` (a :class:`RevocationResult`). A refusal raises
    ``requests.exceptions.SSLError`` whose chain holds a :class:`StapleError` (a
    :class:`RevocationError` when the fallback refused).
    """

    def __init__(
        self,
        policy: HostPolicyLike = "soft-fail",
        *,
        clock: Clock | None = None,
        cache: StapleCache | None = SHARED_CACHE,
        log: VerdictLog | None = None,
        revocation: RevocationChecker | None = None,
        **kwargs: Any,
    ) -> None:
        self.policies: HostPolicies = as_host_policies(policy)
        self.ssl_context = StapleSSLContext(
            self.policies, clock=clock, cache=cache, log=log, revocation=revocation
        )
        super().__init__(**kwargs)

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        pool_kwargs["ssl_context"] = self.ssl_context
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        use_staple_pools(self.poolmanager)

    def build_connection_pool_key_attributes(
        self, request: Any, verify: Any, cert: Any = None
    ) -> Any:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert
        )
        # Every pool uses the staple context, whatever requests decides for the default
        # case (requests 2.32.2 swapped in its own stdlib context for verify=True).
        pool_kwargs["ssl_context"] = self.ssl_context  # type: ignore[typeddict-item]
        return host_params, pool_kwargs

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        scheme = proxy.split("://", 1)[0].lower()
        if scheme == "https":
            raise requests.exceptions.InvalidProxyURL(
                f"staplecheck cannot use the https:// proxy {proxy}: TLS inside TLS needs "
                "the standard library's ssl; use an http:// proxy (CONNECT) instead"
            )
        if proxy not in self.proxy_manager:
            proxy_kwargs.setdefault("ssl_context", self.ssl_context)
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not scheme.startswith("socks"):
            # SOCKS pools have their own connection classes: staples are still checked
            # there (the context is theirs), but responses carry no ``.staple``.
            use_staple_pools(manager)
        return manager

    def build_response(self, req: Any, resp: Any) -> requests.Response:
        response = super().build_response(req, resp)
        response.staple = staple_of(resp)  # type: ignore[attr-defined]
        response.revocation = revocation_of(resp)  # type: ignore[attr-defined]
        return response


def session(policy: HostPolicyLike = "soft-fail", **adapter_kwargs: Any) -> requests.Session:
    """A ``requests.Session`` with a :class:`StapleAdapter` mounted for ``https://``."""
    s = requests.Session()
    s.mount("https://", StapleAdapter(policy, **adapter_kwargs))
    return s
