"""The error raised when a staple is rejected."""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

from .validation._result import StapleResult

if TYPE_CHECKING:
    from .revocation import RevocationResult

__all__ = ["RevocationError", "StapleError", "find_staple_error"]


class StapleError(ssl.SSLCertVerificationError):
    """A TLS connection refused because of its OCSP staple.

    A subclass of :class:`ssl.SSLCertVerificationError`, so code that already handles
    certificate failures (urllib3, requests, plain ``except ssl.SSLError``) handles this
    too. ``result`` carries the verdict; ``verify_message`` names the status and reason.
    """

    __module__ = "staplecheck"  # shown in tracebacks; the public home of the class

    result: StapleResult
    host: str | None

    def __init__(self, result: StapleResult, host: str | None = None) -> None:
        where = f" from {host}" if host else ""
        message = f"OCSP staple{where} rejected: {result.status.value}: {result.reason}"
        super().__init__(1, message)
        self.result = result
        self.host = host
        self.verify_code = 1
        self.verify_message = f"OCSP staple {result.status.value}: {result.reason}"

    def __str__(self) -> str:
        return str(self.args[1])

    def __reduce__(self) -> tuple[type[StapleError], tuple[StapleResult, str | None]]:
        return (type(self), (self.result, self.host))


class RevocationError(StapleError):
    """A TLS connection refused by the revocation check beyond the staple (policy
    ``hard-fail``, or a fallback that answered ``revoked`` or ``unknown``).

    A :class:`StapleError` (and so an :class:`ssl.SSLCertVerificationError`):
    ``result`` is the staple's verdict, ``revocation`` the fallback's.
    """

    __module__ = "staplecheck"

    revocation: RevocationResult

    def __init__(
        self, result: StapleResult, revocation: RevocationResult, host: str | None = None
    ) -> None:
        super().__init__(result, host)
        where = f" of {host}" if host else ""
        refused = next((item for item in revocation.chain if item.accepted is False), revocation)
        which = f" (intermediate {refused.subject})" if refused is not revocation else ""
        source = refused.source or "no source"
        message = (
            f"revocation check{where} refused{which}: {refused.status.value} from {source}: "
            f"{refused.reason}"
        )
        self.args = (1, message)
        self.revocation = revocation
        self.verify_message = message

    def __reduce__(self) -> tuple[type[StapleError], tuple[StapleResult, str | None]]:
        return (_rebuild_revocation_error, (self.result, self.revocation, self.host))  # type: ignore[return-value]


def _rebuild_revocation_error(
    result: StapleResult, revocation: RevocationResult, host: str | None
) -> RevocationError:
    return RevocationError(result, revocation, host)


def find_staple_error(error: BaseException) -> StapleError | None:
    """The :class:`StapleError` behind ``error``, however deeply wrapped.

    requests and urllib3 wrap the handshake's exception (``SSLError`` →
    ``MaxRetryError`` → ``SSLError``); this follows causes, contexts, arguments and
    urllib3's ``reason`` to find it, so ``find_staple_error(exc).result`` is the verdict.
    """
    seen: set[int] = set()
    stack: list[object] = [error]
    while stack:
        item = stack.pop()
        if id(item) in seen or not isinstance(item, BaseException):
            continue
        seen.add(id(item))
        if isinstance(item, StapleError):
            return item
        stack.extend([item.__cause__, item.__context__, *item.args, getattr(item, "reason", None)])
    return None
