"""``staplecheck scan`` (issue 10 item 1) against a fleet of real local servers.

The fleet: in-process :class:`StaplingServer` variants (good, revoked, staple expiring
soon, no staple, no OCSP URL, staple and responder disagreeing, certificate expiring
soon, wrong host, untrusted, IPv6), ``openssl s_server`` stapling a good response, a
closed port, and a live :class:`OCSPResponder` for the certificates that name one. The
PKI is anchored at the real time: scan judges at the wall clock, as a user's run does.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime
import io
import json
import os
import pty
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from staplecheck.cli._main import main
from staplecheck.cli._scan import _label, _printable, parse_target
from staplecheck.testing import CA, OCSPResponder, StaplingServer
from staplecheck.testing._process import free_port

from .conftest import require_program
from .realservers import launch

ROOT = Path(__file__).resolve().parent.parent
INTERMEDIATE = "CN=staplecheck test intermediate"
GOOD_REASON = f"signed by the issuer {INTERMEDIATE}; the certificate is not revoked"
NO_STAPLE = "the server stapled no OCSP response"


@dataclasses.dataclass
class Fleet:
    cafile: str
    directory: Path
    responder: OCSPResponder
    targets: dict[str, str]
    """name -> target text"""
    serials: dict[str, int]

    def __getitem__(self, name: str) -> str:
        return self.targets[name]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    directory = tmp_path_factory.mktemp("scan")
    root = CA()
    issuer = root.create_intermediate()
    stranger = CA(name="staplecheck untrusted root").create_intermediate()
    cafile = root.write_trust(directory / "ca.pem")
    now = issuer.now
    with contextlib.ExitStack() as stack:
        responder = stack.enter_context(OCSPResponder(issuer))
        targets: dict[str, str] = {}
        serials: dict[str, int] = {}

        def serve(name: str, staple_status: str | None, responder_status: str, **kw: Any) -> None:
            ca = kw.pop("ca", issuer)
            names = kw.pop("names", ("localhost", "127.0.0.1"))
            staple_options = kw.pop("staple_options", {})
            leaf = ca.issue_cert(*names, **kw)
            serials[name] = leaf.cert.serial_number
            if ca is issuer:
                responder.set_status(
                    leaf,
                    responder_status,
                    revocation_reason="keyCompromise" if responder_status == "revoked" else None,
                )
            staple = None
            if staple_status is not None:
                staple = ca.ocsp_response(leaf, staple_status, **staple_options)
            server = stack.enter_context(StaplingServer(leaf, staple))
            targets[name] = f"localhost:{server.port}"

        url = responder.url
        serve("good", "good", "good", ocsp_url=url)
        serve("revoked", "revoked", "revoked", ocsp_url=url)
        serve(
            "expiring",
            "good",
            "good",
            ocsp_url=url,
            staple_options={
                "this_update": now - datetime.timedelta(hours=20),
                "next_update": now + datetime.timedelta(hours=4),
            },
        )
        serve("nostaple", None, "good", ocsp_url=url)
        serve("noocsp", None, "good")
        serve("disagree", "good", "revoked", ocsp_url=url)
        serve("certsoon", "good", "good", ocsp_url=url, not_after=now + datetime.timedelta(days=2))
        serve("wronghost", "good", "good", ocsp_url=url, names=("other.example",))
        serve("untrusted", None, "good", ca=stranger)
        v6 = issuer.issue_cert("localhost", "::1", ocsp_url=url)
        responder.set_status(v6, "good")
        server6 = stack.enter_context(StaplingServer(v6, issuer.ocsp_response(v6), host="::1"))
        targets["ipv6"] = f"[::1]:{server6.port}"
        targets["unreachable"] = f"127.0.0.1:{free_port()}"
        yield Fleet(cafile, directory, responder, targets, serials)


@pytest.fixture(scope="module")
def s_server(fleet: Fleet) -> Iterator[str]:
    """``openssl s_server`` stapling a good response made by the test CA's issuer."""
    require_program("openssl")
    root = CA()
    issuer = root.create_intermediate()
    leaf = issuer.issue_cert("localhost", "127.0.0.1")
    chain, key = leaf.write(fleet.directory, "s_server")
    staple = fleet.directory / "s_server.der"
    staple.write_bytes(issuer.ocsp_response(leaf, "good"))
    cafile = root.write_trust(fleet.directory / "s_server_ca.pem")
    with launch("s_server", chain, key, staple, tls_version="1.2") as server:
        yield f"{cafile} https://localhost:{server.port}/"


def scan(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["scan", *args])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err


def scan_json(
    capsys: pytest.CaptureFixture[str], fleet: Fleet, *args: str
) -> tuple[int, list[dict[str, Any]]]:
    code, out, _err = scan(capsys, "--cafile", fleet.cafile, "--json", *args)
    return code, [json.loads(line) for line in out.splitlines()]


RECORD_FIELDS = {
    "target",
    "host",
    "port",
    "outcome",
    "error",
    "tls_version",
    "must_staple",
    "staple",
    "ocsp_urls",
    "crl_urls",
    "responder",
    "agree",
    "revocation",
    "certificate",
    "no_revocation_source",
    "warnings",
}


def iso_close(text: str, expected: datetime.datetime) -> None:
    assert text.endswith("Z")
    moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert abs((moment - expected).total_seconds()) < 1


# --- the fleet, field by field -------------------------------------------------------------


def test_json_records_field_by_field(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    names = list(fleet.targets)
    code, records = scan_json(capsys, fleet, *[fleet[n] for n in names])
    assert code == 3  # unreachable, wrong host and untrusted targets
    assert [r["target"] for r in records] == [fleet[n] for n in names]
    by = dict(zip(names, records, strict=True))
    for record in records:
        assert set(record) == RECORD_FIELDS

    good = by["good"]
    port = int(fleet["good"].split(":")[1])
    assert (good["host"], good["port"], good["outcome"], good["error"]) == (
        "localhost",
        port,
        "ok",
        None,
    )
    assert good["tls_version"] == "TLSv1.3"
    assert good["must_staple"] is False
    staple = good["staple"]
    assert staple["status"] == "good"
    assert staple["reason"] == GOOD_REASON
    left = staple["seconds_left"]
    assert isinstance(left, int)
    assert 20 * 3600 < left <= 24 * 3600
    this_update = datetime.datetime.fromisoformat(staple["this_update"].replace("Z", "+00:00"))
    iso_close(staple["next_update"], this_update + datetime.timedelta(days=1))
    assert good["ocsp_urls"] == [fleet.responder.url]
    assert good["crl_urls"] == []
    responder = good["responder"]
    assert set(responder) == {"status", "reason", "url", "milliseconds", "source"}
    assert responder["status"] == "good"
    assert responder["reason"] == GOOD_REASON
    assert responder["url"] == fleet.responder.url
    assert isinstance(responder["milliseconds"], float)
    assert 0 <= responder["milliseconds"] < 5000
    assert responder["source"] in ("ocsp", "cache")
    assert good["agree"] is True
    assert good["revocation"] == {
        "status": "good",
        "source": "staple",
        "accepted": True,
        "reason": GOOD_REASON,
    }
    cert = good["certificate"]
    assert cert["subject"] == "CN=localhost"
    assert cert["issuer"] == INTERMEDIATE
    assert cert["not_before"].endswith("Z")
    assert cert["not_after"].endswith("Z")
    assert cert["seconds_left"] > 300 * 86400
    assert good["no_revocation_source"] is False
    assert good["warnings"] == []

    revoked = by["revoked"]
    assert revoked["outcome"] == "refused"
    assert revoked["staple"]["status"] == "revoked"
    assert revoked["responder"]["status"] == "revoked"
    assert revoked["agree"] is True
    assert revoked["revocation"]["status"] == "revoked"
    assert revoked["revocation"]["accepted"] is False

    expiring = by["expiring"]
    assert expiring["outcome"] == "warning"
    assert 3 * 3600 < expiring["staple"]["seconds_left"] <= 4 * 3600
    assert len(expiring["warnings"]) == 1
    assert expiring["warnings"][0].startswith("the staple expires soon (3h ")

    nostaple = by["nostaple"]
    assert nostaple["outcome"] == "ok"  # soft-fail accepts a missing staple
    assert nostaple["staple"] == {
        "status": "missing",
        "reason": NO_STAPLE,
        "this_update": None,
        "next_update": None,
        "seconds_left": None,
    }
    assert nostaple["responder"]["status"] == "good"
    assert nostaple["agree"] is None  # no staple to agree with
    assert nostaple["no_revocation_source"] is False
    assert nostaple["revocation"] == {
        "status": "missing",
        "source": None,
        "accepted": True,
        "reason": NO_STAPLE,
    }

    noocsp = by["noocsp"]
    assert noocsp["outcome"] == "ok"
    assert noocsp["no_revocation_source"] is True
    assert noocsp["ocsp_urls"] == []
    assert noocsp["responder"] is None
    assert noocsp["warnings"] == []

    disagree = by["disagree"]
    assert disagree["outcome"] == "warning"
    assert disagree["agree"] is False
    assert disagree["staple"]["status"] == "good"
    assert disagree["responder"]["status"] == "revoked"
    assert disagree["warnings"] == [
        "the staple says good and the responder says revoked",
        "the responder says the certificate is revoked",
    ]

    certsoon = by["certsoon"]
    assert certsoon["outcome"] == "warning"
    assert 86400 < certsoon["certificate"]["seconds_left"] <= 2 * 86400
    assert certsoon["warnings"] == ["the certificate expires within 7 days (1d 23h left)"]

    ipv6 = by["ipv6"]
    assert (ipv6["host"], ipv6["outcome"], ipv6["staple"]["status"]) == ("::1", "ok", "good")

    unreachable = by["unreachable"]
    assert unreachable["outcome"] == "unreachable"
    assert unreachable["error"].startswith("cannot connect to 127.0.0.1 port ")
    assert unreachable["staple"] is None
    assert unreachable["certificate"] is None
    for name in ("wronghost", "untrusted"):
        record = by[name]
        assert record["outcome"] == "error"
        assert record["tls_version"] is None
        assert record["error"].startswith("TLS with localhost port ")
    assert "certificate verify failed" in by["untrusted"]["error"]
    assert "localhost" in by["wronghost"]["error"]


def test_scan_agrees_with_check_on_every_host(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    for policy in ("soft-fail", "hard-fail"):
        _code, records = scan_json(capsys, fleet, "--policy", policy, *fleet.targets.values())
        for record in records:
            target = parse_target(record["target"])
            code = main(
                ["check", target.url, "--cafile", fleet.cafile, "--policy", policy, "--json"]
            )
            out = capsys.readouterr().out
            if record["error"] is not None:
                assert code == 3, record["target"]
                assert json.loads(out)["error"] == record["error"]
                continue
            report = json.loads(out)
            assert code == (0 if report["accepted"] else 1)
            assert report["accepted"] == record["revocation"]["accepted"], record["target"]
            assert report["tls_version"] == record["tls_version"]
            assert report["must_staple"] == record["must_staple"]
            assert report["staple"]["status"] == record["staple"]["status"]
            assert report["staple"]["reason"] == record["staple"]["reason"]
            if policy == "hard-fail":
                assert report["revocation"]["status"] == record["revocation"]["status"]
                assert report["revocation"]["source"] == record["revocation"]["source"]
                assert report["revocation"]["reason"] == record["revocation"]["reason"]


def test_hard_fail_refuses_what_has_no_source(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    code, records = scan_json(
        capsys, fleet, "--policy", "hard-fail", fleet["noocsp"], fleet["nostaple"]
    )
    assert code == 1
    noocsp, nostaple = records
    assert noocsp["outcome"] == "refused"
    assert noocsp["no_revocation_source"] is True
    assert noocsp["revocation"]["accepted"] is False
    assert nostaple["outcome"] == "ok"
    assert nostaple["revocation"]["source"] == "ocsp"
    assert nostaple["revocation"]["status"] == "good"


def test_exit_codes(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    assert scan(capsys, "--cafile", fleet.cafile, fleet["good"], fleet["noocsp"])[0] == 0
    assert scan(capsys, "--cafile", fleet.cafile, fleet["good"], fleet["expiring"])[0] == 1
    assert scan(capsys, "--cafile", fleet.cafile, fleet["revoked"])[0] == 1
    # 3 wins over 1: an unreachable target's state is unknown
    assert scan(capsys, "--cafile", fleet.cafile, fleet["revoked"], fleet["unreachable"])[0] == 3
    # --warn-days 0: the certificate two days from its end no longer warns
    assert scan(capsys, "--cafile", fleet.cafile, "--warn-days", "0", fleet["certsoon"])[0] == 0


def test_no_responder_skips_the_live_query(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    before = fleet.responder.requests
    code, records = scan_json(capsys, fleet, "--no-responder", fleet["disagree"])
    assert fleet.responder.requests == before
    assert code == 0
    assert records[0]["responder"] is None
    assert records[0]["agree"] is None
    assert records[0]["warnings"] == []


def test_openssl_s_server(s_server: str, capsys: pytest.CaptureFixture[str]) -> None:
    cafile, url = s_server.split(" ")
    code, out, _ = scan(capsys, "--cafile", cafile, "--json", url)
    record = json.loads(out)
    assert code == 0
    assert record["target"] == url
    assert record["tls_version"] == "TLSv1.2"
    assert record["staple"]["status"] == "good"
    assert record["responder"] is None  # the certificate names no responder
    assert record["no_revocation_source"] is False  # it staples
    assert record["outcome"] == "ok"


# --- output formats ------------------------------------------------------------------------


def test_table(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    names = ["good", "expiring", "noocsp", "unreachable"]
    code, out, err = scan(capsys, "--cafile", fleet.cafile, *[fleet[n] for n in names])
    assert code == 3
    assert err == ""  # not a terminal: no progress bar
    lines = out.splitlines()
    header = lines[0].split()
    assert header[:3] == ["TARGET", "OUTCOME", "TLS"]
    column = lines[0].index("OUTCOME")
    rows = lines[1:5]
    for row, name in zip(rows, names, strict=True):
        assert row.startswith(fleet[name])
    assert [row[column:].split()[0] for row in rows] == ["ok", "warning", "ok", "unreachable"]
    assert rows[0].split()[1:4] == ["ok", "1.3", "good"]
    assert "good, accepted" in rows[0]
    assert "none (no revocation source)" in rows[2]
    assert f"{fleet['expiring']}: the staple expires soon (3h " in out
    assert f"{fleet['unreachable']}: cannot connect to 127.0.0.1 port " in out
    assert "4 targets in " in out
    assert ": 2 ok, 1 warning, 1 unreachable" in out


def test_csv(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = scan(
        capsys, "--cafile", fleet.cafile, "--csv", fleet["good"], fleet["unreachable"]
    )
    assert code == 3
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 2
    good, down = rows
    assert good["target"] == fleet["good"]
    assert good["outcome"] == "ok"
    assert good["tls_version"] == "TLSv1.3"
    assert good["must_staple"] == "false"
    assert good["staple_status"] == "good"
    assert good["staple_reason"] == GOOD_REASON
    assert int(good["staple_seconds_left"]) > 20 * 3600
    assert good["ocsp_urls"] == fleet.responder.url
    assert good["responder_status"] == "good"
    assert good["responder_url"] == fleet.responder.url
    assert float(good["responder_milliseconds"]) >= 0
    assert good["agree"] == "true"
    assert good["revocation_status"] == "good"
    assert good["revocation_accepted"] == "true"
    assert good["certificate_subject"] == "CN=localhost"
    assert good["no_revocation_source"] == "false"
    assert good["warnings"] == ""
    assert down["outcome"] == "unreachable"
    assert down["tls_version"] == ""
    assert down["staple_status"] == ""
    assert down["error"].startswith("cannot connect")


def test_prometheus_file(fleet: Fleet, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "staplecheck.prom"
    path.write_text("old\n")
    code, _, _ = scan(
        capsys,
        "--cafile",
        fleet.cafile,
        "--json",
        "--prometheus",
        str(path),
        fleet["good"],
        fleet["revoked"],
        fleet["noocsp"],
        fleet["unreachable"],
        fleet["good"],  # listed twice: one series
    )
    assert code == 3
    text = path.read_text()
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind
    umask = os.umask(0o022)
    os.umask(umask)
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~umask)  # 0644 under umask 022
    samples: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        series, value = line.rsplit(" ", 1)
        samples.setdefault(series.split("{")[0], {})[series] = value
    g, r, n, u = (fleet[k] for k in ("good", "revoked", "noocsp", "unreachable"))
    assert samples["staplecheck_up"] == {
        f'staplecheck_up{{target="{g}"}}': "1",
        f'staplecheck_up{{target="{r}"}}': "1",
        f'staplecheck_up{{target="{n}"}}': "1",
        f'staplecheck_up{{target="{u}"}}': "0",
    }
    assert samples["staplecheck_revoked"] == {
        f'staplecheck_revoked{{target="{g}"}}': "0",
        f'staplecheck_revoked{{target="{r}"}}': "1",
        f'staplecheck_revoked{{target="{n}"}}': "0",
    }
    assert (
        samples["staplecheck_no_revocation_source"][
            f'staplecheck_no_revocation_source{{target="{n}"}}'
        ]
        == "1"
    )
    left = int(
        samples["staplecheck_staple_seconds_left"][
            f'staplecheck_staple_seconds_left{{target="{g}"}}'
        ]
    )
    assert 20 * 3600 < left <= 86400
    assert f'staplecheck_staple_seconds_left{{target="{n}"}}' not in text
    assert (
        int(
            samples["staplecheck_certificate_seconds_left"][
                f'staplecheck_certificate_seconds_left{{target="{g}"}}'
            ]
        )
        > 300 * 86400
    )
    for name in ("staplecheck_up", "staplecheck_revoked", "staplecheck_staple_seconds_left"):
        assert f"# TYPE {name} gauge" in text
        assert f"# HELP {name} " in text
    assert "staplecheck_scan_partial 0" in text


def test_hostile_names_are_escaped_in_every_format(
    fleet: Fleet, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A target list names hosts an attacker may choose; a certificate's names and a
    responder's texts are the server's. None reaches a terminal, a spreadsheet or
    Prometheus raw."""
    hostile = [
        '=cmd|"/c calc"!A1',
        "evil\x1b[2Jhost:443",
        'a"b\\c',
        "-2+3",
        "host:99999",
        "https://",
        "[::1",
        "ftp://example.com/",
        "\u202eexample.com",
    ]
    listing = tmp_path / "targets.txt"
    listing.write_text("\n".join(hostile) + "\n", encoding="utf-8")
    prom = tmp_path / "out.prom"
    args = ("--from", str(listing), "--prometheus", str(prom))
    code, table, _ = scan(capsys, *args)
    assert code == 3
    assert "\x1b" not in table
    assert "\u202e" not in table
    assert "evil\\x1b[2Jhost:443" in table
    assert "\\u202eexample.com" in table
    code, out, _ = scan(capsys, "--json", *args)
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["target"] for r in records] == hostile
    assert all(r["outcome"] == "error" for r in records)
    assert all(r["error"].startswith("malformed target: ") for r in records)
    assert out.isascii()
    code, out, _ = scan(capsys, "--csv", *args)
    rows = list(csv.reader(io.StringIO(out)))[1:]
    assert [row[0] for row in rows] == [
        '\'=cmd|"/c calc"!A1',
        "evil\\x1b[2Jhost:443",
        'a"b\\c',
        "'-2+3",
        "host:99999",
        "https://",
        "[::1",
        "ftp://example.com/",
        "\\u202eexample.com",
    ]
    # malformed targets were never checked: no series, but a valid file
    assert "target=" not in prom.read_text()
    assert _label('a"b\\c\nd\x1be') == 'a\\"b\\\\c\\nd\ufffde'
    assert _printable("ok\x07\u200f") == "ok\\x07\\u200f"


def test_malformed_lines_do_not_stop_the_scan(
    fleet: Fleet, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    listing = "\n".join(
        [
            "# the fleet",
            "",
            fleet["good"],
            "not a host",
            "   ",
            f"  {fleet['noocsp']}  ",
            "host:0",
            "# done",
        ]
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "staplecheck",
            "scan",
            "--cafile",
            fleet.cafile,
            "--json",
            "--from",
            "-",
            fleet["revoked"],
        ],
        input=listing,
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
    )
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr == ""
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(r["target"], r["outcome"]) for r in records] == [
        (fleet["revoked"], "refused"),
        (fleet["good"], "ok"),
        ("not a host", "error"),
        (fleet["noocsp"], "ok"),
        ("host:0", "error"),
    ]
    assert records[2]["error"] == "malformed target: a target with spaces or control characters"
    assert records[4]["error"] == "malformed target: not a port from 1 to 65535: '0'"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "no targets"),
        (["--jobs", "0", "x"], "not a number of jobs"),
        (["--jobs", "many", "x"], "not a number of jobs"),
        (["--warn-days", "-1", "x"], "not a number of days"),
        (["--json", "--csv", "x"], "not allowed with argument"),
        (["--from", "/nonexistent/targets"], "cannot read targets from /nonexistent/targets"),
        (["--policy", "strict", "x"], "invalid choice"),
        (["--cafile", "/nonexistent/ca.pem", "x"], "cannot read CA file"),
        (["--capath", "/nonexistent", "x"], "--capath /nonexistent: not a directory"),
        (["--prometheus", "/nonexistent/dir/x.prom", "x"], "no such directory"),
        (["--cache", "sqlite:/tmp/x.db", "x"], "--cache needs a fallback source"),
        (["--fallback", "carrier-pigeon", "x"], "unknown fallback source"),
    ],
)
def test_usage_errors_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = scan(capsys, *args)
    assert code == 2
    assert out == ""
    assert err.startswith("staplecheck: error: ")
    assert message in err


def test_parse_target() -> None:
    cases = {
        "example.com": ("example.com", 443, "https://example.com:443/"),
        "Example.COM:8443": ("example.com", 8443, "https://example.com:8443/"),
        "[::1]:8443": ("::1", 8443, "https://[::1]:8443/"),
        "[2001:db8::1]": ("2001:db8::1", 443, "https://[2001:db8::1]:443/"),
        "::1": ("::1", 443, "https://[::1]:443/"),
        "https://example.com/path?q": ("example.com", 443, "https://example.com/path?q"),
        "HTTPS://example.com:444": ("example.com", 444, "HTTPS://example.com:444"),
        "bücher.example": ("xn--bcher-kva.example", 443, "https://xn--bcher-kva.example:443/"),
    }
    for text, (host, port, url) in cases.items():
        target = parse_target(text)
        assert (target.host, target.port, target.url, target.text) == (host, port, url, text)
    for bad in ("", "a b", "host:", "host:x", "host:70000", "[zz]:1", "http://x/", ".x", "a..b"):
        with pytest.raises(ValueError, match=r"\w"):
            parse_target(bad)


# --- many targets, a terminal, Ctrl-C ------------------------------------------------------


def test_200_targets_with_32_jobs(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    names = ("good", "nostaple", "noocsp", "revoked", "ipv6")
    targets = [fleet[names[i % len(names)]] for i in range(200)]
    before = fleet.responder.requests
    started = time.monotonic()
    code, records = scan_json(capsys, fleet, "--jobs", "32", *targets)
    elapsed = time.monotonic() - started
    assert code == 1  # the revoked ones are refused
    assert [r["target"] for r in records] == targets
    assert [r["outcome"] for r in records] == [
        {"good": "ok", "nostaple": "ok", "noocsp": "ok", "revoked": "refused", "ipv6": "ok"}[
            names[i % len(names)]
        ]
        for i in range(200)
    ]
    # one checker for all: each of the 4 certificates with a responder is asked about
    # once per run, not 40 times (a little slack for a query that timed out under load)
    assert fleet.responder.requests - before <= 12
    assert elapsed < 60  # about 3 s here; the bound only catches a hang


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _read_until_exit(fd: int, process: subprocess.Popen[bytes], timeout: float) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the pty closed
                break
            if not chunk:
                break
            data += chunk
        elif process.poll() is not None:
            break
    return data


def test_progress_bar_only_on_a_terminal(fleet: Fleet) -> None:
    targets = [fleet["good"], fleet["noocsp"], fleet["unreachable"]] * 3
    command = [sys.executable, "-m", "staplecheck", "scan", "--cafile", fleet.cafile, "--json"]
    leader, follower = pty.openpty()
    try:
        process = subprocess.Popen(
            command + targets, stdout=subprocess.PIPE, stderr=follower, env=_env()
        )
        os.close(follower)
        stderr = _read_until_exit(leader, process, 60)
        stdout, _ = process.communicate(timeout=60)
    finally:
        os.close(leader)
    assert process.returncode == 3
    assert b"] 9/9 checked" in stderr
    assert b"[" + b"#" * 30 + b"]" in stderr
    assert stderr.endswith(b"\r\x1b[K")
    assert len(stdout.splitlines()) == 9  # the records on standard output, untouched
    plain = subprocess.run(command + targets, capture_output=True, env=_env(), timeout=60)
    assert plain.returncode == 3
    assert plain.stderr == b""
    assert len(plain.stdout.splitlines()) == 9


def test_ctrl_c_gives_a_partial_report_and_exit_130(fleet: Fleet) -> None:
    """Three workers end up held by a server that accepts and never answers; SIGINT
    then stops the scan: the two finished targets are reported, the held ones are
    abandoned after the grace period, the rest are marked not checked."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    held: list[socket.socket] = []
    hang = f"127.0.0.1:{silent.getsockname()[1]}"
    targets = [fleet["good"], fleet["noocsp"], *[hang] * 6, fleet["good"]]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "staplecheck",
            "scan",
            "--cafile",
            fleet.cafile,
            "--json",
            "--jobs",
            "3",
            "--timeout",
            "60",
            *targets,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(),
    )
    try:
        silent.settimeout(30)
        while len(held) < 3:
            held.append(silent.accept()[0])
        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
        elapsed = time.monotonic() - started
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for sock in held:
            sock.close()
        silent.close()
    assert process.returncode == 130, err
    assert elapsed < 10
    assert b"Traceback" not in err
    assert err.decode().strip() == (
        "staplecheck: interrupted: a partial report, 2 of 9 targets checked"
    )
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["target"] for r in records] == targets
    assert [r["outcome"] for r in records[:2]] == ["ok", "ok"]
    errors = [r["error"] for r in records[2:]]
    abandoned = "abandoned: the scan was interrupted while this target was checked"
    assert errors == [abandoned] * 3 + ["not checked: the scan was interrupted"] * 4
    assert all(r["outcome"] == "error" for r in records[2:])


def test_interrupted_table_is_marked_partial(fleet: Fleet) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)
    hang = f"127.0.0.1:{silent.getsockname()[1]}"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "staplecheck",
            "scan",
            "--cafile",
            fleet.cafile,
            "--jobs",
            "1",
            "--timeout",
            "60",
            fleet["good"],
            hang,
            fleet["good"],
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(),
    )
    held = None
    try:
        silent.settimeout(30)
        held = silent.accept()[0]
        process.send_signal(signal.SIGINT)
        out, _err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if held is not None:
            held.close()
        silent.close()
    assert process.returncode == 130
    text = out.decode()
    assert "PARTIAL REPORT: the scan was interrupted" in text
    assert "3 targets in " in text
    assert "1 ok, 2 error" in text


def test_undecodable_and_overlong_lines_on_standard_input(fleet: Fleet) -> None:
    listing = b"\xff\xfe:443\n" + b"a" * 100_000 + b"\n" + fleet["noocsp"].encode() + b"\n"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "staplecheck",
            "scan",
            "--cafile",
            fleet.cafile,
            "--json",
            "--from",
            "-",
        ],
        input=listing,
        capture_output=True,
        timeout=60,
        env=_env(),
    )
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr == b""
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["outcome"] for r in records] == ["error", "error", "ok"]
    assert records[0]["target"] == "\ufffd\ufffd:443"
    assert records[0]["error"].startswith("malformed target: ")
    assert len(records[1]["target"]) == 2050  # kept cut, not read whole
    assert records[1]["error"] == "malformed target: a target over 2048 characters"


# --- the HTML report from a real scan -----------------------------------------------------


def test_html_report_from_a_real_scan(
    fleet: Fleet, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """``--html FILE``: the page the HTML report renders from this scan's own records,
    written atomically; it agrees with ``--json`` on every target (its data block holds
    the same outcomes), and the browser shows one row per target with the summary's
    counts."""
    page = tmp_path / "report.html"
    names = ("good", "revoked", "expiring", "nostaple", "noocsp", "untrusted", "unreachable")
    targets = [fleet[name] for name in names]
    code, records = scan_json(capsys, fleet, "--html", str(page), *targets)
    assert code == 3
    assert list(tmp_path.iterdir()) == [page]  # no temporary file left behind
    html = page.read_text(encoding="utf-8")
    outcomes = {r["target"]: r["outcome"] for r in records}
    assert outcomes == {
        fleet["good"]: "ok",
        fleet["revoked"]: "refused",
        fleet["expiring"]: "warning",
        fleet["nostaple"]: "ok",
        fleet["noocsp"]: "ok",
        fleet["untrusted"]: "error",
        fleet["unreachable"]: "unreachable",
    }
    for target in targets:
        assert html.count(f">{target}<") >= 1, target
    assert "staplecheck scan report" in html
    assert "PARTIAL" not in html

    from tests.test_html_report import dump_dom, summary
    from tests.test_html_report import read_page as read

    counts = summary(read(html))
    assert counts["total"] == len(targets)
    assert counts["ok"] == 3
    assert counts["refused"] == 1
    assert counts["unreachable"] == 1
    dom = dump_dom(page)  # the page after its script ran, in headless Chromium
    for target in targets:
        assert f">{target}<" in dom, target


def test_html_report_that_cannot_be_written_is_a_usage_error(
    fleet: Fleet, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-directory" / "report.html"
    code, out, err = scan(capsys, "--cafile", fleet.cafile, "--html", str(missing), fleet["good"])
    assert code == 2
    assert out == ""
    assert "--html" in err
    assert "no such directory" in err
