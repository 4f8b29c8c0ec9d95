"""The SQLite store: one file shared by the processes of one machine (stdlib ``sqlite3``).

WAL mode lets readers go on while one process writes; every write is one ``BEGIN
IMMEDIATE`` transaction, so concurrent writers queue on SQLite's lock (up to the busy
timeout) instead of failing half-way or deadlocking on a lock upgrade. The file says
what it is (``application_id``) and which schema it has (``user_version``); anything
else is refused when the store is opened, with the path in the message.
"""

from __future__ import annotations

import datetime
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from ._checks import check_mark, check_put, check_time, clean_reason, from_micros, to_micros
from ._interface import DEFAULT_MAX_VALUE_BYTES, Entry, Failure, Miss, MissReason, StoreError
from ._keys import check_key

__all__ = ["APPLICATION_ID", "SCHEMA_VERSION", "SQLiteStore"]

APPLICATION_ID = int.from_bytes(b"StpC", "big")
SCHEMA_VERSION = 1

_TABLES = {
    "entries": (
        "CREATE TABLE entries (key TEXT PRIMARY KEY NOT NULL, der BLOB NOT NULL,"
        " stored_at INTEGER NOT NULL, expires_at INTEGER NOT NULL)"
    ),
    "failures": (
        "CREATE TABLE failures (key TEXT PRIMARY KEY NOT NULL, reason TEXT NOT NULL,"
        " marked_at INTEGER NOT NULL, until INTEGER NOT NULL)"
    ),
}
_COLUMNS = {
    "entries": ["key", "der", "stored_at", "expires_at"],
    "failures": ["key", "reason", "marked_at", "until"],
    "totals": ["id", "entries", "bytes"],
}
# Running totals kept by triggers, so a put checks the bounds in O(1): summing the
# table on every put cost 0.8 ms at 2,000 entries and grows with the store.
_TOTALS = (
    "CREATE TABLE totals (id INTEGER PRIMARY KEY CHECK (id = 0),"
    " entries INTEGER NOT NULL, bytes INTEGER NOT NULL)",
    "INSERT INTO totals VALUES (0, 0, 0)",
    "CREATE TRIGGER entries_added AFTER INSERT ON entries BEGIN UPDATE totals"
    " SET entries = entries + 1, bytes = bytes + length(NEW.der); END",
    "CREATE TRIGGER entries_removed AFTER DELETE ON entries BEGIN UPDATE totals"
    " SET entries = entries - 1, bytes = bytes - length(OLD.der); END",
    "CREATE TRIGGER entries_replaced AFTER UPDATE OF der ON entries BEGIN UPDATE totals"
    " SET bytes = bytes - length(OLD.der) + length(NEW.der); END",
)
_INDEX = "CREATE INDEX entries_by_age ON entries (stored_at)"
# An upsert, not INSERT OR REPLACE: REPLACE's implicit delete fires no trigger.
_PUT = (
    "INSERT INTO entries VALUES (?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET"
    " der = excluded.der, stored_at = excluded.stored_at, expires_at = excluded.expires_at"
)

# Keep the newest entries whose running totals fit; one statement, run only when over.
_EVICT = """
DELETE FROM entries WHERE key IN (
    SELECT key FROM (
        SELECT key,
            sum(length(der)) OVER newest_first AS kept_bytes,
            row_number() OVER newest_first AS kept_rows
        FROM entries
        WINDOW newest_first AS (ORDER BY stored_at DESC, key DESC)
    ) WHERE kept_bytes > ? OR kept_rows > ?
)
"""


class SQLiteStore:
    """Entries and failure marks in one SQLite file; oldest (then expired) evicted first.

    ``timeout`` is SQLite's busy timeout in seconds: how long an operation waits for
    another process's write before it gives up with a :class:`Miss` (``unavailable``).
    Raises :class:`StoreError` when the file cannot be opened, is not an SQLite
    database, belongs to something else, is damaged, or has another schema version.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_entries: int = 100_000,
        max_bytes: int = 256 * 1024 * 1024,
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
        max_failures: int = 10_000,
        timeout: float = 1.0,
    ) -> None:
        if min(max_entries, max_bytes, max_value_bytes, max_failures) < 1:
            raise ValueError("store bounds must be at least 1")
        if not timeout > 0:
            raise ValueError("timeout must be positive")
        self.path = os.fspath(path)
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.max_value_bytes = min(max_value_bytes, max_bytes)
        self.max_failures = max_failures
        self.timeout = timeout
        # One connection per store, used under a lock: sqlite3 connections are not for
        # concurrent use, and the work done under the lock is short.
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._pid = 0
        with self._lock:
            self._connection()

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"

    # -- opening ---------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        """The connection of this process; a forked child opens its own (SQLite
        connections must not cross a fork)."""
        if self._db is not None and self._pid == os.getpid():
            return self._db
        try:
            db = sqlite3.connect(
                self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as error:
            raise StoreError(f"cannot open the SQLite store {self.path!r}: {error}") from error
        try:
            self._prepare(db)
        except sqlite3.Error as error:
            db.close()
            raise StoreError(
                f"{self.path!r} is not a usable staplecheck store (damaged, or not an SQLite"
                f" database): {error}"
            ) from error
        except BaseException:
            db.close()
            raise
        self._db, self._pid = db, os.getpid()
        return db

    def _prepare(self, db: sqlite3.Connection) -> None:
        application_id, version = self._identity(db)
        if (application_id, version) == (0, 0):
            self._create(db)
            application_id, version = self._identity(db)
        if application_id != APPLICATION_ID:
            raise StoreError(
                f"{self.path!r} is an SQLite database of something else"
                f" (application_id {application_id:#x}), not a staplecheck store"
            )
        if version != SCHEMA_VERSION:
            raise StoreError(
                f"{self.path!r} is a staplecheck store of schema {version}; this staplecheck"
                f" reads schema {SCHEMA_VERSION}"
            )
        for table, columns in _COLUMNS.items():
            found = [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
            if found != columns:
                raise StoreError(f"{self.path!r}: table {table} is {found}, expected {columns}")
        # quick_check reads every page once: a damaged file fails here, at open, rather
        # than in the middle of some later connection.
        (verdict,) = db.execute("PRAGMA quick_check(1)").fetchone()
        if verdict != "ok":
            raise StoreError(f"{self.path!r} is damaged: {verdict}")
        db.execute("PRAGMA synchronous = NORMAL")  # WAL: durable enough for a cache

    @staticmethod
    def _identity(db: sqlite3.Connection) -> tuple[int, int]:
        (application_id,) = db.execute("PRAGMA application_id").fetchone()
        (version,) = db.execute("PRAGMA user_version").fetchone()
        return int(application_id), int(version)

    def _create(self, db: sqlite3.Connection) -> None:
        """Make an empty file a store. Several processes may race here: the check is
        repeated under the write lock, and only the first creates the tables."""
        mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"{self.path!r}: SQLite refused WAL mode ({mode})")
        db.execute("BEGIN IMMEDIATE")
        try:
            if self._identity(db) == (0, 0):
                (tables,) = db.execute("SELECT count(*) FROM sqlite_master").fetchone()
                if tables:
                    raise StoreError(
                        f"{self.path!r} is an SQLite database of something else,"
                        " not a staplecheck store"
                    )
                for statement in (*_TABLES.values(), _INDEX, *_TOTALS):
                    db.execute(statement)
                db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    # -- the interface ---------------------------------------------------------------

    @contextmanager
    def _using(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._connection()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._using() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def get(self, key: str, *, now: datetime.datetime) -> Entry | Miss:
        check_key(key)
        check_time("now", now)
        cap = self.max_value_bytes
        try:
            with self._using() as db:
                # The blob leaves SQLite only when it is under the cap: a poisoned file
                # can hold 500 MB under a key, and length() reads no blob content.
                row = db.execute(
                    "SELECT typeof(der), length(der), CASE WHEN length(der) <= ? THEN der END,"
                    " stored_at, expires_at FROM entries WHERE key = ?",
                    (cap, key),
                ).fetchone()
        except (sqlite3.Error, StoreError) as error:
            return Miss(MissReason.UNAVAILABLE, str(error))
        if row is None:
            return Miss(MissReason.ABSENT)
        kind, size, der, stored, expires = row
        if kind != "blob":
            return Miss(MissReason.MALFORMED, f"der is {kind}")
        if size > cap:
            return Miss(MissReason.OVERSIZED, f"{size} bytes, the cap is {cap}")
        stored_at, expires_at = from_micros(stored), from_micros(expires)
        if stored_at is None or expires_at is None or not isinstance(der, bytes):
            return Miss(MissReason.MALFORMED, "times are not integers in range")
        if expires_at <= now:
            return Miss(MissReason.EXPIRED, f"expired at {expires_at.isoformat()}")
        return Entry(der=der, stored_at=stored_at, expires_at=expires_at)

    def put(
        self, key: str, der: bytes, *, now: datetime.datetime, expires_at: datetime.datetime
    ) -> Miss | None:
        refused = check_put(key, der, now, expires_at, self.max_value_bytes)
        if refused is not None:
            return refused
        try:
            with self._transaction() as db:
                db.execute(_PUT, (key, der, to_micros(now), to_micros(expires_at)))
                self._evict(db, to_micros(now))
        except (sqlite3.Error, StoreError) as error:
            return Miss(MissReason.UNAVAILABLE, str(error))
        return None

    def _evict(self, db: sqlite3.Connection, now: int) -> None:
        row = db.execute("SELECT entries, bytes FROM totals WHERE id = 0").fetchone()
        if (
            row is not None
            and all(type(n) is int for n in row)
            and row[0] <= self.max_entries
            and row[1] <= self.max_bytes
        ):
            return
        # Over a bound, or totals that someone else broke: evict by the rows themselves.
        db.execute("DELETE FROM entries WHERE expires_at <= ?", (now,))
        db.execute(_EVICT, (self.max_bytes, self.max_entries))

    def mark_failure(
        self, key: str, *, now: datetime.datetime, until: datetime.datetime, reason: str
    ) -> Miss | None:
        refused = check_mark(key, now, until)
        if refused is not None:
            return refused
        try:
            with self._transaction() as db:
                db.execute(
                    "INSERT OR REPLACE INTO failures VALUES (?, ?, ?, ?)",
                    (key, clean_reason(reason), to_micros(now), to_micros(until)),
                )
                (count,) = db.execute("SELECT count(*) FROM failures").fetchone()
                if count > self.max_failures:
                    db.execute("DELETE FROM failures WHERE until <= ?", (to_micros(now),))
                    db.execute(
                        "DELETE FROM failures WHERE key NOT IN"
                        " (SELECT key FROM failures ORDER BY marked_at DESC LIMIT ?)",
                        (self.max_failures,),
                    )
        except (sqlite3.Error, StoreError) as error:
            return Miss(MissReason.UNAVAILABLE, str(error))
        return None

    def failure(self, key: str, *, now: datetime.datetime) -> Failure | Miss:
        check_key(key)
        check_time("now", now)
        try:
            with self._using() as db:
                row = db.execute(
                    "SELECT typeof(reason), substr(reason, 1, ?), marked_at, until"
                    " FROM failures WHERE key = ?",
                    (200, key),
                ).fetchone()
        except (sqlite3.Error, StoreError) as error:
            return Miss(MissReason.UNAVAILABLE, str(error))
        if row is None:
            return Miss(MissReason.ABSENT)
        kind, reason, marked, until = row
        marked_at, until_at = from_micros(marked), from_micros(until)
        if kind != "text" or not isinstance(reason, str) or marked_at is None or until_at is None:
            return Miss(MissReason.MALFORMED, "failure mark of the wrong types")
        if until_at <= now:
            return Miss(MissReason.EXPIRED, f"ran out at {until_at.isoformat()}")
        return Failure(reason=clean_reason(reason), marked_at=marked_at, until=until_at)

    def delete(self, key: str) -> Miss | None:
        check_key(key)
        try:
            with self._transaction() as db:
                db.execute("DELETE FROM entries WHERE key = ?", (key,))
                db.execute("DELETE FROM failures WHERE key = ?", (key,))
        except (sqlite3.Error, StoreError) as error:
            return Miss(MissReason.UNAVAILABLE, str(error))
        return None

    def clear(self) -> Miss | None:
        try:
            with self._transaction() as db:
                db.execute("DELETE FROM entries")
                db.execute("DELETE FROM failures")
        except (sqlite3.Error, StoreError) as error:
            return Miss(MissReason.UNAVAILABLE, str(error))
        return None

    def close(self) -> None:
        with self._lock:
            if self._db is not None and self._pid == os.getpid():
                self._db.close()
            self._db = None
