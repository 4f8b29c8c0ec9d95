"""Revocation beyond the staple: live OCSP and CRLs, judged by the staple's rules, with
stores from one process to a fleet.

:class:`RevocationChecker` runs after the handshake for policies with a fallback
(``Policy(fallback=...)``, or ``hard-fail``); its verdict is a
:class:`RevocationResult`. Planning and judging are pure; only the fetchers do I/O.
"""

from __future__ import annotations

import threading

from ._engine import DEFAULT_FAILURE_TTL, RevocationChecker
from ._result import SOURCES, Attempt, RevocationResult

__all__ = [
    "DEFAULT_FAILURE_TTL",
    "SOURCES",
    "Attempt",
    "RevocationChecker",
    "RevocationResult",
    "default_checker",
]

_default: RevocationChecker | None = None
_default_lock = threading.Lock()


def default_checker() -> RevocationChecker:
    """The checker connections share when none is given: an in-memory store, the
    system clock, the blocking fetchers. Made on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = RevocationChecker()
        return _default
