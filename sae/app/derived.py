"""Per-snapshot views of a job: activations, reconstructions and sparsity numbers on a fixed
subset of at most ``SUBSET_SIZE`` samples. Computed lazily, once per snapshot version (the Job
caches the latest), so every page reads the same numbers without redoing them. No Streamlit.
"""

from __future__ import annotations

import time
from functools import cached_property

import numpy as np
import torch

from sae.evaluation import metrics
from sae.evaluation.units import UnitStates, unit_states
from sae.core.config import ModelConfig
from sae.data import Dataset
from sae.core.model import SparseAutoencoder
from sae.training.trainer import Snapshot


class Derived:
    """Everything a page derives from one snapshot: (m,) subset rows, (s,) hidden units."""

    def __init__(self, snapshot: Snapshot, data: Dataset, subset: np.ndarray, model_config: ModelConfig,
                 penalty: str = "kl") -> None:
        """``penalty``: the run's sparsity penalty; only "kl" has a target rho for the unit states."""
        self.snapshot = snapshot
        self.penalty = penalty
        self.data = data
        self.subset = subset
        self.model_config = model_config
        self.created = time.monotonic()

    @property
    def activation(self) -> str:
        return self.model_config.activation

    @cached_property
    def model(self) -> SparseAutoencoder:
        return SparseAutoencoder.from_weights(self.model_config, self.snapshot.weights)

    @cached_property
    def X(self) -> np.ndarray:
        """(m, n) the subset's inputs."""
        return self.data.X[self.subset]

    @cached_property
    def labels(self) -> np.ndarray | None:
        return None if self.data.labels is None else self.data.labels[self.subset]

    @cached_property
    def A(self) -> np.ndarray:
        """(m, s) hidden activations of the subset."""
        return metrics.hidden_activations(self.model, self.X)

    @cached_property
    def rho_hat(self) -> np.ndarray:
        """(s,) each unit's mean activation over the subset (tanh measured on (a+1)/2)."""
        return metrics.rho_hat(self.A, self.activation)

    @property
    def rho(self) -> float | None:
        """The KL target rho in effect, or None for a run without one (L1, TopK)."""
        return float(self.snapshot.hyper["rho"]) if self.penalty == "kl" else None

    @cached_property
    def units(self) -> UnitStates:
        """Each unit's state on the subset (dead, low, on target, high, dense: ``sae.evaluation.units``)."""
        return unit_states(self.A, self.rho, self.activation)

    @cached_property
    def dead(self) -> np.ndarray:
        """Indices of the dead units on the subset (``sae.evaluation.units``: rho_hat_j < rho/10 and never
        active)."""
        return self.units.dead

    @cached_property
    def l0(self) -> np.ndarray:
        """(m,) active units per sample."""
        return metrics.l0_per_sample(self.A, self.activation)

    @cached_property
    def X_hat(self) -> np.ndarray:
        with torch.no_grad():
            return self.model.decode(torch.from_numpy(self.A)).numpy()

    @cached_property
    def errors(self) -> np.ndarray:
        """(m,) per-sample reconstruction error 1/2 ||x_hat - x||^2."""
        return 0.5 * ((self.X_hat - self.X) ** 2).sum(axis=1)

    @cached_property
    def encoder_norms(self) -> np.ndarray:
        """(s,) ||W1_j||, the norm of each unit's filter."""
        return np.linalg.norm(self.snapshot.weights["encoder.weight"], axis=1)

    def headline(self) -> dict[str, float]:
        """The Train page's metrics."""
        snap = self.snapshot
        return {"loss": snap.losses.get("total", float("nan")),
                "rho_hat": float(np.mean(self.rho_hat)),
                "dead": float(len(self.dead)),
                "l0": float(np.mean(self.l0))}
