"""Policy: which staples and revocation answers a connection accepts (docs/policies.md)."""

from __future__ import annotations

import dataclasses
import datetime
import enum
from collections.abc import Sequence
from typing import Any, ClassVar, Union, overload

from cryptography import x509

from .validation._result import StapleResult, StapleStatus
from .validation._validate import DEFAULT_CLOCK_SKEW, DEFAULT_LIFETIME, DEFAULT_MAX_AGE

__all__ = ["FALLBACK_SOURCES", "Mode", "Policy", "PolicyLike", "ResponderOverride", "as_policy"]

FALLBACK_SOURCES = ("ocsp", "crl")
"""The sources a fallback can ask, as :attr:`Policy.fallback` names them."""
DEFAULT_FALLBACK_TIMEOUT = 2.0
MAX_PINNED_RESPONDERS = 8


class Mode(str, enum.Enum):
    """How much a connection demands of its staple."""

    OFF = "off"
    """Do not ask for a staple; accept every handshake the chain check accepts."""
    SOFT_FAIL = "soft-fail"
    """Reject positive evidence of a problem, and anything a must-staple leaf lacks."""
    MUST_STAPLE = "must-staple"
    """Require a good staple on every connection."""
    HARD_FAIL = "hard-fail"
    """Require a definite ``good`` from the staple or a fallback source (live OCSP,
    CRLs): no answer refuses."""

    def __str__(self) -> str:
        return self.value


_ALWAYS_REJECTED = frozenset({StapleStatus.REVOKED, StapleStatus.UNKNOWN, StapleStatus.INVALID})
_ABSENT_OR_OLD = frozenset({StapleStatus.MISSING, StapleStatus.STALE})
_REFUSING_ANSWERS = frozenset({StapleStatus.REVOKED, StapleStatus.UNKNOWN})


class _ModeField:
    """``Policy.mode``: set as a :class:`Mode` or its string, always read as a
    :class:`Mode`. A descriptor rather than a ``Mode | str`` annotation, so that type
    checkers accept ``Policy(mode="hard-fail")`` and still know ``policy.mode.value``."""

    def __set_name__(self, owner: type, name: str) -> None:
        self._attribute = f"_{name}"

    @overload
    def __get__(self, obj: None, owner: Any) -> Mode: ...
    @overload
    def __get__(self, obj: object, owner: Any) -> Mode: ...
    def __get__(self, obj: object | None, owner: Any) -> Mode:
        if obj is None:
            return Mode.SOFT_FAIL  # the dataclass reads the field's default here
        mode: Mode = getattr(obj, self._attribute)
        return mode

    def __set__(self, obj: object, value: Mode | str) -> None:
        # Frozen instances are set through object.__setattr__, which lands here.
        object.__setattr__(obj, self._attribute, Mode(value))


def _strings(values: Sequence[str], name: str) -> tuple[str, ...]:
    if isinstance(values, str) or not all(isinstance(value, str) for value in values):
        raise TypeError(f"{name} must be a tuple of strings")
    return tuple(values)


@dataclasses.dataclass(frozen=True)
class ResponderOverride:
    """A designated OCSP responder (RFC 6960 §2.6, "the OCSP responder URL is locally
    configured"): asked instead of the URLs in the certificates' AIA.

    ``issuer`` (DER of a CA certificate) limits it to certificates that CA issued;
    ``None`` makes it the responder for every certificate the policy checks. Where any
    override matches a certificate, the AIA's URLs are not asked at all.
    """

    url: str
    issuer: bytes | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.url, str) or "://" not in self.url:
            raise ValueError(f"a responder URL must be absolute, not {self.url!r}")
        if self.issuer is not None:
            if not isinstance(self.issuer, bytes):
                raise TypeError("issuer must be the DER of a CA certificate (bytes)")
            try:
                x509.load_der_x509_certificate(self.issuer)
            except ValueError:
                raise ValueError("issuer is not a DER certificate") from None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Policy:
    """What to demand of staples, and the time rules they are judged by.

    Use a preset (``Policy.SOFT_FAIL``, ``Policy.MUST_STAPLE``, ``Policy.HARD_FAIL``,
    ``Policy.OFF``) or ``dataclasses.replace`` one. Wherever a policy is accepted, a
    mode string (``"off"``, ``"soft-fail"``, ``"must-staple"``, ``"hard-fail"``) is
    accepted too. The fields after ``allow_sha1`` configure the fallback
    (docs/revocation.md).
    """

    mode: _ModeField = _ModeField()
    """The decision column of the table in docs/policies.md: a :class:`Mode` or its
    string, read back as a :class:`Mode`."""
    clock_skew: datetime.timedelta = DEFAULT_CLOCK_SKEW
    """Tolerance for clocks that disagree, applied to thisUpdate and nextUpdate."""
    default_lifetime: datetime.timedelta = DEFAULT_LIFETIME
    """How long a response without nextUpdate counts as current after thisUpdate."""
    max_age: datetime.timedelta = DEFAULT_MAX_AGE
    """No response older than this (since thisUpdate) counts as current."""
    allow_sha1: bool = True
    """Whether a response signed with SHA-1, or by a delegated responder whose
    certificate is signed with SHA-1, can be evidence. ``True`` judges them as
    OpenSSL, curl, Firefox and Go do; ``False`` refuses them (``invalid``). CertIDs
    hashed with SHA-1 are accepted either way: they identify, they do not sign."""

    fallback: tuple[str, ...] | None = None
    """Where to ask when the staple does not answer (missing or stale), in order:
    ``"ocsp"`` (live OCSP) and ``"crl"``. ``None`` means the mode's default: ``()``
    for ``off``, ``soft-fail`` and ``must-staple``, ``("ocsp", "crl")`` for
    ``hard-fail``. Read the resolved value from :attr:`sources`."""
    check_chain: bool = False
    """Also check every certificate of the verified chain below the root (the
    intermediates) through the fallback sources; the staple covers only the leaf."""
    fallback_timeout: float = DEFAULT_FALLBACK_TIMEOUT
    """Seconds the fallback may take in total per connection, never more than the
    connection's own timeout."""
    responders: tuple[ResponderOverride, ...] = ()
    """Designated OCSP responders, asked instead of the certificates' AIA URLs."""
    trusted_responders: tuple[bytes, ...] = ()
    """DER of pinned OCSP responder certificates (like OpenSSL's ``-VAfile``): a
    response they sign is authorized for any certificate. An explicit opt-in; see
    docs/revocation.md."""
    crl_files: tuple[str, ...] = ()
    """Static CRL files and directories (DER or PEM), read instead of the
    certificates' distribution points: for sites without network access to the CA."""
    crl_urls: tuple[str, ...] = ()
    """Distribution points (``http://`` URLs of the issuer's full CRL) read instead of
    the certificates' own, as :attr:`responders` designates OCSP responders. Ignored
    when :attr:`crl_files` names static files."""
    ocsp_method: str = "POST"
    """``"POST"`` (the default) or ``"GET"`` (RFC 5019)."""
    ocsp_nonce: bool = False
    """Send a nonce (RFC 8954) and require it back. Off by default: pre-produced
    responders (RFC 5019, Vault, cfssl) send none."""
    allow_https_fetch: bool = False
    """Also fetch from ``https://`` OCSP and CRL URLs (``http://`` only by default)."""

    OFF: ClassVar[Policy]
    SOFT_FAIL: ClassVar[Policy]
    MUST_STAPLE: ClassVar[Policy]
    HARD_FAIL: ClassVar[Policy]

    def __post_init__(self) -> None:
        for name in ("clock_skew", "default_lifetime", "max_age"):
            value = getattr(self, name)
            if not isinstance(value, datetime.timedelta):
                raise TypeError(f"{name} must be a datetime.timedelta")
            if value < datetime.timedelta(0):
                raise ValueError(f"{name} must not be negative")
        self._check_fallback()

    def _check_fallback(self) -> None:
        if self.fallback is not None:
            fallback = _strings(self.fallback, "fallback")
            unknown = [source for source in fallback if source not in FALLBACK_SOURCES]
            if unknown or len(set(fallback)) != len(fallback):
                raise ValueError(
                    f"fallback must list distinct sources among {', '.join(FALLBACK_SOURCES)}"
                    f", not {self.fallback!r}"
                )
            object.__setattr__(self, "fallback", fallback)
            if fallback and self.mode is Mode.OFF:
                raise ValueError("policy 'off' checks nothing: it takes no fallback")
        timeout = self.fallback_timeout
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise TypeError("fallback_timeout must be a number of seconds")
        if not 0 < timeout <= 300:
            raise ValueError("fallback_timeout must be more than 0 and at most 300 seconds")
        if self.check_chain and not self.sources:
            raise ValueError("check_chain needs a fallback source to ask (fallback=...)")
        if self.ocsp_method not in ("POST", "GET"):
            raise ValueError("ocsp_method must be 'POST' or 'GET'")
        responders = tuple(self.responders)
        if not all(isinstance(item, ResponderOverride) for item in responders):
            raise TypeError("responders must be ResponderOverride objects")
        object.__setattr__(self, "responders", responders)
        pinned = tuple(self.trusted_responders)
        if len(pinned) > MAX_PINNED_RESPONDERS:
            raise ValueError(f"at most {MAX_PINNED_RESPONDERS} trusted responders")
        for index, der in enumerate(pinned):
            if not isinstance(der, bytes):
                raise TypeError("trusted_responders must be DER certificates (bytes)")
            try:
                x509.load_der_x509_certificate(der)
            except ValueError:
                raise ValueError(f"trusted_responders[{index}] is not a DER certificate") from None
        object.__setattr__(self, "trusted_responders", pinned)
        object.__setattr__(self, "crl_files", _strings(self.crl_files, "crl_files"))
        crl_urls = _strings(self.crl_urls, "crl_urls")
        if any("://" not in url for url in crl_urls):
            raise ValueError(f"a distribution point URL must be absolute, not {crl_urls!r}")
        object.__setattr__(self, "crl_urls", crl_urls)

    @property
    def sources(self) -> tuple[str, ...]:
        """The fallback sources in force: :attr:`fallback`, or the mode's default."""
        if self.fallback is not None:
            return self.fallback
        return FALLBACK_SOURCES if self.mode is Mode.HARD_FAIL else ()

    @property
    def requests_staple(self) -> bool:
        """Whether connections under this policy ask the server for a staple."""
        return self.mode is not Mode.OFF

    def accepts(
        self,
        result: StapleResult,
        answer: StapleStatus | None = None,
        *,
        must_staple: bool | None = None,
    ) -> bool:
        """Whether a connection whose staple got ``result`` may proceed, when the
        fallback gave ``answer`` for the leaf (``None``: no source answered, or none
        was asked). Only ``good``, ``revoked`` and ``unknown`` are answers; anything
        else counts as none. The table in docs/policies.md, as code.

        ``must_staple`` says whether the leaf carries the RFC 7633 extension; by
        default it is read from ``result.must_staple``.
        """
        if self.mode is Mode.OFF or result.status is StapleStatus.GOOD:
            return True
        if self.mode is Mode.MUST_STAPLE or result.status in _ALWAYS_REJECTED:
            return False
        if result.status not in _ABSENT_OR_OLD:
            return False  # a status this table does not know: fail closed
        demanded = result.must_staple if must_staple is None else must_staple
        if demanded:
            return False  # RFC 7633: only a good staple will do
        return self.accepts_answer(answer if self.sources else None)

    def accepts_answer(self, answer: StapleStatus | None) -> bool:
        """Whether a fallback ``answer`` lets a certificate without a usable staple pass
        (an intermediate under ``check_chain``, or a leaf whose staple is missing or
        stale): ``good`` passes; ``revoked`` and ``unknown`` refuse; no answer passes
        under ``soft-fail`` and refuses under ``hard-fail`` and ``must-staple``."""
        if self.mode is Mode.OFF or answer is StapleStatus.GOOD:
            return True
        if answer in _REFUSING_ANSWERS:
            return False
        return self.mode is Mode.SOFT_FAIL

    def wants_fallback(self, result: StapleResult, *, must_staple: bool | None = None) -> bool:
        """Whether the fallback can change the decision on a leaf whose staple got
        ``result``: a missing or stale staple, a source to ask, and no rule that refuses
        the connection whatever the answer (must-staple, the mode or the extension)."""
        if not self.sources or self.mode in (Mode.OFF, Mode.MUST_STAPLE):
            return False
        demanded = result.must_staple if must_staple is None else must_staple
        return result.status in _ABSENT_OR_OLD and not demanded

    @property
    def needs_revocation_check(self) -> bool:
        """Whether connections under this policy may need the fallback at all."""
        return bool(self.sources) and self.mode is not Mode.OFF


Policy.OFF = Policy(mode=Mode.OFF)
Policy.SOFT_FAIL = Policy(mode=Mode.SOFT_FAIL)
Policy.MUST_STAPLE = Policy(mode=Mode.MUST_STAPLE)
Policy.HARD_FAIL = Policy(mode=Mode.HARD_FAIL)

PolicyLike = Union[Policy, Mode, str]
"""A :class:`Policy`, or a mode (``"off"``, ``"soft-fail"``, ``"must-staple"``,
``"hard-fail"``)."""


def as_policy(policy: PolicyLike) -> Policy:
    """The :class:`Policy` for a policy or a mode string; ``ValueError`` otherwise."""
    if isinstance(policy, Policy):
        return policy
    if isinstance(policy, str):
        try:
            return Policy(mode=Mode(policy))
        except ValueError:
            modes = ", ".join(m.value for m in Mode)
            raise ValueError(f"unknown policy {policy!r}; choose one of {modes}") from None
    raise TypeError(f"expected a Policy or a mode string, not {type(policy).__name__}")
