"""The self-contained HTML scan report (``staplecheck scan --html``, issue 10 item 2).

The records are shaped like ``staplecheck scan --json`` lines by :func:`scan_records`
from real data: certificates from the testing PKI, staples and responder answers made
by its CA and judged by ``validate_staple`` at ``NOW``. The unit tests read the page
with the standard library's HTML and XML parsers; the browser tests render it in
headless Chromium (Debian's ``chromium``), read the DOM after the script ran, take a
screenshot and check that a hostile record neither runs nor fetches anything.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import datetime
import hashlib
import html.parser
import json
import re
import socket
import subprocess
import tempfile
import threading
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import AuthorityInformationAccessOID

from staplecheck.cli._html import (
    MAX_TEXT,
    PLOT_LEFT,
    PLOT_RIGHT,
    render_report,
)
from staplecheck.testing import CA, Identity
from staplecheck.validation._result import StapleResult, json_value
from staplecheck.validation._tlsfeature import has_must_staple
from staplecheck.validation._validate import validate_staple

from .conftest import NOW, require_program

DAY = datetime.timedelta(days=1)
HOUR = datetime.timedelta(hours=1)
WARN_DAYS = 14.0
Record = dict[str, Any]

# --- records from real certificates and staples -----------------------------------


def _iso(moment: datetime.datetime | None) -> str | None:
    return None if moment is None else json_value("t", moment)


def _left(moment: datetime.datetime | None, now: datetime.datetime) -> float | None:
    return None if moment is None else (moment - now).total_seconds()


def _ocsp_urls(cert: x509.Certificate) -> list[str]:
    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return []
    return [
        str(d.access_location.value)
        for d in aia
        if d.access_method == AuthorityInformationAccessOID.OCSP
    ]


def _crl_urls(cert: x509.Certificate) -> list[str]:
    try:
        points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        return []
    return [str(name.value) for point in points for name in point.full_name or ()]


def _staple_fields(result: StapleResult, now: datetime.datetime) -> Record:
    return {
        "status": result.status.value,
        "reason": result.reason,
        "this_update": _iso(result.this_update),
        "next_update": _iso(result.next_update),
        "seconds_left": _left(result.next_update, now),
    }


def scan_record(
    target: str,
    leaf: Identity,
    *,
    now: datetime.datetime,
    staple: bytes = b"",
    responder: bytes | None = None,
    milliseconds: float = 12.0,
    outcome: str = "ok",
    tls_version: str = "TLSv1.3",
    warnings: Sequence[str] = (),
) -> Record:
    """One scan record for a server that sent ``leaf`` and ``staple``, whose OCSP
    responder (when ``responder`` is given) answered that DER: both judged for real."""
    host, _, port = target.partition(":")
    issuer = leaf.issuer.cert
    staple_result = validate_staple(staple, leaf.cert, issuer, now=now)
    answer = None if responder is None else validate_staple(responder, leaf.cert, issuer, now=now)
    ocsp_urls = _ocsp_urls(leaf.cert)
    if staple_result.status.value != "missing":
        judged, source = staple_result, "staple"
    else:
        judged, source = answer, "ocsp"
    no_source = not staple and not ocsp_urls
    cert = leaf.cert
    return {
        "target": target,
        "host": host,
        "port": int(port or 443),
        "outcome": outcome,
        "error": None,
        "tls_version": tls_version,
        "must_staple": has_must_staple(cert),
        "staple": _staple_fields(staple_result, now),
        "ocsp_urls": ocsp_urls,
        "crl_urls": _crl_urls(cert),
        "responder": None
        if answer is None
        else {
            "status": answer.status.value,
            "reason": answer.reason,
            "url": ocsp_urls[0] if ocsp_urls else None,
            "milliseconds": milliseconds,
        },
        "agree": None
        if answer is None or staple_result.status.value == "missing"
        else answer.status == staple_result.status,
        "revocation": {
            "status": None if judged is None else judged.status.value,
            "source": None if judged is None else source,
            "accepted": outcome in {"ok", "warning"},
            "reason": None if judged is None else judged.reason,
        },
        "certificate": {
            "subject": cert.subject.rfc4514_string(),
            "issuer": cert.issuer.rfc4514_string(),
            "not_before": _iso(cert.not_valid_before_utc),
            "not_after": _iso(cert.not_valid_after_utc),
            "seconds_left": _left(cert.not_valid_after_utc, now),
        },
        "no_revocation_source": no_source,
        "warnings": list(warnings),
    }


@dataclasses.dataclass(frozen=True)
class Fleet:
    records: list[Record]
    ca: CA
    leaves: dict[str, Identity]


def scan_records(now: datetime.datetime = NOW) -> Fleet:
    """A fleet's scan: good, revoked, stale soon, no staple, no OCSP URL, must-staple
    without a staple, unreachable, wrong host. In the order a scan might print them."""
    ca = CA(now=now)
    inter = ca.create_intermediate()
    ocsp = "http://127.0.0.1:8080/ocsp"
    crl = "http://127.0.0.1:8080/inter.crl"

    def leaf(
        name: str, before: datetime.timedelta, after: datetime.timedelta, **kw: Any
    ) -> Identity:
        return inter.issue_cert(name, not_before=now - before, not_after=now + after, **kw)

    good = leaf("good.example", 30 * DAY, 60 * DAY, ocsp_url=ocsp, crl_url=crl)
    revoked = leaf("revoked.example", 10 * DAY, 80 * DAY, ocsp_url=ocsp)
    soon = leaf("soon.example", 85 * DAY, 5 * DAY, ocsp_url=ocsp)
    nostaple = leaf("nostaple.example", 20 * DAY, 200 * DAY, ocsp_url=ocsp, crl_url=crl)
    noocsp = leaf("noocsp.example", 40 * DAY, 50 * DAY)
    must = leaf("must.example", 2 * DAY, 88 * DAY, ocsp_url=ocsp, must_staple=True)

    def answer(who: Identity, status: str = "good", **kw: Any) -> bytes:
        return inter.ocsp_response(who, status, this_update=now - HOUR, **kw)

    records = [
        scan_record(
            "good.example:443",
            good,
            now=now,
            staple=answer(good, next_update=now + 6 * DAY),
            responder=answer(good, next_update=now + 6 * DAY),
        ),
        scan_record(
            "revoked.example:8443",
            revoked,
            now=now,
            staple=answer(revoked, "revoked", revocation_reason="keyCompromise"),
            responder=answer(revoked, "revoked", revocation_reason="keyCompromise"),
            milliseconds=30.6,
            outcome="refused",
        ),
        scan_record(
            "soon.example:443",
            soon,
            now=now,
            staple=answer(soon, next_update=now + 2 * HOUR),
            responder=answer(soon),
            milliseconds=7,
            outcome="warning",
            tls_version="TLSv1.2",
            warnings=["certificate expires in 5 days", "staple expires in 2 hours"],
        ),
        scan_record("nostaple.example:443", nostaple, now=now, responder=answer(nostaple)),
        scan_record("noocsp.example:443", noocsp, now=now),
        scan_record("must.example:443", must, now=now, outcome="refused"),
        {
            "target": "down.example:443",
            "host": "down.example",
            "port": 443,
            "outcome": "unreachable",
            "error": "connection refused",
        },
        {
            "target": "https://wrong.example/",
            "host": "wrong.example",
            "port": 443,
            "outcome": "error",
            "error": "certificate verify failed: Hostname mismatch",
        },
    ]
    names = {"good": good, "revoked": revoked, "soon": soon, "nostaple": nostaple}
    return Fleet(records, ca, {**names, "noocsp": noocsp, "must": must})


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    return scan_records()


# --- reading the page ------------------------------------------------------------


@dataclasses.dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    text: str = ""


class PageReader(html.parser.HTMLParser):
    """Every element with its attributes, and the text inside elements with an id."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self._open: list[Element] = []
        self.by_id: dict[str, Element] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs})
        self.elements.append(element)
        if "id" in element.attrs:
            self.by_id[element.attrs["id"]] = element
        if tag not in {"meta", "line", "rect", "br", "img", "input", "link"}:
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i].tag == tag:
                del self._open[i:]
                break

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element.text += data

    def tags(self, tag: str) -> list[Element]:
        return [e for e in self.elements if e.tag == tag]


def read_page(page: str) -> PageReader:
    reader = PageReader()
    reader.feed(page)
    reader.close()
    return reader


def summary(reader: PageReader) -> dict[str, int]:
    """The summary cards: key (``count-KEY``) -> number."""
    return {
        key.removeprefix("count-"): int(element.text.split()[0])
        for key, element in reader.by_id.items()
        if key.startswith("count-")
    }


def row_targets(page: str) -> list[str]:
    """The table's targets, in the order the rows are in the (possibly sorted) DOM."""
    body = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    reader = read_page(body)
    return [e.text for e in reader.tags("td") if e.attrs.get("class") == "target"]


def scan_data(page: str) -> Any:
    match = re.search(r'<script type="application/json" id="scan-data">(.*?)</script>', page)
    assert match is not None
    return json.loads(match.group(1))


def timelines(page: str) -> dict[str, ET.Element]:
    """Each host section's SVG, parsed as XML (the page writes it well-formed)."""
    charts = {}
    for match in re.finditer(r'<section class="[^"]*" id="(host-\d+)">(.*?)</section>', page, re.S):
        svg = re.search(r"<svg .*?</svg>", match.group(2), re.S)
        if svg:
            charts[match.group(1)] = ET.fromstring(svg.group(0))
    return charts


SVG = "{http://www.w3.org/2000/svg}"


def rect(chart: ET.Element, css: str) -> tuple[float, float]:
    found = [r for r in chart.iter(f"{SVG}rect") if css in r.get("class", "").split()]
    assert len(found) == 1, (css, found)
    return float(found[0].get("x", "nan")), float(found[0].get("width", "nan"))


# --- unit tests ----------------------------------------------------------------------


def test_summary_counts_every_outcome_and_problem(fleet: Fleet) -> None:
    page = render_report(fleet.records, now=NOW, warn_days=WARN_DAYS)
    counts = summary(read_page(page))
    assert counts == {
        "total": 8,
        "ok": 3,
        "warning": 1,
        "refused": 2,
        "unreachable": 1,
        "error": 1,
        # The revoked staple, as the staple's validation judged it.
        "revoked": 1,
        # soon.example's certificate (5 days) and every staple here (6 days at most).
        "expiring": 3,
        # nostaple, noocsp and must staple nothing.
        "no-staple": 3,
        "no-revocation-source": 1,
    }


def test_summary_expiry_follows_warn_days_and_now(fleet: Fleet) -> None:
    counts = summary(read_page(render_report(fleet.records, now=NOW, warn_days=0)))
    assert counts["expiring"] == 0
    # Ten days on, soon.example's certificate has expired and every staple is stale.
    later = summary(read_page(render_report(fleet.records, now=NOW + 10 * DAY, warn_days=1)))
    assert later["expiring"] == 3
    counts = summary(read_page(render_report(fleet.records, now=NOW, warn_days=51)))
    assert counts["expiring"] == 4  # noocsp.example's certificate (50 d) joins


def test_rows_worst_outcome_first_then_soonest_expiry(fleet: Fleet) -> None:
    page = render_report(fleet.records, now=NOW)
    assert row_targets(page) == [
        "https://wrong.example/",  # error
        "down.example:443",  # unreachable
        "revoked.example:8443",  # refused, its staple ends in a day
        "must.example:443",  # refused, certificate in 88 days
        "soon.example:443",  # warning
        "good.example:443",  # ok: staple in 6 days
        "noocsp.example:443",  # ok: certificate in 50 days
        "nostaple.example:443",  # ok: certificate in 200 days
    ]
    # The timelines come in the same order, each anchored from its row.
    sections = re.findall(r'<section class="[^"]*" id="host-(\d+)">', page)
    rows = re.findall(r'<tr id="row-(\d+)"', page)
    assert sections == rows
    assert sorted(int(i) for i in rows) == list(range(8))


def test_table_cells_show_each_field(fleet: Fleet) -> None:
    page = render_report(fleet.records, now=NOW)
    reader = read_page(page)
    revoked = reader.by_id["row-1"]
    cells = [c.text for c in reader.tags("td")]
    assert "revoked.example:8443" in revoked.text
    assert "refused" in revoked.text
    assert "31 ms" in revoked.text  # 30.6 rounded
    assert "revoked (staple)" in cells
    soon = reader.by_id["row-2"].text
    assert "TLSv1.2" in soon
    assert "2026-11-21 14:00 in 2 h" in soon  # the staple's nextUpdate
    assert "2026-11-26 12:00 in 5 d" in soon  # the certificate's notAfter
    assert "certificate expires in 5 days; staple expires in 2 hours" in soon
    assert "no revocation source" in reader.by_id["row-4"].text
    down = reader.by_id["host-6"].text
    assert "connection refused" in down
    # Details: subject, issuer, URLs.
    good = reader.by_id["host-0"].text
    assert "CN=good.example" in good
    assert "CN=staplecheck test intermediate" in good
    assert "http://127.0.0.1:8080/ocsp" in good
    assert "http://127.0.0.1:8080/inter.crl" in good


def test_missing_null_and_wrong_typed_fields_render() -> None:
    records: list[object] = [
        {"target": "only.example", "outcome": "unreachable"},
        {},
        {"host": "h.example", "port": 8443},
        {key: None for key in ("target", "host", "port", "outcome", "staple", "certificate")},
        {
            "target": 12,
            "outcome": ["ok"],
            "tls_version": {"x": 1},
            "must_staple": "yes",
            "staple": ["good"],
            "certificate": {"not_before": 5, "not_after": "tomorrow", "seconds_left": "x"},
            "responder": {"milliseconds": float("nan"), "status": 10**400},
            "revocation": "revoked",
            "ocsp_urls": "http://not-a-list/",
            "crl_urls": [1, None, {"a": 1}],
            "warnings": None,
            "agree": 1,
            "no_revocation_source": "true",
        },
        {
            "target": "far.example",
            "outcome": "ok",
            "staple": {"this_update": "0001-01-01T00:00:00Z", "next_update": None},
            "certificate": {
                "not_before": "0001-01-01T00:00:00+00:00",
                "not_after": "9999-12-31T23:59:59Z",
                "seconds_left": 1e300,
            },
        },
        "not a record",
        None,
    ]
    page = render_report(records, now=NOW)
    reader = read_page(page)
    assert len(reader.tags("tr")) == 1 + len(records)
    counts = summary(reader)
    assert counts["total"] == len(records)
    # Unknown outcomes count as "other" (and sort worst); non-records as errors.
    assert counts["other"] == 4
    assert counts["error"] == 2
    assert counts["ok"] == 1
    assert counts["unreachable"] == 1
    assert counts["revoked"] == 0
    assert counts["no-revocation-source"] == 0
    text = " ".join(e.text for e in reader.tags("td"))
    assert "(unreadable value)" in text
    assert "h.example:8443" in text
    assert "not a scan record" in text
    charts = timelines(page)
    assert len(charts) == 1  # only far.example has dates to draw
    (far,) = charts.values()
    x, width = rect(far, "cert")
    assert x == pytest.approx(PLOT_LEFT, abs=1)
    assert x + width == pytest.approx(PLOT_RIGHT, abs=1)
    assert json.dumps(scan_data(page))  # the JSON block parses


def test_seconds_left_stands_in_for_an_unreadable_date() -> None:
    records = [
        {
            "target": "a.example",
            "outcome": "ok",
            "certificate": {"not_after": "garbage", "seconds_left": 5 * 86400},
        },
        {"target": "b.example", "outcome": "ok", "certificate": {"not_after": "2026-11-23T12:00Z"}},
    ]
    page = render_report(records, now=NOW)
    reader = read_page(page)
    assert summary(reader)["expiring"] == 2
    assert row_targets(page) == ["b.example", "a.example"]  # soonest first
    assert "in 5 d" in reader.by_id["row-0"].text
    assert "2026-11-23 12:00 in 2 d" in reader.by_id["row-1"].text
    data = scan_data(page)
    column = data["columns"].index("cert_expires")
    keys = {row[0]: row[column] for row in data["rows"]}
    assert keys == {
        "a.example": NOW.timestamp() + 5 * 86400,
        "b.example": NOW.timestamp() + 2 * 86400,
    }
    assert timelines(page) == {}  # nothing to draw without both dates


HOSTILE = (
    "</script><script>document.title='pwned'</script><img src=x onerror=\"document.title='pwned'\">"
)


def hostile_record(port: int) -> Record:
    """Every string field of a record as an attack: markup, quotes, control and
    bidirectional characters, a lone surrogate (as JSON can carry), 10 KB strings, and
    URLs of a local listener that must never be fetched."""
    fetch = f"http://127.0.0.1:{port}"
    payloads = [
        HOSTILE,
        f"<img src='{fetch}/img'>' \" `<svg onload=alert(1)>",
        f'"><link rel=stylesheet href="{fetch}/css"><style>@import "{fetch}/import";</style>',
        f"<iframe src={fetch}/frame></iframe><meta http-equiv=refresh content='0;url={fetch}/r'>",
        "\x00\x1b[31mred\x07\r\n\u202egnp.exe\u2028\u2029\ud800 & &amp; ]]> <!-- -->",
        "A" * 10_000 + "<b>tail</b>",
        f"javascript:fetch('{fetch}/js')",
    ]
    text = iter(payloads * 4)
    return {
        "target": next(text),
        "host": next(text),
        "port": next(text),
        "outcome": next(text),
        "error": next(text),
        "tls_version": next(text),
        "must_staple": next(text),
        "staple": {
            "status": next(text),
            "reason": next(text),
            "this_update": next(text),
            "next_update": "2026-11-22T12:00:00Z",
            "seconds_left": next(text),
        },
        "ocsp_urls": [next(text), next(text)],
        "crl_urls": [f"{fetch}/crl", next(text)],
        "responder": {
            "status": next(text),
            "reason": next(text),
            "url": f"{fetch}/ocsp",
            "milliseconds": next(text),
        },
        "agree": next(text),
        "revocation": {
            "status": next(text),
            "source": next(text),
            "accepted": next(text),
            "reason": next(text),
        },
        "certificate": {
            "subject": next(text),
            "issuer": next(text),
            "not_before": "2026-01-01T00:00:00Z",
            "not_after": "2027-01-01T00:00:00Z",
            "seconds_left": 5,
        },
        "no_revocation_source": False,
        "warnings": [next(text) for _ in range(4)] * 10,
    }


def check_inert(page: str) -> None:
    """The markup a hostile record could add is not in the page: two scripts (data
    and code), no element or attribute it tried to add, no raw control character."""
    reader = read_page(page)
    scripts = reader.tags("script")
    assert [s.attrs.get("type") for s in scripts] == ["application/json", None]
    for tag in ("img", "iframe", "link", "b", "svg"):
        if tag == "svg":
            assert all(e.attrs.get("class") == "timeline" for e in reader.tags(tag))
        else:
            assert reader.tags(tag) == []
    assert len(reader.tags("style")) == 1
    assert len(reader.tags("meta")) == 4
    for element in reader.elements:
        assert not any(name.startswith("on") for name in element.attrs), element
    assert not re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u2028\u2029\u202e\ud800-\udfff]", page)
    page.encode("utf-8")  # a lone surrogate would not encode


def test_hostile_record_is_escaped_everywhere(fleet: Fleet) -> None:
    record = hostile_record(9)
    page = render_report([*fleet.records, record], now=NOW, title=HOSTILE)
    check_inert(page)
    reader = read_page(page)
    # The text is shown, escaped, not lost: the title, the target, the visible escapes.
    assert reader.tags("title")[0].text.startswith("</script><script>document.title=")
    assert reader.tags("h1")[0].text == reader.tags("title")[0].text
    assert "\\x00\\x1b[31mred\\x07\\x0d\\x0a\\u202egnp.exe\\u2028\\u2029\\ud800" in page
    # 10 KB strings are cut at MAX_TEXT characters and say how much is missing.
    assert "A" * MAX_TEXT + "… (" + str(10_000 + 11 - MAX_TEXT) + " more characters)" in page
    assert "A" * (MAX_TEXT + 1) not in page
    assert len(page) < 400_000
    # The JSON block: nothing that could end it, and the same text back.
    raw = re.search(r'id="scan-data">(.*?)</script>', page, re.S)
    assert raw is not None
    assert not re.search(r"[<>&\u2028\u2029]", raw.group(1))
    data = scan_data(page)
    targets = [row[0] for row in data["rows"]]
    assert HOSTILE.lower() in targets
    # The summary still counts: the hostile outcome is "other".
    assert summary(reader)["other"] == 1


def test_json_block_keys_match_the_rows(fleet: Fleet) -> None:
    page = render_report(fleet.records, now=NOW)
    data = scan_data(page)
    assert data["columns"][:2] == ["target", "outcome"]
    assert [row[0] for row in data["rows"]] == [t.lower() for t in row_targets(page)]
    cert_expires = data["columns"].index("cert_expires")
    good = next(row for row in data["rows"] if row[0] == "good.example:443")
    not_after = fleet.leaves["good"].cert.not_valid_after_utc
    assert good[cert_expires] == not_after.timestamp()
    assert all(len(row) == len(data["columns"]) for row in data["rows"])


def test_timeline_bars_sit_at_their_dates(fleet: Fleet) -> None:
    page = render_report(fleet.records, now=NOW)
    charts = timelines(page)
    # Every host with a certificate has a chart; unreachable and failed ones do not.
    assert sorted(charts) == [f"host-{i}" for i in range(6)]
    for index, name in enumerate(["good", "revoked", "soon", "nostaple", "noocsp", "must"]):
        chart = charts[f"host-{index}"]
        cert = fleet.leaves[name].cert
        start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
        x, width = rect(chart, "cert")
        assert PLOT_LEFT <= x < x + width <= PLOT_RIGHT

        def at(
            moment: datetime.datetime,
            x: float = x,
            width: float = width,
            start: datetime.datetime = start,
            end: datetime.datetime = end,
        ) -> float:
            """Where ``moment`` falls on the certificate bar's scale."""
            return x + width * (moment - start) / (end - start)

        (now_line,) = [e for e in chart.iter(f"{SVG}line") if e.get("class") == "now"]
        assert float(now_line.get("x1", "nan")) == pytest.approx(at(NOW), abs=0.05)
        record = fleet.records[index]
        texts = [t.text or "" for t in chart.iter(f"{SVG}text")]
        left = (end - NOW).days
        assert f"{start:%Y-%m-%d} → {end:%Y-%m-%d} (in {left} d)" in texts
        assert "now 2026-11-21" in texts
        staple = record["staple"]
        if staple["next_update"] is None:
            assert not [r for r in chart.iter(f"{SVG}rect") if "staple" in r.get("class", "")]
            assert f"no staple ({staple['status']})" in texts
            continue
        this_update = datetime.datetime.fromisoformat(staple["this_update"].replace("Z", "+00:00"))
        next_update = datetime.datetime.fromisoformat(staple["next_update"].replace("Z", "+00:00"))
        staple_x, staple_width = rect(chart, "staple")
        assert staple_x == pytest.approx(at(this_update), abs=0.05)
        assert staple_x + max(staple_width, 0) == pytest.approx(
            max(at(next_update), staple_x + 2), abs=0.05
        )
        status = f"status-{staple['status']}"
        assert any(status in r.get("class", "").split() for r in chart.iter(f"{SVG}rect"))
    # The expiring certificate's bar says so.
    soon = [r.get("class") for r in charts["host-2"].iter(f"{SVG}rect")]
    assert "bar cert soon" in soon


def test_same_input_same_page(fleet: Fleet) -> None:
    first = render_report(fleet.records, now=NOW, title="fleet")
    again = render_report(copy.deepcopy(fleet.records), now=NOW, title="fleet")
    assert first == again
    # Key order in the records does not matter; a different now does.
    shuffled = [dict(reversed(list(r.items()))) for r in fleet.records]
    assert render_report(shuffled, now=NOW, title="fleet") == first
    assert render_report(fleet.records, now=NOW + HOUR, title="fleet") != first
    # A now in another zone is the same moment.
    cet = datetime.timezone(datetime.timedelta(hours=1))
    assert render_report(fleet.records, now=NOW.astimezone(cet), title="fleet") == first


def test_content_security_policy_admits_only_the_page_s_own_code(fleet: Fleet) -> None:
    page = render_report(fleet.records, now=NOW)
    reader = read_page(page)
    (meta,) = [m for m in reader.tags("meta") if m.attrs.get("http-equiv")]
    policy = dict([*part.split(" ", 1), ""][:2] for part in meta.attrs["content"].split("; "))
    assert policy["default-src"] == "'none'"
    assert policy["base-uri"] == "'none'"
    assert "unsafe" not in meta.attrs["content"]
    code = re.search(r"<script>(.*?)</script>", page, re.S)
    style = re.search(r"<style>(.*?)</style>", page, re.S)
    assert code is not None
    assert style is not None

    def digest(text: str) -> str:
        return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"

    assert policy["script-src"] == digest(code.group(1))
    assert policy["style-src"] == digest(style.group(1))
    # The CSP comes before anything it governs.
    assert page.index("Content-Security-Policy") < page.index("<style>")
    assert "innerHTML" not in code.group(1)
    assert "eval" not in code.group(1)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        render_report([], now=NOW.replace(tzinfo=None))
    with pytest.raises(ValueError, match="warn_days"):
        render_report([], now=NOW, warn_days=-1)
    with pytest.raises(ValueError, match="warn_days"):
        render_report([], now=NOW, warn_days=float("nan"))
    empty = read_page(render_report([], now=NOW))
    assert summary(empty)["total"] == 0
    assert len(empty.tags("tr")) == 1


# --- in a real browser ----------------------------------------------------------------

WINDOW = (1100, 800)


def chromium(
    url: str, *options: str, resolver: str = "MAP * ~NOTFOUND"
) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium on ``url`` with a throwaway profile and no name resolution
    (so no request leaves the machine); the profile goes afterwards."""
    program = require_program("chromium")
    with tempfile.TemporaryDirectory(prefix="staplecheck-chromium-") as profile:
        return subprocess.run(
            [
                program,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                f"--user-data-dir={profile}",
                f"--host-resolver-rules={resolver}",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-default-apps",
                "--disable-extensions",
                "--disable-sync",
                "--hide-scrollbars",
                "--force-device-scale-factor=1",
                "--enable-logging=stderr",
                "--v=0",
                *options,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def dump_dom(path: Path, fragment: str = "", **kw: Any) -> str:
    result = chromium(path.as_uri() + fragment, "--dump-dom", **kw)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "</html>" in result.stdout, result.stderr[-2000:]
    return result.stdout


def screenshot(page: Path, png: Path, window: tuple[int, int] = WINDOW) -> bytes:
    result = chromium(
        page.as_uri(), f"--screenshot={png}", f"--window-size={window[0]},{window[1]}"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return png.read_bytes()


def png_chunks(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """The chunks of a PNG, each CRC checked."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos = 8
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        crc = int.from_bytes(data[pos + 8 + length : pos + 12 + length], "big")
        assert zlib.crc32(kind + body) == crc, kind
        yield kind, body
        pos += 12 + length
    assert pos == len(data)


def png_pixels(data: bytes, rows: int) -> tuple[int, int, list[tuple[int, ...]]]:
    """Width, height and the pixels of the first ``rows`` rows of an 8-bit RGB(A) PNG
    (the filters undone, as the PNG specification's section 9 says)."""
    chunks = list(png_chunks(data))
    assert chunks[0][0] == b"IHDR"
    assert chunks[-1][0] == b"IEND"
    header = chunks[0][1]
    width, height = int.from_bytes(header[0:4], "big"), int.from_bytes(header[4:8], "big")
    depth, colour, interlace = header[8], header[9], header[12]
    assert (depth, interlace) == (8, 0)
    assert colour in (2, 6)
    channels = 3 if colour == 2 else 4
    stride = width * channels
    rows = min(rows, height)
    idat = b"".join(body for kind, body in chunks if kind == b"IDAT")
    raw = zlib.decompressobj().decompress(idat, rows * (stride + 1))
    previous = bytearray(stride)
    pixels: list[tuple[int, ...]] = []
    for r in range(rows):
        kind = raw[r * (stride + 1)]
        line = bytearray(raw[r * (stride + 1) + 1 : (r + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                corner = previous[i - channels] if i >= channels else 0
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                best = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + best) & 0xFF
        pixels.extend(tuple(line[i : i + 3]) for i in range(0, stride, channels))
        previous = line
    return width, height, pixels


def test_chromium_renders_summary_table_and_charts(fleet: Fleet, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render_report(fleet.records, now=NOW), encoding="utf-8")
    dom = dump_dom(page)
    reader = read_page(dom)
    assert summary(reader) == summary(read_page(page.read_text(encoding="utf-8")))
    assert summary(reader)["refused"] == 2
    assert len(reader.tags("tr")) == 9
    assert len(reader.tags("svg")) == 6
    assert len(reader.tags("rect")) == 6 + 3  # certificates and the three staples
    # The script ran (the CSP admitted it) but had nothing to do: no fragment.
    assert "data-sorted" not in reader.by_id["scan-table"].attrs
    assert row_targets(dom) == row_targets(page.read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    ("fragment", "expected"),
    [
        (
            "#sort=cert_expires",  # soonest first; no certificate last, in page order
            [
                "soon.example:443",
                "noocsp.example:443",
                "good.example:443",
                "revoked.example:8443",
                "must.example:443",
                "nostaple.example:443",
                "https://wrong.example/",
                "down.example:443",
            ],
        ),
        (
            "#sort=-target",
            [
                "soon.example:443",
                "revoked.example:8443",
                "nostaple.example:443",
                "noocsp.example:443",
                "must.example:443",
                "https://wrong.example/",
                "good.example:443",
                "down.example:443",
            ],
        ),
    ],
)
def test_chromium_sorts_by_the_fragment(
    fleet: Fleet, tmp_path: Path, fragment: str, expected: list[str]
) -> None:
    page = tmp_path / "report.html"
    page.write_text(render_report(fleet.records, now=NOW), encoding="utf-8")
    dom = dump_dom(page, fragment)
    assert row_targets(dom) == expected
    reader = read_page(dom)
    key = fragment.removeprefix("#sort=")
    assert reader.by_id["scan-table"].attrs["data-sorted"] == key
    headers = {th.attrs["data-key"]: th for th in reader.tags("th")}
    column = key.lstrip("-")
    assert headers[column].attrs["aria-sort"] == ("descending" if key[0] == "-" else "ascending")
    # A second click on the sorted column reverses it: the header links there.
    links = [a.attrs["href"] for a in reader.tags("a") if a.attrs["href"].startswith("#sort=")]
    assert ("#sort=" + (column if key[0] == "-" else "-" + column)) in links
    assert all(headers[c].attrs["aria-sort"] == "none" for c in headers if c != column)


def test_chromium_without_javascript_shows_the_plain_table(fleet: Fleet, tmp_path: Path) -> None:
    # Chromium's --dump-dom needs scripting on, so the page goes without its script.
    page = tmp_path / "report.html"
    text = render_report(fleet.records, now=NOW)
    without, removed = re.subn(r"<script>.*?</script>", "", text, flags=re.S)
    assert removed == 1
    page.write_text(without, encoding="utf-8")
    dom = dump_dom(page, "#sort=-target")
    reader = read_page(dom)
    assert "data-sorted" not in reader.by_id["scan-table"].attrs
    assert row_targets(dom) == row_targets(text)  # the default order, every row
    assert summary(reader)["total"] == 8
    assert len(reader.tags("svg")) == 6


def test_chromium_screenshot_is_the_page(fleet: Fleet, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render_report(fleet.records, now=NOW), encoding="utf-8")
    data = screenshot(page, tmp_path / "report.png")
    width, height, pixels = png_pixels(data, rows=260)
    assert (width, height) == WINDOW
    colours = set(pixels)
    assert len(colours) > 50  # text and colours, not a blank page
    white = sum(p == (255, 255, 255) for p in pixels)
    assert 0.5 < white / len(pixels) < 0.98
    # The stylesheet applied (the CSP admitted it): the red and yellow summary cards.
    assert (255, 235, 233) in colours
    assert (255, 248, 197) in colours


class Listener:
    """A loopback HTTP port that counts connections and answers each with a 404."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.requests: list[bytes] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    self.requests.append(conn.recv(4096))
                    conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                except OSError:
                    pass

    def close(self) -> None:
        # Wakes the accept() (closing alone does not, on Linux).
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._thread.join(timeout=10)


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    try:
        yield server
    finally:
        server.close()


def test_chromium_hostile_record_neither_runs_nor_fetches(
    fleet: Fleet, tmp_path: Path, listener: Listener
) -> None:
    # Loopback stays reachable so that an escape would show as a request.
    loopback = "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"
    # The listener sees what Chromium fetches: the same markup, raw, is fetched.
    probe = tmp_path / "probe.html"
    probe.write_text(f'<img src="http://127.0.0.1:{listener.port}/probe">', encoding="utf-8")
    dump_dom(probe, resolver=loopback)
    assert len(listener.requests) == 1
    assert b"GET /probe " in listener.requests[0]
    listener.requests.clear()

    page = tmp_path / "hostile.html"
    record = hostile_record(listener.port)
    page.write_text(
        render_report([*fleet.records, record], now=NOW, title=HOSTILE), encoding="utf-8"
    )
    dom = dump_dom(page, "#sort=target", resolver=loopback)
    assert listener.requests == []
    reader = read_page(dom)
    assert reader.tags("title")[0].text.startswith("</script>")  # not 'pwned'
    assert len(reader.tags("script")) == 2
    assert reader.tags("img") == []
    assert reader.tags("iframe") == []
    # The page still works: summary, every row, sorted by the script.
    assert summary(reader)["total"] == 9
    assert len(reader.tags("tr")) == 10
    assert reader.by_id["scan-table"].attrs["data-sorted"] == "target"
    assert row_targets(dom)[0] == HOSTILE
    # And it renders.
    data = screenshot(page, tmp_path / "hostile.png")
    assert listener.requests == []
    width, height, pixels = png_pixels(data, rows=120)
    assert (width, height) == WINDOW
    assert len(set(pixels)) > 20


def test_chromium_reports_no_policy_violation(fleet: Fleet, tmp_path: Path) -> None:
    """The page's own script and style pass its CSP: Chromium logs no refusal."""
    page = tmp_path / "report.html"
    page.write_text(render_report(fleet.records, now=NOW), encoding="utf-8")
    result = chromium(page.as_uri(), "--dump-dom")
    assert result.returncode == 0
    assert "Content Security Policy" not in result.stderr
    # And a page whose script was changed after hashing is refused (the check can fail).
    tampered = tmp_path / "tampered.html"
    tampered.write_text(
        page.read_text(encoding="utf-8").replace('"use strict";', '"use strict"; ', 1),
        encoding="utf-8",
    )
    result = chromium(tampered.as_uri() + "#sort=-target", "--dump-dom")
    assert "Content Security Policy" in result.stderr
    assert "data-sorted" not in read_page(result.stdout).by_id["scan-table"].attrs


# --- the documentation's screenshot ------------------------------------------------------


def docs_screenshot(output: Path, records: Sequence[Mapping[str, Any]] | None = None) -> None:
    """Write the screenshot docs/cli.md shows (scripts/html_report_screenshot.py)."""
    fleet = scan_records()
    with tempfile.TemporaryDirectory(prefix="staplecheck-report-") as work:
        page = Path(work) / "report.html"
        page.write_text(
            render_report(records or fleet.records, now=NOW, title="staplecheck scan: fleet"),
            encoding="utf-8",
        )
        screenshot(page, output, window=(1200, 1300))
