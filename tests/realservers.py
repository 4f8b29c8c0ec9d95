"""Real stapling TLS servers on loopback: ``openssl s_server`` and nginx; and ``openssl
ocsp`` as a responder (:class:`OpenSSLResponder`, in a loopback-only network namespace).

Used by the real-server tests and the benchmarks. Each launcher is a context manager
that picks an ephemeral port on 127.0.0.1, starts the server, waits until the port
accepts TCP connections, and always stops the process it started (SIGTERM, then
SIGKILL after a timeout). A server that does not come up raises
:class:`ServerStartError` carrying its command line, exit code and output (nginx: its
error log). Binaries are found with :func:`tests.conftest.require_program`, so a
missing one skips locally and fails in CI.

Facts measured on this project's machines (OpenSSL 3.0, nginx 1.22 from Debian's
``nginx-light``); the tests named in brackets pin them (``tests/test_realservers.py``,
``tests/test_check_e2e.py``):

- ``openssl s_server -status_file FILE`` staples FILE (DER) on every full handshake
  whose ClientHello asks for a staple, in TLS 1.2 (CertificateStatus message) and 1.3
  (extension of the leaf's Certificate entry), from the very first handshake on
  [test_the_first_handshake_is_already_stapled]. It never judges the response:
  revoked, unknown, stale, badly signed responses and responses about another
  certificate are all sent [the policy table; test_check_reports_openssl_made_staples].
  It does not parse FILE until a client asks for a staple: a garbage FILE starts fine,
  serves clients that do not ask, and fails every handshake that asks with an
  internal_error alert [test_s_server_starts_with_an_unparsable_status_file...]. So
  end-to-end "invalid" staples must be well-formed but wrong. Without
  ``-status_file`` it staples nothing [the "missing" rows]. ``-cert`` reads one
  certificate, so the intermediates go in ``-cert_chain``. ``-www`` answers
  ``HTTP/1.0`` and closes the connection after each response (so a client that loses
  its verdict when http.client drops the socket shows here). A port already taken
  makes it print "Address already in use" and exit with status 0.
- nginx with ``ssl_stapling on; ssl_stapling_file FILE;`` reads FILE with its
  configuration, so the **first** handshake already gets the staple: no warm-up
  connection is needed [test_the_first_handshake_is_already_stapled]. (Stapling from
  a responder URL is different: nginx fetches in the background and staples only
  later handshakes; not used here.) It does not verify FILE's response either
  (``ssl_stapling_verify`` applies to fetched responses) nor its age: stale, revoked
  and foreign responses are stapled as they are [the policy table]. Unparsable DER in
  FILE is a configuration error, "d2i_OCSP_RESPONSE_bio(...) failed", and nginx does
  not start [test_nginx_refuses_to_start_with_an_unparsable_staple]. TLS 1.2 and 1.3
  alike. Stapling from a file does not need the issuer: nginx staples FILE even when
  ``ssl_certificate`` holds the leaf alone, but clients then cannot verify the chain,
  so ``ssl_certificate`` gets the full chain
  [test_nginx_staples_from_a_file_without_the_issuer_in_ssl_certificate]. When the
  port is taken, nginx retries bind() for about 2.5 s before it exits; meanwhile the
  port's real owner answers TCP connects, which is why readiness means "this process
  holds the listening socket" (checked in ``/proc``), not just "the port answers"
  [test_a_port_taken_meanwhile_is_retried].
- Readiness is probed with a bare TCP connect (nginx logs it as "client closed
  connection while SSL handshaking"), so a client's first TLS handshake is the
  server's first.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from staplecheck.testing import CA
from staplecheck.testing._process import (
    free_port,
    port_accepts,
    read_log,
    terminate,
    wait_until_listening,
)
from staplecheck.testing._service import Service
from tests.conftest import require_program

__all__ = [
    "SERVER_KINDS",
    "TLS_VERSIONS",
    "Nginx",
    "OpenSSLResponder",
    "OpenSSLServer",
    "RealServer",
    "ServerStartError",
    "free_port",
    "launch",
    "port_accepts",
]

HOST = "127.0.0.1"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
BIND_ATTEMPTS = 5
_BIND_FAILURES = ("address already in use", "errno=98", "(98:")

TLSVersion = Literal["1.2", "1.3"]
TLS_VERSIONS: tuple[TLSVersion, ...] = ("1.2", "1.3")
SERVER_KINDS = ("s_server", "nginx")


class ServerStartError(RuntimeError):
    """A server did not start; the message carries its command and its output."""


class RealServer(Service):
    """One external server process on 127.0.0.1: the parts nginx and s_server share.

    Subclasses name the ``program`` and build the command line for a port in
    :meth:`_command`, writing whatever files they need into ``self.directory``.
    """

    program = ""

    def __init__(self) -> None:
        self.port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    # --- what subclasses provide -------------------------------------------------------

    def _command(self, binary: str, port: int) -> list[str]:
        raise NotImplementedError

    def _logs(self) -> str:
        """Everything the server said: its stdout/stderr file, plus subclass logs."""
        return read_log(self.directory / "output.log")

    def _environment(self) -> dict[str, str] | None:
        """The server's environment variables (``None``: this process's own)."""
        return None

    # --- public ------------------------------------------------------------------------

    @property
    def directory(self) -> Path:
        """The server's private temporary directory (config, logs, split PEM files)."""
        if self._tmp is None:
            raise RuntimeError("the server is not started")
        return Path(self._tmp.name)

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def url(self, host: str = "localhost", path: str = "/") -> str:
        if self.port is None:
            raise RuntimeError("the server is not started")
        return f"https://{host}:{self.port}{path}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> RealServer:
        if self._process is not None:
            raise RuntimeError(f"{self.program} is already running on port {self.port}")
        binary = require_program(self.program)
        self._tmp = tempfile.TemporaryDirectory(prefix=f"staplecheck-{self.program}-")
        try:
            self._start(binary)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL) and remove the temporary directory."""
        process, self._process = self._process, None
        if process is not None:
            terminate(process, timeout=STOP_TIMEOUT)
        tmp, self._tmp = self._tmp, None
        if tmp is not None:
            tmp.cleanup()

    # --- internals ---------------------------------------------------------------------

    def _start(self, binary: str) -> None:
        failures: list[str] = []
        for _ in range(BIND_ATTEMPTS):
            port = free_port()
            command = self._command(binary, port)
            with open(self.directory / "output.log", "wb") as output:
                process = subprocess.Popen(
                    command,
                    env=self._environment(),
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    cwd=self.directory,
                    start_new_session=True,  # a terminal's Ctrl-C is the test run's
                )
            self._process = process
            if wait_until_listening(process, HOST, port, timeout=START_TIMEOUT):
                self.port = port
                return
            terminate(process, timeout=STOP_TIMEOUT)
            self._process = None
            logs = self._logs()
            failure = (
                f"{self.program} did not start on {HOST}:{port} "
                f"(exit code {process.returncode}).\ncommand: {' '.join(command)}\n{logs}"
            )
            if not any(sign in logs.lower() for sign in _BIND_FAILURES):
                raise ServerStartError(failure)
            failures.append(failure)  # someone took the port first: try another
        raise ServerStartError(
            f"{self.program} could not bind a port in {BIND_ATTEMPTS} attempts:\n"
            + "\n".join(failures)
        )


class OpenSSLServer(RealServer):
    """``openssl s_server -www`` serving a chain, stapling ``status_file`` if given.

    ``cert_chain_pem_path`` holds the leaf first, then its intermediates (as
    :meth:`staplecheck.testing.Identity.write` writes it). Only one TLS version is
    offered: ``tls_version`` ``"1.2"`` or ``"1.3"``. ``GET /`` answers 200 with
    s_server's status page.
    """

    program = "openssl"

    def __init__(
        self,
        cert_chain_pem_path: str | os.PathLike[str],
        key_path: str | os.PathLike[str],
        status_file: str | os.PathLike[str] | None = None,
        tls_version: TLSVersion = "1.3",
    ) -> None:
        super().__init__()
        if tls_version not in ("1.2", "1.3"):
            raise ValueError(f"tls_version must be '1.2' or '1.3', not {tls_version!r}")
        self.cert_chain_pem_path = Path(cert_chain_pem_path)
        self.key_path = Path(key_path)
        self.status_file = None if status_file is None else Path(status_file)
        self.tls_version = tls_version

    def _command(self, binary: str, port: int) -> list[str]:
        leaf, intermediates = _split_pem(self.cert_chain_pem_path.read_bytes())
        (self.directory / "leaf.pem").write_bytes(leaf)
        command = [
            binary,
            "s_server",
            "-accept",
            f"{HOST}:{port}",
            "-cert",
            str(self.directory / "leaf.pem"),
            "-key",
            str(self.key_path),
            "-www",
            "-quiet",
            "-tls1_2" if self.tls_version == "1.2" else "-tls1_3",
        ]
        if intermediates:
            (self.directory / "chain.pem").write_bytes(intermediates)
            command += ["-cert_chain", str(self.directory / "chain.pem")]
        if self.status_file is not None:
            command += ["-status_file", str(self.status_file)]
        return command


class Nginx(RealServer):
    """nginx serving ``location / { return 200 "ok\\n"; }`` over TLS.

    ``cert_chain_path`` is ``ssl_certificate`` (leaf first, then intermediates);
    ``staple_file`` (DER) turns on ``ssl_stapling`` with ``ssl_stapling_file``.
    ``tls_versions`` is ``ssl_protocols``. nginx runs in the foreground as one process
    (``daemon off; master_process off;``), with its pid file, error log and temp
    directories in its own temporary directory.
    """

    program = "nginx"

    def __init__(
        self,
        cert_chain_path: str | os.PathLike[str],
        key_path: str | os.PathLike[str],
        staple_file: str | os.PathLike[str] | None = None,
        tls_versions: Sequence[str] = ("TLSv1.2", "TLSv1.3"),
    ) -> None:
        super().__init__()
        self.cert_chain_path = Path(cert_chain_path)
        self.key_path = Path(key_path)
        self.staple_file = None if staple_file is None else Path(staple_file)
        self.tls_versions = tuple(tls_versions)

    def config(self, port: int) -> str:
        """The nginx.conf for ``port``."""
        tmp = self.directory
        stapling = self._stapling_directives()
        temp_paths = "\n    ".join(
            f"{kind}_temp_path {tmp / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        return f"""\
daemon off;
master_process off;
pid {tmp / "nginx.pid"};
error_log {tmp / "error.log"} info;
events {{
    worker_connections 256;
}}
http {{
    access_log off;
    {temp_paths}
    server {{
        listen {HOST}:{port} ssl;
        server_name localhost;
        ssl_certificate {self.cert_chain_path};
        ssl_certificate_key {self.key_path};
        ssl_protocols {" ".join(self.tls_versions)};
        ssl_session_tickets off;
        ssl_session_cache off;
        {stapling}
        location / {{
            default_type text/plain;
            return 200 "ok\\n";
        }}
    }}
}}
"""

    def _stapling_directives(self) -> str:
        """The ``ssl_stapling*`` lines of the server block (subclasses staple otherwise)."""
        if self.staple_file is None:
            return "ssl_stapling off;"
        return f"ssl_stapling on;\n        ssl_stapling_file {self.staple_file};"

    def _command(self, binary: str, port: int) -> list[str]:
        conf = self.directory / "nginx.conf"
        conf.write_text(self.config(port))
        return [binary, "-p", f"{self.directory}/", "-c", str(conf), "-e", "stderr"]

    def _logs(self) -> str:
        return super()._logs() + read_log(self.directory / "error.log")


def launch(
    kind: str,
    cert_chain: str | os.PathLike[str],
    key: str | os.PathLike[str],
    staple: str | os.PathLike[str] | None = None,
    tls_version: TLSVersion = "1.3",
) -> RealServer:
    """A server of ``kind`` (``"s_server"`` or ``"nginx"``), not yet started, that
    offers only ``tls_version`` and staples the DER file ``staple`` (None: no staple)."""
    if kind == "s_server":
        return OpenSSLServer(cert_chain, key, staple, tls_version)
    if kind == "nginx":
        return Nginx(cert_chain, key, staple, (f"TLSv{tls_version}",))
    raise ValueError(f"unknown server kind {kind!r}; expected one of {SERVER_KINDS}")


class OpenSSLResponder(RealServer):
    """``openssl ocsp -port`` answering for ``ca`` from an index file, run inside a
    private network namespace (it binds every interface) behind netns_loopback.py."""

    program = "openssl"

    def __init__(
        self, ca: CA, revoked: list[x509.Certificate], good: list[x509.Certificate]
    ) -> None:
        super().__init__()
        self.ca = ca
        self.revoked = revoked
        self.good = good

    def stop(self) -> None:
        """Kill the responder's processes, then stop the relay. ``-multi`` forks workers
        into a process group of their own that outlive their parent, and the wedged
        ones ignore SIGTERM (the relay would wait 5 s). They are found by the session
        this server started (``start_new_session``: its id is the relay's pid) and
        killed by their ids."""
        session = self.pid
        if session is not None:
            for pid in _session_members(session):
                if pid != session:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL)
        super().stop()

    def _command(self, binary: str, port: int) -> list[str]:
        directory = self.directory
        lines = []
        for cert, flag in [(c, "V") for c in self.good] + [(c, "R") for c in self.revoked]:
            expiry = cert.not_valid_after_utc.strftime("%y%m%d%H%M%SZ")
            revoked_at = "261101000000Z,keyCompromise" if flag == "R" else ""
            subject = "/" + cert.subject.rfc4514_string().replace(",", "/")
            lines.append(
                f"{flag}\t{expiry}\t{revoked_at}\t{cert.serial_number:X}\tunknown\t{subject}"
            )
        (directory / "index.txt").write_text("\n".join(lines) + "\n")
        (directory / "ca.pem").write_bytes(self.ca.cert_pem)
        (directory / "key.pem").write_bytes(
            self.ca.private_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        command = [
            binary, "ocsp", "-port", str(port), "-index", str(directory / "index.txt"),
            "-CA", str(directory / "ca.pem"), "-rsigner", str(directory / "ca.pem"),
            "-rkey", str(directory / "key.pem"), "-nmin", "60",
            # OpenSSL 3.0's responder serves one connection at a time and hangs for
            # good on one that closes without a request (measured, -timeout does not
            # help), which is what the readiness probes do: -multi forks 4 workers,
            # so the 2 probes wedge at most 2.
            "-multi", "4",
        ]  # fmt: skip
        netns = Path(__file__).parent / "interop" / "netns_loopback.py"
        return [sys.executable, str(netns), str(port), "--", *command]


def _session_members(session: int) -> list[int]:
    """The processes whose session id is ``session`` (from /proc/PID/stat)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after "(comm)": state, ppid, pgrp, session
        if int(fields[3]) == session:
            members.append(int(entry.name))
    return members


# --- helpers ---------------------------------------------------------------------------


_PEM_END = b"-----END CERTIFICATE-----"


def _split_pem(data: bytes) -> tuple[bytes, bytes]:
    """The first certificate of a PEM file, and the rest."""
    end = data.find(_PEM_END)
    if end < 0:
        raise ValueError("no PEM certificate in the chain file")
    end += len(_PEM_END)
    return data[:end] + b"\n", data[end:].lstrip()
