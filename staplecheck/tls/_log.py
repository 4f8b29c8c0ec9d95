"""The ``staplecheck`` logger and its rules: no flood under load.

Every verdict is logged at DEBUG. A soft-fail acceptance of a missing or stale staple
is logged at WARNING once per host and status per ``interval`` (then at DEBUG only).
Rejections are logged at WARNING every time: each one is a failed connection.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from .._policy import Policy
from ..validation._result import StapleResult, StapleStatus

__all__ = ["VerdictLog", "logger"]

logger = logging.getLogger("staplecheck")
logger.addHandler(logging.NullHandler())  # a library logs only where the application says

_NOTEWORTHY = frozenset({StapleStatus.MISSING, StapleStatus.STALE})


class VerdictLog:
    """Logs verdicts, remembering (bounded) when each host's acceptance was last told."""

    def __init__(
        self,
        interval: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
        max_hosts: int = 1024,
    ) -> None:
        self.interval = interval
        self._clock = clock
        self._max_hosts = max_hosts
        self._last: OrderedDict[tuple[str, StapleStatus], float] = OrderedDict()
        self._lock = threading.Lock()

    def record(
        self, host: str | None, policy: Policy, result: StapleResult, accepted: bool
    ) -> None:
        where = host or "(no host name)"
        logger.debug(
            "%s: staple %s, %s under %s: %s",
            where,
            result.status.value,
            "accepted" if accepted else "rejected",
            policy.mode.value,
            result.reason,
        )
        if not accepted:
            logger.warning(
                "%s: refused by policy, staple %s: %s", where, result.status.value, result.reason
            )
        elif result.status in _NOTEWORTHY and self._first_in_interval(where, result.status):
            logger.warning(
                "%s: accepted without a good staple (%s, policy %s): %s",
                where,
                result.status.value,
                policy.mode.value,
                result.reason,
            )

    def pending(self, host: str | None, policy: Policy, result: StapleResult) -> None:
        """A staple the fallback will answer for (the verdict is logged after it)."""
        logger.debug(
            "%s: staple %s under %s, asking the fallback (%s): %s",
            host or "(no host name)",
            result.status.value,
            policy.mode.value,
            ", ".join(policy.sources),
            result.reason,
        )

    def _first_in_interval(self, host: str, status: StapleStatus) -> bool:
        key = (host, status)
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval:
                return False
            self._last[key] = now
            self._last.move_to_end(key)
            while len(self._last) > self._max_hosts:
                self._last.popitem(last=False)
            return True
