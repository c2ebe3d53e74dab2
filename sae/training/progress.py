"""Progress and stop for the library's long calls (``run_anomaly_experiment``, ``run_self_taught``). No Streamlit.

A progress callback is any callable ``progress(fraction, message)``:

- ``fraction`` in [0, 1]: how much of the whole call is done; ``message``: one short line for a person;
- it is called when a phase starts, after every Trainer snapshot (``Trainer.snapshot_interval``, from the
  training thread, which is the calling thread), and before each later phase;
- it may raise to stop the call (:class:`Cancelled` for instance): raised during training, the
  exception leaves ``Trainer.run`` between two optimiser steps; it propagates to the caller either way.

:class:`Progress` is such a callback, thread-safe, with a stop switch for another thread (the dashboard's
background tasks, ``sae.app.tasks``, hold one per experiment). Without a callback (``None``) the calls train
exactly as before: ``trainer.run()``.
"""

from __future__ import annotations

import threading
from typing import Callable

from sae.training.trainer import Snapshot, Trainer

ProgressCallback = Callable[[float, str], None]


def notify(progress: ProgressCallback | None, fraction: float, message: str) -> None:
    """``progress(fraction, message)``, if there is a callback."""
    if progress is not None:
        progress(fraction, message)


def run_trainer(trainer: Trainer, progress: ProgressCallback | None = None, start: float = 0.0, end: float = 1.0,
                label: str = "training") -> Snapshot:
    """``trainer.run()`` in the calling thread, its steps reported to ``progress`` as fractions in [start, end]:
    "<label>: starting", "<label>: step i of n" after each snapshot, "<label>: <final status>". Returns the
    last snapshot."""
    if progress is None:
        return trainer.run()
    total = max(1, trainer.total_steps)

    def hook(snap: Snapshot) -> None:
        progress(start + (end - start) * min(1.0, snap.step / total), f"{label}: step {snap.step:,} of {total:,}")

    progress(start, f"{label}: starting")
    snapshot = trainer.run(progress=hook)
    progress(end, f"{label}: {snapshot.status}")
    return snapshot


class Cancelled(Exception):
    """The call was stopped through its :class:`Progress`."""


class Progress:
    """Progress of one long call (fraction in [0, 1] and a message) and its stop switch. Thread-safe:
    the call's thread reports, any other thread reads ``state()`` or calls ``stop()``.

    Calling it, ``progress(fraction, message)``, reports and then raises :class:`Cancelled` if stopped: it is a
    progress callback for ``run_anomaly_experiment``, ``run_self_taught`` and :func:`run_trainer`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fraction, self._message = 0.0, ""
        self._stop = threading.Event()

    def report(self, fraction: float, message: str) -> None:
        """Keep the latest report (the fraction clipped to [0, 1])."""
        with self._lock:
            self._fraction, self._message = float(min(1.0, max(0.0, fraction))), message

    def state(self) -> tuple[float, str]:
        """(fraction, message) of the latest report."""
        with self._lock:
            return self._fraction, self._message

    def stop(self) -> None:
        """Ask the call to stop: the next report or :meth:`check` raises :class:`Cancelled`."""
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def check(self) -> None:
        """Raise :class:`Cancelled` if ``stop()`` was called."""
        if self._stop.is_set():
            raise Cancelled("stopped by the user")

    def __call__(self, fraction: float, message: str) -> None:
        """``report`` then ``check``: raised from a Trainer's progress hook, it leaves ``run()`` between two steps."""
        self.report(fraction, message)
        self.check()

    def train(self, trainer: Trainer, start: float, end: float, label: str) -> Snapshot:
        """``trainer.run()`` here, mapping its steps onto [start, end]; a stop ends it within one step."""
        self.check()
        return run_trainer(trainer, self, start, end, label)


def ensure_progress(progress: Progress | None) -> Progress:
    """``progress`` itself, or a fresh :class:`Progress` nobody stops (for library calls made without one)."""
    return progress if progress is not None else Progress()


__all__ = ["ProgressCallback", "Progress", "Cancelled", "ensure_progress", "notify", "run_trainer"]
