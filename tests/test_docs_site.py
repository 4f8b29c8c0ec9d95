"""The docs site's structure, checked without building it (CI's docs stage builds it).

Every page is in the navigation, and every command of the parser has a page and a
capture function in docs/capture.py, whose snippets the pages include.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

from staplecheck.cli._main import _build_parser

DOCS = Path(__file__).resolve().parent.parent / "docs"
NOT_PAGES = {"_build", "_captured"}
TOCTREE = re.compile(r"^```\{toctree\}\n(.*?)^```$", re.S | re.M)
INCLUDE = re.compile(r"^```\{literalinclude\} \.\./_captured/([\w-]+)\.txt$", re.M)


def pages() -> set[str]:
    """Every page, as a docname: its path under docs/ without ``.md``."""
    found = set()
    for path in DOCS.rglob("*.md"):
        relative = path.relative_to(DOCS)
        if not NOT_PAGES & set(relative.parts):
            found.add(relative.with_suffix("").as_posix())
    return found


def toctree_entries(docname: str) -> list[str]:
    """The docnames a page's toctrees list, resolved from the page's folder."""
    text = (DOCS / f"{docname}.md").read_text(encoding="utf-8")
    folder = Path(docname).parent
    entries = []
    for block in TOCTREE.findall(text):
        for line in block.splitlines():
            line = line.strip()
            if line and not line.startswith(":"):
                entries.append((folder / line).as_posix())
    return entries


def reachable() -> set[str]:
    seen, todo = set(), ["index"]
    while todo:
        docname = todo.pop()
        if docname not in seen:
            seen.add(docname)
            todo.extend(toctree_entries(docname))
    return seen


def subcommands() -> set[str]:
    parser = _build_parser()
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert len(actions) == 1
    return set(actions[0].choices)


@pytest.fixture(scope="module")
def capture() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_capture", DOCS / "capture.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def written_snippets() -> set[str]:
    """The names capture.py passes to ``session.write``: string literals, by design."""
    tree = ast.parse((DOCS / "capture.py").read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "write"
        ):
            first = node.args[0]
            where = f"capture.py line {node.lineno}: name snippets with string literals"
            assert isinstance(first, ast.Constant), where
            assert isinstance(first.value, str), where
            names.add(first.value)
    return names


def included_snippets() -> dict[str, set[str]]:
    """Snippet name -> the pages that include it."""
    found: dict[str, set[str]] = {}
    for docname in pages():
        text = (DOCS / f"{docname}.md").read_text(encoding="utf-8")
        for name in INCLUDE.findall(text):
            found.setdefault(name, set()).add(docname)
    return found


def test_every_page_is_in_the_navigation() -> None:
    listed = reachable()
    assert listed - pages() == set(), "a toctree lists a page that does not exist"
    assert pages() - listed == set(), "pages in no toctree (add them to docs/index.md)"
    assert {"usage", "httpx", "cli", "api", "reference/staplecheck"} <= listed


def test_the_navigation_check_sees_an_orphan(tmp_path: Path) -> None:
    # The check above would pass vacuously if it found no toctree at all.
    assert len(toctree_entries("index")) >= 15
    assert "cli/check" in toctree_entries("cli")


def test_every_command_has_a_capture_and_a_page(capture: ModuleType) -> None:
    commands = subcommands()
    assert {"verify", "check", "demo"} <= commands
    assert set(capture.COMMANDS) == commands, (
        "docs/capture.py's COMMANDS must name every subcommand of the parser"
    )
    assert {c for c in commands if not (DOCS / "cli" / f"{c}.md").is_file()} == set()
    assert {f"cli/{c}" for c in commands} <= set(toctree_entries("cli"))


def test_every_command_page_shows_captured_output() -> None:
    shown = {page for pages_ in included_snippets().values() for page in pages_}
    assert {f"cli/{c}" for c in subcommands()} <= shown


def test_every_included_snippet_is_captured_and_every_capture_shown() -> None:
    written, included = written_snippets(), set(included_snippets())
    assert included - written == set(), "pages include output that capture.py never writes"
    assert written - included == set(), "capture.py writes output that no page shows"
