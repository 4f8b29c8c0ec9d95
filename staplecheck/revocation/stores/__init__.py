"""Stores for fetched revocation evidence: in memory, SQLite and Redis, one interface.

A store keeps DER (OCSP responses, CRLs) under keys from :func:`ocsp_key` and
:func:`crl_key`, with an expiry time, plus short-lived failure marks. It never judges
what it holds; whoever reads from it re-validates. ``RedisStore`` needs the ``redis``
extra, imported only when a Redis store is made.
"""

from __future__ import annotations

from ._interface import (
    DEFAULT_MAX_VALUE_BYTES,
    Entry,
    Failure,
    Miss,
    MissReason,
    Store,
    StoreError,
)
from ._keys import KEY_PREFIX, check_key, crl_key, ocsp_key
from ._memory import MemoryStore
from ._redis import RedisStore
from ._spec import open_store
from ._sqlite import SQLiteStore

__all__ = [
    "DEFAULT_MAX_VALUE_BYTES",
    "KEY_PREFIX",
    "Entry",
    "Failure",
    "MemoryStore",
    "Miss",
    "MissReason",
    "RedisStore",
    "SQLiteStore",
    "Store",
    "StoreError",
    "check_key",
    "crl_key",
    "ocsp_key",
    "open_store",
]
