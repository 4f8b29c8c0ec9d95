"""Policy (DESIGN.md's decision table), as_policy, has_must_staple and StapleError."""

from __future__ import annotations

import dataclasses
import datetime
import pickle
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID, NameOID

from staplecheck import (
    Mode,
    Policy,
    ResponderOverride,
    StapleError,
    StapleResult,
    StapleStatus,
    as_policy,
    has_must_staple,
)
from tests.conftest import NOW, PKI

POLICIES_DOC = Path(__file__).resolve().parent.parent / "docs" / "policies.md"


def _doc_table(name: str) -> tuple[list[str], list[list[str]]]:
    """The header and rows of the table after ``<!-- table: name -->`` in docs/policies.md."""
    lines = POLICIES_DOC.read_text(encoding="utf-8").splitlines()
    start = lines.index(f"<!-- table: {name} -->") + 1
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    header, _rule, *body = rows
    return header, body


def _flags(label: str) -> list[bool]:
    if label.endswith("leaf with must-staple extension"):
        return [True]
    if label.endswith("leaf without must-staple extension"):
        return [False]
    return [False, True]


def _staple_cases() -> list[tuple[str, bool, str, bool]]:
    """(status, leaf has must-staple, mode, accepted) for every cell of the first table."""
    header, rows = _doc_table("staple")
    cases = []
    for label, *cells in rows:
        status = label.partition(", ")[0]
        for must_staple in _flags(label):
            for mode, cell in zip(header[1:], cells, strict=True):
                assert cell in {"A", "R"}
                cases.append((status, must_staple, mode, cell == "A"))
    return cases


# What a fallback can answer for a certificate, and how the tables name it: only good,
# revoked and unknown are answers; stale and invalid responses are none.
ANSWERS: dict[str | None, str] = {
    "good": "good",
    "revoked": "revoked",
    "unknown": "unknown",
    "stale": "none",
    "invalid": "none",
    "missing": "none",
    None: "none",
}


def _fallback_cases() -> list[tuple[str, bool, str | None, str, bool]]:
    """(status, must-staple, answer, mode, accepted) for every staple status, flag,
    answer and mode with a fallback: the second table where the fallback is asked,
    the first table (the staple decides) everywhere else."""
    header, rows = _doc_table("fallback")
    table: dict[tuple[str, bool, str], dict[str, bool]] = {}
    for label, answer, *cells in rows:
        for status in label.partition(", ")[0].split(" or "):
            for must_staple in _flags(label):
                decisions = {m: c == "A" for m, c in zip(header[2:], cells, strict=True)}
                for named in ANSWERS.values() if answer == "any" else [answer]:
                    table[(status, must_staple, named)] = decisions
    staple_only = {(s, f, m): a for s, f, m, a in _staple_cases()}
    cases = []
    for status in StapleStatus:
        for must_staple in (False, True):
            for answer, named in ANSWERS.items():
                for mode in header[2:]:
                    row = table.get((status.value, must_staple, named))
                    accepted = (
                        row[mode]
                        if row is not None
                        else staple_only[(status.value, must_staple, mode)]
                    )
                    cases.append((status.value, must_staple, answer, mode, accepted))
    return cases


TABLE_CASES = _staple_cases()
FALLBACK_CASES = _fallback_cases()


def _result(status: str, must_staple: bool = False) -> StapleResult:
    return StapleResult(
        status=StapleStatus(status), reason=f"a {status} staple", must_staple=must_staple
    )


def test_the_tables_cover_every_status_flag_answer_and_mode() -> None:
    cells = {(status, flag, mode) for status, flag, mode, _ in TABLE_CASES}
    assert len(cells) == len(TABLE_CASES) == len(StapleStatus) * 2 * len(Mode)
    assert {status for status, *_ in TABLE_CASES} == {s.value for s in StapleStatus}
    assert {mode for *_, mode, _ in TABLE_CASES} == {m.value for m in Mode}
    header, _ = _doc_table("fallback")
    # Every mode but off (which takes no fallback) has a column.
    assert set(header[2:]) == {m.value for m in Mode} - {"off"}
    fallback_cells = {case[:4] for case in FALLBACK_CASES}
    assert len(fallback_cells) == len(StapleStatus) * 2 * len(ANSWERS) * (len(Mode) - 1)
    # The fallback table's rows are the only ones where the answer matters.
    answers_matter = {
        (status, flag)
        for status, flag, _, mode, accepted in FALLBACK_CASES
        for other in FALLBACK_CASES
        if other[0] == status and other[1] == flag and other[3] == mode and other[4] != accepted
    }
    assert answers_matter == {("stale", False), ("missing", False)}


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
    # ... or as the caller says, overriding the result's.
    assert policy.accepts(_result(status, not must_staple), must_staple=must_staple) is accepted
    # Without a fallback an answer changes nothing (nobody asked).
    for answer in StapleStatus:
        if mode != "off":
            without = dataclasses.replace(as_policy(mode), fallback=())
            assert without.accepts(_result(status, must_staple), answer) is accepted


@pytest.mark.parametrize(
    ("status", "must_staple", "answer", "mode", "accepted"),
    [
        pytest.param(*case, id=f"{case[0]}-{'must' if case[1] else 'plain'}-{case[2]}-{case[3]}")
        for case in FALLBACK_CASES
    ],
)
def test_fallback_decision_table(
    status: str, must_staple: bool, answer: str | None, mode: str, accepted: bool
) -> None:
    policy = Policy(mode=Mode(mode), fallback=("ocsp", "crl"))
    given = StapleStatus(answer) if answer is not None else None
    assert policy.accepts(_result(status, must_staple), given) is accepted
    # wants_fallback is exactly "the answer can change the decision".
    outcomes = {
        policy.accepts(_result(status, must_staple), StapleStatus(a) if a else None)
        for a in ANSWERS
    }
    assert policy.wants_fallback(_result(status, must_staple)) is (len(outcomes) > 1)


def test_chain_table() -> None:
    header, rows = _doc_table("chain")
    assert {m for m in header[1:]} == {m.value for m in Mode} - {"off"}
    seen = set()
    for answer, *cells in rows:
        for mode, cell in zip(header[1:], cells, strict=True):
            policy = Policy(mode=Mode(mode), fallback=("ocsp",), check_chain=True)
            given = [None, StapleStatus.STALE, StapleStatus.INVALID, StapleStatus.MISSING]
            for value in given if answer == "none" else [StapleStatus(answer)]:
                assert policy.accepts_answer(value) is (cell == "A"), (answer, mode)
                seen.add(value)
    assert seen == {*StapleStatus, None}


def test_fallback_defaults_follow_the_mode() -> None:
    assert Policy.HARD_FAIL.sources == ("ocsp", "crl")
    for preset in (Policy.OFF, Policy.SOFT_FAIL, Policy.MUST_STAPLE):
        assert preset.sources == ()
    # None means "the mode's default", so replacing the mode brings its default along.
    assert dataclasses.replace(Policy.SOFT_FAIL, mode="hard-fail").sources == ("ocsp", "crl")
    assert Policy(mode="soft-fail", fallback=("crl",)).sources == ("crl",)
    assert Policy(mode="hard-fail", fallback=()).sources == ()
    assert as_policy("hard-fail") == Policy.HARD_FAIL


@pytest.mark.parametrize(
    ("settings", "error"),
    [
        ({"fallback": ("ocsp", "ldap")}, ValueError),
        ({"fallback": ("ocsp", "ocsp")}, ValueError),
        ({"fallback": "ocsp"}, TypeError),
        ({"mode": "off", "fallback": ("ocsp",)}, ValueError),
        ({"fallback_timeout": 0}, ValueError),
        ({"fallback_timeout": 301}, ValueError),
        ({"fallback_timeout": "2"}, TypeError),
        ({"fallback_timeout": True}, TypeError),
        ({"check_chain": True}, ValueError),
        ({"ocsp_method": "PUT"}, ValueError),
        ({"trusted_responders": (b"not a certificate",)}, ValueError),
        ({"trusted_responders": ("text",)}, TypeError),
        ({"responders": ("http://ocsp.test/",)}, TypeError),
        ({"crl_files": "/etc/crl.pem"}, TypeError),
    ],
)
def test_bad_fallback_settings_are_refused(settings: dict[str, object], error: type) -> None:
    with pytest.raises(error):
        Policy(**settings)  # type: ignore[arg-type]


def test_responder_overrides() -> None:
    with pytest.raises(ValueError, match="absolute"):
        ResponderOverride("ocsp.test")
    with pytest.raises(ValueError, match="DER"):
        ResponderOverride("http://ocsp.test/", issuer=b"junk")
    policy = Policy(fallback=("ocsp",), responders=[ResponderOverride("http://ocsp.test/")])  # type: ignore[arg-type]
    assert policy.responders == (ResponderOverride("http://ocsp.test/"),)
    hash(policy)  # policies stay usable as keys


def test_presets() -> None:
    assert Policy.OFF.mode is Mode.OFF
    assert Policy.SOFT_FAIL.mode is Mode.SOFT_FAIL
    assert Policy.MUST_STAPLE.mode is Mode.MUST_STAPLE
    assert Policy.HARD_FAIL.mode is Mode.HARD_FAIL
    assert Policy() == Policy.SOFT_FAIL
    for preset in (Policy.OFF, Policy.SOFT_FAIL, Policy.MUST_STAPLE, Policy.HARD_FAIL):
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
    ("mode", "requests_staple"),
    [("off", False), ("soft-fail", True), ("must-staple", True), ("hard-fail", True)],
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
