"""staplecheck for aiohttp (the ``aiohttp`` extra): a connector that runs the revocation
check on every new TLS connection, before the first request goes out.

::

    import staplecheck
    import staplecheck.aiohttp

    async with staplecheck.aiohttp.client_session("hard-fail") as session:
        async with session.get("https://example.test/") as response:
            print(staplecheck.revocation_of(response))

aiohttp handshakes with the stdlib ``ssl`` module, which cannot ask for an OCSP staple:
every connection is judged as one without a staple (``must-staple`` refuses them all),
and the fallback (live OCSP, CRLs, the cache) answers. See docs/aiohttp.md.
"""

from __future__ import annotations

from .clients._aiohttp import (
    ClientRevocationError,
    StapleConnector,
    Verdict,
    client_session,
    make_ssl_context,
    verdict_of,
    verified_chain,
)

__all__ = [
    "ClientRevocationError",
    "StapleConnector",
    "Verdict",
    "client_session",
    "make_ssl_context",
    "verdict_of",
    "verified_chain",
]
