"""The common look and payload rules of every figure module (figures, experiment_figures, run_figures).

- :func:`layout`: white template, tight margins, the legend in a row above the plot;
- :func:`empty_figure`: a blank chart carrying a message;
- :func:`thin` and :func:`f32`: curves travel as at most ``MAX_POINTS`` float32 points;
- :func:`image_trace_figure`: a grayscale image as ONE PNG (or JPEG above ``JPEG_ABOVE`` pixels) trace;
- the shared colours (``TERM_COLORS`` of the loss terms, ``LABEL_COLORS`` of classes and runs).

Pure Plotly and numpy, no Streamlit.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from sae.viz.images import to_uint8

JPEG_ABOVE = 100_000  # pixels; smaller images go as lossless PNG
MAX_POINTS = 2000  # hard cap on points per curve
CURVE_POINTS = 1000  # what the live curves use by default (plenty for a chart ~800 px wide)
TEMPLATE = "plotly_white"
TERM_COLORS = {"total": "#222222", "reconstruction": "#1f77b4", "sparsity": "#d62728", "weight_decay": "#2ca02c"}
LABEL_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                "#bcbd22", "#17becf")
ACTIVATION_RANGES = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0)}  # bounded activations; relu has no fixed range


def layout(fig: go.Figure, title: str | None = None, height: int = 340, **kwargs) -> go.Figure:
    """Common look: white template, tight margins, the legend in a row above the plot (under the title), from the
    left edge so that the modebar (top right) never covers an entry.
    Extra keyword arguments go to ``fig.update_layout``. Returns ``fig``."""
    fig.update_layout(template=TEMPLATE, height=height, margin=dict(l=10, r=10, t=72 if title else 36, b=10),
                      title=dict(text=title, x=0, xanchor="left", y=1, yanchor="top", yref="container",
                                 pad=dict(t=8, l=4), font=dict(size=15)) if title else None,
                      legend=dict(orientation="h", yanchor="bottom", y=1.01, xanchor="left", x=0.0),
                      **kwargs)
    return fig


NO_STEPS = "No steps yet: press Train."
QUEUED = "Queued: this run waits for a free training slot (other runs are training); it starts on its own."


def waiting_message(status: str | None = None) -> str:
    """What an empty live chart says: queued runs wait for a slot, anything else waits for Train."""
    return QUEUED if status == "queued" else NO_STEPS


def empty_figure(message: str, height: int = 300) -> go.Figure:
    """A blank chart carrying a message (e.g. 'press Train')."""
    fig = go.Figure()
    fig.add_annotation(text=message, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                       font=dict(size=14, color="#666"))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return layout(fig, height=height)


def thin(n: int, max_points: int = MAX_POINTS) -> np.ndarray:
    """Indices of at most ``max_points`` evenly spread rows of n, always keeping the first and last."""
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_points).round().astype(int))


def f32(a) -> np.ndarray:
    """Curves travel as float32 (half the bytes of float64; plenty for a chart)."""
    return np.asarray(a, dtype=np.float32)


def activation_range(activation: str) -> tuple[float, float] | None:
    """The value range of a bounded activation (sigmoid (0, 1), tanh (-1, 1)); None for relu and the like."""
    return ACTIVATION_RANGES.get(activation)


def image_trace_figure(img01: np.ndarray, height: int | None = None, scale: int = 1) -> go.Figure:
    """A grayscale [0, 1] image as one PNG-encoded trace (compact; drawn pixelated). Large images (more than
    ``JPEG_ABOVE`` pixels, e.g. 196 MNIST filters) go as JPEG, about three times smaller.

    ``height`` defaults to 6 px per image row times ``scale``, between 220 and 640 px."""
    import plotly.express as px

    u8 = to_uint8(img01, 1)
    big = u8.size > JPEG_ABOVE
    fig = px.imshow(u8, binary_string=True, binary_format="jpg" if big else "png", binary_compression_level=6,
                    color_continuous_scale="gray")
    fig.update_traces(hoverinfo="skip", hovertemplate=None)
    fig.update_xaxes(visible=False, showgrid=False)
    fig.update_yaxes(visible=False, showgrid=False)
    h = height or int(min(640, max(220, 6 * u8.shape[0] * scale)))
    fig.update_layout(template=TEMPLATE, height=h, margin=dict(l=0, r=0, t=10, b=0), dragmode=False,
                      showlegend=False, coloraxis_showscale=False)
    return fig


__all__ = ["layout", "empty_figure", "thin", "f32", "activation_range", "image_trace_figure", "JPEG_ABOVE",
           "MAX_POINTS", "CURVE_POINTS", "TEMPLATE", "TERM_COLORS", "LABEL_COLORS", "ACTIVATION_RANGES"]
