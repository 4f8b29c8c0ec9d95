"""Interop with CloudFlare's cfssl (Debian's ``golang-cfssl``, 1.2.0): responses signed
by ``cfssl ocspsign``, served by ``cfssl ocspserve``, fetched and judged by the
live-OCSP client (``build_request``, ``fetch_ocsp``, ``judge_fetched``).

cfssl signs with the real clock (thisUpdate is the current hour), so these tests issue
their certificates around the real time and judge at the real time. What cfssl does
is described in ``staplecheck/testing/_cfssl.py`` and ``docs/interop.md``.
"""

from __future__ import annotations

import datetime
import os
import socket
import time

import pytest
from cryptography.x509 import ocsp

from staplecheck.revocation._fetch import FetchError, fetch_ocsp
from staplecheck.revocation._ocsp import build_request, judge_fetched
from staplecheck.testing import CA, CfsslError, CfsslResponder, Identity, KeyType
from staplecheck.validation._result import StapleResult, StapleStatus
from staplecheck.validation._validate import (
    DEFAULT_CLOCK_SKEW,
    DEFAULT_LIFETIME,
    DEFAULT_MAX_AGE,
    CertPair,
)
from tests.conftest import require_program

HOUR = datetime.timedelta(hours=1)


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


@pytest.fixture(scope="module")
def cfssl() -> str:
    return require_program("cfssl")


@pytest.fixture(scope="module")
def issuer() -> CA:
    return CA(now=utcnow()).create_intermediate()


def judge(der: bytes, certs: CertPair, *, nonce: bytes | None = None) -> StapleResult:
    """The fetched response judged now, by the real clock (cfssl's clock), with every
    default; SHA-1 signatures refused (cfssl signs with SHA-256)."""
    return judge_fetched(
        der,
        certs,
        nonce=nonce,
        now=utcnow(),
        clock_skew=DEFAULT_CLOCK_SKEW,
        default_lifetime=DEFAULT_LIFETIME,
        max_age=DEFAULT_MAX_AGE,
        allow_sha1=False,
        cache=None,
    )


def ask(
    url: str,
    identity: Identity,
    *,
    method: str = "POST",
    nonce: bytes | None = None,
    hash_algorithm: str = "sha1",
) -> tuple[bytes, CertPair]:
    certs = CertPair.of(identity.cert, identity.issuer.cert)
    request = build_request(certs, nonce=nonce, hash_algorithm=hash_algorithm)
    der = fetch_ocsp(url, request.der, method=method, deadline=time.monotonic() + 2)
    return der, certs


# --- good, revoked, unknown; the CA and a delegate signing ---------------------------------


@pytest.mark.parametrize("key_type", ["ecdsa", "rsa"])
@pytest.mark.parametrize("signer", ["issuer", "delegate"])
def test_good_revoked_and_unknown(cfssl: str, signer: str, key_type: KeyType) -> None:
    ca = CA(now=utcnow(), key_type=key_type).create_intermediate(key_type=key_type)
    delegate = ca.issue_responder(key_type=key_type) if signer == "delegate" else None
    good, revoked, unknown = (ca.issue_cert(f"{n}.example") for n in ("good", "revoked", "un"))
    revoked_on = (utcnow() - datetime.timedelta(days=2)).date()
    server = CfsslResponder(ca, delegate, binary=cfssl)
    server.add(good, "good")
    server.add(revoked, "revoked", revocation_reason="keyCompromise", revoked_on=revoked_on)
    server.add(unknown, "unknown")
    with server:
        results = {}
        for name, identity in [("good", good), ("revoked", revoked), ("unknown", unknown)]:
            der, certs = ask(server.url, identity)
            results[name] = judge(der, certs)
    assert results["good"].status is StapleStatus.GOOD, results["good"].reason
    assert results["unknown"].status is StapleStatus.UNKNOWN, results["unknown"].reason
    result = results["revoked"]
    assert result.status is StapleStatus.REVOKED, result.reason
    assert result.revocation_reason == "keyCompromise"
    midnight = datetime.time(tzinfo=datetime.timezone.utc)
    assert result.revocation_time == datetime.datetime.combine(revoked_on, midnight)
    # cfssl's times: thisUpdate on the hour (rounded down), nextUpdate 96 h later.
    for result in results.values():
        assert result.this_update is not None
        assert result.next_update is not None
        assert result.this_update == result.this_update.replace(minute=0, second=0)
        assert utcnow() - HOUR <= result.this_update <= utcnow()
        assert result.next_update - result.this_update == datetime.timedelta(hours=96)
        assert result.responder is not None
        named = "delegated responder" if delegate is not None else "the issuer"
        assert named in result.reason, result.reason


def test_the_delegate_is_embedded_and_the_issuer_signs_without_certificates(
    cfssl: str, issuer: CA
) -> None:
    leaf = issuer.issue_cert("leaf.example")
    delegate = issuer.issue_responder()
    itself = CfsslResponder(issuer, binary=cfssl).sign(leaf)
    delegated = CfsslResponder(issuer, delegate, binary=cfssl).sign(leaf)
    assert ocsp.load_der_ocsp_response(itself).certificates == []
    assert ocsp.load_der_ocsp_response(delegated).certificates == [delegate.cert]
    # A ResponderID by name, SHA-1 CertIDs (RFC 5019), whatever the signer.
    for der in (itself, delegated):
        response = ocsp.load_der_ocsp_response(der)
        assert response.responder_key_hash is None
        assert response.hash_algorithm.name == "sha1"


def test_revoked_without_a_reason_carries_none(cfssl: str, issuer: CA) -> None:
    leaf = issuer.issue_cert("plain.example")
    server = CfsslResponder(issuer, binary=cfssl)
    server.add(leaf, "revoked")  # cfssl's own default reason, 0, is refused: "unspecified"
    with server:
        der, certs = ask(server.url, leaf)
    result = judge(der, certs)
    assert result.status is StapleStatus.REVOKED, result.reason
    assert result.revocation_reason is None
    assert result.revocation_time is not None
    assert result.this_update is not None
    # "revoked now": a revocation time after the (rounded-down) thisUpdate.
    assert result.revocation_time >= result.this_update


def test_a_sha256_request_gets_the_sha1_response(cfssl: str, issuer: CA) -> None:
    """cfssl looks the serial up and sends what it signed (SHA-1 CertID); staplecheck
    matches the CertID with whatever hash the response used."""
    leaf = issuer.issue_cert("sha256.example")
    server = CfsslResponder(issuer, binary=cfssl)
    server.add(leaf)
    with server:
        der, certs = ask(server.url, leaf, hash_algorithm="sha256")
    assert der == server.responses[0]
    assert judge(der, certs).status is StapleStatus.GOOD


# --- what cfssl cannot or will not answer ---------------------------------------------------


def test_a_serial_without_a_response_is_unauthorized(cfssl: str, issuer: CA) -> None:
    known, stranger = issuer.issue_cert("known.example"), issuer.issue_cert("stranger.example")
    server = CfsslResponder(issuer, binary=cfssl)
    server.add(known)
    with server:
        der, certs = ask(server.url, stranger)
        logs = server.logs
    assert der == bytes.fromhex("30030a0106")  # OCSPResponse { unauthorized }, nothing more
    result = judge(der, certs)
    assert result.status is StapleStatus.INVALID
    assert "unauthorized" in result.reason, result.reason
    assert "No response found" in logs


def test_get_is_refused_by_this_cfssl(cfssl: str, issuer: CA) -> None:
    """cfssl 1.2.0 decodes the whole GET path as base64, its leading "/" included, so
    every GET is HTTP 400: no evidence (FetchError), and POST, the default, works."""
    leaf = issuer.issue_cert("get.example")
    server = CfsslResponder(issuer, binary=cfssl)
    server.add(leaf)
    with server:
        with pytest.raises(FetchError, match="HTTP 400"):
            ask(server.url, leaf, method="GET")
        der, certs = ask(server.url, leaf, method="POST")
        logs = server.logs
    assert judge(der, certs).status is StapleStatus.GOOD
    assert "Error decoding base64 from URL: /" in logs


def test_a_nonce_is_not_echoed_so_the_answer_is_invalid(cfssl: str, issuer: CA) -> None:
    """Pre-signed responses cannot carry the request's nonce: with a nonce, a properly
    signed good answer is invalid (RFC 8954 §2.1). That is why no nonce is the default."""
    leaf = issuer.issue_cert("nonce.example")
    server = CfsslResponder(issuer, binary=cfssl)
    server.add(leaf)
    nonce = os.urandom(16)
    with server:
        with_nonce, certs = ask(server.url, leaf, nonce=nonce)
        without, _ = ask(server.url, leaf)
    assert with_nonce == without == server.responses[0]  # the nonce changes nothing
    result = judge(with_nonce, certs, nonce=nonce)
    assert result.status is StapleStatus.INVALID
    assert "carries no nonce" in result.reason
    assert "it said good" in result.reason
    assert judge(without, certs).status is StapleStatus.GOOD


def test_another_cas_response_for_the_same_serial_is_invalid(cfssl: str, issuer: CA) -> None:
    """cfssl finds responses by serial number alone: it serves another CA's response
    for our leaf's serial. It is properly signed, by the wrong CA, about another
    certificate: invalid for ours, never good."""
    other = CA(now=utcnow(), name="another test root")
    leaf = issuer.issue_cert("ours.example")
    foreign = other.issue_cert("theirs.example", serial_number=leaf.cert.serial_number)
    server = CfsslResponder(issuer, binary=cfssl)
    served = server.add(foreign, "good", issuer=other)
    with server:
        der, certs = ask(server.url, leaf)
    assert der == served
    result = judge(der, certs)
    assert result.status is StapleStatus.INVALID, result.reason
    # The same bytes are a good answer for the certificate they are about.
    theirs = CertPair.of(foreign.cert, other.cert)
    assert judge(der, theirs).status is StapleStatus.GOOD


# --- the helper itself -----------------------------------------------------------------


def test_cfssl_refuses_to_sign_for_another_cas_certificate(cfssl: str, issuer: CA) -> None:
    stranger = CA(now=utcnow()).issue_cert("stranger.example")
    with pytest.raises(CfsslError, match="not issued by this issuer"):
        CfsslResponder(issuer, binary=cfssl).sign(stranger)


def test_the_helper_stops_what_it_started(cfssl: str, issuer: CA) -> None:
    server = CfsslResponder(issuer, binary=cfssl)
    server.add(issuer.issue_cert("a.example"))
    with server:
        port = server.port
        assert port is not None
        process = server._process
        assert process is not None
        assert process.poll() is None
        directory = server.directory
        with pytest.raises(RuntimeError, match="before start"):
            server.add(issuer.issue_cert("b.example"))
    assert process.poll() is not None
    assert not directory.exists()
    assert "Read 1 OCSP responses" in server.logs  # kept after stop
    with socket.socket() as sock:
        sock.settimeout(1)
        with pytest.raises(ConnectionRefusedError):
            sock.connect(("127.0.0.1", port))
    server.stop()  # idempotent
    with pytest.raises(RuntimeError, match="cannot be started again"):
        server.start()


# --- end to end ------------------------------------------------------------------------


def test_round_trips_end_to_end(cfssl: str, issuer: CA) -> None:
    """Sign, serve, then fetch and judge 50 times over POST. The timings are printed
    (``pytest -s``), never asserted: CI machines vary."""
    leaves = [issuer.issue_cert(f"e2e{n}.example") for n in range(5)]
    server = CfsslResponder(issuer, issuer.issue_responder(), binary=cfssl)
    started = time.perf_counter()
    for leaf in leaves:
        server.add(leaf)
    signed = time.perf_counter()
    with server:
        up = time.perf_counter()
        statuses = set()
        for n in range(50):
            der, certs = ask(server.url, leaves[n % len(leaves)])
            statuses.add(judge(der, certs).status)
        done = time.perf_counter()
    assert statuses == {StapleStatus.GOOD}
    print(
        f"cfssl: ocspsign {(signed - started) * 1000 / len(leaves):.1f} ms each, "
        f"ocspserve up in {(up - signed) * 1000:.1f} ms, "
        f"POST fetch + judge {(done - up) * 1000 / 50:.2f} ms each"
    )
