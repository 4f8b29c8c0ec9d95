"""The rows of the policy table as staples a server can send.

Each case says which staple to serve and which status staplecheck must give it; with
:meth:`StapleCase.expected_accept` it also says what each policy must decide. The demo,
staplecheck's own tests and yours can share them.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable

from .._policy import Mode, Policy
from ..validation._result import StapleResult, StapleStatus
from ._pki import CA, Identity

__all__ = ["POLICY_CASES", "StapleCase"]

StapleMaker = Callable[[CA, Identity, datetime.datetime], "bytes | None"]


@dataclasses.dataclass(frozen=True)
class StapleCase:
    """One row of the policy table: the staple a server sends and its expected status."""

    name: str
    """A short identifier, e.g. ``stale-must-staple``."""
    label: str
    """What a person reads, e.g. ``stale, must-staple cert``."""
    status: StapleStatus
    must_staple: bool
    """Whether the leaf carries the RFC 7633 must-staple extension."""
    make: StapleMaker

    def staple(self, issuer: CA, leaf: Identity, now: datetime.datetime) -> bytes | None:
        """The DER the server staples for ``leaf`` (``None``: no staple)."""
        return self.make(issuer, leaf, now)

    def expected_accept(self, mode: Mode | str) -> bool:
        """Whether a connection under ``mode`` must be accepted."""
        result = StapleResult(status=self.status, reason="", must_staple=self.must_staple)
        return Policy(mode=Mode(mode)).accepts(result)


def _stale(issuer: CA, leaf: Identity, now: datetime.datetime) -> bytes:
    return issuer.ocsp_response(
        leaf,
        this_update=now - datetime.timedelta(days=3),
        next_update=now - datetime.timedelta(days=2),
    )


def _no_staple(issuer: CA, leaf: Identity, now: datetime.datetime) -> None:
    return None


POLICY_CASES = (
    StapleCase(
        "good",
        "good staple",
        StapleStatus.GOOD,
        False,
        lambda ca, leaf, now: ca.ocsp_response(leaf, this_update=now),
    ),
    StapleCase(
        "revoked",
        "revoked (keyCompromise)",
        StapleStatus.REVOKED,
        False,
        lambda ca, leaf, now: ca.ocsp_response(
            leaf, "revoked", this_update=now, revocation_reason="keyCompromise"
        ),
    ),
    StapleCase(
        "unknown",
        "unknown to responder",
        StapleStatus.UNKNOWN,
        False,
        lambda ca, leaf, now: ca.ocsp_response(leaf, "unknown", this_update=now),
    ),
    StapleCase(
        "invalid",
        "forged signature",
        StapleStatus.INVALID,
        False,
        lambda ca, leaf, now: ca.ocsp_response(leaf, this_update=now, corrupt_signature=True),
    ),
    StapleCase("stale", "stale (past nextUpdate)", StapleStatus.STALE, False, _stale),
    StapleCase("stale-must-staple", "stale, must-staple cert", StapleStatus.STALE, True, _stale),
    StapleCase("missing", "no staple", StapleStatus.MISSING, False, _no_staple),
    StapleCase(
        "missing-must-staple", "must-staple cert, no staple", StapleStatus.MISSING, True, _no_staple
    ),
)
"""good, revoked, unknown, invalid, stale and missing, with must-staple leaves where the
table distinguishes them: DESIGN.md's policy table, row by row."""
