"""Validation of one stapled OCSP response: RFC 6960's rules and nothing else.

The work splits in two. :func:`_examine` establishes everything that does not depend
on the clock (parsing, the bounds, the CertID match, the responder's authority, the
signature, critical extensions); its outcome may be cached. :func:`_judge_time`
applies the time rules to that outcome on every call, with the caller's ``now``.

Everything remembered is keyed by complete DER (or a SHA-256 over it): two
certificates can share signature bytes, never their DER. All work a response can
cause is bounded before its signature is checked (``_shape``).
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import hashlib
import struct
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, TypeVar, Union

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from .._cache import LRUCache
from . import _der
from ._certfacts import CERT_ID_HASHES, IssuerFacts, LeafFacts, describe_name, same_name
from ._result import StapleResult, StapleStatus
from ._shape import MAX_RESPONSE_BYTES, ResponseShape, ShapeError, read_shape
from ._signatures import (
    RSA_PSS,
    BadParametersError,
    NotIssuedError,
    UnsupportedSignatureError,
    check_issued_by,
    pss_parameters,
    signed_with_sha1,
    verify,
)
from ._times import current_window
from ._times import earlier as _earlier
from ._times import later as _later

__all__ = [
    "DEFAULT_CLOCK_SKEW",
    "DEFAULT_LIFETIME",
    "DEFAULT_MAX_AGE",
    "MAX_TRUSTED_RESPONDERS",
    "SHARED_CACHE",
    "CertPair",
    "StapleCache",
    "judge_staple",
    "trusted_responder_pins",
    "validate_staple",
]

DEFAULT_CLOCK_SKEW = datetime.timedelta(minutes=5)
DEFAULT_LIFETIME = datetime.timedelta(days=1)
DEFAULT_MAX_AGE = datetime.timedelta(days=10)

_UTC = datetime.timezone.utc
_DER = serialization.Encoding.DER

MAX_TRUSTED_RESPONDERS = 8
"""At most this many pinned responder certificates (``trusted_responders``): each one
that the ResponderID matches may cost a signature verification."""

_MAX_DELEGATE_CHECKS = 4
"""Embedded certificates matching the ResponderID whose delegation is checked (each
costs a signature verification with the issuer's key); a responder renewed under the
same name needs two."""


class _RuleFailedError(Exception):
    """A rule failed; the message names it. Caught in :func:`_examine`."""


# What cryptography and the DER reader raise on malformed input. cryptography parses
# some fields lazily (embedded certificates, keys, names), so these can surface in any
# rule; the rule being checked then reports that it met a malformed field.
_MALFORMED = (ValueError, TypeError, UnsupportedAlgorithm, IndexError, _der.DERError)


# --- what the time-independent checks establish -------------------------------------


@dataclasses.dataclass(slots=True)
class _Evidence:
    """A properly signed entry for the certificate, before the time rules."""

    result: StapleResult
    """The verdict if the time rules pass (status good, revoked or unknown)."""
    signer_validity: tuple[tuple[datetime.datetime, datetime.datetime, bool], ...]
    """Validity periods of the delegated or pinned responder certificates whose key
    verified the signature (none when the issuer signed), each with whether the clock
    skew widens it (pinned responders); one must contain ``now``, every call."""
    sha1: bool
    """Whether the response's signature, or its signer's certificate, uses SHA-1."""
    window: tuple[object, object, object, datetime.datetime, datetime.datetime] | None = None
    """The last (skew, lifetime, max_age) asked for and the current-time window they
    give, so that a cached staple is judged with two comparisons."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Refusal:
    """Why the response is no evidence, and, when no entry names the leaf, the CertIDs
    it has instead (so that a response about another certificate of the verified chain
    can be recognised: that is a missing staple, not a bad one)."""

    result: StapleResult
    foreign: tuple[tuple[str, bytes, bytes, int], ...] = ()
    """(hash name, issuerNameHash, issuerKeyHash, serial) of each entry."""


_Outcome = Union[_Evidence, _Refusal]


class StapleCache:
    """Bounded, thread-safe memory of what validation established, for reuse.

    Two least-recently-used maps of ``maxsize`` entries each: the evidence of each
    staple (keyed by a SHA-256 over the staple and the complete DER of leaf and
    issuer, so other bytes, another leaf or another issuer never hit), and the facts
    of each certificate (names, keys, hashes, delegate checks; keyed by complete DER).
    What is remembered is a function of those bytes alone, so no certificate, however
    made, can change what another is judged to be. Time is never cached: the time
    rules run on every call.
    """

    def __init__(self, maxsize: int = 1024) -> None:
        self.evidence: LRUCache[_Outcome] = LRUCache(maxsize)
        self.certificates: LRUCache[Any] = LRUCache(maxsize)

    def __len__(self) -> int:
        """The number of staples remembered."""
        return len(self.evidence)

    def clear(self) -> None:
        self.evidence.clear()
        self.certificates.clear()


_T = TypeVar("_T")


def _memo(cache: StapleCache | None, key: tuple[Any, ...], make: Callable[[], _T]) -> _T:
    if cache is None:
        return make()
    found: _T | None = cache.certificates.get(key)
    if found is None:
        found = make()
        cache.certificates.put(key, found)
    return found


SHARED_CACHE = StapleCache()
"""The cache every validation uses unless given another (or ``None``: no cache)."""


# --- the public entry point ----------------------------------------------------------


def validate_staple(
    der: bytes,
    leaf: x509.Certificate,
    issuer: x509.Certificate,
    *,
    now: datetime.datetime | None = None,
    clock_skew: datetime.timedelta = DEFAULT_CLOCK_SKEW,
    default_lifetime: datetime.timedelta = DEFAULT_LIFETIME,
    max_age: datetime.timedelta = DEFAULT_MAX_AGE,
    allow_sha1: bool = True,
    chain: Sequence[x509.Certificate] = (),
    cache: StapleCache | None = None,
    trusted_responders: Sequence[bytes] = (),
) -> StapleResult:
    """Judge the stapled OCSP response ``der`` for ``leaf``, issued by ``issuer``.

    ``issuer`` must be the certificate that issued ``leaf`` in a chain that was
    verified (the TLS glue takes both from OpenSSL's verified chain). Empty ``der``
    means the server stapled nothing: ``missing``. Bad bytes never raise; they give
    ``invalid`` with a reason. ``now`` defaults to the current time and must be
    timezone-aware.

    ``allow_sha1=False`` refuses (``invalid``) a response whose signature, or whose
    delegated responder's certificate, uses SHA-1. ``chain`` is the rest of the
    verified chain above ``leaf`` (``issuer`` first), when known: a response about one
    of those certificates and not about ``leaf`` (TLS 1.3 lets a server staple for any
    certificate entry) then means ``leaf``'s staple is ``missing``, never ``good``.

    ``cache`` (default none) remembers what the checks established, for the next call
    with the same staple or the same certificates. It is keyed by complete DER, so it
    is safe to share; the TLS glue shares :data:`SHARED_CACHE`.

    ``trusted_responders`` (default none) is an explicit opt-in: the DER of up to
    ``MAX_TRUSTED_RESPONDERS`` (8) responder certificates trusted locally (RFC 6960
    §4.2.2.2, "trusted responder"; OpenSSL's ``ocsp -VAfile``). A pinned certificate
    may sign responses about any certificate: when the ResponderID names it (byName:
    its subject; byKey: the SHA-1 of its subjectPublicKey bits) and its key verifies
    the signature, the signer is authorized, whoever issued it and whether or not the
    response carries it. Pinning is the trust decision, so neither its issuer nor the
    id-kp-OCSPSigning extended key usage is checked (as with ``-VAfile``). Still
    checked: its validity period (notBefore − ``clock_skew`` ≤ ``now`` ≤ notAfter +
    ``clock_skew``), that it is not the certificate being checked, the signature
    algorithm rules (``allow_sha1`` applies to the response's signature), and every
    other rule about the response. Raises ``ValueError`` for more than
    ``MAX_TRUSTED_RESPONDERS`` or one that is not a DER certificate, and
    ``TypeError`` for one that is not bytes.
    """
    if not isinstance(der, (bytes, bytearray, memoryview)):
        raise TypeError(f"der must be bytes, not {type(der).__name__}")
    if not isinstance(leaf, x509.Certificate):
        raise TypeError(f"leaf must be an x509.Certificate, not {type(leaf).__name__}")
    if not isinstance(issuer, x509.Certificate):
        raise TypeError(f"issuer must be an x509.Certificate, not {type(issuer).__name__}")
    if now is None:
        now = datetime.datetime.now(_UTC)
    elif not isinstance(now, datetime.datetime):
        raise TypeError("now must be a datetime.datetime")
    elif now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    return judge_staple(
        bytes(der),
        CertPair.of(leaf, issuer),
        now=now,
        clock_skew=clock_skew,
        default_lifetime=default_lifetime,
        max_age=max_age,
        allow_sha1=allow_sha1,
        chain=chain,
        cache=cache,
        trusted_responders=trusted_responders,
    )


def judge_staple(
    der: bytes,
    certs: CertPair,
    *,
    now: datetime.datetime,
    clock_skew: datetime.timedelta,
    default_lifetime: datetime.timedelta,
    max_age: datetime.timedelta,
    allow_sha1: bool,
    chain: Sequence[x509.Certificate],
    cache: StapleCache | None,
    trusted_responders: Sequence[bytes] = (),
) -> StapleResult:
    """:func:`validate_staple` with its arguments checked and the certificates' DER at
    hand (the TLS glue has it from OpenSSL without cryptography's re-encoding).

    ``trusted_responders``: pinned responder certificates, DER, as for
    :func:`validate_staple` (checked here: ``ValueError`` past
    :data:`MAX_TRUSTED_RESPONDERS` or for one that is not a DER certificate). The
    evidence memo's key covers their DER, so an answer reached with a pin is never
    reused without it, nor the other way round."""
    pins = trusted_responder_pins(trusted_responders, cache) if trusted_responders else ()
    if not der:
        return _missing(certs, cache)
    if cache is None:
        outcome = _examine(der, certs, None, pins)
    else:
        key = _digest(der, certs.leaf_der, certs.issuer_der, *(pin.der for pin in pins))
        found = cache.evidence.get(key)
        if found is None:
            found = _examine(der, certs, cache, pins)
            cache.evidence.put(key, found)
        outcome = found
    if isinstance(outcome, _Refusal):
        if outcome.foreign and chain:
            return _about_chain(outcome, chain) or outcome.result
        return outcome.result
    if outcome.sha1 and not allow_sha1:
        return _downgrade(
            outcome.result,
            StapleStatus.INVALID,
            "the response or its signer's certificate is signed with SHA-1, "
            "which this policy refuses (allow_sha1=False)",
        )
    return _judge_time(outcome, now, clock_skew, default_lifetime, max_age)


def _missing(certs: CertPair, cache: StapleCache | None) -> StapleResult:
    try:
        leaf_facts = _leaf_facts(certs, cache)
        serial: int | None = leaf_facts.serial_number
        must_staple = leaf_facts.must_staple
    except Exception:  # noqa: BLE001 - a leaf cryptography cannot read: fail closed
        serial, must_staple = None, True
    return StapleResult(
        status=StapleStatus.MISSING,
        reason="the server stapled no OCSP response",
        serial_number=serial,
        must_staple=must_staple,
    )


class CertPair:
    """The leaf and issuer, each with its complete DER (the key of all memos).

    Certificates given as DER are loaded only when first needed: a staple already in
    the cache is judged from the DER alone."""

    __slots__ = ("_issuer", "_leaf", "issuer_der", "leaf_der")

    def __init__(
        self,
        leaf_der: bytes,
        issuer_der: bytes,
        leaf: x509.Certificate | None = None,
        issuer: x509.Certificate | None = None,
    ) -> None:
        self.leaf_der = leaf_der
        self.issuer_der = issuer_der
        self._leaf = leaf
        self._issuer = issuer

    @classmethod
    def of(cls, leaf: x509.Certificate, issuer: x509.Certificate) -> CertPair:
        """From certificate objects (cryptography re-encodes each one for its DER)."""
        return cls(leaf.public_bytes(_DER), issuer.public_bytes(_DER), leaf, issuer)

    @property
    def leaf(self) -> x509.Certificate:
        if self._leaf is None:
            self._leaf = x509.load_der_x509_certificate(self.leaf_der)
        return self._leaf

    @property
    def issuer(self) -> x509.Certificate:
        if self._issuer is None:
            self._issuer = x509.load_der_x509_certificate(self.issuer_der)
        return self._issuer


def _digest(*parts: bytes) -> bytes:
    """SHA-256 over the parts' lengths, then the parts: a memo key no two inputs share.

    The lengths fix where each part ends, and how many parts there are: read with
    fewer parts than it has, a key's lengths would have to add up to more bytes than
    follow them. Three parts give the key they always gave (staple, leaf, issuer);
    pinned responders add one part each, in the order given."""
    if len(parts) == 3:  # the common case, on every cached judgement
        lengths = _THREE_LENGTHS.pack(len(parts[0]), len(parts[1]), len(parts[2]))
    else:
        lengths = struct.pack(f">{len(parts)}Q", *(len(part) for part in parts))
    return hashlib.sha256(lengths + b"".join(parts)).digest()


_THREE_LENGTHS = struct.Struct(">QQQ")


def _leaf_facts(certs: CertPair, cache: StapleCache | None) -> LeafFacts:
    return _memo(cache, ("leaf", certs.leaf_der), lambda: LeafFacts.of(certs.leaf, certs.leaf_der))


def _issuer_facts(certs: CertPair, cache: StapleCache | None) -> IssuerFacts:
    return _memo(
        cache, ("issuer", certs.issuer_der), lambda: IssuerFacts.of(certs.issuer, certs.issuer_der)
    )


@dataclasses.dataclass(frozen=True, slots=True)
class _Pin:
    """A pinned responder certificate (``trusted_responders``), read once: the raw
    subject and key hash its ResponderID is matched on, then what signing needs."""

    der: bytes
    subject_der: bytes
    key_hash: bytes
    """SHA-1 of the subjectPublicKey bits as encoded (a byName-or-byKey ResponderID,
    RFC 6960 §4.2.1)."""
    cert: x509.Certificate
    description: str
    """``pinned responder CN=...``: how results name it as a signer."""
    public_key: object
    valid_from: datetime.datetime
    valid_until: datetime.datetime

    @classmethod
    def of(cls, der: bytes) -> _Pin:
        fields = _der.certificate_fields(der)
        cert = x509.load_der_x509_certificate(der)
        return cls(
            der=der,
            subject_der=fields.subject,
            key_hash=hashlib.sha1(fields.key_bits).digest(),
            cert=cert,
            description=f"pinned responder {describe_name(fields.subject, lambda: cert.subject)}",
            public_key=cert.public_key(),
            valid_from=cert.not_valid_before_utc,
            valid_until=cert.not_valid_after_utc,
        )


def trusted_responder_pins(
    trusted_responders: Sequence[bytes], cache: StapleCache | None
) -> tuple[_Pin, ...]:
    """The pinned responder certificates, each read once per cache (keyed by its
    complete DER). Raises ``TypeError`` for something that is not a sequence of bytes,
    ``ValueError`` past :data:`MAX_TRUSTED_RESPONDERS` or for a certificate that cannot
    be read; the message names the index. These are the caller's configuration, not a
    peer's bytes, so they are refused loudly rather than judged."""
    if isinstance(trusted_responders, (bytes, bytearray, memoryview, str)):
        raise TypeError(
            "trusted_responders must be a sequence of DER certificates, not a single "
            f"{type(trusted_responders).__name__}"
        )
    pinned = list(trusted_responders)
    if len(pinned) > MAX_TRUSTED_RESPONDERS:
        raise ValueError(
            f"trusted_responders holds {len(pinned)} certificates; at most "
            f"{MAX_TRUSTED_RESPONDERS} may be pinned"
        )
    pins: list[_Pin] = []
    for index, item in enumerate(pinned):
        if not isinstance(item, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"trusted_responders[{index}] must be the DER of a certificate (bytes), "
                f"not {type(item).__name__}"
            )
        der = bytes(item)
        try:
            pins.append(_memo(cache, ("pinned", der), functools.partial(_Pin.of, der)))
        except Exception as error:  # noqa: BLE001 - parse errors vary; all mean "not usable"
            raise ValueError(
                f"trusted_responders[{index}] is not a DER X.509 certificate staplecheck "
                f"can use: {error}"
            ) from None
    return tuple(pins)


# --- the time-independent rules --------------------------------------------------------


def _examine(
    der: bytes, certs: CertPair, cache: StapleCache | None, pins: tuple[_Pin, ...] = ()
) -> _Outcome:
    try:
        leaf_facts = _leaf_facts(certs, cache)
    except Exception as error:  # noqa: BLE001 - a certificate cryptography cannot read
        return _Refusal(
            StapleResult(
                status=StapleStatus.INVALID, reason=f"the certificate cannot be read: {error}"
            )
        )
    rule = "the issuer certificate"
    response: ocsp.OCSPResponse | None = None
    shape: ResponseShape | None = None
    try:
        issuer_facts = _issuer_facts(certs, cache)
        rule = "size (staplecheck's bounds)"
        _check_size(der)
        response = _parse(der)
        rule = "responseStatus (RFC 6960 §4.2.1)"
        _check_response_status(response)
        rule = "structure (RFC 6960 §4.2.1, staplecheck's bounds)"
        shape = _read_shape(der)
        rule = "responder identification (RFC 6960 §4.2.2.2)"
        candidates = _identify_signers(response, shape, certs, issuer_facts, cache, pins)
        rule = "signature (RFC 6960 §4.2.1)"
        signers, sha1 = _verify_signature(response, shape, candidates)
        rule = "CertID match (RFC 6960 §4.1.1)"
        entry = _match_entry(list(response.responses), leaf_facts, issuer_facts)
        rule = "extensions (RFC 6960 §4.4)"
        _check_critical_extensions(shape)
        rule = "thisUpdate/nextUpdate (RFC 6960 §4.2.2.1)"
        _check_update_order(entry)
        rule = "entry fields (RFC 6960 §4.2.1)"
        return _evidence(response, entry, signers, leaf_facts, sha1)
    except _RuleFailedError as failure:
        reason = str(failure)
    except _MALFORMED as error:
        reason = f"{rule}: malformed response ({error})"
    except Exception as error:  # noqa: BLE001 - anything unforeseen fails closed
        reason = f"{rule}: the response could not be checked: {error!r}"
    foreign: tuple[tuple[str, bytes, bytes, int], ...] = ()
    if response is not None and shape is not None:
        foreign = _foreign_entries(response, leaf_facts, issuer_facts)
    return _Refusal(_invalid(leaf_facts, reason), foreign)


def _invalid(leaf: LeafFacts, reason: str) -> StapleResult:
    return StapleResult(
        status=StapleStatus.INVALID,
        reason=reason,
        serial_number=leaf.serial_number,
        must_staple=leaf.must_staple,
    )


def _check_size(der: bytes) -> None:
    """staplecheck's bound: no response is judged past :data:`MAX_RESPONSE_BYTES`."""
    if len(der) > MAX_RESPONSE_BYTES:
        raise _RuleFailedError(
            f"the response is {len(der)} bytes, more than staplecheck examines "
            f"({MAX_RESPONSE_BYTES}; a TLS 1.3 staple cannot be larger)"
        )


def _parse(der: bytes) -> ocsp.OCSPResponse:
    """RFC 6960 §4.2.1: an OCSPResponse in DER."""
    try:
        return ocsp.load_der_ocsp_response(der)
    except Exception:  # noqa: BLE001 - the parser's errors vary by input, and are Rust debug text
        raise _RuleFailedError("not a DER OCSP response (RFC 6960 §4.2.1)") from None


def _check_response_status(response: ocsp.OCSPResponse) -> None:
    """RFC 6960 §4.2.1: only a successful response carries a basic response."""
    status = response.response_status
    if status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        name = status.name.lower().replace("_", " ")
        raise _RuleFailedError(f"responseStatus is {name}, not successful (RFC 6960 §4.2.1)")


def _read_shape(der: bytes) -> ResponseShape:
    """The response's structure, within staplecheck's bounds (entries, extensions,
    embedded certificates): beyond them nothing more is examined."""
    try:
        return read_shape(der)
    except ShapeError as error:
        raise _RuleFailedError(
            f"the response exceeds staplecheck's bounds or is malformed: {error}"
        ) from None


class _Signer(NamedTuple):
    public_key: object
    description: str
    valid_from: datetime.datetime | None
    valid_until: datetime.datetime | None
    sha1: bool = False
    """Whether the signer's certificate is signed with SHA-1 (delegates only: a pinned
    certificate's own signature is not checked, so its hash does not matter)."""
    pinned: bool = False
    """A pinned responder: its validity is widened by the clock skew."""


def _identify_signers(
    response: ocsp.OCSPResponse,
    shape: ResponseShape,
    certs: CertPair,
    issuer_facts: IssuerFacts,
    cache: StapleCache | None,
    pins: tuple[_Pin, ...] = (),
) -> list[_Signer]:
    """RFC 6960 §4.2.2.2: the issuer itself, or responders it delegated directly, or a
    trusted responder the caller pinned (``pins``).

    The ResponderID (by name or by SHA-1 key hash, §4.2.1) picks the signer among the
    issuer, the certificates embedded in the response and the pinned ones; nothing
    else is considered, not even the rest of the verified chain. Embedded certificates
    are matched on their raw subject and key bytes; at most ``_MAX_DELEGATE_CHECKS``
    that match have their delegation checked. Pinned certificates are matched the same
    way and come after the others. Those that fail are passed over; if none is left,
    the first failure is the reason.
    """
    names = _ResponderName(response, shape)
    pinned, pin_failure = _pinned_signers(shape, names, certs, pins)
    if (
        shape.responder == issuer_facts.key_hashes["sha1"]
        if shape.by_key
        else names.equals(issuer_facts.subject_der, lambda: issuer_facts.cert.subject)
    ):
        return [_Signer(issuer_facts.public_key, issuer_facts.description, None, None), *pinned]
    delegates: list[_Signer] = []
    first_failure: str | None = None
    checked = 0
    for candidate in shape.certificates:
        if not _is_responder(candidate, shape, names):
            continue
        if checked == _MAX_DELEGATE_CHECKS:
            break
        checked += 1
        signer = _memo(
            cache,
            ("delegate", _digest(candidate, certs.issuer_der, certs.leaf_der)),
            functools.partial(_delegate_signer, candidate, certs),
        )
        if isinstance(signer, str):
            first_failure = first_failure or signer
        else:
            delegates.append(signer)
    if delegates or pinned:
        return delegates + pinned
    if pins and not (first_failure or pin_failure):
        raise _RuleFailedError(
            "the ResponderID names neither the issuer, nor a certificate in the response, "
            "nor a pinned responder (RFC 6960 §4.2.2.2)"
        )
    raise _RuleFailedError(
        first_failure
        or pin_failure
        or "the ResponderID names neither the issuer nor a certificate in the response "
        "(RFC 6960 §4.2.2.2)"
    )


def _pinned_signers(
    shape: ResponseShape, names: _ResponderName, certs: CertPair, pins: tuple[_Pin, ...]
) -> tuple[list[_Signer], str | None]:
    """RFC 6960 §4.2.2.2, trusted responders: the pinned certificates the ResponderID
    names, matched on raw bytes (subject DER, or the SHA-1 of the key bits) before any
    key is used, and why the first refused one was refused. A pinned certificate may
    not vouch for the certificate being checked (itself, or one with its key). Its
    validity period is checked with the time rules (rule 8a)."""
    signers: list[_Signer] = []
    failure: str | None = None
    for pin in pins:
        if shape.by_key:
            named = pin.key_hash == shape.responder
        else:
            named = names.equals(pin.subject_der, lambda: pin.cert.subject)  # noqa: B023 - used at once
        if not named:
            continue
        if pin.der == certs.leaf_der or pin.public_key == certs.leaf.public_key():
            failure = failure or (
                f"the {pin.description} is the certificate being checked; it cannot vouch "
                "for itself (RFC 6960 §4.2.2.2)"
            )
            continue
        signers.append(
            _Signer(pin.public_key, pin.description, pin.valid_from, pin.valid_until, pinned=True)
        )
    return signers, failure


class _ResponderName:
    """Compares a byName ResponderID with other names (:func:`same_name`), parsing the
    ResponderID at most once."""

    def __init__(self, response: ocsp.OCSPResponse, shape: ResponseShape) -> None:
        self._response = response
        self._der = shape.responder
        self._parsed: x509.Name | None = None

    def _name(self) -> x509.Name:
        if self._parsed is None:
            name = self._response.responder_name
            if name is None:  # byKey: no name to compare
                raise ValueError("the ResponderID is not a name")
            self._parsed = name
        return self._parsed

    def equals(self, other_der: bytes, other: Callable[[], x509.Name]) -> bool:
        return same_name(self._der, self._name, other_der, other)


def _is_responder(candidate: bytes, shape: ResponseShape, names: _ResponderName) -> bool:
    """Whether the embedded certificate ``candidate`` (DER) is the one the ResponderID
    names (RFC 6960 §4.2.1)."""
    try:
        fields = _der.certificate_fields(candidate)
    except _der.DERError:
        return False
    if shape.by_key:
        return hashlib.sha1(fields.key_bits).digest() == shape.responder
    return names.equals(fields.subject, lambda: x509.load_der_x509_certificate(candidate).subject)


def _delegate_signer(candidate: bytes, certs: CertPair) -> _Signer | str:
    """The delegate as a signer, or why it may not sign (a message, to be memoized)."""
    try:
        delegate = x509.load_der_x509_certificate(candidate)
        subject = _der.certificate_fields(candidate).subject
        who = f"delegated responder {describe_name(subject, lambda: delegate.subject)}"
        _check_delegate(delegate, candidate, who, certs)
        return _Signer(
            delegate.public_key(),
            who,
            delegate.not_valid_before_utc,
            delegate.not_valid_after_utc,
            signed_with_sha1(delegate),
        )
    except _RuleFailedError as failure:
        return str(failure)
    except _MALFORMED as error:
        detail = str(error) if isinstance(error, _der.DERError) else type(error).__name__
        return f"an embedded responder certificate is malformed ({detail}; RFC 6960 §4.2.2.2)"


def _check_delegate(
    delegate: x509.Certificate, delegate_der: bytes, who: str, certs: CertPair
) -> None:
    """RFC 6960 §4.2.2.2: issued directly by the issuer, id-kp-OCSPSigning. The
    issuer's signature is checked first: until it verifies, the certificate is the
    peer's, and nothing costly is done with it."""
    try:
        check_issued_by(delegate, certs.issuer, der=delegate_der, issuer_der=certs.issuer_der)
    except NotIssuedError as error:
        raise _RuleFailedError(
            f"{who} was not issued by the issuer: {error} (RFC 6960 §4.2.2.2)"
        ) from None
    if delegate_der == certs.leaf_der or delegate.public_key() == certs.leaf.public_key():
        raise _RuleFailedError(
            f"{who} is the certificate being checked; it cannot vouch for itself "
            "(RFC 6960 §4.2.2.2)"
        )
    try:
        usage = delegate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        usage = None
    if usage is None or ExtendedKeyUsageOID.OCSP_SIGNING not in usage.value:
        raise _RuleFailedError(
            f"{who} lacks the id-kp-OCSPSigning extended key usage (RFC 6960 §4.2.2.2)"
        )
    _check_delegate_extensions(delegate, who)


def _check_delegate_extensions(delegate: x509.Certificate, who: str) -> None:
    """RFC 5280 §4.2: no unrecognized critical extension; §4.2.1.3: if keyUsage is
    present, it allows digitalSignature."""
    try:
        extensions = list(delegate.extensions)
    except ValueError as error:
        raise _RuleFailedError(f"{who} has malformed extensions: {error}") from None
    for extension in extensions:
        value = extension.value
        if isinstance(value, x509.UnrecognizedExtension) and extension.critical:
            raise _RuleFailedError(
                f"{who} has an unrecognized critical extension {extension.oid.dotted_string} "
                "(RFC 5280 §4.2)"
            )
        if isinstance(value, x509.KeyUsage) and not value.digital_signature:
            raise _RuleFailedError(
                f"{who} has a keyUsage without digitalSignature (RFC 5280 §4.2.1.3)"
            )


def _verify_signature(
    response: ocsp.OCSPResponse, shape: ResponseShape, candidates: list[_Signer]
) -> tuple[list[_Signer], bool]:
    """RFC 6960 §4.2.1 / §3.2 item 2: the signature over tbsResponseData verifies.

    Returns the candidates whose key verifies it (normally exactly one), and whether
    SHA-1 was involved (in the response's signature or a signer's certificate)."""
    verified: list[_Signer] = []
    failure: _RuleFailedError | None = None
    sha1 = False
    for signer in candidates:
        try:
            digest = _verify_with(response, shape, signer)
        except _RuleFailedError as error:
            failure = failure or error
            continue
        verified.append(signer)
        sha1 = sha1 or isinstance(digest, hashes.SHA1) or signer.sha1
    if not verified:
        assert failure is not None
        raise failure
    return verified, sha1


def _verify_with(
    response: ocsp.OCSPResponse, shape: ResponseShape, signer: _Signer
) -> hashes.HashAlgorithm | None:
    """Verify with ``signer``'s key; return the hash used (``None`` for EdDSA)."""
    oid = response.signature_algorithm_oid.dotted_string
    key = signer.public_key
    data = response.tbs_response_bytes
    signature = response.signature
    try:
        pss = pss_parameters(shape.signature_algorithm) if oid == RSA_PSS else None
    except BadParametersError as error:
        raise _RuleFailedError(str(error)) from None
    try:
        return verify(key, oid, signature, data, pss)
    except UnsupportedSignatureError as error:
        raise _RuleFailedError(
            f"the {signer.description}'s signature {error} (RFC 6960 §4.2.1)"
        ) from None
    except InvalidSignature:
        raise _RuleFailedError(
            f"the signature does not verify with the {signer.description} key (RFC 6960 §3.2)"
        ) from None


def _foreign_entries(
    response: ocsp.OCSPResponse, leaf: LeafFacts, issuer: IssuerFacts
) -> tuple[tuple[str, bytes, bytes, int], ...]:
    """The CertIDs of a response none of whose entries names the leaf (empty if one
    does, or if they cannot be read). The entries were counted by ``_shape``."""
    try:
        entries = list(response.responses)
        found = []
        for entry in entries:
            algorithm = entry.hash_algorithm.name
            if algorithm not in CERT_ID_HASHES:
                continue
            if _names_leaf(entry, algorithm, leaf, issuer):
                return ()
            found.append(
                (algorithm, entry.issuer_name_hash, entry.issuer_key_hash, entry.serial_number)
            )
        return tuple(found)
    except _MALFORMED:
        return ()


def _about_chain(refusal: _Refusal, chain: Sequence[x509.Certificate]) -> StapleResult | None:
    """RFC 8446 §4.4.2.1: in TLS 1.3 a server may staple for any certificate entry.
    A response about another certificate of the verified chain (``chain``: issuer
    first), and about none of the leaf, says nothing of the leaf: its staple is
    missing. Nothing here is trusted beyond that: the response is not evidence."""
    for position, cert in enumerate(chain):
        above = chain[position + 1] if position + 1 < len(chain) else None
        try:
            fields = _der.certificate_fields(cert.public_bytes(_DER))
            issuer_der = fields.issuer
            bits = _der.certificate_fields(above.public_bytes(_DER)).key_bits if above else None
            serial = cert.serial_number
        except _MALFORMED:
            continue
        for algorithm, name_hash, key_hash, entry_serial in refusal.foreign:
            digest = CERT_ID_HASHES[algorithm]
            if (
                entry_serial == serial
                and name_hash == digest(issuer_der).digest()
                and (bits is None or key_hash == digest(bits).digest())
            ):
                result = refusal.result
                return dataclasses.replace(
                    result,
                    status=StapleStatus.MISSING,
                    reason="the server stapled a response about "
                    f"{describe_name(fields.subject, lambda: cert.subject)} "  # noqa: B023 - used at once
                    f"(certificate {position + 2} of the verified chain), not about this "
                    "certificate: its staple is missing (RFC 8446 §4.4.2.1)",
                )
    return None


# When several entries match, the most serious wins (DESIGN.md rule 2).
_PRECEDENCE = {
    ocsp.OCSPCertStatus.REVOKED: 0,
    ocsp.OCSPCertStatus.GOOD: 1,
    ocsp.OCSPCertStatus.UNKNOWN: 2,
}


def _match_entry(
    entries: list[ocsp.OCSPSingleResponse], leaf: LeafFacts, issuer: IssuerFacts
) -> ocsp.OCSPSingleResponse:
    """RFC 6960 §4.1.1 and §3.2 item 1: the entry whose CertID names this certificate.

    The issuer name hash is over the leaf's issuer field; the key hash is over the
    issuer's subjectPublicKey bits; the serial is the leaf's. Any of SHA-1, SHA-256,
    SHA-384 and SHA-512 may be used.
    """
    if not same_name(
        leaf.issuer_der, lambda: leaf.cert.issuer, issuer.subject_der, lambda: issuer.cert.subject
    ):
        raise _RuleFailedError("the issuer certificate's subject is not the leaf's issuer name")
    serial = leaf.serial_number
    matched: list[ocsp.OCSPSingleResponse] = []
    for entry in entries:
        try:
            algorithm = entry.hash_algorithm.name
        except UnsupportedAlgorithm:
            continue
        if algorithm in CERT_ID_HASHES and _names_leaf(entry, algorithm, leaf, issuer):
            matched.append(entry)
    if not matched:
        raise _RuleFailedError(
            f"no entry for serial {serial:#x} under this issuer (RFC 6960 §4.1.1)"
        )
    return min(matched, key=lambda e: _PRECEDENCE[e.certificate_status])


def _names_leaf(
    entry: ocsp.OCSPSingleResponse, algorithm: str, leaf: LeafFacts, issuer: IssuerFacts
) -> bool:
    return bool(
        entry.serial_number == leaf.serial_number
        and entry.issuer_name_hash == leaf.issuer_name_hashes[algorithm]
        and entry.issuer_key_hash == issuer.key_hashes[algorithm]
    )


# Extensions whose meaning staplecheck knows, so a critical one is not "unrecognized"
# in the sense of RFC 5280 §4.2: none of them can turn a verdict into "good".
_KNOWN_EXTENSIONS = frozenset(
    {
        "1.3.6.1.5.5.7.48.1.2",  # nonce (RFC 6960 §4.4.1); staples carry no request
        "1.3.6.1.5.5.7.48.1.3",  # CRL references (§4.4.2)
        "1.3.6.1.5.5.7.48.1.6",  # archive cutoff (§4.4.4)
        "1.3.6.1.5.5.7.48.1.7",  # service locator (§4.4.6)
        "1.3.6.1.5.5.7.48.1.9",  # extended revoke (§4.4.8)
        "2.5.29.21",  # CRL reason code (§4.4.5, RFC 5280 §5.3.1)
        "2.5.29.24",  # invalidity date (§4.4.5, RFC 5280 §5.3.2)
        "1.3.6.1.4.1.11129.2.4.5",  # signed certificate timestamps (RFC 6962 §3.3)
    }
)


def _check_critical_extensions(shape: ResponseShape) -> None:
    """RFC 6960 §4.4 with RFC 5280 §4.2: an unrecognized critical extension fails.

    Checked in responseExtensions and in every SingleResponse's singleExtensions, as
    read from the DER (cryptography exposes only the first entry's).
    """
    for oid, critical in shape.extensions:
        if critical and oid not in _KNOWN_EXTENSIONS:
            raise _RuleFailedError(f"unrecognized critical extension {oid} (RFC 6960 §4.4)")


def _check_update_order(entry: ocsp.OCSPSingleResponse) -> None:
    """RFC 6960 §4.2.2.1: nextUpdate, when present, is not before thisUpdate."""
    next_update = entry.next_update_utc
    if next_update is not None and next_update < entry.this_update_utc:
        raise _RuleFailedError("nextUpdate is before thisUpdate (RFC 6960 §4.2.2.1)")


_STATUS = {
    ocsp.OCSPCertStatus.GOOD: StapleStatus.GOOD,
    ocsp.OCSPCertStatus.REVOKED: StapleStatus.REVOKED,
    ocsp.OCSPCertStatus.UNKNOWN: StapleStatus.UNKNOWN,
}


def _evidence(
    response: ocsp.OCSPResponse,
    entry: ocsp.OCSPSingleResponse,
    signers: list[_Signer],
    leaf: LeafFacts,
    sha1: bool,
) -> _Evidence:
    signer = signers[0]
    status = _STATUS[entry.certificate_status]
    reason = entry.revocation_reason
    revocation_reason = _REASON_NAMES.get(reason) if reason is not None else None
    revocation_time = entry.revocation_time_utc
    if status is StapleStatus.GOOD:
        text = f"signed by the {signer.description}; the certificate is not revoked"
    elif status is StapleStatus.REVOKED:
        when = revocation_time.isoformat() if revocation_time else "an unknown time"
        why = f" ({revocation_reason})" if revocation_reason else ""
        text = f"the {signer.description} says the certificate was revoked at {when}{why}"
    else:
        text = f"the {signer.description} does not know the certificate"
    result = StapleResult(
        status=status,
        reason=text,
        this_update=entry.this_update_utc,
        next_update=entry.next_update_utc,
        produced_at=response.produced_at_utc,
        revocation_time=revocation_time,
        revocation_reason=revocation_reason,
        responder=signer.description,
        serial_number=leaf.serial_number,
        must_staple=leaf.must_staple,
    )
    validity = tuple(
        (s.valid_from, s.valid_until, s.pinned)
        for s in signers
        if s.valid_from is not None and s.valid_until is not None
    )
    if len(validity) < len(signers):
        validity = ()  # the issuer's own key verified it: no responder's period applies
    return _Evidence(result, validity, sha1)


_REASON_NAMES = {
    x509.ReasonFlags.unspecified: "unspecified",
    x509.ReasonFlags.key_compromise: "keyCompromise",
    x509.ReasonFlags.ca_compromise: "cACompromise",
    x509.ReasonFlags.affiliation_changed: "affiliationChanged",
    x509.ReasonFlags.superseded: "superseded",
    x509.ReasonFlags.cessation_of_operation: "cessationOfOperation",
    x509.ReasonFlags.certificate_hold: "certificateHold",
    x509.ReasonFlags.remove_from_crl: "removeFromCRL",
    x509.ReasonFlags.privilege_withdrawn: "privilegeWithdrawn",
    x509.ReasonFlags.aa_compromise: "aACompromise",
}


# --- the time rules --------------------------------------------------------------------


def _judge_time(
    evidence: _Evidence,
    now: datetime.datetime,
    skew: datetime.timedelta,
    default_lifetime: datetime.timedelta,
    max_age: datetime.timedelta,
) -> StapleResult:
    """RFC 6960 §4.2.2.1 and §3.2 items 4-6, with DESIGN.md's skew and age bounds."""
    result = evidence.result
    validity = evidence.signer_validity
    earliest_now, latest_now = _current_window(evidence, skew, default_lifetime, max_age)
    if earliest_now <= now <= latest_now and (not validity or _signer_valid(validity, now, skew)):
        return result  # the common case, in two comparisons; the rules below say why not
    if validity and not _signer_valid(validity, now, skew):
        start, end, pinned = validity[0]
        allowance = f", give or take the clock skew of {skew}" if pinned else ""
        return _downgrade(
            result,
            StapleStatus.INVALID,
            f"the {result.responder} certificate is not valid now "
            f"({start.isoformat()} to {end.isoformat()}{allowance}; RFC 6960 §4.2.2.2)",
        )
    this_update = result.this_update
    assert this_update is not None  # every entry has one
    if this_update > _later(now, skew):
        return _downgrade(
            result,
            StapleStatus.INVALID,
            f"thisUpdate {this_update.isoformat()} is in the future (RFC 6960 §3.2)",
        )
    earliest = _earlier(now, skew)
    if result.next_update is not None:
        expired = result.next_update < earliest
        why = f"past its nextUpdate {result.next_update.isoformat()} (RFC 6960 §3.2)"
    else:
        expired = _later(this_update, default_lifetime) < earliest
        why = (
            "without nextUpdate and older than the default lifetime of "
            f"{default_lifetime} (RFC 6960 §4.2.2.1)"
        )
    if not expired and _later(this_update, max_age) < earliest:
        expired = True
        why = f"older than the maximum age of {max_age}"
    if not expired:
        return result
    if result.status is StapleStatus.REVOKED and result.revocation_reason != "certificateHold":
        return result  # revocation is final; only a hold can be lifted later
    return _downgrade(result, StapleStatus.STALE, f"the response is {why}")


def _signer_valid(
    validity: tuple[tuple[datetime.datetime, datetime.datetime, bool], ...],
    now: datetime.datetime,
    skew: datetime.timedelta,
) -> bool:
    """Whether ``now`` lies in one signer certificate's validity period: exactly for a
    delegate, within the clock skew either way for a pinned responder."""
    for start, end, pinned in validity:
        if pinned:
            if _earlier(start, skew) <= now <= _later(end, skew):
                return True
        elif start <= now <= end:
            return True
    return False


def _current_window(
    evidence: _Evidence,
    skew: datetime.timedelta,
    default_lifetime: datetime.timedelta,
    max_age: datetime.timedelta,
) -> tuple[datetime.datetime, datetime.datetime]:
    """The times ``now`` may take for the response to count as current: from
    thisUpdate − skew to the earliest of nextUpdate (or thisUpdate + default lifetime)
    and thisUpdate + maximum age, plus skew. Remembered for the last settings used."""
    window = evidence.window
    if (
        window is not None
        and window[0] is skew
        and window[1] is default_lifetime
        and window[2] is max_age
    ):
        return window[3], window[4]
    this_update = evidence.result.this_update
    assert this_update is not None  # every entry has one
    earliest, latest = current_window(
        this_update, evidence.result.next_update, skew, default_lifetime, max_age
    )
    evidence.window = (skew, default_lifetime, max_age, earliest, latest)
    return earliest, latest


def _downgrade(result: StapleResult, status: StapleStatus, reason: str) -> StapleResult:
    if result.status is not StapleStatus.GOOD:
        reason = f"{reason}; it said {result.status.value}"
    return dataclasses.replace(result, status=status, reason=reason)


# --- helpers -----------------------------------------------------------------------------
