"""staplecheck for httpx (the ``httpx`` extra): sync and async transports that check
OCSP staples, and clients that use them.

::

    import staplecheck.httpx

    with staplecheck.httpx.client("soft-fail") as client:
        response = client.get("https://example.test/")
        print(staplecheck.staple_of(response))

    async with staplecheck.httpx.async_client("hard-fail") as client:
        response = await client.get("https://example.test/")

With httpx2 (and no httpx) installed, the same transports are built on httpx2 and
httpcore2 (``FLAVOUR`` says which). See docs/httpx.md.
"""

from __future__ import annotations

from .clients._httpcore import AsyncStapleBackend, StapleBackend, StapleSSLObject
from .clients._httplib import FLAVOUR
from .clients._httpx import (
    REVOCATION_EXTENSION,
    STAPLE_EXTENSION,
    AsyncStapleTransport,
    StapleTransport,
    async_client,
    client,
)

__all__ = [
    "FLAVOUR",
    "REVOCATION_EXTENSION",
    "STAPLE_EXTENSION",
    "AsyncStapleBackend",
    "AsyncStapleTransport",
    "StapleBackend",
    "StapleSSLObject",
    "StapleTransport",
    "async_client",
    "client",
]
