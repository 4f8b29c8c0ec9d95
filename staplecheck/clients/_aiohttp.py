"""aiohttp integration: a connector that checks revocation on every new connection.

aiohttp handshakes with the stdlib ``ssl`` module, which cannot ask for a staple. After
its handshake (chain and host name verified by OpenSSL under ``CERT_REQUIRED`` and
``check_hostname``) the verified chain can be read, and staplecheck judges it exactly as
a handshake that got no staple: the same :class:`Policy` methods decide, and the
revocation fallback (live OCSP, CRLs, the store) answers where the policy has one. The
check never blocks the event loop, and runs before the connection carries a request.
"""

from __future__ import annotations

import _ssl
import asyncio
import dataclasses
import os
import ssl
import typing
from collections.abc import Sequence
from ssl import SSLContext

import aiohttp
import certifi
from aiohttp.client_proto import ResponseHandler
from aiohttp.client_reqrep import ClientRequest

from .._errors import RevocationError, StapleError
from .._policy import Policy
from ..revocation import RevocationChecker, RevocationResult, default_checker
from ..tls._alabel import a_label
from ..tls._hostpolicy import HostPolicies, HostPolicyLike, as_host_policies
from ..tls._log import VerdictLog
from ..tls._pyopenssl import _DEFAULT_LOG, Clock, _utc_now
from ..validation._result import StapleResult, StapleStatus
from ..validation._validate import SHARED_CACHE, CertPair, StapleCache, judge_staple
from ._urllib3 import AIOHTTP_VERDICT

if typing.TYPE_CHECKING:
    from aiohttp import ClientTimeout
    from aiohttp.tracing import Trace

__all__ = [
    "ClientRevocationError",
    "StapleConnector",
    "Verdict",
    "client_session",
    "make_ssl_context",
    "verdict_of",
    "verified_chain",
]

Verify = typing.Union[bool, str, "os.PathLike[str]"]
Cert = typing.Union[str, tuple[str, str], tuple[str, str, str]]


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What the check found for one connection: the staple's verdict (always
    ``missing`` here: the stdlib cannot ask for one) and the fallback's."""

    staple: StapleResult | None
    revocation: RevocationResult | None


class ClientRevocationError(aiohttp.ClientConnectorCertificateError):
    """A connection refused by staplecheck's check after aiohttp's handshake.

    An ``aiohttp.ClientConnectorCertificateError`` (so also a
    ``ClientConnectorError``, ``ClientSSLError`` and ``ClientConnectionError``):
    code that handles aiohttp's certificate failures handles this too. Its
    ``__cause__`` and :attr:`certificate_error` are the :class:`StapleError` (policy
    refusal of the missing staple: ``must-staple``, a must-staple certificate) or the
    :class:`RevocationError` (the fallback's refusal), with the verdicts on them.
    """

    __module__ = "staplecheck.aiohttp"  # its public home, shown in tracebacks

    @property
    def error(self) -> StapleError:
        """The refusal: :class:`StapleError` or :class:`RevocationError`."""
        found = self.certificate_error
        assert isinstance(found, StapleError)
        return found

    def __str__(self) -> str:
        return f"Cannot connect to host {self.host}:{self.port} ssl:True [{self.error}]"


# --- trust ---------------------------------------------------------------------------------


def require_verification(context: ssl.SSLContext) -> ssl.SSLContext:
    """``context`` if it verifies the chain and the host name; ``ValueError`` else."""
    if not isinstance(context, ssl.SSLContext):
        raise TypeError(f"expected an ssl.SSLContext, not {type(context).__name__}")
    if context.verify_mode != ssl.CERT_REQUIRED or not context.check_hostname:
        raise ValueError(
            "staplecheck needs a context that verifies: verify_mode CERT_REQUIRED and "
            "check_hostname True (no revocation answer means anything for a chain "
            "nobody verified)"
        )
    return context


def make_ssl_context(
    verify: Verify = True,
    cert: Cert | None = None,
) -> ssl.SSLContext:
    """A verifying stdlib client context: ``verify`` is ``True`` (certifi) or a CA file
    or directory; ``cert`` a client certificate (a PEM path, ``(certfile, keyfile)`` or
    ``(certfile, keyfile, password)``). Verification cannot be turned off."""
    if verify is False or verify is None:
        raise ValueError(
            "staplecheck never turns certificate verification off: no revocation "
            "answer means anything for an unverified chain (use aiohttp's own "
            "connector for that)"
        )
    if verify is True:
        context = ssl.create_default_context(cafile=certifi.where())
    else:
        path = os.fspath(verify)
        if os.path.isdir(path):
            context = ssl.create_default_context(capath=path)
        elif os.path.isfile(path):
            context = ssl.create_default_context(cafile=path)
        else:
            raise FileNotFoundError(2, "No such CA file or directory", path)
    if isinstance(cert, str):
        context.load_cert_chain(cert)
    elif cert is not None:
        password = cert[2] if len(cert) == 3 else None
        context.load_cert_chain(cert[0], cert[1] or None, password)
    return require_verification(context)


# --- the verified chain --------------------------------------------------------------------


def verified_chain(ssl_object: ssl.SSLObject) -> tuple[bytes, ...]:
    """The chain OpenSSL verified in this handshake, DER, leaf first, trust anchor last;
    ``()`` when there is none (no verification, a resumed session).

    Python 3.13 has ``SSLObject.get_verified_chain()`` (DER bytes); 3.10 to 3.12 have
    the same call on the private ``_ssl`` object, returning ``_ssl.Certificate``
    objects whose ``public_bytes`` writes DER."""
    public = getattr(ssl_object, "get_verified_chain", None)
    if public is not None:
        found = public()
    else:
        inner = getattr(ssl_object, "_sslobj", None)
        call = getattr(inner, "get_verified_chain", None)
        if call is None:
            raise ssl.SSLError(1, "this Python cannot read the verified chain")
        found = call()
    return tuple(_der(item) for item in found or ())


def _der(item: object) -> bytes:
    if isinstance(item, (bytes, bytearray)):
        return bytes(item)
    public_bytes = getattr(item, "public_bytes", None)
    if public_bytes is None:
        raise ssl.SSLError(1, f"unexpected certificate object {type(item).__name__}")
    der = public_bytes(_ssl.ENCODING_DER)
    if not isinstance(der, bytes):
        raise ssl.SSLError(1, "the verified chain's certificate has no DER")
    return der


def _checked_ssl_object(protocol: ResponseHandler, host: str) -> ssl.SSLObject:
    """The connection's ``SSLObject``, once it proves what was verified: a context
    that required the chain and checked the host name, for ``host``."""
    transport = protocol.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if not isinstance(ssl_object, ssl.SSLObject):
        raise ssl.SSLError(1, "the connection has no TLS to check")
    require_verification(ssl_object.context)
    name = ssl_object.server_hostname
    if not name or a_label(name) != host:
        raise ssl.SSLError(1, f"the connection verified {name!r}, not {host!r}")
    return ssl_object


# --- the decision -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Setup:
    policies: HostPolicies
    clock: Clock
    cache: StapleCache | None
    log: VerdictLog
    revocation: RevocationChecker | None


def _missing_staple(chain: Sequence[bytes], policy: Policy, setup: _Setup) -> StapleResult:
    """The staple verdict of a handshake that asked for none: ``missing`` (with the
    leaf's must-staple flag), as the pyOpenSSL glue judges ``request_staple=False``;
    ``invalid`` when there is no verified chain."""
    if not chain:
        return StapleResult(
            status=StapleStatus.INVALID,
            reason="no verified chain to check (verification off or a resumed session)",
        )
    certs = CertPair(chain[0], chain[1] if len(chain) > 1 else chain[0])
    return judge_staple(
        b"",
        certs,
        now=setup.clock(),
        clock_skew=policy.clock_skew,
        default_lifetime=policy.default_lifetime,
        max_age=policy.max_age,
        allow_sha1=policy.allow_sha1,
        chain=(),
        cache=setup.cache,
        trusted_responders=policy.trusted_responders,
    )


async def _check(
    checker: RevocationChecker,
    chain: Sequence[bytes],
    policy: Policy,
    staple: StapleResult,
    timeout: float | None,
    host: str | None,
) -> RevocationResult:
    """The revocation fallback, awaited on the event loop: the checker's async
    fetchers ask responders and distribution points without a thread (a store or
    fetcher of the caller's own runs in a worker thread); the verdict, cache and
    single-flight are those of sync callers."""
    return await checker.check_async(chain, policy, staple, timeout=timeout, host=host)


async def _judge(
    setup: _Setup, chain: tuple[bytes, ...], host: str, timeout: float | None
) -> Verdict:
    """The decision for one new connection; raises the refusal."""
    policy = setup.policies.policy_for(host)
    if not policy.requests_staple:
        return Verdict(None, None)  # policy off: nothing is asked, nothing refused
    result = _missing_staple(chain, policy, setup)
    wants_check = policy.needs_revocation_check and bool(chain)
    if wants_check and policy.wants_fallback(result):
        setup.log.pending(host, policy, result)
    else:
        accepted = policy.accepts(result)
        setup.log.record(host, policy, result, accepted)
        if not accepted:
            raise StapleError(result, host)
    if not wants_check:
        return Verdict(result, None)
    checker = setup.revocation or default_checker()
    try:
        revocation = await _check(checker, chain, policy, result, timeout, host)
    except Exception as error:  # noqa: BLE001 - a caller's store or fetcher: fail closed
        revocation = RevocationResult(
            status=StapleStatus.MISSING,
            source=None,
            reason=f"the revocation check failed: {error!r}"[:300],
            accepted=False,
        )
    if not revocation.accepted:
        raise RevocationError(result, revocation, host)
    return Verdict(result, revocation)


def _budget(timeout: ClientTimeout) -> float | None:
    """The fallback's time limit from the request's: the shortest one set (the
    policy's ``fallback_timeout`` caps it further)."""
    limits = [t for t in (timeout.total, timeout.connect, timeout.sock_connect) if t]
    return min(limits) if limits else None


def _abort(protocol: ResponseHandler, transport: asyncio.BaseTransport | None) -> None:
    """Drop the connection now (no TLS shutdown). ``transport`` is the one the check
    began with: the protocol forgets it when the peer hangs up first, and asyncio warns
    of a TLS transport nobody closed."""
    if isinstance(transport, asyncio.Transport):
        transport.abort()
    protocol.close()


# --- the connector -------------------------------------------------------------------------

_REFUSED_ARGUMENTS = ("ssl_context", "verify_ssl", "fingerprint")


class StapleConnector(aiohttp.TCPConnector):
    """An ``aiohttp.TCPConnector`` that checks revocation on every new TLS connection.

    ``policy`` is a mode (``"soft-fail"``, ``"must-staple"``, ``"hard-fail"``,
    ``"off"``), a :class:`Policy` or a :class:`HostPolicies` table. The stdlib cannot
    ask for a staple, so every connection is judged as one that got none: ``must-staple``
    refuses every connection, a certificate with the must-staple extension is refused
    under every policy but ``off``, and the fallback (``hard-fail``, or a policy with
    ``fallback=...``) answers for the rest. Trust: ``verify`` (``True``: certifi; a CA
    file or directory) and ``cert`` (client certificate), or ``ssl`` (a stdlib context
    of your own that verifies chain and host name). Verification cannot be turned off:
    ``ssl=False``, fingerprints and non-verifying contexts raise ``ValueError``, here
    or per request. ``clock``, ``cache``, ``log`` and ``revocation`` are as for
    :func:`staplecheck.create_context`. Other keyword arguments go to
    ``TCPConnector`` (``limit``, ``force_close``, ``keepalive_timeout``, ...).

    A refusal aborts the connection and raises :class:`ClientRevocationError`.
    Responses carry the verdict: :func:`staplecheck.staple_of` and
    :func:`staplecheck.revocation_of`. Proxies: ``http://`` (CONNECT) only.
    """

    def __init__(
        self,
        policy: HostPolicyLike = "soft-fail",
        *,
        verify: Verify = True,
        cert: Cert | None = None,
        ssl: SSLContext | None = None,
        clock: Clock | None = None,
        cache: StapleCache | None = SHARED_CACHE,
        log: VerdictLog | None = None,
        revocation: RevocationChecker | None = None,
        **kwargs: typing.Any,
    ) -> None:
        refused = [name for name in _REFUSED_ARGUMENTS if name in kwargs]
        if refused:
            raise TypeError(
                f"staplecheck's connector takes trust as verify=, cert= or ssl= (a "
                f"verifying context); remove {refused}"
            )
        if ssl is None:
            context = make_ssl_context(verify, cert)
        elif verify is not True or cert is not None:
            raise ValueError("give trust and client certificate in ssl=, or verify=/cert=")
        else:
            context = require_verification(ssl)
        self._staplecheck = _Setup(
            policies=as_host_policies(policy),
            clock=clock or _utc_now,
            cache=cache,
            log=log or _DEFAULT_LOG,
            revocation=revocation,
        )
        super().__init__(ssl=context, **kwargs)

    @property
    def policies(self) -> HostPolicies:
        return self._staplecheck.policies

    async def _create_connection(
        self, req: ClientRequest, traces: list[Trace], timeout: ClientTimeout
    ) -> ResponseHandler:
        if req.is_ssl():
            _refuse_unchecked(req)
        protocol = await super()._create_connection(req, traces, timeout)
        if not req.is_ssl():
            return protocol
        transport = protocol.transport
        try:
            verdict = await self._verdict(protocol, req, timeout)
        except StapleError as refusal:
            _abort(protocol, transport)
            raise ClientRevocationError(req.connection_key, refusal) from refusal
        except ssl.SSLError as failure:
            _abort(protocol, transport)
            raise aiohttp.ClientConnectorSSLError(req.connection_key, failure) from failure
        except BaseException:  # cancelled while the check ran: no socket left behind
            _abort(protocol, transport)
            raise
        if not protocol.is_connected():
            # The server hung up while the check ran (a TLS 1.3 server refusing the
            # client certificate does so after the handshake): say so, rather than hand
            # aiohttp a connection without a transport.
            _abort(protocol, transport)
            closed = ConnectionResetError("the server closed the connection after the handshake")
            raise aiohttp.ClientConnectorError(req.connection_key, closed)
        setattr(protocol, AIOHTTP_VERDICT, verdict)
        return protocol

    async def _verdict(
        self, protocol: ResponseHandler, req: ClientRequest, timeout: ClientTimeout
    ) -> Verdict:
        host = a_label((req.server_hostname or req.url.raw_host or "").rstrip("."))
        ssl_object = _checked_ssl_object(protocol, host)
        chain = () if ssl_object.session_reused else verified_chain(ssl_object)
        return await _judge(self._staplecheck, chain, host, _budget(timeout))


def _refuse_unchecked(req: ClientRequest) -> None:
    """Per-request settings that would skip verification or the check: refused."""
    chosen = req.ssl
    if isinstance(chosen, ssl.SSLContext):
        require_verification(chosen)
    elif chosen is not True:
        raise ValueError(
            f"staplecheck's connector never connects without verification; this "
            f"request asked for ssl={chosen!r}"
        )
    proxy = req.proxy
    if proxy is not None and proxy.scheme != "http":
        raise ValueError(
            f"staplecheck's connector supports http:// proxies (CONNECT) only, not "
            f"{proxy.scheme}:// ({proxy}): the proxy's own TLS connection would go "
            "unchecked"
        )


def verdict_of(protocol: object) -> Verdict | None:
    """The verdict of the connection behind an aiohttp protocol, if staplecheck's
    connector made it."""
    found = getattr(protocol, AIOHTTP_VERDICT, None)
    return found if isinstance(found, Verdict) else None


def client_session(
    policy: HostPolicyLike = "soft-fail",
    *,
    verify: Verify = True,
    cert: Cert | None = None,
    ssl: SSLContext | None = None,
    clock: Clock | None = None,
    cache: StapleCache | None = SHARED_CACHE,
    log: VerdictLog | None = None,
    revocation: RevocationChecker | None = None,
    connector_options: dict[str, typing.Any] | None = None,
    **session_kwargs: typing.Any,
) -> aiohttp.ClientSession:
    """An ``aiohttp.ClientSession`` over a :class:`StapleConnector`: the one-line
    switch from ``aiohttp.ClientSession(...)``. ``connector_options`` go to the
    connector (``limit``, ``force_close``, ...); other keyword arguments to
    ``ClientSession`` (``timeout``, ``headers``, ...). ``connector`` is refused (it
    would replace the check). Call it inside a running event loop."""
    if "connector" in session_kwargs:
        raise TypeError("staplecheck's session makes its own connector; remove 'connector'")
    connector = StapleConnector(
        policy,
        verify=verify,
        cert=cert,
        ssl=ssl,
        clock=clock,
        cache=cache,
        log=log,
        revocation=revocation,
        **(connector_options or {}),
    )
    return aiohttp.ClientSession(connector=connector, **session_kwargs)
