"""The ``staplecheck`` command: argument parsing and output, nothing else.

Exit codes: 0 good (verify) or accepted (check), 1 any other verdict or a rejection
(by the staple or the revocation check beyond it), 2 usage errors, unreadable or
unparsable certificate, CRL and responder files, and a cache that cannot be opened, 3
(``check``) a connection that failed for a reason other than the staple, (``ocsp``,
``crl``) no answer from the source asked (see :mod:`._query`). ``scan``'s codes are in
``_scan`` (docs/cli.md).
"""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import os
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from cryptography import x509

from .. import __version__
from .._policy import DEFAULT_FALLBACK_TIMEOUT, Mode, Policy
from ..revocation import RevocationChecker, RevocationResult
from ..validation import _der
from ..validation._result import StapleResult, StapleStatus
from ..validation._signatures import NotIssuedError, check_issued_by
from ..validation._validate import (
    DEFAULT_CLOCK_SKEW,
    DEFAULT_LIFETIME,
    DEFAULT_MAX_AGE,
    validate_staple,
)
from ._check import CheckError, check_url, parse_https_url
from ._fallback import (
    FallbackUsageError,
    check_combinations,
    check_crl_paths,
    load_trusted_responders,
    open_cache,
    parse_fallback,
    parse_fallback_timeout,
    parse_ocsp_url,
)
from ._scan import ScanUsageError, _printable, add_scan_arguments, run_scan

__all__ = ["main"]

EXIT_OK = 0
EXIT_VERDICT = 1
EXIT_USAGE = 2
EXIT_CONNECTION = 3


class UsageError(Exception):
    """Bad arguments or unreadable input: exit 2 with a one-line message."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
        if not hasattr(args, "run"):
            raise UsageError(
                "choose a command: verify, check, scan, ocsp, crl or demo (see staplecheck --help)"
            )
        code: int = args.run(args)
        sys.stdout.flush()
        return code
    except UsageError as error:
        print(f"staplecheck: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as done:  # --help and --version
        return done.code if isinstance(done.code, int) else EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (``| head``): not an error worth a traceback. Point
        # stdout at /dev/null so the interpreter's final flush stays quiet too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_VERDICT


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="staplecheck",
        description="Check OCSP staples: offline (verify) or on a live server (check).",
    )
    parser.add_argument("--version", action="version", version=f"staplecheck {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser)

    verify = commands.add_parser(
        "verify",
        help="judge a saved OCSP response for a certificate, offline",
        description="Judge a DER (or PEM) OCSP response for LEAF issued by ISSUER.",
    )
    verify.add_argument("staple", metavar="STAPLE", help="OCSP response file (DER or PEM)")
    verify.add_argument("--cert", required=True, metavar="LEAF", help="the certificate (PEM/DER)")
    verify.add_argument(
        "--issuer", required=True, metavar="ISSUER", help="its issuer's certificate (PEM/DER)"
    )
    verify.add_argument(
        "--at", type=_parse_time, metavar="TIME", help="judge as of TIME (ISO 8601; default now)"
    )
    _add_time_options(verify)
    verify.add_argument("--json", action="store_true", help="print one JSON object")
    verify.set_defaults(run=_run_verify)

    check = commands.add_parser(
        "check",
        help="connect to an HTTPS server and report its staple",
        description="Connect to URL, ask for a staple, judge it, and apply the policy.",
    )
    check.add_argument("url", metavar="URL", help="https://host[:port]/")
    _add_connection_options(check)
    _add_time_options(check)
    check.add_argument("--json", action="store_true", help="print one JSON object")
    _add_fallback_options(check)
    check.set_defaults(run=_run_check)

    scan = commands.add_parser(
        "scan",
        help="check many HTTPS servers at once and report their staples",
        description="Check every TARGET as check does, concurrently, and report the "
        "staple, the live OCSP responder's answer, the certificate's expiry and the "
        "policy's verdict for each: a table, JSON lines, CSV or the Prometheus format.",
    )
    add_scan_arguments(scan)
    _add_connection_options(scan)
    _add_time_options(scan)
    _add_fallback_options(scan)
    scan.set_defaults(run=_run_scan)

    demo = commands.add_parser(
        "demo",
        help="run every kind of staple against every policy on local servers",
        description="Start local stapling servers for good, revoked, unknown, forged, "
        "stale and missing staples and connect to each under every policy.",
    )
    demo.add_argument("--no-color", action="store_true", help="plain output")
    demo.set_defaults(run=_run_demo)

    from ._query import add_query_commands  # here: it imports this module

    add_query_commands(commands)
    return parser


def _add_connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cafile", metavar="PEM", help="trust these CAs instead of certifi")
    parser.add_argument(
        "--policy",
        choices=[m.value for m in Mode],
        default=Mode.SOFT_FAIL.value,
        help="the policy that decides acceptance (default soft-fail); the staple is "
        "always asked for and reported; hard-fail needs a definite good from the staple "
        "or a fallback source",
    )
    parser.add_argument(
        "--timeout", type=_parse_timeout, default=10.0, metavar="S", help="seconds (default 10)"
    )


def _add_fallback_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "revocation beyond the staple",
        "asked when the staple is missing or stale (docs/revocation.md); every option "
        "but --trust-responder needs a fallback source: --fallback, or --policy hard-fail "
        "(ocsp,crl by default)",
    )
    group.add_argument(
        "--fallback",
        type=parse_fallback,
        metavar="LIST",
        help="sources to ask, in order: ocsp, crl, ocsp,crl, crl,ocsp or none (default: "
        "none, ocsp,crl under hard-fail)",
    )
    group.add_argument(
        "--ocsp-url",
        type=parse_ocsp_url,
        action="append",
        default=[],
        metavar="URL",
        help="ask this OCSP responder about certificates of the server certificate's "
        "issuer instead of the certificate's AIA URLs (repeatable)",
    )
    group.add_argument(
        "--trust-responder",
        action="append",
        default=[],
        metavar="PEM",
        help="pin these OCSP responder certificates (PEM or DER; repeatable): responses "
        "they sign count for any certificate, staples included",
    )
    group.add_argument(
        "--crl",
        action="append",
        default=[],
        metavar="FILE|DIR",
        help="read CRLs from this file or directory instead of the certificates' "
        "distribution points (repeatable)",
    )
    group.add_argument(
        "--check-chain",
        action="store_true",
        help="also check the intermediates below the root through the fallback sources",
    )
    group.add_argument(
        "--fallback-timeout",
        type=parse_fallback_timeout,
        metavar="S",
        help="seconds the fallback may take in all (default 2, at most 300; never more "
        "than --timeout)",
    )
    group.add_argument(
        "--cache",
        metavar="SPEC",
        help="where answers are kept: memory (default), sqlite:PATH or redis://HOST:PORT/DB",
    )
    group.add_argument(
        "--ocsp-get", action="store_true", help="ask OCSP by GET (RFC 5019), not POST"
    )
    group.add_argument(
        "--ocsp-nonce", action="store_true", help="send a nonce and require it back (RFC 8954)"
    )
    group.add_argument(
        "--allow-https-fetch",
        action="store_true",
        help="also fetch from https:// responders and distribution points",
    )


def _add_time_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--clock-skew",
        type=_parse_duration,
        default=DEFAULT_CLOCK_SKEW,
        metavar="DURATION",
        help="tolerated clock difference, e.g. 300, 5m (default 5m)",
    )
    parser.add_argument(
        "--max-age",
        type=_parse_duration,
        default=DEFAULT_MAX_AGE,
        metavar="DURATION",
        help="oldest thisUpdate accepted as current, e.g. 10d (default 10d)",
    )
    parser.add_argument(
        "--default-lifetime",
        type=_parse_duration,
        default=DEFAULT_LIFETIME,
        metavar="DURATION",
        help="lifetime of a response without nextUpdate, e.g. 1d (default 1d)",
    )
    parser.add_argument(
        "--refuse-sha1",
        action="store_true",
        help="judge responses signed with SHA-1 (or by a delegate whose certificate is) "
        "invalid; by default they are accepted, as OpenSSL, curl and Firefox do",
    )


# --- verify ---------------------------------------------------------------------------


def _run_verify(args: argparse.Namespace) -> int:
    leaf = load_certificate(args.cert)
    issuer = load_certificate(args.issuer, "issuer")
    try:
        check_issued_by(leaf, issuer)
    except NotIssuedError as error:
        raise UsageError(f"{args.issuer} is not the issuer of {args.cert}: {error}") from None
    staple = _read_staple(args.staple)
    note = _not_an_ocsp_response(args.staple, staple)
    if note:
        print(f"staplecheck: {note}", file=sys.stderr)
    result = validate_staple(
        staple,
        leaf,
        issuer,
        now=args.at,
        clock_skew=args.clock_skew,
        default_lifetime=args.default_lifetime,
        max_age=args.max_age,
        allow_sha1=not args.refuse_sha1,
        cache=None,
    )
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(format_result(result))
    return EXIT_OK if result.status is StapleStatus.GOOD else EXIT_VERDICT


def format_result(result: StapleResult) -> str:
    """A short human-readable block for one verdict."""
    rows: list[tuple[str, Any]] = [
        ("status", result.status.value),
        ("reason", result.reason),
        ("serial", None if result.serial_number is None else f"{result.serial_number:#x}"),
        ("responder", result.responder),
        ("this update", result.this_update),
        ("next update", result.next_update),
        ("produced at", result.produced_at),
        ("revoked at", result.revocation_time),
        ("revocation reason", result.revocation_reason),
        ("must-staple", "yes" if result.must_staple else "no"),
    ]
    return "\n".join(_labelled(rows))


def _labelled(rows: list[tuple[str, Any]], indent: str = "") -> list[str]:
    """``label: value`` lines, values in one column (19 characters in), times in UTC;
    rows without a value left out."""
    lines = []
    for label, value in rows:
        if value is None:
            continue
        if isinstance(value, datetime.datetime):
            value = value.strftime("%Y-%m-%d %H:%M:%S UTC")
        # Names and reasons come from peers and responders: controls and newlines
        # are shown escaped, so nothing reaches the terminal raw or forges a line.
        lines.append(f"{indent}{label + ':':<{19 - len(indent)}}{_printable(str(value))}")
    return lines


# --- check ----------------------------------------------------------------------------


def _policy_from_args(args: argparse.Namespace) -> Policy:
    """The policy ``check`` and ``scan`` run under; ``UsageError`` for options that
    make none (docs/cli.md). Reads the CA file to check it holds a certificate."""
    try:
        check_combinations(args)
        policy = Policy(
            mode=Mode(args.policy),
            clock_skew=args.clock_skew,
            default_lifetime=args.default_lifetime,
            max_age=args.max_age,
            allow_sha1=not args.refuse_sha1,
            fallback=args.fallback,
            check_chain=args.check_chain,
            fallback_timeout=(
                DEFAULT_FALLBACK_TIMEOUT if args.fallback_timeout is None else args.fallback_timeout
            ),
            trusted_responders=load_trusted_responders(args.trust_responder),
            crl_files=check_crl_paths(args.crl),
            ocsp_method="GET" if args.ocsp_get else "POST",
            ocsp_nonce=args.ocsp_nonce,
            allow_https_fetch=args.allow_https_fetch,
        )
    except FallbackUsageError as error:
        raise UsageError(str(error)) from None
    except (ValueError, TypeError) as error:  # the policy's own checks, as a last guard
        raise UsageError(f"these options make no policy: {error}") from None
    if args.cafile is not None:
        _load_ca_file(args.cafile)
    return policy


def _open_checker(args: argparse.Namespace) -> RevocationChecker:
    """A checker on the ``--cache`` store (memory by default); ``UsageError`` when it
    cannot be opened."""
    try:
        store = open_cache(args.cache or "memory")
    except FallbackUsageError as error:
        raise UsageError(str(error)) from None
    return RevocationChecker(store)


def _run_check(args: argparse.Namespace) -> int:
    policy = _policy_from_args(args)
    try:
        parse_https_url(args.url)
    except ValueError as error:
        raise UsageError(str(error)) from None
    checker = _open_checker(args) if policy.needs_revocation_check else None
    try:
        report = check_url(
            args.url,
            policy=policy,
            cafile=args.cafile,
            timeout=args.timeout,
            checker=checker,
            leaf_responders=tuple(args.ocsp_url),
        )
    except CheckError as error:
        if args.json:
            print(json.dumps({"url": args.url, "error": str(error)}, indent=2))
        print(f"staplecheck: {_printable(str(error))}", file=sys.stderr)
        return EXIT_CONNECTION
    finally:
        if checker is not None:
            checker.store.close()
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        decision = "accepted" if report.accepted else "REJECTED"
        print(f"{_printable(report.url)} ({report.host} port {report.port}, {report.tls_version})")
        print(f"{'policy:':<19}{report.policy.mode.value}: {decision}")
        print(format_result(report.staple))
        if report.revocation is not None:
            print(format_revocation(report.revocation, report.policy.sources))
    return EXIT_OK if report.accepted else EXIT_VERDICT


def format_revocation(result: RevocationResult, sources: Sequence[str] = ()) -> str:
    """The revocation section of ``check``'s text output: the verdict, where it came
    from, every attempt, and each intermediate's verdict (``--check-chain``)."""
    lines = [
        f"{'fallback:':<19}{','.join(sources) or 'none'}",
        f"{'revocation:':<19}{_verdict_words(result)}",
    ]
    lines.extend(_revocation_rows(result))
    for item in result.chain:
        decision = "accepted" if item.accepted else "REJECTED"
        lines.append(
            f"{'intermediate:':<19}{_printable(item.subject or '(no subject)')}: "
            f"{_verdict_words(item)}, {decision}"
        )
        lines.extend(_revocation_rows(item))
    return "\n".join(lines)


def _verdict_words(result: RevocationResult) -> str:
    if result.source is None:
        return f"{result.status.value} (no source answered)"
    return f"{result.status.value} (source: {result.source})"


def _revocation_rows(result: RevocationResult) -> list[str]:
    rows: list[tuple[str, Any]] = [
        ("reason", result.reason),
        ("responder", result.responder),
        ("this update", result.this_update),
        ("next update", result.next_update),
        ("revoked at", result.revocation_time),
        ("reason code", result.revocation_reason),
    ]
    lines = _labelled(rows, indent="  ")
    for attempt in result.attempts:
        where = f" {_printable(attempt.url)}" if attempt.url else ""
        # The answer's own reason is printed above: an attempt's repeats only a difference.
        why = "" if attempt.reason == result.reason else f" ({_printable(attempt.reason)})"
        lines.append(
            f"  {'attempt:':<17}{attempt.source}{where}: {attempt.outcome} in "
            f"{attempt.milliseconds:.1f} ms{why}"
        )
    return lines


def _run_scan(args: argparse.Namespace) -> int:
    policy = _policy_from_args(args)
    checker = _open_checker(args)
    try:
        return run_scan(args, policy, checker)
    except ScanUsageError as error:
        raise UsageError(str(error)) from None
    finally:
        checker.store.close()


def _run_demo(args: argparse.Namespace) -> int:
    from ._demo import run_demo

    return run_demo(color=False if args.no_color else None)


# --- input ----------------------------------------------------------------------------


MAX_INPUT_BYTES = 16 * 1024 * 1024
"""The largest certificate, CA or staple file read (``/dev/zero`` is not read forever)."""


def _read_file(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_INPUT_BYTES + 1)
    except OSError as error:
        raise UsageError(f"cannot read {what} {path}: {error.strerror or error}") from None
    if len(data) > MAX_INPUT_BYTES:
        raise UsageError(f"{what} {path} is larger than {MAX_INPUT_BYTES} bytes")
    return data


def load_certificate(path: str, what: str = "certificate") -> x509.Certificate:
    """The first certificate in a PEM or DER file; ``UsageError`` if there is none.
    ``what`` names the file in the message (``issuer`` for ``--issuer``)."""
    data = _read_file(path, what)
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError:
        raise UsageError(f"{path} holds no readable certificate (PEM or DER)") from None


def _load_ca_file(path: str) -> None:
    """A CA file must hold at least one PEM certificate; ``UsageError`` otherwise."""
    data = _read_file(path, "CA file")
    try:
        found = x509.load_pem_x509_certificates(data)
    except ValueError:
        found = []
    if not found:
        raise UsageError(f"{path} holds no readable PEM certificate")


_PEM_BODY = re.compile(rb"-----BEGIN [A-Z ]+-----(.*?)-----END [A-Z ]+-----", re.DOTALL)


def _read_staple(path: str) -> bytes:
    """The staple's bytes: DER as is, or the body of a PEM block. Garbage stays garbage
    (and is judged invalid): only an unreadable file is a usage error."""
    data = _read_file(path, "staple")
    match = _PEM_BODY.search(data)
    if match:
        try:
            return base64.b64decode(match.group(1), validate=False)
        except ValueError:
            return data
    return data


def _not_an_ocsp_response(path: str, staple: bytes) -> str | None:
    """A one-line note when STAPLE is not even shaped like an OCSPResponse (a SEQUENCE
    that starts with the ENUMERATED responseStatus, RFC 6960 §4.2.1), so the user
    learns that the file is wrong rather than the staple; ``None`` otherwise."""
    if not staple:
        return None  # an empty file stands for "no staple": judged missing
    try:
        envelope = _der.read_tlv(staple)
        fields = _der.children(_der.expect(envelope, _der.SEQUENCE))
        if envelope.end == len(staple) and fields and fields[0].tag == _der.ENUMERATED:
            return None
    except _der.DERError:
        pass
    label = _PEM_LABEL.search(_read_file(path, "staple"))
    if label and label.group(1) != b"OCSP RESPONSE":
        return f"{path} is not an OCSP response: it holds a PEM {label.group(1).decode()}"
    return f"{path} is not a DER (or PEM) OCSP response"


_PEM_LABEL = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----")


def _parse_timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"not a timeout in seconds: {text!r}")
    return value


def _parse_time(text: str) -> datetime.datetime:
    """ISO 8601; a time without a zone is taken as UTC."""
    try:
        moment = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO 8601 time: {text!r} (e.g. 2026-11-21T12:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _parse_duration(text: str) -> datetime.timedelta:
    """Seconds (``300``) or a number with a unit: ``90s``, ``5m``, ``12h``, ``10d``."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(
            f"not a duration: {text!r} (use seconds or a unit: 90s, 5m, 12h, 10d)"
        )
    try:
        return datetime.timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2) or "s"])
    except OverflowError:
        raise argparse.ArgumentTypeError(f"duration too long: {text!r}") from None
