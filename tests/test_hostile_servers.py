"""Hostile and broken servers, through requests, under every policy, TLS 1.2 and 1.3.

Every case ends in a clear verdict or a clear error, never in an acceptance the policy
forbids, and never later than its timeout allows:

1. wrong staples: for another certificate, for an older certificate of the same name,
   from another CA, from an impostor CA with the issuer's name, with a thisUpdate in
   the future;
2. staples too large for TLS to carry, and the validator's time on huge responses;
3. servers that are not TLS, or that stop mid-handshake (a relay in front of a real
   stapling server cuts its first flight at chosen points);
4. servers that stall or trickle;
5. a server whose staple callback throws.

A fact these tests meet: OpenSSL 4 (inside cryptography's wheels from 47 on, so
inside pyOpenSSL and :class:`StaplingServer`) **does not send** a staple it cannot
parse or whose entries all name other certificates: the client sees ``missing``.
OpenSSL 3 (``openssl s_server``, and cryptography's wheels before 47, which the
lower-bound CI run installs) sends whatever it is given; the same staples then give
``invalid``. The in-process server's tests look at what it actually sent and hold
staplecheck to the verdict that fits, never to one server library; both kinds of
server are tested, since a hostile server picks its own TLS stack.

Every server is on 127.0.0.1 on an ephemeral port and stopped by the test; stalling
servers end their threads when stopped. OpenSSL checks certificate validity against
the system clock, so the PKI is anchored at the real current time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import random
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, cast

import pytest
import requests
import urllib3
from OpenSSL import SSL

from staplecheck import (
    Mode,
    Policy,
    StapleAdapter,
    StapleConnection,
    StapleResult,
    StapleStatus,
    TLSConfig,
    create_context,
    drive_handshake,
    find_staple_error,
    has_must_staple,
    pool_manager,
    validate_staple,
)
from staplecheck.cli._main import main
from staplecheck.testing import (
    CA,
    Identity,
    OCSPEntry,
    RawExtension,
    StaplingServer,
    make_ocsp_response,
)
from staplecheck.testing import _asn1 as asn1
from tests.realservers import OpenSSLServer

NOW = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
MODES = ("off", "soft-fail", "must-staple")
TLSVersion = Literal["1.2", "1.3"]
TLS: tuple[TLSVersion, ...] = ("1.2", "1.3")
GOOD, REVOKED, INVALID, MISSING = (
    StapleStatus.GOOD,
    StapleStatus.REVOKED,
    StapleStatus.INVALID,
    StapleStatus.MISSING,
)
EOF = "the server closed the connection"


# --- the PKI ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class World:
    root: CA
    issuer: CA
    leaves: dict[str, Identity]
    """``plain`` and ``must-staple``: localhost and 127.0.0.1, issued by ``issuer``."""
    older: Identity
    """Same names, same issuer, another key and serial: the certificate it replaced."""
    other: Identity
    """other.test, same issuer."""
    foreign: CA
    """An intermediate under an unrelated root."""
    impostor: CA
    """An intermediate with exactly the issuer's name, under an unrelated root."""
    cafile: str
    files: dict[str, tuple[str, str]]
    """Chain and key files of each leaf, for ``openssl s_server``."""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    directory = tmp_path_factory.mktemp("hostile-pki")
    root = CA(now=NOW)
    issuer = root.create_intermediate()
    leaves = {
        "plain": issuer.issue_cert("localhost", "127.0.0.1"),
        "must-staple": issuer.issue_cert("localhost", "127.0.0.1", must_staple=True),
    }
    impostor = CA(now=NOW, name="unrelated root").create_intermediate()
    assert impostor.cert.subject == issuer.cert.subject
    return World(
        root=root,
        issuer=issuer,
        leaves=leaves,
        older=issuer.issue_cert("localhost", "127.0.0.1"),
        other=issuer.issue_cert("other.test"),
        foreign=CA(now=NOW, name="foreign root").create_intermediate(name="foreign CA"),
        impostor=impostor,
        cafile=root.write_trust(directory / "ca.pem"),
        files={kind: leaf.write(directory, kind) for kind, leaf in leaves.items()},
    )


@pytest.fixture(params=TLS, ids=["tls1.2", "tls1.3"])
def tls(request: pytest.FixtureRequest) -> TLSVersion:
    return cast(TLSVersion, request.param)


# --- clients -----------------------------------------------------------------------------


@pytest.fixture
def sessions() -> Iterator[dict[str, requests.Session]]:
    """One requests session per policy; nothing from the environment."""
    made: dict[str, requests.Session] = {}
    for mode in MODES:
        session = requests.Session()
        session.trust_env = False
        session.mount("https://", StapleAdapter(mode))
        made[mode] = session
    try:
        yield made
    finally:
        for session in made.values():
            session.close()


def attempt(session: requests.Session, url: str, **kwargs: Any) -> tuple[Any, float]:
    """(the response or the requests exception, seconds it took)."""
    kwargs.setdefault("timeout", 10)
    start = time.monotonic()
    try:
        outcome: Any = session.get(url, **kwargs)
    except requests.exceptions.RequestException as error:
        outcome = error
    return outcome, time.monotonic() - start


def accepts(mode: str, status: StapleStatus, must_staple: bool) -> bool:
    return Policy(mode=Mode(mode)).accepts(
        StapleResult(status=status, reason="", must_staple=must_staple)
    )


def assert_verdict(
    sessions: dict[str, requests.Session],
    url: str,
    cafile: str,
    leaf: Identity,
    status: StapleStatus,
    reason: str,
) -> dict[str, str]:
    """Connect under each policy; the verdict is ``status`` with ``reason`` in it, and
    each policy accepts or refuses as DESIGN.md's table says. Returns what happened."""
    must_staple = has_must_staple(leaf.cert)
    seen: dict[str, str] = {}
    for mode in MODES:
        outcome, _ = attempt(sessions[mode], url, verify=cafile)
        if mode == "off":  # asks for no staple: connects, no verdict
            assert isinstance(outcome, requests.Response), (mode, outcome)
            assert outcome.status_code == 200
            assert outcome.staple is None
            seen[mode] = "accepted"
        elif accepts(mode, status, must_staple):
            assert isinstance(outcome, requests.Response), (mode, outcome)
            assert outcome.status_code == 200
            assert outcome.staple is not None
            assert outcome.staple.status is status, (mode, outcome.staple)
            assert outcome.staple.serial_number == leaf.cert.serial_number
            assert reason in outcome.staple.reason
            seen[mode] = f"accepted: {status.value}"
        else:
            assert isinstance(outcome, requests.exceptions.SSLError), (mode, outcome)
            found = find_staple_error(outcome)
            assert found is not None, (mode, outcome)
            assert found.result.status is status, (mode, found.result)
            assert found.result.serial_number == leaf.cert.serial_number
            assert found.host == "localhost"
            assert reason in found.result.reason, found.result.reason
            assert f"OCSP staple from localhost rejected: {status.value}: " in str(outcome)
            seen[mode] = f"refused: {status.value}"
    return seen


def assert_handshake_error(
    outcome: Any,
    fragments: tuple[str, ...],
    kind: type[BaseException] = requests.exceptions.SSLError,
) -> None:
    """A connection error of ``kind`` whose message holds one of ``fragments``; no
    response and no staple verdict behind it."""
    assert isinstance(outcome, kind), outcome
    assert find_staple_error(outcome) is None, outcome
    assert any(f in str(outcome) for f in fragments), str(outcome)


# --- 1. wrong staples ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class WrongStaple:
    id: str
    make: Callable[[World, Identity], bytes]
    status: StapleStatus
    reason: str
    """In the verdict when the staple arrives; ``{serial}`` is the leaf's serial."""
    about_another_certificate: bool = False
    """OpenSSL 4 servers drop it (``missing``); OpenSSL 3 servers send it (``status``)."""


WRONG_STAPLES = [
    WrongStaple(
        "for-another-certificate",
        lambda w, leaf: w.issuer.ocsp_response(w.other),
        INVALID,
        "no entry for serial {serial:#x} under this issuer (RFC 6960 §4.1.1)",
        about_another_certificate=True,
    ),
    WrongStaple(
        "for-the-older-certificate-of-the-same-name",
        lambda w, leaf: w.issuer.ocsp_response(w.older),
        INVALID,
        "no entry for serial {serial:#x} under this issuer (RFC 6960 §4.1.1)",
        about_another_certificate=True,
    ),
    WrongStaple(
        "from-another-ca-about-this-serial",
        # The foreign CA's own CertID (its name and key hashes) with this leaf's serial.
        # Its ResponderID (the foreign CA) is checked first.
        lambda w, leaf: w.foreign.ocsp_response(leaf),
        INVALID,
        "the ResponderID names neither the issuer nor a certificate in the response",
        about_another_certificate=True,
    ),
    WrongStaple(
        "another-ca-signs-this-certid",
        # The right CertID, signed by the foreign CA (ResponderID: its own name).
        lambda w, leaf: w.issuer.ocsp_response(leaf, responder=w.foreign),
        INVALID,
        "the ResponderID names neither the issuer nor a certificate in the response",
    ),
    WrongStaple(
        "impostor-with-the-issuers-name",
        # The right CertID and ResponderID, signed by another key of the same name.
        lambda w, leaf: w.issuer.ocsp_response(leaf, responder=w.impostor),
        INVALID,
        "the signature does not verify with the issuer",
    ),
    WrongStaple(
        "this-update-in-the-future",
        lambda w, leaf: w.issuer.ocsp_response(leaf, this_update=NOW + datetime.timedelta(hours=1)),
        INVALID,
        "is in the future",
    ),
    WrongStaple(
        "revoked-with-this-update-in-the-future",
        lambda w, leaf: w.issuer.ocsp_response(
            leaf, "revoked", this_update=NOW + datetime.timedelta(hours=1)
        ),
        INVALID,
        "is in the future (RFC 6960 §3.2); it said revoked",
    ),
]


@pytest.mark.parametrize("leaf_kind", ["plain", "must-staple"])
@pytest.mark.parametrize("case", WRONG_STAPLES, ids=lambda c: c.id)
def test_wrong_staple_from_the_in_process_server(
    world: World,
    sessions: dict[str, requests.Session],
    tls: TLSVersion,
    case: WrongStaple,
    leaf_kind: str,
) -> None:
    leaf = world.leaves[leaf_kind]
    staple = case.make(world, leaf)
    # What this server's OpenSSL puts on the wire: the staple unchanged, or nothing.
    received = _staple_as_received(leaf, staple, tls)
    assert received in (staple, b""), len(received)
    assert received == staple or case.about_another_certificate
    with StaplingServer(leaf, staple, tls_version=tls) as server:
        if not received:
            # OpenSSL 4 keeps it to itself: the client is told nothing was stapled.
            assert_verdict(
                sessions, server.url, world.cafile, leaf, MISSING, "stapled no OCSP response"
            )
        else:
            reason = case.reason.format(serial=leaf.cert.serial_number)
            assert_verdict(sessions, server.url, world.cafile, leaf, case.status, reason)
        assert server.staples_sent == 2  # asked for by soft-fail and must-staple only


@pytest.mark.parametrize("leaf_kind", ["plain", "must-staple"])
@pytest.mark.parametrize("case", WRONG_STAPLES, ids=lambda c: c.id)
def test_wrong_staple_from_openssl_s_server(
    world: World,
    sessions: dict[str, requests.Session],
    tls: TLSVersion,
    case: WrongStaple,
    leaf_kind: str,
    tmp_path: Path,
) -> None:
    leaf = world.leaves[leaf_kind]
    status_file = tmp_path / "staple.der"
    status_file.write_bytes(case.make(world, leaf))
    chain, key = world.files[leaf_kind]
    with OpenSSLServer(chain, key, status_file, tls_version=tls) as server:
        reason = case.reason.format(serial=leaf.cert.serial_number)
        assert_verdict(sessions, server.url(), world.cafile, leaf, case.status, reason)


def test_in_process_server_drops_nothing_but_staples_about_other_certificates(
    world: World,
) -> None:
    """What the in-process server sends, seen by a bare pyOpenSSL client. Every staple
    about the leaf arrives unchanged. Staples about no certificate of the chain, or not
    DER, arrive unchanged from an OpenSSL 3 server and not at all from an OpenSSL 4
    one (the filter that turns them into ``missing`` above): all or none of them."""
    leaf = world.leaves["plain"]
    issuer = world.issuer
    sent = {
        "own": issuer.ocsp_response(leaf),
        "own, bad signature": issuer.ocsp_response(leaf, corrupt_signature=True),
        "own, from another CA": issuer.ocsp_response(leaf, responder=world.foreign),
        "own among others": issuer.ocsp_response(
            world.other, extra_entries=[OCSPEntry(serial_number=leaf.cert.serial_number)]
        ),
        "no entries at all": make_ocsp_response(issuer, None),
        "unsuccessful": issuer.ocsp_response(leaf, response_status="tryLater"),
    }
    dropped = {
        "another certificate": issuer.ocsp_response(world.other),
        "the older certificate": issuer.ocsp_response(world.older),
        "another CA's CertID": world.foreign.ocsp_response(leaf),
        "not DER": b"hello, I am not an OCSP response",
    }
    kept: set[bool] = set()
    for tls_version in TLS:
        for label, staple in sent.items():
            received = _staple_as_received(leaf, staple, tls_version)
            assert received == staple, (tls_version, label, len(received))
        for label, staple in dropped.items():
            received = _staple_as_received(leaf, staple, tls_version)
            assert received in (staple, b""), (tls_version, label, len(received))
            kept.add(received == staple)
    assert len(kept) == 1, "the server filters some foreign staples and not others"


def _staple_as_received(leaf: Identity, staple: bytes, tls_version: TLSVersion) -> bytes:
    got: list[bytes] = []

    def keep(_conn: SSL.Connection, der: bytes, _data: object) -> bool:
        got.append(der)
        return True

    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_ocsp_client_callback(keep)
    with StaplingServer(leaf, staple, tls_version=tls_version) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.setblocking(True)
            connection = SSL.Connection(context, sock)
            connection.request_ocsp()
            connection.set_connect_state()
            connection.do_handshake()
            connection.shutdown()
        assert server.staples_sent == 1  # handed to OpenSSL every time
    assert len(got) == 1
    return got[0]


def test_attacker_with_the_revoked_key_who_staples_nothing(
    world: World, sessions: dict[str, requests.Session], tls: TLSVersion
) -> None:
    """What stapling cannot stop: whoever holds a revoked certificate's key serves it
    without a staple. Only a must-staple certificate or policy refuses that."""
    for kind in ("plain", "must-staple"):
        leaf = world.leaves[kind]
        with StaplingServer(leaf, None, tls_version=tls) as server:
            seen = assert_verdict(
                sessions, server.url, world.cafile, leaf, MISSING, "stapled no OCSP response"
            )
        accepted_by_soft_fail = seen["soft-fail"].startswith("accepted")
        assert accepted_by_soft_fail is (kind == "plain")
        assert seen["must-staple"] == "refused: missing"


def test_attacker_replaying_a_good_staple_from_before_the_revocation(
    world: World, sessions: dict[str, requests.Session], tls: TLSVersion
) -> None:
    """What stapling cannot stop: a good response signed before the revocation stays
    good evidence until its nextUpdate. The attacker staples it; every policy accepts."""
    leaf = world.leaves["must-staple"]
    before = world.issuer.ocsp_response(
        leaf,
        this_update=NOW - datetime.timedelta(hours=20),
        next_update=NOW + datetime.timedelta(days=3),
    )
    with StaplingServer(leaf, before, tls_version=tls) as server:
        seen = assert_verdict(sessions, server.url, world.cafile, leaf, GOOD, "not revoked")
    assert seen == {
        "off": "accepted",
        "soft-fail": "accepted: good",
        "must-staple": "accepted: good",
    }


# --- 2. large staples -------------------------------------------------------------------------

TLS12_MAX = 16380
"""Largest staple a TLS 1.2 client takes: OpenSSL caps CertificateStatus at 16384 bytes
(2^14), of which 4 are the status type and length."""
TLS13_MAX = 65527
"""Largest staple a TLS 1.3 server can send: it travels in an extension of the leaf's
CertificateEntry, whose extensions have a 16-bit length: 65535 - 4 - 4."""


def _padded(world: World, leaf: Identity, size: int) -> bytes:
    """A good staple of exactly ``size`` bytes, padded by a non-critical private
    response extension (ignored by the validator, as RFC 5280 §4.2 says)."""
    pad = size
    for _ in range(100):  # converges in a few steps; ECDSA signature lengths vary
        padding = RawExtension(oid="1.3.6.1.4.1.55555.1", value=asn1.octet_string(bytes(pad)))
        der = world.issuer.ocsp_response(leaf, extensions=[padding])
        if len(der) == size:
            return der
        pad = max(0, pad + (1 if len(der) < size else -1) * max(1, abs(size - len(der)) // 2))
    raise AssertionError(f"no padding gives a staple of {size} bytes")


def _entries(world: World, leaf: Identity, count: int, status: str) -> bytes:
    """``count`` entries about other serials, then this leaf's entry, last."""
    others = [OCSPEntry(serial_number=10**9 + i) for i in range(count)]
    ours = OCSPEntry(serial_number=leaf.cert.serial_number, status=status)
    return make_ocsp_response(world.issuer, None, extra_entries=[*others, ours])


@dataclasses.dataclass(frozen=True)
class Large:
    id: str
    make: Callable[[World, Identity], bytes]
    status: StapleStatus
    """The verdict when the staple arrives."""


LARGE = [
    Large("16380-bytes", lambda w, leaf: _padded(w, leaf, TLS12_MAX), GOOD),
    Large("16381-bytes", lambda w, leaf: _padded(w, leaf, TLS12_MAX + 1), GOOD),
    # MAX_ENTRIES (64) are examined, the leaf's last; one more and the staple is refused
    # before its signature is checked (bounded work, whatever it says).
    Large("64-entries-revoked-last", lambda w, leaf: _entries(w, leaf, 63, "revoked"), REVOKED),
    Large("600-entries-revoked-last", lambda w, leaf: _entries(w, leaf, 600, "revoked"), INVALID),
    Large("65527-bytes", lambda w, leaf: _padded(w, leaf, TLS13_MAX), GOOD),
    Large("65528-bytes", lambda w, leaf: _padded(w, leaf, TLS13_MAX + 1), GOOD),
    Large("2000-entries", lambda w, leaf: _entries(w, leaf, 2000, "good"), INVALID),
]


@pytest.mark.parametrize("case", LARGE, ids=lambda c: c.id)
def test_large_staple(
    world: World, sessions: dict[str, requests.Session], tls: TLSVersion, case: Large
) -> None:
    leaf = world.leaves["plain"]
    staple = case.make(world, leaf)
    with StaplingServer(leaf, staple, tls_version=tls) as server:
        if len(staple) <= (TLS12_MAX if tls == "1.2" else TLS13_MAX):
            assert_verdict(sessions, server.url, world.cafile, leaf, case.status, "")
            return
        for mode in MODES:
            outcome, seconds = attempt(sessions[mode], server.url, verify=world.cafile)
            assert seconds < 2
            if mode == "off":  # no staple asked for, none sent
                assert isinstance(outcome, requests.Response)
                assert outcome.staple is None
            elif tls == "1.2":  # the client refuses the message before any verdict
                assert_handshake_error(outcome, ("excessive message size",))
            else:  # the server cannot encode it and aborts its own handshake
                assert_handshake_error(outcome, ("tlsv1 alert internal error",))


@pytest.mark.parametrize(
    ("count", "bound"),
    [(65, "more than 64 entries"), (600, "more than 64 entries"), (2000, "examines (65536")],
)
def test_responses_past_the_bounds_are_refused_whatever_they_say(
    world: World, count: int, bound: str
) -> None:
    """More entries than staplecheck examines (64), or more bytes (64 KiB), make a
    response invalid, naming the bound, whether or not an entry is the leaf's and
    whatever it says; how long the worst responses within the bounds take is
    benchmarks/bench_adversarial.py's to measure."""
    leaf = world.leaves["plain"]
    revoked_last = _entries(world, leaf, count - 1, "revoked")
    without = make_ocsp_response(
        world.issuer, None, extra_entries=[OCSPEntry(serial_number=10**9 + i) for i in range(count)]
    )
    for staple in (revoked_last, without):
        result = validate_staple(staple, leaf.cert, world.issuer.cert, now=NOW, cache=None)
        assert result.status is INVALID
        assert bound in result.reason
    at_bound = _entries(world, leaf, 63, "revoked")
    result = validate_staple(at_bound, leaf.cert, world.issuer.cert, now=NOW, cache=None)
    assert result.status is REVOKED


# --- 3. servers that are not TLS, or stop mid-handshake -----------------------------------


def read_client_hello(sock: socket.socket) -> bytes:
    """Read the client's first TLS record (its ClientHello), or what arrives of it."""
    sock.settimeout(5)
    data = b""
    while len(data) < 5 or len(data) < 5 + struct.unpack(">H", data[3:5])[0]:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


Behaviour = Callable[[socket.socket, threading.Event], None]


class RawServer:
    """A TCP server on 127.0.0.1 that runs ``behave(sock, stopping)`` for each
    connection, then closes it (FIN). No TLS of its own. ``stop()`` (the end of the
    ``with`` block) wakes every waiting behaviour and joins every thread."""

    def __init__(self, behave: Behaviour) -> None:
        self._behave = behave
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.url = f"https://localhost:{self.port}/"
        self.connections = 0
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> RawServer:
        self._spawn(self._accept_loop)
        return self

    def __exit__(self, *_: object) -> None:
        self._stopping.set()
        _close(self._listener)
        with self._lock:
            for sock in list(self._open):
                _close(sock)
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout=5)
        assert not any(t.is_alive() for t in threads), "server threads did not stop"

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._open.add(sock)
            self._spawn(self._serve, sock)

    def _serve(self, sock: socket.socket) -> None:
        try:
            self._behave(sock, self._stopping)
        except OSError:
            pass  # the client went away, or stop() closed the socket
        finally:
            with self._lock:
                self._open.discard(sock)
            _close(sock)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def answer_with(data: bytes) -> Behaviour:
    def behave(sock: socket.socket, _stopping: threading.Event) -> None:
        read_client_hello(sock)
        sock.sendall(data)

    return behave


def close_after_client_hello(sock: socket.socket, _stopping: threading.Event) -> None:
    read_client_hello(sock)


def reset_after_client_hello(sock: socket.socket, _stopping: threading.Event) -> None:
    read_client_hello(sock)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()  # with a zero linger: RST, not FIN


# A ServerHello record and message header that promise 122 and 118 bytes; 22 follow.
TRUNCATED_SERVER_HELLO = b"\x16\x03\x03\x00\x7a" + b"\x02\x00\x00\x76\x03\x03" + bytes(range(16))

NOT_TLS = {
    "close-after-client-hello": (close_after_client_hello, (EOF,)),
    "reset-after-client-hello": (reset_after_client_hello, ("Connection reset by peer",)),
    "truncated-server-hello": (answer_with(TRUNCATED_SERVER_HELLO), (EOF,)),
    "plain-http-answer": (
        answer_with(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"),
        # OpenSSL 4 names the version; OpenSSL 3 reads "HTTP" as a record length:
        # both are what a cleartext answer looks like.
        ("did not answer with TLS (is it plain HTTP?)",),
    ),
    "random-bytes": (
        answer_with(random.Random(2026).randbytes(4096)),
        ("did not answer with TLS",),
    ),
    "record-longer-than-tls-allows": (
        answer_with(b"\x16\x03\x03\xff\xff" + bytes(200)),
        ("did not answer with TLS",),
    ),
    # OpenSSL 3 says "ssl/tls alert handshake failure".
    "fatal-alert": (
        answer_with(b"\x15\x03\x03\x00\x02\x02\x28"),
        ("tls alert handshake failure",),
    ),
}


@pytest.mark.parametrize("name", list(NOT_TLS))
def test_server_that_breaks_the_handshake_without_tls(
    world: World, sessions: dict[str, requests.Session], name: str
) -> None:
    behave, fragments = NOT_TLS[name]
    with RawServer(behave) as server:
        for mode in MODES:
            outcome, seconds = attempt(sessions[mode], server.url, verify=world.cafile)
            assert_handshake_error(outcome, fragments)
            assert "TLS handshake with localhost failed" in str(outcome)
            assert seconds < 2
        assert server.connections == 3  # no retries


def tls_records(data: bytes) -> list[tuple[int, int, bytes]]:
    """(offset, content type, body) of each complete TLS record in ``data``."""
    records, offset = [], 0
    while offset + 5 <= len(data):
        length = struct.unpack(">H", data[offset + 3 : offset + 5])[0]
        if offset + 5 + length > len(data):
            break
        records.append((offset, data[offset], data[offset + 5 : offset + 5 + length]))
        offset += 5 + length
    return records


def first_flight_complete(data: bytes) -> bool:
    """The server's first flight is in: TLS 1.2 ends it with ServerHelloDone; OpenSSL's
    TLS 1.3 server sends four encrypted records (EncryptedExtensions, Certificate,
    CertificateVerify, Finished)."""
    records = tls_records(data)
    if records and records[-1][1] == 22 and records[-1][2].endswith(b"\x0e\x00\x00\x00"):
        return True
    return sum(1 for _, kind, _ in records if kind == 23) >= 4


Cut = Callable[[bytes], int]


def in_the_staple(flight: bytes) -> int:
    """Halfway through the staple: TLS 1.2's CertificateStatus message (the Certificate
    message when none was asked for); in TLS 1.3, the largest encrypted record (the
    one carrying the Certificate message and its staple)."""
    records = tls_records(flight)
    encrypted = [r for r in records if r[1] == 23]
    if encrypted:
        offset, _, body = max(encrypted, key=lambda r: len(r[2]))
        return offset + 5 + len(body) // 2
    for message_type in (0x16, 0x0B):  # certificate_status, certificate
        for offset, _, body in records:
            if body[:1] == bytes([message_type]):
                return offset + 5 + len(body) // 2
    raise AssertionError("no certificate in the server's flight")


CUTS: dict[str, Cut] = {
    "after-the-record-header": lambda flight: 5,
    "in-the-server-hello": lambda flight: 5 + len(tls_records(flight)[0][2]) // 2,
    "in-the-staple": in_the_staple,
    "all-but-the-last-byte": lambda flight: len(flight) - 1,
    "after-the-whole-first-flight": len,
}


def cutting_relay(upstream: int, cut: Cut, hold: bool = False) -> Behaviour:
    """Relay to a real server on port ``upstream``; pass the client's bytes through but
    only ``cut(first flight)`` bytes of the server's, then close (or, with ``hold``,
    keep the connection open and silent until stopped)."""

    def behave(client: socket.socket, stopping: threading.Event) -> None:
        with socket.create_connection(("127.0.0.1", upstream), timeout=5) as server:
            pump = threading.Thread(target=_pump, args=(client, server), daemon=True)
            pump.start()
            flight = b""
            while not first_flight_complete(flight):
                chunk = server.recv(65536)
                if not chunk:
                    break
                flight += chunk
            client.sendall(flight[: cut(flight)])
            if hold:
                stopping.wait(30)
            _close(client)  # wakes the pump
            pump.join(timeout=5)

    return behave


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while chunk := source.recv(65536):
            sink.sendall(chunk)


@pytest.mark.parametrize("cut", list(CUTS))
@pytest.mark.parametrize("staple", ["good", "revoked"])
def test_connection_cut_mid_handshake(
    world: World, sessions: dict[str, requests.Session], tls: TLSVersion, staple: str, cut: str
) -> None:
    leaf = world.leaves["plain"]
    der = world.issuer.ocsp_response(leaf, staple)
    with (
        StaplingServer(leaf, der, tls_version=tls) as upstream,
        RawServer(cutting_relay(upstream.port, CUTS[cut])) as relay,
    ):
        for mode in MODES:
            outcome, seconds = attempt(sessions[mode], relay.url, verify=world.cafile)
            assert seconds < 2
            whole = cut == "after-the-whole-first-flight"
            if whole and staple == "revoked" and mode != "off":
                # The staple was in: its verdict comes before the missing bytes matter.
                found = find_staple_error(outcome)
                assert isinstance(outcome, requests.exceptions.SSLError)
                assert found is not None
                assert found.result.status is REVOKED
                assert found.result.serial_number == leaf.cert.serial_number
            elif whole and tls == "1.3":
                # TLS 1.3's first flight completes the client's handshake; the request
                # then meets the closed connection.
                assert_handshake_error(
                    outcome,
                    ("read error", "Remote end closed connection", "Connection aborted"),
                    requests.exceptions.ConnectionError,
                )
            else:
                assert_handshake_error(outcome, (f"TLS handshake with localhost failed: {EOF}",))


# --- 4. servers that stall or trickle ----------------------------------------------------------


def stall_after_client_hello(sock: socket.socket, stopping: threading.Event) -> None:
    read_client_hello(sock)
    stopping.wait(30)


def _concurrently(calls: dict[str, Callable[[], Any]]) -> dict[str, tuple[Any, float]]:
    """Run each call in its own thread; (result or exception, seconds) by name."""

    def timed(call: Callable[[], Any]) -> tuple[Any, float]:
        start = time.monotonic()
        try:
            result: Any = call()
        except Exception as error:  # noqa: BLE001 - the outcome under test
            result = error
        return result, time.monotonic() - start

    with ThreadPoolExecutor(len(calls)) as pool:
        futures = {name: pool.submit(timed, call) for name, call in calls.items()}
        return {name: future.result(timeout=30) for name, future in futures.items()}


def _pyopenssl_handshake(port: int, cafile: str, timeout: float) -> None:
    context = create_context(config=TLSConfig(cafiles=(cafile,)))
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        drive_handshake(StapleConnection(context, sock, server_hostname="localhost"), sock)


def test_stalling_server_times_out_every_client_within_its_timeout(
    world: World, sessions: dict[str, requests.Session], capsys: pytest.CaptureFixture[str]
) -> None:
    """A server that accepts, reads the ClientHello and never answers. Every client,
    with a 2 s timeout, gives up after 2 s, not later than 4 s."""
    with RawServer(stall_after_client_hello) as server:
        http = pool_manager(ca_certs=world.cafile, retries=False, timeout=2)
        calls: dict[str, Callable[[], Any]] = {
            f"requests {mode}": (
                lambda mode=mode: sessions[mode].get(server.url, verify=world.cafile, timeout=2)
            )
            for mode in MODES
        }
        calls["urllib3 pool_manager"] = lambda: http.request("GET", server.url)
        calls["pyOpenSSL drive_handshake"] = lambda: _pyopenssl_handshake(
            server.port, world.cafile, 2
        )
        calls["staplecheck check"] = lambda: main(
            ["check", server.url, "--cafile", world.cafile, "--timeout", "2"]
        )
        outcomes = _concurrently(calls)
        http.clear()
    for name, (outcome, seconds) in outcomes.items():
        assert 1.9 <= seconds < 4, (name, seconds, outcome)
        if name.startswith("requests"):
            assert isinstance(outcome, requests.exceptions.ReadTimeout), outcome
            assert "Read timed out. (read timeout=2)" in str(outcome)
        elif name.startswith("urllib3"):
            assert isinstance(outcome, urllib3.exceptions.ReadTimeoutError), outcome
        elif name.startswith("pyOpenSSL"):
            assert isinstance(outcome, TimeoutError)
            assert str(outcome) == "TLS handshake timed out"
        else:
            assert outcome == 3  # the CLI's "connection failed" exit code
    err = capsys.readouterr().err
    assert f"TLS with localhost port {server.port} failed: timed out" in err
    assert "Traceback" not in err


def test_server_stalling_mid_handshake_times_out(
    world: World, sessions: dict[str, requests.Session], tls: TLSVersion
) -> None:
    """A relay passes half the real server's first flight (into the staple), then
    holds the connection open and silent."""
    leaf = world.leaves["plain"]
    with (
        StaplingServer(leaf, world.issuer.ocsp_response(leaf), tls_version=tls) as upstream,
        RawServer(cutting_relay(upstream.port, in_the_staple, hold=True)) as relay,
    ):
        outcomes = _concurrently(
            {
                mode: lambda mode=mode: sessions[mode].get(
                    relay.url, verify=world.cafile, timeout=2
                )
                for mode in MODES
            }
        )
    for mode, (outcome, seconds) in outcomes.items():
        assert 1.9 <= seconds < 4, (mode, seconds)
        assert isinstance(outcome, requests.exceptions.ReadTimeout), (mode, outcome)
        assert find_staple_error(outcome) is None


def test_trickling_server_is_bounded_by_the_server_not_the_timeout(
    world: World, sessions: dict[str, requests.Session]
) -> None:
    """The timeout bounds each wait, not the whole handshake (as in requests and the
    standard library): a server that sends one byte every 0.6 s holds a client with
    ``timeout=1`` for as long as it keeps trickling, here about 4.8 s, then fails it."""
    prefix = TRUNCATED_SERVER_HELLO[:8]

    def trickle(sock: socket.socket, stopping: threading.Event) -> None:
        read_client_hello(sock)
        for byte in prefix:
            sock.sendall(bytes([byte]))
            if stopping.wait(0.6):
                return

    with RawServer(trickle) as server:
        outcomes = _concurrently(
            {
                mode: lambda mode=mode: sessions[mode].get(
                    server.url, verify=world.cafile, timeout=1
                )
                for mode in MODES
            }
        )
    for mode, (outcome, seconds) in outcomes.items():
        assert 3.5 < seconds < 8, (mode, seconds)
        assert_handshake_error(outcome, (EOF,))


# --- 5. a server whose staple callback throws -------------------------------------------------


@pytest.fixture
def server_thread_errors(monkeypatch: pytest.MonkeyPatch) -> list[BaseException]:
    """Exceptions that end server threads during the test, instead of pytest's
    unhandled-thread warning: StaplingServer lets a staple callback's exception other
    than ValueError (or OSError, SSL.Error) escape its serving thread."""
    caught: list[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: caught.append(args.exc_value))
    return caught


def _raise(error: Exception) -> Callable[[], bytes]:
    def staple() -> bytes:
        raise error

    return staple


@pytest.mark.parametrize(
    "callback",
    [
        pytest.param(_raise(ValueError("responder unreachable")), id="raises-ValueError"),
        pytest.param(_raise(RuntimeError("responder unreachable")), id="raises-RuntimeError"),
        pytest.param(lambda: cast(bytes, "a str, not bytes"), id="returns-text"),
    ],
)
def test_server_whose_staple_callback_throws(
    world: World,
    sessions: dict[str, requests.Session],
    tls: TLSVersion,
    callback: Callable[[], bytes],
    server_thread_errors: list[BaseException],
) -> None:
    leaf = world.leaves["plain"]
    with StaplingServer(leaf, callback, tls_version=tls) as server:
        for mode in MODES:
            outcome, seconds = attempt(sessions[mode], server.url, verify=world.cafile)
            assert seconds < 2
            if mode == "off":  # not asked for a staple, the server never calls it
                assert isinstance(outcome, requests.Response)
                assert outcome.staple is None
            else:  # pyOpenSSL answers the exception with a fatal internal_error alert
                assert_handshake_error(outcome, ("tlsv1 alert internal error",))
        assert server.handshakes == 1
    # Only the callback's own failures may have escaped (RuntimeError, TypeError).
    assert all(isinstance(e, (RuntimeError, TypeError)) for e in server_thread_errors)


# --- the standard library as a yardstick -------------------------------------------------------


def test_staplecheck_fails_no_later_than_the_standard_library(world: World) -> None:
    """Against the stalling server, plain requests (standard library ssl) and
    StapleAdapter give the same exception type in the same time."""
    with RawServer(stall_after_client_hello) as server:
        plain = requests.Session()
        plain.trust_env = False
        staple = requests.Session()
        staple.trust_env = False
        staple.mount("https://", StapleAdapter())
        outcomes = _concurrently(
            {
                name: lambda s=s: s.get(server.url, verify=world.cafile, timeout=2)
                for name, s in (("plain", plain), ("staplecheck", staple))
            }
        )
        plain.close()
        staple.close()
    (plain_error, plain_time), (ours, our_time) = outcomes["plain"], outcomes["staplecheck"]
    assert type(plain_error) is type(ours) is requests.exceptions.ReadTimeout
    assert abs(plain_time - our_time) < 0.5
