"""What validation needs to know about a certificate, worked out once.

cryptography builds a new Python object on every accessor call (names, keys,
extensions), and re-serialises to answer ``public_bytes``; a validation touches a
dozen of them. These frozen records hold the answers. Validation memoizes them per
certificate (see ``StapleCache``), keyed by the certificate's complete DER. Names
and key bits are read from that DER, as sent: cryptography re-encodes keys (an EC
point given compressed comes back uncompressed, and OCSP hashes the bytes as sent),
and may not parse a legacy name (a T61String) that OpenSSL accepts.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from . import _der
from ._tlsfeature import has_must_staple

__all__ = [
    "CERT_ID_HASHES",
    "MAX_NAME_BYTES",
    "IssuerFacts",
    "LeafFacts",
    "describe_name",
    "same_name",
]

# RFC 6960 §4.1.1: the CertID hashes staplecheck matches; others cannot identify a
# certificate here.
CERT_ID_HASHES = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha384": hashlib.sha384,
    "sha512": hashlib.sha512,
}


MAX_NAME_BYTES = 1024
"""Two names whose DER differs are compared attribute by attribute (string types may
differ) only when both are at most this long; longer ones must match byte for byte.
Parsing a name costs per attribute, and real names are under 300 bytes."""


@dataclasses.dataclass(frozen=True, slots=True)
class IssuerFacts:
    """The issuer as OCSP sees it: its name, its key, and the hashes of both."""

    cert: x509.Certificate
    subject_der: bytes
    description: str
    """``issuer CN=...``: how results name it as a signer."""
    public_key: CertificatePublicKeyTypes
    key_hashes: dict[str, bytes]
    """Hash of the subjectPublicKey bits as encoded, by CertID hash name (issuerKeyHash,
    byKey: RFC 6960 §4.1.1, §4.2.1)."""

    @classmethod
    def of(cls, cert: x509.Certificate, der: bytes) -> IssuerFacts:
        fields = _der.certificate_fields(der)
        return cls(
            cert=cert,
            subject_der=fields.subject,
            description=f"issuer {describe_name(fields.subject, lambda: cert.subject)}",
            public_key=cert.public_key(),
            key_hashes={
                name: digest(fields.key_bits).digest() for name, digest in CERT_ID_HASHES.items()
            },
        )


@dataclasses.dataclass(frozen=True, slots=True)
class LeafFacts:
    """The certificate being checked: its serial, its issuer's name, its promises."""

    cert: x509.Certificate
    serial_number: int
    issuer_der: bytes
    """The DER of the leaf's issuer field."""
    issuer_name_hashes: dict[str, bytes]
    """issuerNameHash by CertID hash name: taken over ``issuer_der`` (RFC 6960 §4.1.1)."""
    must_staple: bool

    @classmethod
    def of(cls, cert: x509.Certificate, der: bytes) -> LeafFacts:
        issuer_der = _der.certificate_fields(der).issuer
        return cls(
            cert=cert,
            serial_number=cert.serial_number,
            issuer_der=issuer_der,
            issuer_name_hashes={
                name: digest(issuer_der).digest() for name, digest in CERT_ID_HASHES.items()
            },
            must_staple=has_must_staple(cert),
        )


def same_name(
    a_der: bytes, a: Callable[[], x509.Name], b_der: bytes, b: Callable[[], x509.Name]
) -> bool:
    """Whether two Names are equal: byte for byte, or, when both are at most
    :data:`MAX_NAME_BYTES`, attribute by attribute (``a`` and ``b`` parse them). A name
    cryptography cannot parse equals only its own bytes."""
    if a_der == b_der:
        return True
    if len(a_der) > MAX_NAME_BYTES or len(b_der) > MAX_NAME_BYTES:
        return False
    try:
        return bool(a() == b())
    except (ValueError, KeyError):
        # cryptography before 44 raises KeyError for a string type it does not know.
        return False


def describe_name(der: bytes, name: Callable[[], x509.Name]) -> str:
    """A distinguished name as results print it, bounded: an overlong name is described
    by its size (it may come from a peer, before any signature over it is checked),
    and one cryptography cannot parse says so."""
    if len(der) > MAX_NAME_BYTES:
        return f"(a name of {len(der)} bytes)"
    try:
        return name().rfc4514_string() or "(empty name)"
    except (ValueError, KeyError):  # KeyError: see same_name
        return "(a name that cannot be read)"
