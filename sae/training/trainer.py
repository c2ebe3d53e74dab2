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
from sae.core.model import SparseAutoencoder, unit_activity
from sae.core.resample import resample_units
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
from sae.training.snapshot import HISTORY_COLUMNS, Snapshot, dead_line, run_warnings, take_snapshot, terms_to_floats
from sae.training.status import RunStatus
from sae.training.throughput import RATE_WINDOW, ThroughputMeter
from sae.training.timeline import CHECKPOINT_BYTES, Checkpoint, Edit, Timeline, TimelineView, parse_schedule, view_of

logger = logging.getLogger(__name__)

EVAL_ROWS = 4096  # rows (evenly spaced) on which dead units and the losses after a rewind or resampling are measured
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
                 threads: int | None = None, optimizer_state: dict[str, torch.Tensor] | None = None,
                 schedule: Iterable[Edit | dict] = (), edits: Iterable[Edit] = (),
                 checkpoint_bytes: int = CHECKPOINT_BYTES,
                 timeline_start: tuple[TrainConfig, int] | None = None) -> None:
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
        self._dead_since = torch.full((model.config.n_hidden,), -1, dtype=torch.long)  # see Snapshot.dead_since
        m_eval = min(m, EVAL_ROWS)
        self._eval_rows = torch.linspace(0, m - 1, m_eval).round().long() if m > EVAL_ROWS else None
        start = timeline_start or (self.config, self.step_count)  # the settings and step the run began with
        self.timeline = Timeline(checkpoint_bytes, edits, *start)  # this branch's edits, checkpoints to rewind to
        self._schedule: list[Edit] = parse_schedule(schedule)  # edits still to apply at their steps (a replay)
        self._twin: Trainer | None = None  # the seed-locked twin (add_twin), stepped by this trainer's thread
        self._twin_setup: tuple[dict[str, float], int] | None = None  # its (settings changed, step it forked at)
        self.action_error = ""  # why the last command (rewind, resample, twin) could not be carried out
        self._checkpoint()
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
        self._note(Edit(self.step_count, "pause"))
        self.control.pause()

    def resume(self) -> None:
        """Go on training; a run that finished goes on if its budget was raised since (a new thread)."""
        self._note(Edit(self.step_count, "resume"))
        self.control.resume()
        revive(self)

    def _note(self, edit: Edit) -> None:
        """List an edit that changes nothing the run computes (pause, resume, step); a pause (or resume) right after
        another is not listed again."""
        with self.control.lock:
            edits = self.timeline.edits
            if edit.kind in ("pause", "resume") and edits and edits[-1].kind == edit.kind:
                return
            self.timeline.record(edit)

    def step(self, n: int = 1) -> None:
        """Take n steps and then pause (background), or take them now if no thread runs."""
        self._note(Edit(self.step_count, "step", {"n": int(n)}))
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

    # ---------------------------------------------------------------- timeline, twin, resampling (any thread)
    def rewind(self, step: int) -> None:
        """Go back to the mark at ``step`` (a checkpoint: ``timeline_view().checkpoints``): the weights, the
        optimiser's state, the random stream, the batch order and the settings as they were before the edits made
        there, the history cut at that step; the run continues from there as a new branch (the edits after it are
        forgotten, a "rewind" edit is recorded) and the twin, if any, is removed. Before the next step (at once
        while paused); ConfigError if no checkpoint is kept at ``step``."""
        with self.control.lock:
            self.timeline.get(int(step))  # raises if there is none
        self._command("rewind", step=int(step))

    def resample(self, units: list[int] | None = None) -> None:
        """Re-initialise ``units`` (default: the units dead now, rho_hat_j below the dead line on the evaluation
        rows) towards the inputs reconstructed worst (``sae.core.resample``), resetting their optimiser moments;
        recorded as a "resample" edit with the units, so a replay does the same. Before the next step."""
        if units is not None:
            units = [int(u) for u in units]
            if len(set(units)) != len(units) or any(not 0 <= u < self.model.config.n_hidden for u in units):
                raise ConfigError(f"units to resample must be distinct numbers in [0, {self.model.config.n_hidden}).")
        self._command("resample", units=units)

    def add_twin(self, from_step: int | None = 0, **changes: float) -> None:
        """Train a twin beside this run, in lock step: a second model from the same weights, optimiser state,
        random stream and batch order as this run had at the mark ``from_step`` (0: the start; None: now), with
        the settings ``changes`` (live fields: rho, beta, weight_decay, lr) fixed and every other edit of this run
        (its schedule since then, and changes made later) applied at the same steps. A twin forked in the past
        catches up first (this run waits). With no change the twin equals the run bit for bit."""
        bad = set(changes) - set(TrainConfig.LIVE_FIELDS)
        if bad:
            raise ConfigError(f"a twin may change {', '.join(TrainConfig.LIVE_FIELDS)}, not {', '.join(sorted(bad))}.")
        replace(self.config, **changes)  # validates
        if from_step is not None:
            with self.control.lock:
                self.timeline.get(int(from_step))
        self._command("add_twin", from_step=None if from_step is None else int(from_step), overrides=dict(changes))

    def remove_twin(self) -> None:
        self._command("remove_twin")

    def promote_twin(self) -> None:
        """Make the twin the run (its weights, optimiser state, settings, history and edits); the twin ends."""
        self._command("promote_twin")

    def _command(self, name: str, **arguments) -> None:
        """Queue a command for the training thread (or carry it out here when no thread runs)."""
        with self.control.lock:
            self.action_error = ""
            self.control.queue_action(name, arguments)
            thread = self._thread
            if thread is None:
                self.apply_pending()
        if thread is None:
            self.publish(self._status, self.latest().reason)
        elif thread.ending:
            settle_after_end(self, thread, republish=True)

    def twin_latest(self) -> Snapshot | None:
        """The twin's latest snapshot, or None without a twin."""
        twin = self._twin
        return None if twin is None else twin.latest()

    def twin_history(self) -> dict[str, np.ndarray] | None:
        twin = self._twin
        return None if twin is None else twin.history()

    def twin_behind(self) -> bool:
        """Whether the twin is still catching up with this run (its next train_step is the twin's)."""
        twin = self._twin
        return twin is not None and twin.status != RunStatus.DIVERGED and twin.step_count < self.step_count

    def twin_setup(self) -> tuple[dict[str, float], int] | None:
        """(the settings the twin changes, the step it forked at), or None without a twin."""
        return self._twin_setup

    def timeline_view(self) -> TimelineView:
        """The edits of this run's branch and the steps a rewind can go to (a copy)."""
        with self.control.lock:
            return view_of(self.timeline)

    def dead_units(self) -> list[int]:
        """The units whose rho_hat_j on the evaluation rows (all of X, or EVAL_ROWS evenly spaced) is below the
        dead line (``sae.training.snapshot.dead_line``)."""
        with torch.no_grad():
            a = self.model.encode(self._evaluation_rows())
            rho_hat = unit_activity(a, self.model.config.activation).mean(dim=0)
        return torch.nonzero(rho_hat < dead_line(self.config)).flatten().tolist()

    def _evaluation_rows(self) -> torch.Tensor:
        return self.X if self._eval_rows is None else self.X[self._eval_rows]

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
        twin = self._twin
        if self.twin_behind():
            self._twin_step(twin, values)  # the twin catches up first: this run waits
            return True
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
        if twin is not None and twin.status != RunStatus.DIVERGED and twin.step_count == step:
            self._twin_step(twin, values)  # lock step: the same batch, the twin's settings
        if "total" not in terms:  # a step without values: nothing to record
            return True
        self._last_terms = terms
        if self._history.wants(step):
            below = terms["rho_hat"].detach() < dead_line(cfg)
            row = terms_to_floats(terms, below)
            self._dead_since = torch.where(below, torch.where(self._dead_since < 0, step, self._dead_since), -1)
            with self.control.lock:
                self._history.append(step, [step, step / self.steps_per_epoch, self._elapsed, *row,
                                            cfg.rho, cfg.beta, cfg.weight_decay, cfg.lr])
        return True

    def _twin_step(self, twin: "Trainer", values: bool) -> None:
        """One step of the twin (training thread): its scheduled edits first; a divergence leaves it diverged."""
        with twin.control.lock:
            twin.apply_pending()
        twin.train_step(values or twin._history.wants(twin.step_count))

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
    def apply_pending(self) -> bool:
        """Apply what is due before the next step (the caller holds the control lock): the schedule's edits at this
        step (a replay), the queued live changes, then the queued commands (rewind, resample, twin). Each edit is
        recorded in the timeline, after a checkpoint of the state before it. Returns whether anything was applied."""
        applied = False
        while self._schedule and self._schedule[0].step <= self.step_count:
            edit = self._schedule.pop(0)
            applied = True
            try:
                self._apply_edit(edit)
            except ConfigError as exc:  # a schedule from a link or a file may hold a value invalid here
                self.action_error = f"the scheduled edit at step {edit.step:,} ({edit.label()}) was skipped: {exc}"
                logger.warning(self.action_error)
        changes = self.control.take_changes()
        if changes:
            self._apply_edit(Edit(self.step_count, "set", changes))
        actions = self.control.take_actions()
        for name, arguments in actions:
            try:
                getattr(self, f"_do_{name}")(**arguments)
            except ConfigError as exc:
                self.action_error = str(exc)
        return applied or bool(changes) or bool(actions)

    def _checkpoint(self) -> None:
        """Keep the state before the edits of this step in the timeline (once per step)."""
        if self.timeline.has_checkpoint(self.step_count):
            return
        optimizer = {} if self.full_batch is not None else self._minibatch.state_tensors()
        weights = {k: v.detach().clone() for k, v in self.model.named_parameters()}
        self.timeline.keep(Checkpoint(self.step_count, weights, optimizer, self.config, self._dead_since.clone(),
                                      len(self._history)))

    def _apply_edit(self, edit: Edit) -> None:
        """Carry out a "set", "resample" or "rewind" edit now (recorded at this step) and pass it on to the twin."""
        self._checkpoint()
        edit = replace(edit, step=self.step_count)
        if edit.kind == "set":
            changes = dict(edit.changes)
            edit = replace(edit, before={k: getattr(self.config, k) for k in changes})
            self._set(changes)
        elif edit.kind == "resample":
            self._resample(list(edit.changes.get("units", ())))
        elif edit.kind == "rewind" and self.full_batch is not None:
            self.full_batch.restart()  # as the rewound run did: its curvature memory started afresh there
        self.timeline.record(edit)
        twin, setup = self._twin, self._twin_setup
        if twin is not None and setup is not None and edit.kind in ("set", "resample"):
            changes = {k: v for k, v in edit.changes.items() if k not in setup[0]} if edit.kind == "set" \
                else dict(edit.changes)
            if changes:
                twin.schedule_edit(replace(edit, changes=changes, before={}))

    def schedule_edit(self, edit: Edit) -> None:
        """Apply ``edit`` when this run reaches its step (at once if it is there or past it)."""
        with self.control.lock:
            at = sum(1 for e in self._schedule if e.step <= edit.step)
            self._schedule.insert(at, edit)

    def _resample(self, units: list[int]) -> None:
        if not units:
            return
        resample_units(self.model, self.X, units, self.config.rho)
        if self.full_batch is not None:
            self.full_batch.restart()
        else:
            self._minibatch.reset_units(units)
        self._dead_since[torch.tensor(units)] = -1
        self._last_terms = self._evaluate()

    def _evaluate(self) -> dict[str, torch.Tensor]:
        """The loss terms of the current weights on the evaluation rows (after a rewind or a resampling)."""
        cfg = self.config
        with torch.no_grad():
            return self.loss(self.model, self._evaluation_rows(), cfg.rho, cfg.beta, cfg.weight_decay, cfg.penalty)

    def _load_weights(self, weights: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for name, p in self.model.named_parameters():
                p.copy_(weights[name])

    def _take_state(self, config: TrainConfig, optimizer: dict[str, torch.Tensor]) -> None:
        """Settings and optimiser state replaced wholesale (a rewind, a promoted twin)."""
        self.config = config
        self.total_steps = total_steps(config, len(self.X))
        if self.full_batch is not None:
            self.full_batch.config = config
            self.full_batch.restart()
        else:
            self._minibatch.reset(config)
            self._minibatch.load_state_tensors(optimizer, config.optimizer)

    def _do_rewind(self, step: int) -> None:
        checkpoint = self.timeline.get(step)
        rewound_from = self.step_count
        self._load_weights(checkpoint.weights)
        self._take_state(checkpoint.config, checkpoint.optimizer)
        self.step_count = self.weights_step = step
        self._history.truncate(step)
        self._dead_since = checkpoint.dead_since.clone()
        self._sound, self._watch = LastSound(), LossWatch()
        self._twin = self._twin_setup = None
        self._schedule = []
        self.timeline.truncate(step, rewound_from)
        self._last_terms = self._evaluate() if step > 0 else None
        if self._status == RunStatus.DIVERGED:  # back before the divergence: an ordinary paused run again
            self._status = RunStatus.PAUSED

    def _do_resample(self, units: list[int] | None) -> None:
        units = self.dead_units() if units is None else units
        if not units:
            raise ConfigError("no unit is dead now: nothing to resample.")
        self._apply_edit(Edit(self.step_count, "resample", {"units": [int(u) for u in units]}))

    def _do_add_twin(self, from_step: int | None, overrides: dict[str, float]) -> None:
        self._checkpoint()
        from_step = self.step_count if from_step is None else from_step
        checkpoint = self.timeline.get(from_step)
        model = SparseAutoencoder.from_config(self.model.config)
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(checkpoint.weights[name])
        history = self._history.to_dict()
        kept = history["step"] < from_step
        history = {c: v[kept] for c, v in history.items()} if kept.any() else None
        follow = []  # this run's edits since the fork, less the settings the twin fixes
        for edit in self.timeline.edits:
            if edit.step >= from_step and edit.kind in ("set", "resample"):
                changes = {k: v for k, v in edit.changes.items() if edit.kind != "set" or k not in overrides}
                if changes:
                    follow.append(replace(edit, changes=changes, before={}))
        twin = Trainer(self.X, config=replace(checkpoint.config, **overrides), model=model,
                       optimizer_state=checkpoint.optimizer if self.full_batch is None else None,
                       start_step=from_step, history=history, snapshot_interval=self.snapshot_interval,
                       history_capacity=self._history.capacity, fused=self.fused, loss=self.loss, schedule=follow,
                       edits=[e for e in self.timeline.edits if e.step < from_step],
                       checkpoint_bytes=self.timeline.budget // 2,
                       timeline_start=(self.timeline.start, self.timeline.start_step))
        twin._dead_since = checkpoint.dead_since.clone()
        twin.timeline.record(Edit(from_step, "set", dict(overrides),
                                  {k: getattr(checkpoint.config, k) for k in overrides}))
        self._twin, self._twin_setup = twin, (dict(overrides), from_step)
        self.timeline.record(Edit(self.step_count, "twin", dict(overrides),
                                  {k: getattr(self.config, k) for k in overrides}))

    def _do_remove_twin(self) -> None:
        self._twin = self._twin_setup = None

    def _do_promote_twin(self) -> None:
        twin, setup = self._twin, self._twin_setup
        if twin is None or setup is None:
            raise ConfigError("there is no twin to promote.")
        if twin.step_count != self.step_count:
            raise ConfigError(f"the twin is still catching up (step {twin.step_count:,} of {self.step_count:,}); "
                              "promote it once it is level with the run.")
        self._load_weights(dict(twin.model.named_parameters()))
        self._take_state(twin.config, twin.optimizer_state() if self.full_batch is None else {})
        with twin.control.lock:
            generation = self._history.generation
            self._history = twin._history
            self._history.generation = max(generation, self._history.generation) + 1  # readers take it afresh
        self._last_terms, self._dead_since = twin._last_terms, twin._dead_since.clone()
        self._sound, self._watch = twin._sound, twin._watch
        self.timeline = twin.timeline
        self.timeline.record(Edit(self.step_count, "promote", setup[0]))
        self._schedule = twin._schedule
        self._twin = self._twin_setup = None

    def _set(self, changes: dict[str, float]) -> None:
        """Apply live setting changes to this run's config and optimiser."""
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
        twin = self._twin
        if twin is not None and twin.status != RunStatus.DIVERGED:  # the twin first: observers may read it
            behind = self.step_count - twin.step_count
            twin.publish(status, f"the twin catches up: step {twin.step_count:,} of {self.step_count:,}" if behind
                         else reason)
        snap = take_snapshot(self.model, self._last_terms, self.config, step=self.step_count, version=version,
                             epoch=self.step_count / self.steps_per_epoch, samples_per_s=rate, elapsed=self._elapsed,
                             status=status, reason=reason, dead_since=self._dead_since.numpy())
        self._status = status
        self._latest = snap
        self._sound.offer(snap, self._watch.best)
        self._observers.notify(snap)

    def _samples_per_step(self) -> int:
        return len(self.X) if self.config.optimizer == "lbfgs" else self.batch_size


__all__ = ["Trainer", "Snapshot", "HISTORY_COLUMNS", "SMALL_STEP_FLOPS", "RATE_WINDOW", "LBFGS_MEMORY_BYTES",
           "LossFunction", "Observer", "check_compatible", "steps_per_epoch"]  # some re-exported for older imports
