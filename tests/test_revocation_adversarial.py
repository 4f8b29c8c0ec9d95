"""The revocation fallback and its TLS glue under attack (docs/security.md, "The
revocation fallback under attack").

Each test plays one attack against real parts: real TLS handshakes with the
in-process stapling server, the project's OCSP responder and CRL server, and raw
loopback HTTP servers that lie, drip or stall. Time for judging is passed in; time
budgets are real (the deadlines are what is attacked), kept to fractions of a second.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import os
import select
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtensionOID
from OpenSSL import SSL

from staplecheck import (
    Mode,
    Policy,
    ResponderOverride,
    RevocationError,
    StapleConnection,
    StapleError,
    StapleResult,
    StapleStatus,
    TLSConfig,
    create_context,
)
from staplecheck.revocation import RevocationChecker, RevocationResult
from staplecheck.revocation._fetch import FetchError, fetch_crl
from staplecheck.revocation._plan import request_key
from staplecheck.revocation.stores import SQLiteStore
from staplecheck.testing import (
    CA,
    CRLServer,
    Identity,
    OCSPEntry,
    OCSPResponder,
    RawExtension,
    StaplingServer,
    generate_key,
)
from staplecheck.validation._validate import CertPair

from .conftest import require_program

NOW = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
"""The real time, once: OpenSSL checks certificate validity against the real clock,
and everything staplecheck judges is judged at this instant (``clock``)."""

SOFT_OCSP = Policy(mode=Mode.SOFT_FAIL, fallback=("ocsp",))
HARD_OCSP = Policy(mode=Mode.HARD_FAIL, fallback=("ocsp",))


def clock() -> datetime.datetime:
    return NOW


@dataclasses.dataclass
class Site:
    """A root, an issuing CA, its live responder and a leaf whose AIA names it."""

    root: CA
    issuer: CA
    responder: OCSPResponder
    leaf: Identity
    strict: Identity
    """A must-staple leaf (RFC 7633) of the same CA."""
    cafile: str

    def context(
        self, policy: Policy | str, checker: RevocationChecker | None = None
    ) -> SSL.Context:
        """A fresh context with its own checker (no state shared between tests)."""
        return create_context(
            policy,
            config=TLSConfig(cafiles=(self.cafile,)),
            clock=clock,
            cache=None,
            revocation=checker or RevocationChecker(clock=clock, cache=None),
        )


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    root = CA(now=NOW)
    issuer = root.create_intermediate()
    with OCSPResponder(issuer, clock=clock) as responder:
        leaf = issuer.issue_cert("localhost", "127.0.0.1", ocsp_url=responder.url)
        strict = issuer.issue_cert(
            "localhost", "127.0.0.1", ocsp_url=responder.url, must_staple=True
        )
        responder.set_status(leaf, "revoked", revocation_reason="keyCompromise")
        responder.set_status(strict, "good")
        cafile = root.write_trust(tmp_path / "ca.pem")
        yield Site(root, issuer, responder, leaf, strict, cafile)


@contextlib.contextmanager
def blocking_socket(server: StaplingServer, watchdog: float = 5.0) -> Iterator[socket.socket]:
    """A blocking TCP connection to ``server`` (pyOpenSSL turns a socket timeout into
    WantReadError), shut down by a watchdog after ``watchdog`` seconds so that a test
    whose connection waits for bytes that never come fails instead of hanging."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.setblocking(True)
        timer = threading.Timer(watchdog, _shutdown, args=(sock,))
        timer.start()
        try:
            yield sock
        finally:
            timer.cancel()


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


REQUEST = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"

# Every way an application can move bytes without calling do_handshake first.
FIRST_USES: dict[str, Callable[[StapleConnection], object]] = {
    "send": lambda c: c.send(REQUEST),
    "write": lambda c: c.write(REQUEST),
    "sendall": lambda c: c.sendall(REQUEST),
    "recv": lambda c: c.recv(1024),
    "read": lambda c: c.read(1024),
    "recv_into": lambda c: c.recv_into(bytearray(1024)),
}


# --- 1. the implicit handshake ----------------------------------------------------------


@pytest.mark.parametrize("use", sorted(FIRST_USES))
def test_implicit_handshake_runs_the_revocation_check_before_any_byte(site: Site, use: str) -> None:
    """An application that sends (or reads) without do_handshake lets OpenSSL
    handshake inside SSL_write/SSL_read: the fallback must still answer, and refuse,
    before a byte of the request leaves."""
    with StaplingServer(site.leaf) as server, blocking_socket(server) as sock:
        connection = StapleConnection(site.context(SOFT_OCSP), sock, server_hostname="localhost")
        with pytest.raises(RevocationError) as caught:
            FIRST_USES[use](connection)
    assert caught.value.revocation.status is StapleStatus.REVOKED
    assert server.requests == 0
    assert site.responder.requests == 1


@pytest.mark.parametrize("use", sorted(FIRST_USES))
def test_implicit_handshake_checks_the_host_name(site: Site, use: str) -> None:
    with StaplingServer(site.leaf) as server, blocking_socket(server) as sock:
        connection = StapleConnection(
            site.context("soft-fail"), sock, server_hostname="bank.example"
        )
        with pytest.raises(ssl.SSLCertVerificationError) as caught:
            FIRST_USES[use](connection)
    assert not isinstance(caught.value, StapleError)
    assert "bank.example" in str(caught.value)
    assert server.requests == 0


def test_implicit_handshake_then_accepted_connection_works(site: Site) -> None:
    """The check runs once: a connection the fallback accepts carries the request."""
    site.responder.set_status(site.leaf, "good")
    with StaplingServer(site.leaf) as server, blocking_socket(server) as sock:
        connection = StapleConnection(site.context(HARD_OCSP), sock, server_hostname="localhost")
        connection.sendall(REQUEST)
        assert connection.recv(1024).startswith(b"HTTP/1.1 200")
        assert connection.revocation is not None
        assert connection.revocation.status is StapleStatus.GOOD
    assert server.requests == 1
    assert site.responder.requests == 1


def test_deferred_revocation_must_run_before_a_byte_is_sent(site: Site) -> None:
    """defer_revocation=True (the async transports) leaves the check to the caller:
    sending before check_revocation() raises, and a refusal it finds sticks."""
    with StaplingServer(site.leaf) as server, blocking_socket(server) as sock:
        connection = StapleConnection(
            site.context(SOFT_OCSP), sock, server_hostname="localhost", defer_revocation=True
        )
        connection.do_handshake()
        assert site.responder.requests == 0
        with pytest.raises(ssl.SSLError, match="check_revocation"):
            connection.sendall(REQUEST)
        with pytest.raises(RevocationError):
            connection.check_revocation()
        for use in (connection.sendall, connection.send):
            with pytest.raises(RevocationError):
                use(REQUEST)
        with pytest.raises(RevocationError):
            connection.do_handshake()
    assert server.requests == 0
    assert site.responder.requests == 1


# --- 2. not asking for a staple ------------------------------------------------------------


def test_request_staple_false_counts_as_missing_under_hard_fail(site: Site) -> None:
    """Not asking for a staple is a missing staple: hard-fail goes to the fallback,
    which says revoked; it never passes as if a good staple had been seen."""
    with StaplingServer(site.leaf) as server, blocking_socket(server) as sock:
        connection = StapleConnection(
            site.context(HARD_OCSP), sock, server_hostname="localhost", request_staple=False
        )
        with pytest.raises(RevocationError) as caught:
            connection.do_handshake()
    assert caught.value.result.status is StapleStatus.MISSING
    assert caught.value.revocation.status is StapleStatus.REVOKED


@pytest.mark.parametrize(
    ("policy", "strict"),
    [("must-staple", False), ("must-staple", True), ("soft-fail", True), ("hard-fail", True)],
)
def test_request_staple_false_is_refused_where_a_staple_is_required(
    site: Site, policy: str, strict: bool
) -> None:
    """must-staple, and a must-staple certificate under any mode but off, need a good
    staple: a connection that did not ask for one cannot have it."""
    leaf = site.strict if strict else site.leaf
    site.responder.set_status(leaf, "good")
    with StaplingServer(leaf, leaf.issuer.ocsp_response(leaf, this_update=NOW)) as server:
        with blocking_socket(server) as sock:
            connection = StapleConnection(
                site.context(policy), sock, server_hostname="localhost", request_staple=False
            )
            with pytest.raises(StapleError) as caught:
                connection.do_handshake()
            assert connection.staple is not None
            assert connection.staple.status is StapleStatus.MISSING
        assert server.requests == 0
    assert caught.value.result.status is StapleStatus.MISSING


def test_request_staple_false_under_soft_fail_reports_missing(site: Site) -> None:
    site.responder.set_status(site.leaf, "good")
    with StaplingServer(site.leaf) as server, blocking_socket(server) as sock:
        connection = StapleConnection(
            site.context("soft-fail"), sock, server_hostname="localhost", request_staple=False
        )
        connection.do_handshake()
        assert connection.staple is not None
        assert connection.staple.status is StapleStatus.MISSING


def test_request_staple_false_under_off_has_no_verdict(site: Site) -> None:
    with StaplingServer(site.leaf) as server, blocking_socket(server) as sock:
        connection = StapleConnection(
            site.context("off"), sock, server_hostname="localhost", request_staple=False
        )
        connection.do_handshake()
        assert connection.staple is None


# --- 3. a refusal sticks ---------------------------------------------------------------------


@pytest.mark.parametrize("use", sorted(FIRST_USES))
def test_refusal_is_raised_again_on_every_later_use(site: Site, use: str) -> None:
    """An application that catches the refusal and goes on must not reach the server:
    the refusal is raised again, and the fallback is not asked again (a second
    answer must not overturn the first). Here the store lost the first answer (an
    eviction, or another process clearing a shared store) and the responder now
    says good: asking again would let the request through."""
    checker = RevocationChecker(clock=clock, cache=None)
    with StaplingServer(site.leaf) as server, blocking_socket(server) as sock:
        connection = StapleConnection(
            site.context(SOFT_OCSP, checker), sock, server_hostname="localhost"
        )
        with pytest.raises(RevocationError) as first:
            connection.do_handshake()
        checker.store.clear()
        site.responder.set_status(site.leaf, "good")  # the attacker's second chance
        for _ in range(2):
            with pytest.raises(RevocationError) as again:
                FIRST_USES[use](connection)
            assert again.value.revocation.status is StapleStatus.REVOKED
        with pytest.raises(RevocationError):
            connection.do_handshake()
    assert first.value.revocation.status is StapleStatus.REVOKED
    assert server.requests == 0
    assert site.responder.requests == 1


def test_host_name_refusal_is_raised_again(site: Site) -> None:
    with StaplingServer(site.leaf) as server, blocking_socket(server) as sock:
        connection = StapleConnection(
            site.context("soft-fail"), sock, server_hostname="bank.example"
        )
        with pytest.raises(ssl.SSLCertVerificationError):
            connection.do_handshake()
        with pytest.raises(ssl.SSLCertVerificationError):
            connection.sendall(REQUEST)
    assert server.requests == 0


def test_hard_fail_without_an_answer_is_raised_again(site: Site) -> None:
    """No failure mark to lean on (failure_ttl 0): the refusal itself is kept."""
    checker = RevocationChecker(clock=clock, cache=None, failure_ttl=datetime.timedelta(0))
    site.responder.misbehave("http-error")
    site.responder.set_status(site.leaf, "good")
    with StaplingServer(site.leaf) as server, blocking_socket(server) as sock:
        connection = StapleConnection(
            site.context(HARD_OCSP, checker), sock, server_hostname="localhost"
        )
        with pytest.raises(RevocationError) as caught:
            connection.do_handshake()
        assert caught.value.revocation.source is None
        site.responder.misbehave(None)
        with pytest.raises(RevocationError):
            connection.sendall(REQUEST)
    assert server.requests == 0
    assert site.responder.requests == 1


# --- 4. a non-blocking socket -----------------------------------------------------------------


def test_non_blocking_socket_keeps_the_fallback_budget(site: Site) -> None:
    """A socket with timeout 0.0 (non-blocking, as event loops use) is no budget of
    zero: the fallback still gets the policy's fallback_timeout, asks the responder,
    and refuses the revoked certificate."""
    with StaplingServer(site.leaf) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.setblocking(False)
            assert sock.gettimeout() == 0.0
            connection = StapleConnection(
                site.context(SOFT_OCSP), sock, server_hostname="localhost"
            )
            with pytest.raises(RevocationError) as caught:
                _handshake_non_blocking(connection, sock)
        assert server.requests == 0
    assert caught.value.revocation.status is StapleStatus.REVOKED
    assert site.responder.requests == 1


def _handshake_non_blocking(connection: SSL.Connection, sock: socket.socket) -> None:
    """What an event loop does: handshake, wait for readiness, handshake again."""
    for _ in range(1000):
        try:
            connection.do_handshake()
            return
        except SSL.WantReadError:
            select.select([sock], [], [], 5)
        except SSL.WantWriteError:
            select.select([], [sock], [], 5)
    raise AssertionError("the handshake did not finish")


# --- 5. a resolver that never answers --------------------------------------------------------

# Runs inside a private user, mount and network namespace (``unshare -Urnm``): there
# /etc/resolv.conf is bind-mounted to name 127.0.0.1 as the only nameserver, where a
# UDP socket takes queries and answers none, exactly as a DNS server behind a dropping
# firewall does (glibc then waits 5 s per try). The machine's own resolver is
# untouched. The script checks a CRL distribution point and an OCSP URL whose host
# names go to that resolver, with a fallback budget of 0.4 s.
_SILENT_DNS_SCRIPT = r"""
import ctypes, datetime, fcntl, json, socket, struct, sys, time
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from staplecheck import Mode, Policy, StapleResult, StapleStatus
from staplecheck.revocation import RevocationChecker, RevocationResult
from staplecheck.revocation._plan import request_key
from staplecheck.revocation.stores import SQLiteStore
from staplecheck.validation._validate import CertPair
from staplecheck.revocation._fetch import FetchError, fetch_crl
from staplecheck.revocation._fetch import FetchError, fetch_crl
from staplecheck.testing import CA

libc = ctypes.CDLL(None, use_errno=True)
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:  # loopback up
    flags = struct.unpack("16sh22x", fcntl.ioctl(s, 0x8913, struct.pack("16sh22x", b"lo", 0)))[1]
    fcntl.ioctl(s, 0x8914, struct.pack("16sh22x", b"lo", flags | 1))
if libc.mount(sys.argv[1].encode(), b"/etc/resolv.conf", None, 4096, None) != 0:  # MS_BIND
    sys.exit("cannot bind-mount resolv.conf: errno %d" % ctypes.get_errno())
silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
silent.bind(("127.0.0.1", 53))
out = {}

start = time.monotonic()
try:
    fetch_crl("http://crl.staplecheck.test/ca.crl", deadline=start + 0.4, timeout=5)
    out["fetch"] = "fetched?"
except FetchError as error:
    out["fetch"] = error.reason
out["fetch_seconds"] = time.monotonic() - start

now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
issuer = CA(now=now).create_intermediate()
leaf = issuer.issue_cert(
    "localhost", ocsp_url="http://ocsp.staplecheck.test/", crl_url="http://crl.staplecheck.test/x.crl"
)
chain = [c.public_bytes(Encoding.DER) for c in (leaf.cert, issuer.cert, issuer.root.cert)]
policy = Policy(mode=Mode.HARD_FAIL, fallback=("crl", "ocsp"), fallback_timeout=0.4)
missing = StapleResult(status=StapleStatus.MISSING, reason="no staple")
start = time.monotonic()
result = RevocationChecker(clock=lambda: now, cache=None).check(chain, policy, missing)
out["check_seconds"] = time.monotonic() - start
out["accepted"] = result.accepted
out["attempts"] = [(a.source, a.outcome, a.reason) for a in result.attempts]

silent.settimeout(1)
out["queried"] = len(silent.recvfrom(512)[0]) > 0  # the names did go to the silent resolver
print(json.dumps(out))
sys.stdout.flush()
"""


def test_a_resolver_that_never_answers_cannot_stretch_the_budget(tmp_path: Path) -> None:
    """getaddrinfo cannot be interrupted: a distribution point or responder whose
    host name hangs in the resolver must still be given up at the deadline, for the
    CRL (fetched in the checking thread) as for OCSP."""
    unshare = require_program("unshare")
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\noptions timeout:5 attempts:2\n")
    script = tmp_path / "silent_dns.py"
    script.write_text(_SILENT_DNS_SCRIPT)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    done = subprocess.run(
        [unshare, "-Urnm", sys.executable, str(script), str(resolv)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    assert out["queried"]
    assert out["fetch_seconds"] < 1.5, out
    assert "resol" in out["fetch"] or "deadline" in out["fetch"], out
    assert out["check_seconds"] < 1.5, out
    assert out["accepted"] is False


# --- certificates whose extensions cryptography cannot read ----------------------------------

# An AuthorityInfoAccess whose OCSP location is an EDIPartyName (GeneralName [5]):
# valid DER that OpenSSL verifies and ignores, and that cryptography refuses to read
# with UnsupportedGeneralNameType, which is not a ValueError.
_EDI_AIA = bytes.fromhex("3013301106082b06010505073001a505a1030c0178")


def _with_edi_aia(ca: CA, name: str) -> Identity:
    key = generate_key("ecdsa")
    builder = (
        ca._builder(name, key, None, None, None)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(
            x509.UnrecognizedExtension(ExtensionOID.AUTHORITY_INFORMATION_ACCESS, _EDI_AIA),
            critical=False,
        )
    )
    return ca._identity(builder, key)


def _edi_intermediate(root: CA) -> CA:
    """An intermediate CA whose own certificate carries that AIA."""
    inter = root.create_intermediate(name="intermediate with an EDI party name")
    cert = inter.cert
    builder = (
        x509.CertificateBuilder()
        .subject_name(cert.subject)
        .issuer_name(cert.issuer)
        .public_key(inter.private_key.public_key())
        .serial_number(cert.serial_number)
        .not_valid_before(cert.not_valid_before_utc)
        .not_valid_after(cert.not_valid_after_utc)
    )
    for extension in cert.extensions:
        builder = builder.add_extension(extension.value, critical=extension.critical)
    builder = builder.add_extension(
        x509.UnrecognizedExtension(ExtensionOID.AUTHORITY_INFORMATION_ACCESS, _EDI_AIA),
        critical=False,
    )
    inter.cert = builder.sign(root.private_key, hashes.SHA256())
    return inter


MISSING = StapleResult(status=StapleStatus.MISSING, reason="the server sent no staple")


@pytest.mark.parametrize("fallback", [("ocsp",), ("crl",)])
def test_unreadable_leaf_extensions_give_a_verdict_not_a_traceback(
    fallback: tuple[str, ...],
) -> None:
    """The engine reads the AIA and distribution points with cryptography, which
    raises UnsupportedGeneralNameType (not ValueError) for such a certificate: the
    check must end in a clean verdict (no answer: hard-fail refuses), never raise."""
    issuer = CA(now=NOW).create_intermediate()
    leaf = _with_edi_aia(issuer, "localhost")
    chain = [c.public_bytes(Encoding.DER) for c in (leaf.cert, issuer.cert, issuer.root.cert)]
    policy = Policy(mode=Mode.HARD_FAIL, fallback=fallback)
    result = RevocationChecker(clock=clock, cache=None).check(chain, policy, MISSING)
    assert result.accepted is False
    assert result.status is StapleStatus.MISSING
    assert result.source is None


def test_unreadable_leaf_extensions_with_a_static_crl(tmp_path: Path) -> None:
    """A static CRL file needs nothing from the certificate's extensions to answer;
    reading its must-staple flag must not raise either: the CRL's answer stands."""
    issuer = CA(now=NOW).create_intermediate()
    leaf = _with_edi_aia(issuer, "localhost")
    crl = tmp_path / "issuer.crl"
    crl.write_bytes(issuer.crl([], this_update=NOW))
    chain = [c.public_bytes(Encoding.DER) for c in (leaf.cert, issuer.cert, issuer.root.cert)]
    policy = Policy(mode=Mode.HARD_FAIL, fallback=("crl",), crl_files=(str(crl),))
    result = RevocationChecker(clock=clock, cache=None).check(chain, policy, MISSING)
    assert result.status is StapleStatus.GOOD
    assert result.source == "crl"
    assert result.accepted is True


def test_unreadable_intermediate_extensions_refuse_cleanly_over_tls(tmp_path: Path) -> None:
    """The host name check reads only the leaf: an intermediate that cryptography
    cannot read reaches the engine under check_chain. The handshake must end in an
    error of the ssl family (hard-fail: no answer for the intermediate refuses)."""
    root = CA(now=NOW)
    inter = _edi_intermediate(root)
    with OCSPResponder(inter, clock=clock) as responder:
        leaf = inter.issue_cert("localhost", ocsp_url=responder.url)
        responder.set_status(leaf, "good")
        cafile = root.write_trust(tmp_path / "ca.pem")
        policy = Policy(mode=Mode.HARD_FAIL, fallback=("ocsp",), check_chain=True)
        context = create_context(
            policy,
            config=TLSConfig(cafiles=(cafile,)),
            clock=clock,
            cache=None,
            revocation=RevocationChecker(clock=clock, cache=None),
        )
        with StaplingServer(leaf) as server, blocking_socket(server) as sock:
            connection = StapleConnection(context, sock, server_hostname="localhost")
            with pytest.raises(RevocationError) as caught:
                connection.do_handshake()
            with pytest.raises(RevocationError):
                connection.sendall(REQUEST)
        assert server.requests == 0
    (refused,) = caught.value.revocation.chain
    assert refused.accepted is False
    assert refused.source is None


def _urllib_crl_fetcher(url: str, **_: object) -> bytes:
    """A CRL fetcher of the caller's own (RevocationChecker(fetch_crl=...)), built on
    urllib.request: its failures are URLError, not staplecheck's FetchError."""
    import urllib.request

    with urllib.request.urlopen(url, timeout=1) as answer:
        return bytes(answer.read())


@pytest.mark.parametrize("mode", ["soft-fail", "hard-fail"])
def test_a_fetcher_that_raises_fails_closed_in_the_ssl_family(
    site: Site, mode: str, tmp_path: Path
) -> None:
    """Whatever a store or fetcher of the caller's raises, the handshake ends in an
    error the caller already catches, and the connection is refused (fail closed),
    never a raw exception from do_handshake."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{unused.getsockname()[1]}/ca.crl"  # refused: not listening
    leaf = site.issuer.issue_cert("localhost", crl_url=dead)
    checker = RevocationChecker(clock=clock, cache=None, fetch_crl=_urllib_crl_fetcher)
    policy = Policy(mode=Mode(mode), fallback=("crl",))
    with StaplingServer(leaf) as server, blocking_socket(server) as sock:
        connection = StapleConnection(
            site.context(policy, checker), sock, server_hostname="localhost"
        )
        with pytest.raises(RevocationError) as caught:
            connection.do_handshake()
        with pytest.raises(RevocationError):
            connection.sendall(REQUEST)
    assert server.requests == 0
    assert caught.value.revocation.accepted is False
    assert "URLError" in caught.value.revocation.reason


# --- URLs a certificate can name --------------------------------------------------------------

HOSTILE_URLS = [
    "http://[::1/x.crl",  # urlsplit: "Invalid IPv6 URL"
    "http://exa mple/x.crl",  # a space in the host
    "http://127.0.0.1\x7f:1/x.crl",  # DEL in the host
    "http://127.0.0.1\x01:1/x.crl",  # a control character in the host
    "http://127.0.0.1:0/x.crl",  # port 0 is no port (http.client would use 80)
]


@pytest.mark.parametrize("url", HOSTILE_URLS)
def test_hostile_urls_fail_as_fetch_errors(url: str) -> None:
    started = time.monotonic()
    with pytest.raises(FetchError) as caught:
        fetch_crl(url, deadline=started + 1)
    assert "bad URL" in caught.value.reason or "control characters" in caught.value.reason


@pytest.mark.parametrize("url", HOSTILE_URLS)
def test_hostile_distribution_points_give_a_verdict(url: str) -> None:
    """A CA can write any IA5String in a distribution point: the check says the
    source failed (hard-fail refuses, soft-fail accepts), it does not raise."""
    issuer = CA(now=NOW).create_intermediate()
    leaf = issuer.issue_cert("localhost", crl_url=url)
    chain = [c.public_bytes(Encoding.DER) for c in (leaf.cert, issuer.cert, issuer.root.cert)]
    for mode, accepted in (("hard-fail", False), ("soft-fail", True)):
        policy = Policy(mode=Mode(mode), fallback=("crl",))
        result = RevocationChecker(clock=clock, cache=None).check(chain, policy, MISSING)
        assert result.accepted is accepted
        (attempt,) = result.attempts
        # Skipped by the plan when no request line could carry it, else failed.
        assert attempt.outcome == ("failed" if url.isprintable() and " " not in url else "skipped")
        assert attempt.reason.isprintable()


# --- responders and CRL servers that lie, drip and flood ---------------------------------------


class RawHTTPServer:
    """A loopback TCP server that reads a request and then runs ``answer(sock)``: for
    answers no well-behaved HTTP server would send. Records how many bytes it got out
    before the client went away. Stopped (every thread joined) by its ``with`` block."""

    def __init__(self, answer: Callable[[socket.socket], None]) -> None:
        self._answer = answer
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.sent = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)

    def url(self, path: str = "/x.crl") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> RawHTTPServer:
        self._accepting.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        _shutdown(self._listener)
        self._listener.close()
        self._accepting.join(5)
        for thread in self._threads:
            thread.join(5)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket) -> None:
        with sock:
            sock.settimeout(5)
            with contextlib.suppress(OSError):
                request = b""
                while b"\r\n\r\n" not in request:
                    chunk = sock.recv(4096)
                    if not chunk:
                        return
                    request += chunk
                self._answer(sock)

    def send(self, sock: socket.socket, data: bytes) -> None:
        """Send unless stopping; count what went out."""
        if self._stop.is_set():
            raise OSError("stopping")
        sock.sendall(data)
        self.sent += len(data)


CRL_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/pkix-crl\r\n"


def _endless_chunks(server: RawHTTPServer) -> Callable[[socket.socket], None]:
    def answer(sock: socket.socket) -> None:
        server.send(sock, CRL_HEAD + b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n" % 65536 + bytes(65536) + b"\r\n"
        while True:
            server.send(sock, chunk)

    return answer


@pytest.mark.parametrize("max_bytes", [100_000, 1_000_000])
def test_a_chunked_body_is_capped_while_it_streams(max_bytes: int) -> None:
    """No Content-Length to refuse up front: the cap is enforced as the chunks come,
    and the client stops reading (the server cannot push much past the cap)."""
    holder: list[RawHTTPServer] = []
    with RawHTTPServer(lambda sock: _endless_chunks(holder[0])(sock)) as server:
        holder.append(server)
        started = time.monotonic()
        with pytest.raises(FetchError, match=f"over the cap of {max_bytes} bytes"):
            fetch_crl(server.url(), deadline=started + 5, max_bytes=max_bytes)
        assert time.monotonic() - started < 2
    # Socket buffers hold a few MB at most; an uncapped client would read all 5 s long.
    assert server.sent < max_bytes + 16 * 1024 * 1024


LYING_ANSWERS = [
    # Content-Length larger than the body, then the connection closes.
    (CRL_HEAD + b"Content-Length: 5000\r\n\r\n" + b"0" * 100, "cut short"),
    # Content-Length over the cap: refused before the body is read.
    (CRL_HEAD + b"Content-Length: 99999999999\r\n\r\n", "over the cap"),
    # Two Content-Lengths that disagree: no body length can be trusted.
    (CRL_HEAD + b"Content-Length: 5\r\nContent-Length: 50\r\n\r\n" + b"0" * 50, ""),
    # A chunk size that is no hex number.
    (CRL_HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n", ""),
    # A status line longer than http.client reads.
    (b"HTTP/1.1 200 " + b"O" * 70_000 + b"\r\n\r\n", ""),
    # More headers than http.client reads.
    (CRL_HEAD + b"X-A: b\r\n" * 150 + b"\r\n", ""),
    # A header line longer than http.client reads.
    (CRL_HEAD + b"X-A: " + b"b" * 70_000 + b"\r\n\r\n", ""),
    # No HTTP at all.
    (b"\x30\x82\xff\xff" + bytes(100), ""),
]
LYING_IDS = [
    "length-over-body",
    "length-over-cap",
    "two-lengths",
    "bad-chunk-size",
    "long-status-line",
    "header-flood",
    "long-header",
    "not-http",
]
"""Servers that lie about the body, overflow the head or speak no HTTP: every fetcher
(blocking and async) must fail cleanly, with ``words`` in the reason when given."""


@pytest.mark.parametrize(("answer", "words"), LYING_ANSWERS, ids=LYING_IDS)
def test_lying_servers_fail_cleanly(answer: bytes, words: str) -> None:
    holder: list[RawHTTPServer] = []

    def respond(sock: socket.socket) -> None:
        holder[0].send(sock, answer)

    with RawHTTPServer(respond) as server:
        holder.append(server)
        started = time.monotonic()
        with pytest.raises(FetchError, match=words or None) as caught:
            fetch_crl(server.url(), deadline=started + 2, max_bytes=1_000_000)
        assert time.monotonic() - started < 1.5, caught.value.reason


def test_a_dripping_crl_server_is_cut_at_the_checks_deadline() -> None:
    """A byte every 50 ms forever, through the whole check: the CRL is fetched in the
    checking thread, so only the per-receive deadline ends it, at the policy's
    fallback_timeout."""
    holder: list[RawHTTPServer] = []

    def respond(sock: socket.socket) -> None:
        stop = threading.Event()
        for byte in CRL_HEAD + b"Content-Length: 1000\r\n\r\n" + bytes(1000):
            holder[0].send(sock, bytes([byte]))
            if stop.wait(0.05):
                return

    with RawHTTPServer(respond) as server:
        holder.append(server)
        issuer = CA(now=NOW).create_intermediate()
        leaf = issuer.issue_cert("localhost", crl_url=server.url())
        chain = [c.public_bytes(Encoding.DER) for c in (leaf.cert, issuer.cert, issuer.root.cert)]
        policy = Policy(mode=Mode.HARD_FAIL, fallback=("crl",), fallback_timeout=0.5)
        started = time.monotonic()
        result = RevocationChecker(clock=clock, cache=None).check(chain, policy, MISSING)
        elapsed = time.monotonic() - started
    assert 0.5 <= elapsed < 1.0
    assert result.accepted is False
    assert "within" in result.attempts[-1].reason


# --- the chain -------------------------------------------------------------------------------


def test_a_revoked_intermediate_refuses_a_leaf_with_a_good_staple(tmp_path: Path) -> None:
    """The staple covers the leaf only; check_chain asks the root's responder (a
    designated one for the root's certificates) about the intermediate."""
    root = CA(now=NOW)
    inter = root.create_intermediate()
    with OCSPResponder(root, clock=clock) as root_responder:
        root_responder.set_status(inter.cert, "revoked", revocation_reason="cACompromise")
        leaf = inter.issue_cert("localhost")
        staple = inter.ocsp_response(leaf, this_update=NOW)
        cafile = root.write_trust(tmp_path / "ca.pem")
        override = ResponderOverride(
            url=root_responder.url, issuer=root.cert.public_bytes(Encoding.DER)
        )
        policy = Policy(
            mode=Mode.SOFT_FAIL, fallback=("ocsp",), check_chain=True, responders=(override,)
        )
        context = create_context(
            policy,
            config=TLSConfig(cafiles=(cafile,)),
            clock=clock,
            cache=None,
            revocation=RevocationChecker(clock=clock, cache=None),
        )
        with StaplingServer(leaf, staple) as server, blocking_socket(server) as sock:
            connection = StapleConnection(context, sock, server_hostname="localhost")
            with pytest.raises(RevocationError) as caught:
                connection.sendall(REQUEST)
        assert server.requests == 0
    assert caught.value.result.status is StapleStatus.GOOD
    (intermediate,) = caught.value.revocation.chain
    assert intermediate.status is StapleStatus.REVOKED
    assert intermediate.revocation_reason == "cACompromise"
    assert "intermediate" in str(caught.value)


def test_the_time_budget_is_shared_by_the_whole_chain() -> None:
    """Two intermediates whose responder never answers: the check ends at one
    fallback_timeout, not one per certificate, and hard-fail refuses."""
    root = CA(now=NOW)
    upper = root.create_intermediate(name="upper")
    lower = upper.create_intermediate(name="lower")
    with (
        OCSPResponder(root, clock=clock) as for_upper,
        OCSPResponder(upper, clock=clock) as for_lower,
        OCSPResponder(lower, clock=clock) as for_leaf,
    ):
        leaf = lower.issue_cert("localhost", ocsp_url=for_leaf.url)
        for_leaf.set_status(leaf, "good")
        for_upper.pause()
        for_lower.pause()
        overrides = tuple(
            ResponderOverride(url=responder.url, issuer=ca.cert.public_bytes(Encoding.DER))
            for responder, ca in ((for_upper, root), (for_lower, upper))
        )
        policy = Policy(
            mode=Mode.HARD_FAIL,
            fallback=("ocsp",),
            check_chain=True,
            responders=overrides,
            fallback_timeout=0.5,
        )
        chain = [
            c.public_bytes(Encoding.DER) for c in (leaf.cert, lower.cert, upper.cert, root.cert)
        ]
        started = time.monotonic()
        result = RevocationChecker(clock=clock, cache=None).check(chain, policy, MISSING)
        elapsed = time.monotonic() - started
        for_upper.resume()
        for_lower.resume()
    assert elapsed < 0.5 + 0.4
    assert result.status is StapleStatus.GOOD  # the leaf answered
    assert result.accepted is False
    assert result.chain[0].source is None


# --- memo and store keys -------------------------------------------------------------------


def test_two_issuers_sharing_a_crl_url_never_share_an_answer() -> None:
    """A CRL cached under its URL (and memoized per URL) for one issuer is no answer
    for another issuer's certificate naming the same URL: it is judged against that
    certificate's own issuer, and refused."""
    root = CA(now=NOW)
    honest = root.create_intermediate(name="honest CA")
    other = root.create_intermediate(name="other CA")
    with CRLServer() as crls:
        url = crls.set_crl("/shared.crl", honest.crl([], this_update=NOW))
        honest_leaf = honest.issue_cert("localhost", crl_url=url)
        other_leaf = other.issue_cert("localhost", crl_url=url)
        checker = RevocationChecker(clock=clock, cache=None)
        policy = Policy(mode=Mode.HARD_FAIL, fallback=("crl",))

        def check(leaf: Identity, issuer: CA) -> RevocationResult:
            chain = [c.public_bytes(Encoding.DER) for c in (leaf.cert, issuer.cert, root.cert)]
            return checker.check(chain, policy, MISSING)

        first = check(honest_leaf, honest)
        second = check(other_leaf, other)
    assert first.status is StapleStatus.GOOD
    assert second.status is StapleStatus.MISSING
    assert second.accepted is False


# --- what reaches logs and terminals ------------------------------------------------------------

ESCAPE = b"\x1b]0;owned\x07\x1b[2J"  # set the terminal's title, clear the screen


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 2" + ESCAPE + b"\r\n\r\n",  # BadStatusLine carries the line
        b"HTTP/1.1 404 " + ESCAPE + b"\r\n\r\n",  # the reason phrase
        CRL_HEAD.replace(b"pkix-crl", b"x" + ESCAPE) + b"Content-Length: 1\r\n\r\n0",
        b"HTTP/1.1 302 Found\r\nLocation: http://x/" + ESCAPE + b"\r\n\r\n",
    ],
    ids=["status-line", "reason-phrase", "content-type", "location"],
)
def test_failure_reasons_are_printable(answer: bytes) -> None:
    """A man in the middle of a plain-HTTP fetch chooses the bytes a failure reason
    quotes; the reason reaches logs, the verdict and ``staplecheck check``'s output,
    so it carries no control characters (no terminal escapes)."""
    holder: list[RawHTTPServer] = []
    with RawHTTPServer(lambda sock: holder[0].send(sock, answer)) as server:
        holder.append(server)
        with pytest.raises(FetchError) as caught:
            fetch_crl(server.url(), deadline=time.monotonic() + 2)
    reason = caught.value.reason
    assert reason.isprintable(), reason
    assert "\\x1b" in reason  # still quoted, escaped


# --- single-flight --------------------------------------------------------------------------


def test_a_follower_is_not_bound_by_the_leaders_shorter_budget() -> None:
    """Concurrent checks of one certificate share one query. When the check asking
    has a budget shorter than a waiting one's (a health check with a 0.2 s timeout
    beside a request with 2 s), its "no answer in time" is not an answer for the
    other, which asks itself with the time it has left: here the responder answers
    revoked after 0.5 s."""
    issuer = CA(now=NOW).create_intermediate()
    with OCSPResponder(issuer, clock=clock) as responder:
        leaf = issuer.issue_cert("localhost", ocsp_url=responder.url)
        responder.set_status(leaf, "revoked")
        responder.misbehave("slow", delay=0.5)
        chain = [c.public_bytes(Encoding.DER) for c in (leaf.cert, issuer.cert, issuer.root.cert)]
        # No failure mark: the leader's timeout must not decide for the follower
        # through the store either (docs/security.md lists that as known).
        checker = RevocationChecker(clock=clock, cache=None, failure_ttl=datetime.timedelta(0))
        results: dict[str, RevocationResult] = {}

        def short() -> None:
            results["short"] = checker.check(chain, SOFT_OCSP, MISSING, timeout=0.2)

        leader = threading.Thread(target=short)
        leader.start()
        assert responder.wait_for_requests(1, timeout=5)
        follower = checker.check(chain, SOFT_OCSP, MISSING, timeout=2.0)
        leader.join(5)
    assert results["short"].source is None  # the leader's own budget ran out
    assert follower.status is StapleStatus.REVOKED
    assert follower.accepted is False


# --- work a responder can cause before a signature verifies -----------------------------------


@pytest.mark.parametrize(
    ("bulk", "words"),
    [("entries", "entries"), ("extensions", "extensions"), ("certificates", "certificates")],
)
def test_a_responders_bulk_is_bounded_before_any_signature(bulk: str, words: str) -> None:
    """A responder (or whoever answers for it over plain HTTP) sends a properly signed
    response fat with 65 entries, 65 extensions or 9 certificates: the judge refuses
    it by count, with the bound in the reason, and the fallback gives no answer
    (hard-fail refuses)."""
    issuer = CA(now=NOW).create_intermediate()
    holder: list[RawHTTPServer] = []
    body: list[bytes] = []

    def respond(sock: socket.socket) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/ocsp-response\r\n"
        holder[0].send(sock, head + b"Content-Length: %d\r\n\r\n" % len(body[0]) + body[0])

    with RawHTTPServer(respond) as server:
        holder.append(server)
        leaf = issuer.issue_cert("localhost", ocsp_url=server.url("/"))
        bulks: dict[str, dict[str, Any]] = {
            "entries": {"extra_entries": [OCSPEntry(serial_number=n) for n in range(1, 66)]},
            "extensions": {"extensions": [RawExtension(oid=f"1.2.3.{n}") for n in range(65)]},
            "certificates": {"include_certs": [issuer.cert] * 9},
        }
        body.append(issuer.ocsp_response(leaf, this_update=NOW, **bulks[bulk]))
        chain = [c.public_bytes(Encoding.DER) for c in (leaf.cert, issuer.cert, issuer.root.cert)]
        result = RevocationChecker(clock=clock, cache=None).check(chain, HARD_OCSP, MISSING)
    assert result.accepted is False
    (attempt,) = result.attempts
    assert attempt.outcome == "invalid"
    assert words in attempt.reason


# --- a store shared with someone hostile ------------------------------------------------------


@pytest.mark.parametrize("planted", ["forged", "other-certificate", "crl", "garbage"])
def test_what_a_co_tenant_plants_in_a_shared_store_changes_no_verdict(
    tmp_path: Path, planted: str
) -> None:
    """Another process writing the same SQLite file puts, under this certificate's
    key and with a far expiry, a good response signed by an impostor CA of the same
    name, another certificate's genuine good response, a CRL, or garbage. Each is
    judged again, refused, and the responder's revoked stands."""
    issuer = CA(now=NOW).create_intermediate()
    with OCSPResponder(issuer, clock=clock) as responder:
        leaf = issuer.issue_cert("localhost", ocsp_url=responder.url)
        sibling = issuer.issue_cert("localhost")
        responder.set_status(leaf, "revoked")
        impostor = CA(now=NOW, name="staplecheck test intermediate")
        plants: dict[str, Callable[[], bytes]] = {
            "forged": lambda: impostor.ocsp_response(leaf, this_update=NOW),
            "other-certificate": lambda: issuer.ocsp_response(sibling, this_update=NOW),
            "crl": lambda: issuer.crl([], this_update=NOW),
            "garbage": lambda: b"\x30\x03\x0a\x01\x00",
        }
        der = plants[planted]()
        chain = [c.public_bytes(Encoding.DER) for c in (leaf.cert, issuer.cert, issuer.root.cert)]
        _request, key = request_key(CertPair(chain[0], chain[1]))
        path = tmp_path / "shared.sqlite"
        co_tenant = SQLiteStore(path)
        far = NOW + datetime.timedelta(days=365)
        assert co_tenant.put(key, der, now=NOW, expires_at=far) is None
        co_tenant.close()
        store = SQLiteStore(path)
        try:
            result = RevocationChecker(store, clock=clock, cache=None).check(
                chain, SOFT_OCSP, MISSING
            )
        finally:
            store.close()
    assert result.status is StapleStatus.REVOKED
    assert result.source == "ocsp"
    assert result.accepted is False
    assert result.attempts[0].source == "cache"
    assert "refused" in result.attempts[0].reason


def test_urls_with_control_characters_are_skipped_and_shown_escaped() -> None:
    """A CA can write terminal escapes into a distribution point or OCSP URL (an
    IA5String): such a URL is never fetched (no HTTP request can carry it) and is
    shown escaped in the attempts, the log and the CLI's output."""
    issuer = CA(now=NOW).create_intermediate()
    url = "http://127.0.0.1:1/\x1b]0;owned\x07.crl"
    leaf = issuer.issue_cert("localhost", ocsp_url=url, crl_url=url)
    chain = [c.public_bytes(Encoding.DER) for c in (leaf.cert, issuer.cert, issuer.root.cert)]
    policy = Policy(mode=Mode.HARD_FAIL, fallback=("ocsp", "crl"))
    result = RevocationChecker(clock=clock, cache=None).check(chain, policy, MISSING)
    assert result.accepted is False
    assert [(a.source, a.outcome) for a in result.attempts] == [
        ("ocsp", "skipped"),
        ("crl", "skipped"),
    ]
    for attempt in result.attempts:
        assert attempt.url is not None
        assert attempt.url.isprintable()
        assert "\\x1b" in attempt.url
        assert "control characters" in attempt.reason
