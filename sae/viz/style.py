"""The common look and payload rules of every figure module (figures, experiment_figures, run_figures).

- :func:`layout`: white template, tight margins, the legend in a row above the plot (:func:`base_layout`: the same
  as a plain dict);
- :func:`figure`: a ``go.Figure`` from plain dicts without Plotly's per-property validation (see below);
- :func:`vline`, :func:`hline`: what ``fig.add_vline`` / ``add_hline`` add, as plain dicts;
- :func:`empty_figure`: a blank chart carrying a message;
- :func:`thin` and :func:`f32`: curves travel as at most ``MAX_POINTS`` float32 points;
- :func:`image_trace_figure`: a grayscale image as ONE PNG (or JPEG above ``JPEG_ABOVE`` pixels) trace;
- the shared colours (``TERM_COLORS`` of the loss terms, ``LABEL_COLORS`` of classes and runs).

Pure Plotly and numpy, no Streamlit.

Fast figures. Building a figure through ``go.Figure`` methods (``add_trace``, ``update_layout``, ``add_vline`` ...)
runs Plotly's validator on every property, and setting the template alone deep-copies it: 20-60 ms per figure,
most of a live page's refresh (``bench/refresh.py``). The live figures are therefore written as plain dicts, in
Plotly's JSON vocabulary (``{"title": {"text": ...}}``, never the ``title="..."`` shorthand or ``line_width``
underscores, which only validation expands), and wrapped by :func:`figure` into a ``go.Figure`` with validation
off for the construction (~1 ms) and on again afterwards: a notebook user gets an ordinary figure
(``fig.show()``, ``fig.update_layout(...)`` validated as usual). tests/viz/test_fast_figures.py checks that each
live figure equals the same figure validated by Plotly.
"""

from __future__ import annotations

import base64
import functools
import json

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


@functools.lru_cache(maxsize=8)
def _template_json(name: str) -> str:
    import plotly.io as pio

    return json.dumps(pio.templates[name].to_plotly_json())


def template(name: str = TEMPLATE) -> dict:
    """A named Plotly template as the plain dict that validation would make of its name (a fresh copy)."""
    return json.loads(_template_json(name))


@functools.lru_cache(maxsize=32)
def _colorscale(name: str) -> tuple:
    from plotly.colors import get_colorscale

    return tuple((float(p), c) for p, c in get_colorscale(name))


def colorscale(name: str) -> list[list]:
    """A named colorscale as the [[position, colour], ...] list validation would make of its name (Plotly.js's
    own scales of the same names differ)."""
    return [[p, c] for p, c in _colorscale(name)]


def figure(data: list[dict], layout: dict) -> go.Figure:
    """A ``go.Figure`` of plain trace dicts (each with its ``type``) and a plain layout dict, built without
    Plotly's per-property validation (see the module docstring); validation is back on for later edits."""
    fig = go.Figure({"data": data, "layout": layout}, _validate=False)
    fig._validate = fig._layout_obj._validate = True  # later update_layout(...) / update_traces(...) are checked
    for trace in fig._data_objs:  # (not fig.data: its check for pandas objects fails while pandas is half-imported)
        trace._validate = True
    return fig


def figure_json(fig: go.Figure | dict) -> str:
    """``fig.to_json()``'s JSON (numpy arrays as base64 typed arrays, NaN as null) without its deep copy of every
    property first (2-4 ms a figure): the figure's own property dicts are walked, arrays encoded on the way."""
    from plotly.io.json import to_json_plotly

    obj = {"data": fig._data, "layout": fig._layout} if isinstance(fig, go.Figure) else fig  # what to_dict copies
    return to_json_plotly(_typed_arrays(obj))


_TYPED = {"int8": "i1", "uint8": "u1", "int16": "i2", "uint16": "u2", "int32": "i4", "uint32": "u4",
          "float32": "f4", "float64": "f8"}  # numpy dtype -> Plotly.js typed array


def _typed_array(a: np.ndarray):
    """A numpy array as Plotly's typed-array spec, by the rules of ``_plotly_utils.utils.to_typed_array_spec``
    (64-bit integers narrowed to the smallest type that holds them; other dtypes and empty arrays as they are)."""
    if a.size == 0:
        return a
    for wide, narrow in (("int64", ("int8", "int16", "int32")), ("uint64", ("uint8", "uint16", "uint32"))):
        if a.dtype == wide:
            lo, hi = a.min(), a.max()
            fit = next((t for t in narrow if np.iinfo(t).min <= lo and hi <= np.iinfo(t).max), None)
            if fit is None:
                return a
            a = a.astype(fit)
    short = _TYPED.get(str(a.dtype))
    if short is None:
        return a
    a = np.ascontiguousarray(a)
    spec = {"dtype": short, "bdata": base64.b64encode(a).decode("ascii")}
    if a.ndim > 1:
        spec["shape"] = str(a.shape)[1:-1]
    return spec


def _typed_arrays(obj):
    """A copy of the containers of ``obj`` with numpy arrays as Plotly's typed-array specs (as ``to_dict`` does).
    Written here rather than with Plotly's helpers: those look pandas up in sys.modules for every value, and a
    pandas still being imported by another thread (the warm-up at start-up) made them raise."""

    def walk(value, key=None):
        if key in _SKIPPED_KEYS:
            return value
        if isinstance(value, np.ndarray):
            return _typed_array(value)
        if isinstance(value, dict):
            return {k: walk(v, k) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [walk(v) for v in value]
        return value

    return walk(obj)


_SKIPPED_KEYS = ("geojson", "layer", "layers", "range")  # never typed arrays (_plotly_utils.utils.is_skipped_key)


def axis_title(text: str | None) -> dict:
    """An axis or legend title as Plotly's JSON has it ({} for none)."""
    return {"title": {"text": text}} if text is not None else {}


def base_layout(title: str | None = None, height: int = 340, **kwargs) -> dict:
    """:func:`layout`'s look as a plain layout dict (with the template's JSON); ``kwargs`` are more layout keys."""
    out = {"template": template(), "height": height, "margin": dict(l=10, r=10, t=72 if title else 36, b=10),
           "legend": dict(orientation="h", yanchor="bottom", y=1.01, xanchor="left", x=0.0)}
    if title:
        out["title"] = dict(text=title, x=0, xanchor="left", y=1, yanchor="top", yref="container", pad=dict(t=8, l=4),
                            font=dict(size=15))
    out.update(kwargs)
    return out


def vline(x: float, line: dict, annotation_text: str | None = None, **shape) -> tuple[dict, list[dict]]:
    """(shape, annotations) of ``fig.add_vline(x, line=..., annotation_text=..., annotation_position="top right")``
    on the first axes; ``shape``: more shape keys (``name``, ``showlegend``)."""
    s = dict(type="line", x0=x, x1=x, xref="x", y0=0, y1=1, yref="y domain", line=line, **shape)
    notes = [] if annotation_text is None else [dict(showarrow=False, text=annotation_text, x=x, xanchor="left",
                                                     xref="x", y=1, yanchor="top", yref="y domain")]
    return s, notes


def hline(y: float, line: dict, annotation_text: str | None = None) -> tuple[dict, list[dict]]:
    """(shape, annotations) of ``fig.add_hline(y, line=..., annotation_text=..., annotation_position="top right")``."""
    s = dict(type="line", x0=0, x1=1, xref="x domain", y0=y, y1=y, yref="y", line=line)
    notes = [] if annotation_text is None else [dict(showarrow=False, text=annotation_text, x=1, xanchor="right",
                                                     xref="x domain", y=y, yanchor="bottom", yref="y")]
    return s, notes


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
    note = dict(text=message, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                font=dict(size=14, color="#666"))
    return figure([], base_layout(height=height, annotations=[note], xaxis=dict(visible=False),
                                  yaxis=dict(visible=False)))


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


def image_parts(img01: np.ndarray, height: int | None = None, scale: int = 1) -> tuple[dict, dict]:
    """(trace, layout) of :func:`image_trace_figure` as plain dicts, for figures that draw over the picture."""
    from _plotly_utils.data_utils import image_array_to_data_uri  # the encoder px.imshow uses

    u8 = to_uint8(img01, 1)
    lo, hi = float(u8.min()), float(u8.max())
    if hi > lo:  # px.imshow's contrast_rescaling="minmax" of a 2-D image: stretched to 0..255 (truncated)
        u8 = np.asarray((u8 - lo) / (hi - lo) * 255.0, dtype=np.uint8)
    big = u8.size > JPEG_ABOVE
    source = image_array_to_data_uri(u8, backend="pil", compression=6, ext="jpg" if big else "png")
    h = height or int(min(640, max(220, 6 * u8.shape[0] * scale)))
    hidden = dict(domain=[0.0, 1.0], visible=False, showgrid=False)
    return (dict(type="image", source=source, name="0", xaxis="x", yaxis="y", hoverinfo="skip"),
            dict(template=template(), xaxis={"anchor": "y", **hidden}, yaxis={"anchor": "x", **hidden},
                 margin=dict(l=0, r=0, t=10, b=0), coloraxis=dict(showscale=False), height=h, dragmode=False,
                 showlegend=False))


def image_trace_figure(img01: np.ndarray, height: int | None = None, scale: int = 1) -> go.Figure:
    """A grayscale [0, 1] image as one PNG-encoded trace (compact; drawn pixelated). Large images (more than
    ``JPEG_ABOVE`` pixels, e.g. 196 MNIST filters) go as JPEG, about three times smaller.

    ``height`` defaults to 6 px per image row times ``scale``, between 220 and 640 px. The figure is
    ``px.imshow(u8, binary_string=True)``'s, built directly (px.imshow takes ~10 ms more)."""
    trace, layout_ = image_parts(img01, height, scale)
    return figure([trace], layout_)


__all__ = ["layout", "base_layout", "figure", "template", "colorscale", "figure_json", "axis_title", "vline", "hline",
           "empty_figure", "thin", "f32", "activation_range", "image_parts", "image_trace_figure", "JPEG_ABOVE", "MAX_POINTS", "CURVE_POINTS", "TEMPLATE", "TERM_COLORS", "LABEL_COLORS", "ACTIVATION_RANGES"]
