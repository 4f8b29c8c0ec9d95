"""The live-OCSP client's pure half: build a request, judge what a responder sent.

No I/O, no clock, no randomness: the caller passes the nonce bytes and ``now``. The
bytes go over HTTP through :mod:`staplecheck.revocation._fetch`.

A fetched response is judged by :func:`staplecheck.validation._validate.judge_staple`, the one
place an OCSP response is judged, with exactly a staple's rules; then, when the
request carried a nonce, by the nonce rule (RFC 8954 §2.1). Nothing a responder sends
is trusted: the validator keeps its bounds (size, entries, extensions, certificates)
and the nonce is read only from a response that passed every other rule, by a walk
whose loops are bounded by those same limits.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import hashlib
import urllib.parse
from collections.abc import Sequence

from ..validation import _der
from ..validation._result import StapleResult, StapleStatus
from ..validation._shape import MAX_EXTENSIONS
from ..validation._validate import CertPair, StapleCache, judge_staple, trusted_responder_pins

__all__ = [
    "DEFINITE",
    "GET_MAX_REQUEST_BYTES",
    "MAX_NONCE_BYTES",
    "OCSP_REQUEST_TYPE",
    "OCSP_RESPONSE_TYPE",
    "OCSPRequest",
    "build_request",
    "get_url",
    "judge_fetched",
    "response_status",
]

OCSP_REQUEST_TYPE = "application/ocsp-request"
"""The Content-Type of a POSTed request (RFC 6960 Appendix A.1)."""
OCSP_RESPONSE_TYPE = "application/ocsp-response"
"""The Content-Type of a response (RFC 6960 Appendix A.1)."""
GET_MAX_REQUEST_BYTES = 255
"""RFC 5019 §5: clients use GET only for requests of at most 255 bytes (an HTTP
cache's URL limit); larger ones are POSTed. A SHA-1 request with a 32-byte nonce
is about 120 bytes."""
MAX_NONCE_BYTES = 32
"""RFC 8954 §2.1: a nonce is 1 to 32 octets (responders may refuse longer ones)."""

DEFINITE = frozenset({StapleStatus.GOOD, StapleStatus.REVOKED, StapleStatus.UNKNOWN})
"""The statuses that answer the revocation question (a responder said so, properly);
the first of these from any responder wins (the MongoDB drivers' rule)."""

_NONCE_OID = "1.3.6.1.5.5.7.48.1.2"  # id-pkix-ocsp-nonce (RFC 6960 §4.4.1)
_NONCE_OID_DER = bytes.fromhex("06092b0601050507300102")
# AlgorithmIdentifier of each CertID hash, parameters NULL as RFC 5019 §4 and OpenSSL
# write them (some responders compare the CertID's bytes, so NULL is kept).
_HASH_ALGORITHMS = {
    "sha1": (bytes.fromhex("06052b0e03021a"), hashlib.sha1),
    "sha256": (bytes.fromhex("0609608648016503040201"), hashlib.sha256),
}
_NULL = b"\x05\x00"

# RFC 6960 §4.2.1 OCSPResponseStatus values, by the names the RFC gives them.
_RESPONSE_STATUSES = {
    0: "successful",
    1: "malformedRequest",
    2: "internalError",
    3: "tryLater",
    5: "sigRequired",
    6: "unauthorized",
}


# --- a few DER writers (the request is the only DER staplecheck writes) ---------------


def _tlv(tag: int, content: bytes) -> bytes:
    length = len(content)
    if length < 0x80:
        return bytes((tag, length)) + content
    size = (length.bit_length() + 7) // 8
    return bytes((tag, 0x80 | size)) + length.to_bytes(size, "big") + content


def _sequence(*parts: bytes) -> bytes:
    return _tlv(_der.SEQUENCE, b"".join(parts))


def _octet_string(content: bytes) -> bytes:
    return _tlv(_der.OCTET_STRING, content)


# --- building a request ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class OCSPRequest:
    """One DER OCSPRequest for one certificate (RFC 6960 §4.1.1), and what it asks."""

    der: bytes
    """The request, DER-encoded: POST it, or put it in a GET URL (:func:`get_url`)."""
    hash_algorithm: str
    """The CertID hash: ``sha1`` (the default) or ``sha256``."""
    issuer_name_hash: bytes
    issuer_key_hash: bytes
    serial_number: int
    nonce: bytes | None
    """The nonce sent, or ``None``; :func:`judge_fetched` needs it back."""


def build_request(
    certs: CertPair, *, hash_algorithm: str = "sha1", nonce: bytes | None = None
) -> OCSPRequest:
    """The request asking about ``certs.leaf`` (RFC 6960 §4.1.1).

    The CertID is computed from the DER as sent, never re-encoded: issuerNameHash over
    the leaf's issuer field, issuerKeyHash over the issuer's subjectPublicKey bits (a
    compressed EC point stays compressed), the serial number's INTEGER copied as is.
    SHA-1 is the default because RFC 5019 responders (and pre-produced responses) only
    answer SHA-1 CertIDs; SHA-1 here is an identifier, not a signature, and the
    response is matched whatever hash it uses.

    ``nonce`` (RFC 8954: 1 to 32 octets) is the caller's randomness, for instance
    ``os.urandom(16)``: this module reads no clock and no random source. No nonce by
    default: pre-produced responders (RFC 5019, Vault) ignore it, and one that was
    sent must come back (:func:`judge_fetched`).

    Raises ``ValueError`` for an unsupported hash, a bad nonce length, or a
    certificate whose DER cannot be read.
    """
    if hash_algorithm not in _HASH_ALGORITHMS:
        raise ValueError(f"hash_algorithm must be one of {sorted(_HASH_ALGORITHMS)}")
    if nonce is not None:
        if not isinstance(nonce, bytes):
            raise TypeError("nonce must be bytes")
        if not 1 <= len(nonce) <= MAX_NONCE_BYTES:
            raise ValueError(f"a nonce is 1 to {MAX_NONCE_BYTES} octets (RFC 8954 §2.1)")
    algorithm_oid, digest = _HASH_ALGORITHMS[hash_algorithm]
    leaf_issuer = _der.certificate_fields(certs.leaf_der).issuer
    key_bits = _der.certificate_fields(certs.issuer_der).key_bits
    serial_tlv = _serial_tlv(certs.leaf_der)
    name_hash = digest(leaf_issuer).digest()
    key_hash = digest(key_bits).digest()
    cert_id = _sequence(
        _sequence(algorithm_oid, _NULL),
        _octet_string(name_hash),
        _octet_string(key_hash),
        serial_tlv,
    )
    tbs_parts = [_sequence(_sequence(cert_id))]  # requestList: one Request, no extensions
    if nonce is not None:
        # requestExtensions [2] EXPLICIT: one Extension whose extnValue is the DER of
        # Nonce ::= OCTET STRING (RFC 8954 §2.1), not critical.
        extension = _sequence(_NONCE_OID_DER, _octet_string(_octet_string(nonce)))
        tbs_parts.append(_tlv(0xA2, _sequence(extension)))
    der = _sequence(_sequence(*tbs_parts))
    return OCSPRequest(
        der=der,
        hash_algorithm=hash_algorithm,
        issuer_name_hash=name_hash,
        issuer_key_hash=key_hash,
        serial_number=_der.decode_int(_der.read_tlv(serial_tlv).value),
        nonce=nonce,
    )


def _serial_tlv(certificate_der: bytes) -> bytes:
    """The serialNumber INTEGER of a certificate, tag and length included, as encoded
    (RFC 5280 §4.1.2.2): the CertID must name the serial the CA wrote."""
    certificate = _der.children(_der.expect(_der.read_tlv(certificate_der), _der.SEQUENCE), 3)
    tbs = certificate[0].value
    fields = _der.children(_der.expect(certificate[0], _der.SEQUENCE), 10)
    if fields and fields[0].tag == 0xA0:  # [0] EXPLICIT version
        fields = fields[1:]
    if not fields or fields[0].tag != _der.INTEGER:
        raise _der.DERError("the certificate has no serialNumber")
    return tbs[fields[0].start : fields[0].end]


def get_url(base_url: str, request_der: bytes) -> str:
    """The GET URL for a request (RFC 6960 Appendix A.1, RFC 5019 §5).

    The base64 of the DER is URL-encoded (``+``, ``/`` and ``=`` escaped) and joined to
    the responder URL's path with exactly one ``/``, whether or not the URL ends with
    one. A query or fragment in ``base_url`` is refused (``ValueError``): where the
    request would go is then ambiguous. RFC 5019 limits GET to requests of at most
    :data:`GET_MAX_REQUEST_BYTES`; this function does not (the fetcher's caller
    chooses, and POST is the default).
    """
    parts = urllib.parse.urlsplit(base_url)
    if parts.query or parts.fragment:
        raise ValueError(f"an OCSP URL for GET cannot carry a query or fragment: {base_url!r}")
    encoded = urllib.parse.quote(base64.b64encode(request_der).decode("ascii"), safe="")
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path + encoded, "", ""))


# --- judging a fetched response -----------------------------------------------------------


def judge_fetched(
    der: bytes,
    certs: CertPair,
    *,
    nonce: bytes | None,
    now: datetime.datetime,
    clock_skew: datetime.timedelta,
    default_lifetime: datetime.timedelta,
    max_age: datetime.timedelta,
    allow_sha1: bool,
    cache: StapleCache | None,
    trusted_responders: Sequence[bytes] = (),
) -> StapleResult:
    """Judge a response fetched from a responder for ``certs.leaf``.

    First exactly a staple's rules (:func:`~staplecheck.validation._validate.judge_staple`:
    CertID, authorized signer, signature, times, critical extensions, bounds). Then,
    when the request carried ``nonce``, the nonce rule (RFC 8954 §2.1): the response
    must carry a nonce extension equal to it, else ``invalid``. A responder that
    ignores nonces (Vault, pre-produced RFC 5019 responders) therefore gives
    ``invalid`` to a caller who sent one; that is why no nonce is the default.
    Without a nonce, a response's own nonce (whatever its value) is not looked at.

    A response with an unsuccessful responseStatus is ``invalid``, as a staple is,
    and its reason names the status as RFC 6960 does (``tryLater``, ...), so that a
    caller can tell a busy responder from a forgery. Empty bytes are ``invalid`` (a
    responder that answered nothing), never ``missing``. Bad bytes never raise.

    ``trusted_responders`` (DER, default none) goes to ``judge_staple`` unchanged: the
    explicit opt-in to pinned responder certificates, which may sign for any
    certificate (:func:`staplecheck.validate_staple` says what is still checked). The
    nonce rule applies to their responses as to any other. ``ValueError`` for more
    than :data:`~staplecheck.validation._validate.MAX_TRUSTED_RESPONDERS`, or for one that is not
    a DER certificate, even when ``der`` is empty.
    """
    if trusted_responders:
        trusted_responder_pins(trusted_responders, cache)  # a bad configuration raises
    if not der:
        return StapleResult(
            status=StapleStatus.INVALID,
            reason="the responder sent an empty response (RFC 6960 §4.2.1)",
            serial_number=_serial_or_none(certs),
        )
    result = judge_staple(
        der,
        certs,
        now=now,
        clock_skew=clock_skew,
        default_lifetime=default_lifetime,
        max_age=max_age,
        allow_sha1=allow_sha1,
        chain=(),
        cache=cache,
        trusted_responders=trusted_responders,
    )
    if result.status is StapleStatus.INVALID:
        status = response_status(der)
        if status is not None and status != "successful":
            return dataclasses.replace(
                result,
                reason=f"the responder answered {status}, not successful: {result.reason}",
            )
        return result
    if nonce is None:
        return result
    # Only a response that is properly signed for this certificate gets this far: its
    # structure was walked within _shape's bounds, so the walk below is bounded too.
    found = _response_nonce(der)
    if found is _NoNonce:
        problem = "carries no nonce, though the request sent one"
    elif found is _BadNonce:
        problem = "carries a nonce extension that cannot be read, or more than one"
    elif found != nonce:
        problem = "carries a nonce that is not the one the request sent (a replay?)"
    else:
        return result
    return dataclasses.replace(
        result,
        status=StapleStatus.INVALID,
        reason=f"the response {problem} (RFC 8954 §2.1); it said {result.status.value}",
    )


def _serial_or_none(certs: CertPair) -> int | None:
    try:
        return certs.leaf.serial_number
    except ValueError:
        return None


def response_status(der: bytes) -> str | None:
    """The responseStatus of an OCSPResponse by its RFC 6960 name (``successful``,
    ``tryLater``, ...), ``"status N"`` for a value the RFC does not define, or ``None``
    when the bytes do not start like an OCSPResponse. Reads two elements, no more."""
    try:
        outer = _der.read_tlv(der)
        if outer.tag != _der.SEQUENCE:
            return None
        first = _der.read_tlv(outer.value)
        if first.tag != _der.ENUMERATED or len(first.value) > 1:
            return None
        value = _der.decode_int(first.value)
    except _der.DERError:
        return None
    return _RESPONSE_STATUSES.get(value, f"status {value}")


class _NoNonce:
    """Sentinel: the response has no nonce extension."""


class _BadNonce:
    """Sentinel: a nonce extension that is not an OCTET STRING, or two of them."""


def _response_nonce(der: bytes) -> bytes | type[_NoNonce] | type[_BadNonce]:
    """The nonce in responseExtensions (RFC 6960 §4.4.1), read from the DER.

    The value is the content of the Nonce OCTET STRING inside extnValue (RFC 8954
    §2.1). Some old responders put the raw nonce in extnValue without that inner
    OCTET STRING; this is refused, not guessed at: comparing two readings would let
    a crafted value match either. Every loop is bounded (``limit``).
    """
    try:
        outer = _der.children(_der.expect(_der.read_tlv(der), _der.SEQUENCE), 2)
        response_bytes = _der.children(
            _der.expect(_der.read_tlv(_der.expect(outer[1], 0xA0)), _der.SEQUENCE), 2
        )
        basic = _der.children(
            _der.expect(_der.read_tlv(_der.expect(response_bytes[1], _der.OCTET_STRING)), 0x30),
            4,
        )
        data = _der.children(_der.expect(basic[0], _der.SEQUENCE), 5)
        if data and data[0].tag == 0xA0:  # [0] EXPLICIT version
            data = data[1:]
        # responderID, producedAt, responses, [1] EXPLICIT responseExtensions?
        if len(data) < 4:
            return _NoNonce
        if data[3].tag != 0xA1:
            return _BadNonce
        extensions = _der.children(
            _der.expect(_der.read_tlv(data[3].value), _der.SEQUENCE), MAX_EXTENSIONS
        )
        values: list[bytes] = []
        for extension in extensions:
            parts = _der.children(_der.expect(extension, _der.SEQUENCE), 3)
            if parts[0].tag == _der.OID and _der.decode_oid(parts[0].value) == _NONCE_OID:
                inner = _der.read_tlv(_der.expect(parts[-1], _der.OCTET_STRING))
                if inner.end != len(parts[-1].value):
                    return _BadNonce
                values.append(_der.expect(inner, _der.OCTET_STRING))
    except (_der.DERError, IndexError):
        return _BadNonce
    if not values:
        return _NoNonce
    if len(values) > 1:
        return _BadNonce  # RFC 5280 §4.2: an extension appears at most once
    return values[0]
