"""``staplecheck demo``: every interesting staple, every policy, real handshakes, offline.

It builds a throwaway PKI with :mod:`staplecheck.testing`, starts one stapling TLS
server per case on 127.0.0.1, connects to each through requests and
:class:`StapleAdapter` under the three policies, prints what happened next to what the
policy table says should happen, and stops every server.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import sys
import tempfile
import time
from typing import TYPE_CHECKING, TextIO

from .._errors import find_staple_error
from .._policy import Mode, Policy
from ..testing import CA, POLICY_CASES, StapleCase, StaplingServer
from ..validation._result import StapleStatus

if TYPE_CHECKING:
    import requests

__all__ = ["run_demo"]

_POLICIES = (Mode.OFF, Mode.SOFT_FAIL, Mode.MUST_STAPLE)
POLICY_TABLE_URL = "https://github.com/staplecheck/staplecheck/blob/main/docs/policies.md"


@dataclasses.dataclass(frozen=True)
class _Outcome:
    accepted: bool
    status: StapleStatus | None
    expected: bool

    @property
    def as_expected(self) -> bool:
        return self.accepted == self.expected


def run_demo(out: TextIO | None = None, *, color: bool | None = None) -> int:
    """Run the demo; print the table to ``out``; 0 when every outcome matched."""
    out = out or sys.stdout
    color = _use_color(out) if color is None else color
    try:
        import requests

        from ..clients._requests import StapleAdapter
    except ImportError:
        print(
            "staplecheck: error: the demo needs requests: pip install 'staplecheck[requests]'",
            file=sys.stderr,
        )
        return 2
    started = time.monotonic()
    now = datetime.datetime.now(datetime.timezone.utc)
    root = CA(now=now, name="staplecheck demo root")
    issuer = root.create_intermediate(name="staplecheck demo intermediate")
    plain = issuer.issue_cert("localhost", "127.0.0.1")
    strict = issuer.issue_cert("localhost", "127.0.0.1", must_staple=True)
    rows: list[tuple[StapleCase, list[_Outcome]]] = []
    with tempfile.TemporaryDirectory(prefix="staplecheck-demo-") as workdir:
        cafile = root.write_trust(os.path.join(workdir, "ca.pem"))
        sessions = {}
        for mode in _POLICIES:
            session = requests.Session()
            session.mount("https://", StapleAdapter(mode.value))
            sessions[mode] = session
        for case in POLICY_CASES:
            leaf = strict if case.must_staple else plain
            outcomes = []
            with StaplingServer(leaf, case.staple(issuer, leaf, now)) as server:
                for mode in _POLICIES:
                    policy = Policy(mode=mode)
                    outcomes.append(_connect(sessions[mode], server.url, cafile, policy, case))
            rows.append((case, outcomes))
        for session in sessions.values():
            session.close()
    _print_table(out, rows, color)
    matched = all(o.as_expected for _, outcomes in rows for o in outcomes)
    elapsed = time.monotonic() - started
    verdict = (
        "every outcome matches the policy table"
        if matched
        else "SOME OUTCOMES DO NOT MATCH THE POLICY TABLE"
    )
    print(f"\n{len(rows) * len(_POLICIES)} connections in {elapsed:.1f} s: {verdict}.", file=out)
    # An installed user has no docs/ directory: point to the published page.
    print(f"The policy table: {POLICY_TABLE_URL}. Servers stopped.", file=out)
    return 0 if matched else 1


def _connect(
    session: requests.Session, url: str, cafile: str, policy: Policy, case: StapleCase
) -> _Outcome:
    import requests

    expected = case.expected_accept(policy.mode)
    try:
        response = session.get(url, verify=cafile, timeout=10)
    except requests.exceptions.SSLError as error:
        found = find_staple_error(error)
        status = found.result.status if found is not None else None
        return _Outcome(accepted=False, status=status, expected=expected)
    staple = getattr(response, "staple", None)
    return _Outcome(
        accepted=True, status=staple.status if staple is not None else None, expected=expected
    )


def _print_table(out: TextIO, rows: list[tuple[StapleCase, list[_Outcome]]], color: bool) -> None:
    width = max(len(case.label) for case, _ in rows) + 2
    header = "staple".ljust(width) + "".join(m.value.ljust(24) for m in _POLICIES)
    print(_paint(header, "1", color), file=out)
    print("-" * len(header), file=out)
    for case, outcomes in rows:
        cells = []
        for outcome in outcomes:
            word = "accepted" if outcome.accepted else "REJECTED"
            status = outcome.status.value if outcome.status is not None else "not asked"
            mark = (
                ""
                if outcome.as_expected
                else " ✗ expected " + ("accept" if outcome.expected else "reject")
            )
            text = f"{word} ({status}){mark}"
            code = "32" if outcome.accepted else "31"
            if not outcome.as_expected:
                code = "1;33"
            cells.append(_paint(text.ljust(24), code, color))
        print(case.label.ljust(width) + "".join(cells), file=out)


def _paint(text: str, code: str, color: bool) -> str:
    return f"\033[{code}m{text}\033[0m" if color else text


def _use_color(out: TextIO) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    return bool(getattr(out, "isatty", lambda: False)())
