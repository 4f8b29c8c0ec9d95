"""Fuzzing, in CI-sized doses: the corpus, the oracle, and a short run of each harness.

The corpus and oracle tests need nothing beyond the project. The harness runs need
atheris (``pip install -e '.[fuzz]'``): without it they skip locally and fail in CI,
which must run them. Long runs are fuzz/run_long.py's job (docs/security.md, "Fuzzing").
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.x509 import ocsp

from fuzz import corpus as fuzz_corpus
from fuzz import oracle
from fuzz.mutator import Mutator
from staplecheck import Policy, StapleResult, StapleStatus, validate_staple
from tests.conftest import IN_CI

ROOT = Path(__file__).resolve().parent.parent


def require_atheris() -> None:
    if importlib.util.find_spec("atheris") is None:
        message = "atheris is not installed (pip install -e '.[fuzz]')"
        if IN_CI:
            pytest.fail(f"{message}, and CI must not skip (.ci/run installs it)")
        pytest.skip(message)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> fuzz_corpus.Corpus:
    # build() itself checks every seed's declared verdict and the soundness rule.
    return fuzz_corpus.build(tmp_path_factory.mktemp("fuzz-corpus"))


def _flip_in_tbs(der: bytes) -> bytes:
    tbs = ocsp.load_der_ocsp_response(der).tbs_response_bytes
    out = bytearray(der)
    out[der.index(tbs) + 40] ^= 0x01
    return bytes(out)


def test_the_corpus_has_every_kind(built: fuzz_corpus.Corpus) -> None:
    declared = {s.expected[fuzz_corpus.LEAF] for s in built.seeds}
    assert {
        StapleStatus.GOOD,
        StapleStatus.REVOKED,
        StapleStatus.UNKNOWN,
        StapleStatus.STALE,
        StapleStatus.INVALID,
    } <= declared
    names = {s.name for s in built.seeds}
    for good in (
        "issuer-good",
        "delegate-p256-good",
        "delegate-p384-good",
        "delegate-p521-good-by-key",
        "delegate-rsa-good",
        "delegate-rsa-pss-good",
        "delegate-ed25519-good",
        "delegate-ed448-good",
        "multi-leaf-last-good",
        "ext-critical-nonce",
    ):
        assert good in names
        assert built.seed(good).expected[fuzz_corpus.LEAF] is StapleStatus.GOOD
    assert fuzz_corpus.load(built.directory).genuine == built.genuine
    assert len(list(built.seed_dir.iterdir())) == len(built.seeds)


def test_the_oracle_passes_genuine_staples_and_flags_a_false_good(
    built: fuzz_corpus.Corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = oracle.ValidateTarget(built, oracle.Findings(tmp_path))
    for seed in built.seeds:
        target(seed.der)
    good = built.seed("issuer-good")
    genuine = validate_staple(good.der, built.leaves["leaf"], built.issuer, now=fuzz_corpus.NOW)

    def lenient(*_args: object, **_kwargs: object) -> StapleResult:
        return genuine

    monkeypatch.setattr(oracle, "validate_staple", lenient)
    target(good.der)  # still the genuine content: allowed
    tampered = _flip_in_tbs(good.der)
    with pytest.raises(oracle.FindingError, match="false-good"):
        target(tampered)
    saved = list(tmp_path.glob("false-good-*.der"))
    assert [p.read_bytes() for p in saved] == [tampered]
    assert tampered.hex() in saved[0].with_suffix(".txt").read_text()


def test_the_oracle_flags_a_crash_and_keeps_going_when_asked(
    built: fuzz_corpus.Corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object, **_kwargs: object) -> StapleResult:
        raise IndexError("planted")

    monkeypatch.setattr(oracle, "validate_staple", broken)
    with pytest.raises(oracle.FindingError, match="crash"):
        oracle.ValidateTarget(built, oracle.Findings(tmp_path))(b"\x30\x00")
    findings = oracle.Findings(tmp_path, keep_going=True)
    target = oracle.ValidateTarget(built, findings)
    target(b"\x30\x00")
    target(b"\x30\x01")
    assert findings.counts == {"crash": 2}


def test_the_callback_oracle(
    built: fuzz_corpus.Corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On real handshakes: genuine staples pass; a policy that accepts everything is
    caught on an invalid staple; so is a verdict the direct validation disagrees with."""
    target = oracle.CallbackTarget(built, oracle.Findings(tmp_path))
    for name in ("issuer-good", "issuer-revoked", "stale-max-age", "ms-leaf-stale"):
        target(built.seed(name).der)
    target(b"")
    target(b"\x30\x00")

    monkeypatch.setattr(Policy, "accepts", lambda *_args, **_kwargs: True)
    with pytest.raises(oracle.FindingError, match="wrong-decision"):
        target(b"\x30\x00")
    monkeypatch.undo()

    real = oracle.validate_staple

    def other_reason(*args: object, **kwargs: object) -> StapleResult:
        return dataclasses.replace(real(*args, **kwargs), reason="something else")  # type: ignore[arg-type]

    monkeypatch.setattr(oracle, "validate_staple", other_reason)
    with pytest.raises(oracle.FindingError, match="callback-differs"):
        target(b"\x30\x00")


def test_the_decision_table() -> None:
    mode = Policy.SOFT_FAIL.mode
    assert oracle.expected_decision(mode, StapleStatus.STALE, must_staple=False)
    assert not oracle.expected_decision(mode, StapleStatus.STALE, must_staple=True)
    assert not oracle.expected_decision(mode, StapleStatus.INVALID, must_staple=False)
    assert not oracle.expected_decision(Policy.MUST_STAPLE.mode, StapleStatus.MISSING, False)
    assert oracle.expected_decision(Policy.OFF.mode, StapleStatus.REVOKED, must_staple=True)


def test_the_mutator_mostly_keeps_what_parses(built: fuzz_corpus.Corpus) -> None:
    seeds = [s.der for s in built.seeds]
    mutator = Mutator(seeds, lambda data, size: data[:size], [1])
    rng = random.Random(7)
    outputs = [mutator(rng.choice(seeds), 4096, n) for n in range(300)]
    parsed = sum(fuzz_corpus.signed_content(out) is not None for out in outputs)
    assert parsed > 100
    assert len(set(outputs)) > 150


@pytest.mark.parametrize(("harness", "runs"), [("fuzz_validate", 10000), ("fuzz_callback", 1500)])
def test_harness_short_run(
    built: fuzz_corpus.Corpus, tmp_path: Path, harness: str, runs: int
) -> None:
    require_atheris()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STAPLECHECK_FUZZ_")}
    env[fuzz_corpus.STATE_ENV] = str(built.directory)
    env[oracle.FINDINGS_ENV] = str(tmp_path / "findings")
    work = tmp_path / "work"
    work.mkdir()
    command = [
        sys.executable,
        "-m",
        f"fuzz.{harness}",
        f"-runs={runs}",
        "-seed=1",
        f"-artifact_prefix={tmp_path}/",
        str(work),
        str(built.seed_dir),
    ]
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=100, check=False
    )
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-4000:]
    assert f"Done {runs} runs" in log, log[-4000:]
    assert not (tmp_path / "findings").exists(), log[-4000:]
