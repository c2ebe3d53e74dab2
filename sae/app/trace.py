"""Activation distributions recorded over training: :class:`DistributionTrace`, one histogram row of rho_hat_j
and of all activations per published snapshot, bounded in memory. A :class:`sae.app.job.Job` feeds it from
the trainer's observers; the pages draw :meth:`DistributionTrace.arrays`.
"""

from __future__ import annotations

import threading

import numpy as np
import torch

from sae.core.config import ModelConfig
from sae.core.model import SparseAutoencoder
from sae.training.trainer import Snapshot

TRACE_SUBSET = 256  # samples whose activation histogram is recorded over training
TRACE_ROWS = 240  # rows kept by the distribution-over-time recorder (thinned by halving)
HIST_BINS = 50


class DistributionTrace:
    """Histograms of rho_hat_j and of all activations, one row per published snapshot.

    Fed from the training thread as one of the trainer's observers (it must not
    reference the Job, so a dropped session's Job can be garbage-collected). Bounded: when full,
    every other row is dropped and only every second snapshot is recorded from then on.
    """

    def __init__(self, X_subset: np.ndarray, model_config: ModelConfig, rows: int = TRACE_ROWS,
                 bins: int = HIST_BINS) -> None:
        self.X = torch.as_tensor(np.array(X_subset, dtype=np.float32))
        self.model_config = model_config
        self.activation = model_config.activation
        self.rows, self.bins = rows, bins
        self.rho_edges = np.concatenate([[0.0], np.geomspace(1e-3, 1.0, bins)])  # log bins: 0.5 and 0.01 both show
        # sigmoid / relu (the latter rescaled per row to [0, 1] by its max, see record()): log bins, as
        # sparse codes put most activations far below 0.1; tanh spans [-1, 1]: linear bins
        self.act_log = self.activation != "tanh"
        self.act_edges = np.concatenate([[0.0], np.geomspace(1e-4, 1.0, bins)]) if self.act_log \
            else np.linspace(-1.0, 1.0, bins + 1)
        self._lock = threading.Lock()
        self._steps: list[float] = []
        self._rho: list[np.ndarray] = []
        self._act: list[np.ndarray] = []
        self._act_max: list[float] = []
        self._stride, self._seen = 1, 0

    def record(self, snap: Snapshot) -> None:
        """Called by the trainer after each publication (training thread)."""
        self._seen += 1
        if (self._seen - 1) % self._stride or not np.isfinite(snap.rho_hat).all():
            return
        with torch.no_grad():
            a = SparseAutoencoder.from_weights(self.model_config, snap.weights).encode(self.X).numpy().ravel()
        top = float(a.max()) if self.activation == "relu" else 1.0
        edges = self.act_edges * max(top, 1e-6) if self.activation == "relu" else self.act_edges
        rho_counts = np.histogram(np.clip(snap.rho_hat, 0, 1), self.rho_edges)[0]
        act_counts = np.histogram(a, edges)[0]
        with self._lock:
            if self._steps and snap.step == self._steps[-1]:
                self._steps.pop(), self._rho.pop(), self._act.pop(), self._act_max.pop()
            self._steps.append(float(snap.step))
            self._rho.append(rho_counts / max(1, len(snap.rho_hat)))
            self._act.append(act_counts / max(1, a.size))
            self._act_max.append(top)
            if len(self._steps) > self.rows:
                for seq in (self._steps, self._rho, self._act, self._act_max):
                    del seq[1::2]
                self._stride *= 2

    def arrays(self) -> dict[str, np.ndarray]:
        """step (r,), rho (r, bins) fractions, act (r, bins) fractions, edges, act_max (r,)."""
        with self._lock:
            n = len(self._steps)
            return {"step": np.array(self._steps),
                    "rho": np.array(self._rho).reshape(n, self.bins),
                    "act": np.array(self._act).reshape(n, self.bins),
                    "act_max": np.array(self._act_max),
                    "rho_edges": self.rho_edges, "act_edges": self.act_edges, "act_log": self.act_log}


__all__ = ["DistributionTrace", "TRACE_SUBSET", "TRACE_ROWS", "HIST_BINS"]
