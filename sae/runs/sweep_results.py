"""A sweep's outcome as grids: :class:`SweepResults` (metrics, run ids, statuses and filters on the rho x beta
(x hidden size) grid) gathered from the run store by :func:`sweep_results`, during a sweep or after a restart
(:func:`load_sweep`). The heatmaps and small multiples of the Sweep page are drawn from these."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping

import numpy as np

from sae.runs.errors import StoreError
from sae.runs.sweep_spec import SweepError, SweepSpec
from sae.training.status import RunStatus

if TYPE_CHECKING:
    from sae.runs.store import RunStore

logger = logging.getLogger(__name__)

METRICS = ("reconstruction", "rho_hat_mean", "dead_units", "probe_accuracy", "total")


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
            except StoreError as exc:  # drawn without its filters; the metrics still show
                logger.debug("sweep %s: the filters of run %s cannot be read: %s", sweep_id, record.id, exc)
                filters.pop(index, None)
    return SweepResults(sweep_id, tuple(spec.rhos), tuple(spec.betas), spec.sizes, metrics, run_ids, states,
                        filters, image_shape)


def load_sweep(store: RunStore, sweep_id: str, *, weights: bool = True) -> tuple[SweepSpec, SweepResults]:
    """A recorded sweep's spec and results (e.g. after a restart)."""
    record = store.sweeps.get(sweep_id)
    spec = SweepSpec.from_dict(record.spec)
    return spec, sweep_results(store, spec, sweep_id, weights=weights, image_shape=record.image_shape)



__all__ = ["SweepResults", "sweep_results", "load_sweep", "METRICS"]
