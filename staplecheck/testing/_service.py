"""What every test server here shares: start, stop, and a ``with`` block for both."""

from __future__ import annotations

from types import TracebackType
from typing import TypeVar

__all__ = ["Service"]

_S = TypeVar("_S", bound="Service")


class Service:
    """A server a test starts and must stop: ``with Server(...) as s`` does both."""

    def start(self: _S) -> _S:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self: _S) -> _S:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
