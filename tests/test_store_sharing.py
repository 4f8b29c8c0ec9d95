"""Stores shared by processes: an SQLite file on one machine, a real redis-server for a
fleet (issue 8, "Done when" #2).

Three worker processes (separate Python interpreters, started once for the module)
connect through staplecheck (requests + StapleAdapter) to a TLS server that staples
nothing, each with its own RevocationChecker on the same store. One process's answer
is another's cache hit (source ``cache``, counted on the responder: no query); a
failure mark written by one is honoured by the others.

Then this process plays a hostile writer with write access to the store (through the
Store API, and raw writes past it) and forges what it can: responses with the wrong
signer, about another certificate, stale, swapped between two certificates' keys,
garbage, oversized, a good answer for a revoked certificate from an unauthorized key,
another issuer's CRL under a CRL key, failure marks far in the future. A worker then
connects: every entry is judged again, none turns a verdict into a false ``good``;
the forged entry costs one live query (denial of service at worst). The one thing a
writer can make a reader accept is a genuine answer that is still current: a replay,
as from any OCSP cache or stapling server (pinned below, documented in
docs/revocation.md, "What a shared store can do to you").

Single-process store mechanics (contract, damaged files, raw poisoned values) are in
tests/test_stores.py; forged embedded certificates in one process in
tests/test_cache_poisoning.py.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import select
import sqlite3
import struct
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from staplecheck.revocation.stores import (
    DEFAULT_MAX_VALUE_BYTES,
    Entry,
    RedisStore,
    SQLiteStore,
    Store,
    crl_key,
)
from staplecheck.revocation.stores._checks import to_micros
from staplecheck.testing import (
    CA,
    CRLServer,
    Identity,
    OCSPResponder,
    StaplingServer,
    make_ocsp_response,
)
from staplecheck.validation._validate import CertPair
from tests.conftest import NOW
from tests.test_stores import RedisServer, start_redis

ROOT = Path(__file__).resolve().parent.parent
SECOND = datetime.timedelta(seconds=1)
MINUTE = datetime.timedelta(minutes=1)
HOUR = datetime.timedelta(hours=1)
DAY = datetime.timedelta(days=1)
BACKENDS = ("sqlite", "redis")

# A worker: one JSON command per line in, one JSON verdict per line out. Each command
# gets a new RevocationChecker on the store named by its spec, so nothing is remembered
# in the worker between commands: what it knows, it read from the shared store.
_WORKER = textwrap.dedent(
    """
    import datetime, json, sys
    import requests
    from staplecheck import Policy, StapleAdapter, RevocationError, find_staple_error
    from staplecheck.revocation import RevocationChecker
    from staplecheck.revocation.stores import open_store

    for line in sys.stdin:
        command = json.loads(line)
        now = datetime.datetime.fromisoformat(command["now"])
        store = open_store(command["store"])
        checker = RevocationChecker(store, clock=lambda: now, cache=None)
        policy = Policy(
            mode=command["mode"],
            fallback=tuple(command["fallback"]),
            ocsp_nonce=command["nonce"],
            fallback_timeout=10.0,  # answers are tested here, not time; the machine may be busy
        )
        adapter = StapleAdapter(policy, clock=lambda: now, revocation=checker, cache=None)
        out = {"pid": __import__("os").getpid()}
        with requests.Session() as session:
            session.trust_env = False
            session.mount("https://", adapter)
            try:
                response = session.get(command["url"], verify=command["cafile"], timeout=10)
                out["accepted"] = True
                out["revocation"] = response.revocation.to_dict()
            except requests.exceptions.SSLError as error:
                found = find_staple_error(error)
                out["accepted"] = False
                out["error"] = str(found or error)
                if isinstance(found, RevocationError):
                    out["revocation"] = found.revocation.to_dict()
        out["counts"] = checker.counts
        store.close()
        print(json.dumps(out), flush=True)
    """
)


class Worker:
    """One Python process that connects through staplecheck on request."""

    def __init__(self) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.process = subprocess.Popen(
            [sys.executable, "-c", _WORKER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )

    def send(self, **command: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()

    def receive(self, timeout: float = 60.0) -> dict[str, Any]:
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        if not ready:
            raise TimeoutError("the worker did not answer")
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the worker exited ({self.process.wait()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture(scope="module")
def workers() -> Iterator[list[Worker]]:
    started = [Worker() for _ in range(3)]
    yield started
    for worker in started:
        worker.stop()


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = start_redis(tmp_path_factory.mktemp("redis-sharing"))
    yield server
    server.stop()


@dataclasses.dataclass
class Shared:
    """The store every process uses: its spec, and this process's handle on it."""

    spec: str
    store: Store
    backend: str
    path: Path | None = None
    port: int | None = None


@pytest.fixture(params=BACKENDS)
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Shared]:
    if request.param == "sqlite":
        path = tmp_path / "shared.db"
        made = Shared(f"sqlite:{path}", SQLiteStore(path), "sqlite", path=path)
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        store = RedisStore(port=server.port, timeout=5)
        assert store.clear() is None
        made = Shared(
            f"redis://127.0.0.1:{server.port}/0?timeout=5", store, "redis", port=server.port
        )
    yield made
    made.store.close()


@dataclasses.dataclass
class Site:
    """A TLS server (no staple) for a leaf, and what its revocation sources say."""

    leaf: Identity
    server: StaplingServer

    @property
    def certs(self) -> CertPair:
        return CertPair.of(self.leaf.cert, self.leaf.issuer.cert)

    @property
    def key(self) -> str:
        """The store key of the leaf's OCSP answers."""
        from staplecheck.revocation._plan import request_key

        return request_key(self.certs)[1]


@dataclasses.dataclass
class PKI:
    root: CA
    issuer: CA
    cafile: str
    responder: OCSPResponder
    flaky: OCSPResponder
    """Answers tryLater (counted), never an answer."""
    crl_server: CRLServer
    good: Site
    revoked: Site
    crl_revoked: Site
    down: Site
    ocsp_works: Site
    """Revoked; its responder answers, its distribution point is missing (404)."""
    crl_works: Site
    """Revoked; its responder answers tryLater, its CRL lists it."""


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PKI]:
    root = CA(now=NOW)
    issuer = root.create_intermediate()
    cafile = root.write_trust(tmp_path_factory.mktemp("sharing") / "ca.pem")
    with (
        OCSPResponder(issuer, clock=lambda: NOW) as responder,
        OCSPResponder(issuer, clock=lambda: NOW) as flaky,
        CRLServer() as crl_server,
    ):
        flaky.misbehave("try-later")
        crl_url = crl_server.url("/issuer.crl")
        good = issuer.issue_cert("localhost", ocsp_url=responder.url)
        revoked = issuer.issue_cert("localhost", ocsp_url=responder.url)
        crl_revoked = issuer.issue_cert("localhost", crl_url=crl_url)
        down = issuer.issue_cert("localhost", ocsp_url=flaky.url)
        ocsp_works = issuer.issue_cert(
            "localhost", ocsp_url=responder.url, crl_url=crl_server.url("/missing.crl")
        )
        crl_works = issuer.issue_cert("localhost", ocsp_url=flaky.url, crl_url=crl_url)
        responder.set_status(ocsp_works, "revoked", revocation_time=NOW - DAY)
        responder.set_status(good, "good")
        responder.set_status(
            revoked, "revoked", revocation_reason="keyCompromise", revocation_time=NOW - DAY
        )
        crl_server.set_crl(
            "/issuer.crl",
            issuer.crl([crl_revoked, crl_works], reason="keyCompromise", this_update=NOW - HOUR),
        )
        with (
            StaplingServer(good) as good_server,
            StaplingServer(revoked) as revoked_server,
            StaplingServer(crl_revoked) as crl_server_site,
            StaplingServer(down) as down_server,
            StaplingServer(ocsp_works) as ocsp_works_server,
            StaplingServer(crl_works) as crl_works_server,
        ):
            yield PKI(
                root=root,
                issuer=issuer,
                cafile=cafile,
                responder=responder,
                flaky=flaky,
                crl_server=crl_server,
                good=Site(good, good_server),
                revoked=Site(revoked, revoked_server),
                crl_revoked=Site(crl_revoked, crl_server_site),
                down=Site(down, down_server),
                ocsp_works=Site(ocsp_works, ocsp_works_server),
                crl_works=Site(crl_works, crl_works_server),
            )


def command(
    pki: PKI,
    shared: Shared,
    site: Site,
    *,
    mode: str = "hard-fail",
    fallback: tuple[str, ...] = ("ocsp", "crl"),
    now: datetime.datetime = NOW,
    nonce: bool = False,
) -> dict[str, Any]:
    return {
        "url": site.server.url,
        "cafile": pki.cafile,
        "store": shared.spec,
        "now": now.isoformat(),
        "mode": mode,
        "fallback": list(fallback),
        "nonce": nonce,
    }


def ask(worker: Worker, pki: PKI, shared: Shared, site: Site, **options: Any) -> dict[str, Any]:
    worker.send(**command(pki, shared, site, **options))
    return worker.receive()


def attempts(answer: dict[str, Any]) -> list[tuple[str, str | None, str]]:
    """(source, URL, outcome) of each attempt, without the sources the leaf does not
    name (a leaf with only an OCSP URL has no CRL to read, and the other way round)."""
    return [
        (a["source"], a["url"], a["outcome"])
        for a in answer["revocation"]["attempts"]
        if "names no" not in a["reason"]
    ]


# --- sharing ---------------------------------------------------------------------------


def test_one_process_answer_is_anothers_cache_hit(
    workers: list[Worker], pki: PKI, shared: Shared
) -> None:
    first, *others = workers
    before = pki.responder.requests
    answer = ask(first, pki, shared, pki.good)
    assert answer["accepted"], answer
    assert answer["revocation"]["source"] == "ocsp"
    assert attempts(answer) == [("ocsp", pki.responder.url, "good")]
    assert pki.responder.requests == before + 1
    # Two other processes at once: both read the first one's answer, nobody asks.
    for worker in others:
        worker.send(**command(pki, shared, pki.good))
    answers = [worker.receive() for worker in others]
    assert len({answer["pid"], *(a["pid"] for a in answers)}) == 3  # three processes
    for hit in answers:
        assert hit["accepted"], hit
        assert hit["revocation"]["status"] == "good"
        assert hit["revocation"]["source"] == "cache"
        assert attempts(hit) == [("cache", None, "good")]
        assert hit["counts"].get("cache_hit") == 1
        assert "ocsp_query" not in hit["counts"]
    assert pki.responder.requests == before + 1


def test_a_revoked_answer_is_shared_too(workers: list[Worker], pki: PKI, shared: Shared) -> None:
    first, second, _ = workers
    before = pki.responder.requests
    refused = ask(first, pki, shared, pki.revoked, mode="soft-fail", fallback=("ocsp",))
    assert not refused["accepted"]
    assert (refused["revocation"]["status"], refused["revocation"]["source"]) == ("revoked", "ocsp")
    again = ask(second, pki, shared, pki.revoked, mode="soft-fail", fallback=("ocsp",))
    assert not again["accepted"]
    assert (again["revocation"]["status"], again["revocation"]["source"]) == ("revoked", "cache")
    assert again["revocation"]["revocation_reason"] == "keyCompromise"
    assert "revoked from cache" in again["error"]
    assert pki.responder.requests == before + 1


def test_a_crl_fetched_by_one_process_serves_another(
    workers: list[Worker], pki: PKI, shared: Shared
) -> None:
    first, second, _ = workers
    before = pki.crl_server.requests
    fetched = ask(first, pki, shared, pki.crl_revoked, fallback=("crl",))
    assert (fetched["revocation"]["status"], fetched["revocation"]["source"]) == ("revoked", "crl")
    assert pki.crl_server.requests == before + 1
    stored = shared.store.get(crl_key(pki.crl_server.url("/issuer.crl")), now=NOW)
    assert isinstance(stored, Entry)
    read = ask(second, pki, shared, pki.crl_revoked, fallback=("crl",))
    assert not read["accepted"]
    assert (read["revocation"]["status"], read["revocation"]["source"]) == ("revoked", "cache")
    assert pki.crl_server.requests == before + 1


def test_failure_marks_are_not_shared(workers: list[Worker], pki: PKI, shared: Shared) -> None:
    """A failure mark is the checker's own, in process memory: another process asks the
    failing responder again (a mark in a shared store could not be verified, and would
    switch the check off for every reader)."""
    first, second, _ = workers
    before = pki.flaky.requests
    failed = ask(first, pki, shared, pki.down, fallback=("ocsp",))
    assert not failed["accepted"]
    assert failed["revocation"]["source"] is None
    assert attempts(failed) == [("ocsp", pki.flaky.url, "invalid")]
    assert "tryLater" in failed["revocation"]["attempts"][0]["reason"]
    assert pki.flaky.requests == before + 1
    again = ask(second, pki, shared, pki.down, fallback=("ocsp",), mode="soft-fail")
    assert attempts(again) == [("ocsp", pki.flaky.url, "invalid")]
    assert "skipped" not in again["counts"]
    assert pki.flaky.requests == before + 2


@pytest.mark.parametrize("mode", ["soft-fail", "hard-fail"])
@pytest.mark.parametrize(
    ("site_name", "failing", "working"),
    [("ocsp_works", "crl", "ocsp"), ("crl_works", "ocsp", "crl")],
    ids=["crl-failed-ocsp-asked", "ocsp-failed-crl-asked"],
)
def test_a_failure_of_one_source_does_not_skip_another(
    workers: list[Worker],
    pki: PKI,
    shared: Shared,
    site_name: str,
    failing: str,
    working: str,
    mode: str,
) -> None:
    """One process's only source failed (its policy asks only that one); another
    process whose policy asks the other source, which works, still asks it and gets
    the answer: a failure mark is about the source that failed, not the certificate."""
    site: Site = getattr(pki, site_name)
    first, second, _ = workers
    failed = ask(first, pki, shared, site, mode=mode, fallback=(failing,))
    assert failed["revocation"]["source"] is None
    assert [a["outcome"] for a in failed["revocation"]["attempts"]] in (["failed"], ["invalid"])
    answer = ask(second, pki, shared, site, mode=mode, fallback=(working,))
    assert not answer["accepted"], answer
    assert (answer["revocation"]["status"], answer["revocation"]["source"]) == ("revoked", working)


def test_a_distribution_point_that_failed_is_fetched_again_by_another_process(
    workers: list[Worker], pki: PKI, shared: Shared
) -> None:
    """The ocsp_works leaf's distribution point answers 404: one process fetches it and
    marks it for itself; another process, with its own marks, fetches it again."""
    first, second, _ = workers
    url = pki.crl_server.url("/missing.crl")
    before = pki.crl_server.requests
    failed = ask(first, pki, shared, pki.ocsp_works, fallback=("crl",))
    assert attempts(failed) == [("crl", url, "failed")]
    assert pki.crl_server.requests == before + 1
    again = ask(second, pki, shared, pki.ocsp_works, fallback=("crl",))
    assert attempts(again) == [("crl", url, "failed")]
    assert pki.crl_server.requests == before + 2


def test_a_failure_mark_on_a_crl_url_does_not_hide_the_stored_crl(
    workers: list[Worker], pki: PKI, shared: Shared
) -> None:
    """A mark holds back fetching, not reading: a current CRL in the store still answers."""
    first, second, _ = workers
    url = pki.crl_server.url("/issuer.crl")
    fetched = ask(first, pki, shared, pki.crl_revoked, fallback=("crl",))
    assert fetched["revocation"]["source"] == "crl"
    until = NOW + 20 * SECOND
    assert shared.store.mark_failure(crl_key(url), now=NOW, until=until, reason="x") is None
    read = ask(second, pki, shared, pki.crl_revoked, fallback=("crl",))
    assert (read["revocation"]["status"], read["revocation"]["source"]) == ("revoked", "cache")


def test_cold_processes_at_once_each_query_or_hit(
    workers: list[Worker], pki: PKI, shared: Shared
) -> None:
    """Single-flight is per process: three processes missing at the same moment may
    each ask (the store has no lock for queries). Every one that did not ask read an
    answer another had stored; the responder saw exactly the ones that asked."""
    before = pki.responder.requests
    for worker in workers:
        worker.send(**command(pki, shared, pki.good))
    answers = [worker.receive() for worker in workers]
    sources = [answer["revocation"]["source"] for answer in answers]
    assert all(answer["accepted"] for answer in answers), answers
    assert set(sources) <= {"ocsp", "cache"}
    assert "ocsp" in sources
    assert pki.responder.requests == before + sources.count("ocsp")


# --- a hostile writer ---------------------------------------------------------------------


def _stale(pki: PKI) -> bytes:
    return pki.issuer.ocsp_response(
        pki.revoked.leaf, "good", this_update=NOW - 20 * DAY, next_update=NOW - 19 * DAY
    )


def _wrong_signer(pki: PKI) -> bytes:
    impostor = CA(name="staplecheck test intermediate", now=NOW)  # same name, other key
    return make_ocsp_response(impostor, pki.revoked.leaf.cert, "good")


def _other_certificate(pki: PKI) -> bytes:
    return pki.issuer.ocsp_response(pki.good.leaf, "good")  # genuine, about another leaf


def _unauthorized_delegate(pki: PKI) -> bytes:
    no_eku = pki.issuer.issue_responder(ocsp_signing=False)
    return pki.issuer.ocsp_response(pki.revoked.leaf, "good", responder=no_eku)


def _foreign_responder(pki: PKI) -> bytes:
    elsewhere = pki.root.create_intermediate(name="another intermediate").issue_responder()
    return pki.issuer.ocsp_response(pki.revoked.leaf, "good", responder=elsewhere)


def _sibling_leaf_signs(pki: PKI) -> bytes:
    return pki.issuer.ocsp_response(pki.revoked.leaf, "good", responder=pki.good.leaf)


def _garbage(pki: PKI) -> bytes:
    return b"\x30\x82\x01\x00" + os.urandom(256)


def _good_with_bad_signature(pki: PKI) -> bytes:
    return pki.issuer.ocsp_response(pki.revoked.leaf, "good", corrupt_signature=True)


def _empty(pki: PKI) -> bytes:
    return b""


FORGERIES: dict[str, Callable[[PKI], bytes]] = {
    "wrong-signer": _wrong_signer,
    "other-certificate": _other_certificate,
    "stale": _stale,
    "unauthorized-delegate": _unauthorized_delegate,
    "foreign-responder": _foreign_responder,
    "leaf-signs": _sibling_leaf_signs,
    "bad-signature": _good_with_bad_signature,
    "garbage": _garbage,
    "empty": _empty,
}


def _live_revoked(answer: dict[str, Any], pki: PKI) -> None:
    """The reader refused what it read, asked the responder, and refused the leaf."""
    assert not answer["accepted"], answer
    result = answer["revocation"]
    assert (result["status"], result["source"]) == ("revoked", "ocsp"), result
    assert attempts(answer)[-1] == ("ocsp", pki.responder.url, "revoked")


@pytest.mark.parametrize("forgery", list(FORGERIES))
@pytest.mark.parametrize("mode", ["soft-fail", "hard-fail"])
def test_a_forged_entry_changes_no_verdict(
    workers: list[Worker], pki: PKI, shared: Shared, forgery: str, mode: str
) -> None:
    der = FORGERIES[forgery](pki)
    assert shared.store.put(pki.revoked.key, der, now=NOW, expires_at=NOW + 30 * DAY) is None
    before = pki.responder.requests
    answer = ask(workers[0], pki, shared, pki.revoked, mode=mode, fallback=("ocsp",))
    _live_revoked(answer, pki)
    cache, _live = answer["revocation"]["attempts"]
    assert cache["source"] == "cache"
    assert cache["outcome"] in ("invalid", "stale"), cache
    assert cache["reason"].startswith("a stored response was refused"), cache
    assert answer["counts"].get("cache_rejected") == 1
    assert pki.responder.requests == before + 1  # the forgery cost one live query
    # The live answer replaced the forgery: the next process reads the truth.
    healed = ask(workers[1], pki, shared, pki.revoked, mode=mode, fallback=("ocsp",))
    assert (healed["revocation"]["status"], healed["revocation"]["source"]) == ("revoked", "cache")
    assert pki.responder.requests == before + 1


def test_entries_swapped_between_two_certificates(
    workers: list[Worker], pki: PKI, shared: Shared
) -> None:
    """Each leaf's genuine, current answer under the other's key: neither is used,
    neither verdict changes (good stays good, revoked stays revoked)."""
    good_der = pki.issuer.ocsp_response(pki.good.leaf, "good")
    revoked_der = pki.issuer.ocsp_response(
        pki.revoked.leaf, "revoked", revocation_reason="keyCompromise"
    )
    later = NOW + 30 * DAY
    assert shared.store.put(pki.revoked.key, good_der, now=NOW, expires_at=later) is None
    assert shared.store.put(pki.good.key, revoked_der, now=NOW, expires_at=later) is None
    before = pki.responder.requests
    workers[0].send(**command(pki, shared, pki.revoked))
    workers[1].send(**command(pki, shared, pki.good))
    revoked, good = workers[0].receive(), workers[1].receive()
    _live_revoked(revoked, pki)
    assert good["accepted"]
    assert (good["revocation"]["status"], good["revocation"]["source"]) == ("good", "ocsp")
    for answer in (revoked, good):
        cache = answer["revocation"]["attempts"][0]
        assert (cache["source"], cache["outcome"]) == ("cache", "invalid")
        assert "no entry" in cache["reason"] or "CertID" in cache["reason"], cache
    assert pki.responder.requests == before + 2


def test_a_huge_value_is_not_read(workers: list[Worker], pki: PKI, shared: Shared) -> None:
    """A value past the readers' cap, written past the Store API (which refuses it):
    a miss, read no further than the cap, then one live query."""
    size = DEFAULT_MAX_VALUE_BYTES + 1
    genuine_start = pki.issuer.ocsp_response(pki.revoked.leaf, "good")
    value = genuine_start + bytes(size - len(genuine_start))
    if shared.backend == "sqlite":
        assert shared.path is not None
        with sqlite3.connect(shared.path, timeout=10) as db:
            db.execute(
                "INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?)",
                (pki.revoked.key, value, to_micros(NOW), to_micros(NOW + DAY)),
            )
    else:
        import redis

        assert shared.port is not None
        client = redis.Redis(host="127.0.0.1", port=shared.port, socket_timeout=5)
        header = struct.pack(">4sqq", b"scE1", to_micros(NOW), to_micros(NOW + DAY))
        client.set(pki.revoked.key, header + value)
        client.close()
    before = pki.responder.requests
    answer = ask(workers[0], pki, shared, pki.revoked)
    _live_revoked(answer, pki)
    assert answer["counts"].get("store_miss") == 1
    assert attempts(answer) == [("ocsp", pki.responder.url, "revoked")]
    assert pki.responder.requests == before + 1


@pytest.mark.parametrize("forgery", ["other-issuer", "forged-signature", "stale", "garbage"])
def test_a_forged_crl_changes_no_verdict(
    workers: list[Worker], pki: PKI, shared: Shared, forgery: str
) -> None:
    """Under the CRL's key: another issuer's CRL (current, not listing the leaf), one
    in the issuer's name signed by another key, an old genuine one from before the
    revocation that has run out, and garbage. The reader fetches the real CRL."""
    other = pki.root.create_intermediate(name="another intermediate")
    der = {
        "other-issuer": lambda: other.crl([], this_update=NOW - HOUR),
        "forged-signature": lambda: pki.issuer.crl([], this_update=NOW - HOUR, signer=other),
        "stale": lambda: pki.issuer.crl([], this_update=NOW - 3 * DAY, next_update=NOW - 2 * DAY),
        "garbage": lambda: b"\x30\x82\x00\x10" + os.urandom(16),
    }[forgery]()
    url = pki.crl_server.url("/issuer.crl")
    assert shared.store.put(crl_key(url), der, now=NOW, expires_at=NOW + 30 * DAY) is None
    before = pki.crl_server.requests
    answer = ask(workers[2], pki, shared, pki.crl_revoked, fallback=("crl",))
    assert not answer["accepted"]
    result = answer["revocation"]
    assert (result["status"], result["source"]) == ("revoked", "crl"), result
    assert attempts(answer) == [("cache", url, "invalid"), ("crl", url, "revoked")]
    assert result["attempts"][0]["reason"].startswith("a stored CRL was refused")
    assert pki.crl_server.requests == before + 1


@pytest.mark.parametrize("mode", ["soft-fail", "hard-fail"])
def test_a_failure_mark_far_in_the_future_never_makes_good(
    workers: list[Worker], pki: PKI, shared: Shared, mode: str
) -> None:
    """A mark until the year 2126 on a revoked leaf's key. Whether the reader honours
    it (no answer: soft-fail goes on, hard-fail refuses) or ignores it (the live
    answer: revoked), the verdict is never good, and hard-fail never goes on."""
    until = NOW + 36500 * DAY
    assert shared.store.mark_failure(pki.revoked.key, now=NOW, until=until, reason="x") is None
    answer = ask(workers[0], pki, shared, pki.revoked, mode=mode, fallback=("ocsp",))
    result = answer["revocation"]
    assert result["status"] in ("missing", "revoked"), result
    if mode == "hard-fail":
        assert not answer["accepted"]
    if result["status"] == "missing":  # honoured: the check is skipped, not answered
        assert result["source"] is None
        assert answer["accepted"] is (mode == "soft-fail")
        assert [a["outcome"] for a in result["attempts"]] == ["skipped"]
    else:
        _live_revoked(answer, pki)


# --- what a writer can do --------------------------------------------------------------


@pytest.mark.parametrize("mode", ["soft-fail", "hard-fail"])
def test_a_writer_cannot_switch_a_check_off_with_failure_marks(
    workers: list[Worker], pki: PKI, shared: Shared, mode: str
) -> None:
    """A failure mark cannot be verified, so readers never read one from the store: a
    mark within the readers' own failure_ttl (30 s) on a revoked leaf's key changes
    nothing, the responder is asked and says revoked, under soft-fail too."""
    assert (
        shared.store.mark_failure(pki.revoked.key, now=NOW, until=NOW + 20 * SECOND, reason="x")
        is None
    )
    before = pki.responder.requests
    answer = ask(workers[0], pki, shared, pki.revoked, mode=mode, fallback=("ocsp",))
    assert not answer["accepted"]
    _live_revoked(answer, pki)
    assert pki.responder.requests == before + 1


@pytest.mark.parametrize("nonce", [False, True], ids=["no-nonce", "nonce"])
def test_a_writer_can_replay_a_genuine_answer_until_it_runs_out(
    workers: list[Worker], pki: PKI, shared: Shared, nonce: bool
) -> None:
    """A good response the issuer signed before the revocation (thisUpdate two days
    ago, nextUpdate tomorrow) is a genuine, current answer: a reader accepts it from
    the store, exactly as it would accept it stapled by the server or replayed on the
    network, with or without ``ocsp_nonce`` (a stored response carries no proof of when
    it was fetched). Once past its nextUpdate (+ skew) it is stale, and the responder
    is asked."""
    replay = pki.issuer.ocsp_response(
        pki.revoked.leaf, "good", this_update=NOW - 2 * DAY, next_update=NOW + DAY
    )
    assert shared.store.put(pki.revoked.key, replay, now=NOW, expires_at=NOW + 30 * DAY) is None
    before = pki.responder.requests
    replayed = ask(workers[0], pki, shared, pki.revoked, nonce=nonce)
    assert replayed["accepted"]
    assert (replayed["revocation"]["status"], replayed["revocation"]["source"]) == ("good", "cache")
    assert pki.responder.requests == before
    after = ask(workers[1], pki, shared, pki.revoked, now=NOW + DAY + 10 * MINUTE, nonce=nonce)
    _live_revoked(after, pki)
    assert after["revocation"]["attempts"][0]["outcome"] == "stale"
    assert pki.responder.requests == before + 1


def test_a_writer_can_replay_a_crl_from_before_the_revocation(
    workers: list[Worker], pki: PKI, shared: Shared
) -> None:
    """The issuer's CRL of yesterday, not yet listing the leaf and current until
    tomorrow, written under the distribution point's key: readers say good from it
    until its nextUpdate, then fetch the CRL that lists the leaf."""
    old = pki.issuer.crl([], this_update=NOW - DAY, next_update=NOW + DAY)
    url = pki.crl_server.url("/issuer.crl")
    assert shared.store.put(crl_key(url), old, now=NOW, expires_at=NOW + 30 * DAY) is None
    before = pki.crl_server.requests
    replayed = ask(workers[0], pki, shared, pki.crl_revoked, fallback=("crl",))
    assert replayed["accepted"]
    assert (replayed["revocation"]["status"], replayed["revocation"]["source"]) == ("good", "cache")
    assert pki.crl_server.requests == before
    after = ask(workers[1], pki, shared, pki.crl_revoked, fallback=("crl",), now=NOW + DAY + HOUR)
    assert not after["accepted"]
    assert (after["revocation"]["status"], after["revocation"]["source"]) == ("revoked", "crl")
    assert pki.crl_server.requests == before + 1
