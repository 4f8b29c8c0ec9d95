"""Policy (DESIGN.md's decision table), as_policy, has_must_staple and StapleError."""

from __future__ import annotations

import dataclasses
import datetime
import pickle
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID, NameOID

from staplecheck import (
    Mode,
    Policy,
    StapleError,
    StapleResult,
    StapleStatus,
    as_policy,
    has_must_staple,
)
from tests.conftest import NOW, PKI

# DESIGN.md, "Policy decision (A accept, R reject)", copied verbatim.
DECISION_TABLE = """
| good | A | A | A |
| revoked | A | R | R |
| unknown | A | R | R |
| invalid | A | R | R |
| stale, leaf without must-staple extension | A | A | R |
| stale, leaf with must-staple extension | A | R | R |
| missing, leaf without must-staple extension | A | A | R |
| missing, leaf with must-staple extension | A | R | R |
"""
MODES = ("off", "soft-fail", "must-staple")


def _table_cases() -> list[tuple[str, bool, str, bool]]:
    """(status, leaf has must-staple, mode, accepted) for every cell of the table."""
    cases = []
    for line in DECISION_TABLE.strip().splitlines():
        label, *cells = (cell.strip() for cell in line.strip("|").split("|"))
        status, _, leaf = label.partition(", ")
        flags = [leaf == "leaf with must-staple extension"] if leaf else [False, True]
        for must_staple in flags:
            for mode, cell in zip(MODES, cells, strict=True):
                assert cell in {"A", "R"}
                cases.append((status, must_staple, mode, cell == "A"))
    return cases


TABLE_CASES = _table_cases()


def _result(status: str, must_staple: bool = False) -> StapleResult:
    return StapleResult(
        status=StapleStatus(status), reason=f"a {status} staple", must_staple=must_staple
    )


def test_the_table_covers_every_status_flag_and_mode() -> None:
    cells = {(status, flag, mode) for status, flag, mode, _ in TABLE_CASES}
    assert len(cells) == len(TABLE_CASES) == len(StapleStatus) * 2 * len(Mode)
    assert {status for status, *_ in TABLE_CASES} == {s.value for s in StapleStatus}
    assert set(MODES) == {m.value for m in Mode}


@pytest.mark.parametrize(
    ("status", "must_staple", "mode", "accepted"),
    [
        pytest.param(*case, id=f"{case[0]}-{'must' if case[1] else 'plain'}-{case[2]}")
        for case in TABLE_CASES
    ],
)
def test_decision_table(status: str, must_staple: bool, mode: str, accepted: bool) -> None:
    policy = as_policy(mode)
    # The leaf's flag as the result carries it ...
    assert policy.accepts(_result(status, must_staple)) is accepted
    # ... and as the caller passes it, which overrides the result's.
    assert policy.accepts(_result(status, not must_staple), must_staple=must_staple) is accepted


# --- Policy -------------------------------------------------------------------------


def test_presets() -> None:
    assert Policy.OFF.mode is Mode.OFF
    assert Policy.SOFT_FAIL.mode is Mode.SOFT_FAIL
    assert Policy.MUST_STAPLE.mode is Mode.MUST_STAPLE
    assert Policy() == Policy.SOFT_FAIL
    for preset in (Policy.OFF, Policy.SOFT_FAIL, Policy.MUST_STAPLE):
        assert preset.clock_skew == datetime.timedelta(minutes=5)
        assert preset.default_lifetime == datetime.timedelta(days=1)
        assert preset.max_age == datetime.timedelta(days=10)


def test_policy_is_frozen_and_replaceable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Policy.SOFT_FAIL.mode = Mode.OFF  # type: ignore[misc]
    longer = dataclasses.replace(Policy.MUST_STAPLE, max_age=datetime.timedelta(days=3))
    assert longer.mode is Mode.MUST_STAPLE
    assert longer.max_age == datetime.timedelta(days=3)
    assert Policy.MUST_STAPLE.max_age == datetime.timedelta(days=10)


@pytest.mark.parametrize(
    ("mode", "requests_staple"), [("off", False), ("soft-fail", True), ("must-staple", True)]
)
def test_requests_staple(mode: str, requests_staple: bool) -> None:
    assert as_policy(mode).requests_staple is requests_staple


@pytest.mark.parametrize("field", ["clock_skew", "default_lifetime", "max_age"])
def test_negative_durations_are_refused(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        Policy(**{field: datetime.timedelta(seconds=-1)})
    assert getattr(Policy(**{field: datetime.timedelta(0)}), field) == datetime.timedelta(0)


@pytest.mark.parametrize("field", ["clock_skew", "default_lifetime", "max_age"])
def test_durations_must_be_timedeltas(field: str) -> None:
    with pytest.raises(TypeError, match=field):
        Policy(**{field: 300})


def test_policy_mode_from_a_string() -> None:
    assert Policy(mode="must-staple").mode is Mode.MUST_STAPLE  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bogus"):
        Policy(mode="bogus")  # type: ignore[arg-type]


# --- as_policy ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("off", Policy.OFF),
        ("soft-fail", Policy.SOFT_FAIL),
        ("must-staple", Policy.MUST_STAPLE),
        (Mode.OFF, Policy.OFF),
        (Mode.SOFT_FAIL, Policy.SOFT_FAIL),
        (Mode.MUST_STAPLE, Policy.MUST_STAPLE),
    ],
)
def test_as_policy_from_modes(given: str | Mode, expected: Policy) -> None:
    policy = as_policy(given)
    assert isinstance(policy, Policy)
    assert policy == expected


def test_as_policy_returns_a_policy_unchanged() -> None:
    custom = Policy(mode=Mode.MUST_STAPLE, clock_skew=datetime.timedelta(minutes=1))
    assert as_policy(custom) is custom


@pytest.mark.parametrize("bad", ["", "bogus", "OFF", "soft_fail", "must staple", " off"])
def test_as_policy_refuses_unknown_strings(bad: str) -> None:
    with pytest.raises(ValueError, match="off, soft-fail, must-staple"):
        as_policy(bad)


@pytest.mark.parametrize("bad", [None, 1, b"off", ["off"], Mode])
def test_as_policy_refuses_other_types(bad: object) -> None:
    with pytest.raises(TypeError, match="Policy"):
        as_policy(bad)  # type: ignore[arg-type]


# --- has_must_staple -----------------------------------------------------------------


def _cert_with(*extensions: x509.ExtensionType | x509.UnrecognizedExtension) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "features.example")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(hours=1))
        .not_valid_after(NOW + datetime.timedelta(days=1))
    )
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    return builder.sign(key, hashes.SHA256())


def test_has_must_staple_on_the_test_pki(pki: PKI) -> None:
    assert has_must_staple(pki.must_staple_leaf.cert) is True
    assert has_must_staple(pki.leaf.cert) is False
    assert has_must_staple(pki.intermediate.cert) is False


@pytest.mark.parametrize(
    ("features", "expected"),
    [
        ([x509.TLSFeatureType.status_request], True),
        ([x509.TLSFeatureType.status_request_v2], False),
        ([x509.TLSFeatureType.status_request_v2, x509.TLSFeatureType.status_request], True),
    ],
)
def test_has_must_staple_reads_the_tls_feature(
    features: list[x509.TLSFeatureType], expected: bool
) -> None:
    assert has_must_staple(_cert_with(x509.TLSFeature(features))) is expected


def test_has_must_staple_without_the_extension() -> None:
    assert has_must_staple(_cert_with()) is False
    assert has_must_staple(_cert_with(x509.OCSPNoCheck())) is False


def test_unparsable_tls_feature_demands_a_staple() -> None:
    broken = x509.UnrecognizedExtension(ExtensionOID.TLS_FEATURE, b"\x04\x01\x05")
    assert has_must_staple(_cert_with(broken)) is True


def test_other_unparsable_extension_demands_no_staple() -> None:
    broken = x509.UnrecognizedExtension(ExtensionOID.KEY_USAGE, b"\x04\x01\x05")
    cert = _cert_with(broken)
    with pytest.raises(ValueError, match="parsing"):
        _ = cert.extensions
    assert has_must_staple(cert) is False
    both = _cert_with(broken, x509.TLSFeature([x509.TLSFeatureType.status_request]))
    assert has_must_staple(both) is True


# --- StapleError -----------------------------------------------------------------------


@pytest.fixture
def revoked() -> StapleResult:
    return StapleResult(
        status=StapleStatus.REVOKED,
        reason="the issuer says the certificate was revoked (keyCompromise)",
        this_update=NOW,
        revocation_time=NOW - datetime.timedelta(hours=1),
        revocation_reason="keyCompromise",
        serial_number=0x1234,
        must_staple=True,
    )


def test_staple_error_is_a_certificate_verification_error(revoked: StapleResult) -> None:
    error = StapleError(revoked, "www.example.test")
    assert isinstance(error, ssl.SSLCertVerificationError)
    assert isinstance(error, ssl.SSLError)
    with pytest.raises(ssl.SSLCertVerificationError) as caught:
        raise error
    assert caught.value.result is revoked  # type: ignore[attr-defined]


def test_staple_error_messages(revoked: StapleResult) -> None:
    error = StapleError(revoked, "www.example.test")
    assert error.result is revoked
    assert error.host == "www.example.test"
    assert "revoked" in error.verify_message
    assert revoked.reason in error.verify_message
    assert "www.example.test" in str(error)
    assert "revoked" in str(error)
    assert revoked.reason in str(error)


def test_staple_error_without_host(revoked: StapleResult) -> None:
    error = StapleError(revoked)
    assert error.host is None
    assert " from " not in str(error)
    assert revoked.reason in str(error)


@pytest.mark.parametrize("host", ["www.example.test", None])
def test_staple_error_pickles(revoked: StapleResult, host: str | None) -> None:
    error = StapleError(revoked, host)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is StapleError
    assert copy.result == revoked
    assert copy.host == host
    assert str(copy) == str(error)
    assert copy.verify_message == error.verify_message
    assert copy.args == error.args
