"""The revocation engine's speed-ups (benchmarks/bench_revocation.py) change no answer.

Each optimization has its tests here: the same verdicts and queries with it as the
unoptimized path gives, against the project's real OCSP responder on loopback, and,
for memos, that two inputs differing in anything the memoized value depends on never
share an entry. Time is fixed (``NOW``); the responder signs with the same clock.
"""

from __future__ import annotations

import dataclasses
import datetime
import socket
import threading
import time
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import serialization

from staplecheck import Policy, ResponderOverride
from staplecheck.revocation import RevocationChecker
from staplecheck.revocation._engine import PLAN_MEMO_SIZE
from staplecheck.revocation._fetch import _open, _resolves_at_once, fetch_first
from staplecheck.revocation._ocsp import build_request, judge_fetched
from staplecheck.revocation._plan import make_plan
from staplecheck.revocation.stores import MemoryStore
from staplecheck.testing import CA, Identity, OCSPResponder
from staplecheck.validation._result import StapleResult, StapleStatus
from staplecheck.validation._validate import (
    DEFAULT_CLOCK_SKEW,
    DEFAULT_LIFETIME,
    DEFAULT_MAX_AGE,
    CertPair,
)

NOW = datetime.datetime(2026, 11, 21, 12, tzinfo=datetime.timezone.utc)
OCSP = Policy(fallback=("ocsp",))
MISSING = StapleResult(status=StapleStatus.MISSING, reason="the server sent no staple")
DER = serialization.Encoding.DER
Judge = Callable[[bytes], StapleResult]


def der(identity: Identity | CA) -> bytes:
    return identity.cert.public_bytes(DER)


def chain_of(leaf: Identity, issuer: CA) -> list[bytes]:
    return [der(leaf), der(issuer), der(issuer.root)]


@pytest.fixture(scope="module")
def issuer() -> CA:
    return CA(now=NOW).create_intermediate()


def checker() -> RevocationChecker:
    return RevocationChecker(MemoryStore(), clock=lambda: NOW)


# --- make_plan memo ---------------------------------------------------------------------------


def test_memoized_plan_is_the_plan_make_plan_makes(issuer: CA) -> None:
    with OCSPResponder(issuer, clock=lambda: NOW) as responder:
        leaf = issuer.issue_cert("memo.example", ocsp_url=responder.url)
        responder.set_status(leaf, "revoked")
        engine = checker()
        first = engine.check(chain_of(leaf, issuer), OCSP, MISSING)
        second = engine.check(chain_of(leaf, issuer), OCSP, MISSING)
        assert (first.status, first.source) == (StapleStatus.REVOKED, "ocsp")
        assert (second.status, second.source) == (StapleStatus.REVOKED, "cache")
        assert first.subject == second.subject
        assert "memo.example" in (first.subject or "")
        assert not first.accepted
        assert not second.accepted
        assert responder.requests == 1
    (memo,) = engine._plans._data.values()
    fresh = make_plan(CertPair(der(leaf), der(issuer)), OCSP)
    plan = memo[0]
    assert plan.ocsp_urls == fresh.ocsp_urls == (responder.url,)
    assert plan.ocsp_key == fresh.ocsp_key
    assert plan.request.der == fresh.request.der
    assert (plan.crl_urls, plan.skipped) == (fresh.crl_urls, fresh.skipped)


def test_two_leaves_of_one_issuer_never_share_a_plan(issuer: CA) -> None:
    """Same issuer, same names, different responders in the AIA: each leaf's own
    responder is asked, and its own answer given."""
    with (
        OCSPResponder(issuer, clock=lambda: NOW) as one,
        OCSPResponder(issuer, clock=lambda: NOW) as two,
    ):
        good = issuer.issue_cert("same.example", ocsp_url=one.url)
        revoked = issuer.issue_cert("same.example", ocsp_url=two.url)
        one.set_status(good, "good")
        two.set_status(revoked, "revoked")
        engine = checker()
        for _ in range(2):
            assert engine.check(chain_of(good, issuer), OCSP, MISSING).accepted
            assert not engine.check(chain_of(revoked, issuer), OCSP, MISSING).accepted
        assert (one.requests, two.requests) == (1, 1)
        assert len(engine._plans) == 2


def test_the_same_leaf_under_another_issuer_gets_its_own_plan(issuer: CA) -> None:
    """The CertID (and the store key) depends on the issuer: a leaf's DER with another
    issuer's DER is another plan, never the first one's."""
    other = CA(now=NOW).create_intermediate(name="another intermediate")
    leaf = issuer.issue_cert("leaf.example", ocsp_url="http://127.0.0.1:1/")
    engine = checker()
    policy = dataclasses.replace(OCSP, fallback_timeout=0.5)
    engine.check(chain_of(leaf, issuer), policy, MISSING)
    engine.check([der(leaf), der(other), der(other.root)], policy, MISSING)
    keys = {plan.ocsp_key for plan, _ in engine._plans._data.values()}
    assert len(keys) == 2


def test_policies_that_differ_never_share_a_plan(issuer: CA) -> None:
    """A designated responder in one policy, the AIA in the other: the same
    certificates get each policy's own responders."""
    with (
        OCSPResponder(issuer, clock=lambda: NOW) as aia,
        OCSPResponder(issuer, clock=lambda: NOW) as designated,
    ):
        leaf = issuer.issue_cert("policies.example", ocsp_url=aia.url)
        aia.set_status(leaf, "good")
        designated.set_status(leaf, "revoked")
        overridden = dataclasses.replace(OCSP, responders=(ResponderOverride(designated.url),))
        by_aia = RevocationChecker(MemoryStore(), clock=lambda: NOW)
        by_override = RevocationChecker(MemoryStore(), clock=lambda: NOW)
        shared = RevocationChecker(MemoryStore(), clock=lambda: NOW)
        # The shared checker sees both policies; its store is cleared between them so
        # that only the plan memo could carry one policy's responders to the other.
        assert shared.check(chain_of(leaf, issuer), OCSP, MISSING).accepted
        shared.store.clear()
        refused = shared.check(chain_of(leaf, issuer), overridden, MISSING)
        assert not refused.accepted
        assert refused.attempts[-1].url == designated.url
        shared.store.clear()
        again = shared.check(chain_of(leaf, issuer), OCSP, MISSING)
        assert again.accepted
        assert again.attempts[-1].url == aia.url
        assert len(shared._plans) == 2
        # The same answers as checkers that saw one policy each.
        assert by_aia.check(chain_of(leaf, issuer), OCSP, MISSING).accepted
        assert not by_override.check(chain_of(leaf, issuer), overridden, MISSING).accepted


def test_https_permission_is_part_of_the_plan_key(issuer: CA) -> None:
    leaf = issuer.issue_cert("https.example", ocsp_url="https://127.0.0.1:1/")
    engine = checker()
    strict = dataclasses.replace(OCSP, fallback_timeout=0.5)
    allowing = dataclasses.replace(strict, allow_https_fetch=True)
    refused = engine.check(chain_of(leaf, issuer), strict, MISSING)
    assert [a.outcome for a in refused.attempts] == ["skipped"]
    engine.store.clear()
    tried = engine.check(chain_of(leaf, issuer), allowing, MISSING)
    assert "failed" in [a.outcome for a in tried.attempts]
    assert len(engine._plans) == 2


def test_plan_memo_is_bounded(issuer: CA) -> None:
    """Leaves naming no responder: planned, nothing fetched."""
    engine = checker()
    leaves = [issuer.issue_cert(f"n{i}.example") for i in range(PLAN_MEMO_SIZE + 20)]
    for leaf in leaves:
        result = engine.check(chain_of(leaf, issuer), OCSP, MISSING)
        assert result.source is None
    assert len(engine._plans) == PLAN_MEMO_SIZE


def test_unreadable_certificate_is_not_memoized(issuer: CA) -> None:
    """A leaf whose DER cannot be read for a CertID answers as before, every time."""
    engine = checker()
    chain = [b"\x30\x03\x02\x01\x01", der(issuer), der(issuer.root)]
    for _ in range(2):
        result = engine.check(chain, OCSP, MISSING)
        assert result.status is StapleStatus.MISSING
        assert "cannot be asked about" in result.reason
    assert len(engine._plans) == 0


# --- fetch_first: one responder named by an address is asked in the calling thread ----------

MARGIN = 0.35  # seconds a deadline may overrun on a loaded 2-core machine


def judging_thread(certs: CertPair, threads: list[threading.Thread]) -> Judge:
    def judge(der: bytes) -> StapleResult:
        threads.append(threading.current_thread())
        return judge_fetched(
            der,
            certs,
            nonce=None,
            now=NOW,
            clock_skew=DEFAULT_CLOCK_SKEW,
            default_lifetime=DEFAULT_LIFETIME,
            max_age=DEFAULT_MAX_AGE,
            allow_sha1=True,
            cache=None,
        )

    return judge


@pytest.fixture(scope="module")
def pair(issuer: CA) -> tuple[Identity, CertPair]:
    leaf = issuer.issue_cert("localhost")
    return leaf, CertPair(der(leaf), der(issuer))


@pytest.mark.parametrize("status", ["good", "revoked", "unknown"])
def test_one_address_is_asked_in_the_calling_thread_with_the_same_answer(
    issuer: CA, pair: tuple[Identity, CertPair], status: str
) -> None:
    """127.0.0.1 in the calling thread; the same responder as ``localhost`` (a name,
    resolved: a worker thread as before). Both give the same verdict and attempt."""
    leaf, certs = pair
    request = build_request(certs).der
    with OCSPResponder(issuer, clock=lambda: NOW) as responder:
        responder.set_status(leaf, status)
        by_name = responder.url.replace("127.0.0.1", "localhost")
        answers = {}
        for url in (responder.url, by_name):
            threads: list[threading.Thread] = []
            answers[url] = fetch_first(
                [url], request, judging_thread(certs, threads), deadline=time.monotonic() + 5
            )
            assert len(threads) == 1
            assert (threads[0] is threading.current_thread()) == (url == responder.url)
        assert responder.requests == 2
    inline, threaded = answers[responder.url], answers[by_name]
    for answer, url in ((inline, responder.url), (threaded, by_name)):
        assert answer.result is not None
        assert answer.result.status.value == status
        assert answer.url == url
        assert answer.der is not None
        assert [(a.url, a.outcome) for a in answer.attempts] == [(url, status)]
    assert inline.result is not None
    assert threaded.result is not None
    assert inline.result.reason == threaded.result.reason


@pytest.mark.parametrize(("mode", "outcome"), [("forged", "invalid"), ("garbage", "invalid")])
def test_one_address_with_a_bad_answer_gives_no_result(
    issuer: CA, pair: tuple[Identity, CertPair], mode: str, outcome: str
) -> None:
    _leaf, certs = pair
    with OCSPResponder(issuer, clock=lambda: NOW) as responder:
        responder.misbehave(mode)
        answer = fetch_first(
            [responder.url], build_request(certs).der, judging_thread(certs, []),
            deadline=time.monotonic() + 5,
        )  # fmt: skip
    assert answer.result is None
    assert answer.der is None
    assert [a.outcome for a in answer.attempts] == [outcome]


def test_one_address_refusing_connections_fails_as_before(
    pair: tuple[Identity, CertPair],
) -> None:
    _leaf, certs = pair
    with socket.socket() as bound:  # bound, never listening: refused
        bound.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{bound.getsockname()[1]}/"
        answer = fetch_first(
            [url], build_request(certs).der, judging_thread(certs, []),
            deadline=time.monotonic() + 5,
        )  # fmt: skip
    assert answer.result is None
    assert [(a.outcome, a.reason) for a in answer.attempts] == [("failed", "connection refused")]


@pytest.mark.parametrize("mode", ["slow", "drip"])
def test_one_address_still_returns_at_the_deadline(
    issuer: CA, pair: tuple[Identity, CertPair], mode: str
) -> None:
    """In the calling thread, every receive is bounded by the deadline: a responder
    that never answers, or drips, ends it on time, reported as a timeout as before."""
    _leaf, certs = pair
    with OCSPResponder(issuer, clock=lambda: NOW) as responder:
        responder.misbehave(mode, **({"delay": 30} if mode == "slow" else {"interval": 0.05}))
        started = time.monotonic()
        answer = fetch_first(
            [responder.url], build_request(certs).der, judging_thread(certs, []),
            deadline=started + 0.5,
        )  # fmt: skip
        elapsed = time.monotonic() - started
    assert answer.result is None
    assert 0.5 <= elapsed < 0.5 + MARGIN
    assert [a.outcome for a in answer.attempts] == ["timeout"]


def test_a_judge_that_raises_in_the_calling_thread_is_no_evidence(
    issuer: CA, pair: tuple[Identity, CertPair]
) -> None:
    leaf, certs = pair

    def broken(der: bytes) -> StapleResult:
        raise RuntimeError("boom")

    with OCSPResponder(issuer, clock=lambda: NOW) as responder:
        responder.set_status(leaf, "good")
        answer = fetch_first(
            [responder.url], build_request(certs).der, broken, deadline=time.monotonic() + 5
        )
    assert answer.result is None
    assert answer.attempts[0].outcome == "invalid"
    assert "boom" in answer.attempts[0].reason


@pytest.mark.parametrize(
    ("url", "at_once"),
    [
        ("http://127.0.0.1:8080/", True),
        ("http://[::1]/ocsp", True),
        ("http://10.0.0.7/", True),
        ("http://localhost:8080/", False),
        ("http://ocsp.example/", False),
        ("http://127.0.0.1.example/", False),
        ("http://[::1/", False),
        ("http:///", False),
    ],
)
def test_only_address_literals_skip_the_worker_thread(url: str, at_once: bool) -> None:
    """A name may need a resolver, which no deadline interrupts: those keep the
    worker thread, so fetch_first still returns at its deadline."""
    assert _resolves_at_once(url) is at_once


# --- the fetcher's sockets send at once --------------------------------------------------------


def test_fetcher_sockets_disable_nagle_as_http_client_does() -> None:
    """http.client writes a POST's headers and body separately; under Nagle's algorithm
    the body would wait for the headers' ACK, which servers may delay by 40-200 ms.
    http.client's own connect() turns Nagle off; the fetcher makes its own sockets and
    must too."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        sock = _open("127.0.0.1", port, time.monotonic() + 5, time.monotonic, None)
        try:
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        finally:
            sock.close()
