"""sae.viz.figures: pure functions to Plotly figures, checked without a browser."""

import json

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from sae.viz import figures, style
from sae.viz.images import tile_filters
from sae.core.loss import kl_divergence


def history(n=5000, s=0):
    rng = np.random.default_rng(s)
    steps = np.arange(n, dtype=float)
    h = {"step": steps, "epoch": steps / 10, "time": steps / 100}
    for k in ("total", "reconstruction", "sparsity", "weight_decay"):
        h[k] = rng.random(n) + 0.1
    h["total"] = h["reconstruction"] + h["sparsity"] + h["weight_decay"]
    h |= {"rho_hat_mean": rng.random(n) * 0.1, "rho_hat_std": rng.random(n) * 0.01,
          "rho_hat_min": np.zeros(n), "rho_hat_max": np.full(n, 0.3), "rho": np.full(n, 0.05),
          "beta": np.full(n, 3.0), "lambda": np.full(n, 1e-4), "lr": np.full(n, 1e-2)}
    return h


def payload(fig: go.Figure) -> int:
    return len(fig.to_json())


def test_thin_keeps_ends_and_caps_points():
    assert style.thin(10).tolist() == list(range(10))
    idx = style.thin(100_000, 2000)
    assert len(idx) <= 2000 and idx[0] == 0 and idx[-1] == 99_999
    assert np.all(np.diff(idx) > 0)


def test_loss_curves_split_by_term_and_thinned():
    fig = figures.loss_curves(history(), "kl")
    names = [t.name for t in fig.data]
    assert len(fig.data) == 4
    assert any("β·KL" in n for n in names) and any("total" in n for n in names)
    assert all(isinstance(t, go.Scatter) for t in fig.data)  # SVG, not WebGL
    assert all(len(t.x) <= style.MAX_POINTS for t in fig.data)
    assert fig.layout.yaxis.type == "linear"
    assert figures.loss_curves(history(), "kl", log_y=True).layout.yaxis.type == "log"
    assert len(figures.loss_curves(history(), "topk").data) == 3  # no penalty term under TopK
    assert payload(fig) < 150_000


def test_loss_curves_empty_history_says_press_train():
    fig = figures.loss_curves({"step": np.array([])})
    assert "Train" in fig.layout.annotations[0].text


def test_rho_hat_band_has_mean_spread_and_target():
    fig = figures.rho_hat_band(history())
    names = {t.name for t in fig.data}
    assert {"mean ρ̂", "target ρ", "±1 std", "min–max"} <= names
    target = next(t for t in fig.data if t.name == "target ρ")
    assert np.allclose(np.asarray(target.y, dtype=float), 0.05)


def test_kl_curve_matches_the_training_kl_and_marks_units():
    rho, beta = 0.2, 3.0
    rho_hat = np.array([0.05, 0.2, 0.5, 0.9])
    fig = figures.kl_curve(rho, beta, rho_hat, derivative=True, compare=[0.05, 0.2])
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
    fig = figures.kl_curve(0.05, 0.0, np.full(3, np.nan))
    assert len(fig.data) == 1


def test_filters_figure_is_one_small_image_with_unit_targets():
    rng = np.random.default_rng(0)
    W = rng.normal(size=(64, 64))
    rho_hat = rng.random(64)
    order = np.argsort(-rho_hat)
    fig = figures.filters_figure(W, (8, 8), order=order, dead=[3, 5], rho_hat=rho_hat,
                                 norms=np.linalg.norm(W, axis=1), selected=7)
    image = fig.data[0]
    assert image.type == "image" and image.source.startswith("data:image/png;base64,")
    targets = fig.data[1]
    assert len(targets.x) == 64 and targets.customdata[0][0] == order[0]
    assert len(fig.layout.shapes) == 2 * 2 + 1  # two dead units (box + slash), one selected
    assert payload(fig) < 40_000


def test_tile_positions_match_sae_images_layout():
    W = np.zeros((5, 12))
    W[2] = 1.0  # one bright filter
    img = tile_filters(W, (3, 4), normalize="none", border=1)
    x0, y0, x1, y1 = figures.tile_positions(5, (3, 4))[2]
    cell = img[int(y0 + 0.5):int(y1 + 0.5), int(x0 + 0.5):int(x1 + 0.5)]
    assert cell.shape == (3, 4) and np.all(cell == 1.0)


def test_weights_heatmap_for_non_image_data():
    fig = figures.weights_heatmap(np.random.default_rng(0).normal(size=(2, 4)), dead=[1])
    assert fig.data[0].type == "heatmap"
    assert list(fig.data[0].y) == ["0", "1 ✕"]


def test_histograms_are_binned_on_the_server():
    A = np.random.default_rng(0).random((1000, 64))
    fig = figures.activation_histogram(A, "sigmoid")
    bars = fig.data[0]
    assert bars.type == "bar" and len(bars.x) == 50 and sum(bars.y) == A.size
    assert payload(fig) < 20_000
    fig = figures.rho_hat_histogram(A.mean(0), rho=0.05)
    assert sum(fig.data[0].y) == 64
    assert any("target ρ" in (s.name or "") for s in fig.layout.shapes)
    l0 = np.array([0, 1, 1, 3])
    fig = figures.l0_histogram(l0, 10)
    assert list(fig.data[0].y) == [1, 2, 0, 1]


def test_activation_heatmap_quantised_and_sorted_by_label():
    A = np.random.default_rng(0).random((500, 20))
    labels = np.arange(500) % 3
    fig = figures.activation_heatmap(A, labels, max_samples=120)
    z = np.asarray(fig.data[0].z)
    assert z.dtype == np.uint8 and z.shape == (120, 20)
    assert payload(fig) < 20_000


def test_distribution_over_time():
    steps = np.arange(10) * 100
    fractions = np.random.default_rng(0).dirichlet(np.ones(50), size=10)
    fig = figures.distribution_over_time(steps, fractions, np.linspace(0, 1, 51), "ρ̂", "t", target=0.05)
    assert np.asarray(fig.data[0].z).shape == (50, 10)
    assert "Train" in figures.distribution_over_time([], np.zeros((0, 50)), np.linspace(0, 1, 51), "y", "t") \
        .layout.annotations[0].text


def test_hover_image_is_a_small_picture():
    x = np.zeros(64)
    x[::9] = 1.0  # a diagonal
    text = figures.hover_image(x, (8, 8))
    rows = text.split("<br>")
    assert len(rows) == 8 and all(len(r) == 16 for r in rows)
    assert rows[0].startswith(figures.SHADES[-1] * 2) and rows[0].endswith(figures.SHADES[0] * 2)
    big = figures.hover_image(np.random.default_rng(0).random(784), (28, 28), max_side=10)
    assert len(big.split("<br>")) == 10


def test_pca_scatter_2d_3d_with_labels_and_hover():
    rng = np.random.default_rng(0)
    coords, labels = rng.normal(size=(300, 3)), np.arange(300) % 10
    hover = ["pic"] * 300
    fig = figures.pca_scatter(coords, np.array([0.5, 0.2, 0.1]), labels, hover, dims=2)
    assert len(fig.data) == 10 and all(t.type == "scatter" for t in fig.data)  # SVG for a few hundred points
    big = figures.pca_scatter(rng.normal(size=(5000, 2)), np.array([0.5, 0.2]), dims=2)
    assert big.data[0].type == "scattergl"
    assert "PC1 (50.0%)" in fig.layout.xaxis.title.text
    assert "%{text}" in fig.data[0].hovertemplate
    fig3 = figures.pca_scatter(coords, np.array([0.5, 0.2, 0.1]), None, None, dims=3)
    assert len(fig3.data) == 1 and fig3.data[0].type == "scatter3d"


def test_reconstruction_figure_pairs_with_errors():
    rng = np.random.default_rng(0)
    X, X_hat = rng.random((8, 64)), rng.random((8, 64))
    err = 0.5 * ((X - X_hat) ** 2).sum(1)
    fig = figures.reconstruction_figure(X, X_hat, err, (8, 8), index=np.arange(10, 18))
    assert fig.data[0].type == "image"
    texts = [a.text for a in fig.layout.annotations]
    assert len(texts) == 8 and texts[0].startswith("#10") and f"{err[0]:.3g}" in texts[0]
    fig = figures.matrix_pair_figure(X[:, :4], X_hat[:, :4])
    assert [t.type for t in fig.data] == ["heatmap", "heatmap"]


def test_figures_serialise_to_json():
    for fig in (figures.loss_curves(history(50)), figures.kl_curve(0.05, 3, np.full(5, 0.1)),
                figures.probe_figure({"codes": 0.9, "raw": 0.8}, chance=0.1)):
        json.loads(fig.to_json())
