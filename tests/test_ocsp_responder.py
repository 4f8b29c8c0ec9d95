"""staplecheck.testing.OCSPResponder: the loopback responder servers fetch staples from.

Requests are built with cryptography's OCSPRequestBuilder (as a server would build
them), sent over real HTTP by GET and POST, and the answers are read back with
cryptography's OCSP parser and judged by staplecheck's validator.
"""

from __future__ import annotations

import base64
import datetime
import socket
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from staplecheck import StapleStatus, validate_staple
from staplecheck.testing import CA, Identity, OCSPResponder
from staplecheck.testing._responder import _decode_get_path

HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy


@pytest.fixture(scope="module")
def issuer() -> CA:
    return CA(name="responder test root").create_intermediate(name="responder test issuer")


@pytest.fixture
def responder(issuer: CA) -> Iterator[OCSPResponder]:
    with OCSPResponder(issuer) as r:
        yield r


def request_for(
    leaf: Identity, issuer: CA, algorithm: hashes.HashAlgorithm | None = None, nonce: bytes = b""
) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(
        leaf.cert, issuer.cert, algorithm or hashes.SHA1()
    )
    if nonce:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def post(url: str, body: bytes) -> bytes:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/ocsp-request"}, method="POST"
    )
    with HTTP.open(request, timeout=10) as answer:
        assert answer.headers["Content-Type"] == "application/ocsp-response"
        return bytes(answer.read())


def get(url: str) -> bytes:
    with HTTP.open(url, timeout=10) as answer:
        assert answer.headers["Content-Type"] == "application/ocsp-response"
        return bytes(answer.read())


def judge(der: bytes, leaf: Identity, issuer: CA) -> StapleStatus:
    return validate_staple(der, leaf.cert, issuer.cert, cache=None).status


def test_url_and_default_answer(responder: OCSPResponder, issuer: CA) -> None:
    assert responder.url == f"http://127.0.0.1:{responder.port}/"
    leaf = issuer.issue_cert("localhost")
    assert responder.status(leaf) == "unknown"
    der = post(responder.url, request_for(leaf, issuer))
    assert judge(der, leaf, issuer) is StapleStatus.UNKNOWN  # not in the table
    assert responder.requests == 1
    [entry] = responder.history
    assert (entry.method, entry.serial_number, entry.answer) == (
        "POST",
        leaf.cert.serial_number,
        "unknown",
    )


def test_status_table_changes_at_runtime(responder: OCSPResponder, issuer: CA) -> None:
    leaf = issuer.issue_cert("localhost")
    responder.set_status(leaf, "good")
    assert judge(post(responder.url, request_for(leaf, issuer)), leaf, issuer) is StapleStatus.GOOD
    responder.set_status(leaf.cert.serial_number, "revoked", revocation_reason="keyCompromise")
    der = post(responder.url, request_for(leaf, issuer))
    result = validate_staple(der, leaf.cert, issuer.cert, cache=None)
    assert result.status is StapleStatus.REVOKED
    assert result.revocation_reason == "keyCompromise"
    assert result.revocation_time is not None
    responder.set_status(leaf.cert, "good")
    assert judge(post(responder.url, request_for(leaf, issuer)), leaf, issuer) is StapleStatus.GOOD
    assert [h.answer for h in responder.history] == ["good", "revoked", "good"]


def test_statuses_in_the_constructor(issuer: CA) -> None:
    leaf = issuer.issue_cert("localhost")
    with OCSPResponder(issuer, {leaf.cert.serial_number: "revoked"}) as responder:
        der = post(responder.url, request_for(leaf, issuer))
    assert judge(der, leaf, issuer) is StapleStatus.REVOKED


def test_bad_statuses_are_refused(responder: OCSPResponder, issuer: CA) -> None:
    with pytest.raises(ValueError, match="status must be one of"):
        responder.set_status(1, "fine")
    with pytest.raises(ValueError, match="revocation reason"):
        responder.set_status(1, "revoked", revocation_reason="bored")


@pytest.mark.parametrize("quote", [True, False], ids=["url-encoded", "raw"])
def test_get(responder: OCSPResponder, issuer: CA, quote: bool) -> None:
    leaf = issuer.issue_cert("localhost")
    responder.set_status(leaf, "good")
    encoded = base64.b64encode(request_for(leaf, issuer)).decode()
    path = urllib.parse.quote(encoded, safe="") if quote else encoded
    assert judge(get(responder.url + path), leaf, issuer) is StapleStatus.GOOD
    assert responder.history[-1].method == "GET"


def test_get_path_decoding() -> None:
    assert _decode_get_path("/MAMCAQA%3D") == base64.b64decode("MAMCAQA=")
    assert _decode_get_path("/MAMCAQA") == base64.b64decode("MAMCAQA=")  # padding left out
    assert _decode_get_path("/a-_w") == base64.b64decode("a+/w")  # URL-safe alphabet


@pytest.mark.parametrize(
    ("algorithm", "name"),
    [(hashes.SHA1(), "sha1"), (hashes.SHA256(), "sha256"), (hashes.SHA512(), "sha512")],
)
def test_cert_id_uses_the_request_hash(
    responder: OCSPResponder, issuer: CA, algorithm: hashes.HashAlgorithm, name: str
) -> None:
    leaf = issuer.issue_cert("localhost")
    responder.set_status(leaf, "good")
    der = post(responder.url, request_for(leaf, issuer, algorithm))
    assert ocsp.load_der_ocsp_response(der).hash_algorithm.name == name
    assert judge(der, leaf, issuer) is StapleStatus.GOOD


def test_nonce_is_echoed(responder: OCSPResponder, issuer: CA) -> None:
    leaf = issuer.issue_cert("localhost")
    der = post(responder.url, request_for(leaf, issuer, nonce=b"0123456789abcdef"))
    nonce = ocsp.load_der_ocsp_response(der).extensions.get_extension_for_class(x509.OCSPNonce)
    assert nonce.value.nonce == b"0123456789abcdef"
    plain = post(responder.url, request_for(leaf, issuer))
    assert len(ocsp.load_der_ocsp_response(plain).extensions) == 0


def test_another_issuers_certificate_is_unauthorized(responder: OCSPResponder) -> None:
    other = CA().create_intermediate()
    leaf = other.issue_cert("localhost")
    der = post(responder.url, request_for(leaf, other))
    status = ocsp.load_der_ocsp_response(der).response_status
    assert status is ocsp.OCSPResponseStatus.UNAUTHORIZED
    assert responder.history[-1].answer == "unauthorized"


@pytest.mark.parametrize("send", ["junk POST", "empty GET", "junk GET"])
def test_malformed_requests(responder: OCSPResponder, send: str) -> None:
    if send == "junk POST":
        der = post(responder.url, b"\x30\x03not a request")
    elif send == "empty GET":
        der = get(responder.url)
    else:
        der = get(responder.url + "%%%")
    status = ocsp.load_der_ocsp_response(der).response_status
    assert status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    assert responder.history[-1].answer == "malformedRequest"
    assert responder.requests == 1


def test_times_follow_the_clock_and_validity(issuer: CA) -> None:
    when = datetime.datetime(2030, 1, 2, 3, 4, 5, 678, tzinfo=datetime.timezone.utc)
    leaf = issuer.issue_cert("localhost")
    with OCSPResponder(
        issuer, validity=datetime.timedelta(hours=2), clock=lambda: when
    ) as responder:
        dated = ocsp.load_der_ocsp_response(post(responder.url, request_for(leaf, issuer)))
    assert dated.this_update_utc == when.replace(microsecond=0)
    assert dated.next_update_utc == when.replace(microsecond=0) + datetime.timedelta(hours=2)
    assert dated.produced_at_utc == when.replace(microsecond=0)
    with OCSPResponder(issuer, validity=None) as responder:
        open_ended = ocsp.load_der_ocsp_response(post(responder.url, request_for(leaf, issuer)))
    assert open_ended.next_update_utc is None


def test_response_options(responder: OCSPResponder, issuer: CA) -> None:
    leaf = issuer.issue_cert("localhost")
    responder.set_status(leaf, "good")
    responder.set_response_options(corrupt_signature=True)
    assert judge(post(responder.url, request_for(leaf, issuer)), leaf, issuer) is (
        StapleStatus.INVALID
    )
    responder.set_response_options(response_status="tryLater")
    der = post(responder.url, request_for(leaf, issuer))
    assert ocsp.load_der_ocsp_response(der).response_status is ocsp.OCSPResponseStatus.TRY_LATER
    assert responder.history[-1].answer == "tryLater"
    delegate = issuer.issue_responder()
    responder.set_response_options(responder=delegate)
    der = post(responder.url, request_for(leaf, issuer))
    result = validate_staple(der, leaf.cert, issuer.cert, cache=None)
    assert result.status is StapleStatus.GOOD
    assert result.responder is not None
    assert "OCSP responder" in result.responder
    responder.set_response_options()
    assert judge(post(responder.url, request_for(leaf, issuer)), leaf, issuer) is StapleStatus.GOOD


def test_pause_holds_answers_until_resume(responder: OCSPResponder, issuer: CA) -> None:
    leaf = issuer.issue_cert("localhost")
    responder.set_status(leaf, "good")
    responder.pause()
    answers: list[bytes] = []
    client = threading.Thread(
        target=lambda: answers.append(post(responder.url, request_for(leaf, issuer)))
    )
    client.start()
    assert responder.wait_for_requests(1)
    assert not responder.wait_for_answers(1, timeout=0.2)
    assert responder.history == []
    assert not answers
    responder.resume()
    client.join(timeout=10)
    assert responder.wait_for_answers(1)
    assert judge(answers[0], leaf, issuer) is StapleStatus.GOOD


def test_stop_releases_held_requests_and_joins_threads(issuer: CA) -> None:
    responder = OCSPResponder(issuer).start()
    mine = f"OCSPResponder-{responder.port}"
    responder.pause()
    leaf = issuer.issue_cert("localhost")
    with socket.create_connection(("127.0.0.1", responder.port), timeout=10) as held:
        body = request_for(leaf, issuer)
        held.sendall(
            b"POST / HTTP/1.0\r\nContent-Type: application/ocsp-request\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        assert responder.wait_for_requests(1)
        names = [t.name for t in threading.enumerate()]
        assert mine in names  # the server loop
        assert f"{mine} request" in names  # the held request
        responder.stop()
        assert not [t for t in threading.enumerate() if t.name.startswith(mine)]
        # Answered on the way out, or cut off: either way the client is not left hanging.
        answer = held.recv(65536)
        assert answer == b"" or answer.startswith(b"HTTP/1.0 200"), answer
    responder.stop()  # idempotent
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection(("127.0.0.1", responder.port), 1),
    ):
        pass
    with pytest.raises(RuntimeError, match="cannot be started again"):
        responder.start()


def test_concurrent_clients(responder: OCSPResponder, issuer: CA) -> None:
    leaves = [issuer.issue_cert(f"host{i}.test") for i in range(16)]
    for i, leaf in enumerate(leaves):
        responder.set_status(leaf, ("good", "revoked", "unknown")[i % 3])
    statuses: dict[int, StapleStatus] = {}
    lock = threading.Lock()

    def ask(leaf: Identity) -> None:
        for _ in range(4):
            status = judge(post(responder.url, request_for(leaf, issuer)), leaf, issuer)
            with lock:
                assert statuses.setdefault(leaf.cert.serial_number, status) is status

    threads = [threading.Thread(target=ask, args=(leaf,)) for leaf in leaves]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    expected = (StapleStatus.GOOD, StapleStatus.REVOKED, StapleStatus.UNKNOWN)
    assert statuses == {leaf.cert.serial_number: expected[i % 3] for i, leaf in enumerate(leaves)}
    assert responder.requests == 64
    assert len(responder.history) == 64
