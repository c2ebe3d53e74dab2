"""sae.viz.distributions: histograms and distributions over training as figures, checked without a browser."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from sae.viz import distributions


def payload(fig: go.Figure) -> int:
    return len(fig.to_json())


def test_histograms_are_binned_on_the_server():
    A = np.random.default_rng(0).random((1000, 64))
    fig = distributions.activation_histogram(A, "sigmoid")
    bars = fig.data[0]
    assert bars.type == "bar" and len(bars.x) == 50 and sum(bars.y) == A.size
    assert payload(fig) < 20_000
    fig = distributions.rho_hat_histogram(A.mean(0), rho=0.05)
    assert sum(fig.data[0].y) == 64
    assert any("target ρ" in (s.name or "") for s in fig.layout.shapes)
    l0 = np.array([0, 1, 1, 3])
    fig = distributions.l0_histogram(l0, 10)
    assert list(fig.data[0].y) == [1, 2, 0, 1]


def test_activation_heatmap_quantised_and_sorted_by_label():
    A = np.random.default_rng(0).random((500, 20))
    labels = np.arange(500) % 3
    fig = distributions.activation_heatmap(A, labels, max_samples=120)
    z = np.asarray(fig.data[0].z)
    assert z.dtype == np.uint8 and z.shape == (120, 20)
    assert payload(fig) < 20_000


def test_distribution_over_time():
    steps = np.arange(10) * 100
    fractions = np.random.default_rng(0).dirichlet(np.ones(50), size=10)
    fig = distributions.distribution_over_time(steps, fractions, np.linspace(0, 1, 51), "ρ̂", "t", target=0.05)
    assert np.asarray(fig.data[0].z).shape == (50, 10)
    assert "Train" in distributions.distribution_over_time([], np.zeros((0, 50)), np.linspace(0, 1, 51), "y", "t") \
        .layout.annotations[0].text
