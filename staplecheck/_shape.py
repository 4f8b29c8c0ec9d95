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
"""The largest response judged. A TLS 1.3 staple cannot exceed 65,535 bytes (RFC 8446
§4.4.2: a 2-byte extension length); real ones are 0.3-6 KB."""
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
    except _der.LimitError as error:
        raise ShapeError(str(error)) from None
    except (_der.DERError, IndexError) as error:
        raise ShapeError(f"unexpected structure ({error})") from None


def _read(der: bytes) -> ResponseShape:
    if len(der) > MAX_RESPONSE_BYTES:
        raise ShapeError(f"{len(der)} bytes, more than {MAX_RESPONSE_BYTES}")
    outer = _der.children(_der.expect(_der.read_tlv(der), _der.SEQUENCE), 2)
    response_bytes = _der.children(
        _der.expect(_der.read_tlv(_der.expect(outer[1], 0xA0)), _der.SEQUENCE), 2
    )
    basic_der = _der.expect(response_bytes[1], _der.OCTET_STRING)
    basic = _der.children(_der.expect(_der.read_tlv(basic_der), _der.SEQUENCE), 4)
    certificates: tuple[bytes, ...] = ()
    if len(basic) == 4:
        listed = _der.expect(_der.read_tlv(_der.expect(basic[3], 0xA0)), _der.SEQUENCE)
        try:
            found = _der.children(listed, MAX_CERTIFICATES)
        except _der.LimitError:
            raise ShapeError(f"more than {MAX_CERTIFICATES} embedded certificates") from None
        certificates = tuple(listed[c.start : c.end] for c in found)
    by_key, responder, entry_count, extensions = _response_data(
        _der.expect(basic[0], _der.SEQUENCE)
    )
    return ResponseShape(
        by_key=by_key,
        responder=responder,
        entry_count=entry_count,
        extensions=extensions,
        certificates=certificates,
        signature_algorithm=_der.expect(basic[1], _der.SEQUENCE),
    )


def _response_data(data: bytes) -> tuple[bool, bytes, int, tuple[tuple[str, bool], ...]]:
    # ResponseData: [0] version?, responderID, producedAt, responses, [1] extensions?
    fields = _der.children(data, 5)
    if fields[0].tag == 0xA0:
        fields = fields[1:]
    choice = fields[0]
    if choice.tag == 0xA2:  # byKey [2] KeyHash
        by_key, responder = True, _der.expect(_der.read_tlv(choice.value), _der.OCTET_STRING)
    elif choice.tag == 0xA1:  # byName [1] Name
        by_key, responder = False, choice.value
    else:
        raise ShapeError(f"unknown ResponderID choice 0x{choice.tag:02x}")
    try:
        singles = _der.children(_der.expect(fields[2], _der.SEQUENCE), MAX_ENTRIES)
    except _der.LimitError:
        raise ShapeError(f"more than {MAX_ENTRIES} entries") from None
    budget = _ExtensionBudget()
    if len(fields) > 3:
        budget.read(_der.expect(fields[3], 0xA1))
    for single in singles:
        # certID, certStatus, thisUpdate, then [0] nextUpdate?, [1] singleExtensions?
        # (certStatus "revoked" is [1] too, hence by position)
        for field in _der.children(_der.expect(single, _der.SEQUENCE), 5)[3:]:
            if field.tag == 0xA1:
                budget.read(field.value)
    return by_key, responder, len(singles), tuple(budget.found)


class _ExtensionBudget:
    """Collects (OID, critical) pairs, at most :data:`MAX_EXTENSIONS` in all."""

    def __init__(self) -> None:
        self.found: list[tuple[str, bool]] = []

    def read(self, explicit: bytes) -> None:
        left = MAX_EXTENSIONS - len(self.found)
        try:
            extensions = _der.children(_der.expect(_der.read_tlv(explicit), _der.SEQUENCE), left)
        except _der.LimitError:
            raise ShapeError(f"more than {MAX_EXTENSIONS} extensions") from None
        for extension in extensions:
            parts = _der.children(_der.expect(extension, _der.SEQUENCE), 3)
            oid = _der.decode_oid(_der.expect(parts[0], _der.OID))
            critical = parts[1].tag == _der.BOOLEAN and parts[1].value != b"\x00"
            self.found.append((oid, critical))
