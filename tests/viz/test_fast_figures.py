"""The live figures are built without Plotly's validation (sae.viz.style.figure): each must equal the same figure
validated by Plotly, property for property, and stay an ordinary go.Figure for a notebook."""

from __future__ import annotations

import json

import plotly.graph_objects as go
import pytest
from figure_cases import CASES, history, normalised  # tests/figure_cases.py

from sae.viz import curves, style


def validated(fig: go.Figure) -> go.Figure:
    """The same figure through Plotly's validation (raises on any property Plotly does not know)."""
    return go.Figure(fig.to_dict())


@pytest.mark.parametrize("kind", CASES)
def test_the_fast_figure_equals_the_validated_one(kind):
    fig = CASES[kind]()
    assert isinstance(fig, go.Figure)
    fast = normalised(json.loads(fig.to_json()))
    assert fast == normalised(json.loads(validated(fig).to_json()))


def test_a_fast_figure_is_validated_again_after_it_is_built():
    """A notebook user's edits go through Plotly's validation as on any figure: shorthands are expanded, an
    unknown property is an error."""
    fig = curves.loss_curves(history(), "kl")
    fig.update_layout(legend_title="terms")
    fig.update_traces(line_width=4)
    spec = json.loads(fig.to_json())
    assert spec["layout"]["legend"]["title"] == {"text": "terms"}
    assert all(t["line"]["width"] == 4 for t in spec["data"])
    with pytest.raises(ValueError):
        fig.update_layout(no_such_property=1)


@pytest.mark.parametrize("kind", CASES)
def test_figure_json_is_to_json_without_the_copy(kind):
    fig = CASES[kind]()
    assert json.loads(style.figure_json(fig)) == json.loads(fig.to_json())
    assert json.loads(style.figure_json(fig)) == json.loads(style.figure_json(fig.to_dict()))


def test_sending_a_figure_while_another_thread_is_still_importing_pandas(monkeypatch):
    """At a server's start the warm-up thread imports scikit-learn (and with it pandas) while the first pages
    refresh: a half-imported pandas sits in sys.modules. Plotly's array checks look it up (pd.Series) and raised
    AttributeError in a live page (seen in bench/refresh.py). Serialising a figure for the browser must not care.
    (Building one still does: go.Figure runs the same checks.)"""
    import sys
    import types

    from sae.ui.chart import chart_data

    figures = {kind: make() for kind, make in CASES.items()}
    expected = {kind: json.loads(fig.to_json()) for kind, fig in figures.items()}
    monkeypatch.setitem(sys.modules, "pandas", types.ModuleType("pandas"))  # no Series yet
    for kind, fig in figures.items():
        assert json.loads(style.figure_json(fig)) == expected[kind], kind
        chart_data(fig, key=kind)
