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
    "CertificateFields",
    "DERError",
    "LimitError",
    "certificate_fields",
    "children",
    "decode_int",
    "decode_oid",
    "expect",
    "read_tlv",
    "subject_public_key_bits",
    "tbs_and_signature",
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


class LimitError(DERError):
    """More elements than the caller allows (``limit``)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit} elements")
        self.limit = limit


class TLV(NamedTuple):
    """One DER element: its tag byte, its content, where the element ends and where
    it starts (offsets into the bytes it was read from)."""

    tag: int
    value: bytes
    end: int
    start: int = 0


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
    return TLV(tag, data[pos:end], end, offset)


def children(content: bytes, limit: int | None = None) -> list[TLV]:
    """Split the content of a constructed element into its elements.

    With ``limit``, more than ``limit`` elements raise :class:`LimitError` as soon as
    the one past the limit is met, so the work stays bounded whatever the input.
    """
    out: list[TLV] = []
    offset = 0
    while offset < len(content):
        if limit is not None and len(out) == limit:
            raise LimitError(limit)
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


class CertificateFields(NamedTuple):
    """Fields of a certificate as its DER has them (RFC 5280 §4.1)."""

    issuer: bytes
    """The issuer Name's complete DER."""
    subject: bytes
    """The subject Name's complete DER."""
    key_bits: bytes
    """The subjectPublicKey BIT STRING bytes, as encoded (a compressed EC point stays
    compressed: OCSP key hashes are over these bytes)."""


def certificate_fields(certificate_der: bytes) -> CertificateFields:
    """Read issuer, subject and key bits without parsing any of them: for embedded
    responder certificates before anything costly is done with them, and for key hashes
    over the bytes as sent (cryptography re-encodes keys, uncompressing EC points)."""
    certificate = children(expect(read_tlv(certificate_der), SEQUENCE), 3)
    fields = children(expect(certificate[0], SEQUENCE), 10)
    if fields and fields[0].tag == 0xA0:  # [0] EXPLICIT version
        fields = fields[1:]
    # serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo, ...
    if len(fields) < 6:
        raise DERError("TBSCertificate is too short")
    tbs = certificate[0].value
    issuer, subject, spki = fields[2], fields[4], fields[5]
    return CertificateFields(
        tbs[issuer.start : issuer.end],
        tbs[subject.start : subject.end],
        subject_public_key_bits(tbs[spki.start : spki.end]),
    )


def tbs_and_signature(certificate_der: bytes) -> tuple[bytes, bytes]:
    """The TBSCertificate's complete DER and the signature value of a certificate
    (RFC 5280 §4.1.1), as sent: cryptography re-encodes ``tbs_certificate_bytes``
    from its parsed form, at a cost that grows with every extension."""
    certificate = children(expect(read_tlv(certificate_der), SEQUENCE), 3)
    if len(certificate) != 3:
        raise DERError("a Certificate has three elements")
    tbs, signature = certificate[0], expect(certificate[2], BIT_STRING)
    if not signature or signature[0] != 0:
        raise DERError("signatureValue must be whole octets")
    content = expect(read_tlv(certificate_der), SEQUENCE)
    return content[tbs.start : tbs.end], signature[1:]
