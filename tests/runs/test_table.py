"""sae.runs.table (run table, labels and filters, continuing a run, best sweep cell) and sae.viz.run_figures."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from sae.viz import run_figures
from sae.runs.compare import align_histories, rho_hat_histograms
from sae.core.config import ModelConfig, TrainConfig
from sae.runs.table import (RUN_SORTS, STATUS_FILTERS, best_cell, continuation, default_comparison, default_run_name,
                            filter_runs, image_shape_for, live_changes, live_run_ids, run_label, run_table,
                            sweep_label)
from sae.runs.store import SORTABLE, RunStore
from sae.runs.sweep_results import SweepResults
from sae.runs.sweep_table import SweepRecord
from sae.training.status import RunStatus
from sae.training.trainer import steps_per_epoch

from conftest import MC, TC, make_model, snapshot


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
        a = store.create("a", "digits", ModelConfig(64, 9, decoder_activation="sigmoid"), TrainConfig(rho=0.1))
        store.create("b", "digits", ModelConfig(64, 16, decoder_activation="sigmoid"), None, parent_id=a)
        table = run_table(store.list(order_by="name", descending=False))
    assert table["name"].tolist() == ["a", "b"] and table["origin"].tolist() == ["trained", "continued"]
    assert table["rho"].dtype == np.float64 and np.isnan(table["rho"][1]) and table["rho"][0] == 0.1
    assert str(table["n_hidden"].dtype) == "Int64" and table.columns[-1] == "id"


def _labelled_runs(store: RunStore) -> dict[str, str]:
    """Four runs: a finished one on digits, a running one on toy, a finished sweep cell, an idle one. name -> id."""
    sweep = store.sweeps.create("grid", "digits", {"rhos": [0.1]})
    ids = {"alpha digits": store.create("alpha digits", "digits", MC, TC),
           "beta toy": store.create("beta toy", "toy", MC, TC),
           "cell": store.create("cell", "digits", MC, TC, sweep_id=sweep),
           "Idle Alpha": store.create("Idle Alpha", "toy", MC, TC)}
    model = make_model()
    store.finish(ids["alpha digits"], snapshot(model, 5, RunStatus.FINISHED))
    store.checkpoint(ids["beta toy"], snapshot(model, 3, RunStatus.RUNNING))
    store.finish(ids["cell"], snapshot(model, 5, RunStatus.FINISHED))
    return ids


def test_filter_runs_applies_every_filter_of_the_runs_page(store):
    ids = _labelled_runs(store)
    every = store.list(order_by="name", descending=False)
    names = lambda records: [r.name for r in records]  # noqa: E731
    assert names(filter_runs(every)) == names(every)  # no filter: everything, in the given order
    assert names(filter_runs(every, search="ALPHA")) == ["Idle Alpha", "alpha digits"]  # SQLite sorts "I" < "a"
    assert names(filter_runs(every, datasets=["toy"])) == ["Idle Alpha", "beta toy"]
    assert names(filter_runs(every, statuses=[RunStatus.FINISHED])) == ["alpha digits", "cell"]
    assert names(filter_runs(every, statuses=["finished"], sweep_cells=False)) == ["alpha digits"]
    assert names(filter_runs(every, search="a", datasets=["digits"], statuses=["running"])) == []
    assert live_run_ids(every) == {ids["beta toy"]}  # idle and finished runs do not change by themselves
    assert set(STATUS_FILTERS) == {s.value for s in RunStatus} - {"failed", "cancelled"}  # what a run can show
    assert all(order_by in SORTABLE for order_by, _ in RUN_SORTS.values())


def test_default_comparison_prefers_runs_of_their_own_to_sweep_cells(store):
    assert default_comparison(store) == []
    ids = _labelled_runs(store)
    assert default_comparison(store) == [ids["alpha digits"], ids["cell"]]
    third = store.create("later", "digits", MC, TC)
    store.finish(third, snapshot(make_model(), 5, RunStatus.FINISHED))
    assert default_comparison(store) == [third, ids["alpha digits"]]  # newest first, sweep cells last
    assert default_comparison(store, n=1) == [third]


def test_run_and_sweep_labels(store):
    ids = _labelled_runs(store)
    record = store.get(ids["beta toy"])
    assert run_label(record).startswith("beta toy · running · ") and run_label(None, "0123456789abcdef") == "01234567"
    sweep = SweepRecord("s" * 32, "grid", "digits", 0.0, 0.0, "running",
                        {"rhos": [0.1, 0.2], "betas": [1.0, 2.0, 3.0], "hidden_sizes": None}, None)
    assert sweep_label(sweep).startswith("grid · 2×3 · ")
    hidden = SweepRecord("s" * 32, "grid", "digits", 0.0, 0.0, "running",
                         {"rhos": [0.1], "betas": [1.0], "hidden_sizes": [4, 9]}, None)
    assert sweep_label(hidden).startswith("grid · 1×1×2 · ")


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


def test_the_table_says_which_hyperparameters_changed_while_a_run_trained(tmp_path):
    """A run named at creation with its starting ρ and β, changed live to others: the row's ρ and β are the final
    ones, and ``changed`` tells from what; the name is left as the user sees it (it may have been chosen)."""
    with RunStore(tmp_path) as store:
        mc, tc = ModelConfig(12, 5, decoder_activation="sigmoid"), TrainConfig(rho=0.01, beta=3.0, epochs=3, batch_size=16)
        name = default_run_name("toy", mc, tc)
        run_id = store.create(name, "toy", mc, tc)
        steady = store.create("steady", "toy", mc, tc)
        snap = snapshot(make_model(), 5, RunStatus.FINISHED)
        store.finish(run_id, replace(snap, hyper={"rho": 0.05, "beta": 1.0, "weight_decay": tc.weight_decay,
                                                   "lr": tc.lr}))
        store.finish(steady, replace(snap, hyper={k: getattr(tc, k) for k in TrainConfig.LIVE_FIELDS}))
        records = {r.id: r for r in store.list()}
        table = run_table(store.list(order_by="name", descending=False)).set_index("id")
    assert "ρ=0.01 β=3" in name and records[run_id].name == name
    assert live_changes(records[run_id]) == "ρ 0.01→0.05 · β 3→1" and live_changes(records[steady]) == ""
    assert table.loc[run_id, "rho"] == 0.05 and table.loc[run_id, "beta"] == 1.0
    assert table.loc[run_id, "changed"] == "ρ 0.01→0.05 · β 3→1" and table.loc[steady, "changed"] == ""
