"""A Trainer's background thread: :class:`TrainingThread`, the loop behind ``Trainer.start()``.

Between two steps the loop reads the trainer's :class:`sae.training.control.RunControl`:

- paused with no steps requested: give back the training slot, publish "paused" (unless already paused or
  diverged) and wait for a request;
- stopped: publish "stopped" and end;
- otherwise: wait in line for a training slot (publishing "queued" with the place in the line), count the
  step against the requested ones, apply the queued live changes, publish "running" if it was not, take one
  step, and publish "running" every ``snapshot_interval`` seconds and "finished" at the end.

A step whose loss is not finite pauses the loop (the trainer has published "diverged"); a step that raises
ends it with status "stopped" and the error as the reason. Snapshots are published outside the control lock,
so a slow observer never blocks a control call. Paused and queued time is not training time (the trainer's
rate clock restarts after each).

Torch threads: the thread first sets its own count, ``Trainer(threads=...)`` or else one thread when a step is
under SMALL_STEP_FLOPS and torch's setting otherwise. From a Python thread every multi-threaded kernel call
pays ~40 µs of OpenMP start-up: on two threads a 64->25 step runs 4-5x slower than on one, a 784->196 step
(batch 256) 1.4x slower (bench/throughput.py). Set inside the training thread, the caller's threads keep
their own count; threads created later inherit it (torch keeps one process-wide default).
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import torch

from sae.training.slots import queued_reason
from sae.training.status import RunStatus

if TYPE_CHECKING:
    from sae.training.trainer import Trainer

SMALL_STEP_FLOPS = 2_000_000_000  # below this a step in a training thread runs faster on one thread (see Trainer)


class TrainingThread(threading.Thread):
    """The daemon thread training ``trainer`` until it finishes or is stopped (see the module docstring).

    It sets its torch thread count first (see the module docstring), drives the trainer through its step and
    publication methods (``_apply_pending``, ``_train_step``, ``_publish``, ...) and holds ``trainer.slots``
    in the trainer's name.
    """

    def __init__(self, trainer: Trainer) -> None:
        super().__init__(name="sae-trainer", daemon=True)
        self.trainer = trainer

    def run(self) -> None:
        trainer = self.trainer
        threads = trainer.threads or (1 if trainer.step_flops() < SMALL_STEP_FLOPS else torch.get_num_threads())
        if threads != torch.get_num_threads():
            torch.set_num_threads(threads)  # this thread's OpenMP/MKL count (and torch's default for new threads)
        try:
            self._steps_until_done()
        finally:
            if trainer.slots is not None:
                trainer.slots.release(trainer)

    def _steps_until_done(self) -> None:
        trainer, control = self.trainer, self.trainer._control
        trainer._restart_clock()
        last = time.perf_counter()
        while True:
            with control.lock:
                stop, wait = control.stop_reason, control.idle()
            if wait:  # publish (and so call the observers) outside the lock: a slow one must not block the UI
                if trainer.slots is not None:
                    trainer.slots.release(trainer)
                if trainer.status not in (RunStatus.PAUSED, RunStatus.DIVERGED):
                    trainer._publish(RunStatus.PAUSED, "paused")
                stop = control.wait_while_idle()
                trainer._restart_clock()
            if stop is not None:
                trainer._publish(RunStatus.STOPPED, stop)
                return
            if not self._hold_slot():
                continue
            with control.lock:
                control.take_step()
                trainer._apply_pending()
            if trainer.status != RunStatus.RUNNING:
                trainer._publish(RunStatus.RUNNING, "")
            try:
                ok = trainer._train_step(trainer._wants_values(trainer.step_count + 1 >= trainer.total_steps, last))
            except Exception as exc:  # keep the thread's death visible to the UI
                trainer._publish(RunStatus.STOPPED, f"training failed: {type(exc).__name__}: {exc}")
                return
            if not ok:  # diverged: wait for the user (who may lower the rate and resume)
                control.pause(cancel_steps=False)
                continue
            now = time.perf_counter()
            if trainer._is_done():
                trainer._publish(RunStatus.FINISHED, trainer._done_reason())
                return
            if now - last >= trainer.snapshot_interval:
                last = now
                trainer._publish(RunStatus.RUNNING, "")

    def _hold_slot(self) -> bool:
        """Wait in line for a training slot (status "queued"). False if paused or stopped meanwhile.

        Called before every step. Only time spent waiting restarts the rate clock: restarting it on every step
        (as the slot was already held) kept the rate meter's mark one step old, so its window never filled and
        the first figure was published for the whole run.
        """
        trainer, control, slots = self.trainer, self.trainer._control, self.trainer.slots
        if slots is None or slots.acquire(trainer, timeout=0):  # held already, or free: no waiting
            return True
        while not slots.acquire(trainer, timeout=0.25):
            with control.lock:
                if control.stop_reason is not None or control.idle():
                    slots.release(trainer)
                    return False
            ahead = slots.position(trainer) - 1
            reason = queued_reason(slots.capacity, ahead)
            if trainer.status != RunStatus.QUEUED or trainer.latest().reason != reason:
                trainer._publish(RunStatus.QUEUED, reason)
        trainer._restart_clock()  # queued time is not training time
        return True


__all__ = ["SMALL_STEP_FLOPS", "TrainingThread"]
