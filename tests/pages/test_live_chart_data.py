"""What a live chart sends per refresh (sae.ui.chart.chart_data): the browser draws exactly the figure, with the
standard template named instead of sent and repeated arrays sent once."""

from __future__ import annotations

import json

import pytest
from figure_cases import CASES, history, normalised  # tests/figure_cases.py

from sae.ui import chart
from sae.viz import curves, style


@pytest.mark.parametrize("kind", CASES)
def test_the_browser_draws_the_figure_itself(kind):
    fig = CASES[kind]()
    data = chart.chart_data(fig, key="k")
    assert normalised(chart.decode_figure(data)) == normalised(json.loads(fig.to_json()))
    sent = json.loads(data)
    assert sent["template"] == chart.TEMPLATE_NAME and "template" not in sent["figure"]["layout"]


def test_shared_steps_travel_once_and_the_payload_shrinks():
    fig = curves.loss_curves(history(), "kl")
    data = chart.chart_data(fig, key="loss")
    sent = json.loads(data)["figure"]
    assert len(sent["sae_arrays"]) == 1  # the steps, shared by the four curves
    assert [t["x"] for t in sent["data"]] == [{"sae_ref": 0}] * 4
    assert len(data) < 0.7 * len(fig.to_json())


def test_a_figure_with_another_template_carries_it():
    fig = curves.loss_curves(history(), "kl")
    fig.update_layout(template="plotly_dark")
    data = chart.chart_data(fig, key="loss")
    assert json.loads(data)["template"] is None
    assert normalised(chart.decode_figure(data)) == normalised(json.loads(fig.to_json()))


def test_the_template_file_is_provided_beside_plotly(tmp_path, monkeypatch):
    monkeypatch.setattr(chart, "STATIC_PLOTLY", tmp_path / "static" / "plotly.min.js")
    monkeypatch.setattr(chart, "STATIC_TEMPLATE", tmp_path / "static" / chart.TEMPLATE_NAME)
    assert chart.provide_plotly_js()
    assert json.loads(chart.STATIC_TEMPLATE.read_text()) == style.template()


def test_text_travels_as_utf8_not_escaped_twice():
    """The Codes page's hover pictures are shade characters: sent as UTF-8 bytes (3 a character), not as a JSON
    string inside JSON (6 a character, \\uXXXX)."""
    fig = CASES["pca_scatter_2d"]()
    data = chart.chart_data(fig, key="codes")
    assert isinstance(data, bytes) and "░<br>".encode() in data
    assert len(data) < 0.6 * len(json.dumps({"figure": fig.to_json()}))
