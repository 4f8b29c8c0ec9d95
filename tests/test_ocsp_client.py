"""The live-OCSP client: requests, judging fetched responses, the fetcher, fetch_first.

Real servers only: the project's OCSPResponder (well-behaved and misbehaving), the
CRL server, a plain socket that never listens (connection refused), and ``openssl
ocsp`` as a responder inside a loopback-only network namespace.
"""

from __future__ import annotations

import base64
import datetime
import os
import socket
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from staplecheck.revocation._fetch import (
    CRL_TYPES,
    MAX_PARALLEL,
    OCSP_TYPES,
    FetchError,
    fetch,
    fetch_crl,
    fetch_first,
    fetch_ocsp,
)
from staplecheck.revocation._ocsp import (
    OCSPRequest,
    build_request,
    get_url,
    judge_fetched,
    response_status,
)
from staplecheck.testing import CA, CRLServer, Identity, OCSPResponder, make_ocsp_response
from staplecheck.validation import _der
from staplecheck.validation._result import StapleResult, StapleStatus
from staplecheck.validation._validate import (
    DEFAULT_CLOCK_SKEW,
    DEFAULT_LIFETIME,
    DEFAULT_MAX_AGE,
    CertPair,
)
from tests.conftest import NOW, require_program
from tests.realservers import HOST, OpenSSLResponder

DER = serialization.Encoding.DER
MARGIN = 0.35  # seconds a timeout may overrun on a loaded 2-core machine


@pytest.fixture(scope="module")
def issuer() -> CA:
    return CA(now=NOW).create_intermediate()


@pytest.fixture(scope="module")
def leaf(issuer: CA) -> Identity:
    return issuer.issue_cert("localhost")


@pytest.fixture(scope="module")
def certs(leaf: Identity, issuer: CA) -> CertPair:
    return CertPair.of(leaf.cert, issuer.cert)


@pytest.fixture
def responder(issuer: CA, leaf: Identity) -> Iterator[OCSPResponder]:
    with OCSPResponder(issuer, clock=lambda: NOW) as running:
        running.set_status(leaf, "good")
        yield running


def judge(
    der: bytes, certs: CertPair, *, nonce: bytes | None = None, now: datetime.datetime = NOW
) -> StapleResult:
    return judge_fetched(
        der,
        certs,
        nonce=nonce,
        now=now,
        clock_skew=DEFAULT_CLOCK_SKEW,
        default_lifetime=DEFAULT_LIFETIME,
        max_age=DEFAULT_MAX_AGE,
        allow_sha1=True,
        cache=None,
    )


def judge_with(certs: CertPair, nonce: bytes | None = None) -> Callable[[bytes], StapleResult]:
    return lambda der: judge(der, certs, nonce=nonce)


def soon(seconds: float = 3.0) -> float:
    return time.monotonic() + seconds


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A URL whose port is bound but never listens: connection refused, and the port
    cannot be taken by anyone else meanwhile."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        yield f"http://{HOST}:{sock.getsockname()[1]}/"


# --- building requests -----------------------------------------------------------------


def test_request_parses_back_with_the_certids_fields(certs: CertPair, issuer: CA) -> None:
    request = build_request(certs)
    parsed = ocsp.load_der_ocsp_request(request.der)
    assert parsed.hash_algorithm.name == "sha1"
    assert parsed.serial_number == certs.leaf.serial_number == request.serial_number
    issuer_der = issuer.cert.public_bytes(DER)
    fields = _der.certificate_fields(issuer_der)
    assert parsed.issuer_name_hash == hashes_of("sha1", fields.subject) == request.issuer_name_hash
    assert parsed.issuer_key_hash == hashes_of("sha1", fields.key_bits) == request.issuer_key_hash
    assert len(parsed.extensions) == 0
    assert request.nonce is None


def hashes_of(name: str, data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SHA1() if name == "sha1" else hashes.SHA256())
    digest.update(data)
    return digest.finalize()


def test_request_with_sha256_and_a_nonce(certs: CertPair) -> None:
    nonce = bytes(range(16))
    request = build_request(certs, hash_algorithm="sha256", nonce=nonce)
    parsed = ocsp.load_der_ocsp_request(request.der)
    assert parsed.hash_algorithm.name == "sha256"
    assert len(parsed.issuer_key_hash) == 32
    extension = parsed.extensions.get_extension_for_class(x509.OCSPNonce)
    assert extension.value.nonce == nonce
    assert not extension.critical


def test_request_is_what_cryptography_would_build(certs: CertPair) -> None:
    """The same CertID and nonce bytes as cryptography's own builder (which adds
    nothing else for one certificate)."""
    nonce = b"\x01" * 32
    built = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(certs.leaf, certs.issuer, hashes.SHA1())
        .add_extension(x509.OCSPNonce(nonce), critical=False)
        .build()
        .public_bytes(DER)
    )
    assert build_request(certs, nonce=nonce).der == built


@pytest.mark.parametrize("nonce", [b"", bytes(33)])
def test_nonce_length_is_1_to_32_octets(certs: CertPair, nonce: bytes) -> None:
    with pytest.raises(ValueError, match="1 to 32"):
        build_request(certs, nonce=nonce)


def test_unsupported_hash_is_refused(certs: CertPair) -> None:
    with pytest.raises(ValueError, match="hash_algorithm"):
        build_request(certs, hash_algorithm="md5")


def test_openssl_reads_the_request(certs: CertPair, tmp_path: Path) -> None:
    openssl = require_program("openssl")
    request = build_request(certs, nonce=b"\xab" * 8)
    (tmp_path / "req.der").write_bytes(request.der)
    text = subprocess.run(
        [openssl, "ocsp", "-reqin", str(tmp_path / "req.der"), "-req_text"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Hash Algorithm: sha1" in text
    assert f"Issuer Name Hash: {request.issuer_name_hash.hex().upper()}" in text
    assert f"Issuer Key Hash: {request.issuer_key_hash.hex().upper()}" in text
    # openssl prints whole octets: a leading zero when the hex has an odd length.
    serial = f"{certs.leaf.serial_number:X}"
    serial = serial.zfill(len(serial) + len(serial) % 2)
    assert f"Serial Number: {serial}" in text.replace(" ", "").replace(
        "SerialNumber:", "Serial Number: "
    )
    assert "OCSP Nonce" in text
    assert "0408ABABABABABABABAB" in text.replace(":", "").replace(" ", "").upper()


def test_certid_uses_the_issuers_key_bits_as_encoded(issuer: CA) -> None:
    """A compressed EC point is hashed compressed (cryptography would uncompress it)."""
    compressed_der, bits = _with_compressed_key(issuer.cert.public_bytes(DER))
    leaf_der = issuer.issue_cert("compressed.example").cert.public_bytes(DER)
    request = build_request(CertPair(leaf_der, compressed_der))
    assert bits[0] in (0x02, 0x03)
    assert len(bits) == 33
    assert request.issuer_key_hash == hashes_of("sha1", bits)
    assert (
        request.issuer_key_hash
        != build_request(CertPair(leaf_der, issuer.cert.public_bytes(DER))).issuer_key_hash
    )


def _with_compressed_key(certificate_der: bytes) -> tuple[bytes, bytes]:
    """The certificate with its P-256 key point compressed (the signature no longer
    verifies; only the CertID is computed from it), and the new key bits."""
    from staplecheck.testing._asn1 import bit_string, sequence

    outer = _der.children(_der.read_tlv(certificate_der).value, 3)
    tbs = outer[0].value
    fields = _der.children(tbs)
    spki_at = 6 if fields[0].tag == 0xA0 else 5
    parts = [tbs[f.start : f.end] for f in fields]
    spki = _der.children(fields[spki_at].value)
    point = _der.expect(spki[1], _der.BIT_STRING)[1:]
    x, y = point[1:33], point[33:]
    bits = bytes([0x02 + (y[-1] & 1)]) + x
    parts[spki_at] = sequence(fields[spki_at].value[spki[0].start : spki[0].end], bit_string(bits))
    content = _der.read_tlv(certificate_der).value
    rest = content[outer[1].start : outer[2].end]
    return sequence(sequence(*parts), rest), bits


# --- GET URLs ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "prefix"),
    [
        ("http://ocsp.example", "http://ocsp.example/"),
        ("http://ocsp.example/", "http://ocsp.example/"),
        ("http://ocsp.example/ocsp", "http://ocsp.example/ocsp/"),
        ("http://ocsp.example/ocsp/", "http://ocsp.example/ocsp/"),
        ("http://ocsp.example:8080/a/b", "http://ocsp.example:8080/a/b/"),
    ],
)
def test_get_url_joins_one_slash(base: str, prefix: str) -> None:
    request = bytes(range(256))[:120]  # base64 with "+", "/" and "="
    url = get_url(base, request)
    assert url.startswith(prefix)
    encoded = url[len(prefix) :]
    assert "/" not in encoded
    assert "+" not in encoded
    assert "=" not in encoded
    assert base64.b64decode(urllib.parse.unquote(encoded)) == request


def test_get_url_refuses_a_query() -> None:
    with pytest.raises(ValueError, match="query"):
        get_url("http://ocsp.example/?a=b", b"\x30\x00")


@pytest.mark.parametrize("path", ["", "ocsp", "ocsp/"])
def test_get_round_trips_through_the_responder(
    responder: OCSPResponder, certs: CertPair, path: str
) -> None:
    request = build_request(certs, nonce=os.urandom(16))
    der = fetch_ocsp(responder.url + path, request.der, method="GET", deadline=soon())
    assert responder.history[-1].method == "GET"
    assert responder.history[-1].serial_number == certs.leaf.serial_number
    assert judge(der, certs, nonce=request.nonce).status is StapleStatus.GOOD


# --- judging fetched responses -----------------------------------------------------------


@pytest.mark.parametrize("status", ["good", "revoked", "unknown"])
@pytest.mark.parametrize("nonce", [None, b"\x42" * 16])
def test_every_status_from_the_responder(
    responder: OCSPResponder, leaf: Identity, certs: CertPair, status: str, nonce: bytes | None
) -> None:
    responder.set_status(
        leaf, status, revocation_reason="keyCompromise" if status == "revoked" else None
    )
    request = build_request(certs, nonce=nonce)
    der = fetch_ocsp(responder.url, request.der, deadline=soon())
    result = judge(der, certs, nonce=nonce)
    assert result.status.value == status
    if status == "revoked":
        assert result.revocation_reason == "keyCompromise"


@pytest.mark.parametrize(
    ("mode", "words"),
    [
        ("forged", "signature"),
        ("other-certificate", "no entry for serial"),
        ("try-later", "answered tryLater"),
    ],
)
@pytest.mark.parametrize("status", ["good", "revoked"])
def test_misbehaving_answers_are_invalid(
    responder: OCSPResponder,
    leaf: Identity,
    certs: CertPair,
    mode: str,
    words: str,
    status: str,
) -> None:
    responder.set_status(leaf, status)
    responder.misbehave(mode)
    der = fetch_ocsp(responder.url, build_request(certs).der, deadline=soon())
    result = judge(der, certs)
    assert result.status is StapleStatus.INVALID
    assert words in result.reason


def test_try_later_is_told_apart_from_forgery(responder: OCSPResponder, certs: CertPair) -> None:
    responder.misbehave("try-later")
    der = fetch_ocsp(responder.url, build_request(certs).der, deadline=soon())
    assert response_status(der) == "tryLater"
    assert judge(der, certs).reason.startswith("the responder answered tryLater")
    responder.misbehave("forged")
    der = fetch_ocsp(responder.url, build_request(certs).der, deadline=soon())
    assert response_status(der) == "successful"
    assert "answered" not in judge(der, certs).reason


def test_unauthorized_signer_and_stale_are_never_good(
    issuer: CA, leaf: Identity, certs: CertPair
) -> None:
    other = CA(now=NOW).create_intermediate(name="staplecheck test intermediate")
    delegate_elsewhere = other.issue_responder()
    no_eku = issuer.issue_responder(ocsp_signing=False)
    for responder_identity in (delegate_elsewhere, no_eku, leaf):
        der = make_ocsp_response(issuer, leaf, "good", responder=responder_identity)
        assert judge(der, certs).status is StapleStatus.INVALID
    old = NOW - datetime.timedelta(days=3)
    der = make_ocsp_response(issuer, leaf, "good", this_update=old)
    assert judge(der, certs).status is StapleStatus.STALE
    future = NOW + datetime.timedelta(hours=1)
    der_future = make_ocsp_response(issuer, leaf, "good", this_update=future)
    assert judge(der_future, certs).status is StapleStatus.INVALID
    # A stale response with a wrong nonce: still not good (invalid).
    assert judge(der, certs, nonce=b"x").status is StapleStatus.INVALID


@pytest.mark.parametrize("mode", ["no-nonce", "wrong-nonce"])
def test_nonce_rule(responder: OCSPResponder, certs: CertPair, mode: str) -> None:
    responder.misbehave(mode)
    nonce = b"\x07" * 32
    der = fetch_ocsp(responder.url, build_request(certs, nonce=nonce).der, deadline=soon())
    result = judge(der, certs, nonce=nonce)
    assert result.status is StapleStatus.INVALID
    assert "RFC 8954" in result.reason
    assert result.reason.endswith("it said good")
    # A caller who sent no nonce does not look for one.
    der = fetch_ocsp(responder.url, build_request(certs).der, deadline=soon())
    assert judge(der, certs).status is StapleStatus.GOOD


def test_an_unasked_nonce_is_ignored(responder: OCSPResponder, certs: CertPair) -> None:
    der = fetch_ocsp(responder.url, build_request(certs, nonce=b"n" * 8).der, deadline=soon())
    assert judge(der, certs, nonce=None).status is StapleStatus.GOOD
    assert judge(der, certs, nonce=b"n" * 8).status is StapleStatus.GOOD
    assert judge(der, certs, nonce=b"m" * 8).status is StapleStatus.INVALID


def test_replayed_response_with_another_nonce_is_invalid(
    responder: OCSPResponder, certs: CertPair
) -> None:
    first = fetch_ocsp(responder.url, build_request(certs, nonce=b"A" * 16).der, deadline=soon())
    assert judge(first, certs, nonce=b"B" * 16).status is StapleStatus.INVALID


def test_nonce_extensions_that_are_not_one_octet_string(
    issuer: CA, leaf: Identity, certs: CertPair
) -> None:
    from staplecheck.testing import RawExtension

    nonce_oid = "1.3.6.1.5.5.7.48.1.2"
    raw = RawExtension(oid=nonce_oid, value=b"N" * 16)  # no inner OCTET STRING
    good = RawExtension(oid=nonce_oid, value=b"\x04\x10" + b"N" * 16)
    for extensions in ([raw], [good, good]):
        der = make_ocsp_response(issuer, leaf, "good", extensions=extensions)
        assert judge(der, certs).status is StapleStatus.GOOD
        result = judge(der, certs, nonce=b"N" * 16)
        assert result.status is StapleStatus.INVALID, extensions
    der = make_ocsp_response(issuer, leaf, "good", extensions=[good])
    assert judge(der, certs, nonce=b"N" * 16).status is StapleStatus.GOOD


@pytest.mark.parametrize("body", [b"", b"\x30\x03abc", b"garbage", b"\x30\x80" + bytes(100)])
def test_garbage_is_invalid_never_missing(certs: CertPair, body: bytes) -> None:
    result = judge(body, certs, nonce=b"x")
    assert result.status is StapleStatus.INVALID


def test_response_status_reads_only_the_start() -> None:
    assert response_status(b"\x30\x03\x0a\x01\x03") == "tryLater"
    assert response_status(b"\x30\x03\x0a\x01\x04") == "status 4"
    assert response_status(b"\x04\x00") is None
    assert response_status(b"") is None


# --- the fetcher -------------------------------------------------------------------------


def test_post_and_get_reach_the_responder(responder: OCSPResponder, certs: CertPair) -> None:
    request = build_request(certs)
    for method in ("POST", "GET"):
        der = fetch_ocsp(responder.url, request.der, method=method, deadline=soon())
        assert judge(der, certs).status is StapleStatus.GOOD
    assert [r.method for r in responder.history] == ["POST", "GET"]


def test_redirects_are_not_followed(responder: OCSPResponder, certs: CertPair) -> None:
    responder.misbehave("redirect", location="http://127.0.0.1:1/elsewhere")
    with pytest.raises(FetchError, match=r"302 redirect to 'http://127.0.0.1:1/elsewhere'"):
        fetch_ocsp(responder.url, build_request(certs).der, deadline=soon())
    assert responder.requests == 1


@pytest.mark.parametrize("mode", ["oversized", "oversized-stream"])
def test_byte_cap(responder: OCSPResponder, certs: CertPair, mode: str) -> None:
    responder.misbehave(mode, size=5_000_000)
    started = time.monotonic()
    with pytest.raises(FetchError, match="over the cap of 65536 bytes") as caught:
        fetch_ocsp(responder.url, build_request(certs).der, deadline=soon())
    assert ("Content-Length" in caught.value.reason) == (mode == "oversized")
    assert time.monotonic() - started < 2.0
    # Under a larger cap the same body is fetched whole.
    der = fetch_ocsp(responder.url, build_request(certs).der, deadline=soon(), max_bytes=5_000_000)
    assert len(der) == 5_000_000


def test_timeout_is_honoured(responder: OCSPResponder, certs: CertPair) -> None:
    responder.misbehave("slow", delay=30)
    started = time.monotonic()
    with pytest.raises(FetchError, match=r"no answer within 0.300 s") as caught:
        fetch_ocsp(responder.url, build_request(certs).der, deadline=soon(10), timeout=0.3)
    elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < 0.3 + MARGIN
    assert 0.3 <= caught.value.elapsed < 0.3 + MARGIN


def test_deadline_cuts_a_dripping_server(responder: OCSPResponder, certs: CertPair) -> None:
    """One byte every 50 ms: each receive is quick, the deadline still ends it."""
    responder.misbehave("drip", interval=0.05)
    started = time.monotonic()
    with pytest.raises(FetchError, match="no answer within"):
        fetch_ocsp(responder.url, build_request(certs).der, deadline=started + 0.5, timeout=5)
    assert time.monotonic() - started < 0.5 + MARGIN


def test_deadline_in_the_past(responder: OCSPResponder, certs: CertPair) -> None:
    with pytest.raises(FetchError, match="no time left"):
        fetch_ocsp(responder.url, build_request(certs).der, deadline=time.monotonic() - 1)
    assert responder.requests == 0


@pytest.mark.parametrize(
    ("mode", "params", "words"),
    [
        ("content-type", {}, "Content-Type 'text/html', not application/ocsp-response"),
        ("content-type", {"value": "application/pkix-crl"}, "Content-Type"),
        ("http-error", {}, "HTTP 500"),
        ("http-error", {"status": 404}, "HTTP 404"),
        ("empty", {}, "the body is empty"),
        ("close", {}, "closed the connection without answering"),
        ("reset", {}, "the connection was reset"),
    ],
)
def test_http_failures_have_reasons(
    responder: OCSPResponder, certs: CertPair, mode: str, params: dict[str, object], words: str
) -> None:
    responder.misbehave(mode, **params)
    with pytest.raises(FetchError, match=words) as caught:
        fetch_ocsp(responder.url, build_request(certs).der, deadline=soon())
    assert caught.value.url == responder.url


def test_connection_refused(refused_url: str, certs: CertPair) -> None:
    with pytest.raises(FetchError, match="connection refused"):
        fetch_ocsp(refused_url, build_request(certs).der, deadline=soon())


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("https://127.0.0.1:1/", "https:// sources are refused"),
        ("ftp://127.0.0.1/", "only http://"),
        ("ldap://ldap.example/cn=crl", "only http://"),
        ("http:///nohost", "no host"),
        ("http://user:pw@127.0.0.1:1/", "credentials"),
        ("http://127.0.0.1:99999/", "bad URL"),
    ],
)
def test_urls_refused_before_any_connection(url: str, words: str) -> None:
    with pytest.raises(FetchError, match=words):
        fetch(url, accept=OCSP_TYPES, max_bytes=100, deadline=soon())


def test_https_when_allowed_is_verified(responder: OCSPResponder, certs: CertPair) -> None:
    """allow_https=True speaks TLS (so a plain-HTTP responder fails), nothing else."""
    url = responder.url.replace("http://", "https://")
    with pytest.raises(FetchError) as caught:
        fetch_ocsp(url, build_request(certs).der, deadline=soon(), allow_https=True)
    assert "refused unless allowed" not in caught.value.reason


def test_environment_proxies_are_ignored(
    responder: OCSPResponder, certs: CertPair, refused_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, refused_url)
    monkeypatch.setenv("NO_PROXY", "")
    der = fetch_ocsp(responder.url, build_request(certs).der, deadline=soon())
    assert judge(der, certs).status is StapleStatus.GOOD
    assert responder.requests == 1


def test_crl_content_types(issuer: CA, leaf: Identity) -> None:
    crl = issuer.crl([leaf])
    with CRLServer() as server:
        url = server.set_crl("/issuer.crl", crl)
        assert fetch_crl(url, deadline=soon()) == crl
        server.misbehave("redirect")
        with pytest.raises(FetchError, match="redirect"):
            fetch_crl(url, deadline=soon())
    assert "application/octet-stream" in CRL_TYPES
    assert "application/ocsp-response" not in CRL_TYPES


# --- fetch_first -------------------------------------------------------------------------


def test_first_definite_answer_wins(
    issuer: CA, leaf: Identity, certs: CertPair, refused_url: str
) -> None:
    with (
        OCSPResponder(issuer, clock=lambda: NOW) as slow,
        OCSPResponder(issuer, clock=lambda: NOW) as good,
    ):
        slow.misbehave("slow", delay=30)
        good.set_status(leaf, "good")
        urls = [refused_url, slow.url, good.url]
        started = time.monotonic()
        answer = fetch_first(urls, build_request(certs).der, judge_with(certs), deadline=soon(5))
        elapsed = time.monotonic() - started
    assert answer.result is not None
    assert answer.result.status is StapleStatus.GOOD
    assert answer.url == good.url
    assert answer.der is not None
    assert elapsed < 1.0
    outcomes = {a.url: a.outcome for a in answer.attempts}
    # The refused connection usually fails first; on a loaded machine the good answer
    # may come before its failure is seen, and it is cancelled like the slow one.
    assert outcomes[refused_url] in ("failed", "cancelled")
    assert {slow.url: outcomes[slow.url], good.url: outcomes[good.url]} == {
        slow.url: "cancelled",
        good.url: "good",
    }
    assert [a.url for a in answer.attempts] == urls


def test_invalid_answers_do_not_end_the_search(issuer: CA, leaf: Identity, certs: CertPair) -> None:
    with (
        OCSPResponder(issuer, clock=lambda: NOW) as forged,
        OCSPResponder(issuer, clock=lambda: NOW) as revoked,
    ):
        forged.misbehave("forged")
        revoked.set_status(leaf, "revoked")
        revoked.misbehave("slow", delay=0.3)  # the forged answer comes first
        answer = fetch_first(
            [forged.url, revoked.url], build_request(certs).der, judge_with(certs), deadline=soon()
        )
    assert answer.result is not None
    assert answer.result.status is StapleStatus.REVOKED
    assert [a.outcome for a in answer.attempts] == ["invalid", "revoked"]


def test_all_down_lists_the_failures(issuer: CA, certs: CertPair, refused_url: str) -> None:
    with OCSPResponder(issuer, clock=lambda: NOW) as garbage:
        garbage.misbehave("garbage")
        answer = fetch_first(
            [refused_url, garbage.url], build_request(certs).der, judge_with(certs), deadline=soon()
        )
    assert answer.result is None
    assert answer.url is None
    assert answer.der is None
    assert [a.outcome for a in answer.attempts] == ["failed", "invalid"]
    assert "connection refused" in answer.attempts[0].reason


def test_fetch_first_returns_at_the_deadline(issuer: CA, certs: CertPair) -> None:
    with (
        OCSPResponder(issuer, clock=lambda: NOW) as one,
        OCSPResponder(issuer, clock=lambda: NOW) as two,
    ):
        one.misbehave("slow", delay=30)
        two.misbehave("drip", interval=0.05)
        started = time.monotonic()
        answer = fetch_first(
            [one.url, two.url],
            build_request(certs).der,
            judge_with(certs),
            deadline=started + 0.5,
        )
        elapsed = time.monotonic() - started
    assert answer.result is None
    assert 0.5 <= elapsed < 0.5 + MARGIN
    assert {a.outcome for a in answer.attempts} <= {"timeout", "failed"}


def test_fetch_first_asks_at_most_max_parallel(certs: CertPair, refused_url: str) -> None:
    urls = [refused_url] * (MAX_PARALLEL + 2)
    answer = fetch_first(urls, build_request(certs).der, judge_with(certs), deadline=soon())
    assert [a.outcome for a in answer.attempts].count("skipped") == 2


def test_a_judge_that_raises_is_no_evidence(responder: OCSPResponder, certs: CertPair) -> None:
    def broken(der: bytes) -> StapleResult:
        raise RuntimeError("boom")

    answer = fetch_first([responder.url], build_request(certs).der, broken, deadline=soon())
    assert answer.result is None
    assert answer.attempts[0].outcome == "invalid"
    assert "boom" in answer.attempts[0].reason


# --- openssl ocsp as a responder ----------------------------------------------------------


def test_openssl_ocsp_responder(tmp_path: Path) -> None:
    """A real responder: POST and GET, nonce echoed, good, revoked and unknown."""
    ca = CA().create_intermediate()
    good = ca.issue_cert("good.example")
    revoked = ca.issue_cert("revoked.example")
    stranger = ca.issue_cert("unknown.example")
    server = OpenSSLResponder(ca, [revoked.cert], [good.cert])
    try:
        server.start()
    except Exception as error:
        if "private network namespace" in str(error) and not os.environ.get("CI"):
            pytest.skip(f"no network namespace here: {error}")
        raise
    try:
        url = f"http://{HOST}:{server.port}/"
        now = datetime.datetime.now(datetime.timezone.utc)
        for identity, expected in [
            (good, StapleStatus.GOOD),
            (revoked, StapleStatus.REVOKED),
            (stranger, StapleStatus.UNKNOWN),
        ]:
            pair = CertPair.of(identity.cert, ca.cert)
            for method in ("POST", "GET"):
                request: OCSPRequest = build_request(pair, nonce=os.urandom(16))
                der = fetch_ocsp(url, request.der, method=method, deadline=soon(5))
                result = judge(der, pair, nonce=request.nonce, now=now)
                assert result.status is expected, (identity, method, result.reason)
        # A request naming another issuer: openssl says unauthorized, never good.
        other = CA().create_intermediate()
        foreign = CertPair.of(other.issue_cert("x.example").cert, other.cert)
        der = fetch_ocsp(url, build_request(foreign).der, deadline=soon(5))
        result = judge(der, foreign, now=now)
        assert result.status is StapleStatus.INVALID
    finally:
        server.stop()


def test_cancelled_attempts_end_at_once(issuer: CA, leaf: Identity, certs: CertPair) -> None:
    """The losers' sockets are shut down: their threads end, not at the deadline."""
    with (
        OCSPResponder(issuer, clock=lambda: NOW) as slow,
        OCSPResponder(issuer, clock=lambda: NOW) as good,
    ):
        slow.misbehave("slow", delay=30)
        good.set_status(leaf, "good")
        good.misbehave("slow", delay=0.2)  # the slow one is connected and waiting by then
        answer = fetch_first(
            [slow.url, good.url], build_request(certs).der, judge_with(certs), deadline=soon(20)
        )
        assert answer.url == good.url
        ended = time.monotonic() + 1.0
        while time.monotonic() < ended and any(
            t.name.startswith("staplecheck-ocsp-") for t in threading.enumerate()
        ):
            time.sleep(0.01)
        assert not [t for t in threading.enumerate() if t.name.startswith("staplecheck-ocsp-")]


def test_ipv6_loopback(issuer: CA, leaf: Identity, certs: CertPair) -> None:
    try:
        responder = OCSPResponder(issuer, host="::1", clock=lambda: NOW)
    except OSError as error:
        pytest.skip(f"no IPv6 loopback here: {error}")
    with responder:
        responder.set_status(leaf, "good")
        assert responder.url.startswith("http://[::1]:")
        for method in ("POST", "GET"):
            der = fetch_ocsp(
                responder.url, build_request(certs).der, method=method, deadline=soon()
            )
            assert judge(der, certs).status is StapleStatus.GOOD
