"""A structure-aware mutator for DER OCSP responses (atheris ``custom_mutator``).

Byte-level mutation nearly always breaks the DER framing, so the parser stops it.
Most calls here instead edit one to three elements of the tree (content, tag, place
among siblings, or a graft of an element from a seed) and re-encode every enclosing
length, so that the result reaches the rules behind the parser: the CertID match,
the ResponderID, the delegate's certificate, the signature algorithm and its RSA-PSS
parameters, the extensions and the times. The rest are libFuzzer's own byte-level
mutations (``byte_mutate``: ``atheris.Mutate``), which also find framing bugs.
"""

from __future__ import annotations

import datetime
import random
from collections.abc import Callable, Sequence

from cryptography.x509 import ocsp

from fuzz import der as dertree
from fuzz.corpus import NOW
from staplecheck.testing import _asn1 as asn1

__all__ = ["Mutator"]

ByteMutate = Callable[[bytes, int], bytes]

_OIDS = [
    asn1.oid(dotted)[2:]
    for dotted in (
        # signature algorithms: RSA PKCS#1 v1.5, RSA-PSS, ECDSA, EdDSA, DSA, MGF1
        "1.2.840.113549.1.1.1",
        "1.2.840.113549.1.1.5",
        "1.2.840.113549.1.1.11",
        "1.2.840.113549.1.1.12",
        "1.2.840.113549.1.1.13",
        "1.2.840.113549.1.1.14",
        "1.2.840.113549.1.1.10",
        "1.2.840.113549.1.1.8",
        "1.2.840.10045.4.1",
        "1.2.840.10045.4.3.2",
        "1.2.840.10045.4.3.3",
        "1.2.840.10045.4.3.4",
        "1.3.101.112",
        "1.3.101.113",
        "2.16.840.1.101.3.4.3.2",
        # hashes
        "1.3.14.3.2.26",
        "2.16.840.1.101.3.4.2.1",
        "2.16.840.1.101.3.4.2.2",
        "2.16.840.1.101.3.4.2.3",
        "2.16.840.1.101.3.4.2.4",
        "1.2.840.113549.2.5",
        # OCSP and extensions
        "1.3.6.1.5.5.7.48.1.1",
        "1.3.6.1.5.5.7.48.1.2",
        "1.3.6.1.5.5.7.48.1.3",
        "1.3.6.1.5.5.7.48.1.5",
        "1.3.6.1.5.5.7.48.1.6",
        "1.3.6.1.5.5.7.48.1.9",
        "2.5.29.21",
        "2.5.29.24",
        "2.5.29.37",
        "2.5.29.15",
        "1.3.6.1.5.5.7.3.9",
        "1.3.6.1.5.5.7.1.24",
        "1.3.6.1.4.1.11129.2.4.5",
        "1.2.3.4.5",
        "2.5.4.3",
    )
]
_INTS = [0, 1, 2, 3, -1, 20, 32, 48, 64, 127, 128, 255, 256, 1024, 1025, 2**31, 2**63, 2**64]
_OFFSETS = [
    datetime.timedelta(0),
    datetime.timedelta(minutes=4),
    datetime.timedelta(minutes=-4),
    datetime.timedelta(minutes=6),
    datetime.timedelta(minutes=-6),
    datetime.timedelta(hours=1),
    datetime.timedelta(hours=-1),
    datetime.timedelta(days=1),
    datetime.timedelta(days=-1),
    datetime.timedelta(days=-10),
    datetime.timedelta(days=-11),
    datetime.timedelta(days=400),
    datetime.timedelta(days=-4000),
]
_TIMES = [(NOW + offset).strftime("%Y%m%d%H%M%SZ").encode() for offset in _OFFSETS] + [
    b"20261121120000.5Z",
    b"20261121120000",
    b"20261121120000+0000",
    b"99991231235959Z",
    b"19500101000000Z",
    b"20261321120000Z",
    b"",
]
_TAGS = [
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0A, 0x0C, 0x13, 0x17, 0x18, 0x30, 0x31,
    0x80, 0x81, 0x82, 0xA0, 0xA1, 0xA2, 0xA3,
]  # fmt: skip


def _encode_int(value: int) -> bytes:
    return value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big", signed=True)


_EDITS = {
    "value": 5.0,
    "bytes": 2.0,
    "graft": 4.0,
    "swap": 1.0,
    "drop": 1.0,
    "donor": 0.5,
    "retag": 0.5,
    "duplicate": 0.5,
    "insert": 0.5,
    "empty": 0.5,
}
_KINDS, _WEIGHTS = list(_EDITS), list(_EDITS.values())


def _parses(data: bytes) -> bool:
    try:
        ocsp.load_der_ocsp_response(data)
    except Exception:  # noqa: BLE001 - any refusal
        return False
    return True


def _children(elements: list[dertree.Element], parent: int) -> list[int]:
    return [i for i in range(parent + 1, len(elements)) if elements[i].parent == parent]


def _signed_part(elements: list[dertree.Element]) -> tuple[int, int] | None:
    """The byte range of tbsResponseData and signatureAlgorithm, when the path
    OCSPResponse / [0] / SEQUENCE / OCTET STRING / BasicOCSPResponse is intact."""
    at = 0
    for position in (1, 0, 1, 0):
        kids = _children(elements, at)
        if len(kids) <= position:
            return None
        at = kids[position]
    kids = _children(elements, at)
    if len(kids) < 2:
        return None
    return elements[kids[0]].start, elements[kids[1]].end


class Mutator:
    """``Mutator(seeds, byte_mutate, serials)(data, max_size, seed)`` → a new input."""

    def __init__(
        self, seeds: Sequence[bytes], byte_mutate: ByteMutate, serials: Sequence[int] = ()
    ) -> None:
        self.seeds = list(seeds)
        self.byte_mutate = byte_mutate
        self.ints = [_encode_int(v) for v in [*_INTS, *serials]]
        by_tag: dict[int, set[bytes]] = {}
        for seed in self.seeds:
            for element in dertree.scan(seed) or []:
                by_tag.setdefault(element.tag, set()).add(seed[element.start : element.end])
        self.by_tag = {tag: sorted(found) for tag, found in by_tag.items()}
        self.donors = sorted({d for found in by_tag.values() for d in found if len(d) < 2048})

    def __call__(self, data: bytes, max_size: int, seed: int) -> bytes:
        rng = random.Random(seed)
        roll = rng.random()
        if roll < 0.03 and self.seeds:
            data = rng.choice(self.seeds)  # start again from a genuine staple
        if roll < 0.15 or not data:
            return self.byte_mutate(data, max_size)[:max_size]
        elements = dertree.scan(data)
        if not elements:
            return self.byte_mutate(data, max_size)[:max_size]
        # Mostly keep what cryptography parses parseable (retrying an edit that is
        # not), so that chains of edits still reach the rules behind the parser.
        keep_parsing = rng.random() < 0.75 and _parses(data)
        signed = _signed_part(elements)
        out = data
        for _ in range(4 if keep_parsing else 1):
            out = self._edit(data, elements, signed, rng)[:max_size]
            if not keep_parsing or _parses(out):
                break
        return out

    def _donor(self, tag: int, rng: random.Random) -> bytes:
        return rng.choice(self.by_tag.get(tag) or self.donors)

    def _edit(
        self,
        data: bytes,
        elements: list[dertree.Element],
        signed: tuple[int, int] | None,
        rng: random.Random,
    ) -> bytes:
        """One edit of one element; usually one in the signed part (tbsResponseData
        and the signature algorithm), where most rules look."""
        pool = range(len(elements))
        if signed is not None and rng.random() < 0.75:
            low, high = signed
            pool = range(
                next(i for i, e in enumerate(elements) if e.start >= low),
                next((i for i, e in enumerate(elements) if e.start >= high), len(elements)),
            )
        index = rng.choice(pool)
        element = elements[index]
        tag, start, body, end, parent = element
        kind = rng.choices(_KINDS, _WEIGHTS)[0]
        new: bytes | None = None
        if kind == "value":
            value = self._value(tag, rng)
            if value is not None:
                new = dertree.tlv(tag, value)
            else:
                kind = "bytes"
        if kind == "bytes":
            content = data[body:end]
            new = dertree.tlv(tag, self.byte_mutate(content, len(content) + 16))
        elif kind == "graft":
            new = self._donor(tag, rng)
        elif kind == "donor":
            new = self._donor(-1, rng)
        elif kind == "retag":
            retag = rng.choice(_TAGS) if rng.random() < 0.8 else rng.randrange(0x1F)
            new = dertree.tlv(retag, data[body:end])
        elif kind == "drop":
            new = b""
        elif kind == "duplicate":
            new = data[start:end] * 2
        elif kind == "insert":
            at = start if rng.random() < 0.5 else end
            return dertree.replace(data, elements, parent, at, at, self._donor(-1, rng))
        elif kind == "empty":
            new = dertree.header(tag, 0)
        elif kind == "swap":
            siblings = _children(elements, parent)
            other = elements[rng.choice(siblings)]
            if other.start == start:
                return data
            first, second = (element, other) if start < other.start else (other, element)
            middle = data[first.end : second.start]
            swapped = data[second.start : second.end] + middle + data[first.start : first.end]
            return dertree.replace(data, elements, parent, first.start, second.end, swapped)
        assert new is not None
        return dertree.replace(data, elements, parent, start, end, new)

    def _value(self, tag: int, rng: random.Random) -> bytes | None:
        """A telling value for a primitive of this tag, or None."""
        if tag in (0x02, 0x0A):
            return rng.choice(self.ints)
        if tag == 0x06:
            return rng.choice(_OIDS)
        if tag in (0x17, 0x18):
            return rng.choice(_TIMES)
        if tag == 0x01:
            return rng.choice((b"\x00", b"\x01", b"\xff", b"", b"\x00\x00"))
        if tag == 0x03:
            return rng.choice((b"", b"\x00", b"\x07\x80", b"\x08\x00", b"\x01\xff"))
        if tag in (0x04, 0x80, 0x82):
            return rng.choice((b"", b"\x00", b"\x05\x00", bytes(20), bytes(32)))
        return None
