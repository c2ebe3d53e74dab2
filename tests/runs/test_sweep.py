"""sae.runs.sweep, sweep_spec, sweep_results: the spec's rules, the Sweep page's choices, a 2x2 sweep on digits,
bounded parallelism, cancelling, results, the registry."""

from __future__ import annotations

import logging
import os
import threading
import time

import numpy as np
import pytest

from sae import ModelConfig, TrainConfig, Trainer
from sae.data import load_dataset
from sae.training.slots import TrainingSlots
from sae.evaluation.metrics import evaluate_run
from sae.runs.store import RunStore
from sae.runs.sweep import CellState, Sweep, SweepProgress, SweepRegistry
from sae.runs.sweep_results import load_sweep
from sae.runs.sweep_spec import SweepError, SweepSpec, default_cell_budget, spec_from_choices
from sae.training.status import RunStatus
from sae.training.trainer import steps_per_epoch
from conftest import wait_for

TINY = TrainConfig(epochs=1.0, batch_size=256, lr=0.02)  # 7 full batches of 256 on digits


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def spec_2x2(**changes) -> SweepSpec:
    args = dict(rhos=(0.01, 0.1), betas=(0.5, 3.0), model_config=ModelConfig(64, 9), train_config=TINY,
                dataset="digits")
    args.update(changes)
    return SweepSpec(**args)


# ----------------------------------------------------------------------------- the spec

def test_spec_validates_every_cell():
    spec = spec_2x2(train_config=TrainConfig(seed=None))
    assert spec.train_config.seed == 0  # seeds are fixed
    assert spec.shape == (1, 2, 2) and len(spec.cells()) == 4
    assert [c.index for c in spec.cells()] == [(0, 0, 0), (0, 0, 1), (0, 1, 0), (0, 1, 1)]
    assert spec.cells()[1].train_config.beta == 3.0 and spec.cells()[2].train_config.rho == 0.1
    assert SweepSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(SweepError, match="rho"):
        spec_2x2(rhos=(0.05, 1.5))
    with pytest.raises(SweepError, match="twice"):
        spec_2x2(betas=(1.0, 1.0))
    with pytest.raises(SweepError, match="between 1 and"):
        spec_2x2(rhos=())
    with pytest.raises(SweepError, match="limit is 64"):
        spec_2x2(rhos=np.linspace(0.01, 0.5, 8), betas=np.linspace(0, 3, 5), hidden_sizes=(4, 9))
    with pytest.raises(SweepError, match="whole numbers"):
        spec_2x2(hidden_sizes=(4.5,))
    with pytest.raises(SweepError, match="TopK"):
        spec_2x2(model_config=ModelConfig(64, 9, "relu", topk=2), train_config=TrainConfig(penalty="topk"))
    with pytest.raises(SweepError, match="L1"):
        spec_2x2(train_config=TrainConfig(penalty="l1"))
    spec_2x2(rhos=(0.05,), train_config=TrainConfig(penalty="l1"))  # beta (and size) alone is fine


def test_sweep_refuses_data_of_another_size(store, digits):
    with pytest.raises(SweepError, match="expects 16 inputs"):
        Sweep(spec_2x2(model_config=ModelConfig(16, 4)), store, digits)
    with pytest.raises(SweepError, match="parallel"):
        Sweep(spec_2x2(), store, digits, parallel=0)


# ----------------------------------------------------------------------------- running

def test_2x2_sweep_on_digits(store, digits):
    spec = spec_2x2()
    sweep = Sweep(spec, store, digits, parallel=2, interval=0.05).start()
    assert sweep.wait(60)
    progress = sweep.progress()
    assert progress.finished and progress.fraction == 1.0 and progress.failed == 0
    assert 1 <= progress.peak_running <= 2
    assert [c.status for c in progress.cells] == [RunStatus.FINISHED] * 4
    assert all(c.step == 7 and c.total_steps == 7 and c.run_id for c in progress.cells)

    results = sweep.results()
    assert results.rhos == (0.01, 0.1) and results.betas == (0.5, 3.0) and results.hidden_sizes == (9,)
    for name in ("reconstruction", "rho_hat_mean", "dead_units", "probe_accuracy", "total"):
        assert results.metrics[name].shape == (1, 2, 2) and np.isfinite(results.metrics[name]).all()
        assert results.grid(name).shape == (2, 2)
    assert (results.grid("reconstruction") > 0).all()
    assert ((results.grid("rho_hat_mean") > 0) & (results.grid("rho_hat_mean") < 1)).all()
    dead = results.grid("dead_units")
    assert (dead == np.round(dead)).all() and ((dead >= 0) & (dead <= 9)).all()
    assert ((results.grid("probe_accuracy") > 0.2) & (results.grid("probe_accuracy") <= 1)).all()
    assert results.image_shape == (8, 8) and set(results.encoder_weights) == {c.index for c in spec.cells()}
    assert all(w.shape == (9, 64) for w in results.encoder_weights.values())
    assert (results.status == RunStatus.FINISHED).all()

    # every cell is a recorded run of this sweep, and the grid holds its recorded metrics
    runs = {r.id: r for r in store.list(sweep_id=sweep.id)}
    assert set(runs) == set(results.run_ids.ravel())
    for cell in spec.cells():
        run_id = results.run_at(*cell.index)
        record = runs[run_id]
        assert record.train_config == cell.train_config and record.model_config.n_hidden == 9
        model = store.load_model(run_id)
        metrics, _ = evaluate_run(model, digits.X, digits.labels)
        for name in ("reconstruction", "rho_hat_mean", "dead_units", "probe_accuracy"):
            assert results.metrics[name][cell.index] == pytest.approx(metrics[name])
    assert store.sweeps.get(sweep.id).status == "finished"

    # the seeds are fixed: a cell retrained alone gives the same weights
    cell = spec.cells()[3]
    trainer = Trainer(digits.X, cell.model_config, cell.train_config)
    trainer.run()
    np.testing.assert_allclose(results.encoder_weights[cell.index], trainer.model.encoder.weight.detach().numpy(),
                               rtol=1e-5, atol=1e-6)

    # after a restart the sweep reads back from the store
    spec_again, again = load_sweep(RunStore(store.root), sweep.id)
    assert spec_again == spec and again.image_shape == (8, 8)
    np.testing.assert_array_equal(again.metrics["reconstruction"], results.metrics["reconstruction"])
    assert (again.status == RunStatus.FINISHED).all()


def _watch_slots(slots: TrainingSlots, stop: threading.Event, seen: list[int]) -> threading.Thread:
    def poll():
        while not stop.is_set():
            seen.append(slots.running)
            time.sleep(0.002)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    return thread


def test_parallelism_is_bounded(store, digits, in_threads):
    spec = spec_2x2(train_config=TrainConfig(epochs=3.0, batch_size=64))
    sweep = Sweep(spec, store, digits, parallel=1, probe=False)
    stop, seen = threading.Event(), []
    watcher = _watch_slots(sweep.slots, stop, seen)
    sweep.start()
    assert sweep.wait(60)
    stop.set()
    watcher.join()
    assert sweep.progress().peak_running == 1 and max(seen) == 1
    assert all(c.status == RunStatus.FINISHED for c in sweep.progress().cells)


def test_a_shared_slot_pool_caps_the_sweep_too(store, digits, in_threads):
    shared = TrainingSlots(1)  # e.g. the server's: other sessions share it
    spec = spec_2x2(train_config=TrainConfig(epochs=3.0, batch_size=64))
    sweep = Sweep(spec, store, digits, parallel=2, slots=shared, probe=False)
    stop, seen, queued_while_running = threading.Event(), [], []
    watcher = _watch_slots(shared, stop, seen)
    sweep.start()
    while not sweep.done:
        p = sweep.progress()
        if p.running == 1 and any(c.status == "queued" and c.run_id for c in p.cells):
            queued_while_running.append(True)  # a second trainer exists but waits for the slot
        time.sleep(0.005)
    stop.set()
    watcher.join()
    assert max(seen) == 1 and sweep.progress().peak_running == 1
    assert queued_while_running
    assert all(c.status == RunStatus.FINISHED for c in sweep.progress().cells)


def test_cells_train_in_worker_processes_at_most_parallel_at_once(store, digits):
    """The default backend: each cell is a worker process; ``parallel`` bounds how many exist at once."""
    spec = spec_2x2(train_config=TrainConfig(epochs=3.0, batch_size=64))
    sweep = Sweep(spec, store, digits, parallel=2, probe=False)
    pids: set[int] = set()
    most = 0
    sweep.start()
    while not sweep.done:
        with sweep._lock:
            live = [t.worker_pid for t in sweep._trainers.values()]
        pids.update(p for p in live if p is not None)
        most = max(most, len(live))
        time.sleep(0.002)
    assert most <= 2 and sweep.progress().peak_running <= 2
    assert pids and os.getpid() not in pids
    assert all(c.status == RunStatus.FINISHED for c in sweep.progress().cells)


def test_cancel_stops_the_threads(store, digits):
    spec = spec_2x2(train_config=TrainConfig(epochs=100_000.0))
    sweep = Sweep(spec, store, digits, parallel=1, probe=False, interval=0.05).start()
    assert wait_for(lambda: sweep.progress().running == 1)
    assert wait_for(lambda: sweep.progress().cells[0].step > 0)
    started = time.monotonic()
    sweep.cancel(timeout=20)
    assert time.monotonic() - started < 10 and sweep.done and sweep.cancelled
    assert not any(t.name.startswith("sae-sweep") and t.is_alive() for t in threading.enumerate())
    statuses = [c.status for c in sweep.progress().cells]
    assert statuses == [RunStatus.STOPPED, "cancelled", "cancelled", "cancelled"]
    (record,) = store.list(sweep_id=sweep.id)  # only the cell that trained is recorded
    assert record.status == RunStatus.STOPPED and record.step > 0 and "cancelled" in record.reason
    store.load_model(record.id)
    assert store.sweeps.get(sweep.id).status == "cancelled"
    results = sweep.results(weights=False)
    assert np.isfinite(results.metrics["reconstruction"]).sum() == 1


def test_a_diverging_cell_is_recorded_as_diverged(store, digits):
    spec = SweepSpec(rhos=(0.05,), betas=(3.0,), model_config=ModelConfig(64, 16, decoder_activation="linear"),
                     train_config=TrainConfig(optimizer="sgd", lr=10.0, epochs=3.0), dataset="digits")
    sweep = Sweep(spec, store, digits, parallel=1, probe=False).start()
    assert sweep.wait(60)
    (cell,) = sweep.progress().cells
    assert cell.status == RunStatus.DIVERGED and "diverged" in cell.reason
    record = store.get(cell.run_id)
    assert record.status == RunStatus.DIVERGED and "diverged" in record.reason
    store.load_model(cell.run_id)  # the last sound weights were kept


def test_hidden_size_axis(store, digits):
    spec = spec_2x2(rhos=(0.05,), betas=(3.0,), hidden_sizes=(4, 16))
    sweep = Sweep(spec, store, digits, parallel=2, probe=False).start()
    assert sweep.wait(60)
    results = sweep.results()
    assert results.metrics["reconstruction"].shape == (2, 1, 1)
    assert np.isnan(results.metrics["probe_accuracy"]).all()  # probe off
    assert results.encoder_weights[(0, 0, 0)].shape == (4, 64) and results.encoder_weights[(1, 0, 0)].shape == (16, 64)
    with pytest.raises(SweepError, match="out of range"):
        results.grid("reconstruction", hidden=2)


# ----------------------------------------------------------------------------- the Sweep page's choices

def test_spec_from_choices_sorts_the_axes_and_sets_each_cells_budget():
    base = TrainConfig(epochs=300.0, batch_size=128, seed=7)
    spec = spec_from_choices(ModelConfig(64, 9), base, "digits", rhos=[0.1, 0.01], betas=[3.0, 0.3],
                             hidden_sizes=[16, 4], budget=12, name="  ")
    assert spec.rhos == (0.01, 0.1) and spec.betas == (0.3, 3.0) and spec.hidden_sizes == (4, 16)
    assert spec.train_config.epochs == 12.0 and spec.train_config.seed == 7 and spec.name == "sweep on digits"
    lbfgs = spec_from_choices(ModelConfig(64, 9), TrainConfig(optimizer="lbfgs", max_iter=400), "digits",
                              rhos=[0.05], betas=[3.0], hidden_sizes=[], budget=30, name="x" * 300)
    assert lbfgs.train_config.max_iter == 30 and lbfgs.hidden_sizes is None and lbfgs.sizes == (9,)
    assert lbfgs.name == "x" * 200  # the store's limit
    with pytest.raises(SweepError, match="between 1 and"):
        spec_from_choices(ModelConfig(64, 9), base, "digits", rhos=[], betas=[3.0], budget=5)


def test_default_cell_budget_aims_at_a_fixed_number_of_steps():
    tc = TrainConfig(epochs=300.0, batch_size=128)
    assert steps_per_epoch(tc, 1797) == 14
    assert default_cell_budget(tc, 1797) == 143  # round(2000 / 14) epochs
    assert default_cell_budget(tc, 100_000) == 5  # at least five epochs
    assert default_cell_budget(TrainConfig(epochs=20.0, batch_size=128), 1797) == 20  # at most the base's
    assert default_cell_budget(TrainConfig(epochs=20.0), None) == 20  # data unknown: one step per epoch assumed
    assert default_cell_budget(TrainConfig(optimizer="lbfgs", max_iter=77), 1797) == 77


def test_progress_summary_names_failures_and_cancelling():
    cells = (CellState((0, 0, 0), 0.1, 1.0, 9, RunStatus.FINISHED),)
    progress = SweepProgress("s" * 32, 4, 1, 2, 1, 0, False, cells, 2)
    assert progress.summary == "1 of 4 cells done · 2 training · 1 waiting"
    progress = SweepProgress("s" * 32, 4, 0, 0, 4, 1, True, cells, 2)
    assert progress.summary == "4 of 4 cells done · 0 training · 0 waiting · 1 failed · cancelled"


# ----------------------------------------------------------------------------- the registry

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
        assert sweep.done and registry.running() == [] and store.sweeps.get(sweep.id).status == "cancelled"
        assert registry.get(None) is None


def test_a_sweep_recorded_as_running_that_no_registry_entry_runs_is_interrupted(store, digits):
    registry = SweepRegistry()
    orphan = store.sweeps.create("from a previous server", "digits", spec_2x2().to_dict())
    assert registry.display_status(store.sweeps.get(orphan)) == RunStatus.INTERRUPTED
    store.sweeps.update(orphan, RunStatus.FINISHED)
    assert registry.display_status(store.sweeps.get(orphan)) == RunStatus.FINISHED  # ended: shown as it ended
    sweep = registry.start(spec_2x2(train_config=TrainConfig(epochs=500)), store, digits, parallel=1)
    try:
        assert registry.display_status(store.sweeps.get(sweep.id)) == RunStatus.RUNNING
    finally:
        registry.cancel_all()
    assert registry.display_status(store.sweeps.get(sweep.id)) == RunStatus.CANCELLED


def test_a_sweep_status_that_cannot_be_recorded_is_logged(store, digits, caplog):
    sweep = Sweep(spec_2x2(rhos=(0.05,), betas=(1.0,), train_config=TrainConfig(epochs=500)), store, digits,
                  parallel=1).start()
    store.sweeps.delete(sweep.id, runs=False)  # gone from the store while it trains
    with caplog.at_level(logging.WARNING, logger="sae.runs.sweep"):
        sweep.cancel()
    assert sweep.done
    assert any("could not be recorded" in r.getMessage() and sweep.id in r.getMessage() for r in caplog.records)

