"""``open_store(spec)``: a store from a one-line spec (``--cache SPEC`` on the CLI)."""

from __future__ import annotations

import urllib.parse

from ._interface import Store
from ._memory import MemoryStore
from ._redis import RedisStore
from ._sqlite import SQLiteStore

__all__ = ["open_store"]

_MAX_REDIS_DB = 2**31 - 1


def open_store(spec: str) -> Store:
    """``memory``, ``sqlite:PATH`` or ``redis://[[USER]:PASSWORD@]HOST[:PORT][/DB][?timeout=S]``
    (``rediss://`` for TLS).

    Raises ``ValueError`` for a spec that is none of these, and :class:`StoreError` for a
    store that cannot be opened (a foreign or damaged SQLite file, the redis package
    missing). A Redis store does not connect here: an unreachable Redis shows as misses.
    """
    if not isinstance(spec, str):
        raise TypeError("a store spec is a str")
    if spec == "memory":
        return MemoryStore()
    if spec.startswith("sqlite:"):
        path = spec[len("sqlite:") :]
        if not path or path == ":memory:" or "\x00" in path:
            raise ValueError(
                f"store spec {spec!r}: sqlite: needs a file path (sqlite:/var/cache/sc.db);"
                " use 'memory' for a store in this process"
            )
        return SQLiteStore(path)
    if spec.startswith(("redis://", "rediss://")):
        return _redis_store(spec)
    raise ValueError(
        f"unknown store spec {spec!r}: expected 'memory', 'sqlite:PATH' or 'redis://HOST:PORT/DB'"
    )


def _redis_store(spec: str) -> RedisStore:
    def bad(why: str) -> ValueError:
        # The spec may carry a password: never echo it back.
        return ValueError(f"Redis store spec: {why} (expected redis://HOST:PORT/DB)")

    try:
        url = urllib.parse.urlsplit(spec)
        port = url.port or 6379
    except ValueError as error:
        raise bad(str(error)) from None
    if not url.hostname:
        raise bad("no host")
    if url.fragment:
        raise bad("a fragment")
    db_text = url.path.removeprefix("/")
    if db_text and not (db_text.isascii() and db_text.isdigit()):
        raise bad("the database must be a number")
    db = int(db_text or "0")
    if db > _MAX_REDIS_DB:
        raise bad("database number out of range")
    timeout = 0.25
    for name, value in urllib.parse.parse_qsl(url.query, keep_blank_values=True):
        if name != "timeout":
            raise bad(f"unknown option {name!r} (only timeout)")
        try:
            timeout = float(value)
        except ValueError:
            raise bad("timeout must be seconds") from None
        if not 0 < timeout <= 60:
            raise bad("timeout must be more than 0 and at most 60 seconds")

    def unquoted(part: str | None) -> str | None:
        return urllib.parse.unquote(part) if part else None

    return RedisStore(
        url.hostname,
        port,
        db,
        username=unquoted(url.username),
        password=unquoted(url.password),
        tls=url.scheme == "rediss",
        timeout=timeout,
    )
