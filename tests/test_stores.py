"""The stores for fetched revocation evidence: one contract, three backends.

The contract runs against the memory store, an SQLite file and a real ``redis-server``
started here on 127.0.0.1 (an ephemeral port, no persistence, a temporary directory),
then each backend's own failure modes: several processes sharing one SQLite file or one
Redis, damaged and foreign files, a Redis killed or hung mid-test, poisoned values.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from staplecheck.revocation.stores import (
    KEY_PREFIX,
    Entry,
    Failure,
    MemoryStore,
    Miss,
    MissReason,
    RedisStore,
    SQLiteStore,
    Store,
    StoreError,
    check_key,
    crl_key,
    ocsp_key,
    open_store,
)
from staplecheck.revocation.stores._sqlite import APPLICATION_ID, SCHEMA_VERSION

from .conftest import NOW, require_program

HOUR = datetime.timedelta(hours=1)
KEY = ocsp_key("sha1", b"\x01" * 20, b"\x02" * 20, 0x1234)
OTHER = crl_key("http://crl.example/ca.crl")


def keyed(i: int) -> str:
    return ocsp_key("sha256", bytes(32), b"\xff" * 32, i)


# -- a real redis-server --------------------------------------------------------------


@dataclass
class RedisServer:
    process: subprocess.Popen[bytes]
    port: int

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(directory: Path) -> RedisServer:
    """redis-server on 127.0.0.1 only, no RDB or AOF, in ``directory``, in the
    foreground (the caller stops it)."""
    program = require_program("redis-server")
    for _ in range(5):  # the port may be taken between probing and binding
        port = _free_port()
        process = subprocess.Popen(
            [program, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
             "--appendonly", "no", "--dir", str(directory), "--daemonize", "no",
             "--protected-mode", "yes", "--logfile", ""],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        server = RedisServer(process, port)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and process.poll() is None:
            if _answers_ping(port):
                return server
            time.sleep(0.02)
        server.stop()
    raise RuntimeError("redis-server did not start")


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


def raw_redis(port: int) -> Any:
    import redis

    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)


# -- the contract, on every backend ---------------------------------------------------

MakeStore = Callable[..., Store]
BACKENDS = ["memory", "sqlite", "redis"]


@pytest.fixture(params=BACKENDS)
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeStore]:
    """A factory of stores of one backend, all sharing the backend's storage."""
    made: list[Store] = []

    def make(**bounds: Any) -> Store:
        store: Store
        if request.param == "memory":
            store = MemoryStore(**bounds)
        elif request.param == "sqlite":
            store = SQLiteStore(tmp_path / "store.db", **bounds)
        else:
            server = request.getfixturevalue("redis_server")
            bounds.pop("max_entries", None)  # Redis evicts by itself (maxmemory)
            bounds.pop("max_bytes", None)
            store = RedisStore(port=server.port, timeout=2, **bounds)
            if not made:
                assert store.clear() is None
        made.append(store)
        return store

    make.backend = request.param  # type: ignore[attr-defined]
    yield make
    for store in made:
        store.close()


def test_a_put_comes_back_exactly(make_store: MakeStore) -> None:
    store = make_store()
    assert isinstance(store, Store)
    der = bytes(range(256)) * 3 + b"\x00"
    later = NOW + HOUR + datetime.timedelta(microseconds=7)
    assert store.put(KEY, der, now=NOW, expires_at=later) is None
    entry = store.get(KEY, now=NOW)
    assert entry == Entry(der=der, stored_at=NOW, expires_at=later)
    assert store.get(OTHER, now=NOW) == Miss(MissReason.ABSENT)


def test_empty_and_replaced_values(make_store: MakeStore) -> None:
    store = make_store()
    assert store.put(KEY, b"", now=NOW, expires_at=NOW + HOUR) is None
    assert store.get(KEY, now=NOW) == Entry(der=b"", stored_at=NOW, expires_at=NOW + HOUR)
    assert store.put(KEY, b"second", now=NOW + HOUR / 2, expires_at=NOW + 2 * HOUR) is None
    entry = store.get(KEY, now=NOW + HOUR)
    assert isinstance(entry, Entry)
    assert (entry.der, entry.stored_at) == (b"second", NOW + HOUR / 2)


def test_expiry_is_judged_by_the_time_passed_in(make_store: MakeStore) -> None:
    store = make_store()
    expires = NOW + HOUR
    assert store.put(KEY, b"der", now=NOW, expires_at=expires) is None
    assert isinstance(store.get(KEY, now=expires - datetime.timedelta(microseconds=1)), Entry)
    for later in (expires, expires + HOUR):
        miss = store.get(KEY, now=later)
        assert isinstance(miss, Miss)
        assert miss.reason is MissReason.EXPIRED
    # Other time zones compare as instants.
    plus_two = datetime.timezone(datetime.timedelta(hours=2))
    assert isinstance(store.get(KEY, now=(expires - HOUR / 2).astimezone(plus_two)), Entry)


def test_an_expired_put_is_not_kept(make_store: MakeStore) -> None:
    store = make_store()
    miss = store.put(KEY, b"der", now=NOW, expires_at=NOW)
    assert isinstance(miss, Miss)
    assert miss.reason is MissReason.EXPIRED
    assert store.get(KEY, now=NOW - HOUR).reason is MissReason.ABSENT  # type: ignore[union-attr]


def test_failure_marks(make_store: MakeStore) -> None:
    store = make_store()
    until = NOW + datetime.timedelta(seconds=30)
    assert store.failure(KEY, now=NOW) == Miss(MissReason.ABSENT)
    assert store.mark_failure(KEY, now=NOW, until=until, reason="timeout after 2 s") is None
    assert store.failure(KEY, now=NOW + datetime.timedelta(seconds=29)) == Failure(
        reason="timeout after 2 s", marked_at=NOW, until=until
    )
    assert store.failure(KEY, now=until).reason is MissReason.EXPIRED  # type: ignore[union-attr]
    # Independent of entries, both ways.
    assert store.get(KEY, now=NOW).reason is MissReason.ABSENT  # type: ignore[union-attr]
    assert store.put(OTHER, b"crl", now=NOW, expires_at=until) is None
    assert store.failure(OTHER, now=NOW).reason is MissReason.ABSENT  # type: ignore[union-attr]
    # What reaches the log is printable and bounded.
    store.mark_failure(KEY, now=NOW, until=until, reason="bad\r\nX-Injected: 1\x00" + "x" * 999)
    mark = store.failure(KEY, now=NOW)
    assert isinstance(mark, Failure)
    assert mark.reason.startswith("bad??X-Injected: 1?x")
    assert len(mark.reason) == 200


def test_delete_and_clear(make_store: MakeStore) -> None:
    store = make_store()
    for key in (KEY, OTHER):
        store.put(key, b"der", now=NOW, expires_at=NOW + HOUR)
        store.mark_failure(key, now=NOW, until=NOW + HOUR, reason="down")
    assert store.delete(KEY) is None
    assert store.get(KEY, now=NOW).reason is MissReason.ABSENT  # type: ignore[union-attr]
    assert store.failure(KEY, now=NOW).reason is MissReason.ABSENT  # type: ignore[union-attr]
    assert isinstance(store.get(OTHER, now=NOW), Entry)
    assert store.delete(KEY) is None  # deleting nothing is fine
    assert store.clear() is None
    assert store.get(OTHER, now=NOW).reason is MissReason.ABSENT  # type: ignore[union-attr]
    assert store.failure(OTHER, now=NOW).reason is MissReason.ABSENT  # type: ignore[union-attr]


def test_an_oversized_value_is_refused_and_the_old_one_kept(make_store: MakeStore) -> None:
    store = make_store(max_value_bytes=1000)
    assert store.put(KEY, b"a" * 1000, now=NOW, expires_at=NOW + HOUR) is None
    refused = store.put(KEY, b"b" * 1001, now=NOW, expires_at=NOW + HOUR)
    assert isinstance(refused, Miss)
    assert refused.reason is MissReason.OVERSIZED
    assert store.get(KEY, now=NOW) == Entry(der=b"a" * 1000, stored_at=NOW, expires_at=NOW + HOUR)


def test_programming_errors_raise(make_store: MakeStore) -> None:
    store = make_store()
    naive = datetime.datetime(2026, 1, 1)
    for bad_key in ("", "staplecheck:v1:crl:*", "other:" + KEY, KEY + "/failure", KEY.upper()):
        with pytest.raises(ValueError, match="not a staplecheck store key"):
            store.get(bad_key, now=NOW)
    with pytest.raises(ValueError, match="timezone-aware"):
        store.get(KEY, now=naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        store.put(KEY, b"x", now=NOW, expires_at=naive)
    with pytest.raises(TypeError, match="bytes"):
        store.put(KEY, bytearray(b"x"), now=NOW, expires_at=NOW + HOUR)  # type: ignore[arg-type]


def test_threads_share_a_store(make_store: MakeStore) -> None:
    store = make_store()
    keys = [keyed(i) for i in range(20)]
    problems: list[object] = []

    def work(thread: int) -> None:
        for round_ in range(60):
            key = keys[(thread * 7 + round_) % len(keys)]
            der = key.encode() + b"|" + str(thread).encode()
            if store.put(key, der, now=NOW, expires_at=NOW + HOUR) is not None:
                problems.append(("put", key))
            got = store.get(key, now=NOW)
            # Another thread may have replaced it, but only with a whole value of its own.
            if not isinstance(got, Entry) or not got.der.startswith(key.encode() + b"|"):
                problems.append(("get", key, got))
            store.mark_failure(key, now=NOW, until=NOW + HOUR, reason=str(thread))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert problems == []
    assert all(isinstance(store.failure(key, now=NOW), Failure) for key in keys)


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_bounded_entries_and_bytes_keep_the_newest(backend: str, tmp_path: Path) -> None:
    def make(**bounds: int) -> MemoryStore | SQLiteStore:
        if backend == "memory":
            return MemoryStore(**bounds)
        return SQLiteStore(tmp_path / f"{len(os.listdir(tmp_path))}.db", **bounds)

    def held(store: MemoryStore | SQLiteStore, count: int) -> list[int]:
        return [
            i for i in range(count) if isinstance(store.get(keyed(i), now=NOW + 99 * HOUR), Entry)
        ]

    by_count = make(max_entries=5)
    for i in range(12):
        by_count.put(keyed(i), b"x" * 10, now=NOW + i * HOUR, expires_at=NOW + 100 * HOUR)
    assert held(by_count, 12) == [7, 8, 9, 10, 11]

    by_bytes = make(max_bytes=1000, max_value_bytes=400)
    for i in range(12):
        by_bytes.put(keyed(i), b"x" * 300, now=NOW + i * HOUR, expires_at=NOW + 100 * HOUR)
    assert held(by_bytes, 12) == [9, 10, 11]
    if isinstance(by_bytes, MemoryStore):
        assert by_bytes.bytes_held == 900

    # Expired entries go before live ones.
    mixed = make(max_entries=3)
    mixed.put(keyed(0), b"x", now=NOW, expires_at=NOW + 100 * HOUR)
    mixed.put(keyed(1), b"x", now=NOW + HOUR, expires_at=NOW + 2 * HOUR)
    mixed.put(keyed(2), b"x", now=NOW + 2 * HOUR, expires_at=NOW + 100 * HOUR)
    mixed.put(keyed(3), b"x", now=NOW + 3 * HOUR, expires_at=NOW + 100 * HOUR)
    if backend == "sqlite":  # memory evicts least recently used, SQLite expired first
        assert held(mixed, 4) == [0, 2, 3]
    mixed.close()


def test_memory_eviction_is_least_recently_used() -> None:
    store = MemoryStore(max_entries=2)
    store.put(keyed(0), b"0", now=NOW, expires_at=NOW + HOUR)
    store.put(keyed(1), b"1", now=NOW, expires_at=NOW + HOUR)
    assert isinstance(store.get(keyed(0), now=NOW), Entry)
    store.put(keyed(2), b"2", now=NOW, expires_at=NOW + HOUR)
    assert store.get(keyed(1), now=NOW).reason is MissReason.ABSENT  # type: ignore[union-attr]
    assert isinstance(store.get(keyed(0), now=NOW), Entry)
    marks = MemoryStore(max_failures=2)
    for i in range(3):
        marks.mark_failure(keyed(i), now=NOW, until=NOW + HOUR, reason="down")
    assert [isinstance(marks.failure(keyed(i), now=NOW), Failure) for i in range(3)] == [
        False,
        True,
        True,
    ]


# -- keys -----------------------------------------------------------------------------


def test_key_formats() -> None:
    assert f"{KEY_PREFIX}ocsp:sha1:{'01' * 20}:{'02' * 20}:1234" == KEY
    assert ocsp_key("sha1", b"\x01" * 20, b"\x02" * 20, 0x80).endswith(":0080")
    assert ocsp_key("sha1", b"\x01" * 20, b"\x02" * 20, -128).endswith(":80")
    assert ocsp_key("sha1", b"\x01" * 20, b"\x02" * 20, 0).endswith(":00")
    digest = hashlib.sha256(b"http://crl.example/ca.crl").hexdigest()
    assert f"{KEY_PREFIX}crl:{digest}" == OTHER
    for key in (KEY, OTHER, ocsp_key("sha512", b"a" * 64, b"b" * 64, 2**500)):
        assert check_key(key) == key


def test_keys_do_not_collide_across_kinds_or_spellings() -> None:
    urls = [
        KEY,  # a URL that is an OCSP key
        "http://crl.example/a.crl",
        "HTTP://crl.example/a.crl",
        "http://crl.example/ä.crl",
        "http://crl.example/\ud800",  # a lone surrogate
        "http://crl.example/" + "a" * 1_000_000,
    ]
    keys = [crl_key(url) for url in urls]
    assert len(set(keys)) == len(urls)
    assert all(k.startswith(f"{KEY_PREFIX}crl:") and len(k) == len(keys[0]) for k in keys)
    assert ocsp_key("sha256", bytes(32), bytes(32), 1) != ocsp_key("sha1", bytes(20), bytes(20), 1)


def test_key_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="unsupported CertID hash"):
        ocsp_key("md5", bytes(16), bytes(16), 1)
    with pytest.raises(ValueError, match="must be 32 bytes"):
        ocsp_key("sha256", bytes(20), bytes(32), 1)
    with pytest.raises(ValueError, match="serial longer"):
        ocsp_key("sha1", bytes(20), bytes(20), 2**520)
    with pytest.raises(TypeError):
        ocsp_key("sha1", bytes(20), bytes(20), True)
    with pytest.raises(TypeError):
        crl_key(b"http://x")  # type: ignore[arg-type]


CERTIDS = st.tuples(
    st.sampled_from(["sha1", "sha256"]),
    st.binary(min_size=1, max_size=2),
    st.integers(-(2**70), 2**70),
)


@given(CERTIDS, CERTIDS)
def test_distinct_certids_give_distinct_keys(
    a: tuple[str, bytes, int], b: tuple[str, bytes, int]
) -> None:
    def key(hash_name: str, seed: bytes, serial: int) -> str:
        size = 20 if hash_name == "sha1" else 32
        return ocsp_key(hash_name, seed.ljust(size, b"\0"), seed.rjust(size, b"\0"), serial)

    assert (key(*a) == key(*b)) == (
        (a[0], a[1].ljust(2, b"\0"), a[1].rjust(2, b"\0"), a[2])
        == (b[0], b[1].ljust(2, b"\0"), b[1].rjust(2, b"\0"), b[2])
    )


# -- open_store -----------------------------------------------------------------------


def test_open_store_specs(tmp_path: Path) -> None:
    assert isinstance(open_store("memory"), MemoryStore)
    sqlite_store = open_store(f"sqlite:{tmp_path / 'a.db'}")
    assert isinstance(sqlite_store, SQLiteStore)
    sqlite_store.close()
    redis_store = open_store("redis://127.0.0.1:1/3?timeout=0.5")
    assert isinstance(redis_store, RedisStore)
    assert (redis_store.port, redis_store.db, redis_store.timeout) == (1, 3, 0.5)
    redis_store.close()


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "Memory",
        "sqlite:",
        "sqlite::memory:",
        "file:/tmp/x.db",
        "redis://",
        "redis://:6379/0",
        "redis://host:99999/0",
        "redis://host/abc",
        "redis://host/99999999999",
        "redis://host/1?db=2",
        "redis://host/1?timeout=0",
        "redis://host/1?timeout=soon",
        "redis://host/1#frag",
    ],
)
def test_bad_specs_are_value_errors(spec: str) -> None:
    with pytest.raises(ValueError, match="spec"):
        open_store(spec)


def test_a_bad_redis_spec_does_not_echo_its_password() -> None:
    with pytest.raises(ValueError, match="database must be a number") as caught:
        open_store("redis://user:s3cret@host/zero")
    assert "s3cret" not in str(caught.value)


def test_a_missing_redis_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # what an absent package imports as
    with pytest.raises(StoreError, match=r"pip install 'staplecheck\[redis\]'"):
        open_store("redis://127.0.0.1:6379/0")


# -- SQLite: files and processes ------------------------------------------------------


def test_sqlite_file_is_wal_and_versioned(tmp_path: Path) -> None:
    SQLiteStore(tmp_path / "s.db").close()
    with sqlite3.connect(tmp_path / "s.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("PRAGMA application_id").fetchone() == (APPLICATION_ID,)
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    SQLiteStore(tmp_path / "s.db").close()  # and opens again


def _other_database(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE notes (text TEXT)")


def _newer_store(path: Path) -> None:
    SQLiteStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 2")


def _damaged_store(path: Path) -> None:
    store = SQLiteStore(path)
    for i in range(300):
        store.put(keyed(i), os.urandom(1500), now=NOW, expires_at=NOW + HOUR)
    store.close()
    with open(path, "r+b") as file:
        file.seek(4096 * 3)
        file.write(b"\xa5" * 4096 * 4)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_text("not a database at all, " * 100), "not a usable staplecheck store"),
        (lambda p: p.write_bytes(os.urandom(8192)), "not a usable staplecheck store"),
        (_other_database, "of something else"),
        (_newer_store, "schema 2; this staplecheck reads schema 1"),
        (_damaged_store, "damaged"),
        (lambda p: p.mkdir(), "cannot open|not a usable"),
    ],
    ids=["text", "random", "other-database", "newer-schema", "damaged", "directory"],
)
def test_sqlite_refuses_what_is_not_its_store_at_open(
    tmp_path: Path, make: Callable[[Path], object], message: str
) -> None:
    path = tmp_path / "store.db"
    make(path)
    with pytest.raises(StoreError, match=message) as caught:
        SQLiteStore(path)
    assert str(path) in str(caught.value)


def _poisoned_file(path: Path) -> None:
    """A file with the store's identity and loose columns, as a hostile writer makes."""
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE entries (key, der, stored_at, expires_at)")
        db.execute("CREATE TABLE failures (key, reason, marked_at, until)")
        db.execute("CREATE TABLE totals (id, entries, bytes)")
        db.execute("INSERT INTO totals VALUES (0, 'many', NULL)")
        db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def test_sqlite_poisoned_rows_are_misses(tmp_path: Path) -> None:
    path = tmp_path / "poisoned.db"
    _poisoned_file(path)
    store = SQLiteStore(path, max_value_bytes=1 << 20)
    stamp = (NOW - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)) // (
        datetime.timedelta(microseconds=1)
    )
    rows: list[tuple[object, ...]] = [
        (None, stamp, stamp + 10**10),
        ("text, not a blob", stamp, stamp + 10**10),
        (12345, stamp, stamp + 10**10),
        (b"der", None, stamp + 10**10),
        (b"der", stamp, "tomorrow"),
        (b"der", stamp, 1.5e18),
        (b"der", stamp, 2**62),
        (b"der", -5, stamp + 10**10),
    ]
    with sqlite3.connect(path) as db:
        for i, row in enumerate(rows):
            db.execute("INSERT INTO entries VALUES (?, ?, ?, ?)", (keyed(i), *row))
        db.execute(
            "INSERT INTO entries VALUES (?, zeroblob(?), ?, ?)",
            (keyed(99), 2 << 20, stamp, stamp + 10**10),
        )
        db.execute("INSERT INTO failures VALUES (?, ?, ?, ?)", (KEY, b"blob", stamp, stamp + 10))
        db.execute("INSERT INTO failures VALUES (?, ?, ?, ?)", (OTHER, "x", None, stamp + 10))
    for i in range(len(rows)):
        assert store.get(keyed(i), now=NOW).reason is MissReason.MALFORMED, rows[i]  # type: ignore[union-attr]
    assert store.get(keyed(99), now=NOW).reason is MissReason.OVERSIZED  # type: ignore[union-attr]
    assert store.failure(KEY, now=NOW).reason is MissReason.MALFORMED  # type: ignore[union-attr]
    assert store.failure(OTHER, now=NOW).reason is MissReason.MALFORMED  # type: ignore[union-attr]
    # This file's tables have no primary key, so writes fail: a miss, not an exception.
    put = store.put(keyed(100), b"ok", now=NOW, expires_at=NOW + HOUR)
    assert isinstance(put, Miss)
    assert put.reason is MissReason.UNAVAILABLE
    store.close()

    # A genuine store file with rows of the wrong types beside good ones.
    genuine = SQLiteStore(tmp_path / "genuine.db")
    with sqlite3.connect(tmp_path / "genuine.db") as db:
        db.execute("INSERT INTO entries VALUES (?, 'text', ?, ?)", (KEY, stamp, stamp + 10**10))
        db.execute("INSERT INTO entries VALUES (?, x'00', 'now', ?)", (OTHER, stamp + 10**10))
    assert genuine.get(KEY, now=NOW).reason is MissReason.MALFORMED  # type: ignore[union-attr]
    assert genuine.get(OTHER, now=NOW).reason is MissReason.MALFORMED  # type: ignore[union-attr]
    assert genuine.put(keyed(100), b"ok", now=NOW, expires_at=NOW + HOUR) is None
    assert isinstance(genuine.get(keyed(100), now=NOW), Entry)
    assert genuine.put(KEY, b"good", now=NOW, expires_at=NOW + HOUR) is None  # overwrites
    assert isinstance(genuine.get(KEY, now=NOW), Entry)
    genuine.close()


_SQLITE_WORKER = textwrap.dedent(
    """
    import datetime, sys
    from staplecheck.revocation.stores import SQLiteStore, Entry, ocsp_key
    path, worker = sys.argv[1], int(sys.argv[2])
    now = datetime.datetime(2026, 11, 21, 12, tzinfo=datetime.timezone.utc)
    later = now + datetime.timedelta(hours=1)
    store = SQLiteStore(path, timeout=60)
    def key(i):
        return ocsp_key("sha256", bytes(32), b"\\xff" * 32, i)
    for i in range(150):
        mine, shared = key(1000 * (worker + 1) + i), key(i % 20)
        assert store.put(mine, b"%d:%d" % (worker, i) * 50, now=now, expires_at=later) is None
        assert store.put(shared, b"%d" % worker * 100, now=now, expires_at=later) is None
        got = store.get(mine, now=now)
        assert isinstance(got, Entry) and got.der == b"%d:%d" % (worker, i) * 50, got
        assert isinstance(store.get(shared, now=now), Entry)
    store.close()
    """
)


def test_sqlite_shared_by_several_processes(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    workers = [
        subprocess.Popen([sys.executable, "-c", _SQLITE_WORKER, str(path), str(n)])
        for n in range(4)
    ]  # several open (and create) the file at the same moment
    assert [worker.wait(timeout=120) for worker in workers] == [0, 0, 0, 0]
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    store = SQLiteStore(path)
    for worker in range(4):
        for i in range(150):
            entry = store.get(keyed(1000 * (worker + 1) + i), now=NOW)
            assert isinstance(entry, Entry)
            assert entry.der == b"%d:%d" % (worker, i) * 50
    for i in range(20):
        entry = store.get(keyed(i), now=NOW)
        assert isinstance(entry, Entry)
        assert entry.der in {b"%d" % worker * 100 for worker in range(4)}
    store.close()


def test_sqlite_a_locked_file_is_a_miss_not_a_hang(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    store = SQLiteStore(path, timeout=0.2)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        miss = store.put(KEY, b"der", now=NOW, expires_at=NOW + HOUR)
        assert isinstance(miss, Miss)
        assert miss.reason is MissReason.UNAVAILABLE
        assert "locked" in miss.detail
        assert time.monotonic() - started < 2
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert store.put(KEY, b"der", now=NOW, expires_at=NOW + HOUR) is None
    store.close()


# -- Redis: processes, outages, poison ------------------------------------------------


def test_redis_expires_keys_itself(redis_server: RedisServer) -> None:
    store = RedisStore(port=redis_server.port)
    store.clear()
    store.put(KEY, b"der", now=NOW, expires_at=NOW + datetime.timedelta(seconds=90))
    store.mark_failure(OTHER, now=NOW, until=NOW + datetime.timedelta(seconds=5), reason="x")
    client = raw_redis(redis_server.port)
    assert 85_000 < client.pttl(KEY) <= 90_000
    assert 0 < client.pttl(OTHER + "/failure") <= 5_000
    client.set("someone:else", b"keep me")
    assert store.clear() is None
    assert client.keys("*") == [b"someone:else"]
    client.delete("someone:else")
    store.close()
    client.close()


_REDIS_WORKER = textwrap.dedent(
    """
    import datetime, sys
    from staplecheck.revocation.stores import RedisStore, Entry, crl_key
    port = int(sys.argv[1])
    now = datetime.datetime(2026, 11, 21, 12, tzinfo=datetime.timezone.utc)
    store = RedisStore(port=port, timeout=5)
    got = store.get(crl_key("http://parent/"), now=now)
    assert isinstance(got, Entry) and got.der == b"from the parent", got
    put = store.put(crl_key("http://child/"), b"from the child", now=now,
                    expires_at=now + datetime.timedelta(hours=1))
    assert put is None, put
    """
)


def test_redis_shared_by_two_processes(redis_server: RedisServer) -> None:
    store = RedisStore(port=redis_server.port, timeout=5)
    store.clear()
    store.put(crl_key("http://parent/"), b"from the parent", now=NOW, expires_at=NOW + HOUR)
    child = subprocess.run(
        [sys.executable, "-c", _REDIS_WORKER, str(redis_server.port)], timeout=60, check=False
    )
    assert child.returncode == 0
    entry = store.get(crl_key("http://child/"), now=NOW)
    assert isinstance(entry, Entry)
    assert entry.der == b"from the child"
    store.clear()
    store.close()


def test_redis_killed_mid_test_gives_misses(tmp_path: Path) -> None:
    server = start_redis(tmp_path)
    try:
        store = RedisStore(port=server.port, timeout=0.5, backoff=0.2)
        assert store.put(KEY, b"der", now=NOW, expires_at=NOW + HOUR) is None
        assert isinstance(store.get(KEY, now=NOW), Entry)
        server.stop()
        started = time.monotonic()
        results: list[object] = [
            store.get(KEY, now=NOW),
            store.put(KEY, b"der", now=NOW, expires_at=NOW + HOUR),
            store.failure(KEY, now=NOW),
            store.mark_failure(KEY, now=NOW, until=NOW + HOUR, reason="down"),
            store.delete(KEY),
            store.clear(),
        ]
        assert time.monotonic() - started < 2
        for result in results:
            assert isinstance(result, Miss)
            assert result.reason is MissReason.UNAVAILABLE
        # After the first failure the store does not knock again until the backoff ends.
        assert "backing off" in results[-1].detail  # type: ignore[attr-defined]
        time.sleep(0.3)
        miss = store.get(KEY, now=NOW)
        assert isinstance(miss, Miss)
        assert "backing off" not in miss.detail
        store.close()
    finally:
        server.stop()


def test_a_hung_redis_times_out_into_a_miss() -> None:
    """A peer that accepts and never answers (a stuck Redis, a black hole)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        store = RedisStore(port=listener.getsockname()[1], timeout=0.3)
        started = time.monotonic()
        miss = store.get(KEY, now=NOW)
        elapsed = time.monotonic() - started
        assert isinstance(miss, Miss)
        assert miss.reason is MissReason.UNAVAILABLE
        assert "Timeout" in miss.detail
        assert 0.25 < elapsed < 1.5
        store.close()


def test_redis_poisoned_values_are_misses(redis_server: RedisServer) -> None:
    import struct

    store = RedisStore(port=redis_server.port, max_value_bytes=1 << 20)
    store.clear()
    client = raw_redis(redis_server.port)
    stamp = (NOW - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)) // (
        datetime.timedelta(microseconds=1)
    )
    good_header = struct.pack(">4sqq", b"scE1", stamp, stamp + 10**10)
    client.set(keyed(0), good_header + b"\0" * (2 << 20))  # 2 MiB under a 1 MiB cap
    client.hset(keyed(1), "der", b"x")  # another Redis type
    client.rpush(keyed(2), b"x")
    client.set(keyed(3), b"short")
    client.set(keyed(4), struct.pack(">4sqq", b"pckl", stamp, stamp + 10**10) + b"der")
    client.set(keyed(5), struct.pack(">4sqq", b"scE1", stamp, -1) + b"der")
    client.set(keyed(6), struct.pack(">4sqq", b"scE1", stamp, 2**62) + b"der")
    client.set(KEY + "/failure", good_header)  # an entry's magic on a failure mark
    expected = [
        MissReason.OVERSIZED,
        *[MissReason.MALFORMED] * 6,
    ]
    for i, reason in enumerate(expected):
        got = store.get(keyed(i), now=NOW)
        assert isinstance(got, Miss)
        assert got.reason is reason, (i, got)
    assert store.failure(KEY, now=NOW).reason is MissReason.MALFORMED  # type: ignore[union-attr]
    # A poisoned key is no outage: the next call goes to Redis, and works.
    assert store.put(OTHER, b"ok", now=NOW, expires_at=NOW + HOUR) is None
    assert isinstance(store.get(OTHER, now=NOW), Entry)
    store.clear()
    store.close()
    client.close()
