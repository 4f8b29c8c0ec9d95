"""The Redis store: entries shared by a fleet (the ``redis`` extra, imported on first use).

Each entry is one Redis string: a 20-byte header (magic, stored-at and expires-at in
microseconds) followed by the DER, exactly as put; no pickle, nothing to interpret.
Redis expires it by itself (``PX``), and expiry is checked again on read against the
caller's ``now``. Reads use ``GETRANGE`` up to the size cap, so a poisoned 500 MB value
costs one capped read, never 500 MB. Every call has a short socket timeout and no
retries; after a failure the store answers ``unavailable`` at once for ``backoff``
seconds, so a dead Redis costs a connection at most one timeout, not one per call.
"""

from __future__ import annotations

import datetime
import importlib
import math
import struct
import threading
import time
from typing import Any, Protocol

from ._checks import MAX_REASON_CHARS, check_mark, check_put, check_time, clean_reason, from_micros
from ._checks import to_micros as _micros
from ._interface import DEFAULT_MAX_VALUE_BYTES, Entry, Failure, Miss, MissReason, StoreError
from ._keys import KEY_PREFIX, check_key

__all__ = ["RedisStore"]

_ENTRY = b"scE1"
_FAILURE = b"scF1"
_HEADER = struct.Struct(">4sqq")
# Failure marks live under the entry's key plus a suffix no key can contain.
_FAILURE_SUFFIX = "/failure"


class _Client(Protocol):
    """The few redis-py calls the store makes (redis-py's own types vary by release)."""

    def getrange(self, key: str, start: int, end: int) -> Any: ...
    def set(self, name: str, value: bytes, *, px: int) -> Any: ...
    def delete(self, *names: str) -> Any: ...
    def scan(self, cursor: int = 0, *, match: str, count: int) -> Any: ...
    def close(self) -> None: ...
    @property
    def connection_pool(self) -> Any: ...


def _import_redis() -> Any:
    try:
        return importlib.import_module("redis")
    except ImportError as error:
        raise StoreError(
            "the Redis store needs the redis package: pip install 'staplecheck[redis]'"
        ) from error


class RedisStore:
    """Entries and failure marks in Redis, under keys starting ``staplecheck:v1:``.

    ``timeout`` bounds connecting and every call (seconds). Eviction beyond TTLs is
    Redis's own (``maxmemory`` with a ``volatile-*`` policy): every key has a TTL.
    Constructing the store does not connect; an unreachable Redis shows as misses.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 6379,
        db: int = 0,
        *,
        username: str | None = None,
        password: str | None = None,
        tls: bool = False,
        timeout: float = 0.25,
        backoff: float = 1.0,
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
    ) -> None:
        if not timeout > 0 or backoff < 0:
            raise ValueError("timeout must be positive and backoff not negative")
        if max_value_bytes < 1:
            raise ValueError("max_value_bytes must be at least 1")
        redis = _import_redis()
        self.host, self.port, self.db = host, port, db
        self.timeout, self.backoff = timeout, backoff
        self.max_value_bytes = max_value_bytes
        self._errors = (redis.exceptions.RedisError, OSError)
        self._response_error = redis.exceptions.ResponseError
        # No retries: redis-py 6+ retries three times with backoff by default, which
        # would turn a dead Redis into seconds per call.
        no_retry = importlib.import_module("redis.retry").Retry(
            importlib.import_module("redis.backoff").NoBackoff(), 0
        )
        self._client: _Client = redis.Redis(
            host=host,
            port=port,
            db=db,
            username=username,
            password=password,
            ssl=tls,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=no_retry,
            health_check_interval=0,
            decode_responses=False,
        )
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._down_because = ""

    def __repr__(self) -> str:
        return f"RedisStore(host={self.host!r}, port={self.port}, db={self.db})"

    # -- talking to Redis ------------------------------------------------------------

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any | Miss:
        """One Redis call, or the Miss it turned into. The backoff uses the monotonic
        clock: it times I/O, it judges no evidence."""
        with self._lock:
            if time.monotonic() < self._down_until:
                return Miss(MissReason.UNAVAILABLE, f"backing off after: {self._down_because}")
        try:
            return getattr(self._client, name)(*args, **kwargs)
        except self._response_error as error:
            if str(error).startswith("WRONGTYPE"):
                return Miss(MissReason.MALFORMED, "the key holds another Redis type")
            return self._down(error)
        except self._errors as error:
            return self._down(error)

    def _down(self, error: BaseException) -> Miss:
        because = f"{type(error).__name__}: {error}"
        with self._lock:
            self._down_until = time.monotonic() + self.backoff
            self._down_because = because
        return Miss(MissReason.UNAVAILABLE, because)

    def _read(
        self, key: str, magic: bytes, cap: int, now: datetime.datetime
    ) -> Miss | tuple[datetime.datetime, datetime.datetime, bytes]:
        # GETRANGE's end is inclusive: at most header + cap + 1 bytes come back, one
        # more than a value may have, so an oversized value is seen without reading it.
        raw = self._call("getrange", key, 0, _HEADER.size + cap)
        if isinstance(raw, Miss):
            return raw
        if not isinstance(raw, bytes):
            return Miss(MissReason.MALFORMED, f"GETRANGE gave {type(raw).__name__}")
        if not raw:
            return Miss(MissReason.ABSENT)
        if len(raw) > _HEADER.size + cap:
            return Miss(MissReason.OVERSIZED, f"over the cap of {cap} bytes")
        if len(raw) < _HEADER.size:
            return Miss(MissReason.MALFORMED, f"{len(raw)} bytes, shorter than the header")
        found, first, second = _HEADER.unpack_from(raw)
        start, end = from_micros(first), from_micros(second)
        if found != magic or start is None or end is None:
            return Miss(MissReason.MALFORMED, "not a staplecheck value")
        if end <= now:
            return Miss(MissReason.EXPIRED, f"ran out at {end.isoformat()}")
        return start, end, raw[_HEADER.size :]

    def _write(
        self,
        key: str,
        magic: bytes,
        body: bytes,
        now: datetime.datetime,
        end: datetime.datetime,
    ) -> Miss | None:
        if end <= now:
            return Miss(MissReason.EXPIRED, "already expired")
        ttl_ms = max(1, math.ceil((end - now) / datetime.timedelta(milliseconds=1)))
        value = _HEADER.pack(magic, _micros(now), _micros(end)) + body
        done = self._call("set", key, value, px=ttl_ms)
        return done if isinstance(done, Miss) else None

    # -- the interface ---------------------------------------------------------------

    def get(self, key: str, *, now: datetime.datetime) -> Entry | Miss:
        check_key(key)
        check_time("now", now)
        read = self._read(key, _ENTRY, self.max_value_bytes, now)
        if isinstance(read, Miss):
            return read
        stored_at, expires_at, der = read
        return Entry(der=der, stored_at=stored_at, expires_at=expires_at)

    def put(
        self, key: str, der: bytes, *, now: datetime.datetime, expires_at: datetime.datetime
    ) -> Miss | None:
        refused = check_put(key, der, now, expires_at, self.max_value_bytes)
        if refused is not None:
            return refused
        return self._write(key, _ENTRY, der, now, expires_at)

    def mark_failure(
        self, key: str, *, now: datetime.datetime, until: datetime.datetime, reason: str
    ) -> Miss | None:
        refused = check_mark(key, now, until)
        if refused is not None:
            return refused
        text = clean_reason(reason).encode("utf-8")
        return self._write(key + _FAILURE_SUFFIX, _FAILURE, text, now, until)

    def failure(self, key: str, *, now: datetime.datetime) -> Failure | Miss:
        check_key(key)
        check_time("now", now)
        # Up to 4 UTF-8 bytes a character.
        read = self._read(key + _FAILURE_SUFFIX, _FAILURE, 4 * MAX_REASON_CHARS, now)
        if isinstance(read, Miss):
            return read
        marked_at, until, body = read
        reason = clean_reason(body.decode("utf-8", "replace"))
        return Failure(reason=reason, marked_at=marked_at, until=until)

    def delete(self, key: str) -> Miss | None:
        check_key(key)
        done = self._call("delete", key, key + _FAILURE_SUFFIX)
        return done if isinstance(done, Miss) else None

    def clear(self) -> Miss | None:
        """Delete every ``staplecheck:v1:`` key in this database (other keys stay)."""
        cursor = 0
        while True:
            page = self._call("scan", cursor, match=KEY_PREFIX + "*", count=500)
            if isinstance(page, Miss):
                return page
            cursor, names = page
            if names:
                done = self._call("delete", *names)
                if isinstance(done, Miss):
                    return done
            if not cursor:
                return None

    def close(self) -> None:
        self._client.close()
        # redis-py 5.0 leaves its own pool's sockets open on close(); newer ones do not.
        self._client.connection_pool.disconnect()
