"""Sweeps: train a grid over rho x beta (x hidden size) in the background, record every cell.

A :class:`SweepSpec` is the grid and the base configs; a :class:`Sweep` trains its cells with at most
``parallel`` trainers at once (its own :class:`sae.training.slots.TrainingSlots`, or a server-wide one shared
with interactive sessions), records each cell as a run in a :class:`sae.runs.store.RunStore` through a
:class:`sae.runs.recorder.RunRecorder`, reports live progress, and can be cancelled. :func:`sweep_results`
turns the recorded cells into grids for heatmaps and small multiples, also after a restart.

Every cell uses the same seed (the base config's, 0 if unset): the same initial weights for one
hidden size and the same minibatch order, so differences between cells come from rho, beta and the
hidden size alone.

Example:
    >>> spec = SweepSpec(rhos=(0.01, 0.05), betas=(0.5, 3.0), model_config=ModelConfig(64, 25),
    ...                  train_config=TrainConfig(epochs=20), dataset="digits")
    >>> sweep = Sweep(spec, RunStore(), parallel=2).start()
    >>> sweep.wait(); grid = sweep.results().grid("reconstruction")   # (2 rhos, 2 betas)
"""

from __future__ import annotations

import threading
import time
import warnings
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

import numpy as np

from sae.core.config import ConfigError, ModelConfig, TrainConfig, config_from_dict, config_to_dict
from sae.training.status import RunStatus
from sae.training.slots import TrainingSlots
from sae.runs.recorder import RunRecorder
from sae.runs.store import RunStore, StoreError
from sae.training.trainer import Snapshot, Trainer

MAX_AXIS = 8  # values per axis
MAX_CELLS = 64  # cells per sweep
METRICS = ("reconstruction", "rho_hat_mean", "dead_units", "probe_accuracy", "total")
# cell statuses: waiting (for a worker or a slot), training, and how it ended
CELL_DONE = (RunStatus.FINISHED, RunStatus.STOPPED, RunStatus.DIVERGED, RunStatus.FAILED, RunStatus.CANCELLED)


class SweepError(ValueError):
    """A sweep that cannot be set up or run as asked; the message says why."""


def _axis(values: Any, name: str, kind: type) -> tuple:
    try:
        values = tuple(values)
    except TypeError:
        raise SweepError(f"{name} must be a list of values, got {values!r}.") from None
    if not 1 <= len(values) <= MAX_AXIS:
        raise SweepError(f"{name} needs between 1 and {MAX_AXIS} values, got {len(values)}.")
    try:
        values = tuple(kind(v) if kind is float else v for v in values)
    except (TypeError, ValueError):
        raise SweepError(f"{name} must hold numbers, got {values!r}.") from None
    if kind is int and not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        raise SweepError(f"{name} must hold whole numbers, got {values!r}.")
    values = tuple(int(v) for v in values) if kind is int else values
    if len(set(values)) != len(values):
        raise SweepError(f"{name} lists a value twice: {values!r}.")
    return values


@dataclass(frozen=True)
class Cell:
    """One grid point: index (hidden, rho, beta) into the spec's axes, and its full configs."""

    index: tuple[int, int, int]
    rho: float
    beta: float
    n_hidden: int
    model_config: ModelConfig
    train_config: TrainConfig

    @property
    def label(self) -> str:
        return f"ρ={self.rho:g} β={self.beta:g} s={self.n_hidden}"


@dataclass(frozen=True, kw_only=True)
class SweepSpec:
    """A grid over rho x beta (x hidden size) around base configs. Every cell is validated here.

    Attributes:
        rhos: target activations (rows of the heatmaps).
        betas: sparsity weights (columns).
        hidden_sizes: optional hidden sizes (one grid per size); default: the base model's only.
        model_config: the base model (its n_hidden is used when hidden_sizes is None).
        train_config: the base training settings; its seed (0 if None) is used by every cell.
        dataset: the data set name recorded with every run (a built-in name lets Sweep load it).
        name: shown in the store; default "sweep on <dataset>".
    """

    rhos: Sequence[float]
    betas: Sequence[float]
    model_config: ModelConfig
    train_config: TrainConfig
    dataset: str
    hidden_sizes: Sequence[int] | None = None
    name: str = ""

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "rhos", _axis(self.rhos, "rhos", float))
        set_(self, "betas", _axis(self.betas, "betas", float))
        if self.hidden_sizes is not None:
            set_(self, "hidden_sizes", _axis(self.hidden_sizes, "hidden sizes", int))
        if not isinstance(self.model_config, ModelConfig) or not isinstance(self.train_config, TrainConfig):
            raise SweepError("a sweep needs a ModelConfig and a TrainConfig as its base.")
        if not isinstance(self.dataset, str) or not self.dataset.strip():
            raise SweepError("a sweep needs the name of its data set.")
        if self.train_config.penalty == "topk":
            raise SweepError("a rho x beta sweep needs the KL or L1 penalty; TopK codes ignore both.")
        if self.train_config.penalty == "l1" and len(self.rhos) > 1:
            raise SweepError("rho has no effect under the L1 penalty: sweep beta (and the hidden size) with one rho.")
        if self.train_config.seed is None:
            set_(self, "train_config", replace(self.train_config, seed=0))
        count = len(self.rhos) * len(self.betas) * len(self.sizes)
        if count > MAX_CELLS:
            raise SweepError(f"this sweep has {count} cells; the limit is {MAX_CELLS}.")
        if not self.name:
            set_(self, "name", f"sweep on {self.dataset}")
        self.cells()  # validates every cell's configs

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(self.hidden_sizes) if self.hidden_sizes is not None else (self.model_config.n_hidden,)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(hidden sizes, rhos, betas)."""
        return len(self.sizes), len(self.rhos), len(self.betas)

    def cells(self) -> list[Cell]:
        """All cells, hidden size outermost, then rho, then beta. Raises SweepError on a bad value."""
        out = []
        for h, n_hidden in enumerate(self.sizes):
            for i, rho in enumerate(self.rhos):
                for j, beta in enumerate(self.betas):
                    try:
                        mc = replace(self.model_config, n_hidden=n_hidden)
                        tc = replace(self.train_config, rho=rho, beta=beta)
                    except ConfigError as exc:
                        raise SweepError(f"cell ρ={rho:g}, β={beta:g}, {n_hidden} hidden: {exc}") from None
                    out.append(Cell((h, i, j), rho, beta, n_hidden, mc, tc))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"rhos": list(self.rhos), "betas": list(self.betas),
                "hidden_sizes": None if self.hidden_sizes is None else list(self.hidden_sizes),
                "model_config": config_to_dict(self.model_config), "train_config": config_to_dict(self.train_config),
                "dataset": self.dataset, "name": self.name}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SweepSpec":
        try:
            return cls(rhos=data["rhos"], betas=data["betas"], hidden_sizes=data.get("hidden_sizes"),
                       model_config=config_from_dict(ModelConfig, data["model_config"]),
                       train_config=config_from_dict(TrainConfig, data["train_config"]),
                       dataset=data["dataset"], name=data.get("name", ""))
        except (KeyError, TypeError, ConfigError) as exc:
            raise SweepError(f"the stored sweep description is incomplete or invalid ({exc}).") from None


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
    def finished(self) -> bool:
        return self.done == self.total

    @property
    def fraction(self) -> float:
        """Share of the work done, counting steps of running cells."""
        parts = [1.0 if c.done else (c.step / c.total_steps if c.total_steps else 0.0) for c in self.cells]
        return sum(parts) / max(1, len(parts))


@dataclass(frozen=True)
class SweepResults:
    """Recorded metrics on the grid, for heatmaps and small multiples.

    Attributes:
        rhos, betas, hidden_sizes: the axes.
        metrics: name (``METRICS``) -> (hidden sizes, rhos, betas) float64; NaN where unknown
            (cell not finished, or no labels for the probe).
        run_ids: (hidden sizes, rhos, betas) object array of run ids (None where no run).
        status: (hidden sizes, rhos, betas) object array of cell statuses.
        encoder_weights: (h, i, j) -> W1 (n_hidden, n_inputs) of each cell with recorded weights.
        image_shape: (height, width) to show the filters, if the data are images.
    """

    sweep_id: str | None
    rhos: tuple[float, ...]
    betas: tuple[float, ...]
    hidden_sizes: tuple[int, ...]
    metrics: dict[str, np.ndarray]
    run_ids: np.ndarray
    status: np.ndarray
    encoder_weights: dict[tuple[int, int, int], np.ndarray]
    image_shape: tuple[int, int] | None = None

    def grid(self, metric: str, hidden: int = 0) -> np.ndarray:
        """(rhos, betas) values of ``metric`` for the ``hidden``-th hidden size."""
        if metric not in self.metrics:
            raise SweepError(f"no metric {metric!r}; choose one of {', '.join(self.metrics)}.")
        if not 0 <= hidden < len(self.hidden_sizes):
            raise SweepError(f"hidden size index {hidden} is out of range (0..{len(self.hidden_sizes) - 1}).")
        return self.metrics[metric][hidden]

    def run_at(self, hidden: int, i: int, j: int) -> str | None:
        """The run id of the cell (hidden, rho index, beta index): what clicking a heatmap cell opens."""
        return self.run_ids[hidden, i, j]


def sweep_results(store: RunStore, spec: SweepSpec, sweep_id: str, *, weights: bool = True,
                  image_shape: tuple[int, int] | None = None, status: Mapping[tuple, str] | None = None
                  ) -> SweepResults:
    """Gather the recorded cells of ``sweep_id`` into grids (the newest run wins if a cell has several)."""
    shape = spec.shape
    metrics = {name: np.full(shape, np.nan) for name in METRICS}
    run_ids = np.full(shape, None, dtype=object)
    states = np.full(shape, RunStatus.QUEUED, dtype=object)
    for index, value in (status or {}).items():
        states[index] = value
    filters: dict[tuple[int, int, int], np.ndarray] = {}
    where = {(n, r, b): (h, i, j) for h, n in enumerate(spec.sizes) for i, r in enumerate(spec.rhos)
             for j, b in enumerate(spec.betas)}
    for record in sorted(store.list(sweep_id=sweep_id), key=lambda r: r.updated):
        tc = record.train_config
        index = None if tc is None else where.get((record.model_config.n_hidden, tc.rho, tc.beta))
        if index is None:
            continue
        run_ids[index] = record.id
        if status is None or index not in status:
            states[index] = record.display_status
        for name in METRICS:
            value = getattr(record, name)
            metrics[name][index] = np.nan if value is None or not record.final else float(value)
        if weights and record.has_weights:
            try:
                filters[index] = store.load_model(record.id).encoder.weight.detach().numpy().copy()
            except StoreError:
                filters.pop(index, None)
    return SweepResults(sweep_id, tuple(spec.rhos), tuple(spec.betas), spec.sizes, metrics, run_ids, states,
                        filters, image_shape)


def load_sweep(store: RunStore, sweep_id: str, *, weights: bool = True) -> tuple[SweepSpec, SweepResults]:
    """A recorded sweep's spec and results (e.g. after a restart)."""
    record = store.get_sweep(sweep_id)
    spec = SweepSpec.from_dict(record.spec)
    return spec, sweep_results(store, spec, sweep_id, weights=weights, image_shape=record.image_shape)


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
    """

    def __init__(self, spec: SweepSpec, store: RunStore, data: Any = None, *, parallel: int = 2,
                 slots: TrainingSlots | None = None, interval: float = 2.0, probe: bool = True) -> None:
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
        self.id: str | None = None
        self._lock = threading.Lock()
        self._cells = {c.index: c for c in spec.cells()}
        self._states = {c.index: CellState(c.index, c.rho, c.beta, c.n_hidden, RunStatus.QUEUED) for c in spec.cells()}
        self._queue: deque[tuple[int, int, int]] = deque(self._cells)
        self._trainers: dict[tuple[int, int, int], Trainer] = {}
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
            self.id = self.store.create_sweep(self.spec.name, self.spec.dataset, self.spec.to_dict(),
                                              getattr(self.data, "image_shape", None))
            self._workers = [threading.Thread(target=self._work, name=f"sae-sweep-{k}", daemon=True)
                             for k in range(min(self.parallel, len(self._queue)))]
            self._active = len(self._workers)
        for worker in self._workers:
            worker.start()
        return self

    def cancel(self, wait: bool = True, timeout: float = 30.0) -> None:
        """Stop the running cells and drop the queued ones; with ``wait``, join the worker threads."""
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
                with self._lock:
                    self._set(index, status=RunStatus.FAILED, reason=f"{type(exc).__name__}: {exc}")
        with self._lock:
            self._active -= 1
            last = self._active == 0
        if last and self.id is not None:
            try:
                self.store.update_sweep(self.id, RunStatus.CANCELLED if self._cancelled else RunStatus.FINISHED)
            except StoreError:
                pass

    def _run_cell(self, cell: Cell) -> None:
        index = cell.index
        try:
            run_id = self.store.create(f"{self.spec.name}: {cell.label}", self.spec.dataset, cell.model_config,
                                       cell.train_config, sweep_id=self.id)
            recorder = RunRecorder(self.store, run_id, interval=self.interval, X=self.data.X,
                                   labels=getattr(self.data, "labels", None), probe=self.probe)
            with warnings.catch_warnings():  # Dataset.X is read-only; the trainer copies it
                warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
                trainer = Trainer(self.data.X, cell.model_config, cell.train_config, slots=self.slots,
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
            except StoreError:
                pass
            return
        trainer.start()
        trainer.join()
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


__all__ = ["SweepSpec", "Sweep", "SweepError", "SweepProgress", "SweepResults", "CellState", "Cell",
           "sweep_results", "load_sweep", "METRICS", "MAX_CELLS", "MAX_AXIS"]
