"""staplecheck.testing: the PKI and OCSP factory that every other test relies on.

Checked against independent readers: cryptography's certificate and OCSP parsers, and
the ``openssl ocsp`` command.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from staplecheck.testing import (
    CA,
    Identity,
    KeyType,
    OCSPEntry,
    RawExtension,
    generate_key,
    make_ocsp_response,
)
from tests.conftest import NOW, PKI, require_program

HOUR = datetime.timedelta(hours=1)
DAY = datetime.timedelta(days=1)


def extension(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> Any:
    return cert.extensions.get_extension_for_class(kind).value


def usages(cert: x509.Certificate) -> list[x509.ObjectIdentifier]:
    return list(extension(cert, x509.ExtendedKeyUsage))


def load(der: bytes) -> ocsp.OCSPResponse:
    response = ocsp.load_der_ocsp_response(der)
    assert response.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    return response


def key_id(cert: x509.Certificate) -> bytes:
    """SHA-1 of the subjectPublicKey bits, computed by cryptography (RFC 5280 §4.2.1.2)."""
    return x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest


def verify_response_signature(
    response: ocsp.OCSPResponse,
    signer: x509.Certificate,
    pss_hash: hashes.HashAlgorithm | None = None,
) -> None:
    """Check the signature with cryptography alone; raise InvalidSignature if it fails.

    cryptography does not read RSA-PSS parameters of OCSP responses: for RSA-PSS the
    caller names the hash (MGF1 with the same hash, salt as long as the digest).
    """
    key = signer.public_key()
    data, signature = response.tbs_response_bytes, response.signature
    if isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        key.verify(signature, data)
    elif isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(signature, data, ec.ECDSA(response.signature_hash_algorithm))
    elif isinstance(key, rsa.RSAPublicKey) and pss_hash is not None:
        pss = padding.PSS(mgf=padding.MGF1(pss_hash), salt_length=pss_hash.digest_size)
        key.verify(signature, data, pss, pss_hash)
    else:
        assert isinstance(key, rsa.RSAPublicKey)
        digest = response.signature_hash_algorithm
        assert digest is not None
        key.verify(signature, data, padding.PKCS1v15(), digest)


# --- certificates -------------------------------------------------------------------------


def test_issue_cert_names(pki: PKI) -> None:
    cert = pki.intermediate.issue_cert("www.example.test", "example.test", "127.0.0.1", "::1").cert
    names = extension(cert, x509.SubjectAlternativeName)
    assert names.get_values_for_type(x509.DNSName) == ["www.example.test", "example.test"]
    assert names.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    common_names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert [a.value for a in common_names] == ["www.example.test"]
    assert cert.issuer == pki.intermediate.cert.subject
    cert.verify_directly_issued_by(pki.intermediate.cert)
    assert extension(cert, x509.BasicConstraints).ca is False
    assert usages(cert) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_issue_cert_needs_a_name(pki: PKI) -> None:
    with pytest.raises(ValueError, match="at least one name"):
        pki.intermediate.issue_cert()


def test_issue_cert_options(pki: PKI) -> None:
    cert = pki.intermediate.issue_cert(
        "opts.example",
        not_before=NOW - DAY,
        not_after=NOW + 2 * DAY,
        serial_number=0x1234567,
        ocsp_url="http://ocsp.example/",
        client_auth=True,
        extra_usages=[ExtendedKeyUsageOID.OCSP_SIGNING],
    ).cert
    assert cert.not_valid_before_utc == NOW - DAY
    assert cert.not_valid_after_utc == NOW + 2 * DAY
    assert cert.serial_number == 0x1234567
    (location,) = extension(cert, x509.AuthorityInformationAccess)
    assert location.access_method == x509.oid.AuthorityInformationAccessOID.OCSP
    assert location.access_location.value == "http://ocsp.example/"
    assert usages(cert) == [
        ExtendedKeyUsageOID.SERVER_AUTH,
        ExtendedKeyUsageOID.OCSP_SIGNING,
        ExtendedKeyUsageOID.CLIENT_AUTH,
    ]


def test_default_validity_is_anchored_at_now(pki: PKI) -> None:
    assert pki.leaf.cert.not_valid_before_utc == NOW - HOUR
    assert pki.leaf.cert.not_valid_after_utc == NOW + 730 * DAY
    assert pki.root.cert.not_valid_before_utc == NOW - HOUR
    assert pki.root.now == pki.intermediate.now == NOW


def test_must_staple_extension(pki: PKI) -> None:
    tls_feature = extension(pki.must_staple_leaf.cert, x509.TLSFeature)
    assert list(tls_feature) == [x509.TLSFeatureType.status_request]
    with pytest.raises(x509.ExtensionNotFound):
        pki.leaf.cert.extensions.get_extension_for_class(x509.TLSFeature)


KEY_TYPES: list[tuple[KeyType, type, object]] = [
    ("ecdsa", ec.EllipticCurvePublicKey, "secp256r1"),
    ("ecdsa-p384", ec.EllipticCurvePublicKey, "secp384r1"),
    ("ecdsa-p521", ec.EllipticCurvePublicKey, "secp521r1"),
    ("ecdsa-secp256k1", ec.EllipticCurvePublicKey, "secp256k1"),
    ("rsa", rsa.RSAPublicKey, 2048),
    ("rsa-3072", rsa.RSAPublicKey, 3072),
    ("ed25519", ed25519.Ed25519PublicKey, None),
    ("ed448", ed448.Ed448PublicKey, None),
    ("dsa", dsa.DSAPublicKey, 2048),
]


def _describe(key: Any) -> object:
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key.curve.name
    if isinstance(key, (rsa.RSAPublicKey, dsa.DSAPublicKey)):
        return key.key_size
    return None


@pytest.mark.parametrize(("key_type", "kind", "detail"), KEY_TYPES)
def test_key_types(pki: PKI, key_type: KeyType, kind: type, detail: object) -> None:
    identity = pki.intermediate.issue_cert("keys.example", key_type=key_type)
    key = identity.cert.public_key()
    assert isinstance(key, kind)
    assert _describe(key) == detail
    assert identity.private_key.public_key() == key
    identity.cert.verify_directly_issued_by(pki.intermediate.cert)


@pytest.mark.parametrize("key_type", ["ed25519", "ecdsa-p384", "rsa"])
def test_ca_key_types_sign_what_they_issue(key_type: KeyType) -> None:
    root = CA(now=NOW, key_type=key_type)
    inter = root.create_intermediate(key_type="ed448")
    leaf = inter.issue_cert("deep.example")
    root.cert.verify_directly_issued_by(root.cert)
    inter.cert.verify_directly_issued_by(root.cert)
    leaf.cert.verify_directly_issued_by(inter.cert)
    assert isinstance(inter.cert.public_key(), ed448.Ed448PublicKey)


def test_unknown_key_type() -> None:
    with pytest.raises(ValueError, match="unknown key type"):
        generate_key("rsa-1024")  # type: ignore[arg-type]


# --- the hierarchy --------------------------------------------------------------------------


def test_chain_order(pki: PKI) -> None:
    assert pki.root.chain == ()
    assert pki.intermediate.chain == (pki.intermediate.cert,)
    assert pki.leaf.chain == (pki.leaf.cert, pki.intermediate.cert)
    assert pki.leaf.issuer is pki.intermediate
    assert pki.intermediate.root is pki.root
    assert pki.root.root is pki.root
    pem_chain = x509.load_pem_x509_certificates(pki.leaf.cert_chain_pem)
    assert pem_chain == [pki.leaf.cert, pki.intermediate.cert]
    assert x509.load_pem_x509_certificates(pki.leaf.cert_pem) == [pki.leaf.cert]


def test_leaf_from_the_root_has_a_chain_of_one(pki: PKI) -> None:
    leaf = pki.root.issue_cert("direct.example")
    assert leaf.chain == (leaf.cert,)
    leaf.cert.verify_directly_issued_by(pki.root.cert)


def test_intermediate_chain(pki: PKI) -> None:
    lower = pki.intermediate.create_intermediate(name="lower intermediate")
    leaf = lower.issue_cert("deep.example")
    assert lower.parent is pki.intermediate
    assert lower.root is pki.root
    assert lower.chain == (lower.cert, pki.intermediate.cert)
    assert leaf.chain == (leaf.cert, lower.cert, pki.intermediate.cert)
    for child, parent in zip(leaf.chain, (*leaf.chain[1:], pki.root.cert), strict=True):
        child.verify_directly_issued_by(parent)
    for ca in (pki.root, pki.intermediate, lower):
        assert extension(ca.cert, x509.BasicConstraints).ca is True
        assert extension(ca.cert, x509.KeyUsage).key_cert_sign is True
    assert pki.root.cert.issuer == pki.root.cert.subject
    authority = extension(lower.cert, x509.AuthorityKeyIdentifier)
    assert authority.key_identifier == key_id(pki.intermediate.cert)


def test_write_creates_loadable_pem_files(pki: PKI, tmp_path: Path) -> None:
    cert_path, key_path = pki.leaf.write(tmp_path, "web")
    assert (cert_path, key_path) == (str(tmp_path / "web.crt"), str(tmp_path / "web.key"))
    chain = x509.load_pem_x509_certificates(Path(cert_path).read_bytes())
    assert chain == list(pki.leaf.chain)
    key = serialization.load_pem_private_key(Path(key_path).read_bytes(), password=None)
    assert key.public_key() == pki.leaf.cert.public_key()
    assert pki.leaf.write(tmp_path)[0] == str(tmp_path / "server.crt")


def test_write_trust_writes_the_root(pki: PKI, tmp_path: Path) -> None:
    path = pki.intermediate.write_trust(tmp_path / "ca.pem")
    assert x509.load_pem_x509_certificates(Path(path).read_bytes()) == [pki.root.cert]


# --- delegated responders -------------------------------------------------------------------


def test_issue_responder_has_ocsp_signing(pki: PKI) -> None:
    responder = pki.intermediate.issue_responder()
    assert usages(responder.cert) == [ExtendedKeyUsageOID.OCSP_SIGNING]
    assert isinstance(extension(responder.cert, x509.OCSPNoCheck), x509.OCSPNoCheck)
    assert extension(responder.cert, x509.BasicConstraints).ca is False
    responder.cert.verify_directly_issued_by(pki.intermediate.cert)
    assert responder.chain == (responder.cert, pki.intermediate.cert)


def test_issue_responder_without_ocsp_signing(pki: PKI) -> None:
    responder = pki.intermediate.issue_responder(ocsp_signing=False, name="no eku")
    assert ExtendedKeyUsageOID.OCSP_SIGNING not in usages(responder.cert)
    assert responder.cert.subject.rfc4514_string() == "CN=no eku"


def test_issue_responder_validity(pki: PKI) -> None:
    responder = pki.intermediate.issue_responder(
        key_type="ed25519", not_before=NOW - 3 * DAY, not_after=NOW - DAY
    )
    assert responder.cert.not_valid_before_utc == NOW - 3 * DAY
    assert responder.cert.not_valid_after_utc == NOW - DAY
    assert isinstance(responder.cert.public_key(), ed25519.Ed25519PublicKey)


# --- OCSP responses, read by cryptography ----------------------------------------------------


def test_default_response(pki: PKI) -> None:
    response = load(pki.intermediate.ocsp_response(pki.leaf))
    assert response.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert response.serial_number == pki.leaf.cert.serial_number
    assert response.this_update_utc == NOW
    assert response.next_update_utc == NOW + DAY
    assert response.produced_at_utc == NOW
    assert isinstance(response.hash_algorithm, hashes.SHA1)
    assert response.responder_name == pki.intermediate.cert.subject
    assert response.responder_key_hash is None
    assert response.certificates == []
    assert len(list(response.responses)) == 1
    verify_response_signature(response, pki.intermediate.cert)


def test_cert_id_names_the_issuer(pki: PKI) -> None:
    response = load(pki.intermediate.ocsp_response(pki.leaf))
    digest = hashes.Hash(hashes.SHA1())
    digest.update(pki.intermediate.cert.subject.public_bytes())
    assert response.issuer_name_hash == digest.finalize()
    assert response.issuer_key_hash == key_id(pki.intermediate.cert)


def test_make_ocsp_response_is_ca_ocsp_response(pki: PKI) -> None:
    response = load(make_ocsp_response(pki.intermediate, pki.leaf.cert, "unknown"))
    assert response.certificate_status is ocsp.OCSPCertStatus.UNKNOWN
    assert response.serial_number == pki.leaf.cert.serial_number
    verify_response_signature(response, pki.intermediate.cert)


def test_revoked_response(pki: PKI) -> None:
    der = pki.intermediate.ocsp_response(
        pki.leaf, "revoked", revocation_time=NOW - 2 * DAY, revocation_reason="keyCompromise"
    )
    response = load(der)
    assert response.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert response.revocation_time_utc == NOW - 2 * DAY
    assert response.revocation_reason is x509.ReasonFlags.key_compromise
    plain = load(pki.intermediate.ocsp_response(pki.leaf, "revoked"))
    assert plain.revocation_time_utc == NOW - HOUR
    assert plain.revocation_reason is None


def test_response_times(pki: PKI) -> None:
    der = pki.intermediate.ocsp_response(
        pki.leaf, this_update=NOW - DAY, next_update=NOW + 3 * DAY, produced_at=NOW - HOUR
    )
    response = load(der)
    assert response.this_update_utc == NOW - DAY
    assert response.next_update_utc == NOW + 3 * DAY
    assert response.produced_at_utc == NOW - HOUR
    without = load(pki.intermediate.ocsp_response(pki.leaf, next_update=None))
    assert without.next_update_utc is None


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("sha1", hashes.SHA1),
        ("sha256", hashes.SHA256),
        ("sha384", hashes.SHA384),
        ("sha512", hashes.SHA512),
    ],
)
def test_cert_id_hash(pki: PKI, name: str, kind: type[hashes.HashAlgorithm]) -> None:
    response = load(pki.intermediate.ocsp_response(pki.leaf, cert_id_hash=name))
    assert isinstance(response.hash_algorithm, kind)
    digest = hashes.Hash(kind())
    digest.update(pki.intermediate.cert.subject.public_bytes())
    assert response.issuer_name_hash == digest.finalize()


def test_md5_cert_id(pki: PKI) -> None:
    response = load(pki.intermediate.ocsp_response(pki.leaf, cert_id_hash="md5"))
    with pytest.raises(UnsupportedAlgorithm, match=r"1\.2\.840\.113549\.2\.5"):
        _ = response.hash_algorithm
    name_hash = hashlib.md5(pki.intermediate.cert.subject.public_bytes()).digest()
    assert response.issuer_name_hash == name_hash


def test_responder_id_by_key(pki: PKI) -> None:
    response = load(pki.intermediate.ocsp_response(pki.leaf, responder_id="key"))
    assert response.responder_name is None
    assert response.responder_key_hash == key_id(pki.intermediate.cert)
    with pytest.raises(ValueError, match="responder_id"):
        pki.intermediate.ocsp_response(pki.leaf, responder_id="email")


@pytest.mark.parametrize("responder_id", ["name", "key"])
def test_delegated_response_embeds_the_delegate(pki: PKI, responder_id: str) -> None:
    delegate = pki.intermediate.issue_responder()
    der = pki.intermediate.ocsp_response(pki.leaf, responder=delegate, responder_id=responder_id)
    response = load(der)
    assert response.certificates == [delegate.cert]
    if responder_id == "name":
        assert response.responder_name == delegate.cert.subject
    else:
        assert response.responder_key_hash == key_id(delegate.cert)
    verify_response_signature(response, delegate.cert)
    with pytest.raises(InvalidSignature):
        verify_response_signature(response, pki.intermediate.cert)


def test_include_certs_replaces_the_embedded_certificates(pki: PKI) -> None:
    delegate = pki.intermediate.issue_responder()
    embedded = [pki.root.cert, pki.intermediate.cert]
    der = pki.intermediate.ocsp_response(pki.leaf, responder=delegate, include_certs=embedded)
    assert load(der).certificates == embedded
    bare = load(pki.intermediate.ocsp_response(pki.leaf, responder=delegate, include_certs=[]))
    assert bare.certificates == []


@pytest.mark.parametrize(
    ("key_type", "options", "oid"),
    [
        ("rsa", {"signature_hash": "sha1"}, "1.2.840.113549.1.1.5"),
        ("rsa", {"signature_hash": "sha512"}, "1.2.840.113549.1.1.13"),
        ("rsa", {"rsa_pss": True, "signature_hash": "sha384"}, "1.2.840.113549.1.1.10"),
        ("ecdsa", {}, "1.2.840.10045.4.3.2"),
        ("ecdsa-p384", {"signature_hash": "sha384"}, "1.2.840.10045.4.3.3"),
        ("ed25519", {}, "1.3.101.112"),
        ("ed448", {}, "1.3.101.113"),
    ],
)
def test_signatures_verify_with_cryptography(
    pki: PKI, key_type: KeyType, options: dict[str, Any], oid: str
) -> None:
    delegate = pki.intermediate.issue_responder(key_type=key_type)
    pss_hash = hashes.SHA384() if options.get("rsa_pss") else None
    response = load(pki.intermediate.ocsp_response(pki.leaf, responder=delegate, **options))
    assert response.signature_algorithm_oid.dotted_string == oid
    verify_response_signature(response, delegate.cert, pss_hash)
    broken = pki.intermediate.ocsp_response(
        pki.leaf, responder=delegate, corrupt_signature=True, **options
    )
    with pytest.raises(InvalidSignature):
        verify_response_signature(load(broken), delegate.cert, pss_hash)


def test_signature_oid_override(pki: PKI) -> None:
    der = pki.intermediate.ocsp_response(pki.leaf, signature_oid="1.2.840.10045.4.3.4")
    response = load(der)
    assert response.signature_algorithm_oid.dotted_string == "1.2.840.10045.4.3.4"
    with pytest.raises(InvalidSignature):
        verify_response_signature(response, pki.intermediate.cert)


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("malformedRequest", ocsp.OCSPResponseStatus.MALFORMED_REQUEST),
        ("internalError", ocsp.OCSPResponseStatus.INTERNAL_ERROR),
        ("tryLater", ocsp.OCSPResponseStatus.TRY_LATER),
        ("sigRequired", ocsp.OCSPResponseStatus.SIG_REQUIRED),
        ("unauthorized", ocsp.OCSPResponseStatus.UNAUTHORIZED),
    ],
)
def test_unsuccessful_response_status(pki: PKI, name: str, status: ocsp.OCSPResponseStatus) -> None:
    response = ocsp.load_der_ocsp_response(
        pki.intermediate.ocsp_response(pki.leaf, response_status=name)
    )
    assert response.response_status is status


def test_extensions(pki: PKI) -> None:
    der = pki.intermediate.ocsp_response(
        pki.leaf,
        extensions=[RawExtension(oid="1.2.3.4", critical=True)],
        single_extensions=[RawExtension(oid="1.2.3.5", value=b"\x04\x01\x2a")],
    )
    response = load(der)
    (outer,) = response.extensions
    assert (outer.oid.dotted_string, outer.critical) == ("1.2.3.4", True)
    assert outer.value.value == b"\x05\x00"
    (inner,) = response.single_extensions
    assert (inner.oid.dotted_string, inner.critical) == ("1.2.3.5", False)
    assert inner.value.value == b"\x04\x01\x2a"


def test_several_entries(pki: PKI) -> None:
    other = CA(now=NOW, name="entry issuer")
    serial = pki.leaf.cert.serial_number
    der = pki.intermediate.ocsp_response(
        pki.leaf,
        extra_entries=[
            OCSPEntry(serial_number=7, status="revoked", revocation_reason="superseded"),
            OCSPEntry(serial_number=8, status="unknown", cert_id_hash="sha256", issuer=other),
            OCSPEntry(serial_number=9, this_update=NOW - DAY, next_update=None),
        ],
    )
    entries = list(load(der).responses)
    assert [e.serial_number for e in entries] == [serial, 7, 8, 9]
    assert [e.certificate_status for e in entries] == [
        ocsp.OCSPCertStatus.GOOD,
        ocsp.OCSPCertStatus.REVOKED,
        ocsp.OCSPCertStatus.UNKNOWN,
        ocsp.OCSPCertStatus.GOOD,
    ]
    assert entries[1].revocation_reason is x509.ReasonFlags.superseded
    assert entries[2].issuer_key_hash != entries[0].issuer_key_hash
    assert isinstance(entries[2].hash_algorithm, hashes.SHA256)
    assert (entries[3].this_update_utc, entries[3].next_update_utc) == (NOW - DAY, None)
    assert (entries[1].this_update_utc, entries[1].next_update_utc) == (NOW, NOW + DAY)
    without_leaf = list(
        load(
            pki.intermediate.ocsp_response(None, extra_entries=[OCSPEntry(serial_number=7)])
        ).responses
    )
    assert [e.serial_number for e in without_leaf] == [7]


# --- OCSP responses, read by openssl ------------------------------------------------------------


def openssl_ocsp(tmp_path: Path, der: bytes, *options: str) -> subprocess.CompletedProcess[str]:
    openssl = require_program("openssl")
    staple = tmp_path / "response.der"
    staple.write_bytes(der)
    return subprocess.run(
        [openssl, "ocsp", "-respin", str(staple), "-resp_text", *options],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        pytest.param({}, ["Cert Status: good", "Hash Algorithm: sha1"], id="good"),
        pytest.param(
            {"status": "revoked", "revocation_reason": "keyCompromise"},
            ["Cert Status: revoked", "Revocation Reason: keyCompromise"],
            id="revoked",
        ),
        pytest.param({"status": "unknown"}, ["Cert Status: unknown"], id="unknown"),
        pytest.param(
            {"cert_id_hash": "sha512", "next_update": None},
            ["Hash Algorithm: sha512", "This Update: Nov 21 12:00:00 2026 GMT"],
            id="sha512-no-next-update",
        ),
        pytest.param(
            {"responder_id": "key", "extensions": [RawExtension(oid="1.2.3.4", critical=True)]},
            ["Responder Id: ", "1.2.3.4: critical"],
            id="by-key-with-extension",
        ),
    ],
)
def test_openssl_reads_the_response(
    pki: PKI, tmp_path: Path, options: dict[str, Any], expected: list[str]
) -> None:
    options = dict(options)
    der = pki.intermediate.ocsp_response(pki.leaf, options.pop("status", "good"), **options)
    completed = openssl_ocsp(tmp_path, der, "-noverify")
    assert completed.returncode == 0, completed.stderr
    assert "OCSP Response Status: successful (0x0)" in completed.stdout
    assert "Produced At: Nov 21 12:00:00 2026 GMT" in completed.stdout
    serial = f"{pki.leaf.cert.serial_number:X}"
    assert f"Serial Number: {serial.zfill(len(serial) + len(serial) % 2)}" in completed.stdout
    for text in expected:
        assert text in completed.stdout


def test_openssl_reads_an_unsuccessful_response(pki: PKI, tmp_path: Path) -> None:
    der = pki.intermediate.ocsp_response(pki.leaf, response_status="tryLater")
    completed = openssl_ocsp(tmp_path, der, "-noverify")
    assert "Responder Error: trylater (3)" in completed.stdout


def _signer_file(tmp_path: Path, who: CA | Identity) -> str:
    path = tmp_path / "signer.pem"
    path.write_bytes(who.cert.public_bytes(serialization.Encoding.PEM))
    return str(path)


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({}, id="issuer-ecdsa"),
        pytest.param({"responder_id": "key"}, id="issuer-by-key"),
        pytest.param({"delegate": "rsa", "rsa_pss": True}, id="delegate-rsa-pss"),
        pytest.param({"delegate": "rsa", "signature_hash": "sha384"}, id="delegate-rsa-pkcs1"),
        pytest.param({"delegate": "ed25519"}, id="delegate-ed25519"),
    ],
)
def test_openssl_verifies_the_signature(pki: PKI, tmp_path: Path, options: dict[str, Any]) -> None:
    options = dict(options)
    key_type = options.pop("delegate", None)
    signer: CA | Identity = pki.intermediate
    if key_type:
        signer = pki.intermediate.issue_responder(key_type=key_type)
        options["responder"] = signer
    trusted = ("-VAfile", _signer_file(tmp_path, signer))
    good = pki.intermediate.ocsp_response(pki.leaf, **options)
    completed = openssl_ocsp(tmp_path, good, *trusted)
    assert "Response verify OK" in completed.stderr, completed.stderr
    broken = pki.intermediate.ocsp_response(pki.leaf, corrupt_signature=True, **options)
    completed = openssl_ocsp(tmp_path, broken, *trusted)
    assert "Response Verify Failure" in completed.stderr, completed.stderr
