"""sae.viz.filters: the units' filters and weights as figures, checked without a browser."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from sae.viz import filters


def payload(fig: go.Figure) -> int:
    return len(fig.to_json())


def test_filters_figure_is_one_small_image_with_unit_targets():
    rng = np.random.default_rng(0)
    W = rng.normal(size=(64, 64))
    rho_hat = rng.random(64)
    order = np.argsort(-rho_hat)
    fig = filters.filters_figure(W, (8, 8), order=order, dead=[3, 5], rho_hat=rho_hat,
                                 norms=np.linalg.norm(W, axis=1), selected=7)
    image = fig.data[0]
    assert image.type == "image" and image.source.startswith("data:image/png;base64,")
    targets = fig.data[1]
    assert len(targets.x) == 64 and targets.customdata[0][0] == order[0]
    assert len(fig.layout.shapes) == 2 * 2 + 1  # two dead units (box + slash), one selected
    assert payload(fig) < 40_000


def test_weights_heatmap_for_non_image_data():
    fig = filters.weights_heatmap(np.random.default_rng(0).normal(size=(2, 4)), dead=[1])
    assert fig.data[0].type == "heatmap"
    assert list(fig.data[0].y) == ["0", "1 ✕"]
