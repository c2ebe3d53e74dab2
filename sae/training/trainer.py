"""The Trainer: runs the optimisation in the caller's thread or a background thread, and
publishes what it does through a thread-safe latest-snapshot handle.

Designed to be driven by a UI: ``start`` / ``pause`` / ``resume`` / ``step`` / ``stop`` from any
thread; ``set_hyperparameters(rho=..., beta=..., weight_decay=..., lr=...)`` applies between two
steps without a restart, and so does ``set_budget(epochs=..., max_iter=...)``: the run's length (lowered
below the current step it finishes the run; raised after the run finished, Resume or Step continues it).
The training thread owns the model; readers get copies (``latest()``, ``history()``), so nothing they do
can race with a step.

The Trainer wires together parts with one job each (modules of ``sae.training``):

- ``inputs``: the data as float32, model / objective / data checks, steps per epoch and per run;
- ``minibatch``: Adam or SGD steps on minibatches (``batches``: a fresh permutation each epoch);
- ``full_batch``: L-BFGS on a float64 twin of the model, one iteration at a time;
- ``control``: the pause / resume / step / stop / live-change requests of other threads;
- ``background``: the training thread's loop that obeys them (training slots, paused, queued, stopped);
- ``snapshot``: what is published (``throughput``: its rate; ``divergence``: the way back from a NaN loss);
- ``observers``: who is given each snapshot; ``history``: the bounded per-step record.

Example (a notebook):
    >>> from sae import Trainer, TrainConfig, ModelConfig, load_dataset
    >>> data = load_dataset("digits")
    >>> trainer = Trainer(data.X, ModelConfig(64, 25), TrainConfig(epochs=5))
    >>> snapshot = trainer.run()            # or trainer.start() and poll trainer.latest()
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Callable, Iterable

import numpy as np
import torch

from sae.core.config import ConfigError, ModelConfig, TrainConfig
from sae.core.fused import FusedObjective
from sae.core.fused import supports as fused_supports
from sae.core.lbfgs import LBFGS
from sae.core.loss import LossFunction, sparse_autoencoder_loss
from sae.core.model import SparseAutoencoder
from sae.training.background import JOIN_SECONDS, SMALL_STEP_FLOPS, TrainingThread, revive, settle_after_end
from sae.training.control import RunControl
from sae.training.divergence import LastSound, LossWatch, divergence_reason
from sae.training.full_batch import LBFGS_MEMORY_BYTES, FullBatchLBFGS
from sae.training.history import History
from sae.training.inputs import (as_training_tensor, check_compatible, history_columns, new_model, steps_per_epoch,
                                 total_steps)
from sae.training.minibatch import MinibatchOptimizer
from sae.training.observers import Observable, Observer, Observers
from sae.training.slots import TrainingSlots
from sae.training.snapshot import HISTORY_COLUMNS, Snapshot, run_warnings, take_snapshot, terms_to_floats
from sae.training.status import RunStatus
from sae.training.throughput import RATE_WINDOW, ThroughputMeter

logger = logging.getLogger(__name__)

RATED_STATUSES = frozenset({RunStatus.RUNNING, RunStatus.FINISHED})  # publish a samples/s; the others publish 0


class Trainer(Observable):
    """Trains a SparseAutoencoder on X (m, n) under a TrainConfig.

    Args:
        X: (m, n) data, numpy or torch; converted to a float32 tensor once.
        model_config: the network's shape; ignored if ``model`` is given.
        config: objective and optimiser settings.
        model: continue training this model instead of a fresh one.
        on_snapshot: an observer (see ``observers``); kept for older code, it is also the ``on_snapshot`` attribute.
        observers: called in order with every published Snapshot (from the training thread, outside the lock;
            see ``sae.training.observers``); ``add_observer`` / ``remove_observer`` change them later.
        snapshot_interval: seconds between publications while running.
        history_capacity: rows kept per history column (bounded memory).
        loss: the objective, with the signature and named terms of ``sae.core.loss.sparse_autoencoder_loss``
            (the default); another function (e.g. a deliberately wrong variant from ``sae.experiments.mistakes``)
            uses autograd.
        slots: a TrainingSlots shared by the trainers of one server: steps are taken only while holding one.
        start_step, history: continue a saved run: its step count and its history columns.
        optimizer_state: with them, the saved :meth:`optimizer_state` (Adam's moments or SGD's momentum, the random
            stream and the epoch's batch order), so the run goes on exactly as if never interrupted; without it a
            fresh optimiser starts. L-BFGS ignores it and restarts its curvature memory.
            ``sae.runs.files.continue_run`` does all this from a saved run directory.
        fused: use the hand-derived forward/backward pass (sae.core.fused) and fused optimiser kernels
            where they cover the model; False forces autograd (same results within rounding).
        threads: torch threads of the background training thread (``start()``; ``run()`` keeps the caller's).
            None: one thread when a step is under ``SMALL_STEP_FLOPS``, torch's setting otherwise (why: see
            ``sae.training.background``).

    The loop protocol (``control``, ``apply_pending``, ``train_step``, ``wants_values``, ``is_done``, ``publish``,
    ``restart_clock``, ``done_reason``, ``budget_text``) is what ``run()`` and the training thread
    (``sae.training.background``) drive a step and a publication with; callers use the methods above it.
    """

    def __init__(self, X, model_config: ModelConfig | None = None, config: TrainConfig | None = None, *,
                 model: SparseAutoencoder | None = None, on_snapshot: Observer | None = None,
                 observers: Iterable[Observer] = (),
                 snapshot_interval: float = 0.1, history_capacity: int = 2000, fused: bool = True,
                 slots: TrainingSlots | None = None, loss: LossFunction = sparse_autoencoder_loss,
                 start_step: int = 0, history: dict[str, np.ndarray] | None = None,
                 threads: int | None = None, optimizer_state: dict[str, torch.Tensor] | None = None) -> None:
        self.config = config or TrainConfig()
        self.X = as_training_tensor(X)
        m, n = self.X.shape
        self.model = model = model if model is not None else new_model(model_config, self.config.seed, self.X)
        check_compatible(model.config, self.config, n)
        self._observers = Observers()
        self._on_snapshot: Observer | None = None
        self.on_snapshot = on_snapshot  # the first observer
        for observer in observers:
            self._observers.add(observer)
        self.snapshot_interval = snapshot_interval
        self.batch_size = min(self.config.batch_size, m)
        self.steps_per_epoch = steps_per_epoch(self.config, m)
        self.total_steps = total_steps(self.config, m)
        self._generator = torch.Generator()
        if self.config.seed is not None:
            self._generator.manual_seed(self.config.seed)
        self.fused = fused
        if threads is not None and threads < 1:
            raise ConfigError(f"threads must be at least 1, got {threads}.")
        self.threads = threads
        self.slots = slots
        self.loss = loss
        self._fused = FusedObjective(model, self.config.penalty) if fused and loss is sparse_autoencoder_loss \
            and fused_supports(model, self.config.penalty, self.config.rho_hat) else None
        self._minibatch = MinibatchOptimizer(model, self.X, self.config, self.batch_size, self.steps_per_epoch,
                                             self._generator, loss=loss, fused=self._fused)
        if optimizer_state is not None and self.config.optimizer != "lbfgs":
            self._minibatch.load_state_tensors(optimizer_state, self.config.optimizer)
        self.full_batch = FullBatchLBFGS(model, self.X, self.config, loss=loss, fused=self._fused is not None) \
            if self.config.optimizer == "lbfgs" else None  # the L-BFGS driver (None for adam and sgd)
        self._history = History(HISTORY_COLUMNS, history_capacity)
        self.control = RunControl()  # requests from other threads; its lock also guards the history
        self._thread: TrainingThread | None = None
        self._status = RunStatus.IDLE
        self.step_count = int(start_step)
        self._elapsed = 0.0
        if history:
            self._history.load(history_columns(history))
            times = history.get("time")
            self._elapsed = float(times[-1]) if times is not None and len(times) else 0.0
        self._last_terms: dict[str, torch.Tensor] | None = None
        self._latest: Snapshot | None = None
        self._sound = LastSound()  # restored if the loss becomes NaN or infinite, or grows a million-fold
        self._watch = LossWatch()
        self.weights_step = self.step_count  # the step the model's weights are from (earlier after a divergence)
        self._rate = ThroughputMeter()
        self.publish(RunStatus.IDLE, "")

    # ---------------------------------------------------------------- control (any thread)
    @property
    def status(self) -> RunStatus:
        return self._status

    @property
    def started(self) -> bool:
        """Whether start() was called (the background thread exists or existed)."""
        return self._thread is not None

    @property
    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Train in a background daemon thread until done, paused or stopped."""
        with self.control.lock:
            if self._thread is not None:
                raise RuntimeError("this trainer was already started; use resume()")
            self._thread = TrainingThread(self)
            self._thread.start()

    def pause(self) -> None:
        self.control.pause()

    def resume(self) -> None:
        """Go on training; a run that finished goes on if its budget was raised since (a new thread)."""
        self.control.resume()
        revive(self)

    def step(self, n: int = 1) -> None:
        """Take n steps and then pause (background), or take them now if no thread runs."""
        if self._thread is None:
            self.run(steps=n)
            return
        self.control.request_steps(n)
        revive(self)

    def stop(self, reason: str = "stopped by the user") -> None:
        """End training; final. A trainer whose thread is not running publishes its stopped state at once."""
        with self.control.lock:
            self.control.stop(reason)
            thread = self._thread
        if thread is not None and thread.ending:
            thread.join(JOIN_SECONDS)  # it publishes its last state first
        if (thread is None or not thread.is_alive()) and self._status not in (RunStatus.FINISHED, RunStatus.STOPPED):
            self.publish(RunStatus.STOPPED, reason)

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def set_hyperparameters(self, **changes: float) -> None:
        """Change rho, beta, weight_decay or lr (``TrainConfig.LIVE_FIELDS``), or the budget, epochs or
        max_iter (``TrainConfig.BUDGET_FIELDS``, see :meth:`set_budget`); applied before the next step (at once
        while paused). Thread-safe; raises ConfigError (and changes nothing) for a bad value or another field."""
        bad = set(changes) - set(TrainConfig.LIVE_FIELDS) - set(TrainConfig.BUDGET_FIELDS)
        if bad:
            raise ConfigError(f"{', '.join(sorted(bad))} cannot change during training; restart instead.")
        replace(self.config, **changes)  # validates
        with self.control.lock:
            self.control.queue_changes(changes)
            thread = self._thread
            if thread is None:
                self.apply_pending()
        if thread is not None and thread.ending:  # the loop has ended or is ending: apply the changes here
            settle_after_end(self, thread)

    def set_budget(self, epochs: float | None = None, max_iter: int | None = None) -> None:
        """Change the run's length while it trains: ``epochs`` (adam, sgd) or ``max_iter`` (lbfgs).

        A budget below the current step finishes the run (at once, also while paused); a budget raised after
        the run finished makes it "paused" again, and ``resume()`` or ``step()`` continue it with the same
        model, optimiser state and history. A stopped run stays stopped. Thread-safe; raises ConfigError.
        """
        changes = {k: v for k, v in (("epochs", epochs), ("max_iter", max_iter)) if v is not None}
        self.set_hyperparameters(**changes)

    def latest(self) -> Snapshot:
        """The most recently published snapshot (never None)."""
        return self._latest  # type: ignore[return-value]  # a single reference read is atomic

    def history(self) -> dict[str, np.ndarray]:
        """A copy of the bounded training history: column -> (rows,) array."""
        with self.control.lock:
            return self._history.to_dict()

    def history_since(self, generation: int, start: int) -> tuple[int, int, dict[str, np.ndarray]]:
        """The history rows a reader holding ``start`` rows of ``generation`` lacks (sae.training.history.History.since)."""
        with self.control.lock:
            return self._history.since(generation, start)

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """The Adam or SGD optimiser of the minibatch steps (its state_dict and param_groups are torch's own)."""
        return self._minibatch.optimizer

    def optimizer_state(self) -> dict[str, torch.Tensor]:
        """The state a continued run needs to take the same next steps (``optimizer_state=`` of a new Trainer;
        saved with a run by ``sae.runs.files.save_run``): named tensor copies. Call it while not training."""
        return self._minibatch.state_tensors()

    @property
    def _lbfgs(self) -> LBFGS | None:
        """The L-BFGS state (x, f, g, evaluations) once the first iteration started, else None."""
        return None if self.full_batch is None else self.full_batch.lbfgs

    # ---------------------------------------------------------------- running
    def run(self, steps: int | None = None, progress: Callable[[Snapshot], None] | None = None) -> Snapshot:
        """Train in the calling thread for ``steps`` steps (default: to the end). Returns the last snapshot."""
        target = None if steps is None else self.step_count + steps  # the budget may change meanwhile
        with self.control.lock:
            self.apply_pending()
        if self.is_done() and self.control.stop_reason is None:
            return self._nothing_left()
        self._status = RunStatus.RUNNING
        self.restart_clock()
        last = time.perf_counter()
        while (target is None or self.step_count < target) and not self.is_done() \
                and self.control.stop_reason is None:
            with self.control.lock:
                self.apply_pending()
            end = self.total_steps if target is None else min(target, self.total_steps)
            if self.is_done():
                break
            if not self.train_step(self.wants_values(self.step_count + 1 >= end, last)):
                return self._latest  # type: ignore[return-value]
            now = time.perf_counter()
            if now - last >= self.snapshot_interval:
                last = now
                self.publish(RunStatus.RUNNING, "")
                if progress is not None:
                    progress(self._latest)  # type: ignore[arg-type]
        done = self.is_done()
        stop = self.control.stop_reason
        reason = stop or (self.done_reason() if done else "paused")
        status = RunStatus.STOPPED if stop else RunStatus.FINISHED if done else RunStatus.PAUSED
        self.publish(status, reason)
        if progress is not None:
            progress(self._latest)  # type: ignore[arg-type]
        return self._latest  # type: ignore[return-value]

    def _nothing_left(self) -> Snapshot:
        """run() with the budget already spent: the losses of the weights held (full batch), and a reason saying so."""
        if self._last_terms is None:
            cfg = self.config
            with torch.no_grad():
                self._last_terms = self.loss(self.model, self.X, cfg.rho, cfg.beta, cfg.weight_decay, cfg.penalty)
        self.publish(RunStatus.FINISHED, f"nothing left to do: the run is at step {self.step_count} of its "
                                         f"{self.budget_text()}; raise the budget (set_budget) to go on")
        return self._latest  # type: ignore[return-value]

    def step_flops(self) -> int:
        """Floating-point operations of one step: 5 matmuls of 2 b n s (b samples per step, n inputs, s units)."""
        s, n = self.model.encoder.weight.shape
        return 10 * self._samples_per_step() * n * s

    def wants_values(self, last_step: bool, last_publication: float) -> bool:
        """Whether the next step computes every loss term: its row is kept, it is the last or a snapshot is due."""
        return (self._history.wants(self.step_count) or last_step
                or time.perf_counter() - last_publication >= self.snapshot_interval)

    def restart_clock(self) -> None:
        """Measure the rate from here (time paused or queued is not training time)."""
        self._rate.restart(self.step_count, self._elapsed)

    def is_done(self) -> bool:
        return self.step_count >= self.total_steps or bool(self.full_batch is not None and self.full_batch.converged)

    def done_reason(self) -> str:
        """"finished: ...", followed by the run-health warnings (sae.evaluation.health) if any."""
        if self.full_batch is not None:
            why = f" (converged: {self.full_batch.converged})" if self.full_batch.converged else ""
            reason = f"finished: {self.step_count} L-BFGS iterations{why}"
        else:
            reason = f"finished: {self.step_count / self.steps_per_epoch:g} epochs ({self.step_count} steps)"
        last = self._last_terms["rho_hat"].detach().numpy().copy() if self._last_terms is not None else np.empty(0)
        return " · ".join([reason, *(f"warning: {w}" for w in self.health(last))])

    def health(self, rho_hat: np.ndarray | None = None) -> list[str]:
        """The run-health warnings (``sae.evaluation.health.run_health``) of the history and ``rho_hat`` (s,),
        by default the latest snapshot's (any thread may ask); none before the first step."""
        return run_warnings(self.history(), self.latest(), self.config, rho_hat)

    def budget_text(self) -> str:
        if self.full_batch is not None:
            return f"{self.total_steps:,} L-BFGS iterations"
        return f"{self.config.epochs:g} epochs ({self.total_steps:,} steps)"

    # ---------------------------------------------------------------- one step (training thread only)
    def train_step(self, values: bool = True) -> bool:
        """One optimiser step. Returns False (and restores the last good weights) on a non-finite loss.

        ``values=False`` lets the fused pass skip the values of the sparsity and weight-decay terms
        (not needed for the gradient); callers ask for them on the steps they record or publish.
        """
        t0 = time.perf_counter()
        cfg = self.config
        if self.full_batch is not None:
            terms = self.full_batch.iterate()
            finite = bool(torch.isfinite(terms["total"]))
        else:
            terms, finite = self._minibatch.step(self.step_count, cfg, values)
        if not finite or ("total" in terms and self._watch.exploded(float(terms["total"].detach()))):
            return self._diverged(terms)
        step = self.step_count
        self.step_count += 1
        self.weights_step = self.step_count
        self._elapsed += time.perf_counter() - t0
        if "total" not in terms:  # a step without values: nothing to record
            return True
        self._last_terms = terms
        if self._history.wants(step):
            row = terms_to_floats(terms)
            with self.control.lock:
                self._history.append(step, [step, step / self.steps_per_epoch, self._elapsed, *row,
                                            cfg.rho, cfg.beta, cfg.weight_decay, cfg.lr])
        return True

    def _diverged(self, terms: dict[str, torch.Tensor]) -> bool:
        """Go back to the last sound weights, with fresh optimiser state, and publish why (status diverged) with the
        losses of the weights kept (on all the data), not those of the step that diverged."""
        kept = self._sound.restore(self.model)
        self.weights_step = kept.step
        cfg = self.config
        with torch.no_grad():
            self._last_terms = self.loss(self.model, self.X, cfg.rho, cfg.beta, cfg.weight_decay, cfg.penalty)
        self._minibatch.reset(self.config)  # moments are poisoned
        if self.full_batch is not None:
            self.full_batch.restart()
        reason = divergence_reason(terms, self.step_count, self.config, kept.step)
        logger.debug("trainer %x: %s", id(self), reason)
        self.publish(RunStatus.DIVERGED, reason)
        return False

    # ---------------------------------------------------------------- helpers
    def apply_pending(self) -> None:
        """Apply the queued live changes (the caller holds the control lock)."""
        changes = self.control.take_changes()
        if not changes:
            return
        self.config = replace(self.config, **changes)
        if set(changes) & set(TrainConfig.BUDGET_FIELDS):
            self.total_steps = total_steps(self.config, len(self.X))
        if "lr" in changes and self.config.optimizer != "lbfgs":
            self._minibatch.set_lr(self.config.lr)
        if self.full_batch is not None and set(changes) - {"lr", *TrainConfig.BUDGET_FIELDS}:
            self.full_batch.reset(self.config)  # the objective changed: re-evaluate here, curvature pairs are stale

    def publish(self, status: RunStatus, reason: str) -> None:
        """Make a Snapshot of the current state the latest one, then hand it to the observers (outside the lock)."""
        rate = self._rate.measure(self.step_count, self._elapsed, self._samples_per_step()) \
            if status in RATED_STATUSES else 0.0  # not training now: no rate (not the last running figure)
        version = 0 if self._latest is None else self._latest.version + 1
        snap = take_snapshot(self.model, self._last_terms, self.config, step=self.step_count, version=version,
                             epoch=self.step_count / self.steps_per_epoch, samples_per_s=rate, elapsed=self._elapsed,
                             status=status, reason=reason)
        self._status = status
        self._latest = snap
        self._sound.offer(snap, self._watch.best)
        self._observers.notify(snap)

    def _samples_per_step(self) -> int:
        return len(self.X) if self.config.optimizer == "lbfgs" else self.batch_size


__all__ = ["Trainer", "Snapshot", "HISTORY_COLUMNS", "SMALL_STEP_FLOPS", "RATE_WINDOW", "LBFGS_MEMORY_BYTES",
           "LossFunction", "Observer", "check_compatible", "steps_per_epoch"]  # some re-exported for older imports
