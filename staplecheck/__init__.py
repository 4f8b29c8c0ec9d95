"""staplecheck: make HTTPS clients check OCSP staples.

The core is pure: :func:`validate_staple` judges a staple, :class:`Policy` decides
whether a connection may proceed. The TLS glue (pyOpenSSL, urllib3, requests) moves
bytes and certificates to it. ``StapleAdapter`` and ``session`` need ``requests``
(the ``requests`` extra) and are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._errors import RevocationError, StapleError, find_staple_error
from ._policy import Mode, Policy, PolicyLike, ResponderOverride, as_policy
from .clients._urllib3 import (
    pool_manager,
    proxy_manager,
    revocation_of,
    staple_of,
    use_staple_pools,
)
from .revocation import RevocationChecker, RevocationResult
from .tls._hostpolicy import HostPolicies
from .tls._log import VerdictLog
from .tls._pyopenssl import (
    ClientCert,
    StapleConnection,
    TLSConfig,
    create_context,
    drive_handshake,
    get_revocation_result,
    get_staple_result,
)
from .tls._sslcontext import StapleSocket, StapleSSLContext
from .validation._result import StapleResult, StapleStatus
from .validation._tlsfeature import has_must_staple
from .validation._validate import SHARED_CACHE, StapleCache, validate_staple

if TYPE_CHECKING:
    from .clients._requests import StapleAdapter, session

__version__ = "0.1.0"
"""The installed version (``staplecheck --version`` prints it)."""

__all__ = [
    "SHARED_CACHE",
    "ClientCert",
    "HostPolicies",
    "Mode",
    "Policy",
    "PolicyLike",
    "ResponderOverride",
    "RevocationChecker",
    "RevocationError",
    "RevocationResult",
    "StapleAdapter",
    "StapleCache",
    "StapleConnection",
    "StapleError",
    "StapleResult",
    "StapleSSLContext",
    "StapleSocket",
    "StapleStatus",
    "TLSConfig",
    "VerdictLog",
    "__version__",
    "as_policy",
    "create_context",
    "drive_handshake",
    "find_staple_error",
    "get_revocation_result",
    "get_staple_result",
    "has_must_staple",
    "pool_manager",
    "proxy_manager",
    "revocation_of",
    "session",
    "staple_of",
    "use_staple_pools",
    "validate_staple",
]

_NEEDS_REQUESTS = {"StapleAdapter", "session"}


def __getattr__(name: str) -> Any:
    if name in _NEEDS_REQUESTS:
        from .clients import _requests

        return getattr(_requests, name)
    raise AttributeError(f"module 'staplecheck' has no attribute {name!r}")
