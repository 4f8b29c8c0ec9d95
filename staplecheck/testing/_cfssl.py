"""CloudFlare's ``cfssl ocspserve`` as a test responder: a real private-PKI toolkit.

:class:`CfsslResponder` signs responses with ``cfssl ocspsign`` (as a CA operator
would, from PEM files) and serves them with ``cfssl ocspserve`` on 127.0.0.1::

    ca = CA().create_intermediate()
    leaf = ca.issue_cert("localhost")
    with CfsslResponder(ca, binary="/usr/bin/cfssl") as cfssl:   # the CA signs
        ...
    cfssl = CfsslResponder(ca, responder=ca.issue_responder())   # a delegate signs
    cfssl.add(leaf, "revoked", revocation_reason="keyCompromise")
    with cfssl:
        ...  # POST an OCSP request to cfssl.url

What cfssl 1.2.0 (Debian's ``golang-cfssl``) does, read from its source and pinned by
``tests/test_cfssl_interop.py``:

- ``ocspsign`` prints JSON, ``{"ocspResponse": "<base64 DER>"}``, while ``ocspserve``
  reads bare base64 responses separated by white space; lines it cannot read are
  logged and skipped (it then starts with fewer responses, or none). It signs with
  the real clock: thisUpdate is the current time rounded *down* to the hour,
  nextUpdate thisUpdate + ``-interval`` (96 h by default), SHA-1 CertIDs, a
  ResponderID by name. It refuses to sign for a certificate the ``-ca`` did not issue
  (signature checked), and it embeds the responder certificate unless the CA signs
  itself. A revocation needs ``-reason`` by name: its default, the number 0, is
  refused, and ``unspecified`` is left out of the response. Only RSA and ECDSA keys.
- ``ocspserve`` looks a response up by the request's serial number alone (the
  issuer in the CertID is ignored; two responses for one serial: the last wins), and
  answers ``unauthorized`` (HTTP 200) when it has none. Pre-signed responses carry no
  nonce, whatever the request asked. A request it cannot parse gets HTTP 400 with a
  ``malformedRequest`` body. GET does not work in this version: the handler is
  mounted on ``/`` and decodes the whole path, leading slash included, as base64, so
  every GET gets HTTP 400 (later cfssl releases strip that slash).
"""

from __future__ import annotations

import base64
import datetime
import json
import subprocess
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ._ocsp import REVOCATION_REASONS
from ._pki import CA, Identity
from ._process import free_port, read_log, terminate, wait_until_listening
from ._service import Service

__all__ = ["CfsslError", "CfsslResponder"]

_STATUSES = ("good", "revoked", "unknown")
_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 5.0
_BIND_ATTEMPTS = 5
_SIGN_TIMEOUT = 30.0


class CfsslError(RuntimeError):
    """``cfssl`` failed: the message carries its command line and its output."""


class CfsslResponder(Service):
    """``cfssl ocspserve`` on ``http://127.0.0.1:PORT/`` with responses signed by
    ``cfssl ocspsign`` for ``ca``'s certificates.

    ``responder`` is the delegated signer (an :class:`Identity` from
    :meth:`CA.issue_responder`); ``None``: ``ca`` signs itself. ``binary`` is the
    ``cfssl`` program. :meth:`add` signs a response (``interval`` apart from
    nextUpdate and thisUpdate) before :meth:`start`: ``ocspserve`` reads its file once.
    ``start()`` (or ``with``) writes the responses file and starts the server on a
    free port, trying another one when the chosen port is taken meanwhile; ``stop()``
    ends the process (SIGTERM, then SIGKILL) and removes the temporary directory.
    """

    def __init__(
        self,
        ca: CA,
        responder: Identity | None = None,
        *,
        binary: str = "cfssl",
        interval: datetime.timedelta = datetime.timedelta(hours=96),
        host: str = "127.0.0.1",
    ) -> None:
        if responder is not None and responder.issuer is not ca:
            raise ValueError("a delegated responder must be issued by the CA it signs for")
        self.ca = ca
        self.responder = responder
        self.binary = binary
        self.interval = interval
        self.host = host
        self.port: int | None = None
        self._responses: list[bytes] = []
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._stopped = False
        self._last_logs = ""

    # --- signing -----------------------------------------------------------------------

    def sign(
        self,
        cert: x509.Certificate | Identity,
        status: str = "good",
        *,
        revocation_reason: str | None = None,
        revoked_on: datetime.date | None = None,
        issuer: CA | None = None,
        responder: Identity | None = None,
    ) -> bytes:
        """The DER response ``cfssl ocspsign`` makes for ``cert`` (not served).

        ``status``: ``good``, ``revoked`` or ``unknown``. For ``revoked``:
        ``revocation_reason`` a CRLReason name (default ``unspecified``, which cfssl
        leaves out of the response); ``revoked_on`` a date (cfssl takes a day: midnight
        UTC), default the current time, which is *after* thisUpdate (rounded down).
        ``issuer`` (default ``ca``) is the CA whose certificate cfssl is given, with
        ``responder`` (default: this responder's signer when ``issuer`` is ``ca``, else
        ``issuer`` itself) signing.
        """
        if status not in _STATUSES:
            raise ValueError(f"status must be one of {_STATUSES}, not {status!r}")
        if revocation_reason is not None and revocation_reason not in REVOCATION_REASONS:
            raise ValueError(f"unknown revocation reason {revocation_reason!r}")
        if status != "revoked" and (revocation_reason is not None or revoked_on is not None):
            raise ValueError("a revocation reason or date needs status 'revoked'")
        issuer = issuer or self.ca
        if responder is None and issuer is self.ca:
            responder = self.responder
        leaf = cert.cert if isinstance(cert, Identity) else cert
        with tempfile.TemporaryDirectory(prefix="staplecheck-cfssl-sign-") as name:
            return self._ocspsign(
                Path(name), issuer, responder, leaf, status, revocation_reason, revoked_on
            )

    def _ocspsign(
        self,
        directory: Path,
        issuer: CA,
        responder: Identity | None,
        leaf: x509.Certificate,
        status: str,
        revocation_reason: str | None,
        revoked_on: datetime.date | None,
    ) -> bytes:
        (directory / "ca.pem").write_bytes(issuer.cert_pem)
        if responder is None:
            (directory / "responder.pem").write_bytes(issuer.cert_pem)
            (directory / "responder.key").write_bytes(_key_pem(issuer))
        else:
            (directory / "responder.pem").write_bytes(responder.cert_pem)
            (directory / "responder.key").write_bytes(responder.private_key_pem)
        (directory / "cert.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
        command = [
            self.binary, "ocspsign", "-ca", "ca.pem", "-responder", "responder.pem",
            "-responder-key", "responder.key", "-cert", "cert.pem", "-status", status,
            "-interval", f"{int(self.interval.total_seconds())}s",
        ]  # fmt: skip
        if status == "revoked":
            # cfssl's own default, the number 0, is refused ("Invalid revocation status"):
            # only the name is taken for unspecified. Its names are lower case.
            command += ["-reason", (revocation_reason or "unspecified").lower()]
            if revoked_on is not None:
                command += ["-revoked-at", revoked_on.isoformat()]
        done = subprocess.run(
            command,
            cwd=directory,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=_SIGN_TIMEOUT,
            check=False,
        )
        try:
            if done.returncode != 0:
                raise ValueError(done.returncode)
            return base64.b64decode(json.loads(done.stdout)["ocspResponse"], validate=True)
        except (ValueError, KeyError, TypeError):
            output = (done.stdout + done.stderr).decode(errors="replace")
            raise CfsslError(
                f"cfssl ocspsign made no response (exit code {done.returncode}).\n"
                f"command: {' '.join(command)}\n{output}"
            ) from None

    def add(
        self,
        cert: x509.Certificate | Identity,
        status: str = "good",
        *,
        revocation_reason: str | None = None,
        revoked_on: datetime.date | None = None,
        issuer: CA | None = None,
        responder: Identity | None = None,
    ) -> bytes:
        """:meth:`sign` a response and serve it; returns its DER. Before :meth:`start`."""
        if self._process is not None or self._stopped:
            raise RuntimeError("cfssl ocspserve reads its responses once: add them before start")
        der = self.sign(
            cert,
            status,
            revocation_reason=revocation_reason,
            revoked_on=revoked_on,
            issuer=issuer,
            responder=responder,
        )
        self._responses.append(der)
        return der

    @property
    def responses(self) -> list[bytes]:
        """The DER responses served, in the order added (a copy)."""
        return list(self._responses)

    # --- what it is and said -----------------------------------------------------------

    @property
    def directory(self) -> Path:
        """The server's private temporary directory (responses file, log), while it runs."""
        if self._tmp is None:
            raise RuntimeError("the cfssl responder is not running")
        return Path(self._tmp.name)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT/``, once started."""
        if self.port is None:
            raise RuntimeError("the cfssl responder is not started")
        return f"http://{self.host}:{self.port}/"

    @property
    def logs(self) -> str:
        """What ``cfssl ocspserve`` has logged (it logs every request it refuses); kept
        after :meth:`stop`."""
        if self._tmp is None:
            return self._last_logs
        return read_log(self.directory / "ocspserve.log")

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> CfsslResponder:
        """Write the responses and start ``cfssl ocspserve`` on ``host``; returns self."""
        if self._stopped:
            raise RuntimeError("a stopped CfsslResponder cannot be started again")
        if self._process is not None:
            return self
        self._tmp = tempfile.TemporaryDirectory(prefix="staplecheck-cfssl-")
        responses = self.directory / "responses.txt"
        responses.write_text("".join(base64.b64encode(d).decode() + "\n" for d in self._responses))
        try:
            self._serve(responses)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the process and remove the temporary directory. Idempotent."""
        self._stopped = True
        process, self._process = self._process, None
        if process is not None:
            terminate(process, timeout=_STOP_TIMEOUT)
        if self._tmp is not None:
            self._last_logs = self.logs
        tmp, self._tmp = self._tmp, None
        if tmp is not None:
            tmp.cleanup()

    def _serve(self, responses: Path) -> None:
        failures: list[str] = []
        log = self.directory / "ocspserve.log"
        for _ in range(_BIND_ATTEMPTS):
            port = free_port(self.host)
            command = [
                self.binary, "ocspserve", "-address", self.host, "-port", str(port),
                "-responses", str(responses),
            ]  # fmt: skip
            with open(log, "wb") as output:
                process = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    cwd=self.directory,
                    start_new_session=True,  # a terminal's Ctrl-C is the test run's
                )
            self._process = process
            if wait_until_listening(process, self.host, port, timeout=_START_TIMEOUT):
                self.port = port
                return
            terminate(process, timeout=_STOP_TIMEOUT)
            self._process = None
            failure = (
                f"cfssl ocspserve did not start on {self.host}:{port} "
                f"(exit code {process.returncode}).\ncommand: {' '.join(command)}\n{read_log(log)}"
            )
            if "address already in use" not in read_log(log):
                raise CfsslError(failure)
            failures.append(failure)  # someone took the port first: try another
        raise CfsslError(
            f"cfssl ocspserve could not bind a port in {_BIND_ATTEMPTS} attempts:\n"
            + "\n".join(failures)
        )


def _key_pem(ca: CA) -> bytes:
    return ca.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
