"""Certificates whose encoding cryptography reads otherwise than it was sent.

OpenSSL verifies them; cryptography re-encodes keys (an EC point sent compressed comes
back uncompressed) and cannot parse some legacy names (a T61String with Latin-1
bytes). staplecheck reads names and key bits from the DER as sent, so honest staples
for such certificates are judged right, and none of them gets a raw exception, a false
refusal or a false ``good``. (Found by the adversarial review of issue 7.)
"""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from staplecheck import StapleStatus, find_staple_error, session, validate_staple
from staplecheck.cli._main import main
from staplecheck.testing import CA, Identity, StaplingServer
from staplecheck.testing import _asn1 as asn1
from staplecheck.validation import _der

NOW = datetime.datetime(2026, 11, 21, 12, tzinfo=datetime.timezone.utc)
_ECDSA_SHA256 = asn1.sequence(asn1.oid("1.2.840.10045.4.3.2"))


def _fields(cert: x509.Certificate) -> list[bytes]:
    """The TBSCertificate's fields, each as complete DER."""
    der = cert.public_bytes(serialization.Encoding.DER)
    tbs = _der.children(_der.expect(_der.read_tlv(der), _der.SEQUENCE))[0].value
    return [tbs[f.start : f.end] for f in _der.children(tbs)]


def _signed(fields: list[bytes], key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    tbs = asn1.sequence(*fields)
    signature = key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    return x509.load_der_x509_certificate(
        asn1.sequence(tbs, _ECDSA_SHA256, asn1.bit_string(signature))
    )


def _compressed_spki(key: ec.EllipticCurvePublicKey) -> bytes:
    point = key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )
    algorithm = asn1.sequence(asn1.oid("1.2.840.10045.2.1"), asn1.oid("1.2.840.10045.3.1.7"))
    return asn1.sequence(algorithm, asn1.bit_string(point))


def _reissued(cert: x509.Certificate, signer: CA, **replace: bytes) -> x509.Certificate:
    """``cert`` with some TBS fields replaced (``issuer``, ``subject``, ``spki``),
    signed again by ``signer`` (version, serial, algorithm, issuer, validity, subject,
    subjectPublicKeyInfo, extensions: indices 0-7)."""
    fields = _fields(cert)
    for name, value in replace.items():
        fields[{"issuer": 3, "subject": 5, "spki": 6}[name]] = value
    key = signer.private_key
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return _signed(fields, key)


def _t61_name(common_name: bytes, organization: bytes) -> bytes:
    def rdn(oid: str, tag: int, value: bytes) -> bytes:
        return asn1.tlv(0x31, asn1.sequence(asn1.oid(oid), asn1.tlv(tag, value)))

    return asn1.sequence(rdn("2.5.4.3", 0x0C, common_name), rdn("2.5.4.10", 0x14, organization))


# --- compressed EC points -------------------------------------------------------------------


@pytest.fixture(scope="module")
def compressed_ca() -> CA:
    """A root whose certificate carries its P-256 key as a compressed point."""
    ca = CA(now=NOW, name="compressed CA")
    key = ca.private_key
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    ca.cert = _reissued(ca.cert, ca, spki=_compressed_spki(key.public_key()))
    assert b"\x03\x42\x00\x04" not in ca.cert.public_bytes(serialization.Encoding.DER)
    return ca


@pytest.mark.parametrize("responder_id", ["name", "key"])
def test_issuer_with_a_compressed_key_gets_its_staples_judged(
    compressed_ca: CA, responder_id: str
) -> None:
    """The CertID's issuerKeyHash and a byKey ResponderID hash the key bits as they
    are in the certificate, compressed (as OpenSSL's responder does)."""
    leaf = compressed_ca.issue_cert("a.test")
    staple = compressed_ca.ocsp_response(leaf, responder_id=responder_id)
    result = validate_staple(staple, leaf.cert, compressed_ca.cert, now=NOW)
    assert result.status is StapleStatus.GOOD, result.reason
    revoked = compressed_ca.ocsp_response(leaf, "revoked", responder_id=responder_id)
    result = validate_staple(revoked, leaf.cert, compressed_ca.cert, now=NOW)
    assert result.status is StapleStatus.REVOKED, result.reason


def test_delegate_carrying_the_leafs_key_compressed_cannot_vouch_for_it() -> None:
    """The CA certified the leaf's own key (compressed) as an OCSP responder: a staple
    signed with the leaf's key is still the leaf vouching for itself."""
    ca = CA(now=NOW)
    leaf = ca.issue_cert("a.test")
    responder = ca.issue_responder()
    leaf_key = leaf.private_key
    assert isinstance(leaf_key, ec.EllipticCurvePrivateKey)
    twin = _reissued(responder.cert, ca, spki=_compressed_spki(leaf_key.public_key()))
    assert (
        ExtendedKeyUsageOID.OCSP_SIGNING
        in twin.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    )
    delegate = Identity(cert=twin, private_key=leaf_key, chain=(twin,), issuer=ca)
    staple = ca.ocsp_response(leaf, responder=delegate)
    result = validate_staple(staple, leaf.cert, ca.cert, now=NOW)
    assert result.status is StapleStatus.INVALID
    assert "cannot vouch for itself" in result.reason


# --- names cryptography cannot parse ---------------------------------------------------------


@pytest.fixture(scope="module")
def t61(tmp_path_factory: pytest.TempPathFactory) -> tuple[CA, CA, Identity, str]:
    """A root, an intermediate whose subject has a Latin-1 T61String (OpenSSL verifies
    it; cryptography cannot parse it), and a leaf for localhost under it whose own
    subject has one too."""
    root = CA()
    inter = root.create_intermediate()
    leaf = inter.issue_cert("localhost")
    legacy = _t61_name(b"legacy intermediate", b"Soci\xe9t\xe9 G\xe9n\xe9rale")
    inter.cert = _reissued(inter.cert, root, subject=legacy)
    with pytest.raises(ValueError, match="asn1"):
        _ = inter.cert.subject
    cert = _reissued(
        leaf.cert, inter, issuer=legacy, subject=_t61_name(b"localhost", b"Soci\xe9t\xe9")
    )
    leaf = Identity(cert=cert, private_key=leaf.private_key, chain=(cert, inter.cert), issuer=inter)
    cafile = root.write_trust(tmp_path_factory.mktemp("t61") / "ca.pem")
    return root, inter, leaf, cafile


def test_legacy_names_do_not_break_validation(t61: tuple[CA, CA, Identity, str]) -> None:
    _, inter, leaf, _ = t61
    missing = validate_staple(b"", leaf.cert, inter.cert, now=inter.now)
    assert missing.status is StapleStatus.MISSING
    assert missing.serial_number == leaf.cert.serial_number
    good = validate_staple(inter.ocsp_response(leaf), leaf.cert, inter.cert, now=inter.now)
    assert good.status is StapleStatus.GOOD, good.reason
    assert "a name that cannot be read" in good.reason


@pytest.mark.parametrize("staple", ["none", "good", "revoked"])
@pytest.mark.parametrize("mode", ["off", "soft-fail", "must-staple"])
def test_legacy_names_over_tls(t61: tuple[CA, CA, Identity, str], staple: str, mode: str) -> None:
    """Host names come from the subjectAltName (the subject is never used), so a
    legacy subject changes nothing: each policy decides as its table says."""
    _, inter, leaf, cafile = t61
    der = b"" if staple == "none" else inter.ocsp_response(leaf, staple)
    refused = {("soft-fail", "revoked"), ("must-staple", "revoked"), ("must-staple", "none")}
    with StaplingServer(leaf, der) as server, session(mode) as client:
        client.trust_env = False
        if (mode, staple) in refused:
            with pytest.raises(requests.exceptions.SSLError) as caught:
                client.get(server.url, verify=cafile, timeout=10)
            found = find_staple_error(caught.value)
            assert found is not None
            assert found.result.status.value == ("missing" if staple == "none" else staple)
            return
        response = client.get(server.url, verify=cafile, timeout=10)
    assert response.status_code == 200


def test_verify_command_with_legacy_names(
    t61: tuple[CA, CA, Identity, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, inter, leaf, _ = t61
    (tmp_path / "leaf.pem").write_bytes(leaf.cert_pem)
    (tmp_path / "issuer.pem").write_bytes(inter.cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "staple.der").write_bytes(inter.ocsp_response(leaf))
    at = inter.now.isoformat()
    argv = ["verify", str(tmp_path / "staple.der"), "--cert", str(tmp_path / "leaf.pem")]
    assert main([*argv, "--issuer", str(tmp_path / "issuer.pem"), "--at", at]) == 0
    assert "good" in capsys.readouterr().out
    (tmp_path / "other.pem").write_bytes(CA().cert_pem)
    assert main([*argv, "--issuer", str(tmp_path / "other.pem"), "--at", at]) == 2
    assert "is not the issuer" in capsys.readouterr().err
