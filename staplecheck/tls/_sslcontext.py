"""A duck-typed ``ssl.SSLContext`` that urllib3 accepts, backed by pyOpenSSL.

urllib3 configures the context it is given on every new connection (verify mode, CA
files, client certificate, ALPN) and then calls ``wrap_socket``; one context object
serves every pool and thread. A pyOpenSSL ``Context`` cannot change after its first
connection. So here the constructor sets the baseline, and each setter applies only to
the calling thread's next connection: two threads configuring different connections
at once never see each other's values, and one pool's CA never leaks into another's
trust. Assigning ``verify_mode`` starts a new connection's settings (urllib3 assigns
it first, for every connection), so what a connection that failed before its
handshake had set never reaches the next one. One pyOpenSSL context is built and
cached per distinct trust/client certificate/version configuration.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import ssl
import threading
from collections.abc import Iterable
from typing import Any

from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL
from urllib3.contrib.pyopenssl import WrappedSocket

from ..revocation import RevocationChecker, RevocationResult
from ..validation._result import StapleResult
from ..validation._validate import SHARED_CACHE, StapleCache
from ._hostname import peercert_dict
from ._hostpolicy import HostPolicyLike, as_host_policies
from ._log import VerdictLog
from ._pyopenssl import (
    ClientCert,
    Clock,
    StapleConnection,
    TLSConfig,
    create_context,
    drive_handshake,
)

__all__ = ["StapleSSLContext", "StapleSocket"]


class StapleSocket(WrappedSocket):
    """urllib3's pyOpenSSL socket wrapper, plus the staple verdict."""

    connection: StapleConnection

    @property
    def staple(self) -> StapleResult | None:
        """The verdict on this connection's staple (``None`` under policy ``off``)."""
        return self.connection.staple

    @property
    def revocation(self) -> RevocationResult | None:
        """The revocation verdict (policies with a fallback; ``None`` otherwise)."""
        return self.connection.revocation

    def getpeercert(self, binary_form: bool = False) -> Any:
        """As ``ssl.SSLSocket.getpeercert``: the DER, or the subject and subjectAltName."""
        cert = self.connection.get_peer_certificate(as_cryptography=True)
        if cert is None:
            return None
        if binary_form:
            return cert.public_bytes(serialization.Encoding.DER)
        return peercert_dict(cert)


@dataclasses.dataclass
class _Settings:
    """Per-connection settings urllib3 makes before ``wrap_socket``."""

    verify_mode: ssl.VerifyMode = ssl.CERT_REQUIRED
    check_hostname: bool = True
    cafiles: tuple[str, ...] = ()
    capaths: tuple[str, ...] = ()
    cadata: tuple[bytes, ...] = ()
    client_cert: ClientCert | None = None
    alpn: tuple[bytes, ...] = ()


class StapleSSLContext:
    """An ``ssl.SSLContext`` look-alike for urllib3 (``ssl_context=``) that checks staples.

    Certificate and host name verification are on by default. Trust comes from
    ``cafile``/``capath``/``cadata`` or, when none is given, certifi. ``policy`` is a
    :class:`Policy`, a mode string, or a :class:`HostPolicies` table.
    """

    def __init__(
        self,
        policy: HostPolicyLike = "soft-fail",
        *,
        cafile: str | os.PathLike[str] | None = None,
        capath: str | os.PathLike[str] | None = None,
        cadata: str | bytes | None = None,
        certfile: str | os.PathLike[str] | None = None,
        keyfile: str | os.PathLike[str] | None = None,
        password: str | bytes | None = None,
        minimum_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
        maximum_version: ssl.TLSVersion = ssl.TLSVersion.MAXIMUM_SUPPORTED,
        clock: Clock | None = None,
        cache: StapleCache | None = SHARED_CACHE,
        log: VerdictLog | None = None,
        revocation: RevocationChecker | None = None,
    ) -> None:
        self.policies = as_host_policies(policy)
        self._revocation = revocation
        TLSConfig(minimum_version=minimum_version, maximum_version=maximum_version)  # validate
        self.minimum_version = minimum_version
        self.maximum_version = maximum_version
        self._clock = clock
        self._cache = cache
        self._log = log
        self._local = threading.local()
        self._lock = threading.Lock()
        self._contexts: dict[TLSConfig, SSL.Context] = {}
        self._ciphers: str | None = None
        self.options = 0
        self.verify_flags = 0
        self.hostname_checks_common_name = False
        self._baseline = _Settings()
        if cafile or capath or cadata:
            self.load_verify_locations(cafile, capath, cadata)
        if certfile:
            self.load_cert_chain(certfile, keyfile, password)
        self._baseline = self._take_settings()

    # --- settings urllib3 makes per connection -----------------------------------------

    def _pending(self) -> dict[str, Any]:
        """Settings made by this thread since its last ``wrap_socket``."""
        pending: dict[str, Any] | None = getattr(self._local, "pending", None)
        if pending is None:
            pending = self._local.pending = {}
        return pending

    def _current(self, name: str) -> Any:
        """A setting as this thread sees it: pending, else last used, else baseline."""
        pending = self._pending()
        if name in pending:
            return pending[name]
        return getattr(getattr(self._local, "last", None) or self._baseline, name)

    def _set(self, **changes: Any) -> None:
        self._pending().update(changes)

    @property
    def verify_mode(self) -> ssl.VerifyMode:
        mode: ssl.VerifyMode = self._current("verify_mode")
        return mode

    @verify_mode.setter
    def verify_mode(self, value: int) -> None:
        mode = ssl.VerifyMode(value)
        self._pending().clear()  # a new connection's settings begin here
        self._set(verify_mode=mode)

    @property
    def check_hostname(self) -> bool:
        checked: bool = self._current("check_hostname")
        return checked

    @check_hostname.setter
    def check_hostname(self, value: bool) -> None:
        self._set(check_hostname=bool(value))

    def load_verify_locations(
        self,
        cafile: str | os.PathLike[str] | None = None,
        capath: str | os.PathLike[str] | None = None,
        cadata: str | bytes | None = None,
    ) -> None:
        """Trust exactly these CAs (instead of certifi) for the next connection."""
        if cafile is None and capath is None and cadata is None:
            raise TypeError("cafile, capath and cadata cannot be all omitted")
        for path in (cafile, capath):
            if path is not None and not os.path.exists(path):
                raise FileNotFoundError(2, "No such file or directory", os.fspath(path))
        data = cadata.encode("ascii") if isinstance(cadata, str) else cadata
        self._set(
            cafiles=_tuple(cafile),
            capaths=_tuple(capath),
            cadata=(data,) if data else (),
        )

    def load_cert_chain(
        self,
        certfile: str | os.PathLike[str],
        keyfile: str | os.PathLike[str] | None = None,
        password: str | bytes | None = None,
    ) -> None:
        """Present this client certificate (mutual TLS) on the next connection."""
        if callable(password):
            password = password()
        secret = password.encode() if isinstance(password, str) else password
        self._set(
            client_cert=ClientCert(
                certfile=os.fspath(certfile),
                keyfile=os.fspath(keyfile) if keyfile else None,
                password=secret,
            )
        )

    def set_alpn_protocols(self, protocols: Iterable[str | bytes]) -> None:
        self._set(alpn=tuple(p.encode() if isinstance(p, str) else p for p in protocols))

    def set_ciphers(self, ciphers: str) -> None:
        self._ciphers = ciphers

    def load_default_certs(self, purpose: Any = None) -> None:
        """Trust certifi's bundle (the default when no CA was loaded)."""

    def set_default_verify_paths(self) -> None:
        """Trust certifi's bundle (the default when no CA was loaded)."""

    # --- connecting ----------------------------------------------------------------------

    def wrap_socket(
        self,
        sock: socket.socket,
        server_side: bool = False,
        do_handshake_on_connect: bool = True,
        suppress_ragged_eofs: bool = True,
        server_hostname: str | bytes | None = None,
    ) -> StapleSocket:
        """Handshake on ``sock``; check chain, staple and host name; or raise."""
        if server_side:
            raise ValueError("StapleSSLContext is for clients only")
        settings = self._take_settings()
        verify = settings.verify_mode is not ssl.CERT_NONE
        host = server_hostname.decode() if isinstance(server_hostname, bytes) else server_hostname
        connection = StapleConnection(
            self._context_for(settings),
            sock,
            server_hostname=host,
            verify=verify,
            check_hostname=settings.check_hostname,
        )
        if settings.alpn:
            connection.set_alpn_protos(list(settings.alpn))
        drive_handshake(connection, sock)
        return StapleSocket(connection, sock, suppress_ragged_eofs)

    def _take_settings(self) -> _Settings:
        """This thread's settings for the connection it is about to make."""
        pending = self._pending()
        settings = dataclasses.replace(self._baseline, **pending)
        pending.clear()
        self._local.last = settings
        return settings

    def _context_for(self, settings: _Settings) -> SSL.Context:
        config = TLSConfig(
            cafiles=settings.cafiles,
            capaths=settings.capaths,
            cadata=settings.cadata,
            client_cert=settings.client_cert,
            minimum_version=self.minimum_version,
            maximum_version=self.maximum_version,
            ciphers=self._ciphers,
        )
        with self._lock:
            context = self._contexts.get(config)
            if context is None:
                context = create_context(
                    self.policies,
                    config=config,
                    clock=self._clock,
                    cache=self._cache,
                    log=self._log,
                    revocation=self._revocation,
                )
                self._contexts[config] = context
            return context


def _tuple(path: str | os.PathLike[str] | None) -> tuple[str, ...]:
    return (os.fspath(path),) if path is not None else ()
