#!/usr/bin/env python3
"""Regenerate docs/img/scan-report.png, the HTML scan report's screenshot in docs/cli.md.

Usage (needs Debian's ``chromium``)::

    python3 scripts/html_report_screenshot.py [OUTPUT.png]

The page is the one tests/test_html_report.py renders: a fleet's records built from the
testing PKI (good, revoked, expiring soon, no staple, no OCSP URL, must-staple without a
staple, unreachable, wrong host) as of the tests' fixed ``NOW``, so the picture changes
only when the report does. Headless Chromium takes it, with no network, as the tests do.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(ROOT))
    from tests.test_html_report import docs_screenshot

    output = Path(argv[0]) if argv else ROOT / "docs" / "img" / "scan-report.png"
    docs_screenshot(output)
    print(f"{output}: {output.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
