"""The interop matrix for servers that staple from a file, against staplecheck and curl.

Servers: ``openssl s_server -status_file``, nginx ``ssl_stapling_file``, HAProxy
(``crt``'s ``.ocsp`` file), lighttpd (``ssl.stapling-file``) and ``gnutls-serv
--ocsp-response``, each in TLS 1.2 and TLS 1.3. Each one serves each staple case; one
server runs per (server, TLS version, case) and answers every client:
staplecheck's ``StapleAdapter`` under the three policies, and ``curl --cert-status``
for comparison. Every outcome is recorded in the matrix (``matrix.record``) before it
is checked, so ``scripts/render_interop.py`` shows failures too.

What a client must decide depends on the staple that *arrives*, and some servers do
not send the staple they were given (tests/interop/filebased.py has the facts):
HAProxy ignores unknown, stale, future-dated and foreign responses and responses
without nextUpdate at startup, lighttpd does not staple a stale one, and gnutls-serv
refuses to start with a revoked, stale or foreign one unless told
``--ignore-ocsp-response-errors``. The expectations below follow what arrives; the
notes say why it differs from what the server was given.

The PKI is made at the real current time: servers' chains are verified by OpenSSL
against the wall clock.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from staplecheck import Policy, StapleAdapter, StapleResult, StapleStatus, find_staple_error
from staplecheck.testing import CA, POLICY_CASES, Identity, StapleCase
from tests.conftest import require_program
from tests.realservers import RealServer, ServerStartError

from .filebased import (
    FILE_SERVER_KINDS,
    MATRIX_NAMES,
    GnuTLSServer,
    HAProxy,
    launch_file_server,
)
from .matrix import Outcome, record

MODES = ("off", "soft-fail", "must-staple")
TLS_VERSIONS = ("1.2", "1.3")
CURL = "curl --cert-status"


def _foreign(ca: CA, leaf: Identity, now: datetime.datetime) -> bytes:
    """A good, properly signed response about another certificate of the same issuer."""
    return ca.ocsp_response(ca.issue_cert("other.test"), this_update=now)


def _future(ca: CA, leaf: Identity, now: datetime.datetime) -> bytes:
    """Properly signed and good, but produced "tomorrow": no honest responder does that."""
    day = datetime.timedelta(days=1)
    return ca.ocsp_response(leaf, this_update=now + day, next_update=now + 2 * day)


def _no_next_update(ca: CA, leaf: Identity, now: datetime.datetime) -> bytes:
    """Good, without nextUpdate: staplecheck lets it live a day after thisUpdate."""
    return ca.ocsp_response(leaf, this_update=now, next_update=None)


_BY_NAME = {case.name: case for case in POLICY_CASES}
CASES: tuple[StapleCase, ...] = (
    _BY_NAME["good"],
    _BY_NAME["revoked"],
    _BY_NAME["unknown"],
    _BY_NAME["invalid"],
    StapleCase("foreign", "about another certificate", StapleStatus.INVALID, False, _foreign),
    StapleCase("future", "thisUpdate in the future", StapleStatus.INVALID, False, _future),
    _BY_NAME["stale"],
    StapleCase("no-next-update", "no nextUpdate", StapleStatus.GOOD, False, _no_next_update),
    _BY_NAME["missing"],
    _BY_NAME["missing-must-staple"],
)
MATRIX_CASES = {
    "good": "good",
    "revoked": "revoked",
    "unknown": "unknown",
    "invalid": "invalid (forged signature)",
    "foreign": "invalid (other certificate)",
    "future": "invalid (thisUpdate in the future)",
    "stale": "stale",
    "no-next-update": "good (no nextUpdate)",
    "missing": "missing",
    "missing-must-staple": "missing (must-staple cert)",
}
"""Case name → the row name in the matrix."""

# --- what the servers do with the staples they are given (measured; see filebased.py) ---

DROPPED: dict[tuple[str, str], str | None] = {
    ("haproxy", "unknown"): "OCSP single response: certificate status is unknown.",
    ("haproxy", "future"): "OCSP single response: no longer valid.",
    ("haproxy", "stale"): "OCSP single response: no longer valid.",
    ("haproxy", "no-next-update"): "OCSP single response: missing nextupdate.",
    ("haproxy", "foreign"): (
        "OCSP single response: Certificate ID does not match certificate and issuer."
    ),
    ("lighttpd", "stale"): None,  # silently
}
"""(server, case) → the server's startup warning, where the server staples nothing."""

GNUTLS_REFUSES = {
    "revoked": "The session or certificate has expired.",
    "stale": "The session or certificate has expired.",
    "foreign": "The OCSP response provided doesn't match the available certificates",
}
"""Cases gnutls-serv will not start with unless ``--ignore-ocsp-response-errors``."""

CURL_SAYS = {
    StapleStatus.MISSING: "No OCSP response received",
    StapleStatus.REVOKED: "SSL certificate revocation reason: keyCompromise (1)",
    StapleStatus.STALE: "OCSP response has expired",
    StapleStatus.UNKNOWN: "SSL server certificate status verification FAILED",
}
CURL_SAYS_INVALID = {
    "invalid": "OCSP response verification failed",
    "foreign": "Could not find certificate ID in OCSP response",
    "future": "OCSP response has expired",  # sic: curl says "expired" for "not yet valid"
}
_CURL_STATUS = (  # curl's message → the staple status it means, in staplecheck's words
    ("No OCSP response received", "missing"),
    ("revocation reason", "revoked"),
    ("has expired", "stale"),
    ("status verification FAILED", "unknown"),
    ("verification failed", "invalid"),
    ("Could not find certificate ID", "invalid"),
)


@dataclasses.dataclass(frozen=True)
class World:
    """A PKI at the current time, written to ``directory`` as PEM and DER files."""

    directory: Path
    intermediate: CA
    trust: str
    """The root, PEM: what clients pass as ``verify`` / ``--cacert``."""
    leaves: dict[bool, Identity]
    """must-staple? → a leaf for localhost and 127.0.0.1."""

    def served(self, must_staple: bool) -> tuple[str, str]:
        """Chain and key files of the localhost leaf (with or without must-staple)."""
        name = f"must-staple-{must_staple}"
        return str(self.directory / f"{name}.crt"), str(self.directory / f"{name}.key")

    def staple(self, case: StapleCase) -> str | None:
        """A DER file with ``case``'s staple for its leaf (None: no staple)."""
        der = case.staple(self.intermediate, self.leaves[case.must_staple], self.intermediate.now)
        if der is None:
            return None
        path = self.directory / f"{case.name}.der"
        if not path.exists():
            path.write_bytes(der)
        return str(path)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    directory = tmp_path_factory.mktemp("file-servers")
    root = CA(name="interop root")  # now: servers and OpenSSL verify with the wall clock
    intermediate = root.create_intermediate(name="interop intermediate")
    leaves = {
        flag: intermediate.issue_cert("localhost", "127.0.0.1", must_staple=flag)
        for flag in (False, True)
    }
    for flag, leaf in leaves.items():
        leaf.write(directory, f"must-staple-{flag}")
    return World(
        directory=directory,
        intermediate=intermediate,
        trust=root.write_trust(directory / "root.pem"),
        leaves=leaves,
    )


# --- one server per (server, TLS version, case) ---------------------------------------------


@dataclasses.dataclass(frozen=True)
class Served:
    server: RealServer
    kind: str
    tls_version: str
    case: StapleCase
    arrives: StapleStatus
    """The staple status a client sees: the case's, or ``missing`` if the server drops it."""
    note: str

    def outcome(self, client: str, accepted: bool, status: str | None, **kw: object) -> Outcome:
        return Outcome(
            server=MATRIX_NAMES[self.kind],
            tls_version=self.tls_version,
            case=MATRIX_CASES[self.case.name],
            client=client,
            accepted=accepted,
            status=status,
            **kw,  # type: ignore[arg-type]
        )

    def expected_accept(self, mode: str) -> bool:
        """What DESIGN.md's table says for the staple that arrives."""
        result = StapleResult(status=self.arrives, reason="", must_staple=self.case.must_staple)
        return Policy(mode=mode).accepts(result)  # type: ignore[arg-type]


SERVED = [
    (kind, version, case)
    for kind in FILE_SERVER_KINDS
    for version in TLS_VERSIONS
    for case in CASES
]


@pytest.fixture(
    scope="module",
    params=SERVED,
    ids=[f"{kind}-tls{version}-{case.name}" for kind, version, case in SERVED],
)
def served(request: pytest.FixtureRequest, world: World) -> Iterator[Served]:
    kind, version, case = request.param
    chain, key = world.served(case.must_staple)
    refused = kind == "gnutls-serv" and case.name in GNUTLS_REFUSES
    launcher = launch_file_server(
        kind, chain, key, world.staple(case), version, gnutls_ignore_ocsp_errors=refused
    )
    arrives, note = case.status, ""
    if (kind, case.name) in DROPPED:
        arrives = StapleStatus.MISSING
        warning = DROPPED[kind, case.name]
        note = (
            f'HAProxy ignores this response at startup ("{warning}") and staples nothing'
            if kind == "haproxy"
            else "lighttpd does not staple a response past its nextUpdate (it logs nothing)"
        )
    elif refused:
        note = (
            f'gnutls-serv refuses to start with this response ("{GNUTLS_REFUSES[case.name]}"); '
            "served here with --ignore-ocsp-response-errors"
        )
    with launcher as server:
        if isinstance(server, HAProxy) and DROPPED.get((kind, case.name)):
            assert DROPPED[kind, case.name] in server.output()  # the fact behind the note
        yield Served(server, kind, version, case, arrives, note)


# --- staplecheck ------------------------------------------------------------------------------


def fetch(url: str, policy: str, verify: str) -> requests.Response:
    """GET ``url`` through a fresh session with a StapleAdapter; ``verify`` always
    explicit (this machine exports REQUESTS_CA_BUNDLE)."""
    with requests.Session() as session:
        session.mount("https://", StapleAdapter(policy))
        return session.get(url, verify=verify, timeout=10)


def attempt(url: str, policy: str, verify: str) -> requests.Response | BaseException:
    """The response, or the SSLError the connection failed with."""
    try:
        return fetch(url, policy, verify)
    except requests.exceptions.SSLError as error:
        return error


@pytest.mark.parametrize("policy", MODES)
def test_staplecheck(served: Served, policy: str, world: World) -> None:
    expected = served.expected_accept(policy)
    outcome = attempt(served.server.url(), policy, world.trust)
    if isinstance(outcome, BaseException):
        staple_error = find_staple_error(outcome)
        result = staple_error.result if staple_error else None
        note = served.note if staple_error else f"refused, but not for the staple: {outcome}"
        status = result.status.value if result else None
        record(served.outcome(policy, False, status, expected=expected, note=note))
        assert not expected, f"refused: {outcome}"
        assert staple_error is not None, f"refused, but not for the staple: {outcome}"
        assert staple_error.host == "localhost"
        assert staple_error.result.status is served.arrives, staple_error.result.reason
        assert staple_error.result.must_staple is served.case.must_staple
        return
    staple = outcome.staple  # type: ignore[attr-defined]
    status = staple.status.value if staple else None
    record(served.outcome(policy, True, status, expected=expected, note=served.note))
    assert expected, f"accepted a {status} staple"
    assert outcome.status_code == 200
    if policy == "off":
        assert staple is None  # not asked for, so not judged
    else:
        assert staple is not None
        assert staple.status is served.arrives, staple.reason
        assert staple.must_staple is served.case.must_staple


# --- curl --cert-status ----------------------------------------------------------------------


def curl_status(message: str) -> str:
    """curl's complaint in staplecheck's words (``error`` when it is none of them)."""
    return next((status for text, status in _CURL_STATUS if text in message), "error")


def run_curl(url: str, cafile: str) -> subprocess.CompletedProcess[str]:
    """``curl --silent --show-error --cert-status --cacert ROOT URL``, ignoring any
    ~/.curlrc (``-q``) and proxy settings."""
    curl = require_program("curl")
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    return subprocess.run(
        [
            *(curl, "-q", "--silent", "--show-error", "--cert-status", "--cacert", cafile),
            *("--noproxy", "*", "--max-time", "10", url),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        check=False,
    )


def test_curl(served: Served, world: World) -> None:
    result = run_curl(served.server.url(), world.trust)
    message = re.sub(r"^curl: \(\d+\) ", "", result.stderr.strip())
    accepted = result.returncode == 0
    said = f"curl exit {result.returncode}: {message}" if not accepted else ""
    status = "good" if accepted else curl_status(message)
    # The note is curl's own words; the server's note is on the row's other clients.
    record(served.outcome(CURL, accepted, status, note=said))
    if served.arrives is StapleStatus.GOOD:
        assert accepted, said
        assert result.stdout.strip()
        return
    assert result.returncode == 91, said  # CURLE_SSL_INVALIDCERTSTATUS
    expected = CURL_SAYS.get(served.arrives) or CURL_SAYS_INVALID[served.case.name]
    assert message == expected


# --- facts behind the notes -----------------------------------------------------------------


@pytest.mark.parametrize("case_name", sorted(GNUTLS_REFUSES))
def test_gnutls_serv_refuses_to_start_with(case_name: str, world: World) -> None:
    case = next(c for c in CASES if c.name == case_name)
    server = GnuTLSServer(*world.served(case.must_staple), world.staple(case))
    with pytest.raises(ServerStartError) as info:
        server.start()
    assert not server.running
    assert "Cannot set OCSP status request file" in str(info.value)
    assert GNUTLS_REFUSES[case_name] in str(info.value)


def _listeners(port: int) -> set[str]:
    """The local addresses (hex, as in /proc/net/tcp*) listening on ``port`` here."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, _, hex_port = fields[1].partition(":")
            if int(hex_port, 16) == port and fields[3] == "0A":  # 0A: LISTEN
                found.add(address)
    return found


def _children(pid: int) -> list[int]:
    children: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            text = Path(f"/proc/{pid}/task/{task}/children").read_text()
        except FileNotFoundError:  # a thread that ended since the listing
            continue
        children += [int(c) for c in text.split()]
    return children


def test_gnutls_serv_is_reachable_on_loopback_only(world: World) -> None:
    good = next(c for c in CASES if c.name == "good")
    with GnuTLSServer(*world.served(False), world.staple(good)) as server:
        assert server.port is not None
        assert server.pid is not None
        # Here (the test's network namespace) only the relay listens, on 127.0.0.1.
        assert _listeners(server.port) == {"0100007F"}
        # gnutls-serv itself listens on every interface of a namespace of its own.
        (child,) = _children(server.pid)
        assert Path(f"/proc/{child}/comm").read_text().strip() == "gnutls-serv"
        own = os.readlink("/proc/self/ns/net")
        assert os.readlink(f"/proc/{child}/ns/net") != own
        assert os.readlink(f"/proc/{server.pid}/ns/net") != own  # the relay moved too
        assert fetch(server.url(), "must-staple", world.trust).staple.status is StapleStatus.GOOD
    assert not _alive(child)  # stopping the relay stopped gnutls-serv


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a running process (not gone, not a zombie), within 5 s."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                return False
        except OSError:
            return False
        time.sleep(0.02)
    return True
