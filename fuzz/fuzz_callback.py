"""atheris harness: the pyOpenSSL OCSP client callback, as a TLS handshake runs it.

Two real handshakes are made once, in memory (client and server pyOpenSSL connections
over memory BIOs, certificates checked at the corpus time): one for the plain leaf,
one for the must-staple leaf. Each input is then handed to
``staplecheck.tls._pyopenssl._on_staple(connection, data, None)`` on both connections,
under the policies off, soft-fail and must-staple. The callback must never raise; the
verdict it records must be sound (as in fuzz_validate) and equal to what
``validate_staple`` says directly; and its decision must be DESIGN.md's table: never
accepted under must-staple unless good, never under soft-fail for revoked, unknown or
invalid, nor for stale or missing with the must-staple leaf. From the repository root::

    python -m fuzz.fuzz_callback -runs=20000
"""

from __future__ import annotations

import os
import sys

if not __package__:  # run as a file: make the repository root importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fuzz._harness import run
from fuzz.oracle import CallbackTarget

if __name__ == "__main__":
    run(CallbackTarget)
