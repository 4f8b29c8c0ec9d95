"""The rows of DESIGN.md's policy table as staples, for tests against real servers.

Each case says which staple a server sends and what the table expects of it. The
servers' certificates are checked by OpenSSL against the real clock, so the PKI here
is anchored at the real current time; staples are judged at that same moment.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable

from staplecheck import Policy, StapleResult, StapleStatus
from staplecheck.testing import CA, Identity

Maker = Callable[[CA, Identity, datetime.datetime], "bytes | None"]


@dataclasses.dataclass(frozen=True)
class StapleCase:
    """One row of the policy table: the staple a server sends, and its expected status."""

    name: str
    status: StapleStatus
    must_staple: bool
    make: Maker

    def staple(self, issuer: CA, leaf: Identity, now: datetime.datetime) -> bytes | None:
        return self.make(issuer, leaf, now)

    def expected_accept(self, mode: str) -> bool:
        """What DESIGN.md's table says for this row under ``mode``."""
        result = StapleResult(status=self.status, reason="", must_staple=self.must_staple)
        return Policy(mode=mode).accepts(result)  # type: ignore[arg-type]


def _stale(issuer: CA, leaf: Identity, now: datetime.datetime) -> bytes:
    return issuer.ocsp_response(
        leaf,
        this_update=now - datetime.timedelta(days=3),
        next_update=now - datetime.timedelta(days=2),
    )


POLICY_TABLE = (
    StapleCase("good", StapleStatus.GOOD, False, lambda ca, leaf, now: ca.ocsp_response(leaf)),
    StapleCase(
        "revoked",
        StapleStatus.REVOKED,
        False,
        lambda ca, leaf, now: ca.ocsp_response(leaf, "revoked", revocation_reason="keyCompromise"),
    ),
    StapleCase(
        "unknown",
        StapleStatus.UNKNOWN,
        False,
        lambda ca, leaf, now: ca.ocsp_response(leaf, "unknown"),
    ),
    StapleCase(
        "invalid",
        StapleStatus.INVALID,
        False,
        lambda ca, leaf, now: ca.ocsp_response(leaf, corrupt_signature=True),
    ),
    StapleCase("stale", StapleStatus.STALE, False, _stale),
    StapleCase("stale-must-staple", StapleStatus.STALE, True, _stale),
    StapleCase("missing", StapleStatus.MISSING, False, lambda ca, leaf, now: None),
    StapleCase("missing-must-staple", StapleStatus.MISSING, True, lambda ca, leaf, now: None),
)

MODES = ("off", "soft-fail", "must-staple")
TLS_VERSIONS = ("1.2", "1.3")


# Sanity: the expectations above are DESIGN.md's table, written out literally.
_TABLE = {
    "good": "AAA",
    "revoked": "ARR",
    "unknown": "ARR",
    "invalid": "ARR",
    "stale": "AAR",
    "stale-must-staple": "ARR",
    "missing": "AAR",
    "missing-must-staple": "ARR",
}
for _case in POLICY_TABLE:
    _row = "".join("A" if _case.expected_accept(m) else "R" for m in MODES)
    assert _row == _TABLE[_case.name], (_case.name, _row)
