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
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from staplecheck import (
    StapleCache,
    StapleConnection,
    StapleSSLContext,
    StapleStatus,
    TLSConfig,
    _der,
    create_context,
    validate_staple,
)
from staplecheck.testing import CA, Identity, StaplingServer
from staplecheck.testing import _asn1 as asn1


def with_signature_of(body: x509.Certificate, donor: x509.Certificate) -> x509.Certificate:
    """``body``'s TBS and algorithm with ``donor``'s signature value: a certificate that
    does not verify, but shares ``donor.signature``."""

    def parts(cert: x509.Certificate) -> list[_der.TLV]:
        der = cert.public_bytes(serialization.Encoding.DER)
        return _der.children(_der.expect(_der.read_tlv(der), _der.SEQUENCE))

    tbs, algorithm, _ = parts(body)
    signature = parts(donor)[2]
    forged = x509.load_der_x509_certificate(
        asn1.sequence(*(asn1.tlv(t.tag, t.value) for t in (tbs, algorithm, signature)))
    )
    assert forged.signature == donor.signature
    assert forged != donor
    return forged


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
