"""Signature algorithms staplecheck verifies, and whether an issuer signed a certificate.

The tables name the algorithms accepted for OCSP responses and certificates alike (RFC
3279, RFC 4055, RFC 5758, RFC 8410); anything else fails closed. :func:`check_issued_by`
answers RFC 5280 §6.1.3 (a)(1) for one certificate.

cryptography's ``verify_directly_issued_by`` refuses SHA-1 signatures. OpenSSL's OCSP
verification accepts them (so do curl, Firefox and Go for responses), and
staplecheck accepts SHA-1-signed responses too (docs/validation.md, rule 4), so a
SHA-1-signed delegated responder or leaf would otherwise be refused for a false
reason ("its signature does not verify"). This check verifies any algorithm
cryptography can read, SHA-1 included; whether SHA-1 is acceptable is the policy's
decision (``Policy.allow_sha1``), made with :func:`signed_with_sha1`.
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa

from . import _der
from ._certfacts import same_name

__all__ = [
    "ECDSA",
    "ED448",
    "ED25519",
    "RSA_PKCS1",
    "RSA_PSS",
    "BadParametersError",
    "NotIssuedError",
    "UnsupportedSignatureError",
    "check_issued_by",
    "key_kind",
    "pss_parameters",
    "signed_with_sha1",
    "verify",
]

# RFC 3279 §2.2, RFC 4055 §5, RFC 5758 §3.2, RFC 8410 §3: OID -> hash.
RSA_PKCS1: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "1.2.840.113549.1.1.5": hashes.SHA1,  # sha1WithRSAEncryption
    "1.2.840.113549.1.1.14": hashes.SHA224,
    "1.2.840.113549.1.1.11": hashes.SHA256,
    "1.2.840.113549.1.1.12": hashes.SHA384,
    "1.2.840.113549.1.1.13": hashes.SHA512,
}
ECDSA: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "1.2.840.10045.4.1": hashes.SHA1,  # ecdsa-with-SHA1
    "1.2.840.10045.4.3.1": hashes.SHA224,
    "1.2.840.10045.4.3.2": hashes.SHA256,
    "1.2.840.10045.4.3.3": hashes.SHA384,
    "1.2.840.10045.4.3.4": hashes.SHA512,
}
RSA_PSS = "1.2.840.113549.1.1.10"
ED25519 = "1.3.101.112"
ED448 = "1.3.101.113"


_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)


class UnsupportedSignatureError(ValueError):
    """The key and the named algorithm do not go together, or are not supported."""


def verify(
    key: object,
    oid: str,
    signature: bytes,
    data: bytes,
    pss: tuple[padding.PSS, hashes.HashAlgorithm] | None = None,
) -> hashes.HashAlgorithm | None:
    """Verify ``signature`` over ``data`` with ``key`` by the algorithm ``oid`` names
    (``pss``: its RSA-PSS parameters); return the hash used (``None`` for EdDSA).

    Raises ``InvalidSignature`` when it does not verify, and
    :class:`UnsupportedSignatureError` when the key does not fit the algorithm or
    either is not in the tables above (ECDSA on P-256, P-384 and P-521 only): fail
    closed."""
    if oid in RSA_PKCS1 and isinstance(key, rsa.RSAPublicKey):
        digest: hashes.HashAlgorithm | None = RSA_PKCS1[oid]()
        assert digest is not None
        key.verify(signature, data, padding.PKCS1v15(), digest)
        return digest
    if oid == RSA_PSS and isinstance(key, rsa.RSAPublicKey) and pss is not None:
        key.verify(signature, data, pss[0], pss[1])
        return pss[1]
    if oid in ECDSA and isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, _CURVES):
            raise UnsupportedSignatureError(
                f"uses curve {key.curve.name}; only P-256, P-384 and P-521 are accepted"
            )
        digest = ECDSA[oid]()
        assert digest is not None
        key.verify(signature, data, ec.ECDSA(digest))
        return digest
    if (oid == ED25519 and isinstance(key, ed25519.Ed25519PublicKey)) or (
        oid == ED448 and isinstance(key, ed448.Ed448PublicKey)
    ):
        key.verify(signature, data)
        return None
    raise UnsupportedSignatureError(
        f"algorithm {oid} with a key of type {key_kind(key)} is not supported"
    )


# RFC 4055 §2.1: the hashes RSASSA-PSS-params may name, by OID.
_HASH_OIDS: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "1.3.14.3.2.26": hashes.SHA1,
    "2.16.840.1.101.3.4.2.4": hashes.SHA224,
    "2.16.840.1.101.3.4.2.1": hashes.SHA256,
    "2.16.840.1.101.3.4.2.2": hashes.SHA384,
    "2.16.840.1.101.3.4.2.3": hashes.SHA512,
}
_MGF1 = "1.2.840.113549.1.1.8"


class BadParametersError(ValueError):
    """An RSA-PSS AlgorithmIdentifier's parameters are malformed or not supported."""


def pss_parameters(algorithm: bytes) -> tuple[padding.PSS, hashes.HashAlgorithm]:
    """RFC 4055 §3.1: the RSASSA-PSS-params of an AlgorithmIdentifier (``algorithm``:
    its content), read from the DER.

    cryptography does not expose them for OCSP responses, nor for CRLs before
    cryptography 44, so OCSP responses and CRLs alike read them here. Raises
    :class:`BadParametersError`, naming the rule, for anything else.
    """
    try:
        parts = _der.children(algorithm, 2)
        fields = {tlv.tag: tlv.value for tlv in _der.children(_der.expect(parts[1], _der.SEQUENCE))}
        digest = _HASH_OIDS["1.3.14.3.2.26"]
        if 0xA0 in fields:
            digest = _pss_hash(_der.read_tlv(fields[0xA0]).value)
        mgf_digest = _HASH_OIDS["1.3.14.3.2.26"]
        if 0xA1 in fields:
            mgf = _der.children(_der.expect(_der.read_tlv(fields[0xA1]), _der.SEQUENCE))
            if _der.decode_oid(_der.expect(mgf[0], _der.OID)) != _MGF1:
                raise BadParametersError("RSA-PSS mask generation is not MGF1 (RFC 4055 §3.1)")
            mgf_digest = _pss_hash(_der.expect(mgf[1], _der.SEQUENCE))
        salt = 20
        if 0xA2 in fields:
            salt = _der.decode_int(_der.expect(_der.read_tlv(fields[0xA2]), _der.INTEGER))
        if 0xA3 in fields:
            trailer = _der.decode_int(_der.expect(_der.read_tlv(fields[0xA3]), _der.INTEGER))
            if trailer != 1:
                raise BadParametersError("RSA-PSS trailerField must be 1 (RFC 4055 §3.1)")
        if not 0 <= salt <= 1024:
            raise BadParametersError(f"RSA-PSS salt length {salt} is out of range")
    except (_der.DERError, IndexError):
        raise BadParametersError("malformed RSA-PSS parameters (RFC 4055 §3.1)") from None
    return padding.PSS(mgf=padding.MGF1(mgf_digest()), salt_length=salt), digest()


def _pss_hash(content: bytes) -> Callable[[], hashes.HashAlgorithm]:
    oid = _der.decode_oid(_der.expect(_der.children(content)[0], _der.OID))
    if oid not in _HASH_OIDS:
        raise BadParametersError(f"RSA-PSS hash {oid} is not supported (RFC 4055 §2.1)")
    return _HASH_OIDS[oid]


def key_kind(key: object) -> str:
    kinds = {
        rsa.RSAPublicKey: "RSA",
        ec.EllipticCurvePublicKey: "EC",
        ed25519.Ed25519PublicKey: "Ed25519",
        ed448.Ed448PublicKey: "Ed448",
    }
    return next((name for kind, name in kinds.items() if isinstance(key, kind)), "unsupported")


class NotIssuedError(ValueError):
    """``issuer`` did not issue the certificate; the message says which check failed."""


def check_issued_by(
    cert: x509.Certificate,
    issuer: x509.Certificate,
    *,
    der: bytes | None = None,
    issuer_der: bytes | None = None,
) -> None:
    """Raise :class:`NotIssuedError` unless ``cert`` names ``issuer``'s subject as its
    issuer and ``issuer``'s key verifies its signature (any hash, SHA-1 included).

    ``der`` and ``issuer_der`` are the certificates' DER when the caller has it
    (cryptography re-encodes on ``public_bytes``, at a cost that grows with the
    certificate). Names are compared from the DER, parsed only when short
    (:func:`same_name`): ``cert`` may come from a peer, unverified."""
    try:
        cert_der = der if der is not None else cert.public_bytes(serialization.Encoding.DER)
        if issuer_der is None:
            issuer_der = issuer.public_bytes(serialization.Encoding.DER)
        named = _der.certificate_fields(cert_der).issuer
        subject = _der.certificate_fields(issuer_der).subject
        if not same_name(named, lambda: cert.issuer, subject, lambda: issuer.subject):
            raise NotIssuedError("its issuer name is not the issuer's subject")
        oid = cert.signature_algorithm_oid.dotted_string
        data, signature = _der.tbs_and_signature(cert_der)
        pss = None
        if oid == RSA_PSS:
            parameters = cert.signature_algorithm_parameters
            if not isinstance(parameters, padding.PSS):
                raise NotIssuedError("its RSA-PSS parameters cannot be read")
            pss = (parameters, _hash_of(cert))
        verify(issuer.public_key(), oid, signature, data, pss)
    except UnsupportedSignatureError as error:
        raise NotIssuedError(f"its signature {error}") from None
    except InvalidSignature:
        raise NotIssuedError("its signature does not verify with the issuer's key") from None
    except (UnsupportedAlgorithm, ValueError, TypeError, IndexError) as error:
        if isinstance(error, NotIssuedError):
            raise
        # cryptography's parse errors are Rust debug text: name the kind, not the text.
        detail = str(error) if isinstance(error, _der.DERError) else type(error).__name__
        raise NotIssuedError(f"its signature cannot be checked ({detail})") from None


def _hash_of(cert: x509.Certificate) -> hashes.HashAlgorithm:
    digest = cert.signature_hash_algorithm
    if digest is None:
        raise NotIssuedError("its signature algorithm names no hash")
    return digest


def signed_with_sha1(cert: x509.Certificate) -> bool:
    """Whether the certificate's signature uses SHA-1 (PKCS#1 v1.5, PSS or ECDSA)."""
    try:
        return isinstance(cert.signature_hash_algorithm, hashes.SHA1)
    except UnsupportedAlgorithm:
        return False
