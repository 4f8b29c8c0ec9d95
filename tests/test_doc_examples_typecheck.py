"""The README's Python examples pass ``mypy --strict``: what users copy must type-check.

Each ```python block is written to its own module and checked against this checkout's
staplecheck (``MYPYPATH``: an editable install is invisible to mypy).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TYPE_CHECKED = [ROOT / "README.md"]
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def python_blocks(document: Path) -> list[str]:
    return _BLOCK.findall(document.read_text(encoding="utf-8"))


@pytest.mark.parametrize("document", TYPE_CHECKED, ids=lambda p: p.name)
def test_examples_pass_mypy_strict(document: Path, tmp_path: Path) -> None:
    blocks = python_blocks(document)
    assert blocks, f"no python examples found in {document.name}"
    for number, code in enumerate(blocks):
        (tmp_path / f"example_{number}.py").write_text(code, encoding="utf-8")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--cache-dir",
            os.devnull,
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "MYPYPATH": str(ROOT)},
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
