"""Capture the ``staplecheck`` command's real output for the command pages.

Starts local servers with :mod:`staplecheck.testing` (stapling servers, an OCSP
responder, a CRL server, all on 127.0.0.1), runs each command as a user would (a
subprocess, ``python -m staplecheck ...``, in a scratch directory), and writes the
command line, what it printed and its exit code to ``docs/_captured/NAME.txt``. The
pages in ``docs/cli/`` include those files, and CI runs this script before the strict
build (``docs/build.py``), so the output they show is real and current. A command
whose exit code is not the one the page describes stops the capture.

Adding a command: write its capture function, name it in ``COMMANDS``, and add its
page ``docs/cli/NAME.md`` with one line in the toctree of ``docs/cli.md``.
``tests/test_docs_site.py`` fails while a subcommand of the parser has no entry here
or no page.

Usage: ``python docs/capture.py [OUTPUT_DIR]`` (default ``docs/_captured``).
"""

from __future__ import annotations

import contextlib
import datetime
import http.server
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from staplecheck.testing import CA, CRLServer, Identity, OCSPResponder, StaplingServer

DOCS = Path(__file__).resolve().parent
DEFAULT_OUTPUT = DOCS / "_captured"

# The fixed moment verify's examples are judged at (verify --at): the files are made
# at this time, so their output is the same on every run.
VERIFY_NOW = datetime.datetime(2026, 11, 21, 12, 0, tzinfo=datetime.timezone.utc)


class Session:
    """Runs ``staplecheck`` in one scratch directory and writes transcripts."""

    def __init__(self, workdir: Path, output: Path) -> None:
        self.workdir = workdir
        self.output = output
        self.written: list[str] = []

    def run(self, *args: str, expect: int, show_status: bool = True) -> str:
        """One ``$ staplecheck ARGS`` transcript: the output, then ``echo $?``.

        A run that exits otherwise than ``expect`` is tried once more (the fallback's
        2-second budget can run out on a loaded machine; the log says so), then stops
        the capture."""
        command = shlex.join(["staplecheck", *args])
        for attempt in (1, 2):
            done = self._run(args)
            if done.returncode == expect:
                break
            message = f"capture: {command} exited {done.returncode}, not {expect}:\n{done.stdout}"
            if attempt == 2:
                raise SystemExit(message)
            print(f"{message}capture: trying it once more", file=sys.stderr)
        transcript = f"$ {command}\n{done.stdout}"
        if show_status:
            transcript += f"$ echo $?\n{done.returncode}\n"
        return transcript

    def _run(self, args: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, COLUMNS="100")
        env.pop("NO_COLOR", None)
        return subprocess.run(
            [sys.executable, "-m", "staplecheck", *args],
            cwd=self.workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=120,
            check=False,
        )

    def write(self, name: str, *transcripts: str) -> None:
        path = self.output / f"{name}.txt"
        path.write_text("".join(transcripts), encoding="utf-8")
        self.written.append(name)


# --- verify ------------------------------------------------------------------------


def capture_verify(session: Session) -> None:
    # The files of docs/cli/verify.md's setup script, made the same way.
    issuer = CA(now=VERIFY_NOW).create_intermediate()
    server = issuer.issue_cert("localhost", must_staple=True, serial_number=0x1234)
    files = {
        "leaf.pem": server.cert_pem,
        "issuer.pem": issuer.cert_pem,
        "good.der": issuer.ocsp_response(server),
        "revoked.der": issuer.ocsp_response(server, "revoked", revocation_reason="keyCompromise"),
        "empty.der": b"",
    }
    for name, data in files.items():
        (session.workdir / name).write_bytes(data)
    files_args = ("--cert", "leaf.pem", "--issuer", "issuer.pem")
    run = session.run
    session.write(
        "verify-good",
        run("verify", "good.der", *files_args, "--at", "2026-11-21T12:30:00Z", expect=0),
    )
    session.write(
        "verify-stale",
        run("verify", "good.der", *files_args, "--at", "2026-11-23T12:00:00Z", expect=1),
    )
    session.write(
        "verify-revoked",
        run("verify", "revoked.der", *files_args, "--at", "2026-11-21T12:30:00Z", expect=1),
    )
    session.write(
        "verify-revoked-json",
        run(
            "verify", "revoked.der", *files_args, "--at", "2026-11-21T12:30:00Z", "--json",
            expect=1,
        ),
    )  # fmt: skip
    session.write(
        "verify-missing-json",
        run("verify", "empty.der", *files_args, "--at", "2026-11-21T12:30:00Z", "--json", expect=1),
    )
    session.write(
        "verify-usage-errors",
        run("verify", "good.der", "--cert", "issuer.pem", "--issuer", "issuer.pem", expect=2),
        run("verify", "good.der", *files_args, "--at", "tomorrow", expect=2),
    )


# --- check -------------------------------------------------------------------------


class _QuietHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass  # a TLS hello is a bad request here, as expected: nothing to log


@contextmanager
def _plain_http_server() -> Iterator[int]:
    """A plain-HTTP server on 127.0.0.1 (what check meets at an http-only port)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextmanager
def _silent_listener() -> Iterator[int]:
    """A port that accepts TCP connections and never says anything (a timeout)."""
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


def capture_check(session: Session) -> None:
    # OpenSSL checks certificate validity at the real time: a PKI anchored now.
    root = CA()
    issuer = root.create_intermediate()
    root.write_trust(session.workdir / "ca.pem")
    (session.workdir / "leaf.key").write_bytes(b"not a certificate\n")
    ca = ("--cafile", "ca.pem")
    run = session.run

    leaf = issuer.issue_cert("localhost", "127.0.0.1", serial_number=0x1234)
    with StaplingServer(leaf, issuer.ocsp_response(leaf)) as server:
        session.write("check-good", run("check", server.url, *ca, expect=0))
        untrusted = server.url
        session.write(
            "check-failures-trust",
            run("check", untrusted, expect=3),
            run("check", untrusted, "--json", expect=3),
        )
        session.write(
            "check-failures-usage",
            run("check", "http://localhost/", expect=2),
            run("check", server.url, "--cafile", "nope.pem", expect=2),
            run("check", server.url, "--cafile", "leaf.key", expect=2),
        )
    revoked = issuer.ocsp_response(leaf, "revoked", revocation_reason="keyCompromise")
    with StaplingServer(leaf, revoked) as server:
        session.write(
            "check-revoked",
            run("check", server.url, *ca, expect=1),
            run("check", server.url, *ca, "--policy", "off", expect=0),
        )
    with StaplingServer(leaf) as server:
        session.write(
            "check-missing",
            run("check", server.url, *ca, expect=0),
            run("check", server.url, *ca, "--policy", "must-staple", expect=1),
        )
    must_staple = issuer.issue_cert("localhost", must_staple=True, serial_number=0x5678)
    with StaplingServer(must_staple) as server:
        session.write("check-json-must-staple", run("check", server.url, *ca, "--json", expect=1))
    with StaplingServer(leaf, issuer.ocsp_response(leaf), tls_version="1.2") as server:
        url = f"https://127.0.0.1:{server.port}/"
        session.write(
            "check-json-tls12",
            run("check", url, *ca, "--policy", "must-staple", "--json", expect=0),
        )
    other = issuer.issue_cert("other.test")
    with StaplingServer(other, issuer.ocsp_response(other)) as server:
        wrong_host = run("check", server.url, *ca, expect=3)
    with _silent_listener() as port:
        timeout = run("check", f"https://localhost:{port}/", *ca, "--timeout", "1", expect=3)
    with _plain_http_server() as port:
        plain = run("check", f"https://localhost:{port}/", *ca, expect=3)
    with _silent_listener() as port:
        closed = port  # bound, then closed: nothing listens there any more
    refused = run("check", f"https://localhost:{closed}/", *ca, expect=3)
    session.write("check-failures-connection", wrong_host, refused, timeout, plain)

    capture_check_revocation(session, root, issuer)


def capture_check_revocation(session: Session, root: CA, issuer: CA) -> None:
    """check's fallback: a server that staples nothing, for a certificate that names an
    OCSP responder and a CRL distribution point (docs/cli/check.md's setup)."""
    ca = ("--cafile", "ca.pem")
    run = session.run
    crl_dir = session.workdir / "crls"
    crl_dir.mkdir()
    (crl_dir / "intermediate.crl").write_bytes(issuer.crl([]))
    (crl_dir / "root.crl").write_bytes(root.crl([]))
    with OCSPResponder(issuer) as responder, CRLServer() as crls:
        leaf = issuer.issue_cert(
            "localhost", "127.0.0.1", serial_number=0x1234,
            ocsp_url=responder.url, crl_url=crls.url("/intermediate.crl"),
        )  # fmt: skip
        crls.set_crl("/intermediate.crl", issuer.crl([]))
        responder.set_status(leaf, "good")
        with StaplingServer(leaf) as server:
            url = server.url
            hard_fail = (url, *ca, "--policy", "hard-fail")
            session.write("check-fallback-good", run("check", *hard_fail, expect=0))
            cached = (*hard_fail, "--fallback", "ocsp", "--cache", "sqlite:answers.db")
            session.write(
                "check-fallback-cache",
                run("check", *cached, expect=0),
                run("check", *cached, expect=0),
            )
            responder.set_status(leaf, "revoked", revocation_reason="keyCompromise")
            session.write(
                "check-fallback-revoked",
                run("check", url, *ca, "--fallback", "ocsp,crl", expect=1),
            )
            responder.misbehave("http-error")
            session.write(
                "check-fallback-no-answer",
                run("check", url, *ca, "--fallback", "ocsp", expect=0),
                run("check", *hard_fail, "--fallback", "ocsp", expect=1),
            )
            responder.misbehave(None)
            responder.pause()
            try:
                session.write(
                    "check-fallback-timeout",
                    run("check", *hard_fail, "--fallback", "ocsp", "--fallback-timeout", "0.5",
                        expect=1),
                )  # fmt: skip
            finally:
                responder.resume()
            static = (*hard_fail, "--fallback", "crl", "--crl", "crls", "--check-chain")
            session.write("check-fallback-static-crls", run("check", *static, expect=0))
            session.write("check-fallback-json", run("check", *static, "--json", expect=0))
        # A certificate that names no responder and no distribution point.
        bare = issuer.issue_cert("localhost", serial_number=0x5678)
        responder.set_status(bare, "good")
        with StaplingServer(bare) as server:
            hard_fail = (server.url, *ca, "--policy", "hard-fail")
            session.write(
                "check-fallback-no-source",
                run("check", *hard_fail, expect=1),
                run("check", *hard_fail, "--fallback", "ocsp", "--ocsp-url", responder.url,
                    expect=0),
            )  # fmt: skip
        # Options that cannot be used: refused before connecting, so no server at all.
        with _silent_listener() as port:
            nowhere = f"https://localhost:{port}/"
        nowhere_ca = (nowhere, *ca)
        session.write(
            "check-fallback-usage-errors",
            *(
                run("check", *nowhere_ca, *options, expect=2, show_status=False)
                for options in (
                    ("--fallback", "ocsp,dns"),
                    ("--policy", "off", "--fallback", "ocsp"),
                    ("--policy", "must-staple", "--fallback", "ocsp"),
                    ("--check-chain",),
                    ("--fallback", "crl", "--ocsp-url", responder.url),
                    ("--fallback", "ocsp", "--ocsp-url", "ftp://ca.example/ocsp"),
                    ("--fallback", "ocsp", "--ocsp-url", "https://ca.example/ocsp"),
                    ("--trust-responder", "ca.key"),
                    ("--fallback", "crl", "--crl", "ca.pem"),
                    ("--fallback", "ocsp", "--cache", "sqlite:ca.pem"),
                    ("--fallback", "ocsp", "--cache", "redis://127.0.0.1:1/0"),
                    ("--fallback", "ocsp", "--fallback-timeout", "600"),
                )
            ),
        )


# --- ocsp and crl -------------------------------------------------------------------


def capture_ocsp(session: Session) -> None:
    issuer = CA().create_intermediate()
    run = session.run
    with OCSPResponder(issuer) as responder, CRLServer() as crls:
        server, revoked = _query_files(session, issuer, responder.url, crls.url("/issuer.crl"))
        responder.set_status(server, "good")
        responder.set_status(revoked, "revoked", revocation_reason="keyCompromise")
        ask = ("server.pem", "--issuer", "issuer.pem")
        session.write("ocsp-good", run("ocsp", *ask, "--nonce", expect=0))
        session.write(
            "ocsp-revoked", run("ocsp", "revoked.pem", "--issuer", "issuer.pem", expect=1)
        )
        responder.misbehave("wrong-nonce")
        wrong_nonce = run("ocsp", *ask, "--nonce", expect=1)
        responder.misbehave("forged")
        session.write("ocsp-refused", wrong_nonce, run("ocsp", *ask, expect=1))
        responder.misbehave(None)
        cached = (*ask, "--cache", "sqlite:answers.db")
        session.write("ocsp-cache", run("ocsp", *cached, expect=0), run("ocsp", *cached, expect=0))
        session.write("ocsp-json", run("ocsp", *ask, "--json", expect=0))
    # The responder has stopped: nothing listens at its URL any more.
    session.write("ocsp-no-answer", run("ocsp", *ask, expect=3))
    session.write(
        "ocsp-crl-usage-errors",
        run("ocsp", "server.pem", "--issuer", "server.pem", expect=2),
        run("crl", "root.pem", "--issuer", "issuer.pem", expect=2),
    )


def capture_crl(session: Session) -> None:
    issuer = CA().create_intermediate()
    run = session.run
    with _silent_listener() as port:
        nowhere = f"http://127.0.0.1:{port}/issuer.crl"  # closed again: nothing listens
    with CRLServer() as crls:
        crl_url = crls.url("/issuer.crl")
        _, revoked = _query_files(session, issuer, nowhere, crl_url)
        crl = issuer.crl([revoked], reason="keyCompromise")
        crls.set_crl("/issuer.crl", crl)
        (session.workdir / "issuer.crl").write_bytes(crl)
        revoked_args = ("revoked.pem", "--issuer", "issuer.pem")
        session.write("crl-revoked", run("crl", *revoked_args, expect=1))
        session.write("crl-file", run("crl", *revoked_args, "--file", "issuer.crl", expect=1))
        ask = ("server.pem", "--issuer", "issuer.pem")
        session.write("crl-no-answer", run("crl", *ask, "--url", nowhere, expect=3))
        session.write("crl-json", run("crl", *ask, "--json", expect=0))


def _query_files(
    session: Session, issuer: CA, ocsp_url: str, crl_url: str
) -> tuple[Identity, Identity]:
    """server.pem, revoked.pem and issuer.pem, the leaves naming both sources."""
    server = issuer.issue_cert("www.example.internal", ocsp_url=ocsp_url, crl_url=crl_url)
    revoked = issuer.issue_cert("old.example.internal", ocsp_url=ocsp_url, crl_url=crl_url)
    (session.workdir / "server.pem").write_bytes(server.cert_pem)
    (session.workdir / "revoked.pem").write_bytes(revoked.cert_pem)
    (session.workdir / "issuer.pem").write_bytes(issuer.cert_pem)
    return server, revoked


# --- demo --------------------------------------------------------------------------


def capture_scan(session: Session) -> None:
    """A small fleet: good, a staple 20 hours into its 24, no staple, no OCSP URL and
    no staple, revoked, a closed port and a malformed line; the live responder asked."""
    root = CA()
    issuer = root.create_intermediate()
    root.write_trust(session.workdir / "ca.pem")
    now = issuer.now
    run = session.run
    with OCSPResponder(issuer) as responder, contextlib.ExitStack() as stack:
        targets: list[str] = []

        def serve(staple: str | None, answer: str, *, ocsp: bool = True, **times: object) -> None:
            leaf = issuer.issue_cert("localhost", ocsp_url=responder.url if ocsp else None)
            reason = "keyCompromise" if answer == "revoked" else None
            responder.set_status(leaf, answer, revocation_reason=reason)
            der = None if staple is None else issuer.ocsp_response(leaf, staple, **times)
            server = stack.enter_context(StaplingServer(leaf, der))
            targets.append(f"localhost:{server.port}")

        serve("good", "good")
        serve(
            "good",
            "good",
            this_update=now - datetime.timedelta(hours=20),
            next_update=now + datetime.timedelta(hours=4),
        )
        serve(None, "good")
        serve(None, "good", ocsp=False)
        serve("revoked", "revoked")
        with _silent_listener() as port:
            closed = f"127.0.0.1:{port}"  # bound, then closed: nothing listens there
        fleet = (*targets, closed, "bad target")
        ca = ("--cafile", "ca.pem")
        session.write("scan-table", run("scan", *ca, *fleet, expect=3))
        session.write("scan-json", run("scan", *ca, "--json", targets[0], expect=0))
        session.write("scan-csv", run("scan", *ca, "--csv", targets[0], expect=0))
        prometheus = run("scan", *ca, "--prometheus", "fleet.prom", *targets, expect=1)
        text = (session.workdir / "fleet.prom").read_text(encoding="utf-8")
        wanted = ("staplecheck_up", "staplecheck_revoked", "staplecheck_staple_seconds_left")
        kept = [line for line in text.splitlines() if _metric(line) in wanted]
        session.write(
            "scan-prometheus",
            prometheus,
            "$ grep -E 'staplecheck_(up|revoked|staple_seconds_left)' fleet.prom\n",
            "\n".join(kept) + "\n",
        )
        html = run("scan", *ca, "--html", "fleet.html", *targets, expect=1)
        size = (session.workdir / "fleet.html").stat().st_size
        session.write("scan-html", html, f"$ ls -l fleet.html   # {size} bytes, one file\n")
        session.write(
            "scan-usage-errors",
            run("scan", *ca, expect=2),
            run("scan", *ca, "--json", "--csv", targets[0], expect=2),
        )


def _metric(line: str) -> str:
    """The metric a Prometheus text line is about (a sample, or its HELP/TYPE)."""
    words = line.split(" ")
    if line.startswith("# ") and len(words) > 2:
        return words[2]
    return words[0].split("{")[0]


def capture_demo(session: Session) -> None:
    session.write("demo", session.run("demo", "--no-color", expect=0))


# Every subcommand of the parser, and what captures its output.
COMMANDS: dict[str, Callable[[Session], None]] = {
    "verify": capture_verify,
    "check": capture_check,
    "ocsp": capture_ocsp,
    "crl": capture_crl,
    "scan": capture_scan,
    "demo": capture_demo,
}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    output = Path(args[0]) if args else DEFAULT_OUTPUT
    output.mkdir(parents=True, exist_ok=True)
    for stale in output.glob("*.txt"):
        stale.unlink()
    for name, capture in COMMANDS.items():
        with tempfile.TemporaryDirectory(prefix=f"staplecheck-docs-{name}-") as workdir:
            session = Session(Path(workdir), output)
            capture(session)
            print(f"capture: {name}: {', '.join(session.written)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
