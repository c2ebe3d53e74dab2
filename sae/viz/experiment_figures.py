"""Pure Plotly figures of the experiment pages (denoising, anomaly, self-taught, mistakes). No Streamlit.

Same conventions as the live views (:mod:`sae.viz.curves`, :mod:`sae.viz.samples`, ...): numpy in,
``go.Figure`` out; images tiled into one picture, histograms binned here, curves as SVG ``go.Scatter``.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from sae.viz.style import TERM_COLORS, empty_figure, f32, image_trace_figure, layout, thin
from sae.evaluation.labels import METRIC_LABELS
from sae.viz.images import tile

NORMAL_COLOR, ANOMALY_COLOR = "#1f77b4", "#d62728"
CORRECT_COLOR, WRONG_COLOR = "#2ca02c", "#d62728"


# ------------------------------------------------------------------------------------------ denoising

def denoising_grid(rows: Mapping[str, np.ndarray], image_shape: tuple[int, int],
                   height: int | None = None) -> go.Figure:
    """Rows of images, one picture: ``rows`` maps a row name (e.g. "noisy") to (k, h*w) images in [0, 1].
    The names are written left of their rows."""
    names = list(rows)
    h, w = image_shape
    k = len(next(iter(rows.values())))
    cells = np.concatenate([np.clip(np.asarray(rows[n], dtype=float).reshape(k, h, w), 0, 1) for n in names])
    border = max(1, h // 8)
    img = tile(cells, columns=k, border=border, border_value=1.0)
    # the picture keeps its aspect ratio: size the chart for a column about 690 px wide (labels: 90 px)
    fig = image_trace_figure(img, height or int(min(560, max(160, 12 + 600 * img.shape[0] / img.shape[1]))))
    for r, name in enumerate(names):
        fig.add_annotation(x=-border, y=border + r * (h + border) + h / 2, text=f"<b>{name}</b>", showarrow=False,
                           xanchor="right", yanchor="middle", font=dict(size=13, color="#333"))
    fig.update_layout(margin=dict(l=90, r=0, t=6, b=6))
    return fig


def psnr_curves(levels: np.ndarray, noisy: np.ndarray, denoised: np.ndarray, plain: np.ndarray | None = None,
                train_level: float | None = None, noise: str = "gaussian", height: int = 360) -> go.Figure:
    """Mean PSNR (dB) against the test noise level: the noisy input, the denoising model, the plain model."""
    x = f32(levels)
    fig = go.Figure()
    series = [("noisy input x̃", noisy, "#7f7f7f", "dot"), ("denoising SAE  g(x̃)", denoised, CORRECT_COLOR, "solid")]
    if plain is not None:
        series.append(("plain SAE on x̃", plain, "#ff7f0e", "dash"))
    for name, y, color, dash in series:
        fig.add_trace(go.Scatter(x=x, y=f32(y), name=name, mode="lines+markers",
                                 line=dict(color=color, dash=dash, width=2.5),
                                 hovertemplate="level %{x:g}: %{y:.2f} dB<extra>" + name + "</extra>"))
    if train_level is not None:
        fig.add_vline(x=float(train_level), line=dict(color="#444", dash="dash", width=1),
                      annotation_text="training level", annotation_position="bottom right")
    what = ("noise factor σ (x̃ = clip(x + σ·N(0,1)))" if noise == "gaussian"
            else "masked fraction (inputs set to 0)")
    fig.update_xaxes(title=what)
    fig.update_yaxes(title="PSNR against the clean image (dB)")
    layout(fig, "PSNR on held-out images, higher is better", height=height, hovermode="x unified")
    fig.update_layout(legend=dict(orientation="v", x=0.01, xanchor="left", y=0.01, yanchor="bottom",
                                  bgcolor="rgba(255,255,255,0.8)"))
    return fig


# ------------------------------------------------------------------------------------------ anomaly

def score_histograms(edges: np.ndarray, normal: np.ndarray, anomalous: np.ndarray, threshold: float,
                     log_y: bool = False, names: tuple[str, str] = ("normal (held out)", "anomalous"),
                     height: int = 360) -> go.Figure:
    """Two pre-binned score histograms on shared bins, overlaid, with the threshold τ marked."""
    edges = np.asarray(edges, dtype=float)
    centers, widths = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
    fig = go.Figure()
    for name, counts, color in ((names[0], normal, NORMAL_COLOR), (names[1], anomalous, ANOMALY_COLOR)):
        fig.add_trace(go.Bar(x=f32(centers), y=np.asarray(counts), width=f32(widths), name=name, opacity=0.6,
                             marker=dict(color=color, line=dict(width=0)),
                             hovertemplate="score ≈ %{x:.3g}: %{y:,}<extra>" + name + "</extra>"))
    fig.add_vline(x=float(threshold), line=dict(color="#111", dash="dash", width=2),
                  annotation_text=f"τ = {threshold:.3g}", annotation_position="top right")
    fig.update_xaxes(title="score = ½‖x̂ᵢ − xᵢ‖², each sample's own reconstruction error")
    fig.update_yaxes(title="samples", type="log" if log_y else "linear")
    return layout(fig, f"{METRIC_LABELS['reconstruction'].name} per sample", height=height, barmode="overlay", bargap=0)


def roc_figure(fpr: np.ndarray, tpr: np.ndarray, auc: float, point: tuple[float, float] | None = None,
               height: int = 360) -> go.Figure:
    """ROC curve (≤ 2,000 points) with the chance diagonal and the operating point at τ."""
    i = thin(len(fpr))
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(color="#aaa", dash="dot"), name="chance",
                             hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=f32(np.asarray(fpr)[i]), y=f32(np.asarray(tpr)[i]), mode="lines",
                             line=dict(color=ANOMALY_COLOR, width=2.5), name=f"ROC, AUC = {auc:.3f}",
                             hovertemplate="FPR %{x:.3f}<br>TPR %{y:.3f}<extra></extra>"))
    if point is not None:
        fig.add_trace(go.Scatter(x=[point[0]], y=[point[1]], mode="markers", name="at τ",
                                 marker=dict(size=12, color="#111", symbol="x"),
                                 hovertemplate="at τ: FPR %{x:.3f}, TPR %{y:.3f}<extra></extra>"))
    fig.update_xaxes(title="false positive rate (normal samples flagged)", range=[0, 1], constrain="domain")
    fig.update_yaxes(title="true positive rate (anomalies flagged)", range=[0, 1.02])
    return layout(fig, "ROC curve", height=height)


def class_bars(rates: Mapping[int, float], normal_classes: Sequence[int], title: str, y_title: str,
               percent: bool = True, height: int = 300) -> go.Figure:
    """One bar per class (normal classes blue, the others red), e.g. the share flagged at τ."""
    classes = sorted(rates)
    normal = set(int(c) for c in normal_classes)
    values = [rates[c] for c in classes]
    fig = go.Figure(go.Bar(x=[str(c) for c in classes], y=values,
                           marker=dict(color=[NORMAL_COLOR if c in normal else ANOMALY_COLOR for c in classes]),
                           text=[f"{v:.0%}" if percent else f"{v:.3g}" for v in values], textposition="outside",
                           hovertemplate="class %{x}: %{y:.3g}<extra></extra>"))
    fig.update_xaxes(title="class (blue: normal, red: anomalous)", type="category")
    fig.update_yaxes(title=y_title, tickformat=".0%" if percent else None,
                     range=[0, 1.12] if percent else None)
    return layout(fig, title, height=height)


# ------------------------------------------------------------------------------------------ self-taught

def accuracy_figure(codes: float, raw: float, reference: tuple[float, float] | None = (0.98, 0.96),
                    chance: float | None = None, height: int = 320) -> go.Figure:
    """Test accuracy of logistic regression on the codes and on the raw pixels, beside UFLDL's full-MNIST numbers."""
    names = ["sparse-AE codes a", "raw pixels x"]
    fig = go.Figure()
    text = dict(textposition="inside", insidetextanchor="end", textfont=dict(size=14))
    fig.add_trace(go.Bar(x=names, y=[codes, raw], name="this run", marker=dict(color=["#ff7f0e", "#1f77b4"]),
                         text=[f"{codes:.1%}", f"{raw:.1%}"], hovertemplate="%{x}: %{y:.2%}<extra>this run</extra>",
                         **text))
    if reference is not None:
        fig.add_trace(go.Bar(x=names, y=list(reference), name="UFLDL, full MNIST", marker=dict(color="#c7c7c7"),
                             text=[f"≈{reference[0]:.0%}", f"≈{reference[1]:.0%}"],
                             hovertemplate="%{x}: ≈%{y:.0%}<extra>UFLDL (reported)</extra>", **text))
    # a zoomed axis (the differences are a point or two), labelled as such
    low = min(codes, raw, *(reference or ()))
    bottom = max(0.0, float(np.floor((low - 0.04) * 50) / 50))
    if chance is not None and chance >= bottom:
        fig.add_hline(y=chance, line=dict(dash="dot", color="#666"), annotation_text="chance")
    axis = "test accuracy" + (f" (axis from {bottom:.0%})" if bottom > 0 else "")
    fig.update_yaxes(title=axis, tickformat=".0%", range=[bottom, 1.0])
    return layout(fig, "Logistic regression on the task digits", height=height, barmode="group")


# ------------------------------------------------------------------------------------------ mistakes

def rho_hat_comparison(correct: np.ndarray, wrong: np.ndarray | None, rho: float, wrong_name: str = "with the mistake",
                       height: int = 340) -> go.Figure:
    """Each unit's ρ̂ⱼ under both objectives (units sorted by ρ̂ within each model), the target ρ dashed."""
    fig = go.Figure()
    for name, r, color in (("correct", correct, CORRECT_COLOR), (wrong_name, wrong, WRONG_COLOR)):
        if r is None:
            continue
        r = np.sort(np.asarray(r, dtype=float))[::-1]
        fig.add_trace(go.Bar(x=np.arange(len(r)), y=f32(r), name=name, marker=dict(color=color), opacity=0.75,
                             hovertemplate="rank %{x}: ρ̂ = %{y:.4f}<extra>" + name + "</extra>"))
    fig.add_hline(y=rho, line=dict(color="#111", dash="dash", width=2), annotation_text=f"target ρ = {rho:g}",
                  annotation_position="top right")
    fig.update_xaxes(title="hidden units, sorted by ρ̂ⱼ (high first)")
    fig.update_yaxes(title="ρ̂ⱼ, mean activation of unit j")
    return layout(fig, "One ρ̂ⱼ per unit", height=height, barmode="group", bargap=0.15)


def activation_comparison(correct: np.ndarray, wrong: np.ndarray | None, wrong_name: str = "with the mistake",
                          bins: int = 40, height: int = 340) -> go.Figure:
    """Histograms of every activation aᵢⱼ under both objectives, shared bins, log counts."""
    both = np.concatenate([np.ravel(correct)] + ([np.ravel(wrong)] if wrong is not None else []))
    both = both[np.isfinite(both)]
    if both.size == 0:
        return empty_figure("No finite activations.")
    lo, hi = min(0.0, float(both.min())), max(1.0, float(both.max()))
    edges = np.linspace(lo, hi, bins + 1)
    centers = (edges[:-1] + edges[1:]) / 2
    fig = go.Figure()
    for name, A, color in (("correct", correct, CORRECT_COLOR), (wrong_name, wrong, WRONG_COLOR)):
        if A is None:
            continue
        share = np.histogram(np.ravel(A), edges)[0] / max(1, np.size(A))
        fig.add_trace(go.Scatter(x=f32(centers), y=np.where(share > 0, share, np.nan).astype(np.float32),
                                 name=name, mode="lines", line=dict(color=color, width=2.5, shape="hvh"),
                                 fill="tozeroy", hovertemplate="a ≈ %{x:.3f}: %{y:.2%}<extra>" + name + "</extra>"))
    shares = np.concatenate([np.asarray(t.y, dtype=float) for t in fig.data])
    fig.update_xaxes(title="activation aᵢⱼ (all samples × units)")
    fig.update_yaxes(title="share of activations (log)", type="log", **log_ticks(shares, percent=True, mantissas=(1,)))
    return layout(fig, "Distribution of the activations", height=height)


def loss_comparison(correct: Mapping[str, np.ndarray], wrong: Mapping[str, np.ndarray] | None,
                    wrong_name: str = "with the mistake", height: int = 340) -> go.Figure:
    """Reconstruction term and total objective over the steps, correct (solid) vs mistaken (dashed), log y.
    The totals are different objectives; the reconstruction terms are the same quantity."""
    fig = go.Figure()
    for name, h, dash in (("correct", correct, "solid"), (wrong_name, wrong, "dash")):
        if h is None or len(h.get("step", [])) == 0:
            continue
        i = thin(len(h["step"]))
        for term, label in (("reconstruction", "reconstruction"), ("total", "total J")):
            y = np.asarray(h[term], dtype=float)[i]
            fig.add_trace(go.Scatter(x=np.asarray(h["step"])[i].astype(np.int32), y=f32(np.where(y > 0, y, np.nan)),
                                     mode="lines", name=f"{label} · {name}",
                                     line=dict(color=TERM_COLORS[term], dash=dash,
                                               width=2.5 if term == "total" else 1.8),
                                     hovertemplate="step %{x}: %{y:.4g}<extra>" + f"{label} · {name}" + "</extra>"))
    if not fig.data:
        return empty_figure("No training steps: the objective was NaN from the start.", height=height)
    values = np.concatenate([np.asarray(t.y, dtype=float) for t in fig.data])
    fig.update_xaxes(title="step")
    fig.update_yaxes(title="loss (log)", type="log", **log_ticks(values))
    return layout(fig, "Loss during training", height=height)


def log_ticks(values: np.ndarray, percent: bool = False, mantissas: Sequence[int] = (1, 2, 5)) -> dict:
    """tickvals / ticktext at m × 10^k spanning the positive finite values (plotly's own log ticks show bare
    mantissas, "2 5 2 5", on short ranges)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    if v.size == 0:
        return {}
    lo, hi = float(v.min()), float(v.max())
    k0, k1 = int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi)))
    ticks = [m * 10.0 ** k for k in range(k0, k1 + 1) for m in mantissas if lo / 1.5 <= m * 10.0 ** k <= hi * 1.5]
    text = [f"{100 * t:g}%" if percent else f"{t:g}" for t in ticks]
    return {"tickvals": ticks, "ticktext": text} if len(ticks) >= 2 else {}


def batch_score_figure(per_sample: np.ndarray, batch_mean: np.ndarray, is_outlier: np.ndarray, batch_size: int,
                       height: int = 420) -> go.Figure:
    """Per-sample reconstruction error (top) and the batch-mean score (bottom) of every row, outliers marked."""
    from plotly.subplots import make_subplots

    x = np.arange(len(per_sample))
    fig = make_subplots(2, 1, shared_xaxes=True, vertical_spacing=0.12,
                        subplot_titles=("correct: each sample's own error ½‖x̂ᵢ − xᵢ‖²",
                                        f"mistake: the mean error of its batch of {batch_size}"))
    out = np.asarray(is_outlier, dtype=bool)
    for row, y in ((1, per_sample), (2, batch_mean)):
        fig.add_trace(go.Scatter(x=x[~out], y=f32(np.asarray(y)[~out]), mode="markers", name="normal rows",
                                 marker=dict(size=4, color=NORMAL_COLOR), showlegend=row == 1,
                                 hovertemplate="row %{x}: %{y:.3g}<extra></extra>"), row=row, col=1)
        fig.add_trace(go.Scatter(x=x[out], y=f32(np.asarray(y)[out]), mode="markers", name="hidden outliers (1 − x)",
                                 marker=dict(size=11, color=ANOMALY_COLOR, symbol="star"), showlegend=row == 1,
                                 hovertemplate="OUTLIER row %{x}: %{y:.3g}<extra></extra>"), row=row, col=1)
    fig.update_xaxes(title="row", row=2, col=1)
    for row, y in ((1, per_sample), (2, batch_mean)):
        fig.update_yaxes(title="score (log)", type="log", **log_ticks(np.asarray(y)), row=row, col=1)
    return layout(fig, height=height)


__all__ = ["denoising_grid", "psnr_curves", "score_histograms", "roc_figure", "class_bars", "accuracy_figure",
           "rho_hat_comparison", "activation_comparison", "loss_comparison", "batch_score_figure", "log_ticks"]
