"""What both atheris harnesses share: instrumentation, corpus, mutator, libFuzzer argv."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import atheris

with atheris.instrument_imports(include=["staplecheck"], exclude=["staplecheck.testing"]):
    import staplecheck  # noqa: F401 - instrumented for coverage before anything imports it

from fuzz import corpus as corpus_module
from fuzz import oracle
from fuzz.mutator import Mutator

__all__ = ["run"]


def run(make_target: Callable[[corpus_module.Corpus, oracle.Findings], Any]) -> None:
    """Load (or build) the corpus, make the target, hand over to libFuzzer.

    ``sys.argv`` goes to libFuzzer as is; when it names no corpus directory or input
    file, ``work/`` (where libFuzzer keeps what it finds) and the seed directory of
    the corpus are added, so a bare run starts from the seeds; and libFuzzer's own
    artifacts (crash-*, timeout-*) go to the findings directory unless
    ``-artifact_prefix`` says otherwise.
    """
    corpus = corpus_module.load_or_build()
    findings = oracle.Findings.from_env(corpus)
    target = make_target(corpus, findings)
    seeds = [seed.der for seed in corpus.seeds]
    serials = [leaf.serial_number for leaf in corpus.leaves.values()]
    mutator = Mutator(seeds, lambda data, size: atheris.Mutate(data, size), serials)
    argv = list(sys.argv)
    if not any(arg.startswith("-artifact_prefix=") for arg in argv):
        findings.directory.mkdir(parents=True, exist_ok=True)
        argv.insert(1, f"-artifact_prefix={findings.directory}/")
    if not any(not arg.startswith("-") for arg in argv[1:]):
        work = corpus.directory / "work"
        work.mkdir(exist_ok=True)
        argv += [str(work), str(corpus.seed_dir)]
    atheris.Setup(argv, target, custom_mutator=mutator)
    atheris.Fuzz()
