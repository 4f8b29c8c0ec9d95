"""``staplecheck scan --html``: one self-contained HTML page from the scan's records.

The page needs no network to be viewed: its CSS and script are inline, its charts are
inline SVG, and its Content-Security-Policy allows nothing else (the script and the
style are admitted by their SHA-256 hashes, no ``unsafe-inline``, no ``unsafe-eval``).

Every string in a record is hostile: subject names and reasons come from servers and
responders, targets from whoever wrote the list. Every one is truncated, has its
control and bidirectional-formatting characters made visible, and is HTML-escaped
(quotes included) wherever it lands; the sortable table's keys travel as JSON in a
``<script type="application/json">`` block with ``<``, ``>``, ``&`` and U+2028/2029
escaped, and the script only moves the rows the page already has (no ``innerHTML``).
Values of the wrong type are shown as unreadable, never a traceback.

The page is a pure function of the records, ``now`` and the options: the same input
gives the same bytes.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import hashlib
import html
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["DEFAULT_TITLE", "DEFAULT_WARN_DAYS", "MAX_TEXT", "OUTCOMES", "render_report"]

DEFAULT_TITLE = "staplecheck scan report"
DEFAULT_WARN_DAYS = 14.0
MAX_TEXT = 300
"""Characters of any one string shown; the rest is counted, not shown (a hostile
subject name of megabytes must not make a page of megabytes)."""
MAX_LIST = 20
"""Items of any one list (URLs, warnings) shown."""
OUTCOMES = ("error", "unreachable", "refused", "warning", "ok")
"""The scan's outcomes, worst first: the page's default order."""

_UTC = datetime.timezone.utc
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=_UTC)
_UNREADABLE = "(unreadable value)"

# --- hostile strings -------------------------------------------------------------


def _clean(value: str) -> str:
    """``value`` shortened to MAX_TEXT characters, with every character Python does not
    call printable written as a visible ``\\x..``/``\\u....`` escape: controls (a
    terminal's escape sequences), bidirectional overrides and other formatting
    characters that make one name look like another, line separators, and lone
    surrogates (which could not even be encoded as UTF-8). Not yet HTML-escaped."""
    extra = len(value) - MAX_TEXT
    if extra > 0:
        value = value[:MAX_TEXT]
    out = []
    for char in value:
        if char.isprintable():
            out.append(char)
        else:
            code = ord(char)
            if code < 0x100:
                out.append(f"\\x{code:02x}")
            else:
                out.append(f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    text = "".join(out)
    if extra > 0:
        text += f"… ({extra} more characters)"
    return text


def _text(value: object) -> str | None:
    """A scalar as display text (not escaped); ``None`` when absent."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return _clean(value)
    if isinstance(value, int):
        # str() of a huge int raises (and costs quadratic time): a hostile number.
        return str(value) if abs(value) < 10**18 else _UNREADABLE
    if isinstance(value, float):
        return f"{value:g}" if math.isfinite(value) else _UNREADABLE
    return _UNREADABLE


def _e(value: str) -> str:
    return html.escape(value, quote=True)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value) if abs(value) < 1e15 else math.nan
    return number if math.isfinite(number) else None


def _time(value: object) -> datetime.datetime | None:
    """An ISO 8601 time as an aware UTC datetime; ``None`` when absent or unreadable
    (a time without a zone is taken as UTC, as the scan writes UTC)."""
    if not isinstance(value, str) or len(value) > 40:
        return None
    if value[-1:] in ("Z", "z"):
        value = value[:-1] + "+00:00"  # Python 3.10's fromisoformat takes no "Z"
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_UTC)
    try:
        return moment.astimezone(_UTC)
    except (OverflowError, ValueError):
        return None


def _sub(record: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = record.get(key)
    return value if isinstance(value, Mapping) else {}


def _strings(value: object) -> list[str]:
    """A list of strings, cleaned, at most MAX_LIST of them (plus a count)."""
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        return [_UNREADABLE]
    shown = [_text(item) or "" for item in value[:MAX_LIST]]
    if len(value) > MAX_LIST:
        shown.append(f"… ({len(value) - MAX_LIST} more)")
    return shown


# --- dates and durations -----------------------------------------------------------


def _date(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _table_date(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M")


def _short_date(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%d")


def _duration(seconds: float) -> str:
    """``3 d 4 h``, ``5 h 10 min``, ``42 s``: two units at most."""
    seconds = abs(seconds)
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days >= 365 * 3:
        return f"{days // 365} years"
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min"
    return f"{secs} s"


def _left(seconds: float) -> str:
    return f"in {_duration(seconds)}" if seconds >= 0 else f"{_duration(seconds)} ago"


# --- one record, read -----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Expiry:
    """When something ends and how that compares with ``now`` and the warning days."""

    at: datetime.datetime | None
    seconds_left: float | None
    sort_key: float | None
    """Seconds since 1970: the table sorts by it."""

    @property
    def known(self) -> bool:
        return self.seconds_left is not None

    def within(self, warn_seconds: float) -> bool:
        return self.seconds_left is not None and self.seconds_left <= warn_seconds


def _expiry(at_value: object, left_value: object, now: datetime.datetime) -> _Expiry:
    at = _time(at_value)
    if at is not None:
        return _Expiry(at, (at - now).total_seconds(), (at - _EPOCH).total_seconds())
    # No readable date: the scan's own count of seconds, taken at the scan.
    left = _number(left_value)
    key = None if left is None else (now - _EPOCH).total_seconds() + left
    return _Expiry(None, left, key)


@dataclasses.dataclass(frozen=True)
class _Row:
    index: int
    record: Mapping[str, Any]
    target: str
    outcome: str
    rank: int
    staple: Mapping[str, Any]
    responder: Mapping[str, Any]
    revocation: Mapping[str, Any]
    certificate: Mapping[str, Any]
    staple_expiry: _Expiry
    cert_expiry: _Expiry


def _read(index: int, record: object, now: datetime.datetime) -> _Row:
    if not isinstance(record, Mapping):
        record = {"outcome": "error", "error": "not a scan record (not a JSON object)"}
    outcome = record.get("outcome")
    outcome_text = outcome if isinstance(outcome, str) and outcome in OUTCOMES else None
    target = _text(record.get("target"))
    if target is None:
        host, port = _text(record.get("host")), _text(record.get("port"))
        target = f"{host}:{port}" if host and port else host or "(no target)"
    staple = _sub(record, "staple")
    certificate = _sub(record, "certificate")
    return _Row(
        index=index,
        record=record,
        target=target,
        outcome=outcome_text or "other",
        # Outcomes the page does not know are treated as the worst.
        rank=OUTCOMES.index(outcome_text) if outcome_text else -1,
        staple=staple,
        responder=_sub(record, "responder"),
        revocation=_sub(record, "revocation"),
        certificate=certificate,
        staple_expiry=_expiry(staple.get("next_update"), staple.get("seconds_left"), now),
        cert_expiry=_expiry(certificate.get("not_after"), certificate.get("seconds_left"), now),
    )


def _revoked(row: _Row) -> bool:
    return "revoked" in (row.revocation.get("status"), row.staple.get("status"))


# --- the summary ------------------------------------------------------------------


def _summary(rows: Sequence[_Row], warn_seconds: float, warn_days: float) -> str:
    counts = {outcome: 0 for outcome in (*OUTCOMES[::-1], "other")}
    for row in rows:
        counts[row.outcome] += 1
    certs_soon = sum(row.cert_expiry.within(warn_seconds) for row in rows)
    staples_soon = sum(row.staple_expiry.within(warn_seconds) for row in rows)
    soon = sum(
        row.cert_expiry.within(warn_seconds) or row.staple_expiry.within(warn_seconds)
        for row in rows
    )
    days = f"{warn_days:g}"
    cards = [("total", "targets", len(rows), "")]
    cards += [
        (outcome, outcome, n, "")
        for outcome, n in counts.items()
        if outcome != "other" or n  # "other" only when a record had an unknown outcome
    ]
    cards += [
        ("revoked", "revoked", sum(_revoked(row) for row in rows), ""),
        (
            "expiring",
            f"expiring within {days} days",
            soon,
            f"certificates {certs_soon}, staples {staples_soon} (expired ones included)",
        ),
        (
            "no-staple",
            "no staple",
            sum(row.staple.get("status") == "missing" for row in rows),
            "",
        ),
        (
            "no-revocation-source",
            "no revocation source",
            sum(row.record.get("no_revocation_source") is True for row in rows),
            "no staple and no OCSP URL",
        ),
    ]
    items = []
    for key, label, n, note in cards:
        alert = " alert" if n and key not in {"total", "ok"} else ""
        title = f' title="{_e(note)}"' if note else ""
        items.append(
            f'<li class="card card-{key}{alert}" id="count-{key}"{title}>'
            f'<span class="n">{n}</span> <span class="label">{_e(label)}</span></li>'
        )
    return '<ul class="summary">\n' + "\n".join(items) + "\n</ul>"


# --- the table --------------------------------------------------------------------

_COLUMNS = (
    ("target", "Target"),
    ("outcome", "Outcome"),
    ("tls", "TLS"),
    ("staple", "Staple"),
    ("staple_expires", "Staple expires (UTC)"),
    ("must_staple", "Must-staple"),
    ("responder", "Responder"),
    ("latency", "Latency"),
    ("agree", "Agree"),
    ("revocation", "Revocation"),
    ("cert_expires", "Certificate expires (UTC)"),
    ("problems", "Error / warnings"),
)

SortKey = str | float | None


def _cell(text: str | None, css: str = "", note: str | None = None) -> str:
    klass = f' class="{css}"' if css else ""
    title = f' title="{_e(note)}"' if note else ""
    return f"<td{klass}{title}>{_e(text) if text is not None else '—'}</td>"


def _flag(value: object) -> tuple[str | None, SortKey]:
    if value is None:
        return None, None
    if isinstance(value, bool):
        return ("yes" if value else "no"), float(value)
    return _UNREADABLE, None


def _expiry_cell(expiry: _Expiry, warn_seconds: float) -> str:
    if not expiry.known or expiry.seconds_left is None:
        return _cell(None)
    css = _expiry_class(expiry, warn_seconds)
    klass = f' class="date {css}"' if css else ' class="date"'
    left = f'<span class="left">{_e(_left(expiry.seconds_left))}</span>'
    if expiry.at is None:
        return f"<td{klass}>{left}</td>"
    return f'<td{klass}><span class="when">{_e(_table_date(expiry.at))}</span> {left}</td>'


def _status_key(value: object) -> tuple[str | None, SortKey]:
    text = _text(value)
    return text, None if text is None else text.lower()


def _row_html(row: _Row, warn_seconds: float) -> tuple[str, list[SortKey]]:
    record = row.record
    cells: list[str] = []
    keys: list[SortKey] = []

    def add(cell: str, key: SortKey) -> None:
        cells.append(cell)
        keys.append(key)

    add(
        f'<td class="target"><a href="#host-{row.index}">{_e(row.target)}</a></td>',
        row.target.lower(),
    )
    outcome_shown = _text(record.get("outcome")) or "—"
    add(_cell(outcome_shown, f"outcome outcome-{row.outcome}"), float(row.rank))
    tls, key = _status_key(record.get("tls_version"))
    add(_cell(tls), key)
    status, key = _status_key(row.staple.get("status"))
    add(_cell(status, f"status status-{_css_word(status)}", _text(row.staple.get("reason"))), key)
    add(_expiry_cell(row.staple_expiry, warn_seconds), row.staple_expiry.sort_key)
    text, key = _flag(record.get("must_staple"))
    add(_cell(text), key)
    status, key = _status_key(row.responder.get("status"))
    add(
        _cell(status, f"status status-{_css_word(status)}", _text(row.responder.get("reason"))),
        key,
    )
    ms = _number(row.responder.get("milliseconds"))
    add(_cell(None if ms is None else f"{ms:.0f} ms"), ms)
    text, key = _flag(record.get("agree"))
    add(_cell(text, "disagree" if record.get("agree") is False else ""), key)
    status, key = _status_key(row.revocation.get("status"))
    source = _text(row.revocation.get("source"))
    shown = f"{status} ({source})" if status and source else status
    add(
        _cell(shown, f"status status-{_css_word(status)}", _text(row.revocation.get("reason"))),
        key,
    )
    add(_expiry_cell(row.cert_expiry, warn_seconds), row.cert_expiry.sort_key)
    problems = [p for p in [_text(record.get("error")), *_strings(record.get("warnings"))] if p]
    if record.get("no_revocation_source") is True:
        problems.append("no revocation source")
    joined = "; ".join(problems) or None
    add(_cell(joined, "problems"), None if joined is None else joined.lower())
    html_row = f'<tr id="row-{row.index}" class="outcome-{row.outcome}">' + "".join(cells) + "</tr>"
    return html_row, keys


def _css_word(status: str | None) -> str:
    """A class name from a status: only the known words, so data never shapes CSS."""
    known = {"good", "revoked", "unknown", "invalid", "stale", "missing", "error"}
    return status if status in known else "other"


def _table(rows: Sequence[_Row], warn_seconds: float) -> tuple[str, str]:
    head = "".join(
        f'<th scope="col" data-key="{key}" aria-sort="none"><a href="#sort={key}">{label}</a></th>'
        for key, label in _COLUMNS
    )
    body: list[str] = []
    keys: list[list[SortKey]] = []
    for row in rows:
        html_row, row_keys = _row_html(row, warn_seconds)
        body.append(html_row)
        keys.append(row_keys)
    table = (
        '<div class="table-wrap"><table id="scan-table">\n'
        f"<thead><tr>{head}</tr></thead>\n<tbody>\n"
        + "\n".join(body)
        + "\n</tbody>\n</table></div>"
    )
    data = {"columns": [key for key, _ in _COLUMNS], "rows": keys}
    return table, _json_for_script(data)


def _json_for_script(data: object) -> str:
    """JSON that cannot end its ``<script>`` element or start markup inside it, and that
    stays one JavaScript line (U+2028/2029 escaped)."""
    text = json.dumps(data, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


# --- the timelines ------------------------------------------------------------------

SVG_WIDTH = 900
PLOT_LEFT = 100.0
PLOT_RIGHT = 880.0
_LANES = (("certificate", 24.0), ("staple", 64.0))
BAR_HEIGHT = 16.0
SVG_HEIGHT = 118
MIN_BAR = 2.0
_CHAR_WIDTH = 6.2  # px per character at the chart's 11 px font, for keeping labels inside


@dataclasses.dataclass(frozen=True)
class _Axis:
    start: datetime.datetime
    end: datetime.datetime

    def x(self, moment: datetime.datetime) -> float:
        span = (self.end - self.start).total_seconds()
        share = (moment - self.start).total_seconds() / span
        return round(PLOT_LEFT + share * (PLOT_RIGHT - PLOT_LEFT), 2)


def _axis(moments: Sequence[datetime.datetime]) -> _Axis:
    first, last = min(moments), max(moments)
    span = last - first
    try:
        if span < datetime.timedelta(hours=1):
            span = datetime.timedelta(days=1)
            first, last = first - span / 2, last + span / 2
        pad = span * 0.04
        return _Axis(first - pad, last + pad)
    except OverflowError:  # years 1 or 9999: no room around them
        return _Axis(first, max(last, first + datetime.timedelta(hours=1)))


def _label(x_center: float, y: float, text: str, css: str) -> str:
    """A centred label kept inside the plot."""
    half = len(text) * _CHAR_WIDTH / 2
    x = min(max(x_center, PLOT_LEFT + half), PLOT_RIGHT - half)
    return f'<text class="{css}" x="{x:.2f}" y="{y:.0f}" text-anchor="middle">{_e(text)}</text>'


def _bar(
    axis: _Axis,
    lane_y: float,
    start: datetime.datetime,
    end: datetime.datetime,
    css: str,
    what: str,
    now: datetime.datetime,
) -> str:
    x0, x1 = axis.x(start), axis.x(end)
    width = max(x1 - x0, MIN_BAR)
    dates = f"{_short_date(start)} → {_short_date(end)} ({_left((end - now).total_seconds())})"
    return (
        f'<rect class="bar {css}" x="{x0:.2f}" y="{lane_y:.0f}" width="{width:.2f}" '
        f'height="{BAR_HEIGHT:.0f}"><title>{_e(what)}: {_e(_date(start))} → {_e(_date(end))}'
        f"</title></rect>\n"
        + _label((x0 + x0 + width) / 2, lane_y + BAR_HEIGHT + 12, dates, "dates")
    )


def _timeline(row: _Row, now: datetime.datetime, warn_seconds: float) -> str:
    """An SVG chart: the certificate's validity, the staple's thisUpdate→nextUpdate and
    now on one time axis; empty when there is no date to draw."""
    not_before = _time(row.certificate.get("not_before"))
    not_after = _time(row.certificate.get("not_after"))
    this_update = _time(row.staple.get("this_update"))
    next_update = _time(row.staple.get("next_update"))
    cert = (not_before, not_after) if not_before and not_after and not_before <= not_after else None
    staple_end = next_update if next_update and this_update and this_update <= next_update else None
    moments = [now, *(m for m in (not_before, not_after, this_update, staple_end) if m)]
    if cert is None and this_update is None:
        return ""
    axis = _axis(moments)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" width="{SVG_WIDTH}" '
        f'height="{SVG_HEIGHT}" viewBox="0 0 {SVG_WIDTH} {SVG_HEIGHT}" role="img" '
        f'aria-label="timeline of {_e(row.target)}">\n'
    ]
    for name, y in _LANES:
        parts.append(
            f'<text class="lane" x="4" y="{y + BAR_HEIGHT - 4:.0f}">{name}</text>\n'
            f'<line class="track" x1="{PLOT_LEFT:.0f}" x2="{PLOT_RIGHT:.0f}" '
            f'y1="{y + BAR_HEIGHT / 2:.0f}" y2="{y + BAR_HEIGHT / 2:.0f}"/>\n'
        )
    cert_y, staple_y = _LANES[0][1], _LANES[1][1]
    if cert is not None:
        css = "cert " + _expiry_class(row.cert_expiry, warn_seconds)
        parts.append(_bar(axis, cert_y, cert[0], cert[1], css.strip(), "certificate valid", now))
    else:
        parts.append(_note(cert_y, "no readable validity dates"))
    if this_update is not None and staple_end is not None:
        css = f"staple status-{_css_word(_text(row.staple.get('status')))}"
        parts.append(_bar(axis, staple_y, this_update, staple_end, css, "staple current", now))
    elif this_update is not None:
        x = axis.x(this_update)
        parts.append(
            f'<rect class="bar staple open" x="{x:.2f}" y="{staple_y:.0f}" width="{MIN_BAR:.2f}" '
            f'height="{BAR_HEIGHT:.0f}"><title>staple thisUpdate {_e(_date(this_update))}, '
            f"no readable nextUpdate</title></rect>\n"
            + _label(x, staple_y + BAR_HEIGHT + 12, f"{_short_date(this_update)} → ?", "dates")
        )
    else:
        parts.append(_note(staple_y, f"no staple ({_text(row.staple.get('status')) or 'none'})"))
    now_x = axis.x(now)
    parts.append(
        f'<line class="now" x1="{now_x:.2f}" x2="{now_x:.2f}" y1="16" y2="{SVG_HEIGHT - 16}"/>\n'
        + _label(now_x, 12, f"now {_short_date(now)}", "now-label")
        + "\n"
        f'<text class="axis" x="{PLOT_LEFT:.0f}" y="{SVG_HEIGHT - 2}">'
        f"{_e(_short_date(axis.start))}</text>\n"
        f'<text class="axis" x="{PLOT_RIGHT:.0f}" y="{SVG_HEIGHT - 2}" text-anchor="end">'
        f"{_e(_short_date(axis.end))}</text>\n</svg>"
    )
    return "".join(parts)


def _expiry_class(expiry: _Expiry, warn_seconds: float) -> str:
    if expiry.seconds_left is not None and expiry.seconds_left < 0:
        return "expired"
    return "soon" if expiry.within(warn_seconds) else ""


def _note(lane_y: float, text: str) -> str:
    y = lane_y + BAR_HEIGHT - 4
    return f'<text class="note" x="{PLOT_LEFT + 4:.0f}" y="{y:.0f}">{_e(text)}</text>\n'


def _details(row: _Row) -> str:
    """What the table has no room for: names, URLs, reasons."""
    record = row.record
    items: list[tuple[str, list[str]]] = [
        ("host", [t for t in (_text(record.get("host")),) if t]),
        ("port", [t for t in (_text(record.get("port")),) if t]),
        ("subject", [t for t in (_text(row.certificate.get("subject")),) if t]),
        ("issuer", [t for t in (_text(row.certificate.get("issuer")),) if t]),
        ("OCSP URLs", _strings(record.get("ocsp_urls"))),
        ("CRL URLs", _strings(record.get("crl_urls"))),
        ("staple", [t for t in (_text(row.staple.get("reason")),) if t]),
        ("responder", [t for t in (_text(row.responder.get("url")),) if t]),
        ("responder said", [t for t in (_text(row.responder.get("reason")),) if t]),
        ("revocation", [t for t in (_text(row.revocation.get("reason")),) if t]),
        ("error", [t for t in (_text(record.get("error")),) if t]),
        ("warnings", _strings(record.get("warnings"))),
    ]
    lines = [
        f"<dt>{_e(label)}</dt>" + "".join(f"<dd>{_e(value)}</dd>" for value in values)
        for label, values in items
        if values
    ]
    return "<dl>" + "".join(lines) + "</dl>"


def _host_section(row: _Row, now: datetime.datetime, warn_seconds: float) -> str:
    chart = (
        _timeline(row, now, warn_seconds) or '<p class="note">no certificate or staple dates</p>'
    )
    return (
        f'<section class="host outcome-{row.outcome}" id="host-{row.index}">\n'
        f'<h3>{_e(row.target)} <span class="outcome outcome-{row.outcome}">'
        f"{_e(_text(row.record.get('outcome')) or '—')}</span></h3>\n"
        f"{chart}\n{_details(row)}\n</section>"
    )


# --- the page ------------------------------------------------------------------------

_STYLE = """
:root { font-family: system-ui, sans-serif; color: #1b1f24; background: #fff; }
body { margin: 1.5rem; }
h1 { font-size: 1.5rem; margin: 0 0 .25rem; }
h2 { font-size: 1.15rem; margin: 1.5rem 0 .5rem; }
h3 { font-size: 1rem; margin: 0 0 .25rem; overflow-wrap: anywhere; }
.generated { color: #57606a; margin: 0 0 1rem; }
.summary { list-style: none; display: flex; flex-wrap: wrap; gap: .5rem; padding: 0; margin: 0; }
.card { border: 1px solid #d0d7de; border-radius: 6px; padding: .4rem .8rem; background: #f6f8fa; }
.card .n { font-size: 1.3rem; font-weight: 600; }
.card.alert { border-color: #d4a72c; background: #fff8c5; }
.card-error.alert, .card-unreachable.alert, .card-refused.alert, .card-revoked.alert,
.card-other.alert { border-color: #cf222e; background: #ffebe9; }
table { border-collapse: collapse; font-size: .8rem; width: 100%; }
th, td { border: 1px solid #d0d7de; padding: .2rem .35rem; text-align: left;
  vertical-align: top; }
td.target, td.problems { overflow-wrap: break-word; }
td.date .when { white-space: nowrap; }
td.date .left { display: block; font-size: .9em; }
th { background: #f6f8fa; position: sticky; top: 0; }
.table-wrap { overflow-x: auto; }
th a { color: inherit; text-decoration: none; }
th[aria-sort="ascending"] a::after { content: " \\25B2"; }
th[aria-sort="descending"] a::after { content: " \\25BC"; }
.outcome-ok .outcome, span.outcome-ok { color: #1a7f37; }
.outcome-warning .outcome, span.outcome-warning { color: #9a6700; }
.outcome-refused .outcome, .outcome-error .outcome, .outcome-unreachable .outcome,
.outcome-other .outcome, span.outcome-refused, span.outcome-error, span.outcome-unreachable,
span.outcome-other { color: #cf222e; }
.outcome { font-weight: 600; }
td.status-good { color: #1a7f37; }
td.status-revoked, td.status-invalid, td.status-unknown, td.disagree { color: #cf222e;
  font-weight: 600; }
td.status-stale, td.status-missing, td.soon { color: #9a6700; }
td.expired { color: #cf222e; font-weight: 600; }
.host { border-top: 1px solid #d0d7de; padding: .75rem 0; }
.host dl { display: grid; grid-template-columns: max-content 1fr; gap: .1rem .75rem;
  font-size: .85rem; margin: .25rem 0 0; }
.host dt { color: #57606a; grid-column: 1; }
.host dd { margin: 0; grid-column: 2; overflow-wrap: anywhere; }
.note { color: #57606a; font-style: italic; }
svg.timeline { display: block; max-width: 100%; height: auto; font-size: 11px; }
svg .lane { fill: #57606a; }
svg .track { stroke: #eaeef2; stroke-width: 16; }
svg .bar.cert { fill: #0969da; }
svg .bar.cert.soon { fill: #d4a72c; }
svg .bar.cert.expired { fill: #cf222e; }
svg .bar.staple { fill: #8c959f; }
svg .bar.staple.status-good { fill: #2da44e; }
svg .bar.staple.status-stale { fill: #d4a72c; }
svg .bar.staple.status-revoked, svg .bar.staple.status-invalid { fill: #cf222e; }
svg .dates, svg .axis { fill: #24292f; }
svg .axis { fill: #8c959f; }
svg .now { stroke: #cf222e; stroke-width: 1.5; stroke-dasharray: 4 2; }
svg .now-label { fill: #cf222e; font-weight: 600; }
svg text.note { fill: #57606a; }
"""

# Sorts the rows the page already has, by the keys in the JSON block, when the URL
# fragment says #sort=KEY (ascending) or #sort=-KEY (descending): a click on a header
# link sets it, so a sorted view can be bookmarked. Absent values sort last.
_SCRIPT = """
(function () {
  "use strict";
  var table = document.getElementById("scan-table");
  var source = document.getElementById("scan-data");
  if (!table || !source) { return; }
  var data = JSON.parse(source.textContent);
  var body = table.tBodies[0];
  var rows = Array.prototype.slice.call(body.rows);
  var headers = table.tHead.rows[0].cells;
  if (rows.length !== data.rows.length) { return; }
  function compare(a, b) {
    if (a === b) { return 0; }
    if (a === null) { return 1; }
    if (b === null) { return -1; }
    if (typeof a !== typeof b) { return typeof a === "number" ? -1 : 1; }
    return a < b ? -1 : 1;
  }
  function sortBy(key, descending) {
    var column = data.columns.indexOf(key);
    if (column < 0) { return; }
    var order = rows.map(function (row, i) { return i; });
    order.sort(function (i, j) {
      var a = data.rows[i][column], b = data.rows[j][column];
      var c = compare(a, b);
      if (descending && a !== null && b !== null) { c = -c; }
      return c || i - j;
    });
    order.forEach(function (i) { body.appendChild(rows[i]); });
    for (var h = 0; h < headers.length; h++) {
      var name = data.columns[h];
      var current = name === key;
      headers[h].setAttribute("aria-sort",
        current ? (descending ? "descending" : "ascending") : "none");
      headers[h].firstElementChild.setAttribute("href",
        "#sort=" + (current && !descending ? "-" : "") + name);
    }
    table.setAttribute("data-sorted", (descending ? "-" : "") + key);
  }
  function fromFragment() {
    var match = /^#sort=(-?)([a-z_]+)$/.exec(window.location.hash);
    if (match) { sortBy(match[2], match[1] === "-"); }
  }
  window.addEventListener("hashchange", fromFragment);
  fromFragment();
})();
"""


def _sha256(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


CONTENT_SECURITY_POLICY = (
    "default-src 'none'; "
    f"script-src 'sha256-{_sha256(_SCRIPT)}'; "
    f"style-src 'sha256-{_sha256(_STYLE)}'; "
    "base-uri 'none'; form-action 'none'"
)
"""Nothing but the page's own script and style, admitted by hash: no image, font,
frame, fetch or form can load or send anything, whatever a record smuggles in."""


def render_report(
    records: Iterable[object],
    *,
    now: datetime.datetime,
    title: str = DEFAULT_TITLE,
    warn_days: float = DEFAULT_WARN_DAYS,
) -> str:
    """One self-contained HTML page from ``staplecheck scan``'s JSON-lines records.

    ``now`` (timezone-aware) is the moment the page reports against: times left, the
    timelines' "now" line and what expires within ``warn_days``. Records are plain
    mappings as the scan writes them; any field may be missing, null or of the wrong
    type, and every string is treated as hostile. The rows come worst outcome first,
    then soonest expiry, then target, then input order. The same arguments give the
    same string.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if isinstance(warn_days, bool) or not (math.isfinite(warn_days) and warn_days >= 0):
        raise ValueError("warn_days must be a non-negative number")
    now = now.astimezone(_UTC)
    warn_seconds = float(warn_days) * 86400
    rows = [_read(index, record, now) for index, record in enumerate(records)]
    rows.sort(key=lambda row: _order(row))
    table, data = _table(rows, warn_seconds)
    sections = "\n".join(_host_section(row, now, warn_seconds) for row in rows)
    shown_title = _e(_text(title) or DEFAULT_TITLE)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_e(CONTENT_SECURITY_POLICY)}">\n'
        '<meta name="referrer" content="no-referrer">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{shown_title}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f"<h1>{shown_title}</h1>\n"
        f'<p class="generated">{len(rows)} targets, as of {_e(_date(now))}; '
        f"expiring means within {warn_days:g} days.</p>\n"
        f"<h2>Summary</h2>\n{_summary(rows, warn_seconds, warn_days)}\n"
        f"<h2>Targets</h2>\n{table}\n"
        f'<script type="application/json" id="scan-data">{data}</script>\n'
        f"<h2>Timelines</h2>\n{sections}\n"
        f"<script>{_SCRIPT}</script>\n</body>\n</html>\n"
    )


def _order(row: _Row) -> tuple[int, float, str, int]:
    soonest = min(
        (
            e.seconds_left
            for e in (row.cert_expiry, row.staple_expiry)
            if e.seconds_left is not None
        ),
        default=math.inf,
    )
    return (row.rank + 1 if row.rank >= 0 else 0, soonest, row.target.lower(), row.index)
