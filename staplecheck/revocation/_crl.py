"""Judging a CRL (RFC 5280 §5, §6.3) for the certificates of one verified issuer.

Two steps, both pure (no I/O, time passed in). :func:`judge_crl` reads a CRL once:
it bounds the work first (size, then entries and extensions), checks the issuer name,
the issuer's right to sign CRLs and the signature, and only then trusts anything the
CRL says: its extensions, its times and its entries, which it indexes by serial
number. :func:`crl_verdict` answers for one certificate from that index in a few
microseconds (a dictionary lookup and two time comparisons); it is what runs on every
connection.

Every byte of a CRL is hostile until its signature verifies: before that, only the
size cap, cryptography's native parse (linear in the size) and a three-element DER
walk run. Nothing a CRL says can make a certificate ``good`` unless the issuer's key
verified it, its scope (issuingDistributionPoint) covers the certificate, and it is
current. Indirect CRLs (RFC 5280 §5.2.5, §5.3.3) and delta CRLs (§5.2.4) are refused
with a reason: a client that reads only the full CRL of the certificate's own issuer
cannot be misled by either.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime
from collections.abc import Mapping

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes

from ..validation import _der
from ..validation._certfacts import describe_name, same_name
from ..validation._result import StapleResult, StapleStatus
from ..validation._signatures import (
    RSA_PSS,
    BadParametersError,
    UnsupportedSignatureError,
    pss_parameters,
    verify,
)
from ..validation._times import current_window, earlier, later
from ..validation._tlsfeature import has_must_staple

__all__ = [
    "MAX_CRL_BYTES",
    "MAX_CRL_ENTRIES",
    "MAX_CRL_EXTENSIONS",
    "MAX_ENTRY_EXTENSIONS",
    "CRLIndex",
    "CRLRefusal",
    "RevokedEntry",
    "crl_der",
    "crl_verdict",
    "judge_crl",
]

MAX_CRL_BYTES = 32 * 1024 * 1024
"""The largest CRL judged, checked before anything is parsed. Large public CAs'
biggest CRLs have run to tens of megabytes at their worst (mass revocations), private
CAs' are kilobytes to a few megabytes; 100,000 entries with reason codes take about
3.6 MB. 32 MiB leaves room for an incident-sized CRL while capping what one download can
cost: hashing it for the signature and indexing it take well under a second."""
MAX_CRL_ENTRIES = 1_000_000
"""Entries indexed. The size cap alone allows about 1.5 million minimal entries; the
index costs about 110 bytes per entry (a serial, an offset, a dictionary slot; measured
with tracemalloc) besides the entries' DER, so this caps it near 110 MB plus the CRL
for the largest one that fits in :data:`MAX_CRL_BYTES`."""
MAX_CRL_EXTENSIONS = 32
"""crlExtensions (real CRLs: authority key identifier, CRL number, perhaps an
issuing distribution point, freshest CRL and AIA)."""
MAX_ENTRY_EXTENSIONS = 8
"""crlEntryExtensions per entry (real ones: a reason code and an invalidity date)."""

_PEM_BEGIN = b"-----BEGIN X509 CRL-----"
_PEM_END = b"-----END X509 CRL-----"

# Extension OIDs as their DER content, so entries are checked without decoding OIDs.
_REASON_CODE = bytes.fromhex("551d15")  # 2.5.29.21
_INVALIDITY_DATE = bytes.fromhex("551d18")  # 2.5.29.24
_HOLD_INSTRUCTION = bytes.fromhex("551d17")  # 2.5.29.23
_CERTIFICATE_ISSUER = bytes.fromhex("551d1d")  # 2.5.29.29
_ENTRY_EXTENSIONS = frozenset({_REASON_CODE, _INVALIDITY_DATE, _HOLD_INSTRUCTION})

_AUTHORITY_KEY_IDENTIFIER = "2.5.29.35"
_ISSUER_ALT_NAME = "2.5.29.18"
_CRL_NUMBER = "2.5.29.20"
_DELTA_CRL_INDICATOR = "2.5.29.27"
_ISSUING_DISTRIBUTION_POINT = "2.5.29.28"
_FRESHEST_CRL = "2.5.29.46"
_AUTHORITY_INFO_ACCESS = "1.3.6.1.5.5.7.1.1"
# crlExtensions whose meaning is known (RFC 5280 §5.2): none of them can widen what a
# CRL covers, so a critical one is not "unrecognized". Delta CRLs, critical freshest
# CRL pointers and indirect CRLs are recognized, and refused, below.
_CRL_EXTENSIONS = frozenset(
    {
        _AUTHORITY_KEY_IDENTIFIER,
        _ISSUER_ALT_NAME,
        _CRL_NUMBER,
        _ISSUING_DISTRIBUTION_POINT,
        _FRESHEST_CRL,
        _AUTHORITY_INFO_ACCESS,
    }
)

_REASONS = (
    "unspecified",
    "keyCompromise",
    "cACompromise",
    "affiliationChanged",
    "superseded",
    "cessationOfOperation",
    "certificateHold",
    None,  # 7 is not used
    "removeFromCRL",
    "privilegeWithdrawn",
    "aACompromise",
)
_HOLD = "certificateHold"
_REMOVE = "removeFromCRL"

# cryptography raises more than ValueError for extensions it cannot read (an
# EDIPartyName, a duplicate extension): a certificate OpenSSL verified may carry them.
_MALFORMED = (
    ValueError,
    TypeError,
    UnsupportedAlgorithm,
    IndexError,
    _der.DERError,
    x509.UnsupportedGeneralNameType,
    x509.DuplicateExtension,
)


class _RefusedError(Exception):
    """A rule refused the CRL; the message names it. Caught in :func:`judge_crl`."""


# --- results ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class CRLRefusal:
    """Why a CRL is no evidence about any certificate of the issuer."""

    reason: str
    """The rule that failed, with its RFC 5280 section."""
    responder: str | None = None
    """``CRL from issuer CN=...``, when the issuer was known."""


@dataclasses.dataclass(frozen=True, slots=True)
class RevokedEntry:
    """What the CRL says of one listed serial number."""

    serial_number: int
    revocation_time: datetime.datetime
    reason: str | None
    """The CRLReason name (``keyCompromise``...), or ``None`` without a reason code."""


@dataclasses.dataclass(frozen=True, slots=True)
class CRLScope:
    """What an issuingDistributionPoint limits the CRL to (RFC 5280 §5.2.5)."""

    only_user_certs: bool = False
    only_ca_certs: bool = False
    only_some_reasons: frozenset[str] | None = None
    """The reasons this CRL covers, when it covers only some (a partitioned CRL)."""
    point: x509.IssuingDistributionPoint | None = None
    """The extension, when it names a distribution point (a partition by URL)."""


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class CRLIndex:
    """A CRL whose signature verified, indexed by serial number.

    Built by :func:`judge_crl` only; judged per certificate by :func:`crl_verdict`.
    Entries are read from the DER on a hit (a revoked certificate), so indexing costs
    a serial and an offset per entry. The times settings it was judged with are kept:
    ``crl_verdict`` applies them to each ``now``.
    """

    responder: str
    """``CRL from issuer CN=...``."""
    issuer_name: x509.Name
    this_update: datetime.datetime
    next_update: datetime.datetime | None
    crl_number: int | None
    entry_count: int
    sha1: bool
    """Whether the signature uses SHA-1."""
    scope: CRLScope | None
    clock_skew: datetime.timedelta
    earliest: datetime.datetime
    """From when ``now`` counts as current (thisUpdate − skew)."""
    latest: datetime.datetime
    """Until when: the earliest of nextUpdate (or thisUpdate + default lifetime) and
    thisUpdate + maximum age, plus skew."""
    default_lifetime: datetime.timedelta
    max_age: datetime.timedelta
    _offsets: Mapping[int, int | tuple[int, ...]] = dataclasses.field(repr=False)
    _entries: bytes = dataclasses.field(repr=False)
    _decoded: dict[int, RevokedEntry] = dataclasses.field(default_factory=dict, repr=False)
    """Entries already decoded, at most :data:`_MAX_DECODED` (a revoked certificate
    that keeps connecting is looked up on each connection)."""

    def __len__(self) -> int:
        return self.entry_count

    def __contains__(self, serial: object) -> bool:
        return serial in self._offsets

    def lookup(self, serial: int) -> RevokedEntry | None:
        """The entry listing ``serial`` (the most serious, when listed more than once:
        a final revocation, then a hold, then removeFromCRL), or ``None``.

        Raises ``ValueError`` when that entry cannot be read (its DER was walked when
        indexed, but its time and reason are decoded only here)."""
        decoded = self._decoded.get(serial)
        if decoded is not None:
            return decoded
        found = self._offsets.get(serial)
        if found is None:
            return None
        if isinstance(found, int):
            decoded = _read_entry(self._entries, found)
        else:
            decoded = min((_read_entry(self._entries, at) for at in found), key=_seriousness)
        if len(self._decoded) < _MAX_DECODED:
            self._decoded[serial] = decoded
        return decoded


_MAX_DECODED = 4096


def _seriousness(entry: RevokedEntry) -> int:
    return {_HOLD: 1, _REMOVE: 2}.get(entry.reason or "", 0)


# --- judging a CRL ---------------------------------------------------------------------


def judge_crl(
    der_or_pem: bytes,
    issuer: x509.Certificate,
    *,
    issuer_der: bytes,
    now: datetime.datetime,
    clock_skew: datetime.timedelta,
    default_lifetime: datetime.timedelta,
    max_age: datetime.timedelta,
    allow_sha1: bool = True,
) -> CRLIndex | CRLRefusal:
    """Read a CRL (DER, or one PEM ``X509 CRL`` block) that ``issuer`` should have
    signed; return its index, or why it cannot be used.

    ``issuer`` (with ``issuer_der``, its complete DER) must come from a verified
    chain: it is the only key trusted here. Bad bytes never raise; only arguments of
    the wrong type do. A CRL that is merely out of date is indexed, not refused: it
    still proves the revocations it lists (:func:`crl_verdict` calls it stale for the
    rest). ``allow_sha1=False`` refuses a SHA-1 signature.
    """
    if not isinstance(der_or_pem, (bytes, bytearray, memoryview)):
        raise TypeError(f"der_or_pem must be bytes, not {type(der_or_pem).__name__}")
    if not isinstance(issuer, x509.Certificate):
        raise TypeError(f"issuer must be an x509.Certificate, not {type(issuer).__name__}")
    if not isinstance(issuer_der, bytes):
        raise TypeError(f"issuer_der must be bytes, not {type(issuer_der).__name__}")
    _check_time_arguments(now, clock_skew, default_lifetime, max_age)
    responder: str | None = None
    try:
        subject = _der.certificate_fields(issuer_der).subject
        responder = f"CRL from issuer {describe_name(subject, lambda: issuer.subject)}"
        return _judge(
            bytes(der_or_pem),
            issuer,
            subject,
            responder,
            now=now,
            skew=clock_skew,
            default_lifetime=default_lifetime,
            max_age=max_age,
            allow_sha1=allow_sha1,
        )
    except _RefusedError as refusal:
        return CRLRefusal(str(refusal), responder)
    except _MALFORMED as error:
        detail = str(error) if isinstance(error, _der.DERError) else type(error).__name__
        return CRLRefusal(f"the CRL is malformed ({detail}; RFC 5280 §5.1)", responder)


def _check_time_arguments(now: datetime.datetime, *deltas: datetime.timedelta) -> None:
    if not isinstance(now, datetime.datetime):
        raise TypeError("now must be a datetime.datetime")
    if now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    for delta in deltas:
        if not isinstance(delta, datetime.timedelta):
            raise TypeError("clock_skew, default_lifetime and max_age must be timedeltas")


def _judge(
    data: bytes,
    issuer: x509.Certificate,
    issuer_subject: bytes,
    responder: str,
    *,
    now: datetime.datetime,
    skew: datetime.timedelta,
    default_lifetime: datetime.timedelta,
    max_age: datetime.timedelta,
    allow_sha1: bool,
) -> CRLIndex:
    # Before the signature verifies: the size, then a walk of three and seven elements.
    if len(data) > MAX_CRL_BYTES:
        raise _RefusedError(
            f"the CRL is {len(data)} bytes, more than the {MAX_CRL_BYTES} judged "
            "(staplecheck's bound)"
        )
    der = _der_of(data)
    fields = _read_fields(der)
    if fields.inner_algorithm != fields.outer_algorithm:
        raise _RefusedError(
            "the signature algorithm inside tbsCertList differs from signatureAlgorithm "
            "(RFC 5280 §5.1.1.2)"
        )
    try:
        crl = x509.load_der_x509_crl(der)
    except ValueError:
        raise _RefusedError("the CRL cannot be parsed (RFC 5280 §5.1)") from None
    _check_issuer_name(fields, crl, issuer, issuer_subject)
    _check_crl_sign(issuer)
    sha1 = _check_signature(fields, crl, issuer)
    if sha1 and not allow_sha1:
        raise _RefusedError(
            "the CRL is signed with SHA-1, which this policy refuses (allow_sha1=False)"
        )
    # The issuer signed everything below: now what the CRL says is read.
    extensions = _read_extensions(fields)
    if extensions and fields.version == 1:
        raise _RefusedError("a v1 CRL carries extensions (RFC 5280 §5.1.2.1)")
    scope, crl_number = _check_crl_extensions(extensions, crl)
    this_update, next_update = _check_times(crl, now, skew)
    offsets, count = _index_entries(fields.entries, fields.version == 1)
    earliest, latest = current_window(this_update, next_update, skew, default_lifetime, max_age)
    return CRLIndex(
        responder=responder,
        issuer_name=issuer.subject,
        this_update=this_update,
        next_update=next_update,
        crl_number=crl_number,
        entry_count=count,
        sha1=sha1,
        scope=scope,
        clock_skew=skew,
        earliest=earliest,
        latest=latest,
        default_lifetime=default_lifetime,
        max_age=max_age,
        _offsets=offsets,
        _entries=fields.entries,
    )


def crl_der(data: bytes) -> bytes:
    """The DER of a CRL given as DER or as PEM text; ``ValueError``, saying why, for
    PEM text without a readable ``X509 CRL`` block. Nothing is judged."""
    try:
        return _der_of(data)
    except _RefusedError as error:
        raise ValueError(str(error)) from None


def _der_of(data: bytes) -> bytes:
    return _from_pem(data) if data.lstrip()[:5] == b"-----" else data


def _from_pem(data: bytes) -> bytes:
    """The DER inside one PEM ``X509 CRL`` block (RFC 7468 §5)."""
    start = data.find(_PEM_BEGIN)
    end = data.find(_PEM_END, start + 1)
    if start < 0 or end < 0:
        raise _RefusedError("the PEM text holds no X509 CRL block (RFC 7468 §5)")
    body = b"".join(data[start + len(_PEM_BEGIN) : end].split())
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise _RefusedError("the PEM CRL's base64 is malformed (RFC 7468 §5)") from None


@dataclasses.dataclass(frozen=True, slots=True)
class _Fields:
    """CertificateList as its DER has it (RFC 5280 §5.1)."""

    tbs: bytes
    """The complete DER of tbsCertList: what the signature covers."""
    inner_algorithm: bytes
    outer_algorithm: bytes
    signature: bytes
    version: int
    """1 for v1 (no version field), 2 for v2."""
    issuer: bytes
    entries: bytes
    """The content of revokedCertificates (empty when absent)."""
    extensions: bytes | None
    """The content of [0] crlExtensions' SEQUENCE, when present."""


def _read_fields(der: bytes) -> _Fields:
    """RFC 5280 §5.1: walk CertificateList and tbsCertList, bounded (3 and 7
    elements); nothing inside revokedCertificates is read here."""
    outer = _der.read_tlv(der)
    if outer.end != len(der):
        raise _RefusedError("bytes follow the CRL (RFC 5280 §5.1)")
    top = _der.children(_der.expect(outer, _der.SEQUENCE), 3)
    if len(top) != 3:
        raise _RefusedError("a CertificateList has three elements (RFC 5280 §5.1.1)")
    content = outer.value
    signature = _der.expect(top[2], _der.BIT_STRING)
    if not signature or signature[0] != 0:
        raise _RefusedError("signatureValue must be whole octets (RFC 5280 §5.1.1.3)")
    parts = _der.children(_der.expect(top[0], _der.SEQUENCE), 7)
    tbs = top[0].value
    version = 1
    if parts and parts[0].tag == _der.INTEGER:
        if _der.decode_int(parts[0].value) != 1:
            raise _RefusedError("the CRL version must be v2 when present (RFC 5280 §5.1.2.1)")
        version = 2
        parts = parts[1:]
    if len(parts) < 3:
        raise _RefusedError("tbsCertList is too short (RFC 5280 §5.1.2)")
    algorithm, name = parts[0], parts[1]
    rest = parts[4:] if len(parts) > 3 and parts[3].tag in (0x17, 0x18) else parts[3:]
    entries = b""
    extensions = None
    for part in rest:
        if part.tag == _der.SEQUENCE and not entries and extensions is None:
            entries = part.value
        elif part.tag == 0xA0 and extensions is None:
            extensions = _der.expect(_der.read_tlv(part.value), _der.SEQUENCE)
        else:
            raise _RefusedError("tbsCertList has unexpected fields (RFC 5280 §5.1.2)")
    return _Fields(
        tbs=content[top[0].start : top[0].end],
        inner_algorithm=tbs[algorithm.start : algorithm.end],
        outer_algorithm=content[top[1].start : top[1].end],
        signature=signature[1:],
        version=version,
        issuer=tbs[name.start : name.end],
        entries=entries,
        extensions=extensions,
    )


def _check_issuer_name(
    fields: _Fields, crl: x509.CertificateRevocationList, issuer: x509.Certificate, subject: bytes
) -> None:
    """RFC 5280 §6.3.3 (b)(1) and §5.1.2.3: the CRL's issuer is the certificate issuer's
    subject (compared as :func:`same_name` does: bytes, then attributes)."""
    if not same_name(fields.issuer, lambda: crl.issuer, subject, lambda: issuer.subject):
        named = describe_name(fields.issuer, lambda: crl.issuer)
        raise _RefusedError(
            f"the CRL's issuer {named} is not the issuer certificate's subject "
            "(RFC 5280 §6.3.3 (b)(1))"
        )


def _check_crl_sign(issuer: x509.Certificate) -> None:
    """RFC 5280 §6.3.3 (f) and §4.2.1.3: an issuer with keyUsage must assert cRLSign."""
    try:
        usage = issuer.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not usage.crl_sign:
        raise _RefusedError(
            "the issuer's keyUsage does not allow cRLSign (RFC 5280 §6.3.3 (f), §4.2.1.3)"
        )


def _check_signature(
    fields: _Fields, crl: x509.CertificateRevocationList, issuer: x509.Certificate
) -> bool:
    """RFC 5280 §6.3.3 (g) and §5.1.1.2-3: the issuer's key verifies the signature over
    tbsCertList, by the algorithm named both inside and outside it. Returns whether
    SHA-1 was used. (The two algorithm fields were compared in :func:`_judge`.)"""
    oid = crl.signature_algorithm_oid.dotted_string
    try:
        pss = None
        if oid == RSA_PSS:
            pss = pss_parameters(_der.read_tlv(fields.outer_algorithm).value)
        used = verify(issuer.public_key(), oid, fields.signature, fields.tbs, pss)
    except BadParametersError as error:
        raise _RefusedError(f"the CRL's {error}") from None
    except UnsupportedSignatureError as error:
        raise _RefusedError(f"the CRL's signature {error} (RFC 5280 §6.3.3 (g))") from None
    except InvalidSignature:
        raise _RefusedError(
            "the CRL's signature does not verify with the issuer's key (RFC 5280 §6.3.3 (g))"
        ) from None
    except UnsupportedAlgorithm:
        raise _RefusedError(
            f"the CRL's signature algorithm {oid} is not supported (RFC 5280 §6.3.3 (g))"
        ) from None
    return isinstance(used, hashes.SHA1)


def _read_extensions(fields: _Fields) -> list[tuple[str, bool, bytes]]:
    """crlExtensions as (OID, critical, extnValue content), at most
    :data:`MAX_CRL_EXTENSIONS`, each OID once (RFC 5280 §5.2, §4.2)."""
    if fields.extensions is None:
        return []
    try:
        raw = _der.children(fields.extensions, MAX_CRL_EXTENSIONS)
    except _der.LimitError:
        raise _RefusedError(
            f"the CRL has more than {MAX_CRL_EXTENSIONS} extensions (staplecheck's bound)"
        ) from None
    out = []
    seen = set()
    for item in raw:
        oid, critical, value = _extension(_der.expect(item, _der.SEQUENCE))
        if oid in seen:
            raise _RefusedError(
                f"the CRL has extension {_der.decode_oid(oid)} twice (RFC 5280 §5.2, §4.2)"
            )
        seen.add(oid)
        out.append((_der.decode_oid(oid), critical, value))
    return out


def _extension(content: bytes) -> tuple[bytes, bool, bytes]:
    """Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue }:
    the OID's content, the flag and extnValue's content."""
    parts = _der.children(content, 3)
    if len(parts) == 2:
        critical = False
    elif len(parts) == 3:
        flag = _der.expect(parts[1], _der.BOOLEAN)
        if flag not in (b"\xff", b"\x00"):
            raise _der.DERError("a BOOLEAN is one octet, 0x00 or 0xff")
        critical = flag == b"\xff"
    else:
        raise _der.DERError("an Extension has two or three elements")
    return (
        _der.expect(parts[0], _der.OID),
        critical,
        _der.expect(parts[-1], _der.OCTET_STRING),
    )


def _check_crl_extensions(
    extensions: list[tuple[str, bool, bytes]], crl: x509.CertificateRevocationList
) -> tuple[CRLScope | None, int | None]:
    """RFC 5280 §5.2: delta and indirect CRLs are refused, every other critical
    extension must be one staplecheck knows; the scope of an issuingDistributionPoint
    and the CRL number are returned."""
    scope = None
    number = None
    for oid, critical, value in extensions:
        if oid == _DELTA_CRL_INDICATOR:
            raise _RefusedError(
                "delta CRLs are not supported; use the full CRL (deltaCRLIndicator, "
                "RFC 5280 §5.2.4)"
            )
        if oid == _FRESHEST_CRL and critical:
            raise _RefusedError(
                "a critical freshestCRL requires delta CRLs, which are not supported "
                "(RFC 5280 §5.2.6)"
            )
        if critical and oid not in _CRL_EXTENSIONS:
            raise _RefusedError(f"unrecognized critical CRL extension {oid} (RFC 5280 §5.2)")
        if oid == _ISSUING_DISTRIBUTION_POINT:
            scope = _scope(crl)
        elif oid == _CRL_NUMBER:
            number = _der.decode_int(_der.expect(_der.read_tlv(value), _der.INTEGER))
    return scope, number


def _scope(crl: x509.CertificateRevocationList) -> CRLScope:
    """RFC 5280 §5.2.5 and §6.3.3 (b)(2): what the issuingDistributionPoint limits the
    CRL to. Indirect CRLs and CRLs of attribute certificates are refused."""
    point = crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint).value
    if point.indirect_crl:
        raise _RefusedError(
            "indirect CRLs are not supported: the issuingDistributionPoint says indirectCRL "
            "(RFC 5280 §5.2.5)"
        )
    if point.only_contains_attribute_certs:
        raise _RefusedError(
            "the CRL covers only attribute certificates (onlyContainsAttributeCerts, "
            "RFC 5280 §6.3.3 (b)(2)(iv))"
        )
    reasons = None
    if point.only_some_reasons is not None:
        reasons = frozenset(_REASON_FLAG_NAMES[flag] for flag in point.only_some_reasons)
    named = point.full_name is not None or point.relative_name is not None
    return CRLScope(
        only_user_certs=point.only_contains_user_certs,
        only_ca_certs=point.only_contains_ca_certs,
        only_some_reasons=reasons,
        point=point if named else None,
    )


_REASON_FLAG_NAMES = {
    x509.ReasonFlags.unspecified: "unspecified",
    x509.ReasonFlags.key_compromise: "keyCompromise",
    x509.ReasonFlags.ca_compromise: "cACompromise",
    x509.ReasonFlags.affiliation_changed: "affiliationChanged",
    x509.ReasonFlags.superseded: "superseded",
    x509.ReasonFlags.cessation_of_operation: "cessationOfOperation",
    x509.ReasonFlags.certificate_hold: "certificateHold",
    x509.ReasonFlags.privilege_withdrawn: "privilegeWithdrawn",
    x509.ReasonFlags.aa_compromise: "aACompromise",
    x509.ReasonFlags.remove_from_crl: "removeFromCRL",
}


def _check_times(
    crl: x509.CertificateRevocationList, now: datetime.datetime, skew: datetime.timedelta
) -> tuple[datetime.datetime, datetime.datetime | None]:
    """RFC 5280 §5.1.2.4-5: nextUpdate, when present, is not before thisUpdate, and
    thisUpdate is not in the future (beyond the skew): no honest issuer dates a CRL
    ahead, and one that did could outlive its own nextUpdate unseen."""
    this_update = crl.last_update_utc
    next_update = crl.next_update_utc
    if next_update is not None and next_update < this_update:
        raise _RefusedError("the CRL's nextUpdate is before its thisUpdate (RFC 5280 §5.1.2.5)")
    if this_update > later(now, skew):
        raise _RefusedError(
            f"the CRL's thisUpdate {this_update.isoformat()} is in the future (RFC 5280 §5.1.2.4)"
        )
    return this_update, next_update


def _index_entries(entries: bytes, v1: bool) -> tuple[dict[int, int | tuple[int, ...]], int]:
    """RFC 5280 §5.1.2.6 and §5.3: serial number → offset of its entry in ``entries``.

    One pass over the DER, with the element reads inlined (this loop is the cost of a
    large CRL). Entries with extensions have them checked here, since one entry's
    unknown critical extension, or a certificateIssuer (an indirect CRL), makes the
    whole CRL unusable (RFC 5280 §5.3). Times and reasons are decoded on lookup."""
    index: dict[int, int | tuple[int, ...]] = {}
    size = len(entries)
    position = 0
    count = 0
    from_bytes = int.from_bytes
    while position < size:
        if count == MAX_CRL_ENTRIES:
            raise _RefusedError(
                f"the CRL lists more than {MAX_CRL_ENTRIES} certificates (staplecheck's bound)"
            )
        start = position
        if entries[position] != 0x30:
            raise _der.DERError("an entry is not a SEQUENCE")
        end, position = _length(entries, position + 1)
        if end > size:
            raise _der.DERError("an entry runs past revokedCertificates")
        if entries[position] != _der.INTEGER:
            raise _der.DERError("an entry's serial is not an INTEGER")
        serial_end, serial_start = _length(entries, position + 1)
        if serial_end > end or serial_end == serial_start:
            raise _der.DERError("bad serial number")
        serial = from_bytes(entries[serial_start:serial_end], "big", signed=True)
        if entries[serial_end] not in (0x17, 0x18):
            raise _der.DERError("an entry's revocationDate is not a Time")
        time_end, _ = _length(entries, serial_end + 1)
        if time_end < end:
            if v1:
                raise _RefusedError("a v1 CRL carries entry extensions (RFC 5280 §5.1.2.1)")
            extensions = entries[time_end:end]
            if extensions not in _REASON_ONLY:
                _check_entry_extensions(extensions, serial)
        elif time_end > end:
            raise _der.DERError("an entry's revocationDate runs past the entry")
        found = index.setdefault(serial, start)
        if found != start:  # listed again: keep every entry, the lookup picks
            index[serial] = (*found, start) if isinstance(found, tuple) else (found, start)
        count += 1
        position = end
    return index, count


# crlEntryExtensions holding one non-critical reasonCode, for each reason: what most
# entries of large CRLs carry, recognized with one set lookup instead of a DER walk.
_REASON_ONLY = frozenset(
    bytes.fromhex("300c300a0603551d150403 0a01".replace(" ", "")) + bytes([code])
    for code in range(len(_REASONS))
)


def _length(data: bytes, at: int) -> tuple[int, int]:
    """A DER length at ``at``: (end of the content, start of the content)."""
    first = data[at]
    if first < 0x80:
        return at + 1 + first, at + 1
    count = first & 0x7F
    if count == 0 or count > 4:
        raise _der.DERError("bad length")
    start = at + 1 + count
    return start + int.from_bytes(data[at + 1 : start], "big"), start


def _check_entry_extensions(element: bytes, serial: int) -> None:
    """RFC 5280 §5.3: an entry's unknown critical extension, or a certificateIssuer,
    makes the CRL unusable."""
    wrapper = _der.read_tlv(element)
    if wrapper.end != len(element):
        raise _der.DERError("bytes follow an entry's extensions")
    try:
        items = _der.children(_der.expect(wrapper, _der.SEQUENCE), MAX_ENTRY_EXTENSIONS)
    except _der.LimitError:
        raise _RefusedError(
            f"an entry has more than {MAX_ENTRY_EXTENSIONS} extensions (staplecheck's bound)"
        ) from None
    for item in items:
        oid, critical, _ = _extension(_der.expect(item, _der.SEQUENCE))
        if oid == _CERTIFICATE_ISSUER:
            raise _RefusedError(
                f"indirect CRLs are not supported: the entry for serial {serial:#x} has a "
                "certificateIssuer extension (RFC 5280 §5.3.3)"
            )
        if critical and oid not in _ENTRY_EXTENSIONS:
            raise _RefusedError(
                f"unrecognized critical extension {_der.decode_oid(oid)} in the entry for "
                f"serial {serial:#x} (RFC 5280 §5.3)"
            )


def _read_entry(entries: bytes, offset: int) -> RevokedEntry:
    """Decode the entry at ``offset``: serial, revocationDate and reason code."""
    entry = _der.read_tlv(entries, offset)
    parts = _der.children(_der.expect(entry, _der.SEQUENCE), 3)
    serial = _der.decode_int(_der.expect(parts[0], _der.INTEGER))
    when = _decode_time(parts[1])
    reason = None
    if len(parts) == 3:
        for item in _der.children(_der.expect(parts[2], _der.SEQUENCE), MAX_ENTRY_EXTENSIONS):
            oid, _, value = _extension(_der.expect(item, _der.SEQUENCE))
            if oid == _REASON_CODE:
                code = _der.decode_int(_der.expect(_der.read_tlv(value), _der.ENUMERATED))
                if not 0 <= code < len(_REASONS) or _REASONS[code] is None:
                    raise _der.DERError(f"unknown CRLReason {code} (RFC 5280 §5.3.1)")
                reason = _REASONS[code]
    return RevokedEntry(serial, when, reason)


def _decode_time(tlv: _der.TLV) -> datetime.datetime:
    """RFC 5280 §5.1.2.6 via §4.1.2.5.1-2: UTCTime YYMMDDHHMMSSZ (years 1950-2049) or
    GeneralizedTime YYYYMMDDHHMMSSZ, in UTC, with seconds and no fraction."""
    text = tlv.value.decode("ascii")
    if tlv.tag == 0x17 and len(text) == 13:
        year = int(text[:2])
        text = f"{year + (1900 if year >= 50 else 2000)}{text[2:]}"
    elif tlv.tag != 0x18 or len(text) != 15:
        raise _der.DERError("a Time is UTCTime or GeneralizedTime in UTC, with seconds")
    if not text[:14].isdigit() or text[14] != "Z":
        raise _der.DERError("a Time is digits ending in Z")
    # By hand: strptime costs five times as much, on the path of every revoked lookup.
    return datetime.datetime(
        int(text[:4]),
        int(text[4:6]),
        int(text[6:8]),
        int(text[8:10]),
        int(text[10:12]),
        int(text[12:14]),
        tzinfo=datetime.timezone.utc,
    )


# --- the verdict for one certificate ---------------------------------------------------


def crl_verdict(
    crl: CRLIndex | CRLRefusal,
    cert: x509.Certificate,
    *,
    now: datetime.datetime,
    must_staple: bool | None = None,
) -> StapleResult:
    """What the judged CRL says of ``cert`` at ``now`` (RFC 5280 §6.3.3).

    ``revoked`` when listed (even when the CRL is out of date, except for a
    certificateHold, which may since have been lifted); ``good`` when not listed, in
    the CRL's scope, and the CRL is current; ``stale`` when not listed (or held) and
    the CRL is past its nextUpdate or older than the maximum age; ``invalid`` when the
    CRL was refused, is not the certificate issuer's, does not cover this
    certificate, or cannot answer for it. ``cert`` must have been issued by the
    issuer the CRL was judged against, in a verified chain.

    ``must_staple`` fills the result's field when the caller knows it already (the
    staple's result has it); by default it is read from ``cert``.
    """
    if not isinstance(cert, x509.Certificate):
        raise TypeError(f"cert must be an x509.Certificate, not {type(cert).__name__}")
    if not isinstance(now, datetime.datetime):
        raise TypeError("now must be a datetime.datetime")
    serial = cert.serial_number
    flag = _must_staple(cert) if must_staple is None else must_staple
    if isinstance(crl, CRLRefusal):
        return _result(StapleStatus.INVALID, crl.reason, flag, serial, crl.responder)
    if not isinstance(crl, CRLIndex):
        raise TypeError(f"crl must be a CRLIndex or CRLRefusal, not {type(crl).__name__}")
    if cert.issuer != crl.issuer_name:
        return _invalid(
            crl,
            flag,
            serial,
            "the CRL's issuer is not this certificate's issuer (RFC 5280 §6.3.3 (b)(1))",
        )
    if crl.scope is not None:
        outside = _outside_scope(crl.scope, cert)
        if outside is not None:
            return _invalid(crl, flag, serial, outside)
    try:
        entry = crl.lookup(serial)
    except _MALFORMED as error:
        return _invalid(
            crl, flag, serial, f"the CRL's entry for this serial is malformed ({error})"
        )
    current = crl.earliest <= now <= crl.latest
    if entry is not None:
        return _listed(crl, flag, entry, now, current)
    if current:
        if crl.scope is not None and crl.scope.only_some_reasons is not None:
            covered = ", ".join(sorted(crl.scope.only_some_reasons))
            return _invalid(
                crl,
                flag,
                serial,
                f"the CRL covers only the reasons {covered}; absence from it proves nothing "
                "about the others, and staplecheck does not combine partitioned CRLs "
                "(RFC 5280 §6.3.3 (b)(2)(iii), (d))",
            )
        return _result(
            StapleStatus.GOOD,
            f"not listed in the {crl.responder}",
            flag,
            serial,
            crl.responder,
            crl,
        )
    return _out_of_date(crl, flag, serial, now, "not listed")


def _listed(
    crl: CRLIndex,
    flag: bool,
    entry: RevokedEntry,
    now: datetime.datetime,
    current: bool,
) -> StapleResult:
    serial = entry.serial_number
    if not current and crl.this_update > later(now, crl.clock_skew):
        return _out_of_date(crl, flag, serial, now, "revoked")
    if entry.reason == _REMOVE:
        # RFC 5280 §5.3.1: removeFromCRL belongs in delta CRLs, which are refused.
        return _invalid(
            crl,
            flag,
            serial,
            "the CRL lists this certificate with reason removeFromCRL, which only delta "
            "CRLs may use (RFC 5280 §5.3.1)",
        )
    if not current and entry.reason == _HOLD:
        return _out_of_date(crl, flag, serial, now, "on hold (certificateHold)")
    why = f" ({entry.reason})" if entry.reason else ""
    return _result(
        StapleStatus.REVOKED,
        f"the {crl.responder} lists the certificate as revoked at "
        f"{entry.revocation_time.isoformat()}{why} (RFC 5280 §5.1.2.6)",
        flag,
        serial,
        crl.responder,
        crl,
        revocation_time=entry.revocation_time,
        revocation_reason=entry.reason,
    )


def _out_of_date(
    crl: CRLIndex, flag: bool, serial: int, now: datetime.datetime, said: str
) -> StapleResult:
    """The time rules, when ``now`` is outside the CRL's window (DESIGN.md rule 5, the
    same as a staple's): a thisUpdate in the future is invalid, the rest stale."""
    if crl.this_update > later(now, crl.clock_skew):
        return _invalid(
            crl,
            flag,
            serial,
            f"the CRL's thisUpdate {crl.this_update.isoformat()} is in the future "
            "(RFC 5280 §5.1.2.4)",
        )
    earliest = earlier(now, crl.clock_skew)
    if crl.next_update is not None and crl.next_update < earliest:
        why = f"past its nextUpdate {crl.next_update.isoformat()} (RFC 5280 §5.1.2.5)"
    elif crl.next_update is None and later(crl.this_update, crl.default_lifetime) < earliest:
        why = (
            f"without nextUpdate and older than the default lifetime of {crl.default_lifetime} "
            "(RFC 5280 §5.1.2.5)"
        )
    else:
        why = f"older than the maximum age of {crl.max_age}"
    return _result(
        StapleStatus.STALE,
        f"the CRL is {why}; it said {said}",
        flag,
        serial,
        crl.responder,
        crl,
    )


def _outside_scope(scope: CRLScope, cert: x509.Certificate) -> str | None:
    """RFC 5280 §6.3.3 (b)(2): why an issuingDistributionPoint's CRL does not cover
    ``cert``, or ``None`` when it does."""
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        is_ca = constraints.ca
    except x509.ExtensionNotFound:
        is_ca = False
    except _MALFORMED:
        return "the certificate's extensions cannot be read"
    if scope.only_ca_certs and not is_ca:
        return (
            "the CRL covers only CA certificates (onlyContainsCACerts) and this one is not "
            "a CA (RFC 5280 §6.3.3 (b)(2)(iii))"
        )
    if scope.only_user_certs and is_ca:
        return (
            "the CRL covers only end-entity certificates (onlyContainsUserCerts) and this "
            "one is a CA (RFC 5280 §6.3.3 (b)(2)(ii))"
        )
    if scope.point is not None and not _names_point(scope.point, cert):
        return (
            "the CRL covers only the distribution point its issuingDistributionPoint names, "
            "and this certificate's CRL distribution points do not name it "
            "(RFC 5280 §6.3.3 (b)(2)(i))"
        )
    return None


def _names_point(point: x509.IssuingDistributionPoint, cert: x509.Certificate) -> bool:
    """Whether one of the certificate's own distribution points (those without a
    cRLIssuer: indirect CRLs are refused) has a name the CRL's IDP has."""
    try:
        points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        return False
    except _MALFORMED:
        return False
    for candidate in points:
        if candidate.crl_issuer is not None:
            continue
        if point.full_name is not None and candidate.full_name is not None:
            if set(point.full_name) & set(candidate.full_name):
                return True
        elif point.relative_name is not None and point.relative_name == candidate.relative_name:
            return True
    return False


def _invalid(crl: CRLIndex, flag: bool, serial: int, reason: str) -> StapleResult:
    return _result(StapleStatus.INVALID, reason, flag, serial, crl.responder, crl)


def _result(
    status: StapleStatus,
    reason: str,
    must_staple: bool,
    serial: int,
    responder: str | None,
    crl: CRLIndex | None = None,
    *,
    revocation_time: datetime.datetime | None = None,
    revocation_reason: str | None = None,
) -> StapleResult:
    return StapleResult(
        status=status,
        reason=reason,
        this_update=crl.this_update if crl else None,
        next_update=crl.next_update if crl else None,
        revocation_time=revocation_time,
        revocation_reason=revocation_reason,
        responder=responder,
        serial_number=serial,
        must_staple=must_staple,
    )


def _must_staple(cert: x509.Certificate) -> bool:
    """:func:`has_must_staple`, from cryptography's parsed extensions when they can be
    read (it reads the TBSCertificate's bytes first: three times the cost of this
    whole verdict's other work)."""
    try:
        # A loop, not get_extension_for_class: its ExtensionNotFound, the common
        # case, costs more than the rest of a verdict.
        for extension in cert.extensions:
            if isinstance(extension.value, x509.TLSFeature):
                return x509.TLSFeatureType.status_request in extension.value
    except _MALFORMED:
        return has_must_staple(cert)  # it decides unreadable extensions, failing closed
    return False
