"""``staplecheck ocsp`` and ``staplecheck crl``: ask one certificate's revocation
sources live, and print the answer judged, which ``openssl ocsp -url`` never does.

Both run the fallback engine itself (:class:`~staplecheck.revocation.RevocationChecker`)
with a ``hard-fail`` policy whose only source is the one asked (``("ocsp",)`` or
``("crl",)``), the responder or distribution point from ``--url`` (the policy's
``responders`` / ``crl_urls``) or from the certificate, and the store of ``--cache``:
the rules, the fetchers, the bounds and the cache are the ones ``check`` uses, never a
second copy. This module only observes what the engine did (the responses it fetched
and judged, the nonce it sent) to print more of it.

Exit codes (docs/cli.md): 0 good; 1 revoked, unknown, or an answer that was refused
(invalid, stale); 3 no answer (nothing reachable, or nothing sent in time); 2 usage,
unreadable input, an issuer that did not issue the certificate, nothing to ask.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from .._policy import Mode, Policy, ResponderOverride
from ..revocation import Attempt, RevocationChecker, RevocationResult
from ..revocation._crl import MAX_CRL_BYTES, CRLIndex, CRLRefusal, judge_crl
from ..revocation._fetch import FirstAnswer, fetch_crl, fetch_first
from ..revocation._ocsp import DEFINITE
from ..revocation.stores import Entry, RedisStore, Store, crl_key
from ..validation._certfacts import describe_name
from ..validation._der import certificate_fields
from ..validation._result import StapleResult, StapleStatus, json_value
from ..validation._signatures import NotIssuedError, check_issued_by
from ._fallback import (
    MAX_FALLBACK_TIMEOUT,
    FallbackUsageError,
    check_crl_paths,
    load_trusted_responders,
    open_cache,
    parse_ocsp_url,
)
from ._main import (
    EXIT_CONNECTION,
    EXIT_OK,
    EXIT_VERDICT,
    UsageError,
    _add_time_options,
    _labelled,
    _parse_time,
    load_certificate,
)
from ._scan import _printable

__all__ = ["add_query_commands"]

DEFAULT_TIMEOUT = 10.0
_JUDGED = frozenset({"good", "revoked", "unknown", "stale", "invalid"})
"""Attempt outcomes that mean an answer arrived and was judged (the rest: no answer)."""


# --- the parsers ------------------------------------------------------------------------


def add_query_commands(commands: Any) -> None:
    """Register ``ocsp`` and ``crl`` on the ``staplecheck`` subparsers."""
    ocsp = commands.add_parser(
        "ocsp",
        help="ask a certificate's OCSP responder live and judge the answer",
        description="Ask the OCSP responder of CERT (issued by ISSUER) about it, from the "
        "certificate's AIA or --url, and judge the answer with the staple's rules.",
    )
    _add_certificates(ocsp)
    ocsp.add_argument(
        "--url",
        type=parse_ocsp_url,
        metavar="URL",
        help="ask this responder instead of the certificate's AIA URLs",
    )
    ocsp.add_argument(
        "--nonce",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="send a nonce and require it back (RFC 8954; default: no nonce, as "
        "pre-produced responders such as cfssl and Vault send none)",
    )
    ocsp.add_argument("--get", action="store_true", help="ask by GET (RFC 5019), not POST")
    ocsp.add_argument(
        "--trust-responder",
        action="append",
        default=[],
        metavar="PEM",
        help="pin these OCSP responder certificates (PEM or DER; repeatable): responses "
        "they sign count for any certificate",
    )
    _add_common(ocsp)
    ocsp.set_defaults(run=_run_ocsp)

    crl = commands.add_parser(
        "crl",
        help="fetch (or read) a certificate's CRL and judge it",
        description="Fetch the CRL of CERT's issuer from the certificate's distribution "
        "points, --url, or read it from --file, judge it (issuer signature, times, "
        "critical extensions) and look CERT up in it.",
    )
    _add_certificates(crl)
    where = crl.add_mutually_exclusive_group()
    where.add_argument(
        "--url",
        type=_parse_crl_url,
        metavar="URL",
        help="fetch the CRL from this URL instead of the certificate's distribution points",
    )
    where.add_argument("--file", metavar="CRL", help="read the CRL from this file (DER or PEM)")
    _add_common(crl)
    crl.set_defaults(run=_run_crl)


def _add_certificates(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("cert", metavar="CERT", help="the certificate (PEM or DER)")
    parser.add_argument(
        "--issuer", required=True, metavar="ISSUER", help="its issuer's certificate (PEM or DER)"
    )


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--cache",
        metavar="SPEC",
        help="where answers are kept between runs: memory (default: none kept), "
        "sqlite:PATH or redis://HOST:PORT/DB; a current stored answer is used (and said "
        "to be) instead of asking",
    )
    parser.add_argument(
        "--timeout",
        type=_parse_timeout,
        default=DEFAULT_TIMEOUT,
        metavar="S",
        help=f"seconds the whole query may take (default {DEFAULT_TIMEOUT:g}, at most "
        f"{MAX_FALLBACK_TIMEOUT:g})",
    )
    parser.add_argument(
        "--allow-https-fetch", action="store_true", help="also fetch from https:// URLs"
    )
    parser.add_argument(
        "--at", type=_parse_time, metavar="TIME", help="judge as of TIME (ISO 8601; default now)"
    )
    _add_time_options(parser)


def _parse_timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= MAX_FALLBACK_TIMEOUT:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(
            f"not a timeout: {text!r} (seconds, more than 0 and at most {MAX_FALLBACK_TIMEOUT:g})"
        )
    return value


def _parse_crl_url(text: str) -> str:
    """The same checks as an OCSP URL (absolute, http or https, no credentials...)."""
    try:
        return parse_ocsp_url(text)
    except argparse.ArgumentTypeError as error:
        raise argparse.ArgumentTypeError(
            str(error).replace("OCSP responder URL", "CRL URL").replace("responders", "URLs")
        ) from None


# --- what the engine did -------------------------------------------------------------------


class _Observer:
    """The engine's fetchers and randomness, unchanged, with what passed through them
    kept for the report: the responses judged (with the engine's own verdicts), the
    CRLs fetched, the nonce sent."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.judged: list[tuple[bytes, StapleResult]] = []
        self.first: FirstAnswer | None = None
        self.crls: dict[str, bytes] = {}
        self.nonce: bytes | None = None

    def fetch_ocsp(
        self,
        urls: Sequence[str],
        request_der: bytes,
        judge: Callable[[bytes], StapleResult],
        **options: Any,
    ) -> FirstAnswer:
        def observed(der: bytes) -> StapleResult:
            result = judge(der)
            with self._lock:
                self.judged.append((der, result))
            return result

        self.first = fetch_first(urls, request_der, observed, **options)
        return self.first

    def fetch_crl(self, url: str, **options: Any) -> bytes:
        der = fetch_crl(url, **options)
        with self._lock:
            self.crls[url] = der
        return der

    def randomness(self, size: int) -> bytes:
        self.nonce = os.urandom(size)
        return self.nonce

    def verdict_of(self, attempt: Attempt) -> StapleResult | None:
        """The engine's judgement behind ``attempt`` (same outcome and reason)."""
        with self._lock:
            for _der, result in self.judged:
                if result.status.value == attempt.outcome and result.reason == attempt.reason:
                    return result
        return None


# --- running a query -------------------------------------------------------------------------


class _Query:
    """One ``ocsp`` or ``crl`` run: the certificates, the policy, the engine's verdict."""

    def __init__(self, args: argparse.Namespace, source: str) -> None:
        self.args = args
        self.source = source
        self.leaf = load_certificate(args.cert)
        self.issuer = load_certificate(args.issuer, "issuer")
        self.leaf_der = self.leaf.public_bytes(Encoding.DER)
        self.issuer_der = self.issuer.public_bytes(Encoding.DER)
        try:
            check_issued_by(self.leaf, self.issuer, der=self.leaf_der, issuer_der=self.issuer_der)
        except NotIssuedError as error:
            raise UsageError(f"{args.issuer} is not the issuer of {args.cert}: {error}") from None
        self.now: datetime.datetime = args.at or datetime.datetime.now(
            datetime.timezone.utc
        ).replace(microsecond=0)
        self.observer = _Observer()
        self.milliseconds = 0.0
        self.cache = "memory"
        self.store: Store | None = None

    def close(self) -> None:
        if self.store is not None:
            self.store.close()

    def policy(self, **sources: Any) -> Policy:
        args = self.args
        try:
            return Policy(
                mode=Mode.HARD_FAIL,
                fallback=(self.source,),
                clock_skew=args.clock_skew,
                default_lifetime=args.default_lifetime,
                max_age=args.max_age,
                allow_sha1=not args.refuse_sha1,
                fallback_timeout=args.timeout,
                allow_https_fetch=args.allow_https_fetch,
                **sources,
            )
        except (ValueError, TypeError) as error:
            raise UsageError(f"these options make no query: {error}") from None

    def run(self, policy: Policy) -> RevocationResult:
        """The engine's verdict on the certificate, from ``policy``'s one source."""
        try:
            store = open_cache(self.args.cache or "memory")
        except FallbackUsageError as error:
            raise UsageError(str(error)) from None
        self.store = store
        self.cache = _describe_cache(self.args.cache, store)
        checker = RevocationChecker(
            store,
            clock=lambda: self.now,
            randomness=self.observer.randomness,
            fetch_ocsp=self.observer.fetch_ocsp,
            fetch_crl=self.observer.fetch_crl,
        )
        # "No staple" is what lets a hard-fail policy ask its source; the certificate's
        # must-staple extension is not this command's business (it asks anyway).
        unasked = StapleResult(
            status=StapleStatus.MISSING,
            reason=f"not a connection: staplecheck {self.source} asks the source directly",
            serial_number=self.leaf.serial_number,
            must_staple=False,
        )
        started = time.monotonic()
        try:
            result = checker.check(
                [self.leaf_der, self.issuer_der],
                policy,
                unasked,
                timeout=self.args.timeout,
                host=f"staplecheck {self.source} {self.args.cert}",
            )
        finally:
            self.milliseconds = (time.monotonic() - started) * 1e3
        return result

    def nothing_to_ask(self, result: RevocationResult) -> str | None:
        """Why no source could be asked at all (a usage error), or ``None``."""
        if result.source is not None or any(a.outcome != "skipped" for a in result.attempts):
            return None
        reasons = "; ".join(
            f"{a.url} {a.reason}".lstrip() if a.url else a.reason for a in result.attempts
        )
        option = "--url" if self.source == "ocsp" else "--url or --file"
        https = any("allow_https_fetch" in a.reason for a in result.attempts)
        hint = " (or add --allow-https-fetch)" if https else ""
        return (
            f"{self.args.cert}: nothing to ask ({reasons or 'no URL'}); "
            f"name one with {option}{hint}"
        )


def _describe_cache(spec: str | None, store: Store) -> str:
    """The cache for the report, without a Redis password."""
    if isinstance(store, RedisStore):
        return f"redis {store.host} port {store.port} database {store.db}"
    return spec or "memory"


def _status_and_code(result: RevocationResult, network: bool) -> tuple[str, str, int]:
    """The status shown, its reason, and the exit code: the engine's definite answer;
    else the first answer the source sent that it judged and refused (stale, invalid);
    else no answer. A stored answer that was refused is no answer from the source (a
    shared store can lose answers, never forge them): the source's own outcome counts."""
    if result.source is not None and result.status in DEFINITE:
        code = EXIT_OK if result.status is StapleStatus.GOOD else EXIT_VERDICT
        return result.status.value, result.reason, code
    asked = [a for a in result.attempts if a.outcome != "skipped" and a.source != "cache"]
    judged = _refused(result)
    if judged is not None:
        return judged.outcome, judged.reason, EXIT_VERDICT
    reason = asked[0].reason if asked else result.reason
    # A file that is no CRL of the issuer is a refusal, not an unreachable source.
    return "missing", reason, EXIT_CONNECTION if network else EXIT_VERDICT


def _refused(result: RevocationResult) -> Attempt | None:
    """The first answer from the source itself (not the cache) that was judged."""
    return next((a for a in result.attempts if a.source != "cache" and a.outcome in _JUDGED), None)


def _time_left(moment: datetime.datetime | None, now: datetime.datetime) -> str | None:
    if moment is None:
        return None
    seconds = int((moment - now).total_seconds())
    span = abs(seconds)
    days, rest = divmod(span, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    text = (
        f"{days}d {hours}h"
        if days
        else f"{hours}h {minutes}m"
        if hours
        else f"{minutes}m {span % 60}s"
    )
    return f"{text} left" if seconds >= 0 else f"passed {text} ago"


def _responder_kind(responder: str | None) -> str | None:
    """Who signed an OCSP answer, from the judge's own description of the signer."""
    if responder is None:
        return None
    for prefix, kind in (
        ("issuer ", "issuer"),
        ("delegated responder ", "delegated"),
        ("pinned responder ", "pinned"),
    ):
        if responder.startswith(prefix):
            return kind
    return None


def _name(der: bytes, cert: x509.Certificate) -> str:
    try:
        return describe_name(certificate_fields(der).subject, lambda: cert.subject)
    except ValueError:
        return "(a certificate whose subject cannot be read)"


def _attempt_lines(result: RevocationResult, reason: str) -> list[str]:
    """Every attempt, as ``check`` prints them: the reason printed above not repeated."""
    lines = []
    for attempt in result.attempts:
        where = f" {_printable(attempt.url)}" if attempt.url else ""
        why = "" if attempt.reason == reason else f" ({_printable(attempt.reason)})"
        lines.append(
            f"{'attempt:':<19}{attempt.source}{where}: {attempt.outcome} in "
            f"{attempt.milliseconds:.1f} ms{why}"
        )
    return lines


def _print(args: argparse.Namespace, report: dict[str, Any], rows: list[tuple[str, Any]]) -> None:
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print("\n".join(_labelled(rows)))


# --- ocsp ------------------------------------------------------------------------------------


def _run_ocsp(args: argparse.Namespace) -> int:
    query = _Query(args, "ocsp")
    try:
        return _ocsp(args, query)
    finally:
        query.close()


def _ocsp(args: argparse.Namespace, query: _Query) -> int:
    try:
        pinned = load_trusted_responders(args.trust_responder)
    except FallbackUsageError as error:
        raise UsageError(str(error)) from None
    if args.url and args.url.lower().startswith("https:") and not args.allow_https_fetch:
        raise UsageError(f"--url {args.url[:200]}: an https:// responder needs --allow-https-fetch")
    policy = query.policy(
        responders=(ResponderOverride(args.url),) if args.url else (),
        trusted_responders=pinned,
        ocsp_method="GET" if args.get else "POST",
        ocsp_nonce=args.nonce,
    )
    result = query.run(policy)
    problem = query.nothing_to_ask(result)
    if problem:
        raise UsageError(problem)
    status, reason, code = _status_and_code(result, network=True)
    observer = query.observer
    answer: StapleResult | None = None
    url: str | None = None
    if result.source == "ocsp" and observer.first is not None:
        answer, url = observer.first.result, observer.first.url
    elif result.source is None:
        refused = _refused(result)
        if refused is not None:
            answer, url = observer.verdict_of(refused), refused.url
    shown: StapleResult | RevocationResult = answer or result
    cached = result.source == "cache"
    nonce = observer.nonce if args.nonce and not cached else None
    echoed: bool | None = None
    if nonce is not None and answer is not None:
        # The engine requires the nonce back (RFC 8954 §2.1): a definite answer echoed
        # it; a refusal names the nonce rule when that is what failed.
        if answer.status in DEFINITE:
            echoed = True
        elif "nonce" in answer.reason:
            echoed = False
    left = _time_left(shown.next_update, query.now)
    report: dict[str, Any] = {
        "command": "ocsp",
        "certificate": args.cert,
        "issuer": args.issuer,
        "subject": result.subject or _name(query.leaf_der, query.leaf),
        "issuer_subject": _name(query.issuer_der, query.issuer),
        "serial_number": json_value("serial_number", query.leaf.serial_number),
        "status": status,
        "reason": reason,
        "source": result.source,
        "url": url,
        "method": policy.ocsp_method,
        "responder": shown.responder,
        "responder_kind": _responder_kind(shown.responder),
        "this_update": json_value("this_update", shown.this_update),
        "next_update": json_value("next_update", shown.next_update),
        "seconds_left": _seconds_left(shown.next_update, query.now),
        "produced_at": json_value("produced_at", answer.produced_at if answer else None),
        "revocation_time": json_value("revocation_time", shown.revocation_time),
        "revocation_reason": shown.revocation_reason,
        "nonce": {"sent": None if nonce is None else nonce.hex(), "echoed": echoed},
        "cache": query.cache,
        "at": json_value("at", query.now),
        "milliseconds": round(query.milliseconds, 1),
        "revocation": result.to_dict(),
    }
    if cached and args.nonce:
        nonce_text = "not checked: the answer came from the cache"
    elif nonce is None:
        nonce_text = "not sent"
    else:
        nonce_text = f"sent {nonce.hex()}" + (
            ", echoed" if echoed else ", NOT echoed" if echoed is False else ""
        )
    rows: list[tuple[str, Any]] = [
        ("certificate", f"{report['subject']} (serial {report['serial_number']})"),
        ("issuer", report["issuer_subject"]),
        ("status", "no answer" if status == "missing" else status),
        ("reason", reason),
        ("source", _source_words(result, query.cache)),
        ("url", url),
        ("responder", _responder_words(shown.responder)),
        ("this update", shown.this_update),
        ("next update", _with_left(shown.next_update, left)),
        ("produced at", answer.produced_at if answer else None),
        ("revoked at", shown.revocation_time),
        ("revocation reason", shown.revocation_reason),
        ("nonce", nonce_text),
        ("request", None if cached else policy.ocsp_method),
        ("latency", f"{query.milliseconds:.1f} ms"),
    ]
    _print(args, report, rows)
    if not args.json:
        print("\n".join(_attempt_lines(result, reason)))
    return code


def _seconds_left(moment: datetime.datetime | None, now: datetime.datetime) -> int | None:
    return None if moment is None else int((moment - now).total_seconds())


def _with_left(moment: datetime.datetime | None, left: str | None) -> str | None:
    if moment is None:
        return None
    return f"{moment.strftime('%Y-%m-%d %H:%M:%S UTC')} ({left})"


def _responder_words(responder: str | None) -> str | None:
    kind = _responder_kind(responder)
    if responder is None or kind is None:
        return responder
    return {
        "issuer": f"{responder} (the CA itself)",
        "delegated": f"{responder} (delegated by the issuer)",
        "pinned": f"{responder} (pinned with --trust-responder)",
    }[kind]


def _source_words(result: RevocationResult, cache: str) -> str:
    if result.source == "cache":
        return f"cache ({cache}): a stored answer, judged again now; nothing was asked"
    if result.source is None:
        return "none answered"
    return f"{result.source} (asked now)"


# --- crl -------------------------------------------------------------------------------------


def _run_crl(args: argparse.Namespace) -> int:
    query = _Query(args, "crl")
    try:
        return _crl(args, query)
    finally:
        query.close()


def _crl(args: argparse.Namespace, query: _Query) -> int:
    files: tuple[str, ...] = ()
    if args.file is not None and args.cache is not None:
        raise UsageError("--cache with --file: a CRL read from a file is not cached")
    if args.file is not None:
        if os.path.isdir(args.file):
            raise UsageError(f"--file {args.file} is a directory, not a CRL file")
        try:
            files = check_crl_paths([args.file])
        except FallbackUsageError as error:
            raise UsageError(str(error).replace("--crl", "--file")) from None
    if args.url and args.url.lower().startswith("https:") and not args.allow_https_fetch:
        raise UsageError(f"--url {args.url[:200]}: an https:// URL needs --allow-https-fetch")
    policy = query.policy(crl_files=files, crl_urls=(args.url,) if args.url else ())
    result = query.run(policy)
    problem = query.nothing_to_ask(result)
    if problem:
        raise UsageError(problem)
    status, reason, code = _status_and_code(result, network=args.file is None)
    # The CRL that gave the answer (or was refused): fetched now, read from the cache,
    # or the file; judged again with the same function and settings, for its facts.
    used = _deciding_attempt(result, status)
    url = used.url if used is not None else None
    crl = _crl_facts(query, policy, used)
    this_update = crl.this_update if isinstance(crl, CRLIndex) else result.this_update
    next_update = crl.next_update if isinstance(crl, CRLIndex) else result.next_update
    signer = crl.responder if crl is not None else result.responder
    issuer = signer.removeprefix("CRL from issuer ") if signer else None
    left = _time_left(next_update, query.now)
    report: dict[str, Any] = {
        "command": "crl",
        "certificate": args.cert,
        "issuer": args.issuer,
        "subject": result.subject or _name(query.leaf_der, query.leaf),
        "issuer_subject": _name(query.issuer_der, query.issuer),
        "serial_number": json_value("serial_number", query.leaf.serial_number),
        "status": status,
        "reason": reason,
        "source": result.source,
        "url": url,
        "crl_issuer": issuer,
        "this_update": json_value("this_update", this_update),
        "next_update": json_value("next_update", next_update),
        "seconds_left": _seconds_left(next_update, query.now),
        "entries": crl.entry_count if isinstance(crl, CRLIndex) else None,
        "crl_number": crl.crl_number if isinstance(crl, CRLIndex) else None,
        "revocation_time": json_value("revocation_time", result.revocation_time),
        "revocation_reason": result.revocation_reason,
        "cache": None if args.file is not None else query.cache,
        "at": json_value("at", query.now),
        "milliseconds": round(query.milliseconds, 1),
        "revocation": result.to_dict(),
    }
    rows: list[tuple[str, Any]] = [
        ("certificate", f"{report['subject']} (serial {report['serial_number']})"),
        ("issuer", report["issuer_subject"]),
        ("status", "no answer" if status == "missing" else status),
        ("reason", reason),
        ("source", "file (read now)" if args.file else _source_words(result, query.cache)),
        ("url" if args.file is None else "file", url),
        ("crl issuer", issuer),
        ("this update", this_update),
        ("next update", _with_left(next_update, left)),
        ("entries", report["entries"]),
        ("crl number", report["crl_number"]),
        ("revoked at", result.revocation_time),
        ("revocation reason", result.revocation_reason),
        ("latency", f"{query.milliseconds:.1f} ms"),
    ]
    _print(args, report, rows)
    if not args.json:
        print("\n".join(_attempt_lines(result, reason)))
    return code


def _deciding_attempt(result: RevocationResult, status: str) -> Attempt | None:
    """The attempt whose CRL the status comes from (the last one with that outcome)."""
    matching = [a for a in result.attempts if a.outcome == status and a.url]
    return matching[-1] if matching else None


def _crl_facts(
    query: _Query, policy: Policy, attempt: Attempt | None
) -> CRLIndex | CRLRefusal | None:
    if attempt is None or attempt.url is None:
        return None
    der: bytes | None = None
    if attempt.source == "crl" and attempt.url in query.observer.crls:
        der = query.observer.crls[attempt.url]
    elif attempt.source == "crl" and attempt.url in policy.crl_files:
        try:
            with open(attempt.url, "rb") as handle:
                der = handle.read(MAX_CRL_BYTES + 1)
        except OSError:
            return None
    elif attempt.source == "cache" and query.store is not None:
        entry = query.store.get(crl_key(attempt.url), now=query.now)
        der = entry.der if isinstance(entry, Entry) else None
    if der is None:
        return None
    return judge_crl(
        der,
        query.issuer,
        issuer_der=query.issuer_der,
        now=query.now,
        clock_skew=policy.clock_skew,
        default_lifetime=policy.default_lifetime,
        max_age=policy.max_age,
        allow_sha1=policy.allow_sha1,
    )
