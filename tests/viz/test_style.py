"""sae.viz.style: the common look and payload rules shared by the figure modules."""

import numpy as np
import plotly.graph_objects as go

from sae.viz import curves, distributions, experiment_figures, filters, run_figures, samples, style


def test_layout_sets_template_height_title_and_extra_keywords():
    fig = style.layout(go.Figure(), "A title", height=123, bargap=0.1)
    assert fig.layout.height == 123 and fig.layout.title.text == "A title" and fig.layout.bargap == 0.1
    assert fig.layout.margin.t == 72 and fig.layout.legend.orientation == "h"
    untitled = style.layout(go.Figure())
    assert untitled.layout.title.text is None and untitled.layout.margin.t == 36 and untitled.layout.height == 340


def test_empty_figure_carries_its_message_without_axes():
    fig = style.empty_figure("press Train", height=200)
    assert fig.layout.annotations[0].text == "press Train" and fig.layout.height == 200
    assert fig.layout.xaxis.visible is False and fig.layout.yaxis.visible is False and not fig.data


def test_thin_keeps_ends_and_caps_points():
    assert style.thin(10).tolist() == list(range(10))
    idx = style.thin(100_000, 2000)
    assert len(idx) <= 2000 and idx[0] == 0 and idx[-1] == 99_999
    assert np.all(np.diff(idx) > 0)


def test_thin_and_f32():
    assert style.thin(5).tolist() == [0, 1, 2, 3, 4]
    idx = style.thin(10_001, 11)
    assert idx.tolist() == list(range(0, 10_001, 1000))
    a = style.f32([1.0, 2.5])
    assert a.dtype == np.float32 and a.tolist() == [1.0, 2.5]


def test_activation_range():
    assert style.activation_range("sigmoid") == (0.0, 1.0)
    assert style.activation_range("tanh") == (-1.0, 1.0)
    assert style.activation_range("relu") is None


def test_image_trace_figure_png_below_and_jpeg_above_the_limit():
    small = style.image_trace_figure(np.linspace(0, 1, 64).reshape(8, 8))
    assert small.data[0].source.startswith("data:image/png")
    assert small.layout.height == 220 and small.layout.dragmode is False  # 6 px per row, at least 220
    side = int(np.ceil(np.sqrt(style.JPEG_ABOVE))) + 1
    big = style.image_trace_figure(np.random.default_rng(0).random((side, side)), height=300)
    assert big.data[0].source.startswith("data:image/jpeg") and big.layout.height == 300


def test_every_figure_module_uses_the_one_style():
    for module in (experiment_figures, run_figures, samples):  # figures built through go.Figure's methods
        assert module.layout is style.layout
    for module in (curves, filters, distributions, samples):  # the live figures, built as plain dicts
        assert module.base_layout is style.base_layout and module.figure is style.figure
    assert filters.image_parts is style.image_parts is samples.image_parts
    assert samples.image_trace_figure is style.image_trace_figure is experiment_figures.image_trace_figure
    assert run_figures.LABEL_COLORS is style.LABEL_COLORS and experiment_figures.TERM_COLORS is style.TERM_COLORS
