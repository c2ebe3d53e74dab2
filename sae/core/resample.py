"""Resampling dead units: :func:`resample_units` re-initialises chosen hidden units towards the inputs the model
reconstructs worst (after the resampling of Anthropic's dictionary-learning work, "Towards Monosemanticity", 2023,
adapted to sigmoid units with a KL target).

For the k units U = (j_1, ..., j_k) and the k inputs x_(1), ..., x_(k) with the largest squared reconstruction
error ||x_hat_i - x_i||^2 (worst first; over at most ``max_samples`` rows of X, evenly spaced, so the choice is
deterministic), with d_i = (x_(i) - x_bar) / ||x_(i) - x_bar|| the unit direction from the mean input x_bar:

    W1[j_i, :] = a * d_i             a: the mean norm of the other units' encoder rows
    b1[j_i]    = g(rho) - a * d_i . x_bar      (so the unit's activity on the mean input is rho:
                                               g = logit for sigmoid, atanh(2 rho - 1) for tanh, 0 for relu)
    W2[:, j_i] = c * d_i             c: the mean norm of the other units' decoder columns

A resampled unit fires most on inputs like x_(i), the input the code explains worst, and sits at the target rate
elsewhere, so the KL penalty neither kills it again at once nor pins it high. The optimiser's moments of the
resampled rows are reset by the caller (``sae.training.minibatch.MinibatchOptimizer.reset_units``).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from sae.core.config import ConfigError
from sae.core.model import SparseAutoencoder

MAX_SAMPLES = 8192  # rows of X scored for the worst reconstructions


def _pre_activation_at(rho: float, activation: str) -> float:
    """The pre-activation z with activity rho: logit(rho) (sigmoid), atanh(2 rho - 1) (tanh), 0 (relu)."""
    if activation == "sigmoid":
        return math.log(rho / (1.0 - rho))
    if activation == "tanh":
        return math.atanh(2.0 * rho - 1.0)
    return 0.0


def worst_reconstructed(model: SparseAutoencoder, X: torch.Tensor, k: int,
                        max_samples: int = MAX_SAMPLES) -> torch.Tensor:
    """Indices (k,) into X (m, n) of the k rows with the largest squared reconstruction error, worst first,
    among at most ``max_samples`` evenly spaced rows."""
    m = len(X)
    rows = torch.arange(m) if m <= max_samples else torch.linspace(0, m - 1, max_samples).round().long()
    with torch.no_grad():
        x = X[rows]
        x_hat, _ = model(x)
        error = ((x_hat - x) ** 2).sum(dim=1)
    order = torch.argsort(error, descending=True, stable=True)
    return rows[order[:k]]


def resample_units(model: SparseAutoencoder, X: torch.Tensor, units: Sequence[int], rho: float,
                   max_samples: int = MAX_SAMPLES) -> torch.Tensor:
    """Re-initialise ``units`` of ``model`` in place (see the module docstring); X (m, n) the training data.
    Returns the rows of X (k,) each unit was pointed at. ConfigError for a unit out of range or repeated."""
    s = model.config.n_hidden
    units = [int(u) for u in units]
    if len(set(units)) != len(units) or any(not 0 <= u < s for u in units):
        raise ConfigError(f"units to resample must be distinct numbers in [0, {s}), got {units}.")
    if not units:
        return torch.empty(0, dtype=torch.long)
    if not 0.0 < rho < 1.0:
        raise ConfigError(f"rho must lie in (0, 1) to resample towards it, got {rho}.")
    chosen = worst_reconstructed(model, X, len(units), max_samples)
    if len(chosen) < len(units):  # fewer samples than units: reuse the worst ones in turn
        chosen = chosen[torch.arange(len(units)) % len(chosen)]
    index = torch.tensor(units)
    others = torch.ones(s, dtype=torch.bool)
    others[index] = False
    if not others.any():
        others[:] = True
    W1, b1, W2 = model.encoder.weight, model.encoder.bias, model.decoder.weight
    with torch.no_grad():
        x_bar = X.mean(dim=0)
        d = X[chosen] - x_bar
        norms = d.norm(dim=1, keepdim=True)
        d = torch.where(norms > 0, d / norms.clamp_min(1e-12), torch.zeros_like(d))
        a = W1[others].norm(dim=1).mean()
        c = W2[:, others].norm(dim=0).mean()
        W1[index] = a * d
        b1[index] = _pre_activation_at(rho, model.config.activation) - a * (d @ x_bar)
        W2[:, index] = (c * d).T
    return chosen


__all__ = ["resample_units", "worst_reconstructed", "MAX_SAMPLES"]
