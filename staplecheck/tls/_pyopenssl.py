"""pyOpenSSL glue: ask for a staple, judge it in the OCSP callback, keep the verdict.

The flow for one connection: :class:`StapleConnection` asks for a staple
(``request_ocsp``) and attaches a :class:`_Handshake` record; OpenSSL verifies the
chain and calls :func:`_on_staple` with the stapled bytes; the callback judges them
against the verified leaf and issuer, stores the verdict on the record and returns the
policy's decision (``False`` aborts the handshake); ``do_handshake`` then raises
:class:`StapleError` from the record. Nothing is raised inside the callback: pyOpenSSL
keeps such exceptions per context, shared by every thread using it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import socket
import ssl
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Union, overload

import certifi
from cryptography import x509
from OpenSSL import SSL, crypto
from OpenSSL import _util as _openssl_util
from urllib3.util import wait_for_read, wait_for_write

from .._errors import RevocationError, StapleError
from .._policy import Policy
from ..revocation import RevocationChecker, RevocationResult, default_checker
from ..validation._result import StapleResult, StapleStatus
from ..validation._tlsfeature import has_must_staple
from ..validation._validate import SHARED_CACHE, CertPair, StapleCache, judge_staple
from ._alabel import a_label
from ._hostname import check_hostname, is_ip
from ._hostpolicy import HostPolicies, HostPolicyLike, as_host_policies
from ._log import VerdictLog

# OpenSSL calls pyOpenSSL does not wrap (verify result, session reuse); typed loosely,
# as pyOpenSSL's own typing of its binding varies between releases.
_ssl_lib: Any = _openssl_util.lib

__all__ = [
    "ClientCert",
    "StapleConnection",
    "TLSConfig",
    "create_context",
    "drive_handshake",
    "get_revocation_result",
    "get_staple_result",
    "pem_or_der_certificates",
]

Clock = Callable[[], datetime.datetime]
_Buffer = Union[bytes, bytearray, memoryview]

_VERSIONS = {
    ssl.TLSVersion.TLSv1_2: SSL.TLS1_2_VERSION,
    ssl.TLSVersion.TLSv1_3: SSL.TLS1_3_VERSION,
}


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ClientCert:
    """A client certificate for mutual TLS: chain file, key file, key password."""

    certfile: str
    keyfile: str | None = None
    password: bytes | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class TLSConfig:
    """What a pyOpenSSL context is built from. Equal configs share one context.

    With no CA files, directories or data, the certifi bundle is trusted. Only TLS 1.2
    and 1.3 exist here: ``MINIMUM_SUPPORTED`` means 1.2, ``MAXIMUM_SUPPORTED`` 1.3, and
    anything older raises ``ValueError``.
    """

    cafiles: tuple[str, ...] = ()
    capaths: tuple[str, ...] = ()
    cadata: tuple[bytes, ...] = ()
    client_cert: ClientCert | None = None
    minimum_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    maximum_version: ssl.TLSVersion = ssl.TLSVersion.MAXIMUM_SUPPORTED
    ciphers: str | None = None

    def __post_init__(self) -> None:
        for name in ("minimum_version", "maximum_version"):
            _openssl_version(getattr(self, name))


def _openssl_version(version: ssl.TLSVersion) -> int:
    """pyOpenSSL's constant for a TLS version staplecheck supports; ``ValueError`` else."""
    if version is ssl.TLSVersion.MINIMUM_SUPPORTED:
        return SSL.TLS1_2_VERSION
    if version is ssl.TLSVersion.MAXIMUM_SUPPORTED:
        return SSL.TLS1_3_VERSION
    if version not in _VERSIONS:
        raise ValueError(f"staplecheck supports TLS 1.2 and 1.3, not {version!r}")
    return _VERSIONS[version]


@dataclasses.dataclass(frozen=True)
class _ContextInfo:
    """What the OCSP callback needs that is the same for every connection."""

    policies: HostPolicies
    clock: Clock
    cache: StapleCache | None
    log: VerdictLog
    revocation: RevocationChecker | None
    """Asked after the handshake when a policy has a fallback; ``None``: the shared
    default (:func:`staplecheck.revocation.default_checker`)."""


def create_context(
    policy: HostPolicyLike = "soft-fail",
    *,
    config: TLSConfig | None = None,
    clock: Clock | None = None,
    cache: StapleCache | None = SHARED_CACHE,
    log: VerdictLog | None = None,
    revocation: RevocationChecker | None = None,
) -> SSL.Context:
    """A pyOpenSSL client ``Context`` that verifies the chain and checks staples.

    Use it with :class:`StapleConnection`, which asks each connection for a staple,
    raises :class:`StapleError` on rejection and checks the host name. The context's
    app data is staplecheck's, and so is the app data of every connection made on it
    (each connection's record of what verification found and its verdict): a plain
    ``SSL.Connection`` whose app data is the caller's own gets no verdict that can
    accept. ``clock`` (default: the system
    clock) gives the time staples are judged at; ``cache`` is the evidence cache
    (``None``: none); ``log`` decides what is logged (default: one shared
    :class:`VerdictLog`). ``revocation`` answers for connections whose policy has a
    fallback (default: one shared :class:`~staplecheck.revocation.RevocationChecker`
    with an in-memory store).
    """
    config = config or TLSConfig()
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_min_proto_version(_openssl_version(config.minimum_version))
    context.set_max_proto_version(_openssl_version(config.maximum_version))
    # The host name and the staple are checked once, after the first handshake: a TLS
    # 1.2 renegotiation could present another certificate unchecked, so refuse it.
    context.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_NO_RENEGOTIATION)
    if config.ciphers:
        context.set_cipher_list(config.ciphers.encode())
    _load_trust(context, config)
    if config.client_cert is not None:
        _load_client_cert(context, config.client_cert)
    context.set_verify(SSL.VERIFY_PEER, _on_verify)
    context.set_ocsp_client_callback(_on_staple)
    context.set_app_data(
        _ContextInfo(
            policies=as_host_policies(policy),
            clock=clock or _utc_now,
            cache=cache,
            log=log or _DEFAULT_LOG,
            revocation=revocation,
        )
    )
    return context


_DEFAULT_LOG = VerdictLog()


def _load_trust(context: SSL.Context, config: TLSConfig) -> None:
    # Bad trust or key material is the caller's mistake, found at the first connection:
    # ssl.SSLError naming the file (as the stdlib raises), which urllib3 and requests
    # turn into their own SSLError, never a bare OpenSSL.SSL.Error or ValueError.
    if not (config.cafiles or config.capaths or config.cadata):
        with _naming("cannot load certifi's CA bundle", certifi.where()):
            context.load_verify_locations(certifi.where())
        return
    for cafile in config.cafiles:
        with _naming("cannot load CA file", cafile, "it holds no PEM certificate"):
            context.load_verify_locations(cafile)
    for capath in config.capaths:
        with _naming("cannot use CA directory", capath):
            context.load_verify_locations(None, capath)
    store = context.get_cert_store()
    assert store is not None
    for data in config.cadata:
        with _naming("cannot load cadata", "", "it holds no PEM or DER certificate"):
            for cert in pem_or_der_certificates(data):
                store.add_cert(crypto.X509.from_cryptography(cert))


def pem_or_der_certificates(data: bytes) -> list[x509.Certificate]:
    """Every certificate in PEM text, or the one DER certificate; ``ValueError`` when
    unreadable."""
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificates(data)
    return [x509.load_der_x509_certificate(data)]


def _load_client_cert(context: SSL.Context, client: ClientCert) -> None:
    if client.password is not None:
        password = client.password
        context.set_passwd_cb(lambda *_: password)
    with _naming(
        "cannot load client certificate file", client.certfile, "it holds no PEM certificate"
    ):
        context.use_certificate_chain_file(client.certfile)
    keyfile = client.keyfile or client.certfile
    meaning = f"it holds no private key for {client.certfile}, or its password is wrong"
    with _naming("cannot load client key file", keyfile, meaning):
        context.use_privatekey_file(keyfile)
        context.check_privatekey()


@contextlib.contextmanager
def _naming(what: str, path: str, meaning: str = "") -> Iterator[None]:
    """Turn OpenSSL's (or cryptography's) error while loading ``path`` into an
    ``ssl.SSLError`` that says what failed, for which file, and OpenSSL's own words."""
    try:
        yield
    except (SSL.Error, ValueError) as error:
        # cryptography's parse errors are Rust debug text: the meaning says it better.
        detail = _openssl_reasons(error) if isinstance(error, SSL.Error) else ""
        text = ": ".join(part for part in (f"{what} {path}".rstrip(), meaning) if part)
        raise ssl.SSLError(1, f"{text} ({detail})" if detail else text) from error


def _openssl_reasons(error: SSL.Error) -> str:
    """OpenSSL's reason strings from an ``SSL.Error``, joined."""
    return "; ".join(_reasons(error)) or str(error)


def _reasons(error: SSL.Error) -> list[str]:
    """The distinct reasons in an ``SSL.Error``'s queue of (lib, func, reason)."""
    queue = error.args[0] if error.args and isinstance(error.args[0], list) else []
    reasons = [str(item[-1]) for item in queue if isinstance(item, tuple) and item]
    return list(dict.fromkeys(r for r in reasons if r))


# --- one connection ----------------------------------------------------------------------


@dataclasses.dataclass
class _Handshake:
    """Per-connection record: what to demand and what the staple got."""

    host: str | None
    policy: Policy
    verify: bool
    result: StapleResult | None = None
    accepted: bool | None = None
    verify_error: tuple[int, int] | None = None
    leaf_verified: bool = False
    """Whether staplecheck's verify callback saw OpenSSL accept the leaf (depth 0) in
    this handshake: proof that the chain was verified with OpenSSL's own decisions, not
    a verify callback that overrides them."""
    leaf_der: bytes | None = None
    """The verified leaf's DER, once the OCSP callback has read it."""
    chain_der: tuple[bytes, ...] | None = None
    """The verified chain's DER, leaf first, when the policy has a fallback."""
    staple_der: bytes | None = None
    revocation: RevocationResult | None = None
    """The fallback's verdict, after the handshake (policies with a fallback)."""


class StapleConnection(SSL.Connection):
    """A client ``SSL.Connection`` whose handshake checks the staple.

    It asks for a staple when the host's policy wants one, verifies the peer unless
    ``verify=False``, sends SNI, and after the handshake checks ``server_hostname``
    against the certificate (unless ``check_hostname=False``). ``request_staple``
    overrides whether to ask (``policy`` ``off`` with ``request_staple=True`` reports
    the staple without ever refusing it; ``request_staple=False`` under any other
    policy counts as a missing staple). ``do_handshake``
    raises :class:`StapleError` when the policy rejects the staple and
    :class:`ssl.SSLCertVerificationError` for chain or host name failures. Read the
    verdict from :attr:`staple`. Sending or receiving before ``do_handshake`` runs it,
    with all its checks, before any application byte moves; after a refusal, every
    later ``do_handshake``, send or receive raises the same error again.

    For a policy with a fallback, ``do_handshake`` then runs the revocation check
    (network I/O, blocking). ``defer_revocation=True`` leaves that to the caller, who
    must call :meth:`check_revocation` after the handshake and before sending any
    application byte (sending first raises; an async integration runs it in a worker
    thread).
    """

    def __init__(
        self,
        context: SSL.Context,
        sock: socket.socket | None = None,
        *,
        server_hostname: str | None = None,
        verify: bool = True,
        check_hostname: bool = True,
        policy: Policy | None = None,
        request_staple: bool | None = None,
        defer_revocation: bool = False,
    ) -> None:
        info = _context_info(context)
        # SNI, policy lookup and the host-name check all use the A-label urllib3 sends.
        host = a_label(server_hostname) if server_hostname else None
        if check_hostname and verify and not host:
            raise ValueError("check_hostname requires server_hostname")
        super().__init__(context, sock)
        chosen = policy or info.policies.policy_for(host)
        self._staple = _Handshake(host=host, policy=chosen, verify=verify)
        self.staple_requested = chosen.requests_staple if request_staple is None else request_staple
        self._check_hostname = check_hostname and verify and host is not None
        self._defer_revocation = defer_revocation
        self._checked = False
        """Whether the handshake, chain, staple and host name checks passed."""
        self.set_app_data(self._staple)
        if not verify:
            self.set_verify(SSL.VERIFY_NONE, None)
        if host and not is_ip(host):
            self.set_tlsext_host_name(host.encode("ascii"))
        if self.staple_requested:
            self.request_ocsp()
        self.set_connect_state()
        self._refusal: ssl.SSLError | None = None
        """Why :meth:`do_handshake` refused this connection, raised again on every
        later use: asking again could overturn the refusal (a store that lost the
        answer, a responder that now answers), and would cost a query per call."""

    @property
    def staple(self) -> StapleResult | None:
        """The verdict on this connection's staple; ``None`` under policy ``off`` when
        none was asked for (under any other policy, not asking is ``missing``)."""
        return self._staple.result

    @property
    def revocation(self) -> RevocationResult | None:
        """The revocation verdict (staple, then fallback sources) when the policy has a
        fallback; ``None`` otherwise."""
        return self._staple.revocation

    @property
    def staple_policy(self) -> Policy:
        """The policy this connection's staple was judged under."""
        return self._staple.policy

    def do_handshake(self) -> None:
        if self._refusal is not None:
            raise self._refusal.with_traceback(None)
        if self._checked:
            return  # checked once: a second run would ask the fallback again
        try:
            self._handshake_and_check()
        except (SSL.WantReadError, SSL.WantWriteError):
            raise
        except ssl.SSLError as refusal:
            self._refusal = refusal
            raise

    def _before_application_data(self) -> None:
        """OpenSSL handshakes implicitly inside SSL_write and SSL_read when nobody
        called ``do_handshake``: the checks that follow the handshake (host name,
        resumed session, revocation) must then run before the first application byte
        goes out or comes in, not never. A refused connection stays refused."""
        if self._refusal is not None:
            raise self._refusal.with_traceback(None)
        if not self._checked:
            self.do_handshake()

    def _before_sending(self) -> None:
        """As :meth:`_before_application_data`, and a deferred revocation check must
        have run: no application byte goes out before the verdict."""
        self._before_application_data()
        state = self._staple
        if state.revocation is None and state.chain_der is not None and state.result is not None:
            raise ssl.SSLError(1, "check_revocation() must run before application data is sent")

    # Every way application data moves. pyOpenSSL's ``write`` and ``read`` are aliases
    # bound to its own ``send`` and ``recv``, so they are overridden too.

    def send(self, buf: _Buffer, flags: int = 0) -> int:
        self._before_sending()
        send: Any = super().send  # typed bytes-only before pyOpenSSL 25
        return int(send(buf, flags))

    write = send

    def sendall(self, buf: _Buffer, flags: int = 0) -> int:
        self._before_sending()
        sendall: Any = super().sendall  # typed bytes-only before pyOpenSSL 25
        return int(sendall(buf, flags))

    def recv(self, bufsiz: int, flags: int | None = None) -> bytes:
        self._before_application_data()
        return super().recv(bufsiz, flags)

    read = recv

    def recv_into(self, buffer: Any, nbytes: int | None = None, flags: int | None = None) -> int:
        self._before_application_data()
        return super().recv_into(buffer, nbytes, flags)

    def _handshake_and_check(self) -> None:
        state = self._staple
        try:
            super().do_handshake()
        except (SSL.WantReadError, SSL.WantWriteError):
            raise
        except SSL.Error as error:
            raise _handshake_failure(state, error) from error
        if state.result is None and (self.staple_requested or state.policy.requests_staple):
            # The callback did not run. Asked for: a resumed TLS 1.2 session, with no
            # verdict to carry over, judged as a staple that could not be checked. Not
            # asked for (request_staple=False) under a policy that wants one: judged as
            # no staple at all, which the policy and the fallback decide, never as good.
            _judge(self, state, None if self.staple_requested else b"")
            if not state.accepted:
                assert state.result is not None
                raise StapleError(state.result, state.host)
        if self._check_hostname:
            der = state.leaf_der
            if der is None:  # no staple asked for
                peer = self.get_peer_certificate()
                if peer is None:
                    raise ssl.SSLCertVerificationError(1, "the server sent no certificate")
                der = crypto.dump_certificate(crypto.FILETYPE_ASN1, peer)
            check_hostname(der, state.host or "")
        self._checked = True
        if state.chain_der is not None and state.result is not None and not self._defer_revocation:
            sock = self._socket
            self.check_revocation(sock.gettimeout() if isinstance(sock, socket.socket) else None)

    def check_revocation(self, timeout: float | None = None) -> RevocationResult | None:
        """The fallback, after the handshake and the host name check, before any
        application byte: outside OpenSSL's callback, within ``timeout`` seconds (and
        the policy's budget). Raises :class:`RevocationError` when the policy refuses.
        Returns the verdict, ``None`` when the policy has no fallback. Called by
        ``do_handshake`` unless ``defer_revocation``; once per connection (a second
        call returns the first verdict, or raises its refusal again)."""
        pending = self._pending_revocation()
        if pending is None:
            return self._staple.revocation
        state, checker, chain, staple = pending
        try:
            result = checker.check(
                chain,
                state.policy,
                staple,
                staple_der=state.staple_der,
                timeout=_budget(timeout),
                host=state.host,
            )
        except Exception as error:  # noqa: BLE001 - a caller's store or fetcher: fail closed
            result = _failed_check(error)
        return self._settle(state, result)

    async def check_revocation_async(self, timeout: float | None = None) -> RevocationResult | None:
        """:meth:`check_revocation` for an event loop (asyncio or trio): the checker's
        :meth:`~staplecheck.revocation.RevocationChecker.check_async`, so live queries
        hold no thread and never block the loop. Same verdict, same refusal."""
        pending = self._pending_revocation()
        if pending is None:
            return self._staple.revocation
        state, checker, chain, staple = pending
        try:
            result = await checker.check_async(
                chain,
                state.policy,
                staple,
                staple_der=state.staple_der,
                timeout=_budget(timeout),
                host=state.host,
            )
        except Exception as error:  # noqa: BLE001 - a caller's store or fetcher: fail closed
            result = _failed_check(error)
        return self._settle(state, result)

    def _pending_revocation(
        self,
    ) -> tuple[_Handshake, RevocationChecker, Sequence[bytes], StapleResult] | None:
        """What the check needs, or ``None`` when there is nothing (left) to check."""
        state = self._staple
        if not self._checked:
            raise ssl.SSLError(1, "check_revocation() needs a completed handshake")
        if state.chain_der is None or state.result is None:
            return None
        if self._refusal is not None:
            raise self._refusal.with_traceback(None)
        if state.revocation is not None:
            return None
        checker = _context_info(self.get_context()).revocation or default_checker()
        return state, checker, state.chain_der, state.result

    def _settle(self, state: _Handshake, result: RevocationResult) -> RevocationResult:
        """Record the verdict; raise (and remember) the refusal when it refuses."""
        assert state.result is not None
        state.revocation = result
        if not result.accepted:
            state.accepted = False
            self._refusal = RevocationError(state.result, result, state.host)
            raise self._refusal
        return result


def _budget(timeout: float | None) -> float | None:
    """The check's time budget from a socket's timeout. A non-blocking socket (0.0)
    sets none, it is driven by an event loop: the policy's fallback_timeout applies,
    never a budget of zero (which would skip every source) and never an unbounded one."""
    if not timeout or timeout < 0:
        return None
    return timeout


def _failed_check(error: Exception) -> RevocationResult:
    """The engine raises nothing for what peers, responders or stores send; a store or
    fetcher of the caller's own may. The connection is then refused, with an error of
    the ssl family, never a raw exception."""
    return RevocationResult(
        status=StapleStatus.MISSING,
        source=None,
        reason=f"the revocation check failed: {error!r}"[:300],
        accepted=False,
    )


def drive_handshake(connection: SSL.Connection, sock: socket.socket) -> None:
    """Drive the handshake, honouring the socket's timeout as urllib3 does."""
    while True:
        try:
            connection.do_handshake()
        except SSL.WantReadError:
            if not wait_for_read(sock, sock.gettimeout()):
                raise TimeoutError("TLS handshake timed out") from None
        except SSL.WantWriteError:
            if not wait_for_write(sock, sock.gettimeout()):
                raise TimeoutError("TLS handshake timed out") from None
        else:
            return


def get_staple_result(connection: SSL.Connection) -> StapleResult | None:
    """The staple verdict of a connection made on a staplecheck context, if any."""
    state = connection.get_app_data()
    return state.result if isinstance(state, _Handshake) else None


def get_revocation_result(connection: SSL.Connection) -> RevocationResult | None:
    """The revocation verdict of a :class:`StapleConnection` whose policy has a
    fallback, once its handshake is done; ``None`` otherwise."""
    state = connection.get_app_data()
    return state.revocation if isinstance(state, _Handshake) else None


# --- the callbacks -----------------------------------------------------------------------


def _on_staple(connection: SSL.Connection, der: bytes, _data: Any) -> bool:
    """pyOpenSSL's OCSP client callback: judge, record, decide. Never raises."""
    state = _state_of(connection)
    if state is None:
        # The connection's app data is the user's own: nowhere to keep what verification
        # found, so the chain cannot count as verified (see _chain_verified).
        info = _context_info(connection.get_context())
        state = _Handshake(host=None, policy=info.policies.policy_for(None), verify=False)
    _judge(connection, state, der)
    return bool(state.accepted)


def _state_of(connection: SSL.Connection) -> _Handshake | None:
    """The connection's record; a plain ``SSL.Connection`` on a staplecheck context
    (app data unset) gets one, with the policy for its SNI name."""
    state = connection.get_app_data()
    if state is None:
        info = _context_info(connection.get_context())
        name = connection.get_servername()
        host = name.decode("ascii", "replace") if name else None  # SNI is A-labels
        state = _Handshake(host=host, policy=info.policies.policy_for(host), verify=True)
        connection.set_app_data(state)
    return state if isinstance(state, _Handshake) else None


def _session_reused(connection: SSL.Connection) -> bool:
    """Whether this handshake resumed a session (pyOpenSSL has no public call)."""
    try:
        return bool(_ssl_lib.SSL_session_reused(connection._ssl))
    except Exception:  # noqa: BLE001 - a binding that lacks it: the checks below decide
        return False


def _chain_verified(connection: SSL.Connection, state: _Handshake) -> bool:
    """Whether OpenSSL verified the peer's chain in this handshake, by its own rules:
    peer verification on (``VERIFY_PEER``), its verdict ``X509_V_OK``, and
    staplecheck's verify callback (which keeps OpenSSL's decisions) saw the leaf
    accepted. ``get_verified_chain`` returns a chain even when verification was off or
    a connection's own callback overrode its failures (pyOpenSSL then reports
    ``X509_V_OK``); none of those is evidence. Unknown means no (fail closed)."""
    if not (state.verify and state.leaf_verified and state.verify_error is None):
        return False
    try:
        if not connection.get_verify_mode() & SSL.VERIFY_PEER:
            return False
        return bool(_ssl_lib.SSL_get_verify_result(connection._ssl) == 0)  # X509_V_OK
    except Exception:  # noqa: BLE001 - a binding that lacks them: not verified
        return False


def _judge(connection: SSL.Connection, state: _Handshake, der: bytes | None) -> None:
    info = _context_info(connection.get_context())
    try:
        result = _staple_verdict(connection, state, der, info)
    except Exception as error:  # noqa: BLE001 - the callback must never raise
        result = StapleResult(
            status=StapleStatus.INVALID, reason=f"the staple could not be checked: {error!r}"
        )
    state.result = result
    if state.chain_der is not None and state.policy.wants_fallback(result):
        # The fallback may still answer: let the handshake finish; StapleConnection
        # decides after it (no network I/O in here) and logs the final verdict.
        state.accepted = True
        info.log.pending(state.host, state.policy, result)
        return
    state.accepted = state.policy.accepts(result)
    info.log.record(state.host, state.policy, result, state.accepted)


def _staple_verdict(
    connection: SSL.Connection, state: _Handshake, der: bytes | None, info: _ContextInfo
) -> StapleResult:
    if state.verify and _session_reused(connection):
        return StapleResult(
            status=StapleStatus.INVALID,
            reason="the session was resumed: this handshake verified no chain and "
            "carries no staple verdict",
        )
    # Only the leaf and its issuer are needed: converting the whole chain costs more.
    verified = _chain_verified(connection, state)
    chain = connection.get_verified_chain() if verified else None
    if not verified:
        peer = connection.get_peer_certificate(as_cryptography=True)
        return StapleResult(
            status=StapleStatus.INVALID,
            reason="certificate verification is off or did not succeed, so no staple "
            "can be trusted; use policy 'off' to connect without verification",
            must_staple=peer is not None and has_must_staple(peer),
            serial_number=peer.serial_number if peer is not None else None,
        )
    if not chain:
        return StapleResult(
            status=StapleStatus.INVALID,
            reason="no verified chain to check the staple against (a resumed session "
            "carries no staple verdict)",
        )
    leaf_der = crypto.dump_certificate(crypto.FILETYPE_ASN1, chain[0])
    above = [crypto.dump_certificate(crypto.FILETYPE_ASN1, chain[1])] if len(chain) > 1 else []
    certs = CertPair(leaf_der, above[0] if above else leaf_der)
    state.leaf_der = leaf_der
    if state.policy.needs_revocation_check and isinstance(connection, StapleConnection):
        # The issuer's DER is already made: only the certificates above it are new.
        above += (crypto.dump_certificate(crypto.FILETYPE_ASN1, cert) for cert in chain[2:])
        state.chain_der = (leaf_der, *above)
        state.staple_der = der or None
    if der is None:
        return StapleResult(
            status=StapleStatus.INVALID,
            reason="the handshake gave no staple verdict (a resumed session carries none)",
            serial_number=certs.leaf.serial_number,
            must_staple=has_must_staple(certs.leaf),
        )
    if len(chain) < 2 and der:
        return StapleResult(
            status=StapleStatus.INVALID,
            reason="the verified chain is the certificate alone, with no issuer to check "
            "the staple against",
            serial_number=certs.leaf.serial_number,
            must_staple=has_must_staple(certs.leaf),
        )
    policy = state.policy
    return judge_staple(
        der,
        certs,
        now=info.clock(),
        clock_skew=policy.clock_skew,
        default_lifetime=policy.default_lifetime,
        max_age=policy.max_age,
        allow_sha1=policy.allow_sha1,
        chain=_Converted(chain[1:]),
        cache=info.cache,
        trusted_responders=policy.trusted_responders,
    )


class _Converted(Sequence[x509.Certificate]):
    """Certificates of the verified chain as cryptography objects, converted when
    first read: validation reads past the issuer only for a staple it refuses."""

    def __init__(self, certs: Sequence[crypto.X509]) -> None:
        self._certs = certs
        self._done: dict[int, x509.Certificate] = {}

    def __len__(self) -> int:
        return len(self._certs)

    @overload
    def __getitem__(self, index: int) -> x509.Certificate: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[x509.Certificate]: ...
    def __getitem__(self, index: int | slice) -> x509.Certificate | Sequence[x509.Certificate]:
        if isinstance(index, slice):
            return [self[i] for i in range(len(self))[index]]
        found = self._done.get(index)
        if found is None:
            found = self._done[index] = self._certs[index].to_cryptography()
        return found


def _on_verify(
    connection: SSL.Connection, _cert: crypto.X509, errno: int, depth: int, ok: int
) -> bool:
    """Keep OpenSSL's own decision; remember the first failure for the error message,
    and whether the leaf was accepted with no failure before it."""
    state = _state_of(connection)
    if state is not None:
        if not ok and state.verify_error is None:
            state.verify_error = (errno, depth)
        if depth == 0:
            state.leaf_verified = bool(ok) and state.verify_error is None
    return bool(ok)


# --- errors and host names ------------------------------------------------------------------

# X509_V_ERR_* codes (openssl/x509_vfy.h) that users meet; others print their number.
_VERIFY_ERRORS = {
    2: "unable to get issuer certificate",
    7: "certificate signature failure",
    9: "certificate is not yet valid",
    10: "certificate has expired",
    18: "self-signed certificate",
    19: "self-signed certificate in certificate chain",
    20: "unable to get local issuer certificate",
    21: "unable to verify the first certificate",
    23: "certificate revoked",
    24: "invalid CA certificate",
    26: "unsupported certificate purpose",
    28: "certificate rejected",
}


def _handshake_failure(state: _Handshake, error: SSL.Error) -> ssl.SSLError:
    if state.accepted is False and state.result is not None:
        return StapleError(state.result, state.host)
    if state.verify_error is not None:
        errno, depth = state.verify_error
        text = _VERIFY_ERRORS.get(errno, f"X509 verify error {errno}")
        failure = ssl.SSLCertVerificationError(
            1, f"certificate verify failed: {text} (depth {depth})"
        )
        failure.verify_code = errno
        failure.verify_message = text
        return failure
    where = state.host or "the server"
    return ssl.SSLError(1, f"TLS handshake with {where} failed: {handshake_words(error)}")


def _context_info(context: SSL.Context) -> _ContextInfo:
    info = context.get_app_data()
    if not isinstance(info, _ContextInfo):
        raise TypeError("this SSL.Context was not made by staplecheck.create_context")
    return info


# OpenSSL's reasons when the first bytes back are not a TLS record: a plain HTTP (or
# other cleartext) server answered the ClientHello.
_NOT_TLS = ("wrong version number", "packet length too long", "record layer failure")


def handshake_words(error: SSL.Error) -> str:
    """Why a handshake failed, in words rather than OpenSSL's error tuple."""
    if isinstance(error, SSL.SysCallError):
        code = error.args[0] if error.args else None
        if code == -1:
            return "the server closed the connection"
        return f"connection error: {os.strerror(code or 0)}"
    reasons = _reasons(error)
    if any(reason in _NOT_TLS for reason in reasons):
        return "the server did not answer with TLS (is it plain HTTP?)"
    return "; ".join(reasons) or "no reason given by OpenSSL"
