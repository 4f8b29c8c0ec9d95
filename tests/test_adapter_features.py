"""The requests adapter and urllib3 helpers beyond the policy table, over real handshakes:
mutual TLS, CONNECT proxies, keep-alive, threads sharing one session, ``verify=``
variants, per-host policies, logging, policy ``off``, plain urllib3, host names.

Every server is an in-process :class:`StaplingServer` on 127.0.0.1, stopped by its
fixture. OpenSSL checks certificate validity against the system clock, so the PKI here
is anchored at the real current time (not conftest's fixed ``NOW``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
import os
import socket
import subprocess
import threading
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
import urllib3
from cryptography.hazmat.primitives import serialization
from urllib3.util import Retry

from staplecheck import (
    HostPolicies,
    StapleAdapter,
    StapleError,
    StapleResult,
    StapleSSLContext,
    StapleStatus,
    as_policy,
    find_staple_error,
    pool_manager,
    proxy_manager,
    staple_of,
)
from staplecheck.testing import CA, Identity, StaplingServer
from staplecheck.tls._hostpolicy import HostPolicyLike
from staplecheck.tls._log import VerdictLog
from tests.conftest import require_program

MODES = ("off", "soft-fail", "must-staple")
CLOSE = {"Connection": "close"}


# --- the PKI ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Live:
    """Two unrelated roots and the certificates the tests serve, written to disk."""

    root: CA
    intermediate: CA
    leaf: Identity
    """localhost, 127.0.0.1 and api.test, issued by the intermediate."""
    twin: Identity
    """Same names and issuer as ``leaf``, another key and serial."""
    other: Identity
    """Only other.test."""
    client: Identity
    client_files: tuple[str, str]
    ca_file: str
    root_b: CA
    leaf_b: Identity
    ca_b_file: str


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Live:
    directory = tmp_path_factory.mktemp("live-pki")
    now = datetime.datetime.now(datetime.timezone.utc)
    root = CA(now=now, name="staplecheck root A")
    intermediate = root.create_intermediate()
    root_b = CA(now=now, name="staplecheck root B")
    client = intermediate.issue_cert("client.test", client_auth=True)
    return Live(
        root=root,
        intermediate=intermediate,
        leaf=intermediate.issue_cert("localhost", "127.0.0.1", "api.test"),
        twin=intermediate.issue_cert("localhost", "127.0.0.1", "api.test"),
        other=intermediate.issue_cert("other.test"),
        client=client,
        client_files=client.write(directory, "client"),
        ca_file=root.write_trust(directory / "root-a.pem"),
        root_b=root_b,
        leaf_b=root_b.create_intermediate().issue_cert("localhost", "127.0.0.1"),
        ca_b_file=root_b.write_trust(directory / "root-b.pem"),
    )


@pytest.fixture(params=["1.2", "1.3"], ids=["tls1.2", "tls1.3"])
def tls(request: pytest.FixtureRequest) -> str:
    version: str = request.param
    return version


# --- servers, clients, cleanup ----------------------------------------------------------

Serve = Callable[..., StaplingServer]
NewSession = Callable[..., requests.Session]
Register = Callable[[Any], Any]


@pytest.fixture
def cleanup() -> Iterator[contextlib.ExitStack]:
    with contextlib.ExitStack() as stack:
        yield stack


@pytest.fixture
def serve(cleanup: contextlib.ExitStack) -> Serve:
    """Start a server for ``identity`` stapling ``staple``: a status for its issuer to
    sign (``"good"``, ``"revoked"``, ``"unknown"``), DER bytes, or ``None`` for none."""

    def start(
        identity: Identity, staple: str | bytes | None = "good", **options: Any
    ) -> StaplingServer:
        der = identity.issuer.ocsp_response(identity, staple) if isinstance(staple, str) else staple
        return cleanup.enter_context(StaplingServer(identity, der, **options))

    return start


@pytest.fixture
def new_session(cleanup: contextlib.ExitStack) -> NewSession:
    """A requests session with a StapleAdapter; nothing taken from the environment
    (no proxies, no REQUESTS_CA_BUNDLE): every test passes ``verify=`` itself."""

    def make(policy: HostPolicyLike = "soft-fail", **adapter_kwargs: Any) -> requests.Session:
        session = cleanup.enter_context(requests.Session())
        session.trust_env = False
        session.mount("https://", StapleAdapter(policy, **adapter_kwargs))
        return session

    return make


@pytest.fixture
def managers(cleanup: contextlib.ExitStack) -> Register:
    """Register a urllib3 manager to be cleared (its sockets closed) after the test."""

    def register(manager: Any) -> Any:
        cleanup.callback(manager.clear)
        return manager

    return register


def at(server: StaplingServer, host: str = "localhost") -> str:
    return f"https://{host}:{server.port}/"


def staple_error(error: BaseException) -> StapleError:
    """The StapleError behind ``error``; fails the test when there is none."""
    found = find_staple_error(error)
    assert found is not None, f"no StapleError behind {error!r}"
    return found


def attempt(session: requests.Session, url: str, **kwargs: Any) -> Any:
    """The response, or the requests exception the request raised."""
    try:
        return session.get(url, **kwargs)
    except requests.exceptions.RequestException as error:
        return error


def assert_good(response: requests.Response, identity: Identity) -> None:
    assert response.status_code == 200
    assert response.staple is not None
    assert response.staple.status is StapleStatus.GOOD
    assert response.staple.serial_number == identity.cert.serial_number


def assert_staple_rejected(
    error: BaseException, status: StapleStatus, identity: Identity, host: str = "localhost"
) -> StapleError:
    found = staple_error(error)
    assert found.result.status is status
    assert found.result.serial_number == identity.cert.serial_number
    assert found.host == host
    return found


# --- a CONNECT proxy ----------------------------------------------------------------------


class ConnectProxy:
    """A threaded HTTP proxy on 127.0.0.1 that only tunnels (CONNECT) and counts tunnels.

    ``resolve`` maps host names to addresses, so a test can reach names that no
    resolver knows (the proxy, not the client, looks names up).
    """

    def __init__(self, resolve: dict[str, str] | None = None) -> None:
        self.resolve = resolve or {}
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self.tunnels: list[str] = []
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> ConnectProxy:
        self._spawn(self._accept_loop)
        return self

    def __exit__(self, *_: object) -> None:
        _shut(self._listener)
        with self._lock:
            for sock in list(self._sockets):
                _shut(sock)
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout=5)
        assert not any(t.is_alive() for t in threads), "proxy threads did not stop"

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _track(self, sock: socket.socket) -> socket.socket:
        with self._lock:
            self._sockets.add(sock)
        return sock

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._spawn(self._tunnel, self._track(client))

    def _tunnel(self, client: socket.socket) -> None:
        try:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = client.recv(4096)
                if not chunk:
                    return
                head += chunk
            method, target, _ = head.split(b"\r\n", 1)[0].decode("ascii").split(" ", 2)
            if method != "CONNECT":
                client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                return
            host, _, port = target.rpartition(":")
            address = self.resolve.get(host, host)
            upstream = self._track(socket.create_connection((address, int(port))))
            with self._lock:
                self.tunnels.append(target)
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            upstream.sendall(head.partition(b"\r\n\r\n")[2])
            self._spawn(_pump, upstream, client)
            _pump(client, upstream)
        except (OSError, ValueError):
            pass
        finally:
            _shut(client)


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy bytes until ``source`` ends, then end ``sink``'s sending side."""
    with contextlib.suppress(OSError):
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


@pytest.fixture
def proxy() -> Iterator[ConnectProxy]:
    with ConnectProxy() as running:
        yield running


# --- 1. mutual TLS -------------------------------------------------------------------------


def test_mtls_with_client_certificate_checks_the_staple(
    live: Live, serve: Serve, new_session: NewSession, tls: str
) -> None:
    server = serve(live.leaf, tls_version=tls, client_ca=live.root)
    response = new_session().get(server.url, verify=live.ca_file, cert=live.client_files)
    assert_good(response, live.leaf)
    assert (server.handshakes, server.requests) == (1, 1)


def test_mtls_without_client_certificate_fails(
    live: Live, serve: Serve, new_session: NewSession, tls: str
) -> None:
    server = serve(live.leaf, tls_version=tls, client_ca=live.root)
    # TLS 1.2 fails inside the handshake ("handshake failure" alert); in TLS 1.3 the
    # client finishes first and the server's "certificate required" alert (or its
    # reset) arrives on the first read. requests reports SSLError either way.
    with pytest.raises(requests.exceptions.SSLError) as caught:
        new_session().get(server.url, verify=live.ca_file)
    assert find_staple_error(caught.value) is None
    assert (server.handshakes, server.requests) == (0, 0)


def test_mtls_does_not_excuse_a_revoked_staple(
    live: Live, serve: Serve, new_session: NewSession, tls: str
) -> None:
    server = serve(live.leaf, "revoked", tls_version=tls, client_ca=live.root)
    with pytest.raises(requests.exceptions.SSLError) as caught:
        new_session().get(server.url, verify=live.ca_file, cert=live.client_files)
    assert_staple_rejected(caught.value, StapleStatus.REVOKED, live.leaf)
    assert server.requests == 0


# --- 2. CONNECT proxy ----------------------------------------------------------------------


def test_proxy_tunnel_carries_a_good_staple(
    live: Live, serve: Serve, new_session: NewSession, proxy: ConnectProxy, tls: str
) -> None:
    server = serve(live.leaf, tls_version=tls)
    session = new_session()
    for _ in range(2):
        response = session.get(server.url, proxies={"https": proxy.url}, verify=live.ca_file)
        assert_good(response, live.leaf)
    assert proxy.tunnels == [f"localhost:{server.port}"]
    assert (server.handshakes, server.requests) == (1, 2)


def test_proxy_tunnel_rejects_a_revoked_staple(
    live: Live, serve: Serve, new_session: NewSession, proxy: ConnectProxy, tls: str
) -> None:
    server = serve(live.leaf, "revoked", tls_version=tls)
    with pytest.raises(requests.exceptions.SSLError) as caught:
        new_session().get(server.url, proxies={"https": proxy.url}, verify=live.ca_file)
    assert_staple_rejected(caught.value, StapleStatus.REVOKED, live.leaf)
    assert proxy.tunnels == [f"localhost:{server.port}"]
    assert server.requests == 0


def test_urllib3_proxy_manager_checks_staples(
    live: Live, serve: Serve, managers: Register, proxy: ConnectProxy
) -> None:
    good = serve(live.leaf)
    revoked = serve(live.twin, "revoked")
    manager = managers(proxy_manager(proxy.url, ca_certs=live.ca_file, retries=False))
    assert manager.request("GET", good.url).staple.status is StapleStatus.GOOD
    with pytest.raises(urllib3.exceptions.SSLError) as caught:
        manager.request("GET", revoked.url)
    assert_staple_rejected(caught.value, StapleStatus.REVOKED, live.twin)
    assert proxy.tunnels == [f"localhost:{good.port}", f"localhost:{revoked.port}"]


# --- 3. keep-alive -------------------------------------------------------------------------


def test_keep_alive_checks_the_staple_once_per_connection(
    live: Live, serve: Serve, new_session: NewSession, tls: str
) -> None:
    server = serve(live.leaf, tls_version=tls)
    session = new_session()
    responses = [session.get(server.url, verify=live.ca_file) for _ in range(5)]
    for response in responses:
        assert_good(response, live.leaf)
        assert response.staple is responses[0].staple  # the connection's one verdict
    assert (server.handshakes, server.staples_sent, server.requests) == (1, 1, 5)


def test_connection_close_response_keeps_its_staple(
    live: Live, serve: Serve, new_session: NewSession, tls: str
) -> None:
    # http.client drops the connection's socket inside getresponse() when the response
    # says "Connection: close"; the verdict must have been read before that.
    server = serve(live.leaf, tls_version=tls)
    session = new_session()
    for _ in range(3):
        response = session.get(server.url, verify=live.ca_file, headers=CLOSE)
        assert_good(response, live.leaf)
    assert server.handshakes == 3


# --- 4. threads sharing one session ------------------------------------------------------


@pytest.mark.usefixtures("frequent_thread_switches")
def test_threads_sharing_a_session_never_misattribute_verdicts(
    live: Live, serve: Serve, new_session: NewSession, tls: str
) -> None:
    good = serve(live.leaf, tls_version=tls)
    revoked = serve(live.twin, "revoked", tls_version=tls)
    # New handshakes interleave with kept-alive connections: every third request to the
    # good server closes its connection, and each pool keeps one idle connection only,
    # so with eight threads most returned connections are discarded.
    session = new_session(pool_connections=2, pool_maxsize=1)
    threads, rounds = 8, 100

    def worker(_: int) -> list[str]:
        wrong: list[str] = []
        for i in range(rounds):
            headers = CLOSE if i % 3 == 0 else {}
            outcome = attempt(session, good.url, verify=live.ca_file, headers=headers)
            if not (
                isinstance(outcome, requests.Response)
                and outcome.staple is not None
                and outcome.staple.status is StapleStatus.GOOD
                and outcome.staple.serial_number == live.leaf.cert.serial_number
            ):
                wrong.append(f"good server: {outcome!r}")
            outcome = attempt(session, revoked.url, verify=live.ca_file)
            found = find_staple_error(outcome) if isinstance(outcome, BaseException) else None
            if not (
                isinstance(outcome, requests.exceptions.SSLError)
                and found is not None
                and found.result.status is StapleStatus.REVOKED
                and found.result.serial_number == live.twin.cert.serial_number
                and found.host == "localhost"
                and f"port={revoked.port}" in str(outcome)
            ):
                wrong.append(f"revoked server: {outcome!r}")
        return wrong

    with ThreadPoolExecutor(threads) as pool:
        misattributed = [w for result in pool.map(worker, range(threads)) for w in result]
    assert misattributed == []
    requests_each = threads * rounds
    assert good.requests == requests_each
    closed = threads * len(range(0, rounds, 3))
    assert closed < good.handshakes < requests_each  # many new connections, some reused
    assert good.staples_sent == good.handshakes
    # A rejected connection is never pooled: every request was a new handshake.
    assert revoked.staples_sent == requests_each
    assert revoked.requests == 0


# --- 5. verify= variants -------------------------------------------------------------------


@pytest.fixture
def ca_dir(live: Live, tmp_path: Path) -> str:
    """A c_rehash-style directory trusting root A."""
    openssl = require_program("openssl")
    directory = tmp_path / "capath"
    directory.mkdir()
    live.root.write_trust(directory / "root-a.pem")
    subprocess.run([openssl, "rehash", str(directory)], check=True, capture_output=True)
    assert any(name.endswith(".0") for name in os.listdir(directory))
    return str(directory)


@pytest.mark.parametrize("trust", ["file", "directory"])
def test_verify_ca_file_or_directory(
    live: Live,
    serve: Serve,
    new_session: NewSession,
    tls: str,
    trust: str,
    request: pytest.FixtureRequest,
) -> None:
    verify = live.ca_file if trust == "file" else request.getfixturevalue("ca_dir")
    server = serve(live.leaf, tls_version=tls)
    assert_good(new_session().get(server.url, verify=verify), live.leaf)
    # The same trust does not cover root B's server.
    other = serve(live.leaf_b, tls_version=tls)
    with pytest.raises(requests.exceptions.SSLError, match="certificate verify failed"):
        new_session().get(other.url, verify=verify)


def test_verify_false_with_policy_off_connects_without_a_staple(
    live: Live, serve: Serve, new_session: NewSession, tls: str
) -> None:
    server = serve(live.leaf_b, "revoked", tls_version=tls)  # untrusted and revoked
    with pytest.warns(urllib3.exceptions.InsecureRequestWarning):
        response = new_session("off").get(server.url, verify=False)
    assert response.status_code == 200
    assert response.staple is None
    assert server.staples_sent == 0


@pytest.mark.parametrize("mode", ["soft-fail", "must-staple"])
def test_verify_false_cannot_trust_a_staple(
    live: Live, serve: Serve, new_session: NewSession, tls: str, mode: str
) -> None:
    server = serve(live.leaf, tls_version=tls)  # a perfectly good staple
    with pytest.raises(requests.exceptions.SSLError) as caught:
        new_session(mode).get(server.url, verify=False)
    found = assert_staple_rejected(caught.value, StapleStatus.INVALID, live.leaf)
    assert "verification is off" in found.result.reason
    assert server.requests == 0


@pytest.mark.usefixtures("frequent_thread_switches")
def test_verify_per_request_never_leaks_between_roots(
    live: Live, serve: Serve, new_session: NewSession, tls: str
) -> None:
    server_a = serve(live.leaf, tls_version=tls)
    server_b = serve(live.leaf_b, tls_version=tls)
    session = new_session(pool_maxsize=1)
    threads, rounds = 8, 30
    plan = [
        (server_a, live.ca_file, live.leaf),
        (server_b, live.ca_b_file, live.leaf_b),
        (server_b, live.ca_file, None),  # wrong root: must fail
        (server_a, live.ca_b_file, None),
    ]

    def worker(_: int) -> list[str]:
        wrong: list[str] = []
        for _ in range(rounds):
            for server, ca, identity in plan:
                outcome = attempt(session, server.url, verify=ca)
                if identity is not None:
                    ok = isinstance(outcome, requests.Response) and (
                        outcome.staple is not None
                        and outcome.staple.serial_number == identity.cert.serial_number
                    )
                else:
                    ok = (
                        isinstance(outcome, requests.exceptions.SSLError)
                        and "certificate verify failed" in str(outcome)
                        and find_staple_error(outcome) is None
                    )
                if not ok:
                    wrong.append(f"port {server.port} with {os.path.basename(ca)}: {outcome!r}")
        return wrong

    with ThreadPoolExecutor(threads) as pool:
        leaks = [w for result in pool.map(worker, range(threads)) for w in result]
    assert leaks == []
    assert server_a.requests == server_b.requests == threads * rounds
    # After all those successes with root A, root A still does not open B.
    with pytest.raises(requests.exceptions.SSLError, match="certificate verify failed"):
        session.get(server_b.url, verify=live.ca_file)


def test_failed_connection_setup_does_not_leak_trust(
    live: Live, serve: Serve, managers: Register, tmp_path: Path
) -> None:
    server_a = serve(live.leaf)
    encrypted_key = tmp_path / "client-encrypted.key"
    encrypted_key.write_bytes(
        live.client.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    trusts_b_only = managers(pool_manager(ca_certs=live.ca_b_file, retries=False))
    # A pool on the same context that trusts A, with a key urllib3 refuses before the
    # handshake (encrypted, no password): load_verify_locations(A) has already run.
    pool = trusts_b_only.connection_from_url(
        server_a.url,
        pool_kwargs={
            "ca_certs": live.ca_file,
            "cert_file": live.client_files[0],
            "key_file": str(encrypted_key),
        },
    )
    with pytest.raises(urllib3.exceptions.SSLError, match="encrypted"):
        pool.urlopen("GET", "/", retries=False)
    with pytest.raises(urllib3.exceptions.SSLError, match="certificate verify failed"):
        trusts_b_only.request("GET", server_a.url)


# --- 6. per-host policies -----------------------------------------------------------------


def test_host_override_demands_a_staple_by_name_not_by_address(
    live: Live, serve: Serve, new_session: NewSession, tls: str
) -> None:
    server = serve(live.leaf, None, tls_version=tls)  # staples nothing
    session = new_session(HostPolicies("soft-fail", {"localhost": "must-staple"}))
    with pytest.raises(requests.exceptions.SSLError) as caught:
        session.get(at(server, "localhost"), verify=live.ca_file)
    assert_staple_rejected(caught.value, StapleStatus.MISSING, live.leaf)
    response = session.get(at(server, "127.0.0.1"), verify=live.ca_file)  # IP SAN
    assert response.staple is not None
    assert response.staple.status is StapleStatus.MISSING
    assert server.handshakes == 1


def test_pattern_override_applies_to_the_name_sent(
    live: Live, serve: Serve, new_session: NewSession, managers: Register
) -> None:
    server = serve(live.leaf, None)
    policies = HostPolicies("soft-fail", {"*.test": "must-staple"})
    # Reach 127.0.0.1 but send (and check) the name api.test.
    as_api = managers(pool_manager(policies, ca_certs=live.ca_file, server_hostname="api.test"))
    with pytest.raises(urllib3.exceptions.SSLError) as caught:
        as_api.request("GET", at(server, "127.0.0.1"), retries=False)
    assert_staple_rejected(caught.value, StapleStatus.MISSING, live.leaf, host="api.test")
    response = new_session(policies).get(at(server, "localhost"), verify=live.ca_file)
    assert response.staple.status is StapleStatus.MISSING


def test_host_policies_matching_rules() -> None:
    off, soft, must = (as_policy(mode) for mode in MODES)
    policies = HostPolicies(
        "soft-fail",
        {
            "*.corp.example": "must-staple",
            "*.lab.corp.example": "off",
            "legacy.lab.corp.example": "soft-fail",
            "Upper.Example.": "off",
            "[::1]": "must-staple",
        },
    )
    assert policies.policy_for("api.corp.example") == must
    assert policies.policy_for("a.b.c.corp.example") == must  # any depth
    assert policies.policy_for("corp.example") == soft  # not the domain itself
    assert policies.policy_for("evilcorp.example") == soft  # a label boundary
    assert policies.policy_for("x.lab.corp.example") == off  # longest pattern wins
    assert policies.policy_for("legacy.lab.corp.example") == soft  # exact beats patterns
    assert policies.policy_for("API.Corp.Example.") == must  # case and trailing dot
    assert policies.policy_for("upper.example") == off
    assert policies.policy_for("::1") == must
    assert policies.policy_for(None) == soft
    assert policies.policy_for("") == soft
    assert policies.any_requests_staple
    assert not HostPolicies("off", {"*.x.example": "off"}).any_requests_staple
    assert HostPolicies("off", {"a.example": "soft-fail"}).any_requests_staple


@pytest.mark.parametrize(
    "pattern",
    [
        "*",
        "*.",
        "",
        ".",
        "a.*.example",
        "*.*.example",
        "a*.b",
        "bü\u200dcher.test",
        "*.\u00adx.bücher",
    ],
)
def test_host_policies_refuse_bad_patterns(pattern: str) -> None:
    with pytest.raises(ValueError, match="bad host pattern"):
        HostPolicies("soft-fail", {pattern: "must-staple"})


IDN = "bücher.test"
IDN_A = "xn--bcher-kva.test"


@pytest.mark.parametrize("override", [IDN, IDN_A, "BÜCHER.test.", "XN--BCHER-KVA.TEST"])
@pytest.mark.parametrize("host", [IDN, IDN_A, "Bücher.Test.", "XN--BCHER-KVA.test"])
def test_host_policies_compare_idna_a_labels(override: str, host: str) -> None:
    must = as_policy("must-staple")
    exact = HostPolicies("soft-fail", {override: "must-staple"})
    assert exact.policy_for(host) == must
    pattern = HostPolicies("soft-fail", {"*." + override: "must-staple"})
    assert pattern.policy_for("shop." + host) == must
    assert pattern.policy_for("shop.bucher.test") == as_policy("soft-fail")
    assert pattern.policy_for(host) == as_policy("soft-fail")  # not the domain itself
    # IDNA 2008, as urllib3 encodes with the idna package; never the stdlib's IDNA 2003
    # (which would turn ß into ss).
    strasse = HostPolicies("soft-fail", {"straße.test": "off"})
    assert strasse.policy_for("xn--strae-oqa.test") == as_policy("off")
    assert strasse.policy_for("strasse.test") == as_policy("soft-fail")


def test_host_policies_name_what_urllib3_connects_to() -> None:
    from urllib3.util import parse_url

    policies = HostPolicies("soft-fail", {IDN: "must-staple", "*.bücher.test": "off"})
    host = parse_url(f"https://{IDN}/").host
    assert host == IDN_A
    assert policies.policy_for(host) == as_policy("must-staple")
    assert policies.policy_for(parse_url("https://Shop.BÜCHER.test/").host) == as_policy("off")
    with pytest.raises(ValueError, match="IDNA"):
        policies.policy_for("a\u00adb.bücher.test")


def test_international_override_applies_to_a_requests_connection(
    live: Live, serve: Serve, new_session: NewSession, tls: str
) -> None:
    """requests sends the A-label; an override written with the U-label must apply."""
    identity = live.intermediate.issue_cert(IDN_A, "shop." + IDN_A)
    server = serve(identity, None, tls_version=tls)  # staples nothing
    hosts = {IDN_A: "127.0.0.1", "shop." + IDN_A: "127.0.0.1"}
    policies = HostPolicies("soft-fail", {IDN: "must-staple", "*.bücher.test": "must-staple"})
    with ConnectProxy(resolve=hosts) as proxy:
        session = new_session(policies)
        for host in (IDN, "shop." + IDN):
            with pytest.raises(requests.exceptions.SSLError) as caught:
                session.get(at(server, host), proxies={"https": proxy.url}, verify=live.ca_file)
            assert_staple_rejected(caught.value, StapleStatus.MISSING, identity, host=host_a(host))
        # Without the override the same server is accepted: the name made the difference.
        response = new_session("soft-fail").get(
            at(server, IDN), proxies={"https": proxy.url}, verify=live.ca_file
        )
        assert response.staple.status is StapleStatus.MISSING
        port = server.port
        assert proxy.tunnels == [f"{IDN_A}:{port}", f"shop.{IDN_A}:{port}", f"{IDN_A}:{port}"]
    assert server.requests == 1


def host_a(host: str) -> str:
    return host.replace(IDN, IDN_A)


# --- 7. logging -----------------------------------------------------------------------------


def staplecheck_records(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == "staplecheck" and r.levelno == level
    ]


def fetch_new_connections(
    session: requests.Session, server: StaplingServer, count: int, **kwargs: Any
) -> None:
    """``count`` requests, each on a new connection; rejections are expected and kept quiet."""
    before = server.staples_sent + server.handshakes
    for _ in range(count):
        with contextlib.suppress(requests.exceptions.SSLError):
            session.get(server.url, headers=CLOSE, **kwargs)
    # One staple or one completed handshake (no-staple servers) per request.
    assert server.staples_sent + server.handshakes - before >= count


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def debug_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="staplecheck")
    return caplog


def test_each_verdict_is_logged_at_debug(
    live: Live, serve: Serve, new_session: NewSession, debug_log: pytest.LogCaptureFixture
) -> None:
    server = serve(live.leaf)
    fetch_new_connections(new_session(log=VerdictLog()), server, 3, verify=live.ca_file)
    assert server.handshakes == 3
    debug = staplecheck_records(debug_log, logging.DEBUG)
    assert len(debug) == 3
    assert all(m.startswith("localhost: staple good, accepted under soft-fail") for m in debug)
    assert staplecheck_records(debug_log, logging.WARNING) == []


def test_soft_fail_acceptance_warns_once_per_host(
    live: Live,
    serve: Serve,
    new_session: NewSession,
    debug_log: pytest.LogCaptureFixture,
    tls: str,
) -> None:
    server = serve(live.leaf, None, tls_version=tls)
    session = new_session(log=VerdictLog())
    fetch_new_connections(session, server, 20, verify=live.ca_file)
    assert server.handshakes == 20
    assert len(staplecheck_records(debug_log, logging.DEBUG)) == 20
    [warning] = staplecheck_records(debug_log, logging.WARNING)
    assert warning.startswith("localhost: accepted without a good staple (missing")
    # Another host name is told about separately.
    session.get(at(server, "127.0.0.1"), verify=live.ca_file)
    assert len(staplecheck_records(debug_log, logging.WARNING)) == 2


def test_rejection_warns_every_time(
    live: Live,
    serve: Serve,
    new_session: NewSession,
    debug_log: pytest.LogCaptureFixture,
    tls: str,
) -> None:
    server = serve(live.leaf, "revoked", tls_version=tls)
    fetch_new_connections(new_session(log=VerdictLog()), server, 5, verify=live.ca_file)
    warnings = staplecheck_records(debug_log, logging.WARNING)
    assert len(warnings) == 5
    assert all(w.startswith("localhost: refused by policy, staple revoked") for w in warnings)


def test_acceptance_warning_returns_after_the_interval(
    live: Live, serve: Serve, new_session: NewSession, debug_log: pytest.LogCaptureFixture
) -> None:
    server = serve(live.leaf, None)
    clock = FakeClock()
    session = new_session(log=VerdictLog(interval=60, clock=clock))

    def warnings_after(seconds: float) -> int:
        clock.now += seconds
        fetch_new_connections(session, server, 2, verify=live.ca_file)
        return len(staplecheck_records(debug_log, logging.WARNING))

    assert warnings_after(0) == 1
    assert warnings_after(59) == 1
    assert warnings_after(1) == 2  # 60 s after the first warning
    assert warnings_after(30) == 2
    assert server.handshakes == 8


def warned(
    caplog: pytest.LogCaptureFixture,
    log: VerdictLog,
    host: str,
    status: StapleStatus,
    accepted: bool = True,
) -> bool:
    """Whether recording this verdict logged a WARNING (it always logs at DEBUG)."""
    before = len(staplecheck_records(caplog, logging.WARNING))
    debug = len(staplecheck_records(caplog, logging.DEBUG))
    log.record(host, as_policy("soft-fail"), StapleResult(status=status, reason="r"), accepted)
    assert len(staplecheck_records(caplog, logging.DEBUG)) == debug + 1
    return len(staplecheck_records(caplog, logging.WARNING)) > before


def test_verdict_log_rate_limit_directly(debug_log: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    log = VerdictLog(interval=10, clock=clock)
    missing, stale, good = StapleStatus.MISSING, StapleStatus.STALE, StapleStatus.GOOD
    assert warned(debug_log, log, "a.test", missing)
    assert not warned(debug_log, log, "a.test", missing)
    assert warned(debug_log, log, "a.test", stale)  # per host and status
    assert warned(debug_log, log, "b.test", missing)
    assert not warned(debug_log, log, "a.test", good)  # a good staple is no news
    assert warned(debug_log, log, "a.test", missing, accepted=False)  # rejections: always
    assert warned(debug_log, log, "a.test", StapleStatus.REVOKED, accepted=False)
    clock.now += 9
    assert not warned(debug_log, log, "a.test", missing)
    clock.now += 1
    assert warned(debug_log, log, "a.test", missing)  # the interval has passed
    assert not warned(debug_log, log, "a.test", missing)


def test_verdict_log_forgets_the_oldest_beyond_max_hosts(
    debug_log: pytest.LogCaptureFixture,
) -> None:
    log = VerdictLog(interval=10, clock=FakeClock(), max_hosts=2)  # the clock never moves
    missing = StapleStatus.MISSING
    assert warned(debug_log, log, "a.test", missing)
    assert warned(debug_log, log, "b.test", missing)
    assert not warned(debug_log, log, "a.test", missing)
    assert warned(debug_log, log, "c.test", missing)  # pushes out a.test, the oldest told
    assert not warned(debug_log, log, "b.test", missing)
    assert warned(debug_log, log, "a.test", missing)  # forgotten, so told again
    assert not warned(debug_log, log, "c.test", missing)


# --- 8. policy off ------------------------------------------------------------------------


@pytest.mark.parametrize("staple", ["good", "revoked"])
def test_policy_off_never_asks_for_a_staple(
    live: Live, serve: Serve, new_session: NewSession, tls: str, staple: str
) -> None:
    server = serve(live.leaf, staple, tls_version=tls)
    response = new_session("off").get(server.url, verify=live.ca_file)
    assert response.status_code == 200
    assert response.staple is None
    assert (server.handshakes, server.staples_sent) == (1, 0)


# --- 9. urllib3 directly -------------------------------------------------------------------


def test_pool_manager_attaches_the_staple(
    live: Live, serve: Serve, managers: Register, tls: str
) -> None:
    server = serve(live.leaf, tls_version=tls)
    manager = managers(pool_manager("soft-fail", ca_certs=live.ca_file))
    responses = [manager.request("GET", server.url) for _ in range(2)]
    for response in responses:
        assert response.status == 200
        assert response.staple.status is StapleStatus.GOOD
        assert response.staple.serial_number == live.leaf.cert.serial_number
    assert server.handshakes == 1


@pytest.mark.parametrize(
    ("retries", "raised", "attempts"),
    [
        (False, urllib3.exceptions.SSLError, 1),
        (Retry(0), urllib3.exceptions.MaxRetryError, 1),
        # urllib3's default Retry(3) repeats a rejected handshake: 4 in all.
        (None, urllib3.exceptions.MaxRetryError, 4),
    ],
    ids=["retries-false", "retry-0", "default-retries"],
)
def test_pool_manager_rejects_a_revoked_staple(
    live: Live,
    serve: Serve,
    managers: Register,
    tls: str,
    retries: Any,
    raised: type[Exception],
    attempts: int,
) -> None:
    server = serve(live.leaf, "revoked", tls_version=tls)
    manager = managers(pool_manager(ca_certs=live.ca_file))
    options = {} if retries is None else {"retries": retries}
    with pytest.raises(raised) as caught:
        manager.request("GET", server.url, **options)
    assert_staple_rejected(caught.value, StapleStatus.REVOKED, live.leaf)
    assert (server.staples_sent, server.requests) == (attempts, 0)


def test_plain_pool_manager_with_a_staple_context(
    live: Live, serve: Serve, managers: Register, tls: str
) -> None:
    good = serve(live.leaf, tls_version=tls)
    revoked = serve(live.twin, "revoked", tls_version=tls)
    manager = managers(urllib3.PoolManager(ssl_context=StapleSSLContext(cafile=live.ca_file)))
    response = manager.request("GET", good.url)
    assert response.status == 200
    # Found: a plain PoolManager checks staples but its responses have no `.staple`
    # (only pool_manager()/StapleAdapter install the pools that attach it). The verdict
    # is still on the socket while the connection is held: preload_content=False.
    assert not hasattr(response, "staple")
    held = manager.request("GET", good.url, preload_content=False)
    try:
        assert held.connection.sock.staple.status is StapleStatus.GOOD
    finally:
        held.release_conn()
    with pytest.raises(urllib3.exceptions.SSLError) as caught:
        manager.request("GET", revoked.url, retries=False)
    assert_staple_rejected(caught.value, StapleStatus.REVOKED, live.twin)


def test_staple_of_reads_every_carrier(
    live: Live, serve: Serve, new_session: NewSession, managers: Register
) -> None:
    """``staple_of`` is the typed accessor: requests and urllib3 responses, sockets."""
    server = serve(live.leaf)
    response = new_session().get(server.url, verify=live.ca_file)
    staple = staple_of(response)
    assert staple is not None
    assert staple.status is StapleStatus.GOOD
    assert staple_of(response.raw) is staple
    del response.staple  # type: ignore[attr-defined]  # the urllib3 response still has it
    assert staple_of(response) is staple
    assert staple_of(new_session("off").get(server.url, verify=live.ca_file)) is None
    manager = managers(pool_manager(ca_certs=live.ca_file))
    assert staple_of(manager.request("GET", server.url)) == staple
    assert staple_of(None) is None


# --- 10. host names -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_wrong_host_name_fails_under_every_policy(
    live: Live, serve: Serve, new_session: NewSession, tls: str, mode: str, host: str
) -> None:
    server = serve(live.other, tls_version=tls)  # other.test only, good staple
    with pytest.raises(requests.exceptions.SSLError, match="doesn't match") as caught:
        new_session(mode).get(at(server, host), verify=live.ca_file)
    assert find_staple_error(caught.value) is None
    assert server.requests == 0


# urllib3 calls getpeercert() on the StapleSocket when it matches host names itself;


@pytest.mark.parametrize("mode", MODES)
def test_urllib3_assert_hostname(live: Live, serve: Serve, managers: Register, mode: str) -> None:
    server = serve(live.other)

    def get(**options: Any) -> Any:
        manager = managers(pool_manager(mode, ca_certs=live.ca_file, **options))
        return manager.request("GET", at(server), retries=False)

    with pytest.raises(urllib3.exceptions.SSLError, match=r"doesn't match 'other\.test'"):
        get()
    # urllib3 turns check_hostname off and matches the asserted name itself...
    response = get(assert_hostname="other.test")
    assert response.status == 200
    if mode == "off":
        assert response.staple is None
    else:
        assert response.staple.status is StapleStatus.GOOD
    # ...so a wrong asserted name still fails.
    with pytest.raises(urllib3.exceptions.SSLError, match=r"wrong\.test"):
        get(assert_hostname="wrong.test")
    assert server.requests == 1


def test_assert_hostname_uses_no_deprecated_api(
    live: Live, serve: Serve, managers: Register
) -> None:
    server = serve(live.other)
    manager = managers(pool_manager(ca_certs=live.ca_file, assert_hostname="other.test"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        assert manager.request("GET", at(server), retries=False).status == 200


# --- the default verify=True path goes through staplecheck --------------------------------


def test_verify_true_uses_the_staple_context(
    live: Live, serve: Serve, cleanup: contextlib.ExitStack, tls: str
) -> None:
    """requests 2.32.2 once swapped in its own stdlib context for ``verify=True``,
    silently skipping staple checks. The stdlib never asks for a staple, so a server
    that was asked for one proves the handshake ran through staplecheck's context (the
    handshake then fails: certifi does not trust the test root)."""
    server = serve(live.leaf, "good", tls_version=tls)
    session = cleanup.enter_context(requests.Session())
    session.trust_env = False  # verify=True must mean certifi, not REQUESTS_CA_BUNDLE
    session.mount("https://", StapleAdapter())
    with pytest.raises(requests.exceptions.SSLError, match="certificate verify failed"):
        session.get(server.url, verify=True, timeout=10)
    assert server.staples_sent == 1
