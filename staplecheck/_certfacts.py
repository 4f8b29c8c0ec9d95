"""What validation needs to know about a certificate, worked out once.

cryptography builds a new Python object on every accessor call (names, keys,
extensions), and re-serialises to answer ``public_bytes``; a validation touches a
dozen of them. These frozen records hold the answers. Validation memoizes them per
certificate (see ``StapleCache``), keyed by the certificate's signature value: the
leaf and issuer come from a chain OpenSSL verified, so two different certificates
cannot share one.
"""

from __future__ import annotations

import dataclasses
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from . import _der
from ._tlsfeature import has_must_staple

__all__ = ["CERT_ID_HASHES", "IssuerFacts", "LeafFacts", "key_bits", "name_of"]

# RFC 6960 §4.1.1: the CertID hashes staplecheck matches; others cannot identify a
# certificate here.
CERT_ID_HASHES = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha384": hashlib.sha384,
    "sha512": hashlib.sha512,
}


@dataclasses.dataclass(frozen=True, slots=True)
class IssuerFacts:
    """The issuer as OCSP sees it: its name, its key, and the hashes of both."""

    subject: x509.Name
    subject_der: bytes
    description: str
    """``issuer CN=...``: how results name it as a signer."""
    public_key: CertificatePublicKeyTypes
    key_hashes: dict[str, bytes]
    """Hash of the subjectPublicKey bits, by CertID hash name (issuerKeyHash, byKey)."""

    @classmethod
    def of(cls, cert: x509.Certificate) -> IssuerFacts:
        subject = cert.subject
        bits = key_bits(cert)
        return cls(
            subject=subject,
            subject_der=subject.public_bytes(),
            description=f"issuer {name_of(subject)}",
            public_key=cert.public_key(),
            key_hashes={name: digest(bits).digest() for name, digest in CERT_ID_HASHES.items()},
        )


@dataclasses.dataclass(frozen=True, slots=True)
class LeafFacts:
    """The certificate being checked: its serial, its issuer's name, its promises."""

    serial_number: int
    issuer: x509.Name
    issuer_der: bytes
    """The DER of the leaf's issuer field."""
    issuer_name_hashes: dict[str, bytes]
    """issuerNameHash by CertID hash name: taken over ``issuer_der`` (RFC 6960 §4.1.1)."""
    must_staple: bool

    @classmethod
    def of(cls, cert: x509.Certificate) -> LeafFacts:
        issuer = cert.issuer
        issuer_der = issuer.public_bytes()
        return cls(
            serial_number=cert.serial_number,
            issuer=issuer,
            issuer_der=issuer_der,
            issuer_name_hashes={
                name: digest(issuer_der).digest() for name, digest in CERT_ID_HASHES.items()
            },
            must_staple=has_must_staple(cert),
        )


def key_bits(cert: x509.Certificate) -> bytes:
    """The subjectPublicKey BIT STRING bytes (RFC 6960 §4.1.1 issuerKeyHash, §4.2.1)."""
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return _der.subject_public_key_bits(spki)


def name_of(name: x509.Name) -> str:
    """A distinguished name as results print it."""
    return name.rfc4514_string() or "(empty name)"
