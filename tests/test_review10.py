"""Adversarial review of the operators' commands (issue 10): each test here failed
before the fix committed with it. Real servers and subprocesses only."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import require_program

ROOT = Path(__file__).resolve().parent.parent


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _staplecheck(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "staplecheck", *args],
        capture_output=True,
        env=_env(),
        timeout=timeout,
    )


class DrippingServer:
    """Accepts, reads the ClientHello, then announces a 16 KiB handshake record and
    sends it one byte every ``interval`` seconds: each read completes well within any
    per-read timeout, the handshake never does."""

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(8)
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.connections = 0

    def __enter__(self) -> DrippingServer:
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            thread = threading.Thread(target=self._drip, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _drip(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                conn.recv(65536)
                conn.sendall(b"\x16\x03\x03\x40\x00")
                while not self._stop.wait(self.interval):
                    conn.sendall(b"\x02")
            except OSError:
                return


@pytest.fixture
def dripping() -> Iterator[DrippingServer]:
    with DrippingServer() as server:
        yield server


def test_a_dripping_server_cannot_hold_scan_past_its_timeout(dripping: DrippingServer) -> None:
    started = time.monotonic()
    proc = _staplecheck(
        "scan", "--json", "--timeout", "1", f"127.0.0.1:{dripping.port}", timeout=20
    )
    elapsed = time.monotonic() - started
    assert b"Traceback" not in proc.stderr
    assert elapsed < 8, f"scan took {elapsed:.1f} s with --timeout 1"
    assert proc.returncode == 3, proc.stderr
    (record,) = [json.loads(line) for line in proc.stdout.splitlines()]
    assert record["outcome"] == "unreachable"
    assert "timed out" in record["error"]


def test_a_dripping_server_cannot_hold_check_past_its_timeout(dripping: DrippingServer) -> None:
    started = time.monotonic()
    proc = _staplecheck(
        "check", "--timeout", "1", f"https://127.0.0.1:{dripping.port}/", timeout=20
    )
    elapsed = time.monotonic() - started
    assert elapsed < 8, f"check took {elapsed:.1f} s with --timeout 1"
    assert b"Traceback" not in proc.stderr
    assert proc.returncode == 3, proc.stderr
    assert b"timed out" in proc.stderr


# --- a host name whose resolver never answers ------------------------------------------------

# Runs inside a private user, mount and network namespace (``unshare -Urnm``), as the
# fetcher's own test of a silent resolver does: /etc/resolv.conf is bind-mounted to
# name 127.0.0.1, where a UDP socket takes queries and answers none (glibc then waits
# 5 s per try, twice). The machine's resolver is untouched.
_SILENT_DNS_SCRIPT = r"""
import contextlib, ctypes, fcntl, io, json, socket, struct, sys, time
from staplecheck.cli._main import main

libc = ctypes.CDLL(None, use_errno=True)
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:  # loopback up
    flags = struct.unpack("16sh22x", fcntl.ioctl(s, 0x8913, struct.pack("16sh22x", b"lo", 0)))[1]
    fcntl.ioctl(s, 0x8914, struct.pack("16sh22x", b"lo", flags | 1))
if libc.mount(sys.argv[1].encode(), b"/etc/resolv.conf", None, 4096, None) != 0:  # MS_BIND
    sys.exit("cannot bind-mount resolv.conf: errno %d" % ctypes.get_errno())
silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
silent.bind(("127.0.0.1", 53))
out = {}
for name, argv in (
    ("scan", ["scan", "--json", "--timeout", "1", "slow.staplecheck.test"]),
    ("check", ["check", "--timeout", "1", "https://slow.staplecheck.test/"]),
):
    stdout, stderr = io.StringIO(), io.StringIO()
    start = time.monotonic()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(argv)
    out[name] = {
        "seconds": time.monotonic() - start,
        "code": code,
        "stdout": stdout.getvalue(),
        "stderr": stderr.getvalue(),
    }
silent.settimeout(1)
out["queried"] = len(silent.recvfrom(512)[0]) > 0
print(json.dumps(out))
"""


def test_a_silent_resolver_cannot_hold_scan_or_check_past_the_timeout(tmp_path: Path) -> None:
    unshare = require_program("unshare")
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\noptions timeout:5 attempts:2\n")
    script = tmp_path / "silent_dns.py"
    script.write_text(_SILENT_DNS_SCRIPT)
    done = subprocess.run(
        [unshare, "-Urnm", sys.executable, str(script), str(resolv)],
        capture_output=True,
        text=True,
        timeout=90,
        env=_env(),
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    assert out["queried"]
    scan, check = out["scan"], out["check"]
    assert scan["seconds"] < 4, scan
    assert scan["code"] == 3, scan
    (record,) = [json.loads(line) for line in scan["stdout"].splitlines()]
    assert record["outcome"] == "unreachable"
    assert "resolv" in record["error"] or "timed out" in record["error"], record
    assert check["seconds"] < 4, check
    assert check["code"] == 3, check
    assert "Traceback" not in check["stderr"] + scan["stderr"]


# --- ocsp / crl: an unreadable --issuer is named as the issuer ---------------------------------


@pytest.mark.parametrize("command", ["ocsp", "crl", "verify"])
@pytest.mark.parametrize("bad", ["/dev/zero", ".", "missing.pem"])
def test_an_unreadable_issuer_is_named_as_the_issuer(
    command: str, bad: str, tmp_path: Path
) -> None:
    from cryptography.hazmat.primitives.serialization import Encoding

    from staplecheck.testing import CA

    issuer = CA().create_intermediate()
    leaf = issuer.issue_cert("localhost", ocsp_url="http://127.0.0.1:9/")
    (tmp_path / "leaf.pem").write_bytes(leaf.cert.public_bytes(Encoding.PEM))
    (tmp_path / "staple.der").write_bytes(b"\x30\x03\x0a\x01\x01")
    args = [command, "leaf.pem", "--issuer", bad]
    if command == "verify":
        args = ["verify", "--cert", "leaf.pem", "--issuer", bad, "staple.der"]
    proc = subprocess.run(
        [sys.executable, "-m", "staplecheck", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_env(),
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("staplecheck: error: "), lines
    assert f"issuer {bad}" in lines[0], lines


# --- Ctrl-C with every output at once ----------------------------------------------------------


def test_ctrl_c_writes_partial_csv_prometheus_and_html_atomically(tmp_path: Path) -> None:
    """SIGINT while two targets hang on a silent server: exit 130, a partial CSV on
    standard output, the Prometheus and HTML files written whole and marked partial,
    no temporary file left behind."""
    import csv
    import signal

    from staplecheck.testing._process import free_port

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    hang = f"127.0.0.1:{silent.getsockname()[1]}"
    closed = f"127.0.0.1:{free_port()}"
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    prom, page = out_dir / "scan.prom", out_dir / "scan.html"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "staplecheck",
            "scan",
            "--csv",
            "--prometheus",
            str(prom),
            "--html",
            str(page),
            "--jobs",
            "2",
            "--timeout",
            "60",
            closed,
            hang,
            hang,
            closed,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(),
    )
    held: list[socket.socket] = []
    try:
        silent.settimeout(30)
        while len(held) < 2:
            held.append(silent.accept()[0])
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for sock in held:
            sock.close()
        silent.close()
    assert process.returncode == 130, err
    assert b"Traceback" not in err
    rows = list(csv.DictReader(out.decode().splitlines()))
    assert [r["target"] for r in rows] == [closed, hang, hang, closed]
    assert rows[0]["outcome"] == "unreachable"
    assert rows[1]["error"].startswith("abandoned")
    assert rows[3]["error"].startswith("not checked")
    text = prom.read_text()
    assert text.endswith("\n")
    assert "staplecheck_scan_partial 1\n" in text
    assert "staplecheck_scan_duration_seconds " in text
    html = page.read_text()
    assert "PARTIAL" in html
    assert html.rstrip().endswith("</html>")
    assert sorted(p.name for p in out_dir.iterdir()) == ["scan.html", "scan.prom"]


# --- text output of verify, check and ocsp: names from a hostile staple or responder -----------

HOSTILE_NAME = "evil\x1b]0;pwned\x07\x1b[2J\u202eRED\nstatus:            good"


def _no_raw_controls(text: str) -> None:
    for char in ("\x1b", "\x07", "\u202e"):
        assert char not in text, repr(text)
    assert [line for line in text.splitlines() if line.startswith("status:")] != []
    assert len([line for line in text.splitlines() if line.startswith("status:")]) == 1, text


def test_a_hostile_delegate_name_cannot_reach_the_terminal(tmp_path: Path) -> None:
    """A staple (or a live answer) signed by a "delegated responder" the attacker made
    up, named with terminal escapes, a bidirectional override and a newline followed by
    a forged ``status: good`` line: the reason that names it is printed escaped, on
    one line, by verify, check and ocsp."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from staplecheck.testing import CA, OCSPResponder, StaplingServer

    root = CA()
    issuer = root.create_intermediate()
    delegate = CA(name="rogue").create_intermediate().issue_responder(name=HOSTILE_NAME)
    cafile = root.write_trust(tmp_path / "ca.pem")
    with OCSPResponder(issuer, responder=delegate) as responder:
        leaf = issuer.issue_cert("localhost", ocsp_url=responder.url)
        responder.set_status(leaf, "good")
        staple = issuer.ocsp_response(leaf, "good", responder=delegate)
        (tmp_path / "leaf.pem").write_bytes(leaf.cert.public_bytes(Encoding.PEM))
        (tmp_path / "issuer.pem").write_bytes(issuer.cert.public_bytes(Encoding.PEM))
        (tmp_path / "staple.der").write_bytes(staple)
        verify = _staplecheck(
            "verify",
            "--cert",
            str(tmp_path / "leaf.pem"),
            "--issuer",
            str(tmp_path / "issuer.pem"),
            str(tmp_path / "staple.der"),
        )
        ocsp = _staplecheck(
            "ocsp", str(tmp_path / "leaf.pem"), "--issuer", str(tmp_path / "issuer.pem")
        )
        with StaplingServer(leaf, staple) as server:
            check = _staplecheck(
                "check", "--cafile", str(cafile), f"https://localhost:{server.port}/"
            )
    for proc in (verify, ocsp, check):
        assert b"Traceback" not in proc.stderr
        assert proc.returncode == 1, proc.stderr
        text = proc.stdout.decode()
        assert "delegated responder CN=evil" in text
        _no_raw_controls(text)


# --- scan: endless target lists ----------------------------------------------------------------


@pytest.mark.parametrize("where", ["file", "stdin"])
def test_an_endless_line_of_targets_is_a_usage_error(where: str) -> None:
    """``--from /dev/zero`` (or /dev/zero on standard input): one line that never
    ends. The scan must refuse it quickly, with one line and exit 2, not read forever."""
    args = ["--from", "/dev/zero"] if where == "file" else ["--from", "-"]
    with open("/dev/zero", "rb") as zero:
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "staplecheck", "scan", *args],
            stdin=zero if where == "stdin" else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=_env(),
            timeout=30,
        )
    assert time.monotonic() - started < 15
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    (line,) = proc.stderr.splitlines()
    assert line.startswith("staplecheck: error: ")
    assert "line" in line


@pytest.mark.parametrize("option", ["--prometheus", "--html"])
def test_a_report_path_that_is_a_directory_is_refused_before_the_scan(
    option: str, tmp_path: Path
) -> None:
    """``--prometheus DIR`` used to scan the whole fleet and then fail to write
    ("Device or resource busy"): a path that cannot be a file is a usage error at once."""
    proc = _staplecheck("scan", option, str(tmp_path), "127.0.0.1:1")
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == b""
    (line,) = proc.stderr.decode().splitlines()
    assert line == f"staplecheck: error: {option} {tmp_path}: a directory, not a file"
    assert list(tmp_path.iterdir()) == []


def test_reports_are_written_with_the_operators_umask(tmp_path: Path) -> None:
    """The Prometheus and HTML files name every host of the fleet: an operator whose
    umask is 077 gets files only they can read (they were chmod 0644 whatever the umask)."""
    prom, page = tmp_path / "scan.prom", tmp_path / "scan.html"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "staplecheck",
            "scan",
            "--json",
            "--prometheus",
            str(prom),
            "--html",
            str(page),
            "127.0.0.1:1",
        ],
        capture_output=True,
        env=_env(),
        timeout=60,
        preexec_fn=lambda: os.umask(0o077),
    )
    assert proc.returncode == 3, proc.stderr
    assert prom.stat().st_mode & 0o777 == 0o600
    assert page.stat().st_mode & 0o777 == 0o600
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "staplecheck",
            "scan",
            "--json",
            "--prometheus",
            str(prom),
            "127.0.0.1:1",
        ],
        capture_output=True,
        env=_env(),
        timeout=60,
        preexec_fn=lambda: os.umask(0o022),
    )
    assert proc.returncode == 3, proc.stderr
    assert prom.stat().st_mode & 0o777 == 0o644


def test_ctrl_c_while_the_workers_start_still_gives_a_partial_report() -> None:
    """SIGINT as soon as the first of 256 workers connects, while the others are still
    being started: the report lists every target (exit 130), never nothing at all."""
    import signal

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(512)
    hang = f"127.0.0.1:{silent.getsockname()[1]}"
    targets = [hang] * 400
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "staplecheck",
            "scan",
            "--json",
            "--jobs",
            "256",
            "--timeout",
            "60",
            *targets,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(),
    )
    held: list[socket.socket] = []
    try:
        silent.settimeout(30)
        held.append(silent.accept()[0])
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for sock in held:
            sock.close()
        silent.close()
    assert process.returncode == 130, err
    assert b"Traceback" not in err
    records = [json.loads(line) for line in out.splitlines()]
    assert len(records) == len(targets)
    assert err.decode().startswith("staplecheck: interrupted: a partial report")


# --- a slow but working resolver and many jobs --------------------------------------------------

# As above, in a private namespace, but the resolver on 127.0.0.1 answers every A query
# with 127.0.0.1 after 300 ms (AAAA: no address): a real, slow DNS server.
_SLOW_DNS_SCRIPT = r"""
import contextlib, ctypes, fcntl, io, json, socket, struct, sys, threading, time
from staplecheck.cli._main import main

libc = ctypes.CDLL(None, use_errno=True)
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:  # loopback up
    flags = struct.unpack("16sh22x", fcntl.ioctl(s, 0x8913, struct.pack("16sh22x", b"lo", 0)))[1]
    fcntl.ioctl(s, 0x8914, struct.pack("16sh22x", b"lo", flags | 1))
if libc.mount(sys.argv[1].encode(), b"/etc/resolv.conf", None, 4096, None) != 0:  # MS_BIND
    sys.exit("cannot bind-mount resolv.conf: errno %d" % ctypes.get_errno())
server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
server.bind(("127.0.0.1", 53))

def answer(query, peer):
    time.sleep(0.3)
    end = query.index(b"\0", 12) + 5
    qtype = struct.unpack("!H", query[end - 4:end - 2])[0]
    count = 1 if qtype == 1 else 0
    reply = query[:2] + struct.pack("!HHHHH", 0x8180, 1, count, 0, 0) + query[12:end]
    if count:
        reply += struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + socket.inet_aton("127.0.0.1")
    server.sendto(reply, peer)

def serve():
    while True:
        query, peer = server.recvfrom(512)
        threading.Thread(target=answer, args=(query, peer), daemon=True).start()

threading.Thread(target=serve, daemon=True).start()
targets = [f"n{i}.staplecheck.test:1" for i in range(64)]
stdout, stderr = io.StringIO(), io.StringIO()
with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
    code = main(["scan", "--json", "--jobs", "64", "--timeout", "10", *targets])
print(json.dumps({"code": code, "stdout": stdout.getvalue(), "stderr": stderr.getvalue()}))
"""


def test_many_jobs_resolving_through_a_slow_resolver_all_get_an_answer(tmp_path: Path) -> None:
    """64 workers resolving names at once through a resolver that takes 300 ms: every
    name resolves (and its closed port refuses), none is failed for a full table of
    pending resolutions."""
    unshare = require_program("unshare")
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\noptions timeout:5 attempts:1\n")
    script = tmp_path / "slow_dns.py"
    script.write_text(_SLOW_DNS_SCRIPT)
    done = subprocess.run(
        [unshare, "-Urnm", sys.executable, str(script), str(resolv)],
        capture_output=True,
        text=True,
        timeout=90,
        env=_env(),
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    records = [json.loads(line) for line in out["stdout"].splitlines()]
    assert len(records) == 64
    errors = {r["error"].split(": ", 1)[1] for r in records}
    assert errors == {"Connection refused"}, errors
    assert out["code"] == 3
