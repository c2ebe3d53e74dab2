"""What other threads ask of a training loop: :class:`RunControl`.

The requests (pause, resume, n more steps, stop, live hyperparameter changes, and commands such as a rewind, a
resampling or a twin: ``queue_action``) are recorded behind one
lock and acted on by the loop between two steps; the loop waits on the same lock while paused, so a
request wakes it at once.
"""

from __future__ import annotations

import threading


class RunControl:
    """Pause / resume / step / stop requests and queued live changes, safe from any thread.

    ``lock`` is a re-entrant Condition: the trainer also holds it to make a few of its own reads and
    writes atomic with the requests (starting the thread, applying changes, its history).
    """

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.paused = False  # the loop waits once the requested steps are taken
        self.requested_steps = 0  # steps to take while paused (``step(n)``)
        self.stop_reason: str | None = None  # set once: training ends
        self._pending: dict[str, float] = {}
        self._actions: list[tuple[str, dict]] = []  # rewind, resample, twin commands, in the order asked

    def pause(self, cancel_steps: bool = True) -> None:
        """Stop taking steps (and forget any requested ones, unless ``cancel_steps`` is False)."""
        with self.lock:
            self.paused = True
            if cancel_steps:
                self.requested_steps = 0
            self.lock.notify_all()

    def resume(self) -> None:
        with self.lock:
            self.paused = False
            self.lock.notify_all()

    def request_steps(self, n: int) -> None:
        """Take ``n`` more steps, then pause."""
        with self.lock:
            self.paused = True
            self.requested_steps += n
            self.lock.notify_all()

    def take_step(self) -> None:
        """The loop is about to take a step: count it against the requested ones."""
        with self.lock:
            if self.requested_steps:
                self.requested_steps -= 1

    def stop(self, reason: str) -> None:
        """End training (final), for ``reason``."""
        with self.lock:
            self.stop_reason = reason
            self.lock.notify_all()

    def idle(self) -> bool:
        """Paused with no steps requested and not stopped: the loop has nothing to do."""
        with self.lock:
            return self.paused and self.requested_steps == 0 and self.stop_reason is None

    def wait_while_idle(self, poll: float = 0.5) -> str | None:
        """Block while :meth:`idle` and no live change is queued; returns the stop reason (None: go on)."""
        with self.lock:
            while self.idle() and not self._pending and not self._actions:
                self.lock.wait(poll)
            return self.stop_reason

    def queue_changes(self, changes: dict[str, float]) -> None:
        """Live hyperparameter changes for the loop to apply before its next step (later ones win)."""
        with self.lock:
            self._pending.update(changes)
            self.lock.notify_all()  # a paused loop applies them at once (a lowered budget ends the run)

    def queue_action(self, name: str, arguments: dict) -> None:
        """A command for the loop to carry out before its next step (at once while paused), after the changes."""
        with self.lock:
            self._actions.append((name, dict(arguments)))
            self.lock.notify_all()

    def take_actions(self) -> list[tuple[str, dict]]:
        """The queued commands (emptied), oldest first."""
        with self.lock:
            actions, self._actions = self._actions, []
            return actions

    def take_changes(self) -> dict[str, float]:
        """The queued changes (emptied)."""
        with self.lock:
            changes, self._pending = self._pending, {}
            return changes


__all__ = ["RunControl"]
