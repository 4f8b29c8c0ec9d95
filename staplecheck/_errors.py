"""The error raised when a staple is rejected."""

from __future__ import annotations

import ssl

from ._result import StapleResult

__all__ = ["StapleError"]


class StapleError(ssl.SSLCertVerificationError):
    """A TLS connection refused because of its OCSP staple.

    A subclass of :class:`ssl.SSLCertVerificationError`, so code that already handles
    certificate failures (urllib3, requests, plain ``except ssl.SSLError``) handles this
    too. ``result`` carries the verdict; ``verify_message`` names the status and reason.
    """

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
