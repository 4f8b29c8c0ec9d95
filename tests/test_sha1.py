"""SHA-1-signed certificates and responses (issue 7, finding 8).

cryptography's ``verify_directly_issued_by`` refuses SHA-1, which made a SHA-1-signed
delegated responder "not verify" and ``staplecheck verify`` call a SHA-1-signed leaf's
real issuer "not the issuer". staplecheck now judges them as OpenSSL's OCSP
verification does, with true reasons, and ``Policy.allow_sha1=False`` (CLI:
``--refuse-sha1``) refuses SHA-1 in the response's signature and its signer's.
"""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import serialization

from staplecheck import Policy, StapleAdapter, StapleStatus, find_staple_error, validate_staple
from staplecheck.cli._main import main
from staplecheck.testing import CA, KeyType, StaplingServer

NOW = datetime.datetime(2026, 11, 21, 12, tzinfo=datetime.timezone.utc)


@pytest.mark.parametrize("key_type", ["ecdsa", "rsa"])
def test_sha1_signed_delegate_is_judged_by_its_signature(key_type: KeyType) -> None:
    ca = CA(key_type=key_type, now=NOW)
    leaf = ca.issue_cert("a.test")
    delegate = ca.issue_responder(signature_hash="sha1", key_type=key_type)
    staple = ca.ocsp_response(leaf, responder=delegate)
    result = validate_staple(staple, leaf.cert, ca.cert, now=NOW)
    assert result.status is StapleStatus.GOOD, result.reason
    assert "delegated responder" in result.reason
    refused = validate_staple(staple, leaf.cert, ca.cert, now=NOW, allow_sha1=False)
    assert refused.status is StapleStatus.INVALID
    assert "SHA-1" in refused.reason


@pytest.mark.parametrize("key_type", ["ecdsa", "rsa"])
def test_sha1_signed_delegate_from_another_ca_is_refused_for_the_true_reason(
    key_type: KeyType,
) -> None:
    ca = CA(key_type=key_type, now=NOW)
    impostor = CA(key_type=key_type, now=NOW)  # the same name, another key
    leaf = ca.issue_cert("a.test")
    delegate = impostor.issue_responder(signature_hash="sha1", key_type=key_type)
    result = validate_staple(
        ca.ocsp_response(leaf, responder=delegate), leaf.cert, ca.cert, now=NOW
    )
    assert result.status is StapleStatus.INVALID
    assert "its signature does not verify with the issuer's key" in result.reason


def test_sha1_signed_response_is_accepted_unless_refused() -> None:
    ca = CA(key_type="rsa", now=NOW)
    leaf = ca.issue_cert("a.test")
    staple = ca.ocsp_response(leaf, signature_hash="sha1")
    assert validate_staple(staple, leaf.cert, ca.cert, now=NOW).status is StapleStatus.GOOD
    refused = validate_staple(staple, leaf.cert, ca.cert, now=NOW, allow_sha1=False)
    assert refused.status is StapleStatus.INVALID
    assert "allow_sha1=False" in refused.reason
    revoked = ca.ocsp_response(leaf, "revoked", signature_hash="sha1")
    refused = validate_staple(revoked, leaf.cert, ca.cert, now=NOW, allow_sha1=False)
    assert refused.status is StapleStatus.INVALID
    assert "it said revoked" in refused.reason


def test_sha256_everywhere_passes_with_sha1_refused() -> None:
    ca = CA(now=NOW)
    leaf = ca.issue_cert("a.test")
    staple = ca.ocsp_response(leaf, responder=ca.issue_responder())
    result = validate_staple(staple, leaf.cert, ca.cert, now=NOW, allow_sha1=False)
    assert result.status is StapleStatus.GOOD


def test_policy_refusing_sha1_refuses_the_connection(tmp_path: Path) -> None:
    root = CA()
    issuer = root.create_intermediate(key_type="rsa")
    cafile = root.write_trust(tmp_path / "ca.pem")
    leaf = issuer.issue_cert("localhost")
    staple = issuer.ocsp_response(leaf, signature_hash="sha1")
    strict = dataclasses.replace(Policy.SOFT_FAIL, allow_sha1=False)
    with StaplingServer(leaf, staple) as server:
        for policy, accepted in ((Policy.SOFT_FAIL, True), (strict, False)):
            with requests.Session() as session:
                session.trust_env = False
                session.mount("https://", StapleAdapter(policy))
                if accepted:
                    response = session.get(server.url, verify=cafile, timeout=10)
                    assert response.staple is not None
                    assert response.staple.status is StapleStatus.GOOD
                    continue
                with pytest.raises(requests.exceptions.SSLError) as caught:
                    session.get(server.url, verify=cafile, timeout=10)
                found = find_staple_error(caught.value)
                assert found is not None
                assert "SHA-1" in found.result.reason


@pytest.mark.parametrize("key_type", ["ecdsa", "rsa"])
def test_verify_cli_accepts_a_sha1_signed_leaf_and_its_real_issuer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key_type: KeyType
) -> None:
    ca = CA(key_type=key_type, now=NOW)
    leaf = ca.issue_cert("a.test", signature_hash="sha1")
    paths = {
        "leaf": tmp_path / "leaf.pem",
        "issuer": tmp_path / "issuer.pem",
        "staple": tmp_path / "staple.der",
    }
    paths["leaf"].write_bytes(leaf.cert.public_bytes(serialization.Encoding.PEM))
    paths["issuer"].write_bytes(ca.cert.public_bytes(serialization.Encoding.PEM))
    paths["staple"].write_bytes(ca.ocsp_response(leaf))
    argv = [
        "verify",
        str(paths["staple"]),
        "--cert",
        str(paths["leaf"]),
        "--issuer",
        str(paths["issuer"]),
        "--at",
        "2026-11-21T12:00Z",
    ]
    assert main(argv) == 0
    assert "good" in capsys.readouterr().out
    other = CA(key_type=key_type, now=NOW)
    paths["issuer"].write_bytes(other.cert.public_bytes(serialization.Encoding.PEM))
    assert main(argv) == 2
    assert "signature does not verify" in capsys.readouterr().err


def test_verify_cli_refuse_sha1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ca = CA(key_type="rsa", now=NOW)
    leaf = ca.issue_cert("a.test")
    (tmp_path / "leaf.pem").write_bytes(leaf.cert_pem)
    (tmp_path / "issuer.pem").write_bytes(ca.cert_pem)
    (tmp_path / "staple.der").write_bytes(ca.ocsp_response(leaf, signature_hash="sha1"))
    argv = ["verify", str(tmp_path / "staple.der"), "--cert", str(tmp_path / "leaf.pem")]
    argv += ["--issuer", str(tmp_path / "issuer.pem"), "--at", "2026-11-21T12:00Z"]
    assert main(argv) == 0
    capsys.readouterr()
    assert main([*argv, "--refuse-sha1"]) == 1
    assert "SHA-1" in capsys.readouterr().out
