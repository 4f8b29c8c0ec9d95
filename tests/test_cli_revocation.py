"""``staplecheck check`` with the revocation fallback (issue 8 item 8).

Real servers on loopback only: :class:`StaplingServer` serving no staple (or one),
:class:`OCSPResponder` (well-behaved and misbehaving), :class:`CRLServer`, static CRL
files, a temporary SQLite file and a real ``redis-server``. ``main([...])`` runs
in-process; one test runs the installed ``staplecheck`` entry point. The PKI is
anchored at the real time, because ``check`` judges at the wall clock as a user's run
does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from staplecheck.cli._main import main
from staplecheck.testing import CA, CRLServer, Identity, OCSPResponder, StaplingServer
from staplecheck.testing._process import free_port

from .test_stores import start_redis

INTERMEDIATE = "CN=staplecheck test intermediate"
BY_ISSUER = f"issuer {INTERMEDIATE}"
GOOD_REASON = f"signed by the issuer {INTERMEDIATE}; the certificate is not revoked"
NO_STAPLE = "the server stapled no OCSP response"


@dataclasses.dataclass(frozen=True)
class Bench:
    root: CA
    issuer: CA
    cafile: str
    directory: Path

    def leaf(self, **options: Any) -> Identity:
        return self.issuer.issue_cert("localhost", "127.0.0.1", **options)


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Bench:
    directory = tmp_path_factory.mktemp("cli-revocation")
    root = CA()
    issuer = root.create_intermediate()
    return Bench(root, issuer, root.write_trust(directory / "ca.pem"), directory)


@contextlib.contextmanager
def responder_and_server(
    bench: Bench, status: str = "good", tls_version: str | None = None, **leaf_options: Any
) -> Iterator[tuple[OCSPResponder, StaplingServer, Identity]]:
    """A responder for the intermediate, and a server that staples nothing for a leaf
    whose AIA names that responder."""
    with OCSPResponder(bench.issuer) as responder:
        leaf = bench.leaf(ocsp_url=responder.url, **leaf_options)
        responder.set_status(
            leaf, status, revocation_reason="keyCompromise" if status == "revoked" else None
        )
        with StaplingServer(leaf, tls_version=tls_version) as server:  # type: ignore[arg-type]
            yield responder, server, leaf


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["check", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code, out, err = run(capsys, *args, "--json")
    assert "Traceback" not in err
    return code, json.loads(out)


def attempt_summary(revocation: dict[str, Any]) -> list[tuple[str, str | None, str]]:
    return [(a["source"], a["url"], a["outcome"]) for a in revocation["attempts"]]


# --- OCSP -------------------------------------------------------------------------------


@pytest.mark.parametrize("tls_version", ["1.2", "1.3"])
def test_hard_fail_asks_the_responder_json_field_by_field(
    bench: Bench, tls_version: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with responder_and_server(bench, tls_version=tls_version) as (responder, server, leaf):
        code, report = run_json(
            capsys, server.url, "--cafile", bench.cafile, "--policy", "hard-fail"
        )
        assert [(r.method, r.serial_number, r.answer) for r in responder.history] == [
            ("POST", leaf.cert.serial_number, "good")
        ]
    assert code == 0
    assert report["accepted"] is True
    assert report["policy"] == "hard-fail"
    assert report["tls_version"] == f"TLSv{tls_version}"
    assert report["fallback"] == ["ocsp", "crl"]
    assert report["check_chain"] is False
    assert report["staple"]["status"] == "missing"
    revocation = report["revocation"]
    assert set(revocation) >= {"status", "source", "reason", "attempts", "chain"}
    assert revocation["status"] == "good"
    assert revocation["source"] == "ocsp"
    assert revocation["reason"] == GOOD_REASON
    assert revocation["responder"] == BY_ISSUER
    assert revocation["serial_number"] == f"{leaf.cert.serial_number:#x}"
    assert revocation["subject"] == "CN=localhost"
    assert revocation["accepted"] is True
    assert revocation["chain"] == []
    assert revocation["revocation_time"] is None
    assert revocation["this_update"].endswith("Z")
    assert revocation["next_update"].endswith("Z")
    # hard-fail asks ocsp then crl; the plan notes first that this leaf names no CRL
    skipped, attempt = revocation["attempts"]
    assert skipped == {
        "source": "crl",
        "url": None,
        "outcome": "skipped",
        "reason": "the certificate names no CRL distribution point",
        "milliseconds": 0.0,
    }
    assert set(attempt) == {"source", "url", "outcome", "reason", "milliseconds"}
    assert (attempt["source"], attempt["url"]) == ("ocsp", responder.url)
    assert attempt["outcome"] == "good"
    assert attempt["reason"] == GOOD_REASON
    assert isinstance(attempt["milliseconds"], float)
    assert 0 <= attempt["milliseconds"] < 5000


def test_hard_fail_human_output(bench: Bench, capsys: pytest.CaptureFixture[str]) -> None:
    with responder_and_server(bench) as (responder, server, _leaf):
        code, out, err = run(capsys, server.url, "--cafile", bench.cafile, "--policy", "hard-fail")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == f"{server.url} (localhost port {server.port}, TLSv1.3)"
    assert lines[1] == "policy:            hard-fail: accepted"
    assert lines[2] == "status:            missing"
    assert lines[3] == f"reason:            {NO_STAPLE}"
    assert "fallback:          ocsp,crl" in lines
    start = lines.index("revocation:        good (source: ocsp)")
    section = lines[start + 1 :]
    assert section[0] == f"  reason:          {GOOD_REASON}"
    assert section[1] == f"  responder:       {BY_ISSUER}"
    assert section[2].startswith("  this update:     ")
    assert section[2].endswith(" UTC")
    assert section[3].startswith("  next update:     ")
    assert section[4] == (
        "  attempt:         crl: skipped in 0.0 ms "
        "(the certificate names no CRL distribution point)"
    )
    assert section[5].startswith(f"  attempt:         ocsp {responder.url}: good in ")
    assert section[5].endswith(" ms")  # its reason is the verdict's, printed above
    assert len(section) == 6


def test_a_revoking_responder_refuses_under_soft_fail(
    bench: Bench, capsys: pytest.CaptureFixture[str]
) -> None:
    with responder_and_server(bench, "revoked") as (responder, server, _leaf):
        args = [server.url, "--cafile", bench.cafile, "--fallback", "ocsp"]
        code, report = run_json(capsys, *args, "--cache", "memory")
        text_code, out, _ = run(capsys, *args)
        assert responder.requests == 2  # a memory cache does not outlive the command
    assert code == text_code == 1
    assert report["accepted"] is False
    assert report["fallback"] == ["ocsp"]
    revocation = report["revocation"]
    assert (revocation["status"], revocation["source"]) == ("revoked", "ocsp")
    assert revocation["revocation_reason"] == "keyCompromise"
    assert revocation["revocation_time"].endswith("Z")
    assert revocation["accepted"] is False
    assert "policy:            soft-fail: REJECTED" in out
    assert "revocation:        revoked (source: ocsp)" in out
    assert "  reason code:     keyCompromise" in out
    assert "  revoked at:      " in out


@pytest.mark.parametrize(("policy", "expected"), [("soft-fail", 0), ("hard-fail", 1)])
def test_no_answer_passes_soft_fail_and_refuses_hard_fail(
    bench: Bench, policy: str, expected: int, capsys: pytest.CaptureFixture[str]
) -> None:
    with responder_and_server(bench) as (responder, server, _leaf):
        responder.misbehave("http-error")
        code, report = run_json(
            capsys, server.url, "--cafile", bench.cafile, "--policy", policy, "--fallback", "ocsp"
        )
    assert code == expected
    assert report["accepted"] is (expected == 0)
    revocation = report["revocation"]
    assert (revocation["status"], revocation["source"]) == ("missing", None)
    assert revocation["reason"] == "no source gave a definite answer"
    assert attempt_summary(revocation) == [("ocsp", responder.url, "failed")]
    assert "500" in revocation["attempts"][0]["reason"]


def test_without_a_fallback_nobody_is_asked(
    bench: Bench, capsys: pytest.CaptureFixture[str]
) -> None:
    with responder_and_server(bench) as (responder, server, _leaf):
        code, report = run_json(capsys, server.url, "--cafile", bench.cafile)
        text_code, out, _ = run(capsys, server.url, "--cafile", bench.cafile)
        # hard-fail with no fallback source: only a good staple would do
        hard_code, hard = run_json(
            capsys,
            server.url,
            "--cafile",
            bench.cafile,
            "--policy",
            "hard-fail",
            "--fallback",
            "none",
        )
        assert responder.requests == 0
    assert (code, text_code, hard_code) == (0, 0, 1)
    assert report["revocation"] is None
    assert report["fallback"] == []
    assert "revocation:" not in out
    assert "fallback:" not in out
    assert hard["revocation"] is None
    assert hard["fallback"] == []


def test_a_stapled_answer_is_never_overridden(
    bench: Bench, capsys: pytest.CaptureFixture[str]
) -> None:
    """The responder says good, the staple says revoked: the staple decides, and the
    fallback is not asked. A good staple under hard-fail needs no fallback either."""
    with OCSPResponder(bench.issuer) as responder:
        leaf = bench.leaf(ocsp_url=responder.url)
        responder.set_status(leaf, "good")
        revoked = bench.issuer.ocsp_response(leaf, "revoked", revocation_reason="keyCompromise")
        with StaplingServer(leaf, revoked) as server:
            code, report = run_json(
                capsys, server.url, "--cafile", bench.cafile, "--fallback", "ocsp"
            )
        with StaplingServer(leaf, bench.issuer.ocsp_response(leaf)) as server:
            good_code, good = run_json(
                capsys, server.url, "--cafile", bench.cafile, "--policy", "hard-fail"
            )
        assert responder.requests == 0
    assert code == 1
    assert (report["revocation"]["status"], report["revocation"]["source"]) == ("revoked", "staple")
    assert report["revocation"]["attempts"] == []
    assert good_code == 0
    assert (good["revocation"]["status"], good["revocation"]["source"]) == ("good", "staple")


def test_a_must_staple_certificate_without_staple_is_refused_unasked(
    bench: Bench, capsys: pytest.CaptureFixture[str]
) -> None:
    with responder_and_server(bench, must_staple=True) as (responder, server, _leaf):
        code, report = run_json(
            capsys, server.url, "--cafile", bench.cafile, "--policy", "hard-fail"
        )
        assert responder.requests == 0
    assert code == 1
    assert report["must_staple"] is True
    assert (report["revocation"]["status"], report["revocation"]["source"]) == ("missing", None)
    assert report["revocation"]["accepted"] is False


def test_ocsp_url_overrides_the_certificates_aia(
    bench: Bench, capsys: pytest.CaptureFixture[str]
) -> None:
    with OCSPResponder(bench.issuer) as named, OCSPResponder(bench.issuer) as designated:
        named.misbehave("http-error")
        leaf = bench.leaf(ocsp_url=named.url)
        bare = bench.leaf()  # no AIA at all
        for cert in (leaf, bare):
            designated.set_status(cert, "good")
        for identity in (leaf, bare):
            with StaplingServer(identity) as server:
                code, report = run_json(
                    capsys,
                    server.url,
                    "--cafile",
                    bench.cafile,
                    "--policy",
                    "hard-fail",
                    "--fallback",
                    "ocsp",
                    "--ocsp-url",
                    designated.url,
                )
            assert code == 0
            assert (report["revocation"]["status"], report["revocation"]["source"]) == (
                "good",
                "ocsp",
            )
            assert attempt_summary(report["revocation"]) == [("ocsp", designated.url, "good")]
        assert named.requests == 0
        assert designated.requests == 2
        # without the override the certificate without AIA gets no answer
        with StaplingServer(bare) as server:
            code, report = run_json(
                capsys,
                server.url,
                "--cafile",
                bench.cafile,
                "--policy",
                "hard-fail",
                "--fallback",
                "ocsp",
            )
    assert code == 1
    assert attempt_summary(report["revocation"]) == [("ocsp", None, "skipped")]
    assert (
        report["revocation"]["attempts"][0]["reason"] == "the certificate names no OCSP responder"
    )


def test_trust_responder_pins_a_foreign_responder(
    bench: Bench, capsys: pytest.CaptureFixture[str]
) -> None:
    pinned = CA(name="pinned responder's own CA").issue_responder(name="pinned responder")
    pin_file = bench.directory / "pinned.pem"
    pin_file.write_bytes(pinned.cert_pem)
    with OCSPResponder(bench.issuer, responder=pinned) as responder:
        leaf = bench.leaf(ocsp_url=responder.url)
        responder.set_status(leaf, "good")
        with StaplingServer(leaf) as server:
            args = [
                server.url,
                "--cafile",
                bench.cafile,
                "--policy",
                "hard-fail",
                "--fallback",
                "ocsp",
            ]
            refused_code, refused = run_json(capsys, *args)
            code, report = run_json(capsys, *args, "--trust-responder", str(pin_file))
    assert refused_code == 1
    assert attempt_summary(refused["revocation"]) == [("ocsp", responder.url, "invalid")]
    assert code == 0
    assert (report["revocation"]["status"], report["revocation"]["source"]) == ("good", "ocsp")
    assert "pinned" in report["revocation"]["responder"]


def test_ocsp_get_and_nonce(bench: Bench, capsys: pytest.CaptureFixture[str]) -> None:
    with responder_and_server(bench) as (responder, server, _leaf):
        args = [server.url, "--cafile", bench.cafile, "--policy", "hard-fail", "--fallback", "ocsp"]
        assert run_json(capsys, *args, "--ocsp-get")[0] == 0
        assert responder.history[-1].method == "GET"
        assert run_json(capsys, *args, "--ocsp-nonce")[0] == 0
        assert responder.history[-1].method == "POST"
        responder.misbehave("no-nonce")
        assert run_json(capsys, *args)[0] == 0  # no nonce sent, none needed
        code, report = run_json(capsys, *args, "--ocsp-nonce")
    assert code == 1
    assert attempt_summary(report["revocation"]) == [("ocsp", responder.url, "invalid")]
    assert "nonce" in report["revocation"]["attempts"][0]["reason"]


def test_allow_https_fetch_lets_https_urls_be_asked(
    bench: Bench, capsys: pytest.CaptureFixture[str]
) -> None:
    """The https:// responder is a TLS server that this machine's CAs do not trust: with
    --allow-https-fetch it is asked (and fails verification), without it skipped."""
    other = bench.leaf()
    with StaplingServer(other) as https_responder:
        https_url = f"https://127.0.0.1:{https_responder.port}/"
        leaf = bench.leaf(ocsp_url=https_url)
        with StaplingServer(leaf) as server:
            args = [server.url, "--cafile", bench.cafile, "--fallback", "ocsp"]
            skipped_code, skipped = run_json(capsys, *args)
            asked_code, asked = run_json(capsys, *args, "--allow-https-fetch")
    assert skipped_code == asked_code == 0  # soft-fail: no answer passes
    assert attempt_summary(skipped["revocation"]) == [("ocsp", https_url, "skipped")]
    assert "only http:// is fetched" in skipped["revocation"]["attempts"][0]["reason"]
    assert attempt_summary(asked["revocation"]) == [("ocsp", https_url, "failed")]
    assert "certificate" in asked["revocation"]["attempts"][0]["reason"].lower()


# --- CRLs -------------------------------------------------------------------------------


def test_crl_distribution_point_revokes(bench: Bench, capsys: pytest.CaptureFixture[str]) -> None:
    with CRLServer() as crls, OCSPResponder(bench.issuer) as responder:
        leaf = bench.leaf(ocsp_url=responder.url, crl_url=crls.url("/inter.crl"))
        responder.set_status(leaf, "good")
        crls.set_crl("/inter.crl", bench.issuer.crl([leaf], reason="keyCompromise"))
        with StaplingServer(leaf) as server:
            code, report = run_json(
                capsys, server.url, "--cafile", bench.cafile, "--fallback", "crl"
            )
        assert responder.requests == 0
        assert crls.requests == 1
    assert code == 1
    revocation = report["revocation"]
    assert (revocation["status"], revocation["source"]) == ("revoked", "crl")
    assert revocation["revocation_reason"] == "keyCompromise"
    assert revocation["responder"] == f"CRL from issuer {INTERMEDIATE}"
    assert attempt_summary(revocation) == [("crl", crls.url("/inter.crl"), "revoked")]


def test_sources_are_asked_in_the_order_given(
    bench: Bench, capsys: pytest.CaptureFixture[str]
) -> None:
    with CRLServer() as crls, OCSPResponder(bench.issuer) as responder:
        leaf = bench.leaf(ocsp_url=responder.url, crl_url=crls.url("/inter.crl"))
        crls.set_crl("/inter.crl", bench.issuer.crl([]))
        responder.misbehave("http-error")
        with StaplingServer(leaf) as server:
            base = [server.url, "--cafile", bench.cafile, "--policy", "hard-fail"]
            code, report = run_json(capsys, *base, "--fallback", "ocsp,crl")
            assert code == 0
            assert attempt_summary(report["revocation"]) == [
                ("ocsp", responder.url, "failed"),
                ("crl", crls.url("/inter.crl"), "good"),
            ]
            assert report["revocation"]["source"] == "crl"
            asked = responder.requests
            code, report = run_json(capsys, *base, "--fallback", "crl,ocsp")
            assert responder.requests == asked  # the CRL answered first
    assert code == 0
    assert report["fallback"] == ["crl", "ocsp"]
    assert attempt_summary(report["revocation"]) == [("crl", crls.url("/inter.crl"), "good")]


def test_static_crls_and_check_chain(bench: Bench, capsys: pytest.CaptureFixture[str]) -> None:
    """A directory with the intermediate's and the root's CRLs answers for the leaf and
    for the intermediate; a file listing the leaf revokes it."""
    crl_dir = bench.directory / "crls"
    crl_dir.mkdir()
    leaf = bench.leaf()
    (crl_dir / "inter.crl").write_bytes(bench.issuer.crl([]))
    (crl_dir / "root.crl").write_bytes(bench.root.crl([], pem=True))
    revoking = bench.directory / "revoking.crl"
    revoking.write_bytes(bench.issuer.crl([leaf], reason="superseded"))
    with StaplingServer(leaf) as server:
        base = [server.url, "--cafile", bench.cafile, "--policy", "hard-fail", "--fallback", "crl"]
        code, report = run_json(capsys, *base, "--crl", str(crl_dir), "--check-chain")
        text_code, out, _ = run(capsys, *base, "--crl", str(crl_dir), "--check-chain")
        revoked_code, revoked = run_json(capsys, *base, "--crl", str(revoking))
    assert code == text_code == 0
    assert report["check_chain"] is True
    revocation = report["revocation"]
    assert (revocation["status"], revocation["source"]) == ("good", "crl")
    assert attempt_summary(revocation) == [("crl", str(crl_dir / "inter.crl"), "good")]
    [intermediate] = revocation["chain"]
    assert intermediate["subject"] == INTERMEDIATE
    assert (intermediate["status"], intermediate["source"]) == ("good", "crl")
    assert intermediate["accepted"] is True
    assert intermediate["responder"] == "CRL from issuer CN=staplecheck test root"
    assert attempt_summary(intermediate)[-1] == ("crl", str(crl_dir / "root.crl"), "good")
    assert f"intermediate:      {INTERMEDIATE}: good (source: crl), accepted" in out.splitlines()
    assert revoked_code == 1
    assert (revoked["revocation"]["status"], revoked["revocation"]["revocation_reason"]) == (
        "revoked",
        "superseded",
    )


@pytest.mark.parametrize(("policy", "expected"), [("soft-fail", 0), ("hard-fail", 1)])
def test_check_chain_with_no_answer_for_the_intermediate(
    bench: Bench, policy: str, expected: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """The test intermediate names no responder: soft-fail passes it, hard-fail refuses."""
    with responder_and_server(bench) as (_responder, server, _leaf):
        code, report = run_json(
            capsys,
            server.url,
            "--cafile",
            bench.cafile,
            "--policy",
            policy,
            "--fallback",
            "ocsp",
            "--check-chain",
        )
        _, out, _ = run(
            capsys,
            server.url,
            "--cafile",
            bench.cafile,
            "--policy",
            policy,
            "--fallback",
            "ocsp",
            "--check-chain",
        )
    assert code == expected
    assert report["revocation"]["status"] == "good"  # the leaf's own verdict
    [intermediate] = report["revocation"]["chain"]
    assert (intermediate["status"], intermediate["source"]) == ("missing", None)
    assert intermediate["accepted"] is (expected == 0)
    assert report["revocation"]["accepted"] is (expected == 0)
    decision = "accepted" if expected == 0 else "REJECTED"
    assert f"intermediate:      {INTERMEDIATE}: missing (no source answered), {decision}" in out


def test_must_staple_with_check_chain_checks_the_intermediates(
    bench: Bench, capsys: pytest.CaptureFixture[str]
) -> None:
    crl_dir = bench.directory / "root-only"
    crl_dir.mkdir()
    (crl_dir / "root.crl").write_bytes(bench.root.crl([bench.issuer.cert]))
    leaf = bench.leaf()
    with StaplingServer(leaf, bench.issuer.ocsp_response(leaf)) as server:
        code, report = run_json(
            capsys,
            server.url,
            "--cafile",
            bench.cafile,
            "--policy",
            "must-staple",
            "--fallback",
            "crl",
            "--crl",
            str(crl_dir),
            "--check-chain",
        )
    assert code == 1
    assert report["staple"]["status"] == "good"
    [intermediate] = report["revocation"]["chain"]
    assert (intermediate["status"], intermediate["accepted"]) == ("revoked", False)


# --- time budget and cache -------------------------------------------------------------


def test_fallback_timeout_and_timeout_bound_a_slow_responder(
    bench: Bench, capsys: pytest.CaptureFixture[str]
) -> None:
    with responder_and_server(bench) as (responder, server, _leaf):
        responder.misbehave("slow", delay=30)
        base = [server.url, "--cafile", bench.cafile, "--policy", "hard-fail", "--fallback", "ocsp"]
        for extra in (
            ["--fallback-timeout", "0.3"],
            ["--timeout", "0.3", "--fallback-timeout", "30"],
        ):
            started = time.monotonic()
            code, report = run_json(capsys, *base, *extra)
            elapsed = time.monotonic() - started
            assert code == 1
            assert elapsed < 5, extra
            assert report["revocation"]["source"] is None
            assert report["revocation"]["reason"] == "no source gave a definite answer in time"
            [attempt] = report["revocation"]["attempts"]
            assert attempt["outcome"] in ("failed", "timeout")
            assert attempt["milliseconds"] < 3000


def test_sqlite_cache_is_shared_between_runs(
    bench: Bench, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = f"sqlite:{tmp_path / 'answers.db'}"
    with responder_and_server(bench) as (responder, server, _leaf):
        args = [server.url, "--cafile", bench.cafile, "--policy", "hard-fail", "--cache", spec]
        first_code, first = run_json(capsys, *args)
        second_code, second = run_json(capsys, *args)
        assert responder.requests == 1
    assert (tmp_path / "answers.db").is_file()
    assert first_code == second_code == 0
    assert first["revocation"]["source"] == "ocsp"
    assert (second["revocation"]["status"], second["revocation"]["source"]) == ("good", "cache")
    assert attempt_summary(second["revocation"]) == [("cache", None, "good")]


def test_redis_cache_is_shared_between_runs(
    bench: Bench, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    redis = start_redis(tmp_path)
    try:
        spec = f"redis://127.0.0.1:{redis.port}/2"
        with responder_and_server(bench) as (responder, server, _leaf):
            args = [server.url, "--cafile", bench.cafile, "--fallback", "ocsp", "--cache", spec]
            first_code, first = run_json(capsys, *args)
            second_code, second = run_json(capsys, *args)
            assert responder.requests == 1
    finally:
        redis.stop()
    assert first_code == second_code == 0
    assert first["revocation"]["source"] == "ocsp"
    assert second["revocation"]["source"] == "cache"


def test_an_unreachable_redis_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()  # nothing listens there
    code, out, err = run(
        capsys,
        "https://localhost:1/",
        "--fallback",
        "ocsp",
        "--cache",
        f"redis://user:s3cret@127.0.0.1:{port}/0?timeout=2",
    )
    assert code == 2
    assert out == ""
    assert err.startswith(
        f"staplecheck: error: --cache: Redis at 127.0.0.1 port {port} (database 0) "
        "does not answer: "
    )
    assert "s3cret" not in err
    assert err.count("\n") == 1


# --- connection failures keep their code -----------------------------------------------


def test_an_untrusted_server_exits_3_and_nobody_is_asked(
    bench: Bench, capsys: pytest.CaptureFixture[str]
) -> None:
    with responder_and_server(bench) as (responder, server, _leaf):
        code, out, err = run(capsys, server.url, "--policy", "hard-fail")  # certifi's roots
        assert responder.requests == 0
    assert code == 3
    assert "certificate verify failed" in err
    assert out == ""


# --- usage errors ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def files(bench: Bench) -> dict[str, str]:
    directory = bench.directory / "usage"
    directory.mkdir()
    empty = directory / "empty-dir"
    empty.mkdir()
    (empty / "notes.txt").write_text("no CRL here\n")
    crl = directory / "inter.crl"
    crl.write_bytes(bench.issuer.crl([]))
    cert = directory / "leaf.pem"
    cert.write_bytes(bench.leaf().cert_pem)
    many = directory / "nine.pem"
    many.write_bytes(
        b"".join(bench.issuer.issue_responder(name=f"r{i}").cert_pem for i in range(9))
    )
    return {"dir": str(empty), "crl": str(crl), "cert": str(cert), "nine": str(many)}


USAGE_ERRORS = [
    (["--fallback", "ocsp,dns"], "argument --fallback: unknown fallback source 'dns'"),
    (["--fallback", "ocsp,ocsp"], "a fallback source is listed twice"),
    (["--fallback", "none,ocsp"], "'none' stands alone"),
    (["--fallback", ""], "unknown fallback source ''"),
    (["--policy", "off", "--fallback", "ocsp"], "'off' checks nothing"),
    (["--policy", "must-staple", "--fallback", "ocsp"], "is never asked"),
    (["--check-chain"], "--check-chain needs a fallback source"),
    (["--policy", "hard-fail", "--fallback", "none", "--check-chain"], "--check-chain needs"),
    (["--policy", "off", "--check-chain"], "--check-chain needs a fallback, and policy 'off'"),
    (["--ocsp-url", "http://127.0.0.1:9/"], "--ocsp-url needs ocsp among the fallback sources"),
    (["--fallback", "crl", "--ocsp-url", "http://127.0.0.1:9/"], "--ocsp-url needs ocsp"),
    (["--fallback", "crl", "--ocsp-get"], "--ocsp-get needs ocsp"),
    (["--fallback", "crl", "--ocsp-nonce"], "--ocsp-nonce needs ocsp"),
    (["--fallback", "ocsp", "--crl", "{crl}"], "--crl needs crl among the fallback sources"),
    (["--fallback-timeout", "1"], "--fallback-timeout needs a fallback source"),
    (["--cache", "memory"], "--cache needs a fallback source"),
    (["--allow-https-fetch"], "--allow-https-fetch needs a fallback source"),
    (
        [
            "--policy",
            "must-staple",
            "--fallback",
            "ocsp",
            "--check-chain",
            "--ocsp-url",
            "http://a/",
        ],
        "--ocsp-url under --policy must-staple is never asked",
    ),
    (["--fallback", "ocsp", "--ocsp-url", "ftp://127.0.0.1/"], "not a usable OCSP responder URL"),
    (["--fallback", "ocsp", "--ocsp-url", "127.0.0.1:9"], "not a usable OCSP responder URL"),
    (["--fallback", "ocsp", "--ocsp-url", "http:///x"], "no host"),
    (["--fallback", "ocsp", "--ocsp-url", "http://a:b@127.0.0.1/"], "credentials"),
    (["--fallback", "ocsp", "--ocsp-url", "http://127.0.0.1:99999/"], "out of range"),
    (["--fallback", "ocsp", "--ocsp-url", "http://127.0.0.1/ x"], "spaces"),
    (["--fallback", "ocsp", "--ocsp-url", "http://127.0.0.1/#x"], "a fragment"),
    (["--fallback", "ocsp", "--ocsp-url", "https://127.0.0.1/"], "needs --allow-https-fetch"),
    (["--fallback", "ocsp"] + ["--ocsp-url", "http://127.0.0.1:9/"] * 9, "at most 8"),
    (["--trust-responder", "/nonexistent/pin.pem"], "cannot read --trust-responder file"),
    (["--trust-responder", "{crl}"], "holds no readable certificate"),
    (["--trust-responder", "{dir}"], "is a directory"),
    (["--trust-responder", "{nine}"], "9 certificates, at most 8"),
    (["--fallback", "crl", "--crl", "/nonexistent/x.crl"], "cannot read --crl file"),
    (["--fallback", "crl", "--crl", "{cert}"], "is not a CRL"),
    (["--fallback", "crl", "--crl", "{dir}"], "holds no CRL"),
    (["--fallback", "ocsp", "--cache", "memcached://127.0.0.1/"], "--cache: unknown store spec"),
    (["--fallback", "ocsp", "--cache", "sqlite:"], "sqlite: needs a file path"),
    (["--fallback", "ocsp", "--cache", "sqlite:{cert}"], "not a usable staplecheck store"),
    (["--fallback", "ocsp", "--cache", "sqlite:/nonexistent/dir/x.db"], "cannot open"),
    (["--fallback", "ocsp", "--cache", "redis://127.0.0.1:x/0"], "Redis store spec"),
    (["--fallback", "ocsp", "--fallback-timeout", "0"], "not a fallback time budget"),
    (["--fallback", "ocsp", "--fallback-timeout", "-1"], "not a fallback time budget"),
    (["--fallback", "ocsp", "--fallback-timeout", "301"], "not a fallback time budget"),
    (["--fallback", "ocsp", "--fallback-timeout", "nan"], "not a fallback time budget"),
    (["--fallback", "ocsp", "--fallback-timeout", "inf"], "not a fallback time budget"),
    (["--fallback", "ocsp", "--fallback-timeout", "soon"], "not a fallback time budget"),
    (["--fallback", "ocsp", "--timeout", "1e9"], "not a timeout"),
]


@pytest.mark.parametrize(
    ("args", "fragment"), USAGE_ERRORS, ids=[str(i) for i in range(len(USAGE_ERRORS))]
)
def test_bad_revocation_options_exit_2(
    files: dict[str, str], args: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [arg.format(**files) for arg in args]
    # Nothing listens on port 1: an option that got past the checks would exit 3.
    code, out, err = run(capsys, "https://localhost:1/", *argv)
    assert code == 2, err
    assert out == ""
    assert err.startswith("staplecheck: error: ")
    assert fragment in err
    assert err.count("\n") == 1
    assert "Traceback" not in err


# --- the installed command -------------------------------------------------------------


def test_the_installed_entry_point(bench: Bench) -> None:
    program = Path(sys.executable).with_name("staplecheck")
    assert program.exists(), program
    root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    with responder_and_server(bench, "revoked") as (responder, server, _leaf):
        done = subprocess.run(
            [
                str(program),
                "check",
                server.url,
                "--cafile",
                bench.cafile,
                "--policy",
                "hard-fail",
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            check=False,
        )
        assert responder.requests == 1
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert (report["revocation"]["status"], report["revocation"]["source"]) == ("revoked", "ocsp")
    assert report["accepted"] is False
