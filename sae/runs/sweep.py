"""Running sweeps: train a grid of runs in the background, record every cell, report live progress.

A :class:`Sweep` trains the cells of a :class:`sae.runs.sweep_spec.SweepSpec` with at most ``parallel`` cells
at once, each on the process-wide workers (``sae.workers.backend``: a worker process per cell by default, Ray
actors on a cluster; in thread mode, Trainers holding a :class:`sae.training.slots.TrainingSlots`), records each cell as a run in a :class:`sae.runs.store.RunStore` through a
:class:`sae.runs.recorder.RunRecorder`, reports live progress (:class:`SweepProgress`), and can be cancelled.
:class:`SweepRegistry` keeps the sweeps this process runs, by id. The recorded cells become grids with
:func:`sae.runs.sweep_results.sweep_results`, also after a restart.

Example:
    >>> spec = SweepSpec(rhos=(0.01, 0.05), betas=(0.5, 3.0), model_config=ModelConfig(64, 25),
    ...                  train_config=TrainConfig(epochs=20), dataset="digits")
    >>> sweep = Sweep(spec, RunStore(), parallel=2).start()
    >>> sweep.wait(); grid = sweep.results().grid("reconstruction")   # (2 rhos, 2 betas)
"""

from __future__ import annotations

import logging
import os
import threading
import time
import warnings
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

from sae.core.config import ConfigError
from sae.runs.owners import require
from sae.runs.recorder import RunRecorder
from sae.runs.store import RunStore, StoreError
from sae.runs.sweep_results import SweepResults, sweep_results
from sae.runs.sweep_spec import Cell, SweepError, SweepSpec
from sae.runs.sweep_table import SweepRecord
from sae.training.slots import TrainingSlots
from sae.training.status import RunStatus
from sae.training.trainer import Snapshot
from sae.workers.backend import new_trainer

logger = logging.getLogger(__name__)

# cell statuses: waiting (for a worker or a slot), training, and how it ended
CELL_DONE = (RunStatus.FINISHED, RunStatus.STOPPED, RunStatus.DIVERGED, RunStatus.FAILED, RunStatus.CANCELLED)
MAX_RUNNING_SWEEPS = 4  # per process; their cells share the machine's cores with the live runs
KEEP_FINISHED_SWEEPS = 16  # finished sweeps kept in memory for their live progress view


@dataclass(frozen=True)
class CellState:
    """A cell's live state (a copy)."""

    index: tuple[int, int, int]
    rho: float
    beta: float
    n_hidden: int
    status: str  # queued, running, finished, stopped, diverged, failed, cancelled
    step: int = 0
    total_steps: int | None = None
    losses: dict[str, float] = field(default_factory=dict)
    reason: str = ""
    run_id: str | None = None

    @property
    def done(self) -> bool:
        return self.status in CELL_DONE


@dataclass(frozen=True)
class SweepProgress:
    """Counts and every cell's state; ``peak_running``: the most cells ever training at once."""

    sweep_id: str | None
    total: int
    queued: int
    running: int
    done: int
    failed: int
    cancelled: bool
    cells: tuple[CellState, ...]
    peak_running: int

    @property
    def summary(self) -> str:
        """One line for a progress bar: "3 of 4 cells done · 1 training · 0 waiting" (+ failed, cancelled)."""
        return (f"{self.done} of {self.total} cells done · {self.running} training · {self.queued} waiting"
                + (f" · {self.failed} failed" if self.failed else "") + (" · cancelled" if self.cancelled else ""))

    @property
    def finished(self) -> bool:
        return self.done == self.total

    @property
    def fraction(self) -> float:
        """Share of the work done, counting steps of running cells."""
        parts = [1.0 if c.done else (c.step / c.total_steps if c.total_steps else 0.0) for c in self.cells]
        return sum(parts) / max(1, len(parts))


def default_parallel() -> int:
    """Cells a sweep trains at once: one per core, between 2 and 4 (each cell is a worker of its own, and the
    operating system shares the cores among them and the live runs)."""
    return max(2, min(4, os.cpu_count() or 2))


class Sweep:
    """Trains the cells of a SweepSpec in background threads, recording each in a RunStore.

    Args:
        spec: the grid.
        store: where every cell is recorded (a run named after the sweep and the cell).
        data: a ``sae.data.Dataset`` (X, labels, image_shape); default: the built-in set named by spec.dataset.
        parallel: worker threads, so at most this many cells train at once (and at most this many
            Trainers, each with its own copy of X, exist).
        slots: a TrainingSlots to share with other trainers of the server (the cap then also applies
            across them); default: a private TrainingSlots(parallel).
        interval: seconds between checkpoints of a running cell.
        probe: measure the linear-probe accuracy of each cell's codes when the data have labels.
        owner: the identity token of the user the sweep and its cells belong to (``sae.runs.owners``); None: no
            owner (the library's local user).
    """

    def __init__(self, spec: SweepSpec, store: RunStore, data: Any = None, *, parallel: int = 2,
                 slots: TrainingSlots | None = None, interval: float = 2.0, probe: bool = True,
                 owner: str | None = None) -> None:
        if not isinstance(parallel, int) or isinstance(parallel, bool) or not 1 <= parallel <= 32:
            raise SweepError(f"parallel must be a whole number between 1 and 32, got {parallel!r}.")
        if data is None:
            from sae.data import load_dataset

            data = load_dataset(spec.dataset)
        if data.n_features != spec.model_config.n_inputs:
            raise SweepError(f"the model expects {spec.model_config.n_inputs} inputs but {spec.dataset} has "
                             f"{data.n_features} features per sample.")
        self.spec, self.store, self.data = spec, store, data
        self.parallel = parallel
        self.slots = slots if slots is not None else TrainingSlots(parallel)
        self.interval = interval
        self.probe = probe
        self.owner = owner
        self.id: str | None = None
        self._lock = threading.Lock()
        self._cells = {c.index: c for c in spec.cells()}
        self._states = {c.index: CellState(c.index, c.rho, c.beta, c.n_hidden, RunStatus.QUEUED) for c in spec.cells()}
        self._queue: deque[tuple[int, int, int]] = deque(self._cells)
        self._trainers: dict[tuple[int, int, int], Any] = {}  # Trainer or RemoteTrainer
        self._diverged: dict[tuple[int, int, int], str] = {}
        self._workers: list[threading.Thread] = []
        self._cancelled = False
        self._peak = 0
        self._active = 0  # workers not yet ended

    # ------------------------------------------------------------------ control
    def start(self) -> "Sweep":
        """Record the sweep in the store and start the workers. Returns self."""
        with self._lock:
            if self._workers:
                raise SweepError("this sweep was already started.")
            self.id = self.store.sweeps.create(self.spec.name, self.spec.dataset, self.spec.to_dict(),
                                               getattr(self.data, "image_shape", None), owner=self.owner)
            self._workers = [threading.Thread(target=self._work, name=f"sae-sweep-{k}", daemon=True)
                             for k in range(min(self.parallel, len(self._queue)))]
            self._active = len(self._workers)
        for worker in self._workers:
            worker.start()
        return self

    def cancel(self, wait: bool = True, timeout: float = 30.0, *, actor: str | None = None) -> None:
        """Stop the running cells and drop the queued ones; with ``wait``, join the worker threads. ``actor``: who
        asks (a token; None: the local user): only the sweep's owner or a teacher may (PermissionDeniedError)."""
        if actor is not None and self.id is not None:
            require(self.store.sweeps.get(self.id).owned_by, self.store.identity(actor), "sweep")
        with self._lock:
            self._cancelled = True
            while self._queue:
                index = self._queue.popleft()
                self._states[index] = replace(self._states[index], status=RunStatus.CANCELLED,
                                              reason="the sweep was cancelled")
            trainers = list(self._trainers.values())
        for trainer in trainers:
            trainer.stop("the sweep was cancelled")
        if wait:
            self.wait(timeout)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the workers to end. True if they have."""
        end = None if timeout is None else time.monotonic() + timeout
        for worker in list(self._workers):
            worker.join(None if end is None else max(0.0, end - time.monotonic()))
        return self.done

    @property
    def done(self) -> bool:
        return bool(self._workers) and not any(w.is_alive() for w in self._workers)

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    # ------------------------------------------------------------------ reading
    def progress(self) -> SweepProgress:
        with self._lock:
            cells = tuple(self._states[i] for i in sorted(self._states))
            peak = self._peak
        running = sum(c.status == RunStatus.RUNNING for c in cells)
        return SweepProgress(self.id, len(cells), sum(c.status == RunStatus.QUEUED for c in cells), running,
                             sum(c.done for c in cells), sum(c.status == RunStatus.FAILED for c in cells),
                             self._cancelled, cells, peak)

    def results(self, *, weights: bool = True) -> SweepResults:
        """The grid of recorded metrics (NaN for cells not finished yet) and the cells' filters."""
        if self.id is None:
            raise SweepError("start the sweep before asking for its results.")
        with self._lock:
            status = {i: s.status for i, s in self._states.items()}
        return sweep_results(self.store, self.spec, self.id, weights=weights,
                             image_shape=getattr(self.data, "image_shape", None), status=status)

    # ------------------------------------------------------------------ workers
    def _set(self, index: tuple[int, int, int], **changes: Any) -> None:
        """Update a cell's state (caller holds the lock) and the peak count of running cells."""
        self._states[index] = replace(self._states[index], **changes)
        self._peak = max(self._peak, sum(s.status == RunStatus.RUNNING for s in self._states.values()))

    def _work(self) -> None:
        while True:
            with self._lock:
                if self._cancelled or not self._queue:
                    break
                index = self._queue.popleft()
            try:
                self._run_cell(self._cells[index])
            except Exception as exc:  # noqa: BLE001 - one broken cell must not end the sweep
                logger.warning("sweep %s: cell %s failed", self.id, index, exc_info=True)
                with self._lock:
                    self._set(index, status=RunStatus.FAILED, reason=f"{type(exc).__name__}: {exc}")
        with self._lock:
            self._active -= 1
            last = self._active == 0
        if last and self.id is not None:
            try:
                self.store.sweeps.update(self.id, RunStatus.CANCELLED if self._cancelled else RunStatus.FINISHED)
            except StoreError as exc:  # the cells are recorded; only the sweep's own status is stale
                logger.warning("sweep %s ended but its status could not be recorded: %s", self.id, exc)

    def _run_cell(self, cell: Cell) -> None:
        index = cell.index
        model_config = cell.model_config.for_data(self.data.X)  # the record names the decoder the weights use
        try:
            run_id = self.store.create(f"{self.spec.name}: {cell.label}", self.spec.dataset, model_config,
                                       cell.train_config, sweep_id=self.id, owner=self.owner)
            recorder = RunRecorder(self.store, run_id, interval=self.interval, X=self.data.X,
                                   labels=getattr(self.data, "labels", None), probe=self.probe)
            with warnings.catch_warnings():  # Dataset.X is read-only; the trainer copies it
                warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
                trainer = new_trainer(self.data.X, model_config, cell.train_config, slots=self.slots,
                                      observers=[lambda snap: self._on_snapshot(index, recorder, snap)])
            recorder.attach(trainer)
        except (ConfigError, StoreError, ValueError) as exc:
            with self._lock:
                self._set(index, status=RunStatus.FAILED, reason=str(exc))
            return
        with self._lock:
            if self._cancelled:
                self._set(index, status=RunStatus.CANCELLED, reason="the sweep was cancelled", run_id=run_id)
                cancelled = True
            else:
                self._trainers[index] = trainer
                self._set(index, run_id=run_id, total_steps=trainer.total_steps)
                cancelled = False
        if cancelled:
            try:
                self.store.delete(run_id)  # never trained: leave no empty record behind
            except StoreError as exc:  # an empty record stays behind: harmless, and deletable on the Runs page
                logger.warning("sweep %s: the empty run %s of a cancelled cell could not be deleted: %s", self.id,
                               run_id, exc)
            return
        trainer.start()
        trainer.join()
        close = getattr(trainer, "close", None)  # a RemoteTrainer: the cell's worker ends with it
        if close is not None:
            close()
        with self._lock:
            self._trainers.pop(index, None)
            if not self._states[index].done:  # the thread died without a final snapshot
                self._set(index, status=RunStatus.FAILED, reason=trainer.latest().reason or "training ended early")

    def _on_snapshot(self, index: tuple[int, int, int], recorder: RunRecorder, snap: Snapshot) -> None:
        """Training thread of one cell: update its live state, record it, end it if it diverged.

        A diverged cell is stopped at once (a sweep has nobody to lower its rate) and recorded as
        "diverged". A final cell is recorded (with its metrics) before it counts as done, so the
        results grid is complete once the progress says so.
        """
        with self._lock:
            diverged = self._diverged.get(index)
            trainer = self._trainers.get(index)
        if snap.status == RunStatus.DIVERGED:
            with self._lock:
                self._diverged[index] = snap.reason
            recorder.checkpoint(snap)
            if trainer is not None:
                trainer.stop(snap.reason)
            return
        status, reason = snap.status, snap.reason
        if status == RunStatus.STOPPED and diverged is not None:
            status, reason = RunStatus.DIVERGED, diverged
        if status in (RunStatus.FINISHED, RunStatus.STOPPED, RunStatus.DIVERGED):
            recorder.finish(replace(snap, status=status, reason=reason))
            if recorder.error:
                reason = f"{reason} (not recorded: {recorder.error})"
        else:
            recorder(snap)
            status = RunStatus.RUNNING if status == RunStatus.RUNNING else RunStatus.QUEUED
        with self._lock:
            self._set(index, status=status, step=snap.step, losses=dict(snap.losses), reason=reason)


class SweepRegistry:
    """The sweeps started in this process, by sweep id; thread-safe.

    They belong to the server (like the run store), not to the browser session that started them: closing the
    tab does not stop them. A sweep trains in its own worker threads and records every cell in the run store, so
    a page only needs its id: :meth:`get` gives the live :class:`Sweep` (progress, cancel) while this process
    runs it; after a restart :func:`sae.runs.sweep_results.load_sweep` reads the same results from the store.
    """

    def __init__(self, max_running: int = MAX_RUNNING_SWEEPS, keep: int = KEEP_FINISHED_SWEEPS) -> None:
        self.max_running = max_running
        self.keep = keep
        self._lock = threading.Lock()
        self._sweeps: dict[str, Sweep] = {}

    def start(self, spec: SweepSpec, store: RunStore, data: Any, *, parallel: int = 2,
              slots: TrainingSlots | None = None, interval: float = 2.0, owner: str | None = None) -> Sweep:
        """Start a sweep of ``owner`` (an identity token) in the background and register it. Raises SweepError
        (e.g. too many running)."""
        with self._lock:
            if sum(not s.done for s in self._sweeps.values()) >= self.max_running:
                raise SweepError(f"{self.max_running} sweeps are already training on this server; wait for one "
                                 "to finish or cancel it.")
            sweep = Sweep(spec, store, data, parallel=parallel, slots=slots, interval=interval, owner=owner).start()
            self._sweeps[sweep.id] = sweep  # type: ignore[index]
            finished = [k for k, s in self._sweeps.items() if s.done]
            for key in finished[:max(0, len(finished) - self.keep)]:
                del self._sweeps[key]
        return sweep

    def get(self, sweep_id: str | None) -> Sweep | None:
        with self._lock:
            return self._sweeps.get(sweep_id) if sweep_id else None

    def running(self) -> list[Sweep]:
        with self._lock:
            return [s for s in self._sweeps.values() if not s.done]

    def display_status(self, record: SweepRecord) -> str:
        """A recorded sweep's status as shown: ``interrupted`` if recorded as running but no sweep of this
        registry runs it (a previous server process did, and stopped), else the recorded status."""
        if record.status == RunStatus.RUNNING and self.get(record.id) is None:
            return RunStatus.INTERRUPTED
        return record.status

    def cancel_all(self, wait: bool = True, timeout: float = 30.0) -> None:
        """Cancel every running sweep (tests, shutdown)."""
        for sweep in self.running():
            sweep.cancel(wait=wait, timeout=timeout)


__all__ = ["default_parallel", "Sweep", "SweepRegistry", "SweepProgress", "CellState", "CELL_DONE", "MAX_RUNNING_SWEEPS"]
