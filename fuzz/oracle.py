"""What the harnesses check, independent of atheris (so tests can drive it directly).

- :func:`violation`: the soundness rule of fuzz/corpus.py and the shape of a result.
- :class:`Findings`: saves an offending input (``<kind>-<sha1>.der`` plus a ``.txt``
  with the message and the input in hex) and raises :class:`FindingError`, or, with
  ``STAPLECHECK_FUZZ_KEEP_GOING=1``, counts it and lets the run go on.
- :class:`ValidateTarget`: ``validate_staple(data, leaf, issuer, now=NOW, cache=None)``.
- :class:`CallbackTarget`: the pyOpenSSL OCSP client callback, re-run on connections
  whose real handshake (memory BIOs, done once) left a verified chain behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import sys
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import NamedTuple

from OpenSSL import SSL

from fuzz.corpus import (
    HOSTS,
    MS_LEAF,
    NOW,
    ROLES,
    SIGNED_VERDICTS,
    Corpus,
    content_key,
    signed_content,
)
from staplecheck import (
    Policy,
    StapleConnection,
    StapleResult,
    StapleStatus,
    TLSConfig,
    VerdictLog,
    create_context,
    validate_staple,
)
from staplecheck._policy import Mode
from staplecheck.tls._pyopenssl import _Handshake, _on_staple

__all__ = [
    "KINDS",
    "CallbackTarget",
    "FindingError",
    "Findings",
    "ValidateTarget",
    "Violation",
    "expected_decision",
    "violation",
]

KEEP_GOING_ENV = "STAPLECHECK_FUZZ_KEEP_GOING"
FINDINGS_ENV = "STAPLECHECK_FUZZ_FINDINGS"
STATS_ENV = "STAPLECHECK_FUZZ_STATS"
KINDS = (
    "false-good",
    "unsound-verdict",
    "bad-result",
    "wrong-decision",
    "callback-differs",
    "crash",
)


class Violation(NamedTuple):
    kind: str
    """``false-good``, ``unsound-verdict``, ``bad-result``, ``wrong-decision``,
    ``callback-differs`` or ``crash``."""
    message: str


class FindingError(AssertionError):
    """A harness found an input that breaks a property (the input is saved)."""


def violation(corpus: Corpus, role: str, data: bytes, result: object) -> Violation | None:
    """What is wrong with ``result`` as the verdict on ``data`` for the role's leaf."""
    if not isinstance(result, StapleResult):
        return Violation("bad-result", f"not a StapleResult: {result!r}")
    status = result.status
    if not isinstance(status, StapleStatus):
        return Violation("bad-result", f"status is not a StapleStatus: {status!r}")
    if not isinstance(result.reason, str) or not result.reason.strip():
        return Violation("bad-result", f"{status.value} with no reason: {result.reason!r}")
    if (status is StapleStatus.MISSING) != (not data):
        return Violation("bad-result", f"{status.value} for {len(data)} bytes")
    leaf = corpus.leaves[role]
    if result.serial_number is not None and (
        result.serial_number != leaf.serial_number or result.must_staple != (role == MS_LEAF)
    ):
        return Violation(
            "bad-result",
            f"{status.value} names serial {result.serial_number:#x} "
            f"(must-staple {result.must_staple}), not the {role}'s",
        )
    if status not in SIGNED_VERDICTS:
        return None
    kind = "false-good" if status is StapleStatus.GOOD else "unsound-verdict"
    signed = signed_content(data)
    if signed is None:
        return Violation(
            kind, f"{status.value} ({result.reason}) for bytes cryptography cannot parse"
        )
    genuine = corpus.genuine[role].get(content_key(*signed))
    if genuine is None:
        return Violation(
            kind,
            f"{status.value} ({result.reason}) for signed content that no genuine staple "
            f"about the {role} carries",
        )
    if genuine is not status:
        return Violation(
            kind,
            f"{status.value} ({result.reason}) for the signed content of a {genuine.value} staple",
        )
    return None


def expected_decision(mode: Mode, status: StapleStatus, must_staple: bool) -> bool:
    """DESIGN.md's decision table."""
    if mode is Mode.OFF or status is StapleStatus.GOOD:
        return True
    if mode is Mode.MUST_STAPLE:
        return False
    if status in (StapleStatus.MISSING, StapleStatus.STALE):
        return not must_staple
    return False


# --- findings and statistics ---------------------------------------------------------------


@dataclasses.dataclass
class Findings:
    directory: Path
    keep_going: bool = False
    counts: Counter[str] = dataclasses.field(default_factory=Counter)
    max_saved_per_kind: int = 100

    @classmethod
    def from_env(cls, corpus: Corpus) -> Findings:
        directory = Path(os.environ.get(FINDINGS_ENV) or corpus.directory / "findings")
        return cls(directory, keep_going=os.environ.get(KEEP_GOING_ENV) == "1")

    def record(self, found: Violation, data: bytes, where: str) -> None:
        self.counts[found.kind] += 1
        digest = hashlib.sha1(data).hexdigest()
        text = f"{found.kind} in {where}: {found.message}\ninput ({len(data)} bytes): {data.hex()}"
        if self.counts[found.kind] <= self.max_saved_per_kind:
            self.directory.mkdir(parents=True, exist_ok=True)
            (self.directory / f"{found.kind}-{digest}.der").write_bytes(data)
            (self.directory / f"{found.kind}-{digest}.txt").write_text(text + "\n")
        if self.counts[found.kind] <= 3 or not self.keep_going:
            print(
                f"\n=== staplecheck fuzz finding ===\n{text}\nsaved in {self.directory}",
                file=sys.stderr,
                flush=True,
            )
        if not self.keep_going:
            raise FindingError(f"{found.kind} in {where}: {found.message}")


_STAGES = (
    ("not a DER OCSP response", "parser"),
    ("responseStatus", "responseStatus"),
    ("ResponderID", "responder"),
    ("responder identification", "responder"),
    ("delegated responder", "responder"),
    ("issuer certificate", "responder"),
    ("signature", "signature"),
    ("RSA-PSS", "signature"),
    ("no entry for serial", "CertID"),
    ("CertID", "CertID"),
    ("extension", "extensions"),
    ("thisUpdate", "time"),
    ("nextUpdate", "time"),
)


def _stage(result: StapleResult) -> str:
    """``good``, ``revoked``, ... or, for ``invalid``, the rule that stopped it."""
    if result.status is not StapleStatus.INVALID:
        return result.status.value
    return "invalid: " + next((s for text, s in _STAGES if text in result.reason), "other")


class Stats:
    """Executions and verdicts, written as JSON to ``STAPLECHECK_FUZZ_STATS`` every few
    seconds (libFuzzer ends the process without running Python's exit handlers)."""

    def __init__(self, findings: Findings) -> None:
        self.path = os.environ.get(STATS_ENV)
        self.findings = findings
        self.executions = 0
        self.verdicts: Counter[str] = Counter()
        self.started = time.monotonic()
        self._next_write = self.started + 5

    def count(self, result: StapleResult) -> None:
        self.executions += 1
        self.verdicts[_stage(result)] += 1
        if self.path and self.executions % 256 == 0 and time.monotonic() >= self._next_write:
            self.write()

    def write(self) -> None:
        if not self.path:
            return
        self._next_write = time.monotonic() + 5
        record = {
            "executions": self.executions,
            "seconds": round(time.monotonic() - self.started, 1),
            "verdicts": dict(self.verdicts),
            "findings": dict(self.findings.counts),
        }
        temporary = f"{self.path}.tmp"
        Path(temporary).write_text(json.dumps(record))
        os.replace(temporary, self.path)


# --- the targets -----------------------------------------------------------------------------


class ValidateTarget:
    """One input: validate it for the leaf; it must not raise and must be sound."""

    def __init__(self, corpus: Corpus, findings: Findings) -> None:
        self.corpus = corpus
        self.findings = findings
        self.stats = Stats(findings)
        self.leaf = corpus.leaves[ROLES[0]]

    def __call__(self, data: bytes) -> None:
        try:
            result = validate_staple(data, self.leaf, self.corpus.issuer, now=NOW, cache=None)
        except Exception:  # noqa: BLE001 - bad bytes must never raise
            self.findings.record(
                Violation("crash", traceback.format_exc()), data, "validate_staple"
            )
            return
        found = violation(self.corpus, ROLES[0], data, result)
        if found is not None:
            self.findings.record(found, data, "validate_staple")
        self.stats.count(result)


def handshake(corpus: Corpus, role: str) -> StapleConnection:
    """A finished client connection to a server for the role's leaf, made in memory.

    Certificates are checked at NOW (the store's time), so the corpus's PKI verifies
    whatever the real date; the server staples a genuine good staple, so the handshake
    goes through under every policy.
    """
    server_context = SSL.Context(SSL.TLS_SERVER_METHOD)
    server_context.use_certificate_chain_file(str(corpus.chain_path(role)))
    server_context.use_privatekey_file(str(corpus.key_path(role)))
    good = corpus.good_seed(role)
    server_context.set_ocsp_server_callback(lambda _conn, _data: good)
    client_context = create_context(
        "must-staple",
        config=TLSConfig(cafiles=(str(corpus.root_path),)),
        clock=lambda: NOW,
        cache=None,
        log=VerdictLog(),
    )
    store = client_context.get_cert_store()
    assert store is not None
    store.set_time(NOW)
    client = StapleConnection(client_context, None, server_hostname=HOSTS[role])
    server = SSL.Connection(server_context, None)
    server.set_accept_state()
    done = {"client": False, "server": False}
    for _ in range(50):
        for name, connection in (("client", client), ("server", server)):
            if not done[name]:
                try:
                    connection.do_handshake()
                    done[name] = True
                except SSL.WantReadError:
                    pass
        for source, sink in ((client, server), (server, client)):
            with contextlib.suppress(SSL.WantReadError):
                sink.bio_write(source.bio_read(1 << 16))
        if all(done.values()):
            break
    assert all(done.values()), "the in-memory handshake did not finish"
    if client.staple is None or client.staple.status is not StapleStatus.GOOD:
        raise RuntimeError(f"the handshake's own staple was not judged good: {client.staple}")
    return client


class CallbackTarget:
    """One input: the OCSP callback judges it on a real verified connection for each
    leaf, under each policy; it must not raise, must be sound, must decide as the
    table says, and must agree with ``validate_staple`` called directly."""

    POLICIES = (Policy.OFF, Policy.SOFT_FAIL, Policy.MUST_STAPLE)

    def __init__(self, corpus: Corpus, findings: Findings) -> None:
        self.corpus = corpus
        self.findings = findings
        self.stats = Stats(findings)
        self.connections = {role: handshake(corpus, role) for role in ROLES}

    def __call__(self, data: bytes) -> None:
        verdicts = [
            self._one(role, connection, data) for role, connection in self.connections.items()
        ]
        if verdicts[0] is not None:
            self.stats.count(verdicts[0])

    def _one(self, role: str, connection: StapleConnection, data: bytes) -> StapleResult | None:
        where = f"the OCSP callback ({role})"
        state = connection.get_app_data()
        assert isinstance(state, _Handshake)
        try:
            direct = validate_staple(
                data, self.corpus.leaves[role], self.corpus.issuer, now=NOW, cache=None
            )
        except Exception:  # noqa: BLE001 - bad bytes must never raise
            self.findings.record(Violation("crash", traceback.format_exc()), data, where)
            return None
        for policy in self.POLICIES:
            state.policy, state.result, state.accepted = policy, None, None
            try:
                accepted = _on_staple(connection, data, None)
            except Exception:  # noqa: BLE001 - the callback must never raise
                self.findings.record(Violation("crash", traceback.format_exc()), data, where)
                continue
            result = state.result
            found = violation(self.corpus, role, data, result)
            if found is None and (accepted is not state.accepted or type(accepted) is not bool):
                found = Violation(
                    "wrong-decision",
                    f"returned {accepted!r} but recorded {state.accepted!r} under {policy.mode}",
                )
            if found is None:
                assert isinstance(result, StapleResult)
                expected = expected_decision(policy.mode, result.status, role == MS_LEAF)
                if accepted != expected:
                    found = Violation(
                        "wrong-decision",
                        f"{'accepted' if accepted else 'rejected'} a {result.status.value} "
                        f"staple under {policy.mode} ({result.reason})",
                    )
                elif result != direct:
                    found = Violation(
                        "callback-differs",
                        f"callback: {result!r}; validate_staple: {direct!r}",
                    )
            if found is not None:
                self.findings.record(found, data, f"{where} under {policy.mode}")
        return direct
