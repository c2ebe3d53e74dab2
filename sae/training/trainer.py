"""The Trainer: runs the optimisation in the caller's thread or a background thread, and
publishes what it does through a thread-safe latest-snapshot handle.

Designed to be driven by a UI: ``start`` / ``pause`` / ``resume`` / ``step`` / ``stop`` from any
thread; ``set_hyperparameters(rho=..., beta=..., weight_decay=..., lr=...)`` applies between two
steps without a restart. The training thread owns the model; readers get copies (``latest()``,
``history()``), so nothing they do can race with a step.

Example (a notebook):
    >>> from sae import Trainer, TrainConfig, ModelConfig, load_dataset
    >>> data = load_dataset("digits")
    >>> trainer = Trainer(data.X, ModelConfig(64, 25), TrainConfig(epochs=5))
    >>> snapshot = trainer.run()            # or trainer.start() and poll trainer.latest()
"""

from __future__ import annotations

import copy
import math
import threading
import time
import warnings
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import torch

from sae.core.config import ConfigError, ModelConfig, TrainConfig
from sae.training.history import History
from sae.training.status import RunStatus
from sae.core.optimizer_step import KernelStep
from sae.core.loss import LOSS_TERMS, sparse_autoencoder_loss
from sae.core.fused import FusedObjective
from sae.core.fused import supports as fused_supports
from sae.core.lbfgs import LBFGS
from sae.evaluation.noise import corrupt
from sae.training.slots import TrainingSlots
from sae.core.model import SparseAutoencoder, flat_parameters, load_flat_parameters

LossFunction = Callable[..., dict[str, torch.Tensor]]
HISTORY_COLUMNS = ("step", "epoch", "time", *LOSS_TERMS, "rho_hat_mean", "rho_hat_std",
                   "rho_hat_min", "rho_hat_max", "rho", "beta", "lambda", "lr")  # the last four: settings in effect

RATE_WINDOW = 1.0  # s of training over which samples_per_s is measured (one slow step must not show as the rate)
LBFGS_MEMORY_BYTES = 64 * 2**20  # cap on L-BFGS's curvature pairs (minFunc's 100 fit up to ~40k parameters)
SMALL_STEP_FLOPS = 2_000_000_000  # below this a step in a training thread runs faster on one thread (see Trainer)



@dataclass(frozen=True)
class Snapshot:
    """What the trainer last published. Every array is a copy owned by the reader."""

    step: int  # optimiser steps taken (minibatches, or L-BFGS iterations)
    epoch: float  # passes over the data
    losses: dict[str, float]  # total, reconstruction, sparsity, weight_decay at the last step
    rho_hat: np.ndarray  # (s,) mean activation of each hidden unit, as used by the last step's penalty
    weights: dict[str, np.ndarray]  # encoder.weight (s, n), encoder.bias (s,), decoder.weight (n, s), decoder.bias (n,)
    hyper: dict[str, float]  # rho, beta, weight_decay, lr in effect
    samples_per_s: float  # training throughput over the last RATE_WINDOW s or more (paused time excluded)
    elapsed: float  # seconds spent training (paused time excluded)
    status: RunStatus  # idle, queued, running, paused, diverged, finished, stopped
    reason: str = ""  # why training stopped or paused, for the status line
    version: int = 0  # increases with every publication
    created: float = field(default_factory=time.time)


class Trainer:
    """Trains a SparseAutoencoder on X (m, n) under a TrainConfig.

    Args:
        X: (m, n) data, numpy or torch; converted to a float32 tensor once.
        model_config: the network's shape; ignored if ``model`` is given.
        config: objective and optimiser settings.
        model: continue training this model instead of a fresh one.
        on_snapshot: called with every published Snapshot (from the training thread).
        snapshot_interval: seconds between publications while running.
        history_capacity: rows kept per history column (bounded memory).
        loss: the objective, with the signature and named terms of ``sae.core.loss.sparse_autoencoder_loss``
            (the default); another function (e.g. a deliberately wrong variant from ``sae.experiments.mistakes``) uses autograd.
        slots: a TrainingSlots shared by the trainers of one server: steps are taken only while holding one.
        start_step, history: continue a saved run: its step count and its history columns (a new
            optimiser starts, so Adam's moments are not restored).
        fused: use the hand-derived forward/backward pass (sae.core.fused) and fused optimiser kernels
            where they cover the model; False forces autograd (same results within rounding).
        threads: torch threads of the background training thread (``start()``; ``run()`` keeps the
            caller's). None: one thread when a step is under ``SMALL_STEP_FLOPS``, torch's setting
            otherwise. From a Python thread every multi-threaded kernel call pays ~40 µs of OpenMP
            start-up: on two threads a 64->25 step runs 4-5x slower than on one, a 784->196 step
            (batch 256) 1.4x slower (bench/throughput.py). Set inside the training thread: the
            caller's threads keep their own count; threads created later inherit it (torch keeps
            one process-wide default).
    """

    def __init__(self, X, model_config: ModelConfig | None = None, config: TrainConfig | None = None, *,
                 model: SparseAutoencoder | None = None, on_snapshot: Callable[[Snapshot], None] | None = None,
                 snapshot_interval: float = 0.1, history_capacity: int = 2000, fused: bool = True,
                 slots: TrainingSlots | None = None, loss: LossFunction = sparse_autoencoder_loss,
                 start_step: int = 0, history: dict[str, np.ndarray] | None = None,
                 threads: int | None = None) -> None:
        self.config = config or TrainConfig()
        self.X = _as_tensor(X)
        m, n = self.X.shape
        if model is None:
            if model_config is None:
                raise ConfigError("give a model_config or a model")
            model = SparseAutoencoder.from_config(model_config)
            if self.config.seed is not None:
                model.reset_parameters(torch.Generator().manual_seed(self.config.seed))
        self.model = model
        check_compatible(model.config, self.config, n)
        self.on_snapshot = on_snapshot
        self.callback_error: Exception | None = None  # the last exception raised by on_snapshot
        self.snapshot_interval = snapshot_interval
        self.batch_size = min(self.config.batch_size, m)
        self.steps_per_epoch = steps_per_epoch(self.config, m)
        self.total_steps = (self.config.max_iter if self.config.optimizer == "lbfgs"
                            else max(1, round(self.config.epochs * self.steps_per_epoch)))
        self._generator = torch.Generator()
        if self.config.seed is not None:
            self._generator.manual_seed(self.config.seed)
        self.fused = fused
        if threads is not None and threads < 1:
            raise ConfigError(f"threads must be at least 1, got {threads}.")
        self.threads = threads
        self._data_range = (float(self.X.min()), float(self.X.max()))
        self.slots = slots
        self.loss = loss
        self._fused = FusedObjective(model, self.config.penalty) if fused and loss is sparse_autoencoder_loss \
            and fused_supports(model, self.config.penalty, self.config.rho_hat) else None
        self._new_optimizer()
        self._order = torch.empty(0, dtype=torch.long)
        self._batch = torch.empty(0)  # the minibatch buffer, refilled by _next_batch
        self._rho_hat_ema: torch.Tensor | None = None
        self._history = History(HISTORY_COLUMNS, history_capacity)

        self._cond = threading.Condition()
        self._pending: dict[str, float] = {}
        self._requested_steps = 0
        self._pause = False
        self._stop_reason: str | None = None
        self._thread: threading.Thread | None = None
        self._status, self._reason = RunStatus.IDLE, ""
        self.step_count = int(start_step)
        self._elapsed = 0.0
        if history:
            self._history.load({c: history[c] for c in HISTORY_COLUMNS if c in history} if
                               all(c in history for c in HISTORY_COLUMNS) else _missing_columns(history))
            times = history.get("time")
            self._elapsed = float(times[-1]) if times is not None and len(times) else 0.0
        self._last_terms: dict[str, torch.Tensor] | None = None
        self._lbfgs: LBFGS | None = None
        self._twin: SparseAutoencoder | None = None  # L-BFGS's float64 copy of the model
        self._twin_fused: FusedObjective | None = None
        self._X64: torch.Tensor | None = None  # the data in float64: (n, m) for the fused pass, else (m, n)
        self._evaluated: list[tuple[float, dict[str, torch.Tensor]]] = []
        self._terms_here: dict[str, torch.Tensor] = {}
        self._latest: Snapshot | None = None
        self._good: Snapshot | None = None  # restored if the loss becomes NaN or infinite
        self._best = np.inf
        self._mark = (time.perf_counter(), 0, 0.0)  # (clock, step, elapsed) at the last publication
        self._publish(RunStatus.IDLE, "")

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
        with self._cond:
            if self._thread is not None:
                raise RuntimeError("this trainer was already started; use resume()")
            self._thread = threading.Thread(target=self._loop, name="sae-trainer", daemon=True)
            self._thread.start()

    def pause(self) -> None:
        with self._cond:
            self._pause = True
            self._requested_steps = 0
            self._cond.notify_all()

    def resume(self) -> None:
        with self._cond:
            self._pause = False
            self._cond.notify_all()

    def step(self, n: int = 1) -> None:
        """Take n steps and then pause (background), or take them now if no thread runs."""
        if self._thread is None:
            self.run(steps=n)
            return
        with self._cond:
            self._pause = True
            self._requested_steps += n
            self._cond.notify_all()

    def stop(self, reason: str = "stopped by the user") -> None:
        """End training; final. A trainer that never started publishes its stopped state at once."""
        with self._cond:
            self._stop_reason = reason
            self._cond.notify_all()
            started = self._thread is not None
        if not started and self._status not in (RunStatus.FINISHED, RunStatus.STOPPED):
            self._publish(RunStatus.STOPPED, reason)

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def set_hyperparameters(self, **changes: float) -> None:
        """Change rho, beta, weight_decay or lr; applied before the next step. Raises ConfigError."""
        bad = set(changes) - set(TrainConfig.LIVE_FIELDS)
        if bad:
            raise ConfigError(f"{', '.join(sorted(bad))} cannot change during training; restart instead.")
        replace(self.config, **changes)  # validates
        with self._cond:
            self._pending.update(changes)
            if self._thread is None:
                self._apply_pending()

    def latest(self) -> Snapshot:
        """The most recently published snapshot (never None)."""
        return self._latest  # type: ignore[return-value]  # a single reference read is atomic

    def history(self) -> dict[str, np.ndarray]:
        """A copy of the bounded training history: column -> (rows,) array."""
        with self._cond:
            return self._history.to_dict()

    # ---------------------------------------------------------------- running
    def run(self, steps: int | None = None, progress: Callable[[Snapshot], None] | None = None) -> Snapshot:
        """Train in the calling thread for ``steps`` steps (default: to the end). Returns the last snapshot."""
        target = self.total_steps if steps is None else min(self.step_count + steps, self.total_steps)
        self._status = RunStatus.RUNNING
        self._mark = (time.perf_counter(), self.step_count, self._elapsed)
        last = time.perf_counter()
        while self.step_count < target and not self._is_done() and self._stop_reason is None:
            with self._cond:
                self._apply_pending()
            if not self._train_step(self._history.wants(self.step_count) or self.step_count + 1 >= target
                                    or time.perf_counter() - last >= self.snapshot_interval):
                return self._latest  # type: ignore[return-value]
            now = time.perf_counter()
            if now - last >= self.snapshot_interval:
                last = now
                self._publish(RunStatus.RUNNING, "")
                if progress is not None:
                    progress(self._latest)  # type: ignore[arg-type]
        done = self._is_done()
        reason = self._stop_reason or (self._done_reason() if done else "paused")
        status = RunStatus.STOPPED if self._stop_reason else RunStatus.FINISHED if done else RunStatus.PAUSED
        self._publish(status, reason)
        if progress is not None:
            progress(self._latest)  # type: ignore[arg-type]
        return self._latest  # type: ignore[return-value]

    def step_flops(self) -> int:
        """Floating-point operations of one step: 5 matmuls of 2 b n s (b samples per step, n inputs, s units)."""
        s, n = self.model.encoder.weight.shape
        return 10 * self._samples_per_step() * n * s

    def _loop(self) -> None:
        threads = self.threads or (1 if self.step_flops() < SMALL_STEP_FLOPS else torch.get_num_threads())
        if threads != torch.get_num_threads():
            torch.set_num_threads(threads)  # this thread's OpenMP/MKL count (and torch's default for new threads)
        try:
            self._steps_until_done()
        finally:
            if self.slots is not None:
                self.slots.release(self)

    def _steps_until_done(self) -> None:
        self._mark = (time.perf_counter(), self.step_count, self._elapsed)
        last = time.perf_counter()
        while True:
            with self._cond:
                stop = self._stop_reason
                wait = self._pause and self._requested_steps == 0 and stop is None
            if wait:  # publish (and so call back) outside the lock: a slow callback must not block the UI
                if self.slots is not None:
                    self.slots.release(self)
                if self._status not in (RunStatus.PAUSED, RunStatus.DIVERGED):
                    self._publish(RunStatus.PAUSED, "paused")
                with self._cond:
                    while self._pause and self._requested_steps == 0 and self._stop_reason is None:
                        self._cond.wait(0.5)
                    stop = self._stop_reason
                self._mark = (time.perf_counter(), self.step_count, self._elapsed)
            if stop is not None:
                self._publish(RunStatus.STOPPED, stop)
                return
            if not self._hold_slot():
                continue
            with self._cond:
                if self._requested_steps:
                    self._requested_steps -= 1
                self._apply_pending()
            if self._status != RunStatus.RUNNING:
                self._publish(RunStatus.RUNNING, "")
            try:
                ok = self._train_step(self._history.wants(self.step_count) or self._is_last_step()
                                      or time.perf_counter() - last >= self.snapshot_interval)
            except Exception as exc:  # keep the thread's death visible to the UI
                self._publish(RunStatus.STOPPED, f"training failed: {type(exc).__name__}: {exc}")
                return
            if not ok:
                with self._cond:
                    self._pause = True
                continue
            now = time.perf_counter()
            if self._is_done():
                self._publish(RunStatus.FINISHED, self._done_reason())
                return
            if now - last >= self.snapshot_interval:
                last = now
                self._publish(RunStatus.RUNNING, "")

    def _hold_slot(self) -> bool:
        """Wait in line for a training slot (status "queued"). False if paused or stopped meanwhile."""
        if self.slots is None:
            return True
        while not self.slots.acquire(self, timeout=0.25):
            with self._cond:
                if self._stop_reason is not None or (self._pause and not self._requested_steps):
                    self.slots.release(self)
                    return False
            ahead = self.slots.position(self) - 1
            reason = (f"queued: all {self.slots.capacity} training slots of this server are busy; "
                      f"{ahead} run{'s' if ahead != 1 else ''} ahead of this one")
            if self._status != RunStatus.QUEUED or self._reason != reason:
                self._publish(RunStatus.QUEUED, reason)
        self._mark = (time.perf_counter(), self.step_count, self._elapsed)  # queued time is not training time
        return True

    def _is_last_step(self) -> bool:
        return self.step_count + 1 >= self.total_steps

    def _is_done(self) -> bool:
        return self.step_count >= self.total_steps or bool(self._lbfgs is not None and self._lbfgs.converged)

    def _done_reason(self) -> str:
        if self.config.optimizer == "lbfgs":
            why = f" (converged: {self._lbfgs.converged})" if self._lbfgs is not None and self._lbfgs.converged else ""
            return f"finished: {self.step_count} L-BFGS iterations{why}"
        return f"finished: {self.step_count / self.steps_per_epoch:g} epochs ({self.step_count} steps)"

    # ---------------------------------------------------------------- one step (training thread only)
    def _train_step(self, values: bool = True) -> bool:
        """One optimiser step. Returns False (and restores the last good weights) on a non-finite loss.

        ``values=False`` lets the fused pass skip the values of the sparsity and weight-decay terms
        (not needed for the gradient); callers ask for them on the steps they record or publish.
        """
        t0 = time.perf_counter()
        cfg = self.config
        if cfg.optimizer == "lbfgs":
            terms = self._lbfgs_iteration()
            finite = bool(torch.isfinite(terms["total"]))
        else:
            x = self._next_batch()
            x_in, target = (x, None) if cfg.noise == "none" else (self._corrupt(x), x)
            if self._fused is not None:
                terms = self._fused.loss_and_grad(x_in, cfg.rho, cfg.beta, cfg.weight_decay, target, values)
                finite = math.isfinite(terms["reconstruction"])  # NaN weights show in every term
                if finite and "total" in terms:  # huge finite weights: their decay term overflows first
                    finite = math.isfinite(terms["total"])
            else:
                prior = self._rho_hat_ema if cfg.rho_hat == "ema" else None
                terms = self.loss(self.model, x_in, cfg.rho, cfg.beta, cfg.weight_decay, cfg.penalty,
                                  target=target, rho_hat_prior=prior, ema_decay=cfg.ema_decay)
                finite = bool(torch.isfinite(terms["total"]))
                if finite:
                    self.optimizer.zero_grad(set_to_none=False)  # keep the .grad tensors KernelStep holds
                    terms["total"].backward()
            if finite:
                self._update()
        if not finite:
            return self._diverged(terms)
        rho_hat = terms["rho_hat"].detach()
        if cfg.rho_hat == "ema" and cfg.optimizer != "lbfgs":
            self._rho_hat_ema = rho_hat
        step = self.step_count
        self.step_count += 1
        self._elapsed += time.perf_counter() - t0
        if "total" not in terms:  # a step without values: nothing to record
            return True
        self._last_terms = terms
        if self._history.wants(step):
            values = self._terms_to_floats(terms)
            with self._cond:
                self._history.append(step, [step, step / self.steps_per_epoch, self._elapsed, *values,
                                            cfg.rho, cfg.beta, cfg.weight_decay, cfg.lr])
        return True

    @staticmethod
    def _terms_to_floats(terms: dict[str, torch.Tensor]) -> list[float]:
        """The loss terms and rho_hat's mean, std (population), min, max as Python floats, in three tensor calls."""
        rho_hat = terms["rho_hat"].detach()
        std, mean = torch.std_mean(rho_hat, correction=0)
        low, high = torch.aminmax(rho_hat)
        return torch.stack([*(terms[k].detach() for k in LOSS_TERMS), mean, std, low, high]).tolist()

    def _lbfgs_iteration(self) -> dict[str, torch.Tensor]:
        """One full-batch L-BFGS iteration. Returns the loss terms at the point it started from."""
        if self._lbfgs is None:
            self._start_lbfgs()
            self._terms_here = self._evaluated[-1][1]
        terms = self._terms_here
        if not torch.isfinite(terms["total"]):
            return terms
        self._evaluated.clear()
        self._lbfgs.iterate()
        load_flat_parameters(self.model, self._lbfgs.x)
        self._terms_here = next((t for f, t in reversed(self._evaluated) if f == self._lbfgs.f),
                                self._terms_here)
        return terms

    def _start_lbfgs(self) -> None:
        """L-BFGS from the model's current weights, in float64.

        As minFunc does for UFLDL: the line search compares losses that differ in the seventh digit near
        a minimum, which float32 cannot tell apart (its iterations stall there and two float32 runs part
        ways in the fourth digit). The objective is evaluated on a float64 twin of the model and a float64
        copy of the data; the float32 model receives the iterate after every iteration.
        """
        self._twin = twin = copy.deepcopy(self.model).to(torch.float64)
        theta = flat_parameters(twin)
        self._twin_fused = None
        if self._fused is not None:  # the twin's parameters and gradients are views of two flat vectors
            self._twin_theta, self._twin_grad = theta.clone(), torch.zeros_like(theta)
            offset = 0
            for p in twin.parameters():
                p.data = self._twin_theta[offset:offset + p.numel()].view_as(p)
                p.grad = self._twin_grad[offset:offset + p.numel()].view_as(p)
                offset += p.numel()
            self._twin_fused = FusedObjective(twin, self.config.penalty)
        if self._X64 is None:  # the fused pass takes one sample per column (faster matmuls, see sae.core.fused)
            X64 = self.X.to(torch.float64)
            self._X64 = X64.t().contiguous() if self._twin_fused is not None else X64
        pairs = min(100, max(10, LBFGS_MEMORY_BYTES // (2 * theta.numel() * theta.element_size())))
        self._lbfgs = LBFGS(self._objective, theta, history_size=pairs)

    def _objective(self, theta: torch.Tensor) -> tuple[float, torch.Tensor]:
        """The full-batch loss and its gradient (float64) at flat parameters theta (p,)."""
        cfg, model = self.config, self._twin
        if self._twin_fused is not None:
            self._twin_theta.copy_(theta)  # one copy: the parameters are views of it
            terms = self._twin_fused.loss_and_grad(self._X64, cfg.rho, cfg.beta, cfg.weight_decay,
                                                   samples_in_columns=True)
            grad = self._twin_grad  # filled through the .grad views (the caller copies it)
        else:
            load_flat_parameters(model, theta)
            model.zero_grad(set_to_none=True)
            terms = self.loss(model, self._X64, cfg.rho, cfg.beta, cfg.weight_decay, cfg.penalty)
            terms["total"].backward()
            grad = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
        f = float(terms["total"].detach())
        self._evaluated.append((f, {k: v.detach() for k, v in terms.items()}))
        return f, grad

    def _corrupt(self, x: torch.Tensor) -> torch.Tensor:
        """The denoising input: x corrupted by the configured noise, clipped to the data's range."""
        return corrupt(x, self.config.noise, self.config.noise_level, self._generator, clip=self._data_range)

    def _next_batch(self) -> torch.Tensor:
        """The next minibatch (b, n) of a fresh random permutation each epoch (the remainder is left out).

        Rows are gathered into one buffer reused by every step (valid until the next call).
        """
        start = (self.step_count % self.steps_per_epoch) * self.batch_size
        if start == 0 or len(self._order) == 0:
            self._order = torch.randperm(len(self.X), generator=self._generator)
        if self._batch.shape != (self.batch_size, self.X.shape[1]):
            self._batch = self.X.new_empty(self.batch_size, self.X.shape[1])
        return torch.index_select(self.X, 0, self._order[start:start + self.batch_size], out=self._batch)

    def _diverged(self, terms: dict[str, torch.Tensor]) -> bool:
        bad = {k: float(terms[k].detach()) for k in LOSS_TERMS if k in terms}
        snap = self._good  # the latest snapshot whose loss was finite and near the best seen
        with torch.no_grad():
            for name, p in self.model.named_parameters():
                p.copy_(torch.from_numpy(snap.weights[name]))  # type: ignore[union-attr]
        self._new_optimizer()  # moments are poisoned
        self._rho_hat_ema = None
        self._lbfgs = None
        what = "NaN" if any(np.isnan(v) for v in bad.values()) else "infinite"
        terms = ", ".join(f"{k} {v:g}" for k, v in bad.items() if k != "total")
        if self.step_count == 0:
            why = ("the objective is undefined at the initial weights, so no learning rate can help: "
                   "check the data and the model")
        elif self.config.optimizer == "lbfgs":
            why = "the line search left the region where the loss is finite; try a larger lambda or a minibatch optimizer"
        else:
            why = f"the learning rate {self.config.lr:g} is probably too high: lower it and resume"
        kept = f"Kept the weights of step {snap.step}, the last with a sound loss." if self.step_count else ""
        self._publish(RunStatus.DIVERGED, f"diverged: the loss became {what} at step {self.step_count} ({terms}); "
                                f"{why}. {kept}".strip())
        return False

    # ---------------------------------------------------------------- helpers
    def _new_optimizer(self) -> None:
        """A fresh optimiser (``self.optimizer``) and its one-call update (``self._update``).

        The optimiser uses torch's fused kernels and :class:`~sae.core.optimizer_step.KernelStep` calls them
        directly: the same update with none of torch.optim's per-step Python.
        """
        cfg, params = self.config, list(self.model.parameters())
        if cfg.optimizer == "adam":  # fused kernels: the same update in one call
            self.optimizer = torch.optim.Adam(params, lr=cfg.lr, fused=True)
        else:  # unused by lbfgs
            self.optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, fused=True)
        self._update = KernelStep(self.optimizer).step

    def _apply_pending(self) -> None:
        """Apply queued live changes (caller holds the lock)."""
        if not self._pending:
            return
        self.config = replace(self.config, **self._pending)
        if "lr" in self._pending and self.config.optimizer != "lbfgs":
            for group in self.optimizer.param_groups:
                group["lr"] = self.config.lr
        if self._lbfgs is not None and set(self._pending) - {"lr"}:
            self._lbfgs.reset()  # the objective changed: re-evaluate here, curvature pairs are stale
            self._terms_here = self._evaluated[-1][1]
        self._pending = {}

    def _publish(self, status: RunStatus, reason: str) -> None:
        now = time.perf_counter()
        clock, step0, elapsed0 = self._mark
        trained = self._elapsed - elapsed0
        rate = (self.step_count - step0) * self._samples_per_step() / trained if trained > 0 else 0.0
        steady = self._latest is not None and self._latest.samples_per_s > 0
        if steady and status == RunStatus.RUNNING and now - clock < RATE_WINDOW:
            rate = self._latest.samples_per_s  # too few steps yet for a steady figure: keep the last one
        elif self.step_count > step0:
            self._mark = (now, self.step_count, self._elapsed)
        elif self._latest is not None:
            rate = self._latest.samples_per_s
        cfg = self.config
        if self._last_terms is None:
            losses, rho_hat = {}, np.full(self.model.config.n_hidden, np.nan)
        else:
            losses = dict(zip(LOSS_TERMS, self._terms_to_floats(self._last_terms)))
            rho_hat = self._last_terms["rho_hat"].detach().numpy().copy()
        snap = Snapshot(
            step=self.step_count, epoch=self.step_count / self.steps_per_epoch, losses=losses, rho_hat=rho_hat,
            weights={k: v.detach().numpy().copy() for k, v in self.model.state_dict().items()},
            hyper={k: getattr(cfg, k) for k in TrainConfig.LIVE_FIELDS}, samples_per_s=rate,
            elapsed=self._elapsed, status=status, reason=reason,
            version=0 if self._latest is None else self._latest.version + 1)
        self._status, self._reason = status, reason
        self._latest = snap
        total = losses.get("total")
        if self._good is None or (total is not None and np.isfinite(total) and total <= 10 * self._best):
            self._good = snap
            self._best = min(self._best, total if total is not None else np.inf)
        if self.on_snapshot is not None:
            try:
                self.on_snapshot(snap)
            except Exception as exc:  # a broken observer must not kill training
                if self.callback_error is None:
                    warnings.warn(f"on_snapshot callback failed: {exc!r}", RuntimeWarning, stacklevel=2)
                self.callback_error = exc

    def _samples_per_step(self) -> int:
        return len(self.X) if self.config.optimizer == "lbfgs" else self.batch_size


def _as_tensor(X) -> torch.Tensor:
    X = torch.from_numpy(np.array(X, dtype=np.float32, order="C", copy=True)) if not isinstance(X, torch.Tensor) \
        else X.detach().to(torch.float32).contiguous()
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
        raise ConfigError(f"training data must be a 2-D array (samples x features), got shape {tuple(X.shape)}.")
    if not torch.isfinite(X).all():
        raise ConfigError("training data contain NaN or infinite values.")
    return X


def check_compatible(model: ModelConfig, cfg: TrainConfig, n_features: int) -> None:
    """Refuse a model, objective and data that cannot train together (ConfigError with the reason)."""
    if model.n_inputs != n_features:
        raise ConfigError(f"the model expects {model.n_inputs} inputs but the data have {n_features} features.")
    if cfg.penalty == "kl" and model.activation == "relu":
        raise ConfigError("the KL penalty needs activations in [0, 1]; ReLU units are unbounded: "
                          "use the L1 or TopK penalty with ReLU.")
    if cfg.penalty == "topk" and not model.topk:
        raise ConfigError("the TopK penalty needs a model built with topk=k.")



def _missing_columns(history: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    missing = sorted(set(HISTORY_COLUMNS) - set(history))
    raise ConfigError(f"the saved history lacks the column(s) {', '.join(missing)}.")


def steps_per_epoch(config: TrainConfig, n_samples: int) -> int:
    """Optimiser steps per pass over n samples: 1 for full-batch L-BFGS, else the number of full minibatches
    (a tiny remainder batch would measure rho_hat on a handful of samples, so it is left out)."""
    if config.optimizer == "lbfgs":
        return 1
    return max(1, int(n_samples) // min(config.batch_size, int(n_samples)))
