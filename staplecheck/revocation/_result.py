"""What the revocation check found for a connection: a verdict beside the staple's."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

from ..validation._result import StapleResult, StapleStatus, json_value

__all__ = ["SOURCES", "Attempt", "RevocationResult"]

SOURCES = ("staple", "ocsp", "crl", "cache")
"""Where a :class:`RevocationResult` can come from (``None``: no source answered)."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Attempt:
    """One thing the check tried, for the log and for the caller."""

    source: str
    """``"cache"``, ``"ocsp"`` or ``"crl"``."""
    url: str | None
    """The responder or distribution point asked, or the CRL file read; ``None`` for
    the cache."""
    outcome: str
    """A verdict (``good``, ``revoked``, ``unknown``, ``stale``, ``invalid``), or
    ``failed``, ``timeout``, ``cancelled``, ``skipped``, ``miss``."""
    reason: str
    milliseconds: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RevocationResult:
    """The revocation verdict on one certificate, from whichever source gave it.

    ``status`` is ``good``, ``revoked`` or ``unknown`` when a source answered
    (``source`` names it), the staple's own status when the staple decided (``source``
    is ``"staple"``), and ``missing`` when no source answered (``source`` is
    ``None``; ``reason`` and ``attempts`` say what was tried). For the leaf,
    :attr:`chain` holds the intermediates' verdicts when the policy checks the chain.
    """

    status: StapleStatus
    source: str | None
    reason: str
    attempts: tuple[Attempt, ...] = ()
    serial_number: int | None = None
    subject: str | None = None
    """The certificate's subject, for the log (bounded like every printed name)."""
    this_update: datetime.datetime | None = None
    next_update: datetime.datetime | None = None
    revocation_time: datetime.datetime | None = None
    revocation_reason: str | None = None
    responder: str | None = None
    """Who signed the answer: the issuer, a delegated or pinned responder, or
    ``CRL from issuer ...``."""
    chain: tuple[RevocationResult, ...] = ()
    """The verdicts on the intermediates, leaf's issuer first (``check_chain``)."""
    accepted: bool | None = None
    """Whether the policy let the connection proceed on this verdict (the leaf's result
    says it for the whole chain)."""

    @property
    def is_good(self) -> bool:
        return self.status is StapleStatus.GOOD

    @classmethod
    def from_answer(
        cls,
        answer: StapleResult,
        source: str | None,
        attempts: tuple[Attempt, ...],
        subject: str | None,
    ) -> RevocationResult:
        """A verdict carried over from a judged staple, OCSP response or CRL."""
        return cls(
            status=answer.status,
            source=source,
            reason=answer.reason,
            attempts=attempts,
            serial_number=answer.serial_number,
            subject=subject,
            this_update=answer.this_update,
            next_update=answer.next_update,
            revocation_time=answer.revocation_time,
            revocation_reason=answer.revocation_reason,
            responder=answer.responder,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping (times ISO 8601 UTC, the serial as ``0x`` hex)."""
        out: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name in ("attempts", "chain"):
                out[field.name] = [item.to_dict() for item in value]
            else:
                out[field.name] = json_value(field.name, value)
        return out
