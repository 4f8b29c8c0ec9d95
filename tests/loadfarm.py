"""A farm of stapling servers for load tests: one CA, many servers, one client session.

Used by ``tests/test_load.py`` and ``benchmarks/load_memory.py``. Every server has its
own leaf (so its own serial number) under one shared intermediate, its own staple
kind, its own TLS version and its own response body, so each outcome can be traced to
the server that produced it:

| kind | staple | leaf | soft-fail |
| --- | --- | --- | --- |
| good | good | plain | accepted, ``good`` |
| revoked | revoked (keyCompromise) | plain | refused, ``revoked`` |
| unknown | unknown | plain | refused, ``unknown`` |
| missing | none | plain | accepted, ``missing`` |
| missing-must-staple | none | must-staple | refused, ``missing`` |

:meth:`Farm.run` sends a fixed number of requests (each with ``Connection: close``, so
each is a new TCP connection and a full handshake) from several threads through one
session, each to a server drawn from a seeded schedule, and checks every outcome
against the server it went to: status, serial number, host, port, body. Servers bind
127.0.0.1 on ephemeral ports and stop when the farm's ``with`` block ends. With
``in_child=True`` they run in a child process, so that this process's memory is the
client's alone. :func:`measure_client` runs the client in a process of its own too, so
that nothing but the client (no test runner holding log records) is measured.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import gc
import multiprocessing
import os
import random
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import requests

from staplecheck import StapleStatus, find_staple_error
from staplecheck.testing import CA, Identity, StaplingServer

__all__ = [
    "KINDS",
    "ClientMemory",
    "Farm",
    "Tally",
    "Target",
    "measure_client",
    "object_count",
    "rss_mb",
]

KINDS: dict[str, tuple[StapleStatus, bool, bool]] = {
    # kind: (status, must-staple leaf, accepted under soft-fail)
    "good": (StapleStatus.GOOD, False, True),
    "revoked": (StapleStatus.REVOKED, False, False),
    "unknown": (StapleStatus.UNKNOWN, False, False),
    "missing": (StapleStatus.MISSING, False, True),
    "missing-must-staple": (StapleStatus.MISSING, True, False),
}
CLOSE = {"Connection": "close"}


def rss_mb(pid: int | str = "self") -> float:
    """A process's resident set size (``VmRSS`` in /proc/PID/status), in MiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def object_count() -> int:
    """Objects tracked by the garbage collector, after a full collection."""
    gc.collect()
    return len(gc.get_objects())


@dataclasses.dataclass
class Target:
    """One server of the farm and what every connection to it must show."""

    kind: str
    tls: str
    port: int
    serial: int
    body: bytes
    status: StapleStatus
    accepted: bool
    sent: int = 0
    """Requests sent to it by the current :meth:`Farm.run`."""
    baseline: tuple[int, int, int] = (0, 0, 0)
    """The server's (handshakes, requests, staples sent) when the run began."""

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}/"

    def check(self, outcome: Any) -> str | None:
        """Why ``outcome`` is not what this server must give, or ``None``."""
        where = f"{self.kind} server (TLS {self.tls}, port {self.port})"
        if self.accepted:
            if not isinstance(outcome, requests.Response):
                return f"{where}: expected a response, got {outcome!r}"
            staple = getattr(outcome, "staple", None)
            if outcome.status_code != 200 or outcome.content != self.body:
                return f"{where}: wrong response {outcome.status_code} {outcome.content!r}"
            if staple is None or staple.status is not self.status:
                return f"{where}: staple {staple!r}"
            if staple.serial_number != self.serial:
                return f"{where}: staple of serial {staple.serial_number:#x}, not {self.serial:#x}"
            return None
        if not isinstance(outcome, requests.exceptions.SSLError):
            return f"{where}: expected an SSLError, got {outcome!r}"
        found = find_staple_error(outcome)
        if found is None or found.result.status is not self.status:
            return f"{where}: staple error {found!r} behind {outcome!r}"
        if found.result.serial_number != self.serial or found.host != "localhost":
            return f"{where}: verdict about serial {found.result.serial_number} host {found.host}"
        if f"port={self.port})" not in str(outcome):
            return f"{where}: error names another port: {outcome}"
        return None


@dataclasses.dataclass
class Tally:
    """What one :meth:`Farm.run` did."""

    connections: int = 0
    seconds: float = 0.0
    wrong: list[str] = dataclasses.field(default_factory=list)
    """Every misattributed or unexpected outcome, described."""
    server_mismatches: list[str] = dataclasses.field(default_factory=list)
    """Servers whose own counters disagree with what the clients saw."""

    @property
    def rate(self) -> float:
        return self.connections / self.seconds if self.seconds else 0.0


class Farm:
    """Servers of every kind in ``kinds``, in every TLS version of ``tls_versions``.

    By default the servers run in this process. With ``in_child=True`` they run in a
    child process (so this process's memory is the client's alone); their
    counters come back over a pipe.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        kinds: Sequence[str] = tuple(KINDS),
        tls_versions: Sequence[str] = ("1.2", "1.3"),
        *,
        in_child: bool = False,
    ) -> None:
        self._directory = os.fspath(directory)
        self._kinds = tuple(kinds)
        self._tls_versions = tuple(tls_versions)
        self._in_child = in_child
        self._servers: list[StaplingServer] = []
        self._pipe: Any = None
        self._child: Any = None
        self.child_pid: int | None = None
        self.cafile = ""
        self.targets: list[Target] = []

    def _build(self) -> tuple[str, list[StaplingServer], list[Target]]:
        now = datetime.datetime.now(datetime.timezone.utc)
        root = CA(now=now, name="staplecheck load root")
        intermediate = root.create_intermediate(name="staplecheck load intermediate")
        cafile = root.write_trust(os.path.join(self._directory, "load-ca.pem"))
        servers: list[StaplingServer] = []
        targets: list[Target] = []
        for kind in self._kinds:
            status, must_staple, accepted = KINDS[kind]
            for tls in self._tls_versions:
                leaf: Identity = intermediate.issue_cert("localhost", must_staple=must_staple)
                staple = (
                    None
                    if status is StapleStatus.MISSING
                    else intermediate.ocsp_response(
                        leaf,
                        status.value,
                        revocation_reason="keyCompromise" if kind == "revoked" else None,
                    )
                )
                server = StaplingServer(
                    leaf,
                    staple,
                    tls_version=tls,  # type: ignore[arg-type]
                    body=f"{kind} over TLS {tls}\n".encode(),
                )
                servers.append(server)
                targets.append(
                    Target(
                        kind,
                        tls,
                        server.port,
                        leaf.cert.serial_number,
                        server.body,
                        status,
                        accepted,
                    )
                )
        return cafile, servers, targets

    def __enter__(self) -> Farm:
        if self._in_child:
            # spawn, not fork: forking a process that runs threads is unsafe (and
            # deprecated from Python 3.12).
            context = multiprocessing.get_context("spawn")
            self._pipe, child_end = context.Pipe()
            self._child = context.Process(
                target=_child,
                args=(self._directory, self._kinds, self._tls_versions, child_end),
                daemon=True,
            )
            self._child.start()
            self.child_pid = self._child.pid
            if not self._pipe.poll(60):
                self.__exit__()
                raise RuntimeError("the server process did not start")
            self.cafile, self.targets = self._pipe.recv()
            return self
        self.cafile, self._servers, self.targets = self._build()
        started: list[StaplingServer] = []
        try:
            for server in self._servers:
                server.start()
                started.append(server)
        except BaseException:
            for server in started:
                server.stop()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        if self._child is not None:
            with contextlib.suppress(OSError, ValueError):
                self._pipe.send("stop")
            self._child.join(timeout=10)
            if self._child.is_alive():
                self._child.kill()
                self._child.join(timeout=5)
            self._pipe.close()
            self._child = None
        for server in self._servers:
            server.stop()

    def counters(self) -> list[tuple[int, int, int]]:
        """Each server's (handshakes, requests, staples sent), in target order."""
        if self._child is not None:
            self._pipe.send("counters")
            counters: list[tuple[int, int, int]] = self._pipe.recv()
            return counters
        return [(s.handshakes, s.requests, s.staples_sent) for s in self._servers]

    def run(
        self,
        session: requests.Session,
        connections: int,
        *,
        threads: int = 8,
        seconds: float = 60.0,
        seed: int = 0,
        progress: Callable[[int], None] | None = None,
    ) -> Tally:
        """Make up to ``connections`` new connections from ``threads`` threads through
        ``session``, stopping early when ``seconds`` have passed; check each outcome
        and, afterwards, each server's own counters. ``progress(done)`` is called by
        the thread that completes every 1000th connection."""
        schedule = random.Random(seed).choices(range(len(self.targets)), k=connections)
        for target, counters in zip(self.targets, self.counters(), strict=True):
            target.sent = 0
            target.baseline = counters
        tally = Tally()
        lock = threading.Lock()
        tickets = iter(range(connections))
        start = time.monotonic()
        deadline = start + seconds

        def worker() -> None:
            while time.monotonic() < deadline:
                with lock:
                    ticket = next(tickets, None)
                if ticket is None:
                    return
                target = self.targets[schedule[ticket]]
                try:
                    outcome: Any = session.get(
                        target.url, verify=self.cafile, headers=CLOSE, timeout=30
                    )
                except requests.exceptions.RequestException as error:
                    outcome = error
                problem = target.check(outcome)
                with lock:
                    target.sent += 1
                    tally.connections += 1
                    done = tally.connections
                    if problem is not None:
                        tally.wrong.append(problem)
                if progress is not None and done % 1000 == 0:
                    progress(done)

        pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join(timeout=seconds + 60)
        tally.seconds = time.monotonic() - start
        if any(thread.is_alive() for thread in pool):
            tally.wrong.append("a client thread did not finish")
        tally.server_mismatches = [
            m
            for t, counters in zip(self.targets, self.counters(), strict=True)
            if (m := self._audit(t, counters))
        ]
        return tally

    @staticmethod
    def _audit(target: Target, counters: tuple[int, int, int]) -> str | None:
        """Each accepted connection was one handshake and one request on that server;
        each refused one got a staple and no request."""
        handshakes, answered, stapled = (
            now - before for now, before in zip(counters, target.baseline, strict=True)
        )
        if target.accepted:
            expected = (
                target.sent,
                target.sent,
                0 if target.status is StapleStatus.MISSING else target.sent,
            )
        else:
            expected = (0, 0, 0 if target.status is StapleStatus.MISSING else target.sent)
        seen = (handshakes, answered, stapled)
        if seen != expected:
            return (
                f"{target.kind} server (TLS {target.tls}): (handshakes, requests, staples) "
                f"{seen}, expected {expected}"
            )
        return None


def _child(
    directory: str, kinds: tuple[str, ...], tls_versions: tuple[str, ...], pipe: Any
) -> None:
    """The server process: build and start the servers, describe them, answer."""
    cafile, servers, targets = Farm(directory, kinds, tls_versions)._build()
    for server in servers:
        server.start()
    try:
        pipe.send((cafile, targets))
        while True:
            command = pipe.recv()
            if command == "counters":
                pipe.send([(s.handshakes, s.requests, s.staples_sent) for s in servers])
            else:
                return
    except EOFError:
        return
    finally:
        for server in servers:
            server.stop()


@dataclasses.dataclass(frozen=True)
class ClientMemory:
    """What :func:`measure_client` saw in the client process."""

    warm_up: Tally
    measured: Tally
    rss_before: float
    rss_after: float
    samples: list[float]
    """RSS (MiB) after every 1000th measured connection."""
    objects_before: int
    objects_after: int
    state: dict[str, tuple[int, int]]
    """staplecheck's own bounded state after the run: name -> (size, bound)."""

    @property
    def growth(self) -> float:
        return self.rss_after - self.rss_before


def measure_client(
    directory: str | os.PathLike[str],
    warm_up: int,
    measured: int,
    *,
    threads: int = 8,
    seconds: float = 45.0,
    keep_responses: bool = False,
) -> ClientMemory:
    """Measure a soft-fail ``StapleAdapter`` session's memory over ``measured`` new
    connections after ``warm_up`` ones, in a fresh interpreter that runs only the
    client (the servers run in a child of it).

    A test runner's process is no place to measure this: pytest keeps every log record
    of a test (from 9.1 on also from loggers that do not propagate), a record per
    refused connection that would be counted as the client's. ``keep_responses`` makes
    the client leak every accepted response, to prove the measurement sees a leak.
    """
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    # Not a daemon: the client process starts the server process itself.
    child = context.Process(
        target=_measure_in_child,
        args=(os.fspath(directory), warm_up, measured, threads, seconds, keep_responses, sender),
    )
    child.start()
    sender.close()
    try:
        if not receiver.poll(2 * seconds + 120):
            raise RuntimeError("the client process did not report in time")
        outcome, value = receiver.recv()
    finally:
        child.join(timeout=30)
        if child.is_alive():
            child.kill()
            child.join(timeout=5)
        receiver.close()
    if outcome != "ok":
        raise RuntimeError(f"the client process failed:\n{value}")
    assert isinstance(value, ClientMemory)
    return value


def _measure_in_child(
    directory: str,
    warm_up: int,
    measured: int,
    threads: int,
    seconds: float,
    keep_responses: bool,
    pipe: Any,
) -> None:
    try:
        pipe.send(("ok", _measure(directory, warm_up, measured, threads, seconds, keep_responses)))
    except BaseException:  # noqa: BLE001 - any failure goes back to the test as text
        pipe.send(("error", traceback.format_exc()))
    finally:
        pipe.close()


def _measure(
    directory: str,
    warm_up: int,
    measured: int,
    threads: int,
    seconds: float,
    keep_responses: bool,
) -> ClientMemory:
    # Imported here: only the client process needs them.
    from staplecheck import SHARED_CACHE, StapleAdapter
    from staplecheck.tls._pyopenssl import _DEFAULT_LOG

    kept: list[requests.Response] = []
    with Farm(directory, in_child=True) as farm, requests.Session() as session:
        session.trust_env = False
        adapter = StapleAdapter("soft-fail")
        session.mount("https://", adapter)
        if keep_responses:
            session.hooks["response"].append(lambda response, **_: kept.append(response))
        warm = farm.run(session, warm_up, threads=threads, seconds=seconds, seed=2)
        rss_before, objects_before = rss_mb(), object_count()
        samples: list[float] = []
        tally = farm.run(
            session,
            measured,
            threads=threads,
            seconds=seconds,
            seed=3,
            progress=lambda done: samples.append(rss_mb()),
        )
        rss_after, objects_after = rss_mb(), object_count()
        state = {
            "evidence cache": (len(SHARED_CACHE.evidence), SHARED_CACHE.evidence.maxsize),
            "certificate cache": (
                len(SHARED_CACHE.certificates),
                SHARED_CACHE.certificates.maxsize,
            ),
            # One trust configuration: one pyOpenSSL context.
            "pyOpenSSL contexts": (len(adapter.ssl_context._contexts), 1),
            "log rate limit": (len(_DEFAULT_LOG._last), _DEFAULT_LOG._max_hosts),
        }
    return ClientMemory(
        warm, tally, rss_before, rss_after, samples, objects_before, objects_after, state
    )
