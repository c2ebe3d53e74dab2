"""sae.viz.samples: inputs, reconstructions and codes as figures, checked without a browser."""

from __future__ import annotations

import json

import numpy as np

from sae.viz import samples


def test_hover_image_is_a_small_picture():
    x = np.zeros(64)
    x[::9] = 1.0  # a diagonal
    text = samples.hover_image(x, (8, 8))
    rows = text.split("<br>")
    assert len(rows) == 8 and all(len(r) == 16 for r in rows)
    assert rows[0].startswith(samples.SHADES[-1] * 2) and rows[0].endswith(samples.SHADES[0] * 2)
    big = samples.hover_image(np.random.default_rng(0).random(784), (28, 28), max_side=10)
    assert len(big.split("<br>")) == 10


def test_pca_scatter_2d_3d_with_labels_and_hover():
    rng = np.random.default_rng(0)
    coords, labels = rng.normal(size=(300, 3)), np.arange(300) % 10
    hover = ["pic"] * 300
    fig = samples.pca_scatter(coords, np.array([0.5, 0.2, 0.1]), labels, hover, dims=2)
    assert len(fig.data) == 10 and all(t.type == "scatter" for t in fig.data)  # SVG for a few hundred points
    big = samples.pca_scatter(rng.normal(size=(5000, 2)), np.array([0.5, 0.2]), dims=2)
    assert big.data[0].type == "scattergl"
    assert "PC1 (50.0%)" in fig.layout.xaxis.title.text
    assert "%{text}" in fig.data[0].hovertemplate
    fig3 = samples.pca_scatter(coords, np.array([0.5, 0.2, 0.1]), None, None, dims=3)
    assert len(fig3.data) == 1 and fig3.data[0].type == "scatter3d"


def test_reconstruction_figure_pairs_with_errors():
    rng = np.random.default_rng(0)
    X, X_hat = rng.random((8, 64)), rng.random((8, 64))
    err = 0.5 * ((X - X_hat) ** 2).sum(1)
    fig = samples.reconstruction_figure(X, X_hat, err, (8, 8), index=np.arange(10, 18))
    assert fig.data[0].type == "image"
    texts = [a.text for a in fig.layout.annotations]
    assert len(texts) == 8 and texts[0].startswith("#10") and f"{err[0]:.3g}" in texts[0]
    fig = samples.matrix_pair_figure(X[:, :4], X_hat[:, :4])
    assert [t.type for t in fig.data] == ["heatmap", "heatmap"]


def test_probe_figure_serialises_to_json():
    json.loads(samples.probe_figure({"codes": 0.9, "raw": 0.8}, chance=0.1).to_json())
