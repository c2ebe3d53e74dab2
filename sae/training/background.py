"""A Trainer's background thread: :class:`TrainingThread`, the loop behind ``Trainer.start()``.

Between two steps the loop reads the trainer's :class:`sae.training.control.RunControl`:

- paused with no steps requested: give back the training slot, publish "paused" (unless already paused or
  diverged) and wait for a request;
- the queued live changes are applied first (also while paused: a budget lowered below the current step
  ends the run at once);
- finished (the step budget reached, or L-BFGS converged): publish "finished" and end;
- stopped: publish "stopped" and end;
- otherwise: wait in line for a training slot (publishing "queued" with the place in the line), count the
  step against the requested ones, apply the live changes queued meanwhile, publish "running" if it was not, take one
  step, and publish "running" every ``snapshot_interval`` seconds.

Once the loop decides to end it sets ``ending`` under the control lock; from then on the trainer applies live
changes itself, and a budget raised after the end starts a new thread on Resume or Step (``Trainer.resume``).

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

JOIN_SECONDS = 10.0  # how long a control call waits for an ending training thread to publish its last state
SMALL_STEP_FLOPS = 2_000_000_000  # below this a step in a training thread runs faster on one thread (see Trainer)


class TrainingThread(threading.Thread):
    """The daemon thread training ``trainer`` until it finishes or is stopped (see the module docstring).

    It sets its torch thread count first (see the module docstring), drives the trainer through its step and
    publication methods (``apply_pending``, ``train_step``, ``publish``, ...; the Trainer's loop protocol) and holds
    ``trainer.slots``
    in the trainer's name.
    """

    def __init__(self, trainer: Trainer) -> None:
        super().__init__(name="sae-trainer", daemon=True)
        self.trainer = trainer
        self.ending = False  # set under the control lock once the loop has decided to end (finished or stopped)

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
        trainer, control = self.trainer, self.trainer.control
        trainer.restart_clock()
        last = time.perf_counter()
        while True:
            with control.lock:  # queued changes apply here too, so a budget lowered while paused ends the run
                changed = trainer.apply_pending()
                stop, wait = control.stop_reason, control.idle()
                done = stop is None and trainer.is_done()
                self.ending = stop is not None or done  # from here on the trainer applies changes itself
            if done:
                trainer.publish(RunStatus.FINISHED, trainer.done_reason())
                return
            if wait:  # publish (and so call the observers) outside the lock: a slow one must not block the UI
                if trainer.slots is not None:
                    trainer.slots.release(trainer)
                if trainer.status not in (RunStatus.PAUSED, RunStatus.DIVERGED):
                    trainer.publish(RunStatus.PAUSED, "paused")
                elif changed:  # again after an edit, to show its effect (a diverged run stays diverged)
                    status = trainer.status
                    trainer.publish(status, "paused" if status == RunStatus.PAUSED else trainer.latest().reason)
                control.wait_while_idle()
                trainer.restart_clock()
                continue
            if stop is not None:
                trainer.publish(RunStatus.STOPPED, stop)
                return
            if not self._hold_slot():
                continue
            with control.lock:
                if not trainer.twin_behind():  # the twin's catch-up steps do not count against requested ones
                    control.take_step()
                trainer.apply_pending()
            if trainer.status != RunStatus.RUNNING:
                trainer.publish(RunStatus.RUNNING, "")
            try:
                ok = trainer.train_step(trainer.wants_values(trainer.step_count + 1 >= trainer.total_steps, last))
            except Exception as exc:  # keep the thread's death visible to the UI
                with control.lock:
                    self.ending = True
                trainer.publish(RunStatus.STOPPED, f"training failed: {type(exc).__name__}: {exc}")
                return
            if not ok:  # diverged: wait for the user (who may lower the rate and resume)
                control.pause(cancel_steps=False)
                continue
            now = time.perf_counter()
            if now - last >= trainer.snapshot_interval and not trainer.is_done():
                last = now
                trainer.publish(RunStatus.RUNNING, "")

    def _hold_slot(self) -> bool:
        """Wait in line for a training slot (status "queued"). False if paused or stopped meanwhile.

        Called before every step. Only time spent waiting restarts the rate clock: restarting it on every step
        (as the slot was already held) kept the rate meter's mark one step old, so its window never filled and
        the first figure was published for the whole run.
        """
        trainer, control, slots = self.trainer, self.trainer.control, self.trainer.slots
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
                trainer.publish(RunStatus.QUEUED, reason)
        trainer.restart_clock()  # queued time is not training time
        return True


def settle_after_end(trainer: Trainer, thread: TrainingThread, republish: bool = False) -> None:
    """Apply the queued changes to a trainer whose thread ended; a finished run whose budget now lies ahead
    becomes paused (and a paused one whose budget was lowered behind it finished again). ``republish``: publish
    even if the status stays (a command such as a rewind changed the state)."""
    thread.join(JOIN_SECONDS)  # it publishes its last state first
    with trainer.control.lock:
        changed = trainer.apply_pending()
        status = trainer._status
        if thread.is_alive() or trainer._thread is not thread or trainer.control.stop_reason is not None \
                or status not in (RunStatus.FINISHED, RunStatus.PAUSED):
            return
        new = RunStatus.FINISHED if trainer.is_done() else RunStatus.PAUSED
        if new == status and not (republish and changed):
            return
        trainer._status = new  # claimed under the lock: a concurrent call publishes nothing
    reason = trainer.done_reason() if new == RunStatus.FINISHED else "paused" if republish else \
        f"the budget was raised to {trainer.budget_text()}: press Resume to continue"
    trainer.publish(new, reason)


def revive(trainer: Trainer) -> None:
    """Start a new training thread if the last one ended but the (raised) budget lies ahead and nobody
    stopped the run: this is how a finished run continues (``Trainer.resume`` or ``Trainer.step``)."""
    with trainer.control.lock:
        thread = trainer._thread
        if thread is None or not thread.ending or trainer.control.stop_reason is not None:
            return
    thread.join(JOIN_SECONDS)
    with trainer.control.lock:
        if trainer._thread is not thread or thread.is_alive() or trainer.control.stop_reason is not None:
            return
        trainer.apply_pending()
        if trainer.is_done():
            return
        trainer._thread = TrainingThread(trainer)
        trainer._thread.start()


__all__ = ["JOIN_SECONDS", "SMALL_STEP_FLOPS", "TrainingThread", "revive", "settle_after_end"]
