"""A one-slot, latest-wins mailbox between a producer that must never block (a training thread publishing
snapshots) and one consumer that sends what is newest (a worker's sender thread, or a Ray actor's long poll).

A slow consumer never slows the producer: an item not yet taken is replaced by the next one, so the consumer
always gets the newest state and skips the ones in between (a run's state is a snapshot, not a log).
"""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class Mailbox(Generic[T]):
    """``put`` replaces the waiting item; ``take`` waits for one (or for ``close``) and empties the box."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._full = False
        self._closed = False

    def put(self, item: T) -> None:
        with self._cond:
            self._item, self._full = item, True
            self._cond.notify_all()

    def take(self, timeout: float | None = None) -> T | None:
        """The newest item put since the last take; None after ``timeout`` seconds or once closed and empty."""
        with self._cond:
            self._cond.wait_for(lambda: self._full or self._closed, timeout)
            if not self._full:
                return None
            item, self._item, self._full = self._item, None, False
            return item

    def close(self) -> None:
        """Wake the consumer; ``take`` returns what is left, then None at once."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed


__all__ = ["Mailbox"]
