"""Whether a run is going anywhere: :func:`run_health` reads its history and last rho_hat and says what is wrong.

Two failures that otherwise end as "finished" with no word (SGD at lr 3 on patches: every unit dies within a few
epochs and J stays at 24.3, almost all of it beta * sum_j KL(rho || ~0)):

- all units dead: every rho_hat_j (the last step's, per unit) below DEAD_RATIO * rho (without a KL target: below
  DEAD_MEAN, on the [0, 1] activity scale). The code carries nothing; the output is at best the mean input.
- J stalled, held up by the penalty: over the last STALL_FRACTION of the recorded history, the median of J in
  that window's last third fell by less than STALL_DROP relative to the median of its first third, while the
  sparsity term is more than PENALTY_SHARE of J (units stuck far from rho, their gradient gone). A run that
  has converged also stops falling, with its noisy minibatch J; but there the penalty is a small part of J, so
  it stays quiet.

The Trainer appends the warnings to its "finished" reason; the Train page shows them while the run goes.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from sae.evaluation.units import DEAD_RATIO

STALL_FRACTION = 0.25  # the last share of the run over which J must still fall
STALL_DROP = 0.01  # ... by at least this fraction (median of the window's last third vs its first third)
PENALTY_SHARE = 0.5  # a stall counts when the sparsity term is more than this share of J
MIN_ROWS = 24  # history rows needed before a stall is judged
DEAD_MEAN = 1e-6  # without a KL target: a unit whose mean activity is below this is dead


def dead_line(rho: float | None) -> float:
    """The rho_hat_j below which a unit is dead: DEAD_RATIO * rho, or DEAD_MEAN without a KL target (rho None)."""
    return DEAD_MEAN if rho is None else DEAD_RATIO * rho


def all_units_dead(rho_hat: np.ndarray, rho: float | None) -> bool:
    """Whether every unit's rho_hat_j (s,) is below the dead line (:func:`dead_line`)."""
    rho_hat = np.asarray(rho_hat, dtype=np.float64)
    if rho_hat.size == 0 or not np.isfinite(rho_hat).all():
        return False
    return bool((rho_hat < dead_line(rho)).all())


def thirds(values: np.ndarray) -> tuple[float, float]:
    """(median of the first third, median of the last third) of ``values`` (at least one value each): a trend
    that a noisy minibatch series cannot fake."""
    values = np.asarray(values, dtype=np.float64)
    third = max(1, len(values) // 3)
    return float(np.median(values[:third])), float(np.median(values[-third:]))


def stalled(history: Mapping[str, np.ndarray]) -> tuple[float, float, float] | None:
    """(J's median at the end, its relative change over the window, the penalty's share of J) when J stopped
    falling while the sparsity term holds it up (see the module docstring); None otherwise."""
    total = np.asarray(history.get("total", ()), dtype=np.float64)
    sparsity = np.asarray(history.get("sparsity", np.zeros_like(total)), dtype=np.float64)
    if len(total) < MIN_ROWS or not np.isfinite(total).all():
        return None
    window = max(MIN_ROWS // 2, int(round(STALL_FRACTION * len(total))))
    first, last = thirds(total[-window:])
    third = max(1, window // 3)
    share = float(np.median(sparsity[-third:] / np.where(total[-third:] > 0, total[-third:], np.inf)))
    if first <= 0 or last < first * (1 - STALL_DROP) or share <= PENALTY_SHARE:
        return None
    return last, last / first - 1, share


def run_health(history: Mapping[str, np.ndarray], rho_hat: np.ndarray, rho: float | None) -> list[str]:
    """The warnings about a run (empty when it looks fine), as sentences for the status line.

    Args:
        history: the Trainer's history columns (``total``, ``sparsity``; rows in step order).
        rho_hat: (s,) the last step's rho_hat_j.
        rho: the KL target, or None for runs without one (L1, TopK).
    """
    warnings = []
    rho_hat = np.asarray(rho_hat)
    if all_units_dead(rho_hat, rho):
        limit = f"ρ̂ⱼ < {DEAD_MEAN:g}" if rho is None else f"ρ̂ⱼ < {dead_line(rho):g} = ρ/{1 / DEAD_RATIO:g}"
        warnings.append(f"all {rho_hat.size} units are dead ({limit} on the last batch): the code carries nothing. "
                        "Lower the learning rate (or β) and train again.")
    stall = stalled(history)
    if stall is not None:
        value, change, share = stall
        warnings.append(f"J has stopped falling at {value:.4g} ({100 * change:+.1f}% over the last "
                        f"{STALL_FRACTION:.0%} of the run) and the sparsity penalty is {share:.0%} of it: the units "
                        "are stuck away from ρ.")
    return warnings


__all__ = ["run_health", "all_units_dead", "dead_line", "thirds", "stalled", "STALL_FRACTION", "STALL_DROP", "PENALTY_SHARE", "MIN_ROWS",
           "DEAD_MEAN"]
