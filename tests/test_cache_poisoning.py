"""What staplecheck remembers about certificates cannot be poisoned.

Memoized facts are keyed by a certificate's signature value only where the certificate
comes from a verified chain (two certificates that both verify cannot share one).
Certificates embedded in a staple, and certificates seen on unverified connections, are
attacker-controlled: a forged certificate can copy a real one's signature bytes. These
tests forge exactly that and check that the real verdicts do not change.
"""

from __future__ import annotations

import dataclasses
import datetime
import socket
import ssl
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from staplecheck import (
    SHARED_CACHE,
    StapleAdapter,
    StapleCache,
    StapleConnection,
    StapleSSLContext,
    StapleStatus,
    TLSConfig,
    create_context,
    find_staple_error,
    validate_staple,
)
from staplecheck.testing import CA, Identity, StaplingServer, generate_key, make_ocsp_response
from staplecheck.testing._pki import PrivateKey
from tests.collisions import self_signed_copy, with_recovered_issuer, with_signature_of

NOW = datetime.datetime(2026, 11, 21, 12, tzinfo=datetime.timezone.utc)


@pytest.mark.parametrize("responder_id", ["key", "name"])
@pytest.mark.parametrize("attack_first", [True, False], ids=["attack-first", "victim-first"])
def test_forged_embedded_responder_cannot_change_another_sites_verdict(
    responder_id: str, attack_first: bool
) -> None:
    root = CA(now=NOW)
    victim = root.create_intermediate(name="victim CA")
    leaf = victim.issue_cert("bank.example")
    delegate = victim.issue_responder()
    attacker = root.create_intermediate(name="attacker CA")
    attacker_leaf = attacker.issue_cert("evil.example")
    other = attacker.issue_responder(name="staplecheck test OCSP responder")
    forged = with_signature_of(other.cert, delegate.cert)
    attack = attacker.ocsp_response(
        attacker_leaf, responder=other, responder_id=responder_id, include_certs=[forged]
    )
    cache = StapleCache()

    def victim_staple(minutes_ago: int) -> StapleStatus:
        der = victim.ocsp_response(
            leaf,
            responder=delegate,
            responder_id=responder_id,
            this_update=NOW - datetime.timedelta(minutes=minutes_ago),
        )
        return validate_staple(der, leaf.cert, victim.cert, now=NOW, cache=cache).status

    if not attack_first:
        assert victim_staple(1) is StapleStatus.GOOD
    assert (
        validate_staple(attack, attacker_leaf.cert, attacker.cert, now=NOW, cache=cache).status
        is StapleStatus.INVALID
    )
    assert victim_staple(2) is StapleStatus.GOOD  # a new staple, same certificates


def test_getpeercert_on_an_unverified_connection_cannot_vouch_for_a_host_later(
    tmp_path: Path,
) -> None:
    """An unverified connection presents a forged certificate naming bank.example with
    the signature of the attacker's genuine evil.example certificate; the application
    reads it with getpeercert(). A later verified connection that meets the genuine
    evil.example certificate must still be refused for bank.example."""
    root = CA()
    issuer = root.create_intermediate()
    cafile = root.write_trust(tmp_path / "ca.pem")
    evil = issuer.issue_cert("evil.example")
    lure = issuer.issue_cert("bank.example")
    forged = with_signature_of(lure.cert, evil.cert)
    forged_identity: Identity = dataclasses.replace(
        lure, cert=forged, chain=(forged, *lure.chain[1:])
    )

    context = StapleSSLContext("off", cafile=cafile)
    with StaplingServer(forged_identity) as server:
        context.verify_mode = ssl.CERT_NONE
        context.check_hostname = False
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            peer = context.wrap_socket(sock, server_hostname="bank.example").getpeercert()
    assert ("DNS", "bank.example") in peer["subjectAltName"]

    verified = create_context("off", config=TLSConfig(cafiles=(cafile,)))
    with (
        StaplingServer(evil) as server,
        socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock,
    ):
        sock.setblocking(True)
        connection = StapleConnection(verified, sock, server_hostname="bank.example")
        with pytest.raises(ssl.SSLCertVerificationError) as caught:
            connection.do_handshake()
    assert caught.value.verify_code == 62


# --- verified certificates that share signature bytes (issue 7, finding 1) ------------------
#
# Each test runs the victim and the attacker in one process, through one shared cache
# (the TLS glue's default), in the order that poisoned memos keyed by signature bytes.
# Every one of them was accepted before memos were keyed by complete DER.


def _get(policy: str, url: str, cafile: str) -> requests.Response | requests.RequestException:
    with requests.Session() as session:
        session.trust_env = False
        session.mount("https://", StapleAdapter(policy))
        try:
            return session.get(url, verify=cafile, timeout=10)
        except requests.RequestException as error:
            return error


def _write(path: Path, *certs: x509.Certificate) -> str:
    path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs))
    return str(path)


@pytest.fixture
def victim(tmp_path: Path) -> tuple[CA, str]:
    """A root the application trusts, and an intermediate under it."""
    root = CA(name="victim root")
    SHARED_CACHE.clear()
    return root.create_intermediate(name="victim intermediate"), root.write_trust(
        tmp_path / "victim.pem"
    )


def test_trusted_self_signed_copy_cannot_lend_its_host_names(
    victim: tuple[CA, str], tmp_path: Path
) -> None:
    """A partner's self-signed certificate (trusted for the partner only) names
    evil.test and carries the signature bytes of the genuine localhost certificate
    verified just before. Presented for localhost, it must fail the host-name check."""
    issuer, cafile = victim
    genuine = issuer.issue_cert("localhost")
    copy = self_signed_copy(["evil.test"], genuine.cert)
    partner_ca = _write(tmp_path / "partner.pem", copy.cert)
    with StaplingServer(genuine, issuer.ocsp_response(genuine)) as server:
        first = _get("soft-fail", server.url, cafile)
        assert isinstance(first, requests.Response), first
    with StaplingServer(copy) as server:
        outcome = _get("soft-fail", server.url, partner_ca)
    assert isinstance(outcome, requests.exceptions.SSLError), outcome
    assert "Hostname mismatch" in str(outcome) or "doesn't match" in str(outcome)


def test_trusted_self_signed_copy_cannot_lift_must_staple(
    victim: tuple[CA, str], tmp_path: Path
) -> None:
    """The copy carries no must-staple extension; seen first, it must not make the
    revoked must-staple leaf whose bytes it copied pass without a staple."""
    issuer, cafile = victim
    revoked = issuer.issue_cert("localhost", must_staple=True)
    copy = self_signed_copy(["localhost"], revoked.cert)
    partner_ca = _write(tmp_path / "partner.pem", copy.cert)
    with StaplingServer(copy) as server:
        first = _get("soft-fail", server.url, partner_ca)
        assert isinstance(first, requests.Response), first
        assert first.staple is not None
        assert first.staple.status is StapleStatus.MISSING
    with StaplingServer(revoked) as server:  # the attacker holds the key, staples nothing
        outcome = _get("soft-fail", server.url, cafile)
    assert isinstance(outcome, requests.exceptions.SSLError), outcome
    found = find_staple_error(outcome)
    assert found is not None
    assert found.result.status is StapleStatus.MISSING
    assert found.result.must_staple


_EVIL_ONLY = x509.NameConstraints(
    permitted_subtrees=[x509.DNSName("evil.test")], excluded_subtrees=None
)


def _sub_ca(issuer: CA) -> CA:
    """The attacker's own CA under the victim's root, name-constrained to evil.test."""
    sub = issuer.root.create_intermediate(name="attacker sub-CA (evil.test only)")
    constrained = (
        x509.CertificateBuilder()
        .subject_name(sub.cert.subject)
        .issuer_name(issuer.root.cert.subject)
        .public_key(sub.private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(sub.cert.not_valid_before_utc)
        .not_valid_after(sub.cert.not_valid_after_utc)
    )
    for extension in sub.cert.extensions:
        constrained = constrained.add_extension(extension.value, extension.critical)
    constrained = constrained.add_extension(
        x509.NameConstraints(
            permitted_subtrees=[x509.DNSName("evil.test")], excluded_subtrees=None
        ),
        critical=True,
    )
    sub.cert = constrained.sign(issuer.root.private_key, hashes.SHA256())  # type: ignore[arg-type]
    return sub


def _leaf_template(name: str, key: PrivateKey, now: datetime.datetime) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )


def test_key_recovery_certificate_cannot_lend_its_host_names(victim: tuple[CA, str]) -> None:
    """ECDSA key recovery: the attacker's constrained sub-CA issues a CA for a key
    recovered from the genuine localhost certificate's signature, and under it an
    evil.test certificate that carries those signature bytes and verifies. After the
    genuine one was verified, it must still fail the host-name check for localhost."""
    issuer, cafile = victim
    genuine = issuer.issue_cert("localhost")
    sub = _sub_ca(issuer)
    key = generate_key("ecdsa")
    forged, recovered = with_recovered_issuer(
        sub, genuine.cert, _leaf_template("evil.test", key, sub.now)
    )
    attacker = Identity(
        cert=forged, private_key=key, chain=(forged, recovered, sub.cert), issuer=sub
    )
    with StaplingServer(genuine, issuer.ocsp_response(genuine)) as server:
        first = _get("soft-fail", server.url, cafile)
        assert isinstance(first, requests.Response), first
    with StaplingServer(attacker) as server:
        outcome = _get("soft-fail", server.url, cafile)  # the same trust: the victim's root
    assert isinstance(outcome, requests.exceptions.SSLError), outcome
    assert "Hostname mismatch" in str(outcome) or "doesn't match" in str(outcome)


def _impostor_intermediate(issuer: CA) -> tuple[CA, tuple[x509.Certificate, ...]]:
    """The attacker's intermediate with the victim intermediate's name and signature
    bytes, under a recovered-key CA from the constrained sub-CA; the attacker holds
    its key. Returns it as a CA, and the chain above it."""
    sub = _sub_ca(issuer)
    key = generate_key("ecdsa")
    template = (
        x509.CertificateBuilder()
        .subject_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(sub.now - datetime.timedelta(hours=1))
        .not_valid_after(sub.now + datetime.timedelta(days=30))
    )
    for extension in issuer.cert.extensions:
        if not isinstance(
            extension.value, (x509.AuthorityKeyIdentifier, x509.SubjectKeyIdentifier)
        ):
            template = template.add_extension(extension.value, extension.critical)
    template = template.add_extension(
        x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
    ).add_extension(
        x509.NameConstraints(
            permitted_subtrees=[x509.DNSName("evil.test")], excluded_subtrees=None
        ),
        critical=True,
    )
    cert, recovered = with_recovered_issuer(sub, issuer.cert, template)
    impostor = CA(now=issuer.now, key=key, name="unused")
    impostor.cert = cert
    return impostor, (cert, recovered, sub.cert)


def test_key_recovery_intermediate_cannot_vouch_for_a_forged_staple(victim: tuple[CA, str]) -> None:
    """The impostor intermediate shares the genuine one's name and signature bytes.
    Once a connection through it was judged, a staple the attacker signed with the
    impostor's key must not pass as the issuer's for the victim's revoked leaf."""
    issuer, cafile = victim
    impostor, above = _impostor_intermediate(issuer)
    evil = impostor.issue_cert("evil.test")
    evil = dataclasses.replace(evil, chain=(evil.cert, *above))
    with StaplingServer(evil, impostor.ocsp_response(evil)) as server:
        # Refused for its host name, after the staple was judged in the handshake.
        assert isinstance(_get("soft-fail", server.url, cafile), requests.exceptions.SSLError)
    revoked = issuer.issue_cert("localhost", must_staple=True)
    forged = make_ocsp_response(impostor, revoked.cert, "good")
    with StaplingServer(revoked, forged) as server:
        outcome = _get("must-staple", server.url, cafile)
    assert isinstance(outcome, requests.exceptions.SSLError), outcome
    found = find_staple_error(outcome)
    assert found is not None
    assert found.result.status is StapleStatus.INVALID
