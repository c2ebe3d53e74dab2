"""The live views never mislead: a queued run says so, the target ρ is drawn as it was at each step and only
under the KL penalty, and the compare histogram's ρ labels do not overlap."""
from __future__ import annotations

import numpy as np

from sae.runs.compare import rho_hat_histograms
from sae.viz import curves, distributions, run_figures, style
from test_curves import history


def _message(fig) -> str:
    return fig.layout.annotations[0].text


def test_a_queued_run_says_queued_not_press_train():
    empty = {"step": np.array([])}
    for fig in (curves.loss_curves(empty, status="queued"), curves.rho_hat_band(empty, status="queued"),
                distributions.distribution_over_time(np.array([]), np.zeros((0, 3)), np.arange(4.0), "y", "t",
                                                     status="queued")):
        assert "Queued" in _message(fig) and "press Train" not in _message(fig)
    assert "press Train" in _message(curves.loss_curves(empty))
    assert style.waiting_message("queued") != style.waiting_message("idle") == style.waiting_message(None)


def test_rho_hat_band_without_a_target_under_l1_or_topk():
    names = {t.name for t in curves.rho_hat_band(history(), target=False).data}
    assert "target ρ" not in names and "mean ρ̂" in names


def test_the_target_over_time_follows_the_history_not_todays_rho():
    steps = np.arange(0, 100, 10)
    fractions = np.random.default_rng(0).random((10, 5))
    rho_steps, rho = np.arange(100.0), np.where(np.arange(100) < 50, 0.01, 0.2)  # changed mid-run
    fig = distributions.distribution_over_time(steps, fractions, np.linspace(0, 1, 6), "ρ̂", "t",
                                               target=(rho_steps, rho))
    line = next(t for t in fig.data if t.name == "target ρ")
    y = np.asarray(line.y, dtype=float)
    assert y.min() == np.float32(0.01) and y.max() == np.float32(0.2)  # both values, each where it applied
    assert not fig.layout.shapes  # no flat line at today's value
    flat = distributions.distribution_over_time(steps, fractions, np.linspace(0, 1, 6), "ρ̂", "t", target=0.2)
    assert len(flat.layout.shapes) == 1  # a number still draws a flat line


def test_compare_histogram_rho_labels_do_not_overlap():
    hist = rho_hat_histograms({"a": np.full(9, 0.05), "b": np.full(4, 0.06), "c": np.full(5, 0.2)}, bins=10)
    fig = run_figures.compare_rho_hat(hist, {"a": "A", "b": "B", "c": "C"}, {"a": 0.05, "b": 0.06, "c": 0.2})
    labels = [a for a in fig.layout.annotations if a.text.startswith("ρ")]
    assert len(labels) == 3 and len(fig.layout.shapes) == 3
    assert len({a.y for a in labels}) == 3  # each target's label at its own height
