"""The servers and clients bench_revocation.py measures, built once per run.

A test PKI (ECDSA P-256 root and intermediate, a leaf for ``localhost`` whose AIA names
the project's OCSP responder), the responder itself on 127.0.0.1 (in a process of its
own by default, as a real responder is), two nginx servers
with the same certificate (one stapling a good response, one stapling nothing), TLS 1.3
only and no session resumption, and, for the Redis store, a real ``redis-server`` on
127.0.0.1 that this module starts and stops. Everything is stopped by
:meth:`Bench.close` (the benchmark uses it as a context manager).
"""

from __future__ import annotations

import contextlib
import http.client
import multiprocessing
import shutil
import subprocess
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from types import TracebackType

import requests
from cryptography.hazmat.primitives import serialization

from staplecheck import Policy, StapleAdapter
from staplecheck.revocation import RevocationChecker
from staplecheck.revocation._plan import request_key
from staplecheck.revocation.stores import MemoryStore, RedisStore, SQLiteStore, Store
from staplecheck.testing import CA, Identity, OCSPResponder
from staplecheck.testing._process import free_port, port_accepts, terminate
from staplecheck.validation._validate import CertPair, StapleCache
from tests.realservers import Nginx

FALLBACK = Policy(fallback=("ocsp",))
"""soft-fail with live OCSP as its fallback (answered from the store when it can)."""


def redis_program() -> str | None:
    return shutil.which("redis-server") or next(
        (p for p in ("/usr/sbin/redis-server", "/usr/local/sbin/redis-server") if Path(p).exists()),
        None,
    )


def _serve_responder(issuer: CA, serial: int, port: int, pipe: Connection) -> None:
    """The child process of :class:`ResponderProcess`: serve, answer the pipe's
    commands, stop when told (or when the parent goes away)."""
    with OCSPResponder(issuer, port=port) as responder:
        responder.set_status(serial, "good")
        pipe.send(responder.url)
        while True:
            try:
                command = pipe.recv()
            except EOFError:
                break
            if command == "requests":
                pipe.send(responder.requests)
            elif command == "pause":
                responder.pause()
                pipe.send(None)
            elif command == "resume":
                responder.resume()
                pipe.send(None)
            else:
                break


class ResponderProcess:
    """The project's :class:`OCSPResponder` in a process of its own (forked), as a real
    responder is: its Python work (signing a fresh response, closing the connection,
    bookkeeping) then does not compete for the benchmark's GIL while the client judges
    the answer. :attr:`requests`, :meth:`pause` and :meth:`resume` ask it over a pipe."""

    def __init__(self, issuer: CA, serial: int, port: int) -> None:
        context = multiprocessing.get_context("fork")
        self._pipe, child = context.Pipe()
        self._process = context.Process(
            target=_serve_responder, args=(issuer, serial, port, child), daemon=True
        )
        self._process.start()
        child.close()
        if not self._pipe.poll(10):
            self.stop()
            raise RuntimeError("the responder process did not start")
        self.url: str = self._pipe.recv()

    def _ask(self, command: str) -> object:
        self._pipe.send(command)
        return self._pipe.recv()

    @property
    def requests(self) -> int:
        count = self._ask("requests")
        assert isinstance(count, int)
        return count

    def pause(self) -> None:
        self._ask("pause")

    def resume(self) -> None:
        self._ask("resume")

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self._pipe.send("stop")
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(10)
        self._pipe.close()


class RedisProcess:
    """``redis-server`` on 127.0.0.1, no persistence, in the foreground; stopped by
    :meth:`stop`."""

    def __init__(self, program: str, directory: Path) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [program, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", str(directory), "--daemonize", "no",
             "--protected-mode", "yes", "--logfile", ""],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while not port_accepts(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("redis-server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        terminate(self.process, timeout=10)


@dataclass
class Client:
    """One requests session and where it goes; samples are nanoseconds per request."""

    name: str
    session: requests.Session
    url: str
    checker: RevocationChecker | None = None
    samples: list[int] = field(default_factory=list)

    def get(self, verify: str) -> requests.Response:
        response = self.session.get(
            self.url, headers={"Connection": "close"}, verify=verify, timeout=10
        )
        if response.status_code != 200 or response.content != b"ok\n":
            raise AssertionError(f"{self.name}: {response.status_code} {response.content!r}")
        return response


class Bench:
    """Everything a run needs; a context manager that stops all it started."""

    def __init__(self, *, with_redis: bool = True, in_process: bool = False) -> None:
        self._stack = contextlib.ExitStack()
        self.directory = Path(self._stack.enter_context(tempfile.TemporaryDirectory()))
        root = CA(key_type="ecdsa", name="bench_revocation root")
        self.issuer = root.create_intermediate(key_type="ecdsa", name="bench_revocation CA")
        self.responder: OCSPResponder | ResponderProcess
        if in_process:
            # The responder's socket is bound now, so the leaf can name it.
            responder = OCSPResponder(self.issuer)
            self.leaf: Identity = self.issuer.issue_cert(
                "localhost", key_type="ecdsa", ocsp_url=responder.url
            )
            responder.set_status(self.leaf, "good")
            self.responder = self._stack.enter_context(responder)
        else:
            # Forked first, before this process starts any thread.
            port = free_port()
            self.leaf = self.issuer.issue_cert(
                "localhost", key_type="ecdsa", ocsp_url=f"http://127.0.0.1:{port}/"
            )
            self.responder = ResponderProcess(self.issuer, self.leaf.cert.serial_number, port)
            self._stack.callback(self.responder.stop)
        chain, key = self.leaf.write(self.directory, "localhost")
        staple = self.directory / "staple.der"
        staple.write_bytes(self.issuer.ocsp_response(self.leaf, "good"))
        self.root = root.write_trust(self.directory / "root.pem")
        self.stapling = self._stack.enter_context(
            Nginx(chain, key, str(staple), tls_versions=("TLSv1.3",))
        )
        self.plain = self._stack.enter_context(Nginx(chain, key, None, tls_versions=("TLSv1.3",)))
        der = serialization.Encoding.DER
        self.chain_der = [self.leaf.cert.public_bytes(der), self.issuer.cert.public_bytes(der)]
        self.request_der = request_key(CertPair(*self.chain_der))[0].der
        self.redis: RedisProcess | None = None
        program = redis_program()
        if with_redis and program is not None:
            self.redis = RedisProcess(program, self.directory)
            self._stack.callback(self.redis.stop)

    def __enter__(self) -> Bench:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._stack.close()

    # --- clients -----------------------------------------------------------------------

    def staple_only(self, name: str = "staple") -> Client:
        """soft-fail, no fallback, against the stapling nginx."""
        session = requests.Session()
        session.mount("https://", StapleAdapter("soft-fail"))
        self._stack.callback(session.close)
        return Client(name, session, self.stapling.url("localhost", f"/{name}"))

    def no_staple(self, name: str = "none") -> Client:
        """soft-fail, no fallback, against the nginx that staples nothing."""
        session = requests.Session()
        session.mount("https://", StapleAdapter("soft-fail"))
        self._stack.callback(session.close)
        return Client(name, session, self.plain.url("localhost", f"/{name}"))

    def fallback(
        self,
        name: str,
        store: Store | None = None,
        cache: StapleCache | None = None,
        checker: RevocationChecker | None = None,
    ) -> Client:
        """soft-fail with live OCSP, against the nginx that staples nothing; a checker
        of its own (``store``, ``cache``) unless ``checker`` is given."""
        if checker is None and cache is None:
            checker = RevocationChecker(store or MemoryStore())
        elif checker is None:
            checker = RevocationChecker(store or MemoryStore(), cache=cache)
        session = requests.Session()
        session.mount("https://", StapleAdapter(FALLBACK, revocation=checker))
        self._stack.callback(session.close)
        return Client(name, session, self.plain.url("localhost", f"/{name}"), checker)

    def store(self, kind: str) -> Store | None:
        """A new, empty store of ``kind`` (``None`` when Redis is not running)."""
        if kind == "memory":
            return MemoryStore()
        if kind == "sqlite":
            path = self.directory / f"store-{time.monotonic_ns()}.sqlite"
            store: Store = SQLiteStore(path)
        elif self.redis is None:
            return None
        else:
            store = RedisStore("127.0.0.1", self.redis.port, timeout=2.0)
        store.clear()
        self._stack.callback(store.close)
        return store

    def plain_post(self) -> bytes:
        """The baseline of a cold miss: the same OCSP request, POSTed with the same
        HTTP stack the fetcher uses (``http.client``, a new connection), body read."""
        url = urllib.parse.urlsplit(self.responder.url)
        assert url.hostname is not None
        connection = http.client.HTTPConnection(url.hostname, url.port, timeout=5)
        try:
            connection.request(
                "POST", url.path or "/", self.request_der,
                {"Content-Type": "application/ocsp-request", "User-Agent": "staplecheck"},
            )  # fmt: skip
            response = connection.getresponse()
            body = response.read()
            if response.status != 200 or not body:
                raise AssertionError(f"plain POST: HTTP {response.status}")
            return body
        finally:
            connection.close()
