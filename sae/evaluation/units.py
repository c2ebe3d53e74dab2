"""The state of each hidden unit, from its mean activation rho_hat_j relative to the target rho and from its activity.

One definition, used by the Train page's "Dead units", the Filters page's outlines and labels and the Activations
page (``sae.app.derived.Derived.units``). With a KL target rho (sigmoid or tanh units; tanh measured on (a+1)/2):

    dead       rho_hat_j < DEAD_RATIO * rho  and  max_i a_ij <= DEAD_ACTIVITY   (silent on every sample)
    low        rho_hat_j < LOW_RATIO * rho   (and not dead; e.g. a unit that fires rarely but strongly)
    on target  LOW_RATIO * rho <= rho_hat_j <= HIGH_RATIO * rho
    high       rho_hat_j > HIGH_RATIO * rho
    dense      rho_hat_j > HIGH_RATIO * rho  and  rho_hat_j > DENSE_RHO_HAT       (on more than half the time)

A unit that fires weakly and often (beta = 50 holds rho_hat_j = 0.0198 at rho = 0.02 with activations that never
exceed 0.1) is on target, not dead: "never above 0.1" alone called 30 of 36 such units dead.

Without a KL target (L1 or TopK penalties, ReLU units) there is no rho to compare with: a unit is dead when it is
never active (activity > 0 for ReLU, > DEAD_ACTIVITY otherwise), dense when it is active on more than
DENSE_RHO_HAT of the samples, and alive otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np
import torch

from sae.core.model import unit_activity

DEAD_RATIO = 0.1  # dead: rho_hat_j below this fraction of rho ...
DEAD_ACTIVITY = 0.1  # ... and activity never above this on the [0, 1] scale (ReLU: never above 0)
LOW_RATIO = 0.5  # low: rho_hat_j below this fraction of rho
HIGH_RATIO = 2.0  # high: rho_hat_j above this multiple of rho
DENSE_RHO_HAT = 0.5  # dense: high and rho_hat_j above this (no target: active on more than this share of samples)


class UnitState(str, Enum):
    """A hidden unit's state (see the module docstring); equals its value ("dead", "on target", ...)."""

    DEAD = "dead"
    LOW = "low"
    ON_TARGET = "on target"
    HIGH = "high"
    DENSE = "dense"
    ALIVE = "alive"  # no KL target to compare with: active on some samples, not dense

    __str__ = str.__str__
    __format__ = str.__format__


TARGET_STATES = (UnitState.DEAD, UnitState.LOW, UnitState.ON_TARGET, UnitState.HIGH, UnitState.DENSE)
NO_TARGET_STATES = (UnitState.DEAD, UnitState.ALIVE, UnitState.DENSE)


@dataclass(frozen=True)
class UnitStates:
    """The states of s units. state (s,): UnitState per unit; rho_hat (s,); max_activity (s,) on the [0, 1] scale
    (ReLU: the raw maximum); rho: the target (None without a KL target)."""

    state: np.ndarray
    rho_hat: np.ndarray
    max_activity: np.ndarray
    rho: float | None

    @property
    def dead(self) -> np.ndarray:
        """Indices of the dead units (k,)."""
        return np.flatnonzero(self.state == UnitState.DEAD)

    def counts(self) -> dict[UnitState, int]:
        """Units per state, every state of this kind of run listed (zeros included), in order."""
        kinds = TARGET_STATES if self.rho is not None else NO_TARGET_STATES
        return {k: int((self.state == k).sum()) for k in kinds}

    def summary(self) -> str:
        """One line: "36 units: 30 on target · 4 low · 2 high · 0 dense · 0 dead"."""
        counts = self.counts()
        order = [k for k in counts if k != UnitState.DEAD] + [UnitState.DEAD]
        return f"{len(self.state)} units: " + " · ".join(f"{counts[k]} {k}" for k in order)


def unit_states(activations: np.ndarray, rho: float | None, activation: str = "sigmoid") -> UnitStates:
    """The state of every unit from its activations (m, s) on a set of samples; ``rho``: the KL target, or None
    for runs without one (L1, TopK, ReLU). Thresholds: the module's constants (see its docstring)."""
    u = np.asarray(unit_activity(torch.as_tensor(np.asarray(activations)), activation), dtype=np.float64)
    s = u.shape[1] if u.ndim == 2 else 0
    rho_hat = u.mean(axis=0) if len(u) else np.full(s, np.nan)
    top = u.max(axis=0) if len(u) else np.full(s, np.nan)
    state = np.empty(s, dtype=object)
    if rho is None or activation == "relu":
        floor = 0.0 if activation == "relu" else DEAD_ACTIVITY
        share = (u > floor).mean(axis=0) if len(u) else np.zeros(s)
        state[:] = UnitState.ALIVE
        state[share > DENSE_RHO_HAT] = UnitState.DENSE
        state[~(top > floor)] = UnitState.DEAD
        return UnitStates(state, rho_hat, top, None)
    state[:] = UnitState.ON_TARGET
    state[rho_hat < LOW_RATIO * rho] = UnitState.LOW
    state[(rho_hat < DEAD_RATIO * rho) & ~(top > DEAD_ACTIVITY)] = UnitState.DEAD
    state[rho_hat > HIGH_RATIO * rho] = UnitState.HIGH
    state[(rho_hat > HIGH_RATIO * rho) & (rho_hat > DENSE_RHO_HAT)] = UnitState.DENSE
    return UnitStates(state, rho_hat, top, float(rho))


def thresholds_text(rho: float | None, activation: str = "sigmoid") -> str:
    """The thresholds in words, for the help text on screen."""
    if rho is None or activation == "relu":
        floor = "0" if activation == "relu" else f"{DEAD_ACTIVITY:g}"
        return (f"No KL target: dead = never active (activity never above {floor}); dense = active on more "
                f"than {DENSE_RHO_HAT:.0%} of the samples; alive otherwise.")
    low, high = LOW_RATIO * rho, HIGH_RATIO * rho
    return (f"ρ̂ⱼ against the target ρ = {rho:g}: dead = ρ̂ⱼ < {DEAD_RATIO * rho:g} (ρ/{1 / DEAD_RATIO:g}) and "
            f"activity never above {DEAD_ACTIVITY:g}; low = ρ̂ⱼ < {low:g}; on target = {low:g}–{high:g}; "
            f"high = ρ̂ⱼ > {high:g}; dense = high and ρ̂ⱼ > {DENSE_RHO_HAT:g}.")


__all__ = ["UnitState", "UnitStates", "unit_states", "thresholds_text", "DEAD_RATIO", "DEAD_ACTIVITY", "LOW_RATIO",
           "HIGH_RATIO", "DENSE_RHO_HAT", "TARGET_STATES", "NO_TARGET_STATES"]
