"""The fallback against real third-party servers and responders (issue 8, "Real
components and interop").

TLS servers that staple nothing (``openssl s_server``, and nginx with stapling off)
serve leaves whose AIA and CRL distribution points name real sources: the project's
:class:`OCSPResponder`, ``openssl ocsp`` (inside a loopback-only network namespace),
Debian's ``cfssl ocspserve`` and the project's :class:`CRLServer`; or a port that
refuses connections (a responder that is down). Every combination of server, TLS 1.2
and 1.3, source, answer (good, revoked, unknown, down) and policy (soft-fail with a
fallback, hard-fail) connects through requests, urllib3 and pyOpenSSL, and the
decision and the :class:`RevocationResult` (status, source, attempts) are those
docs/policies.md states. Must-staple leaves are refused without asking anyone.

``openssl ocsp`` and cfssl sign with the real clock, so each test judges at one
instant read when it starts (``NOW``): deterministic within a test, and close
enough to the responders' clocks (cfssl rounds thisUpdate down to the hour; openssl
ocsp gives nextUpdate an hour later).

The port of ``openssl ocsp`` and cfssl is known only once they run, and both read
their answers at start; the answers are about serial numbers, so they are made for a
placeholder certificate with the serial the served leaf gets afterwards (same issuer,
same serial: the same CertID).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import select
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
import requests
import urllib3
from OpenSSL import SSL

import staplecheck.httpx
from staplecheck import (
    Mode,
    Policy,
    RevocationChecker,
    RevocationError,
    RevocationResult,
    StapleAdapter,
    StapleConnection,
    StapleError,
    StapleSSLContext,
    StapleStatus,
    TLSConfig,
    create_context,
    drive_handshake,
    find_staple_error,
    revocation_of,
    use_staple_pools,
)
from staplecheck.testing import CA, CfsslResponder, CRLServer, Identity, OCSPResponder
from tests.conftest import IN_CI, require_program
from tests.realservers import TLS_VERSIONS, OpenSSLResponder, RealServer, launch

NOW = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
ANSWERS = ("good", "revoked", "unknown")
CLIENTS = ("requests", "urllib3", "pyopenssl", "httpx-asyncio", "httpx-trio")
SERVERS = ("s_server", "nginx")
# A generous budget (the default is 2 s): these tests are about answers, not time, and
# the machine running them may be busy.
BUDGET = 10.0
HARD_FAIL = Policy(mode=Mode.HARD_FAIL, fallback_timeout=BUDGET)
POLICIES = {
    "soft-fail+fallback": Policy(
        mode=Mode.SOFT_FAIL, fallback=("ocsp", "crl"), fallback_timeout=BUDGET
    ),
    "hard-fail": HARD_FAIL,
}
# (source, answer) pairs: each OCSP responder answers all three; a CRL says good or
# revoked (it cannot say unknown); "down" is a responder and a distribution point that
# refuse connections.
CASES = [
    *((source, answer) for source in ("responder", "openssl", "cfssl") for answer in ANSWERS),
    ("crl", "good"),
    ("crl", "revoked"),
    ("down", "down"),
]


def clock() -> datetime.datetime:
    return NOW


@pytest.fixture(autouse=True)
def _judge_at_the_tests_start() -> None:
    """``openssl ocsp`` and cfssl sign with the real clock: each test judges at the real
    time it starts. One instant for the whole module drifted past the clock skew
    (5 min) when a loaded machine took longer than that to reach and run it."""
    global NOW
    NOW = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


@dataclasses.dataclass
class World:
    """The PKI, the revocation sources, and the leaves that name them."""

    tmp: Path
    issuer: CA
    cafile: str
    leaves: dict[tuple[str, str], Identity]
    urls: dict[str, str]
    """What each source's leaves name: OCSP URL, or CRL URL for ``crl``."""
    responder: OCSPResponder
    crl_server: CRLServer
    servers: dict[tuple[tuple[str, str], str, str], RealServer] = dataclasses.field(
        default_factory=dict
    )
    stack: contextlib.ExitStack = dataclasses.field(default_factory=contextlib.ExitStack)

    def server(self, case: tuple[str, str], kind: str, version: str) -> RealServer:
        """A TLS server of ``kind`` offering only ``version``, serving the leaf of
        ``case`` and stapling nothing; started once per module."""
        key = (case, kind, version)
        if key not in self.servers:
            name = "-".join(case)
            chain, private = self.leaves[case].write(self.tmp, name)
            server = launch(kind, chain, private, None, version)  # type: ignore[arg-type]
            self.servers[key] = self.stack.enter_context(server)
        return self.servers[key]


@pytest.fixture(scope="module")
def refused_port() -> Iterator[int]:
    """A port bound and never listened on: connections are refused, and nobody else
    can take it while the module runs."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def _placeholders(issuer: CA, count: int) -> list[Identity]:
    return [issuer.issue_cert("localhost") for _ in range(count)]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, refused_port: int) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("revocation-interop")
    root = CA(now=NOW)
    issuer = root.create_intermediate()
    cafile = root.write_trust(tmp / "ca.pem")
    leaves: dict[tuple[str, str], Identity] = {}
    urls: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        # The project's responder: answers from a table, with a fixed clock.
        responder = stack.enter_context(OCSPResponder(issuer, clock=clock))
        urls["responder"] = responder.url
        for answer in ANSWERS:
            leaf = issuer.issue_cert("localhost", ocsp_url=responder.url)
            if answer != "unknown":  # not in the table: answered unknown
                responder.set_status(leaf, answer, revocation_reason="keyCompromise")
            leaves["responder", answer] = leaf

        # openssl ocsp: an index file with the good and the revoked serial; the
        # unknown one is not in it.
        openssl_for = dict(zip(ANSWERS, _placeholders(issuer, 3), strict=True))
        openssl = OpenSSLResponder(
            issuer, revoked=[openssl_for["revoked"].cert], good=[openssl_for["good"].cert]
        )
        try:
            openssl.start()
        except Exception as error:
            if "private network namespace" in str(error) and not IN_CI:
                openssl = None  # type: ignore[assignment]
            else:
                raise
        if openssl is not None:
            stack.callback(openssl.stop)
            urls["openssl"] = f"http://127.0.0.1:{openssl.port}/"
            for answer, placeholder in openssl_for.items():
                leaves["openssl", answer] = issuer.issue_cert(
                    "localhost",
                    serial_number=placeholder.cert.serial_number,
                    ocsp_url=urls["openssl"],
                )

        # cfssl: responses signed by cfssl ocspsign, served by cfssl ocspserve.
        cfssl = CfsslResponder(issuer, binary=require_program("cfssl"))
        cfssl_for = dict(zip(ANSWERS, _placeholders(issuer, 3), strict=True))
        revoked_on = (NOW - datetime.timedelta(days=2)).date()
        cfssl.add(cfssl_for["good"], "good")
        cfssl.add(
            cfssl_for["revoked"],
            "revoked",
            revocation_reason="keyCompromise",
            revoked_on=revoked_on,
        )
        cfssl.add(cfssl_for["unknown"], "unknown")
        stack.enter_context(cfssl)
        urls["cfssl"] = cfssl.url
        for answer, placeholder in cfssl_for.items():
            leaves["cfssl", answer] = issuer.issue_cert(
                "localhost", serial_number=placeholder.cert.serial_number, ocsp_url=cfssl.url
            )

        # The CRL server: the issuer's CRL lists the revoked leaf.
        crl_server = stack.enter_context(CRLServer())
        urls["crl"] = crl_server.url("/issuer.crl")
        leaves["crl", "good"] = issuer.issue_cert("localhost", crl_url=urls["crl"])
        leaves["crl", "revoked"] = issuer.issue_cert("localhost", crl_url=urls["crl"])
        crl_server.set_crl(
            "/issuer.crl", issuer.crl([leaves["crl", "revoked"]], reason="keyCompromise")
        )

        # Down: nothing listens where the leaf says to ask.
        urls["down"] = f"http://127.0.0.1:{refused_port}/"
        leaves["down", "down"] = issuer.issue_cert(
            "localhost", ocsp_url=urls["down"], crl_url=urls["down"] + "issuer.crl"
        )

        built = World(
            tmp=tmp,
            issuer=issuer,
            cafile=cafile,
            leaves=leaves,
            urls=urls,
            responder=responder,
            crl_server=crl_server,
        )
        with built.stack:
            yield built


# --- one connection through each client ---------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Outcome:
    accepted: bool
    revocation: RevocationResult | None
    error: BaseException | None = None
    body: bytes = b""


def _refusal(error: BaseException) -> Outcome:
    found = find_staple_error(error)
    assert found is not None, f"refused without a staplecheck error: {error!r}"
    assert isinstance(found, ssl.SSLCertVerificationError)
    revocation = found.revocation if isinstance(found, RevocationError) else None
    return Outcome(False, revocation, found)


def connect(
    client: str, port: int, policy: Policy, checker: RevocationChecker, cafile: str
) -> Outcome:
    """One HTTPS request to ``https://localhost:PORT/`` through ``client``."""
    if client.startswith("httpx-"):
        backend = client.removeprefix("httpx-")
        return anyio.run(_via_httpx_async, port, policy, checker, cafile, backend=backend)
    via = {"requests": _via_requests, "urllib3": _via_urllib3, "pyopenssl": _via_pyopenssl}
    return via[client](port, policy, checker, cafile)


async def _via_httpx_async(
    port: int, policy: Policy, checker: RevocationChecker, cafile: str
) -> Outcome:
    """The async transport: the fallback through ``check_async`` and the async fetchers."""
    async with staplecheck.httpx.async_client(
        policy, verify=cafile, clock=clock, revocation=checker, timeout=10, trust_env=False
    ) as client:
        try:
            response = await client.get(f"https://localhost:{port}/")
        except httpx.ConnectError as error:
            return _refusal(error)
    return Outcome(True, revocation_of(response), None, response.content)


def _via_requests(port: int, policy: Policy, checker: RevocationChecker, cafile: str) -> Outcome:
    with requests.Session() as session:
        session.trust_env = False
        session.mount("https://", StapleAdapter(policy, clock=clock, revocation=checker))
        try:
            response = session.get(f"https://localhost:{port}/", verify=cafile, timeout=10)
        except requests.exceptions.SSLError as error:
            return _refusal(error)
        assert response.revocation is revocation_of(response)  # type: ignore[attr-defined]
        return Outcome(True, revocation_of(response), None, response.content)


def _via_urllib3(port: int, policy: Policy, checker: RevocationChecker, cafile: str) -> Outcome:
    context = StapleSSLContext(policy, cafile=cafile, clock=clock, revocation=checker)
    manager = use_staple_pools(
        urllib3.PoolManager(ssl_context=context, cert_reqs="CERT_REQUIRED", retries=False)
    )
    try:
        response = manager.request("GET", f"https://localhost:{port}/", timeout=10)
    except urllib3.exceptions.SSLError as error:
        return _refusal(error)
    finally:
        manager.clear()
    return Outcome(True, revocation_of(response), None, response.data)


def _via_pyopenssl(port: int, policy: Policy, checker: RevocationChecker, cafile: str) -> Outcome:
    context = create_context(
        policy, config=TLSConfig(cafiles=(cafile,)), clock=clock, revocation=checker
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        connection = StapleConnection(context, sock, server_hostname="localhost")
        try:
            drive_handshake(connection, sock)
        except StapleError as error:
            return _refusal(error)
        connection.sendall(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        return Outcome(True, connection.revocation, None, _read_all(connection, sock))


def _read_all(connection: StapleConnection, sock: socket.socket) -> bytes:
    """The whole HTTP/1.0 answer (the server closes after it)."""
    body = b""
    while True:
        try:
            chunk = connection.recv(65536)
        except SSL.WantReadError:
            if not select.select([sock], [], [], 10)[0]:
                raise TimeoutError("the server did not answer") from None
            continue
        except (SSL.ZeroReturnError, SSL.SysCallError):
            return body  # s_server -www closes without close_notify
        if not chunk:
            return body
        body += chunk


# --- the matrix ------------------------------------------------------------------------


def _expected_accepted(answer: str, policy_name: str) -> bool:
    if answer == "good":
        return True
    if answer == "down":
        return policy_name == "soft-fail+fallback"  # no answer: only soft-fail goes on
    return False  # revoked and unknown refuse under both


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("policy_name", list(POLICIES))
@pytest.mark.parametrize("version", TLS_VERSIONS)
@pytest.mark.parametrize("kind", SERVERS)
@pytest.mark.parametrize("case", CASES, ids=["-".join(case) for case in CASES])
def test_fallback_against_real_sources(
    world: World,
    case: tuple[str, str],
    kind: str,
    version: str,
    policy_name: str,
    client: str,
) -> None:
    source, answer = case
    if source not in world.urls:  # openssl ocsp without network namespaces (local only)
        pytest.skip("no private network namespace here for openssl ocsp")
    server = world.server(case, kind, version)
    assert server.port is not None
    policy = POLICIES[policy_name]
    checker = RevocationChecker(clock=clock)  # a fresh store: every answer is fetched
    asked = world.responder.requests, world.crl_server.requests

    outcome = connect(client, server.port, policy, checker, world.cafile)

    assert outcome.accepted is _expected_accepted(answer, policy_name), outcome
    result = outcome.revocation
    assert result is not None, outcome
    assert result.accepted is outcome.accepted
    leaf = world.leaves[case].cert
    asked_url = world.urls[source]
    tried = [a for a in result.attempts if a.outcome != "skipped"]
    skipped = [(a.source, a.url) for a in result.attempts if a.outcome == "skipped"]
    if answer == "down":
        assert result.status is StapleStatus.MISSING
        assert result.source is None
        assert result.reason == "no source gave a definite answer"
        assert [(a.source, a.url, a.outcome) for a in tried] == [
            ("ocsp", asked_url, "failed"),
            ("crl", asked_url + "issuer.crl", "failed"),
        ]
        assert all("refused" in a.reason.lower() for a in tried), tried
        assert skipped == []
        assert checker.counts.get("failure") == 1
        return
    assert result.status is StapleStatus(answer), result.reason
    assert result.serial_number == leaf.serial_number
    if source == "crl":
        assert result.source == "crl"
        assert [(a.source, a.url, a.outcome) for a in tried] == [("crl", asked_url, answer)]
        assert skipped == [("ocsp", None)]  # the leaf names no OCSP responder
        assert "CRL from issuer" in (result.responder or ""), result.responder
        assert world.crl_server.requests == asked[1] + 1
        assert world.responder.requests == asked[0]
    else:
        assert result.source == "ocsp"
        assert [(a.source, a.url, a.outcome) for a in tried] == [("ocsp", asked_url, answer)]
        assert skipped == [("crl", None)]  # the leaf names no distribution point
        assert world.crl_server.requests == asked[1]
        expected_requests = asked[0] + (1 if source == "responder" else 0)
        assert world.responder.requests == expected_requests
    if answer == "revoked":
        assert result.revocation_reason == "keyCompromise"
        assert result.revocation_time is not None
    assert checker.counts.get("cache_hit") is None
    if outcome.accepted:
        assert outcome.error is None
        assert outcome.body, "the request went through"
    else:
        assert isinstance(outcome.error, RevocationError)
        assert f"{answer} from {result.source}" in str(outcome.error)


# --- must-staple: a fallback answer never replaces a required staple -------------------------


@pytest.fixture(scope="module")
def must_staple_server(world: World) -> Iterator[RealServer]:
    """nginx serving a must-staple leaf (stapling off) whose responder says good."""
    leaf = world.issuer.issue_cert("localhost", must_staple=True, ocsp_url=world.responder.url)
    world.responder.set_status(leaf, "good")
    chain, key = leaf.write(world.tmp, "must-staple")
    with launch("nginx", chain, key, None, "1.3") as server:
        yield server


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize(
    "policy",
    [
        Policy(mode=Mode.SOFT_FAIL, fallback=("ocsp",)),
        HARD_FAIL,
        Policy(mode=Mode.MUST_STAPLE, fallback=("ocsp", "crl")),
    ],
    ids=["soft-fail+fallback", "hard-fail", "must-staple+fallback"],
)
def test_a_must_staple_leaf_needs_a_staple_whatever_the_responder_says(
    world: World, must_staple_server: RealServer, policy: Policy, client: str
) -> None:
    """RFC 7633: the responder would say good, but only a good staple will do; it is
    not even asked."""
    assert must_staple_server.port is not None
    checker = RevocationChecker(clock=clock)
    asked = world.responder.requests
    outcome = connect(client, must_staple_server.port, policy, checker, world.cafile)
    assert not outcome.accepted
    error = outcome.error
    assert isinstance(error, StapleError)
    assert not isinstance(error, RevocationError)  # the staple decided, in the handshake
    assert error.result.status is StapleStatus.MISSING
    assert error.result.must_staple
    assert world.responder.requests == asked
    assert checker.counts == {}


# --- what real responders do with the fallback's options ------------------------------------


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize(
    ("source", "option", "expected"),
    [
        ("responder", "nonce", "good"),
        ("openssl", "nonce", "good"),  # openssl ocsp echoes the nonce
        ("cfssl", "nonce", None),  # pre-signed: no nonce echoed, so no answer
        ("responder", "GET", "good"),
        ("openssl", "GET", "good"),
        ("cfssl", "GET", None),  # cfssl 1.2.0 answers every GET with HTTP 400
    ],
)
def test_nonce_and_get_against_real_responders(
    world: World, source: str, option: str, expected: str | None, client: str
) -> None:
    """Under hard-fail, a responder that cannot honour the option gives no answer, and
    the connection is refused; the reason names what went wrong."""
    if source not in world.urls:
        pytest.skip("no private network namespace here for openssl ocsp")
    settings = {"ocsp_nonce": True} if option == "nonce" else {"ocsp_method": "GET"}
    policy = dataclasses.replace(HARD_FAIL, fallback=("ocsp",), **settings)
    server = world.server((source, "good"), "s_server", "1.3")
    assert server.port is not None
    outcome = connect(client, server.port, policy, RevocationChecker(clock=clock), world.cafile)
    result = outcome.revocation
    assert result is not None
    (attempt,) = result.attempts
    assert attempt.url == world.urls[source]
    if expected == "good":
        assert outcome.accepted
        assert (result.status, result.source, attempt.outcome) == (
            StapleStatus.GOOD,
            "ocsp",
            "good",
        )
        return
    assert not outcome.accepted
    assert (result.status, result.source) == (StapleStatus.MISSING, None)
    if option == "nonce":
        assert attempt.outcome == "invalid"
        assert "nonce" in attempt.reason, attempt.reason
    else:
        assert attempt.outcome == "failed"
        assert "400" in attempt.reason, attempt.reason


def test_a_second_connection_is_answered_from_the_cache(world: World) -> None:
    """The same checker: cfssl is asked once, the second connection (another server,
    other TLS version) is answered by the stored response, judged again."""
    checker = RevocationChecker(clock=clock)
    first = world.server(("cfssl", "good"), "nginx", "1.2")
    second = world.server(("cfssl", "good"), "s_server", "1.3")
    assert first.port is not None
    assert second.port is not None
    policy = HARD_FAIL
    one = connect("requests", first.port, policy, checker, world.cafile)
    two = connect("pyopenssl", second.port, policy, checker, world.cafile)
    assert one.accepted
    assert two.accepted
    assert one.revocation is not None
    assert two.revocation is not None
    assert one.revocation.source == "ocsp"
    assert two.revocation.source == "cache"
    assert [(a.source, a.outcome) for a in two.revocation.attempts] == [("cache", "good")]
    assert checker.counts["ocsp_query"] == 1
    assert checker.counts["cache_hit"] == 1
    assert two.revocation.serial_number == world.leaves["cfssl", "good"].cert.serial_number


def test_a_crl_dated_ahead_is_accepted_once_the_clock_catches_up(world: World) -> None:
    """A CA whose clock runs 10 minutes ahead publishes a CRL dated in the client's
    future: refused (RFC 5280 §5.1.2.4, beyond the 5-minute skew). Half an hour later,
    by the client's clock, the same CRL is current and answers."""
    leaf = world.issuer.issue_cert("localhost", crl_url=world.crl_server.url("/ahead.crl"))
    world.crl_server.set_crl(
        "/ahead.crl", world.issuer.crl([leaf], this_update=NOW + datetime.timedelta(minutes=10))
    )
    chain, key = leaf.write(world.tmp, "ahead")
    times = [NOW]
    checker = RevocationChecker(clock=lambda: times[-1])
    policy = dataclasses.replace(HARD_FAIL, fallback=("crl",))
    with launch("nginx", chain, key, None, "1.3") as server:
        assert server.port is not None
        early = connect("pyopenssl", server.port, policy, checker, world.cafile)
        assert not early.accepted
        assert early.revocation is not None
        (attempt,) = early.revocation.attempts
        assert attempt.outcome == "invalid"
        assert "in the future" in attempt.reason
        times.append(NOW + datetime.timedelta(minutes=30))
        later = connect("pyopenssl", server.port, policy, checker, world.cafile)
    assert later.revocation is not None
    assert (later.revocation.status, later.revocation.source) == (StapleStatus.REVOKED, "crl")
