"""``staplecheck scan``: ``check`` over a fleet of servers, concurrently.

Each target is checked by :func:`~._check.check_url`, the very function ``check``
runs, on one shared client context and one shared
:class:`~staplecheck.revocation.RevocationChecker` (single-flight, one cache): scan and
check agree on every host by construction. On top of ``check``'s verdict a target's
record carries what an operator asks of a fleet: the certificate's expiry and URLs, the
live responder's answer and latency, whether it agrees with the staple, and warnings
for what expires within ``--warn-days``.

Everything a target name, a server, a certificate or a responder supplies is hostile:
every output format escapes it (terminal control characters in the table, formula
prefixes in CSV, label escaping in the Prometheus format; JSON is ASCII-escaped).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import datetime
import functools
import io
import ipaddress
import json
import os
import queue
import re
import sys
import tempfile
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TextIO

from cryptography import x509
from OpenSSL import SSL

from .._cache import LRUCache
from .._policy import Mode, Policy
from ..revocation import RevocationChecker, RevocationResult
from ..revocation._plan import _aia_ocsp_urls, _distribution_points
from ..tls._alabel import a_label
from ..validation._result import StapleResult, StapleStatus
from ._check import CheckError, CheckReport, check_context, check_url, parse_https_url
from ._html import render_report

__all__ = [
    "DEFAULT_JOBS",
    "DEFAULT_WARN_DAYS",
    "INTERRUPT_GRACE",
    "ScanSettings",
    "ScanUsageError",
    "add_scan_arguments",
    "parse_target",
    "run_scan",
    "scan_target",
]

DEFAULT_JOBS = 16
"""Targets checked at once by default: enough to hide network latency, few enough
for a laptop and for the servers being scanned."""
MAX_JOBS = 256
DEFAULT_WARN_DAYS = 7.0
MAX_TARGETS = 100_000
"""More targets than this is a usage error (the records are kept in memory)."""
MAX_TARGET_CHARS = 2048
MAX_SKIPPED_CHARS = 1 << 20
"""Longest line a target list may have (its targets are at most MAX_TARGET_CHARS:
the rest of a longer line is skipped, and past this the list is refused)."""
MAX_LISTED_URLS = 8
"""OCSP and CRL URLs listed per certificate (a certificate may name thousands)."""
MAX_TEXT_CHARS = 300
"""Longest certificate name or URL kept in a record; longer ones are cut, with ``...``."""
INTERRUPT_GRACE = 2.0
"""Seconds the targets still running when Ctrl-C arrives get to finish; the rest is
abandoned (reported as not finished)."""

EXIT_OK = 0
EXIT_VERDICT = 1
EXIT_USAGE = 2
EXIT_CONNECTION = 3
EXIT_INTERRUPTED = 130

OUTCOMES = ("ok", "warning", "refused", "unreachable", "error")
_ANSWERS = (StapleStatus.GOOD, StapleStatus.REVOKED, StapleStatus.UNKNOWN)

Clock = Callable[[], datetime.datetime]


class ScanUsageError(Exception):
    """Bad scan options or an unreadable target list: exit 2."""


# --- options ------------------------------------------------------------------------------


def _parse_jobs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_JOBS:
        raise argparse.ArgumentTypeError(f"not a number of jobs from 1 to {MAX_JOBS}: {text!r}")
    return value


def _parse_warn_days(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 36500:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"not a number of days from 0 to 36500: {text!r}")
    return value


def add_scan_arguments(parser: argparse.ArgumentParser) -> None:
    """``scan``'s own options (the trust, policy, time and fallback options are
    ``check``'s, added by the caller)."""
    parser.add_argument(
        "targets",
        nargs="*",
        metavar="TARGET",
        help="host, host:port, [v6addr]:port or https://host[:port]/ (port 443 by default)",
    )
    parser.add_argument(
        "--from",
        dest="from_file",
        metavar="FILE",
        help="read targets from FILE, one a line ('-': standard input); blank lines and "
        "lines starting with # are ignored",
    )
    parser.add_argument(
        "--capath", metavar="DIR", help="trust the CAs in this OpenSSL hashed directory"
    )
    parser.add_argument(
        "--jobs",
        type=_parse_jobs,
        default=DEFAULT_JOBS,
        metavar="N",
        help=f"targets checked at once (default {DEFAULT_JOBS})",
    )
    parser.add_argument(
        "--warn-days",
        type=_parse_warn_days,
        default=DEFAULT_WARN_DAYS,
        metavar="N",
        help="warn when a staple or certificate expires within N days (default 7)",
    )
    parser.add_argument(
        "--no-responder",
        action="store_true",
        help="do not ask the certificate's OCSP responder live (by default it is asked "
        "whenever the certificate names one, or --ocsp-url designates one)",
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print JSON lines, one per target")
    output.add_argument("--csv", action="store_true", help="print CSV with a header row")
    parser.add_argument(
        "--prometheus",
        metavar="FILE",
        help="also write the results in the Prometheus text format to FILE, atomically "
        "(for node_exporter's textfile collector)",
    )
    parser.add_argument(
        "--html",
        metavar="FILE",
        help="also write a self-contained HTML report to FILE, atomically (a summary, a "
        "sortable table and a timeline per host; no network needed to view it)",
    )


# --- targets ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Target:
    """One parsed target: the text as given, where to connect, and ``check``'s URL."""

    text: str
    host: str
    port: int
    url: str


_BRACKETED = re.compile(r"\[([^\[\]]*)\](?::([0-9]{1,5}))?")
_NAME = re.compile(r"[A-Za-z0-9._-]+")


def parse_target(text: str) -> Target:
    """``host``, ``host:port``, ``[v6]:port`` (or a bare IPv6 address) or an
    ``https://`` URL; ``ValueError`` with a readable message otherwise."""
    if len(text) > MAX_TARGET_CHARS:
        raise ValueError(f"a target over {MAX_TARGET_CHARS} characters")
    if not text.isprintable() or any(c.isspace() for c in text):
        raise ValueError("a target with spaces or control characters")
    if "://" in text:
        host, port = parse_https_url(text)
        return Target(text, host, port, text)
    if text.startswith("["):
        match = _BRACKETED.fullmatch(text)
        if not match:
            raise ValueError("not [IPv6 address] or [IPv6 address]:port")
        host = _ipv6(match.group(1))
        port = _port(match.group(2))
    elif text.count(":") > 1:
        host, port = _ipv6(text), 443
    else:
        name, colon, port_text = text.partition(":")
        port = _port(port_text if colon else None)
        if not name:
            raise ValueError("no host name")
        host = a_label(name)
        if not _NAME.fullmatch(host) or host.startswith((".", "-")) or ".." in host:
            raise ValueError(f"not a host name: {name!r}")
    shown = f"[{host}]" if ":" in host else host
    return Target(text, host, port, f"https://{shown}:{port}/")


def _ipv6(text: str) -> str:
    try:
        return str(ipaddress.IPv6Address(text))
    except ValueError:
        raise ValueError(f"not an IPv6 address: {text!r}") from None


def _port(text: str | None) -> int:
    if text is None:
        return 443
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"not a port from 1 to 65535: {text!r}")
    return int(text)


def read_targets(arguments: Sequence[str], from_file: str | None, stdin: TextIO) -> list[str]:
    """The target lines, in order: the arguments, then the file's (or standard
    input's) lines; blank lines and ``#`` comments left out."""
    lines = list(arguments)
    if from_file is not None:
        if from_file == "-":
            lines.extend(_bounded_lines(stdin, "standard input"))
        else:
            try:
                with open(from_file, encoding="utf-8", errors="replace") as f:
                    lines.extend(_bounded_lines(f, from_file))
            except OSError as error:
                raise ScanUsageError(
                    f"cannot read targets from {from_file}: {error.strerror or error}"
                ) from None
    targets = []
    for line in lines:
        text = line.strip()
        if text and not text.startswith("#"):
            targets.append(text)
    if len(targets) > MAX_TARGETS:
        raise ScanUsageError(f"more than {MAX_TARGETS} targets")
    return targets


def _bounded_lines(stream: TextIO, name: str) -> Iterable[str]:
    count = 0
    while True:
        # A line longer than this is kept cut (and then refused as too long).
        line = stream.readline(MAX_TARGET_CHARS + 2)
        if not line:
            return
        if not line.endswith("\n"):
            # The rest of an overlong line is skipped, up to a bound: a line that
            # never ends (/dev/zero) is refused, not read forever.
            skipped = 0
            rest = stream.readline(1 << 16)
            while rest and not rest.endswith("\n"):
                skipped += len(rest)
                if skipped > MAX_SKIPPED_CHARS:
                    raise ScanUsageError(
                        f"{name}: a line over {MAX_SKIPPED_CHARS} characters (not a target list)"
                    )
                rest = stream.readline(1 << 16)
        count += 1
        if count > MAX_TARGETS * 2:
            raise ScanUsageError(f"{name}: more than {MAX_TARGETS * 2} lines")
        yield line


# --- one target ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ScanSettings:
    """What every target is checked with."""

    policy: Policy
    context: SSL.Context
    checker: RevocationChecker
    timeout: float = 10.0
    leaf_responders: tuple[str, ...] = ()
    ask_responder: bool = True
    warn_days: float = DEFAULT_WARN_DAYS
    clock: Clock = lambda: datetime.datetime.now(datetime.timezone.utc)
    answers: LRUCache[dict[str, Any]] = dataclasses.field(
        default_factory=lambda: LRUCache(4096), compare=False, repr=False
    )
    """The responder's answers in this run, by certificate, issuer and policy."""


def scan_target(text: str, settings: ScanSettings) -> dict[str, Any]:
    """The record of one target (docs/cli.md lists its fields). Never raises for what
    the target, the server or a responder did."""
    try:
        target = parse_target(text)
    except ValueError as error:
        return _error_record(text, None, None, "error", f"malformed target: {error}")
    try:
        report = check_url(
            target.url,
            policy=settings.policy,
            timeout=settings.timeout,
            checker=settings.checker if settings.policy.needs_revocation_check else None,
            leaf_responders=settings.leaf_responders,
            context=settings.context,
        )
    except CheckError as error:
        outcome = "unreachable" if error.unreachable else "error"
        return _error_record(text, target.host, target.port, outcome, str(error))
    except ValueError as error:
        return _error_record(text, target.host, target.port, "error", f"malformed target: {error}")
    except Exception as error:  # noqa: BLE001 - fail closed with a record, never a traceback
        return _error_record(
            text, target.host, target.port, "error", f"internal error: {type(error).__name__}"
        )
    return _record(text, report, settings)


def _error_record(
    text: str, host: str | None, port: int | None, outcome: str, error: str
) -> dict[str, Any]:
    return {
        "target": text,
        "host": host,
        "port": port,
        "outcome": outcome,
        "error": error,
        "tls_version": None,
        "must_staple": None,
        "staple": None,
        "ocsp_urls": [],
        "crl_urls": [],
        "responder": None,
        "agree": None,
        "revocation": None,
        "certificate": None,
        "no_revocation_source": False,
        "warnings": [],
    }


def _record(text: str, report: CheckReport, settings: ScanSettings) -> dict[str, Any]:
    now = settings.clock()
    staple = report.staple
    facts = _certificate_facts(report)
    ocsp_urls = list(facts.ocsp_urls)
    crl_urls = list(facts.crl_urls)
    staple_present = staple.status is not StapleStatus.MISSING
    responder = None
    if settings.ask_responder and (ocsp_urls or settings.leaf_responders):
        responder = _ask_responder(report, settings)
    agree = None
    if (
        responder is not None
        and staple.status in _ANSWERS
        and responder["status"] in {s.value for s in _ANSWERS}
    ):
        agree = staple.status.value == responder["status"]
    revocation = _verdict(report)
    warn_within = datetime.timedelta(days=settings.warn_days)
    warnings: list[str] = []
    if staple.next_update is not None and staple_present:
        left = staple.next_update - now
        if left <= _staple_warning(staple, warn_within):
            warnings.append(f"the staple expires soon ({_words(left)})")
    if staple_present and staple.status is not StapleStatus.GOOD and report.accepted:
        warnings.append(f"the staple is {staple.status.value}: {_cut(staple.reason)}")
    if report.must_staple and staple.status is not StapleStatus.GOOD:
        warnings.append("the certificate demands a staple (must-staple) and has no good one")
    if agree is False and responder is not None:
        warnings.append(
            f"the staple says {staple.status.value} and the responder says {responder['status']}"
        )
    if responder is not None and responder["status"] == "revoked" and report.accepted:
        warnings.append("the responder says the certificate is revoked")
    certificate = None
    if facts.not_after is not None:
        left = facts.not_after - now
        certificate = {
            "subject": facts.subject,
            "issuer": facts.issuer,
            "not_before": _iso(facts.not_before),
            "not_after": _iso(facts.not_after),
            "seconds_left": _seconds(left),
        }
        if left <= warn_within:
            warnings.append(
                f"the certificate expires within {settings.warn_days:g} days ({_words(left)})"
            )
    if not report.accepted:
        outcome = "refused"
    elif warnings:
        outcome = "warning"
    else:
        outcome = "ok"
    return {
        "target": text,
        "host": report.host,
        "port": report.port,
        "outcome": outcome,
        "error": None,
        "tls_version": report.tls_version,
        "must_staple": report.must_staple,
        "staple": {
            "status": staple.status.value,
            "reason": _cut(staple.reason),
            "this_update": _iso(staple.this_update),
            "next_update": _iso(staple.next_update),
            "seconds_left": (
                _seconds(staple.next_update - now)
                if staple.next_update is not None and staple_present
                else None
            ),
        },
        "ocsp_urls": ocsp_urls,
        "crl_urls": crl_urls,
        "responder": responder,
        "agree": agree,
        "revocation": revocation,
        "certificate": certificate,
        "no_revocation_source": not staple_present and not ocsp_urls and not crl_urls,
        "warnings": warnings,
    }


@dataclasses.dataclass(frozen=True)
class _Facts:
    subject: str | None = None
    issuer: str | None = None
    not_before: datetime.datetime | None = None
    not_after: datetime.datetime | None = None
    ocsp_urls: tuple[str, ...] = ()
    crl_urls: tuple[str, ...] = ()


_FACTS: LRUCache[_Facts] = LRUCache(1024)


def _certificate_facts(report: CheckReport) -> _Facts:
    """What the record says of the server's certificate, read once per certificate
    (by its complete DER): a fleet often shares one."""
    cert = report.certificate
    if cert is None or not report.chain:
        return _Facts()
    facts = _FACTS.get(report.chain[0])
    if facts is None:
        facts = _Facts(
            subject=_cut(_name(cert, "subject")),
            issuer=_cut(_name(cert, "issuer")),
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            ocsp_urls=tuple(_listed(_aia_ocsp_urls(cert) or [])),
            crl_urls=tuple(_listed(_distribution_points(cert) or [])),
        )
        _FACTS.put(report.chain[0], facts)
    return facts


def _staple_warning(staple: StapleResult, warn_within: datetime.timedelta) -> datetime.timedelta:
    """How close to its nextUpdate a staple warns: ``--warn-days``, but never before
    half its validity has passed. Staples live days (often under a week), and servers
    fetch the next one at about half-life: one past its half-life that is this close
    to its end was not refreshed."""
    if staple.this_update is None or staple.next_update is None:
        return warn_within
    return min(warn_within, (staple.next_update - staple.this_update) / 2)


def _verdict(report: CheckReport) -> dict[str, Any]:
    """The policy's verdict: the engine's when the policy has a fallback, the staple's
    otherwise (exactly what ``check`` decides on)."""
    if report.revocation is not None:
        result = report.revocation
        return {
            "status": result.status.value,
            "source": result.source,
            "accepted": report.accepted,
            "reason": _cut(result.reason),
        }
    staple = report.staple
    return {
        "status": staple.status.value,
        "source": None if staple.status is StapleStatus.MISSING else "staple",
        "accepted": report.accepted,
        "reason": _cut(staple.reason),
    }


_NO_STAPLE = StapleResult(
    status=StapleStatus.MISSING, reason="not the staple: the responder is asked directly"
)


def _ask_responder(report: CheckReport, settings: ScanSettings) -> dict[str, Any]:
    """The live OCSP answer for the server's certificate: the revocation engine asked
    with the OCSP source alone (the check's own trust, time rules and responders),
    as if there were no staple.

    A certificate served by several targets is asked about once per run (the engine's
    single-flight joins concurrent askers): every such target reports that answer, its
    URL and its latency, which belong to the certificate's responder, not to the
    target. A failure is not kept: the next target asks again (the engine's failure
    marks decide whether the responder is tried)."""
    policy = _responder_policy(report.policy)
    key = (report.chain[0], report.chain[1] if len(report.chain) > 1 else b"", policy)
    known = settings.answers.get(key)
    if known is not None:
        return known
    started = time.monotonic()
    result = settings.checker.check(
        report.chain, policy, _NO_STAPLE, timeout=settings.timeout, host=report.host
    )
    elapsed = (time.monotonic() - started) * 1000.0
    fields = _responder_fields(result, elapsed)
    if fields["status"] != "failed":
        settings.answers.put(key, fields)
    return fields


@functools.lru_cache(maxsize=16)
def _responder_policy(policy: Policy) -> Policy:
    return dataclasses.replace(policy, mode=Mode.SOFT_FAIL, fallback=("ocsp",), check_chain=False)


def _responder_fields(result: RevocationResult, elapsed: float) -> dict[str, Any]:
    answered = result.source is not None and result.status in _ANSWERS
    url = None
    milliseconds = elapsed
    for attempt in result.attempts:
        if attempt.source == "ocsp" and attempt.url:
            url = url or attempt.url
            if attempt.outcome == result.status.value:
                url, milliseconds = attempt.url, attempt.milliseconds
                break
    return {
        "status": result.status.value if answered else "failed",
        "reason": _cut(result.reason),
        "url": None if url is None else _cut(url),
        "milliseconds": round(milliseconds, 1),
        "source": result.source if answered else None,
    }


# --- small conversions --------------------------------------------------------------------


def _iso(moment: datetime.datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _seconds(delta: datetime.timedelta) -> int:
    return int(delta.total_seconds() // 1)


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TEXT_CHARS else text[: MAX_TEXT_CHARS - 3] + "..."


def _listed(urls: Sequence[str]) -> list[str]:
    return [_cut(url) for url in list(dict.fromkeys(urls))[:MAX_LISTED_URLS]]


def _name(cert: x509.Certificate, which: str) -> str:
    try:
        name: x509.Name = getattr(cert, which)
        return name.rfc4514_string()
    except ValueError:
        return "(unreadable name)"


def _words(delta: datetime.timedelta) -> str:
    """``3d 4h left``, ``5h 2m left`` or ``expired 2d 1h ago``."""
    seconds = int(delta.total_seconds())
    span = _span(abs(seconds))
    return f"{span} left" if seconds >= 0 else f"expired {span} ago"


def _span(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m"


# --- many targets -------------------------------------------------------------------------


_NOT_CHECKED = "not checked: the scan was interrupted"
_ABANDONED = "abandoned: the scan was interrupted while this target was checked"


@dataclasses.dataclass
class ScanResult:
    records: list[dict[str, Any]]
    partial: bool
    seconds: float


def scan_all(
    targets: Sequence[str],
    settings: ScanSettings,
    *,
    jobs: int = DEFAULT_JOBS,
    progress: Callable[[int, int], None] | None = None,
    grace: float = INTERRUPT_GRACE,
) -> ScanResult:
    """Check every target with ``jobs`` workers; the records in the targets' order.

    Ctrl-C (``KeyboardInterrupt`` in the calling thread) stops new targets from
    starting, gives the running ones ``grace`` seconds, and returns a partial result:
    the targets not finished get a record that says so. The workers are daemon
    threads, so an abandoned one holds up nothing."""
    started = time.monotonic()
    records: list[dict[str, Any] | None] = [None] * len(targets)
    running: set[int] = set()
    work: queue.SimpleQueue[int] = queue.SimpleQueue()
    for index in range(len(targets)):
        work.put(index)
    stop = threading.Event()
    changed = threading.Condition()
    done = 0

    def worker() -> None:
        nonlocal done
        while not stop.is_set():
            try:
                index = work.get_nowait()
            except queue.Empty:
                return
            with changed:
                running.add(index)
            record = scan_target(targets[index], settings)
            with changed:
                running.discard(index)
                if records[index] is None:
                    records[index] = record
                    done += 1
                changed.notify_all()

    partial = False
    shown = -1
    try:
        # Started inside the try: Ctrl-C while 256 workers start is a partial report too.
        for n in range(min(jobs, len(targets))):
            name = f"staplecheck-scan-{n}"
            threading.Thread(target=worker, name=name, daemon=True).start()
        with changed:
            while done < len(targets):
                if progress is not None and done != shown:
                    progress(done, len(targets))
                    shown = done
                changed.wait(0.25)
    except KeyboardInterrupt:
        partial = True
        stop.set()
        limit = time.monotonic() + grace
        try:
            with changed:
                while running and time.monotonic() < limit:
                    changed.wait(min(0.1, max(limit - time.monotonic(), 0.0)))
        except KeyboardInterrupt:
            pass  # a second Ctrl-C: abandon them now
    if progress is not None:
        progress(done, len(targets))
    with changed:
        final: list[dict[str, Any]] = []
        for index, text in enumerate(targets):
            record = records[index]
            if record is None:
                why = _ABANDONED if index in running else _NOT_CHECKED
                record = _error_record(text, None, None, "error", why)
                records[index] = record
            final.append(record)
    return ScanResult(final, partial, time.monotonic() - started)


def exit_code(records: Sequence[dict[str, Any]]) -> int:
    """3 when a target could not be checked (unreachable, a TLS failure, a malformed
    target): its state is unknown, which outranks 1, a warning or a refusal under the
    policy; 0 when every target is ok."""
    outcomes = {record["outcome"] for record in records}
    if outcomes & {"unreachable", "error"}:
        return EXIT_CONNECTION
    if outcomes & {"warning", "refused"}:
        return EXIT_VERDICT
    return EXIT_OK


# --- the command --------------------------------------------------------------------------


def run_scan(
    args: argparse.Namespace,
    policy: Policy,
    checker: RevocationChecker,
    *,
    stdin: TextIO | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    clock: Clock | None = None,
) -> int:
    """``staplecheck scan`` with parsed ``args``, the policy ``check`` would use and
    one shared ``checker`` (the caller closes its store)."""
    out = out or sys.stdout
    err = err or sys.stderr
    if args.capath is not None and not os.path.isdir(args.capath):
        raise ScanUsageError(f"--capath {args.capath}: not a directory")
    for option, path in (("--prometheus", args.prometheus), ("--html", args.html)):
        if path is not None and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            raise ScanUsageError(f"{option} {path}: no such directory")
        if path is not None and os.path.isdir(path):
            # Found now, not after scanning the fleet (the rename would fail then).
            raise ScanUsageError(f"{option} {path}: a directory, not a file")
    wrapper = None
    if stdin is None:
        stdin = sys.stdin
        raw = getattr(sys.stdin, "buffer", None)
        if args.from_file == "-" and raw is not None:
            # Undecodable bytes become U+FFFD (and a malformed target), never a traceback.
            wrapper = io.TextIOWrapper(raw, encoding="utf-8", errors="replace")
            stdin = wrapper
    try:
        targets = read_targets(args.targets, args.from_file, stdin)
    finally:
        if wrapper is not None:
            wrapper.detach()  # standard input stays open
    if not targets:
        raise ScanUsageError("no targets: name them as arguments or with --from FILE (or -)")
    try:
        context = check_context(policy, cafile=args.cafile, capath=args.capath)
    except CheckError as error:
        raise ScanUsageError(f"cannot load the trusted CAs: {error}") from None
    settings = ScanSettings(
        policy=policy,
        context=context,
        checker=checker,
        timeout=args.timeout,
        leaf_responders=tuple(args.ocsp_url),
        ask_responder=not args.no_responder,
        warn_days=args.warn_days,
        clock=clock or ScanSettings.clock,
    )
    bar = _ProgressBar(err) if _is_terminal(err) else None
    result = scan_all(targets, settings, jobs=args.jobs, progress=bar)
    if bar is not None:
        bar.clear()
    if args.json:
        write_json_lines(result.records, out)
    elif args.csv:
        write_csv(result.records, out)
    else:
        write_table(result, out)
    now = settings.clock()
    reports: list[tuple[str, Callable[[], str]]] = []
    if args.prometheus is not None:
        reports.append((args.prometheus, lambda: prometheus_text(result, now)))
    if args.html is not None:
        title = "staplecheck scan report" + (" (PARTIAL)" if result.partial else "")
        reports.append(
            (
                args.html,
                lambda: render_report(
                    result.records, now=now, title=title, warn_days=settings.warn_days
                ),
            )
        )
    for path, text in reports:
        try:
            write_atomically(path, text())
        except OSError as error:
            print(f"staplecheck: cannot write {path}: {error.strerror or error}", file=err)
            return EXIT_USAGE
    if result.partial:
        finished = sum(1 for r in result.records if not _unfinished(r))
        print(
            f"staplecheck: interrupted: a partial report, {finished} of {len(targets)} "
            "targets checked",
            file=err,
        )
        return EXIT_INTERRUPTED
    return exit_code(result.records)


def _unfinished(record: dict[str, Any]) -> bool:
    return record["error"] in (_NOT_CHECKED, _ABANDONED)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class _ProgressBar:
    """``[#####.....]  37/200`` on one terminal line, redrawn at most 10 times a second."""

    WIDTH = 30

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self._last < 0.1:
            return
        self._last = now
        filled = self.WIDTH * done // max(total, 1)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        self._stream.write(f"\r[{bar}] {done}/{total} checked")
        self._stream.flush()

    def clear(self) -> None:
        self._stream.write("\r\x1b[K")
        self._stream.flush()


# --- output: JSON lines, CSV, table, Prometheus -------------------------------------------


def write_json_lines(records: Sequence[dict[str, Any]], out: TextIO) -> None:
    for record in records:
        # ASCII only: a name's control characters arrive as \u escapes, never raw.
        out.write(json.dumps(record, ensure_ascii=True) + "\n")


CSV_COLUMNS = (
    "target",
    "host",
    "port",
    "outcome",
    "error",
    "tls_version",
    "must_staple",
    "staple_status",
    "staple_reason",
    "staple_this_update",
    "staple_next_update",
    "staple_seconds_left",
    "ocsp_urls",
    "crl_urls",
    "responder_status",
    "responder_reason",
    "responder_url",
    "responder_milliseconds",
    "responder_source",
    "agree",
    "revocation_status",
    "revocation_source",
    "revocation_accepted",
    "revocation_reason",
    "certificate_subject",
    "certificate_issuer",
    "certificate_not_before",
    "certificate_not_after",
    "certificate_seconds_left",
    "no_revocation_source",
    "warnings",
)


def flatten(record: dict[str, Any]) -> dict[str, Any]:
    """A record as one CSV row: nested fields joined by ``_``, lists by spaces (URLs)
    or ``; `` (warnings)."""
    row: dict[str, Any] = {}
    for key, value in record.items():
        if key in ("staple", "responder", "revocation", "certificate"):
            for name in _NESTED[key]:
                row[f"{key}_{name}"] = None if value is None else value.get(name)
        elif key == "warnings":
            row[key] = "; ".join(value)
        elif isinstance(value, list):
            row[key] = " ".join(value)
        else:
            row[key] = value
    return row


_NESTED = {
    "staple": ("status", "reason", "this_update", "next_update", "seconds_left"),
    "responder": ("status", "reason", "url", "milliseconds", "source"),
    "revocation": ("status", "source", "accepted", "reason"),
    "certificate": ("subject", "issuer", "not_before", "not_after", "seconds_left"),
}


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    text = _printable(str(value))
    # A spreadsheet runs a cell that starts with one of these as a formula.
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


def write_csv(records: Sequence[dict[str, Any]], out: TextIO) -> None:
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for record in records:
        row = flatten(record)
        writer.writerow([_csv_cell(row.get(column)) for column in CSV_COLUMNS])


def _printable(text: str) -> str:
    """``text`` with every control, format (bidirectional overrides...) and other
    non-printing character shown as a ``\\x``/``\\u`` escape: safe on a terminal."""
    if text.isprintable() and not any(unicodedata.category(c) == "Cf" for c in text):
        return text
    out = []
    for char in text:
        if char.isprintable() and unicodedata.category(char) != "Cf":
            out.append(char)
        else:
            out.append(repr(char)[1:-1] if ord(char) < 0x10000 else f"\\U{ord(char):08x}")
    return "".join(out)


def _left(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    return _span(seconds) if seconds >= 0 else "-" + _span(-seconds)


def write_table(result: ScanResult, out: TextIO) -> None:
    """Aligned columns, one row per target, then the errors and warnings, then a summary."""
    header = (
        "TARGET",
        "OUTCOME",
        "TLS",
        "STAPLE",
        "STAPLE LEFT",
        "RESPONDER",
        "MS",
        "VERDICT",
        "CERT LEFT",
    )
    rows = [header]
    notes: list[str] = []
    for record in result.records:
        target = _printable(_cut_to(record["target"], 60))
        staple = record["staple"] or {}
        responder = record["responder"]
        revocation = record["revocation"]
        certificate = record["certificate"] or {}
        staple_word = staple.get("status", "-")
        if record["no_revocation_source"]:
            staple_word = "none (no revocation source)"
        if revocation is None:
            verdict = "-"
        else:
            accepted = "accepted" if revocation["accepted"] else "REFUSED"
            verdict = f"{revocation['status']}, {accepted}"
        rows.append(
            (
                target,
                record["outcome"],
                (record["tls_version"] or "-").replace("TLSv", ""),
                staple_word,
                _left(staple.get("seconds_left")),
                "-" if responder is None else responder["status"],
                "-" if responder is None else f"{responder['milliseconds']:.0f}",
                verdict,
                _left(certificate.get("seconds_left")),
            )
        )
        if record["error"]:
            notes.append(f"{target}: {_printable(record['error'])}")
        notes.extend(f"{target}: {_printable(warning)}" for warning in record["warnings"])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        out.write(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
        out.write("\n")
    if notes:
        out.write("\n")
        for note in notes:
            out.write(note + "\n")
    counts = {outcome: 0 for outcome in OUTCOMES}
    for record in result.records:
        counts[record["outcome"]] += 1
    summary = ", ".join(f"{n} {outcome}" for outcome, n in counts.items() if n)
    out.write(f"\n{len(result.records)} targets in {result.seconds:.1f} s: {summary}\n")
    if result.partial:
        out.write("PARTIAL REPORT: the scan was interrupted\n")


def _cut_to(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _label(value: str) -> str:
    """A Prometheus label value: backslash, double quote and newline escaped (the text
    format's rules), other control characters replaced."""
    value = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return "".join(
        c if c.isprintable() and unicodedata.category(c) != "Cf" else "\ufffd" for c in value
    )


_METRICS = (
    ("staplecheck_up", "1 when the TLS handshake with the target succeeded, 0 otherwise"),
    ("staplecheck_ok", "1 when the target's outcome is ok (accepted, no warning)"),
    ("staplecheck_accepted", "1 when the policy accepts the connection"),
    ("staplecheck_revoked", "1 when the staple, the responder or the verdict says revoked"),
    ("staplecheck_staple_good", "1 when the server stapled a good OCSP response"),
    ("staplecheck_staple_seconds_left", "seconds until the staple's nextUpdate"),
    ("staplecheck_certificate_seconds_left", "seconds until the certificate's notAfter"),
    ("staplecheck_responder_up", "1 when the certificate's OCSP responder gave an answer"),
    ("staplecheck_responder_seconds", "seconds the OCSP responder took to answer"),
    ("staplecheck_no_revocation_source", "1 when there is no staple and no OCSP or CRL URL"),
    ("staplecheck_warnings", "number of warnings for the target"),
)


def prometheus_text(result: ScanResult, now: datetime.datetime) -> str:
    """The Prometheus text exposition format: HELP and TYPE, then one gauge per target
    (the first record of a target listed twice; malformed and unfinished targets left
    out)."""
    series: dict[str, list[str]] = {name: [] for name, _ in _METRICS}
    seen: set[str] = set()
    for record in result.records:
        # A malformed or unfinished target has no series: its name is no server.
        if record["target"] in seen or record["host"] is None:
            continue
        seen.add(record["target"])
        labels = f'target="{_label(record["target"])}"'
        values = _metric_values(record)
        for name, value in values.items():
            if value is not None:
                series[name].append(f"{name}{{{labels}}} {_number(value)}")
    lines = []
    for name, help_text in _METRICS:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} gauge")
        lines.extend(series[name])
    lines.append("# HELP staplecheck_scan_partial 1 when the scan was interrupted")
    lines.append("# TYPE staplecheck_scan_partial gauge")
    lines.append(f"staplecheck_scan_partial {int(result.partial)}")
    lines.append("# HELP staplecheck_scan_timestamp_seconds when the scan ended (Unix time)")
    lines.append("# TYPE staplecheck_scan_timestamp_seconds gauge")
    lines.append(f"staplecheck_scan_timestamp_seconds {_number(now.timestamp())}")
    lines.append("# HELP staplecheck_scan_duration_seconds how long the scan took")
    lines.append("# TYPE staplecheck_scan_duration_seconds gauge")
    lines.append(f"staplecheck_scan_duration_seconds {_number(result.seconds)}")
    return "\n".join(lines) + "\n"


def _metric_values(record: dict[str, Any]) -> dict[str, float | int | None]:
    staple = record["staple"] or {}
    certificate = record["certificate"] or {}
    responder = record["responder"]
    revocation = record["revocation"]
    up = record["tls_version"] is not None
    revoked = None
    if up:
        revoked = int(
            staple.get("status") == "revoked"
            or (responder is not None and responder["status"] == "revoked")
            or (revocation is not None and revocation["status"] == "revoked")
        )
    return {
        "staplecheck_up": int(up),
        "staplecheck_ok": int(record["outcome"] == "ok"),
        "staplecheck_accepted": None if revocation is None else int(revocation["accepted"]),
        "staplecheck_revoked": revoked,
        "staplecheck_staple_good": None if not up else int(staple.get("status") == "good"),
        "staplecheck_staple_seconds_left": staple.get("seconds_left"),
        "staplecheck_certificate_seconds_left": certificate.get("seconds_left"),
        "staplecheck_responder_up": (
            None if responder is None else int(responder["status"] != "failed")
        ),
        "staplecheck_responder_seconds": (
            None
            if responder is None or responder["status"] == "failed"
            else responder["milliseconds"] / 1000.0
        ),
        "staplecheck_no_revocation_source": None if not up else int(record["no_revocation_source"]),
        "staplecheck_warnings": None if not up else len(record["warnings"]),
    }


def _number(value: float | int) -> str:
    if isinstance(value, int):
        return str(value)
    return repr(round(value, 6))


def write_atomically(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same directory and a
    rename (with the mode a new file gets: 0666 less the umask), so a reader
    (node_exporter's collector, a web server) never sees half a file."""
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(prefix=".staplecheck-", suffix=".tmp", dir=directory)
    try:
        with open(handle, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _umask() -> int:
    """The process's umask (0644 files under the usual 022, 0600 under 077)."""
    mask = os.umask(0o077)
    os.umask(mask)
    return mask
