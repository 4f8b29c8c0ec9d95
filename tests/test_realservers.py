"""requests + StapleAdapter against real stapling servers: ``openssl s_server`` and nginx.

Every row of DESIGN.md's policy table is served by both servers in TLS 1.2 and 1.3 and
fetched under each policy; the decision must match the table cell for cell (the rows
of ``tests/tls_cases.py``). One server runs per (server, TLS version, row) and serves
the three policies' requests.

The PKI is made at the real current time: the servers' chains are verified by OpenSSL
against the wall clock, so the fixed ``NOW`` of the unit tests cannot be used here.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from staplecheck import StapleAdapter, StapleStatus, find_staple_error
from staplecheck.testing import CA, Identity

from . import realservers
from .realservers import (
    SERVER_KINDS,
    TLS_VERSIONS,
    Nginx,
    OpenSSLServer,
    RealServer,
    ServerStartError,
    launch,
    port_accepts,
)
from .tls_cases import MODES, POLICY_TABLE, StapleCase

SERVED = [
    (kind, version, case)
    for kind in SERVER_KINDS
    for version in TLS_VERSIONS
    for case in POLICY_TABLE
]


@dataclasses.dataclass(frozen=True)
class World:
    """A PKI at the current time, written to ``directory`` as PEM and DER files."""

    directory: Path
    intermediate: CA
    trust: str
    """The root, PEM: what clients pass as ``verify``."""
    foreign_trust: str
    """Another CA's root: a chain the servers send does not verify against it."""
    leaves: dict[bool, Identity]
    """must-staple? → a leaf for localhost and 127.0.0.1."""
    other_host: tuple[str, str]
    """Chain and key of a leaf for "other.test" only."""
    other_host_staple: str

    def served(self, must_staple: bool) -> tuple[str, str]:
        """Chain and key files of the localhost leaf (with or without must-staple)."""
        name = f"must-staple-{must_staple}"
        return str(self.directory / f"{name}.crt"), str(self.directory / f"{name}.key")

    def staple(self, case: StapleCase) -> str | None:
        """A DER file with ``case``'s staple for its leaf (None: no staple).

        "invalid" is well-formed with a corrupted signature: servers will not staple
        unparsable bytes.
        """
        der = case.staple(self.intermediate, self.leaves[case.must_staple], self.intermediate.now)
        if der is None:
            return None
        path = self.directory / f"{case.name}.der"
        path.write_bytes(der)
        return str(path)


GOOD = POLICY_TABLE[0]
assert GOOD.status is StapleStatus.GOOD


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    directory = tmp_path_factory.mktemp("realservers")
    root = CA(name="real-server root")  # now: OpenSSL verifies with the wall clock
    intermediate = root.create_intermediate(name="real-server intermediate")
    leaves = {
        flag: intermediate.issue_cert("localhost", "127.0.0.1", must_staple=flag)
        for flag in (False, True)
    }
    for flag, leaf in leaves.items():
        leaf.write(directory, f"must-staple-{flag}")
    other = intermediate.issue_cert("other.test")
    other_staple = directory / "other-host-good.der"
    other_staple.write_bytes(intermediate.ocsp_response(other, "good"))
    return World(
        directory=directory,
        intermediate=intermediate,
        trust=root.write_trust(directory / "root.pem"),
        foreign_trust=CA(name="foreign root").write_trust(directory / "foreign-root.pem"),
        leaves=leaves,
        other_host=other.write(directory, "other-host"),
        other_host_staple=str(other_staple),
    )


# --- the client --------------------------------------------------------------------------


def fetch(url: str, policy: str, verify: str) -> requests.Response:
    """GET ``url`` through a fresh session with a StapleAdapter; ``verify`` always
    explicit (this machine exports REQUESTS_CA_BUNDLE)."""
    with requests.Session() as session:
        session.mount("https://", StapleAdapter(policy))
        return session.get(url, verify=verify, timeout=10)


def refused(url: str, policy: str, verify: str) -> requests.exceptions.SSLError:
    """The SSLError that fetching ``url`` must raise."""
    with pytest.raises(requests.exceptions.SSLError) as info:
        fetch(url, policy, verify)
    return info.value


# --- the policy table, end to end ----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Served:
    server: RealServer
    case: StapleCase


@pytest.fixture(
    scope="module",
    params=SERVED,
    ids=[f"{kind}-tls{version}-{case.name}" for kind, version, case in SERVED],
)
def served(request: pytest.FixtureRequest, world: World) -> Iterator[Served]:
    kind, version, case = request.param
    chain, key = world.served(case.must_staple)
    with launch(kind, chain, key, world.staple(case), version) as server:
        yield Served(server, case)


@pytest.mark.parametrize("policy", MODES)
def test_policy_table_against_real_servers(served: Served, policy: str, world: World) -> None:
    url, case = served.server.url(), served.case
    if case.expected_accept(policy):
        response = fetch(url, policy, world.trust)
        assert response.status_code == 200
        if policy == "off":
            assert response.staple is None  # not asked for, so not judged
        else:
            assert response.staple is not None
            assert response.staple.status is case.status, response.staple.reason
            assert response.staple.must_staple is case.must_staple
        return
    error = refused(url, policy, world.trust)
    staple_error = find_staple_error(error)
    assert staple_error is not None, f"rejected, but not for the staple: {error}"
    assert staple_error.result.status is case.status, staple_error.result.reason
    assert staple_error.result.must_staple is case.must_staple
    assert staple_error.host == "localhost"
    assert staple_error.result.reason
    for text in ("localhost", case.status.value, staple_error.result.reason):
        assert text in str(error), f"{text!r} not in {error}"
        assert text in str(staple_error)


# --- failures that are not the staple's: rejected under every policy -----------------------


@pytest.fixture(scope="module", params=TLS_VERSIONS, ids=lambda v: f"tls{v}")
def nginx_other_host(request: pytest.FixtureRequest, world: World) -> Iterator[RealServer]:
    """nginx serving a leaf for "other.test", with a good staple."""
    with launch("nginx", *world.other_host, world.other_host_staple, request.param) as server:
        yield server


@pytest.fixture(scope="module", params=TLS_VERSIONS, ids=lambda v: f"tls{v}")
def nginx_good(request: pytest.FixtureRequest, world: World) -> Iterator[RealServer]:
    """nginx serving the plain localhost leaf with a good staple."""
    with launch("nginx", *world.served(False), world.staple(GOOD), request.param) as server:
        yield server


@pytest.mark.parametrize("policy", MODES)
def test_wrong_hostname_is_rejected_under_every_policy(
    nginx_other_host: RealServer, policy: str, world: World
) -> None:
    # The chain verifies against the trusted root and the staple is good: only the name
    # is wrong.
    error = refused(nginx_other_host.url("localhost"), policy, world.trust)
    assert find_staple_error(error) is None
    assert "other.test" in str(error)
    assert "localhost" in str(error)


@pytest.mark.parametrize("policy", MODES)
def test_untrusted_chain_is_rejected_under_every_policy(
    nginx_good: RealServer, policy: str, world: World
) -> None:
    assert fetch(nginx_good.url(), policy, world.trust).status_code == 200  # the control
    error = refused(nginx_good.url(), policy, world.foreign_trust)
    assert find_staple_error(error) is None
    assert "certificate verify failed" in str(error)


# --- the stapling facts tests/realservers.py documents ------------------------------------


@pytest.mark.parametrize("version", TLS_VERSIONS, ids=lambda v: f"tls{v}")
@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_the_first_handshake_is_already_stapled(kind: str, version: str, world: World) -> None:
    with launch(kind, *world.served(False), world.staple(GOOD), version) as server:
        # The launcher's readiness probe is a bare TCP connect: this is the first TLS
        # handshake the server ever makes.
        response = fetch(server.url(), "must-staple", world.trust)
    assert response.staple is not None
    assert response.staple.status is StapleStatus.GOOD


@pytest.mark.parametrize("version", TLS_VERSIONS, ids=lambda v: f"tls{v}")
def test_nginx_staples_from_a_file_without_the_issuer_in_ssl_certificate(
    version: str, world: World
) -> None:
    leaf = world.leaves[False]
    leaf_only = world.directory / "leaf-only.pem"
    leaf_only.write_bytes(leaf.cert_pem)
    both = world.directory / "root-and-intermediate.pem"
    both.write_bytes(Path(world.trust).read_bytes() + world.intermediate.cert_pem)
    _, key = world.served(False)
    with Nginx(leaf_only, key, world.staple(GOOD), (f"TLSv{version}",)) as server:
        response = fetch(server.url(), "must-staple", str(both))
        assert response.staple is not None
        assert response.staple.status is StapleStatus.GOOD
        # Sent alone, the leaf does not verify against the root: the client needs the
        # intermediate from ssl_certificate.
        error = refused(server.url(), "off", world.trust)
        assert find_staple_error(error) is None


def test_nginx_refuses_to_start_with_an_unparsable_staple(world: World) -> None:
    garbage = world.directory / "garbage.der"
    garbage.write_bytes(b"\x30\x03not an OCSP response")
    server = Nginx(*world.served(False), garbage)
    with pytest.raises(ServerStartError, match=r"d2i_OCSP_RESPONSE") as info:
        server.start()
    assert "nginx.conf" in str(info.value)
    assert server.port is None
    assert not server.running


@pytest.mark.parametrize("version", TLS_VERSIONS, ids=lambda v: f"tls{v}")
def test_s_server_starts_with_an_unparsable_status_file_and_fails_stapled_handshakes(
    version: str, world: World
) -> None:
    garbage = world.directory / "garbage.der"
    garbage.write_bytes(b"\x30\x03not an OCSP response")
    with OpenSSLServer(*world.served(False), garbage, version) as server:
        assert fetch(server.url(), "off", world.trust).status_code == 200  # no staple asked
        error = refused(server.url(), "soft-fail", world.trust)
        assert find_staple_error(error) is None
        assert "alert internal error" in str(error)


# --- the launchers themselves --------------------------------------------------------------


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_a_stopped_server_is_gone(kind: str, world: World) -> None:
    server = launch(kind, *world.served(False))
    with server:
        pid, port = server.pid, server.port
        assert pid is not None
        assert port is not None
        assert server.running
        assert port_accepts(port)
        directory = server.directory
    assert not server.running
    assert not port_accepts(port)
    assert not directory.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_a_port_taken_meanwhile_is_retried(
    kind: str, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The port a launcher picks can be taken before the server binds it. Force that
    # race: the first port offered is held by a listening socket of this test, which
    # answers TCP connects, so only the ownership check tells the server did not bind.
    with socket.socket() as squatter:
        squatter.bind((realservers.HOST, 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        ports = iter([taken])
        real_free_port = realservers.free_port
        monkeypatch.setattr(realservers, "free_port", lambda: next(ports, None) or real_free_port())
        with launch(kind, *world.served(False), world.staple(GOOD)) as server:
            assert server.port not in (None, taken)
            response = fetch(server.url(), "must-staple", world.trust)
            assert response.staple is not None
            assert response.staple.status is StapleStatus.GOOD
