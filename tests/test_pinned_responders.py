"""Pinned (trusted) responder certificates: ``trusted_responders``, an explicit opt-in.

RFC 6960 §4.2.2.2 lets a client trust a responder's certificate locally (OpenSSL's
``ocsp -VAfile``): private PKIs sign responses with a certificate their CA did not
issue directly. Pinned, such a signer is authorized for any certificate; unpinned, the
same response stays ``invalid``. Everything else about the response is judged as
before, and the evidence memo never lends an answer reached with a pin to a call
without it. Real certificates and responses throughout (staplecheck.testing).
"""

from __future__ import annotations

import datetime
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

import staplecheck.validation._signatures as signatures_module
import staplecheck.validation._validate as validate_module
from staplecheck import StapleCache, StapleResult, StapleStatus, validate_staple
from staplecheck.revocation._fetch import fetch_ocsp
from staplecheck.revocation._ocsp import build_request, judge_fetched
from staplecheck.testing import CA, Identity, OCSPEntry, OCSPResponder, RawExtension
from staplecheck.validation._validate import (
    DEFAULT_CLOCK_SKEW,
    DEFAULT_LIFETIME,
    DEFAULT_MAX_AGE,
    MAX_TRUSTED_RESPONDERS,
    CertPair,
)
from tests.conftest import NOW, PKI, require_program

GOOD = StapleStatus.GOOD
REVOKED = StapleStatus.REVOKED
UNKNOWN = StapleStatus.UNKNOWN
STALE = StapleStatus.STALE
INVALID = StapleStatus.INVALID

MINUTE = datetime.timedelta(minutes=1)
HOUR = datetime.timedelta(hours=1)
DAY = datetime.timedelta(days=1)
DER = serialization.Encoding.DER
NONCE_OID = "1.3.6.1.5.5.7.48.1.2"


def der_of(thing: x509.Certificate | Identity | CA) -> bytes:
    cert = thing if isinstance(thing, x509.Certificate) else thing.cert
    return cert.public_bytes(DER)


def expect(result: StapleResult, status: StapleStatus, *words: str) -> None:
    assert result.status is status, result.reason
    for word in words:
        assert word.lower() in result.reason.lower(), (word, result.reason)


@pytest.fixture(scope="module")
def vault() -> CA:
    """A self-signed responder certificate, as Vault or a lone responder may use."""
    return CA(name="pinned test responder", now=NOW)


@pytest.fixture(scope="module")
def elsewhere() -> CA:
    """A CA that has nothing to do with the leaf's chain."""
    return CA(name="some other root", now=NOW)


@pytest.fixture(scope="module")
def foreign_responder(elsewhere: CA) -> Identity:
    """A responder certificate issued by another CA (EJBCA, ADCS style), with
    id-kp-OCSPSigning."""
    return elsewhere.issue_responder(name="responder issued elsewhere")


class Bench:
    def __init__(self, pki: PKI) -> None:
        self.ca = pki.intermediate
        self.leaf = pki.leaf

    def staple(self, status: str = "good", **options: Any) -> bytes:
        return self.ca.ocsp_response(self.leaf, status, **options)

    def judge(
        self,
        der: bytes,
        pins: Sequence[bytes] = (),
        *,
        now: datetime.datetime = NOW,
        **options: Any,
    ) -> StapleResult:
        options.setdefault("cache", None)
        return validate_staple(
            der, self.leaf.cert, self.ca.cert, now=now, trusted_responders=pins, **options
        )


@pytest.fixture
def bench(pki: PKI) -> Bench:
    return Bench(pki)


# --- a pinned responder is authorized; the same response unpinned is not --------------


@pytest.mark.parametrize("status", ["good", "revoked", "unknown"])
def test_self_signed_pinned_responder_is_authorized(bench: Bench, vault: CA, status: str) -> None:
    staple = bench.staple(status, responder=vault, revocation_reason="keyCompromise")
    result = bench.judge(staple, [der_of(vault)])
    expect(result, StapleStatus(status), "pinned responder CN=pinned test responder")
    assert result.responder == "pinned responder CN=pinned test responder"
    if status == "revoked":
        assert result.revocation_reason == "keyCompromise"


@pytest.mark.parametrize("responder_id", ["name", "key"])
def test_same_response_unpinned_is_an_unauthorized_signer(
    bench: Bench, vault: CA, responder_id: str
) -> None:
    staple = bench.staple("revoked", responder=vault, responder_id=responder_id)
    expect(bench.judge(staple), INVALID, "ResponderID names neither the issuer")
    # pinning something else does not help, and says that pins were looked at
    expect(
        bench.judge(staple, [der_of(bench.leaf.issuer.root)]),
        INVALID,
        "nor a pinned responder",
    )


@pytest.mark.parametrize("responder_id", ["name", "key"])
@pytest.mark.parametrize("embedded", [True, False])
def test_responder_from_another_ca_pinned(
    bench: Bench, foreign_responder: Identity, responder_id: str, embedded: bool
) -> None:
    staple = bench.staple(
        responder=foreign_responder,
        responder_id=responder_id,
        include_certs=None if embedded else [],
    )
    expect(bench.judge(staple, [der_of(foreign_responder)]), GOOD, "pinned responder")
    unpinned = bench.judge(staple)
    if embedded:  # an embedded delegate the issuer did not issue
        expect(unpinned, INVALID, "was not issued by the issuer")
    else:
        expect(unpinned, INVALID, "ResponderID names neither")


def test_pinned_responder_needs_no_ocsp_signing_usage(bench: Bench, elsewhere: CA) -> None:
    """Like OpenSSL's -VAfile: pinning is the trust decision (docs/validation.md)."""
    plain = elsewhere.issue_responder(name="no eku responder", ocsp_signing=False)
    staple = bench.staple(responder=plain)
    expect(bench.judge(staple, [der_of(plain)]), GOOD, "pinned responder CN=no eku responder")
    expect(bench.judge(staple), INVALID)


def test_pinned_certificate_among_others_in_any_position(
    bench: Bench, vault: CA, foreign_responder: Identity, pki: PKI
) -> None:
    staple = bench.staple(responder=vault)
    others = [der_of(pki.root), der_of(foreign_responder), der_of(pki.must_staple_leaf)]
    for position in range(len(others) + 1):
        pins = [*others[:position], der_of(vault), *others[position:]]
        expect(bench.judge(staple, pins), GOOD, "pinned responder")


# --- what is still enforced for a pinned signer ---------------------------------------


@pytest.mark.parametrize(
    ("not_before", "not_after", "now", "status"),
    [
        (NOW - 10 * DAY, NOW - HOUR, NOW, INVALID),  # expired
        (NOW + HOUR, NOW + 90 * DAY, NOW, INVALID),  # not yet valid
        (NOW - 10 * DAY, NOW - 2 * MINUTE, NOW, GOOD),  # expired, within the skew
        (NOW + 2 * MINUTE, NOW + 90 * DAY, NOW, GOOD),  # not yet valid, within the skew
        (NOW - 10 * DAY, NOW, NOW, GOOD),  # the last second
    ],
)
def test_pinned_certificate_must_be_valid_now(
    bench: Bench,
    elsewhere: CA,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
    now: datetime.datetime,
    status: StapleStatus,
) -> None:
    pinned = elsewhere.issue_responder(
        name="dated responder", not_before=not_before, not_after=not_after
    )
    staple = bench.staple("revoked", responder=pinned, this_update=NOW - 30 * MINUTE)
    result = bench.judge(staple, [der_of(pinned)], now=now)
    if status is INVALID:
        # an expired pin gives invalid, even for a revocation
        expect(result, INVALID, "pinned responder CN=dated responder", "not valid now", "skew")
    else:
        expect(result, REVOKED)


def test_pinned_validity_skew_is_the_callers(bench: Bench, elsewhere: CA) -> None:
    pinned = elsewhere.issue_responder(
        name="dated responder", not_before=NOW - DAY, not_after=NOW - 2 * MINUTE
    )
    staple = bench.staple(responder=pinned, this_update=NOW - HOUR)
    pins = [der_of(pinned)]
    cache = StapleCache()
    expect(bench.judge(staple, pins, cache=cache), GOOD)
    # the same cached evidence, judged with a smaller skew: the pin has expired
    expect(bench.judge(staple, pins, cache=cache, clock_skew=MINUTE), INVALID, "not valid now")


def test_same_name_other_key_is_a_bad_signature(bench: Bench, vault: CA) -> None:
    impostor = CA(name="pinned test responder", now=NOW)  # same subject, new key
    staple = bench.staple(responder=impostor)
    expect(
        bench.judge(staple, [der_of(vault)]),
        INVALID,
        "signature does not verify with the pinned responder CN=pinned test responder key",
    )
    # and by key hash it is not even named
    by_key = bench.staple(responder=impostor, responder_id="key")
    expect(bench.judge(by_key, [der_of(vault)]), INVALID, "nor a pinned responder")


def test_corrupt_signature_from_the_pinned_responder(bench: Bench, vault: CA) -> None:
    staple = bench.staple(responder=vault, corrupt_signature=True)
    expect(bench.judge(staple, [der_of(vault)]), INVALID, "signature does not verify")


def test_cert_id_rules_are_unchanged(bench: Bench, vault: CA, pki: PKI, elsewhere: CA) -> None:
    pins = [der_of(vault)]
    other_leaf = pki.intermediate.issue_cert("other.test")
    about_other = pki.intermediate.ocsp_response(other_leaf, responder=vault)
    expect(bench.judge(about_other, pins), INVALID, "no entry for serial")
    # the right serial under another CA's name and key
    under_elsewhere = pki.intermediate.ocsp_response(
        None,
        responder=vault,
        extra_entries=[OCSPEntry(serial_number=bench.leaf.cert.serial_number, issuer=elsewhere)],
    )
    expect(bench.judge(under_elsewhere, pins), INVALID, "no entry for serial")
    # the pinned responder may sign for any issuer: the same response is good for a
    # certificate of the other CA
    their_leaf = elsewhere.issue_cert("theirs.test")
    staple = elsewhere.ocsp_response(their_leaf, responder=vault)
    result = validate_staple(
        staple, their_leaf.cert, elsewhere.cert, now=NOW, trusted_responders=pins
    )
    expect(result, GOOD, "pinned responder")


def test_response_rules_are_unchanged(bench: Bench, vault: CA) -> None:
    pins = [der_of(vault)]
    critical = bench.staple(
        responder=vault, extensions=[RawExtension(oid="1.3.6.1.4.1.55555.1", critical=True)]
    )
    expect(bench.judge(critical, pins), INVALID, "unrecognized critical extension")
    future = bench.staple(responder=vault, this_update=NOW + HOUR)
    expect(bench.judge(future, pins), INVALID, "in the future")
    old = bench.staple(responder=vault, this_update=NOW - 3 * DAY)
    expect(bench.judge(old, pins), STALE, "nextUpdate")
    backwards = bench.staple(responder=vault, next_update=NOW - 2 * DAY)
    expect(bench.judge(backwards, pins), INVALID, "nextUpdate is before thisUpdate")


def test_allow_sha1_applies_to_the_response_signature(
    bench: Bench, vault: CA, elsewhere: CA
) -> None:
    sha1_signed = bench.staple(responder=vault, signature_hash="sha1")
    pins = [der_of(vault)]
    expect(bench.judge(sha1_signed, pins), GOOD)
    expect(bench.judge(sha1_signed, pins, allow_sha1=False), INVALID, "SHA-1")
    # a pinned certificate's own signature is not checked, so its hash does not matter
    old_cert = elsewhere.issue_responder(name="sha1 responder", signature_hash="sha1")
    staple = bench.staple(responder=old_cert)
    expect(bench.judge(staple, [der_of(old_cert)], allow_sha1=False), GOOD)


def test_pinned_leaf_cannot_vouch_for_itself(bench: Bench) -> None:
    staple = bench.staple(responder=bench.leaf, include_certs=[])
    expect(bench.judge(staple, [der_of(bench.leaf)]), INVALID, "cannot vouch for itself")


def test_issuer_and_delegate_signatures_are_unaffected_by_pins(
    bench: Bench, vault: CA, pki: PKI
) -> None:
    pins = [der_of(vault)]
    expect(bench.judge(bench.staple(), pins), GOOD, "issuer CN=")
    delegate = pki.intermediate.issue_responder()
    expect(bench.judge(bench.staple(responder=delegate), pins), GOOD, "delegated responder")
    # an expired delegate stays refused: a pin for someone else does not help it
    expired = pki.intermediate.issue_responder(not_before=NOW - DAY, not_after=NOW - HOUR)
    expect(bench.judge(bench.staple(responder=expired), pins), INVALID, "not valid now")


def test_issuer_signature_with_an_expired_pin_of_the_same_key(bench: Bench, pki: PKI) -> None:
    """A pin that shares the issuer's name and key but has expired does not spoil the
    issuer's own, always valid, signature."""
    issuer = pki.intermediate
    twin = (
        x509.CertificateBuilder()
        .subject_name(issuer.cert.subject)
        .issuer_name(issuer.cert.subject)
        .public_key(issuer.cert.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - 10 * DAY)
        .not_valid_after(NOW - DAY)
        .sign(issuer.private_key, hashes.SHA256())
    )
    expect(bench.judge(bench.staple(), [der_of(twin)]), GOOD, "issuer CN=")


# --- bounded work and configuration errors --------------------------------------------


def test_at_most_eight_pins(bench: Bench, vault: CA, elsewhere: CA) -> None:
    assert MAX_TRUSTED_RESPONDERS == 8
    fillers = [der_of(elsewhere.issue_responder(name=f"filler {i}")) for i in range(7)]
    staple = bench.staple(responder=vault)
    expect(bench.judge(staple, [*fillers, der_of(vault)]), GOOD)
    with pytest.raises(ValueError, match="holds 9 certificates; at most 8"):
        bench.judge(staple, [*fillers, der_of(vault), der_of(vault)])
    with pytest.raises(ValueError, match="at most 8"):
        bench.judge(b"", [der_of(vault)] * 9)  # even with no staple


@pytest.mark.parametrize(
    "garbage", [b"", b"\x30\x03\x02\x01\x00", b"not a certificate", b"\x30\x82\x01"]
)
def test_unreadable_pin_is_a_value_error_naming_its_index(
    bench: Bench, vault: CA, garbage: bytes
) -> None:
    staple = bench.staple(responder=vault)
    with pytest.raises(ValueError, match=r"trusted_responders\[2\] is not a DER X\.509"):
        bench.judge(staple, [der_of(vault), der_of(vault), garbage])
    with pytest.raises(ValueError, match=r"trusted_responders\[0\]"):
        bench.judge(staple, [garbage], cache=StapleCache())


def test_pins_of_the_wrong_type_are_type_errors(bench: Bench, vault: CA) -> None:
    staple = bench.staple(responder=vault)
    with pytest.raises(TypeError, match="not a single bytes"):
        bench.judge(staple, der_of(vault))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"trusted_responders\[1\] must be the DER"):
        bench.judge(staple, [der_of(vault), vault.cert])  # type: ignore[list-item]


def test_one_signature_verification_per_named_pin(
    bench: Bench, vault: CA, elsewhere: CA, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pins are matched on raw bytes first: only those the ResponderID names cost a
    signature verification, one each (the real verification, counted)."""
    calls: list[object] = []
    real_verify = signatures_module.verify

    def counting_verify(key: object, *args: Any) -> Any:
        calls.append(key)
        return real_verify(key, *args)

    monkeypatch.setattr(validate_module, "verify", counting_verify)  # what _validate calls
    fillers = [der_of(elsewhere.issue_responder(name=f"filler {i}")) for i in range(7)]
    staple = bench.staple(responder=vault)
    expect(bench.judge(staple, [*fillers, der_of(vault)]), GOOD)
    assert len(calls) == 1
    # seven certificates under the pinned name with other keys, the real one last:
    # every named pin is tried once, none twice
    calls.clear()
    namesakes = [der_of(CA(name="pinned test responder", now=NOW)) for _ in range(3)]
    expect(bench.judge(staple, [*namesakes, der_of(vault)]), GOOD)
    assert len(calls) == 4


# --- the memo: an answer reached with a pin is never reused without it ------------------


def test_no_memo_leak_from_pinned_to_unpinned(bench: Bench, vault: CA) -> None:
    cache = StapleCache()
    staple = bench.staple("good", responder=vault)
    expect(bench.judge(staple, [der_of(vault)], cache=cache), GOOD)
    expect(bench.judge(staple, cache=cache), INVALID, "ResponderID names neither")
    expect(bench.judge(staple, [der_of(vault)], cache=cache), GOOD)
    assert len(cache) == 2


def test_no_memo_leak_from_unpinned_to_pinned(bench: Bench, vault: CA) -> None:
    cache = StapleCache()
    staple = bench.staple("revoked", responder=vault)
    expect(bench.judge(staple, cache=cache), INVALID)
    expect(bench.judge(staple, [der_of(vault)], cache=cache), REVOKED)
    expect(bench.judge(staple, cache=cache), INVALID)


def test_no_memo_leak_between_pin_sets(
    bench: Bench, vault: CA, foreign_responder: Identity
) -> None:
    cache = StapleCache()
    staple = bench.staple(responder=vault)
    expect(bench.judge(staple, [der_of(vault)], cache=cache), GOOD)
    expect(bench.judge(staple, [der_of(foreign_responder)], cache=cache), INVALID)
    # order does not confuse the key: both orders are judged, each correctly
    both = [der_of(foreign_responder), der_of(vault)]
    expect(bench.judge(staple, both, cache=cache), GOOD)
    expect(bench.judge(staple, both[::-1], cache=cache), GOOD)


def test_memo_key_is_unambiguous() -> None:
    digest = validate_module._digest
    # the same bytes split differently, or across more parts, never share a key
    assert digest(b"ab", b"c", b"d") != digest(b"a", b"bc", b"d")
    assert digest(b"a", b"b", b"c", b"d") != digest(b"a", b"b", b"cd")
    assert digest(b"a", b"b", b"c", b"") != digest(b"a", b"b", b"c")
    assert digest(b"a", b"b", b"c", b"d", b"e") != digest(b"a", b"b", b"c", b"e", b"d")


# --- judge_fetched passes the pins through ---------------------------------------------


@pytest.fixture
def pinned_responder(pki: PKI, vault: CA) -> Iterator[OCSPResponder]:
    """The intermediate's live responder, signing with the self-signed pinned key."""
    with OCSPResponder(pki.intermediate, clock=lambda: NOW, responder=vault) as running:
        running.set_status(pki.leaf, "revoked", revocation_reason="keyCompromise")
        yield running


def fetched_judge(
    der: bytes, certs: CertPair, nonce: bytes | None, pins: Sequence[bytes]
) -> StapleResult:
    return judge_fetched(
        der,
        certs,
        nonce=nonce,
        now=NOW,
        clock_skew=DEFAULT_CLOCK_SKEW,
        default_lifetime=DEFAULT_LIFETIME,
        max_age=DEFAULT_MAX_AGE,
        allow_sha1=True,
        cache=StapleCache(),
        trusted_responders=pins,
    )


@pytest.mark.parametrize("nonce", [None, b"\x42" * 16])
def test_judge_fetched_passes_pins_through(
    pinned_responder: OCSPResponder, pki: PKI, vault: CA, nonce: bytes | None
) -> None:
    certs = CertPair.of(pki.leaf.cert, pki.intermediate.cert)
    request = build_request(certs, nonce=nonce)
    der = fetch_ocsp(pinned_responder.url, request.der, deadline=time.monotonic() + 3)
    result = fetched_judge(der, certs, nonce, [der_of(vault)])
    expect(result, REVOKED, "pinned responder CN=pinned test responder")
    assert result.revocation_reason == "keyCompromise"
    expect(fetched_judge(der, certs, nonce, ()), INVALID, "ResponderID names neither")
    if nonce is not None:  # the nonce rule still applies to a pinned responder's answer
        expect(fetched_judge(der, certs, b"\x43" * 16, [der_of(vault)]), INVALID, "nonce")


def test_judge_fetched_checks_pins_even_for_an_empty_answer(pki: PKI) -> None:
    certs = CertPair.of(pki.leaf.cert, pki.intermediate.cert)
    expect(fetched_judge(b"", certs, None, ()), INVALID, "empty response")
    with pytest.raises(ValueError, match=r"trusted_responders\[0\]"):
        fetched_judge(b"", certs, None, [b"junk"])


def test_nonce_in_a_pinned_response_built_by_hand(pki: PKI, vault: CA) -> None:
    certs = CertPair.of(pki.leaf.cert, pki.intermediate.cert)
    nonce = bytes(range(16))
    der = pki.intermediate.ocsp_response(
        pki.leaf,
        responder=vault,
        responder_id="key",
        extensions=[RawExtension(oid=NONCE_OID, value=b"\x04\x10" + nonce)],
    )
    expect(fetched_judge(der, certs, nonce, [der_of(vault)]), GOOD, "pinned responder")
    expect(fetched_judge(der, certs, None, [der_of(vault)]), GOOD)
    expect(fetched_judge(der, certs, nonce, ()), INVALID)


# --- a second opinion: openssl ocsp -VAfile ---------------------------------------------


@pytest.mark.parametrize(
    ("case", "ours", "openssl_ok"),
    [
        ("self-signed by name", GOOD, True),
        ("self-signed by key", GOOD, True),
        ("another CA's, no id-kp-OCSPSigning", GOOD, True),
        # a difference: -VAfile trusts the certificate outright, expired or not
        ("another CA's, expired", INVALID, True),
    ],
)
def test_openssl_vafile_agrees(
    tmp_path: Path, case: str, ours: StapleStatus, openssl_ok: bool
) -> None:
    """``openssl ocsp -respin R -VAfile PINNED`` accepts what staplecheck accepts with
    the same pin, and both refuse the response unpinned. OpenSSL checks times against
    the wall clock, so this PKI is made at the real current time."""
    openssl = require_program("openssl")
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    root = CA(now=now)
    issuer = root.create_intermediate()
    leaf = issuer.issue_cert("pinned.test")
    other = CA(name="some other root", now=now)
    signer: CA | Identity
    if case.startswith("self-signed"):
        signer = CA(name="pinned test responder", now=now)
    elif case.endswith("expired"):
        signer = other.issue_responder(not_before=now - 9 * DAY, not_after=now - DAY)
    else:
        signer = other.issue_responder(ocsp_signing=False)
    responder_id = "key" if case.endswith("by key") else "name"
    staple = issuer.ocsp_response(leaf, responder=signer, responder_id=responder_id)
    # a CA signer is not embedded in the response, a responder Identity is
    pins = [der_of(signer)]
    ours_pinned = validate_staple(staple, leaf.cert, issuer.cert, now=now, trusted_responders=pins)
    expect(ours_pinned, ours, "pinned responder")
    expect(validate_staple(staple, leaf.cert, issuer.cert, now=now), INVALID)

    files = {
        "root.pem": root.cert,
        "issuer.pem": issuer.cert,
        "leaf.pem": leaf.cert,
        "pinned.pem": signer.cert,
    }
    for name, cert in files.items():
        (tmp_path / name).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "response.der").write_bytes(staple)

    def openssl_says(*extra: str) -> str:
        command = [openssl, "ocsp", "-respin", "response.der", "-issuer", "issuer.pem"]
        command += ["-cert", "leaf.pem", "-CAfile", "root.pem", *extra]
        done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=30)
        return done.stdout + done.stderr

    pinned_text = openssl_says("-VAfile", "pinned.pem")
    assert ("Response verify OK" in pinned_text) is openssl_ok, pinned_text
    assert "leaf.pem: good" in pinned_text, pinned_text
    assert "Response Verify Failure" in openssl_says(), "OpenSSL accepted it unpinned"
