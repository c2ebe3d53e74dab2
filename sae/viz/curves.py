"""The objective over training and the KL penalty as Plotly figures: pure functions, no Streamlit.

- :func:`loss_curves`: the objective split by term (reconstruction, β·penalty, weight decay, total) over steps;
- :func:`rho_hat_band`: mean ρ̂ with its spread over steps, against the target ρ;
- :func:`kl_curve`: β·KL(ρ‖ρ̂) over ρ̂, every unit's current ρ̂ⱼ a point on it (:func:`kl_values`: the very
  KL that training uses).

Payloads stay small so a page redrawn twice a second stays fluid: curves are thinned to at most
``sae.viz.style.MAX_POINTS`` points and drawn as SVG ``go.Scatter``; the figures are built as plain dicts
(``sae.viz.style.figure``: no per-property validation, ~1 ms instead of 20-60 ms).
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
import torch

from sae.core.loss import kl_divergence, kl_divergence_grad
from sae.viz.style import (CURVE_POINTS, LABEL_COLORS, MAX_POINTS, TERM_COLORS, axis_title, base_layout, empty_figure,
                           f32, figure, thin, vline, waiting_message)

PENALTY_NAMES = {"kl": "β·KL", "l1": "β·L1", "topk": "sparsity"}


# ------------------------------------------------------------------------------------- curves

def loss_curves(history: Mapping[str, np.ndarray], penalty: str = "kl", log_y: bool = False,
                max_points: int = CURVE_POINTS, status: str | None = None) -> go.Figure:
    """The objective split by term over training steps: reconstruction, β·penalty, weight decay, total.
    ``status``: the run's, for the message of an empty chart (a queued run says so)."""
    steps = np.asarray(history.get("step", []), dtype=float)
    if len(steps) == 0:
        return empty_figure(waiting_message(status))
    idx = thin(len(steps), min(max_points, MAX_POINTS))
    x = steps[idx].astype(np.int32) if steps[-1] < 2**31 else f32(steps[idx])
    names = {"reconstruction": "reconstruction ½‖x̂−x‖²", "sparsity": PENALTY_NAMES.get(penalty, "sparsity"),
             "weight_decay": "weight decay (λ/2)‖W‖²", "total": "total J"}
    data = []
    for term in ("reconstruction", "sparsity", "weight_decay", "total"):
        if term == "sparsity" and penalty == "topk":
            continue
        y = np.asarray(history[term], dtype=float)[idx]
        if log_y:
            y = np.where(y > 0, y, np.nan)
        data.append(dict(type="scatter", x=x, y=f32(y), mode="lines", name=names[term],
                         line=dict(color=TERM_COLORS[term], width=3 if term == "total" else 1.8),
                         hovertemplate="step %{x:,}<br>%{y:.4g}<extra>" + names[term] + "</extra>"))
    yaxis = {**axis_title("loss"), "type": "log" if log_y else "linear"}
    if not log_y and len(idx) > 20:  # the first steps' spike would flatten the rest: frame what follows
        total = np.asarray(history["total"], dtype=float)[idx][len(idx) // 20:]
        top = float(np.nanmax(total)) if np.isfinite(total).any() else None
        if top and top > 0:
            yaxis["range"] = [0, 1.15 * top]
    return figure(data, base_layout(xaxis=axis_title("step"), yaxis=yaxis, hovermode="x unified"))


def rho_hat_band(history: Mapping[str, np.ndarray], log_y: bool = False, max_points: int = CURVE_POINTS,
                 target: bool = True, status: str | None = None) -> go.Figure:
    """Mean ρ̂ over units with its spread (±1 std, min-max) over time, against the target ρ as it was at each step.

    ``log_y``: a log axis shows both the start (ρ̂ ≈ 0.5 for sigmoid units) and a small target like 0.01.
    ``target``: draw the target (False under the L1 and TopK penalties, which have none).
    ``status``: the run's, for the message of an empty chart.
    """
    steps = np.asarray(history.get("step", []), dtype=float)
    if len(steps) == 0:
        return empty_figure(waiting_message(status))
    i = thin(len(steps), min(max_points, MAX_POINTS))
    x = steps[i].astype(np.int32) if steps[-1] < 2**31 else f32(steps[i])
    mean, std = f32(history["rho_hat_mean"][i]), f32(history["rho_hat_std"][i])
    lo, hi = f32(history["rho_hat_min"][i]), f32(history["rho_hat_max"][i])
    floor = 1e-4 if log_y else 0.0  # a log axis cannot show 0
    lo = np.maximum(lo, floor)
    band = dict(type="scatter", x=x, mode="lines", line=dict(width=0), hoverinfo="skip")
    data = [dict(band, y=hi, showlegend=False),
            dict(band, y=lo, fill="tonexty", fillcolor="rgba(31,119,180,0.10)", name="min–max"),
            dict(band, y=np.clip(mean + std, 0, 1), showlegend=False),
            dict(band, y=np.clip(mean - std, floor, 1), fill="tonexty", fillcolor="rgba(31,119,180,0.28)",
                 name="±1 std"),
            dict(type="scatter", x=x, y=mean, name="mean ρ̂", mode="lines", line=dict(color="#1f77b4", width=2.5),
                 hovertemplate="step %{x:,}<br>mean ρ̂ %{y:.4f}<extra></extra>")]
    if target:
        data.append(dict(type="scatter", x=x, y=f32(history["rho"][i]), name="target ρ", mode="lines",
                         line=dict(color="#d62728", dash="dash", width=2), hovertemplate="target ρ %{y:g}<extra></extra>"))
    yaxis = {**axis_title("ρ̂ⱼ (mean activation of unit j)"), **({"type": "log"} if log_y else {"rangemode": "tozero"})}
    return figure(data, base_layout(xaxis=axis_title("step"), yaxis=yaxis, hovermode="x unified"))


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
    data = []
    scale = float(beta)
    label = "KL(ρ‖ρ̂)" if scale == 1 else f"{scale:g}·KL(ρ‖ρ̂)"
    ys = [scale * kl_values(rho, x)]
    if x_range is not None:
        compare = ()  # a zoom is about this rho's valley; other curves would set its scale
    for k, other in enumerate(r for r in compare if not math.isclose(r, rho)):
        y = scale * kl_values(other, x)
        ys.append(y)
        data.append(dict(type="scatter", x=x, y=y, mode="lines", name=f"ρ = {other:g}",
                         line=dict(dash="dash", width=1.5, color=LABEL_COLORS[(k + 1) % 10]),
                         hovertemplate=f"ρ = {other:g}<br>ρ̂ %{{x:.3f}}<br>penalty %{{y:.4g}}<extra></extra>"))
    data.append(dict(type="scatter", x=x, y=ys[0], mode="lines", name=f"{label}, ρ = {rho:g}",
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
        data.append(dict(
            type="scatter", x=r, y=p, mode="markers", name=f"hidden units ({len(r)})", customdata=units,
            marker=dict(size=9, color="#ff7f0e", line=dict(color="#7f3f00", width=1), opacity=0.85),
            hovertemplate="unit %{customdata}<br>ρ̂ⱼ = %{x:.4f}<br>penalty %{y:.4g}<extra></extra>"))
        top = max(top, float(np.max(p)) if len(p) else 0.0)
    shape, notes = vline(rho, dict(color="#d62728", dash="dot", width=1.5), f"ρ = {rho:g}")
    extra = {}
    if derivative:
        g = scale * kl_divergence_grad(float(rho), torch.as_tensor(x)).numpy()
        sel = (x >= max(rho / 4, 0.01)) & (x <= 0.95)
        lim = np.nanmax(np.abs(g[sel] if sel.any() else g)) * 1.1 + 1e-9
        data.append(dict(type="scatter", x=x, y=g, mode="lines", name="β·dKL/dρ̂ (right axis)", yaxis="y2",
                         line=dict(color="#2ca02c", width=2, dash="dashdot"),
                         hovertemplate="ρ̂ %{x:.3f}<br>slope %{y:.4g}<extra></extra>"))
        extra["yaxis2"] = dict(overlaying="y", side="right", **axis_title("β·dKL/dρ̂ⱼ"), range=[-lim, lim],
                               zeroline=True, showgrid=False, tickmode="auto", nticks=7)
    # the legend inside the plot where the curves leave room: top centre of the full view (the curve
    # rises at both ends), top right of a zoom on the valley (clear of the ρ label at the left)
    x_legend, anchor = (0.5, "center") if x_range is None else (0.99, "right")
    return figure(data, base_layout(
        title, height=height, hovermode="closest", shapes=[shape], annotations=notes,
        xaxis={**axis_title("ρ̂ⱼ: mean activation of hidden unit j"), "range": [x0, x1]},
        yaxis={**axis_title(("β·" if scale != 1 else "") + "KL(ρ‖ρ̂ⱼ)"), "range": [-0.03 * top, 1.08 * top + 1e-9]},
        legend=dict(orientation="v", x=x_legend, xanchor=anchor, y=0.99, yanchor="top",
                    bgcolor="rgba(255,255,255,0.8)"), **extra))


__all__ = ["loss_curves", "rho_hat_band", "kl_values", "kl_curve", "PENALTY_NAMES"]
