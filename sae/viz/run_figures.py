"""Figures of recorded runs, comparisons and sweeps: pure functions to Plotly, no Streamlit.

Inputs come from :mod:`sae.runs.compare` (curves aligned on one x grid, rho_hat histograms on shared bins)
and :mod:`sae.runs.sweep` (metric grids and filters of every cell). Like the live views, payloads stay
small: curves are float32 and at most ``sae.runs.compare.MAX_POINTS`` points, filters travel as ONE tiled
image per figure, heatmaps are at most 8 x 8 numbers.

Clickable cells: the sweep figures carry one invisible marker per cell whose ``customdata`` is
``[rho index, beta index]``; a page reads it from the chart's selection event (see pages/11_sweep.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from sae.viz.style import LABEL_COLORS, empty_figure, f32, image_trace_figure, layout
from sae.evaluation.labels import METRIC_LABELS
from sae.training.status import LIVE_STATUSES, RunStatus
from sae.viz.images import grid_shape, tile_filters

if TYPE_CHECKING:
    from sae.runs.compare import AlignedCurves, SharedHistogram
    from sae.runs.sweep import SweepResults

COLUMN_TITLES = {"total": "total loss J", "reconstruction": "reconstruction ½‖x̂−x‖²", "sparsity": "β·sparsity",
                 "weight_decay": "weight decay (λ/2)‖W‖²", "rho_hat_mean": "mean ρ̂ (minibatch)"}
X_TITLES = {"step": "step", "epoch": "epoch", "time": "training time (s)"}
METRIC_COLORSCALES = {"reconstruction": "Blues", "rho_hat_mean": "Oranges", "dead_units": "Reds",
                      "probe_accuracy": "Greens", "total": "Greys"}
# sweep heatmaps: (title (detail), colorscale, number format); the words are sae.evaluation.labels'
METRIC_STYLE = {key: (label.title, METRIC_COLORSCALES[key], label.fmt) for key, label in METRIC_LABELS.items()}
HIGHLIGHT = "#ff9f1c"
GAP_VALUE = 1.0  # white between the tiles of different runs / cells
EMPTY_VALUE = 0.88  # light grey for a cell that has no weights yet


def _color(k: int) -> str:
    return LABEL_COLORS[k % len(LABEL_COLORS)]


# ----------------------------------------------------------------------------- comparisons

def compare_curves(curves: "AlignedCurves", column: str, names: Mapping[str, str], log_y: bool = False,
                   target: float | None = None, height: int = 380) -> go.Figure:
    """One line per run of ``column`` on the shared x grid (NaN where a run has no data: it just ends)."""
    values = curves.column(column)
    if len(curves.x) == 0:
        return empty_figure("These runs have no recorded steps yet.", height)
    x = f32(curves.x)
    fig = go.Figure()
    title = COLUMN_TITLES.get(column, column)
    for k, (run_id, y) in enumerate(values.items()):
        y = np.asarray(y, dtype=float)
        if log_y:
            y = np.where(y > 0, y, np.nan)
        name = names.get(run_id, run_id[:8])
        fig.add_trace(go.Scatter(x=x, y=f32(y), mode="lines", name=name, line=dict(color=_color(k), width=2),
                                 hovertemplate=f"{X_TITLES.get(curves.x_name, curves.x_name)} %{{x:,.4g}}<br>"
                                               f"%{{y:.4g}}<extra>{name}</extra>"))
    if target is not None and column == "rho_hat_mean":
        fig.add_hline(y=target, line=dict(color="#d62728", dash="dash", width=1.5),
                      annotation_text=f"ρ = {target:g}", annotation_position="top right")
    fig.update_xaxes(title=X_TITLES.get(curves.x_name, curves.x_name))
    fig.update_yaxes(title=title, type="log" if log_y else "linear")
    if not log_y and len(x) > 20:  # the first steps' spike would flatten the rest: frame what follows
        rest = np.concatenate([np.asarray(v, dtype=float)[len(x) // 20:] for v in values.values()])
        top = float(np.nanmax(rest)) if np.isfinite(rest).any() else None
        if top and top > 0:
            fig.update_yaxes(range=[0, 1.15 * top])
    return layout(fig, f"{title} · runs overlaid", height=height, hovermode="x unified")


def compare_rho_hat(hist: "SharedHistogram", names: Mapping[str, str],
                    targets: Mapping[str, float | None] | None = None, height: int = 340) -> go.Figure:
    """Each run's ρ̂ⱼ histogram on the shared bins, as step outlines (fractions of its units, so runs of
    different hidden sizes compare), with the target ρ of each run dashed; the labels of the targets stand at
    different heights (in order of ρ), so that close targets do not print over each other."""
    fig = go.Figure()
    edges = np.asarray(hist.edges, dtype=float)
    for k, (run_id, fractions) in enumerate(hist.fractions.items()):
        f = np.asarray(fractions, dtype=float)
        name = names.get(run_id, run_id[:8])
        color = _color(k)
        fig.add_trace(go.Scatter(x=f32(edges), y=f32(np.r_[f, f[-1]]), mode="lines", line_shape="hv", name=name,
                                 line=dict(color=color, width=2), fill="tozeroy",
                                 fillcolor=_rgba(color, 0.12),
                                 hovertemplate="ρ̂ from %{x:.3g}: %{y:.1%} of the units<extra>" + name + "</extra>"))
    rhos = sorted({float(r) for r in (targets or {}).values()
                   if r is not None and np.isfinite(r) and r <= edges[-1] * 1.5})
    for k, rho in enumerate(rhos):
        fig.add_vline(x=rho, line=dict(color="#d62728", dash="dash", width=1.5))
        fig.add_annotation(x=rho, y=0.97 - 0.09 * (k % 8), xref="x", yref="paper", text=f"ρ = {rho:g}",
                           showarrow=False, xanchor="left", xshift=3, yanchor="top",
                           font=dict(color="#d62728"), bgcolor="rgba(255,255,255,0.7)")
    fig.update_xaxes(title="ρ̂ⱼ (mean activation of unit j, all data)")
    fig.update_yaxes(title="fraction of units", tickformat=".0%", rangemode="tozero")
    return layout(fig, "Mean activation per unit ρ̂ⱼ · runs overlaid", height=height)


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def _pad(img: np.ndarray, height: int, width: int, value: float = GAP_VALUE) -> np.ndarray:
    out = np.full((height, width), value)
    out[:img.shape[0], :img.shape[1]] = img
    return out


def filters_side_by_side(filters: Mapping[str, np.ndarray], image_shape: tuple[int, int], names: Mapping[str, str],
                         normalize: str = "ufldl", max_filters: int = 100, height: int | None = None) -> go.Figure:
    """The encoder filters of several runs in ONE picture, run beside run, each titled with its name.

    filters: run id -> W1 (s, n); at most ``max_filters`` units of each are shown (the first ones).
    """
    if not filters:
        return empty_figure("No weights recorded for these runs yet.")
    h, w = image_shape
    tiles = []
    for W in filters.values():
        W = np.asarray(W)[:max_filters]
        tiles.append(tile_filters(W, image_shape, normalize=normalize, border=1))
    gap = max(2, w // 2)
    H = max(t.shape[0] for t in tiles)
    parts, centers, x = [], [], 0
    for k, t in enumerate(tiles):
        if k:
            parts.append(np.full((H, gap), GAP_VALUE))
            x += gap
        parts.append(_pad(t, H, t.shape[1]))
        centers.append(x + t.shape[1] / 2 - 0.5)
        x += t.shape[1]
    img = np.concatenate(parts, axis=1)
    fig = image_trace_figure(img, height or int(np.clip(900 * H / img.shape[1], 200, 420)) + 30)
    for k, (run_id, cx) in enumerate(zip(filters, centers)):
        count = min(len(filters[run_id]), max_filters)
        total = len(filters[run_id])
        label = names.get(run_id, run_id[:8]) + (f" (first {count} of {total})" if total > count else "")
        fig.add_annotation(x=cx, y=-0.5, yanchor="bottom", text=f"<b>{label}</b>", showarrow=False,
                           font=dict(size=12, color=_color(k)))
    fig.update_layout(margin=dict(l=0, r=0, t=34, b=0))
    return fig


# ----------------------------------------------------------------------------- sweeps

def _cell_text(value: float, metric: str, status: str) -> str:
    if np.isfinite(value):
        return format(value, METRIC_STYLE.get(metric, ("", "", ".3g"))[2])
    if status in LIVE_STATUSES:
        return status
    if metric == "probe_accuracy" and status == RunStatus.FINISHED:
        return "no labels"
    return status or "–"


def _click_overlay(xs: Sequence, ys: Sequence, custom: np.ndarray, size: int) -> go.Scatter:
    """Invisible square markers on the cells: a click selects one (customdata = [rho index, beta index])."""
    return go.Scatter(x=list(xs), y=list(ys), mode="markers", customdata=custom.tolist(), showlegend=False,
                      name="cells", hoverinfo="none",
                      marker=dict(symbol="square", size=size, opacity=0, color="#000"))


def sweep_heatmap(results: "SweepResults", metric: str, hidden: int = 0, best: tuple[int, int] | None = None,
                  height: int | None = None) -> go.Figure:
    """The grid of one metric over ρ (rows, top to bottom) × β (columns), each cell labelled with its value
    (or its status while it trains; no colour bar: the numbers are in the cells). ``best`` outlines one cell.
    A click on a cell selects it."""
    title, colorscale, fmt = METRIC_STYLE.get(metric, (metric, "Viridis", ".3g"))
    z = np.asarray(results.grid(metric, hidden), dtype=float)
    R, C = z.shape
    status = results.status[hidden]
    xs = [f"β={b:g}" for b in results.betas]
    ys = [f"ρ={r:g}" for r in results.rhos]
    text = [[_cell_text(z[i, j], metric, str(status[i, j])) for j in range(C)] for i in range(R)]
    finite = z[np.isfinite(z)]
    zmin, zmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if zmax <= zmin:
        zmax = zmin + (abs(zmin) * 0.1 or 1.0)
    size = 13 if C <= 4 else 11 if C <= 6 else 9
    short = title.split(" (")[0]
    fig = go.Figure(go.Heatmap(
        z=f32(z), x=xs, y=ys, text=text, texttemplate="%{text}", textfont=dict(size=size), colorscale=colorscale,
        zmin=zmin, zmax=zmax, showscale=False, xgap=2, ygap=2, hoverongaps=False,
        hovertemplate="%{y} %{x}<br>" + short + ": %{text}<br>click to open the run<extra></extra>"))
    ii, jj = np.meshgrid(np.arange(R), np.arange(C), indexing="ij")
    gaps = ~np.isfinite(z)
    if gaps.any():  # cells still training (or without this metric): their status in grey
        fig.add_trace(go.Scatter(x=[xs[j] for j in jj[gaps]], y=[ys[i] for i in ii[gaps]], mode="text",
                                 text=[text[i][j] for i, j in zip(ii[gaps], jj[gaps])], showlegend=False,
                                 textfont=dict(size=size - 1, color="#888"), hoverinfo="skip"))
    fig.add_trace(_click_overlay([xs[j] for j in jj.ravel()], [ys[i] for i in ii.ravel()],
                                 np.stack([ii.ravel(), jj.ravel()], axis=1), size=40))
    if best is not None:
        i, j = best
        fig.add_shape(type="rect", x0=j - 0.5, x1=j + 0.5, y0=i - 0.5, y1=i + 0.5,
                      line=dict(color=HIGHLIGHT, width=4))
    fig.update_xaxes(side="top", type="category", categoryorder="array", categoryarray=xs, range=[-0.5, C - 0.5],
                     showgrid=False, zeroline=False)
    fig.update_yaxes(type="category", categoryorder="array", categoryarray=ys, range=[R - 0.5, -0.5],
                     showgrid=False, zeroline=False)
    fig.update_layout(clickmode="event+select", hovermode="closest", dragmode=False)
    suffix = f" · {results.hidden_sizes[hidden]} hidden" if len(results.hidden_sizes) > 1 else ""
    layout(fig, short + suffix, height=height or int(np.clip(96 + 58 * R, 220, 520)))
    fig.update_layout(margin=dict(l=10, r=10, t=64, b=6))
    return fig


def sweep_filters(results: "SweepResults", hidden: int = 0, best: tuple[int, int] | None = None,
                  max_filters: int = 36, normalize: str = "ufldl", height: int | None = None) -> go.Figure:
    """Small multiples: every cell's encoder filters (the first ``max_filters`` units), cells laid out as
    the heatmaps (ρ down, β across), in ONE picture. Cells still without weights are light grey.
    A click on a cell selects it (customdata = [rho index, beta index])."""
    shape = results.image_shape
    if shape is None:
        return empty_figure("The filters of data that are not images cannot be drawn as pictures.")
    h, w = shape
    n_hidden = results.hidden_sizes[hidden]
    count = min(n_hidden, max_filters)
    rows_c, cols_c = grid_shape(count)
    ch, cw = rows_c * (h + 1) + 1, cols_c * (w + 1) + 1
    R, C = len(results.rhos), len(results.betas)
    gap = max(3, (h + 1) // 2 + 1)
    H, W = R * ch + (R + 1) * gap, C * cw + (C + 1) * gap
    img = np.full((H, W), GAP_VALUE)
    centers_x, centers_y = np.zeros((R, C)), np.zeros((R, C))
    for i in range(R):
        for j in range(C):
            y0, x0 = gap + i * (ch + gap), gap + j * (cw + gap)
            weights = results.encoder_weights.get((hidden, i, j))
            if weights is not None and np.isfinite(weights).all():
                img[y0:y0 + ch, x0:x0 + cw] = tile_filters(np.asarray(weights)[:count], shape, normalize=normalize,
                                                           columns=cols_c, border=1)
            else:
                img[y0:y0 + ch, x0:x0 + cw] = EMPTY_VALUE
            centers_x[i, j], centers_y[i, j] = x0 + cw / 2 - 0.5, y0 + ch / 2 - 0.5
    if height is None:
        height = int(np.clip(500 * H / W, 240, 640))
    fig = image_trace_figure(img, height + 40)
    status = results.status[hidden]
    for j, beta in enumerate(results.betas):
        fig.add_annotation(x=centers_x[0, j], y=-0.5, yanchor="bottom", text=f"β={beta:g}", showarrow=False,
                           font=dict(size=12))
    for i, rho in enumerate(results.rhos):
        fig.add_annotation(x=-0.5, y=centers_y[i, 0], xanchor="right", text=f"ρ={rho:g}", showarrow=False,
                           font=dict(size=12))
        for j in range(C):
            if (hidden, i, j) not in results.encoder_weights:
                fig.add_annotation(x=centers_x[i, j], y=centers_y[i, j], text=str(status[i, j]), showarrow=False,
                                   font=dict(size=11, color="#555"))
    ii, jj = np.meshgrid(np.arange(R), np.arange(C), indexing="ij")
    size = int(np.clip(height / max(R, C) * 0.8, 16, 120))
    fig.add_trace(_click_overlay(centers_x.ravel(), centers_y.ravel(), np.stack([ii.ravel(), jj.ravel()], axis=1),
                                 size))
    if best is not None:
        i, j = best
        y0, x0 = gap + i * (ch + gap), gap + j * (cw + gap)
        pad = max(1.0, gap / 2.5)
        fig.add_shape(type="rect", x0=x0 - pad - 0.5, x1=x0 + cw + pad - 0.5, y0=y0 - pad - 0.5,
                      y1=y0 + ch + pad - 0.5, line=dict(color=HIGHLIGHT, width=3))
    fig.update_layout(margin=dict(l=64, r=0, t=30, b=0), clickmode="event+select", hovermode="closest")
    return fig


def cell_from_event(event) -> tuple[int, int] | None:
    """(rho index, beta index) of the clicked cell in a Streamlit plotly selection event, or None."""
    try:
        points = event["selection"]["points"]
    except (KeyError, TypeError):
        return None
    for point in points or ():
        custom = point.get("customdata") if isinstance(point, dict) else None
        if isinstance(custom, dict):  # typed arrays may come back as {"0": ..., "1": ...}
            custom = [custom[k] for k in sorted(custom, key=int)]
        if custom is not None and len(custom) >= 2:
            try:
                return int(custom[0]), int(custom[1])
            except (TypeError, ValueError):
                continue
    return None


__all__ = ["compare_curves", "compare_rho_hat", "filters_side_by_side", "sweep_heatmap", "sweep_filters",
           "cell_from_event", "METRIC_STYLE", "COLUMN_TITLES"]
