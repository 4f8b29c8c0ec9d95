"""A chain OpenSSL did not verify is never judged as if it had been (issue 7, finding 2).

A user's own ``SSL.Connection`` on a staplecheck context can turn verification off
(``set_verify(VERIFY_NONE)``) or override every failure with a verify callback, and
still ask for a staple. pyOpenSSL then still hands the OCSP callback a "verified"
chain. The callback reads what OpenSSL did (verify mode and verify result): such a
connection gets no verdict that could accept, and nothing it showed is remembered.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from OpenSSL import SSL

from staplecheck import StapleCache, StapleStatus, TLSConfig, create_context, get_staple_result
from staplecheck.testing import CA, StaplingServer

Configure = Callable[[SSL.Connection], None]


def _verify_none(connection: SSL.Connection) -> None:
    connection.set_verify(SSL.VERIFY_NONE, None)


def _accept_everything(connection: SSL.Connection) -> None:
    connection.set_verify(SSL.VERIFY_PEER, lambda *_: True)


def _as_is(connection: SSL.Connection) -> None:
    """The context's own settings: verify the peer, keep OpenSSL's decision."""


def _handshake(context: SSL.Context, port: int, configure: Configure) -> SSL.Connection:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.setblocking(True)
        connection = SSL.Connection(context, sock)
        configure(connection)
        connection.set_tlsext_host_name(b"localhost")
        connection.request_ocsp()
        connection.set_connect_state()
        with contextlib.suppress(SSL.Error):  # refused by the policy: the verdict says why
            connection.do_handshake()
        return connection


@pytest.fixture(scope="module")
def trusted(tmp_path_factory: pytest.TempPathFactory) -> tuple[CA, str]:
    root = CA()
    return root.create_intermediate(), root.write_trust(tmp_path_factory.mktemp("ca") / "ca.pem")


@pytest.mark.parametrize("configure", [_verify_none, _accept_everything], ids=["none", "override"])
@pytest.mark.parametrize("chain", ["untrusted", "trusted"])
def test_unverified_chain_gets_no_good_verdict_and_is_not_remembered(
    trusted: tuple[CA, str], tmp_path: Path, configure: Configure, chain: str
) -> None:
    """A good staple on a chain OpenSSL did not verify (or whose verification the
    connection skipped or overrode) is not evidence: never ``good``, never cached."""
    issuer, cafile = trusted
    if chain == "untrusted":
        stranger = CA().create_intermediate()
        leaf, staple_from = stranger.issue_cert("localhost"), stranger
    else:
        leaf, staple_from = issuer.issue_cert("localhost"), issuer
    cache = StapleCache()
    context = create_context("soft-fail", config=TLSConfig(cafiles=(cafile,)), cache=cache)
    with StaplingServer(leaf, staple_from.ocsp_response(leaf)) as server:
        connection = _handshake(context, server.port, configure)
    # With a trusted chain and VERIFY_NONE, OpenSSL still checks the chain, but the
    # connection asked not to rely on it; neither does staplecheck.
    result = get_staple_result(connection)
    assert result is not None
    assert result.status is StapleStatus.INVALID
    assert "verification is off or did not succeed" in result.reason
    assert len(cache) == 0
    assert len(cache.certificates) == 0


def test_verified_chain_on_a_plain_connection_is_judged(trusted: tuple[CA, str]) -> None:
    """The control: the same plain connection, verification as the context set it."""
    issuer, cafile = trusted
    leaf = issuer.issue_cert("localhost")
    cache = StapleCache()
    context = create_context("soft-fail", config=TLSConfig(cafiles=(cafile,)), cache=cache)
    with StaplingServer(leaf, issuer.ocsp_response(leaf)) as server:
        connection = _handshake(context, server.port, _as_is)
    result = get_staple_result(connection)
    assert result is not None
    assert result.status is StapleStatus.GOOD
    assert len(cache) == 1
