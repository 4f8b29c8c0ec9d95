"""RFC 7633: does a certificate promise that its server staples?"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from . import _der

__all__ = ["has_must_staple"]

_TLS_FEATURE = "1.3.6.1.5.5.7.1.24"
_TLS_FEATURE_DER = bytes.fromhex("06082b06010505070118")  # that OID, DER-encoded


def has_must_staple(cert: x509.Certificate) -> bool:
    """Whether ``cert`` carries the TLS Feature extension with ``status_request``.

    RFC 7633 §4: such a certificate promises that its server staples a response. When
    cryptography cannot parse the certificate's extensions, the raw DER decides: a
    TLS Feature extension that is present but unreadable counts as demanding a staple
    (fail closed); a certificate without one does not.
    """
    if _TLS_FEATURE_DER not in cert.tbs_certificate_bytes:
        return False  # the extension's OID appears verbatim wherever it is present
    try:
        feature = cert.extensions.get_extension_for_class(x509.TLSFeature)
    except x509.ExtensionNotFound:
        return False
    except Exception:  # noqa: BLE001 - cryptography raises ValueError, KeyError or its own
        return _TLS_FEATURE in _extension_oids(cert)
    return x509.TLSFeatureType.status_request in feature.value


def _extension_oids(cert: x509.Certificate) -> set[str]:
    """OIDs of the extensions in the certificate's DER (RFC 5280 §4.1); on DER that
    cannot be walked, the TLS Feature OID is assumed present (fail closed)."""
    try:
        certificate = _der.children(
            _der.expect(_der.read_tlv(cert.public_bytes(serialization.Encoding.DER)), 0x30)
        )
        tbs = _der.children(_der.expect(certificate[0], _der.SEQUENCE))
        for field in tbs:
            if field.tag == 0xA3:  # [3] EXPLICIT Extensions
                extensions = _der.children(_der.expect(_der.read_tlv(field.value), 0x30))
                return {
                    _der.decode_oid(_der.expect(_der.children(e.value)[0], _der.OID))
                    for e in extensions
                }
        return set()
    except (_der.DERError, IndexError):
        return {_TLS_FEATURE}
