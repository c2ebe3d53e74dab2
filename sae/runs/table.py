"""The lab notebook behind the Runs and Sweep pages: pure helpers on recorded runs, and this process's sweeps.

No Streamlit here (``sae.ui.share`` wires these to widgets):

- :func:`default_run_name`: what a recorded run is called until the user renames it.
- :func:`run_table`: recorded runs -> a pandas DataFrame (hyperparameters and final metrics, one row per run).
- :func:`continuation`: the TrainConfig that continues a run stopped at a given step (a finished run
  gets one more training budget of the same length).
- :func:`image_shape_for`: how to show a model's filters as pictures (square inputs: 64 -> 8x8).
- :func:`best_cell`: the cell of a sweep that is best by one metric.
- :class:`SweepRegistry`: the sweeps training in this process, by sweep id. They belong to the server
  (like the run store), not to the browser session that started them: closing the tab does not stop them.
"""

from __future__ import annotations

import math
import threading
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from sae.core.config import ModelConfig, TrainConfig
from sae.training.trainer import steps_per_epoch

if TYPE_CHECKING:  # imported lazily: pandas and the sweep machinery are only needed by the pages
    import pandas as pd

    from sae.training.slots import TrainingSlots
    from sae.runs.store import RunRecord, RunStore
    from sae.runs.sweep import Sweep, SweepResults, SweepSpec

MAX_RUNNING_SWEEPS = 4  # per process; each also shares the server's training slots
KEEP_FINISHED_SWEEPS = 16  # finished sweeps kept in memory for their live progress view
# how each sweep metric ranks cells: "min" lower is better, "max" higher is better, "target": closest to rho
METRIC_GOAL = {"reconstruction": "min", "probe_accuracy": "max", "dead_units": "min", "rho_hat_mean": "target",
               "total": "min"}
METRIC_LABELS = {"reconstruction": "reconstruction error ½‖x̂−x‖²", "rho_hat_mean": "mean ρ̂",
                 "dead_units": "dead units", "probe_accuracy": "linear-probe accuracy", "total": "total loss J"}


def default_run_name(dataset: str, model_config: ModelConfig, train_config: TrainConfig | None) -> str:
    """``digits · 16 sigmoid · KL ρ=0.02 β=3`` (names need not be unique; the table shows ids and times)."""
    head = f"{dataset} · {model_config.n_hidden} {model_config.activation}"
    if train_config is None:
        return head
    if train_config.penalty == "kl":
        return f"{head} · KL ρ={train_config.rho:g} β={train_config.beta:g}"
    if train_config.penalty == "l1":
        return f"{head} · L1 β={train_config.beta:g}"
    return f"{head} · TopK k={model_config.topk}"


def _origin(record: "RunRecord") -> str:
    if record.sweep_id is not None:
        return "sweep"
    if record.parent_id is not None:
        return "continued"
    if record.train_config is None or record.reason == "imported":
        return "imported"
    return "trained"


TABLE_COLUMNS = ("name", "status", "dataset", "n_hidden", "rho", "beta", "reconstruction", "rho_hat_mean", "dead_units",
                 "probe_accuracy", "total", "lambda", "lr", "optimizer", "activation", "penalty", "step", "epoch",
                 "elapsed", "origin", "created", "id")


def run_table(records: Sequence["RunRecord"]) -> "pd.DataFrame":
    """One row per run: name, status, where it came from, hyperparameters in effect, final metrics, times.

    Times are local ``datetime`` values; unknown metrics are NaN (missing); ``id`` is the last column.
    """
    import pandas as pd

    rows = []
    for record in records:
        row = record.row()
        row["origin"] = _origin(record)
        row["created"] = datetime.fromtimestamp(record.created)
        rows.append({k: row.get(k) for k in TABLE_COLUMNS})
    frame = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    for column in ("rho", "beta", "lambda", "lr", "epoch", "reconstruction", "rho_hat_mean", "probe_accuracy",
                   "total", "elapsed"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    for column in ("n_hidden", "step", "dead_units"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("Int64")
    return frame


def continuation(train_config: TrainConfig, step: int, n_samples: int) -> TrainConfig:
    """The config that continues a run stopped at ``step``: unchanged while the run has steps left,
    else one more budget of the same length (whole epochs, so the dashboard's settings can show it)."""
    if train_config.optimizer == "lbfgs":
        return train_config if step < train_config.max_iter else \
            replace(train_config, max_iter=int(step) + train_config.max_iter)
    per_epoch = steps_per_epoch(train_config, n_samples)
    total = max(1, round(train_config.epochs * per_epoch))
    if step < total:
        return train_config
    return replace(train_config, epochs=float(math.ceil(step / per_epoch + train_config.epochs)))


def image_shape_for(n_inputs: int, known: tuple[int, int] | None = None) -> tuple[int, int] | None:
    """``known`` if it fits ``n_inputs``, else a square side when n_inputs is a perfect square >= 16."""
    if known is not None and known[0] * known[1] == n_inputs:
        return tuple(known)  # type: ignore[return-value]
    side = math.isqrt(n_inputs)
    return (side, side) if side * side == n_inputs and side >= 4 else None


def best_cell(results: "SweepResults", metric: str, hidden: int = 0) -> tuple[int, int] | None:
    """(rho index, beta index) of the best finished cell by ``metric`` (see METRIC_GOAL), or None if none has it."""
    grid = np.asarray(results.grid(metric, hidden), dtype=float)
    if not np.isfinite(grid).any():
        return None
    goal = METRIC_GOAL.get(metric, "min")
    if goal == "max":
        score = np.where(np.isfinite(grid), -grid, np.inf)
    elif goal == "target":  # mean rho_hat closest to the cell's target rho, on a log scale
        rhos = np.asarray(results.rhos, dtype=float)[:, None]
        score = np.where(np.isfinite(grid) & (grid > 0), np.abs(np.log(np.maximum(grid, 1e-12) / rhos)), np.inf)
    else:
        score = np.where(np.isfinite(grid), grid, np.inf)
    i, j = np.unravel_index(int(np.argmin(score)), score.shape)
    return (int(i), int(j)) if np.isfinite(score[i, j]) else None


class SweepRegistry:
    """The sweeps started in this process, by sweep id; thread-safe.

    A sweep trains in its own worker threads and records every cell in the run store, so a page only
    needs its id: :meth:`get` gives the live :class:`sae.runs.sweep.Sweep` (progress, cancel) while this
    process runs it; after a restart :func:`sae.runs.sweep.load_sweep` reads the same results from the store.
    """

    def __init__(self, max_running: int = MAX_RUNNING_SWEEPS, keep: int = KEEP_FINISHED_SWEEPS) -> None:
        self.max_running = max_running
        self.keep = keep
        self._lock = threading.Lock()
        self._sweeps: dict[str, "Sweep"] = {}

    def start(self, spec: "SweepSpec", store: "RunStore", data: Any, *, parallel: int = 2,
              slots: "TrainingSlots | None" = None, interval: float = 2.0) -> "Sweep":
        """Start a sweep in the background and register it. Raises SweepError (e.g. too many running)."""
        from sae.runs.sweep import Sweep, SweepError

        with self._lock:
            if sum(not s.done for s in self._sweeps.values()) >= self.max_running:
                raise SweepError(f"{self.max_running} sweeps are already training on this server; wait for one "
                                 "to finish or cancel it.")
            sweep = Sweep(spec, store, data, parallel=parallel, slots=slots, interval=interval).start()
            self._sweeps[sweep.id] = sweep  # type: ignore[index]
            finished = [k for k, s in self._sweeps.items() if s.done]
            for key in finished[:max(0, len(finished) - self.keep)]:
                del self._sweeps[key]
        return sweep

    def get(self, sweep_id: str | None) -> "Sweep | None":
        with self._lock:
            return self._sweeps.get(sweep_id) if sweep_id else None

    def running(self) -> list["Sweep"]:
        with self._lock:
            return [s for s in self._sweeps.values() if not s.done]

    def cancel_all(self, wait: bool = True, timeout: float = 30.0) -> None:
        """Cancel every running sweep (tests, shutdown)."""
        for sweep in self.running():
            sweep.cancel(wait=wait, timeout=timeout)


__all__ = ["default_run_name", "run_table", "continuation", "steps_per_epoch", "image_shape_for", "best_cell",
           "SweepRegistry", "METRIC_GOAL", "METRIC_LABELS", "TABLE_COLUMNS", "MAX_RUNNING_SWEEPS"]
