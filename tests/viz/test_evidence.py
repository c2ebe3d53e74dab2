"""sae.viz.evidence: the doctor's small chart is a valid Plotly figure with its series and its reference line."""

from __future__ import annotations

import json

import numpy as np
import plotly.graph_objects as go
import pytest
from figure_cases import normalised  # tests/figure_cases.py

from sae.evaluation.doctor import Evidence
from sae.viz.evidence import EVIDENCE_POINTS, evidence_figure

STEPS = np.arange(0, 5000, 2, dtype=np.float64)
CASES = {
    "count": Evidence(STEPS, np.minimum(STEPS // 100, 12), "dead units", 25.0, "all 25 units"),
    "share": Evidence(STEPS, np.full(len(STEPS), 0.8), "β·KL share of J", 0.5, "50%", percent=True),
    "log": Evidence(STEPS, np.r_[0.0, np.linspace(3, 1, len(STEPS) - 1)], "J", 1.2, "best level 1.2", log_y=True),
}


@pytest.mark.parametrize("kind", CASES)
def test_the_evidence_figure_equals_the_validated_one(kind):
    fig = evidence_figure(CASES[kind])
    assert normalised(json.loads(fig.to_json())) == normalised(json.loads(go.Figure(fig.to_dict()).to_json()))


def test_the_series_is_thinned_and_the_reference_drawn_with_its_label():
    fig = evidence_figure(CASES["count"])
    (trace,) = fig.data
    assert len(trace.x) <= EVIDENCE_POINTS and trace.x[0] == 0 and trace.x[-1] == STEPS[-1]
    (line,) = fig.layout.shapes
    assert line.y0 == line.y1 == 25.0 and fig.layout.annotations[0].text == "all 25 units"
    assert fig.layout.yaxis.title.text == "dead units"


def test_log_and_percent_axes():
    log = evidence_figure(CASES["log"])
    assert log.layout.yaxis.type == "log" and np.isnan(log.data[0].y[0])  # 0 has no place on a log axis
    assert evidence_figure(CASES["share"]).layout.yaxis.tickformat == ".0%"


def test_no_history_yet_is_said():
    fig = evidence_figure(Evidence(np.empty(0), np.empty(0), "dead units"))
    assert not fig.data and "No history yet" in fig.layout.annotations[0].text
