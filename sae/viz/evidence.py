"""The doctor's evidence as a small Plotly chart: one finding's series over the steps against its reference line
(``sae.evaluation.doctor.Evidence``: the dead units against all units, the mean ρ̂ against ρ, β·KL's share of J
against 50%, ...). Pure Plotly and numpy, no Streamlit; built as plain dicts like the live figures
(``sae.viz.style.figure``).
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from sae.evaluation.doctor import Evidence
from sae.viz.style import axis_title, base_layout, empty_figure, f32, figure, hline, thin

EVIDENCE_POINTS = 400  # a chart a few hundred pixels wide needs no more
EVIDENCE_HEIGHT = 210
SERIES_COLOR = "#1f77b4"
REFERENCE_COLOR = "#d62728"


def evidence_figure(evidence: Evidence, height: int = EVIDENCE_HEIGHT,
                    max_points: int = EVIDENCE_POINTS) -> go.Figure:
    """``evidence.y`` over ``evidence.x`` (steps) as one line, its ``reference`` as a dashed red level with its label;
    a log y axis for ``log_y`` (values <= 0 left out), percentages for ``percent``. No rows: a blank chart saying so."""
    x = np.asarray(evidence.x, dtype=np.float64)
    if len(x) == 0:
        return empty_figure("No history yet.", height=height)
    i = thin(len(x), max_points)
    y = np.asarray(evidence.y, dtype=np.float64)[i]
    if evidence.log_y:
        y = np.where(y > 0, y, np.nan)
    shown = ":.1%" if evidence.percent else ":.4g"
    data = [dict(type="scatter", x=x[i].astype(np.int64), y=f32(y), mode="lines", name=evidence.label,
                 line=dict(color=SERIES_COLOR, width=2),
                 hovertemplate=f"step %{{x:,}}<br>%{{y{shown}}}<extra>{evidence.label}</extra>")]
    shapes, notes = [], []
    if evidence.reference is not None and (evidence.reference > 0 or not evidence.log_y):
        shape, notes = hline(float(evidence.reference), dict(color=REFERENCE_COLOR, dash="dash", width=1.5),
                             evidence.reference_label or None)
        shapes = [shape]
    yaxis = {**axis_title(evidence.label), "type": "log" if evidence.log_y else "linear"}
    if evidence.percent:
        yaxis["tickformat"] = ".0%"
    if not evidence.log_y:
        yaxis["rangemode"] = "tozero"
    return figure(data, base_layout(height=height, showlegend=False, shapes=shapes, annotations=notes,
                                    margin=dict(l=10, r=10, t=16, b=10), xaxis=axis_title("step"), yaxis=yaxis,
                                    hovermode="x"))


__all__ = ["evidence_figure", "EVIDENCE_POINTS", "EVIDENCE_HEIGHT"]
