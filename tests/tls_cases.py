"""The policy table's rows for tests against real servers, checked against DESIGN.md.

The rows themselves are :data:`staplecheck.testing.POLICY_CASES` (the demo serves the
same ones). Servers' certificates are checked by OpenSSL against the real clock, so
PKIs for these tests are anchored at the real current time and staples judged then.
"""

from __future__ import annotations

from staplecheck.testing import POLICY_CASES, StapleCase

__all__ = ["MODES", "POLICY_TABLE", "TLS_VERSIONS", "StapleCase"]

POLICY_TABLE = POLICY_CASES
MODES = ("off", "soft-fail", "must-staple")
TLS_VERSIONS = ("1.2", "1.3")

# The expectations the cases compute must be DESIGN.md's table, written out literally.
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
assert [case.name for case in POLICY_TABLE] == list(_TABLE)
for _case in POLICY_TABLE:
    _row = "".join("A" if _case.expected_accept(m) else "R" for m in MODES)
    assert _row == _TABLE[_case.name], (_case.name, _row)
