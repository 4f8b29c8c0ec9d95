"""Host name verification against a verified certificate (RFC 6125, via urllib3).

A certificate's names are put into the dictionary shape of
``ssl.SSLSocket.getpeercert()``, which urllib3's matcher reads. For verified leaves
this is remembered, keyed by the certificate's complete DER: two certificates can share
signature bytes (OpenSSL never checks a trust anchor's own signature, and ECDSA key
recovery lets a sub-CA mint a certificate carrying another's signature), but never their
DER. :func:`peercert_dict` on any other certificate remembers nothing.

A certificate whose extensions cryptography cannot parse (OpenSSL is more lenient, so
such a leaf can verify) has names that cannot be read: that is an
``ssl.SSLCertVerificationError``, never a match and never a raw parser exception.
"""

from __future__ import annotations

import ipaddress
import ssl
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID
from urllib3.util.ssl_match_hostname import CertificateError, match_hostname

from .._cache import LRUCache

__all__ = ["check_hostname", "is_ip", "peercert_dict"]

_VERIFIED: LRUCache[dict[str, Any]] = LRUCache(256)


def peercert_dict(cert: x509.Certificate) -> dict[str, Any]:
    """``getpeercert()``'s view of ``cert``: subject common names and subjectAltName."""
    return _describe(cert)


def _verified_names(der: bytes) -> dict[str, Any]:
    """:func:`peercert_dict` for a leaf from a verified chain (its DER), remembered."""
    found = _VERIFIED.get(der)
    if found is None:
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError as error:  # OpenSSL accepted what cryptography cannot read
            raise _unreadable_names(error) from None
        found = _describe(cert)
        _VERIFIED.put(der, found)
    return found


def _describe(cert: x509.Certificate) -> dict[str, Any]:
    try:
        return _names(cert)
    except Exception as error:  # noqa: BLE001 - ValueError, KeyError or cryptography's own
        raise _unreadable_names(error) from None


def _names(cert: x509.Certificate) -> dict[str, Any]:
    names: list[tuple[str, str]] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    if san is not None:
        names += [("DNS", n) for n in san.get_values_for_type(x509.DNSName)]
        names += [("IP Address", str(ip)) for ip in san.get_values_for_type(x509.IPAddress)]
    try:
        common_names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    except ValueError:  # a legacy encoding (T61String); never used to match a host name
        common_names = []
    return {
        "subject": tuple((("commonName", str(a.value)),) for a in common_names),
        "subjectAltName": tuple(names),
    }


def check_hostname(der: bytes, host: str) -> None:
    """Raise ``ssl.SSLCertVerificationError`` unless the certificate whose DER is
    ``der`` is valid for ``host``.

    It must be the leaf of a chain OpenSSL verified. Subject alternative names only;
    the subject's common name is never used.
    """
    try:
        match_hostname(_verified_names(der), host)  # type: ignore[arg-type]
    except CertificateError as error:
        failure = ssl.SSLCertVerificationError(1, f"certificate verify failed: {error}")
        failure.verify_code = 62  # X509_V_ERR_HOSTNAME_MISMATCH, as the stdlib reports it
        failure.verify_message = "Hostname mismatch"
        raise failure from None


def _unreadable_names(error: Exception) -> ssl.SSLCertVerificationError:
    # Fail closed: a name that cannot be read never matches.
    failure = ssl.SSLCertVerificationError(
        1,
        "certificate verify failed: the certificate's host names cannot be read: its "
        "subject, subjectAltName or another extension is malformed or uses an encoding "
        f"cryptography does not read ({type(error).__name__})",
    )
    failure.verify_code = 41  # X509_V_ERR_INVALID_EXTENSION
    failure.verify_message = "certificate names unreadable"
    return failure


def is_ip(host: str) -> bool:
    """Whether ``host`` is an IPv4 or IPv6 address (no SNI for those: RFC 6066 §3)."""
    if not host or (host[-1].isalpha() and ":" not in host):
        return False  # a name ending in a letter is never an address
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
