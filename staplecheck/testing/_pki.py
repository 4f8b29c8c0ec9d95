"""A throwaway PKI: root and intermediate CAs, server leaves, delegated responders."""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import os
from collections.abc import Iterable, Sequence
from typing import Any, Literal, Union

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["CA", "Identity", "KeyType", "PrivateKey", "generate_key"]

KeyType = Literal[
    "ecdsa",
    "ecdsa-p384",
    "ecdsa-p521",
    "rsa",
    "rsa-3072",
    "ed25519",
    "ed448",
    "dsa",
    "ecdsa-secp256k1",
]
"""Key types for :class:`CA` and its certificates. ``dsa`` and ``ecdsa-secp256k1``
exist to prove that responders with unsupported keys are refused."""

PrivateKey = Union[
    rsa.RSAPrivateKey,
    ec.EllipticCurvePrivateKey,
    ed25519.Ed25519PrivateKey,
    ed448.Ed448PrivateKey,
    dsa.DSAPrivateKey,
]


def generate_key(key_type: KeyType) -> PrivateKey:
    """A fresh private key of ``key_type``."""
    if key_type == "rsa":
        return rsa.generate_private_key(65537, 2048)
    if key_type == "rsa-3072":
        return rsa.generate_private_key(65537, 3072)
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if key_type == "ed448":
        return ed448.Ed448PrivateKey.generate()
    if key_type == "dsa":
        return dsa.generate_private_key(2048)
    curves: dict[str, ec.EllipticCurve] = {
        "ecdsa": ec.SECP256R1(),
        "ecdsa-p384": ec.SECP384R1(),
        "ecdsa-p521": ec.SECP521R1(),
        "ecdsa-secp256k1": ec.SECP256K1(),
    }
    if key_type not in curves:
        raise ValueError(f"unknown key type {key_type!r}")
    return ec.generate_private_key(curves[key_type])


def _signing_hash(key: PrivateKey) -> hashes.SHA256 | None:
    return (
        None
        if isinstance(key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey))
        else hashes.SHA256()
    )


SignatureHash = Literal["sha256", "sha1"]
"""How the test CA signs a certificate: SHA-256, or SHA-1 as old PKIs did."""

_SHA1_ALGORITHMS = {
    # sha1WithRSAEncryption (RFC 3279 §2.2.1), ecdsa-with-SHA1 (RFC 3279 §2.2.3)
    "rsa": bytes.fromhex("300d06092a864886f70d0101050500"),
    "ecdsa": bytes.fromhex("300906072a8648ce3d0401"),
}


def _signed_with_sha1(cert: x509.Certificate, key: PrivateKey) -> x509.Certificate:
    """``cert`` re-signed with SHA-1: cryptography no longer signs certificates with
    SHA-1, so the TBSCertificate is rewritten with the SHA-1 algorithm and signed."""
    from ..validation import _der
    from . import _asn1 as asn1

    if isinstance(key, rsa.RSAPrivateKey):
        algorithm = _SHA1_ALGORITHMS["rsa"]
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        algorithm = _SHA1_ALGORITHMS["ecdsa"]
    else:
        raise ValueError("SHA-1 signatures need an RSA or ECDSA CA key")
    der = cert.public_bytes(serialization.Encoding.DER)
    tbs_der = _der.children(_der.expect(_der.read_tlv(der), _der.SEQUENCE))[0]
    fields = _der.children(tbs_der.value)
    at = 2 if fields[0].tag == 0xA0 else 1  # [0] version?, serialNumber, signature
    parts = [algorithm if i == at else tbs_der.value[f.start : f.end] for i, f in enumerate(fields)]
    tbs = asn1.sequence(*parts)
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(tbs, padding.PKCS1v15(), hashes.SHA1())
    else:
        signature = key.sign(tbs, ec.ECDSA(hashes.SHA1()))
    return x509.load_der_x509_certificate(asn1.sequence(tbs, algorithm, asn1.bit_string(signature)))


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


LEAF_VALIDITY = datetime.timedelta(days=730)
"""How long an issued certificate is valid by default, from ``ca.now``. OpenSSL checks
validity at the real time even when a test judges staples at a fixed ``now``: two years
keep a suite with a fixed ``now`` working long after it was written."""


@dataclasses.dataclass(frozen=True)
class Identity:
    """A certificate, its private key and the chain a server sends with it."""

    cert: x509.Certificate
    private_key: PrivateKey
    chain: tuple[x509.Certificate, ...]
    """The certificate and the intermediates above it, leaf first; no root."""
    issuer: CA
    """The CA that issued ``cert``."""

    @property
    def cert_pem(self) -> bytes:
        return _pem(self.cert)

    @property
    def cert_chain_pem(self) -> bytes:
        """The certificate and its intermediates, PEM, leaf first (for servers)."""
        return _pem(*self.chain)

    @property
    def private_key_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def write(self, directory: str | os.PathLike[str], name: str = "server") -> tuple[str, str]:
        """Write ``NAME.crt`` (chain) and ``NAME.key`` into ``directory``; return both paths."""
        cert_path = os.path.join(directory, f"{name}.crt")
        key_path = os.path.join(directory, f"{name}.key")
        with open(cert_path, "wb") as f:
            f.write(self.cert_chain_pem)
        with open(key_path, "wb") as f:
            f.write(self.private_key_pem)
        return cert_path, key_path


class CA:
    """A certificate authority for tests: a root, or an intermediate below another CA.

    ``now`` anchors every default time (validity periods, OCSP thisUpdate), so tests
    that pass it are deterministic in time. Certificates are valid from an hour before
    ``now``.
    """

    cert: x509.Certificate
    private_key: PrivateKey

    def __init__(
        self,
        *,
        key_type: KeyType = "ecdsa",
        name: str = "staplecheck test root",
        now: datetime.datetime | None = None,
        parent: CA | None = None,
        valid_for: datetime.timedelta = datetime.timedelta(days=3650),
        key: PrivateKey | None = None,
    ) -> None:
        self.now = (now or datetime.datetime.now(datetime.timezone.utc)).replace(microsecond=0)
        self.parent = parent
        self.private_key = key or generate_key(key_type)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        signer_key = parent.private_key if parent else self.private_key
        ski = x509.SubjectKeyIdentifier.from_public_key(self.private_key.public_key())
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(parent.cert.subject if parent else subject)
            .public_key(self.private_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.now - datetime.timedelta(hours=1))
            .not_valid_after(self.now + valid_for)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ski, critical=False)
        )
        if parent:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(parent.private_key.public_key()),
                critical=False,
            )
        self.cert = builder.sign(signer_key, _signing_hash(signer_key))

    # --- the hierarchy ---

    def create_intermediate(
        self, *, key_type: KeyType = "ecdsa", name: str = "staplecheck test intermediate"
    ) -> CA:
        """A CA issued by this one."""
        return CA(key_type=key_type, name=name, now=self.now, parent=self)

    @property
    def root(self) -> CA:
        """The self-signed CA at the top."""
        return self.parent.root if self.parent else self

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        """This CA's certificate and the intermediates above it, without the root."""
        if self.parent is None:
            return ()
        return (self.cert, *self.parent.chain)

    @property
    def cert_pem(self) -> bytes:
        """This CA's certificate in PEM: what a client trusts when this is the root."""
        return _pem(self.cert)

    def write_trust(self, path: str | os.PathLike[str]) -> str:
        """Write the root certificate as a PEM CA file; return the path."""
        with open(path, "wb") as f:
            f.write(self.root.cert_pem)
        return os.fspath(path)

    # --- issuing ---

    def issue_cert(
        self,
        *names: str,
        must_staple: bool = False,
        key_type: KeyType = "ecdsa",
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
        serial_number: int | None = None,
        ocsp_url: str | None = None,
        crl_url: str | Sequence[str] | None = None,
        client_auth: bool = False,
        extra_usages: Sequence[x509.ObjectIdentifier] = (),
        signature_hash: SignatureHash = "sha256",
    ) -> Identity:
        """A server certificate for DNS names and IP addresses (``"127.0.0.1"``).

        ``must_staple`` adds the RFC 7633 TLS Feature ``status_request`` extension;
        ``ocsp_url`` an Authority Information Access OCSP location; ``crl_url`` (one
        URL or several) a CRL Distribution Points extension, one point per URL;
        ``signature_hash="sha1"`` signs it with SHA-1 (RSA or ECDSA CAs), as old PKIs did.
        """
        if not names:
            raise ValueError("issue_cert needs at least one name")
        key = generate_key(key_type)
        usages = [ExtendedKeyUsageOID.SERVER_AUTH, *extra_usages]
        if client_auth:
            usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        builder = (
            self._builder(names[0], key, not_before, not_after, serial_number)
            .add_extension(
                x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False
            )
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        )
        if must_staple:
            builder = builder.add_extension(
                x509.TLSFeature([x509.TLSFeatureType.status_request]), critical=False
            )
        if ocsp_url:
            builder = builder.add_extension(
                x509.AuthorityInformationAccess(
                    [
                        x509.AccessDescription(
                            x509.oid.AuthorityInformationAccessOID.OCSP,
                            x509.UniformResourceIdentifier(ocsp_url),
                        )
                    ]
                ),
                critical=False,
            )
        if crl_url:
            from ._crl import crl_distribution_points

            urls = (crl_url,) if isinstance(crl_url, str) else tuple(crl_url)
            builder = builder.add_extension(crl_distribution_points(*urls), critical=False)
        return self._identity(builder, key, signature_hash)

    def issue_responder(
        self,
        *,
        ocsp_signing: bool = True,
        key_type: KeyType = "ecdsa",
        name: str = "staplecheck test OCSP responder",
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
        signature_hash: SignatureHash = "sha256",
    ) -> Identity:
        """A delegated OCSP responder certificate issued by this CA (RFC 6960 §4.2.2.2).

        ``ocsp_signing=False`` leaves out the id-kp-OCSPSigning extended key usage, to
        test that such a responder is refused; ``not_after`` in the past makes an
        expired one; ``signature_hash="sha1"`` signs it with SHA-1.
        """
        key = generate_key(key_type)
        builder = self._builder(name, key, not_before, not_after, None).add_extension(
            x509.OCSPNoCheck(), critical=False
        )
        usage = (
            ExtendedKeyUsageOID.OCSP_SIGNING if ocsp_signing else ExtendedKeyUsageOID.CODE_SIGNING
        )
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        return self._identity(builder, key, signature_hash)

    def ocsp_response(
        self, cert: x509.Certificate | Identity | None, status: str = "good", **options: Any
    ) -> bytes:
        """A DER OCSP response about ``cert`` from this CA: see :func:`make_ocsp_response`."""
        from ._ocsp import make_ocsp_response

        return make_ocsp_response(self, cert, status, **options)

    def crl(self, revoked: Iterable[Any] = (), **options: Any) -> bytes:
        """A CRL issued by this CA listing ``revoked``: see :func:`make_crl`."""
        from ._crl import make_crl

        return make_crl(self, revoked, **options)

    # --- internals ---

    def _builder(
        self,
        common_name: str,
        key: PrivateKey,
        not_before: datetime.datetime | None,
        not_after: datetime.datetime | None,
        serial_number: int | None,
    ) -> x509.CertificateBuilder:
        public = key.public_key()
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.cert.subject)
            .public_key(public)
            .serial_number(serial_number or x509.random_serial_number())
            .not_valid_before(not_before or self.now - datetime.timedelta(hours=1))
            .not_valid_after(not_after or self.now + LEAF_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=isinstance(key, rsa.RSAPrivateKey),
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.private_key.public_key()),
                critical=False,
            )
        )

    def _identity(
        self,
        builder: x509.CertificateBuilder,
        key: PrivateKey,
        signature_hash: SignatureHash = "sha256",
    ) -> Identity:
        cert = builder.sign(self.private_key, _signing_hash(self.private_key))
        if signature_hash == "sha1":
            cert = _signed_with_sha1(cert, self.private_key)
        return Identity(cert=cert, private_key=key, chain=(cert, *self.chain), issuer=self)


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)
