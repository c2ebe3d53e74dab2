"""sae.evaluation.labels: the one mapping from a metric key to its words."""

from sae.evaluation.labels import METRIC_LABELS, MetricLabel, metric_label
from sae.viz import run_figures


def test_labels_name_detail_and_format():
    recon = METRIC_LABELS["reconstruction"]
    assert recon.name == "Reconstruction error" and recon.title == "Reconstruction error (½‖x̂−x‖², all data)"
    assert METRIC_LABELS["probe_accuracy"].format(0.953) == "95.3%"
    assert METRIC_LABELS["dead_units"].format(3.0) == "3"
    assert [METRIC_LABELS[k].name for k in ("rho_hat_mean", "dead_units", "probe_accuracy")] == \
        ["Mean ρ̂", "Dead units", "Probe accuracy"]


def test_unknown_metric_is_its_own_name():
    assert metric_label("l0_mean") == MetricLabel("l0_mean", "", ".3g") and metric_label("l0_mean").title == "l0_mean"


def test_sweep_heatmaps_take_their_titles_from_the_labels():
    for key, label in METRIC_LABELS.items():
        title, _, fmt = run_figures.METRIC_STYLE[key]
        assert title == label.title and fmt == label.fmt
