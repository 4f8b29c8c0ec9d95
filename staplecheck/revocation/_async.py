"""Drives the revocation engine from an event loop (asyncio or trio, through AnyIO).

The engine's logic is shared with the blocking path (see :mod:`._steps`); here each
step is awaited: responders and distribution points through the async fetchers
(:mod:`._afetch`, no thread), another check's query of the same certificate through a
waker the finishing thread calls (no thread, no polling), and what would block (a
store other than memory, static CRL files, a large CRL to judge, a fetcher of the
caller's own, given up at the step's deadline) in an AnyIO worker thread. Cancelled,
it closes the engine's generator, so a query it was leading is finished (its
followers ask for themselves).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable
from typing import TypeVar, cast

import anyio
import anyio.to_thread

from ._afetch import afetch_crl, afetch_first
from ._fetch import FetchError, first_answer
from ._steps import AskResponders, Blocking, FetchCRL, Flight, Step, Steps, Wait

__all__ = ["drive"]

T = TypeVar("T")


async def drive(
    steps: Steps[T],
    do: Callable[[Step], object],
    *,
    native_ocsp: bool,
    native_crl: bool,
    clock: Callable[[], float],
) -> T:
    """Run ``steps`` to the end, awaiting each step; ``do`` does a step in a worker
    thread where no async way exists (``native_ocsp``/``native_crl``: the engine uses
    the default fetchers, whose async twins are used instead). The engine's
    ``clock`` (its monotonic time) is what deadlines are measured with."""
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
                reply = await _do(step, do, native_ocsp, native_crl, clock)
            except Exception as failure:  # noqa: BLE001 - handed to the engine's logic
                error = failure
    finally:
        steps.close()


async def _do(
    step: Step,
    do: Callable[[Step], object],
    native_ocsp: bool,
    native_crl: bool,
    clock: Callable[[], float],
) -> object:
    if isinstance(step, AskResponders) and native_ocsp:
        return await afetch_first(
            step.urls,
            step.request_der,
            step.judge,
            deadline=step.deadline,
            method=step.method,
            timeout=step.timeout,
            allow_https=step.allow_https,
            clock=clock,
        )
    if isinstance(step, FetchCRL) and native_crl:
        return await afetch_crl(
            step.url,
            deadline=step.deadline,
            timeout=step.timeout,
            allow_https=step.allow_https,
            clock=clock,
        )
    if isinstance(step, Wait):
        return await _wait(step.flight, step.seconds)
    if isinstance(step, Blocking) and step.cheap:
        return step.call()
    in_thread = functools.partial(do, step)
    if isinstance(step, Blocking):
        # A store, CRL files, a large CRL to judge: a worker thread, abandoned if this
        # task is cancelled (stores and files bound their own waits).
        return await anyio.to_thread.run_sync(in_thread, abandon_on_cancel=True)
    # A fetcher of the caller's own: a worker thread, given up at the step's deadline
    # (a fetcher that overruns it must not hold the check, and the connection, longer
    # than the policy's budget): no answer in time, as the default fetchers report.
    start = clock()
    left = max(step.deadline - start, 0.0)
    with anyio.move_on_after(left):
        return await anyio.to_thread.run_sync(in_thread, abandon_on_cancel=True)
    if isinstance(step, FetchCRL):
        raise FetchError(f"no answer within {left:.3f} s", step.url, clock() - start)
    return first_answer(step.urls, len(step.urls), {}, None, (clock() - start) * 1e3, start)


async def _wait(flight: Flight, seconds: float) -> bool:
    """Wait up to ``seconds`` for ``flight`` to finish, which may happen in any thread."""
    finished = anyio.Event()
    wake = _threadsafe(finished.set)
    if not flight.on_finish(wake):
        return True
    try:
        with anyio.move_on_after(seconds):
            await finished.wait()
    finally:
        flight.forget(wake)
    return flight.done.is_set()


def _threadsafe(call: Callable[[], None]) -> Callable[[], None]:
    """``call``, made safe to call from any thread: it runs on this event loop."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is not None:

        def wake_asyncio() -> None:
            with contextlib.suppress(RuntimeError):  # the loop has closed since
                loop.call_soon_threadsafe(call)

        return wake_asyncio
    import trio  # AnyIO's other backend

    token = trio.lowlevel.current_trio_token()

    def wake_trio() -> None:
        with contextlib.suppress(trio.RunFinishedError):
            token.run_sync_soon(call)

    return wake_trio
