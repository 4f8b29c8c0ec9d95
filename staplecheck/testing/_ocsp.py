"""An OCSP response factory that can make every case staplecheck judges.

Responses are assembled in DER by hand (RFC 6960 §4.2.1), so they can hold several
entries, RSA-PSS signatures, critical extensions, impossible times, broken signatures
and unsuccessful statuses.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
from collections.abc import Sequence
from types import EllipsisType
from typing import TYPE_CHECKING, Union

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa

from . import _asn1 as asn1

if TYPE_CHECKING:
    from ._pki import CA, Identity, PrivateKey

__all__ = [
    "RESPONSE_STATUSES",
    "REVOCATION_REASONS",
    "OCSPEntry",
    "RawExtension",
    "make_ocsp_response",
]

RESPONSE_STATUSES = {
    "successful": 0,
    "malformedRequest": 1,
    "internalError": 2,
    "tryLater": 3,
    "sigRequired": 5,
    "unauthorized": 6,
}
REVOCATION_REASONS = {
    "unspecified": 0,
    "keyCompromise": 1,
    "cACompromise": 2,
    "affiliationChanged": 3,
    "superseded": 4,
    "cessationOfOperation": 5,
    "certificateHold": 6,
    "removeFromCRL": 8,
    "privilegeWithdrawn": 9,
    "aACompromise": 10,
}
_HASHES = {
    "sha1": ("1.3.14.3.2.26", hashlib.sha1, hashes.SHA1),
    "sha224": ("2.16.840.1.101.3.4.2.4", hashlib.sha224, hashes.SHA224),
    "sha256": ("2.16.840.1.101.3.4.2.1", hashlib.sha256, hashes.SHA256),
    "sha384": ("2.16.840.1.101.3.4.2.2", hashlib.sha384, hashes.SHA384),
    "sha512": ("2.16.840.1.101.3.4.2.3", hashlib.sha512, hashes.SHA512),
    "md5": ("1.2.840.113549.2.5", hashlib.md5, hashes.MD5),
}
_RSA_OIDS = {
    "sha1": "1.2.840.113549.1.1.5",
    "sha224": "1.2.840.113549.1.1.14",
    "sha256": "1.2.840.113549.1.1.11",
    "sha384": "1.2.840.113549.1.1.12",
    "sha512": "1.2.840.113549.1.1.13",
}
_ECDSA_OIDS = {
    "sha1": "1.2.840.10045.4.1",
    "sha224": "1.2.840.10045.4.3.1",
    "sha256": "1.2.840.10045.4.3.2",
    "sha384": "1.2.840.10045.4.3.3",
    "sha512": "1.2.840.10045.4.3.4",
}
_DSA_OIDS = {"sha256": "2.16.840.1.101.3.4.3.2"}

NextUpdate = Union[datetime.datetime, None, EllipsisType]
"""A time, ``None`` for no nextUpdate, or ``...`` for the default (a day later)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class RawExtension:
    """An extension as raw parts: unknown OIDs and critical flags included."""

    oid: str
    critical: bool = False
    value: bytes = b"\x05\x00"
    """The DER placed inside extnValue."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class OCSPEntry:
    """One SingleResponse (RFC 6960 §4.2.1). Unset times follow the response's."""

    serial_number: int
    status: str = "good"
    this_update: datetime.datetime | None = None
    next_update: NextUpdate = ...
    revocation_time: datetime.datetime | None = None
    revocation_reason: str | None = None
    cert_id_hash: str = "sha1"
    issuer: CA | None = None
    """Whose name and key the CertID names; by default the responding CA."""
    extensions: Sequence[RawExtension] = ()


def make_ocsp_response(
    ca: CA,
    cert: x509.Certificate | Identity | None,
    status: str = "good",
    *,
    this_update: datetime.datetime | None = None,
    next_update: NextUpdate = ...,
    produced_at: datetime.datetime | None = None,
    revocation_time: datetime.datetime | None = None,
    revocation_reason: str | None = None,
    responder: CA | Identity | None = None,
    responder_id: str = "name",
    cert_id_hash: str = "sha1",
    extra_entries: Sequence[OCSPEntry] = (),
    include_certs: Sequence[x509.Certificate] | None = None,
    signature_hash: str = "sha256",
    rsa_pss: bool = False,
    corrupt_signature: bool = False,
    response_status: str = "successful",
    extensions: Sequence[RawExtension] = (),
    single_extensions: Sequence[RawExtension] = (),
    signature_oid: str | None = None,
) -> bytes:
    """A DER OCSP response about ``cert``, whose issuer is ``ca``.

    - ``status``: ``good``, ``revoked`` or ``unknown``; ``revocation_time`` (default:
      an hour before thisUpdate) and ``revocation_reason`` (a CRLReason name such as
      ``keyCompromise``) for ``revoked``.
    - ``this_update`` defaults to ``ca.now``; ``next_update`` to a day later, ``None``
      leaves it out; ``produced_at`` defaults to ``this_update``.
    - ``responder``: who signs. By default ``ca`` itself; an :class:`Identity` from
      :meth:`CA.issue_responder` is a delegate (its certificate is embedded); another
      :class:`CA` signs with its own key. ``responder_id``: ``name`` or ``key``.
    - ``cert_id_hash``: ``sha1``, ``sha256``, ``sha384``, ``sha512`` (or ``md5``, to
      test refusal). ``extra_entries`` are appended after ``cert``'s entry;
      ``cert=None`` leaves that entry out.
    - ``include_certs`` replaces the embedded certificates.
    - ``signature_hash``, ``rsa_pss``; ``signature_oid`` overrides the algorithm named
      in the response (to claim one algorithm and use another).
    - ``corrupt_signature`` flips a bit of the signature; ``response_status`` other than
      ``successful`` gives a response with no body (RFC 6960 §4.2.1).
    - ``extensions`` / ``single_extensions``: responseExtensions and the entry's
      singleExtensions.
    """
    if response_status != "successful":
        return asn1.sequence(asn1.enumerated(RESPONSE_STATUSES[response_status]))

    from ._pki import CA as _CA

    this_update = this_update or ca.now
    signer = responder or ca
    signer_cert = signer.cert
    signer_key = signer.private_key
    entries: list[OCSPEntry] = []
    if cert is not None:
        leaf = cert if isinstance(cert, x509.Certificate) else cert.cert
        entries.append(
            OCSPEntry(
                serial_number=leaf.serial_number,
                status=status,
                this_update=this_update,
                next_update=next_update,
                revocation_time=revocation_time,
                revocation_reason=revocation_reason,
                cert_id_hash=cert_id_hash,
                extensions=single_extensions,
            )
        )
    entries.extend(extra_entries)

    if responder_id == "name":
        rid = asn1.explicit(1, _subject_der(signer_cert))
    elif responder_id == "key":
        rid = asn1.explicit(2, asn1.octet_string(_key_bits_hash(signer_cert, hashlib.sha1)))
    else:
        raise ValueError("responder_id must be 'name' or 'key'")

    response_data = asn1.sequence(
        rid,
        asn1.generalized_time(produced_at or this_update),
        asn1.sequence(*(_single(ca, e, this_update) for e in entries)),
        *([asn1.explicit(1, _extensions(extensions))] if extensions else []),
    )
    algorithm_der, signature = _sign(signer_key, response_data, signature_hash, rsa_pss)
    if signature_oid is not None:
        algorithm_der = asn1.sequence(asn1.oid(signature_oid))
    if corrupt_signature:
        signature = signature[:-1] + bytes([signature[-1] ^ 0x01])
    if include_certs is None:
        include_certs = [] if isinstance(signer, _CA) else [signer_cert]
    basic = asn1.sequence(
        response_data,
        algorithm_der,
        asn1.bit_string(signature),
        *(
            [
                asn1.explicit(
                    0,
                    asn1.sequence(
                        *(c.public_bytes(serialization.Encoding.DER) for c in include_certs)
                    ),
                )
            ]
            if include_certs
            else []
        ),
    )
    return asn1.sequence(
        asn1.enumerated(0),
        asn1.explicit(
            0,
            asn1.sequence(asn1.oid("1.3.6.1.5.5.7.48.1.1"), asn1.octet_string(basic)),
        ),
    )


def _single(ca: CA, entry: OCSPEntry, default_this_update: datetime.datetime) -> bytes:
    issuer = entry.issuer or ca
    hash_oid, digest, _ = _HASHES[entry.cert_id_hash]
    cert_id = asn1.sequence(
        asn1.sequence(asn1.oid(hash_oid), asn1.null()),
        asn1.octet_string(digest(_subject_der(issuer.cert)).digest()),
        asn1.octet_string(_key_bits_hash(issuer.cert, digest)),
        asn1.integer(entry.serial_number),
    )
    this_update = entry.this_update or default_this_update
    if entry.status == "good":
        status = b"\x80\x00"  # [0] IMPLICIT NULL
    elif entry.status == "unknown":
        status = b"\x82\x00"  # [2] IMPLICIT NULL
    elif entry.status == "revoked":
        revoked_at = entry.revocation_time or this_update - datetime.timedelta(hours=1)
        info = asn1.generalized_time(revoked_at)
        if entry.revocation_reason is not None:
            info += asn1.explicit(0, asn1.enumerated(REVOCATION_REASONS[entry.revocation_reason]))
        status = asn1.tlv(0xA1, info)  # [1] IMPLICIT RevokedInfo
    else:
        raise ValueError(f"unknown certificate status {entry.status!r}")
    next_update = (
        this_update + datetime.timedelta(days=1) if entry.next_update is ... else entry.next_update
    )
    parts = [cert_id, status, asn1.generalized_time(this_update)]
    if next_update is not None:
        parts.append(asn1.explicit(0, asn1.generalized_time(next_update)))
    if entry.extensions:
        parts.append(asn1.explicit(1, _extensions(entry.extensions)))
    return asn1.sequence(*parts)


def _extensions(extensions: Sequence[RawExtension]) -> bytes:
    return asn1.sequence(
        *(
            asn1.sequence(
                asn1.oid(e.oid),
                *([asn1.boolean(True)] if e.critical else []),
                asn1.octet_string(e.value),
            )
            for e in extensions
        )
    )


def _sign(key: PrivateKey, data: bytes, hash_name: str, rsa_pss: bool) -> tuple[bytes, bytes]:
    """Sign ``data``; return the AlgorithmIdentifier and the signature."""
    hash_oid, _, hash_cls = _HASHES[hash_name]
    if isinstance(key, rsa.RSAPrivateKey) and rsa_pss:
        salt = hash_cls().digest_size
        hash_id = asn1.sequence(asn1.oid(hash_oid), asn1.null())
        params = asn1.sequence(
            asn1.explicit(0, hash_id),
            asn1.explicit(1, asn1.sequence(asn1.oid("1.2.840.113549.1.1.8"), hash_id)),
            asn1.explicit(2, asn1.integer(salt)),
        )
        signature = key.sign(data, padding.PSS(padding.MGF1(hash_cls()), salt), hash_cls())
        return asn1.sequence(asn1.oid("1.2.840.113549.1.1.10"), params), signature
    if isinstance(key, rsa.RSAPrivateKey):
        oid = _RSA_OIDS[hash_name]
        return asn1.sequence(asn1.oid(oid), asn1.null()), key.sign(
            data, padding.PKCS1v15(), hash_cls()
        )
    if isinstance(key, ec.EllipticCurvePrivateKey):
        oid = _ECDSA_OIDS[hash_name]
        return asn1.sequence(asn1.oid(oid)), key.sign(data, ec.ECDSA(hash_cls()))
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return asn1.sequence(asn1.oid("1.3.101.112")), key.sign(data)
    if isinstance(key, ed448.Ed448PrivateKey):
        return asn1.sequence(asn1.oid("1.3.101.113")), key.sign(data)
    if isinstance(key, dsa.DSAPrivateKey):
        oid = _DSA_OIDS["sha256"]
        return asn1.sequence(asn1.oid(oid)), key.sign(data, hashes.SHA256())
    raise TypeError(f"cannot sign with {type(key).__name__}")


def _subject_der(cert: x509.Certificate) -> bytes:
    """The subject Name as encoded in the certificate (which cryptography may not
    parse: a legacy T61String, say); the CertID and ResponderID use these bytes."""
    from ..validation._der import certificate_fields

    return certificate_fields(cert.public_bytes(serialization.Encoding.DER)).subject


def _key_bits_hash(cert: x509.Certificate, digest: object) -> bytes:
    """Hash of the certificate's subjectPublicKey bits as encoded in it (RFC 6960
    §4.1.1): a compressed EC point is hashed compressed, as OpenSSL's responder does."""
    from ..validation._der import certificate_fields

    bits = certificate_fields(cert.public_bytes(serialization.Encoding.DER)).key_bits
    return digest(bits).digest()  # type: ignore[operator, no-any-return]
