"""The error raised when a staple is rejected."""

from __future__ import annotations

import ssl

from ._result import StapleResult

__all__ = ["StapleError", "find_staple_error"]


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
