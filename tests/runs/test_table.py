"""sae.runs.table (run table, continuing a run, best sweep cell, the sweep registry) and sae.viz.run_figures."""

from __future__ import annotations

import numpy as np
import pytest

from sae.viz import run_figures
from sae.runs.compare import align_histories, rho_hat_histograms
from sae.core.config import ModelConfig, TrainConfig
from sae.data import load_dataset
from sae.runs.table import SweepRegistry, best_cell, continuation, default_run_name, image_shape_for, run_table
from sae.runs.store import RunStore
from sae.runs.sweep import SweepError, SweepResults, SweepSpec
from sae.training.trainer import steps_per_epoch


def results(grid: dict[str, np.ndarray], rhos=(0.01, 0.1), betas=(0.3, 3.0), weights=True) -> SweepResults:
    shape = (1, len(rhos), len(betas))
    metrics = {m: np.full(shape, np.nan) for m in ("reconstruction", "rho_hat_mean", "dead_units", "probe_accuracy",
                                                    "total")}
    for name, values in grid.items():
        metrics[name][0] = values
    status = np.full(shape, "finished", dtype=object)
    run_ids = np.array([[[f"{i}{j}" for j in range(len(betas))] for i in range(len(rhos))]], dtype=object)
    rng = np.random.default_rng(0)
    filters = {(0, i, j): rng.normal(size=(9, 64)) for i in range(len(rhos)) for j in range(len(betas))} if weights \
        else {}
    return SweepResults("s" * 32, tuple(rhos), tuple(betas), (9,), metrics, run_ids, status, filters, (8, 8))


def test_continuation_keeps_a_stopped_run_and_extends_a_finished_one():
    tc = TrainConfig(epochs=10, batch_size=128)
    assert steps_per_epoch(tc, 1797) == 14  # full batches only
    assert continuation(tc, 100, 1797) is tc  # 140 steps in all: 40 to go
    more = continuation(tc, 140, 1797)
    assert more.epochs == 20.0 and more.rho == tc.rho and more.seed == tc.seed
    lbfgs = TrainConfig(optimizer="lbfgs", max_iter=40)
    assert continuation(lbfgs, 10, 100) is lbfgs and continuation(lbfgs, 40, 100).max_iter == 80


def test_default_names_and_image_shapes():
    assert default_run_name("digits", ModelConfig(64, 16), TrainConfig(rho=0.02, beta=3)) == \
        "digits · 16 sigmoid · KL ρ=0.02 β=3"
    assert "L1 β=0.5" in default_run_name("mnist", ModelConfig(784, 9, "relu"), TrainConfig(penalty="l1", beta=0.5))
    assert image_shape_for(64) == (8, 8) and image_shape_for(784, (28, 28)) == (28, 28)
    assert image_shape_for(4) is None and image_shape_for(60) is None and image_shape_for(64, (4, 16)) == (4, 16)


def test_best_cell_by_each_goal():
    r = results({"reconstruction": [[0.5, 0.2], [0.3, np.nan]], "probe_accuracy": [[0.9, 0.95], [0.97, np.nan]],
                 "rho_hat_mean": [[0.05, 0.011], [0.1, 0.3]], "dead_units": [[3, 0], [0, 0]]})
    assert best_cell(r, "reconstruction") == (0, 1)
    assert best_cell(r, "probe_accuracy") == (1, 0)
    assert best_cell(r, "rho_hat_mean") == (1, 0)  # 0.1 at target 0.1 beats 0.011 at target 0.01
    assert best_cell(results({}), "reconstruction") is None


def test_run_table_has_one_row_per_run_with_numbers(tmp_path):
    with RunStore(tmp_path) as store:
        a = store.create("a", "digits", ModelConfig(64, 9), TrainConfig(rho=0.1))
        store.create("b", "digits", ModelConfig(64, 16), None, parent_id=a)
        table = run_table(store.list(order_by="name", descending=False))
    assert table["name"].tolist() == ["a", "b"] and table["origin"].tolist() == ["trained", "continued"]
    assert table["rho"].dtype == np.float64 and np.isnan(table["rho"][1]) and table["rho"][0] == 0.1
    assert str(table["n_hidden"].dtype) == "Int64" and table.columns[-1] == "id"


def test_the_registry_bounds_running_sweeps_and_cancels_them(tmp_path):
    data = load_dataset("digits")
    spec = SweepSpec(rhos=[0.05], betas=[1.0], model_config=ModelConfig(64, 4), train_config=TrainConfig(epochs=500),
                     dataset="digits")
    registry = SweepRegistry(max_running=1)
    with RunStore(tmp_path) as store:
        sweep = registry.start(spec, store, data, parallel=1)
        assert registry.get(sweep.id) is sweep and registry.running() == [sweep]
        with pytest.raises(SweepError, match="already training"):
            registry.start(spec, store, data, parallel=1)
        registry.cancel_all()
        assert sweep.done and registry.running() == [] and store.get_sweep(sweep.id).status == "cancelled"
        assert registry.get(None) is None


def test_heatmap_labels_every_cell_and_keeps_the_grid_while_cells_train():
    r = results({"reconstruction": [[0.5, np.nan], [0.3, 0.25]]})
    r.status[0, 0, 1] = "running"
    fig = run_figures.sweep_heatmap(r, "reconstruction", best=(1, 1))
    heat, status, clicks = fig.data
    assert heat.type == "heatmap" and heat.text[0][0] == "0.5" and heat.text[0][1] == "running"
    assert status.mode == "text" and list(status.text) == ["running"]
    assert [c for c in clicks.customdata] == [[0, 0], [0, 1], [1, 0], [1, 1]]
    assert list(fig.layout.xaxis.range) == [-0.5, 1.5] and list(fig.layout.yaxis.range) == [1.5, -0.5]
    assert fig.layout.shapes[0].x0 == 0.5 and fig.layout.title.text == "Reconstruction error"
    probe = run_figures.sweep_heatmap(results({}), "probe_accuracy")
    assert probe.data[0].text[0][0] == "no labels"


def test_small_multiples_place_every_cell_and_mark_missing_ones():
    r = results({})
    del r.encoder_weights[(0, 1, 1)]
    r.status[0, 1, 1] = "queued"
    fig = run_figures.sweep_filters(r, best=(0, 0))
    assert fig.data[0].type == "image" and len(fig.data[1].x) == 4
    texts = [a.text for a in fig.layout.annotations]
    assert texts[:2] == ["β=0.3", "β=3"] and "ρ=0.01" in texts and "queued" in texts
    assert run_figures.sweep_filters(results({}, weights=False)).data[0].type == "image"


def test_comparison_figures():
    h = {"a": {"step": np.arange(5.0), "total": np.array([4, 3, 2, 1, 0.5])},
         "b": {"step": np.arange(3.0), "total": np.array([3, 0, 1.0])}}
    curves = align_histories(h, ("total",))
    fig = run_figures.compare_curves(curves, "total", {"a": "run a", "b": "run b"}, log_y=True)
    assert [t.name for t in fig.data] == ["run a", "run b"]
    assert np.isnan(np.asarray(fig.data[1].y, dtype=float)[1])  # log scale: the zero is not drawn
    hist = rho_hat_histograms({"a": np.full(9, 0.05), "b": np.full(4, 0.2)}, bins=10)
    fig = run_figures.compare_rho_hat(hist, {"a": "A", "b": "B"}, {"a": 0.05, "b": 0.2})
    assert [t.name for t in fig.data] == ["A", "B"] and len(fig.layout.shapes) == 2
    W = {"a": np.zeros((9, 64)), "b": np.ones((16, 64))}
    fig = run_figures.filters_side_by_side(W, (8, 8), {"a": "A", "b": "B"}, max_filters=10)
    assert [a.text for a in fig.layout.annotations] == ["<b>A</b>", "<b>B (first 10 of 16)</b>"]


def test_cell_from_event_reads_streamlit_selections():
    assert run_figures.cell_from_event({"selection": {"points": [{"customdata": [2, 1]}]}}) == (2, 1)
    assert run_figures.cell_from_event({"selection": {"points": [{"customdata": {"0": 1, "1": 0}}]}}) == (1, 0)
    assert run_figures.cell_from_event({"selection": {"points": []}}) is None
    assert run_figures.cell_from_event(None) is None
