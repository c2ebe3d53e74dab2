"""Samples and their codes as Plotly figures: pure functions, no Streamlit.

- :func:`image_grid_figure`, :func:`reconstruction_figure`, :func:`matrix_pair_figure`: inputs and their
  reconstructions (images tiled into one picture; data that are not images as heatmaps);
- :func:`pca_scatter`: points projected on principal components, coloured by label, each hover a tiny
  picture of the input (:func:`hover_image`);
- :func:`probe_figure`: held-out accuracy of a linear probe on each representation.

The live ones are built as plain dicts (``sae.viz.style.figure``: no per-property validation).
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from sae.viz.images import tile, tile_images, tile_positions
from sae.viz.style import LABEL_COLORS, axis_title, base_layout, figure, image_parts, image_trace_figure, layout

WEBGL_ABOVE = 3000  # points in a 2-D scatter before WebGL is worth one of the browser's few WebGL contexts
SHADES = " ░▒▓█"  # hover "images": one shade per grey level, each pixel two characters wide


# ------------------------------------------------------------------------------------- inputs

def image_grid_figure(X: np.ndarray, image_shape: tuple[int, int], columns: int | None = None,
                      height: int | None = None, normalize: bool = False) -> go.Figure:
    """Rows of X (m, h*w) tiled into one picture (values clipped to [0, 1] unless ``normalize``)."""
    img = tile_images(np.asarray(X), image_shape, normalize="minmax" if normalize else "none",
                      columns=columns, border=1)
    return image_trace_figure(img, height)


def reconstruction_figure(X: np.ndarray, X_hat: np.ndarray, errors: np.ndarray, image_shape: tuple[int, int],
                          index: Sequence[int] | None = None, columns: int = 4, height: int | None = None,
                          normalize: bool = False) -> go.Figure:
    """Original | reconstruction pairs tiled in one picture, each captioned with its own error.

    X, X_hat: (m, h*w); errors: (m,) per-sample ½‖x̂ᵢ − xᵢ‖² (not a batch mean). Each cell is a white
    caption band over [x | x̂]; the captions are annotations placed in the bands.
    """
    X, X_hat = np.asarray(X, dtype=float), np.asarray(X_hat, dtype=float)
    m = len(X)
    h, w = image_shape
    pairs = np.concatenate([X.reshape(m, h, w), np.full((m, h, 1), np.nan), X_hat.reshape(m, h, w)], axis=2)
    if normalize:  # one scale per pair so that original and reconstruction stay comparable
        lo = np.nanmin(pairs.reshape(m, -1), axis=1)[:, None, None]
        hi = np.nanmax(pairs.reshape(m, -1), axis=1)[:, None, None]
        pairs = (pairs - lo) / np.where(hi > lo, hi - lo, 1.0)
    pairs = np.where(np.isnan(pairs), 1.0, np.clip(pairs, 0, 1))  # white gutter between the two
    band = max(3, int(math.ceil(0.45 * h)))
    cells = np.concatenate([np.ones((m, band, 2 * w + 1)), pairs], axis=1)
    border = max(1, h // 6)
    cols = min(columns, m)
    img = tile(cells, columns=cols, border=border, border_value=1.0)
    rows = -(-m // cols)
    image, layout_ = image_parts(img, height or int(min(720, max(260, 150 * rows))))
    boxes = tile_positions(m, (band + h, 2 * w + 1), cols, border)
    index = np.arange(m) if index is None else np.asarray(index)
    notes = [dict(x=(x0 + x1) / 2, y=y0 + band / 2, text=f"#{index[k]} · err {errors[k]:.3g}", showarrow=False,
                  yanchor="middle", font=dict(size=11, color="#333"))
             for k, (x0, y0, x1, _) in enumerate(boxes)]
    targets = dict(type="scatter", x=(boxes[:, 0] + boxes[:, 2]) / 2, y=boxes[:, 1] + band + h / 2,
                   mode="markers", marker=dict(opacity=0, size=30), showlegend=False,
                   customdata=np.stack([index, errors], 1),
                   hovertemplate="sample #%{customdata[0]:.0f}<br>left: input x · right: x̂"
                                 "<br>½‖x̂−x‖² = %{customdata[1]:.4g}<extra></extra>")
    return figure([image, targets], {**layout_, "annotations": notes})


def matrix_pair_figure(X: np.ndarray, X_hat: np.ndarray, index: Sequence[int] | None = None,
                       height: int | None = None) -> go.Figure:
    """Inputs and reconstructions of non-image data side by side as heatmaps (rows = samples)."""
    from plotly.subplots import make_subplots

    X, X_hat = np.asarray(X, dtype=float), np.asarray(X_hat, dtype=float)
    index = np.arange(len(X)) if index is None else np.asarray(index)
    lo, hi = float(min(X.min(), X_hat.min())), float(max(X.max(), X_hat.max()))
    fig = make_subplots(1, 2, subplot_titles=("input x", "reconstruction x̂"), horizontal_spacing=0.08)
    rows = [f"#{i}" for i in index]
    for col, Z in ((1, X), (2, X_hat)):
        fig.add_trace(go.Heatmap(z=Z.astype(np.float32), y=rows, colorscale="Viridis", zmin=lo, zmax=hi,
                                 showscale=col == 2, colorbar=dict(thickness=12),
                                 hovertemplate="sample %{y}<br>feature %{x}<br>%{z:.4f}<extra></extra>"),
                      row=1, col=col)
    fig.update_yaxes(autorange="reversed", type="category")
    return layout(fig, height=height or int(min(560, 140 + 18 * len(X))))


# ----------------------------------------------------------------------------------- codes

def hover_image(x: np.ndarray, image_shape: tuple[int, int], max_side: int = 12, lo: float | None = None,
                hi: float | None = None) -> str:
    """A tiny picture of one input for a hover label: rows of shade characters joined by <br>.

    Larger images are box-downsampled to at most ``max_side`` pixels a side.
    """
    h, w = image_shape
    img = np.asarray(x, dtype=float).reshape(h, w)
    f = max(1, math.ceil(max(h, w) / max_side))
    if f > 1:
        H, W = -(-h // f) * f, -(-w // f) * f
        pad = np.full((H, W), np.nan)
        pad[:h, :w] = img
        img = np.nanmean(pad.reshape(H // f, f, W // f, f), axis=(1, 3))
    lo = float(np.min(img)) if lo is None else lo
    hi = float(np.max(img)) if hi is None else hi
    levels = np.rint(np.clip((img - lo) / (hi - lo if hi > lo else 1.0), 0, 1) * (len(SHADES) - 1)).astype(int)
    return "<br>".join("".join(SHADES[v] * 2 for v in row) for row in levels)


def pca_scatter(coords: np.ndarray, explained: np.ndarray, labels: np.ndarray | None = None,
                hover: Sequence[str] | None = None, title: str = "", dims: int = 2, height: int = 460) -> go.Figure:
    """PCA coordinates (m, ≥dims) as a scatter coloured by label; ``hover`` adds a text per point
    (e.g. :func:`hover_image`). 2-D: SVG, or WebGL above WEBGL_ABOVE points; 3-D: scatter3d."""
    coords = np.asarray(coords, dtype=float)
    m, k = coords.shape
    dims = min(dims, k)
    ev = [f"PC{i + 1} ({100 * explained[i]:.1f}%)" for i in range(dims)]
    groups = [(None, np.arange(m))] if labels is None else \
        [(lab, np.flatnonzero(labels == lab)) for lab in np.unique(labels)]
    data = []
    text = np.asarray(hover, dtype=object) if hover is not None else None
    for g, (lab, idx) in enumerate(groups):
        name = "samples" if lab is None else f"{lab}"
        color = LABEL_COLORS[g % 10] if lab is not None else "#1f77b4"
        ht = ("label " + name + " · #%{customdata}" if lab is not None else "#%{customdata}") + \
             ("<br>%{text}" if text is not None else "") + "<extra></extra>"
        common = dict(mode="markers", name=name, customdata=idx, hovertemplate=ht,
                      **({"text": text[idx].tolist()} if text is not None else {}))
        if dims == 3:
            data.append(dict(type="scatter3d", x=coords[idx, 0], y=coords[idx, 1], z=coords[idx, 2],
                             marker=dict(size=3, color=color, opacity=0.8), **common))
        else:  # SVG up to a few thousand points (redrawn live, WebGL contexts are scarce); WebGL beyond
            data.append(dict(type="scattergl" if m > WEBGL_ABOVE else "scatter", x=coords[idx, 0],
                             y=coords[idx, 1] if dims > 1 else np.zeros(len(idx)),
                             marker=dict(size=6, color=color, opacity=0.75), **common))
    axes = dict(scene=dict(xaxis=axis_title(ev[0]), yaxis=axis_title(ev[1]), zaxis=axis_title(ev[2]))) \
        if dims == 3 else dict(xaxis=axis_title(ev[0]), yaxis=axis_title(ev[1] if dims > 1 else ""))
    legend = dict(orientation="v", x=1.02, xanchor="left", y=1, yanchor="top", itemsizing="constant",
                  **({"title": {"text": "label"}} if labels is not None else {}))
    return figure(data, base_layout(title, height=height, legend=legend, **axes, hoverlabel=dict(
        font=dict(family="DejaVu Sans Mono, Menlo, Consolas, monospace", size=11))))


def probe_figure(accuracies: Mapping[str, float], chance: float | None = None, height: int = 220) -> go.Figure:
    """Held-out accuracy of a linear probe on each representation (horizontal bars)."""
    names, values = list(accuracies), [accuracies[k] for k in accuracies]
    fig = go.Figure(go.Bar(x=values, y=names, orientation="h", text=[f"{v:.1%}" for v in values],
                           textposition="auto", marker=dict(color=["#ff7f0e", "#1f77b4", "#2ca02c"][:len(names)]),
                           hovertemplate="%{y}: %{x:.2%}<extra></extra>"))
    if chance is not None:
        fig.add_vline(x=chance, line=dict(dash="dot", color="#666"), annotation_text="chance")
    fig.update_xaxes(range=[0, 1], tickformat=".0%", title="held-out accuracy (logistic regression)")
    return layout(fig, height=height)


__all__ = ["image_grid_figure", "reconstruction_figure", "matrix_pair_figure", "hover_image", "pca_scatter",
           "probe_figure", "SHADES", "WEBGL_ABOVE"]
