"""The training rate a Trainer publishes: :class:`ThroughputMeter`, samples per second of training time."""

from __future__ import annotations

import time
from collections import deque
from typing import Callable

RATE_WINDOW = 1.0  # s of training over which samples_per_s is measured (one slow step must not show as the rate)


class ThroughputMeter:
    """samples/s over a trailing window: (steps since the base mark) x (samples per step) / (training seconds since
    the base mark).

    Every :meth:`measure` leaves a mark (wall clock, steps, training seconds); the base mark is the newest one at
    least ``window`` wall-clock seconds old, so the figure covers the last ``window`` to ``window`` + one
    publication interval of training and moves with every publication (within the first window after a
    :meth:`restart`, it covers everything since the restart). One slow step right after a publication is
    diluted by a window of normal ones.

    Training seconds exclude paused and queued time: the caller counts them and calls :meth:`restart` when
    training resumes after a wait, and only then (restarting before every step would keep the window one
    step long; a server's trainers did so while holding a training slot and published their first figure for the
    whole run).
    """

    def __init__(self, window: float = RATE_WINDOW, clock: Callable[[], float] = time.perf_counter) -> None:
        self.window = window
        self.clock = clock  # wall-clock seconds
        self._marks: deque[tuple[float, int, float]] = deque([(clock(), 0, 0.0)])  # (clock, step, training s)
        self.last: float | None = None  # the figure last returned by measure()

    def restart(self, step: int, elapsed: float) -> None:
        """Measure from here: ``step`` steps taken, ``elapsed`` seconds of training so far."""
        self._marks = deque([(self.clock(), step, elapsed)])

    def measure(self, step: int, elapsed: float, samples_per_step: int) -> float:
        """The rate with ``step`` steps taken after ``elapsed`` seconds of training: over the trailing window (see
        the class docstring); the last figure when no training time passed since the base mark, 0.0 before any."""
        now = self.clock()
        marks = self._marks
        while len(marks) > 1 and now - marks[1][0] >= self.window:
            marks.popleft()  # the base: the newest mark at least a window old (or the oldest one)
        _, step0, elapsed0 = marks[0]
        trained = elapsed - elapsed0
        if trained > 0 and step > step0:
            rate = (step - step0) * samples_per_step / trained
        else:
            rate = self.last or 0.0
        marks.append((now, step, elapsed))
        self.last = rate
        return rate


__all__ = ["RATE_WINDOW", "ThroughputMeter"]
