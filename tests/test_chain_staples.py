"""A staple about another certificate of the verified chain (issue 7, finding 7).

TLS 1.3 lets a server attach a status to any CertificateEntry (RFC 8446 §4.4.2.1), and
OpenSSL 4 hands the client callback a staple found on a non-leaf entry when the leaf
has none; servers can also simply staple their intermediate's response. Such a
response says nothing about the leaf: the leaf's staple is ``missing`` (the reason
says so), never ``good`` and never ``invalid``, so soft-fail does not refuse an honest
server and must-staple still does.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
import requests

from staplecheck import (
    StapleAdapter,
    StapleResult,
    StapleStatus,
    find_staple_error,
    validate_staple,
)
from staplecheck.testing import CA, Identity
from tests.conftest import require_program
from tests.realservers import OpenSSLServer, TLSVersion

NOW = datetime.datetime(2026, 11, 21, 12, tzinfo=datetime.timezone.utc)


@pytest.fixture(scope="module")
def pki() -> tuple[CA, CA, Identity]:
    root = CA(now=NOW)
    intermediate = root.create_intermediate()
    return root, intermediate, intermediate.issue_cert("localhost")


def test_response_about_the_issuer_means_the_leafs_staple_is_missing(
    pki: tuple[CA, CA, Identity],
) -> None:
    root, intermediate, leaf = pki
    about_issuer = root.ocsp_response(intermediate.cert)
    chain = [intermediate.cert, root.cert]
    result = validate_staple(about_issuer, leaf.cert, intermediate.cert, now=NOW, chain=chain)
    assert result.status is StapleStatus.MISSING
    assert "CN=staplecheck test intermediate (certificate 2 of the verified chain)" in (
        result.reason
    )
    assert result.serial_number == leaf.cert.serial_number
    without_chain = validate_staple(about_issuer, leaf.cert, intermediate.cert, now=NOW)
    assert without_chain.status is StapleStatus.INVALID


def test_revoked_issuer_response_is_no_verdict_on_the_leaf(
    pki: tuple[CA, CA, Identity],
) -> None:
    """Even a (properly signed) revoked answer about the intermediate is not a verdict
    on the leaf: checking intermediates is the fallback's job, not the staple's."""
    root, intermediate, leaf = pki
    revoked = root.ocsp_response(intermediate.cert, "revoked")
    chain = [intermediate.cert, root.cert]
    result = validate_staple(revoked, leaf.cert, intermediate.cert, now=NOW, chain=chain)
    assert result.status is StapleStatus.MISSING


def test_a_response_that_names_the_leaf_is_judged_as_the_leafs(
    pki: tuple[CA, CA, Identity],
) -> None:
    """An entry for the leaf beside one for the issuer: judged, not waved through as
    missing (here its signature is broken, so it is invalid)."""
    root, intermediate, leaf = pki
    from staplecheck.testing import OCSPEntry

    both = intermediate.ocsp_response(
        leaf,
        extra_entries=[OCSPEntry(serial_number=intermediate.cert.serial_number, issuer=root)],
        corrupt_signature=True,
    )
    chain = [intermediate.cert, root.cert]
    result = validate_staple(both, leaf.cert, intermediate.cert, now=NOW, chain=chain)
    assert result.status is StapleStatus.INVALID
    assert "signature" in result.reason


def test_response_about_a_certificate_outside_the_chain_stays_invalid(
    pki: tuple[CA, CA, Identity],
) -> None:
    root, intermediate, leaf = pki
    stranger = root.create_intermediate(name="another intermediate")
    about_stranger = root.ocsp_response(stranger.cert)
    chain = [intermediate.cert, root.cert]
    result = validate_staple(about_stranger, leaf.cert, intermediate.cert, now=NOW, chain=chain)
    assert result.status is StapleStatus.INVALID


@pytest.mark.parametrize("tls", ["1.2", "1.3"])
@pytest.mark.parametrize("must_staple", [False, True], ids=["plain", "must-staple-cert"])
def test_server_stapling_its_intermediates_response(
    tmp_path: Path, tls: TLSVersion, must_staple: bool
) -> None:
    """``openssl s_server`` staples whatever file it is given (the in-process server's
    OpenSSL 4 sends a response that is not the leaf's to nobody): here the
    intermediate's, properly signed by the root."""
    require_program("openssl")
    root = CA()
    intermediate = root.create_intermediate()
    cafile = root.write_trust(tmp_path / "ca.pem")
    leaf = intermediate.issue_cert("localhost", must_staple=must_staple)
    chain, key = leaf.write(tmp_path)
    status = tmp_path / "status.der"
    status.write_bytes(root.ocsp_response(intermediate.cert))
    with OpenSSLServer(chain, key, status, tls_version=tls) as server:
        for mode in ("soft-fail", "must-staple"):
            accepted, result = _connect(mode, server.url(), cafile)
            assert accepted is (mode == "soft-fail" and not must_staple)
            assert result.status is StapleStatus.MISSING, result
            assert "certificate 2 of the verified chain" in result.reason


def _connect(mode: str, url: str, cafile: str) -> tuple[bool, StapleResult]:
    """Whether the connection was accepted, and the staple's verdict either way."""
    with requests.Session() as session:
        session.trust_env = False
        session.mount("https://", StapleAdapter(mode))
        try:
            response = session.get(url, verify=cafile, timeout=10)
        except requests.exceptions.SSLError as error:
            found = find_staple_error(error)
            if found is None:
                raise
            return False, found.result
    assert response.staple is not None
    return True, response.staple
