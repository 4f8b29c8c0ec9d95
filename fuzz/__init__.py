"""Fuzzing staplecheck: seed corpus, soundness oracle and atheris harnesses.

Run from the repository root (``python -m fuzz.fuzz_validate``); see docs/security.md
("Fuzzing") for the commands and the figures of the last long run.
"""
