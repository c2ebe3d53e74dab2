"""Pure functions from training data to Plotly figures: no Streamlit, testable without a browser.

Every function takes numpy arrays (a history dict, a snapshot's arrays, activations) and returns a
``plotly.graph_objects.Figure``. Payloads stay small so a page redrawn twice a second stays fluid:

- curves are thinned to at most ``MAX_POINTS`` points (SVG ``go.Scatter``; WebGL only for big scatters),
- histograms are binned here with numpy and drawn as bars,
- a filter grid is ONE tiled grayscale image (PNG inside the figure), not one subplot per unit,
- heatmaps are quantised to uint8 (sent as base64 typed arrays).
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
import torch

from sae.core.loss import kl_divergence, kl_divergence_grad
from sae.viz.images import grid_shape, tile, tile_filters
from sae.viz.style import (CURVE_POINTS, LABEL_COLORS, MAX_POINTS, TERM_COLORS, activation_range, empty_figure, f32,
                           image_trace_figure, layout, thin)

WEBGL_ABOVE = 3000  # points in a 2-D scatter before WebGL is worth one of the browser's few WebGL contexts
PENALTY_NAMES = {"kl": "β·KL", "l1": "β·L1", "topk": "sparsity"}
SHADES = " ░▒▓█"  # hover "images": one shade per grey level, each pixel two characters wide


# ------------------------------------------------------------------------------------- curves

def loss_curves(history: Mapping[str, np.ndarray], penalty: str = "kl", log_y: bool = False,
                max_points: int = CURVE_POINTS) -> go.Figure:
    """The objective split by term over training steps: reconstruction, β·penalty, weight decay, total."""
    steps = np.asarray(history.get("step", []), dtype=float)
    if len(steps) == 0:
        return empty_figure("No steps yet: press Train.")
    idx = thin(len(steps), min(max_points, MAX_POINTS))
    x = steps[idx].astype(np.int32) if steps[-1] < 2**31 else f32(steps[idx])
    fig = go.Figure()
    names = {"reconstruction": "reconstruction ½‖x̂−x‖²", "sparsity": PENALTY_NAMES.get(penalty, "sparsity"),
             "weight_decay": "weight decay (λ/2)‖W‖²", "total": "total J"}
    for term in ("reconstruction", "sparsity", "weight_decay", "total"):
        if term == "sparsity" and penalty == "topk":
            continue
        y = np.asarray(history[term], dtype=float)[idx]
        if log_y:
            y = np.where(y > 0, y, np.nan)
        fig.add_trace(go.Scatter(x=x, y=f32(y), mode="lines", name=names[term],
                                 line=dict(color=TERM_COLORS[term], width=3 if term == "total" else 1.8),
                                 hovertemplate="step %{x:,}<br>%{y:.4g}<extra>" + names[term] + "</extra>"))
    fig.update_xaxes(title="step")
    fig.update_yaxes(title="loss", type="log" if log_y else "linear")
    if not log_y and len(idx) > 20:  # the first steps' spike would flatten the rest: frame what follows
        total = np.asarray(history["total"], dtype=float)[idx][len(idx) // 20:]
        top = float(np.nanmax(total)) if np.isfinite(total).any() else None
        if top and top > 0:
            fig.update_yaxes(range=[0, 1.15 * top])
    return layout(fig, hovermode="x unified")


def rho_hat_band(history: Mapping[str, np.ndarray], log_y: bool = False, max_points: int = CURVE_POINTS) -> go.Figure:
    """Mean ρ̂ over units with its spread (±1 std, min-max) over time, against the target ρ.

    ``log_y``: a log axis shows both the start (ρ̂ ≈ 0.5 for sigmoid units) and a small target like 0.01.
    """
    steps = np.asarray(history.get("step", []), dtype=float)
    if len(steps) == 0:
        return empty_figure("No steps yet: press Train.")
    i = thin(len(steps), min(max_points, MAX_POINTS))
    x = steps[i].astype(np.int32) if steps[-1] < 2**31 else f32(steps[i])
    mean, std = f32(history["rho_hat_mean"][i]), f32(history["rho_hat_std"][i])
    lo, hi = f32(history["rho_hat_min"][i]), f32(history["rho_hat_max"][i])
    floor = 1e-4 if log_y else 0.0  # a log axis cannot show 0
    lo = np.maximum(lo, floor)
    fig = go.Figure()
    band = dict(mode="lines", line=dict(width=0), hoverinfo="skip", showlegend=False)
    fig.add_trace(go.Scatter(x=x, y=hi, **band))
    fig.add_trace(go.Scatter(x=x, y=lo, fill="tonexty", fillcolor="rgba(31,119,180,0.10)", name="min–max",
                             mode="lines", line=dict(width=0), hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=x, y=np.clip(mean + std, 0, 1), **band))
    fig.add_trace(go.Scatter(x=x, y=np.clip(mean - std, floor, 1), fill="tonexty", fillcolor="rgba(31,119,180,0.28)",
                             name="±1 std", mode="lines", line=dict(width=0), hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=x, y=mean, name="mean ρ̂", mode="lines", line=dict(color="#1f77b4", width=2.5),
                             hovertemplate="step %{x:,}<br>mean ρ̂ %{y:.4f}<extra></extra>"))
    fig.add_trace(go.Scatter(x=x, y=f32(history["rho"][i]), name="target ρ", mode="lines",
                             line=dict(color="#d62728", dash="dash", width=2),
                             hovertemplate="target ρ %{y:g}<extra></extra>"))
    fig.update_xaxes(title="step")
    if log_y:
        fig.update_yaxes(title="ρ̂ⱼ (mean activation of unit j)", type="log")
    else:
        fig.update_yaxes(title="ρ̂ⱼ (mean activation of unit j)", rangemode="tozero")
    return layout(fig, hovermode="x unified")


# ------------------------------------------------------------------------------------- KL

def kl_values(rho: float, rho_hat: np.ndarray) -> np.ndarray:
    """KL(ρ‖ρ̂) by :func:`sae.core.loss.kl_divergence` (the very function training uses), float64."""
    return kl_divergence(float(rho), torch.as_tensor(np.asarray(rho_hat, dtype=np.float64))).numpy()


def kl_curve(rho: float, beta: float = 1.0, rho_hat: np.ndarray | None = None, derivative: bool = False,
             compare: Sequence[float] = (), n_points: int = 600, height: int = 440,
             x_range: tuple[float, float] | None = None, title: str | None = None) -> go.Figure:
    """β·KL(ρ‖ρ̂) over ρ̂ in (0, 1), every hidden unit's current ρ̂ⱼ as a point on the curve.

    Args:
        rho: the target ρ (the curve's minimum, zero there).
        beta: scale of the curve (pass 1 for the bare KL).
        rho_hat: (s,) the units' current mean activations; drawn as points with hover
            (unit, ρ̂ⱼ, its penalty β·KL(ρ‖ρ̂ⱼ)).
        derivative: also draw β·dKL/dρ̂ (right axis): the push each unit's delta gets in backprop.
        compare: other ρ values whose curves are drawn dashed.
        x_range: draw only this part of (0, 1) (e.g. a zoom on the valley where the units are).
    """
    x0, x1 = x_range if x_range is not None else (0.0, 1.0)
    x = np.linspace(x0, x1, n_points + 2)[1:-1]
    fig = go.Figure()
    scale = float(beta)
    label = "KL(ρ‖ρ̂)" if scale == 1 else f"{scale:g}·KL(ρ‖ρ̂)"
    ys = [scale * kl_values(rho, x)]
    if x_range is not None:
        compare = ()  # a zoom is about this rho's valley; other curves would set its scale
    for k, other in enumerate(r for r in compare if not math.isclose(r, rho)):
        y = scale * kl_values(other, x)
        ys.append(y)
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=f"ρ = {other:g}",
                                 line=dict(dash="dash", width=1.5, color=LABEL_COLORS[(k + 1) % 10]),
                                 hovertemplate=f"ρ = {other:g}<br>ρ̂ %{{x:.3f}}<br>penalty %{{y:.4g}}<extra></extra>"))
    fig.add_trace(go.Scatter(x=x, y=ys[0], mode="lines", name=f"{label}, ρ = {rho:g}",
                             line=dict(color="#1f77b4", width=3),
                             hovertemplate="ρ̂ %{x:.3f}<br>penalty %{y:.4g}<extra></extra>"))
    window = x <= 0.95 if x_range is None else np.ones_like(x, dtype=bool)
    top = max(float(np.nanmax(y[window])) for y in ys) if scale > 0 else 1.0
    if rho_hat is not None and len(rho_hat) and np.isfinite(rho_hat).all():
        r = np.clip(np.asarray(rho_hat, dtype=np.float64), 0.0, 1.0)
        p = scale * kl_values(rho, r)
        units = np.arange(len(r))
        if x_range is not None:  # units outside the zoom are left out (the full view shows them)
            keep = (r >= x0) & (r <= x1)
            r, p, units = r[keep], p[keep], units[keep]
        fig.add_trace(go.Scatter(
            x=r, y=p, mode="markers", name=f"hidden units ({len(r)})", customdata=units,
            marker=dict(size=9, color="#ff7f0e", line=dict(color="#7f3f00", width=1), opacity=0.85),
            hovertemplate="unit %{customdata}<br>ρ̂ⱼ = %{x:.4f}<br>penalty %{y:.4g}<extra></extra>"))
        top = max(top, float(np.max(p)) if len(p) else 0.0)
    fig.add_vline(x=rho, line=dict(color="#d62728", dash="dot", width=1.5),
                  annotation_text=f"ρ = {rho:g}", annotation_position="top right")
    fig.update_xaxes(title="ρ̂ⱼ: mean activation of hidden unit j", range=[x0, x1])
    fig.update_yaxes(title=("β·" if scale != 1 else "") + "KL(ρ‖ρ̂ⱼ)", range=[-0.03 * top, 1.08 * top + 1e-9])
    if derivative:
        g = scale * kl_divergence_grad(float(rho), torch.as_tensor(x)).numpy()
        sel = (x >= max(rho / 4, 0.01)) & (x <= 0.95)
        lim = np.nanmax(np.abs(g[sel] if sel.any() else g)) * 1.1 + 1e-9
        fig.add_trace(go.Scatter(x=x, y=g, mode="lines", name="β·dKL/dρ̂ (right axis)", yaxis="y2",
                                 line=dict(color="#2ca02c", width=2, dash="dashdot"),
                                 hovertemplate="ρ̂ %{x:.3f}<br>slope %{y:.4g}<extra></extra>"))
        fig.update_layout(yaxis2=dict(overlaying="y", side="right", title="β·dKL/dρ̂ⱼ", range=[-lim, lim],
                                      zeroline=True, showgrid=False, tickmode="auto", nticks=7))
    layout(fig, title, height=height, hovermode="closest")
    # the legend inside the plot where the curves leave room: top centre of the full view (the curve
    # rises at both ends), top right of a zoom on the valley (clear of the ρ label at the left)
    x_legend, anchor = (0.5, "center") if x_range is None else (0.99, "right")
    fig.update_layout(legend=dict(orientation="v", x=x_legend, xanchor=anchor, y=0.99, yanchor="top",
                                  bgcolor="rgba(255,255,255,0.8)"))
    return fig


# ------------------------------------------------------------------------------------- images

def tile_positions(count: int, image_shape: tuple[int, int], columns: int | None = None,
                   border: int = 1) -> np.ndarray:
    """(count, 4) pixel boxes (x0, y0, x1, y1) of each tile of :func:`sae.viz.images.tile`, cell edges."""
    h, w = image_shape
    _, cols = grid_shape(count, columns)
    j = np.arange(count)
    r, c = j // cols, j % cols
    x0 = border + c * (w + border) - 0.5
    y0 = border + r * (h + border) - 0.5
    return np.stack([x0, y0, x0 + w, y0 + h], axis=1)


def filters_figure(W: np.ndarray, image_shape: tuple[int, int], order: np.ndarray | None = None,
                   dead: Sequence[int] = (), rho_hat: np.ndarray | None = None, norms: np.ndarray | None = None,
                   selected: int | None = None, normalize: str = "ufldl", height: int | None = None) -> go.Figure:
    """Each hidden unit's weights as an image, tiled into ONE picture (UFLDL's display normalisation).

    Args:
        W: (s, n) one row per unit (encoder W1, or the decoder's W2 transposed).
        order: (s,) unit index shown in each grid cell (e.g. sorted by ρ̂); default 0..s-1.
        dead: units to outline in red. selected: a unit to outline in orange.
        rho_hat, norms: (s,) shown on hover. Hover/click targets are invisible markers at tile centres
            whose ``customdata`` is the unit index.
    """
    W = np.asarray(W)
    s = len(W)
    order = np.arange(s) if order is None else np.asarray(order)
    img = tile_filters(W[order], image_shape, normalize=normalize, border=1)
    fig = image_trace_figure(img, height)
    boxes = tile_positions(s, image_shape)
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    extra = []
    if rho_hat is not None:
        extra.append("ρ̂ⱼ = %{customdata[1]:.4f}")
    if norms is not None:
        extra.append("‖w‖ = %{customdata[2]:.3f}")
    dead_set = {int(u) for u in dead}
    custom = np.stack([order.astype(float),
                       np.asarray(rho_hat, dtype=float)[order] if rho_hat is not None else np.zeros(s),
                       np.asarray(norms, dtype=float)[order] if norms is not None else np.zeros(s),
                       np.array([u in dead_set for u in order], dtype=float)], axis=1)
    fig.add_trace(go.Scatter(  # customdata as plain lists: selection events hand them back as lists
        x=cx, y=cy, mode="markers", customdata=np.round(custom, 5).tolist(), showlegend=False, name="units",
        marker=dict(size=max(6, min(40, int(400 / math.sqrt(s)))), symbol="square", opacity=0, color="#000"),
        hovertemplate="unit %{customdata[0]:.0f}<br>" + "<br>".join(extra) + "<extra></extra>"))
    position = {int(u): k for k, u in enumerate(order)}
    shapes = []
    for u in sorted(dead_set):
        x0, y0, x1, y1 = boxes[position[u]]
        shapes.append(dict(type="rect", x0=x0, y0=y0, x1=x1, y1=y1, line=dict(color="#e0301e", width=2)))
        shapes.append(dict(type="line", x0=x0, y0=y0, x1=x1, y1=y1, line=dict(color="#e0301e", width=1.5)))
    if selected is not None and 0 <= selected < s:
        x0, y0, x1, y1 = boxes[position[int(selected)]]
        shapes.append(dict(type="rect", x0=x0 - 0.3, y0=y0 - 0.3, x1=x1 + 0.3, y1=y1 + 0.3,
                           line=dict(color="#ff9f1c", width=3)))
    fig.update_layout(shapes=shapes, hovermode="closest", clickmode="event+select")
    return fig


def weights_heatmap(W: np.ndarray, dead: Sequence[int] = (), title: str | None = None,
                    x_title: str = "input feature i", height: int | None = None) -> go.Figure:
    """Weights (s, n) of data that are not images: one row per hidden unit, diverging colours."""
    W = np.asarray(W, dtype=float)
    lim = float(np.max(np.abs(W))) or 1.0
    s, n = W.shape
    labels = [f"{j} ✕" if j in set(int(d) for d in dead) else str(j) for j in range(s)]
    fig = go.Figure(go.Heatmap(z=W.astype(np.float32), x=np.arange(n), y=labels, colorscale="RdBu", zmid=0,
                               zmin=-lim, zmax=lim, colorbar=dict(title="weight", thickness=12),
                               hovertemplate="unit %{y}<br>input %{x}<br>w = %{z:.4f}<extra></extra>"))
    fig.update_xaxes(title=x_title)
    fig.update_yaxes(title="hidden unit j (✕ dead)", autorange="reversed", type="category")
    return layout(fig, title, height=height or int(min(640, 160 + 14 * s)))


def image_grid_figure(X: np.ndarray, image_shape: tuple[int, int], columns: int | None = None,
                      height: int | None = None, normalize: bool = False) -> go.Figure:
    """Rows of X (m, h*w) tiled into one picture (values clipped to [0, 1] unless ``normalize``)."""
    from sae.viz.images import tile_images

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
    fig = image_trace_figure(img, height or int(min(720, max(260, 150 * rows))))
    boxes = tile_positions(m, (band + h, 2 * w + 1), cols, border)
    index = np.arange(m) if index is None else np.asarray(index)
    for k in range(m):
        x0, y0, x1, _ = boxes[k]
        fig.add_annotation(x=(x0 + x1) / 2, y=y0 + band / 2, text=f"#{index[k]} · err {errors[k]:.3g}",
                           showarrow=False, yanchor="middle", font=dict(size=11, color="#333"))
    fig.add_trace(go.Scatter(x=(boxes[:, 0] + boxes[:, 2]) / 2, y=boxes[:, 1] + band + h / 2,
                             mode="markers", marker=dict(opacity=0, size=30), showlegend=False,
                             customdata=np.stack([index, errors], 1),
                             hovertemplate="sample #%{customdata[0]:.0f}<br>left: input x · right: x̂"
                                           "<br>½‖x̂−x‖² = %{customdata[1]:.4g}<extra></extra>"))
    return fig


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


# ------------------------------------------------------------------------------------- histograms

def binned(values: np.ndarray, bins: int = 50,
           range: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:  # noqa: A002 (numpy's name)
    """(counts, edges) of a histogram computed here (the browser gets only the bars)."""
    values = np.asarray(values, dtype=float).ravel()
    values = values[np.isfinite(values)]
    if range is None:
        lo, hi = (float(values.min()), float(values.max())) if len(values) else (0.0, 1.0)
        range = (lo, hi if hi > lo else lo + 1.0)
    return np.histogram(values, bins=bins, range=range)


def histogram_figure(counts: np.ndarray, edges: np.ndarray, x_title: str, y_title: str = "count",
                     title: str | None = None, color: str = "#1f77b4", log_y: bool = False,
                     vlines: Mapping[str, float] | None = None, height: int = 300) -> go.Figure:
    """Pre-binned histogram as bars; ``vlines`` labels vertical markers (e.g. {'ρ': 0.05})."""
    counts, edges = np.asarray(counts), np.asarray(edges, dtype=float)
    centers, widths = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
    fig = go.Figure(go.Bar(x=centers, y=counts, width=widths, marker=dict(color=color, line=dict(width=0)),
                           customdata=np.stack([edges[:-1], edges[1:]], 1), showlegend=False,
                           hovertemplate="[%{customdata[0]:.3g}, %{customdata[1]:.3g}): %{y:,}<extra></extra>"))
    dashes = ("dash", "dot", "dashdot")
    for k, (name, x) in enumerate((vlines or {}).items()):
        if x is not None and np.isfinite(x):  # marked lines are named in the legend: no overlapping labels
            fig.add_vline(x=float(x), line=dict(color=("#d62728", "#222", "#2ca02c")[k % 3], dash=dashes[k % 3],
                                                width=2), name=f"{name} = {x:.3g}", showlegend=True)
    fig.update_xaxes(title=x_title)
    fig.update_yaxes(title=y_title, type="log" if log_y else "linear", dtick=1 if log_y else None)
    layout(fig, title, height=height, bargap=0.02)
    fig.update_layout(legend=dict(orientation="v", x=0.99, xanchor="right", y=0.98, yanchor="top",
                                  bgcolor="rgba(255,255,255,0.75)"))
    return fig


def activation_histogram(A: np.ndarray, activation: str = "sigmoid", bins: int = 50, log_y: bool = True,
                         height: int = 300) -> go.Figure:
    """Histogram of every hidden activation a_ij (m·s values). Sparse codes: a spike at 0 (sigmoid/relu)
    or at −1 (tanh) and a thin tail."""
    A = np.asarray(A)
    rng = activation_range(activation)
    counts, edges = binned(A, bins, rng)
    return histogram_figure(counts, edges, f"activation aᵢⱼ ({A.shape[0]:,} samples × {A.shape[1]} units)",
                            title="All hidden activations", log_y=log_y, height=height)


def rho_hat_histogram(rho_hat: np.ndarray, rho: float | None = None, bins: int = 40, height: int = 300) -> go.Figure:
    """Histogram of the units' ρ̂ⱼ, with the target ρ marked."""
    r = np.asarray(rho_hat, dtype=float)
    hi = max(float(np.nanmax(r)) if r.size and np.isfinite(r).any() else 0.0, (rho or 0) * 2, 1e-3)
    counts, edges = binned(r, bins, (0.0, min(1.0, hi * 1.05)))
    lines = {"target ρ": rho}
    if r.size and np.isfinite(r).any():
        lines["mean ρ̂"] = float(np.nanmean(r))
    return histogram_figure(counts, edges, "ρ̂ⱼ (one value per hidden unit)", "units", "Mean activation per unit ρ̂ⱼ",
                            color="#ff7f0e", vlines=lines, height=height)


def l0_histogram(l0: np.ndarray, n_hidden: int, height: int = 300) -> go.Figure:
    """How many units are active per sample (integers 0..s)."""
    l0 = np.asarray(l0)
    top = int(min(n_hidden, max(int(l0.max()) if l0.size else 0, 1)))
    counts, edges = np.histogram(l0, bins=np.arange(top + 2) - 0.5)
    return histogram_figure(counts, edges, "active units per sample (L0, activity > 0.1)", "samples",
                            "L0 per sample", color="#2ca02c",
                            vlines={"mean": float(l0.mean()) if l0.size else None}, height=height)


# ------------------------------------------------------------------------------------- heatmaps

def _quantize(Z: np.ndarray, lo: float, hi: float) -> np.ndarray:
    span = hi - lo if hi > lo else 1.0
    return np.rint(np.clip((np.asarray(Z, dtype=float) - lo) / span, 0, 1) * 255).astype(np.uint8)


def activation_heatmap(A: np.ndarray, labels: np.ndarray | None = None, activation: str = "sigmoid",
                       max_samples: int = 200, height: int = 380) -> go.Figure:
    """Samples × units activations (samples sorted by label if given), quantised to 8 bits."""
    A = np.asarray(A, dtype=float)
    idx = np.arange(len(A))[:max_samples] if len(A) <= max_samples else \
        np.unique(np.linspace(0, len(A) - 1, max_samples).round().astype(int))
    if labels is not None:
        idx = idx[np.argsort(np.asarray(labels)[idx], kind="stable")]
    lo, hi = activation_range(activation) or (0.0, float(A.max()) if A.size else 1.0)
    Z = _quantize(A[idx], lo, hi)
    ticks = np.linspace(0, 255, 5)
    ytext = [f"label {labels[i]}" for i in idx] if labels is not None else [f"#{i}" for i in idx]
    fig = go.Figure(go.Heatmap(
        z=Z, colorscale="Viridis", zmin=0, zmax=255, customdata=None, y=np.arange(len(idx)),
        colorbar=dict(title="a", thickness=12, tickvals=ticks,
                      ticktext=[f"{lo + t / 255 * (hi - lo):.2g}" for t in ticks]),
        hovertemplate="row %{y}<br>unit %{x}<br>a ≈ %{z}/255<extra></extra>"))
    if labels is not None:
        lab = np.asarray(labels)[idx]
        change = np.flatnonzero(np.diff(lab)) + 1
        starts = np.r_[0, change]
        fig.update_yaxes(tickvals=starts, ticktext=[f"{lab[k]}" for k in starts], title="samples (by label)")
    else:
        fig.update_yaxes(title="samples")
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(title="hidden unit j")
    del ytext
    return layout(fig, "Activations: samples × units", height=height)


def distribution_over_time(steps: np.ndarray, fractions: np.ndarray, edges: np.ndarray, y_title: str,
                           title: str, target: float | None = None, log_y: bool = False,
                           colorscale: str = "Blues", height: int = 320) -> go.Figure:
    """How a distribution moves during training: x = step, y = value bins, colour = fraction of the
    values in the bin (square-root scale, so that thin tails stay visible next to a spike).

    ``log_y`` puts the bins on a log axis (for log-spaced edges; a first bin starting at 0 is drawn
    just below the second).
    """
    steps, fractions = np.asarray(steps), np.asarray(fractions, dtype=float)
    if len(steps) == 0:
        return empty_figure("Nothing recorded yet: press Train.", height)
    edges = np.asarray(edges, dtype=float)
    lo, hi = edges[:-1], edges[1:]
    if log_y:
        centers = np.where(lo > 0, np.sqrt(np.maximum(lo, 1e-12) * hi), hi / 2)
    else:
        centers = (lo + hi) / 2
    Z = np.sqrt(fractions.T)
    fig = go.Figure(go.Heatmap(x=steps, y=centers, z=_quantize(Z, 0.0, float(Z.max()) or 1.0), colorscale=colorscale,
                               showscale=False, hovertemplate="step %{x:,}<br>value ≈ %{y:.3g}<extra></extra>"))
    if target is not None:
        fig.add_hline(y=target, line=dict(color="#d62728", dash="dash", width=2), annotation_text=f"ρ = {target:g}",
                      annotation_position="top right")
    fig.update_xaxes(title="step")
    fig.update_yaxes(title=y_title, type="log" if log_y else "linear")
    return layout(fig, title, height=height)


# ------------------------------------------------------------------------------------- PCA

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
    fig = go.Figure()
    text = np.asarray(hover, dtype=object) if hover is not None else None
    for g, (lab, idx) in enumerate(groups):
        name = "samples" if lab is None else f"{lab}"
        color = LABEL_COLORS[g % 10] if lab is not None else "#1f77b4"
        ht = ("label " + name + " · #%{customdata}" if lab is not None else "#%{customdata}") + \
             ("<br>%{text}" if text is not None else "") + "<extra></extra>"
        common = dict(mode="markers", name=name, customdata=idx, text=text[idx] if text is not None else None,
                      hovertemplate=ht)
        if dims == 3:
            fig.add_trace(go.Scatter3d(x=coords[idx, 0], y=coords[idx, 1], z=coords[idx, 2],
                                       marker=dict(size=3, color=color, opacity=0.8), **common))
        else:  # SVG up to a few thousand points (redrawn live, WebGL contexts are scarce); WebGL beyond
            trace = go.Scattergl if m > WEBGL_ABOVE else go.Scatter
            fig.add_trace(trace(x=coords[idx, 0], y=coords[idx, 1] if dims > 1 else np.zeros(len(idx)),
                                marker=dict(size=6, color=color, opacity=0.75), **common))
    if dims == 3:
        fig.update_layout(scene=dict(xaxis_title=ev[0], yaxis_title=ev[1], zaxis_title=ev[2]))
    else:
        fig.update_xaxes(title=ev[0])
        fig.update_yaxes(title=ev[1] if dims > 1 else "")
    fig.update_layout(hoverlabel=dict(font=dict(family="DejaVu Sans Mono, Menlo, Consolas, monospace", size=11)),
                      legend=dict(title="label" if labels is not None else None, itemsizing="constant"))
    layout(fig, title, height=height)
    fig.update_layout(legend=dict(orientation="v", x=1.02, xanchor="left", y=1, yanchor="top"))
    return fig


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


__all__ = ["loss_curves", "rho_hat_band", "kl_values", "kl_curve", "filters_figure",
           "tile_positions", "weights_heatmap", "image_grid_figure", "reconstruction_figure", "matrix_pair_figure",
           "binned", "histogram_figure", "activation_histogram", "rho_hat_histogram", "l0_histogram",
           "activation_heatmap", "distribution_over_time", "hover_image", "pca_scatter", "probe_figure"]
