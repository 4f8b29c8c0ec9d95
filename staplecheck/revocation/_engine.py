"""The revocation check for one connection: staple first, then the cache, live OCSP and
CRLs, under one time budget.

:class:`RevocationChecker` runs after the handshake (never inside OpenSSL's callback)
on the chain OpenSSL verified. It plans what to ask (:mod:`._plan`, pure), reads the
store, asks responders and distribution points through the fetchers, and judges every
answer with the same rules as a staple (:func:`._ocsp.judge_fetched`) or a CRL
(:func:`._crl.judge_crl`). What it reads from a store is judged again before use: a
store can lose answers, never forge them.

Concurrent checks of one certificate make one query (single-flight, per process):
the first caller asks, the others wait for its result within their own budget. A
source that failed is marked for ``failure_ttl``, so a dead responder is not asked on
every connection: a certificate's OCSP responders under its CertID's key (when none
answered), a distribution point under its URL's key, each with the policy that asked.
Marks are kept by the checker, in process memory, never in the store: a mark cannot be
verified, and one planted in a shared store would stop the check (which under
soft-fail means accepting). A mark holds back only
the source it names (a check that asks others still asks them) and only fetching (a
current stored answer still counts); it is logged on each skip. Every query, hit,
failure and skip is logged (logger ``staplecheck``) and counted
(:attr:`RevocationChecker.counts`).
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from .._cache import LRUCache
from .._policy import Policy
from ..validation._certfacts import describe_name
from ..validation._der import certificate_fields
from ..validation._result import StapleResult, StapleStatus
from ..validation._validate import SHARED_CACHE, CertPair, StapleCache
from ._crl import CRLIndex, CRLRefusal, crl_verdict, judge_crl
from ._crlfiles import CRLFiles
from ._fetch import FetchError, FirstAnswer, fetch_crl, fetch_first
from ._ocsp import DEFINITE, build_request, judge_fetched
from ._plan import Plan, crl_expiry, make_plan, ocsp_expiry, request_key
from ._result import Attempt, RevocationResult
from ._steps import AskResponders, FetchCRL, Flight, Step, Steps, Wait, ask, blocking, run
from .stores import Entry, Failure, MemoryStore, Store, crl_key

__all__ = ["DEFAULT_FAILURE_TTL", "RevocationChecker"]

logger = logging.getLogger("staplecheck")

DEFAULT_FAILURE_TTL = datetime.timedelta(seconds=30)
"""How long a certificate whose sources all failed is not asked about again."""
NONCE_BYTES = 16
PLAN_MEMO_SIZE = 256
"""Plans a checker remembers (least recently used out first)."""

Clock = Callable[[], datetime.datetime]
Randomness = Callable[[int], bytes]
OCSPFetcher = Callable[..., FirstAnswer]
CRLFetcher = Callable[..., bytes]

_CRL_ANSWERS = frozenset({StapleStatus.GOOD, StapleStatus.REVOKED})
_OTHER_ISSUER = "the CRL's issuer "  # how judge_crl's issuer-name refusal begins
_CHEAP_CRL_BYTES = 64 * 1024
"""A CRL up to this size is judged on the event loop (about a millisecond); a larger
one (a 100,000-entry CRL takes 170 ms) in a worker thread."""


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


T = TypeVar("T")


class RevocationChecker:
    """Answers "is this certificate revoked?" beyond the staple, for every connection
    that shares it (share one per process: its single-flight and memos are per object).

    ``store`` keeps answers between connections (a :class:`~.stores.MemoryStore` by
    default; SQLite or Redis to share them). ``clock`` gives the time answers are
    judged at, ``monotonic`` the time budgets are measured with, ``randomness`` the
    nonces; ``fetch_ocsp`` and ``fetch_crl`` do the network I/O (the blocking
    fetchers by default). ``cache`` memoizes staple-rule validation, as for staples.
    """

    def __init__(
        self,
        store: Store | None = None,
        *,
        clock: Clock = _utc_now,
        monotonic: Callable[[], float] = time.monotonic,
        randomness: Randomness = os.urandom,
        failure_ttl: datetime.timedelta = DEFAULT_FAILURE_TTL,
        fetch_ocsp: OCSPFetcher = fetch_first,
        fetch_crl: CRLFetcher = fetch_crl,
        cache: StapleCache | None = SHARED_CACHE,
    ) -> None:
        if failure_ttl < datetime.timedelta(0):
            raise ValueError("failure_ttl must not be negative")
        self.store: Store = store if store is not None else MemoryStore()
        self._clock = clock
        self._monotonic = monotonic
        self._randomness = randomness
        self._failure_ttl = failure_ttl
        self._fetch_ocsp = fetch_ocsp
        self._fetch_crl = fetch_crl
        self._cache = cache
        # Keyed by everything the answer depends on: the certificates' complete DER
        # and the policy (its sources, overrides and time rules), not the CertID alone.
        self._flights: dict[tuple[bytes, bytes, Policy], Flight] = {}
        self._flights_lock = threading.Lock()
        # Plans (and the subject named in logs) by everything a plan is made from: both
        # certificates' complete DER and the policy. Making one reads the certificate's
        # DER and extensions (about 100 µs), once per connection without this memo.
        self._plans: LRUCache[tuple[Plan, str]] = LRUCache(PLAN_MEMO_SIZE)
        # Judged CRLs by (URL or file, issuer, settings, DER digest): a CRL is judged
        # once, then each connection costs a lookup. Few entries: CRLs can be large.
        self._crls: LRUCache[tuple[CRLIndex | CRLRefusal, datetime.datetime]] = LRUCache(16)
        # Failure marks, this checker's own (never the store's), by store key and policy:
        # a dead source under one policy holds back no other policy's sources.
        self._marks: LRUCache[Failure] = LRUCache(4096)
        self._current_crl: LRUCache[CRLIndex] = LRUCache(16)
        self._files = CRLFiles()
        self._counts: collections.Counter[str] = collections.Counter()
        self._counts_lock = threading.Lock()

    @property
    def counts(self) -> dict[str, int]:
        """How many of each event so far: ``cache_hit``, ``ocsp_query``,
        ``ocsp_answer``, ``crl_fetch``, ``crl_answer``, ``failure``, ``skipped``,
        ``shared`` (a check that waited for another's query), ``store_miss``..."""
        with self._counts_lock:
            return dict(self._counts)

    def _count(self, event: str) -> None:
        with self._counts_lock:
            self._counts[event] += 1

    # --- one connection ------------------------------------------------------------------

    def check(
        self,
        chain: Sequence[bytes],
        policy: Policy,
        staple: StapleResult,
        *,
        staple_der: bytes | None = None,
        timeout: float | None = None,
        host: str | None = None,
    ) -> RevocationResult:
        """The revocation verdict for a verified ``chain`` (DER, leaf first, the trust
        anchor last) whose staple got ``staple``; ``accepted`` says whether ``policy``
        lets the connection proceed. ``staple_der`` is the staple as sent: a good one is
        kept for later connections to the same certificate. ``timeout`` (seconds)
        caps the policy's ``fallback_timeout``. Never raises for what a peer, a
        responder or a store sent. Waits in the calling thread."""
        return run(self._check(chain, policy, staple, staple_der, timeout, host), self._do_step)

    async def check_async(
        self,
        chain: Sequence[bytes],
        policy: Policy,
        staple: StapleResult,
        *,
        staple_der: bytes | None = None,
        timeout: float | None = None,
        host: str | None = None,
    ) -> RevocationResult:
        """:meth:`check` for an event loop (asyncio or trio, through AnyIO): the same
        verdict, cache and single-flight (shared with :meth:`check` callers in other
        threads), and no blocking call on the loop. Responders and distribution points
        are asked with the async fetchers (no thread); a store other than
        :class:`~.stores.MemoryStore`, static CRL files, a large CRL being judged, and
        fetchers of the caller's own (``fetch_ocsp=``/``fetch_crl=``, which block) run in
        AnyIO worker threads. Needs AnyIO and h11 (the ``httpx`` or ``aiohttp`` extra)."""
        from ._async import drive

        return await drive(
            self._check(chain, policy, staple, staple_der, timeout, host),
            self._do_step,
            native_ocsp=self._fetch_ocsp is fetch_first,
            native_crl=self._fetch_crl is fetch_crl,
            clock=self._monotonic,
        )

    def _do_step(self, step: Step) -> object:
        """Do one step of the engine's logic in the calling thread (blocking)."""
        if isinstance(step, AskResponders):
            return self._fetch_ocsp(
                step.urls,
                step.request_der,
                step.judge,
                deadline=step.deadline,
                method=step.method,
                timeout=step.timeout,
                allow_https=step.allow_https,
                clock=self._monotonic,
            )
        if isinstance(step, FetchCRL):
            return self._fetch_crl(
                step.url,
                deadline=step.deadline,
                timeout=step.timeout,
                allow_https=step.allow_https,
                clock=self._monotonic,
            )
        if isinstance(step, Wait):
            return step.flight.done.wait(step.seconds)
        return step.call()

    def _store_step(self, call: Callable[[], T]) -> Steps[T]:
        """A store access: cheap in memory, blocking for SQLite or Redis."""
        return blocking(call, cheap=isinstance(self.store, MemoryStore))

    def _check(
        self,
        chain: Sequence[bytes],
        policy: Policy,
        staple: StapleResult,
        staple_der: bytes | None,
        timeout: float | None,
        host: str | None,
    ) -> Steps[RevocationResult]:
        budget = (
            policy.fallback_timeout if timeout is None else min(policy.fallback_timeout, timeout)
        )
        deadline = self._monotonic() + max(budget, 0.0)
        now = self._clock()
        where = host or "(no host name)"
        pair = CertPair(chain[0], chain[1]) if len(chain) > 1 else None
        if staple.status is StapleStatus.GOOD and staple_der and pair is not None:
            yield from self._remember(pair, staple_der, staple, policy, now)
        if pair is not None and policy.wants_fallback(staple):
            leaf = yield from self._ask(pair, policy, now, deadline, where)
        elif pair is None and policy.wants_fallback(staple):
            leaf = RevocationResult(
                status=StapleStatus.MISSING,
                source=None,
                reason="the verified chain has no issuer to ask about the certificate",
                serial_number=staple.serial_number,
            )
        else:
            source = None if staple.status is StapleStatus.MISSING else "staple"
            leaf = RevocationResult.from_answer(staple, source, (), None)
        accepted = policy.accepts(staple, _answer(leaf))
        intermediates: list[RevocationResult] = []
        if accepted and policy.check_chain:
            for index in range(1, len(chain) - 1):
                result = yield from self._ask(
                    CertPair(chain[index], chain[index + 1]), policy, now, deadline, where
                )
                ok = policy.accepts_answer(_answer(result))
                intermediates.append(dataclasses.replace(result, accepted=ok))
                if not ok:
                    accepted = False
                    break
        final = dataclasses.replace(leaf, chain=tuple(intermediates), accepted=accepted)
        _log_verdict(where, policy, final)
        return final

    # --- one certificate -----------------------------------------------------------------

    def _ask(
        self, certs: CertPair, policy: Policy, now: datetime.datetime, deadline: float, where: str
    ) -> Steps[RevocationResult]:
        flight_key = (certs.leaf_der, certs.issuer_der, policy)
        memo = self._plans.get(flight_key)
        if memo is None:
            subject = _subject(certs)
            try:
                plan = make_plan(certs, policy)
            except ValueError as error:
                return RevocationResult(
                    status=StapleStatus.MISSING,
                    source=None,
                    reason=f"the certificate cannot be asked about: {error}",
                    subject=subject,
                )
            self._plans.put(flight_key, (plan, subject))
        else:
            plan, subject = memo
        flight, leader = self._join(flight_key)
        while not leader:
            self._count("shared")
            yield Wait(flight, max(deadline - self._monotonic(), 0.0))
            if (
                flight.done.is_set()
                and (flight.result is None or flight.result.source is None)
                and self._monotonic() < deadline
            ):
                # The asker found no answer within its own budget, which may have been
                # shorter than this one's: no answer is not an answer for the time left.
                flight, leader = self._join(flight_key)
                continue
            if flight.result is not None:
                shared = Attempt(
                    source=flight.result.source or "none",
                    url=None,
                    outcome="shared",
                    reason="answered by a concurrent check of the same certificate",
                    milliseconds=0.0,
                )
                return dataclasses.replace(
                    flight.result, attempts=(shared, *flight.result.attempts)
                )
            return _no_answer(
                certs,
                subject,
                [
                    Attempt(
                        source="ocsp",
                        url=None,
                        outcome="timeout",
                        reason="waited for a "
                        "concurrent check of the same certificate past the time budget",
                        milliseconds=0.0,
                    )
                ],
                "no source answered in time",
            )
        try:
            result = yield from self._answer_for(plan, policy, now, deadline, subject, where)
            flight.result = result
            return result
        finally:
            with self._flights_lock:
                self._flights.pop(flight_key, None)
            flight.finish()

    def _join(self, key: tuple[bytes, bytes, Policy]) -> tuple[Flight, bool]:
        with self._flights_lock:
            flight = self._flights.get(key)
            if flight is not None:
                return flight, False
            flight = self._flights[key] = Flight()
            return flight, True

    def _answer_for(
        self,
        plan: Plan,
        policy: Policy,
        now: datetime.datetime,
        deadline: float,
        subject: str,
        where: str,
    ) -> Steps[RevocationResult]:
        start = self._monotonic()
        attempts: list[Attempt] = []

        def elapsed() -> float:
            return (self._monotonic() - start) * 1e3

        cached = yield from self._from_store(plan, policy, now, attempts, elapsed)
        if cached is not None:
            self._count("cache_hit")
            logger.debug(
                "%s: revocation of %s answered from the cache: %s",
                where,
                subject,
                cached.status.value,
            )
            return RevocationResult.from_answer(cached, "cache", tuple(attempts), subject)
        # A failure mark is about the source that failed: the OCSP responders under the
        # CertID's key here, each distribution point under its URL's key (_crl_from). A
        # check that asks other sources is not held back by it.
        marked = None
        if "ocsp" in policy.sources:
            marked = self._recent_failure(plan.ocsp_key, policy, now)
        if marked is not None:
            reason = _skip_reason("the OCSP responders", marked)
            self._skip_marked("ocsp", None, reason, attempts, elapsed(), where)
        for skipped in plan.skipped:
            attempts.append(
                Attempt(
                    source=skipped.source,
                    url=skipped.url or None,
                    outcome="skipped",
                    reason=skipped.reason,
                    milliseconds=0.0,
                )
            )
            self._count("skipped")
            logger.debug(
                "%s: %s source skipped for %s: %s",
                where,
                skipped.source,
                subject,
                f"{skipped.url} {skipped.reason}".lstrip(),
            )
        for source in policy.sources:
            if self._monotonic() >= deadline:
                break
            if source == "ocsp":
                if marked is not None:
                    continue
                answer = yield from self._ask_responders(
                    plan, policy, now, deadline, attempts, start, where
                )
            else:
                answer = yield from self._read_crls(
                    plan, policy, now, deadline, attempts, elapsed, where
                )
            if answer is not None:
                return RevocationResult.from_answer(answer[0], answer[1], tuple(attempts), subject)
        tried = [a for a in attempts if a.outcome != "skipped" and a.source != "cache"]
        marks = [a for a in attempts if a.outcome == "skipped" and _MARKED in a.reason]
        if marks and not tried:
            # Every source it would ask failed recently: nothing new to mark.
            reason = marks[0].reason
            logger.info("%s: revocation of %s not asked: %s", where, subject, reason)
            return _no_answer(plan.certs, subject, attempts, reason)
        reason = "no source gave a definite answer" + (
            " in time" if self._monotonic() >= deadline else ""
        )
        self._count("failure")
        self._mark_failures(plan, policy, tried, now)
        logger.warning(
            "%s: revocation of %s: %s (%d attempts)", where, subject, reason, len(attempts)
        )
        return _no_answer(plan.certs, subject, attempts, reason)

    def _recent_failure(self, key: str, policy: Policy, now: datetime.datetime) -> Failure | None:
        """This checker's failure mark for ``key`` under ``policy``, if one is in force at
        ``now``. Marks are never read from the store: a mark cannot be verified, and one
        planted in a shared store would silence the check (under soft-fail, accept)."""
        failure = self._marks.get((key, policy))
        if failure is None or not failure.marked_at <= now < failure.until:
            return None
        return failure

    def _mark(self, key: str, policy: Policy, reason: str, now: datetime.datetime) -> None:
        until = now + self._failure_ttl
        if until > now:
            self._marks.put((key, policy), Failure(reason=reason[:500], marked_at=now, until=until))

    def _skip_marked(
        self,
        source: str,
        url: str | None,
        reason: str,
        attempts: list[Attempt],
        milliseconds: float,
        where: str,
    ) -> None:
        self._count("skipped")
        attempts.append(
            Attempt(
                source=source, url=url, outcome="skipped", reason=reason, milliseconds=milliseconds
            )
        )
        logger.info("%s: %s not asked: %s", where, f"{source} {url or ''}".rstrip(), reason)

    def _mark_failures(
        self, plan: Plan, policy: Policy, tried: list[Attempt], now: datetime.datetime
    ) -> None:
        """Mark the OCSP responders as failed under the CertID's key when they were
        asked and none answered (distribution points are marked as they fail)."""
        ocsp = [a for a in tried if a.source == "ocsp"]
        if ocsp:
            self._mark(plan.ocsp_key, policy, _summary(ocsp), now)

    def _mark_crl_failure(
        self, key: str, policy: Policy, url: str, reason: str, now: datetime.datetime
    ) -> None:
        """Mark a distribution point that could not be fetched or served a CRL that was
        refused: it is not fetched again for ``failure_ttl`` (a stored CRL still counts)."""
        self._mark(key, policy, f"crl {url} {reason}", now)

    # --- sources -------------------------------------------------------------------------

    def _from_store(
        self,
        plan: Plan,
        policy: Policy,
        now: datetime.datetime,
        attempts: list[Attempt],
        elapsed: Callable[[], float],
    ) -> Steps[StapleResult | None]:
        entry = yield from self._store_step(lambda: self.store.get(plan.ocsp_key, now=now))
        if not isinstance(entry, Entry):
            self._count("store_miss")
            return None
        # Judged again with every rule: whoever shares the store may have written it.
        judged = self._judge_ocsp(entry.der, plan.certs, policy, now, None)
        if judged.status in DEFINITE:
            attempts.append(
                Attempt(
                    source="cache",
                    url=None,
                    outcome=judged.status.value,
                    reason=judged.reason,
                    milliseconds=elapsed(),
                )
            )
            return judged
        self._count("cache_rejected")
        attempts.append(
            Attempt(
                source="cache",
                url=None,
                outcome=judged.status.value,
                reason=f"a stored response was refused: {judged.reason}",
                milliseconds=elapsed(),
            )
        )
        logger.warning("revocation cache: a stored response was refused: %s", judged.reason)
        return None

    def _judge_ocsp(
        self,
        der: bytes,
        certs: CertPair,
        policy: Policy,
        now: datetime.datetime,
        nonce: bytes | None,
    ) -> StapleResult:
        return judge_fetched(
            der,
            certs,
            nonce=nonce,
            now=now,
            clock_skew=policy.clock_skew,
            default_lifetime=policy.default_lifetime,
            max_age=policy.max_age,
            allow_sha1=policy.allow_sha1,
            cache=self._cache,
            trusted_responders=policy.trusted_responders,
        )

    def _ask_responders(
        self,
        plan: Plan,
        policy: Policy,
        now: datetime.datetime,
        deadline: float,
        attempts: list[Attempt],
        start: float,
        where: str,
    ) -> Steps[tuple[StapleResult, str] | None]:
        if not plan.ocsp_urls:
            return None
        request = plan.request
        if policy.ocsp_nonce:
            request = build_request(plan.certs, nonce=self._randomness(NONCE_BYTES))
        nonce = request.nonce
        self._count("ocsp_query")
        offset = (self._monotonic() - start) * 1e3
        first = yield from ask(
            AskResponders(
                urls=tuple(plan.ocsp_urls),
                request_der=request.der,
                judge=lambda der: self._judge_ocsp(der, plan.certs, policy, now, nonce),
                deadline=deadline,
                method=policy.ocsp_method,
                timeout=max(deadline - self._monotonic(), 0.001),
                allow_https=policy.allow_https_fetch,
            ),
            FirstAnswer,
        )
        for attempt in first.attempts:
            attempts.append(
                Attempt(
                    source="ocsp",
                    url=attempt.url,
                    outcome=attempt.outcome,
                    reason=attempt.reason,
                    milliseconds=offset + attempt.milliseconds,
                )
            )
            logger.debug(
                "%s: OCSP %s: %s (%s)", where, attempt.url, attempt.outcome, attempt.reason
            )
        if first.result is None or first.der is None or first.result.status not in DEFINITE:
            return None
        self._count("ocsp_answer")
        expires = ocsp_expiry(first.result, policy)
        if expires is not None and expires > now:
            der = first.der
            yield from self._store_step(
                lambda: self.store.put(plan.ocsp_key, der, now=now, expires_at=expires)
            )
        return first.result, "ocsp"

    def _read_crls(
        self,
        plan: Plan,
        policy: Policy,
        now: datetime.datetime,
        deadline: float,
        attempts: list[Attempt],
        elapsed: Callable[[], float],
        where: str,
    ) -> Steps[tuple[StapleResult, str] | None]:
        if policy.crl_files:
            files = policy.crl_files
            found, problems = yield from blocking(lambda: self._files.load(files))
            for path, problem in problems:
                attempts.append(
                    Attempt(
                        source="crl",
                        url=path,
                        outcome="failed",
                        reason=problem,
                        milliseconds=elapsed(),
                    )
                )
            verdicts: list[StapleResult] = []
            for path, der in found:
                index = yield from self._judge_crl(path, der, plan.certs, policy, now)
                if isinstance(index, CRLRefusal) and index.reason.startswith(_OTHER_ISSUER):
                    continue  # another CA's CRL in the same directory
                verdict = crl_verdict(index, plan.certs.leaf, now=now)
                verdicts.append(verdict)
                attempts.append(
                    Attempt(
                        source="crl",
                        url=path,
                        outcome=verdict.status.value,
                        reason=verdict.reason,
                        milliseconds=elapsed(),
                    )
                )
            # Every file from the issuer is judged, and a revocation in any of them wins:
            # an older CRL that is still current cannot hide a newer one that revokes.
            for wanted in (StapleStatus.REVOKED, StapleStatus.GOOD):
                chosen = next((v for v in verdicts if v.status is wanted), None)
                if chosen is not None:
                    self._count("crl_answer")
                    return chosen, "crl"
            if not verdicts:
                # Not silence: the caller configured CRLs and none can answer.
                reason = (
                    f"none of the {len(found)} static CRL files is from the certificate's "
                    "issuer (other CAs' CRLs are skipped)"
                )
                attempts.append(
                    Attempt(
                        source="crl",
                        url=", ".join(policy.crl_files)[:200],
                        outcome="failed",
                        reason=reason,
                        milliseconds=elapsed(),
                    )
                )
                logger.warning("%s: CRL files for %s: %s", where, _subject(plan.certs), reason)
            return None
        for url in plan.crl_urls:
            if self._monotonic() >= deadline:
                break
            answer = yield from self._crl_from(
                url, plan.certs, policy, now, deadline, attempts, elapsed, where
            )
            if answer is not None:
                return answer
        return None

    def _crl_from(
        self,
        url: str,
        certs: CertPair,
        policy: Policy,
        now: datetime.datetime,
        deadline: float,
        attempts: list[Attempt],
        elapsed: Callable[[], float],
        where: str,
    ) -> Steps[tuple[StapleResult, str] | None]:
        memo_key = (url, certs.issuer_der, _settings(policy))
        key = crl_key(url)
        current = self._current_crl.get(memo_key)
        if current is not None and current.earliest <= now <= current.latest:
            answer = self._known_crl(url, current, certs, now, attempts, elapsed, where)
            if answer is not None:
                return answer
        else:
            entry = yield from self._store_step(lambda: self.store.get(key, now=now))
            if isinstance(entry, Entry):
                index = yield from self._judge_crl(url, entry.der, certs, policy, now)
                if isinstance(index, CRLRefusal) or not index.earliest <= now <= index.latest:
                    attempts.append(
                        Attempt(
                            source="cache",
                            url=url,
                            outcome="invalid",
                            reason=f"a stored CRL was refused: {_why(index)}",
                            milliseconds=elapsed(),
                        )
                    )
                    self._count("cache_rejected")
                else:
                    self._current_crl.put(memo_key, index)
                    answer = self._known_crl(url, index, certs, now, attempts, elapsed, where)
                    if answer is not None:
                        return answer
        marked = self._recent_failure(key, policy, now)
        if marked is not None:  # a failure mark holds back fetching, not the store
            reason = _skip_reason("this distribution point", marked)
            self._skip_marked("crl", url, reason, attempts, elapsed(), where)
            return None
        self._count("crl_fetch")
        try:
            der = yield from ask(
                FetchCRL(
                    url=url,
                    deadline=deadline,
                    timeout=max(deadline - self._monotonic(), 0.001),
                    allow_https=policy.allow_https_fetch,
                ),
                bytes,
            )
        except FetchError as error:
            attempts.append(
                Attempt(
                    source="crl",
                    url=url,
                    outcome="failed",
                    reason=error.reason,
                    milliseconds=elapsed(),
                )
            )
            logger.debug("%s: CRL %s failed: %s", where, url, error.reason)
            self._mark_crl_failure(key, policy, url, error.reason, now)
            return None
        judged = yield from self._judge_crl(url, der, certs, policy, now)
        if isinstance(judged, CRLIndex):
            expires = crl_expiry(judged)
            yield from self._store_step(
                lambda: self.store.put(key, der, now=now, expires_at=expires)
            )
            self._current_crl.put(memo_key, judged)
        else:
            self._mark_crl_failure(key, policy, url, f"refused: {judged.reason}", now)
        verdict = crl_verdict(judged, certs.leaf, now=now)
        attempts.append(
            Attempt(
                source="crl",
                url=url,
                outcome=verdict.status.value,
                reason=verdict.reason,
                milliseconds=elapsed(),
            )
        )
        logger.debug("%s: CRL %s: %s (%s)", where, url, verdict.status.value, verdict.reason)
        if verdict.status in _CRL_ANSWERS:
            self._count("crl_answer")
            return verdict, "crl"
        return None

    def _known_crl(
        self,
        url: str,
        index: CRLIndex,
        certs: CertPair,
        now: datetime.datetime,
        attempts: list[Attempt],
        elapsed: Callable[[], float],
        where: str,
    ) -> tuple[StapleResult, str] | None:
        """The answer of a current CRL already held (memo or store), or ``None`` when it
        does not answer for this certificate (a partition for others, say): then the
        distribution point is fetched, not given up on."""
        verdict = crl_verdict(index, certs.leaf, now=now)
        definite = verdict.status in _CRL_ANSWERS
        reason = (
            verdict.reason
            if definite
            else (
                f"the cached CRL does not answer for this certificate, fetched again: "
                f"{verdict.reason}"
            )
        )
        attempts.append(
            Attempt(
                source="cache",
                url=url,
                outcome=verdict.status.value,
                reason=reason,
                milliseconds=elapsed(),
            )
        )
        logger.debug("%s: CRL %s (cached): %s (%s)", where, url, verdict.status.value, reason)
        if not definite:
            return None
        self._count("cache_hit")
        return verdict, "cache"

    def _judge_crl(
        self, where: str, der: bytes, certs: CertPair, policy: Policy, now: datetime.datetime
    ) -> Steps[CRLIndex | CRLRefusal]:
        key = (hashlib.sha256(der).digest(), len(der), certs.issuer_der, _settings(policy))
        memo = self._crls.get(key)
        if memo is not None:
            judged, judged_at = memo
            # A refusal can depend on the time (a thisUpdate in the future): judged again
            # once the clock has moved on, at most once a minute (or skew) per CRL.
            if isinstance(judged, CRLIndex) or now <= judged_at + _rejudge_after(policy):
                return judged
        judged = yield from blocking(
            lambda: judge_crl(
                der,
                certs.issuer,
                issuer_der=certs.issuer_der,
                now=now,
                clock_skew=policy.clock_skew,
                default_lifetime=policy.default_lifetime,
                max_age=policy.max_age,
                allow_sha1=policy.allow_sha1,
            ),
            cheap=len(der) <= _CHEAP_CRL_BYTES,
        )
        self._crls.put(key, (judged, now))
        return judged

    def _remember(
        self,
        certs: CertPair,
        der: bytes,
        staple: StapleResult,
        policy: Policy,
        now: datetime.datetime,
    ) -> Steps[None]:
        """Keep a good staple seen in a handshake for connections that get none."""
        expires = ocsp_expiry(staple, policy)
        if expires is None or expires <= now:
            return
        try:
            _request, key = request_key(certs)
        except ValueError:
            return
        yield from self._store_step(lambda: self.store.put(key, der, now=now, expires_at=expires))


_MARKED = "failed recently ("


def _rejudge_after(policy: Policy) -> datetime.timedelta:
    """How long a refused CRL stays refused without being judged again."""
    return max(policy.clock_skew, datetime.timedelta(minutes=1))


def _skip_reason(what: str, failure: Failure) -> str:
    return f"{what} {_MARKED}{failure.reason}); not asked again until {failure.until.isoformat()}"


def _summary(failed: list[Attempt]) -> str:
    """What a failure mark says: the first four failures, bounded."""
    parts = (f"{a.source} {a.url or ''} {a.outcome}: {a.reason}"[:200] for a in failed[:4])
    return "; ".join(parts)[:500]


def _why(index: CRLIndex | CRLRefusal) -> str:
    return index.reason if isinstance(index, CRLRefusal) else "it is out of date"


def _settings(policy: Policy) -> tuple[object, ...]:
    return (policy.clock_skew, policy.default_lifetime, policy.max_age, policy.allow_sha1)


def _answer(result: RevocationResult) -> StapleStatus | None:
    """The fallback's answer for the decision table: a definite status from a source
    other than the staple, else none."""
    if result.source in (None, "staple") or result.status not in DEFINITE:
        return None
    return result.status


def _subject(certs: CertPair) -> str:
    try:
        subject = certificate_fields(certs.leaf_der).subject
        return describe_name(subject, lambda: certs.leaf.subject)
    except Exception:  # noqa: BLE001 - only for the log
        return "(a certificate whose subject cannot be read)"


def _no_answer(
    certs: CertPair, subject: str, attempts: list[Attempt], reason: str
) -> RevocationResult:
    try:
        serial: int | None = certs.leaf.serial_number
    except ValueError:
        serial = None
    return RevocationResult(
        status=StapleStatus.MISSING,
        source=None,
        reason=reason,
        attempts=tuple(attempts),
        serial_number=serial,
        subject=subject,
    )


def _log_verdict(where: str, policy: Policy, result: RevocationResult) -> None:
    level = logging.DEBUG if result.accepted else logging.WARNING
    logger.log(
        level,
        "%s: revocation %s (source %s), %s under %s: %s",
        where,
        result.status.value,
        result.source,
        "accepted" if result.accepted else "refused",
        policy.mode.value,
        result.reason,
    )
