"""The revocation engine's speed-ups (benchmarks/bench_revocation.py) change no answer.

Each optimization has its tests here: the same verdicts and queries with it as the
unoptimized path gives, against the project's real OCSP responder on loopback, and,
for memos, that two inputs differing in anything the memoized value depends on never
share an entry. Time is fixed (``NOW``); the responder signs with the same clock.
"""

from __future__ import annotations

import dataclasses
import datetime

import pytest
from cryptography.hazmat.primitives import serialization

from staplecheck import Policy, ResponderOverride
from staplecheck.revocation import RevocationChecker
from staplecheck.revocation._engine import PLAN_MEMO_SIZE
from staplecheck.revocation._plan import make_plan
from staplecheck.revocation.stores import MemoryStore
from staplecheck.testing import CA, Identity, OCSPResponder
from staplecheck.validation._result import StapleResult, StapleStatus
from staplecheck.validation._validate import CertPair

NOW = datetime.datetime(2026, 11, 21, 12, tzinfo=datetime.timezone.utc)
OCSP = Policy(fallback=("ocsp",))
MISSING = StapleResult(status=StapleStatus.MISSING, reason="the server sent no staple")
DER = serialization.Encoding.DER


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
