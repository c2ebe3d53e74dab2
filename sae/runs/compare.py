"""Comparing two to four recorded runs: curves on one axis, rho_hat histograms on shared bins, filters.

Pure functions on numpy arrays and :class:`sae.runs.store.RunRecord` values (no plotting, no Streamlit),
plus :func:`load_comparison`, which reads everything a comparison view draws from a RunStore.

- :func:`check_selection`: 2-4 distinct runs; for filters side by side, one input size.
- :func:`align_histories`: every run's curves on ONE x grid (step, epoch or time), at most
  ``max_points`` points: the union of the runs' own x values when it is small enough (exact values),
  else an even grid with each run linearly interpolated; NaN where a run has no data (before its
  first or after its last row), so shorter runs simply end.
- :func:`rho_hat_histograms`: counts and fractions of units per bin, on bins shared by all runs
  (fractions compare runs of different hidden sizes).
- :func:`differing_settings`: which hyperparameters tell the runs apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:
    from sae.runs.store import RunRecord, RunStore

MIN_RUNS, MAX_RUNS = 2, 4
MAX_POINTS = 2000
X_AXES = ("step", "epoch", "time")
DEFAULT_COLUMNS = ("total", "reconstruction", "sparsity", "weight_decay", "rho_hat_mean")
SETTINGS = ("dataset", "n_hidden", "activation", "decoder_activation", "topk", "rho", "beta", "weight_decay",
            "penalty", "optimizer", "lr", "batch_size", "epochs", "max_iter", "seed", "noise", "noise_level")


class CompareError(ValueError):
    """A selection of runs that cannot be compared as asked; the message says why."""


@dataclass(frozen=True)
class AlignedCurves:
    """Curves of several runs on one x grid.

    Attributes:
        x_name: ``step``, ``epoch`` or ``time``.
        x: (p,) the shared grid, p <= max_points, increasing.
        curves: column -> run key -> (p,) float64 values, NaN where that run has none.
    """

    x_name: str
    x: np.ndarray
    curves: dict[str, dict[str, np.ndarray]]

    def column(self, name: str) -> dict[str, np.ndarray]:
        if name not in self.curves:
            raise CompareError(f"no aligned column {name!r}; have {', '.join(self.curves)}.")
        return self.curves[name]


@dataclass(frozen=True)
class SharedHistogram:
    """Histograms of several runs on the same bins: edges (bins+1,), counts and fractions (bins,) per run."""

    edges: np.ndarray
    counts: dict[str, np.ndarray]
    fractions: dict[str, np.ndarray]

    @property
    def centers(self) -> np.ndarray:
        return (self.edges[:-1] + self.edges[1:]) / 2


def check_selection(records: Sequence["RunRecord"], *, filters: bool = False) -> list["RunRecord"]:
    """Return the records if 2-4 distinct runs are chosen (and, for ``filters``, all of one input size)."""
    records = list(records)
    if not MIN_RUNS <= len(records) <= MAX_RUNS:
        raise CompareError(f"choose between {MIN_RUNS} and {MAX_RUNS} runs to compare; {len(records)} chosen.")
    ids = [r.id for r in records]
    if len(set(ids)) != len(ids):
        raise CompareError("the same run is chosen twice; choose distinct runs.")
    if filters:
        sizes = {r.model_config.n_inputs for r in records}
        if len(sizes) > 1:
            shown = ", ".join(f"{r.name!r}: {r.model_config.n_inputs}" for r in records)
            raise CompareError(f"filters side by side need runs with the same input size; these have {shown}.")
    return records


def _grid(xs: list[np.ndarray], max_points: int) -> np.ndarray:
    union = np.unique(np.concatenate(xs)) if xs else np.empty(0)
    if len(union) <= max_points:
        return union
    return np.linspace(union[0], union[-1], max_points)


def align_histories(histories: Mapping[str, Mapping[str, np.ndarray]], columns: Sequence[str] = ("total",),
                    x: str = "step", max_points: int = MAX_POINTS) -> AlignedCurves:
    """Put the runs' curves on one x grid of at most ``max_points`` points.

    Args:
        histories: run key (id or name) -> history (column -> (rows,) array), as ``RunStore.history`` gives.
        columns: the curves wanted; every run must have them.
        x: the axis: ``step``, ``epoch`` or ``time`` (seconds of training).
        max_points: cap on the grid size (a chart ~1,000 px wide needs no more).
    """
    if x not in X_AXES:
        raise CompareError(f"align on one of {', '.join(X_AXES)}, not {x!r}.")
    if not isinstance(max_points, (int, np.integer)) or max_points < 2:
        raise CompareError(f"max_points must be a whole number >= 2, got {max_points!r}.")
    if not histories:
        raise CompareError("no runs to align.")
    xs = {}
    for key, history in histories.items():
        missing = [c for c in (x, *columns) if c not in history]
        if missing:
            reason = "has no recorded history yet" if not history else f"has no {', '.join(missing)} column"
            raise CompareError(f"run {key} {reason}.")
        values = np.asarray(history[x], dtype=np.float64)
        if values.ndim != 1 or len(values) == 0 or not np.isfinite(values).all():
            raise CompareError(f"run {key} has no usable {x} values.")
        if np.any(np.diff(values) < 0):
            raise CompareError(f"run {key}: its {x} values are not in increasing order.")
        xs[key] = values
    grid = _grid(list(xs.values()), int(max_points))
    curves: dict[str, dict[str, np.ndarray]] = {c: {} for c in columns}
    for key, history in histories.items():
        xr = xs[key]
        inside = (grid >= xr[0]) & (grid <= xr[-1])
        for column in columns:
            yr = np.asarray(history[column], dtype=np.float64)
            if yr.shape != xr.shape:
                raise CompareError(f"run {key}: column {column} and {x} have different lengths.")
            y = np.full(len(grid), np.nan)
            y[inside] = np.interp(grid[inside], xr, yr)
            curves[column][key] = y
    return AlignedCurves(x, grid, curves)


def rho_hat_histograms(rho_hats: Mapping[str, np.ndarray], bins: int = 40,
                       value_range: tuple[float, float] | None = None) -> SharedHistogram:
    """Histograms of each run's rho_hat_j on shared bins.

    Args:
        rho_hats: run key -> (n_hidden,) mean activations (in [0, 1]).
        bins: number of bins.
        value_range: (lo, hi); default [0, max rho_hat over all runs] (so rho = 0.01 runs are not
            squashed into one bin), widened to 1e-3 if every value is 0.
    """
    if not isinstance(bins, (int, np.integer)) or not 1 <= bins <= 1000:
        raise CompareError(f"bins must be a whole number between 1 and 1000, got {bins!r}.")
    if not rho_hats:
        raise CompareError("no rho_hat values to compare.")
    arrays = {}
    for key, values in rho_hats.items():
        values = np.asarray(values, dtype=np.float64).ravel()
        values = values[np.isfinite(values)]
        if values.size == 0:
            raise CompareError(f"run {key} has no recorded rho_hat values.")
        arrays[key] = np.clip(values, 0.0, 1.0)
    if value_range is None:
        hi = max(float(v.max()) for v in arrays.values())
        lo, hi = 0.0, max(hi, 1e-3)
    else:
        lo, hi = (float(v) for v in value_range)
        if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
            raise CompareError(f"value_range must be two finite numbers lo < hi, got {value_range!r}.")
    edges = np.linspace(lo, hi, int(bins) + 1)
    counts = {k: np.histogram(np.clip(v, lo, hi), edges)[0] for k, v in arrays.items()}
    fractions = {k: c / max(1, len(arrays[k])) for k, c in counts.items()}
    return SharedHistogram(edges, counts, fractions)


def _settings(record: "RunRecord") -> dict[str, Any]:
    mc, tc = record.model_config, record.current_train_config
    out: dict[str, Any] = {"dataset": record.dataset}
    for name in SETTINGS[1:]:
        source = mc if hasattr(mc, name) else tc
        out[name] = None if source is None else getattr(source, name, None)
    return out


def differing_settings(records: Sequence["RunRecord"]) -> dict[str, list[Any]]:
    """Setting -> its value in each run, for the settings that are not the same in all of them."""
    values = [_settings(r) for r in records]
    return {name: [v[name] for v in values] for name in SETTINGS if len({repr(v[name]) for v in values}) > 1}


@dataclass(frozen=True)
class Comparison:
    """What a comparison view draws, keyed by run id (``names`` maps ids to display names)."""

    records: list["RunRecord"]
    curves: AlignedCurves
    histograms: SharedHistogram | None  # None if no run has rho_hat recorded yet
    filters: dict[str, np.ndarray] = field(default_factory=dict)  # id -> encoder weights (s, n)
    missing: dict[str, str] = field(default_factory=dict)  # id -> why parts are missing (no weights, ...)

    @property
    def names(self) -> dict[str, str]:
        """Display names, made unique with a short id when two runs share a name."""
        counts: dict[str, int] = {}
        for r in self.records:
            counts[r.name] = counts.get(r.name, 0) + 1
        return {r.id: r.name if counts[r.name] == 1 else f"{r.name} ({r.id[:6]})" for r in self.records}


def load_comparison(store: "RunStore", run_ids: Sequence[str], *, columns: Sequence[str] = DEFAULT_COLUMNS,
                    x: str = "step", bins: int = 40, max_points: int = MAX_POINTS,
                    with_filters: bool = True) -> Comparison:
    """Read 2-4 runs from ``store`` and prepare their curves, rho_hat histograms and filters.

    Filters are loaded only if all runs share one input size (else ``missing`` says why); a run
    without weights or rho_hat yet is noted in ``missing`` instead of failing the whole view.
    """
    from sae.runs.store import StoreError

    records = check_selection([store.get(run_id) for run_id in run_ids])
    histories = {r.id: store.history(r.id) for r in records}
    present = [c for c in columns if all(c in h for h in histories.values())]
    curves = align_histories(histories, present or ("total",), x=x, max_points=max_points)
    missing: dict[str, str] = {}

    def note(run_id: str, why: str) -> None:
        missing[run_id] = f"{missing[run_id]}; {why}" if run_id in missing else why

    rho = {}
    for r in records:
        values = store.rho_hat(r.id)
        if values is None or values.size == 0 or not np.isfinite(values).any():
            note(r.id, "no rho_hat recorded yet")
        else:
            rho[r.id] = values
    histograms = rho_hat_histograms(rho, bins) if rho else None
    filters: dict[str, np.ndarray] = {}
    if with_filters:
        try:
            check_selection(records, filters=True)
        except CompareError as exc:
            for r in records:
                note(r.id, str(exc))
        else:
            for r in records:
                try:
                    filters[r.id] = store.load_model(r.id).encoder.weight.detach().numpy().copy()
                except StoreError as exc:
                    note(r.id, str(exc))
    return Comparison(records, curves, histograms, filters, missing)


__all__ = ["CompareError", "AlignedCurves", "SharedHistogram", "Comparison", "check_selection", "align_histories",
           "rho_hat_histograms", "differing_settings", "load_comparison", "MIN_RUNS", "MAX_RUNS", "X_AXES"]
