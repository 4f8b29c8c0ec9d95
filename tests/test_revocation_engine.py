"""The revocation fallback end to end: real handshakes (TLS 1.2 and 1.3) through
pyOpenSSL, urllib3 and requests, against a real OCSP responder and CRL server on
loopback, for every row of docs/policies.md's tables (read by tests/test_policy.py's
parser, so the table and these tests cannot drift)."""

from __future__ import annotations

import collections
import dataclasses
import datetime
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from staplecheck import Mode, Policy, ResponderOverride, RevocationError, StapleStatus
from staplecheck.revocation.stores import MemoryStore
from staplecheck.testing import CA, CRLEntry, RawExtension
from tests.conftest import NOW
from tests.revocation_servers import (
    CLIENTS,
    LEAF_CRL,
    ROOT_CRL,
    STAPLES,
    TLS_VERSIONS,
    MovingClock,
    Outcome,
    RevocationPKI,
    connect,
    revocation_pki,
    stapling,
)
from tests.test_policy import FALLBACK_CASES, TABLE_CASES, _doc_table

DAY = datetime.timedelta(days=1)
FALLBACKS: tuple[tuple[str, ...], ...] = ((), ("ocsp",), ("crl",), ("ocsp", "crl"))
ANSWERS: tuple[str | None, ...] = ("good", "revoked", "unknown", None)

STAPLE_TABLE = {(status, must, mode): ok for status, must, mode, ok in TABLE_CASES}
FALLBACK_TABLE = {
    (status, must, answer, mode): ok for status, must, answer, mode, ok in FALLBACK_CASES
}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RevocationPKI]:
    with revocation_pki(str(tmp_path_factory.mktemp("revocation"))) as made:
        yield made


@pytest.fixture
def live(pki: RevocationPKI) -> Iterator[RevocationPKI]:
    """The module's PKI with every source behaving again, before and after the test."""
    pki.reset()
    yield pki
    pki.reset()


def _asked(mode: str, fallback: tuple[str, ...], staple: str, must: bool) -> bool:
    """Whether the table says the fallback can change the decision (it is asked)."""
    return (
        bool(fallback)
        and mode in ("soft-fail", "hard-fail")
        and staple in ("stale", "missing")
        and not must
    )


def _expected(
    mode: str, fallback: tuple[str, ...], staple: str, must: bool, answer: str | None
) -> bool:
    if not fallback:
        return STAPLE_TABLE[(staple, must, mode)]
    return FALLBACK_TABLE[(staple, must, answer, mode)]


def _matrix() -> list[object]:
    """Every mode × fallback × staple × leaf, with every answer a fallback can give
    where it is asked, and elsewhere the one answer that would flip the decision if it
    were wrongly consulted. Clients and TLS versions rotate over the cases."""
    cases: list[object] = []
    rotation: collections.Counter[tuple[bool, bool]] = collections.Counter()
    for mode in (m.value for m in Mode):
        for fallback in ((),) if mode == "off" else FALLBACKS:
            for staple in STAPLES:
                for must in (False, True):
                    if _asked(mode, fallback, staple, must):
                        answers = [
                            a for a in ANSWERS if not (a == "unknown" and fallback == ("crl",))
                        ]
                    else:
                        flip = "revoked" if STAPLE_TABLE[(staple, must, mode)] else "good"
                        answers = [flip]
                    for answer in answers:
                        # Rotated within each kind of row (asked or not, accepted or
                        # not), so every kind meets every client under each TLS version.
                        kind = (
                            _asked(mode, fallback, staple, must),
                            _expected(mode, fallback, staple, must, answer),
                        )
                        index = rotation[kind]
                        rotation[kind] += 1
                        client = CLIENTS[index % len(CLIENTS)]
                        tls = TLS_VERSIONS[(index // len(CLIENTS)) % len(TLS_VERSIONS)]
                        name = "+".join(fallback) or "none"
                        cases.append(
                            pytest.param(
                                mode,
                                fallback,
                                staple,
                                must,
                                answer,
                                client,
                                tls,
                                id=f"{mode}-{name}-{staple}-{'must' if must else 'plain'}"
                                f"-{answer or 'noanswer'}-{client}-tls{tls}",
                            )
                        )
    return cases


def _set_answer(pki: RevocationPKI, answer: str | None, *, crl_unknown: bool = False) -> None:
    """Make the live sources give ``answer`` for both leaves (``None``: no answer)."""
    for leaf in (pki.leaf, pki.must_staple_leaf):
        if answer is None:
            pki.responder.misbehave("try-later")
        else:
            pki.responder.set_status(
                leaf, answer, revocation_reason="keyCompromise" if answer == "revoked" else None
            )
    if answer is None:
        pki.crls.misbehave("not-found", path=LEAF_CRL)
    elif answer == "revoked":
        pki.crls.set_crl(
            LEAF_CRL,
            pki.intermediate.crl([pki.leaf, pki.must_staple_leaf], reason="keyCompromise"),
        )


def _source_url(pki: RevocationPKI, source: str) -> str:
    return pki.responder.url if source == "ocsp" else pki.crls.url(LEAF_CRL)


@pytest.mark.parametrize(
    ("mode", "fallback", "staple", "must", "answer", "client", "tls"), _matrix()
)
def test_every_policy_row_through_real_handshakes(
    live: RevocationPKI,
    mode: str,
    fallback: tuple[str, ...],
    staple: str,
    must: bool,
    answer: str | None,
    client: str,
    tls: str,
) -> None:
    pki = live
    _set_answer(pki, answer)
    leaf = pki.must_staple_leaf if must else pki.leaf
    policy = Policy(mode=Mode(mode), fallback=fallback)
    ocsp_before, crl_before = pki.responder.requests, pki.crls.requests
    with stapling(leaf, pki.staple(staple, leaf), tls) as server:
        outcome = connect(client, server, policy, pki.checker(), pki.trust)
    asked = _asked(mode, fallback, staple, must)
    assert outcome.accepted is _expected(mode, fallback, staple, must, answer)
    ocsp_asked = pki.responder.requests - ocsp_before
    crl_asked = pki.crls.requests - crl_before

    if mode == "off":
        assert outcome.staple is None
        assert outcome.revocation is None
        assert ocsp_asked == crl_asked == 0
        return
    assert outcome.staple is not None
    assert outcome.staple.status.value == staple
    if not asked:
        # The staple decides; the fallback is not even asked.
        assert ocsp_asked == crl_asked == 0
        if outcome.accepted:
            if fallback:
                assert outcome.revocation is not None
                assert outcome.revocation.source == "staple"
                assert outcome.revocation.status.value == staple
                assert outcome.revocation.attempts == ()
            else:
                assert outcome.revocation is None
        else:
            assert outcome.error is not None
            assert not isinstance(outcome.error, RevocationError)
            assert outcome.error.result.status.value == staple
        return

    result = outcome.revocation
    assert result is not None
    assert result.accepted is outcome.accepted
    if outcome.accepted:
        assert outcome.error is None
    else:
        assert isinstance(outcome.error, RevocationError)
        assert outcome.error.revocation == result
        assert outcome.error.result.status.value == staple
    if answer is None:
        assert result.status is StapleStatus.MISSING
        assert result.source is None
        assert result.reason.startswith("no source gave a definite answer")
        asked_sources = [a for a in result.attempts if a.outcome != "skipped"]
        assert [a.source for a in asked_sources] == list(fallback)
        for attempt in asked_sources:
            assert attempt.url == _source_url(pki, attempt.source)
            if attempt.source == "ocsp":
                assert attempt.outcome == "invalid"
                assert attempt.reason.startswith("the responder answered tryLater")
            else:
                assert attempt.outcome == "failed"
                assert "404" in attempt.reason
        return
    source = fallback[0] if answer != "unknown" else "ocsp"
    assert result.status.value == answer
    assert result.source == source
    assert result.serial_number == leaf.cert.serial_number
    assert [(a.source, a.url, a.outcome) for a in result.attempts] == [
        (source, _source_url(pki, source), answer)
    ]
    assert (ocsp_asked, crl_asked) == ((1, 0) if source == "ocsp" else (0, 1))
    if answer == "revoked":
        assert result.revocation_reason == "keyCompromise"
        assert result.revocation_time is not None
    if source == "ocsp":
        assert result.this_update == NOW
        assert result.next_update == NOW + DAY
        assert result.responder is not None
        assert "intermediate" in result.responder
    else:
        assert result.responder == "CRL from issuer CN=staplecheck test intermediate"


def test_the_matrix_runs_every_kind_of_row_on_every_client_and_tls_version() -> None:
    """The rotation is not luck: each client under each TLS version accepts and refuses
    on the staple alone and on a fallback answer."""
    seen = set()
    for case in _matrix():
        mode, fallback, staple, must, answer, client, tls = case.values  # type: ignore[attr-defined]
        asked = _asked(mode, fallback, staple, must)
        seen.add((client, tls, asked, _expected(mode, fallback, staple, must, answer)))
    assert seen == {
        (client, tls, asked, accepted)
        for client in CLIENTS
        for tls in TLS_VERSIONS
        for asked in (False, True)
        for accepted in (False, True)
    }


def _chain_cases() -> list[object]:
    header, rows = _doc_table("chain")
    cases = []
    for index, (label, *cells) in enumerate(rows):
        for column, (mode, cell) in enumerate(zip(header[1:], cells, strict=True)):
            client = CLIENTS[(index + column) % len(CLIENTS)]
            tls = TLS_VERSIONS[(index + column) % 2]
            cases.append(
                pytest.param(
                    label, mode, cell == "A", client, tls, id=f"{label}-{mode}-{client}-tls{tls}"
                )
            )
    return cases


@pytest.mark.parametrize(("answer", "mode", "accepted", "client", "tls"), _chain_cases())
def test_chain_table_through_real_handshakes(
    live: RevocationPKI, answer: str, mode: str, accepted: bool, client: str, tls: str
) -> None:
    """docs/policies.md's intermediates table: the leaf has a good staple, the
    intermediate gets the row's answer from the root's live responder."""
    pki = live
    serial = pki.intermediate.cert.serial_number
    if answer == "none":
        pki.root_responder.misbehave("garbage")
    else:
        pki.root_responder.set_status(serial, answer)
    policy = Policy(mode=Mode(mode), fallback=("ocsp",), check_chain=True)
    with stapling(pki.leaf, pki.staple("good"), tls) as server:
        result = connect(client, server, policy, pki.checker(), pki.trust)
    assert result.accepted is accepted
    assert result.revocation is not None
    assert (result.revocation.status, result.revocation.source) == (StapleStatus.GOOD, "staple")
    (inter,) = result.revocation.chain
    assert inter.accepted is accepted
    assert inter.serial_number == serial
    if answer == "none":
        assert (inter.status, inter.source) == (StapleStatus.MISSING, None)
        assert [(a.url, a.outcome) for a in inter.attempts] == [(pki.root_responder.url, "invalid")]
    else:
        assert (inter.status.value, inter.source) == (answer, "ocsp")
    if not accepted:
        assert isinstance(result.error, RevocationError)
        assert result.error.revocation == result.revocation


@pytest.mark.parametrize(("client", "tls"), [("urllib3", "1.3"), ("pyopenssl", "1.2")])
def test_crl_answers_when_ocsp_gives_none(live: RevocationPKI, client: str, tls: str) -> None:
    """fallback=("ocsp", "crl"): the sources are asked in order until one answers."""
    pki = live
    pki.responder.misbehave("forged")
    pki.crls.set_crl(LEAF_CRL, pki.intermediate.crl([pki.leaf], reason="privilegeWithdrawn"))
    policy = Policy(mode=Mode.SOFT_FAIL, fallback=("ocsp", "crl"))
    with stapling(pki.leaf, pki.staple("stale"), tls) as server:
        result = connect(client, server, policy, pki.checker(), pki.trust)
    assert not result.accepted
    assert result.revocation is not None
    assert (result.revocation.status, result.revocation.source) == (StapleStatus.REVOKED, "crl")
    assert result.revocation.revocation_reason == "privilegeWithdrawn"
    assert [(a.source, a.url, a.outcome) for a in result.revocation.attempts] == [
        ("ocsp", pki.responder.url, "invalid"),
        ("crl", pki.crls.url(LEAF_CRL), "revoked"),
    ]


@pytest.mark.parametrize("client", CLIENTS)
def test_a_nonce_is_sent_and_checked(live: RevocationPKI, client: str) -> None:
    pki = live
    policy = Policy(mode=Mode.HARD_FAIL, fallback=("ocsp",), ocsp_nonce=True)
    with stapling(pki.leaf, None) as server:
        result = connect(client, server, policy, pki.checker(), pki.trust)
    assert result.accepted
    assert result.revocation is not None
    assert (result.revocation.status, result.revocation.source) == (StapleStatus.GOOD, "ocsp")


# --- every way a responder gives no answer ---------------------------------------------

# (misbehaviour, its parameters, the policy's changes, the attempt's outcome, words the
# attempt's reason must contain)
NO_ANSWERS = [
    ("down", {}, {}, "failed", "refused"),
    ("slow", {"delay": 5.0}, {"fallback_timeout": 0.3}, "timeout", ""),
    ("garbage", {}, {}, "invalid", ""),
    ("try-later", {}, {}, "invalid", "tryLater"),
    ("forged", {}, {}, "invalid", "signature"),
    ("other-certificate", {}, {}, "invalid", ""),
    ("oversized", {}, {}, "failed", "bytes"),
    ("redirect", {}, {}, "failed", "redirects are not followed"),
    ("http-error", {}, {}, "failed", "500"),
    ("no-nonce", {}, {"ocsp_nonce": True}, "invalid", "RFC 8954"),
    ("wrong-nonce", {}, {"ocsp_nonce": True}, "invalid", "RFC 8954"),
    ("stale", {}, {}, "stale", ""),
]


@pytest.mark.parametrize(
    ("kind", "params", "changes", "outcome", "words", "mode", "client", "tls"),
    [
        pytest.param(
            *case,
            mode,
            CLIENTS[index % len(CLIENTS)],
            TLS_VERSIONS[index % 2],
            id=f"{case[0]}-{mode}-{CLIENTS[index % len(CLIENTS)]}-tls{TLS_VERSIONS[index % 2]}",
        )
        for index, (case, mode) in enumerate(
            (case, mode) for case in NO_ANSWERS for mode in ("soft-fail", "hard-fail")
        )
    ],
)
def test_no_answer_from_a_misbehaving_responder(
    live: RevocationPKI,
    kind: str,
    params: dict[str, object],
    changes: dict[str, object],
    outcome: str,
    words: str,
    mode: str,
    client: str,
    tls: str,
) -> None:
    """Whatever the responder does short of a definite, valid answer is no answer:
    soft-fail accepts, hard-fail refuses, and the attempt says what went wrong."""
    pki = live
    url = pki.responder.url
    closed = None
    if kind == "down":
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connection refused
        url = f"http://127.0.0.1:{closed.getsockname()[1]}/"
    elif kind == "stale":
        pki.responder_time = NOW - 3 * DAY
    else:
        pki.responder.misbehave(kind, **params)
    policy = Policy(
        mode=Mode(mode),
        fallback=("ocsp",),
        responders=(ResponderOverride(url),),
        **changes,  # type: ignore[arg-type]
    )
    before = pki.responder.requests
    try:
        with stapling(pki.leaf, None, tls) as server:
            started = time.monotonic()
            result = connect(client, server, policy, pki.checker(), pki.trust)
            elapsed = time.monotonic() - started
    finally:
        if closed is not None:
            closed.close()
    assert result.accepted is (mode == "soft-fail")
    verdict = result.revocation
    assert verdict is not None
    assert verdict.status is StapleStatus.MISSING
    assert verdict.source is None
    assert [(a.source, a.url, a.outcome) for a in verdict.attempts] == [("ocsp", url, outcome)]
    assert words in verdict.attempts[0].reason
    # One request, never a second (no redirect followed, no retry).
    assert pki.responder.requests - before == (0 if kind == "down" else 1)
    if mode == "hard-fail":
        assert isinstance(result.error, RevocationError)
        assert result.error.revocation == verdict
    if kind == "slow":
        assert elapsed < 2.0  # the budget, not the responder, decided
    if kind in ("no-nonce", "wrong-nonce"):
        # A nonce was sent; the same responder is fine when none is asked for.
        retry = dataclasses.replace(policy, ocsp_nonce=False)
        with stapling(pki.leaf, None, tls) as server:
            again = connect(client, server, retry, pki.checker(), pki.trust)
        assert again.accepted
        assert again.revocation is not None
        assert again.revocation.status is StapleStatus.GOOD


# --- CRLs --------------------------------------------------------------------------------


def _idp(*, indirect: bool = False, url: str | None = None) -> x509.IssuingDistributionPoint:
    return x509.IssuingDistributionPoint(
        full_name=[x509.UniformResourceIdentifier(url)] if url else None,
        relative_name=None,
        only_contains_user_certs=False,
        only_contains_ca_certs=False,
        only_some_reasons=None,
        indirect_crl=indirect,
        only_contains_attribute_certs=False,
    )


# (name, the CRL served for the leaf's issuer, the verdict's status, the attempt's
# outcome, words its reason must contain). Built from the module's PKI.
CRL_CASES: dict[str, tuple[Callable[[RevocationPKI], bytes], str, str, str]] = {
    "revoked": (
        lambda p: p.intermediate.crl(
            [CRLEntry(serial_number=p.leaf.cert.serial_number, reason="cessationOfOperation")]
        ),
        "revoked",
        "revoked",
        "cessationOfOperation",
    ),
    "good": (
        lambda p: p.intermediate.crl(
            [CRLEntry(serial_number=p.must_staple_leaf.cert.serial_number)]
        ),
        "good",
        "good",
        "not listed",
    ),
    "pem": (lambda p: p.intermediate.crl([p.leaf], pem=True), "revoked", "revoked", ""),
    "stale": (
        lambda p: p.intermediate.crl(this_update=NOW - 3 * DAY, next_update=NOW - 2 * DAY),
        "missing",
        "stale",
        "",
    ),
    "stale-but-revoked": (
        lambda p: p.intermediate.crl(
            [p.leaf], reason="keyCompromise", this_update=NOW - 3 * DAY, next_update=NOW - 2 * DAY
        ),
        "revoked",
        "revoked",
        "",
    ),
    "bad-signature": (
        lambda p: p.intermediate.crl(corrupt_signature=True),
        "missing",
        "invalid",
        "signature",
    ),
    "wrong-issuer": (lambda p: p.root.crl(), "missing", "invalid", "issuer"),
    "signed-by-another-key": (
        lambda p: p.intermediate.crl(signer=CA(name="staplecheck test intermediate", now=NOW)),
        "missing",
        "invalid",
        "signature",
    ),
    "delta": (
        lambda p: p.intermediate.crl(crl_number=2, delta_base=1),
        "missing",
        "invalid",
        "delta CRLs are not supported",
    ),
    "indirect": (
        lambda p: p.intermediate.crl(issuing_distribution_point=_idp(indirect=True)),
        "missing",
        "invalid",
        "indirect CRLs are not supported",
    ),
    "indirect-entry": (
        lambda p: p.intermediate.crl(
            [
                CRLEntry(
                    serial_number=p.leaf.cert.serial_number, certificate_issuer=p.root.cert.subject
                )
            ]
        ),
        "missing",
        "invalid",
        "indirect",
    ),
    "unknown-critical-extension": (
        lambda p: p.intermediate.crl(
            extensions=[RawExtension(oid="1.3.6.1.4.1.55555.1", critical=True)]
        ),
        "missing",
        "invalid",
        "critical",
    ),
    "future": (lambda p: p.intermediate.crl(this_update=NOW + DAY), "missing", "invalid", ""),
}


@pytest.mark.parametrize(
    ("name", "client", "tls"),
    [
        pytest.param(
            name,
            CLIENTS[i % len(CLIENTS)],
            TLS_VERSIONS[i % 2],
            id=f"{name}-{CLIENTS[i % len(CLIENTS)]}-tls{TLS_VERSIONS[i % 2]}",
        )
        for i, name in enumerate(CRL_CASES)
    ],
)
def test_crl_from_a_distribution_point(
    live: RevocationPKI, name: str, client: str, tls: str
) -> None:
    """hard-fail with CRLs alone: only a current, valid CRL of the leaf's issuer that does
    not list it lets the connection through; what is wrong with the others is named."""
    pki = live
    make, status, outcome, words = CRL_CASES[name]
    pki.crls.set_crl(LEAF_CRL, make(pki))
    policy = Policy(mode=Mode.HARD_FAIL, fallback=("crl",))
    with stapling(pki.leaf, None, tls) as server:
        result = connect(client, server, policy, pki.checker(), pki.trust)
    assert result.accepted is (status == "good")
    verdict = result.revocation
    assert verdict is not None
    assert verdict.status.value == status
    assert verdict.source == (None if status == "missing" else "crl")
    assert [(a.source, a.url, a.outcome) for a in verdict.attempts] == [
        ("crl", pki.crls.url(LEAF_CRL), outcome)
    ]
    assert words in verdict.attempts[0].reason
    if name == "revoked":
        assert verdict.revocation_reason == "cessationOfOperation"
        assert verdict.revocation_time == NOW - datetime.timedelta(hours=1)
    if status != "good":
        assert isinstance(result.error, RevocationError)


def test_an_oversized_crl_is_not_read(live: RevocationPKI) -> None:
    pki = live
    pki.crls.misbehave("oversized", path=LEAF_CRL)
    policy = Policy(mode=Mode.HARD_FAIL, fallback=("crl",))
    with stapling(pki.leaf, None) as server:
        result = connect("pyopenssl", server, policy, pki.checker(), pki.trust)
    assert not result.accepted
    assert result.revocation is not None
    (attempt,) = result.revocation.attempts
    assert attempt.outcome == "failed"
    assert "bytes" in attempt.reason


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize("tls", TLS_VERSIONS)
def test_static_crl_files_and_directories(live: RevocationPKI, tmp_path: Path, tls: str) -> None:
    """crl_files replaces the distribution points: a file, or a directory holding
    several CAs' CRLs (DER and PEM), of which only the issuer's counts."""
    pki = live
    served = pki.crls.requests
    directory = tmp_path / "crls"
    directory.mkdir()
    _write(directory / "root.crl", pki.root.crl([pki.leaf.cert.serial_number]))  # another CA's
    revoking = _write(
        directory / "intermediate.pem",
        pki.intermediate.crl([pki.leaf], reason="superseded", pem=True),
    )
    clean = _write(tmp_path / "clean.crl", pki.intermediate.crl())
    policy = Policy(mode=Mode.HARD_FAIL, fallback=("crl",), crl_files=(clean,))
    with stapling(pki.leaf, None, tls) as server:
        good = connect("pyopenssl", server, policy, pki.checker(), pki.trust)
        refused = connect(
            "requests",
            server,
            dataclasses.replace(policy, crl_files=(str(directory),)),
            pki.checker(),
            pki.trust,
        )
    assert good.accepted
    assert good.revocation is not None
    assert good.revocation.source == "crl"
    assert good.revocation.status is StapleStatus.GOOD
    assert [(a.url, a.outcome) for a in good.revocation.attempts] == [(clean, "good")]
    assert not refused.accepted
    assert refused.revocation is not None
    assert refused.revocation.status is StapleStatus.REVOKED
    assert refused.revocation.revocation_reason == "superseded"
    assert [(a.url, a.outcome) for a in refused.revocation.attempts] == [(revoking, "revoked")]
    assert pki.crls.requests == served  # the distribution point is not asked


# --- intermediates -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "client", "tls"),
    [("ocsp", "pyopenssl", "1.3"), ("crl", "urllib3", "1.2"), ("ocsp", "requests", "1.2")],
)
def test_a_revoked_intermediate_is_refused_despite_a_good_leaf_staple(
    live: RevocationPKI, source: str, client: str, tls: str
) -> None:
    pki = live
    if source == "ocsp":
        pki.root_responder.set_status(
            pki.intermediate.cert.serial_number, "revoked", revocation_reason="cACompromise"
        )
    else:
        pki.crls.set_crl(
            ROOT_CRL, pki.root.crl([pki.intermediate.cert.serial_number], reason="cACompromise")
        )
    policy = Policy(mode=Mode.SOFT_FAIL, fallback=(source,), check_chain=True)
    with stapling(pki.leaf, pki.staple("good"), tls) as server:
        result = connect(client, server, policy, pki.checker(), pki.trust)
        pki.reset()
        fine = connect(client, server, policy, pki.checker(), pki.trust)
    assert not result.accepted
    assert isinstance(result.error, RevocationError)
    verdict = result.revocation
    assert verdict is not None
    assert (verdict.status, verdict.source) == (StapleStatus.GOOD, "staple")
    (inter,) = verdict.chain
    assert inter.accepted is False
    assert (inter.status, inter.source) == (StapleStatus.REVOKED, source)
    assert inter.revocation_reason == "cACompromise"
    assert inter.serial_number == pki.intermediate.cert.serial_number
    assert "intermediate" in str(result.error)
    # The same chain with the intermediate in good standing passes.
    assert fine.accepted
    assert fine.revocation is not None
    (inter,) = fine.revocation.chain
    assert (inter.status, inter.source, inter.accepted) == (StapleStatus.GOOD, source, True)


# --- the cache ---------------------------------------------------------------------------


@pytest.mark.parametrize(("client", "tls"), [("pyopenssl", "1.3"), ("requests", "1.2")])
def test_a_good_staple_answers_later_connections_without_one(
    live: RevocationPKI, client: str, tls: str
) -> None:
    pki = live
    pki.responder.set_status(pki.leaf, "revoked")  # asking it would refuse
    checker = pki.checker()
    policy = Policy(mode=Mode.HARD_FAIL, fallback=("ocsp",))
    before = pki.responder.requests
    with stapling(pki.leaf, pki.staple("good"), tls) as stapled:
        first = connect(client, stapled, policy, checker, pki.trust)
    with stapling(pki.leaf, None, tls) as bare:
        later = connect(client, bare, policy, checker, pki.trust)
    assert first.accepted
    assert first.revocation is not None
    assert first.revocation.source == "staple"
    assert later.accepted
    assert later.revocation is not None
    assert (later.revocation.status, later.revocation.source) == (StapleStatus.GOOD, "cache")
    assert [(a.source, a.url, a.outcome) for a in later.revocation.attempts] == [
        ("cache", None, "good")
    ]
    assert later.revocation.next_update == NOW + DAY
    assert pki.responder.requests == before
    assert checker.counts["cache_hit"] == 1


def test_cached_answers_expire_at_next_update(live: RevocationPKI) -> None:
    pki = live
    clock = MovingClock()
    checker = pki.checker(clock=clock)
    policy = Policy(mode=Mode.HARD_FAIL, fallback=("ocsp",))
    sources = []
    with stapling(pki.leaf, None) as server:
        for when in (
            NOW,
            NOW + DAY - datetime.timedelta(minutes=1),
            NOW + DAY + policy.clock_skew + datetime.timedelta(seconds=1),
        ):
            clock.now = pki.responder_time = when
            result = connect("pyopenssl", server, policy, checker, pki.trust, clock=clock)
            assert result.accepted
            assert result.revocation is not None
            sources.append(result.revocation.source)
    # Fetched, then kept until its nextUpdate (+ the skew the judge allows), then fetched again.
    assert sources == ["ocsp", "cache", "ocsp"]
    assert [r.serial_number for r in pki.responder.history[-2:]] == [
        pki.leaf.cert.serial_number
    ] * 2


def test_a_failed_responder_is_not_asked_again_for_failure_ttl(live: RevocationPKI) -> None:
    pki = live
    pki.responder.misbehave("http-error")
    clock = MovingClock()
    ttl = datetime.timedelta(seconds=60)
    checker = pki.checker(clock=clock, failure_ttl=ttl)
    policy = Policy(mode=Mode.SOFT_FAIL, fallback=("ocsp",))
    before = pki.responder.requests
    outcomes = []
    with stapling(pki.leaf, None) as server:
        for when in (NOW, NOW + ttl - datetime.timedelta(seconds=1), NOW + ttl):
            clock.now = when
            result = connect("pyopenssl", server, policy, checker, pki.trust, clock=clock)
            assert result.accepted
            assert result.revocation is not None
            assert result.revocation.source is None
            outcomes.append([a.outcome for a in result.revocation.attempts])
    assert outcomes == [["failed"], ["skipped"], ["failed"]]
    assert pki.responder.requests - before == 2
    assert checker.counts["skipped"] == 1


def test_sixteen_concurrent_connections_make_one_query(live: RevocationPKI) -> None:
    pki = live
    checker = pki.checker()
    policy = Policy(mode=Mode.HARD_FAIL, fallback=("ocsp",), fallback_timeout=20.0)
    before = pki.responder.requests
    results: list[Outcome] = []
    pki.responder.pause()
    try:
        with stapling(pki.leaf, None) as server:

            def one() -> None:
                results.append(connect("pyopenssl", server, policy, checker, pki.trust, timeout=20))

            threads = [threading.Thread(target=one) for _ in range(16)]
            for thread in threads:
                thread.start()
            assert pki.responder.wait_for_requests(before + 1)
            deadline = time.monotonic() + 15
            while checker.counts.get("shared", 0) < 15 and time.monotonic() < deadline:
                time.sleep(0.005)  # the followers have no event of their own to await
            pki.responder.resume()
            for thread in threads:
                thread.join()
    finally:
        pki.responder.resume()
    assert len(results) == 16
    assert all(r.accepted for r in results)
    assert pki.responder.requests - before == 1
    assert checker.counts["shared"] == 15
    assert checker.counts["ocsp_query"] == 1
    shared = [r for r in results if r.revocation and r.revocation.attempts[0].outcome == "shared"]
    assert len(shared) == 15


# --- responder controls ------------------------------------------------------------------


def test_a_responder_override_replaces_the_aia_for_its_issuer(live: RevocationPKI) -> None:
    pki = live
    policy = Policy(mode=Mode.HARD_FAIL, fallback=("ocsp",))
    issuer_der = pki.intermediate.cert.public_bytes(Encoding.DER)
    root_der = pki.root.cert.public_bytes(Encoding.DER)
    with stapling(pki.leaf, None, "1.2") as server:
        from staplecheck.testing import OCSPResponder

        with OCSPResponder(pki.intermediate, clock=lambda: NOW) as designated:
            designated.set_status(pki.leaf, "revoked", revocation_reason="affiliationChanged")
            aia_before = pki.responder.requests
            mine = dataclasses.replace(
                policy, responders=(ResponderOverride(designated.url, issuer=issuer_der),)
            )
            refused = connect("urllib3", server, mine, pki.checker(), pki.trust)
            assert pki.responder.requests == aia_before  # the AIA is not asked
            other = dataclasses.replace(
                policy, responders=(ResponderOverride(designated.url, issuer=root_der),)
            )
            accepted = connect("urllib3", server, other, pki.checker(), pki.trust)
            assert designated.requests == 1
    assert not refused.accepted
    assert refused.revocation is not None
    assert refused.revocation.revocation_reason == "affiliationChanged"
    assert [(a.url, a.outcome) for a in refused.revocation.attempts] == [
        (designated.url, "revoked")
    ]
    # An override for another issuer's certificates leaves the leaf to its AIA.
    assert accepted.accepted
    assert accepted.revocation is not None
    assert [(a.url, a.outcome) for a in accepted.revocation.attempts] == [
        (pki.responder.url, "good")
    ]


def test_a_pinned_responder_is_trusted_only_when_pinned(live: RevocationPKI) -> None:
    pki = live
    elsewhere = CA(name="staplecheck unrelated CA", now=NOW).issue_responder(
        name="pinned responder"
    )
    pki.responder.set_response_options(responder=elsewhere)
    policy = Policy(mode=Mode.HARD_FAIL, fallback=("ocsp",))
    pinned = dataclasses.replace(
        policy, trusted_responders=(elsewhere.cert.public_bytes(Encoding.DER),)
    )
    with stapling(pki.leaf, None) as server:
        unpinned = connect("pyopenssl", server, policy, pki.checker(), pki.trust)
        trusted = connect("pyopenssl", server, pinned, pki.checker(), pki.trust)
    assert not unpinned.accepted
    assert unpinned.revocation is not None
    assert [a.outcome for a in unpinned.revocation.attempts] == ["invalid"]
    assert trusted.accepted
    assert trusted.revocation is not None
    assert (trusted.revocation.status, trusted.revocation.source) == (StapleStatus.GOOD, "ocsp")
    assert trusted.revocation.responder is not None
    assert "pinned responder" in trusted.revocation.responder


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_get_and_post(live: RevocationPKI, method: str) -> None:
    pki = live
    policy = Policy(mode=Mode.HARD_FAIL, fallback=("ocsp",), ocsp_method=method)
    with stapling(pki.leaf, None) as server:
        result = connect("requests", server, policy, pki.checker(), pki.trust)
    assert result.accepted
    last = pki.responder.history[-1]
    assert (last.method, last.serial_number, last.answer) == (
        method,
        pki.leaf.cert.serial_number,
        "good",
    )


@pytest.mark.parametrize("mode", ["soft-fail", "hard-fail"])
def test_https_urls_are_skipped_unless_allowed(live: RevocationPKI, mode: str) -> None:
    pki = live
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"https://127.0.0.1:{closed.getsockname()[1]}/"
        leaf = pki.intermediate.issue_cert("localhost", ocsp_url=url)
        policy = Policy(mode=Mode(mode), fallback=("ocsp",))
        with stapling(leaf, None) as server:
            skipped = connect("pyopenssl", server, policy, pki.checker(), pki.trust)
            allowed = connect(
                "pyopenssl",
                server,
                dataclasses.replace(policy, allow_https_fetch=True),
                pki.checker(),
                pki.trust,
            )
    assert skipped.accepted is (mode == "soft-fail")
    assert skipped.revocation is not None
    assert [(a.source, a.url, a.outcome) for a in skipped.revocation.attempts] == [
        ("ocsp", url, "skipped")
    ]
    assert "only http://" in skipped.revocation.attempts[0].reason
    # Allowed, it is asked (and fails: nothing listens there).
    assert allowed.revocation is not None
    assert [(a.url, a.outcome) for a in allowed.revocation.attempts] == [(url, "failed")]


# --- engine bugs, each found failing before its fix ------------------------------------------


def test_static_crl_files_without_one_from_the_issuer_are_a_failed_attempt(
    live: RevocationPKI, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Files that are all other CAs' CRLs answer nothing: that is said (a failed crl
    attempt naming why) and logged, not left out of the verdict."""
    pki = live
    _write(tmp_path / "root.crl", pki.root.crl())
    _write(tmp_path / "elsewhere.crl", CA(name="another CA", now=NOW).crl())
    policy = Policy(mode=Mode.HARD_FAIL, fallback=("crl",), crl_files=(str(tmp_path),))
    with stapling(pki.leaf, None) as server:
        result = connect("pyopenssl", server, policy, pki.checker(), pki.trust)
    assert not result.accepted
    assert result.revocation is not None
    assert [(a.source, a.url, a.outcome) for a in result.revocation.attempts] == [
        ("crl", str(tmp_path), "failed")
    ]
    reason = result.revocation.attempts[0].reason
    assert "none of the 2 static CRL files is from the certificate's issuer" in reason
    assert any(reason in record.getMessage() for record in caplog.records)


def test_static_crl_files_revoked_wins_over_good(live: RevocationPKI, tmp_path: Path) -> None:
    """Every CRL file from the issuer is judged: an older CRL, still within its
    validity, that does not list the certificate cannot hide a newer one that does."""
    pki = live
    older = _write(
        tmp_path / "a-older.crl",
        pki.intermediate.crl(this_update=NOW - datetime.timedelta(hours=6), crl_number=1),
    )
    newer = _write(
        tmp_path / "b-newer.crl",
        pki.intermediate.crl([pki.leaf], reason="keyCompromise", crl_number=2),
    )
    policy = Policy(mode=Mode.SOFT_FAIL, fallback=("crl",), crl_files=(str(tmp_path),))
    with stapling(pki.leaf, None) as server:
        result = connect("requests", server, policy, pki.checker(), pki.trust)
    assert not result.accepted
    assert result.revocation is not None
    assert (result.revocation.status, result.revocation.source) == (StapleStatus.REVOKED, "crl")
    assert result.revocation.revocation_reason == "keyCompromise"
    assert [(a.url, a.outcome) for a in result.revocation.attempts] == [
        (older, "good"),
        (newer, "revoked"),
    ]


def _ocsp_key(pki: RevocationPKI) -> str:
    from staplecheck.revocation._plan import request_key
    from staplecheck.validation._validate import CertPair

    pair = CertPair(
        pki.leaf.cert.public_bytes(Encoding.DER), pki.intermediate.cert.public_bytes(Encoding.DER)
    )
    return request_key(pair)[1]


@pytest.mark.parametrize("lasting", [datetime.timedelta(seconds=20), 365 * DAY])
def test_a_failure_mark_in_the_store_is_never_read(
    live: RevocationPKI, lasting: datetime.timedelta
) -> None:
    """Whoever can write a shared store must not silence checking (which under
    soft-fail means accepting) with a failure mark, short or far in the future: marks
    are the checker's own, in process memory."""
    pki = live
    pki.responder.set_status(pki.leaf, "revoked")
    store = MemoryStore()
    store.mark_failure(
        _ocsp_key(pki), now=NOW, until=NOW + lasting, reason="responder down (or so I say)"
    )
    checker = pki.checker(store=store, failure_ttl=datetime.timedelta(seconds=30))
    policy = Policy(mode=Mode.SOFT_FAIL, fallback=("ocsp",))
    before = pki.responder.requests
    with stapling(pki.leaf, None) as server:
        result = connect("urllib3", server, policy, checker, pki.trust)
    assert not result.accepted
    assert result.revocation is not None
    assert (result.revocation.status, result.revocation.source) == (StapleStatus.REVOKED, "ocsp")
    assert "skipped" not in checker.counts
    assert pki.responder.requests == before + 1


def test_a_stored_crl_that_does_not_cover_the_certificate_does_not_end_the_crl_source(
    live: RevocationPKI,
) -> None:
    """A valid CRL of the right issuer read from the store, but a partition for other
    certificates (its issuingDistributionPoint names another point), answers nothing
    for this one: the distribution point is fetched instead."""
    from staplecheck.revocation.stores import crl_key

    pki = live
    url = pki.crls.url(LEAF_CRL)
    pki.crls.set_crl(LEAF_CRL, pki.intermediate.crl([pki.leaf], reason="keyCompromise"))
    partition = pki.intermediate.crl(
        issuing_distribution_point=_idp(url=pki.crls.url("/partition-2.crl"))
    )
    store = MemoryStore()
    store.put(crl_key(url), partition, now=NOW, expires_at=NOW + DAY)
    checker = pki.checker(store=store)
    policy = Policy(mode=Mode.SOFT_FAIL, fallback=("crl",))
    before = pki.crls.requests
    with stapling(pki.leaf, None) as server:
        first = connect("pyopenssl", server, policy, checker, pki.trust)
        # The fetched CRL replaced the partition in the store and the memo.
        again = connect("pyopenssl", server, policy, checker, pki.trust)
    assert pki.crls.requests - before == 1
    assert not first.accepted
    assert first.revocation is not None
    assert (first.revocation.status, first.revocation.source) == (StapleStatus.REVOKED, "crl")
    assert [(a.source, a.url, a.outcome) for a in first.revocation.attempts] == [
        ("cache", url, "invalid"),
        ("crl", url, "revoked"),
    ]
    assert not again.accepted
    assert again.revocation is not None
    assert (again.revocation.status, again.revocation.source) == (StapleStatus.REVOKED, "cache")


def test_a_remembered_crl_that_does_not_cover_the_certificate_is_fetched_again(
    live: RevocationPKI,
) -> None:
    """The same through the checker's in-memory memo of current CRLs: a partitioned
    CRL remembered for one certificate does not answer for another."""
    pki = live
    url = pki.crls.url(LEAF_CRL)
    # A partition covering only CA certificates: remembered after the first connection.
    only_cas = x509.IssuingDistributionPoint(
        full_name=None,
        relative_name=None,
        only_contains_user_certs=False,
        only_contains_ca_certs=True,
        only_some_reasons=None,
        indirect_crl=False,
        only_contains_attribute_certs=False,
    )
    pki.crls.set_crl(LEAF_CRL, pki.intermediate.crl(issuing_distribution_point=only_cas))
    # No failure mark after the first connection's non-answer: the memo is under test.
    checker = pki.checker(failure_ttl=datetime.timedelta(0))
    policy = Policy(mode=Mode.SOFT_FAIL, fallback=("crl",))
    before = pki.crls.requests
    with stapling(pki.leaf, None) as server:
        first = connect("pyopenssl", server, policy, checker, pki.trust)
        pki.crls.set_crl(LEAF_CRL, pki.intermediate.crl([pki.leaf], reason="keyCompromise"))
        second = connect("pyopenssl", server, policy, checker, pki.trust)
    assert first.accepted  # soft-fail: no answer
    assert first.revocation is not None
    assert [(a.source, a.url, a.outcome) for a in first.revocation.attempts] == [
        ("crl", url, "invalid")
    ]
    assert not second.accepted
    assert second.revocation is not None
    assert [(a.source, a.url, a.outcome) for a in second.revocation.attempts] == [
        ("cache", url, "invalid"),
        ("crl", url, "revoked"),
    ]
    assert "does not answer for this certificate" in second.revocation.attempts[0].reason
    assert pki.crls.requests - before == 2
