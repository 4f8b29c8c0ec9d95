#!/usr/bin/env python3
"""Check the sdist and wheel that ``python -m build`` made in DIST (.ci/run runs this).

What must hold for what the package index receives:

- both carry the MIT LICENSE, declared the PEP 639 way (License-Expression and
  License-File), and the project URLs;
- the wheel carries the package, its test helper and py.typed, and nothing else;
- the sdist carries no tests (MANIFEST.in says why);
- the long description links only to absolute URLs (relative ones are dead on the
  index) and shows the user's install line;
- the version is staplecheck.__version__, the one place it is written.
"""

from __future__ import annotations

import email.parser
import re
import sys
import tarfile
import zipfile
from email.message import Message
from pathlib import Path

import staplecheck

HOME = "https://github.com/staplecheck/staplecheck"
URLS = {
    "Homepage": HOME,
    "Documentation": f"{HOME}/blob/main/docs/usage.md",
    "Source": HOME,
    "Issues": f"{HOME}/issues",
}
PROBLEMS: list[str] = []


def check(condition: bool, problem: str) -> None:
    if not condition:
        PROBLEMS.append(problem)


def check_metadata(where: str, metadata: Message) -> None:
    check(metadata["Version"] == staplecheck.__version__, f"{where}: version {metadata['Version']}")
    check(metadata["License-Expression"] == "MIT", f"{where}: no License-Expression: MIT")
    check(metadata.get_all("License-File") == ["LICENSE"], f"{where}: License-File")
    check(metadata["License"] is None, f"{where}: the deprecated License field")
    urls = dict(u.split(", ", 1) for u in metadata.get_all("Project-URL") or [])
    check(urls == URLS, f"{where}: project URLs {urls}")
    description = metadata.get_payload()
    assert isinstance(description, str)
    links = re.findall(r"\]\(([^)]*)\)", description)
    check(bool(links), f"{where}: no links in the long description")
    for link in links:
        check(link.startswith("https://"), f"{where}: a relative link {link!r} in the description")
    check(
        'pip install "staplecheck[requests]"' in description,
        f"{where}: no user install line in the description",
    )


def check_wheel(path: Path) -> None:
    with zipfile.ZipFile(path) as wheel:
        names = wheel.namelist()
        info = f"staplecheck-{staplecheck.__version__}.dist-info"
        metadata = email.parser.Parser().parsestr(wheel.read(f"{info}/METADATA").decode())
        license_path = f"{info}/licenses/LICENSE"
        license_text = wheel.read(license_path).decode() if license_path in names else ""
    check_metadata(path.name, metadata)
    check(license_text.startswith("MIT License"), f"{path.name}: no MIT {license_path}")
    for required in ("staplecheck/py.typed", "staplecheck/__init__.py", "staplecheck/testing/"):
        check(any(n.startswith(required) for n in names), f"{path.name}: no {required}")
    outside = [n for n in names if not n.startswith(("staplecheck/", f"{info}/"))]
    check(outside == [], f"{path.name}: files outside the package: {outside}")


def check_sdist(path: Path) -> None:
    top = f"staplecheck-{staplecheck.__version__}"
    with tarfile.open(path) as sdist:
        names = [n.removeprefix(f"{top}/") for n in sdist.getnames()]
        pkg_info = sdist.extractfile(f"{top}/PKG-INFO")
        assert pkg_info is not None
        metadata = email.parser.Parser().parsestr(pkg_info.read().decode())
    check_metadata(path.name, metadata)
    for required in ("LICENSE", "README.md", "pyproject.toml", "staplecheck/py.typed"):
        check(required in names, f"{path.name}: no {required}")
    tests = [n for n in names if n.startswith("tests") or "/test_" in n]
    check(tests == [], f"{path.name}: carries tests without what they need: {tests}")


def main(directory: str) -> int:
    dist = Path(directory)
    wheels, sdists = sorted(dist.glob("*.whl")), sorted(dist.glob("*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        print(f"check_dist: expected one wheel and one sdist in {dist}", file=sys.stderr)
        return 1
    check_wheel(wheels[0])
    check_sdist(sdists[0])
    for problem in PROBLEMS:
        print(f"check_dist: {problem}", file=sys.stderr)
    if not PROBLEMS:
        print(f"check_dist: {wheels[0].name} and {sdists[0].name} are complete")
    return 1 if PROBLEMS else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
