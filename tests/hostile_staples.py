"""The most expensive staples an attacker can build, for tests and the benchmark.

Each builder returns DER that a TLS 1.3 server can staple (at most 65,000 bytes, the
CertificateEntry extension limit, less headroom). They aim at every place where the
work grows with what the peer sends before a signature is checked: the ResponderID
name, embedded certificates (by name and by key hash), entries, extensions, nesting,
and oversized keys. Where a signature makes a response reach further rules, it is
signed by the real issuer (a sloppy or hostile responder), so the whole validator is
exercised, not only its front.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Callable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from staplecheck.testing import CA, Identity
from staplecheck.testing import _asn1 as asn1
from staplecheck.validation._der import subject_public_key_bits

__all__ = ["BUDGET", "HOSTILE_STAPLES", "tiny_certificate"]

BUDGET = 65_000
"""Bytes a builder may fill: a TLS 1.3 staple lives in a 2-byte-length extension."""

_CN = "2.5.4.3"
_ED25519 = "1.3.101.112"
_ECDSA_SHA256 = "1.2.840.10045.4.3.2"
_SHA1 = "1.3.14.3.2.26"


def _rdn(value: bytes) -> bytes:
    return asn1.tlv(0x31, asn1.sequence(asn1.oid(_CN), asn1.tlv(0x0C, value)))


def _name(rdns: int, tag: bytes = b"a") -> bytes:
    """A Name of ``rdns`` one-attribute RDNs (13-15 bytes each)."""
    return asn1.sequence(*(_rdn(tag) for _ in range(rdns)))


def _ed25519_spki(key: bytes = b"\x11" * 32) -> bytes:
    return asn1.sequence(asn1.sequence(asn1.oid(_ED25519)), asn1.bit_string(key))


def tiny_certificate(
    *, serial: int, issuer: bytes, subject: bytes, spki: bytes, extensions: bytes = b""
) -> bytes:
    """A well-formed, unsigned (garbage signature) X.509 certificate in DER."""
    validity = asn1.sequence(asn1.tlv(0x17, b"260101000000Z"), asn1.tlv(0x17, b"370101000000Z"))
    tbs = asn1.sequence(
        asn1.explicit(0, asn1.integer(2)),
        asn1.integer(serial),
        asn1.sequence(asn1.oid(_ECDSA_SHA256)),
        issuer,
        validity,
        subject,
        spki,
        *([asn1.explicit(3, extensions)] if extensions else []),
    )
    signature = asn1.sequence(asn1.integer(1), asn1.integer(1))
    return asn1.sequence(tbs, asn1.sequence(asn1.oid(_ECDSA_SHA256)), asn1.bit_string(signature))


def _cert_id(ca: CA, serial: int) -> bytes:
    bits = _spki_bits(ca.cert)
    return asn1.sequence(
        asn1.sequence(asn1.oid(_SHA1), asn1.null()),
        asn1.octet_string(hashlib.sha1(ca.cert.subject.public_bytes()).digest()),
        asn1.octet_string(hashlib.sha1(bits).digest()),
        asn1.integer(serial),
    )


def _spki_bits(cert: x509.Certificate) -> bytes:
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return subject_public_key_bits(spki)


def _single(ca: CA, serial: int, extensions: bytes = b"") -> bytes:
    this_update = asn1.generalized_time(ca.now)
    next_update = asn1.explicit(0, asn1.generalized_time(ca.now + datetime.timedelta(days=1)))
    return asn1.sequence(
        _cert_id(ca, serial),
        b"\x80\x00",
        this_update,
        next_update,
        *([asn1.explicit(1, extensions)] if extensions else []),
    )


def _response(
    ca: CA,
    *,
    responder_id: bytes,
    singles: list[bytes],
    extensions: bytes = b"",
    certs: list[bytes] = (),  # type: ignore[assignment]
) -> bytes:
    """An OCSP response signed by ``ca``'s key (ECDSA with SHA-256)."""
    data = asn1.sequence(
        responder_id,
        asn1.generalized_time(ca.now),
        asn1.sequence(*singles),
        *([asn1.explicit(1, extensions)] if extensions else []),
    )
    key = ca.private_key
    assert isinstance(key, ec.EllipticCurvePrivateKey), "hostile staples use an ECDSA CA"
    signature = key.sign(data, ec.ECDSA(hashes.SHA256()))
    basic = asn1.sequence(
        data,
        asn1.sequence(asn1.oid(_ECDSA_SHA256)),
        asn1.bit_string(signature),
        *([asn1.explicit(0, asn1.sequence(*certs))] if certs else []),
    )
    return asn1.sequence(
        asn1.enumerated(0),
        asn1.explicit(0, asn1.sequence(asn1.oid("1.3.6.1.5.5.7.48.1.1"), asn1.octet_string(basic))),
    )


def _fill(make: Callable[[int], bytes], low: int = 1, high: int = 20_000) -> bytes:
    """The largest ``make(n)`` that fits the budget (``make`` grows with ``n``)."""
    best = make(low)
    while low < high:
        middle = (low + high + 1) // 2
        candidate = make(middle)
        if len(candidate) <= BUDGET:
            low, best = middle, candidate
        else:
            high = middle - 1
    return best


def _by_name(name: bytes) -> bytes:
    return asn1.explicit(1, name)


def _by_key(spki: bytes) -> bytes:
    bits = spki[-32:]
    return asn1.explicit(2, asn1.octet_string(hashlib.sha1(bits).digest()))


# --- the staples -------------------------------------------------------------------------


def long_responder_name(ca: CA, leaf: Identity) -> bytes:
    """A byName ResponderID of thousands of RDNs, nothing else to match it."""
    serial = leaf.cert.serial_number
    return _fill(
        lambda n: _response(ca, responder_id=_by_name(_name(n)), singles=[_single(ca, serial)])
    )


def name_and_certificates(ca: CA, leaf: Identity) -> bytes:
    """The reported attack: a long byName ResponderID plus hundreds of tiny embedded
    certificates whose subjects differ from it, each compared by name."""
    serial = leaf.cert.serial_number
    responder = _name(2000)
    issuer = ca.cert.subject.public_bytes()

    def make(count: int) -> bytes:
        certs = [
            tiny_certificate(
                serial=i + 1, issuer=issuer, subject=_name(1, b"b"), spki=_ed25519_spki()
            )
            for i in range(count)
        ]
        return _response(
            ca, responder_id=_by_name(responder), singles=[_single(ca, serial)], certs=certs
        )

    return _fill(make)


def certificates_by_key(ca: CA, leaf: Identity) -> bytes:
    """Hundreds of embedded certificates that all match a byKey ResponderID and name
    the issuer as theirs: each is a delegate candidate whose signature would be
    checked with the issuer's key."""
    serial = leaf.cert.serial_number
    spki = _ed25519_spki()
    issuer = ca.cert.subject.public_bytes()

    def make(count: int) -> bytes:
        certs = [
            tiny_certificate(serial=i + 1, issuer=issuer, subject=_name(1, b"c"), spki=spki)
            for i in range(count)
        ]
        return _response(ca, responder_id=_by_key(spki), singles=[_single(ca, serial)], certs=certs)

    return _fill(make)


def _rsa_spki(bits: int) -> bytes:
    """An RSA SubjectPublicKeyInfo with a ``bits``-bit modulus (no private key exists:
    it only has to load)."""
    modulus = (1 << (bits - 1)) | 0xD3
    key = asn1.sequence(asn1.integer(modulus), asn1.integer(65537))
    algorithm = asn1.sequence(asn1.oid("1.2.840.113549.1.1.1"), asn1.null())
    return asn1.sequence(algorithm, asn1.bit_string(key))


def huge_keys(ca: CA, leaf: Identity) -> bytes:
    """Embedded candidates by key carrying 16,384-bit RSA keys (costly to load or use)."""
    serial = leaf.cert.serial_number
    spki = _rsa_spki(16384)
    issuer = ca.cert.subject.public_bytes()
    bits_hash = hashlib.sha1(subject_public_key_bits(spki)).digest()

    def make(count: int) -> bytes:
        certs = [
            tiny_certificate(serial=i + 1, issuer=issuer, subject=_name(1, b"d"), spki=spki)
            for i in range(count)
        ]
        return _response(
            ca,
            responder_id=asn1.explicit(2, asn1.octet_string(bits_hash)),
            singles=[_single(ca, serial)],
            certs=certs,
        )

    return _fill(make, high=200)


def many_entries(ca: CA, leaf: Identity) -> bytes:
    """Signed by the issuer: a thousand entries, none for the leaf."""
    serial = leaf.cert.serial_number
    issuer_id = _by_name(ca.cert.subject.public_bytes())
    return _fill(
        lambda n: _response(
            ca, responder_id=issuer_id, singles=[_single(ca, serial + 1 + i) for i in range(n)]
        )
    )


def many_entries_leaf_last(ca: CA, leaf: Identity) -> bytes:
    """Signed by the issuer: a thousand entries, the leaf's last."""
    serial = leaf.cert.serial_number
    issuer_id = _by_name(ca.cert.subject.public_bytes())
    return _fill(
        lambda n: _response(
            ca,
            responder_id=issuer_id,
            singles=[*(_single(ca, serial + 1 + i) for i in range(n)), _single(ca, serial)],
        )
    )


def _tiny_extensions(count: int) -> bytes:
    return asn1.sequence(
        *(asn1.sequence(asn1.oid(f"1.2.3.{i}"), asn1.octet_string(b"")) for i in range(count))
    )


def many_extensions(ca: CA, leaf: Identity) -> bytes:
    """Signed by the issuer: thousands of non-critical responseExtensions."""
    serial = leaf.cert.serial_number
    issuer_id = _by_name(ca.cert.subject.public_bytes())
    return _fill(
        lambda n: _response(
            ca,
            responder_id=issuer_id,
            singles=[_single(ca, serial)],
            extensions=_tiny_extensions(n),
        )
    )


def many_single_extensions(ca: CA, leaf: Identity) -> bytes:
    """Signed by the issuer: two entries (so singleExtensions are read from the DER),
    each with thousands of non-critical extensions."""
    serial = leaf.cert.serial_number
    issuer_id = _by_name(ca.cert.subject.public_bytes())
    return _fill(
        lambda n: _response(
            ca,
            responder_id=issuer_id,
            singles=[
                _single(ca, serial, _tiny_extensions(n)),
                _single(ca, serial + 1, _tiny_extensions(n)),
            ],
        )
    )


def deep_nesting(ca: CA, leaf: Identity) -> bytes:
    """Signed by the issuer: an extension whose value is SEQUENCEs nested 15,000 deep."""
    serial = leaf.cert.serial_number
    issuer_id = _by_name(ca.cert.subject.public_bytes())

    def make(depth: int) -> bytes:
        value = b""
        for _ in range(depth):
            value = asn1.sequence(value)
        extension = asn1.sequence(asn1.sequence(asn1.oid("1.2.3.4"), asn1.octet_string(value)))
        return _response(
            ca, responder_id=issuer_id, singles=[_single(ca, serial)], extensions=extension
        )

    return _fill(make, high=20_000)


def embedded_certificate_extensions(ca: CA, leaf: Identity) -> bytes:
    """One candidate delegate (by key) with thousands of extensions of its own."""
    serial = leaf.cert.serial_number
    spki = _ed25519_spki(b"\x22" * 32)
    issuer = ca.cert.subject.public_bytes()

    def make(count: int) -> bytes:
        cert = tiny_certificate(
            serial=7, issuer=issuer, subject=_name(1), spki=spki, extensions=_tiny_extensions(count)
        )
        return _response(
            ca, responder_id=_by_key(spki), singles=[_single(ca, serial)], certs=[cert]
        )

    return _fill(make)


# --- at staplecheck's bounds: as many elements as it examines, each as large as fits ----


def _padding_extension(size: int, oid: str = "1.2.3.99") -> bytes:
    return asn1.sequence(asn1.oid(oid), asn1.octet_string(b"\x00" * size))


def bounded_certificates(ca: CA, leaf: Identity) -> bytes:
    """8 embedded certificates (the most examined), all matching a byKey ResponderID
    and naming the issuer, each padded to about 8 KB with one extension."""
    serial = leaf.cert.serial_number
    spki = _ed25519_spki(b"\x33" * 32)
    issuer = ca.cert.subject.public_bytes()

    def make(size: int) -> bytes:
        certs = [
            tiny_certificate(
                serial=i + 1,
                issuer=issuer,
                subject=_name(1, b"e"),
                spki=spki,
                extensions=asn1.sequence(_padding_extension(size)),
            )
            for i in range(8)
        ]
        return _response(ca, responder_id=_by_key(spki), singles=[_single(ca, serial)], certs=certs)

    return _fill(make, high=9000)


def bounded_names(ca: CA, leaf: Identity) -> bytes:
    """A byName ResponderID of 1 KB (the longest compared attribute by attribute) and
    8 embedded certificates whose 1 KB subjects differ from it only in string type,
    so every comparison parses both names."""
    serial = leaf.cert.serial_number
    count = 1000 // 13
    responder = _name(count)
    printable = asn1.sequence(
        *(asn1.tlv(0x31, asn1.sequence(asn1.oid(_CN), asn1.tlv(0x13, b"b"))) for _ in range(count))
    )
    issuer = ca.cert.subject.public_bytes()

    def make(size: int) -> bytes:
        certs = [
            tiny_certificate(
                serial=i + 1,
                issuer=issuer,
                subject=printable,
                spki=_ed25519_spki(),
                extensions=asn1.sequence(_padding_extension(size)),
            )
            for i in range(8)
        ]
        return _response(
            ca, responder_id=_by_name(responder), singles=[_single(ca, serial)], certs=certs
        )

    return _fill(make, high=9000)


def bounded_entries(ca: CA, leaf: Identity) -> bytes:
    """Signed by the issuer: 64 entries (the most examined), the leaf's last, each with
    one padded extension (64 extensions, the most examined)."""
    serial = leaf.cert.serial_number
    issuer_id = _by_name(ca.cert.subject.public_bytes())

    def make(size: int) -> bytes:
        padding = asn1.sequence(_padding_extension(size))
        singles = [_single(ca, serial + 1 + i, padding) for i in range(63)]
        return _response(
            ca, responder_id=issuer_id, singles=[*singles, _single(ca, serial, padding)]
        )

    return _fill(make, high=2000)


def bounded_extensions(ca: CA, leaf: Identity) -> bytes:
    """Signed by the issuer: 64 response extensions (the most examined) of 1 KB each."""
    serial = leaf.cert.serial_number
    issuer_id = _by_name(ca.cert.subject.public_bytes())

    def make(size: int) -> bytes:
        extensions = asn1.sequence(*(_padding_extension(size, f"1.2.3.{i}") for i in range(64)))
        return _response(
            ca, responder_id=issuer_id, singles=[_single(ca, serial)], extensions=extensions
        )

    return _fill(make, high=2000)


def candidates_with_long_subjects(ca: CA, leaf: Identity) -> bytes:
    """4 embedded certificates (the most whose delegation is checked) matching a byKey
    ResponderID and naming the issuer, each with a subject of ~1,780 tiny RDNs: found by
    the adversarial review, when the candidates' names were parsed (to describe them)
    before the issuer's signature over them was checked."""
    serial = leaf.cert.serial_number
    spki = _ed25519_spki(b"\x44" * 32)
    issuer = ca.cert.subject.public_bytes()
    tiny = asn1.tlv(0x31, asn1.sequence(asn1.oid("1.2"), asn1.tlv(0x0C, b"")))

    def make(count: int) -> bytes:
        subject = asn1.sequence(*([tiny] * count))
        certs = [
            tiny_certificate(serial=i + 1, issuer=issuer, subject=subject, spki=spki)
            for i in range(4)
        ]
        return _response(ca, responder_id=_by_key(spki), singles=[_single(ca, serial)], certs=certs)

    return _fill(make, high=3000)


HOSTILE_STAPLES: dict[str, Callable[[CA, Identity], bytes]] = {
    "long responder name": long_responder_name,
    "name + certificates": name_and_certificates,
    "certificates by key": certificates_by_key,
    "16k-bit RSA keys": huge_keys,
    "entries, none for leaf": many_entries,
    "entries, leaf last": many_entries_leaf_last,
    "response extensions": many_extensions,
    "single extensions": many_single_extensions,
    "deep nesting": deep_nesting,
    "certificate extensions": embedded_certificate_extensions,
    "bounds: 8 certificates": bounded_certificates,
    "bounds: 1 KB names": bounded_names,
    "bounds: 64 entries": bounded_entries,
    "bounds: 64 extensions": bounded_extensions,
    "bounds: long candidate names": candidates_with_long_subjects,
}
"""Name → builder(issuer CA with an ECDSA key, leaf it issued) → DER."""
