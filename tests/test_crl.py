"""The CRL judge (staplecheck.revocation._crl), the CRL factory and the CRL server.

Every rule passing and failing, against CRLs from ``staplecheck.testing`` and from
``openssl ca -gencrl``; ``openssl crl`` and ``openssl verify -crl_check`` as
independent judges; the server over real HTTP.
"""

from __future__ import annotations

import datetime
import http.client
import random
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from staplecheck import StapleResult, StapleStatus
from staplecheck.revocation._crl import (
    MAX_CRL_BYTES,
    CRLIndex,
    CRLRefusal,
    crl_verdict,
    judge_crl,
)
from staplecheck.testing import CA, CRLEntry, CRLServer, Identity, KeyType, RawExtension, make_crl
from staplecheck.testing._crl import pem_crl
from tests.conftest import NOW, require_program

DER = serialization.Encoding.DER
HOUR = datetime.timedelta(hours=1)
DAY = datetime.timedelta(days=1)
SKEW = datetime.timedelta(minutes=5)
MAX_AGE = datetime.timedelta(days=10)
URL = "http://crl.example/issuer.crl"


def judge(
    crl: bytes,
    issuer: CA | x509.Certificate,
    *,
    now: datetime.datetime = NOW,
    **options: object,
) -> CRLIndex | CRLRefusal:
    cert = issuer.cert if isinstance(issuer, CA) else issuer
    settings: dict[str, object] = {
        "clock_skew": SKEW,
        "default_lifetime": DAY,
        "max_age": MAX_AGE,
        **options,
    }
    return judge_crl(crl, cert, issuer_der=cert.public_bytes(DER), now=now, **settings)  # type: ignore[arg-type]


def verdict(
    crl: bytes,
    issuer: CA | x509.Certificate,
    cert: Identity | x509.Certificate,
    *,
    now: datetime.datetime = NOW,
    judged_at: datetime.datetime = NOW,
    **options: object,
) -> StapleResult:
    index = judge(crl, issuer, now=judged_at, **options)
    leaf = cert.cert if isinstance(cert, Identity) else cert
    return crl_verdict(index, leaf, now=now)


def refusal(crl: bytes, issuer: CA | x509.Certificate, **options: object) -> str:
    judged = judge(crl, issuer, **options)
    assert isinstance(judged, CRLRefusal), judged
    return judged.reason


@pytest.fixture(scope="module")
def ca() -> CA:
    return CA(now=NOW, name="crl test CA")


@pytest.fixture(scope="module")
def leaf(ca: CA) -> Identity:
    return ca.issue_cert("revoked.example")


@pytest.fixture(scope="module")
def other(ca: CA) -> Identity:
    return ca.issue_cert("good.example")


# --- the verdicts --------------------------------------------------------------------


KEY_TYPES: list[tuple[KeyType, bool]] = [
    ("ecdsa", False),
    ("ecdsa-p384", False),
    ("ecdsa-p521", False),
    ("rsa", False),
    ("rsa", True),
    ("ed25519", False),
    ("ed448", False),
]


@pytest.mark.parametrize(
    ("key_type", "rsa_pss"), KEY_TYPES, ids=[f"{k}{'-pss' if p else ''}" for k, p in KEY_TYPES]
)
def test_every_key_type_revoked_and_good(key_type: KeyType, rsa_pss: bool) -> None:
    issuer = CA(now=NOW, key_type=key_type)
    revoked, fine = issuer.issue_cert("a.example"), issuer.issue_cert("b.example")
    for hash_name in ("sha256", "sha384", "sha512"):
        crl = issuer.crl(
            [revoked], reason="keyCompromise", signature_hash=hash_name, rsa_pss=rsa_pss
        )
        result = verdict(crl, issuer, revoked)
        assert result.status is StapleStatus.REVOKED, result.reason
        assert result.revocation_reason == "keyCompromise"
        assert result.revocation_time == NOW - HOUR
        assert result.responder == "CRL from issuer CN=staplecheck test root"
        assert result.serial_number == revoked.cert.serial_number
        good = verdict(crl, issuer, fine)
        assert good.status is StapleStatus.GOOD, good.reason
        assert good.this_update == NOW
        assert good.next_update == NOW + DAY


def test_a_corrupted_signature_is_refused_for_every_key_type() -> None:
    for key_type, rsa_pss in KEY_TYPES:
        issuer = CA(now=NOW, key_type=key_type)
        crl = issuer.crl([], corrupt_signature=True, rsa_pss=rsa_pss)
        assert "does not verify with the issuer's key (RFC 5280 §6.3.3 (g))" in refusal(
            crl, issuer
        ), key_type


def test_pem_and_der_agree(ca: CA, leaf: Identity, other: Identity) -> None:
    der = ca.crl([leaf])
    pem = pem_crl(der)
    assert ca.crl([leaf], pem=True).startswith(b"-----BEGIN X509 CRL-----")
    for crl in (der, pem, b"\n  " + pem):
        assert verdict(crl, ca, leaf).status is StapleStatus.REVOKED
        assert verdict(crl, ca, other).status is StapleStatus.GOOD
    assert "PEM" in refusal(pem.replace(b"A", b"*", 3), ca)
    assert "no X509 CRL block" in refusal(b"-----BEGIN CERTIFICATE-----\n", ca)


def test_reasons_times_and_no_reason(ca: CA) -> None:
    when = NOW - 3 * DAY
    certs = [ca.issue_cert(f"{n}.example") for n in range(3)]
    crl = ca.crl(
        [
            CRLEntry(serial_number=certs[0].cert.serial_number, reason="cessationOfOperation"),
            CRLEntry(serial_number=certs[1].cert.serial_number, revocation_time=when),
            CRLEntry(
                serial_number=certs[2].cert.serial_number,
                reason="superseded",
                invalidity_date=when,
            ),
        ]
    )
    first, second, third = (verdict(crl, ca, c) for c in certs)
    assert (first.status, first.revocation_reason) == (StapleStatus.REVOKED, "cessationOfOperation")
    assert (second.revocation_reason, second.revocation_time) == (None, when)
    assert "(superseded)" in third.reason
    assert "RFC 5280 §5.1.2.6" in third.reason


def test_held_certificate_is_revoked_while_listed_and_current(ca: CA, leaf: Identity) -> None:
    crl = ca.crl([leaf], reason="certificateHold")
    result = verdict(crl, ca, leaf)
    assert result.status is StapleStatus.REVOKED
    assert result.revocation_reason == "certificateHold"
    # Once the CRL is out of date, a hold may have been lifted: stale, like OCSP's rule.
    stale = verdict(crl, ca, leaf, now=NOW + 2 * DAY)
    assert stale.status is StapleStatus.STALE
    assert "on hold" in stale.reason


def test_revocation_is_final_even_when_stale(ca: CA, leaf: Identity, other: Identity) -> None:
    crl = ca.crl([leaf], reason="keyCompromise")
    later = NOW + 30 * DAY
    assert verdict(crl, ca, leaf, now=later).status is StapleStatus.REVOKED
    stale = verdict(crl, ca, other, now=later)
    assert stale.status is StapleStatus.STALE
    assert "past its nextUpdate" in stale.reason
    assert "RFC 5280 §5.1.2.5" in stale.reason


def test_staleness_follows_the_staple_time_rules(ca: CA, other: Identity) -> None:
    crl = ca.crl([], next_update=NOW + DAY)
    assert verdict(crl, ca, other, now=NOW + DAY + SKEW).status is StapleStatus.GOOD
    assert verdict(crl, ca, other, now=NOW + DAY + SKEW + HOUR).status is StapleStatus.STALE
    # Judged at once, used later: the window moves with each call's now.
    index = judge(crl, ca)
    assert crl_verdict(index, other.cert, now=NOW + 2 * DAY).status is StapleStatus.STALE
    # Without nextUpdate: the default lifetime.
    open_ended = ca.crl([], next_update=None)
    assert verdict(open_ended, ca, other, now=NOW + HOUR).status is StapleStatus.GOOD
    result = verdict(open_ended, ca, other, now=NOW + 2 * DAY)
    assert result.status is StapleStatus.STALE
    assert "default lifetime" in result.reason
    # A long nextUpdate is capped by the maximum age.
    long = ca.crl([], next_update=NOW + 60 * DAY)
    result = verdict(long, ca, other, now=NOW + 11 * DAY)
    assert result.status is StapleStatus.STALE
    assert "maximum age" in result.reason


def test_time_arithmetic_saturates(ca: CA, other: Identity) -> None:
    far = datetime.datetime(9999, 12, 31, tzinfo=datetime.timezone.utc)
    crl = ca.crl([], next_update=far)
    forever = datetime.timedelta.max
    result = verdict(crl, ca, other, max_age=forever, clock_skew=forever)
    assert result.status is StapleStatus.GOOD


def test_this_update_in_the_future_is_refused(ca: CA, other: Identity) -> None:
    ahead = ca.crl([], this_update=NOW + HOUR)
    assert "is in the future (RFC 5280 §5.1.2.4)" in refusal(ahead, ca)
    within_skew = ca.crl([], this_update=NOW + SKEW - datetime.timedelta(seconds=1))
    assert verdict(within_skew, ca, other).status is StapleStatus.GOOD
    # Judged later, used with an earlier clock: invalid, not good.
    index = judge(ca.crl([], this_update=NOW + HOUR), ca, now=NOW + 2 * HOUR)
    result = crl_verdict(index, other.cert, now=NOW)
    assert result.status is StapleStatus.INVALID
    assert "in the future" in result.reason


def test_next_update_before_this_update_is_refused(ca: CA) -> None:
    crl = ca.crl([], next_update=NOW - HOUR)
    assert "nextUpdate is before its thisUpdate (RFC 5280 §5.1.2.5)" in refusal(crl, ca)


def test_times_after_2049_are_generalized_time(other: Identity) -> None:
    future = datetime.datetime(2051, 1, 1, tzinfo=datetime.timezone.utc)
    issuer = CA(now=future)
    cert = issuer.issue_cert("x.example")
    crl = issuer.crl([cert])
    assert b"\x18\x0f2051" in crl
    assert verdict(crl, issuer, cert, now=future, judged_at=future).revocation_time == (
        future - HOUR
    )


# --- who signed -----------------------------------------------------------------------


def test_wrong_signers_are_refused(ca: CA, leaf: Identity) -> None:
    impostor = CA(now=NOW, name="crl test CA")  # the same name, another key
    stranger = CA(now=NOW, name="someone else")
    cases = {
        "another CA's key, our name": ca.crl([], signer=stranger),
        "a CA with the same name": impostor.crl([]),
        "the leaf's key": ca.crl([], signer=leaf),
    }
    for name, crl in cases.items():
        reason = refusal(crl, ca)
        assert "does not verify" in reason or "not supported" in reason, name
    reason = refusal(stranger.crl([]), ca)
    assert "is not the issuer certificate's subject (RFC 5280 §6.3.3 (b)(1))" in reason


def test_a_crl_for_another_issuers_certificate_is_invalid(ca: CA) -> None:
    elsewhere = CA(now=NOW, name="elsewhere").issue_cert("x.example")
    index = judge(ca.crl([]), ca)
    result = crl_verdict(index, elsewhere.cert, now=NOW)
    assert result.status is StapleStatus.INVALID
    assert "not this certificate's issuer" in result.reason


def test_issuer_without_crl_sign_is_refused() -> None:
    key_holder = CA(now=NOW, name="no crl sign")
    subject = key_holder.cert.subject
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key_holder.private_key.public_key())  # type: ignore[arg-type]
        .serial_number(1)
        .not_valid_before(NOW - DAY)
        .not_valid_after(NOW + DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .sign(key_holder.private_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    reason = refusal(key_holder.crl([]), cert)
    assert "does not allow cRLSign (RFC 5280 §6.3.3 (f), §4.2.1.3)" in reason


def test_signature_algorithms_must_agree(ca: CA) -> None:
    crl = ca.crl([], inner_signature_oid="1.2.840.10045.4.3.3")
    assert "differs from signatureAlgorithm (RFC 5280 §5.1.1.2)" in refusal(crl, ca)
    claimed = ca.crl([], signature_oid="1.2.840.113549.1.1.11")  # RSA, with an EC key
    assert "not supported" in refusal(claimed, ca)


def test_sha1_is_accepted_unless_refused() -> None:
    issuer = CA(now=NOW, key_type="rsa")
    cert = issuer.issue_cert("x.example")
    crl = issuer.crl([cert], signature_hash="sha1")
    index = judge(crl, issuer)
    assert isinstance(index, CRLIndex)
    assert index.sha1
    assert crl_verdict(index, cert.cert, now=NOW).status is StapleStatus.REVOKED
    assert "SHA-1" in refusal(crl, issuer, allow_sha1=False)
    ecdsa = CA(now=NOW)
    assert "SHA-1" in refusal(ecdsa.crl([], signature_hash="sha1"), ecdsa, allow_sha1=False)


# --- extensions, delta and indirect CRLs --------------------------------------------


def test_delta_crls_are_refused(ca: CA) -> None:
    reason = refusal(ca.crl([], crl_number=5, delta_base=4), ca)
    assert reason.startswith("delta CRLs are not supported; use the full CRL")
    critical_freshest = RawExtension(oid="2.5.29.46", critical=True, value=b"\x30\x00")
    assert "freshestCRL" in refusal(ca.crl([], extensions=[critical_freshest]), ca)


def test_indirect_crls_are_refused(ca: CA, leaf: Identity) -> None:
    idp = x509.IssuingDistributionPoint(None, None, False, False, None, True, False)
    assert "indirect CRLs are not supported" in refusal(
        ca.crl([], issuing_distribution_point=idp), ca
    )
    other_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "other CA")])
    entry = CRLEntry(serial_number=leaf.cert.serial_number, certificate_issuer=other_name)
    reason = refusal(ca.crl([entry]), ca)
    assert "certificateIssuer" in reason
    assert "RFC 5280 §5.3.3" in reason


def test_unknown_critical_extensions(ca: CA, leaf: Identity, other: Identity) -> None:
    unknown = RawExtension(oid="1.3.6.1.4.1.99999.1", critical=True)
    assert "unrecognized critical CRL extension 1.3.6.1.4.1.99999.1 (RFC 5280 §5.2)" in refusal(
        ca.crl([], extensions=[unknown]), ca
    )
    entry = CRLEntry(serial_number=leaf.cert.serial_number, extensions=[unknown])
    assert "in the entry for serial" in refusal(ca.crl([entry]), ca)
    # Not critical: ignored, in the CRL and in entries.
    benign = RawExtension(oid="1.3.6.1.4.1.99999.1", critical=False)
    entry = CRLEntry(serial_number=leaf.cert.serial_number, extensions=[benign])
    crl = ca.crl([entry], extensions=[benign])
    assert verdict(crl, ca, leaf).status is StapleStatus.REVOKED
    assert verdict(crl, ca, other).status is StapleStatus.GOOD
    twice = RawExtension(oid="2.5.29.20", value=b"\x02\x01\x07")
    assert "twice" in refusal(ca.crl([], extensions=[twice]), ca)


def test_v1_crls(ca: CA, leaf: Identity) -> None:
    v1 = ca.crl([leaf], version=None, crl_number=None, authority_key_identifier=False)
    assert verdict(v1, ca, leaf).status is StapleStatus.REVOKED
    assert "v1 CRL carries extensions" in refusal(ca.crl([], version=None), ca)
    assert "v1 CRL carries entry extensions" in refusal(
        ca.crl(
            [leaf],
            reason="keyCompromise",
            version=None,
            crl_number=None,
            authority_key_identifier=False,
        ),
        ca,
    )
    assert "version must be v2" in refusal(ca.crl([], version=2), ca)


def test_remove_from_crl_in_a_full_crl_is_invalid(ca: CA, leaf: Identity, other: Identity) -> None:
    crl = ca.crl([leaf], reason="removeFromCRL")
    result = verdict(crl, ca, leaf)
    assert result.status is StapleStatus.INVALID
    assert "removeFromCRL" in result.reason
    assert verdict(crl, ca, other).status is StapleStatus.GOOD


def test_a_serial_listed_twice_gets_the_most_serious_entry(ca: CA, leaf: Identity) -> None:
    serial = leaf.cert.serial_number
    for order in ((0, 1), (1, 0)):
        entries = [
            CRLEntry(serial_number=serial, reason="certificateHold"),
            CRLEntry(serial_number=serial, reason="keyCompromise"),
        ]
        crl = ca.crl([entries[i] for i in order])
        assert verdict(crl, ca, leaf).revocation_reason == "keyCompromise"
        index = judge(crl, ca)
        assert isinstance(index, CRLIndex)
        assert len(index) == 2
        assert serial in index


# --- scope: the issuing distribution point ------------------------------------------


def _idp(**flags: object) -> x509.IssuingDistributionPoint:
    options: dict[str, object] = {
        "full_name": None,
        "relative_name": None,
        "only_contains_user_certs": False,
        "only_contains_ca_certs": False,
        "only_some_reasons": None,
        "indirect_crl": False,
        "only_contains_attribute_certs": False,
        **flags,
    }
    return x509.IssuingDistributionPoint(**options)  # type: ignore[arg-type]


def test_only_ca_and_only_user_crls() -> None:
    root = CA(now=NOW)
    sub = root.create_intermediate()
    user = root.issue_cert("user.example")
    only_ca = root.crl([], issuing_distribution_point=_idp(only_contains_ca_certs=True))
    assert verdict(only_ca, root, sub.cert).status is StapleStatus.GOOD
    result = verdict(only_ca, root, user)
    assert result.status is StapleStatus.INVALID
    assert "onlyContainsCACerts" in result.reason
    assert "(b)(2)(iii)" in result.reason
    only_user = root.crl([], issuing_distribution_point=_idp(only_contains_user_certs=True))
    assert verdict(only_user, root, user).status is StapleStatus.GOOD
    result = verdict(only_user, root, sub.cert)
    assert result.status is StapleStatus.INVALID
    assert "onlyContainsUserCerts" in result.reason
    attributes = root.crl([], issuing_distribution_point=_idp(only_contains_attribute_certs=True))
    assert "onlyContainsAttributeCerts" in refusal(attributes, root)


def test_only_some_reasons_proves_revocation_but_not_absence(ca: CA) -> None:
    listed, unlisted = ca.issue_cert("a.example"), ca.issue_cert("b.example")
    idp = _idp(only_some_reasons=frozenset({x509.ReasonFlags.key_compromise}))
    crl = ca.crl([listed], reason="keyCompromise", issuing_distribution_point=idp)
    assert verdict(crl, ca, listed).status is StapleStatus.REVOKED
    result = verdict(crl, ca, unlisted)
    assert result.status is StapleStatus.INVALID
    assert "covers only the reasons keyCompromise" in result.reason


def test_a_partitioned_crl_covers_only_its_distribution_point(ca: CA) -> None:
    partition = "http://crl.example/part1.crl"
    inside = ca.issue_cert("in.example", crl_url=partition)
    outside = ca.issue_cert("out.example", crl_url="http://crl.example/part2.crl")
    nowhere = ca.issue_cert("none.example")
    idp = _idp(full_name=[x509.UniformResourceIdentifier(partition)])
    crl = ca.crl([], issuing_distribution_point=idp)
    assert verdict(crl, ca, inside).status is StapleStatus.GOOD
    for cert in (outside, nowhere):
        result = verdict(crl, ca, cert)
        assert result.status is StapleStatus.INVALID
        assert "(b)(2)(i)" in result.reason


# --- hostile bytes --------------------------------------------------------------------


def test_garbage_never_raises(ca: CA) -> None:
    for junk in (b"", b"\x00", b"\x30", b"\x30\x00", b"\x30\x80\x00\x00", b"not a crl" * 100):
        assert isinstance(judge(junk, ca), CRLRefusal)
    certificate = ca.cert.public_bytes(DER)
    assert isinstance(judge(certificate, ca), CRLRefusal)
    assert "bytes follow the CRL" in refusal(ca.crl([]) + b"\x00", ca)


def test_truncations_and_mutations_are_refused_never_good(
    ca: CA, leaf: Identity, other: Identity
) -> None:
    crl = ca.crl([leaf, other.cert.serial_number + 1], reason="keyCompromise")
    for end in range(0, len(crl) - 1, 7):
        assert isinstance(judge(crl[:end], ca), CRLRefusal), end
    rng = random.Random(8)
    for _ in range(300):
        mutated = bytearray(crl)
        for _ in range(rng.randint(1, 4)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        judged = judge(bytes(mutated), ca)
        if isinstance(judged, CRLIndex):  # only a mutation the signature does not cover
            assert crl_verdict(judged, leaf.cert, now=NOW).status is StapleStatus.REVOKED


def test_oversized_crls_are_refused_before_parsing(ca: CA) -> None:
    huge = b"\x30\x84" + (MAX_CRL_BYTES - 5).to_bytes(4, "big") + bytes(MAX_CRL_BYTES - 5)
    started = time.perf_counter()
    reason = refusal(huge, ca)
    assert time.perf_counter() - started < 0.5
    assert "more than the 33554432 judged (staplecheck's bound)" in reason


def test_wrong_argument_types_raise(ca: CA, leaf: Identity) -> None:
    crl = ca.crl([])
    with pytest.raises(TypeError):
        judge("text", ca)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        judge_crl(
            crl,
            leaf,
            issuer_der=b"",
            now=NOW,
            clock_skew=SKEW,
            default_lifetime=DAY,
            max_age=MAX_AGE,
        )  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timezone-aware"):
        judge(crl, ca, now=datetime.datetime(2026, 1, 1))
    index = judge(crl, ca)
    with pytest.raises(TypeError):
        crl_verdict(index, leaf, now=NOW)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        crl_verdict(crl, leaf.cert, now=NOW)  # type: ignore[arg-type]


def test_a_refusal_becomes_an_invalid_verdict(ca: CA, leaf: Identity) -> None:
    refused = judge(ca.crl([], corrupt_signature=True), ca)
    result = crl_verdict(refused, leaf.cert, now=NOW)
    assert result.status is StapleStatus.INVALID
    assert result.serial_number == leaf.cert.serial_number
    assert result.responder == "CRL from issuer CN=crl test CA"


def test_must_staple_is_reported(ca: CA) -> None:
    cert = ca.issue_cert("ms.example", must_staple=True)
    crl = ca.crl([])
    assert verdict(crl, ca, cert).must_staple
    assert not verdict(crl, ca, ca.issue_cert("plain.example")).must_staple


# --- size ----------------------------------------------------------------------------


def test_a_hundred_thousand_entries(ca: CA, other: Identity) -> None:
    started = time.perf_counter()
    crl = ca.crl(range(1, 100_001))
    built = time.perf_counter()
    index = judge(crl, ca)
    judged = time.perf_counter()
    assert isinstance(index, CRLIndex)
    assert len(index) == 100_000
    assert built - started < 5
    assert judged - built < 5
    assert crl_verdict(index, other.cert, now=NOW).status is StapleStatus.GOOD
    listed = ca.issue_cert("listed.example", serial_number=77_777)
    assert crl_verdict(index, listed.cert, now=NOW).status is StapleStatus.REVOKED


# --- OpenSSL as an independent judge -------------------------------------------------


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def test_differential_against_openssl_crl_and_verify(tmp_path: Path) -> None:
    openssl = require_program("openssl")
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    issuer = CA(now=now, key_type="rsa", name="openssl differential CA")
    impostor = CA(now=now, key_type="rsa", name="openssl differential CA")
    revoked, fine = issuer.issue_cert("r.example"), issuer.issue_cert("g.example")
    ca_file = _write(tmp_path / "ca.pem", issuer.cert_pem)
    cases = {
        "good": issuer.crl([revoked], reason="keyCompromise", pem=True),
        "pss": issuer.crl([revoked], rsa_pss=True, pem=True),
        "corrupt": issuer.crl([revoked], corrupt_signature=True, pem=True),
        "impostor": impostor.crl([], pem=True),
    }
    for name, crl in cases.items():
        path = _write(tmp_path / f"{name}.crl", crl)
        check = subprocess.run(
            [openssl, "crl", "-in", path, "-CAfile", ca_file, "-noout"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        openssl_ok = check.returncode == 0 and "verify OK" in check.stderr + check.stdout
        ours = judge(crl, issuer, now=now)
        assert openssl_ok == isinstance(ours, CRLIndex), (name, check.stderr)
        if not openssl_ok:
            continue
        for cert, expected in ((revoked, StapleStatus.REVOKED), (fine, StapleStatus.GOOD)):
            leaf_file = _write(tmp_path / "leaf.pem", cert.cert_pem)
            result = subprocess.run(
                [openssl, "verify", "-crl_check", "-CAfile", ca_file, "-CRLfile", path, leaf_file],
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert (result.returncode == 0) == (expected is StapleStatus.GOOD), result.stdout
            assert crl_verdict(ours, cert.cert, now=now).status is expected


_OPENSSL_CA_CONFIG = """\
[ca]
default_ca = test
[test]
dir = {dir}
database = $dir/index.txt
crlnumber = $dir/crlnumber
certificate = $dir/ca.pem
private_key = $dir/ca.key
default_md = sha256
default_crl_days = 7
"""


@pytest.mark.parametrize("key_type", ["rsa", "ecdsa", "ed25519"])
def test_crls_from_openssl_ca_gencrl(tmp_path: Path, key_type: KeyType) -> None:
    openssl = require_program("openssl")
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    issuer = CA(now=now, key_type=key_type, name="openssl ca")
    revoked, held, fine = (issuer.issue_cert(f"{n}.example") for n in ("r", "h", "g"))
    _write(tmp_path / "ca.pem", issuer.cert_pem)
    key = issuer.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write(tmp_path / "ca.key", key)
    _write(tmp_path / "index.txt", b"")
    _write(tmp_path / "crlnumber", b"1000\n")
    config = _write(tmp_path / "ca.cnf", _OPENSSL_CA_CONFIG.format(dir=tmp_path).encode())
    md = ["-md", "default"] if key_type == "ed25519" else []
    for cert, reason in ((revoked, "keyCompromise"), (held, "certificateHold")):
        leaf_file = _write(tmp_path / "leaf.pem", cert.cert_pem)
        subprocess.run(
            [openssl, "ca", "-config", config, "-revoke", leaf_file, "-crl_reason", reason,
             *(["-crl_hold", "1.2.840.10040.2.2"] if reason == "certificateHold" else [])],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
    out = tmp_path / "crl.pem"
    subprocess.run(
        [openssl, "ca", "-config", config, "-gencrl", "-out", str(out), *md],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    crl = out.read_bytes()
    index = judge(crl, issuer, now=now)
    assert isinstance(index, CRLIndex), index
    assert index.crl_number == 0x1000
    first = crl_verdict(index, revoked.cert, now=now)
    assert (first.status, first.revocation_reason) == (StapleStatus.REVOKED, "keyCompromise")
    second = crl_verdict(index, held.cert, now=now)
    assert (second.status, second.revocation_reason) == (StapleStatus.REVOKED, "certificateHold")
    assert crl_verdict(index, fine.cert, now=now).status is StapleStatus.GOOD
    assert crl_verdict(index, fine.cert, now=now + 8 * DAY).status is StapleStatus.STALE


# --- the helpers ----------------------------------------------------------------------


def test_the_factory_output_parses_with_cryptography(ca: CA, leaf: Identity) -> None:
    crl = x509.load_der_x509_crl(
        ca.crl(
            [leaf],
            reason="keyCompromise",
            crl_number=42,
            issuing_distribution_point=_idp(only_contains_user_certs=True),
        )
    )
    assert crl.is_signature_valid(ca.cert.public_key())  # type: ignore[arg-type]
    entry = crl.get_revoked_certificate_by_serial_number(leaf.cert.serial_number)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason is (
        x509.ReasonFlags.key_compromise
    )
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 42
    idp = crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint)
    assert idp.critical
    assert idp.value.only_contains_user_certs
    tbs = x509.load_der_x509_crl(make_crl(ca, [leaf])).tbs_certlist_bytes
    assert tbs == x509.load_der_x509_crl(ca.crl([leaf])).tbs_certlist_bytes


def test_issue_cert_with_crl_urls(ca: CA) -> None:
    one = ca.issue_cert("a.example", crl_url=URL)
    points = one.cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert [p.full_name for p in points] == [[x509.UniformResourceIdentifier(URL)]]
    two = ca.issue_cert("b.example", crl_url=[URL, URL + "2"])
    points = two.cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert len(list(points)) == 2


def _get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, b""


def test_crl_server_serves_over_http(ca: CA, leaf: Identity) -> None:
    crl = ca.crl([leaf], reason="keyCompromise")
    with CRLServer({"/ca.crl": crl}) as server:
        cert = ca.issue_cert("served.example", crl_url=server.url("/ca.crl"))
        points = cert.cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
        url = points[0].full_name[0].value  # type: ignore[index]
        status, body = _get(url)
        assert (status, body) == (200, crl)
        assert verdict(body, ca, leaf).status is StapleStatus.REVOKED
        assert _get(server.url("/missing.crl"))[0] == 404
        server.set_crl("/new.crl", ca.crl([]))
        assert verdict(_get(server.url("/new.crl"))[1], ca, leaf).status is StapleStatus.GOOD
        server.remove_crl("/new.crl")
        assert _get(server.url("/new.crl"))[0] == 404
        assert server.requests == 4
        assert [r.status for r in server.history] == [200, 404, 200, 404]


def test_crl_server_misbehaves_on_request(ca: CA) -> None:
    crl = ca.crl([])
    with CRLServer({"/ca.crl": crl, "/other.crl": crl}) as server:
        url = server.url("/ca.crl")
        server.misbehave("garbage")
        status, body = _get(url)
        assert status == 200
        assert isinstance(judge(body, ca), CRLRefusal)
        server.misbehave("not-found")
        assert _get(url)[0] == 404
        server.misbehave("server-error")
        assert _get(url)[0] == 500
        server.behave()
        server.misbehave("redirect", path="/ca.crl")
        assert _get(url) == (200, crl)  # urllib follows; a production fetcher must not
        assert [r.status for r in server.history[-2:]] == [302, 200]
        assert server.history[-1].path == "/ca.crl?redirected"
        assert _get(server.url("/other.crl")) == (200, crl)  # only that path misbehaved
        server.behave()
        server.misbehave("truncated")
        with pytest.raises(http.client.IncompleteRead):
            _get(url)
        server.misbehave("oversized", size=MAX_CRL_BYTES + 1)
        with urllib.request.urlopen(url, timeout=5) as response:
            assert int(response.headers["Content-Length"]) == MAX_CRL_BYTES + 1
            head = response.read(1 << 20)
            assert head[:2] == b"\x30\x84"
            assert len(head) == 1 << 20
        server.misbehave("slow", delay=2.0)
        started = time.monotonic()
        with pytest.raises((socket.timeout, urllib.error.URLError, TimeoutError)):
            _get(url, timeout=0.3)
        assert time.monotonic() - started < 1.5
        server.behave()
        assert _get(url) == (200, crl)
        with pytest.raises(ValueError, match="mode must be one of"):
            server.misbehave("explode")
    # stop() returned with the slow answer still waiting: it woke it.
