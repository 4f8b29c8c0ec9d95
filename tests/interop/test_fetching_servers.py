"""The interop matrix for servers that fetch their staples from an OCSP responder.

nginx (``ssl_stapling_responder``), Apache httpd mod_ssl (``SSLStaplingForceURL``) and
Caddy (the OCSP URL in the certificate) fetch from a loopback
:class:`staplecheck.testing.OCSPResponder`, in TLS 1.2 and TLS 1.3, and serve
staplecheck's ``StapleAdapter`` under the three policies and ``curl --cert-status``.
Every outcome is recorded in the matrix (``matrix.record``) before it is checked. What
a client must decide depends on the staple that *arrives*, and these servers often do
not staple what the responder said; the expectations follow what arrives, and each
row's note says why. One server (and usually one responder) runs per (server, TLS
version, case). The PKI is made at the real current time: servers and OpenSSL check
certificates and responses against the wall clock.

Facts measured here (nginx 1.22.1 from Debian's nginx-light, Apache 2.4 mod_ssl,
Caddy 2.6.2 from Debian, curl 7.88.1 with OpenSSL 3.0; the responder on loopback). TLS
1.2 and TLS 1.3 behave the same in every row. "source:" marks what comes from reading
the server's code rather than from a test here.

nginx (``ssl_stapling on; ssl_stapling_verify on; ssl_stapling_responder URL``)
  - It fetches lazily, in the background, and only for handshakes that ask for a
    staple: nothing at startup, nothing for clients that do not ask (policy ``off``).
    The first handshake that asks starts one fetch and is answered *without* a
    staple, and so is every handshake until the answer is in; handshakes meanwhile
    share that one fetch [test_nginx_staples_nothing_until_its_first_fetch_returns].
    Measured: of back-to-back ``requests`` connections exactly the first went without
    a staple, in each of 16 runs (8 per TLS version); of bare back-to-back handshakes
    the first one or two did; the staple was there 5–25 ms after the first began
    [test_nginx_first_staple_arrives_after_one_connection]. In that window soft-fail
    accepts a plain certificate (missing) and rejects a must-staple one; must-staple
    and curl reject. (source: each worker process fetches for itself, so with several
    workers each has its own window.)
  - It staples only ``good`` responses. ``revoked`` and ``unknown`` are logged
    ("certificate status "revoked" in the OCSP response") and dropped: clients get
    *no* staple, so **soft-fail accepts a revoked plain certificate behind nginx**;
    only must-staple (or a must-staple certificate) refuses it. curl says "No OCSP
    response received".
  - It checks the response's signature even with ``ssl_stapling_verify off`` (that
    only skips the signer's chain, OCSP_NOVERIFY): a forged response is never stapled.
  - Responder down: no staple. (source: it retries 5 minutes later.)
  - Once it holds a good staple it does not ask again for minutes: after the responder
    starts answering ``revoked`` nginx keeps stapling the good response and asks
    nobody [test_nginx_keeps_its_good_staple_after_revocation]. (source:
    ``ngx_event_openssl_stapling.c`` refreshes at max(min(nextUpdate − 5 min, now +
    1 h), now + 5 min) after a good answer and 5 minutes after a failed or non-good
    one, keeps the old staple meanwhile, and stops stapling it after its nextUpdate.)

Apache httpd mod_ssl (``SSLUseStapling on; SSLStaplingForceURL URL``)
  - It fetches synchronously, inside the first handshake that asks, which waits for
    the responder and is already stapled; clients that do not ask trigger nothing
    [test_apache_fetches_inside_the_first_handshake]. A responder that accepts but
    does not answer holds that handshake for ``SSLStaplingResponderTimeout`` (source:
    10 s by default; 1 s measured here), then it gets a fake ``tryLater``
    [test_apache_slow_responder].
  - It staples what the responder said, unverified: ``revoked`` and ``unknown`` arrive
    as such (every policy but ``off`` refuses), and so does a response with a forged
    signature (``invalid``; source: mod_ssl's stapling never calls
    ``OCSP_basic_verify``). ``SSLStaplingReturnResponderErrors off`` does not stop
    revoked or unknown staples either, whatever its documentation says (source: its
    "ok" flag means "for this certificate and within its validity period" and ignores
    the certificate status).
  - **Responder down: it staples a fake OCSP response whose responseStatus is
    ``tryLater``** (``SSLStaplingFakeTryLater``, on by default). staplecheck judges
    it ``invalid``, so soft-fail refuses even a plain certificate; curl refuses it too
    ("Invalid OCSP response status: trylater (3)"). It does so even with
    ``SSLStaplingReturnResponderErrors off``, which is documented to disable the fake
    (source: the fake is stored with the "ok" flag set). ``SSLStaplingFakeTryLater
    off`` gives no staple instead, which soft-fail accepts for a plain certificate.
  - The fake ``tryLater`` is cached like a good response, for
    ``SSLStaplingStandardCacheTimeout`` (default 1 hour), not the 10-minute
    ``SSLStaplingErrorCacheTimeout``: a responder outage of a moment keeps soft-fail
    clients out for up to an hour after the responder is back
    [test_apache_caches_a_fake_try_later_like_a_good_response].
  - A good response is cached for ``SSLStaplingStandardCacheTimeout`` too: after the
    responder starts answering ``revoked`` the good staple stays, and nobody is asked
    [test_apache_keeps_its_good_staple_after_revocation].

Caddy 2.6.2 (Go's crypto/tls and certmagic; ``tls CERT KEY``)
  - It fetches from the certificate's OCSP URL when it loads the certificate, before
    it listens: the first connection is stapled [test_caddy_fetches_at_startup].
    Responses are kept in Caddy's storage and reused after a restart without asking
    while fresh (source: until half their validity): a Caddy restarted after the
    certificate's revocation staples the stored good response
    [test_caddy_reuses_its_stored_staple].
  - It staples only ``good`` responses, silently: ``revoked``, ``unknown`` and forged
    responses (it checks the signature against the issuer) give no staple and no log
    line, so soft-fail accepts a revoked plain certificate here too. No OCSP URL in
    the certificate, or a responder that is down: no staple (and a warning in the log).
  - It never replaces a good staple by a non-good answer: after the responder starts
    answering ``revoked`` Caddy asks again (every ``ocsp_interval``, default 1 hour,
    once its response is past half its validity), gets ``revoked``, and keeps stapling
    the last good response, even past that response's nextUpdate
    [test_caddy_keeps_its_last_good_staple_forever]. staplecheck sees ``good`` until
    nextUpdate plus its 5-minute clock skew allowance, then ``stale``, which soft-fail
    accepts for a plain certificate; must-staple and curl refuse it.

curl ``--cert-status`` refused every connection without a good staple (exit 91): on
every row here it decided as staplecheck's must-staple policy does. It differs from
soft-fail exactly where the staple is missing or stale and the certificate is not
must-staple (soft-fail accepts, curl refuses); where a staple is revoked, unknown or
invalid both refuse.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import re
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from OpenSSL import SSL

from staplecheck import (
    Policy,
    StapleAdapter,
    StapleResult,
    StapleStatus,
    drive_handshake,
    find_staple_error,
)
from staplecheck.testing import CA, Identity, OCSPResponder
from tests.conftest import require_program
from tests.realservers import HOST, TLS_VERSIONS, RealServer, TLSVersion

from .fetching import Apache, Caddy, FetchingNginx
from .matrix import Outcome, record

MODES = ("off", "soft-fail", "must-staple")
CURL = "curl --cert-status"
SERVER_NAMES = {
    "nginx": "nginx (responder)",
    "apache": "Apache httpd (responder)",
    "caddy": "Caddy (responder)",
}
"""Server kind → its name in the interop matrix."""
SETTLE_TIMEOUT = 5.0

GOOD, REVOKED, UNKNOWN = StapleStatus.GOOD, StapleStatus.REVOKED, StapleStatus.UNKNOWN
INVALID, STALE, MISSING = StapleStatus.INVALID, StapleStatus.STALE, StapleStatus.MISSING


# --- the PKI ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class World:
    """A PKI at the current time; leaves are issued per case, into ``directory``."""

    directory: Path
    intermediate: CA
    trust: str
    """The root, PEM: what clients pass as ``verify`` and ``--cacert``."""

    def leaf(self, must_staple: bool, ocsp_url: str | None) -> tuple[Identity, str, str]:
        """A new leaf for localhost and 127.0.0.1, and its chain and key files."""
        identity = self.intermediate.issue_cert(
            "localhost", "127.0.0.1", must_staple=must_staple, ocsp_url=ocsp_url
        )
        chain, key = identity.write(self.directory, f"leaf-{identity.cert.serial_number:x}")
        return identity, chain, key


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    directory = tmp_path_factory.mktemp("fetching-servers")
    root = CA(name="fetching root")  # now: servers and OpenSSL verify with the wall clock
    return World(
        directory=directory,
        intermediate=root.create_intermediate(name="fetching intermediate"),
        trust=root.write_trust(directory / "root.pem"),
    )


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A port on 127.0.0.1 where connections are refused: bound, never listening, and
    held, so nothing else can take it meanwhile."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        yield int(sock.getsockname()[1])


# --- the clients -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Seen:
    """What one staplecheck connection made of a server."""

    accepted: bool
    result: StapleResult | None
    error: str = ""


def connect(url: str, policy: str, trust: str) -> Seen:
    """GET ``url`` through a fresh session with a StapleAdapter (``verify`` explicit:
    this machine exports REQUESTS_CA_BUNDLE)."""
    refused: requests.exceptions.SSLError | None = None
    with requests.Session() as session:
        session.mount("https://", StapleAdapter(policy))
        try:
            response = session.get(url, verify=trust, timeout=10)
        except requests.exceptions.SSLError as error:
            refused = error
    if refused is not None:
        staple_error = find_staple_error(refused)
        assert staple_error is not None, f"refused, but not for the staple: {refused}"
        assert staple_error.host == "localhost"
        return Seen(False, staple_error.result, str(refused))
    assert response.status_code == 200, response.text
    return Seen(True, response.staple)  # type: ignore[attr-defined]


def status_of(url: str, trust: str) -> StapleStatus:
    """The status a soft-fail connection to ``url`` sees."""
    seen = connect(url, "soft-fail", trust)
    assert seen.result is not None
    return seen.result.status


def table_accepts(status: StapleStatus, must_staple: bool, policy: str) -> bool:
    """DESIGN.md's decision for a staple of ``status`` under ``policy``."""
    result = StapleResult(status=status, reason="", must_staple=must_staple)
    return Policy(mode=policy).accepts(result)  # type: ignore[arg-type]


def peek_staple(port: int) -> bytes:
    """The staple a bare handshake that asks for one gets (``b""``: none); the chain is
    not checked. Used to wait for a server's fetch, never as a verdict."""
    staples: list[bytes] = []

    def keep(_conn: SSL.Connection, data: bytes, _extra: object) -> bool:
        staples.append(data)
        return True

    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_ocsp_client_callback(keep)
    with socket.create_connection((HOST, port), timeout=5) as sock:
        connection = SSL.Connection(context, sock)
        connection.set_tlsext_host_name(b"localhost")
        connection.request_ocsp()
        connection.set_connect_state()
        drive_handshake(connection, sock)
        with contextlib.suppress(SSL.Error):
            connection.shutdown()
    return staples[0] if staples else b""


_CURL_STATUS = (  # curl's message → the staple status it means, in staplecheck's words
    ("No OCSP response received", "missing"),
    ("revocation reason", "revoked"),
    ("has expired", "stale"),
    ("status verification FAILED", "unknown"),
    ("verification failed", "invalid"),
    ("Invalid OCSP response status", "invalid"),
    ("Could not find certificate ID", "invalid"),
)


@dataclasses.dataclass(frozen=True)
class CurlSaid:
    returncode: int
    message: str

    @property
    def accepted(self) -> bool:
        return self.returncode == 0

    @property
    def status(self) -> str:
        if self.accepted:
            return "good"
        return next((status for text, status in _CURL_STATUS if text in self.message), "error")

    @property
    def note(self) -> str:
        return "" if self.accepted else f"curl exit {self.returncode}: {self.message}"


def run_curl(url: str, trust: str) -> CurlSaid:
    """``curl --cert-status --cacert ROOT URL``, ignoring ~/.curlrc and proxies."""
    curl = require_program("curl")
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    result = subprocess.run(
        [
            *(curl, "-q", "--silent", "--show-error", "--cert-status", "--cacert", trust),
            *("--noproxy", "*", "--max-time", "10", "--output", os.devnull, url),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        check=False,
    )
    return CurlSaid(result.returncode, re.sub(r"^curl: \(\d+\) ", "", result.stderr.strip()))


# --- a row of the matrix ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Row:
    """One (server, TLS version, case): what arrives, and what the clients must do."""

    kind: str
    tls_version: str
    case: str
    arrives: StapleStatus
    must_staple: bool
    note: str

    def outcome(self, client: str, accepted: bool, status: str | None, **kw: Any) -> Outcome:
        return Outcome(
            server=SERVER_NAMES[self.kind],
            tls_version=self.tls_version,
            case=self.case,
            client=client,
            accepted=accepted,
            status=status,
            **kw,
        )

    def check_policies(
        self, url: str, trust: str, *, order: tuple[str, ...] = MODES
    ) -> dict[str, Seen]:
        """Connect under each policy (in ``order``), record every outcome, then check
        each against the table for the staple that arrives."""
        seen = {policy: connect(url, policy, trust) for policy in order}
        for policy, got in seen.items():
            record(
                self.outcome(
                    policy,
                    got.accepted,
                    None if got.result is None else got.result.status.value,
                    expected=table_accepts(self.arrives, self.must_staple, policy),
                    note=self.note,
                )
            )
        for policy, got in seen.items():
            expected = table_accepts(self.arrives, self.must_staple, policy)
            where = f"{SERVER_NAMES[self.kind]} TLS {self.tls_version} {self.case!r} {policy}"
            assert got.accepted is expected, f"{where}: {got.error or got.result}"
            if policy == "off":
                assert got.result is None, where  # not asked for, so not judged
                continue
            assert got.result is not None, where
            assert got.result.status is self.arrives, f"{where}: {got.result.reason}"
            assert got.result.must_staple is self.must_staple, where
        return seen

    def check_curl(self, url: str, trust: str) -> CurlSaid:
        """Run curl, record what it said; it must accept exactly a good staple."""
        said = run_curl(url, trust)
        record(self.outcome(CURL, said.accepted, said.status, note=said.note))
        if self.arrives is GOOD:
            assert said.accepted, said.note
        else:
            assert said.returncode == 91, said.note  # CURLE_SSL_INVALIDCERTSTATUS
            assert said.status == self.arrives.value, said.note
        return said

    def check(self, url: str, trust: str) -> None:
        self.check_policies(url, trust)
        self.check_curl(url, trust)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = SETTLE_TIMEOUT) -> float:
    """Poll ``condition`` until it holds; return the seconds it took."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)
    return time.monotonic() - start


def nginx_settle(server: FetchingNginx) -> None:
    """Make nginx fetch (one handshake that asks) and wait until it has a staple or
    logged why not."""
    assert server.port is not None
    peek_staple(server.port)  # answered without a staple: see the module docstring
    wait_until(
        lambda: (
            bool(peek_staple(server.port or 0))
            or "while requesting certificate status" in server.error_log()
        ),
        "nginx's first OCSP fetch",
    )


# --- the cases every server serves ---------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Case:
    """A server state, and per server kind what arrives and what a user must know."""

    name: str
    answer: str
    """What the responder answers: ``good``, ``revoked``, ``unknown``, ``forged`` (a
    good response with a broken signature) or ``down`` (connection refused)."""
    must_staple: bool = False
    stapling: bool = True
    ocsp_url_in_cert: bool = True
    arrives: dict[str, StapleStatus] = dataclasses.field(default_factory=dict)
    notes: dict[str, str] = dataclasses.field(default_factory=dict)
    options: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    """Extra launcher options per server kind."""


NGINX_DROPS = "nginx staples only good responses: it logged this one and stapled nothing"
CADDY_DROPS = "Caddy staples only good responses: it stapled nothing, and logged nothing"
TRY_LATER = (
    "responder down: Apache staples a fake OCSP response with responseStatus tryLater "
    "(SSLStaplingFakeTryLater, on by default), which is no evidence: invalid"
)
STAPLING_OFF = {
    "nginx": "ssl_stapling off",
    "apache": "SSLUseStapling off",
    "caddy": "ocsp_stapling off",
}
CASES = (
    Case(
        "good",
        "good",
        arrives={"nginx": GOOD, "apache": GOOD, "caddy": GOOD},
        notes={"nginx": "after nginx's first fetch (the first connection that asks gets none)"},
    ),
    Case(
        "revoked",
        "revoked",
        arrives={"nginx": MISSING, "apache": REVOKED, "caddy": MISSING},
        notes={
            "nginx": NGINX_DROPS + ": soft-fail accepts a revoked plain certificate",
            "apache": "Apache staples what the responder said",
            "caddy": CADDY_DROPS + ": soft-fail accepts a revoked plain certificate",
        },
    ),
    Case(
        "unknown",
        "unknown",
        arrives={"nginx": MISSING, "apache": UNKNOWN, "caddy": MISSING},
        notes={"nginx": NGINX_DROPS, "apache": "Apache staples what the responder said"},
    ),
    Case(
        "invalid (forged signature)",
        "forged",
        arrives={"nginx": MISSING, "apache": INVALID, "caddy": MISSING},
        notes={
            "nginx": "nginx checked the signature and refused to staple the response",
            "apache": "Apache staples the response without checking its signature",
            "caddy": "Caddy checked the signature and refused to staple the response",
        },
    ),
    Case(
        "invalid (forged signature), ssl_stapling_verify off",
        "forged",
        arrives={"nginx": MISSING},
        notes={
            "nginx": "ssl_stapling_verify off skips only the signer's chain: nginx still "
            "checks the signature and staples nothing"
        },
        options={"nginx": {"verify": False}},
    ),
    Case(
        "revoked, SSLStaplingReturnResponderErrors off",
        "revoked",
        arrives={"apache": REVOKED},
        notes={
            "apache": "SSLStaplingReturnResponderErrors off does not stop a revoked staple "
            "(mod_ssl's check ignores the certificate status)"
        },
        options={"apache": {"return_errors": False}},
    ),
    Case(
        "no OCSP URL in the certificate",
        "good",
        ocsp_url_in_cert=False,
        arrives={"caddy": MISSING},
        notes={"caddy": "Caddy asks only the certificate's OCSP URL: no URL, no staple"},
    ),
    Case(
        "missing",
        "good",
        stapling=False,
        arrives={"nginx": MISSING, "apache": MISSING, "caddy": MISSING},
        notes=STAPLING_OFF,
    ),
    Case(
        "missing (must-staple cert)",
        "good",
        must_staple=True,
        stapling=False,
        arrives={"nginx": MISSING, "apache": MISSING, "caddy": MISSING},
        notes=STAPLING_OFF,
    ),
    Case(
        "responder down",
        "down",
        arrives={"nginx": MISSING, "apache": INVALID, "caddy": MISSING},
        notes={"apache": TRY_LATER},
    ),
    Case(
        "responder down (must-staple cert)",
        "down",
        must_staple=True,
        arrives={"nginx": MISSING, "apache": INVALID, "caddy": MISSING},
        notes={"apache": TRY_LATER},
    ),
    Case(
        "responder down, SSLStaplingReturnResponderErrors off",
        "down",
        arrives={"apache": INVALID},
        notes={
            "apache": "the fake tryLater is stapled even with SSLStaplingReturnResponderErrors "
            "off (documented to disable it)"
        },
        options={"apache": {"return_errors": False}},
    ),
    Case(
        "responder down, SSLStaplingFakeTryLater off",
        "down",
        arrives={"apache": MISSING},
        notes={"apache": "without the fake tryLater, Apache staples nothing"},
        options={"apache": {"fake_try_later": False}},
    ),
    Case(
        "responder down, SSLStaplingFakeTryLater off (must-staple cert)",
        "down",
        must_staple=True,
        arrives={"apache": MISSING},
        notes={"apache": "without the fake tryLater, Apache staples nothing"},
        options={"apache": {"fake_try_later": False}},
    ),
)

SERVED = [
    (kind, version, case)
    for kind in SERVER_NAMES
    for version in TLS_VERSIONS
    for case in CASES
    if kind in case.arrives
]


def launch(
    kind: str,
    world: World,
    chain: str,
    key: str,
    tls_version: TLSVersion,
    responder_url: str | None,
    **options: Any,
) -> RealServer:
    """A server of ``kind`` (not started) for the leaf in ``chain``/``key``.
    ``responder_url=None`` turns stapling off."""
    if kind == "nginx":
        return FetchingNginx(
            chain,
            key,
            trusted_certificate=world.trust,
            responder_url=responder_url,
            tls_version=tls_version,
            **options,
        )
    if kind == "apache":
        return Apache(chain, key, responder_url=responder_url, tls_version=tls_version, **options)
    if kind == "caddy":  # Caddy finds the responder in the certificate
        return Caddy(
            chain, key, tls_version=tls_version, stapling=responder_url is not None, **options
        )
    raise ValueError(kind)


@pytest.mark.parametrize(
    ("kind", "version", "case"),
    SERVED,
    ids=[f"{kind}-tls{version}-{case.name}" for kind, version, case in SERVED],
)
def test_fetching_server(kind: str, version: TLSVersion, case: Case, world: World) -> None:
    with contextlib.ExitStack() as stack:
        if case.answer == "down":
            url = f"http://{HOST}:{stack.enter_context(refused_port())}/"
            responder = None
        else:
            responder = stack.enter_context(
                OCSPResponder(world.intermediate, corrupt_signature=case.answer == "forged")
            )
            url = responder.url
        identity, chain, key = world.leaf(case.must_staple, url if case.ocsp_url_in_cert else None)
        if responder is not None:
            responder.set_status(identity, "good" if case.answer == "forged" else case.answer)
        server = stack.enter_context(
            launch(
                kind,
                world,
                chain,
                key,
                version,
                url if case.stapling else None,
                **case.options.get(kind, {}),
            )
        )
        if kind == "nginx" and case.stapling:
            assert isinstance(server, FetchingNginx)
            nginx_settle(server)
        row = Row(
            kind,
            version,
            case.name,
            case.arrives[kind],
            case.must_staple,
            case.notes.get(kind, ""),
        )
        row.check(server.url(), world.trust)


# --- nginx: the first connections, and a staple kept after revocation -------------------------


@pytest.mark.parametrize("must_staple", [False, True], ids=["plain", "must-staple-cert"])
@pytest.mark.parametrize("version", TLS_VERSIONS, ids=lambda v: f"tls{v}")
def test_nginx_staples_nothing_until_its_first_fetch_returns(
    version: TLSVersion, must_staple: bool, world: World
) -> None:
    # The responder holds its answer, so the window before nginx's first staple stays
    # open for every client of this test.
    with OCSPResponder(world.intermediate) as responder:
        identity, chain, key = world.leaf(must_staple, responder.url)
        responder.set_status(identity, "good")
        responder.pause()
        with launch("nginx", world, chain, key, version, responder.url) as server:
            assert responder.requests == 0  # nothing at startup
            row = Row(
                "nginx",
                version,
                "first connections (must-staple cert)" if must_staple else "first connections",
                MISSING,
                must_staple,
                "no staple until nginx's first fetch returns: the first connection that "
                "asks for a staple starts the fetch and gets none",
            )
            # "off" first: it does not ask for a staple, so it does not start a fetch.
            row.check_policies(server.url(), world.trust, order=("off",))
            assert responder.requests == 0
            row.check_policies(server.url(), world.trust, order=("soft-fail", "must-staple"))
            row.check_curl(server.url(), world.trust)
            assert responder.wait_for_requests(1)
            assert responder.requests == 1  # one fetch, whoever asked meanwhile
            responder.resume()
            wait_until(lambda: bool(peek_staple(server.port or 0)), "nginx's first staple")
            after = connect(server.url(), "must-staple", world.trust)
            assert after.result is not None
            assert after.result.status is GOOD
            assert responder.requests == 1


@pytest.mark.parametrize("version", TLS_VERSIONS, ids=lambda v: f"tls{v}")
def test_nginx_first_staple_arrives_after_one_connection(version: TLSVersion, world: World) -> None:
    # Unhindered: back-to-back soft-fail connections until one is stapled. The exact
    # count depends on timing; the first one never is.
    with OCSPResponder(world.intermediate) as responder:
        identity, chain, key = world.leaf(False, responder.url)
        responder.set_status(identity, "good")
        with launch("nginx", world, chain, key, version, responder.url) as server:
            statuses: list[StapleStatus] = []
            start = time.monotonic()
            while not statuses or statuses[-1] is not GOOD:
                assert time.monotonic() - start < SETTLE_TIMEOUT, statuses
                seen = connect(server.url(), "soft-fail", world.trust)
                assert seen.accepted
                assert seen.result is not None
                statuses.append(seen.result.status)
    assert statuses[0] is MISSING
    assert set(statuses[:-1]) == {MISSING}
    assert responder.requests == 1


@pytest.mark.parametrize("version", TLS_VERSIONS, ids=lambda v: f"tls{v}")
def test_nginx_keeps_its_good_staple_after_revocation(version: TLSVersion, world: World) -> None:
    with OCSPResponder(world.intermediate) as responder:
        identity, chain, key = world.leaf(False, responder.url)
        responder.set_status(identity, "good")
        with launch("nginx", world, chain, key, version, responder.url) as server:
            assert isinstance(server, FetchingNginx)
            nginx_settle(server)
            responder.set_status(identity, "revoked", revocation_reason="keyCompromise")
            Row(
                "nginx",
                version,
                "revoked after a good staple",
                GOOD,
                False,
                "nginx refreshes 5 min to 1 h after a good response: until then it staples "
                "the good one without asking",
            ).check(server.url(), world.trust)
            assert responder.requests == 1


# --- Apache: synchronous fetches, caching --------------------------------------------------


@pytest.mark.parametrize("version", TLS_VERSIONS, ids=lambda v: f"tls{v}")
def test_apache_fetches_inside_the_first_handshake(version: TLSVersion, world: World) -> None:
    with OCSPResponder(world.intermediate) as responder:
        identity, chain, key = world.leaf(False, responder.url)
        responder.set_status(identity, "good")
        with launch("apache", world, chain, key, version, responder.url) as server:
            assert responder.requests == 0  # nothing at startup
            assert connect(server.url(), "off", world.trust).accepted
            assert responder.requests == 0  # nor for a client that does not ask
            first = connect(server.url(), "must-staple", world.trust)
            assert first.result is not None
            assert first.result.status is GOOD
            assert responder.requests == 1


@pytest.mark.parametrize("version", TLS_VERSIONS, ids=lambda v: f"tls{v}")
def test_apache_keeps_its_good_staple_after_revocation(version: TLSVersion, world: World) -> None:
    with OCSPResponder(world.intermediate) as responder:
        identity, chain, key = world.leaf(False, responder.url)
        responder.set_status(identity, "good")
        with launch("apache", world, chain, key, version, responder.url) as server:
            assert connect(server.url(), "soft-fail", world.trust).accepted
            responder.set_status(identity, "revoked", revocation_reason="keyCompromise")
            Row(
                "apache",
                version,
                "revoked after a good staple",
                GOOD,
                False,
                "Apache caches a good response for SSLStaplingStandardCacheTimeout "
                "(1 hour by default) and staples it without asking",
            ).check(server.url(), world.trust)
            assert responder.requests == 1


@pytest.mark.parametrize("version", TLS_VERSIONS, ids=lambda v: f"tls{v}")
def test_apache_caches_a_fake_try_later_like_a_good_response(
    version: TLSVersion, world: World
) -> None:
    # StandardCacheTimeout 3 s, ErrorCacheTimeout 600 s: the fake tryLater goes away
    # after the first, so it was stored as a good response.
    with contextlib.ExitStack() as stack:
        down = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        stack.callback(down.close)
        down.bind((HOST, 0))
        port = int(down.getsockname()[1])
        url = f"http://{HOST}:{port}/"
        identity, chain, key = world.leaf(False, url)
        server = stack.enter_context(
            launch(
                "apache",
                world,
                chain,
                key,
                version,
                url,
                cache_timeout=3,
                error_cache_timeout=600,
            )
        )
        outage = connect(server.url(), "soft-fail", world.trust)
        assert outage.result is not None
        assert outage.result.status is INVALID  # the fake tryLater
        assert "try later" in outage.result.reason, outage.result.reason
        down.close()  # the responder comes back, on the same port
        responder = stack.enter_context(OCSPResponder(world.intermediate, port=port))
        responder.set_status(identity, "good")
        Row(
            "apache",
            version,
            "responder back after an outage",
            INVALID,
            False,
            "Apache caches its fake tryLater like a good response, for "
            "SSLStaplingStandardCacheTimeout (1 hour by default): clients keep getting it "
            "after the responder is back",
        ).check(server.url(), world.trust)
        assert responder.requests == 0
        waited = wait_until(
            lambda: status_of(server.url(), world.trust) is GOOD,
            "Apache to ask the responder again",
            timeout=10,
        )
        assert responder.requests == 1
        assert waited < 10  # far from ErrorCacheTimeout's 600 s


@pytest.mark.parametrize("version", TLS_VERSIONS, ids=lambda v: f"tls{v}")
def test_apache_slow_responder(version: TLSVersion, world: World) -> None:
    with OCSPResponder(world.intermediate) as responder:
        identity, chain, key = world.leaf(False, responder.url)
        responder.set_status(identity, "good")
        responder.pause()  # accepts the request, never answers (until resumed)
        with launch(
            "apache", world, chain, key, version, responder.url, responder_timeout=1
        ) as server:
            row = Row(
                "apache",
                version,
                "responder too slow",
                INVALID,
                False,
                "the first handshake waits SSLStaplingResponderTimeout (10 s by default, "
                "1 s here) for the responder, then gets a fake tryLater",
            )
            start = time.monotonic()
            row.check_policies(server.url(), world.trust, order=("soft-fail",))
            assert time.monotonic() - start >= 0.9
            row.check_policies(server.url(), world.trust, order=("off", "must-staple"))
            row.check_curl(server.url(), world.trust)
            assert responder.requests == 1


# --- Caddy: fetched at startup, stored, never replaced by a bad answer ------------------------


@pytest.mark.parametrize("version", TLS_VERSIONS, ids=lambda v: f"tls{v}")
def test_caddy_fetches_at_startup(version: TLSVersion, world: World) -> None:
    with OCSPResponder(world.intermediate) as responder:
        identity, chain, key = world.leaf(False, responder.url)
        responder.set_status(identity, "good")
        with launch("caddy", world, chain, key, version, responder.url) as server:
            # Caddy listens only after loading its certificate, and it fetched then.
            assert responder.requests == 1
            first = connect(server.url(), "must-staple", world.trust)
            assert first.result is not None
            assert first.result.status is GOOD
            assert responder.requests == 1


@pytest.mark.parametrize("version", TLS_VERSIONS, ids=lambda v: f"tls{v}")
def test_caddy_reuses_its_stored_staple(version: TLSVersion, world: World) -> None:
    with OCSPResponder(world.intermediate) as responder:
        identity, chain, key = world.leaf(False, responder.url)
        responder.set_status(identity, "good")
        storage = world.directory / f"caddy-storage-{identity.cert.serial_number:x}"
        with launch("caddy", world, chain, key, version, responder.url, storage=storage):
            assert responder.requests == 1
        responder.set_status(identity, "revoked", revocation_reason="keyCompromise")
        with launch("caddy", world, chain, key, version, responder.url, storage=storage) as server:
            Row(
                "caddy",
                version,
                "revoked, restarted with a stored good staple",
                GOOD,
                False,
                "Caddy keeps fetched responses in its storage and, after a restart, staples "
                "a stored one without asking while it is fresh (before half its validity)",
            ).check(server.url(), world.trust)
            assert responder.requests == 1


@pytest.mark.parametrize("version", TLS_VERSIONS, ids=lambda v: f"tls{v}")
def test_caddy_keeps_its_last_good_staple_forever(version: TLSVersion, world: World) -> None:
    # Responses dated 5 minutes back and valid for 5 s: good for staplecheck (its
    # clock skew allowance is 5 minutes) for 4 to 5 s (thisUpdate is whole seconds),
    # stale after; and already past half their validity, so Caddy asks again every
    # ocsp_interval.
    validity = datetime.timedelta(seconds=5)
    skew = Policy().clock_skew

    def dated_back() -> datetime.datetime:
        return datetime.datetime.now(datetime.timezone.utc) - skew

    with OCSPResponder(world.intermediate, validity=validity, clock=dated_back) as responder:
        identity, chain, key = world.leaf(False, responder.url)
        responder.set_status(identity, "good")
        with launch(
            "caddy", world, chain, key, version, responder.url, ocsp_interval="200ms"
        ) as server:
            responder.set_status(identity, "revoked", revocation_reason="keyCompromise")
            wait_until(
                lambda: any(r.answer == "revoked" for r in responder.history),
                "Caddy to ask again",
            )
            row = Row(
                "caddy",
                version,
                "revoked after a good staple",
                GOOD,
                False,
                "Caddy asked again, got revoked, and kept stapling its last good response",
            )
            seen = row.check_policies(server.url(), world.trust)
            row.check_curl(server.url(), world.trust)
            staple = seen["soft-fail"].result
            assert staple is not None
            assert staple.next_update is not None
            stale_at = staple.next_update + skew + datetime.timedelta(seconds=0.5)
            wait_until(
                lambda: datetime.datetime.now(datetime.timezone.utc) > stale_at,
                "the staple to go stale",
                timeout=10,
            )
            Row(
                "caddy",
                version,
                "revoked after a good staple, past its nextUpdate",
                STALE,
                False,
                "Caddy keeps stapling its last good response after its nextUpdate: stale, "
                "which soft-fail accepts for a plain certificate",
            ).check(server.url(), world.trust)
            assert responder.history[0].answer == "good"  # what Caddy staples, still
