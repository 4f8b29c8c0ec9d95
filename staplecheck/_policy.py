"""Policy: which staples a connection accepts (DESIGN.md's decision table)."""

from __future__ import annotations

import dataclasses
import datetime
import enum
from typing import ClassVar, Union

from ._result import StapleResult, StapleStatus
from ._validate import DEFAULT_CLOCK_SKEW, DEFAULT_LIFETIME, DEFAULT_MAX_AGE

__all__ = ["Mode", "Policy", "PolicyLike", "as_policy"]


class Mode(str, enum.Enum):
    """How much a connection demands of its staple."""

    OFF = "off"
    """Do not ask for a staple; accept every handshake the chain check accepts."""
    SOFT_FAIL = "soft-fail"
    """Reject positive evidence of a problem, and anything a must-staple leaf lacks."""
    MUST_STAPLE = "must-staple"
    """Require a good staple on every connection."""

    def __str__(self) -> str:
        return self.value


_ALWAYS_REJECTED = frozenset({StapleStatus.REVOKED, StapleStatus.UNKNOWN, StapleStatus.INVALID})
_ABSENT_OR_OLD = frozenset({StapleStatus.MISSING, StapleStatus.STALE})


@dataclasses.dataclass(frozen=True, kw_only=True)
class Policy:
    """What to demand of staples, and the time rules they are judged by.

    Use a preset (``Policy.SOFT_FAIL``, ``Policy.MUST_STAPLE``, ``Policy.OFF``) or
    ``dataclasses.replace`` one. Wherever a policy is accepted, a mode string
    (``"off"``, ``"soft-fail"``, ``"must-staple"``) is accepted too.
    """

    mode: Mode = Mode.SOFT_FAIL
    """The decision column of the table in docs/policies.md."""
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

    OFF: ClassVar[Policy]
    SOFT_FAIL: ClassVar[Policy]
    MUST_STAPLE: ClassVar[Policy]

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", Mode(self.mode))
        for name in ("clock_skew", "default_lifetime", "max_age"):
            value = getattr(self, name)
            if not isinstance(value, datetime.timedelta):
                raise TypeError(f"{name} must be a datetime.timedelta")
            if value < datetime.timedelta(0):
                raise ValueError(f"{name} must not be negative")

    @property
    def requests_staple(self) -> bool:
        """Whether connections under this policy ask the server for a staple."""
        return self.mode is not Mode.OFF

    def accepts(self, result: StapleResult, *, must_staple: bool | None = None) -> bool:
        """Whether a connection whose staple got ``result`` may proceed.

        ``must_staple`` says whether the leaf carries the RFC 7633 extension; by
        default it is read from ``result.must_staple``.
        """
        if self.mode is Mode.OFF or result.status is StapleStatus.GOOD:
            return True
        if self.mode is Mode.MUST_STAPLE or result.status in _ALWAYS_REJECTED:
            return False
        if result.status in _ABSENT_OR_OLD:
            demanded = result.must_staple if must_staple is None else must_staple
            return not demanded
        return False  # a status this table does not know: fail closed


Policy.OFF = Policy(mode=Mode.OFF)
Policy.SOFT_FAIL = Policy(mode=Mode.SOFT_FAIL)
Policy.MUST_STAPLE = Policy(mode=Mode.MUST_STAPLE)

PolicyLike = Union[Policy, Mode, str]
"""A :class:`Policy`, or a mode (``"off"``, ``"soft-fail"``, ``"must-staple"``)."""


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
