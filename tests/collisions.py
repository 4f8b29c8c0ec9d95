"""Certificates that verify and still carry another certificate's signature bytes.

Two ways to make them, both real (OpenSSL accepts the chains they sit in):

- **A trusted self-signed copy.** OpenSSL never checks a trust anchor's own signature,
  so a self-signed certificate a caller trusts may carry any signature bytes at all.
- **ECDSA key recovery.** Given a signature (r, s) and any message, there is a public
  key Q for which (r, s) is a valid signature of that message:
  Q = r⁻¹(s·R − e·G), with R the curve point whose x is r. Whoever holds a CA key under
  the trusted root (a name-constrained sub-CA is enough) issues a CA certificate for Q
  and then a certificate of its choosing "signed" by Q: the victim's signature bytes,
  verifying under Q. Nobody needs Q's private key.
"""

from __future__ import annotations

import datetime
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from staplecheck.testing import CA, Identity, generate_key
from staplecheck.testing import _asn1 as asn1
from staplecheck.validation import _der

__all__ = ["recovered_key", "self_signed_copy", "with_recovered_issuer", "with_signature_of"]

# NIST P-256 (SEC 2 §2.4.2)
_P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
_A = _P - 3
_B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_G = (
    0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
    0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5,
)

Point = tuple[int, int] | None


def _add(p: Point, q: Point) -> Point:
    if p is None:
        return q
    if q is None:
        return p
    if p[0] == q[0] and (p[1] + q[1]) % _P == 0:
        return None
    if p == q:
        slope = (3 * p[0] * p[0] + _A) * pow(2 * p[1], -1, _P) % _P
    else:
        slope = (q[1] - p[1]) * pow(q[0] - p[0], -1, _P) % _P
    x = (slope * slope - p[0] - q[0]) % _P
    return x, (slope * (p[0] - x) - p[1]) % _P


def _mul(k: int, p: Point) -> Point:
    result: Point = None
    while k:
        if k & 1:
            result = _add(result, p)
        p = _add(p, p)
        k >>= 1
    return result


def recovered_key(signature: bytes, message: bytes) -> ec.EllipticCurvePublicKey:
    """A P-256 key under which the ECDSA-SHA256 ``signature`` (DER) verifies ``message``."""
    r, s = decode_dss_signature(signature)
    e = int.from_bytes(hashlib.sha256(message).digest(), "big")
    y_squared = (pow(r, 3, _P) + _A * r + _B) % _P
    y = pow(y_squared, (_P + 1) // 4, _P)
    for candidate in (y, _P - y):
        point = _mul(
            pow(r, -1, _N),
            _add(_mul(s, (r, candidate)), _mul(_N - e % _N, _G)),
        )
        assert point is not None
        key = ec.EllipticCurvePublicNumbers(point[0], point[1], ec.SECP256R1()).public_key()
        try:
            key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        except Exception:  # noqa: BLE001 - the other root of y² is the one
            continue
        return key
    raise AssertionError("no key recovered")


def _parts(cert: x509.Certificate) -> list[_der.TLV]:
    der = cert.public_bytes(serialization.Encoding.DER)
    return _der.children(_der.expect(_der.read_tlv(der), _der.SEQUENCE))


def with_signature_of(tbs: x509.Certificate, donor: x509.Certificate) -> x509.Certificate:
    """``tbs``'s TBSCertificate and algorithm with ``donor``'s signature value."""
    body, algorithm, _ = _parts(tbs)
    signature = _parts(donor)[2]
    cert = x509.load_der_x509_certificate(
        asn1.sequence(*(asn1.tlv(t.tag, t.value) for t in (body, algorithm, signature)))
    )
    assert cert.signature == donor.signature
    assert cert != donor
    return cert


def self_signed_copy(names: list[str], donor: x509.Certificate) -> Identity:
    """A self-signed server certificate for ``names`` (not must-staple) whose signature
    bytes are ``donor``'s. Its own signature does not verify; trusted as an anchor, it
    needs none."""
    key = generate_key("ecdsa")
    now = datetime.datetime.now(datetime.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "partner")])
    body = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    cert = with_signature_of(body, donor)
    return Identity(cert=cert, private_key=key, chain=(cert,), issuer=None)  # type: ignore[arg-type]


def with_recovered_issuer(
    sub_ca: CA, donor: x509.Certificate, template: x509.CertificateBuilder
) -> tuple[x509.Certificate, x509.Certificate]:
    """A certificate made from ``template`` (any subject, key and extensions; its
    issuer name is set here) that carries ``donor``'s ECDSA signature bytes, and the
    CA certificate, issued by ``sub_ca``, whose recovered key makes it verify.

    Returns (the certificate, its issuer). Chain them under ``sub_ca``'s chain.
    """
    recovered_name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, f"recovered key {x509.random_serial_number()}")]
    )
    throwaway = ec.generate_private_key(ec.SECP256R1())
    body = template.issuer_name(recovered_name).sign(throwaway, hashes.SHA256())
    key = recovered_key(donor.signature, body.tbs_certificate_bytes)
    builder = (
        x509.CertificateBuilder()
        .subject_name(recovered_name)
        .issuer_name(sub_ca.cert.subject)
        .public_key(key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(sub_ca.now - datetime.timedelta(hours=1))
        .not_valid_after(sub_ca.now + datetime.timedelta(days=30))
    )
    for extension in sub_ca.cert.extensions:  # a CA like the test helper's CAs
        if isinstance(extension.value, (x509.BasicConstraints, x509.KeyUsage)):
            builder = builder.add_extension(extension.value, extension.critical)
    issuer = builder.sign(sub_ca.private_key, hashes.SHA256())  # type: ignore[arg-type]
    cert = with_signature_of(body, donor)
    cert.verify_directly_issued_by(issuer)  # the donor's bytes, verifying under the new key
    return cert, issuer
