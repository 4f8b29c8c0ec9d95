"""What the httpx tests share: a live PKI on disk, a responder its certificates name,
the expected decision of every policy row, and an nginx that speaks HTTP/2."""

from __future__ import annotations

import dataclasses
import datetime
import os
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

from staplecheck import RevocationChecker, StapleError, StapleResult, StapleStatus, as_policy
from staplecheck.clients._httplib import httpx
from staplecheck.testing import CA, Identity, OCSPResponder, StapleCase
from tests.realservers import Nginx

# One instant for staples, responder and judging: deterministic, and inside the real
# validity of the certificates (OpenSSL checks those against the real clock).
NOW = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def clock() -> datetime.datetime:
    return NOW


@dataclasses.dataclass(frozen=True)
class LivePKI:
    root: CA
    intermediate: CA
    leaf: Identity
    """localhost and 127.0.0.1; its AIA names :attr:`responder`."""
    must_staple_leaf: Identity
    revoked_leaf: Identity
    """Another certificate for the same names (the concurrency tests serve both)."""
    other: Identity
    """Only other.test: a wrong host name for localhost."""
    client: Identity
    client_files: tuple[str, str]
    ca_file: str
    ca_dir: str
    foreign_ca_file: str
    foreign_leaf: Identity
    responder: OCSPResponder
    directory: Path

    def leaf_for(self, case: StapleCase) -> Identity:
        return self.must_staple_leaf if case.must_staple else self.leaf


def make_live_pki(directory: Path) -> LivePKI:
    root = CA(now=NOW, name="staplecheck httpx root")
    intermediate = root.create_intermediate()
    responder = OCSPResponder(intermediate, clock=clock)
    url = responder.url
    leaf = intermediate.issue_cert("localhost", "127.0.0.1", ocsp_url=url)
    must = intermediate.issue_cert("localhost", "127.0.0.1", must_staple=True, ocsp_url=url)
    revoked = intermediate.issue_cert("localhost", "127.0.0.1", ocsp_url=url)
    client = intermediate.issue_cert("client.test", client_auth=True)
    foreign = CA(now=NOW, name="staplecheck httpx foreign root")
    ca_dir = directory / "cadir"
    ca_dir.mkdir()
    _write_hashed(root, ca_dir)
    return LivePKI(
        root=root,
        intermediate=intermediate,
        leaf=leaf,
        must_staple_leaf=must,
        revoked_leaf=revoked,
        other=intermediate.issue_cert("other.test"),
        client=client,
        client_files=client.write(directory, "client"),
        ca_file=root.write_trust(directory / "root.pem"),
        ca_dir=str(ca_dir),
        foreign_ca_file=foreign.write_trust(directory / "foreign.pem"),
        foreign_leaf=foreign.create_intermediate().issue_cert("localhost", "127.0.0.1"),
        responder=responder,
        directory=directory,
    )


def behaving(live: LivePKI) -> Iterator[None]:
    """The responder answers honestly (good for the leaves, revoked for the revoked
    leaf) during a test and resumes after it: for an autouse fixture."""
    live.responder.misbehave(None)
    live.responder.resume()
    for leaf in (live.leaf, live.must_staple_leaf):
        live.responder.set_status(leaf, "good")
    live.responder.set_status(live.revoked_leaf, "revoked", revocation_reason="keyCompromise")
    yield
    live.responder.resume()


def _write_hashed(root: CA, directory: Path) -> None:
    """A CA directory as OpenSSL reads it: the root under its subject hash."""
    from OpenSSL import crypto

    cert = crypto.X509.from_cryptography(root.cert)
    name = f"{cert.subject_name_hash() & 0xFFFFFFFF:08x}.0"
    (directory / name).write_bytes(root.cert_pem)


def expected_accept(mode: str, case: StapleCase, answer: StapleStatus | None) -> bool:
    """What the policy table says for ``case`` under ``mode`` when the fallback (if
    the policy has one and asks it) answers ``answer``."""
    policy = as_policy(mode)
    result = StapleResult(status=case.status, reason="", must_staple=case.must_staple)
    asked = answer if policy.wants_fallback(result) else None
    return policy.accepts(result, asked)


def checker() -> RevocationChecker:
    """A checker of its own per test: no answer cached by another test."""
    return RevocationChecker(clock=clock, cache=None)


def staple_cause(error: httpx.ConnectError) -> StapleError:
    cause = error.__cause__
    assert isinstance(cause, StapleError), repr(cause)
    return cause


def verification_cause(error: httpx.ConnectError) -> ssl.SSLCertVerificationError:
    cause = error.__cause__
    assert isinstance(cause, ssl.SSLCertVerificationError), repr(cause)
    assert not isinstance(cause, StapleError)
    return cause


def open_sockets() -> int:
    """How many sockets this process holds open (Linux)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                count += 1
        except OSError:
            pass
    return count


class SilentServer:
    """A TCP listener on 127.0.0.1 that never accepts: the kernel completes TCP
    connects from its backlog, and the TLS handshake waits forever."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.url = f"https://localhost:{self._sock.getsockname()[1]}/"

    def __enter__(self) -> SilentServer:
        return self

    def __exit__(self, *_: object) -> None:
        self._sock.close()


class Http2Nginx(Nginx):
    """nginx with HTTP/2 on (ALPN ``h2``) and ``http/1.1`` still offered."""

    def config(self, port: int) -> str:
        return super().config(port).replace(" ssl;", " ssl http2;", 1)
