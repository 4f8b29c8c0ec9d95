"""The in-memory store (the default): a bounded, thread-safe LRU map in this process."""

from __future__ import annotations

import datetime
import threading
from collections import OrderedDict

from ._checks import check_mark, check_put, check_time, clean_reason
from ._interface import DEFAULT_MAX_VALUE_BYTES, Entry, Failure, Miss, MissReason
from ._keys import check_key

__all__ = ["MemoryStore"]


class MemoryStore:
    """Entries and failure marks in this process, least recently used evicted first.

    Bounded three ways, because a hostile responder chooses what is put: entries, total
    bytes of DER, and bytes per value. ``staplecheck._cache.LRUCache`` bounds entries
    only and cannot delete, hence a map of its own here.
    """

    def __init__(
        self,
        *,
        max_entries: int = 4096,
        max_bytes: int = 64 * 1024 * 1024,
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
        max_failures: int = 4096,
    ) -> None:
        if min(max_entries, max_bytes, max_value_bytes, max_failures) < 1:
            raise ValueError("store bounds must be at least 1")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        # A value may not take more than the whole store.
        self.max_value_bytes = min(max_value_bytes, max_bytes)
        self.max_failures = max_failures
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._failures: OrderedDict[str, Failure] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MemoryStore(max_entries={self.max_entries}, max_bytes={self.max_bytes})"

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes_held(self) -> int:
        """Total bytes of DER held now."""
        return self._bytes

    def get(self, key: str, *, now: datetime.datetime) -> Entry | Miss:
        check_key(key)
        check_time("now", now)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return Miss(MissReason.ABSENT)
            # Not dropped: time is the caller's, and another caller's ``now`` may be
            # earlier. Expired entries leave with the LRU bounds.
            if entry.expires_at <= now:
                return Miss(MissReason.EXPIRED, f"expired at {entry.expires_at.isoformat()}")
            self._entries.move_to_end(key)
            return entry

    def put(
        self, key: str, der: bytes, *, now: datetime.datetime, expires_at: datetime.datetime
    ) -> Miss | None:
        refused = check_put(key, der, now, expires_at, self.max_value_bytes)
        if refused is not None:
            return refused
        with self._lock:
            self._drop(key)
            self._entries[key] = Entry(der=der, stored_at=now, expires_at=expires_at)
            self._bytes += len(der)
            while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
                self._drop(next(iter(self._entries)))
        return None

    def mark_failure(
        self, key: str, *, now: datetime.datetime, until: datetime.datetime, reason: str
    ) -> Miss | None:
        refused = check_mark(key, now, until)
        if refused is not None:
            return refused
        mark = Failure(reason=clean_reason(reason), marked_at=now, until=until)
        with self._lock:
            self._failures[key] = mark
            self._failures.move_to_end(key)
            if len(self._failures) > self.max_failures:
                self._failures.popitem(last=False)
        return None

    def failure(self, key: str, *, now: datetime.datetime) -> Failure | Miss:
        check_key(key)
        check_time("now", now)
        with self._lock:
            mark = self._failures.get(key)
            if mark is None:
                return Miss(MissReason.ABSENT)
            if mark.until <= now:
                return Miss(MissReason.EXPIRED, f"ran out at {mark.until.isoformat()}")
            return mark

    def delete(self, key: str) -> Miss | None:
        check_key(key)
        with self._lock:
            self._drop(key)
            self._failures.pop(key, None)
        return None

    def clear(self) -> Miss | None:
        with self._lock:
            self._entries.clear()
            self._failures.clear()
            self._bytes = 0
        return None

    def close(self) -> None:
        self.clear()

    def _drop(self, key: str) -> None:
        """Remove an entry and its bytes; the caller holds the lock."""
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= len(entry.der)
