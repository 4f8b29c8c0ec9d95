"""atheris harness: ``validate_staple(data, leaf, issuer, now=NOW, cache=None)``.

Each input must give a :class:`StapleResult` with a non-empty reason, never raise, and
never get a signed verdict (above all ``good``) unless its signed content is that of
a genuine staple with that verdict (fuzz/corpus.py). A violation saves the input and
fails the run. From the repository root::

    python -m fuzz.fuzz_validate -runs=100000            # seeds built in a temp dir
    STAPLECHECK_FUZZ_STATE=/tmp/sc python -m fuzz.fuzz_validate work/ /tmp/sc/seeds
    STAPLECHECK_FUZZ_STATE=/tmp/sc python -m fuzz.fuzz_validate FINDING.der  # replay
"""

from __future__ import annotations

import os
import sys

if not __package__:  # run as a file: make the repository root importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fuzz._harness import run
from fuzz.oracle import ValidateTarget

if __name__ == "__main__":
    run(ValidateTarget)
