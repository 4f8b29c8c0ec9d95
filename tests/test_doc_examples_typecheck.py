"""The documentation's Python examples pass ``mypy --strict``: what users copy must type-check.

Each ```python block is written to its own module and checked against this checkout's
staplecheck (``MYPYPATH``: an editable install is invisible to mypy). In the documents
of ``MARKED_ONLY`` (whose older examples read ``response.staple``, which type checkers
cannot know), only the blocks right after a ``<!-- type-checked -->`` line are checked.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TYPE_CHECKED = [
    ROOT / "README.md",
    ROOT / "docs" / "api.md",
    ROOT / "docs" / "private-pki.md",
    ROOT / "docs" / "revocation.md",
    ROOT / "docs" / "policies.md",
    ROOT / "docs" / "errors.md",
    ROOT / "docs" / "aiohttp.md",
]
MARKED_ONLY = [ROOT / "docs" / "usage.md"]
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
_MARKED_BLOCK = re.compile(
    r"^<!-- type-checked -->\n```python\n(.*?)^```", re.DOTALL | re.MULTILINE
)


def python_blocks(document: Path) -> list[str]:
    text = document.read_text(encoding="utf-8")
    return (_MARKED_BLOCK if document in MARKED_ONLY else _BLOCK).findall(text)


def run_mypy(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--cache-dir",
            os.devnull,
            str(directory),
        ],
        capture_output=True,
        text=True,
        cwd=directory,
        env={**os.environ, "MYPYPATH": str(ROOT)},
        timeout=300,
    )


@pytest.mark.parametrize("document", TYPE_CHECKED + MARKED_ONLY, ids=lambda p: p.name)
def test_examples_pass_mypy_strict(document: Path, tmp_path: Path) -> None:
    blocks = python_blocks(document)
    assert blocks, f"no python examples found in {document.name}"
    for number, code in enumerate(blocks):
        (tmp_path / f"example_{number}.py").write_text(code, encoding="utf-8")
    result = run_mypy(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_policy_mode_takes_a_string_and_reads_as_mode(tmp_path: Path) -> None:
    """``Policy(mode="hard-fail")`` type-checks, ``policy.mode`` is typed ``Mode`` (so
    ``.value`` type-checks), and a mode that is neither is still an error."""
    (tmp_path / "good.py").write_text(
        "from staplecheck import Mode, Policy\n"
        'policy = Policy(mode="hard-fail")\n'
        "mode: Mode = policy.mode\n"
        "value: str = policy.mode.value\n"
        "other = Policy(mode=Mode.SOFT_FAIL)\n",
        encoding="utf-8",
    )
    assert run_mypy(tmp_path).returncode == 0
    (tmp_path / "bad.py").write_text(
        "from staplecheck import Policy\nPolicy(mode=3)\n", encoding="utf-8"
    )
    result = run_mypy(tmp_path)
    assert result.returncode == 1
    assert 'Argument "mode" to "Policy"' in result.stdout, result.stdout
