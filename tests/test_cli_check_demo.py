"""``staplecheck check`` against the in-process stapling server, and ``staplecheck demo``."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from pathlib import Path

import pytest

from staplecheck.cli._main import main
from staplecheck.testing import StaplingServer

from .test_tls import NOW, Site
from .tls_cases import MODES, POLICY_TABLE, StapleCase


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    return Site(str(tmp_path_factory.mktemp("check")))


def run_check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["check", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("case", POLICY_TABLE, ids=lambda c: c.name)
def test_check_json_reports_the_staple_under_every_policy(
    site: Site, case: StapleCase, capsys: pytest.CaptureFixture[str]
) -> None:
    with site.server(case, "1.3") as server:
        for mode in MODES:
            code, out, err = run_check(
                capsys, server.url, "--cafile", site.cafile, "--policy", mode, "--json"
            )
            report = json.loads(out)
            accepted = case.expected_accept(mode)
            assert report["accepted"] is accepted, (mode, report)
            assert code == (0 if accepted else 1)
            assert report["policy"] == mode
            # check always asks and reports, whatever the policy
            assert report["staple"]["status"] == case.status.value
            assert isinstance(report["staple"]["reason"], str)
            assert report["must_staple"] is case.must_staple
            assert report["tls_version"] == "TLSv1.3"
            assert (report["host"], report["port"]) == ("localhost", server.port)
            assert err == ""


def test_check_human_output_names_decision_and_staple(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    revoked = POLICY_TABLE[1]
    with site.server(revoked, "1.2") as server:
        code, out, _ = run_check(capsys, server.url, "--cafile", site.cafile)
    assert code == 1
    assert "TLSv1.2" in out
    assert "soft-fail: REJECTED" in out
    assert "revoked" in out
    assert "keyCompromise" in out


def test_check_time_options_change_the_verdict(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    """A response four hours old is current by default, stale under --max-age 1h."""
    leaf = site.plain
    staple = site.issuer.ocsp_response(leaf, this_update=NOW - datetime.timedelta(hours=4))
    with StaplingServer(leaf, staple) as server:
        url = server.url
        code, out, _ = run_check(capsys, url, "--cafile", site.cafile, "--json")
        assert json.loads(out)["staple"]["status"] == "good"
        code, out, _ = run_check(capsys, url, "--cafile", site.cafile, "--json", "--max-age", "1h")
    assert json.loads(out)["staple"]["status"] == "stale"
    assert code == 0  # stale without must-staple: soft-fail accepts


@pytest.mark.parametrize(
    ("make_args", "fragment"),
    [
        (lambda url, ca: [url], "certificate verify failed"),  # certifi does not trust us
        (lambda url, ca: ["https://127.0.0.1:1/", "--cafile", ca], "cannot connect"),
        (lambda url, ca: [url.replace("localhost", "127.0.0.1"), "--cafile", ca], None),
    ],
    ids=["untrusted", "refused", "ip-san-ok"],
)
def test_check_connection_failures_exit_3(
    site: Site, capsys: pytest.CaptureFixture[str], make_args: object, fragment: str | None
) -> None:
    with site.server(POLICY_TABLE[0]) as server:
        args = make_args(server.url, site.cafile)  # type: ignore[operator]
        code, _out, err = run_check(capsys, *args)
    if fragment is None:
        assert code == 0, err
    else:
        assert code == 3
        assert fragment in err
        assert "Traceback" not in err


def test_check_wrong_hostname_exits_3(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    other = site.issuer.issue_cert("other.test")
    with StaplingServer(other, site.issuer.ocsp_response(other)) as server:
        code, out, _err = run_check(capsys, server.url, "--cafile", site.cafile, "--json")
    assert code == 3
    assert "other.test" in json.loads(out)["error"] or "match" in json.loads(out)["error"]


@pytest.mark.parametrize(
    "args",
    [
        ["http://localhost/"],
        ["https://localhost:notaport/"],
        ["https:///nohost"],
        ["https://localhost/", "--policy", "sometimes"],
        ["https://localhost/", "--timeout", "-1"],
        ["https://localhost/", "--cafile", "/nonexistent/ca.pem"],
    ],
)
def test_check_usage_errors_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_check(capsys, *args)
    assert code == 2
    assert err.startswith("staplecheck: error: ")
    assert err.count("\n") == 1
    assert out == ""


def test_check_connects_to_the_a_label_of_an_international_name() -> None:
    from staplecheck.cli._check import parse_https_url

    assert parse_https_url("https://Bücher.test:8443/x") == ("xn--bcher-kva.test", 8443)
    with pytest.raises(ValueError, match="IDNA"):
        parse_https_url("https://a\u00adb.bücher.test/")


def test_check_garbage_server_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    """A server that answers the ClientHello with plain text: a clean error, exit 3."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def answer() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\nthis is not TLS\r\n")

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        port = listener.getsockname()[1]
        code, _, err = run_check(capsys, f"https://localhost:{port}/", "--timeout", "5")
    finally:
        thread.join(timeout=5)
        listener.close()
    assert code == 3
    assert "Traceback" not in err
    assert "the server did not answer with TLS (is it plain HTTP?)" in err
    assert "Error(" not in err
    assert err.count("\n") == 1


def test_demo_matches_the_policy_table(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["demo", "--no-color"])
    out = capsys.readouterr().out
    assert code == 0
    assert "every outcome matches the policy table" in out
    assert "\033[" not in out
    lines = {line.split("  ")[0]: line for line in out.splitlines()}
    assert "REJECTED (revoked)" in lines["revoked (keyCompromise)"]
    assert lines["no staple"].count("accepted") == 2
    assert lines["must-staple cert, no staple"].count("REJECTED") == 2
    # Installed users have no docs/ directory: the demo points to the published page.
    assert (
        "The policy table: https://github.com/staplecheck/staplecheck/blob/main/docs/policies.md."
        in out
    )


def test_demo_and_check_as_real_subprocesses(site: Site, tmp_path: Path) -> None:
    demo = subprocess.run(
        [sys.executable, "-m", "staplecheck", "demo"], capture_output=True, text=True, timeout=120
    )
    assert demo.returncode == 0, demo.stderr
    assert f"{len(POLICY_TABLE) * len(MODES)} connections" in demo.stdout
    with site.server(POLICY_TABLE[0]) as server:
        check = subprocess.run(
            [sys.executable, "-m", "staplecheck", "check", server.url, "--cafile", site.cafile],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert check.returncode == 0, check.stderr
    assert "status:" in check.stdout
