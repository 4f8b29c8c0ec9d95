"""``staplecheck check``: connect to a server, report what it staples and, for policies
with a fallback, what the revocation engine found beyond the staple."""

from __future__ import annotations

import dataclasses
import functools
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Sequence
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import SSL
from urllib3.util import wait_for_read, wait_for_write

from .._policy import Mode, Policy, ResponderOverride
from ..revocation import RevocationChecker, RevocationResult
from ..revocation._fetch import _ResolveTimeoutError, resolve_within
from ..tls._alabel import a_label
from ..tls._pyopenssl import (
    StapleConnection,
    TLSConfig,
    create_context,
    handshake_words,
)
from ..validation._result import StapleResult
from ..validation._tlsfeature import has_must_staple
from ..validation._validate import StapleCache

__all__ = ["CheckError", "CheckReport", "check_context", "check_url", "parse_https_url"]


class CheckError(Exception):
    """The connection failed for a reason other than the staple. ``unreachable`` says
    whether the server could not be reached at all (refused, timed out, reset), as
    opposed to a TLS failure (an untrusted chain, a wrong host name)."""

    def __init__(self, message: str, *, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable


@dataclasses.dataclass(frozen=True)
class CheckReport:
    """What one connection showed: the staple's verdict, the revocation verdict (when
    the policy has a fallback) and the policy's decision."""

    url: str
    host: str
    port: int
    policy: Policy
    accepted: bool
    tls_version: str
    must_staple: bool
    staple: StapleResult
    revocation: RevocationResult | None = None
    """The engine's verdict (staple, cache, OCSP, CRLs; the intermediates under
    ``check_chain``); ``None`` when the policy has no fallback source."""
    certificate: x509.Certificate | None = dataclasses.field(
        default=None, compare=False, repr=False
    )
    """The server's certificate (``staplecheck scan`` reports its names, validity and
    URLs; ``to_dict`` leaves it out)."""
    chain: tuple[bytes, ...] = dataclasses.field(default=(), compare=False, repr=False)
    """The chain OpenSSL verified (DER, leaf first, the trust anchor last)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "host": self.host,
            "port": self.port,
            "policy": self.policy.mode.value,
            "accepted": self.accepted,
            "tls_version": self.tls_version,
            "must_staple": self.must_staple,
            "fallback": list(self.policy.sources),
            "check_chain": self.policy.check_chain,
            "staple": self.staple.to_dict(),
            "revocation": None if self.revocation is None else self.revocation.to_dict(),
        }


def parse_https_url(url: str) -> tuple[str, int]:
    """Host (an IDNA A-label, as urllib3 would connect to it) and port of an
    ``https://`` URL; ``ValueError`` otherwise."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme.lower() != "https":
        raise ValueError(f"not an https:// URL: {url!r}")
    try:
        port = parsed.port or 443
    except ValueError:
        raise ValueError(f"bad port in {url!r}") from None
    if not parsed.hostname:
        raise ValueError(f"no host in {url!r}")
    return a_label(parsed.hostname), port


def check_context(
    policy: Policy, *, cafile: str | None = None, capath: str | None = None
) -> SSL.Context:
    """The observing client context :func:`check_url` handshakes with: the chain and
    host name verified as always, the staple asked for and judged, never refused inside
    the handshake. One context serves any number of connections (``scan`` shares one);
    :class:`CheckError` when OpenSSL cannot load the CA file or directory."""
    config = TLSConfig(cafiles=(cafile,) if cafile else (), capaths=(capath,) if capath else ())
    try:
        return create_context(_observing(policy), config=config, cache=StapleCache(maxsize=256))
    except ssl.SSLError as error:  # a CA file OpenSSL cannot load; the text names it
        raise CheckError(_describe(error)) from None


@functools.lru_cache(maxsize=16)
def _observing(policy: Policy) -> Policy:
    # Observe only: no refusal inside the handshake, and no fallback run by it. Memoized:
    # scan checks hundreds of targets under one policy, and a Policy checks itself.
    return dataclasses.replace(
        policy, mode=Mode.OFF, fallback=None, check_chain=False, responders=()
    )


def check_url(
    url: str,
    *,
    policy: Policy,
    cafile: str | None = None,
    timeout: float = 10.0,
    checker: RevocationChecker | None = None,
    leaf_responders: Sequence[str] = (),
    context: SSL.Context | None = None,
) -> CheckReport:
    """Handshake with the server behind ``url``, always asking for a staple.

    The handshake itself never refuses the staple (it is judged and reported); then
    ``policy`` decides acceptance, exactly as it would for a real client. Chain and
    host name are verified as always: their failures raise :class:`CheckError`.

    A policy with fallback sources is decided by ``checker`` (a
    :class:`RevocationChecker` with an in-memory store when ``None``): the engine the
    clients run after their handshakes, on the chain OpenSSL verified, within
    ``timeout`` and the policy's ``fallback_timeout``. ``leaf_responders`` are OCSP
    URLs designated for the certificates the server's certificate's issuer issued
    (:class:`ResponderOverride`), added to ``policy.responders``. ``context`` is one
    :func:`check_context` made for ``policy`` (a new one for ``cafile`` when ``None``).
    """
    host, port = parse_https_url(url)
    observe = _observing(policy)
    if context is None:
        context = check_context(policy, cafile=cafile)
    try:
        sock = _connect(host, port, timeout)
    except _ResolveTimeoutError as error:
        raise CheckError(
            f"cannot connect to {host} port {port}: {error}",
            unreachable=True,
        ) from None
    except OSError as error:
        raise CheckError(
            f"cannot connect to {host} port {port}: {_describe(error)}", unreachable=True
        ) from None
    try:
        connection = StapleConnection(
            context, sock, server_hostname=host, policy=observe, request_staple=True
        )
        try:
            _handshake_within(connection, sock, timeout)
        except (ssl.SSLError, OSError) as error:
            # A timeout or a reset before any TLS answer: the server is not there to judge.
            unreachable = not isinstance(error, ssl.SSLError) or isinstance(
                error.__cause__, TimeoutError | socket.timeout | ConnectionError
            )
            raise CheckError(
                f"TLS with {host} port {port} failed: {_describe(error)}", unreachable=unreachable
            ) from None
        result = connection.staple
        assert result is not None  # asked for, so judged
        peer = connection.get_peer_certificate(as_cryptography=True)
        chain = _verified_chain(connection)
        revocation = None
        accepted = policy.accepts(result)
        if policy.needs_revocation_check:
            if len(chain) > 1 and leaf_responders:
                designated = tuple(ResponderOverride(u, issuer=chain[1]) for u in leaf_responders)
                policy = dataclasses.replace(policy, responders=policy.responders + designated)
            engine = checker if checker is not None else RevocationChecker()
            revocation = engine.check(chain, policy, result, timeout=timeout, host=host)
            accepted = bool(revocation.accepted)
        return CheckReport(
            url=url,
            host=host,
            port=port,
            policy=policy,
            accepted=accepted,
            tls_version=connection.get_protocol_version_name(),
            must_staple=peer is not None and has_must_staple(peer),
            staple=result,
            revocation=revocation,
            certificate=peer,
            chain=chain,
        )
    finally:
        sock.close()


MAX_PENDING_RESOLUTIONS = 1024
"""Host name resolutions running at once, at most, those abandoned at their deadline
included (each holds a thread until the resolver gives up: glibc, 10 s and more).
One more waits for a free slot within its own deadline: 256 scan workers resolving
through a slow resolver all get their answers; a dead resolver never piles up more
threads than this."""
_resolutions = threading.BoundedSemaphore(MAX_PENDING_RESOLUTIONS)


def _connect(host: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection to the first address of ``host`` that answers, name
    resolution included, within ``timeout`` seconds: ``getaddrinfo`` cannot be
    interrupted, and a resolver that never answers holds it for 10 s and more (glibc),
    so the name is resolved in a thread abandoned at the deadline (as the fetchers do)."""
    deadline = time.monotonic() + timeout
    last: OSError | None = None
    addresses = resolve_within(host, port, deadline, time.monotonic, slots=_resolutions, wait=True)
    for family, kind, proto, _, address in addresses:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out")
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(left)
            sock.connect(address)
        except OSError as error:
            sock.close()
            last = error
            continue
        sock.settimeout(timeout)
        return sock
    raise last or OSError(f"no address for {host}")


def _handshake_within(connection: StapleConnection, sock: socket.socket, timeout: float) -> None:
    """The handshake, done within ``timeout`` seconds in all: a server that drips its
    answer a byte at a time completes every read within a per-read timeout, never the
    handshake (the clients' ``drive_handshake`` times each read, as urllib3 does)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            connection.do_handshake()
        except (SSL.WantReadError, SSL.WantWriteError) as want:
            left = deadline - time.monotonic()
            wait = wait_for_read if isinstance(want, SSL.WantReadError) else wait_for_write
            if left <= 0 or not wait(sock, left):
                raise TimeoutError("TLS handshake timed out") from None
        else:
            return


def _verified_chain(connection: StapleConnection) -> tuple[bytes, ...]:
    """The chain OpenSSL verified in this handshake (DER, leaf first, the trust anchor
    last). The handshake verified the peer (``VERIFY_PEER``, never turned off here) and
    its host name, or it raised: this is the chain the clients hand to the engine."""
    chain = connection.get_verified_chain(as_cryptography=True)
    if not chain:
        raise CheckError("the handshake left no verified chain to check revocation on")
    return tuple(cert.public_bytes(Encoding.DER) for cert in chain)


def _describe(error: BaseException) -> str:
    if isinstance(error, TimeoutError | socket.timeout):
        return "timed out"
    verification = isinstance(error, ssl.SSLCertVerificationError)
    if not verification and isinstance(error.__cause__, SSL.Error):
        return handshake_words(error.__cause__)  # instead of OpenSSL's error tuple
    if isinstance(error, ssl.SSLError) and len(error.args) > 1 and isinstance(error.args[1], str):
        return error.args[1]
    return getattr(error, "strerror", None) or str(error) or type(error).__name__
