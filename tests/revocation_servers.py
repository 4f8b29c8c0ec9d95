"""Real servers for the revocation engine's end-to-end tests.

A PKI whose leaves and intermediate name live revocation sources on loopback (the AIA
OCSP URL of a real :class:`OCSPResponder`, the CRL distribution point of a real
:class:`CRLServer`), stapling servers that send a chosen staple, and one function that
connects through each client staplecheck supports (pyOpenSSL ``StapleConnection``,
urllib3 ``pool_manager``, requests ``session``) and reports what happened. Time is
fixed (``NOW``) for the responders, the CRLs, the staple judge and the checker.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import socket
from collections.abc import Callable, Iterator

import anyio
import httpx
import requests
import urllib3
from cryptography import x509
from cryptography.hazmat.primitives import hashes

import staplecheck.httpx
from staplecheck import (
    Policy,
    StapleError,
    StapleResult,
    find_staple_error,
    pool_manager,
    revocation_of,
    session,
    staple_of,
)
from staplecheck.revocation import RevocationChecker, RevocationResult
from staplecheck.testing import CA, CRLServer, Identity, OCSPResponder, StaplingServer
from staplecheck.testing._crl import crl_distribution_points
from staplecheck.tls._pyopenssl import (
    StapleConnection,
    TLSConfig,
    create_context,
    drive_handshake,
)
from tests.conftest import NOW

CLIENTS = ("pyopenssl", "urllib3", "requests", "httpx-asyncio", "httpx-trio")
"""Every client the end-to-end tests connect through. The two async ones run the
engine's async path (``check_async``: async fetchers, the event loop's single-flight)."""
TLS_VERSIONS = ("1.2", "1.3")
STAPLES = ("good", "revoked", "unknown", "stale", "invalid", "missing")
"""The staples a server can send: ``invalid`` is a well-formed response signed by
another key under the issuer's name (servers refuse to staple unparsable bytes)."""

Clock = Callable[[], datetime.datetime]

LEAF_CRL = "/intermediate.crl"
ROOT_CRL = "/root.crl"


def fixed_clock() -> datetime.datetime:
    return NOW


class MovingClock:
    """A clock a test moves by hand (for expiry), shared by the checker and the
    staple judge."""

    def __init__(self, start: datetime.datetime = NOW) -> None:
        self.now = start

    def __call__(self) -> datetime.datetime:
        return self.now


def _with_revocation_urls(ca: CA, ocsp_url: str, crl_url: str) -> None:
    """Re-issue ``ca``'s certificate (same key, name and serial) with an AIA OCSP URL
    and a CRL distribution point, as a private CA's intermediate carries them."""
    assert ca.parent is not None
    old = ca.cert
    builder = (
        x509.CertificateBuilder()
        .subject_name(old.subject)
        .issuer_name(old.issuer)
        .public_key(old.public_key())
        .serial_number(old.serial_number)
        .not_valid_before(old.not_valid_before_utc)
        .not_valid_after(old.not_valid_after_utc)
    )
    for extension in old.extensions:
        builder = builder.add_extension(extension.value, extension.critical)
    builder = builder.add_extension(
        x509.AuthorityInformationAccess(
            [
                x509.AccessDescription(
                    x509.oid.AuthorityInformationAccessOID.OCSP,
                    x509.UniformResourceIdentifier(ocsp_url),
                )
            ]
        ),
        critical=False,
    ).add_extension(crl_distribution_points(crl_url), critical=False)
    ca.cert = builder.sign(ca.parent.private_key, hashes.SHA256())


@dataclasses.dataclass
class RevocationPKI:
    """A root, an intermediate and leaves that name the live sources below."""

    root: CA
    intermediate: CA
    leaf: Identity
    must_staple_leaf: Identity
    responder: OCSPResponder
    """Answers for the intermediate's certificates (the leaves)."""
    root_responder: OCSPResponder
    """Answers for the root's certificates (the intermediate)."""
    crls: CRLServer
    trust: str
    """A PEM file with the root: what every client trusts."""
    responder_time: datetime.datetime = NOW
    """thisUpdate of every live OCSP answer (move it back for stale answers)."""

    def reset(self) -> None:
        """Every source behaves and says ``good``; CRLs current and empty."""
        self.responder_time = NOW
        for responder in (self.responder, self.root_responder):
            responder.misbehave(None)
            responder.set_response_options()
        self.responder.set_status(self.leaf, "good")
        self.responder.set_status(self.must_staple_leaf, "good")
        self.root_responder.set_status(self.intermediate.cert.serial_number, "good")
        self.crls.behave()
        self.crls.set_crl(LEAF_CRL, self.intermediate.crl())
        self.crls.set_crl(ROOT_CRL, self.root.crl())

    def staple(self, kind: str, leaf: Identity | None = None) -> bytes | None:
        """The DER staple of ``kind`` (one of :data:`STAPLES`) for ``leaf``."""
        leaf = leaf or self.leaf
        day = datetime.timedelta(days=1)
        if kind == "missing":
            return None
        if kind in ("good", "revoked", "unknown"):
            return self.intermediate.ocsp_response(
                leaf,
                kind,
                this_update=NOW,
                next_update=NOW + day,
                revocation_reason="keyCompromise" if kind == "revoked" else None,
            )
        if kind == "stale":
            return self.intermediate.ocsp_response(
                leaf, "good", this_update=NOW - 3 * day, next_update=NOW - 2 * day
            )
        if kind == "invalid":
            forger = CA(name="staplecheck test intermediate", now=NOW)
            return self.intermediate.ocsp_response(
                leaf, "good", this_update=NOW, next_update=NOW + day, responder=forger
            )
        raise ValueError(kind)

    def checker(self, clock: Clock = fixed_clock, **options: object) -> RevocationChecker:
        """A fresh checker (its own in-memory store unless ``store=``), at the fixed
        time unless ``clock=``."""
        return RevocationChecker(clock=clock, **options)  # type: ignore[arg-type]


@contextlib.contextmanager
def revocation_pki(directory: str) -> Iterator[RevocationPKI]:
    """Start the responders and the CRL server, issue the PKI; stop them all after."""
    root = CA(now=NOW)
    intermediate = root.create_intermediate()
    holder: list[RevocationPKI] = []

    def responder_clock() -> datetime.datetime:
        return holder[0].responder_time if holder else NOW

    with contextlib.ExitStack() as stack:
        responder = stack.enter_context(OCSPResponder(intermediate, clock=responder_clock))
        root_responder = stack.enter_context(OCSPResponder(root, clock=responder_clock))
        crls = stack.enter_context(CRLServer())
        _with_revocation_urls(intermediate, root_responder.url, crls.url(ROOT_CRL))
        names = ("localhost", "127.0.0.1")
        urls = {"ocsp_url": responder.url, "crl_url": crls.url(LEAF_CRL)}
        pki = RevocationPKI(
            root=root,
            intermediate=intermediate,
            leaf=intermediate.issue_cert(*names, **urls),  # type: ignore[arg-type]
            must_staple_leaf=intermediate.issue_cert(*names, must_staple=True, **urls),  # type: ignore[arg-type]
            responder=responder,
            root_responder=root_responder,
            crls=crls,
            trust=root.write_trust(os.path.join(directory, "root.pem")),
        )
        holder.append(pki)
        pki.reset()
        yield pki


@contextlib.contextmanager
def stapling(
    identity: Identity, staple: bytes | None, tls_version: str = "1.3"
) -> Iterator[StaplingServer]:
    with StaplingServer(identity, staple, tls_version=tls_version) as server:  # type: ignore[arg-type]
        yield server


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What one connection ended with, whichever client made it."""

    accepted: bool
    staple: StapleResult | None
    revocation: RevocationResult | None
    error: StapleError | None


def connect(
    client: str,
    server: StaplingServer,
    policy: Policy,
    checker: RevocationChecker,
    trust: str,
    *,
    timeout: float = 5.0,
    clock: Clock = fixed_clock,
) -> Outcome:
    """One real handshake (and, for the HTTP clients, one request) to ``server``;
    ``clock`` judges the staple (the checker has its own)."""
    if client == "pyopenssl":
        return _connect_pyopenssl(server, policy, checker, trust, timeout, clock)
    if client == "urllib3":
        manager = pool_manager(
            policy, ca_certs=trust, revocation=checker, clock=clock, retries=False
        )
        try:
            response = manager.request("GET", server.url, timeout=timeout)
        except urllib3.exceptions.HTTPError as error:
            return _refused(error)
        finally:
            manager.clear()
        assert response.status == 200
        return Outcome(True, response.staple, response.revocation, None)  # type: ignore[attr-defined]
    if client == "requests":
        with session(policy, clock=clock, revocation=checker) as http:
            try:
                reply = http.get(server.url, verify=trust, timeout=timeout)
            except requests.exceptions.SSLError as error:
                return _refused(error)
        assert reply.status_code == 200
        return Outcome(True, reply.staple, reply.revocation, None)  # type: ignore[attr-defined]
    if client.startswith("httpx-"):
        backend = client.removeprefix("httpx-")
        return anyio.run(
            _connect_httpx_async, server, policy, checker, trust, timeout, clock, backend=backend
        )
    raise ValueError(client)


async def _connect_httpx_async(
    server: StaplingServer,
    policy: Policy,
    checker: RevocationChecker,
    trust: str,
    timeout: float,
    clock: Clock,
) -> Outcome:
    async with staplecheck.httpx.async_client(
        policy, verify=trust, revocation=checker, clock=clock, timeout=timeout
    ) as http:
        try:
            reply = await http.get(server.url)
        except httpx.ConnectError as error:
            return _refused(error)
    assert reply.status_code == 200
    return Outcome(True, staple_of(reply), revocation_of(reply), None)


def _connect_pyopenssl(
    server: StaplingServer,
    policy: Policy,
    checker: RevocationChecker,
    trust: str,
    timeout: float,
    clock: Clock,
) -> Outcome:
    context = create_context(
        policy, config=TLSConfig(cafiles=(trust,)), clock=clock, revocation=checker
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        connection = StapleConnection(context, sock, server_hostname="localhost")
        try:
            drive_handshake(connection, sock)
        except StapleError as error:
            return _refused(error)
        return Outcome(True, connection.staple, connection.revocation, None)


def _refused(error: BaseException) -> Outcome:
    found = find_staple_error(error)
    if found is None:
        raise AssertionError(f"refused without a StapleError: {error!r}") from error
    return Outcome(False, found.result, getattr(found, "revocation", None), found)
