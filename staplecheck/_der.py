"""A minimal DER reader: just enough ASN.1 to reach what cryptography does not expose.

cryptography parses OCSP responses, but it does not expose RSA-PSS parameters of the
response signature, nor the extensions of any SingleResponse but the first. This module
walks raw DER for those two cases and for the subjectPublicKey bits behind key hashes.
Every function raises ``DERError`` on malformed input; nothing else escapes.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = [
    "TLV",
    "DERError",
    "children",
    "decode_int",
    "decode_oid",
    "expect",
    "read_tlv",
    "subject_public_key_bits",
]

SEQUENCE = 0x30
OCTET_STRING = 0x04
BIT_STRING = 0x03
INTEGER = 0x02
BOOLEAN = 0x01
OID = 0x06
NULL = 0x05
ENUMERATED = 0x0A


class DERError(ValueError):
    """The bytes are not the DER that was expected."""


class TLV(NamedTuple):
    """One DER element: its tag byte, its content and where the element ends."""

    tag: int
    value: bytes
    end: int


def read_tlv(data: bytes, offset: int = 0) -> TLV:
    """Read the element that starts at ``offset`` (single-byte tags, definite lengths)."""
    if offset + 2 > len(data):
        raise DERError("truncated element")
    tag = data[offset]
    if tag & 0x1F == 0x1F:
        raise DERError("multi-byte tags are not used by OCSP")
    length = data[offset + 1]
    pos = offset + 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or pos + count > len(data):
            raise DERError("bad length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    end = pos + length
    if end > len(data):
        raise DERError("element runs past the end of its container")
    return TLV(tag, data[pos:end], end)


def children(content: bytes) -> list[TLV]:
    """Split the content of a constructed element into its elements."""
    out: list[TLV] = []
    offset = 0
    while offset < len(content):
        tlv = read_tlv(content, offset)
        out.append(tlv)
        offset = tlv.end
    return out


def expect(tlv: TLV, tag: int) -> bytes:
    """Return the element's content, or raise if its tag is not ``tag``."""
    if tlv.tag != tag:
        raise DERError(f"expected tag 0x{tag:02x}, found 0x{tlv.tag:02x}")
    return tlv.value


def decode_oid(content: bytes) -> str:
    """Dotted form of an OBJECT IDENTIFIER's content."""
    if not content or content[-1] & 0x80:
        raise DERError("bad OID")
    arcs: list[int] = []
    value = 0
    for byte in content:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(a) for a in [first, arcs[0] - 40 * first, *arcs[1:]])


def decode_int(content: bytes) -> int:
    """Value of an INTEGER's content."""
    if not content:
        raise DERError("empty INTEGER")
    return int.from_bytes(content, "big", signed=True)


def subject_public_key_bits(spki_der: bytes) -> bytes:
    """The subjectPublicKey BIT STRING bytes of a SubjectPublicKeyInfo (RFC 5280 §4.1).

    OCSP key hashes (issuerKeyHash, ResponderID byKey) are taken over these bytes,
    without tag, length or the unused-bits octet (RFC 6960 §4.1.1, §4.2.1).
    """
    spki = children(expect(read_tlv(spki_der), SEQUENCE))
    if len(spki) != 2:
        raise DERError("SubjectPublicKeyInfo must have two elements")
    bits = expect(spki[1], BIT_STRING)
    if not bits or bits[0] != 0:
        raise DERError("subjectPublicKey must be whole octets")
    return bits[1:]
