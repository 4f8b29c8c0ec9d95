"""What to ask about a certificate, and until when an answer may be kept. Pure: no I/O,
no clock.

A plan names, for one certificate and its verified issuer, the OCSP responders to ask
(a designated responder from the policy, else every OCSP URL of the certificate's AIA)
and the CRLs to read (the policy's static files, else its designated distribution
points, else the certificate's HTTP distribution points), with a reason for every URL
left out. The certificate comes from a chain OpenSSL verified, but a CA customer chose
nothing in it, while a CA could write anything: URLs are bounded in number and length,
and only ``http://`` (or ``https://`` when the policy allows it) is asked.
"""

from __future__ import annotations

import dataclasses
import datetime

from cryptography import x509
from cryptography.x509.oid import AuthorityInformationAccessOID

from .._policy import Policy
from ..validation._result import StapleResult
from ..validation._times import later
from ..validation._validate import CertPair
from ._crl import CRLIndex
from ._fetch import MAX_PARALLEL
from ._ocsp import OCSPRequest, build_request
from .stores import ocsp_key

__all__ = [
    "MAX_CRL_URLS",
    "MAX_URL_CHARS",
    "Plan",
    "Skipped",
    "crl_expiry",
    "make_plan",
    "ocsp_expiry",
    "request_key",
]

MAX_URL_CHARS = 2048
"""A longer URL in a certificate is skipped (real ones are under 100 characters)."""
MAX_CRL_URLS = 4
"""Distribution points read per certificate, in the certificate's order."""


@dataclasses.dataclass(frozen=True, slots=True)
class Skipped:
    """A URL the plan leaves out, and why."""

    source: str
    url: str
    reason: str


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """What to ask about one certificate."""

    certs: CertPair
    request: OCSPRequest
    """The OCSP request without a nonce: its CertID names the store key."""
    ocsp_key: str
    ocsp_urls: tuple[str, ...]
    crl_urls: tuple[str, ...]
    """Distribution points (empty when the policy names static CRL files)."""
    skipped: tuple[Skipped, ...]


def make_plan(certs: CertPair, policy: Policy) -> Plan:
    """The plan for ``certs.leaf`` (issued by ``certs.issuer``) under ``policy``.

    Raises ``ValueError`` when the certificate's DER cannot be read for a CertID."""
    request, key = request_key(certs)
    skipped: list[Skipped] = []
    ocsp_urls: list[str] = []
    crl_urls: list[str] = []
    if "ocsp" in policy.sources:
        overrides = [
            item.url
            for item in policy.responders
            if item.issuer is None or item.issuer == certs.issuer_der
        ]
        candidates = overrides or _aia_ocsp_urls(certs.leaf)
        ocsp_urls = _usable("ocsp", candidates or [], policy, MAX_PARALLEL, skipped)
        if candidates is None:
            skipped.append(Skipped("ocsp", "", _UNREADABLE_REASON))
        elif not candidates:
            skipped.append(Skipped("ocsp", "", "the certificate names no OCSP responder"))
    if "crl" in policy.sources and not policy.crl_files:
        points = list(policy.crl_urls) if policy.crl_urls else _distribution_points(certs.leaf)
        crl_urls = _usable("crl", points or [], policy, MAX_CRL_URLS, skipped)
        if points is None:
            skipped.append(Skipped("crl", "", _UNREADABLE_REASON))
        elif not points:
            skipped.append(Skipped("crl", "", "the certificate names no CRL distribution point"))
    return Plan(
        certs=certs,
        request=request,
        ocsp_key=key,
        ocsp_urls=tuple(ocsp_urls),
        crl_urls=tuple(crl_urls),
        skipped=tuple(skipped),
    )


def request_key(certs: CertPair) -> tuple[OCSPRequest, str]:
    """The nonce-less OCSP request for ``certs.leaf`` and the store key of its CertID.

    Raises ``ValueError`` when the certificate's DER cannot be read for a CertID."""
    request = build_request(certs)
    key = ocsp_key(
        request.hash_algorithm,
        request.issuer_name_hash,
        request.issuer_key_hash,
        request.serial_number,
    )
    return request, key


def _usable(
    source: str, urls: list[str], policy: Policy, limit: int, skipped: list[Skipped]
) -> list[str]:
    schemes = ("http://", "https://") if policy.allow_https_fetch else ("http://",)
    usable: list[str] = []
    for url in dict.fromkeys(urls):  # each URL once, in order
        # Shown in attempts, logs and the CLI: a CA may write terminal escapes here.
        shown = url[:200] if url[:200].isprintable() else repr(url[:200])[1:-1]
        if len(url) > MAX_URL_CHARS:
            skipped.append(Skipped(source, shown, f"a URL over {MAX_URL_CHARS} characters"))
        elif not url.isprintable() or " " in url:
            # No HTTP request line can carry them (http.client refuses them too).
            skipped.append(Skipped(source, shown, "a URL with control characters or spaces"))
        elif not url.lower().startswith(schemes):
            reason = "only http:// is fetched" + (
                "" if policy.allow_https_fetch else " (allow_https_fetch adds https://)"
            )
            skipped.append(Skipped(source, shown, reason))
        elif len(usable) >= limit:
            skipped.append(Skipped(source, shown, f"over the limit of {limit} URLs"))
        else:
            usable.append(url)
    return usable


# What cryptography raises for extensions it cannot read: not only ValueError. OpenSSL
# verifies such certificates (an EDIPartyName in the AIA, for instance) and a CA may
# issue them, so the plan treats them as naming nothing, and says why.
_UNREADABLE = (ValueError, x509.UnsupportedGeneralNameType, x509.DuplicateExtension)
_UNREADABLE_REASON = "the certificate's extensions cannot be read (cryptography refuses them)"


def _aia_ocsp_urls(cert: x509.Certificate) -> list[str] | None:
    """Every OCSP URL in the AIA (RFC 5280 §4.2.2.1), in order; ``None`` when the
    extensions cannot be read."""
    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return []
    except _UNREADABLE:
        return None
    return [
        description.access_location.value
        for description in aia
        if description.access_method == AuthorityInformationAccessOID.OCSP
        and isinstance(description.access_location, x509.UniformResourceIdentifier)
    ]


def _distribution_points(cert: x509.Certificate) -> list[str] | None:
    """The URIs of the CRL distribution points with no reasons and no cRLIssuer (RFC
    5280 §4.2.1.13): the full CRLs of the certificate's own issuer. Partitioned and
    indirect CRLs are not read (docs/revocation.md). ``None`` when the extensions
    cannot be read."""
    try:
        points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        return []
    except _UNREADABLE:
        return None
    urls: list[str] = []
    for point in points:
        if point.reasons is not None or point.crl_issuer is not None or not point.full_name:
            continue
        urls.extend(
            name.value
            for name in point.full_name
            if isinstance(name, x509.UniformResourceIdentifier)
        )
    return urls


def ocsp_expiry(answer: StapleResult, policy: Policy) -> datetime.datetime | None:
    """Until when a definite OCSP answer may be kept: its nextUpdate (thisUpdate plus
    the default lifetime without one), never past thisUpdate plus the maximum age, plus
    the clock skew the judge allows. ``None`` when the answer has no thisUpdate."""
    if answer.this_update is None:
        return None
    until = answer.next_update or later(answer.this_update, policy.default_lifetime)
    until = min(until, later(answer.this_update, policy.max_age))
    return later(until, policy.clock_skew)


def crl_expiry(index: CRLIndex) -> datetime.datetime:
    """Until when a judged CRL may be kept: the end of its current window."""
    return index.latest
