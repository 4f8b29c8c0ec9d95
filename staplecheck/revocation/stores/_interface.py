"""The store interface: opaque DER under string keys, with expiry, and failure marks.

A store keeps evidence (DER of OCSP responses and CRLs) between connections and
processes. It never interprets what it keeps: the engine re-validates every byte it
reads with the full rules, so a store shared with others can lose answers but never
forge them. Time is always passed in (``now``); no store reads the clock to judge
expiry.

Store trouble (a dead Redis, a locked or damaged SQLite file, a poisoned value) is
never an exception: reads and writes return a :class:`Miss` saying why, which the
engine logs and treats as "nothing cached". Exceptions are kept for programming
errors (a malformed key, a naive datetime) and for :func:`open_store` failing.
"""

from __future__ import annotations

import datetime
import enum
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = [
    "DEFAULT_MAX_VALUE_BYTES",
    "Entry",
    "Failure",
    "Miss",
    "MissReason",
    "Store",
    "StoreError",
]

# A 100,000-entry CRL is about 4 MB of DER; anything past 8 MiB is refused on the way
# in and on the way out (a poisoned shared store can put 500 MB under a key).
DEFAULT_MAX_VALUE_BYTES = 8 * 1024 * 1024
"""The largest value a store accepts or returns by default (8 MiB)."""


class StoreError(Exception):
    """A store cannot be opened: a foreign, damaged or newer file, or a missing
    optional package. Raised by the constructors and :func:`open_store` only."""


@dataclass(frozen=True, kw_only=True)
class Entry:
    """What a store returned for a key: exactly the bytes that were put, unjudged."""

    der: bytes
    """The bytes as stored (an OCSP response or a CRL); untrusted until re-validated."""
    stored_at: datetime.datetime
    """The ``now`` of the :meth:`Store.put` that stored them."""
    expires_at: datetime.datetime
    """After this the store no longer returns them."""


@dataclass(frozen=True, kw_only=True)
class Failure:
    """A short-lived mark that fetching this key failed: do not ask again before ``until``."""

    reason: str
    """Why the fetch failed, printable text of at most 200 characters."""
    marked_at: datetime.datetime
    until: datetime.datetime


class MissReason(enum.Enum):
    """Why a store gave no entry (or failure mark), or did not keep one."""

    ABSENT = "absent"
    """Nothing under the key."""
    EXPIRED = "expired"
    """Something was there, but its time is up (or it was put already expired)."""
    OVERSIZED = "oversized"
    """The value is over the store's size cap: refused, never read whole."""
    MALFORMED = "malformed"
    """The stored value has the wrong type or shape (a shared store was written by
    something else): ignored."""
    UNAVAILABLE = "unavailable"
    """The backend failed: unreachable, timed out, locked, damaged."""


@dataclass(frozen=True)
class Miss:
    """No entry, with the reason; for writes, why the store does not hold the value."""

    reason: MissReason
    detail: str = ""
    """For the log: the error or the offending size."""

    def __str__(self) -> str:
        return f"{self.reason.value}: {self.detail}" if self.detail else self.reason.value


@runtime_checkable
class Store(Protocol):
    """Where fetched evidence is kept. Keys come from :func:`ocsp_key` and :func:`crl_key`.

    Every method is thread-safe. Reads return an :class:`Entry` (or :class:`Failure`) or
    a :class:`Miss`; writes return ``None`` when done, or a :class:`Miss` saying why the
    store does not hold the value now. None of them raises for store trouble.
    """

    def get(self, key: str, *, now: datetime.datetime) -> Entry | Miss:
        """The entry under ``key`` unless it has expired by ``now``."""
        ...

    def put(
        self, key: str, der: bytes, *, now: datetime.datetime, expires_at: datetime.datetime
    ) -> Miss | None:
        """Keep ``der`` under ``key`` until ``expires_at`` (replacing what was there)."""
        ...

    def mark_failure(
        self, key: str, *, now: datetime.datetime, until: datetime.datetime, reason: str
    ) -> Miss | None:
        """Remember until ``until`` that fetching ``key`` failed (independent of entries)."""
        ...

    def failure(self, key: str, *, now: datetime.datetime) -> Failure | Miss:
        """The failure mark under ``key`` unless it has run out by ``now``."""
        ...

    def delete(self, key: str) -> Miss | None:
        """Forget the entry and the failure mark under ``key``."""
        ...

    def clear(self) -> Miss | None:
        """Forget every entry and failure mark this store holds."""
        ...

    def close(self) -> None:
        """Release connections and files; the store is not used afterwards."""
        ...
