"""Which httpx is installed: httpx with httpcore, or httpx2 with httpcore2.

httpx2 (2.x) continues httpx under new package names; its transports and httpcore2's
network backends have the same API (measured with httpx2 2.17: staplecheck's httpx
tests pass unchanged against it). httpx wins when both are installed. ``FLAVOUR``
says which one staplecheck's transports were built on: give them to that one's client.
"""

from __future__ import annotations

try:
    import httpcore
    import httpx

    FLAVOUR = "httpx"
except ImportError:
    try:
        import httpcore2 as httpcore  # type: ignore[no-redef, import-not-found, unused-ignore]
        import httpx2 as httpx  # type: ignore[no-redef, import-not-found, unused-ignore]

        FLAVOUR = "httpx2"
    except ImportError as error:  # pragma: no cover - exercised without the extra
        # ModuleNotFoundError (an ImportError): what a missing optional package raises,
        # and what pytest.importorskip skips on.
        raise ModuleNotFoundError(
            "staplecheck.httpx needs httpx (pip install 'staplecheck[httpx]') or httpx2"
        ) from error

__all__ = ["FLAVOUR", "httpcore", "httpx"]
