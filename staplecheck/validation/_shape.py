"""The structure of an OCSP response, read from its DER within fixed bounds.

Everything a peer can make numerous (entries, extensions, embedded certificates,
names) is counted here, by walking the DER, before anything costly is done with it:
cryptography builds a Python object per element it is asked for (an embedded
certificate costs about 100 µs), and a 64 KB staple can hold hundreds of them. A
response over any bound is refused whole, so the validator's work before (and after)
the signature check is bounded whatever the peer sends. The walk also gives what
cryptography does not expose: the ResponderID's raw bytes, every entry's extensions,
and the signature algorithm's parameters.

The DER has already been parsed by cryptography when this runs, so its structure is
known to be valid; this module only finds and counts.
"""

from __future__ import annotations

import dataclasses

from . import _der

__all__ = [
    "MAX_CERTIFICATES",
    "MAX_ENTRIES",
    "MAX_EXTENSIONS",
    "MAX_RESPONSE_BYTES",
    "ResponseShape",
    "ShapeError",
    "read_shape",
]

MAX_RESPONSE_BYTES = 65_536
"""The largest response judged (checked before parsing, by the validator). A TLS 1.3
staple cannot exceed 65,535 bytes (RFC 8446 §4.4.2: a 2-byte extension length); real
ones are 0.3-6 KB."""
MAX_ENTRIES = 64
"""SingleResponses per response. A staple needs one; batch responses from OpenSSL's
responder or pre-produced files hold a few."""
MAX_EXTENSIONS = 64
"""Extensions in responseExtensions and all singleExtensions together (real responses:
a nonce, a CRL reason, a few SCTs)."""
MAX_CERTIFICATES = 8
"""Embedded certificates (real responses: a delegated responder and its chain, 1-3)."""


class ShapeError(ValueError):
    """The response exceeds a bound, or its DER is not what the structure needs."""


@dataclasses.dataclass(frozen=True, slots=True)
class ResponseShape:
    """What the walk found (RFC 6960 §4.2.1)."""

    by_key: bool
    """Whether the ResponderID is byKey (else byName)."""
    responder: bytes
    """The ResponderID: the SHA-1 KeyHash, or the Name's DER."""
    entry_count: int
    extensions: tuple[tuple[str, bool], ...]
    """(OID, critical) of responseExtensions, then of every entry's singleExtensions."""
    certificates: tuple[bytes, ...]
    """The DER of each embedded certificate, in order."""
    signature_algorithm: bytes
    """The content of the signatureAlgorithm AlgorithmIdentifier."""


def read_shape(der: bytes) -> ResponseShape:
    """Walk a successful OCSPResponse down to its BasicOCSPResponse; raise
    :class:`ShapeError` naming the bound a response exceeds."""
    try:
        return _read(der)
    except (IndexError, ValueError) as error:
        if isinstance(error, ShapeError):
            raise
        raise ShapeError(f"unexpected structure ({error})") from None


# The walk works on offsets into ``der``: an element is (tag, content start, end). Nothing
# is copied until a field is returned; this runs on every staple not seen before.
_Element = tuple[int, int, int]

_SEQUENCE = 0x30


def _element(der: bytes, at: int, end: int) -> _Element:
    """The element starting at ``at`` and ending by ``end`` (single-byte tags,
    definite lengths of at most four octets, as DER for OCSP needs)."""
    if at + 2 > end:
        raise ShapeError("truncated element")
    tag = der[at]
    length = der[at + 1]
    start = at + 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or start + count > end:
            raise ShapeError("bad length")
        length = int.from_bytes(der[start : start + count], "big")
        start += count
    stop = start + length
    if stop > end:
        raise ShapeError("element runs past the end of its container")
    return tag, start, stop


def _inside(der: bytes, element: _Element, tag: int) -> _Element:
    """The single element inside ``element`` (an EXPLICIT tag or an OCTET STRING)."""
    if element[0] != tag:
        raise ShapeError(f"expected tag 0x{tag:02x}, found 0x{element[0]:02x}")
    return _element(der, element[1], element[2])


def _elements(der: bytes, element: _Element, tag: int, limit: int, what: str) -> list[_Element]:
    """The elements inside the constructed ``element``; more than ``limit`` raise
    :class:`ShapeError` as soon as the one past the limit is met."""
    if element[0] != tag:
        raise ShapeError(f"expected tag 0x{tag:02x}, found 0x{element[0]:02x}")
    found: list[_Element] = []
    at, end = element[1], element[2]
    while at < end:
        if len(found) == limit:
            raise ShapeError(f"more than {limit} {what}")
        child = _element(der, at, end)
        found.append(child)
        at = child[2]
    return found


def _read(der: bytes) -> ResponseShape:
    outer = _elements(der, _element(der, 0, len(der)), _SEQUENCE, 2, "OCSPResponse fields")
    response_bytes = _elements(
        der, _inside(der, outer[1], 0xA0), _SEQUENCE, 2, "ResponseBytes fields"
    )
    basic = _elements(
        der, _inside(der, response_bytes[1], _der.OCTET_STRING), _SEQUENCE, 4, "fields"
    )
    certificates: tuple[bytes, ...] = ()
    if len(basic) == 4:
        listed = _elements(
            der, _inside(der, basic[3], 0xA0), _SEQUENCE, MAX_CERTIFICATES, "embedded certificates"
        )
        certificates = tuple(der[_start_of(der, c) : c[2]] for c in listed)
    data = _elements(der, basic[0], _SEQUENCE, 5, "ResponseData fields")
    if data[0][0] == 0xA0:  # [0] EXPLICIT version
        data = data[1:]
    # responderID, producedAt, responses, [1] responseExtensions?
    choice = data[0]
    if choice[0] == 0xA2:  # byKey [2] KeyHash
        key_hash = _inside(der, choice, 0xA2)
        if key_hash[0] != _der.OCTET_STRING:
            raise ShapeError("KeyHash is not an OCTET STRING")
        by_key, responder = True, der[key_hash[1] : key_hash[2]]
    elif choice[0] == 0xA1:  # byName [1] Name
        by_key, responder = False, der[choice[1] : choice[2]]
    else:
        raise ShapeError(f"unknown ResponderID choice 0x{choice[0]:02x}")
    singles = _elements(der, data[2], _SEQUENCE, MAX_ENTRIES, "entries")
    extensions: list[tuple[str, bool]] = []
    if len(data) > 3:
        _read_extensions(der, _inside(der, data[3], 0xA1), extensions)
    for single in singles:
        # certID, certStatus, thisUpdate, then [0] nextUpdate?, [1] singleExtensions?
        # (certStatus "revoked" is [1] too, hence by position)
        for field in _elements(der, single, _SEQUENCE, 5, "SingleResponse fields")[3:]:
            if field[0] == 0xA1:
                _read_extensions(der, _element(der, field[1], field[2]), extensions)
    algorithm = basic[1]
    if algorithm[0] != _SEQUENCE:
        raise ShapeError("signatureAlgorithm is not a SEQUENCE")
    return ResponseShape(
        by_key=by_key,
        responder=responder,
        entry_count=len(singles),
        extensions=tuple(extensions),
        certificates=certificates,
        signature_algorithm=der[algorithm[1] : algorithm[2]],
    )


def _start_of(der: bytes, element: _Element) -> int:
    """Where ``element``'s tag is: its header is 2 octets, or 3-6 with a long length."""
    length = element[2] - element[1]
    header = 2 if length < 0x80 else 2 + (length.bit_length() + 7) // 8
    start = element[1] - header
    if start < 0 or der[start] != element[0]:
        raise ShapeError("non-minimal length encoding")
    return start


def _read_extensions(der: bytes, sequence: _Element, found: list[tuple[str, bool]]) -> None:
    """Append (OID, critical) of each Extension, at most :data:`MAX_EXTENSIONS` in all."""
    left = MAX_EXTENSIONS - len(found)
    what = f"extensions (at most {MAX_EXTENSIONS} in all)"
    for extension in _elements(der, sequence, _SEQUENCE, left, what):
        parts = _elements(der, extension, _SEQUENCE, 3, "Extension fields")
        oid = parts[0]
        if oid[0] != _der.OID:
            raise ShapeError("extnID is not an OBJECT IDENTIFIER")
        critical = parts[1][0] == _der.BOOLEAN and der[parts[1][1] : parts[1][2]] != b"\x00"
        found.append((_der.decode_oid(der[oid[1] : oid[2]]), critical))
