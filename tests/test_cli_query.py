"""``staplecheck ocsp`` and ``staplecheck crl`` (issue 10 item 3).

Real sources on loopback only: the project's :class:`OCSPResponder` (well-behaved and
in each of its misbehaviours), ``openssl ocsp`` (in the loopback-only network
namespace), ``cfssl ocspserve``, :class:`CRLServer` with CRLs from :func:`make_crl`,
CRL files, a SQLite file and a real ``redis-server``. Most runs call ``main([...])``
in-process with the time passed in (``--at``, the responders' clocks and the CA at
``NOW``); a few run the command as a real subprocess, and the third-party responders,
which sign with the real clock, are judged at the real time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from staplecheck import Policy
from staplecheck.cli._main import main
from staplecheck.revocation._plan import make_plan, request_key
from staplecheck.revocation.stores import open_store
from staplecheck.testing import CA, CfsslResponder, CRLServer, Identity, OCSPResponder
from staplecheck.validation._validate import CertPair
from tests.conftest import IN_CI, NOW, require_program
from tests.realservers import OpenSSLResponder

from .test_stores import start_redis

AT = NOW.isoformat()
INTERMEDIATE = "CN=staplecheck test intermediate"
BY_ISSUER = f"issuer {INTERMEDIATE}"
GOOD_REASON = f"signed by the issuer {INTERMEDIATE}; the certificate is not revoked"
CRL_ISSUER = f"CRL from issuer {INTERMEDIATE}"
ROOT = str(Path(__file__).resolve().parents[1])


def fixed_clock() -> datetime.datetime:
    return NOW


@dataclasses.dataclass
class Bench:
    root: CA
    issuer: CA
    directory: Path
    issuer_pem: str

    def write(self, identity: Identity | CA, name: str, der: bool = False) -> str:
        path = self.directory / name
        cert = identity.cert
        path.write_bytes(cert.public_bytes(Encoding.DER if der else Encoding.PEM))
        return str(path)


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Bench:
    directory = tmp_path_factory.mktemp("cli-query")
    root = CA(now=NOW)
    issuer = root.create_intermediate()
    issuer_pem = directory / "issuer.pem"
    issuer_pem.write_bytes(issuer.cert_pem)
    return Bench(root, issuer, directory, str(issuer_pem))


@pytest.fixture(scope="module")
def refused_url() -> Iterator[str]:
    """A URL whose port is bound and never listened on: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/"


@contextlib.contextmanager
def responder_for(
    bench: Bench, status: str = "good", **options: Any
) -> Iterator[tuple[OCSPResponder, str]]:
    """A responder at the fixed time and a leaf (written to a file) whose AIA names it."""
    with OCSPResponder(bench.issuer, clock=options.pop("clock", fixed_clock), **options) as r:
        leaf = bench.issuer.issue_cert("localhost", ocsp_url=r.url)
        if status != "unknown":
            r.set_status(
                leaf, status, revocation_reason="keyCompromise" if status == "revoked" else None
            )
        yield r, bench.write(leaf, f"leaf-{leaf.cert.serial_number:x}.pem")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code, out, err = run(capsys, *args, "--json")
    assert err == ""
    report: dict[str, Any] = json.loads(out)
    return code, report


def lines(out: str) -> dict[str, str]:
    """``label: value`` lines by label (the attempts as a list under ``attempt``)."""
    found: dict[str, Any] = {}
    for line in out.splitlines():
        label, _, value = line.partition(":")
        if label == "attempt":
            found.setdefault("attempt", []).append(value.strip())
        else:
            assert label not in found, line
            found[label] = value.strip()
    return found


# --- ocsp: answers -----------------------------------------------------------------------


def test_ocsp_good_text_field_by_field(bench: Bench, capsys: pytest.CaptureFixture[str]) -> None:
    with responder_for(bench) as (responder, leaf):
        code, out, err = run(capsys, "ocsp", leaf, "--issuer", bench.issuer_pem, "--at", AT)
        assert [(r.method, r.answer) for r in responder.history] == [("POST", "good")]
    assert (code, err) == (0, "")
    shown = lines(out)
    assert shown["certificate"].startswith("CN=localhost (serial 0x")
    assert shown["issuer"] == INTERMEDIATE
    assert shown["status"] == "good"
    assert shown["reason"] == GOOD_REASON
    assert shown["source"] == "ocsp (asked now)"
    assert shown["url"] == responder.url
    assert shown["responder"] == f"{BY_ISSUER} (the CA itself)"
    assert shown["this update"] == "2026-11-21 12:00:00 UTC"
    assert shown["next update"] == "2026-11-22 12:00:00 UTC (1d 0h left)"
    assert shown["produced at"] == "2026-11-21 12:00:00 UTC"
    assert shown["nonce"] == "not sent"
    assert shown["request"] == "POST"
    assert shown["latency"].endswith(" ms")
    [attempt] = shown["attempt"]
    assert attempt.startswith(f"ocsp {responder.url}: good in ")
    assert attempt.endswith(" ms")  # the reason is the one printed above
    assert "revoked at" not in shown
    assert list(shown)[:4] == ["certificate", "issuer", "status", "reason"]


def test_ocsp_revoked_json_field_by_field(bench: Bench, capsys: pytest.CaptureFixture[str]) -> None:
    with responder_for(bench, "revoked") as (responder, leaf):
        code, report = run_json(capsys, "ocsp", leaf, "--issuer", bench.issuer_pem, "--at", AT)
    serial = report["serial_number"]
    assert code == 1
    assert report["command"] == "ocsp"
    assert (report["certificate"], report["issuer"]) == (leaf, bench.issuer_pem)
    assert report["subject"] == "CN=localhost"
    assert report["issuer_subject"] == INTERMEDIATE
    assert serial.startswith("0x")
    assert int(serial, 16) > 0
    assert report["status"] == "revoked"
    assert report["reason"] == (
        f"the {BY_ISSUER} says the certificate was revoked at 2026-11-21T12:00:00+00:00 "
        "(keyCompromise)"
    )
    assert (report["source"], report["url"], report["method"]) == ("ocsp", responder.url, "POST")
    assert (report["responder"], report["responder_kind"]) == (BY_ISSUER, "issuer")
    assert report["this_update"] == "2026-11-21T12:00:00Z"
    assert report["next_update"] == "2026-11-22T12:00:00Z"
    assert report["seconds_left"] == 86400
    assert report["produced_at"] == "2026-11-21T12:00:00Z"
    assert report["revocation_time"] == "2026-11-21T12:00:00Z"
    assert report["revocation_reason"] == "keyCompromise"
    assert report["nonce"] == {"sent": None, "echoed": None}
    assert report["cache"] == "memory"
    assert report["at"] == "2026-11-21T12:00:00Z"
    assert 0 <= report["milliseconds"] < 10_000
    revocation = report["revocation"]
    assert (revocation["status"], revocation["source"]) == ("revoked", "ocsp")
    assert revocation["serial_number"] == serial
    assert revocation["accepted"] is False
    assert revocation["chain"] == []
    [attempt] = revocation["attempts"]
    assert (attempt["source"], attempt["url"], attempt["outcome"]) == (
        "ocsp",
        responder.url,
        "revoked",
    )


def test_ocsp_unknown_exits_1(bench: Bench, capsys: pytest.CaptureFixture[str]) -> None:
    with responder_for(bench, "unknown") as (_responder, leaf):
        code, report = run_json(capsys, "ocsp", leaf, "--issuer", bench.issuer_pem, "--at", AT)
    assert code == 1
    assert (report["status"], report["source"]) == ("unknown", "ocsp")
    assert report["reason"] == f"the {BY_ISSUER} does not know the certificate"


def test_ocsp_url_overrides_the_aia_get_and_der_inputs(
    bench: Bench, refused_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The leaf's AIA names a dead port; --url is asked instead, by GET; CERT and
    ISSUER given as DER files."""
    leaf = bench.issuer.issue_cert("localhost", ocsp_url=refused_url)
    leaf_der = bench.write(leaf, "aia-dead.der", der=True)
    issuer_der = bench.write(bench.issuer, "issuer.der", der=True)
    with OCSPResponder(bench.issuer, clock=fixed_clock) as responder:
        responder.set_status(leaf, "good")
        code, report = run_json(
            capsys, "ocsp", leaf_der, "--issuer", issuer_der, "--url", responder.url,
            "--get", "--at", AT,
        )  # fmt: skip
        assert [(r.method, r.answer) for r in responder.history] == [("GET", "good")]
    assert code == 0
    assert (report["status"], report["url"], report["method"]) == ("good", responder.url, "GET")
    assert [a["url"] for a in report["revocation"]["attempts"]] == [responder.url]


def test_ocsp_nonce_echoed(bench: Bench, capsys: pytest.CaptureFixture[str]) -> None:
    with responder_for(bench) as (_responder, leaf):
        code, report = run_json(
            capsys, "ocsp", leaf, "--issuer", bench.issuer_pem, "--nonce", "--at", AT
        )
        text_code, out, _err = run(
            capsys, "ocsp", leaf, "--issuer", bench.issuer_pem, "--nonce", "--at", AT
        )
    assert code == text_code == 0
    assert report["nonce"]["echoed"] is True
    assert len(bytes.fromhex(report["nonce"]["sent"])) == 16
    nonce = lines(out)["nonce"]
    assert nonce.startswith("sent ")
    assert nonce.endswith(", echoed")


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("no-nonce", "carries no nonce, though the request sent one"),
        ("wrong-nonce", "carries a nonce that is not the one the request sent (a replay?)"),
    ],
)
def test_ocsp_nonce_missing_or_wrong_is_refused(
    bench: Bench, mode: str, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with responder_for(bench) as (responder, leaf):
        responder.misbehave(mode)
        code, report = run_json(
            capsys, "ocsp", leaf, "--issuer", bench.issuer_pem, "--nonce", "--at", AT
        )
        # Without --nonce the same responder is believed: nothing was asked of it.
        plain, _ = run_json(capsys, "ocsp", leaf, "--issuer", bench.issuer_pem, "--at", AT)
    assert (code, plain) == (1, 0)
    assert report["status"] == "invalid"
    assert reason in report["reason"]
    assert report["source"] is None
    assert report["nonce"]["echoed"] is False
    assert report["url"] == responder.url
    assert report["revocation"]["status"] == "missing"


def test_ocsp_delegated_responder(bench: Bench, capsys: pytest.CaptureFixture[str]) -> None:
    delegate = bench.issuer.issue_responder()
    with responder_for(bench, responder=delegate) as (_responder, leaf):
        code, report = run_json(capsys, "ocsp", leaf, "--issuer", bench.issuer_pem, "--at", AT)
        _code, out, _err = run(capsys, "ocsp", leaf, "--issuer", bench.issuer_pem, "--at", AT)
    assert code == 0
    assert report["responder_kind"] == "delegated"
    assert report["responder"] == "delegated responder CN=staplecheck test OCSP responder"
    assert lines(out)["responder"] == (
        "delegated responder CN=staplecheck test OCSP responder (delegated by the issuer)"
    )


def test_ocsp_trust_responder_pins_a_foreign_signer(
    bench: Bench, capsys: pytest.CaptureFixture[str]
) -> None:
    """Signed by another CA's responder: invalid, unless that certificate is pinned."""
    stranger = CA(name="someone else", now=NOW).issue_responder(name="pinned responder")
    pin = bench.write(stranger, "pinned.pem")
    with responder_for(bench, responder=stranger) as (_responder, leaf):
        refused, first = run_json(capsys, "ocsp", leaf, "--issuer", bench.issuer_pem, "--at", AT)
        code, report = run_json(
            capsys, "ocsp", leaf, "--issuer", bench.issuer_pem, "--trust-responder", pin,
            "--at", AT,
        )  # fmt: skip
    assert (refused, first["status"]) == (1, "invalid")
    assert code == 0
    assert (report["status"], report["responder_kind"]) == ("good", "pinned")


def test_ocsp_stale_answer(bench: Bench, capsys: pytest.CaptureFixture[str]) -> None:
    """Signed 20 days before --at, valid a day: properly signed but past nextUpdate."""

    def old() -> datetime.datetime:
        return NOW - datetime.timedelta(days=20)

    with responder_for(bench, clock=old) as (_responder, leaf):
        code, report = run_json(capsys, "ocsp", leaf, "--issuer", bench.issuer_pem, "--at", AT)
        _code, out, _err = run(capsys, "ocsp", leaf, "--issuer", bench.issuer_pem, "--at", AT)
    assert code == 1
    assert report["status"] == "stale"
    assert report["next_update"] == "2026-11-02T12:00:00Z"
    assert report["seconds_left"] == -19 * 86400
    assert lines(out)["next update"] == "2026-11-02 12:00:00 UTC (passed 19d 0h ago)"


# --- ocsp: misbehaving responders ------------------------------------------------------------

REFUSED = [
    ("garbage", {}, "invalid", "not a DER OCSP response"),
    ("try-later", {}, "invalid", "tryLater"),
    ("forged", {}, "invalid", "signature"),
    ("other-certificate", {}, "invalid", "no entry for serial"),
]
NO_ANSWER = [
    ("http-error", {}, "HTTP 500"),
    ("redirect", {}, "HTTP 302"),
    ("oversized", {"size": 1024 * 1024}, "65536"),
    ("content-type", {}, "text/html"),
    ("empty", {}, ""),
    ("close", {}, ""),
    ("reset", {}, ""),
]


@pytest.mark.parametrize(("mode", "params", "status", "words"), REFUSED)
def test_ocsp_answers_that_are_refused_exit_1(
    bench: Bench,
    mode: str,
    params: dict[str, Any],
    status: str,
    words: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with responder_for(bench) as (responder, leaf):
        responder.misbehave(mode, **params)
        code, report = run_json(capsys, "ocsp", leaf, "--issuer", bench.issuer_pem, "--at", AT)
        text_code, out, err = run(capsys, "ocsp", leaf, "--issuer", bench.issuer_pem, "--at", AT)
    assert code == text_code == 1, report
    assert (report["status"], report["source"]) == (status, None)
    assert words.lower() in report["reason"].lower(), report["reason"]
    assert report["url"] == responder.url
    assert lines(out)["status"] == status
    assert lines(out)["source"] == "none answered"
    assert err == ""


@pytest.mark.parametrize(("mode", "params", "words"), NO_ANSWER)
def test_ocsp_no_usable_answer_exits_3(
    bench: Bench,
    mode: str,
    params: dict[str, Any],
    words: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with responder_for(bench) as (responder, leaf):
        responder.misbehave(mode, **params)
        code, report = run_json(capsys, "ocsp", leaf, "--issuer", bench.issuer_pem, "--at", AT)
        _code, out, _err = run(capsys, "ocsp", leaf, "--issuer", bench.issuer_pem, "--at", AT)
    assert code == 3, report
    assert (report["status"], report["source"], report["url"]) == ("missing", None, None)
    assert words in report["reason"], report["reason"]
    [attempt] = report["revocation"]["attempts"]
    assert (attempt["url"], attempt["outcome"]) == (responder.url, "failed")
    assert lines(out)["status"] == "no answer"


def test_ocsp_down_and_slow_responders_exit_3(
    bench: Bench, refused_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    leaf = bench.write(bench.issuer.issue_cert("localhost", ocsp_url=refused_url), "down.pem")
    code, report = run_json(capsys, "ocsp", leaf, "--issuer", bench.issuer_pem, "--at", AT)
    assert code == 3
    assert report["status"] == "missing"
    assert "refused" in report["reason"].lower()
    with responder_for(bench) as (responder, slow_leaf):
        responder.misbehave("slow", delay=30)
        started = time.monotonic()
        code, report = run_json(
            capsys, "ocsp", slow_leaf, "--issuer", bench.issuer_pem, "--timeout", "0.5",
            "--at", AT,
        )  # fmt: skip
        elapsed = time.monotonic() - started
    assert code == 3
    assert elapsed < 5
    assert report["reason"] in ("no answer before the deadline",) or "timed out" in report["reason"]
    [attempt] = report["revocation"]["attempts"]
    assert attempt["outcome"] in ("failed", "timeout")


# --- ocsp: the cache ---------------------------------------------------------------------------


def test_ocsp_sqlite_cache_is_used_and_said_to_be(
    bench: Bench, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = f"sqlite:{tmp_path / 'answers.db'}"
    with responder_for(bench, "revoked") as (responder, leaf):
        args = ["ocsp", leaf, "--issuer", bench.issuer_pem, "--at", AT, "--cache", spec]
        first_code, first = run_json(capsys, *args)
        second_code, second = run_json(capsys, *args, "--nonce")
        _code, out, _err = run(capsys, *args)
        assert responder.requests == 1
    assert first_code == second_code == 1
    assert (first["source"], first["cache"]) == ("ocsp", spec)
    assert (second["status"], second["source"], second["url"]) == ("revoked", "cache", None)
    assert second["revocation_reason"] == "keyCompromise"
    assert second["nonce"] == {"sent": None, "echoed": None}
    assert [(a["source"], a["outcome"]) for a in second["revocation"]["attempts"]] == [
        ("cache", "revoked")
    ]
    shown = lines(out)
    assert (
        shown["source"] == f"cache ({spec}): a stored answer, judged again now; nothing was asked"
    )
    assert shown["nonce"] == "not sent"
    assert "request" not in shown  # nothing was sent
    assert "url" not in shown


def test_ocsp_redis_cache(bench: Bench, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    redis = start_redis(tmp_path)
    try:
        spec = f"redis://127.0.0.1:{redis.port}/3"
        with responder_for(bench) as (responder, leaf):
            args = ["ocsp", leaf, "--issuer", bench.issuer_pem, "--at", AT, "--cache", spec]
            _first_code, first = run_json(capsys, *args)
            code, second = run_json(capsys, *args)
            assert responder.requests == 1
    finally:
        redis.stop()
    assert code == 0
    assert first["source"] == "ocsp"
    assert (second["source"], second["status"]) == ("cache", "good")
    assert second["cache"] == f"redis 127.0.0.1 port {redis.port} database 3"


# --- crl ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def crl_for(bench: Bench, **crl_options: Any) -> Iterator[tuple[CRLServer, str, str]]:
    """A CRL server with the issuer's CRL listing one revoked leaf; (server, good leaf,
    revoked leaf), both naming the CRL's URL."""
    with CRLServer() as server:
        url = server.url("/issuer.crl")
        good = bench.issuer.issue_cert("localhost", crl_url=url)
        revoked = bench.issuer.issue_cert("localhost", crl_url=url)
        crl_options.setdefault("reason", "keyCompromise")
        server.set_crl("/issuer.crl", bench.issuer.crl([revoked], **crl_options))
        yield (
            server,
            bench.write(good, f"crl-good-{good.cert.serial_number:x}.pem"),
            bench.write(revoked, f"crl-revoked-{revoked.cert.serial_number:x}.pem"),
        )


def test_crl_good_and_revoked_json_field_by_field(
    bench: Bench, capsys: pytest.CaptureFixture[str]
) -> None:
    with crl_for(bench) as (server, good, revoked):
        good_code, ok = run_json(capsys, "crl", good, "--issuer", bench.issuer_pem, "--at", AT)
        code, report = run_json(capsys, "crl", revoked, "--issuer", bench.issuer_pem, "--at", AT)
        url = server.url("/issuer.crl")
    assert good_code == 0
    assert (ok["status"], ok["source"], ok["url"]) == ("good", "crl", url)
    assert ok["reason"] == f"not listed in the {CRL_ISSUER}"
    assert (ok["revocation_time"], ok["revocation_reason"]) == (None, None)
    assert code == 1
    assert report["command"] == "crl"
    assert (report["status"], report["source"], report["url"]) == ("revoked", "crl", url)
    assert report["crl_issuer"] == INTERMEDIATE
    assert report["this_update"] == "2026-11-21T12:00:00Z"
    assert report["next_update"] == "2026-11-22T12:00:00Z"
    assert report["seconds_left"] == 86400
    assert (report["entries"], report["crl_number"]) == (1, 1)
    assert report["revocation_time"] == "2026-11-21T11:00:00Z"  # an hour before thisUpdate
    assert report["revocation_reason"] == "keyCompromise"
    assert report["cache"] == "memory"
    assert report["revocation"]["responder"] == CRL_ISSUER
    assert report["subject"] == "CN=localhost"


def test_crl_text(bench: Bench, capsys: pytest.CaptureFixture[str]) -> None:
    with crl_for(bench) as (server, _good, revoked):
        code, out, err = run(capsys, "crl", revoked, "--issuer", bench.issuer_pem, "--at", AT)
        url = server.url("/issuer.crl")
    assert (code, err) == (1, "")
    shown = lines(out)
    assert shown["status"] == "revoked"
    assert shown["reason"].startswith(f"the {CRL_ISSUER} lists the certificate as revoked")
    assert shown["source"] == "crl (asked now)"
    assert shown["url"] == url
    assert shown["crl issuer"] == INTERMEDIATE
    assert shown["this update"] == "2026-11-21 12:00:00 UTC"
    assert shown["next update"] == "2026-11-22 12:00:00 UTC (1d 0h left)"
    assert (shown["entries"], shown["crl number"]) == ("1", "1")
    assert shown["revoked at"] == "2026-11-21 11:00:00 UTC"
    assert shown["revocation reason"] == "keyCompromise"
    [attempt] = shown["attempt"]
    assert attempt.startswith(f"crl {url}: revoked in ")


def test_crl_url_overrides_and_cache(
    bench: Bench, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A leaf without distribution points, asked at --url; the second run reads the
    SQLite cache and says so, with the CRL's facts from the stored CRL."""
    leaf = bench.issuer.issue_cert("localhost")
    path = bench.write(leaf, "no-cdp.pem")
    spec = f"sqlite:{tmp_path / 'crls.db'}"
    with CRLServer() as server:
        server.set_crl("/c.crl", bench.issuer.crl([leaf, 7, 8], reason="superseded"))
        args = ["crl", path, "--issuer", bench.issuer_pem, "--url", server.url("/c.crl")]
        first_code, first = run_json(capsys, *args, "--at", AT, "--cache", spec)
        code, second = run_json(capsys, *args, "--at", AT, "--cache", spec)
        _code, out, _err = run(capsys, *args, "--at", AT, "--cache", spec)
        assert server.requests == 1
    assert first_code == code == 1
    assert (first["source"], first["url"], first["entries"]) == ("crl", server.url("/c.crl"), 3)
    assert (second["status"], second["source"], second["entries"]) == ("revoked", "cache", 3)
    assert second["revocation_reason"] == "superseded"
    assert second["url"] == server.url("/c.crl")
    assert lines(out)["source"].startswith(f"cache ({spec}): a stored answer")


@pytest.mark.parametrize("pem", [True, False])
def test_crl_file(bench: Bench, pem: bool, capsys: pytest.CaptureFixture[str]) -> None:
    leaf = bench.issuer.issue_cert("localhost")
    crl = bench.directory / f"issuer.{'pem' if pem else 'der'}.crl"
    crl.write_bytes(bench.issuer.crl([leaf], pem=pem, crl_number=42))
    path = bench.write(leaf, f"file-{pem}.pem")
    code, report = run_json(capsys, "crl", path, "--issuer", bench.issuer_pem, "--file", str(crl),
                            "--at", AT)  # fmt: skip
    _code, out, _err = run(capsys, "crl", path, "--issuer", bench.issuer_pem, "--file", str(crl),
                           "--at", AT)  # fmt: skip
    assert code == 1
    assert (report["status"], report["source"], report["url"]) == ("revoked", "crl", str(crl))
    assert (report["entries"], report["crl_number"], report["cache"]) == (1, 42, None)
    shown = lines(out)
    assert shown["source"] == "file (read now)"
    assert shown["file"] == str(crl)


def test_crl_file_of_another_ca_is_refused(
    bench: Bench, capsys: pytest.CaptureFixture[str]
) -> None:
    other = CA(name="another CA", now=NOW)
    crl = bench.directory / "other.crl"
    crl.write_bytes(other.crl([]))
    leaf = bench.write(bench.issuer.issue_cert("localhost"), "other-ca-leaf.pem")
    code, out, err = run(capsys, "crl", leaf, "--issuer", bench.issuer_pem, "--file", str(crl),
                         "--at", AT)  # fmt: skip
    assert code == 1
    assert err == ""
    shown = lines(out)
    assert shown["status"] == "no answer"
    assert "none of the 1 static CRL files is from the certificate's issuer" in shown["reason"]


@pytest.mark.parametrize(
    ("crl_options", "status", "words"),
    [
        ({"this_update": NOW - datetime.timedelta(days=3)}, "stale", "nextUpdate"),
        ({"corrupt_signature": True}, "invalid", "signature"),
        ({"signer": "stranger"}, "invalid", "signature"),
    ],
)
def test_crl_refused_exit_1(
    bench: Bench,
    crl_options: dict[str, Any],
    status: str,
    words: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if crl_options.get("signer") == "stranger":
        crl_options = {"signer": CA(name="staplecheck test intermediate", now=NOW)}
    with crl_for(bench, **crl_options) as (_server, good, _revoked):
        code, report = run_json(capsys, "crl", good, "--issuer", bench.issuer_pem, "--at", AT)
    assert code == 1, report
    assert (report["status"], report["source"]) == (status, None)
    assert words in report["reason"], report["reason"]


@pytest.mark.parametrize("mode", ["not-found", "server-error", "garbage", "truncated"])
def test_crl_server_misbehaving(
    bench: Bench, mode: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with crl_for(bench) as (server, good, _revoked):
        server.misbehave(mode)
        code, report = run_json(capsys, "crl", good, "--issuer", bench.issuer_pem, "--at", AT)
    # Bytes that arrive but are no CRL are refused (1); no bytes at all is no answer (3).
    expected = (1, "invalid") if mode == "garbage" else (3, "missing")
    assert (code, report["status"]) == expected, report
    assert report["entries"] is None


def test_crl_unreachable_exits_3(
    bench: Bench, refused_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    leaf = bench.write(
        bench.issuer.issue_cert("localhost", crl_url=refused_url + "x.crl"), "crl-down.pem"
    )
    code, out, _err = run(capsys, "crl", leaf, "--issuer", bench.issuer_pem, "--at", AT)
    assert code == 3
    assert lines(out)["status"] == "no answer"


# --- usage errors --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def inputs(bench: Bench) -> dict[str, str]:
    leaf = bench.issuer.issue_cert("localhost", ocsp_url="http://127.0.0.1:9/")
    bare = bench.issuer.issue_cert("localhost")
    stranger = CA(name="stranger", now=NOW)
    garbage = bench.directory / "garbage.pem"
    garbage.write_bytes(b"not a certificate\n")
    not_crl = bench.directory / "not.crl"
    not_crl.write_bytes(b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n")
    return {
        "leaf": bench.write(leaf, "usage-leaf.pem"),
        "bare": bench.write(bare, "usage-bare.pem"),
        "https": bench.write(
            bench.issuer.issue_cert("localhost", ocsp_url="https://127.0.0.1:9/"), "https.pem"
        ),
        "stranger": bench.write(stranger, "stranger.pem"),
        "garbage": str(garbage),
        "not_crl": str(not_crl),
        "missing": str(bench.directory / "nothing-here.pem"),
        "dir": str(bench.directory),
        "issuer": bench.issuer_pem,
    }


USAGE = [
    (["ocsp", "{leaf}"], "the following arguments are required: --issuer"),
    (["ocsp", "{garbage}", "--issuer", "{issuer}"], "{garbage} holds no readable certificate"),
    (["ocsp", "{leaf}", "--issuer", "{missing}"], "cannot read issuer {missing}"),
    (["ocsp", "/dev/zero", "--issuer", "{issuer}"],
     "certificate /dev/zero is larger than 16777216 bytes"),
    (["crl", "{bare}", "--issuer", "{dir}"], "cannot read issuer {dir}: Is a directory"),
    (["ocsp", "{leaf}", "--issuer", "{stranger}"], "{stranger} is not the issuer of {leaf}"),
    (["ocsp", "{bare}", "--issuer", "{issuer}"],
     "{bare}: nothing to ask (the certificate names no OCSP responder); name one with --url"),
    (["ocsp", "{https}", "--issuer", "{issuer}"], "(or add --allow-https-fetch)"),
    (["ocsp", "{leaf}", "--issuer", "{issuer}", "--url", "ftp://x/"], "not a usable OCSP"),
    (["ocsp", "{leaf}", "--issuer", "{issuer}", "--url", "https://x/"], "--allow-https-fetch"),
    (["ocsp", "{leaf}", "--issuer", "{issuer}", "--timeout", "0"], "not a timeout"),
    (["ocsp", "{leaf}", "--issuer", "{issuer}", "--timeout", "301"], "not a timeout"),
    (["ocsp", "{leaf}", "--issuer", "{issuer}", "--cache", "nosuch:x"], "--cache"),
    (["ocsp", "{leaf}", "--issuer", "{issuer}", "--trust-responder", "{garbage}"],
     "--trust-responder {garbage} holds no readable certificate"),
    (["ocsp", "{leaf}", "--issuer", "{issuer}", "--at", "yesterday"], "not an ISO 8601 time"),
    (["crl", "{bare}", "--issuer", "{issuer}"], "nothing to ask"),
    (["crl", "{bare}", "--issuer", "{issuer}", "--url", "http://x/", "--file", "{not_crl}"],
     "not allowed with argument"),
    (["crl", "{bare}", "--issuer", "{issuer}", "--file", "{not_crl}"], "is not a CRL"),
    (["crl", "{bare}", "--issuer", "{issuer}", "--file", "{missing}"], "cannot read"),
    (["crl", "{bare}", "--issuer", "{issuer}", "--file", "{dir}"], "is a directory"),
    (["crl", "{bare}", "--issuer", "{issuer}", "--file", "{not_crl}", "--cache", "memory"],
     "not cached"),
    (["crl", "{bare}", "--issuer", "{issuer}", "--url", "file:///etc/x"], "not a usable CRL URL"),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "message"), USAGE)
def test_usage_errors_exit_2_with_one_line(
    inputs: dict[str, str], argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, *(arg.format(**inputs) for arg in argv))
    assert code == 2
    assert out == ""
    assert err.startswith("staplecheck")
    assert message.format(**inputs) in err, err
    assert "Traceback" not in err
    if "required" not in message and "not allowed" not in message:
        assert err.count("\n") == 1, err


# --- as a real program ---------------------------------------------------------------------------


def _program(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    return subprocess.run(
        [sys.executable, "-m", "staplecheck", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_subprocess_ocsp_and_crl(bench: Bench) -> None:
    with responder_for(bench, "revoked") as (responder, leaf):
        done = _program("ocsp", leaf, "--issuer", bench.issuer_pem, "--at", AT, "--json")
        assert responder.requests == 1
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert (report["status"], report["source"]) == ("revoked", "ocsp")
    with crl_for(bench) as (_server, good, _revoked):
        done = _program("crl", good, "--issuer", bench.issuer_pem, "--at", AT)
    assert done.returncode == 0, done.stderr
    assert lines(done.stdout)["status"] == "good"
    done = _program("crl", good, "--issuer", good)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("staplecheck: error: ")
    assert "Traceback" not in done.stderr


# --- third-party responders ------------------------------------------------------------------


@pytest.fixture(scope="module")
def live_pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[CA, Path]:
    """A PKI at the real time: openssl ocsp and cfssl sign with the real clock."""
    return CA().create_intermediate(), tmp_path_factory.mktemp("cli-query-live")


def _write(identity: Identity | CA, path: Path) -> str:
    path.write_bytes(identity.cert.public_bytes(Encoding.PEM))
    return str(path)


def test_openssl_ocsp_responder(
    live_pki: tuple[CA, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    require_program("openssl")
    issuer, directory = live_pki
    good, revoked, unknown = (issuer.issue_cert("localhost") for _ in range(3))
    openssl = OpenSSLResponder(issuer, revoked=[revoked.cert], good=[good.cert])
    try:
        openssl.start()
    except Exception as error:
        if "private network namespace" in str(error) and not IN_CI:
            pytest.skip(str(error))
        raise
    try:
        url = f"http://127.0.0.1:{openssl.port}/"
        issuer_pem = _write(issuer, directory / "openssl-issuer.pem")
        results = {}
        for name, leaf in (("good", good), ("revoked", revoked), ("unknown", unknown)):
            path = _write(leaf, directory / f"openssl-{name}.pem")
            results[name] = run_json(
                capsys, "ocsp", path, "--issuer", issuer_pem, "--url", url, "--nonce",
                "--timeout", "20",
            )  # fmt: skip
    finally:
        openssl.stop()
    assert {name: (code, r["status"]) for name, (code, r) in results.items()} == {
        "good": (0, "good"),
        "revoked": (1, "revoked"),
        "unknown": (1, "unknown"),
    }
    for _code, report in results.values():
        assert report["nonce"]["echoed"] is True  # openssl ocsp echoes nonces
        assert report["responder_kind"] == "issuer"
        assert report["url"] == url
        assert 3500 <= report["seconds_left"] <= 3610  # -nmin 60, from the answer's time
    assert results["revoked"][1]["revocation_reason"] == "keyCompromise"
    assert results["revoked"][1]["revocation_time"] == "2026-11-01T00:00:00Z"


def test_cfssl_ocspserve(live_pki: tuple[CA, Path], capsys: pytest.CaptureFixture[str]) -> None:
    issuer, directory = live_pki
    delegate = issuer.issue_responder()
    good, revoked = issuer.issue_cert("localhost"), issuer.issue_cert("localhost")
    cfssl = CfsslResponder(issuer, delegate, binary=require_program("cfssl"))
    cfssl.add(good, "good")
    revoked_on = datetime.datetime.now(datetime.timezone.utc).date() - datetime.timedelta(days=2)
    cfssl.add(revoked, "revoked", revocation_reason="keyCompromise", revoked_on=revoked_on)
    issuer_pem = _write(issuer, directory / "cfssl-issuer.pem")
    good_pem = _write(good, directory / "cfssl-good.pem")
    revoked_pem = _write(revoked, directory / "cfssl-revoked.pem")
    with cfssl:
        assert cfssl.url is not None
        base = ["--issuer", issuer_pem, "--url", cfssl.url, "--timeout", "20"]
        good_code, good_report = run_json(capsys, "ocsp", good_pem, *base)
        code, report = run_json(capsys, "ocsp", revoked_pem, *base)
        nonce_code, nonce_report = run_json(capsys, "ocsp", good_pem, *base, "--nonce")
    assert good_code == 0
    assert (good_report["status"], good_report["responder_kind"]) == ("good", "delegated")
    assert code == 1
    assert (report["status"], report["revocation_reason"]) == ("revoked", "keyCompromise")
    assert report["revocation_time"] == f"{revoked_on.isoformat()}T00:00:00Z"
    # cfssl serves pre-signed responses: no nonce comes back, so the answer is refused.
    assert nonce_code == 1
    assert (nonce_report["status"], nonce_report["nonce"]["echoed"]) == ("invalid", False)


# --- Policy.crl_urls, what crl --url sets ------------------------------------------------------


def test_policy_crl_urls_are_checked_and_replace_the_distribution_points(bench: Bench) -> None:
    with pytest.raises(TypeError):
        Policy(fallback=("crl",), crl_urls="http://x/c.crl")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="absolute"):
        Policy(fallback=("crl",), crl_urls=("c.crl",))
    leaf = bench.issuer.issue_cert("localhost", crl_url="http://127.0.0.1:1/own.crl")
    pair = CertPair(
        leaf.cert.public_bytes(Encoding.DER), bench.issuer.cert.public_bytes(Encoding.DER)
    )
    own = make_plan(pair, Policy(fallback=("crl",)))
    designated = make_plan(pair, Policy(fallback=("crl",), crl_urls=["http://127.0.0.1:2/c.crl"]))
    files = make_plan(pair, Policy(fallback=("crl",), crl_urls=("http://a/",), crl_files=("f",)))
    assert own.crl_urls == ("http://127.0.0.1:1/own.crl",)
    assert designated.crl_urls == ("http://127.0.0.1:2/c.crl",)
    assert files.crl_urls == ()


def test_a_poisoned_cache_is_refused_and_the_source_asked(
    bench: Bench, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A forged response planted in the shared SQLite store under the certificate's key
    is judged again, refused (and said to be), and the responder asked; when the
    responder is down that is no answer (exit 3), not the forgery's verdict."""
    spec = f"sqlite:{tmp_path / 'poisoned.db'}"
    forger = CA(name="staplecheck test intermediate", now=NOW)
    with responder_for(bench, "revoked") as (responder, leaf_path):
        leaf = Path(leaf_path).read_bytes()
        cert = x509.load_pem_x509_certificate(leaf)
        _request, key = request_key(
            CertPair(cert.public_bytes(Encoding.DER), bench.issuer.cert.public_bytes(Encoding.DER))
        )
        forged = bench.issuer.ocsp_response(cert, "good", this_update=NOW, responder=forger)
        store = open_store(spec)
        store.put(key, forged, now=NOW, expires_at=NOW + datetime.timedelta(days=1))
        store.close()
        code, report = run_json(capsys, "ocsp", leaf_path, "--issuer", bench.issuer_pem,
                                "--at", AT, "--cache", spec)  # fmt: skip
        assert responder.requests == 1
        responder.stop()
        # The revoked answer is now stored; a fresh store with the forgery and no
        # responder: no answer.
        spec = f"sqlite:{tmp_path / 'poisoned-2.db'}"
        store = open_store(spec)
        store.put(key, forged, now=NOW, expires_at=NOW + datetime.timedelta(days=1))
        store.close()
        down_code, down = run_json(capsys, "ocsp", leaf_path, "--issuer", bench.issuer_pem,
                                   "--at", AT, "--cache", spec, "--timeout", "2")  # fmt: skip
    assert (code, report["status"], report["source"]) == (1, "revoked", "ocsp")
    first = report["revocation"]["attempts"][0]
    assert (first["source"], first["outcome"]) == ("cache", "invalid")
    assert first["reason"].startswith("a stored response was refused: ")
    assert down_code == 3
    assert (down["status"], down["source"]) == ("missing", None)
    assert [(a["source"], a["outcome"]) for a in down["revocation"]["attempts"]] == [
        ("cache", "invalid"),
        ("ocsp", "failed"),
    ]


def test_a_must_staple_certificate_is_asked_too(
    bench: Bench, capsys: pytest.CaptureFixture[str]
) -> None:
    """Connections need a staple for it (RFC 7633); a direct query still asks."""
    with OCSPResponder(bench.issuer, clock=fixed_clock) as responder:
        leaf = bench.issuer.issue_cert("localhost", must_staple=True, ocsp_url=responder.url)
        responder.set_status(leaf, "good")
        path = bench.write(leaf, "must-staple.pem")
        code, report = run_json(capsys, "ocsp", path, "--issuer", bench.issuer_pem, "--at", AT)
        assert responder.requests == 1
    assert (code, report["status"], report["source"]) == (0, "good", "ocsp")
