"""scripts/render_interop.py renders a small synthetic results file as expected."""

from __future__ import annotations

import dataclasses
import datetime
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from .matrix import Outcome, read_all

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "render_interop.py"
VERSIONS = {"nginx": "nginx version: nginx/1.0-test", "curl": "curl 0.0-test"}
DATE = datetime.date(2026, 11, 21)


@pytest.fixture(scope="module")
def renderer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("render_interop", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("render_interop", module)
    spec.loader.exec_module(module)
    return module


def _outcome(**fields: object) -> Outcome:
    base: dict[str, object] = {
        "server": "nginx (file)",
        "tls_version": "1.3",
        "case": "good",
        "client": "soft-fail",
        "accepted": True,
        "status": "good",
        "expected": True,
        "note": "",
    }
    return Outcome(**{**base, **fields})  # type: ignore[arg-type]


SYNTHETIC = [
    _outcome(client="off", status=None),
    _outcome(),
    _outcome(client="must-staple"),
    _outcome(client="curl --cert-status", expected=None),
    _outcome(case="revoked", client="soft-fail", accepted=False, status="revoked", expected=False),
    # A cell that is not what the table says.
    _outcome(case="revoked", client="must-staple", accepted=True, status="revoked", expected=False),
    _outcome(
        case="revoked",
        client="curl --cert-status",
        accepted=False,
        status="revoked",
        expected=None,
        note="curl exit 91: SSL certificate revocation reason: keyCompromise (1)",
    ),
    _outcome(tls_version="1.2", note="seen in TLS 1.2 only"),
    _outcome(
        server="Made-up server",
        tls_version="1.2",
        case="stale",
        accepted=True,
        status="missing",
        note="the server drops a stale staple",
    ),
    _outcome(
        server="Made-up server",
        tls_version="1.2",
        case="stale",
        client="must-staple",
        accepted=False,
        status="missing",
        expected=False,
        note="the server drops a stale staple",
    ),
]


@pytest.fixture
def results(tmp_path: Path) -> Path:
    path = tmp_path / "results.jsonl"
    path.write_text(
        "".join(json.dumps(dataclasses.asdict(o)) + "\n" for o in SYNTHETIC), encoding="utf-8"
    )
    assert read_all(path) == SYNTHETIC
    return path


def _section(page: str, server: str) -> str:
    start = page.index(f"## {server}\n")
    end = page.find("\n## ", start + 1)
    return page[start : None if end < 0 else end]


def test_render_tables_marks_and_notes(renderer: ModuleType, results: Path) -> None:
    page = renderer.render(read_all(results), versions=VERSIONS, date=DATE)
    assert page.startswith("# Interop matrix\n")
    assert "2026-11-21" in page
    assert f"{len(SYNTHETIC)} recorded outcomes" in page
    for program, version in VERSIONS.items():
        assert f"- {program}: {version}" in page

    nginx = _section(page, "nginx (file)")
    assert "| staple | TLS | off | soft-fail | must-staple | curl --cert-status |" in nginx
    assert (
        "| good | 1.3 | accepted (not asked) ✓ | accepted (good) ✓ | accepted (good) ✓ "
        "| accepted (good) |" in nginx
    )
    # The row with a missing cell (no "off" record) and a cell against the table.
    assert (
        "| revoked | 1.3 | — | REJECTED (revoked) ✓ | accepted (revoked) ✗ (table: reject) "
        "| REJECTED (revoked) |" in nginx
    )
    assert "1 not as the policy table says" in nginx
    assert "| good | 1.2 | — | accepted (good) ✓ | — | — |" in nginx
    assert "- *good* (TLS 1.2) [soft-fail]: seen in TLS 1.2 only" in nginx
    assert (
        "- *revoked* (TLS 1.3) [curl --cert-status]: curl exit 91: SSL certificate revocation"
        in nginx
    )
    assert (
        "curl --cert-status and must-staple disagree on: *revoked* (TLS 1.3: curl rejects)."
        in nginx
    )
    assert "curl --cert-status and soft-fail agree on every row." in nginx

    # A server the page does not plan for is rendered too, after the planned ones, with
    # only the columns it has.
    other = _section(page, "Made-up server")
    assert page.index("## Made-up server") > page.index(f"## {renderer.EXPECTED_SERVERS[-1]}")
    assert "| staple | TLS | soft-fail | must-staple |" in other
    assert "| stale | 1.2 | accepted (missing) ✓ | REJECTED (missing) ✓ |" in other
    assert "- *stale* [soft-fail, must-staple]: the server drops a stale staple" in other
    assert other.count("the server drops a stale staple") == 1  # once, not per cell
    assert "curl --cert-status and" not in other  # no curl column, no comparison

    # Planned servers without results get a line saying so.
    for server in renderer.EXPECTED_SERVERS:
        if server != "nginx (file)":
            assert f"## {server}\n\nNot run: no results were recorded for it." in page


def test_main_writes_the_page(
    renderer: ModuleType, results: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(renderer, "program_versions", lambda: VERSIONS)
    output = tmp_path / "docs" / "interop.md"
    assert renderer.main([str(results), "--output", str(output)]) == 0
    page = output.read_text(encoding="utf-8")
    assert page.startswith("# Interop matrix\n")
    assert "## nginx (file)" in page


def test_main_keeps_the_hand_written_tail(
    renderer: ModuleType, results: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(renderer, "program_versions", lambda: VERSIONS)
    output = tmp_path / "interop.md"
    tail = f"{renderer.HAND_WRITTEN}\n\n## cfssl (live OCSP)\n\nKept.\n"
    output.write_text("# Old matrix\n\n## gone\n\n" + tail, encoding="utf-8")
    for _ in range(2):  # rendering twice keeps it once
        assert renderer.main([str(results), "--output", str(output)]) == 0
        page = output.read_text(encoding="utf-8")
        assert page.startswith("# Interop matrix\n")
        assert "## gone" not in page
        assert page.endswith("\n\n" + tail)
        assert page.count(renderer.HAND_WRITTEN) == 1


def test_main_refuses_an_empty_results_file(renderer: ModuleType, tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    output = tmp_path / "interop.md"
    assert renderer.main([str(empty), "--output", str(output)]) == 1
    assert not output.exists()


def test_program_versions_names_every_program(renderer: ModuleType) -> None:
    versions = renderer.program_versions()
    assert set(renderer.VERSION_COMMANDS) <= set(versions)
    assert all(versions.values())
    assert versions["Python client"].startswith("Python ")
