"""A run and its twin in one figure: pure functions, no Streamlit.

The twin (``sae.app.twin``) trains beside the run with a few settings changed; every view shows both. The run is
drawn as it always is; the twin is drawn over it in :data:`TWIN_COLOR` (violet) or, for curves that have colours
of their own (the loss terms), in the same colours dashed. Legend names come from the caller, e.g. "run (β 3)"
and "twin (β 10)".

- :func:`loss_curves`: :func:`sae.viz.curves.loss_curves` of both, overlaid (the twin dashed);
- :func:`rho_hat_band`: the run's ρ̂ band with the twin's mean ρ̂ (and its target ρ, where it differs);
- :func:`kl_curve`: both sets of ρ̂ⱼ as points on the KL curve (the twin's own curve too where its ρ or β differs);
- :func:`activation_histograms`, :func:`rho_hat_histograms`, :func:`l0_histograms`: the run's bars with the twin's
  histogram on the same bins as a step outline;
- :func:`filter_similarity_figure`: the cosine of each unit's run and twin filters, as bars.

Built as plain dicts like the live figures they extend (``sae.viz.style.figure``).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from sae.viz import curves, distributions
from sae.viz.style import CURVE_POINTS, activation_range, axis_title, base_layout, f32, figure, thin, vline

TWIN_COLOR = "#9467bd"  # violet: the twin's points, lines and outlines
TWIN_GROUP = "twin"  # the legend group of the twin's traces (a click on its entry hides them all)


def _parts(fig: go.Figure) -> tuple[list[dict], dict]:
    """A figure's traces and layout as plain dicts (shallow copies: the figure itself is left alone)."""
    return [dict(t) for t in fig._data], dict(fig._layout)


def _extra_label(template: str, prefix: str) -> str:
    """A hovertemplate whose <extra> box (the trace's name on hover) starts with ``prefix``."""
    if "<extra>" in template:
        head, _, rest = template.partition("<extra>")
        return f"{head}<extra>{prefix}{rest}"
    return template + f"<extra>{prefix.strip()}</extra>"


def _widen_range(layout: dict, other: dict, axis: str = "yaxis") -> None:
    """Make ``layout``'s fixed axis range also hold ``other``'s (both figures framed their own data)."""
    mine, theirs = layout.get(axis, {}).get("range"), other.get(axis, {}).get("range")
    if mine is not None and theirs is not None:
        layout[axis] = {**layout[axis], "range": [min(mine[0], theirs[0]), max(mine[1], theirs[1])]}


# ------------------------------------------------------------------------------------- curves

def loss_curves(history: Mapping[str, np.ndarray], twin_history: Mapping[str, np.ndarray], penalty: str = "kl",
                log_y: bool = False, names: tuple[str, str] = ("run", "twin"), status: str | None = None,
                ) -> go.Figure:
    """The objective split by term for the run (solid) and the twin (dashed, the same colours), overlaid. The twin's
    terms share one legend entry, ``names[1]``; the run's keep their term names."""
    run = curves.loss_curves(history, penalty, log_y=log_y, status=status)
    if not len(twin_history.get("step", ())):
        return run
    twin = curves.loss_curves(twin_history, penalty, log_y=log_y)
    data, layout = _parts(run)
    twin_data, twin_layout = _parts(twin)
    if not len(history.get("step", ())):  # the run has no step yet (a twin never leads it, but be safe)
        data, layout = [], twin_layout
    for k, trace in enumerate(twin_data):
        term = trace["name"]
        last = k == len(twin_data) - 1  # total J, in black: the legend's one entry for the twin's dashed terms
        data.append({**trace, "name": f"{names[1]}, dashed", "legendgroup": TWIN_GROUP, "showlegend": last,
                     "line": {**trace["line"], "dash": "dash"},
                     "hovertemplate": _extra_label(trace["hovertemplate"], "twin: ") if "hovertemplate" in trace
                     else f"twin: {term}"})
    _widen_range(layout, twin_layout)
    return figure(data, layout)


def rho_hat_band(history: Mapping[str, np.ndarray], twin_history: Mapping[str, np.ndarray], log_y: bool = False,
                 target: bool = True, twin_target: bool = False, names: tuple[str, str] = ("run", "twin"),
                 status: str | None = None) -> go.Figure:
    """The run's mean ρ̂ with its spread and target (``sae.viz.curves.rho_hat_band``), and the twin's mean ρ̂ as a
    violet dashed line; ``twin_target``: the twin's target ρ differs from the run's, draw it too (dotted)."""
    fig = curves.rho_hat_band(history, log_y=log_y, target=target, status=status)
    steps = np.asarray(twin_history.get("step", []), dtype=float)
    if not len(steps) or not len(history.get("step", ())):
        return fig
    data, layout = _parts(fig)
    i = thin(len(steps), CURVE_POINTS)
    x = steps[i].astype(np.int32) if steps[-1] < 2**31 else f32(steps[i])
    mean = f32(twin_history["rho_hat_mean"][i])
    if log_y:
        mean = np.where(mean > 0, mean, np.nan).astype(np.float32)
    data.append(dict(type="scatter", x=x, y=mean, name=f"{names[1]}: mean ρ̂", mode="lines",
                     legendgroup=TWIN_GROUP, line=dict(color=TWIN_COLOR, width=2.5, dash="dash"),
                     hovertemplate="step %{x:,}<br>twin mean ρ̂ %{y:.4f}<extra></extra>"))
    if twin_target:
        data.append(dict(type="scatter", x=x, y=f32(twin_history["rho"][i]), name=f"{names[1]}: target ρ",
                         mode="lines", legendgroup=TWIN_GROUP, line=dict(color=TWIN_COLOR, width=1.5, dash="dot"),
                         hovertemplate="twin target ρ %{y:g}<extra></extra>"))
    return figure(data, layout)


def kl_curve(rho: float, scale: float, rho_hat: np.ndarray | None, twin_rho: float, twin_scale: float,
             twin_rho_hat: np.ndarray | None, names: tuple[str, str] = ("run", "twin"), derivative: bool = False,
             compare: Sequence[float] = (), x_range: tuple[float, float] | None = None, title: str | None = None,
             height: int = 440) -> go.Figure:
    """``sae.viz.curves.kl_curve`` of the run with the twin's ρ̂ⱼ as violet points: on the run's curve where the
    twin has the same ρ and scale (β, when the curve is scaled by β), else on its own curve, drawn dashed violet
    (and its ρ marked). The run's points are named ``names[0]``, the twin's ``names[1]``."""
    run = curves.kl_curve(rho, scale, rho_hat, derivative=derivative, compare=compare, x_range=x_range, title=title,
                          height=height)
    data, layout = _parts(run)
    for trace in data:
        if trace.get("mode") == "markers":
            trace["name"] = f"{names[0]}: {len(trace['x'])} units"
    twin = curves.kl_curve(twin_rho, twin_scale, twin_rho_hat, x_range=x_range, height=height)
    twin_data, twin_layout = _parts(twin)
    same_curve = np.isclose(twin_rho, rho) and np.isclose(twin_scale, scale)
    for trace in twin_data:
        if trace.get("mode") == "markers":
            data.append({**trace, "name": f"{names[1]}: {len(trace['x'])} units", "legendgroup": TWIN_GROUP,
                         "marker": dict(size=9, color=TWIN_COLOR, symbol="diamond", opacity=0.85,
                                        line=dict(color="#3f2160", width=1)),
                         "hovertemplate": _extra_label(trace["hovertemplate"], "twin")})
        elif not same_curve:  # the twin's own curve
            curve_name = trace["name"] if not np.isclose(twin_rho, rho) else trace["name"].split(",")[0]
            data.append({**trace, "name": f"{names[1]}: {curve_name}", "legendgroup": TWIN_GROUP,
                         "line": dict(color=TWIN_COLOR, width=2, dash="dash"),
                         "hovertemplate": "twin<br>" + trace["hovertemplate"]})
    if not np.isclose(twin_rho, rho):
        shape, notes = vline(twin_rho, dict(color=TWIN_COLOR, dash="dot", width=1.5), f"twin ρ = {twin_rho:g}")
        notes = [{**n, "y": 0.93} for n in notes]  # below the run's label
        layout["shapes"] = [*layout.get("shapes", []), shape]
        layout["annotations"] = [*layout.get("annotations", []), *notes]
    if x_range is None:
        _widen_range(layout, twin_layout)  # the whole of both curves
    else:  # a zoom frames the units: the twin's points, not its curve's steep left end
        points = [float(np.max(t["y"])) for t in data[-2:] if t.get("mode") == "markers" and len(t["y"])]
        y0, y1 = layout["yaxis"]["range"]
        if points and 1.08 * max(points) > y1:
            layout["yaxis"] = {**layout["yaxis"], "range": [y0, 1.08 * max(points)]}
    return figure(data, layout)


# ------------------------------------------------------------------------------------- histograms

def _with_twin_outline(fig: go.Figure, twin_counts: np.ndarray, edges: np.ndarray, names: tuple[str, str],
                       log_y: bool, twin_lines: Mapping[str, float | None] | None = None) -> go.Figure:
    """A ``histogram_figure`` (the run's bars) with the twin's counts on the same bins as a violet step outline."""
    data, layout = _parts(fig)
    data[0] = {**data[0], "name": names[0], "showlegend": True}
    counts = np.asarray(twin_counts, dtype=float)
    y = np.r_[counts, counts[-1:]]
    if log_y:
        y = np.where(y > 0, y, np.nan)
    data.append(dict(type="scatter", x=f32(edges), y=f32(y), mode="lines", line=dict(color=TWIN_COLOR, width=2.2,
                                                                                      shape="hv"),
                     name=names[1], legendgroup=TWIN_GROUP,
                     hovertemplate="from %{x:.3g}: %{y:,}<extra>twin</extra>"))
    shapes = list(layout.get("shapes", []))
    for name, x in (twin_lines or {}).items():
        if x is not None and np.isfinite(x):
            shapes.append(vline(float(x), dict(color=TWIN_COLOR, dash="dot", width=2), name=f"twin {name} = {x:.3g}",
                                showlegend=True, legendgroup=TWIN_GROUP)[0])
    if shapes:
        layout["shapes"] = shapes
    return figure(data, layout)


def activation_histograms(A: np.ndarray, A_twin: np.ndarray, activation: str = "sigmoid", bins: int = 50,
                          log_y: bool = True, names: tuple[str, str] = ("run", "twin"),
                          height: int = 300) -> go.Figure:
    """Every hidden activation aᵢⱼ of the run (bars) and of the twin (outline) on the same bins."""
    A, A_twin = np.asarray(A), np.asarray(A_twin)
    rng = activation_range(activation)
    if rng is None:  # unbounded (relu): bins over both
        hi = max(float(np.nanmax(A)) if A.size else 0.0, float(np.nanmax(A_twin)) if A_twin.size else 0.0)
        rng = (0.0, hi if hi > 0 else 1.0)
    counts, edges = distributions.binned(A, bins, rng)
    twin_counts, _ = distributions.binned(A_twin, bins, rng)
    fig = distributions.histogram_figure(counts, edges, f"activation aᵢⱼ ({A.shape[0]:,} samples × {A.shape[1]} units)",
                                         title="All hidden activations · run and twin", log_y=log_y, height=height)
    return _with_twin_outline(fig, twin_counts, edges, names, log_y)


def rho_hat_histograms(rho_hat: np.ndarray, twin_rho_hat: np.ndarray, rho: float | None = None,
                       twin_rho: float | None = None, bins: int = 40, names: tuple[str, str] = ("run", "twin"),
                       height: int = 300) -> go.Figure:
    """The units' ρ̂ⱼ of the run (bars) and of the twin (outline) on the same bins, the targets marked (the twin's
    only where it differs) and both means."""
    r, t = np.asarray(rho_hat, dtype=float), np.asarray(twin_rho_hat, dtype=float)
    both = np.r_[r, t]
    finite = both[np.isfinite(both)]
    hi = max(float(finite.max()) if finite.size else 0.0, (rho or 0) * 2, (twin_rho or 0) * 2, 1e-3)
    counts, edges = distributions.binned(r, bins, (0.0, min(1.0, hi * 1.05)))
    twin_counts, _ = distributions.binned(t, bins, (0.0, min(1.0, hi * 1.05)))
    lines = {"target ρ": rho}
    if np.isfinite(r).any():
        lines["mean ρ̂"] = float(np.nanmean(r))
    twin_lines = {}
    if twin_rho is not None and (rho is None or not np.isclose(twin_rho, rho)):
        twin_lines["target ρ"] = twin_rho
    if np.isfinite(t).any():
        twin_lines["mean ρ̂"] = float(np.nanmean(t))
    fig = distributions.histogram_figure(counts, edges, "ρ̂ⱼ (one value per hidden unit)", "units",
                                         "Mean activation per unit ρ̂ⱼ · run and twin", color="#ff7f0e", vlines=lines,
                                         height=height)
    return _with_twin_outline(fig, twin_counts, edges, names, False, twin_lines)


def l0_histograms(l0: np.ndarray, twin_l0: np.ndarray, n_hidden: int, names: tuple[str, str] = ("run", "twin"),
                  height: int = 300) -> go.Figure:
    """Active units per sample of the run (bars) and of the twin (outline), with both means."""
    l0, twin_l0 = np.asarray(l0), np.asarray(twin_l0)
    top = int(min(n_hidden, max(int(l0.max()) if l0.size else 0, int(twin_l0.max()) if twin_l0.size else 0, 1)))
    edges = np.arange(top + 2) - 0.5
    counts, _ = np.histogram(l0, bins=edges)
    twin_counts, _ = np.histogram(twin_l0, bins=edges)
    fig = distributions.histogram_figure(counts, edges, "active units per sample (L0, activity > 0.1)", "samples",
                                         "L0 per sample · run and twin", color="#2ca02c",
                                         vlines={"mean": float(l0.mean()) if l0.size else None}, height=height)
    return _with_twin_outline(fig, twin_counts, edges, names, False,
                              {"mean": float(twin_l0.mean()) if twin_l0.size else None})


# ------------------------------------------------------------------------------------- filters

def filter_similarity_figure(cosine: np.ndarray, order: np.ndarray | None = None,
                             change: np.ndarray | None = None, title: str | None = None,
                             height: int = 260) -> go.Figure:
    """Each unit's cosine similarity between its run and twin filters as a bar (1: the same direction), in the
    filter grids' ``order``; ``change``: ‖w_twin − w_run‖ / ‖w_run‖ per unit, shown on hover."""
    cosine = np.asarray(cosine, dtype=float)
    order = np.arange(len(cosine)) if order is None else np.asarray(order)
    custom = np.stack([order.astype(float), np.zeros(len(order)) if change is None
                       else np.asarray(change, dtype=float)[order]], axis=1)
    y = cosine[order]
    colors = np.where(y >= 0.9, "#2ca02c", np.where(y >= 0.5, "#ff7f0e", "#d62728"))
    bars = dict(type="bar", x=np.arange(len(order)), y=f32(y), customdata=np.round(custom, 5).tolist(),
                marker=dict(color=colors.tolist(), line=dict(width=0)), showlegend=False, name="cosine",
                hovertemplate="unit %{customdata[0]:.0f}<br>cos = %{y:.4f}"
                              + ("<br>‖Δw‖/‖w‖ = %{customdata[1]:.3f}" if change is not None else "")
                              + "<extra></extra>")
    return figure([bars], base_layout(title, height=height, bargap=0.1,
                                      xaxis={**axis_title("unit, in the grids' order"), "showticklabels": False},
                                      yaxis={**axis_title("cos(w_run, w_twin)"), "range": [min(-0.05, float(
                                          np.nanmin(y)) - 0.05) if len(y) else -0.05, 1.05]}))


__all__ = ["loss_curves", "rho_hat_band", "kl_curve", "activation_histograms", "rho_hat_histograms",
           "l0_histograms", "filter_similarity_figure", "TWIN_COLOR", "TWIN_GROUP"]
