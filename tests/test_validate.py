"""validate_staple: every rule of DESIGN.md, each with a passing and a failing case.

Responses are real DER signed with real keys (staplecheck.testing); time is fixed at
NOW. Validation runs with ``cache=None`` unless a test is about the cache.
"""

from __future__ import annotations

import dataclasses
import datetime
import itertools
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Union

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID

from staplecheck import StapleCache, StapleResult, StapleStatus, validate_staple
from staplecheck._cache import LRUCache
from staplecheck.testing import CA, Identity, KeyType, OCSPEntry, RawExtension
from tests.conftest import NOW, PKI

GOOD = StapleStatus.GOOD
REVOKED = StapleStatus.REVOKED
UNKNOWN = StapleStatus.UNKNOWN
STALE = StapleStatus.STALE
INVALID = StapleStatus.INVALID
MISSING = StapleStatus.MISSING

MINUTE = datetime.timedelta(minutes=1)
HOUR = datetime.timedelta(hours=1)
DAY = datetime.timedelta(days=1)

NONCE = "1.3.6.1.5.5.7.48.1.2"
UNKNOWN_OID = "1.3.6.1.4.1.55555.1.2.3"
NONCE_VALUE = b"\x04\x10" + bytes(range(16))  # OCTET STRING of 16 bytes

CertLike = Union[x509.Certificate, Identity, CA]


def _cert(thing: CertLike) -> x509.Certificate:
    return thing if isinstance(thing, x509.Certificate) else thing.cert


def expect(result: StapleResult, status: StapleStatus, *words: str) -> None:
    """``result`` has ``status``; a non-good one explains itself with ``words``."""
    assert result.status is status, result.reason
    assert isinstance(result.reason, str)
    assert result.reason.strip()
    for word in words:
        assert word.lower() in result.reason.lower(), (word, result.reason)


class Bench:
    """The session PKI's intermediate, its leaf, and shortcuts to staple and judge."""

    def __init__(self, pki: PKI) -> None:
        self.pki = pki
        self.ca = pki.intermediate
        self.leaf = pki.leaf

    def staple(self, status: str = "good", *, cert: Any = ..., **options: Any) -> bytes:
        """A DER response from the bench issuer about ``cert`` (default: the bench leaf)."""
        return self.ca.ocsp_response(self.leaf if cert is ... else cert, status, **options)

    def judge(
        self,
        der: bytes,
        *,
        leaf: CertLike | None = None,
        issuer: CertLike | None = None,
        now: datetime.datetime = NOW,
        **options: Any,
    ) -> StapleResult:
        options.setdefault("cache", None)
        return validate_staple(
            der, _cert(leaf or self.leaf), _cert(issuer or self.ca), now=now, **options
        )

    def verdict(self, status: str = "good", **options: Any) -> StapleResult:
        """Staple about the bench leaf from its issuer, judged at NOW with defaults."""
        return self.judge(self.staple(status, **options))

    def entries(self, *statuses: str, **options: Any) -> list[OCSPEntry]:
        """SingleResponses for the bench leaf, in order."""
        return [
            OCSPEntry(
                serial_number=self.leaf.cert.serial_number,
                status=status,
                revocation_reason="keyCompromise" if status == "revoked" else None,
                **options,
            )
            for status in statuses
        ]


@pytest.fixture(scope="module")
def bench(pki: PKI) -> Bench:
    return Bench(pki)


@pytest.fixture(scope="module")
def other_ca() -> CA:
    """An unrelated root with a name of its own."""
    return CA(now=NOW, name="some other CA")


@pytest.fixture(scope="module")
def impostor_ca(pki: PKI) -> CA:
    """A different CA (different key) bearing the real issuer's subject name."""
    impostor = CA(now=NOW, name="staplecheck test intermediate")
    assert impostor.cert.subject == pki.intermediate.cert.subject
    return impostor


@pytest.fixture(scope="module")
def delegate(pki: PKI) -> Identity:
    return pki.intermediate.issue_responder()


class Signers:
    """Responders with every key type, made once per module.

    ``issuer``: a root CA with that key type signs about a leaf it issued.
    ``delegate``: a delegated responder with that key type, issued by the bench issuer.
    """

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self._cas: dict[KeyType, tuple[CA, Identity]] = {}
        self._delegates: dict[KeyType, Identity] = {}

    def ca(self, key_type: KeyType) -> tuple[CA, Identity]:
        if key_type not in self._cas:
            ca = CA(now=NOW, key_type=key_type, name=f"{key_type} test CA")
            self._cas[key_type] = (ca, ca.issue_cert(f"{key_type}.example"))
        return self._cas[key_type]

    def delegate(self, key_type: KeyType) -> Identity:
        if key_type not in self._delegates:
            self._delegates[key_type] = self.bench.ca.issue_responder(key_type=key_type)
        return self._delegates[key_type]

    def verdict(self, key_type: KeyType, how: str = "delegate", **options: Any) -> StapleResult:
        if how == "issuer":
            ca, leaf = self.ca(key_type)
            return self.bench.judge(ca.ocsp_response(leaf, **options), leaf=leaf, issuer=ca)
        return self.bench.verdict(responder=self.delegate(key_type), **options)


@pytest.fixture(scope="module")
def signers(bench: Bench) -> Signers:
    return Signers(bench)


# --- the happy path and the facts reported -------------------------------------------


def test_good_staple_reports_its_facts(bench: Bench) -> None:
    result = bench.verdict()
    expect(result, GOOD)
    assert result.is_good
    assert result.this_update == NOW
    assert result.next_update == NOW + DAY
    assert result.produced_at == NOW
    assert result.revocation_time is None
    assert result.revocation_reason is None
    assert result.serial_number == bench.leaf.cert.serial_number
    assert result.responder == "issuer CN=staplecheck test intermediate"


def test_result_times_are_timezone_aware_utc(bench: Bench) -> None:
    result = bench.verdict("revoked", revocation_time=NOW - 3 * HOUR, produced_at=NOW + MINUTE)
    for moment in (
        result.this_update,
        result.next_update,
        result.produced_at,
        result.revocation_time,
    ):
        assert isinstance(moment, datetime.datetime)
        assert moment.utcoffset() == datetime.timedelta(0)
    assert result.revocation_time == NOW - 3 * HOUR
    assert result.produced_at == NOW + MINUTE


def test_now_in_another_timezone_means_the_same_instant(bench: Bench) -> None:
    tokyo = datetime.timezone(datetime.timedelta(hours=9))
    der = bench.staple(next_update=NOW + HOUR)
    expect(bench.judge(der, now=(NOW + 30 * MINUTE).astimezone(tokyo)), GOOD)
    expect(bench.judge(der, now=(NOW + 2 * HOUR).astimezone(tokyo)), STALE)


@pytest.mark.parametrize(
    "reason",
    [
        "unspecified",
        "keyCompromise",
        "cACompromise",
        "affiliationChanged",
        "superseded",
        "cessationOfOperation",
        "certificateHold",
        "removeFromCRL",
        "privilegeWithdrawn",
        "aACompromise",
    ],
)
def test_revocation_time_and_reason_are_reported(bench: Bench, reason: str) -> None:
    revoked_at = NOW - 5 * DAY
    result = bench.verdict("revoked", revocation_time=revoked_at, revocation_reason=reason)
    expect(result, REVOKED, "revoked", reason)
    assert result.revocation_time == revoked_at
    assert result.revocation_reason == reason


def test_revoked_without_a_reason_reports_none(bench: Bench) -> None:
    result = bench.verdict("revoked")
    expect(result, REVOKED, "revoked")
    assert result.revocation_reason is None
    assert result.revocation_time == NOW - HOUR


def test_unknown_is_reported(bench: Bench) -> None:
    expect(bench.verdict("unknown"), UNKNOWN, "does not know")


@pytest.mark.parametrize(("which", "flag"), [("leaf", False), ("must_staple_leaf", True)])
def test_must_staple_flag_reflects_the_leaf(bench: Bench, which: str, flag: bool) -> None:
    leaf: Identity = getattr(bench.pki, which)
    good = bench.judge(bench.staple(cert=leaf), leaf=leaf)
    invalid = bench.judge(bench.staple(cert=leaf, corrupt_signature=True), leaf=leaf)
    missing = bench.judge(b"", leaf=leaf)
    assert [r.status for r in (good, invalid, missing)] == [GOOD, INVALID, MISSING]
    assert [r.must_staple for r in (good, invalid, missing)] == [flag, flag, flag]


# --- rule 1: parse, successful response ----------------------------------------------


@pytest.mark.parametrize(
    ("response_status", "words"),
    [
        ("malformedRequest", "malformed request"),
        ("internalError", "internal error"),
        ("tryLater", "try later"),
        ("sigRequired", "sig required"),
        ("unauthorized", "unauthorized"),
    ],
)
def test_unsuccessful_response_status_is_invalid(
    bench: Bench, response_status: str, words: str
) -> None:
    result = bench.verdict(response_status=response_status)
    expect(result, INVALID, "responseStatus", words)
    assert result.this_update is None
    assert result.serial_number == bench.leaf.cert.serial_number


def _malformed(good: bytes) -> Iterator[tuple[str, bytes]]:
    yield "junk", b"junk"
    yield "one byte", b"\x30"
    yield "empty sequence", b"\x30\x00"
    yield "truncated by one", good[:-1]
    yield "truncated by half", good[: len(good) // 2]
    yield "trailing bytes", good + b"\x00\x00"
    yield "length lies", good[:1] + b"\x84\xff\xff\xff\xff" + good[4:]
    yield "successful without body", b"\x30\x03\x0a\x01\x00"
    yield "zeros", bytes(64)


def test_malformed_input_is_invalid_and_never_raises(bench: Bench) -> None:
    good = bench.staple()
    for label, der in _malformed(good):
        result = bench.judge(der)
        assert result.status is INVALID, label
        assert result.reason, label
        assert result.serial_number == bench.leaf.cert.serial_number, label


def test_every_single_byte_corruption_is_judged_without_raising(bench: Bench) -> None:
    good = bench.staple()
    for position in range(len(good)):
        broken = good[:position] + bytes([good[position] ^ 0xFF]) + good[position + 1 :]
        result = bench.judge(broken)
        assert result.status is not GOOD, position
        assert result.reason, position


def test_empty_staple_is_missing(bench: Bench) -> None:
    result = bench.judge(b"")
    expect(result, MISSING, "no OCSP response")
    assert result.serial_number == bench.leaf.cert.serial_number
    assert result.this_update is None


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview])
def test_bytes_like_staples_are_accepted(bench: Bench, wrap: Callable[[bytes], Any]) -> None:
    expect(bench.judge(wrap(bench.staple())), GOOD)
    expect(bench.judge(wrap(b"")), MISSING)


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("der", "not bytes"),
        ("der", None),
        ("der", 42),
        ("leaf", b"a certificate in bytes"),
        ("leaf", None),
        ("issuer", "issuer"),
        ("issuer", None),
        ("now", "2026-11-21T12:00:00Z"),
        ("now", NOW.timestamp()),
        ("now", NOW.date()),
    ],
)
def test_wrong_argument_types_raise_type_error(bench: Bench, argument: str, value: Any) -> None:
    arguments: dict[str, Any] = {
        "der": bench.staple(),
        "leaf": bench.leaf.cert,
        "issuer": bench.ca.cert,
        "now": NOW,
    }
    arguments[argument] = value
    with pytest.raises(TypeError, match=argument):
        validate_staple(arguments.pop("der"), arguments.pop("leaf"), **arguments)


def test_naive_now_raises_value_error(bench: Bench) -> None:
    with pytest.raises(ValueError, match="timezone"):
        bench.judge(bench.staple(), now=NOW.replace(tzinfo=None))


# --- rule 2: the CertID ----------------------------------------------------------------


@pytest.mark.parametrize("digest", ["sha1", "sha256", "sha384", "sha512"])
def test_cert_id_hashes_are_matched(bench: Bench, digest: str) -> None:
    expect(bench.verdict(cert_id_hash=digest), GOOD)


def test_md5_cert_id_is_invalid(bench: Bench) -> None:
    expect(bench.verdict(cert_id_hash="md5"), INVALID, "no entry", "RFC 6960")


def test_hand_built_entry_for_the_leaf_is_good(bench: Bench) -> None:
    """The control for the CertID cases below: only the changed field differs."""
    expect(bench.verdict(cert=None, extra_entries=bench.entries("good")), GOOD)


def test_wrong_serial_is_invalid(bench: Bench) -> None:
    entry = OCSPEntry(serial_number=bench.leaf.cert.serial_number + 1)
    result = bench.verdict(cert=None, extra_entries=[entry])
    expect(result, INVALID, "no entry", f"{bench.leaf.cert.serial_number:#x}")


def test_staple_for_another_certificate_is_invalid(bench: Bench) -> None:
    other = bench.pki.must_staple_leaf
    der = bench.staple(cert=other)
    expect(bench.judge(der, leaf=other), GOOD)
    expect(bench.judge(der), INVALID, "no entry")


@pytest.mark.parametrize(
    "issuer",
    [
        pytest.param(lambda b, other, impostor: other, id="other-name-other-key"),
        pytest.param(lambda b, other, impostor: impostor, id="same-name-other-key"),
        pytest.param(
            lambda b, other, impostor: CA(now=NOW, name="renamed", key=b.ca.private_key),
            id="other-name-same-key",
        ),
    ],
)
def test_cert_id_naming_another_ca_is_invalid(
    bench: Bench, other_ca: CA, impostor_ca: CA, issuer: Callable[..., CA]
) -> None:
    entry = OCSPEntry(
        serial_number=bench.leaf.cert.serial_number, issuer=issuer(bench, other_ca, impostor_ca)
    )
    expect(bench.verdict(cert=None, extra_entries=[entry]), INVALID, "no entry")


def test_issuer_that_did_not_issue_the_leaf_is_invalid(bench: Bench, other_ca: CA) -> None:
    expect(bench.judge(bench.staple(), issuer=other_ca), INVALID)


# --- rule 2: several SingleResponses ---------------------------------------------------


@pytest.mark.parametrize(
    ("order", "status"),
    [
        (("revoked", "good"), REVOKED),
        (("good", "revoked"), REVOKED),
        (("unknown", "revoked", "good"), REVOKED),
        (("good", "unknown"), GOOD),
        (("unknown", "good"), GOOD),
        (("unknown", "unknown"), UNKNOWN),
        (("good", "good"), GOOD),
    ],
)
def test_the_most_serious_matching_entry_wins(
    bench: Bench, order: tuple[str, ...], status: StapleStatus
) -> None:
    expect(bench.verdict(cert=None, extra_entries=bench.entries(*order)), status)


@pytest.mark.parametrize("status", ["good", "revoked", "unknown"])
def test_unrelated_entries_do_not_matter(bench: Bench, other_ca: CA, status: str) -> None:
    serial = bench.leaf.cert.serial_number
    unrelated = [
        OCSPEntry(serial_number=serial + 1, status="revoked"),
        OCSPEntry(serial_number=serial, status="revoked", issuer=other_ca),
        OCSPEntry(serial_number=serial, status="revoked", cert_id_hash="md5"),
        OCSPEntry(serial_number=serial - 1, status="unknown"),
    ]
    entries = unrelated[:2] + bench.entries(status) + unrelated[2:]
    result = bench.verdict(cert=None, extra_entries=entries)
    expect(result, StapleStatus(status))


# --- rule 3: who signed ---------------------------------------------------------------


@pytest.mark.parametrize("responder_id", ["name", "key"])
def test_issuer_signed_by_name_or_key(bench: Bench, responder_id: str) -> None:
    result = bench.verdict(responder_id=responder_id)
    expect(result, GOOD)
    assert result.responder == "issuer CN=staplecheck test intermediate"


@pytest.mark.parametrize("responder_id", ["name", "key"])
def test_issuer_signed_with_its_certificate_embedded(bench: Bench, responder_id: str) -> None:
    der = bench.staple(responder_id=responder_id, include_certs=[bench.ca.cert])
    expect(bench.judge(der), GOOD)


@pytest.mark.parametrize("responder_id", ["name", "key"])
def test_delegated_responder_by_name_or_key(
    bench: Bench, delegate: Identity, responder_id: str
) -> None:
    result = bench.verdict(responder=delegate, responder_id=responder_id)
    expect(result, GOOD)
    assert result.responder == "delegated responder CN=staplecheck test OCSP responder"


def test_delegate_among_other_embedded_certificates(
    bench: Bench, delegate: Identity, other_ca: CA
) -> None:
    embedded = [other_ca.cert, bench.pki.root.cert, delegate.cert]
    expect(bench.verdict(responder=delegate, include_certs=embedded), GOOD)


def test_delegate_without_ocsp_signing_eku_is_invalid(bench: Bench) -> None:
    no_eku = bench.ca.issue_responder(ocsp_signing=False)
    expect(bench.verdict(responder=no_eku), INVALID, "OCSPSigning", "RFC 6960 §4.2.2.2")


def test_delegate_from_another_ca_is_invalid(bench: Bench, other_ca: CA) -> None:
    foreign = other_ca.issue_responder()
    expect(bench.verdict(responder=foreign), INVALID, "not issued by the issuer")


def test_delegate_with_forged_issuer_name_is_invalid(bench: Bench, impostor_ca: CA) -> None:
    forged = impostor_ca.issue_responder()
    assert forged.cert.issuer == bench.ca.cert.subject
    result = bench.verdict(responder=forged)
    expect(result, INVALID, "signature does not verify", "RFC 6960 §4.2.2.2")


@pytest.mark.parametrize(
    ("validity", "judged_at"),
    [
        pytest.param((NOW - 10 * DAY, NOW - HOUR), NOW, id="expired"),
        pytest.param((NOW + HOUR, NOW + 30 * DAY), NOW, id="not-yet-valid"),
        pytest.param((NOW - HOUR, NOW + 2 * DAY), NOW + 3 * DAY, id="expires-before-now"),
    ],
)
def test_delegate_outside_its_validity_is_invalid(
    bench: Bench,
    validity: tuple[datetime.datetime, datetime.datetime],
    judged_at: datetime.datetime,
) -> None:
    not_before, not_after = validity
    responder = bench.ca.issue_responder(not_before=not_before, not_after=not_after)
    der = bench.staple(
        responder=responder,
        this_update=not_before + MINUTE,
        next_update=not_before + 30 * DAY,
    )
    expect(bench.judge(der, now=judged_at), INVALID, "not valid now")
    expect(bench.judge(der, now=not_before + 2 * MINUTE), GOOD)


def test_renewed_delegate_among_same_named_certificates(bench: Bench, delegate: Identity) -> None:
    retired = bench.ca.issue_responder(not_before=NOW - 30 * DAY, not_after=NOW - DAY)
    assert retired.cert.subject == delegate.cert.subject
    embedded = [retired.cert, delegate.cert]
    expect(bench.verdict(responder=delegate, include_certs=embedded), GOOD)
    expect(bench.verdict(responder=delegate, include_certs=embedded[::-1]), GOOD)
    signed_by_retired = bench.verdict(responder=retired, include_certs=embedded)
    expect(signed_by_retired, INVALID, "not valid now")


def _recertified(
    ca: CA,
    key_owner: Identity,
    *,
    not_after: datetime.datetime,
    name: str | None = None,
    usage: x509.ObjectIdentifier | None = None,
) -> Identity:
    """A new certificate from ``ca`` for ``key_owner``'s key, as a renewal gives.

    It copies the owner's name and extensions, unless ``name`` and an extended key
    ``usage`` are given, which replace them.
    """
    subject = key_owner.cert.subject
    if name is not None:
        subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.cert.subject)
        .public_key(key_owner.cert.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_after - 30 * DAY)
        .not_valid_after(not_after)
    )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    else:
        for extension in key_owner.cert.extensions:
            builder = builder.add_extension(extension.value, extension.critical)
    cert = builder.sign(ca.private_key, hashes.SHA256())
    return dataclasses.replace(key_owner, cert=cert, chain=(cert, *ca.chain))


def test_same_key_in_an_expired_and_a_current_certificate(bench: Bench, delegate: Identity) -> None:
    expired = _recertified(bench.ca, delegate, not_after=NOW - DAY).cert
    for embedded in ([expired, delegate.cert], [delegate.cert, expired]):
        expect(bench.verdict(responder=delegate, include_certs=embedded), GOOD)
    only_expired = bench.verdict(responder=delegate, include_certs=[expired])
    expect(only_expired, INVALID, "not valid now")


def test_look_alike_delegate_neither_hides_nor_borrows_the_real_one(
    bench: Bench, delegate: Identity, impostor_ca: CA
) -> None:
    look_alike = impostor_ca.issue_responder()
    assert look_alike.cert.subject == delegate.cert.subject
    embedded = [look_alike.cert, delegate.cert]
    expect(bench.verdict(responder=delegate, include_certs=embedded), GOOD)
    borrowed = bench.verdict(responder=look_alike, include_certs=embedded)
    expect(borrowed, INVALID, "signature does not verify")


def test_leaf_cannot_be_its_own_responder(bench: Bench) -> None:
    # A leaf that would otherwise qualify as a delegate: issued by the issuer, with
    # id-kp-OCSPSigning. It may vouch for other certificates, never for itself.
    selfie = bench.ca.issue_cert("selfie.example", extra_usages=[ExtendedKeyUsageOID.OCSP_SIGNING])
    expect(bench.verdict(responder=selfie), GOOD)
    about_itself = bench.staple(cert=selfie, responder=selfie)
    expect(bench.judge(about_itself, leaf=selfie), INVALID, "itself")


def test_leaf_key_in_a_responder_certificate_cannot_vouch_for_the_leaf(bench: Bench) -> None:
    in_disguise = _recertified(
        bench.ca,
        bench.leaf,
        not_after=NOW + DAY,
        name="disguised responder",
        usage=ExtendedKeyUsageOID.OCSP_SIGNING,
    )
    must_staple_leaf = bench.pki.must_staple_leaf
    about_other = bench.staple(cert=must_staple_leaf, responder=in_disguise)
    expect(bench.judge(about_other, leaf=must_staple_leaf), GOOD)
    expect(bench.verdict(responder=in_disguise), INVALID, "itself")


def test_plain_leaf_as_responder_is_invalid(bench: Bench) -> None:
    leaf = bench.leaf
    expect(bench.verdict(responder=leaf), INVALID)


@pytest.mark.parametrize("responder_id", ["name", "key"])
def test_response_signed_by_another_ca_is_invalid(
    bench: Bench, other_ca: CA, responder_id: str
) -> None:
    result = bench.verdict(responder=other_ca, responder_id=responder_id)
    expect(result, INVALID, "ResponderID names neither")


def test_response_signed_by_a_ca_with_the_issuers_name_is_invalid(
    bench: Bench, impostor_ca: CA
) -> None:
    result = bench.verdict(responder=impostor_ca)
    expect(result, INVALID, "signature does not verify")


@pytest.mark.parametrize("responder_id", ["name", "key"])
def test_root_of_the_chain_is_no_responder_for_the_intermediates_leaf(
    bench: Bench, responder_id: str
) -> None:
    root = bench.pki.root
    embedded = bench.verdict(responder=root, responder_id=responder_id, include_certs=[root.cert])
    expect(embedded, INVALID, "not issued by the issuer")
    bare = bench.verdict(responder=root, responder_id=responder_id)
    expect(bare, INVALID, "ResponderID")


@pytest.mark.parametrize("responder_id", ["name", "key"])
def test_responder_id_naming_nobody_is_invalid(
    bench: Bench, delegate: Identity, other_ca: CA, responder_id: str
) -> None:
    for embedded in ([], [other_ca.cert], [bench.pki.root.cert]):
        result = bench.verdict(
            responder=delegate, responder_id=responder_id, include_certs=embedded
        )
        expect(result, INVALID, "ResponderID names neither")


# --- rule 4: the signature ------------------------------------------------------------

SIGNATURES = [
    pytest.param("rsa", {"signature_hash": "sha1"}, id="rsa-pkcs1-sha1"),
    pytest.param("rsa", {"signature_hash": "sha256"}, id="rsa-pkcs1-sha256"),
    pytest.param("rsa", {"signature_hash": "sha384"}, id="rsa-pkcs1-sha384"),
    pytest.param("rsa", {"signature_hash": "sha512"}, id="rsa-pkcs1-sha512"),
    pytest.param("rsa", {"rsa_pss": True, "signature_hash": "sha256"}, id="rsa-pss-sha256"),
    pytest.param("rsa", {"rsa_pss": True, "signature_hash": "sha384"}, id="rsa-pss-sha384"),
    pytest.param("rsa", {"rsa_pss": True, "signature_hash": "sha512"}, id="rsa-pss-sha512"),
    pytest.param("ecdsa", {"signature_hash": "sha256"}, id="ecdsa-p256"),
    pytest.param("ecdsa-p384", {"signature_hash": "sha384"}, id="ecdsa-p384"),
    pytest.param("ecdsa-p521", {"signature_hash": "sha512"}, id="ecdsa-p521"),
    pytest.param("ed25519", {}, id="ed25519"),
    pytest.param("ed448", {}, id="ed448"),
]


@pytest.mark.parametrize("how", ["issuer", "delegate"])
@pytest.mark.parametrize(("key_type", "signing"), SIGNATURES)
def test_supported_signatures_verify(
    signers: Signers, key_type: KeyType, signing: dict[str, Any], how: str
) -> None:
    expect(signers.verdict(key_type, how, **signing), GOOD)


@pytest.mark.parametrize("how", ["issuer", "delegate"])
@pytest.mark.parametrize(("key_type", "signing"), SIGNATURES)
def test_corrupted_signatures_are_invalid(
    signers: Signers, key_type: KeyType, signing: dict[str, Any], how: str
) -> None:
    result = signers.verdict(key_type, how, corrupt_signature=True, **signing)
    expect(result, INVALID, "does not verify")


@pytest.mark.parametrize("how", ["issuer", "delegate"])
@pytest.mark.parametrize(
    ("key_type", "words"), [("dsa", "not supported"), ("ecdsa-secp256k1", "secp256k1")]
)
def test_unsupported_responder_keys_are_invalid(
    signers: Signers, key_type: KeyType, words: str, how: str
) -> None:
    expect(signers.verdict(key_type, how), INVALID, words)


@pytest.mark.parametrize(
    ("key_type", "signing", "claimed", "words"),
    [
        pytest.param(
            "ecdsa", {}, "1.2.840.10045.4.3.3", "does not verify", id="ecdsa-sha256-as-sha384"
        ),
        pytest.param("ecdsa", {}, "1.2.840.113549.1.1.11", "not supported", id="ecdsa-as-rsa"),
        pytest.param(
            "rsa", {}, "1.2.840.113549.1.1.13", "does not verify", id="rsa-sha256-as-sha512"
        ),
        pytest.param("rsa", {}, "1.2.840.113549.1.1.10", "RSA-PSS parameters", id="pkcs1-as-pss"),
        pytest.param(
            "rsa", {"rsa_pss": True}, "1.2.840.113549.1.1.11", "does not verify", id="pss-as-pkcs1"
        ),
        pytest.param("rsa", {}, "1.2.840.10045.4.3.2", "not supported", id="rsa-as-ecdsa"),
        pytest.param("ed25519", {}, "1.3.101.113", "not supported", id="ed25519-as-ed448"),
        pytest.param("ed448", {}, "1.3.101.112", "not supported", id="ed448-as-ed25519"),
        pytest.param("ecdsa", {}, "1.2.3.4.5", "not supported", id="made-up-oid"),
    ],
)
def test_signature_oid_claiming_another_algorithm_is_invalid(
    signers: Signers, key_type: KeyType, signing: dict[str, Any], claimed: str, words: str
) -> None:
    expect(signers.verdict(key_type, signature_oid=claimed, **signing), INVALID, words)


@pytest.mark.parametrize(
    ("key_type", "true_oid"),
    [
        ("ecdsa", "1.2.840.10045.4.3.2"),
        ("rsa", "1.2.840.113549.1.1.11"),
        ("ed25519", "1.3.101.112"),
    ],
)
def test_signature_oid_naming_the_true_algorithm_is_good(
    signers: Signers, key_type: KeyType, true_oid: str
) -> None:
    """The control for the case above: the override itself breaks nothing."""
    expect(signers.verdict(key_type, signature_oid=true_oid), GOOD)


# --- rule 5: time ------------------------------------------------------------------------

TIME_CASES = [
    # (id, staple options, validate options, expected, words in the reason)
    ("this-update-now", {}, {}, GOOD, ()),
    ("this-update-within-skew", {"this_update": NOW + 4 * MINUTE}, {}, GOOD, ()),
    ("this-update-beyond-skew", {"this_update": NOW + 6 * MINUTE}, {}, INVALID, ("future",)),
    (
        "next-update-past-beyond-skew",
        {"this_update": NOW - 2 * DAY, "next_update": NOW - 6 * MINUTE},
        {},
        STALE,
        ("nextUpdate",),
    ),
    (
        "next-update-past-within-skew",
        {"this_update": NOW - 2 * DAY, "next_update": NOW - 4 * MINUTE},
        {},
        GOOD,
        (),
    ),
    (
        "next-update-before-this-update",
        {"this_update": NOW - HOUR, "next_update": NOW - 2 * HOUR},
        {},
        INVALID,
        ("nextUpdate is before thisUpdate",),
    ),
    ("no-next-update-fresh", {"this_update": NOW - HOUR, "next_update": None}, {}, GOOD, ()),
    (
        "no-next-update-just-inside-lifetime-and-skew",
        {"this_update": NOW - DAY - 4 * MINUTE, "next_update": None},
        {},
        GOOD,
        (),
    ),
    (
        "no-next-update-older-than-lifetime",
        {"this_update": NOW - DAY - 6 * MINUTE, "next_update": None},
        {},
        STALE,
        ("default lifetime",),
    ),
    (
        "older-than-max-age-with-far-next-update",
        {"this_update": NOW - 11 * DAY, "next_update": NOW + 30 * DAY},
        {},
        STALE,
        ("maximum age",),
    ),
    (
        "younger-than-max-age-with-far-next-update",
        {"this_update": NOW - 9 * DAY, "next_update": NOW + 30 * DAY},
        {},
        GOOD,
        (),
    ),
    # revocation is final when stale, except a hold
    (
        "revoked-stale-stays-revoked",
        {
            "status": "revoked",
            "revocation_reason": "keyCompromise",
            "this_update": NOW - 3 * DAY,
            "next_update": NOW - 2 * DAY,
        },
        {},
        REVOKED,
        ("keyCompromise",),
    ),
    (
        "revoked-without-reason-stale-stays-revoked",
        {"status": "revoked", "this_update": NOW - 3 * DAY, "next_update": NOW - 2 * DAY},
        {},
        REVOKED,
        (),
    ),
    (
        "revoked-older-than-max-age-stays-revoked",
        {"status": "revoked", "this_update": NOW - 20 * DAY, "next_update": NOW + DAY},
        {},
        REVOKED,
        (),
    ),
    (
        "certificate-hold-stale-is-stale",
        {
            "status": "revoked",
            "revocation_reason": "certificateHold",
            "this_update": NOW - 3 * DAY,
            "next_update": NOW - 2 * DAY,
        },
        {},
        STALE,
        ("nextUpdate", "revoked"),
    ),
    (
        "certificate-hold-fresh-is-revoked",
        {"status": "revoked", "revocation_reason": "certificateHold"},
        {},
        REVOKED,
        ("certificateHold",),
    ),
    (
        "revoked-in-the-future-is-invalid",
        {"status": "revoked", "this_update": NOW + HOUR},
        {},
        INVALID,
        ("future",),
    ),
    (
        "unknown-stale-is-stale",
        {"status": "unknown", "this_update": NOW - 3 * DAY, "next_update": NOW - 2 * DAY},
        {},
        STALE,
        ("nextUpdate",),
    ),
    # custom parameters
    (
        "custom-skew-allows-future",
        {"this_update": NOW + 30 * MINUTE},
        {"clock_skew": HOUR},
        GOOD,
        (),
    ),
    (
        "zero-skew-refuses-future",
        {"this_update": NOW + MINUTE},
        {"clock_skew": datetime.timedelta(0)},
        INVALID,
        ("future",),
    ),
    (
        "zero-skew-refuses-past-next-update",
        {"this_update": NOW - HOUR, "next_update": NOW - MINUTE},
        {"clock_skew": datetime.timedelta(0)},
        STALE,
        ("nextUpdate",),
    ),
    (
        "custom-skew-allows-past-next-update",
        {"this_update": NOW - DAY, "next_update": NOW - 50 * MINUTE},
        {"clock_skew": HOUR},
        GOOD,
        (),
    ),
    (
        "longer-default-lifetime",
        {"this_update": NOW - 36 * HOUR, "next_update": None},
        {"default_lifetime": 2 * DAY},
        GOOD,
        (),
    ),
    (
        "shorter-default-lifetime",
        {"this_update": NOW - 2 * HOUR, "next_update": None},
        {"default_lifetime": HOUR},
        STALE,
        ("default lifetime",),
    ),
    (
        "shorter-max-age",
        {"this_update": NOW - 2 * DAY, "next_update": NOW + 5 * DAY},
        {"max_age": DAY},
        STALE,
        ("maximum age",),
    ),
    (
        "longer-max-age",
        {"this_update": NOW - 20 * DAY, "next_update": NOW + 30 * DAY},
        {"max_age": 30 * DAY},
        GOOD,
        (),
    ),
]


@pytest.mark.parametrize(
    ("staple_options", "validate_options", "status", "words"),
    [pytest.param(*case[1:], id=case[0]) for case in TIME_CASES],
)
def test_time_rules(
    bench: Bench,
    staple_options: dict[str, Any],
    validate_options: dict[str, Any],
    status: StapleStatus,
    words: tuple[str, ...],
) -> None:
    staple_options = dict(staple_options)
    der = bench.staple(staple_options.pop("status", "good"), **staple_options)
    expect(bench.judge(der, **validate_options), status, *words)


def test_stale_and_invalid_keep_the_staples_facts(bench: Bench) -> None:
    stale = bench.verdict(this_update=NOW - 3 * DAY, next_update=NOW - 2 * DAY)
    expect(stale, STALE)
    assert stale.this_update == NOW - 3 * DAY
    assert stale.next_update == NOW - 2 * DAY
    assert stale.responder == "issuer CN=staplecheck test intermediate"


# --- rule 6: critical extensions --------------------------------------------------------


def _ext(oid: str, critical: bool) -> RawExtension:
    return RawExtension(
        oid=oid, critical=critical, value=NONCE_VALUE if oid == NONCE else b"\x05\x00"
    )


def _second_entry_with(
    bench: Bench, extension: RawExtension, *, leaf_second: bool
) -> dict[str, Any]:
    """Two entries: the leaf's and an unrelated one; ``extension`` in the second."""
    serial = bench.leaf.cert.serial_number
    if leaf_second:
        entries = [
            OCSPEntry(serial_number=serial + 7),
            OCSPEntry(serial_number=serial, extensions=[extension]),
        ]
    else:
        entries = [
            OCSPEntry(serial_number=serial),
            OCSPEntry(serial_number=serial + 7, extensions=[extension]),
        ]
    return {"cert": None, "extra_entries": entries}


EXTENSION_PLACES: dict[str, Callable[[Bench, RawExtension], dict[str, Any]]] = {
    "response": lambda bench, ext: {"extensions": [ext]},
    "single": lambda bench, ext: {"single_extensions": [ext]},
    "second-entry": lambda bench, ext: _second_entry_with(bench, ext, leaf_second=False),
    "leaf-entry-second": lambda bench, ext: _second_entry_with(bench, ext, leaf_second=True),
    "revoked-single": lambda bench, ext: {"status": "revoked", "single_extensions": [ext]},
}


@pytest.mark.parametrize("place", EXTENSION_PLACES)
def test_unknown_critical_extension_is_invalid(bench: Bench, place: str) -> None:
    options = EXTENSION_PLACES[place](bench, _ext(UNKNOWN_OID, critical=True))
    result = bench.verdict(**options)
    expect(result, INVALID, "critical extension", UNKNOWN_OID)


@pytest.mark.parametrize("place", EXTENSION_PLACES)
@pytest.mark.parametrize(("oid", "critical"), [(UNKNOWN_OID, False), (NONCE, True), (NONCE, False)])
def test_known_critical_or_unknown_noncritical_extension_is_fine(
    bench: Bench, place: str, oid: str, critical: bool
) -> None:
    options = EXTENSION_PLACES[place](bench, _ext(oid, critical))
    expected = REVOKED if options.get("status") == "revoked" else GOOD
    expect(bench.verdict(**options), expected)


def test_several_extensions_one_unknown_critical(bench: Bench) -> None:
    extensions = [_ext(NONCE, True), _ext(UNKNOWN_OID, False), _ext("1.2.3.4", True)]
    expect(bench.verdict(extensions=extensions), INVALID, "1.2.3.4")


# --- the evidence cache -----------------------------------------------------------------


def test_same_staple_hits_the_cache(bench: Bench) -> None:
    cache = StapleCache()
    der = bench.staple()
    first = bench.judge(der, cache=cache)
    second = bench.judge(der, cache=cache)
    expect(first, GOOD)
    assert second == first
    assert len(cache) == 1


def test_invalid_outcomes_are_cached_too(bench: Bench) -> None:
    cache = StapleCache()
    der = bench.staple(corrupt_signature=True)
    first = bench.judge(der, cache=cache)
    expect(first, INVALID)
    assert bench.judge(der, cache=cache) == first
    assert len(cache) == 1


def test_missing_staples_do_not_fill_the_cache(bench: Bench) -> None:
    cache = StapleCache()
    expect(bench.judge(b"", cache=cache), MISSING)
    assert len(cache) == 0


def test_other_bytes_miss_the_cache(bench: Bench) -> None:
    cache = StapleCache()
    expect(bench.judge(bench.staple(), cache=cache), GOOD)
    expect(bench.judge(bench.staple("revoked"), cache=cache), REVOKED)
    assert len(cache) == 2


def test_another_leaf_misses_the_cache(bench: Bench) -> None:
    cache = StapleCache()
    der = bench.staple()
    expect(bench.judge(der, cache=cache), GOOD)
    expect(bench.judge(der, leaf=bench.pki.must_staple_leaf, cache=cache), INVALID, "no entry")
    assert len(cache) == 2


def test_another_issuer_misses_the_cache(bench: Bench, impostor_ca: CA) -> None:
    cache = StapleCache()
    der = bench.staple()
    expect(bench.judge(der, cache=cache), GOOD)
    expect(bench.judge(der, issuer=impostor_ca, cache=cache), INVALID)
    assert len(cache) == 2
    # The same issuer key and name in another certificate is judged afresh (and good).
    reissued = CA(
        now=NOW,
        name="staplecheck test intermediate",
        key=bench.ca.private_key,
        parent=bench.pki.root,
    )
    expect(bench.judge(der, issuer=reissued, cache=cache), GOOD)
    assert len(cache) == 3


def test_time_is_judged_again_on_a_cached_entry(bench: Bench) -> None:
    cache = StapleCache()
    der = bench.staple()
    expect(bench.judge(der, cache=cache), GOOD)
    expect(bench.judge(der, cache=cache, now=NOW + 3 * DAY), STALE, "nextUpdate")
    expect(bench.judge(der, cache=cache, now=NOW - HOUR), INVALID, "future")
    expect(bench.judge(der, cache=cache, now=NOW + 3 * DAY, max_age=DAY), STALE)
    expect(bench.judge(der, cache=cache, now=NOW + 2 * DAY, clock_skew=2 * DAY), GOOD)
    assert len(cache) == 1


def test_delegate_validity_is_judged_again_on_a_cached_entry(bench: Bench) -> None:
    responder = bench.ca.issue_responder(not_before=NOW - HOUR, not_after=NOW + 2 * DAY)
    der = bench.staple(responder=responder, next_update=NOW + 30 * DAY)
    cache = StapleCache()
    expect(bench.judge(der, cache=cache), GOOD)
    expect(bench.judge(der, cache=cache, now=NOW + 3 * DAY), INVALID, "not valid now")
    assert len(cache) == 1


def test_cache_is_bounded(bench: Bench) -> None:
    cache = StapleCache(maxsize=2)
    staples = {
        status: bench.staple(status, revocation_reason="keyCompromise")
        for status in ("good", "revoked", "unknown")
    }
    for _ in range(3):
        for status, der in staples.items():
            expect(bench.judge(der, cache=cache), StapleStatus(status))
            assert len(cache) <= 2
    assert len(cache) == 2


def test_lru_cache_evicts_the_least_recently_used() -> None:
    cache: LRUCache[str] = LRUCache(maxsize=2)
    cache.put("a", "A")
    cache.put("b", "B")
    assert cache.get("a") == "A"  # "b" is now the least recently used
    cache.put("c", "C")
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == ("A", None, "C")
    assert len(cache) == 2
    cache.clear()
    assert len(cache) == 0
    with pytest.raises(ValueError, match="maxsize"):
        LRUCache(maxsize=0)


def test_default_cache_gives_the_same_verdicts(bench: Bench) -> None:
    der = bench.staple(this_update=NOW - 2 * MINUTE)
    first = validate_staple(der, bench.leaf.cert, bench.ca.cert, now=NOW)
    again = validate_staple(der, bench.leaf.cert, bench.ca.cert, now=NOW)
    later = validate_staple(der, bench.leaf.cert, bench.ca.cert, now=NOW + 3 * DAY)
    assert (first.status, again.status, later.status) == (GOOD, GOOD, STALE)
    assert again == first


def test_cache_under_threads(bench: Bench, other_ca: CA, delegate: Identity) -> None:
    must_staple_leaf = bench.pki.must_staple_leaf
    cases: list[tuple[bytes, CertLike, CertLike, StapleStatus]] = [
        (bench.staple(), bench.leaf, bench.ca, GOOD),
        (bench.staple("revoked"), bench.leaf, bench.ca, REVOKED),
        (bench.staple("unknown", responder=delegate), bench.leaf, bench.ca, UNKNOWN),
        (bench.staple(corrupt_signature=True), bench.leaf, bench.ca, INVALID),
        (bench.staple(), must_staple_leaf, bench.ca, INVALID),
        (bench.staple(), bench.leaf, other_ca, INVALID),
        (bench.staple(cert=must_staple_leaf), must_staple_leaf, bench.ca, GOOD),
        (bench.staple(next_update=NOW - HOUR, this_update=NOW - DAY), bench.leaf, bench.ca, STALE),
    ]
    cache = StapleCache(maxsize=3)

    def hammer(offset: int) -> list[str]:
        wrong = []
        for i in range(150):
            der, leaf, issuer, status = cases[(i * 3 + offset) % len(cases)]
            result = bench.judge(der, leaf=leaf, issuer=issuer, cache=cache)
            if result.status is not status or result.must_staple != (leaf is must_staple_leaf):
                wrong.append(f"case {(i * 3 + offset) % len(cases)}: {result.status}")
        return wrong

    with ThreadPoolExecutor(max_workers=8) as pool:
        failures = list(itertools.chain.from_iterable(pool.map(hammer, range(8))))
    assert failures == []
    assert len(cache) <= 3


# --- found by the adversarial review of issue 7 ----------------------------------------------


@pytest.mark.parametrize(
    "settings",
    [
        {"max_age": datetime.timedelta.max},
        {"clock_skew": datetime.timedelta.max},
        {"default_lifetime": datetime.timedelta.max},
    ],
    ids=["max_age", "clock_skew", "default_lifetime"],
)
def test_time_settings_at_their_limits_do_not_overflow(
    bench: Bench, settings: dict[str, datetime.timedelta]
) -> None:
    """Time arithmetic saturates: "forever" is a setting, not an OverflowError."""
    for next_update in (..., None):
        staple = bench.ca.ocsp_response(bench.leaf, next_update=next_update)
        result = validate_staple(staple, bench.leaf.cert, bench.ca.cert, now=NOW, **settings)  # type: ignore[arg-type]
        assert result.status is StapleStatus.GOOD, result.reason


def test_responses_dated_at_the_end_of_time_do_not_overflow(bench: Bench) -> None:
    far = datetime.datetime(9999, 12, 31, 23, 59, 59, tzinfo=datetime.timezone.utc)
    staple = bench.ca.ocsp_response(bench.leaf, this_update=far, next_update=None)
    result = validate_staple(staple, bench.leaf.cert, bench.ca.cert, now=NOW)
    assert result.status is StapleStatus.INVALID
    assert "in the future" in result.reason
    result = validate_staple(staple, bench.leaf.cert, bench.ca.cert, now=far)
    assert result.status is StapleStatus.GOOD, result.reason


def test_delegate_candidates_are_described_by_size_until_their_signature_verifies(
    bench: Bench,
) -> None:
    """Candidates with huge subjects (the peer's, unsigned) are neither parsed nor
    printed in full before the issuer's signature over them is checked."""
    from tests.hostile_staples import candidates_with_long_subjects

    result = validate_staple(
        candidates_with_long_subjects(bench.ca, bench.leaf),
        bench.leaf.cert,
        bench.ca.cert,
        now=NOW,
    )
    assert result.status is StapleStatus.INVALID
    assert "(a name of 16" in result.reason
    assert "its signature does not verify" in result.reason
    assert len(result.reason) < 300
