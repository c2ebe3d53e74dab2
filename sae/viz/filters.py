"""What each hidden unit responds to, as Plotly figures: pure functions, no Streamlit.

- :func:`filters_figure`: every unit's weights as an image, tiled into ONE grayscale picture (a PNG inside the
  figure, not one subplot per unit), with invisible hover and click targets at the tile centres;
  built as plain dicts (``sae.viz.style.figure``: no per-property validation);
- :func:`weights_heatmap`: the weights of data that are not images, one row per unit.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from sae.viz.images import tile_filters, tile_positions
from sae.viz.style import axis_title, base_layout, colorscale, figure, image_parts


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
    targets = dict(  # customdata as plain lists: selection events hand them back as lists
        type="scatter", x=cx, y=cy, mode="markers", customdata=np.round(custom, 5).tolist(), showlegend=False,
        name="units", marker=dict(size=max(6, min(40, int(400 / math.sqrt(s)))), symbol="square", opacity=0,
                                  color="#000"),
        hovertemplate="unit %{customdata[0]:.0f}<br>" + "<br>".join(extra) + "<extra></extra>")
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
    image, layout = image_parts(img, height)
    return figure([image, targets], {**layout, "shapes": shapes, "hovermode": "closest", "clickmode": "event+select"})


def weights_heatmap(W: np.ndarray, dead: Sequence[int] = (), title: str | None = None,
                    x_title: str = "input feature i", height: int | None = None) -> go.Figure:
    """Weights (s, n) of data that are not images: one row per hidden unit, diverging colours."""
    W = np.asarray(W, dtype=float)
    lim = float(np.max(np.abs(W))) or 1.0
    s, n = W.shape
    dead_set = {int(d) for d in dead}
    labels = [f"{j} ✕" if j in dead_set else str(j) for j in range(s)]
    heat = dict(type="heatmap", z=W.astype(np.float32), x=np.arange(n), y=labels, colorscale=colorscale("RdBu"),
                zmid=0, zmin=-lim, zmax=lim, colorbar=dict(title=dict(text="weight"), thickness=12),
                hovertemplate="unit %{y}<br>input %{x}<br>w = %{z:.4f}<extra></extra>")
    return figure([heat], base_layout(title, height=height or int(min(640, 160 + 14 * s)), xaxis=axis_title(x_title),
                                      yaxis={**axis_title("hidden unit j (✕ dead)"), "autorange": "reversed",
                                             "type": "category"}))


__all__ = ["filters_figure", "weights_heatmap"]
