"""The run's timeline on its time-axis charts: :func:`mark_edits` draws each edit (a live change, a pause, a
resampling, a rewind, a twin) as a dotted vertical line at its step, with a small triangle at the top whose hover
lists what happened there. Pure Plotly, no Streamlit; the edits are ``sae.training.timeline.Edit``-like objects
(``step``, ``kind``, ``label()``).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Protocol

import plotly.graph_objects as go

MARK_COLORS = {"set": "#555555", "resample": "#9467bd", "rewind": "#ff7f0e", "twin": "#17becf", "promote": "#17becf",
               "pause": "#bbbbbb", "resume": "#bbbbbb", "step": "#bbbbbb"}
MAX_MARKS = 200  # the latest edits shown (a run with thousands of pauses would bury the curves)
QUIET_KINDS = ("pause", "resume", "step")  # drawn lighter: they change nothing the run computes


class EditLike(Protocol):
    step: int
    kind: str

    def label(self) -> str: ...


def mark_edits(fig: go.Figure, edits: Iterable[EditLike], x_scale: float = 1.0) -> go.Figure:
    """``fig`` (x: steps, or ``step * x_scale`` units) with the edits marked; returns it (changed in place).

    One line per step that has edits (dotted; solid grey for setting changes), one hover triangle per step at the
    top of the plot listing every edit made there (on an overlaid hidden axis, so the data's y range is kept)."""
    by_step: dict[int, list[EditLike]] = defaultdict(list)
    for edit in list(edits)[-MAX_MARKS:]:
        by_step[int(edit.step)].append(edit)
    if not by_step:
        return fig
    shapes, xs, texts, colors = [], [], [], []
    for step in sorted(by_step):
        group = by_step[step]
        main = next((e for e in group if e.kind not in QUIET_KINDS), group[0])
        quiet = main.kind in QUIET_KINDS
        x = step * x_scale
        color = MARK_COLORS.get(main.kind, "#555555")
        shapes.append(dict(type="line", x0=x, x1=x, xref="x", y0=0, y1=1, yref="paper", layer="below",
                           line=dict(color=color, width=1 if quiet else 1.5, dash="dot")))
        xs.append(x)
        texts.append(f"step {step:,}<br>" + "<br>".join(e.label() for e in group))
        colors.append(color)
    marker = dict(type="scatter", x=xs, y=[1.0] * len(xs), yaxis="y9", mode="markers", name="edits",
                  showlegend=False, hovertext=texts, hoverinfo="text",
                  marker=dict(symbol="triangle-down", size=10, color=colors))
    fig._validate = fig._layout_obj._validate = False  # plain dicts, as sae.viz.style.figure builds (fast)
    try:
        fig.add_trace(marker)
        fig.layout.shapes = tuple(fig.layout.shapes or ()) + tuple(shapes)
        fig.layout["yaxis9"] = dict(overlaying="y", range=[0, 1.02], visible=False, fixedrange=True)
    finally:
        fig._validate = fig._layout_obj._validate = True
    return fig


__all__ = ["mark_edits", "MARK_COLORS", "MAX_MARKS"]
