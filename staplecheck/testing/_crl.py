"""A CRL factory that can make every case staplecheck's CRL judge sees.

CRLs are assembled in DER by hand (RFC 5280 §5.1), like the OCSP responses of
``_ocsp``: cryptography's ``CertificateRevocationListBuilder`` makes no delta CRLs,
no bad signatures, no RSA-PSS and no SHA-1, and builds 100,000 entries too slowly for a
test (each entry is a Python object and an extension set). Here an entry without
extensions costs one small bytes join.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
from collections.abc import Iterable, Sequence
from types import EllipsisType
from typing import TYPE_CHECKING, Union

from cryptography import x509

from . import _asn1 as asn1
from ._ocsp import REVOCATION_REASONS, RawExtension, _extensions, _sign, _subject_der

if TYPE_CHECKING:
    from ._pki import CA, Identity, PrivateKey

__all__ = ["CRLEntry", "make_crl"]

NextUpdate = Union[datetime.datetime, None, EllipsisType]
"""A time, ``None`` for no nextUpdate, or ``...`` for the default (a day later)."""

_REASON_CODE = "2.5.29.21"
_INVALIDITY_DATE = "2.5.29.24"
_CERTIFICATE_ISSUER = "2.5.29.29"
_CRL_NUMBER = "2.5.29.20"
_DELTA_CRL_INDICATOR = "2.5.29.27"
_ISSUING_DISTRIBUTION_POINT = "2.5.29.28"
_AUTHORITY_KEY_IDENTIFIER = "2.5.29.35"


@dataclasses.dataclass(frozen=True, kw_only=True)
class CRLEntry:
    """One revokedCertificates entry (RFC 5280 §5.1.2.6, §5.3)."""

    serial_number: int
    revocation_time: datetime.datetime | None = None
    """Default: an hour before the CRL's thisUpdate."""
    reason: str | None = None
    """A CRLReason name (``keyCompromise``, ``certificateHold``, ...); ``None``: no
    reasonCode extension."""
    invalidity_date: datetime.datetime | None = None
    certificate_issuer: x509.Name | None = None
    """A certificateIssuer entry extension (critical, as RFC 5280 §5.3.3 requires):
    what indirect CRLs carry."""
    extensions: Sequence[RawExtension] = ()
    """Further entry extensions, raw (unknown critical ones included)."""


Revoked = Union[CRLEntry, "Identity", x509.Certificate, int]


def make_crl(
    ca: CA,
    revoked: Iterable[Revoked] = (),
    *,
    this_update: datetime.datetime | None = None,
    next_update: NextUpdate = ...,
    revocation_time: datetime.datetime | None = None,
    reason: str | None = None,
    signer: CA | Identity | PrivateKey | None = None,
    issuer_name: x509.Name | bytes | None = None,
    signature_hash: str = "sha256",
    rsa_pss: bool = False,
    signature_oid: str | None = None,
    inner_signature_oid: str | None = None,
    corrupt_signature: bool = False,
    crl_number: int | None = 1,
    delta_base: int | None = None,
    authority_key_identifier: bool = True,
    issuing_distribution_point: x509.IssuingDistributionPoint | None = None,
    extensions: Sequence[RawExtension] = (),
    version: int | None = 1,
    pem: bool = False,
) -> bytes:
    """A CRL issued by ``ca`` (DER, or PEM with ``pem=True``).

    - ``revoked``: :class:`CRLEntry` objects, or certificates, identities and serial
      numbers, which are listed with ``revocation_time`` (default an hour before
      thisUpdate) and ``reason`` (a CRLReason name; default none).
    - ``this_update`` defaults to ``ca.now``; ``next_update`` to a day later, ``None``
      leaves it out. Times before 2050 are UTCTime, later ones GeneralizedTime (RFC
      5280 §5.1.2.4).
    - ``signer``: who signs: by default ``ca``; another :class:`CA`, an
      :class:`Identity` (a leaf, say) or a private key signs with that key while the
      CRL still names ``ca`` (``issuer_name`` overrides the name).
    - ``signature_hash`` (``sha256``, ``sha1``, ...), ``rsa_pss``; ``signature_oid``
      overrides the algorithm named in the outer signatureAlgorithm,
      ``inner_signature_oid`` the one inside tbsCertList (RFC 5280 §5.1.1.2 wants
      them equal). ``corrupt_signature`` flips a bit of the signature.
    - ``crl_number`` (``None``: no cRLNumber), ``delta_base`` makes a delta CRL (a
      critical deltaCRLIndicator naming that base CRL number),
      ``authority_key_identifier``, ``issuing_distribution_point`` (critical, as RFC
      5280 §5.2.5 requires), ``extensions``: further crlExtensions, raw.
    - ``version``: the version INTEGER (1 means v2; ``None`` leaves it out, v1).
    """
    this_update = this_update or ca.now
    default_time = revocation_time or this_update - datetime.timedelta(hours=1)
    encoded_default = _time(default_time)
    entries = b"".join(
        _entry(item, encoded_default, default_time, reason, this_update) for item in revoked
    )
    key = _signing_key(ca, signer)
    algorithm, _ = _sign(key, b"", signature_hash, rsa_pss)
    if inner_signature_oid is not None:
        inner_algorithm = asn1.sequence(asn1.oid(inner_signature_oid))
    elif signature_oid is not None:
        inner_algorithm = asn1.sequence(asn1.oid(signature_oid))
    else:
        inner_algorithm = algorithm
    crl_extensions = _crl_extensions(
        ca, crl_number, delta_base, authority_key_identifier, issuing_distribution_point
    )
    crl_extensions.extend(extensions)
    if isinstance(issuer_name, x509.Name):
        name = issuer_name.public_bytes()
    else:
        name = issuer_name if issuer_name is not None else _subject_der(ca.cert)
    next_time = this_update + datetime.timedelta(days=1) if next_update is ... else next_update
    tbs = asn1.sequence(
        *([asn1.integer(version)] if version is not None else []),
        inner_algorithm,
        name,
        _time(this_update),
        *([_time(next_time)] if next_time is not None else []),
        *([asn1.tlv(0x30, entries)] if entries else []),
        *([asn1.explicit(0, _extensions(crl_extensions))] if crl_extensions else []),
    )
    algorithm, signature = _sign(key, tbs, signature_hash, rsa_pss)
    if signature_oid is not None:
        algorithm = asn1.sequence(asn1.oid(signature_oid))
    if corrupt_signature:
        signature = signature[:-1] + bytes([signature[-1] ^ 0x01])
    der = asn1.sequence(tbs, algorithm, asn1.bit_string(signature))
    return pem_crl(der) if pem else der


def pem_crl(der: bytes) -> bytes:
    """``der`` as a PEM ``X509 CRL`` block."""
    text = base64.encodebytes(der).replace(b"\n", b"")
    lines = [text[i : i + 64] for i in range(0, len(text), 64)]
    return b"-----BEGIN X509 CRL-----\n" + b"\n".join(lines) + b"\n-----END X509 CRL-----\n"


def _signing_key(ca: CA, signer: CA | Identity | PrivateKey | None) -> PrivateKey:
    from ._pki import CA as _CA
    from ._pki import Identity as _Identity

    if signer is None:
        return ca.private_key
    if isinstance(signer, (_CA, _Identity)):
        return signer.private_key
    return signer


def _time(moment: datetime.datetime) -> bytes:
    """RFC 5280 §5.1.2.4: UTCTime through 2049, GeneralizedTime from 2050."""
    utc = moment.astimezone(datetime.timezone.utc)
    if utc.year < 2050:
        return asn1.tlv(0x17, utc.strftime("%y%m%d%H%M%SZ").encode())
    return asn1.generalized_time(utc)


def _entry(
    item: Revoked,
    encoded_default: bytes,
    default_time: datetime.datetime,
    default_reason: str | None,
    this_update: datetime.datetime,
) -> bytes:
    if isinstance(item, int):
        if default_reason is None:  # the fast path of a 100,000-entry CRL
            return asn1.sequence(asn1.integer(item), encoded_default)
        item = CRLEntry(serial_number=item, revocation_time=default_time, reason=default_reason)
    elif not isinstance(item, CRLEntry):
        cert = item if isinstance(item, x509.Certificate) else item.cert
        item = CRLEntry(
            serial_number=cert.serial_number, revocation_time=default_time, reason=default_reason
        )
    when = item.revocation_time or this_update - datetime.timedelta(hours=1)
    extensions: list[RawExtension] = []
    if item.reason is not None:
        code = asn1.enumerated(REVOCATION_REASONS[item.reason])
        extensions.append(RawExtension(oid=_REASON_CODE, value=code))
    if item.invalidity_date is not None:
        date = asn1.generalized_time(item.invalidity_date)
        extensions.append(RawExtension(oid=_INVALIDITY_DATE, value=date))
    if item.certificate_issuer is not None:
        names = x509.CertificateIssuer([x509.DirectoryName(item.certificate_issuer)])
        extensions.append(
            RawExtension(oid=_CERTIFICATE_ISSUER, critical=True, value=names.public_bytes())
        )
    extensions.extend(item.extensions)
    return asn1.sequence(
        asn1.integer(item.serial_number),
        _time(when),
        *([_extensions(extensions)] if extensions else []),
    )


def _crl_extensions(
    ca: CA,
    crl_number: int | None,
    delta_base: int | None,
    authority_key_identifier: bool,
    idp: x509.IssuingDistributionPoint | None,
) -> list[RawExtension]:
    out: list[RawExtension] = []
    if authority_key_identifier:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.private_key.public_key())
        out.append(RawExtension(oid=_AUTHORITY_KEY_IDENTIFIER, value=aki.public_bytes()))
    if crl_number is not None:
        out.append(RawExtension(oid=_CRL_NUMBER, value=asn1.integer(crl_number)))
    if delta_base is not None:
        out.append(
            RawExtension(oid=_DELTA_CRL_INDICATOR, critical=True, value=asn1.integer(delta_base))
        )
    if idp is not None:
        out.append(
            RawExtension(oid=_ISSUING_DISTRIBUTION_POINT, critical=True, value=idp.public_bytes())
        )
    return out


def crl_distribution_points(*urls: str) -> x509.CRLDistributionPoints:
    """A CRL Distribution Points extension with one distribution point per URL."""
    return x509.CRLDistributionPoints(
        [
            x509.DistributionPoint(
                full_name=[x509.UniformResourceIdentifier(url)],
                relative_name=None,
                reasons=None,
                crl_issuer=None,
            )
            for url in urls
        ]
    )
