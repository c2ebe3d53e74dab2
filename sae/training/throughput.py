"""The training rate a Trainer publishes: :class:`ThroughputMeter`, samples per second of training time."""

from __future__ import annotations

import time
from typing import Callable

RATE_WINDOW = 1.0  # s of training over which samples_per_s is measured (one slow step must not show as the rate)


class ThroughputMeter:
    """samples/s = (steps since the mark) x (samples per step) / (training seconds since the mark).

    Training seconds exclude paused and queued time (the caller counts them and calls :meth:`restart` when
    training resumes). While running, a new figure is taken only once ``window`` seconds of wall clock have
    passed since the mark, so one slow step right after a publication does not show as the rate; until then
    the last figure is repeated. The mark moves to the present each time a figure is taken.
    """

    def __init__(self, window: float = RATE_WINDOW, clock: Callable[[], float] = time.perf_counter) -> None:
        self.window = window
        self.clock = clock  # wall-clock seconds
        self._mark = (clock(), 0, 0.0)  # (clock, step, training seconds) when the figure was taken
        self.last: float | None = None  # the figure last returned by measure()

    def restart(self, step: int, elapsed: float) -> None:
        """Measure from here: ``step`` steps taken, ``elapsed`` seconds of training so far."""
        self._mark = (self.clock(), step, elapsed)

    def measure(self, step: int, elapsed: float, samples_per_step: int, running: bool) -> float:
        """The rate to publish with ``step`` steps taken after ``elapsed`` seconds of training; ``running``:
        training goes on (a figure younger than the window is then kept). 0.0 before any training time."""
        now = self.clock()
        clock, step0, elapsed0 = self._mark
        trained = elapsed - elapsed0
        rate = (step - step0) * samples_per_step / trained if trained > 0 else 0.0
        steady = self.last is not None and self.last > 0
        if steady and running and now - clock < self.window:
            rate = self.last  # too few steps yet for a steady figure: keep the last one
        elif step > step0:
            self._mark = (now, step, elapsed)
        elif self.last is not None:
            rate = self.last
        self.last = rate
        return rate


__all__ = ["RATE_WINDOW", "ThroughputMeter"]
