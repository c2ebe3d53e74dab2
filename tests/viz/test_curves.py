"""sae.viz.curves: the objective over training and the KL penalty as figures, checked without a browser."""

from __future__ import annotations

import json

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from figure_cases import history  # also imported from here by test_live_truth

from sae.core.loss import kl_divergence
from sae.viz import curves, style


def payload(fig: go.Figure) -> int:
    return len(fig.to_json())


def test_loss_curves_split_by_term_and_thinned():
    fig = curves.loss_curves(history(), "kl")
    names = [t.name for t in fig.data]
    assert len(fig.data) == 4
    assert any("β·KL" in n for n in names) and any("total" in n for n in names)
    assert all(isinstance(t, go.Scatter) for t in fig.data)  # SVG, not WebGL
    assert all(len(t.x) <= style.MAX_POINTS for t in fig.data)
    assert fig.layout.yaxis.type == "linear"
    assert curves.loss_curves(history(), "kl", log_y=True).layout.yaxis.type == "log"
    assert len(curves.loss_curves(history(), "topk").data) == 3  # no penalty term under TopK
    assert payload(fig) < 150_000


def test_loss_curves_empty_history_says_press_train():
    fig = curves.loss_curves({"step": np.array([])})
    assert "Train" in fig.layout.annotations[0].text


def test_rho_hat_band_has_mean_spread_and_target():
    fig = curves.rho_hat_band(history())
    names = {t.name for t in fig.data}
    assert {"mean ρ̂", "target ρ", "±1 std", "min–max"} <= names
    target = next(t for t in fig.data if t.name == "target ρ")
    assert np.allclose(np.asarray(target.y, dtype=float), 0.05)


def test_kl_curve_matches_the_training_kl_and_marks_units():
    rho, beta = 0.2, 3.0
    rho_hat = np.array([0.05, 0.2, 0.5, 0.9])
    fig = curves.kl_curve(rho, beta, rho_hat, derivative=True, compare=[0.05, 0.2])
    main = next(t for t in fig.data if t.name.startswith("3·KL"))
    x, y = np.asarray(main.x), np.asarray(main.y)
    assert 0 < x.min() and x.max() < 1
    expected = beta * kl_divergence(rho, torch.as_tensor(x, dtype=torch.float64)).numpy()
    assert np.allclose(y, expected)
    assert y[np.argmin(np.abs(x - rho))] == pytest.approx(0, abs=1e-4)  # minimum at rho
    units = next(t for t in fig.data if t.name.startswith("hidden units"))
    assert np.allclose(units.x, rho_hat)
    assert np.allclose(units.y, beta * kl_divergence(rho, torch.as_tensor(rho_hat)).numpy())
    assert list(units.customdata) == [0, 1, 2, 3]
    assert "unit" in units.hovertemplate and "penalty" in units.hovertemplate
    assert any(t.name.startswith("ρ = 0.05") for t in fig.data)  # compare curve; 0.2 is the main one
    assert not any(t.name == "ρ = 0.2" for t in fig.data)
    assert any(t.yaxis == "y2" for t in fig.data)  # derivative on the right axis


def test_kl_curve_without_units_or_beta_zero():
    fig = curves.kl_curve(0.05, 0.0, np.full(3, np.nan))
    assert len(fig.data) == 1


def test_curves_serialise_to_json():
    for fig in (curves.loss_curves(history(50)), curves.kl_curve(0.05, 3, np.full(5, 0.1))):
        json.loads(fig.to_json())
