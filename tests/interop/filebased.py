"""Servers that staple an OCSP response read from a file: HAProxy, lighttpd, gnutls-serv.

Launchers in the manner of :mod:`tests.realservers` (whose ``openssl s_server`` and
nginx launchers staple from a file too): each is a :class:`tests.realservers.RealServer`
that picks an ephemeral port on 127.0.0.1, writes its configuration into its own
temporary directory, waits until the process itself listens, and always stops it.
:func:`launch_file_server` makes any of the five from the same arguments.

Facts measured on this project's machine (Debian 12: HAProxy 2.6.12, lighttpd 1.4.69
with mod_openssl, GnuTLS 3.7.9, OpenSSL 3.0, curl 7.88.1); the tests in
``tests/interop/test_file_servers.py`` pin every one of them:

- **HAProxy** (``bind ... ssl crt server.pem`` with the DER response in
  ``server.pem.ocsp`` beside it) reads the response once, at startup, and checks it
  against the certificate: it computes the CertID from the leaf and the issuer found
  in ``server.pem``'s chain and *ignores* the file, with a startup warning and no
  staple on any handshake, when the response is about another certificate ("Certificate
  ID does not match certificate and issuer"), says ``unknown`` ("certificate status is
  unknown"), is past its nextUpdate ("no longer valid."), has a thisUpdate in the
  future (the same message) or has no nextUpdate ("missing nextupdate"). It still
  starts and serves TLS. It does not check the signature: a forged response is
  stapled. A ``revoked`` response is stapled as it is. So from HAProxy a client sees
  good, revoked, forged or nothing.
- **lighttpd** (``ssl.stapling-file``; needs Debian's ``lighttpd-mod-openssl``, which
  ``lighttpd`` only recommends) staples the file as it is, except that a response past
  its nextUpdate is silently not stapled (nothing in the error log): no signature or
  CertID check, and ``revoked``, ``unknown``, forged, foreign and future-dated
  responses are all sent.
- **gnutls-serv** ``--ocsp-response FILE`` checks the response when it loads it and
  refuses to *start* (exit 1, "Cannot set OCSP status request file: FILE: ...") when
  it is about another certificate ("The OCSP response provided doesn't match the
  available certificates"), ``revoked`` or past its nextUpdate (both: "The session or
  certificate has expired."). ``unknown``, forged and future-dated responses are
  accepted and stapled. With ``--ignore-ocsp-response-errors`` it starts with any of
  them and staples every one, revoked, stale and foreign included. gnutls-serv has no
  option to choose its address: it listens on ``0.0.0.0`` and ``::``. The launcher
  therefore runs it in a private network namespace and relays ``127.0.0.1:PORT`` to
  it (``tests/interop/netns_loopback.py``), so nothing but loopback can reach it.
  ``--http`` answers ``GET /`` with 200 and an HTML page about the session.
- All three staple in TLS 1.2 (CertificateStatus) and TLS 1.3 (the leaf's
  Certificate entry), from the first handshake on, and behave the same in both. None
  of them cares whether the certificate is must-staple: such a certificate without a
  staple is served like any other.
- ``curl --cert-status`` (OpenSSL backend) accepts a connection only when a staple
  is present, correctly signed, about this certificate, within its validity period and
  ``good``; it fails with exit code 91 otherwise, saying "No OCSP response received",
  "SSL certificate revocation reason: keyCompromise (1)", "OCSP response has expired"
  (also for a thisUpdate in the future), "OCSP response verification failed" (forged),
  "Could not find certificate ID in OCSP response" (foreign) or "SSL server
  certificate status verification FAILED" (``unknown``). It does not look at the
  must-staple extension: it demands a good staple from every server.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from staplecheck.testing._process import read_log
from tests.conftest import IN_CI
from tests.realservers import (
    HOST,
    RealServer,
    ServerStartError,
    TLSVersion,
    launch,
)

__all__ = [
    "FILE_SERVER_KINDS",
    "MATRIX_NAMES",
    "GnuTLSServer",
    "HAProxy",
    "Lighttpd",
    "launch_file_server",
    "require_lighttpd_openssl",
]

FILE_SERVER_KINDS = ("s_server", "nginx", "haproxy", "lighttpd", "gnutls-serv")
MATRIX_NAMES = {
    "s_server": "openssl s_server (file)",
    "nginx": "nginx (file)",
    "haproxy": "HAProxy (file)",
    "lighttpd": "lighttpd (file)",
    "gnutls-serv": "gnutls-serv (file)",
}
"""Server kind → the name the interop matrix (``tests/interop/matrix.py``) uses."""

NETNS_LOOPBACK = Path(__file__).with_name("netns_loopback.py")
LIGHTTPD_MODULE_DIRS = ("/usr/lib/lighttpd", "/usr/lib64/lighttpd", "/usr/local/lib/lighttpd")


def _check_version(tls_version: str) -> None:
    if tls_version not in ("1.2", "1.3"):
        raise ValueError(f"tls_version must be '1.2' or '1.3', not {tls_version!r}")


def _missing(message: str) -> None:
    """Skip locally, fail in CI (as :func:`tests.conftest.require_program` does)."""
    if IN_CI:
        pytest.fail(f"{message}, and CI must not skip")
    pytest.skip(message)


class _FileStapler(RealServer):
    """A server given a certificate chain, its key, a staple file and one TLS version."""

    def __init__(
        self,
        cert_chain_path: str | os.PathLike[str],
        key_path: str | os.PathLike[str],
        staple_file: str | os.PathLike[str] | None = None,
        tls_version: TLSVersion = "1.3",
    ) -> None:
        super().__init__()
        _check_version(tls_version)
        self.cert_chain_path = Path(cert_chain_path)
        self.key_path = Path(key_path)
        self.staple_file = None if staple_file is None else Path(staple_file)
        self.tls_version = tls_version


class HAProxy(_FileStapler):
    """HAProxy terminating TLS and answering every request itself with 200 "ok".

    ``cert_chain_path`` (leaf first, then intermediates) and ``key_path`` are joined
    into ``server.pem`` (HAProxy's ``crt``); ``staple_file`` (DER) is copied beside it
    as ``server.pem.ocsp``, which HAProxy loads at startup. ``tls_version`` is both
    ``ssl-min-ver`` and ``ssl-max-ver``. HAProxy runs in the foreground (``-db``), one
    process; its warnings (e.g. an OCSP response it ignores) are in :meth:`output`.
    """

    program = "haproxy"

    def config(self, port: int) -> str:
        """haproxy.cfg for ``port``."""
        version = f"TLSv{self.tls_version}"
        return f"""\
global
    nbthread 1
defaults
    mode http
    timeout connect 5s
    timeout client 10s
    timeout server 10s
frontend tls
    bind {HOST}:{port} ssl crt {self.directory / "server.pem"} \
ssl-min-ver {version} ssl-max-ver {version}
    http-request return status 200 content-type text/plain string "ok"
"""

    def output(self) -> str:
        """What HAProxy printed (startup warnings included)."""
        return self._logs()

    def _command(self, binary: str, port: int) -> list[str]:
        pem = self.directory / "server.pem"
        chain = self.cert_chain_path.read_bytes()
        pem.write_bytes(chain.rstrip(b"\n") + b"\n" + self.key_path.read_bytes())
        if self.staple_file is not None:
            shutil.copyfile(self.staple_file, self.directory / "server.pem.ocsp")
        cfg = self.directory / "haproxy.cfg"
        cfg.write_text(self.config(port))
        return [binary, "-db", "-f", str(cfg)]


def require_lighttpd_openssl() -> None:
    """Skip (locally) or fail (in CI) unless lighttpd's mod_openssl is installed.

    Debian ships it in ``lighttpd-mod-openssl``, which ``lighttpd`` only recommends,
    so ``apt-get install --no-install-recommends lighttpd`` leaves TLS out.
    """
    if not any(os.path.exists(f"{d}/mod_openssl.so") for d in LIGHTTPD_MODULE_DIRS):
        _missing("lighttpd's mod_openssl is not installed (Debian: lighttpd-mod-openssl)")


class Lighttpd(_FileStapler):
    """lighttpd serving a one-file document root ("ok") over TLS with mod_openssl.

    ``ssl.pemfile`` is ``cert_chain_path`` (leaf first, then intermediates),
    ``ssl.privkey`` is ``key_path``; ``staple_file`` (DER) is ``ssl.stapling-file``.
    ``tls_version`` is pinned with ``ssl.openssl.ssl-conf-cmd`` (MinProtocol =
    MaxProtocol). lighttpd runs in the foreground (``-D``) with its error log in its
    temporary directory.
    """

    program = "lighttpd"

    def start(self) -> Lighttpd:
        require_lighttpd_openssl()
        super().start()
        return self

    def config(self, port: int) -> str:
        """lighttpd.conf for ``port``."""
        tmp = self.directory
        version = f"TLSv{self.tls_version}"
        stapling = (
            f'ssl.stapling-file = "{self.staple_file}"' if self.staple_file is not None else ""
        )
        return f"""\
server.modules += ("mod_openssl")
server.bind = "{HOST}"
server.port = {port}
server.document-root = "{tmp / "www"}"
server.errorlog = "{tmp / "error.log"}"
index-file.names = ("index.txt")
mimetype.assign = (".txt" => "text/plain")
ssl.engine = "enable"
ssl.pemfile = "{self.cert_chain_path}"
ssl.privkey = "{self.key_path}"
ssl.openssl.ssl-conf-cmd = ("MinProtocol" => "{version}", "MaxProtocol" => "{version}")
{stapling}
"""

    def _command(self, binary: str, port: int) -> list[str]:
        (self.directory / "www").mkdir(exist_ok=True)
        (self.directory / "www" / "index.txt").write_text("ok\n")
        conf = self.directory / "lighttpd.conf"
        conf.write_text(self.config(port))
        return [binary, "-D", "-f", str(conf)]

    def _logs(self) -> str:
        return super()._logs() + read_log(self.directory / "error.log")


class GnuTLSServer(_FileStapler):
    """``gnutls-serv --http`` stapling ``staple_file``, reachable on 127.0.0.1 only.

    ``--x509certfile`` is ``cert_chain_path`` (leaf first, then intermediates),
    ``--x509keyfile`` is ``key_path``, ``--ocsp-response`` is ``staple_file`` (DER).
    ``tls_version`` is pinned with ``--priority NORMAL:-VERS-ALL:+VERS-TLS1.x``.
    ``ignore_ocsp_errors`` adds ``--ignore-ocsp-response-errors``: without it
    gnutls-serv refuses to start with a revoked, stale or foreign response (see the
    module docstring). gnutls-serv binds every interface, so it runs inside a private
    network namespace behind ``netns_loopback.py``; :attr:`pid` is that relay's.
    """

    program = "gnutls-serv"

    def __init__(
        self,
        cert_chain_path: str | os.PathLike[str],
        key_path: str | os.PathLike[str],
        staple_file: str | os.PathLike[str] | None = None,
        tls_version: TLSVersion = "1.3",
        *,
        ignore_ocsp_errors: bool = False,
    ) -> None:
        super().__init__(cert_chain_path, key_path, staple_file, tls_version)
        self.ignore_ocsp_errors = ignore_ocsp_errors

    def start(self) -> GnuTLSServer:
        try:
            super().start()
        except ServerStartError as error:
            if "cannot make a private network namespace" in str(error):
                _missing(f"gnutls-serv needs a private network namespace here: {error}")
            raise
        return self

    def output(self) -> str:
        """What gnutls-serv (and the relay) printed."""
        return self._logs()

    def _command(self, binary: str, port: int) -> list[str]:
        command = [
            binary,
            "--http",
            "--port",
            str(port),
            "--x509certfile",
            str(self.cert_chain_path),
            "--x509keyfile",
            str(self.key_path),
            "--priority",
            f"NORMAL:-VERS-ALL:+VERS-TLS{self.tls_version}",
        ]
        if self.staple_file is not None:
            command += ["--ocsp-response", str(self.staple_file)]
        if self.ignore_ocsp_errors:
            command.append("--ignore-ocsp-response-errors")
        return [sys.executable, str(NETNS_LOOPBACK), str(port), "--", *command]


def launch_file_server(
    kind: str,
    cert_chain: str | os.PathLike[str],
    key: str | os.PathLike[str],
    staple: str | os.PathLike[str] | None = None,
    tls_version: TLSVersion = "1.3",
    *,
    gnutls_ignore_ocsp_errors: bool = False,
) -> RealServer:
    """A server of ``kind`` (one of :data:`FILE_SERVER_KINDS`), not yet started, that
    offers only ``tls_version`` and staples the DER file ``staple`` (None: no staple)."""
    if kind in ("s_server", "nginx"):
        return launch(kind, cert_chain, key, staple, tls_version)
    if kind == "haproxy":
        return HAProxy(cert_chain, key, staple, tls_version)
    if kind == "lighttpd":
        return Lighttpd(cert_chain, key, staple, tls_version)
    if kind == "gnutls-serv":
        return GnuTLSServer(
            cert_chain, key, staple, tls_version, ignore_ocsp_errors=gnutls_ignore_ocsp_errors
        )
    raise ValueError(f"unknown server kind {kind!r}; expected one of {FILE_SERVER_KINDS}")
