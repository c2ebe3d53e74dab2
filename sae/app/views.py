"""What the live pages compute from a job's snapshot before drawing it (no Streamlit): the KL page's zoom and
per-unit numbers, the filters' order, the reconstructions shown, the Train page's deltas.

Each function takes plain arrays (a snapshot's weights, ``sae.app.derived.Derived`` views) and returns arrays or
small records; the pages only pass widget values in and draw what comes out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import torch

from sae.core.loss import kl_divergence

UNIT_ORDERS = ("unit", "rho_hat", "norm")  # unit_order's ``by``
SAMPLE_PICKS = ("fixed", "worst", "best")  # pick_samples' ``pick``


# ------------------------------------------------------------------------------------- KL penalty

def kl_zoom_limit(rho: float, rho_hat: np.ndarray) -> float:
    """The right end of a zoom on the KL valley that shows every unit: max(3ρ, 1.25·max finite ρ̂ⱼ, 0.02),
    at most 1."""
    rho_hat = np.asarray(rho_hat, dtype=float)
    finite = rho_hat[np.isfinite(rho_hat)]
    return float(min(1.0, max(3 * rho, 1.25 * finite.max() if finite.size else 0.0, 0.02)))


@dataclass(frozen=True)
class KLUnits:
    """Each unit's penalty scale·KL(ρ‖ρ̂ⱼ) (ρ̂ clipped to [0, 1]) and what the KL page says about it.

    Attributes:
        per_unit (s,): the penalties; total: their sum (the sparsity term of J).
        above, below: units with ρ̂ⱼ above / below ρ.
        worst: the most penalised unit (0 if there are none).
    """

    per_unit: np.ndarray
    total: float
    above: int
    below: int
    worst: int


def kl_units(rho: float, rho_hat: np.ndarray, scale: float = 1.0) -> KLUnits:
    """:class:`KLUnits` of the units' ρ̂ (by ``sae.core.loss.kl_divergence``, the function training uses)."""
    rho_hat = np.asarray(rho_hat)  # compared in its own dtype (float32 for a snapshot's)
    clipped = np.asarray(np.clip(rho_hat, 0, 1), dtype=np.float64)
    per_unit = scale * kl_divergence(float(rho), torch.as_tensor(clipped)).numpy()
    return KLUnits(per_unit=per_unit, total=float(per_unit.sum()), above=int((rho_hat > rho).sum()),
                   below=int((rho_hat < rho).sum()), worst=int(np.argmax(per_unit)) if len(per_unit) else 0)


# ------------------------------------------------------------------------------------- filters

def unit_weights(weights: Mapping[str, np.ndarray], decoder: bool = False) -> np.ndarray:
    """(s, n) one row per hidden unit: the encoder's W₁, or the decoder's W₂ transposed."""
    return weights["decoder.weight"].T if decoder else weights["encoder.weight"]


def unit_order(by: str, rho_hat: np.ndarray, norms: np.ndarray) -> np.ndarray:
    """The units in the order a filter grid shows them: "unit" (0..s-1), "rho_hat" or "norm" (highest first;
    ties keep unit order)."""
    if by == "rho_hat":
        return np.argsort(-np.asarray(rho_hat), kind="stable")
    if by == "norm":
        return np.argsort(-np.asarray(norms), kind="stable")
    if by == "unit":
        return np.arange(len(norms))
    raise ValueError(f"unknown order {by!r}; choose one of {', '.join(UNIT_ORDERS)}.")


# ------------------------------------------------------------------------------------- reconstructions

def pick_samples(errors: np.ndarray, n: int, pick: str = "fixed") -> np.ndarray:
    """Indices of the n samples to show: "fixed" (the first n; a fair sample of a job's subset, which is kept in
    the stratified order of ``sae.app.subset``), "worst" / "best" (highest / lowest error first; ties keep sample
    order)."""
    errors = np.asarray(errors)
    if pick == "worst":
        return np.argsort(-errors, kind="stable")[:n]
    if pick == "best":
        return np.argsort(errors, kind="stable")[:n]
    if pick == "fixed":
        return np.arange(min(n, len(errors)))
    raise ValueError(f"unknown pick {pick!r}; choose one of {', '.join(SAMPLE_PICKS)}.")


def fills_unit_interval(X: np.ndarray) -> bool:
    """Whether the values span exactly [0, 1] (digits, MNIST): such images are shown as they are; others
    (e.g. whitened patches in [0.1, 0.9]) are stretched."""
    X = np.asarray(X)
    return bool(X.size) and float(X.min()) == 0.0 and float(X.max()) == 1.0


# ------------------------------------------------------------------------------------- the Train page

def shown_deltas(deltas: Mapping[str, float | None]) -> dict[str, float | None]:
    """The headline changes worth showing: None for a missing, non-finite or zero change."""
    return {k: v if v is not None and math.isfinite(v) and v != 0 else None for k, v in deltas.items()}


def rho_target(penalty: str, rho: float) -> float | None:
    """The target ρ a view should draw: ρ under the KL penalty, None under L1 and TopK (they have no target)."""
    return float(rho) if penalty == "kl" else None


__all__ = ["rho_target", "kl_zoom_limit", "KLUnits", "kl_units", "unit_weights", "unit_order", "pick_samples",
           "fills_unit_interval", "shown_deltas", "UNIT_ORDERS", "SAMPLE_PICKS"]
