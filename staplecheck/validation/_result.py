"""What a staple check found: a status, why, and the staple's own facts."""

from __future__ import annotations

import dataclasses
import datetime
import enum
from typing import Any

__all__ = ["StapleResult", "StapleStatus"]


class StapleStatus(str, enum.Enum):
    """The verdict on one stapled OCSP response."""

    GOOD = "good"
    """Properly signed, current, and says the certificate is not revoked."""
    REVOKED = "revoked"
    """Properly signed and says the certificate is revoked."""
    UNKNOWN = "unknown"
    """Properly signed, current, and the responder does not know the certificate."""
    STALE = "stale"
    """Properly signed but past its nextUpdate or older than the maximum age."""
    INVALID = "invalid"
    """Not trustworthy evidence: malformed, wrong certificate, bad signature, ..."""
    MISSING = "missing"
    """The server sent no staple."""

    def __str__(self) -> str:
        return self.value


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class StapleResult:
    """The verdict on one staple, with the facts it rests on.

    Times are timezone-aware UTC. Fields the staple did not provide (or that could not
    be read from an invalid one) are ``None``.
    """

    status: StapleStatus
    """The verdict."""
    reason: str
    """Why, in words; for every status, naming the rule that failed when one did."""
    this_update: datetime.datetime | None = None
    """The entry's thisUpdate."""
    next_update: datetime.datetime | None = None
    """The entry's nextUpdate, when the responder gave one."""
    produced_at: datetime.datetime | None = None
    """When the responder signed the response."""
    revocation_time: datetime.datetime | None = None
    """When the certificate was revoked (``revoked`` only)."""
    revocation_reason: str | None = None
    """The CRLReason name, such as ``keyCompromise``, when the responder gave one."""
    responder: str | None = None
    """Who signed the response: the issuer itself or a delegated responder, by name."""
    serial_number: int | None = None
    """Serial number of the certificate the staple was checked for."""
    must_staple: bool = False
    """Whether the certificate carries the RFC 7633 TLS Feature ``status_request``."""

    @property
    def is_good(self) -> bool:
        """True only for :attr:`StapleStatus.GOOD`."""
        return self.status is StapleStatus.GOOD

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping: times as ISO 8601 UTC strings, the status as text, the
        serial number as a ``0x``-prefixed lowercase hex string."""
        return {
            field.name: json_value(field.name, getattr(self, field.name))
            for field in dataclasses.fields(self)
        }


def json_value(name: str, value: Any) -> Any:
    """A result field as JSON has it: a status as its text, a time as ISO 8601 UTC, the
    serial number as ``0x`` hex (serials run to 160 bits; a JSON number loses precision
    beyond 2**53 in JavaScript and many other readers, a string does not)."""
    if isinstance(value, StapleStatus):
        return value.value
    if isinstance(value, datetime.datetime):
        return _iso(value)
    if name == "serial_number" and value is not None:
        return f"{value:#x}"
    return value


def _iso(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.timezone.utc).isoformat().replace("+00:00", "Z")
