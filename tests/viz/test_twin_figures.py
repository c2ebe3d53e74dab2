"""Figures of a run and its twin (sae.viz.twin): the run drawn as always, the twin over it (dashed in the same
colours, or violet), named for the legend, on the same bins and axes; each equal to the same figure validated by
Plotly."""

from __future__ import annotations

import json

import numpy as np
import plotly.graph_objects as go
import pytest
from figure_cases import history, normalised  # tests/figure_cases.py

from sae.viz import curves, distributions
from sae.viz import twin as tw
from sae.viz.style import TERM_COLORS

NAMES = ("run (β 3)", "twin (β 10)")
RNG = np.random.default_rng(1)
A, A_TWIN = RNG.random((200, 12)), RNG.random((200, 12)) ** 3
RHO_HAT, RHO_HAT_TWIN = A.mean(0) * 0.2, A_TWIN.mean(0) * 0.2

CASES = {
    "loss_curves": lambda: tw.loss_curves(history(300), history(200, 1), "kl", log_y=True, names=NAMES),
    "loss_curves_linear": lambda: tw.loss_curves(history(300), history(300, 1), "kl", log_y=False, names=NAMES),
    "rho_hat_band": lambda: tw.rho_hat_band(history(300), history(300, 1), log_y=True, twin_target=True, names=NAMES),
    "kl_curve": lambda: tw.kl_curve(0.05, 3.0, RHO_HAT, 0.05, 10.0, RHO_HAT_TWIN, NAMES, compare=[0.2], title="all"),
    "kl_curve_zoom": lambda: tw.kl_curve(0.05, 3.0, RHO_HAT, 0.1, 3.0, RHO_HAT_TWIN, NAMES, x_range=(0.0, 0.2)),
    "activation_histograms": lambda: tw.activation_histograms(A, A_TWIN, names=NAMES),
    "rho_hat_histograms": lambda: tw.rho_hat_histograms(RHO_HAT, RHO_HAT_TWIN, 0.05, 0.1, names=NAMES),
    "l0_histograms": lambda: tw.l0_histograms((A > 0.5).sum(1), (A_TWIN > 0.5).sum(1), 12, names=NAMES),
    "filter_similarity": lambda: tw.filter_similarity_figure(np.linspace(-0.2, 1, 12), np.arange(12)[::-1],
                                                             np.linspace(0, 2, 12), title="cos"),
}


def names(fig: go.Figure) -> list[str | None]:
    return [t.name for t in fig.data]


@pytest.mark.parametrize("kind", CASES)
def test_the_fast_figure_equals_the_validated_one(kind):
    fig = CASES[kind]()
    fast = normalised(json.loads(fig.to_json()))
    assert fast == normalised(json.loads(go.Figure(fig.to_dict()).to_json()))


def test_loss_curves_overlay_the_twin_dashed_in_the_term_colours():
    run_h, twin_h = history(300), history(200, 1)
    fig = tw.loss_curves(run_h, twin_h, "kl", log_y=True, names=NAMES)
    alone = curves.loss_curves(run_h, "kl", log_y=True)
    run, twin = fig.data[:4], fig.data[4:]
    assert [t.name for t in run] == [t.name for t in alone.data]  # the run's curves as they always are
    assert len(twin) == 4 and all(t.line.dash == "dash" and t.legendgroup == "twin" for t in twin)
    assert [t.line.color for t in twin] == [TERM_COLORS[k] for k in ("reconstruction", "sparsity", "weight_decay",
                                                                     "total")]
    assert [t.showlegend for t in twin] == [False, False, False, True]  # one legend entry: the black total
    assert twin[-1].name == "twin (β 10), dashed"
    np.testing.assert_array_equal(twin[-1].x, twin_h["step"])
    np.testing.assert_allclose(twin[-1].y, twin_h["total"], rtol=1e-6)


def test_loss_curves_frame_both_runs_on_a_linear_axis():
    low, high = history(300), history(300, 1)
    high["total"] = high["total"] + 10.0
    fig = tw.loss_curves(low, high, "kl", log_y=False, names=NAMES)
    assert fig.layout.yaxis.range[1] >= 1.15 * np.max(high["total"][15:]) * 0.999


def test_without_twin_steps_the_run_figures_are_unchanged():
    empty = {"step": np.array([])}
    for a, b in ((tw.loss_curves(history(50), empty, "kl"), curves.loss_curves(history(50), "kl")),
                 (tw.rho_hat_band(history(50), empty), curves.rho_hat_band(history(50)))):
        assert a.to_dict() == b.to_dict()


def test_rho_hat_band_adds_the_twin_mean_and_its_own_target():
    fig = tw.rho_hat_band(history(300), history(300, 1), twin_target=True, names=NAMES)
    assert names(fig)[-2:] == ["twin (β 10): mean ρ̂", "twin (β 10): target ρ"]
    assert fig.data[-2].line.color == tw.TWIN_COLOR
    assert "twin (β 10): target ρ" not in names(tw.rho_hat_band(history(300), history(300, 1), names=NAMES))


def test_kl_curve_with_the_same_rho_and_scale_puts_the_twin_points_on_the_run_curve():
    fig = tw.kl_curve(0.05, 3.0, RHO_HAT, 0.05, 3.0, RHO_HAT_TWIN, NAMES)
    markers = [t for t in fig.data if t.mode == "markers"]
    assert [t.name for t in markers] == ["run (β 3): 12 units", "twin (β 10): 12 units"]
    assert len([t for t in fig.data if t.mode == "lines"]) == 1  # no second curve
    np.testing.assert_allclose(markers[1].y, 3.0 * curves.kl_values(0.05, RHO_HAT_TWIN))


def test_kl_curve_draws_the_twin_curve_where_its_beta_or_rho_differs():
    fig = tw.kl_curve(0.05, 3.0, RHO_HAT, 0.05, 10.0, RHO_HAT_TWIN, NAMES)
    twin_points = next(t for t in fig.data if t.name == "twin (β 10): 12 units")
    np.testing.assert_allclose(twin_points.y, 10.0 * curves.kl_values(0.05, RHO_HAT_TWIN))  # on its own curve
    curve = next(t for t in fig.data if t.name == "twin (β 10): 10·KL(ρ‖ρ̂)")
    assert curve.line.dash == "dash" and curve.line.color == tw.TWIN_COLOR
    assert fig.layout.yaxis.range[1] >= float(np.max(twin_points.y))
    other_rho = tw.kl_curve(0.05, 3.0, RHO_HAT, 0.1, 3.0, RHO_HAT_TWIN, NAMES)
    assert "twin (β 10): 3·KL(ρ‖ρ̂), ρ = 0.1" in names(other_rho)
    assert [s.x0 for s in other_rho.layout.shapes] == [0.05, 0.1]  # both targets marked


def test_a_kl_zoom_frames_the_points_not_the_twin_curve():
    zoom = tw.kl_curve(0.05, 3.0, RHO_HAT, 0.05, 10.0, RHO_HAT_TWIN, NAMES, x_range=(0.0, 0.2))
    alone = curves.kl_curve(0.05, 3.0, RHO_HAT, x_range=(0.0, 0.2))
    points = max(float(np.max(t.y)) for t in zoom.data if t.mode == "markers")
    assert zoom.layout.yaxis.range[1] == pytest.approx(max(alone.layout.yaxis.range[1], 1.08 * points))


def test_histograms_put_the_twin_on_the_same_bins():
    fig = tw.activation_histograms(A, A_TWIN, names=NAMES)
    bars, outline = fig.data
    assert (bars.name, outline.name) == NAMES and outline.line.shape == "hv"
    counts, edges = distributions.binned(A_TWIN, 50, (0.0, 1.0))
    np.testing.assert_allclose(outline.x, edges, rtol=1e-6)
    np.testing.assert_array_equal(np.nan_to_num(outline.y[:-1]), counts)  # log axis: empty bins are gaps
    rho = tw.rho_hat_histograms(RHO_HAT, RHO_HAT_TWIN, 0.05, 0.1, names=NAMES)
    assert rho.data[1].y[:-1].sum() == 12 and rho.data[0].y.sum() == 12
    twin_lines = [s.name for s in rho.layout.shapes if s.legendgroup == "twin"]
    assert twin_lines == ["twin target ρ = 0.1", f"twin mean ρ̂ = {RHO_HAT_TWIN.mean():.3g}"]
    same_rho = tw.rho_hat_histograms(RHO_HAT, RHO_HAT_TWIN, 0.05, 0.05, names=NAMES)
    assert not any(s.name.startswith("twin target") for s in same_rho.layout.shapes)
    l0 = tw.l0_histograms(np.array([0, 1, 1, 2]), np.array([3, 3, 0, 0]), 12, names=NAMES)
    np.testing.assert_array_equal(l0.data[1].y, [2, 0, 0, 2, 2])


def test_filter_similarity_bars_follow_the_grid_order():
    cos = np.array([1.0, 0.2, 0.7])
    fig = tw.filter_similarity_figure(cos, np.array([2, 0, 1]), np.array([0.0, 3.0, 0.5]))
    np.testing.assert_allclose(fig.data[0].y, [0.7, 1.0, 0.2])
    assert [c[0] for c in fig.data[0].customdata] == [2, 0, 1]
    assert list(fig.data[0].marker.color) == ["#ff7f0e", "#2ca02c", "#d62728"]
