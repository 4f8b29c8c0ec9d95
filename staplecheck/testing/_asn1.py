"""A minimal DER writer, so the test helper can build any OCSP response.

cryptography's OCSPResponseBuilder makes one entry, no RSA-PSS and no broken
responses; tests need all of those.
"""

from __future__ import annotations

import datetime

__all__ = [
    "bit_string",
    "boolean",
    "enumerated",
    "explicit",
    "generalized_time",
    "header",
    "integer",
    "null",
    "octet_string",
    "oid",
    "sequence",
    "tlv",
]


def header(tag: int, length: int) -> bytes:
    """Tag and definite length of an element whose content is ``length`` bytes."""
    if length < 0x80:
        return bytes((tag, length))
    size = (length.bit_length() + 7) // 8
    return bytes((tag, 0x80 | size)) + length.to_bytes(size, "big")


def tlv(tag: int, content: bytes) -> bytes:
    return header(tag, len(content)) + content


def sequence(*parts: bytes) -> bytes:
    return tlv(0x30, b"".join(parts))


def explicit(number: int, content: bytes) -> bytes:
    """A context-specific constructed tag ``[number]`` around ``content``."""
    return tlv(0xA0 | number, content)


def oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray()
    for arc in [40 * arcs[0] + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return tlv(0x06, bytes(body))


def integer(value: int) -> bytes:
    size = max(1, (value.bit_length() + 8) // 8)
    return tlv(0x02, value.to_bytes(size, "big", signed=True))


def enumerated(value: int) -> bytes:
    return tlv(0x0A, integer(value)[2:])


def octet_string(value: bytes) -> bytes:
    return tlv(0x04, value)


def bit_string(value: bytes) -> bytes:
    return tlv(0x03, b"\x00" + value)


def boolean(value: bool) -> bytes:
    return tlv(0x01, b"\xff" if value else b"\x00")


def null() -> bytes:
    return b"\x05\x00"


def generalized_time(moment: datetime.datetime) -> bytes:
    utc = moment.astimezone(datetime.timezone.utc)
    return tlv(0x18, utc.strftime("%Y%m%d%H%M%SZ").encode())
