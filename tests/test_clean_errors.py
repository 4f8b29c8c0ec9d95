"""Failures reach callers as errors they already catch, never as raw library exceptions.

Certificates that OpenSSL verifies but cryptography cannot read (a subjectAltName or a
TLS Feature extension with content cryptography rejects), CA files that hold no
certificate, and client key files that hold no key: each must surface through requests
as ``requests.exceptions.SSLError`` (urllib3: ``urllib3.exceptions.SSLError``) with an
``ssl.SSLError`` behind it that says what is wrong, and through ``staplecheck check``
as a one-line message. The malformed certificates are real DER, signed by the test CA,
and served by a real :class:`StaplingServer`.
"""

from __future__ import annotations

import dataclasses
import datetime
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import urllib3
from cryptography import x509
from cryptography.x509.oid import ExtensionOID
from OpenSSL import crypto

from staplecheck import (
    StapleAdapter,
    StapleSSLContext,
    TLSConfig,
    create_context,
    has_must_staple,
    pool_manager,
)
from staplecheck.cli._main import main
from staplecheck.testing import CA, Identity, StaplingServer, generate_key
from staplecheck.testing import _asn1 as asn1

MODES = ("off", "soft-fail", "must-staple")


@dataclasses.dataclass(frozen=True)
class Malformed:
    """A PKI anchored at the real time (OpenSSL checks validity against the clock)."""

    root: CA
    issuer: CA
    ca_file: str
    directory: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Malformed:
    directory = tmp_path_factory.mktemp("clean-errors")
    root = CA(now=datetime.datetime.now(datetime.timezone.utc))
    return Malformed(
        root=root,
        issuer=root.create_intermediate(),
        ca_file=root.write_trust(directory / "ca.pem"),
        directory=directory,
    )


# Extension contents OpenSSL accepts (it verifies the chain) but cryptography rejects.
_SAN = ExtensionOID.SUBJECT_ALTERNATIVE_NAME
UNREADABLE = {
    # An iPAddress of five octets: OpenSSL keeps any OCTET STRING; cryptography raises
    # ValueError.
    "san-ip-5-octets": (
        _SAN,
        asn1.sequence(asn1.tlv(0x82, b"localhost"), asn1.tlv(0x87, b"\x7f\x00\x00\x01\x00")),
    ),
    # An x400Address: cryptography raises UnsupportedGeneralNameType (not a ValueError).
    "san-x400-address": (
        _SAN,
        asn1.sequence(asn1.tlv(0x82, b"localhost"), asn1.tlv(0xA3, asn1.sequence())),
    ),
    # A TLS Feature naming extension 99: cryptography raises KeyError.
    "tls-feature-99": (ExtensionOID.TLS_FEATURE, asn1.sequence(asn1.integer(5), asn1.integer(99))),
}


def unreadable_leaf(issuer: CA, kind: str) -> Identity:
    """A leaf for localhost carrying the raw extension ``kind``, signed by ``issuer``."""
    oid, value = UNREADABLE[kind]
    key = generate_key("ecdsa")
    builder = issuer._builder("localhost", key, None, None, None).add_extension(
        x509.UnrecognizedExtension(oid, value), critical=False
    )
    if oid != _SAN:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False
        )
    return issuer._identity(builder, key)


@pytest.fixture(scope="module", params=sorted(UNREADABLE))
def unreadable(request: pytest.FixtureRequest, pki: Malformed) -> Identity:
    identity = unreadable_leaf(pki.issuer, request.param)
    with pytest.raises(Exception):  # noqa: B017, PT011 - any of cryptography's errors
        _ = identity.cert.extensions
    # ...while OpenSSL verifies the chain.
    store = crypto.X509Store()
    store.add_cert(crypto.X509.from_cryptography(pki.root.cert))
    crypto.X509StoreContext(
        store,
        crypto.X509.from_cryptography(identity.cert),
        [crypto.X509.from_cryptography(pki.issuer.cert)],
    ).verify_certificate()
    return identity


@pytest.fixture
def serving(pki: Malformed, unreadable: Identity) -> Iterator[StaplingServer]:
    with StaplingServer(unreadable, pki.issuer.ocsp_response(unreadable, "good")) as server:
        yield server


def cause_chain(error: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    stack: list[object] = [error]
    while stack:
        item = stack.pop()
        if not isinstance(item, BaseException) or any(item is f for f in found):
            continue
        found.append(item)
        stack.extend([item.__cause__, item.__context__, *item.args, getattr(item, "reason", None)])
    return found


def verification_error(error: BaseException) -> ssl.SSLCertVerificationError:
    for item in cause_chain(error):
        if isinstance(item, ssl.SSLCertVerificationError):
            return item
    raise AssertionError(f"no SSLCertVerificationError behind {error!r}")


@pytest.mark.parametrize("mode", MODES)
def test_unreadable_certificate_names_refuse_the_connection(
    pki: Malformed, serving: StaplingServer, mode: str
) -> None:
    with requests.Session() as session:
        session.trust_env = False
        session.mount("https://", StapleAdapter(mode))
        with pytest.raises(requests.exceptions.SSLError) as caught:
            session.get(serving.url, verify=pki.ca_file, timeout=10)
    error = verification_error(caught.value)
    assert "cannot be read" in str(error), error
    assert error.verify_message == "certificate names unreadable"
    assert serving.requests == 0


def test_unreadable_tls_feature_counts_as_must_staple(pki: Malformed) -> None:
    """Fail closed: a TLS Feature that cannot be read may promise a staple."""
    assert has_must_staple(unreadable_leaf(pki.issuer, "tls-feature-99").cert)
    assert not has_must_staple(unreadable_leaf(pki.issuer, "san-x400-address").cert)


def test_unreadable_certificate_names_fail_urllib3_assert_hostname(
    pki: Malformed, serving: StaplingServer
) -> None:
    """urllib3 matches an asserted name itself, through ``getpeercert()``."""
    with (
        pool_manager("off", ca_certs=pki.ca_file, assert_hostname="localhost") as manager,
        pytest.raises(urllib3.exceptions.SSLError) as caught,
    ):
        manager.request("GET", serving.url, retries=False)
    assert "cannot be read" in str(verification_error(caught.value))


def test_unreadable_certificate_names_in_the_check_command(
    pki: Malformed, serving: StaplingServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["check", serving.url, "--cafile", pki.ca_file])
    err = capsys.readouterr().err
    assert code == 3
    assert "cannot be read" in err
    assert "Traceback" not in err
    assert err.count("\n") == 1


# --- trust and key files --------------------------------------------------------------------


@pytest.fixture(scope="module")
def good_server(pki: Malformed) -> Iterator[StaplingServer]:
    leaf = pki.issuer.issue_cert("localhost")
    with StaplingServer(leaf, pki.issuer.ocsp_response(leaf, "good")) as server:
        yield server


def not_pem(pki: Malformed, name: str, content: bytes = b"this is not PEM\n") -> str:
    path = pki.directory / name
    path.write_bytes(content)
    return str(path)


@pytest.mark.parametrize(
    "content", [b"this is not PEM\n", b"", b"\x30\x03\x02\x01\x01"], ids=["text", "empty", "der"]
)
def test_ca_file_that_is_not_pem_is_a_clean_ssl_error(
    pki: Malformed, good_server: StaplingServer, content: bytes
) -> None:
    cafile = not_pem(pki, "not-a-ca.pem", content)
    with requests.Session() as session:
        session.trust_env = False
        session.mount("https://", StapleAdapter())
        with pytest.raises(requests.exceptions.SSLError) as caught:
            session.get(good_server.url, verify=cafile, timeout=10)
    [error] = [e for e in cause_chain(caught.value) if type(e) is ssl.SSLError]
    assert str(error.args[1]).startswith(f"cannot load CA file {cafile}: it holds no PEM")
    # urllib3 users catch the same error the same way.
    with (
        pool_manager(ca_certs=cafile, retries=False) as manager,
        pytest.raises(urllib3.exceptions.SSLError, match="cannot load CA file"),
    ):
        manager.request("GET", good_server.url)
    # And the pyOpenSSL level says it when the context is made.
    config = TLSConfig(cafiles=(cafile,))
    with pytest.raises(ssl.SSLError, match="cannot load CA file"):
        create_context(config=config)


def test_cadata_without_a_certificate_is_a_clean_ssl_error(
    pki: Malformed, good_server: StaplingServer
) -> None:
    with (
        urllib3.PoolManager(
            ssl_context=StapleSSLContext(cadata=b"no certificate here"), retries=False
        ) as manager,
        pytest.raises(urllib3.exceptions.SSLError, match="cannot load cadata: it holds no"),
    ):
        manager.request("GET", good_server.url)


def test_client_key_file_that_is_not_a_key_is_a_clean_ssl_error(
    pki: Malformed, good_server: StaplingServer
) -> None:
    client = pki.issuer.issue_cert("client.test", client_auth=True)
    certfile, keyfile = client.write(pki.directory, "client")
    cases = {
        not_pem(pki, "not-a-key.pem", client.cert_pem): "no private key for",
        not_pem(pki, "other.key", pki.issuer.issue_cert("x.test").private_key_pem): "mismatch",
    }
    for key, fragment in cases.items():
        with requests.Session() as session:
            session.trust_env = False
            session.mount("https://", StapleAdapter())
            with pytest.raises(requests.exceptions.SSLError) as caught:
                session.get(good_server.url, verify=pki.ca_file, cert=(certfile, key), timeout=10)
        [error] = [e for e in cause_chain(caught.value) if type(e) is ssl.SSLError]
        assert str(error.args[1]).startswith(f"cannot load client key file {key}: ")
        assert fragment in str(error.args[1])
    bad_cert = not_pem(pki, "not-a-cert.pem", b"garbage\n")
    with requests.Session() as session:
        session.trust_env = False
        session.mount("https://", StapleAdapter())
        with pytest.raises(requests.exceptions.SSLError, match="cannot load client certificate"):
            session.get(good_server.url, verify=pki.ca_file, cert=(bad_cert, keyfile), timeout=10)


def test_check_command_with_a_ca_file_that_is_not_pem(
    pki: Malformed, good_server: StaplingServer, capsys: pytest.CaptureFixture[str]
) -> None:
    cafile = not_pem(pki, "cli-not-a-ca.pem")
    code = main(["check", good_server.url, "--cafile", cafile])
    err = capsys.readouterr().err
    assert code == 2
    assert cafile in err
    assert "Traceback" not in err
