"""sae.evaluation.health: a run that kills all its units or whose loss stalls says so."""

import numpy as np

from sae.evaluation.health import STALL_FRACTION, run_health


def _history(total, sparsity=None):
    total = np.asarray(total, dtype=float)
    return {"step": np.arange(len(total), dtype=float), "total": total,
            "sparsity": np.zeros_like(total) if sparsity is None else np.asarray(sparsity, dtype=float)}


def test_all_units_dead_is_reported():
    warnings = run_health(_history(np.linspace(5, 1, 100)), np.full(36, 1e-12), rho=0.02)
    assert len(warnings) == 1 and "all 36 units are dead" in warnings[0]


def test_a_loss_held_up_by_the_penalty_that_stopped_falling_is_reported():
    """SGD at lr 3 on patches: J stays at 24.3, nearly all of it beta * sum KL of units stuck far from rho."""
    total = np.r_[np.linspace(70, 24.3, 40), np.full(160, 24.3) + np.random.default_rng(0).normal(0, 0.02, 160)]
    warnings = run_health(_history(total, total - 0.45), np.full(36, 0.3), rho=0.02)
    assert len(warnings) == 1 and "stopped falling" in warnings[0] and f"{STALL_FRACTION:.0%}" in warnings[0]


def test_a_converged_run_is_not_a_stall():
    """A healthy run also flattens at the end, with noisy minibatch losses; its penalty is a small part of J."""
    rng = np.random.default_rng(0)
    total = np.r_[np.linspace(60, 0.5, 40), 0.45 + rng.normal(0, 0.03, 160)]
    assert run_health(_history(total, np.full(200, 0.001)), np.full(36, 0.02), rho=0.02) == []
    assert run_health(_history([]), np.full(36, np.nan), rho=0.02) == []  # nothing yet: nothing to say
    assert run_health(_history(np.linspace(60, 20, 200), np.linspace(59, 19, 200)), np.full(36, 0.3), 0.02) == []
