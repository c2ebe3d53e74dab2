"""Progress and stop for the library's long calls (``run_anomaly_experiment``, ``run_self_taught``). No Streamlit.

A progress callback is any callable ``progress(fraction, message)``:

- ``fraction`` in [0, 1]: how much of the whole call is done; ``message``: one short line for a person;
- it is called when a phase starts, after every Trainer snapshot (``Trainer.snapshot_interval``, from the
  training thread, which is the calling thread), and before each later phase;
- it may raise to stop the call (``sae.experiments.denoising.Cancelled`` for instance): raised during training, the
  exception leaves ``Trainer.run`` between two optimiser steps; it propagates to the caller either way.

``sae.experiments.denoising.Progress`` is such a callback, thread-safe, with a stop switch for another thread.
Without a callback (``None``) the calls train exactly as before: ``trainer.run()``.
"""

from __future__ import annotations

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


__all__ = ["ProgressCallback", "notify", "run_trainer"]
