"""RFC 7633: does a certificate promise that its server staples?"""

from __future__ import annotations

from cryptography import x509

__all__ = ["has_must_staple"]


def has_must_staple(cert: x509.Certificate) -> bool:
    """Whether ``cert`` carries the TLS Feature extension with ``status_request``.

    RFC 7633 §4: such a certificate promises that its server staples a response.
    Extensions that cannot be parsed count as demanding a staple (fail closed).
    """
    try:
        feature = cert.extensions.get_extension_for_class(x509.TLSFeature)
    except x509.ExtensionNotFound:
        return False
    except ValueError:
        return True
    return x509.TLSFeatureType.status_request in feature.value
