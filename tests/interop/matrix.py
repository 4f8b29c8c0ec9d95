"""The interop matrix: interop tests record every outcome; scripts/render_interop.py
turns the records into docs/interop.md.

Each test calls :func:`record` once per (server, TLS version, staple case, client)
it exercised. ``client`` is a staplecheck policy (``off``, ``soft-fail``,
``must-staple``) or ``curl --cert-status`` for the comparison column. Records are JSON
lines appended to :data:`RESULTS` (``STAPLECHECK_INTEROP_RESULTS`` overrides the
path); tests/interop/conftest.py empties the file when a test session starts.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
from pathlib import Path

__all__ = ["RESULTS", "Outcome", "read_all", "record"]

RESULTS = Path(
    os.environ.get(
        "STAPLECHECK_INTEROP_RESULTS",
        Path(__file__).resolve().parents[2] / "build" / "interop-results.jsonl",
    )
)
_LOCK = threading.Lock()


@dataclasses.dataclass(frozen=True, kw_only=True)
class Outcome:
    """What one client made of one server's staple."""

    server: str
    """As the matrix names it: ``nginx (file)``, ``Apache httpd``, ``gnutls-serv`` ..."""
    tls_version: str
    """``1.2`` or ``1.3``."""
    case: str
    """``good``, ``revoked``, ``missing``, ``missing (must-staple cert)`` ..."""
    client: str
    """``off``, ``soft-fail``, ``must-staple`` or ``curl --cert-status``."""
    accepted: bool
    status: str | None
    """The staple status the client saw (staplecheck's ``StapleStatus`` value, or what
    curl reported); ``None`` when none was asked for."""
    expected: bool | None = None
    """What the policy table says (``None`` for curl)."""
    note: str = ""
    """Anything a user must know, e.g. ``no staple on the first connection``."""


def record(outcome: Outcome) -> None:
    """Append one outcome to the results file."""
    line = json.dumps(dataclasses.asdict(outcome), sort_keys=True)
    with _LOCK:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        with RESULTS.open("a", encoding="utf-8") as f:
            f.write(line + "\n")


def read_all(path: Path = RESULTS) -> list[Outcome]:
    """Every outcome recorded in ``path``."""
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as f:
        return [Outcome(**json.loads(line)) for line in f if line.strip()]
