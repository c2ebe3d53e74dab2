"""sae.app.views: what the live pages compute before drawing (KL zoom and units, filter order, samples, deltas)."""

import math

import numpy as np
import pytest
import torch

from sae.app import views
from sae.core.loss import kl_divergence


def test_kl_zoom_limit_shows_every_unit_and_the_valley():
    assert views.kl_zoom_limit(0.05, np.array([0.01, 0.2])) == pytest.approx(0.25)  # 1.25 x the largest unit
    assert views.kl_zoom_limit(0.05, np.array([0.01, 0.02])) == pytest.approx(0.15)  # 3 rho
    assert views.kl_zoom_limit(0.001, np.array([np.nan, 0.001])) == pytest.approx(0.02)  # NaN ignored, floor
    assert views.kl_zoom_limit(0.1, np.array([0.95])) == 1.0
    assert views.kl_zoom_limit(0.05, np.array([])) == pytest.approx(0.15)


def test_kl_units_match_the_training_kl():
    rho_hat = np.array([0.01, 0.05, 0.5, 1.2], dtype=np.float32)
    u = views.kl_units(0.05, rho_hat, scale=3.0)
    ref = 3.0 * kl_divergence(0.05, torch.as_tensor(np.clip(rho_hat, 0, 1).astype(np.float64))).numpy()
    np.testing.assert_allclose(u.per_unit, ref)
    assert u.total == pytest.approx(ref.sum()) and u.above == 2 and u.below == 1 and u.worst == 3
    assert views.kl_units(0.05, np.array([])).worst == 0


def test_unit_weights_and_order():
    weights = {"encoder.weight": np.arange(6.0).reshape(3, 2), "decoder.weight": np.arange(6.0).reshape(2, 3)}
    assert views.unit_weights(weights) is weights["encoder.weight"]
    assert views.unit_weights(weights, decoder=True).shape == (3, 2)
    rho_hat, norms = np.array([0.1, 0.3, 0.3]), np.array([2.0, 1.0, 3.0])
    assert views.unit_order("unit", rho_hat, norms).tolist() == [0, 1, 2]
    assert views.unit_order("rho_hat", rho_hat, norms).tolist() == [1, 2, 0]  # ties keep unit order
    assert views.unit_order("norm", rho_hat, norms).tolist() == [2, 0, 1]
    with pytest.raises(ValueError, match="unknown order"):
        views.unit_order("size", rho_hat, norms)


def test_pick_samples():
    errors = np.array([0.3, 0.1, 0.5, 0.1])
    assert views.pick_samples(errors, 2).tolist() == [0, 1]
    assert views.pick_samples(errors, 10, "fixed").tolist() == [0, 1, 2, 3]
    assert views.pick_samples(errors, 2, "worst").tolist() == [2, 0]
    assert views.pick_samples(errors, 3, "best").tolist() == [1, 3, 0]
    with pytest.raises(ValueError):
        views.pick_samples(errors, 2, "random")


def test_fills_unit_interval_and_shown_deltas():
    assert views.fills_unit_interval(np.array([[0.0, 0.5], [1.0, 0.2]]))
    assert not views.fills_unit_interval(np.array([[0.1, 0.9]])) and not views.fills_unit_interval(np.zeros((0, 2)))
    shown = views.shown_deltas({"a": 0.5, "b": 0.0, "c": None, "d": math.nan, "e": -math.inf, "f": -2.0})
    assert shown == {"a": 0.5, "b": None, "c": None, "d": None, "e": None, "f": -2.0}
