"""Time arithmetic shared by the revocation judges (staples, fetched OCSP, CRLs).

Every evidence of revocation carries thisUpdate and, usually, nextUpdate; the rules
that make it current are the same for all of them (DESIGN.md, rule 5): a clock skew
each way, a default lifetime without nextUpdate, and a maximum age. The arithmetic
saturates: a date in 9999 or a maximum age of "forever" must not overflow into an
exception.
"""

from __future__ import annotations

import datetime

__all__ = ["EARLIEST", "LATEST", "current_window", "earlier", "later"]

_UTC = datetime.timezone.utc
LATEST = datetime.datetime.max.replace(tzinfo=_UTC)
EARLIEST = datetime.datetime.min.replace(tzinfo=_UTC)


def later(moment: datetime.datetime, delta: datetime.timedelta) -> datetime.datetime:
    """``moment + delta``, saturating at the end of time (a response dated 9999, or a
    policy whose maximum age is "forever", must not overflow into an exception)."""
    try:
        return moment + delta
    except OverflowError:
        return LATEST


def earlier(moment: datetime.datetime, delta: datetime.timedelta) -> datetime.datetime:
    """``moment - delta``, saturating at the start of time."""
    try:
        return moment - delta
    except OverflowError:
        return EARLIEST


def current_window(
    this_update: datetime.datetime,
    next_update: datetime.datetime | None,
    skew: datetime.timedelta,
    default_lifetime: datetime.timedelta,
    max_age: datetime.timedelta,
) -> tuple[datetime.datetime, datetime.datetime]:
    """The times ``now`` may take for evidence to count as current: from thisUpdate −
    skew to the earliest of nextUpdate (or thisUpdate + default lifetime) and
    thisUpdate + maximum age, plus skew."""
    ends = next_update if next_update is not None else later(this_update, default_lifetime)
    return earlier(this_update, skew), later(min(ends, later(this_update, max_age)), skew)
