"""sae.runs.compare: selection rules, curves on one axis, shared histogram bins, loading from a store."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sae import ModelConfig, SparseAutoencoder, TrainConfig
from sae.training.status import RunStatus
from sae.runs.compare import (CompareError, align_histories, check_selection, differing_settings, load_comparison,
                         rho_hat_histograms)
from sae.training.trainer import Snapshot


def history(steps, steps_per_epoch: int = 10, offset: float = 0.0) -> dict[str, np.ndarray]:
    step = np.asarray(steps, dtype=np.float64)
    return {"step": step, "epoch": step / steps_per_epoch, "time": step * 0.01,
            "total": 10.0 / (1.0 + step) + offset, "reconstruction": 5.0 / (1.0 + step)}


def snapshot(model, step, status=RunStatus.RUNNING, rho_hat=None, hyper=None) -> Snapshot:
    s = model.config.n_hidden
    return Snapshot(step=step, epoch=step / 10, losses={"total": 1.0},
                    rho_hat=np.linspace(0.01, 0.1, s) if rho_hat is None else rho_hat,
                    weights={k: v.detach().numpy().copy() for k, v in model.state_dict().items()},
                    hyper=hyper or {"rho": 0.05, "beta": 3.0, "weight_decay": 1e-4, "lr": 0.01}, samples_per_s=0.0,
                    elapsed=0.0, status=status)


def add_run(store, name, n_inputs=16, n_hidden=4, rho=0.05, beta=3.0, steps=range(0, 100, 1), weights=True):
    config = TrainConfig(rho=rho, beta=beta)
    run_id = store.create(name, "toy", ModelConfig(n_inputs, n_hidden, decoder_activation="sigmoid"), config)
    if weights:
        model = SparseAutoencoder(n_inputs, n_hidden)
        model.reset_parameters(torch.Generator().manual_seed(len(name)))
        hyper = {k: getattr(config, k) for k in TrainConfig.LIVE_FIELDS}
        store.finish(run_id, snapshot(model, len(steps), RunStatus.FINISHED, hyper=hyper), history(steps))
    return run_id


# ----------------------------------------------------------------------------- selection

def test_selection_needs_two_to_four_distinct_runs(store):
    ids = [add_run(store, f"r{k}") for k in range(5)]
    records = [store.get(i) for i in ids]
    for count in (2, 3, 4):
        assert check_selection(records[:count]) == records[:count]
    for count in (0, 1, 5):
        with pytest.raises(CompareError, match="between 2 and 4"):
            check_selection(records[:count])
    with pytest.raises(CompareError, match="twice"):
        check_selection([records[0], records[0]])


def test_filters_side_by_side_need_one_input_size(store):
    a, b = add_run(store, "small", n_inputs=16), add_run(store, "big", n_inputs=25)
    records = [store.get(a), store.get(b)]
    check_selection(records)  # curves are fine
    with pytest.raises(CompareError, match="same input size") as info:
        check_selection(records, filters=True)
    assert "'small': 16" in str(info.value) and "'big': 25" in str(info.value)


# ----------------------------------------------------------------------------- curves

def test_align_on_step_uses_the_union_when_small():
    a, b = history(np.arange(0, 50, 2)), history(np.arange(0, 80, 4), offset=1.0)
    aligned = align_histories({"a": a, "b": b}, columns=("total", "reconstruction"))
    assert aligned.x_name == "step"
    np.testing.assert_array_equal(aligned.x, np.unique(np.concatenate([a["step"], b["step"]])))
    ya, yb = aligned.column("total")["a"], aligned.column("total")["b"]
    on_a = np.isin(aligned.x, a["step"])
    np.testing.assert_allclose(ya[on_a], a["total"])  # recorded points are exact
    assert np.isnan(ya[aligned.x > 48]).all() and np.isfinite(ya[aligned.x <= 48]).all()  # a ends at step 48
    assert np.isfinite(yb).all()
    on_b = np.isin(aligned.x, b["step"])
    np.testing.assert_allclose(yb[on_b], b["total"])
    mid = np.flatnonzero(aligned.x == 2)[0]  # b has steps 0 and 4: linear in between
    assert yb[mid] == pytest.approx((b["total"][0] + b["total"][1]) / 2)


def test_align_thins_to_max_points():
    a, b = history(np.arange(0, 30_000, 3)), history(np.arange(1, 25_000, 7))
    aligned = align_histories({"a": a, "b": b}, x="epoch", max_points=2000)
    assert len(aligned.x) == 2000 and aligned.x_name == "epoch"
    assert aligned.x[0] == 0.0 and aligned.x[-1] == pytest.approx(a["epoch"][-1])
    assert np.all(np.diff(aligned.x) > 0)
    y = aligned.column("total")["b"]
    inside = (aligned.x >= b["epoch"][0]) & (aligned.x <= b["epoch"][-1])
    assert np.isfinite(y[inside]).all() and np.isnan(y[~inside]).all()
    np.testing.assert_allclose(y[inside], np.interp(aligned.x[inside], b["epoch"], b["total"]))


def test_align_rejects_bad_input():
    good = history(range(5))
    with pytest.raises(CompareError, match="align on one of"):
        align_histories({"a": good, "b": good}, x="wallclock")
    with pytest.raises(CompareError, match="no recorded history"):
        align_histories({"a": good, "b": {}})
    with pytest.raises(CompareError, match="no sparsity column"):
        align_histories({"a": good, "b": good}, columns=("sparsity",))
    backwards = dict(good, step=good["step"][::-1].copy())
    with pytest.raises(CompareError, match="increasing"):
        align_histories({"a": good, "b": backwards})
    with pytest.raises(CompareError, match="max_points"):
        align_histories({"a": good}, max_points=1)


# ----------------------------------------------------------------------------- histograms

def test_rho_hat_histograms_share_bins():
    rng = np.random.default_rng(0)
    small, wide = rng.uniform(0, 0.02, 25), rng.uniform(0, 0.2, 100)
    hist = rho_hat_histograms({"small": small, "wide": wide}, bins=20)
    assert hist.edges[0] == 0.0 and hist.edges[-1] == pytest.approx(wide.max())
    assert len(hist.edges) == 21 and len(hist.centers) == 20
    assert hist.counts["small"].sum() == 25 and hist.counts["wide"].sum() == 100
    for key in ("small", "wide"):
        assert hist.fractions[key].sum() == pytest.approx(1.0)
    assert hist.counts["small"][2:].sum() == 0  # all of it in the first bins of the shared axis
    fixed = rho_hat_histograms({"a": small}, bins=10, value_range=(0.0, 1.0))
    np.testing.assert_allclose(fixed.edges, np.linspace(0, 1, 11))
    assert fixed.counts["a"][0] == 25
    with pytest.raises(CompareError):
        rho_hat_histograms({"a": np.array([np.nan])})
    with pytest.raises(CompareError):
        rho_hat_histograms({"a": small}, value_range=(1.0, 0.0))


def test_differing_settings(store):
    a = add_run(store, "a", rho=0.01, beta=3.0)
    b = add_run(store, "b", rho=0.05, beta=3.0)
    c = add_run(store, "c", rho=0.05, beta=3.0, n_hidden=9)
    diff = differing_settings([store.get(i) for i in (a, b, c)])
    assert diff == {"n_hidden": [4, 4, 9], "rho": [0.01, 0.05, 0.05]}


# ----------------------------------------------------------------------------- from the store

def test_load_comparison(store):
    a = add_run(store, "same name", steps=range(0, 40))
    b = add_run(store, "same name", steps=range(0, 90, 3), rho=0.01)
    c = add_run(store, "no weights yet", weights=False)
    comparison = load_comparison(store, [a, b], x="step")
    assert [r.id for r in comparison.records] == [a, b]
    assert set(comparison.curves.curves) == {"total", "reconstruction"}  # only the columns every run has
    assert len(comparison.curves.x) <= 2000
    assert set(comparison.histograms.counts) == {a, b}
    assert comparison.filters[a].shape == (4, 16) and comparison.missing == {}
    names = comparison.names
    assert names[a] != names[b] and names[a].startswith("same name (")
    with pytest.raises(CompareError, match="no recorded history"):
        load_comparison(store, [a, c])
    with pytest.raises(CompareError, match="between 2 and 4"):
        load_comparison(store, [a])


def test_load_comparison_with_different_input_sizes(store):
    a, b = add_run(store, "a", n_inputs=16), add_run(store, "b", n_inputs=25)
    comparison = load_comparison(store, [a, b])
    assert comparison.filters == {} and "same input size" in comparison.missing[a]
    assert comparison.histograms is not None  # curves and histograms still compare
