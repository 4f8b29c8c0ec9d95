#!/usr/bin/env python3
"""Render docs/interop.md from the interop matrix the interop tests record.

Usage::

    python3 -m pytest tests/interop          # writes build/interop-results.jsonl
    python3 scripts/render_interop.py [RESULTS.jsonl] [--output docs/interop.md]

The results are JSON lines of ``tests.interop.matrix.Outcome``. The page has an
introduction (what was tested, each program's version, the date), then one table per
server: a row per staple case and TLS version, a column per client (staplecheck's
three policies, then ``curl --cert-status``), each cell "accepted (good)" or
"REJECTED (revoked)" with ✓ when it is what the policy table says (✗ when not), and
the notes the tests recorded. Whatever subset of servers the results hold is rendered;
the servers the matrix plans for but the results lack get a line saying so.

Everything from the line :data:`HAND_WRITTEN` on in the existing page (responders
tested by their own tests, such as cfssl) is kept, after the rendered part.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.interop.matrix import RESULTS, Outcome, read_all  # noqa: E402

__all__ = ["CLIENTS", "EXPECTED_SERVERS", "main", "program_versions", "render"]

HAND_WRITTEN = "<!-- Hand-written from here on: scripts/render_interop.py keeps it. -->"
"""The line that starts the page's hand-written tail."""

CLIENTS = ("off", "soft-fail", "must-staple", "curl --cert-status")
"""The matrix's columns, in order."""

EXPECTED_SERVERS = (
    "openssl s_server (file)",
    "nginx (file)",
    "HAProxy (file)",
    "lighttpd (file)",
    "gnutls-serv (file)",
    "nginx (responder)",
    "Apache httpd (responder)",
    "Caddy (responder)",
)
"""The servers the interop matrix plans for, in the page's order. Servers in the results
but not here are rendered after these."""

CASE_ORDER = (
    "good",
    "good (no nextUpdate)",
    "revoked",
    "unknown",
    "invalid (forged signature)",
    "invalid (other certificate)",
    "invalid (thisUpdate in the future)",
    "stale",
    "stale (must-staple cert)",
    "missing",
    "missing (must-staple cert)",
)
"""Known staple cases in the order a reader wants them; others follow as they come."""

VERSION_COMMANDS: Mapping[str, Sequence[str]] = {
    "openssl": ("openssl", "version"),
    "nginx": ("nginx", "-v"),
    "Apache httpd": ("apache2", "-v"),
    "HAProxy": ("haproxy", "-v"),
    "lighttpd": ("lighttpd", "-v"),
    "gnutls-serv": ("gnutls-serv", "--version"),
    "Caddy": ("caddy", "version"),
    "curl": ("curl", "--version"),
}
"""Program → the command that prints its version (first line of output is kept)."""


# --- versions ---------------------------------------------------------------------------------


def _which(name: str) -> str | None:
    return shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/sbin/{name}") if os.path.exists(p)), None
    )


def program_versions() -> dict[str, str]:
    """Program → its version line, or "not installed"; plus the Python client stack."""
    versions: dict[str, str] = {}
    for program, (binary, *args) in VERSION_COMMANDS.items():
        path = _which(binary)
        if path is None:
            versions[program] = "not installed"
            continue
        try:
            done = subprocess.run(
                [path, *args], capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            versions[program] = f"unknown ({error})"
            continue
        lines = (done.stdout + done.stderr).strip().splitlines()
        versions[program] = lines[0].strip() if lines else f"unknown (exit {done.returncode})"
    versions["Python client"] = _python_stack()
    return versions


def _python_stack() -> str:
    from importlib import metadata

    parts = [f"Python {sys.version.split()[0]}"]
    for package in ("staplecheck", "pyOpenSSL", "cryptography", "urllib3", "requests"):
        try:
            parts.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{package} (not installed)")
    try:
        from OpenSSL import SSL

        parts.append(SSL.SSLeay_version(SSL.SSLEAY_VERSION).decode())
    except Exception:  # noqa: BLE001 - a version string is not worth failing over
        pass
    return ", ".join(parts)


# --- the page ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Row:
    case: str
    tls_version: str


def _ordered(values: Iterable[str], known: Sequence[str]) -> list[str]:
    """``values`` without duplicates: those in ``known`` in its order, then the rest as
    they first come."""
    seen = list(dict.fromkeys(values))
    return [v for v in known if v in seen] + [v for v in seen if v not in known]


def _cell(outcome: Outcome | None) -> str:
    if outcome is None:
        return "—"
    verdict = "accepted" if outcome.accepted else "REJECTED"
    status = outcome.status if outcome.status is not None else "not asked"
    text = f"{verdict} ({status})"
    if outcome.expected is None:
        return text
    if outcome.expected == outcome.accepted:
        return f"{text} ✓"
    return f"{text} ✗ (table: {'accept' if outcome.expected else 'reject'})"


def _join(items: Sequence[str]) -> str:
    return ", ".join(items)


def _notes(outcomes: Sequence[Outcome], rows: Sequence[_Row], versions: Sequence[str]) -> list[str]:
    """Every distinct note, once, with the rows and clients it was recorded for:
    ``- *stale*, *unknown* [all clients]: the note``."""
    where: dict[str, dict[str, dict[str, set[str]]]] = {}
    for outcome in outcomes:
        if outcome.note:
            by_case = where.setdefault(outcome.note, {})
            by_version = by_case.setdefault(outcome.case, {})
            by_version.setdefault(outcome.tls_version, set()).add(outcome.client)
    order = {(row.case, row.tls_version): i for i, row in enumerate(rows)}

    def key(item: tuple[str, dict[str, dict[str, set[str]]]]) -> tuple[bool, int]:
        """Notes about the server first, then curl's words; each in row order."""
        places = [(c, v, who) for c, vs in item[1].items() for v, who in vs.items()]
        curl_only = all(who == {CLIENTS[-1]} for _, _, who in places)
        return curl_only, min(order.get((c, v), len(order)) for c, v, _ in places)

    lines = []
    for note, by_case in sorted(where.items(), key=key):
        groups: dict[str, list[str]] = {}  # clients → the rows recorded by them
        for case, by_version in by_case.items():
            clients = _ordered(set().union(*by_version.values()), CLIENTS)
            tls = _ordered(by_version, versions)
            label = f"*{case}*" if tls == list(versions) else f"*{case}* (TLS {_join(tls)})"
            who = _clients_label(clients)
            groups.setdefault(who, []).append(label)
        places = "; ".join(f"{_join(labels)} [{who}]" for who, labels in groups.items())
        lines.append(f"- {places}: {note}")
    return lines


def _clients_label(clients: Sequence[str]) -> str:
    if list(clients) == list(CLIENTS):
        return "all clients"
    if list(clients) == list(CLIENTS[:3]):
        return "staplecheck"
    return _join(clients)


def _disagreements(
    cells: Mapping[tuple[str, str, str], Outcome], policy: str, versions: Sequence[str]
) -> list[str]:
    """The cases where curl's verdict differs from ``policy``'s, e.g. ``*stale* (curl
    rejects)``, with the TLS versions when not all of them."""
    found: dict[tuple[str, str], list[str]] = {}  # (case, curl's verdict) → versions
    for (case, version, client), outcome in cells.items():
        curl = cells.get((case, version, CLIENTS[-1]))
        if client == policy and curl is not None and curl.accepted != outcome.accepted:
            verdict = "accepts" if curl.accepted else "rejects"
            found.setdefault((case, verdict), []).append(version)
    return [
        f"*{case}* (curl {verdict})"
        if sorted(tls) == sorted(versions)
        else f"*{case}* (TLS {_join(sorted(tls))}: curl {verdict})"
        for (case, verdict), tls in found.items()
    ]


def _server_section(name: str, outcomes: Sequence[Outcome]) -> list[str]:
    versions = _ordered((o.tls_version for o in outcomes), ("1.2", "1.3"))
    cases = _ordered((o.case for o in outcomes), CASE_ORDER)
    clients = _ordered((o.client for o in outcomes), CLIENTS)
    cells: dict[tuple[str, str, str], Outcome] = {}
    for outcome in outcomes:  # a later record of the same cell replaces an earlier one
        cells[outcome.case, outcome.tls_version, outcome.client] = outcome
    rows = [
        _Row(case, version)
        for case in cases
        for version in versions
        if any((case, version, client) in cells for client in clients)
    ]
    mismatches = sum(
        1 for o in cells.values() if o.expected is not None and o.expected != o.accepted
    )
    lines = [f"## {name}", ""]
    summary = f"{len(cells)} outcomes"
    summary += f", **{mismatches} not as the policy table says** (✗)." if mismatches else "."
    lines += [summary, ""]
    lines.append("| staple | TLS | " + " | ".join(clients) + " |")
    lines.append("| --- | --- | " + " | ".join("---" for _ in clients) + " |")
    for row in rows:
        values = [_cell(cells.get((row.case, row.tls_version, c))) for c in clients]
        lines.append(f"| {row.case} | {row.tls_version} | " + " | ".join(values) + " |")
    if any(client == CLIENTS[-1] for _, _, client in cells):
        lines.append("")
        for policy in ("soft-fail", "must-staple"):
            differ = _disagreements(cells, policy, versions)
            lines.append(
                f"curl --cert-status and {policy} disagree on: {_join(differ)}."
                if differ
                else f"curl --cert-status and {policy} agree on every row."
            )
    notes = _notes(list(cells.values()), rows, versions)
    if notes:
        lines += ["", "Notes:", "", *notes]
    return [*lines, ""]


def render(
    outcomes: Sequence[Outcome],
    *,
    versions: Mapping[str, str] | None = None,
    date: datetime.date | None = None,
) -> str:
    """The Markdown page for ``outcomes``."""
    versions = program_versions() if versions is None else versions
    date = date or datetime.datetime.now(datetime.timezone.utc).date()
    present = {o.server for o in outcomes}
    servers = _ordered([*EXPECTED_SERVERS, *(o.server for o in outcomes)], EXPECTED_SERVERS)
    lines = [
        "# Interop matrix",
        "",
        "<!-- Generated by scripts/render_interop.py from the results the interop tests",
        "     record (tests/interop/matrix.py); do not edit by hand. -->",
        "",
        "How staplecheck's three policies and `curl --cert-status` fare against real",
        "servers that staple OCSP responses. Each server ran on 127.0.0.1 with a fresh",
        "test PKI (root, intermediate, leaf for `localhost`; a must-staple leaf where the",
        "case says so), once per staple case and TLS version, and every client connected",
        "to it once. staplecheck ran through `requests` with `StapleAdapter(policy)` and",
        "the test root as `verify=`; curl as `curl --cert-status --cacert root.pem`.",
        "",
        "A cell is the client's verdict and, in brackets, the staple status it saw",
        '("not asked" under policy `off`, which does not request a staple; for curl, its',
        "complaint in staplecheck's words, with curl's exact message in the notes).",
        "✓ means the verdict is what the [policy table](policies.md) says for the staple",
        "that *arrived*; ✗ that it is not. Some servers do not send the staple they are",
        "given (they check it first): the case names what the server was given, the",
        "status what arrived, and the notes say why. curl has no policy, so it gets no ✓:",
        "it accepts only a good staple and rejects everything else, a missing staple and",
        "a stale one included, whether or not the certificate is must-staple.",
        "",
        f"Generated on {date.isoformat()} from {len(outcomes)} recorded outcomes.",
        "",
        "Versions:",
        "",
        *(f"- {program}: {version}" for program, version in versions.items()),
        "",
    ]
    by_server: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        by_server.setdefault(outcome.server, []).append(outcome)
    for server in servers:
        if server in present:
            lines += _server_section(server, by_server[server])
        else:
            lines += [f"## {server}", "", "Not run: no results were recorded for it.", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def _hand_written(path: Path) -> str:
    """The existing page's hand-written tail, marker line included ("" if none)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""
    start = text.find(HAND_WRITTEN + "\n")
    return "" if start < 0 else text[start:]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", type=Path, default=RESULTS)
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "interop.md")
    args = parser.parse_args(argv)
    outcomes = read_all(args.results)
    if not outcomes:
        print(f"render_interop: no results in {args.results}", file=sys.stderr)
        return 1
    args.output.parent.mkdir(parents=True, exist_ok=True)
    page = render(outcomes)
    tail = _hand_written(args.output)
    if tail:
        page += "\n" + tail
    args.output.write_text(page, encoding="utf-8")
    print(f"render_interop: {len(outcomes)} outcomes → {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
