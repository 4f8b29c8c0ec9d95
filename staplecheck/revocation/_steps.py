"""What the revocation engine asks of the code that runs it: one concept, the step.

The engine's logic (:mod:`._engine`) is written once, as generators that yield a
:data:`Step` wherever it would wait: a responder query, a CRL download, a store or
file access, a large CRL to judge, or another check's query of the same certificate.
The code that drives the generator does the step and sends the answer back (or throws
the :class:`~._fetch.FetchError` it raised). :meth:`RevocationChecker.check` does each
step in the calling thread; :meth:`RevocationChecker.check_async` awaits it (AnyIO:
the async fetchers, worker threads for blocking stores and large CRLs), so sync and
async callers share one engine, one cache and one single-flight.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Generator
from typing import TypeVar, cast

from ..validation._result import StapleResult
from ._result import RevocationResult

__all__ = ["AskResponders", "Blocking", "FetchCRL", "Flight", "Step", "Steps", "Wait", "run"]

T = TypeVar("T")


class Flight:
    """One check of a certificate in progress: the others wait for it (``done``, or a
    waker called when it finishes) and read its ``result``."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: RevocationResult | None = None
        self._lock = threading.Lock()
        self._wakers: list[Callable[[], None]] = []

    def finish(self) -> None:
        """Set ``done`` and call every waker (from whichever thread finishes)."""
        with self._lock:
            self.done.set()
            wakers, self._wakers = self._wakers, []
        for wake in wakers:
            wake()

    def on_finish(self, wake: Callable[[], None]) -> bool:
        """Call ``wake`` when the flight finishes; ``False`` when it already has."""
        with self._lock:
            if self.done.is_set():
                return False
            self._wakers.append(wake)
            return True

    def forget(self, wake: Callable[[], None]) -> None:
        with self._lock:
            if wake in self._wakers:
                self._wakers.remove(wake)


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class AskResponders:
    """Ask OCSP responders, first definite answer wins (a :class:`~._fetch.FirstAnswer`)."""

    urls: tuple[str, ...]
    request_der: bytes
    judge: Callable[[bytes], StapleResult]
    deadline: float
    method: str
    timeout: float
    allow_https: bool


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class FetchCRL:
    """Download a CRL (its bytes), or raise :class:`~._fetch.FetchError`."""

    url: str
    deadline: float
    timeout: float
    allow_https: bool


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class Wait:
    """Wait up to ``seconds`` for another check's ``flight`` to finish."""

    flight: Flight
    seconds: float


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class Blocking:
    """Call ``call`` (a store, a file, a large CRL to judge): in a worker thread when
    driven from an event loop, unless ``cheap`` (in memory, microseconds)."""

    call: Callable[[], object]
    cheap: bool = False


Step = AskResponders | FetchCRL | Wait | Blocking
Steps = Generator[Step, object, T]
"""A piece of the engine's logic: yields steps, returns its result."""


def ask(step: Step, kind: type[T]) -> Steps[T]:
    """Yield ``step`` and return the answer the driver sent back, as a ``kind``."""
    reply = yield step
    if not isinstance(reply, kind):
        raise TypeError(f"{type(step).__name__} was answered with a {type(reply).__name__}")
    return reply


def blocking(call: Callable[[], T], *, cheap: bool = False) -> Steps[T]:
    """Yield a :class:`Blocking` step and return what ``call`` returned."""
    reply = yield Blocking(call, cheap)
    return cast(T, reply)


def run(steps: Steps[T], do: Callable[[Step], object]) -> T:
    """Drive ``steps`` to the end, doing each step with ``do`` in this thread. An
    exception a step raises is thrown into the generator (where a ``FetchError`` is
    expected); the generator is closed however this ends, so its ``finally`` clauses
    (a flight finished) always run."""
    reply: object = None
    error: Exception | None = None
    try:
        while True:
            try:
                step = steps.send(reply) if error is None else steps.throw(error)
            except StopIteration as stop:
                return cast(T, stop.value)
            reply, error = None, None
            try:
                reply = do(step)
            except Exception as failure:  # noqa: BLE001 - handed to the engine's logic
                error = failure
    finally:
        steps.close()
