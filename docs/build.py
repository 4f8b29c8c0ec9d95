"""Build the docs site as CI does: capture, build strictly, check the API reference.

1. ``docs/capture.py`` runs every command against local servers and writes what they
   printed to ``docs/_captured/``, which the command pages include;
2. ``sphinx-build -W --keep-going -n``: every warning is an error (a link to a page or
   heading that does not exist, a page in no toctree, a docstring reference that does
   not resolve, bad reST in a docstring, a missing include);
3. every name in the public modules' ``__all__`` has an entry in the API reference.

Usage, in a venv with the ``docs`` extra (``pip install -e '.[docs]'``)::

    python docs/build.py [OUTPUT_DIR]      # default docs/_build/html
"""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import time
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS))

import capture  # noqa: E402 (docs/ is not a package)
from conf import PUBLIC_MODULES, SAME_OBJECT  # noqa: E402


def missing_from_reference(html: Path) -> list[str]:
    """Public names (``module.name``) without an entry on their reference page."""
    ids: set[str] = set()
    for page in (html / "reference").glob("*.html"):
        ids.update(re.findall(r'id="([^"]+)"', page.read_text(encoding="utf-8")))
    missing = []
    for name in PUBLIC_MODULES:
        for member in importlib.import_module(name).__all__:
            full = f"{name}.{member}"
            if SAME_OBJECT.get(full, full) not in ids:
                missing.append(full)
    return missing


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    html = Path(args[0]) if args else DOCS / "_build" / "html"
    started = time.monotonic()
    capture.main([str(capture.DEFAULT_OUTPUT)])
    captured = time.monotonic()
    build = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-q", "-E"]
    done = subprocess.run([*build, "-b", "html", str(DOCS), str(html)], check=False)
    if done.returncode:
        print("docs: the strict build failed (warnings above)", file=sys.stderr)
        return 1
    missing = missing_from_reference(html)
    if missing:
        print(f"docs: not in the API reference: {', '.join(missing)}", file=sys.stderr)
        return 1
    print(
        f"docs: built {html} (capture {captured - started:.0f} s,"
        f" build {time.monotonic() - captured:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
