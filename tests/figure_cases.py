"""Every figure kind the live pages draw, in the variants they use, and a normal form of Plotly JSON to compare them
(shared by tests/viz/test_fast_figures.py and tests/pages/test_live_chart_data.py)."""

from __future__ import annotations

import base64
import math

import numpy as np

from sae.viz import curves, distributions, filters, samples, style


def history(n=5000, s=0):
    """A training history like the trainer's (n steps)."""
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


RNG = np.random.default_rng(0)
A = RNG.random((300, 16))
W = RNG.standard_normal((16, 64))
LABELS = RNG.integers(0, 10, 300)


def _decode(spec: dict):
    """A typed array ({"dtype", "bdata", "shape"}) as nested lists of floats."""
    a = np.frombuffer(base64.b64decode(spec["bdata"]), dtype=np.dtype(spec["dtype"]))
    if "shape" in spec:
        a = a.reshape([int(n) for n in str(spec["shape"]).split(",")])
    return a.astype(float).tolist()


def normalised(obj):
    """Plotly JSON with what does not change the drawing taken out: typed arrays decoded (their dtype is a
    transport detail), numbers as floats rounded to 9 digits, None values, empty objects and "uid" dropped."""
    if isinstance(obj, dict):
        if set(obj) >= {"dtype", "bdata"}:
            return normalised(_decode(obj))
        out = {k: normalised(v) for k, v in obj.items() if v is not None and k != "uid"}
        return {k: v for k, v in out.items() if v != {}}
    if isinstance(obj, list):
        return [normalised(v) for v in obj]
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, (int, float)):
        return None if not math.isfinite(obj) else float(f"{float(obj):.9g}")
    return obj


CASES = {  # every figure kind the live pages draw, in the variants the pages use
    "loss_curves": lambda: curves.loss_curves(history(), "kl", log_y=True),
    "loss_curves_linear_topk": lambda: curves.loss_curves(history(), "topk", log_y=False),
    "loss_curves_empty_queued": lambda: curves.loss_curves({"step": np.array([])}, status="queued"),
    "rho_hat_band": lambda: curves.rho_hat_band(history(), log_y=True),
    "rho_hat_band_no_target": lambda: curves.rho_hat_band(history(), log_y=False, target=False),
    "kl_curve": lambda: curves.kl_curve(0.05, 3.0, A.mean(0) * 0.2, compare=[0.2], title="all"),
    "kl_curve_zoom_derivative": lambda: curves.kl_curve(0.05, 3.0, A.mean(0) * 0.2, derivative=True,
                                                        x_range=(0.0, 0.2), title="zoom"),
    "histogram": lambda: distributions.histogram_figure(*distributions.binned(A[:, 0], 40), "a", "samples", "t",
                                                        color="#ff7f0e", log_y=True,
                                                        vlines={"ρ̂ⱼ": 0.3, "ρ": None}, height=260),
    "activation_histogram": lambda: distributions.activation_histogram(A),
    "rho_hat_histogram": lambda: distributions.rho_hat_histogram(A.mean(0), 0.05),
    "l0_histogram": lambda: distributions.l0_histogram((A > 0.5).sum(1), 16),
    "activation_heatmap": lambda: distributions.activation_heatmap(A, LABELS),
    "activation_heatmap_relu": lambda: distributions.activation_heatmap(A * 3, None, "relu"),
    "distribution_over_time": lambda: distributions.distribution_over_time(
        np.arange(0, 500, 10), RNG.random((50, 12)), np.geomspace(1e-4, 1, 13), "ρ̂", "t",
        target=(np.arange(500.0), np.full(500, 0.05)), log_y=True, colorscale="Oranges"),
    "distribution_over_time_flat_target": lambda: distributions.distribution_over_time(
        np.arange(0, 50, 10), RNG.random((5, 4)), np.linspace(0, 1, 5), "a", "t", target=0.2),
    "filters_figure": lambda: filters.filters_figure(W, (8, 8), order=np.arange(16)[::-1], dead=[3, 5],
                                                     rho_hat=A.mean(0), norms=np.linalg.norm(W, axis=1),
                                                     selected=2, height=560),
    "weights_heatmap": lambda: filters.weights_heatmap(W[:, :4], dead=[1], title="w"),
    "image_grid": lambda: samples.image_grid_figure(RNG.random((12, 64)), (8, 8), columns=6, height=170,
                                                    normalize=True),
    "reconstruction": lambda: samples.reconstruction_figure(RNG.random((8, 64)), RNG.random((8, 64)),
                                                            RNG.random(8), (8, 8), index=np.arange(8) * 3),
    "pca_scatter_2d": lambda: samples.pca_scatter(A[:, :3], np.array([0.3, 0.2, 0.1]), LABELS,
                                                  [samples.hover_image(x, (4, 4)) for x in A], "codes"),
    "pca_scatter_3d_unlabelled": lambda: samples.pca_scatter(A[:, :3], np.array([0.3, 0.2, 0.1]), None, None,
                                                             "codes", dims=3),
    "empty": lambda: style.empty_figure("No steps yet: press Train."),
}
