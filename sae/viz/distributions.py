"""Distributions as Plotly figures: pure functions, no Streamlit.

- histograms binned here with numpy and drawn as bars: :func:`binned` and :func:`histogram_figure` for any
  values (e.g. per-sample reconstruction errors); :func:`activation_histogram`, :func:`rho_hat_histogram` and
  :func:`l0_histogram` for the hidden codes;
- :func:`activation_heatmap`: samples × units activations, quantised to uint8 (sent as base64 typed arrays);
- :func:`distribution_over_time`: how a distribution moves during training (steps × value bins).

Built as plain dicts (``sae.viz.style.figure``: no per-property validation).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import plotly.graph_objects as go

from sae.viz.style import colorscale as style_colorscale
from sae.viz.style import (activation_range, axis_title, base_layout, empty_figure, f32, figure, hline, vline,
                           waiting_message)

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
    bars = dict(type="bar", x=centers, y=counts, width=widths, marker=dict(color=color, line=dict(width=0)),
                customdata=np.stack([edges[:-1], edges[1:]], 1), showlegend=False,
                hovertemplate="[%{customdata[0]:.3g}, %{customdata[1]:.3g}): %{y:,}<extra></extra>")
    dashes = ("dash", "dot", "dashdot")
    shapes = []
    for k, (name, x) in enumerate((vlines or {}).items()):
        if x is not None and np.isfinite(x):  # marked lines are named in the legend: no overlapping labels
            shapes.append(vline(float(x), dict(color=("#d62728", "#222", "#2ca02c")[k % 3], dash=dashes[k % 3],
                                               width=2), name=f"{name} = {x:.3g}", showlegend=True)[0])
    yaxis = {**axis_title(y_title), "type": "log" if log_y else "linear", **({"dtick": 1} if log_y else {})}
    return figure([bars], base_layout(title, height=height, bargap=0.02, xaxis=axis_title(x_title), yaxis=yaxis,
                                      legend=dict(orientation="v", x=0.99, xanchor="right", y=0.98, yanchor="top",
                                                  bgcolor="rgba(255,255,255,0.75)"),
                                      **({"shapes": shapes} if shapes else {})))


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
    heat = dict(type="heatmap", z=Z, colorscale=style_colorscale("Viridis"), zmin=0, zmax=255, y=np.arange(len(idx)),
                colorbar=dict(title=dict(text="a"), thickness=12, tickvals=ticks,
                              ticktext=[f"{lo + t / 255 * (hi - lo):.2g}" for t in ticks]),
                hovertemplate="row %{y}<br>unit %{x}<br>a ≈ %{z}/255<extra></extra>")
    if labels is not None:
        lab = np.asarray(labels)[idx]
        change = np.flatnonzero(np.diff(lab)) + 1
        starts = np.r_[0, change]
        yaxis = dict(tickvals=starts, ticktext=[f"{lab[k]}" for k in starts], **axis_title("samples (by label)"))
    else:
        yaxis = axis_title("samples")
    return figure([heat], base_layout("Activations: samples × units", height=height, xaxis=axis_title("hidden unit j"),
                                      yaxis={**yaxis, "autorange": "reversed"}))


def distribution_over_time(steps: np.ndarray, fractions: np.ndarray, edges: np.ndarray, y_title: str,
                           title: str, target: float | tuple[np.ndarray, np.ndarray] | None = None,
                           log_y: bool = False, colorscale: str = "Blues", height: int = 320,
                           status: str | None = None) -> go.Figure:
    """How a distribution moves during training: x = step, y = value bins, colour = fraction of the
    values in the bin (square-root scale, so that thin tails stay visible next to a spike).

    ``target``: the target ρ, a number (a flat line) or (steps, values) as the history records it, drawn as
    it was at each step (a ρ changed mid-run shows where it changed); None: no target (L1, TopK).
    ``log_y`` puts the bins on a log axis (for log-spaced edges; a first bin starting at 0 is drawn
    just below the second). ``status``: the run's, for the message of an empty chart.
    """
    steps, fractions = np.asarray(steps), np.asarray(fractions, dtype=float)
    if len(steps) == 0:
        return empty_figure(waiting_message(status), height)
    edges = np.asarray(edges, dtype=float)
    lo, hi = edges[:-1], edges[1:]
    if log_y:
        centers = np.where(lo > 0, np.sqrt(np.maximum(lo, 1e-12) * hi), hi / 2)
    else:
        centers = (lo + hi) / 2
    Z = np.sqrt(fractions.T)
    data = [dict(type="heatmap", x=steps, y=centers, z=_quantize(Z, 0.0, float(Z.max()) or 1.0),
                 colorscale=style_colorscale(colorscale), showscale=False,
                 hovertemplate="step %{x:,}<br>value ≈ %{y:.3g}<extra></extra>")]
    lines = {}
    if isinstance(target, tuple):
        data.append(_target_line(*target, until=float(steps[-1])))
    elif target is not None:
        shape, notes = hline(target, dict(color="#d62728", dash="dash", width=2), f"ρ = {target:g}")
        lines = {"shapes": [shape], "annotations": notes}
    return figure(data, base_layout(title, height=height, xaxis=axis_title("step"),
                                    yaxis={**axis_title(y_title), "type": "log" if log_y else "linear"}, **lines))


def _target_line(steps: np.ndarray, values: np.ndarray, until: float, points: int = 400) -> dict:
    """The target ρ over the steps (a step line, thinned to the points where it changes plus a few): a trace dict."""
    steps, values = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    keep = steps <= until
    steps, values = steps[keep], values[keep]
    if len(steps) == 0:
        return dict(type="scatter", x=[], y=[], name="target ρ")
    change = np.r_[True, values[1:] != values[:-1]]  # where it changed
    change[-1] = True
    change[np.linspace(0, len(steps) - 1, min(points, len(steps))).astype(int)] = True
    return dict(type="scatter", x=f32(steps[change]), y=f32(values[change]), name="target ρ", mode="lines",
                line=dict(color="#d62728", dash="dash", width=2, shape="hv"), showlegend=False,
                hovertemplate="step %{x:,}<br>target ρ %{y:g}<extra></extra>")


__all__ = ["binned", "histogram_figure", "activation_histogram", "rho_hat_histogram", "l0_histogram",
           "activation_heatmap", "distribution_over_time"]
