"""``staplecheck verify``: exit codes, output, options and usage errors."""

from __future__ import annotations

import base64
import datetime
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from staplecheck.cli._main import main
from tests.conftest import NOW, PKI

AT = "2026-11-21T12:00:00Z"
assert datetime.datetime.fromisoformat(AT.replace("Z", "+00:00")) == NOW
MINUTE = datetime.timedelta(minutes=1)
HOUR = datetime.timedelta(hours=1)
DAY = datetime.timedelta(days=1)
SKEW = 5 * MINUTE  # the default, which also pads the other time limits
JSON_KEYS = {
    "status",
    "reason",
    "this_update",
    "next_update",
    "produced_at",
    "revocation_time",
    "revocation_reason",
    "responder",
    "serial_number",
}
ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")


class Files:
    """Certificate and staple files for the session PKI's intermediate and leaf."""

    def __init__(self, pki: PKI, directory: Path) -> None:
        self.pki = pki
        self.directory = directory
        self.leaf = self.write_cert("leaf.pem", pki.leaf.cert)
        self.issuer = self.write_cert("issuer.pem", pki.intermediate.cert)

    def write(self, name: str, data: bytes) -> str:
        path = self.directory / name
        path.write_bytes(data)
        return str(path)

    def write_cert(self, name: str, cert: x509.Certificate, encoding: str = "PEM") -> str:
        return self.write(name, cert.public_bytes(getattr(serialization.Encoding, encoding)))

    def staple(self, status: str = "good", *, name: str = "staple.der", **options: Any) -> str:
        der = self.pki.intermediate.ocsp_response(self.pki.leaf, status, **options)
        return self.write(name, der)

    def args(self, staple: str, *extra: str, at: str | None = AT) -> list[str]:
        argv = ["verify", staple, "--cert", self.leaf, "--issuer", self.issuer, *extra]
        return [*argv, "--at", at] if at else argv


@pytest.fixture
def files(pki: PKI, tmp_path: Path) -> Files:
    return Files(pki, tmp_path)


def run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, dict[str, Any]]:
    code, out, err = run(capsys, [*argv, "--json"])
    assert err == ""
    document = json.loads(out)  # exactly one JSON value, nothing around it
    assert isinstance(document, dict)
    return code, document


def assert_usage_error(code: int, out: str, err: str, *words: str) -> None:
    assert code == 2
    assert out == ""
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("staplecheck: error: "), err
    for word in words:
        assert word in lines[0], (word, err)


def _armour(der: bytes) -> bytes:
    body = base64.encodebytes(der).decode()
    return f"-----BEGIN OCSP RESPONSE-----\n{body}-----END OCSP RESPONSE-----\n".encode()


# --- verdicts and exit codes ------------------------------------------------------------


def test_good_staple_exits_zero_with_readable_output(
    capsys: pytest.CaptureFixture[str], files: Files, pki: PKI
) -> None:
    code, out, err = run(capsys, files.args(files.staple()))
    assert (code, err) == (0, "")
    fields = dict(line.split(":", 1) for line in out.splitlines())
    fields = {label.strip(): value.strip() for label, value in fields.items()}
    assert fields["status"] == "good"
    assert "not revoked" in fields["reason"]
    assert fields["serial"] == f"{pki.leaf.cert.serial_number:#x}"
    assert fields["responder"] == "issuer CN=staplecheck test intermediate"
    assert fields["this update"] == "2026-11-21 12:00:00 UTC"
    assert fields["next update"] == "2026-11-22 12:00:00 UTC"
    assert fields["must-staple"] == "no"
    assert "revoked at" not in fields


@pytest.mark.parametrize(
    ("staple_options", "status", "words"),
    [
        pytest.param(
            {"status": "revoked", "revocation_reason": "keyCompromise"},
            "revoked",
            ("keyCompromise",),
            id="revoked",
        ),
        pytest.param({"status": "unknown"}, "unknown", ("does not know",), id="unknown"),
        pytest.param(
            {"this_update": NOW - 3 * DAY, "next_update": NOW - 2 * DAY},
            "stale",
            ("nextUpdate",),
            id="stale",
        ),
        pytest.param(
            {"corrupt_signature": True}, "invalid", ("does not verify",), id="bad-signature"
        ),
        pytest.param(
            {"response_status": "tryLater"}, "invalid", ("responseStatus",), id="try-later"
        ),
    ],
)
def test_other_verdicts_exit_one(
    capsys: pytest.CaptureFixture[str],
    files: Files,
    staple_options: dict[str, Any],
    status: str,
    words: tuple[str, ...],
) -> None:
    options = dict(staple_options)
    staple = files.staple(options.pop("status", "good"), **options)
    code, out, err = run(capsys, files.args(staple))
    assert (code, err) == (1, "")
    assert out.startswith(f"status:            {status}\n")
    for word in words:
        assert word in out
    code, document = run_json(capsys, files.args(staple))
    assert (code, document["status"]) == (1, status)


@pytest.mark.parametrize(
    ("content", "status"),
    [
        (b"", "missing"),
        (b"this is not an OCSP response\n", "invalid"),
        (bytes(range(256)), "invalid"),
        (_armour(b"not an OCSP response"), "invalid"),
    ],
    ids=["empty", "text", "binary", "pem-garbage"],
)
def test_missing_or_garbage_staple_exits_one(
    capsys: pytest.CaptureFixture[str], files: Files, content: bytes, status: str
) -> None:
    path = files.write("staple.bin", content)
    code, out, err = run(capsys, [*files.args(path), "--json"])
    document = json.loads(out)
    assert code == 1
    assert document["status"] == status
    assert document["reason"]
    assert document["this_update"] is None
    # The file is wrong, not the staple: said in words, once, on stderr.
    assert err == (
        "" if status == "missing" else f"staplecheck: {path} is not a DER (or PEM) OCSP response\n"
    )


def test_certificate_given_as_the_staple(capsys: pytest.CaptureFixture[str], files: Files) -> None:
    code, out, err = run(capsys, files.args(files.leaf))
    assert code == 1
    assert "status:            invalid" in out
    assert err == f"staplecheck: {files.leaf} is not an OCSP response: it holds a PEM CERTIFICATE\n"


@pytest.mark.parametrize("content", [b"hello, not OCSP", None], ids=["text", "certificate"])
def test_unparsable_staple_reason_is_words(
    capsys: pytest.CaptureFixture[str], files: Files, content: bytes | None
) -> None:
    path = files.write("staple.bin", content) if content is not None else files.leaf
    _, out, _ = run(capsys, files.args(path))
    assert "reason:            not a DER OCSP response (RFC 6960 §4.2.1)" in out
    assert "ParseError" not in out
    assert "{" not in out


# --- JSON -----------------------------------------------------------------------------


def test_json_output_for_a_good_staple(
    capsys: pytest.CaptureFixture[str], files: Files, pki: PKI
) -> None:
    code, document = run_json(capsys, files.args(files.staple()))
    assert code == 0
    assert set(document) >= JSON_KEYS
    assert document["status"] == "good"
    assert isinstance(document["reason"], str)
    assert document["reason"]
    assert document["this_update"] == "2026-11-21T12:00:00Z"
    assert document["next_update"] == "2026-11-22T12:00:00Z"
    assert document["produced_at"] == "2026-11-21T12:00:00Z"
    assert document["revocation_time"] is None
    assert document["revocation_reason"] is None
    assert document["responder"] == "issuer CN=staplecheck test intermediate"
    # A string, so 160-bit serials survive JSON readers that hold numbers as doubles.
    assert pki.leaf.cert.serial_number > 2**53
    assert document["serial_number"] == f"{pki.leaf.cert.serial_number:#x}"
    assert int(document["serial_number"], 16) == pki.leaf.cert.serial_number


def test_json_output_for_a_revoked_staple(capsys: pytest.CaptureFixture[str], files: Files) -> None:
    staple = files.staple(
        "revoked", revocation_time=NOW - 2 * DAY, revocation_reason="keyCompromise"
    )
    code, document = run_json(capsys, files.args(staple))
    assert code == 1
    assert document["status"] == "revoked"
    assert document["revocation_time"] == "2026-11-19T12:00:00Z"
    assert document["revocation_reason"] == "keyCompromise"
    for key in ("this_update", "next_update", "produced_at", "revocation_time"):
        assert ISO_UTC.fullmatch(document[key]), (key, document[key])


def test_json_times_are_utc_whatever_the_at_zone(
    capsys: pytest.CaptureFixture[str], files: Files
) -> None:
    code, document = run_json(capsys, files.args(files.staple(), at="2026-11-21T21:00:00+09:00"))
    assert code == 0
    assert document["this_update"] == "2026-11-21T12:00:00Z"


# --- --at and the durations --------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "code", "status"),
    [
        (AT, 0, "good"),
        ("2026-11-21T12:00:00", 0, "good"),  # no zone: UTC
        ("2026-11-22T12:04:00Z", 0, "good"),  # past nextUpdate, within the skew
        ("2026-11-24T12:00:00Z", 1, "stale"),
        ("2026-11-24T12:00:00+00:00", 1, "stale"),
        ("2026-11-21T11:50:00Z", 1, "invalid"),  # thisUpdate beyond the skew
    ],
)
def test_at_changes_the_verdict(
    capsys: pytest.CaptureFixture[str], files: Files, at: str, code: int, status: str
) -> None:
    found, document = run_json(capsys, files.args(files.staple(), at=at))
    assert (found, document["status"]) == (code, status)


def _boundary_staple(files: Files, option: str, duration: datetime.timedelta, past: bool) -> str:
    """A staple that ``option`` = ``duration`` accepts (``past=False``) or just refuses."""
    second = datetime.timedelta(seconds=1 if past else -1)
    name = "outside.der" if past else "inside.der"
    if option == "--clock-skew":
        return files.staple(name=name, this_update=NOW + duration + second)
    if option == "--max-age":
        old = NOW - SKEW - duration - second
        return files.staple(name=name, this_update=old, next_update=NOW + DAY)
    old = NOW - SKEW - duration - second
    return files.staple(name=name, this_update=old, next_update=None)


@pytest.mark.parametrize(
    ("option", "text", "duration"),
    [
        ("--clock-skew", "300", 5 * MINUTE),
        ("--clock-skew", "5m", 5 * MINUTE),
        ("--clock-skew", "90s", 90 * datetime.timedelta(seconds=1)),
        ("--clock-skew", "10d", 10 * DAY),
        ("--max-age", "10d", 10 * DAY),
        ("--max-age", "300", 5 * MINUTE),
        ("--max-age", "36h", 36 * HOUR),
        ("--default-lifetime", "5m", 5 * MINUTE),
        ("--default-lifetime", "2d", 2 * DAY),
        ("--default-lifetime", "7200", 2 * HOUR),
    ],
)
def test_duration_options(
    capsys: pytest.CaptureFixture[str],
    files: Files,
    option: str,
    text: str,
    duration: datetime.timedelta,
) -> None:
    inside = _boundary_staple(files, option, duration, past=False)
    outside = _boundary_staple(files, option, duration, past=True)
    assert run_json(capsys, files.args(inside, option, text))[0] == 0
    code, document = run_json(capsys, files.args(outside, option, text))
    assert code == 1
    assert document["status"] == ("invalid" if option == "--clock-skew" else "stale")


# --- input formats ----------------------------------------------------------------------


@pytest.mark.parametrize("leaf_encoding", ["PEM", "DER"])
@pytest.mark.parametrize("issuer_encoding", ["PEM", "DER"])
def test_certificates_in_pem_or_der(
    capsys: pytest.CaptureFixture[str],
    files: Files,
    pki: PKI,
    leaf_encoding: str,
    issuer_encoding: str,
) -> None:
    files.leaf = files.write_cert("leaf.crt", pki.leaf.cert, leaf_encoding)
    files.issuer = files.write_cert("issuer.crt", pki.intermediate.cert, issuer_encoding)
    code, document = run_json(capsys, files.args(files.staple()))
    assert (code, document["status"]) == (0, "good")


def test_leaf_file_holding_a_chain_uses_the_first_certificate(
    capsys: pytest.CaptureFixture[str], files: Files, pki: PKI
) -> None:
    files.leaf = files.write("chain.pem", pki.leaf.cert_chain_pem)
    assert run_json(capsys, files.args(files.staple()))[0] == 0


@pytest.mark.parametrize(("status", "code"), [("good", 0), ("revoked", 1)])
def test_pem_armoured_staple(
    capsys: pytest.CaptureFixture[str], files: Files, pki: PKI, status: str, code: int
) -> None:
    der = pki.intermediate.ocsp_response(pki.leaf, status)
    staple = files.write("staple.pem", b"saved from a server\n" + _armour(der))
    assert run_json(capsys, files.args(staple))[1]["status"] == status
    assert run_json(capsys, files.args(staple))[0] == code


# --- usage errors -------------------------------------------------------------------------


def test_missing_cert_file(capsys: pytest.CaptureFixture[str], files: Files) -> None:
    files.leaf = str(files.directory / "nowhere.pem")
    code, out, err = run(capsys, files.args(files.staple()))
    assert_usage_error(code, out, err, "nowhere.pem")


@pytest.mark.parametrize(
    "content",
    [b"", b"hello", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"],
    ids=["empty", "text", "bad-pem"],
)
def test_unparsable_cert_file(
    capsys: pytest.CaptureFixture[str], files: Files, content: bytes
) -> None:
    files.issuer = files.write("issuer.bad", content)
    code, out, err = run(capsys, files.args(files.staple()))
    assert_usage_error(code, out, err, "issuer.bad", "no readable certificate")


def test_key_file_is_no_certificate(
    capsys: pytest.CaptureFixture[str], files: Files, pki: PKI
) -> None:
    files.leaf = files.write("leaf.key", pki.leaf.private_key_pem)
    code, out, err = run(capsys, files.args(files.staple()))
    assert_usage_error(code, out, err, "leaf.key")


def test_issuer_that_did_not_issue_the_leaf(
    capsys: pytest.CaptureFixture[str], files: Files, pki: PKI
) -> None:
    files.issuer = files.write_cert("root.pem", pki.root.cert)
    code, out, err = run(capsys, files.args(files.staple()))
    assert_usage_error(code, out, err, "root.pem", "not the issuer")


@pytest.mark.parametrize("at", ["yesterday", "2026-13-01T00:00:00Z", "", "12:00"])
def test_bad_at(capsys: pytest.CaptureFixture[str], files: Files, at: str) -> None:
    code, out, err = run(capsys, [*files.args(files.staple(), at=None), "--at", at])
    assert_usage_error(code, out, err, "--at")


@pytest.mark.parametrize("option", ["--clock-skew", "--max-age", "--default-lifetime"])
@pytest.mark.parametrize("text", ["soon", "-5m", "5 minutes", "5w", "", "9" * 20 + "d"])
def test_bad_duration(
    capsys: pytest.CaptureFixture[str], files: Files, option: str, text: str
) -> None:
    code, out, err = run(capsys, files.args(files.staple(), option, text))
    assert_usage_error(code, out, err, option)


def test_missing_staple_file(capsys: pytest.CaptureFixture[str], files: Files) -> None:
    code, out, err = run(capsys, files.args(str(files.directory / "absent.der")))
    assert_usage_error(code, out, err, "absent.der")


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param([], id="no-arguments"),
        pytest.param(["verify"], id="verify-alone"),
        pytest.param(["frobnicate"], id="unknown-command"),
    ],
)
def test_incomplete_command_lines(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, out, err = run(capsys, argv)
    assert_usage_error(code, out, err)


def test_missing_issuer_option(capsys: pytest.CaptureFixture[str], files: Files) -> None:
    code, out, err = run(capsys, ["verify", files.staple(), "--cert", files.leaf])
    assert_usage_error(code, out, err, "--issuer")


# --- the real command ---------------------------------------------------------------------


def test_python_m_staplecheck_verify(files: Files) -> None:
    staple = files.staple("revoked", revocation_reason="keyCompromise")
    completed = subprocess.run(
        [sys.executable, "-m", "staplecheck", *files.args(staple), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 1, completed.stderr
    assert completed.stderr == ""
    document = json.loads(completed.stdout)
    assert document["status"] == "revoked"
    assert document["revocation_reason"] == "keyCompromise"
    assert document["this_update"] == "2026-11-21T12:00:00Z"


@pytest.mark.parametrize(
    "extra",
    [
        ["--max-age", "999999999d"],
        ["--clock-skew", "999999999d"],
        ["--default-lifetime", "999999999d"],
        ["--at", "9999-12-31T23:59:59Z"],
        ["--at", "0001-01-01T00:00:00Z"],
    ],
    ids=["max-age", "clock-skew", "default-lifetime", "end-of-time", "start-of-time"],
)
def test_extreme_times_give_a_verdict(
    capsys: pytest.CaptureFixture[str], files: Files, extra: list[str]
) -> None:
    """Time arithmetic saturates: extreme settings judge, never raise OverflowError."""
    code, out, err = run(capsys, [*files.args(files.staple()), *extra])
    assert code in (0, 1)
    assert "status:" in out
    assert err == ""
