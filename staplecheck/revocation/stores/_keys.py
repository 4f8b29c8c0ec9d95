"""Store keys: one unambiguous, bounded, printable string per OCSP CertID or CRL URL.

Keys are ``staplecheck:v1:ocsp:<hash>:<name hash hex>:<key hash hex>:<serial hex>`` and
``staplecheck:v1:crl:<SHA-256 hex of the URL>``. Every part after the kind is hex and
the parts are separated by ``:``, which hex never contains, so no two CertIDs (and no
CertID and URL) share a key. The URL is hashed rather than quoted: a URL is whatever a
certificate says, so it could contain the OCSP prefix, separators, unicode or megabytes;
its digest is 64 hex digits whatever it holds. ``v1`` changes when the encoding does, so
an older and a newer staplecheck sharing a store never read each other's keys.
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["KEY_PREFIX", "check_key", "crl_key", "ocsp_key"]

KEY_PREFIX = "staplecheck:v1:"
"""What every store key starts with (the version changes when the layout does)."""

# The CertID hash algorithms that validation accepts, with their digest sizes.
_HASH_SIZES = {"sha1": 20, "sha256": 32, "sha384": 48, "sha512": 64}

# RFC 5280 allows 20 octets; some CAs exceed it. Past this the serial is not a CA's.
MAX_SERIAL_OCTETS = 64

_KEY = re.compile(
    r"staplecheck:v1:(?:"
    r"ocsp:(?:sha1|sha256|sha384|sha512):[0-9a-f]{40,128}:[0-9a-f]{40,128}:[0-9a-f]{2,128}"
    r"|crl:[0-9a-f]{64})"
)


def ocsp_key(hash_name: str, issuer_name_hash: bytes, issuer_key_hash: bytes, serial: int) -> str:
    """The key for an OCSP answer about one CertID (RFC 6960 section 4.1.1).

    The serial is written as the content octets of its DER INTEGER (minimal two's
    complement), so negative and positive serials never meet. Raises ``ValueError`` for
    an unknown hash, hashes of the wrong size or an oversized serial.
    """
    size = _HASH_SIZES.get(hash_name)
    if size is None:
        raise ValueError(f"unsupported CertID hash {hash_name!r}")
    for what, digest in (
        ("issuer name hash", issuer_name_hash),
        ("issuer key hash", issuer_key_hash),
    ):
        if not isinstance(digest, bytes) or len(digest) != size:
            raise ValueError(f"{what} must be {size} bytes for {hash_name}")
    if isinstance(serial, bool) or not isinstance(serial, int):
        raise TypeError("serial must be an int")
    magnitude = serial if serial >= 0 else ~serial
    octets = serial.to_bytes(magnitude.bit_length() // 8 + 1, "big", signed=True)
    if len(octets) > MAX_SERIAL_OCTETS:
        raise ValueError(f"serial longer than {MAX_SERIAL_OCTETS} octets")
    return (
        f"{KEY_PREFIX}ocsp:{hash_name}:{issuer_name_hash.hex()}:{issuer_key_hash.hex()}:"
        f"{octets.hex()}"
    )


def crl_key(url: str) -> str:
    """The key for the CRL fetched from ``url``, exactly as the certificate spelled it.

    The URL is not normalised: two spellings of one URL are two entries (sharing is
    lost, nothing is merged). Lone surrogates are kept (``surrogatepass``), so distinct
    strings always give distinct digests.
    """
    if not isinstance(url, str):
        raise TypeError("url must be a str")
    digest = hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{KEY_PREFIX}crl:{digest}"


def check_key(key: str) -> str:
    """``key`` if :func:`ocsp_key` or :func:`crl_key` could have made it, else ``ValueError``.

    Stores refuse other keys, so their key spaces stay printable, bounded and free of
    the glob characters Redis ``SCAN`` would interpret.
    """
    if not isinstance(key, str) or _KEY.fullmatch(key) is None:
        raise ValueError(f"not a staplecheck store key: {key!r:.120}")
    return key
