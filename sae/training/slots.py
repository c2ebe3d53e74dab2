"""A cap on how many trainers run at once in one process (one per core keeps a server responsive).

Trainers that share a ``TrainingSlots`` hold a slot only while they take steps: a paused, finished
or stopped trainer gives its slot back, and the longest-waiting trainer gets it (first come, first
served). Waiting trainers publish the status "queued" with their place in the line.
"""

from __future__ import annotations

import threading
from collections import deque


class TrainingSlots:
    """At most ``capacity`` holders at a time; waiters served in arrival order."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self._cond = threading.Condition()
        self._holders: set[object] = set()
        self._queue: deque[object] = deque()

    def acquire(self, owner: object, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds for a slot (joining the line if not in it). True once held."""
        with self._cond:
            if owner in self._holders:
                return True
            if owner not in self._queue:
                self._queue.append(owner)
            ok = self._cond.wait_for(lambda: len(self._holders) < self.capacity and self._queue[0] is owner, timeout)
            if ok:
                self._queue.popleft()
                self._holders.add(owner)
                self._cond.notify_all()
            return ok

    def release(self, owner: object) -> None:
        """Give the slot back, or leave the line; harmless if neither."""
        with self._cond:
            self._holders.discard(owner)
            if owner in self._queue:  # a holder is never in the line: usually there is nothing to leave
                self._queue.remove(owner)
            self._cond.notify_all()

    def position(self, owner: object) -> int:
        """0 if holding a slot, k >= 1 for the k-th place in the line, -1 if neither."""
        with self._cond:
            if owner in self._holders:
                return 0
            return self._queue.index(owner) + 1 if owner in self._queue else -1

    @property
    def running(self) -> int:
        with self._cond:
            return len(self._holders)

    @property
    def waiting(self) -> int:
        with self._cond:
            return len(self._queue)


def queued_reason(capacity: int, ahead: int) -> str:
    """The one sentence of a run waiting for a slot: ``queued: all 4 training slots of this server are busy;
    1 run ahead of this one`` (the Trainer's status reason, the experiments' progress message)."""
    ahead = max(0, int(ahead))
    return (f"queued: all {capacity} training slots of this server are busy; "
            f"{ahead} run{'s' if ahead != 1 else ''} ahead of this one")


__all__ = ["TrainingSlots", "queued_reason"]
