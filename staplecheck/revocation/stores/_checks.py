"""Argument checks and the time encoding shared by the store backends."""

from __future__ import annotations

import datetime

from ._interface import Miss, MissReason
from ._keys import check_key

__all__ = [
    "MAX_REASON_CHARS",
    "check_der",
    "check_mark",
    "check_put",
    "check_time",
    "clean_reason",
    "from_micros",
    "to_micros",
]

MAX_REASON_CHARS = 200

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
_MICROSECOND = datetime.timedelta(microseconds=1)
# datetime's own range, so anything read back from a shared store converts or is refused.
_MAX_MICROS = (datetime.datetime.max.replace(tzinfo=datetime.timezone.utc) - _EPOCH) // _MICROSECOND


def check_time(name: str, value: datetime.datetime) -> datetime.datetime:
    """Aware datetimes only: a naive one would be compared in whatever zone it meant."""
    if not isinstance(value, datetime.datetime) or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")
    return value


def check_der(der: bytes, cap: int) -> Miss | None:
    """A :class:`Miss` when ``der`` is over ``cap`` bytes; ``TypeError`` unless bytes."""
    if not isinstance(der, bytes):
        raise TypeError("der must be bytes")
    if len(der) > cap:
        return Miss(MissReason.OVERSIZED, f"{len(der)} bytes, the cap is {cap}")
    return None


def check_put(
    key: str,
    der: bytes,
    now: datetime.datetime,
    expires_at: datetime.datetime,
    cap: int,
) -> Miss | None:
    """Every backend's ``put`` checks: the key, both times, the size; a :class:`Miss`
    for a value over ``cap`` or one already expired, ``None`` when it may be stored."""
    check_key(key)
    check_time("now", now)
    check_time("expires_at", expires_at)
    refused = check_der(der, cap)
    if refused is not None:
        return refused
    if expires_at <= now:
        return Miss(MissReason.EXPIRED, "put already expired")
    return None


def check_mark(key: str, now: datetime.datetime, until: datetime.datetime) -> Miss | None:
    """Every backend's ``mark_failure`` checks: the key and both times; a :class:`Miss`
    for a mark already expired, ``None`` when it may be stored."""
    check_key(key)
    check_time("now", now)
    check_time("until", until)
    if until <= now:
        return Miss(MissReason.EXPIRED, "marked already expired")
    return None


def clean_reason(reason: str) -> str:
    """Printable and bounded: a failure reason read from a shared store reaches the log."""
    text = "".join(c if c.isprintable() else "?" for c in str(reason)[:MAX_REASON_CHARS])
    return text


def to_micros(value: datetime.datetime) -> int:
    """Microseconds since the Unix epoch: exact, and an integer every backend keeps."""
    return (value - _EPOCH) // _MICROSECOND


def from_micros(value: object) -> datetime.datetime | None:
    """The datetime for a stored integer; ``None`` for anything a store should not hold."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_MICROS:
        return None
    return _EPOCH + value * _MICROSECOND
