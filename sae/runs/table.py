"""The lab notebook behind the Runs and Sweep pages: pure helpers on recorded runs and sweeps.

No Streamlit here (the pages and ``sae.ui.share`` wire these to widgets):

- :func:`default_run_name`: what a recorded run is called until the user renames it.
- :func:`run_label`, :func:`sweep_label`: a recorded run or sweep in one line, for a picker.
- :func:`filter_runs` with ``RUN_SORTS`` and ``STATUS_FILTERS``: the Runs page's filters; :func:`live_run_ids`:
  which runs still train (the page redraws while there are any); :func:`default_comparison`: what a first
  visit compares.
- :func:`run_table`: recorded runs -> a pandas DataFrame (hyperparameters, final metrics and owner, one row per run);
  :func:`live_changes`: the hyperparameters changed while the run trained (its row shows the final values, its
  name, given at creation, the starting ones).
- :func:`continuation`: the TrainConfig that continues a run stopped at a given step (a finished run
  gets one more training budget of the same length).
- :func:`image_shape_for`: how to show a model's filters as pictures (square inputs: 64 -> 8x8).
- :func:`best_cell`: the cell of a sweep that is best by one metric.

The sweeps training in this process are kept by :class:`sae.runs.sweep.SweepRegistry`.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Collection, Sequence

import numpy as np

from sae.core.config import ModelConfig, TrainConfig
from sae.runs.owners import Identity, owner_label
from sae.training.status import ACTIVE_STATUSES, RunStatus
from sae.training.trainer import steps_per_epoch

if TYPE_CHECKING:  # imported lazily: pandas is only needed by the pages
    import pandas as pd

    from sae.runs.records import RunRecord
    from sae.runs.store import RunStore
    from sae.runs.sweep_results import SweepResults
    from sae.runs.sweep_table import SweepRecord

# how each sweep metric ranks cells: "min" lower is better, "max" higher is better, "target": closest to rho
METRIC_GOAL = {"reconstruction": "min", "probe_accuracy": "max", "dead_units": "min", "rho_hat_mean": "target",
               "total": "min"}


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


# the Runs page's sort choices: label -> (RunStore.list order_by, descending)
RUN_SORTS = {"last updated": ("updated", True), "created": ("created", True), "name": ("name", False),
             "reconstruction error": ("reconstruction", False), "probe accuracy": ("probe_accuracy", True),
             "dead units": ("dead_units", False), "total loss": ("total", False)}
# the statuses a run can show (RunRecord.display_status), in the order the status filter offers them
STATUS_FILTERS = tuple(s.value for s in (RunStatus.FINISHED, RunStatus.STOPPED, RunStatus.RUNNING, RunStatus.PAUSED,
                                         RunStatus.QUEUED, RunStatus.DIVERGED, RunStatus.INTERRUPTED, RunStatus.IDLE))


def run_label(record: "RunRecord | None", run_id: str = "") -> str:
    """``name · status · 30 Nov 06:26:08`` (local time of creation); the id's first 8 digits for a run not found."""
    if record is None:
        return run_id[:8]
    return f"{record.name} · {record.display_status} · {datetime.fromtimestamp(record.created):%d %b %H:%M:%S}"


def sweep_label(record: "SweepRecord") -> str:
    """``name · 3×2(×hidden sizes) · 30 Nov 06:26:08``: a recorded sweep, its grid and when it started."""
    spec = record.spec
    shape = f"{len(spec.get('rhos', []))}×{len(spec.get('betas', []))}" + \
        (f"×{len(spec['hidden_sizes'])}" if spec.get("hidden_sizes") else "")
    return f"{record.name} · {shape} · {datetime.fromtimestamp(record.created):%d %b %H:%M:%S}"


def filter_runs(records: Sequence["RunRecord"], *, search: str = "", datasets: Collection[str] = (),
                statuses: Collection[str] = (), sweep_cells: bool = True) -> list["RunRecord"]:
    """The records the Runs page's filters let through, in their order; an empty filter lets everything through.

    Args:
        search: a case-insensitive substring of the name.
        datasets, statuses: allowed data set names and shown statuses (``display_status``: ``interrupted`` too).
        sweep_cells: False leaves out the runs that are cells of a sweep.
    """
    needle = (search or "").lower()
    return [r for r in records
            if (not needle or needle in r.name.lower()) and (not datasets or r.dataset in datasets)
            and (not statuses or r.display_status in statuses) and (sweep_cells or r.sweep_id is None)]


def live_run_ids(records: Sequence["RunRecord"]) -> set[str]:
    """Ids of the runs that hold or wait for a training slot (shown as running or queued): their rows still change."""
    return {r.id for r in records if r.display_status in ACTIVE_STATUSES}


def default_comparison(store: "RunStore", n: int = 2) -> list[str]:
    """What a first visit compares: the ``n`` latest finished runs, runs trained on their own before sweep cells."""
    finished = store.list(status=RunStatus.FINISHED)
    return [r.id for r in sorted(finished, key=lambda r: r.sweep_id is not None)][:n]


def _origin(record: "RunRecord") -> str:
    if record.sweep_id is not None:
        return "sweep"
    if record.parent_id is not None:
        return "continued"
    if record.train_config is None or record.reason == "imported":
        return "imported"
    return "trained"


# the live hyperparameters as the Runs page names them
LIVE_SYMBOLS = {"rho": "ρ", "beta": "β", "weight_decay": "λ", "lr": "lr"}


def live_changes(record: "RunRecord") -> str:
    """``ρ 0.01→0.05 · β 3→1``: the live hyperparameters whose final value differs from the one the run started
    with (its train config as created; the default name shows those); ``""`` when none changed."""
    start, final = record.train_config, record.current_train_config
    if start is None or final is None:
        return ""
    return " · ".join(f"{symbol} {getattr(start, k):g}→{getattr(final, k):g}" for k, symbol in LIVE_SYMBOLS.items()
                      if getattr(start, k) != getattr(final, k))


TABLE_COLUMNS = ("name", "status", "dataset", "n_hidden", "rho", "beta", "changed", "reconstruction", "rho_hat_mean",
                 "dead_units", "probe_accuracy", "total", "lambda", "lr", "optimizer", "activation", "penalty", "step",
                 "epoch", "elapsed", "origin", "owner", "created", "id")


def run_table(records: Sequence["RunRecord"], viewer: Identity | None = None) -> "pd.DataFrame":
    """One row per run: name, status, where it came from, whose it is, hyperparameters in effect, final metrics,
    times.

    ``owner`` is the run's owner as ``viewer`` sees it (:func:`sae.runs.owners.owner_label`: ``you``,
    ``someone else``, ``nobody``; a teacher and the local user, None, see the owner's name).

    ``rho``, ``beta``, ``lambda``, ``lr`` are the final values (in effect at the last write); ``changed`` says
    which of them changed while the run trained, from what (:func:`live_changes`), as a run's name keeps the
    values it started with. Times are local ``datetime`` values; unknown metrics are NaN (missing); ``id`` is the
    last column.
    """
    import pandas as pd

    rows = []
    for record in records:
        row = record.row()
        row["origin"] = _origin(record)
        row["owner"] = owner_label(record.owned_by, viewer)
        row["changed"] = live_changes(record)
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


__all__ = ["default_run_name", "run_label", "sweep_label", "filter_runs", "live_run_ids", "default_comparison",
           "run_table", "live_changes", "LIVE_SYMBOLS", "continuation", "steps_per_epoch", "image_shape_for",
           "best_cell", "METRIC_GOAL", "TABLE_COLUMNS", "RUN_SORTS", "STATUS_FILTERS"]
