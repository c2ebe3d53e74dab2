"""sae.evaluation.units: a unit's state from its rho_hat_j relative to rho and from its activity."""

import numpy as np

from sae.evaluation.units import (DEAD_ACTIVITY, DEAD_RATIO, DENSE_RHO_HAT, HIGH_RATIO, LOW_RATIO, UnitState,
                                  thresholds_text, unit_states)


def _units(columns):
    """(m, s) activations from one (m,) column per unit."""
    return np.stack(columns, axis=1)


def test_a_weak_but_frequent_unit_on_target_is_not_dead():
    """beta = 50: a unit with rho_hat_j = 0.0198 (rho = 0.02) that never exceeds 0.1 was labelled 'dead'."""
    m, rho = 1000, 0.02
    rng = np.random.default_rng(0)
    A = _units([np.full(m, 0.0198) + rng.normal(0, 0.002, m),  # on target, never above 0.1
                np.full(m, 1e-6),  # silent: dead
                np.r_[0.9, np.zeros(m - 1)],  # fires once, strongly: rare (low), not dead
                np.full(m, 0.3),  # high
                np.full(m, 0.7)])  # dense
    states = unit_states(A, rho)
    assert states.state.tolist() == [UnitState.ON_TARGET, UnitState.DEAD, UnitState.LOW, UnitState.HIGH,
                                     UnitState.DENSE]
    assert states.dead.tolist() == [1]
    assert states.counts()[UnitState.ON_TARGET] == 1 and sum(states.counts().values()) == 5


def test_thresholds_are_stated():
    text = thresholds_text(0.02)
    for number in (f"{DEAD_RATIO * 0.02:g}", f"{DEAD_ACTIVITY:g}", f"{LOW_RATIO * 0.02:g}", f"{HIGH_RATIO * 0.02:g}",
                   f"{DENSE_RHO_HAT:g}"):
        assert number in text, (number, text)


def test_tanh_is_measured_on_the_unit_interval_and_relu_without_a_target():
    m = 200
    tanh = _units([np.full(m, -1.0), np.full(m, -0.96)])  # activity (a+1)/2: 0 and 0.02
    assert unit_states(tanh, 0.02, activation="tanh").state.tolist() == [UnitState.DEAD, UnitState.ON_TARGET]
    relu = _units([np.zeros(m), np.r_[np.zeros(m - 1), 5.0], np.full(m, 2.0)])  # no KL target: alive or not
    states = unit_states(relu, None, activation="relu")
    assert states.state.tolist() == [UnitState.DEAD, UnitState.ALIVE, UnitState.DENSE]
