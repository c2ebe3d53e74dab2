"""sae.runs.recorder: a RunRecorder records a Trainer run in the store (throttled, crash-safe, live changes)."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time

import numpy as np
import pytest
import torch

from sae import TrainConfig, Trainer
from sae.runs.recorder import RunRecorder
from sae.runs.store import RunStore
from sae.training.status import RunStatus

from conftest import MC, TC, history, make_model, snapshot


def data(m: int = 64, n: int = 12, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((m, n)).astype(np.float32)


# ----------------------------------------------------------------------------- recording a Trainer

def test_recorder_records_a_trainer_run(store):
    X = data(96)
    labels = np.arange(96) % 3
    recorder = RunRecorder.create(store, "recorded", "random", MC, TC, interval=0.0, X=X, labels=labels)
    seen = []
    trainer = Trainer(X, MC, TC, observers=[seen.append, recorder])
    recorder.attach(trainer)
    final = trainer.run()
    assert final.status == RunStatus.FINISHED and seen[-1] is final and recorder.error is None
    record = store.get(recorder.run_id)
    assert record.status == RunStatus.FINISHED and record.step == trainer.total_steps
    assert record.reconstruction is not None and record.dead_units is not None
    assert 0.0 <= record.probe_accuracy <= 1.0 and "l0_mean" in record.metrics
    np.testing.assert_array_equal(store.history(recorder.run_id)["total"], trainer.history()["total"])
    out, _ = store.load_model(recorder.run_id)(torch.from_numpy(X))
    np.testing.assert_array_equal(out.detach().numpy(), trainer.model(torch.from_numpy(X))[0].detach().numpy())
    recorder(trainer.latest())  # idempotent after the end
    assert store.get(recorder.run_id).updated == record.updated


def test_a_failing_observer_stops_neither_the_recorder_nor_training(store):
    """Observers are independent: the one before the recorder raises at every snapshot, the recorder still
    records the whole run and the one after it still sees every snapshot."""
    X = data(96)
    recorder = RunRecorder.create(store, "recorded", "random", MC, TC, interval=0.0)

    def broken(snapshot):
        raise RuntimeError("observer bug")

    seen = []
    with pytest.warns(RuntimeWarning, match="observer bug"):
        trainer = Trainer(X, MC, TC, observers=[broken, recorder, seen.append])
    recorder.attach(trainer)
    final = trainer.run()
    assert final.status == RunStatus.FINISHED and seen[-1] is final and recorder.error is None
    assert [s.version for s in seen] == list(range(final.version + 1))
    assert isinstance(trainer.callback_error, RuntimeError)
    record = store.get(recorder.run_id)
    assert record.status == RunStatus.FINISHED and record.step == trainer.total_steps
    np.testing.assert_array_equal(store.history(recorder.run_id)["total"], trainer.history()["total"])


def test_recorder_added_later_records_from_then_on(store):
    """As the dashboard's Job does: a trace observes from the start, the recorder is added before training."""
    X = data(96)
    seen = []
    trainer = Trainer(X, MC, TC, observers=[seen.append])
    recorder = RunRecorder.create(store, "added", "random", MC, TC, interval=0.0).attach(trainer)
    trainer.add_observer(recorder)
    assert trainer.observers == (seen.append, recorder)
    final = trainer.run()
    assert seen[-1] is final and recorder.finished and store.get(recorder.run_id).step == trainer.total_steps


def test_recorder_throttles_checkpoints(store):
    recorder = RunRecorder.create(store, "throttled", "toy", MC, TC, interval=3600.0)
    model = make_model()
    for step in range(1, 50):
        recorder(snapshot(model, step))
    assert recorder.checkpoints == 1 and store.get(recorder.run_id).step == 1
    recorder(snapshot(model, 50, RunStatus.PAUSED))  # a pause is recorded at once
    assert store.get(recorder.run_id).status == RunStatus.PAUSED and store.get(recorder.run_id).step == 50
    recorder(snapshot(model, 51, RunStatus.STOPPED))
    assert store.get(recorder.run_id).status == RunStatus.STOPPED and recorder.finished


def test_recorder_of_a_deleted_run_does_not_stop_training(store):
    X = data()
    recorder = RunRecorder.create(store, "deleted", "random", MC, TC, interval=0.0)
    store.delete(recorder.run_id)
    trainer = Trainer(X, MC, TC, on_snapshot=recorder)
    recorder.attach(trainer)
    assert trainer.run().status == RunStatus.FINISHED
    assert "deleted" in recorder.error and list(store.weights_dir.iterdir()) == []


def test_thread_dies_mid_run_keeps_its_last_checkpoint(tmp_path):
    root = tmp_path / "lab"
    store = RunStore(root)
    recorder = RunRecorder.create(store, "dies", "toy", MC, TC, interval=0.0, history=lambda: history(31))
    model = make_model(9)

    def train_then_die():
        for step in (10, 20, 30):
            recorder(snapshot(model, step))
        raise RuntimeError("the training thread dies here, without finish()")

    thread = threading.Thread(target=train_then_die)
    old_hook, threading.excepthook = threading.excepthook, lambda args: None
    try:
        thread.start()
        thread.join()
    finally:
        threading.excepthook = old_hook
    store.close()
    with RunStore(root) as reopened:
        (record,) = reopened.list()
        assert (record.step, record.status, record.final) == (30, RunStatus.RUNNING, False)
        assert torch.equal(reopened.load_model(record.id).encoder.weight, model.encoder.weight)
        assert len(reopened.history(record.id)["step"]) == 31


def _crash_mid_run(root: str) -> None:
    """Child process: train with a recorder, then die abruptly (no finish, no close) after 2 checkpoints."""
    store = RunStore(root)
    X = np.random.default_rng(0).random((256, 12)).astype(np.float32)
    recorder = RunRecorder.create(store, "crashed", "random", MC, TrainConfig(epochs=10_000, batch_size=16),
                                  interval=0.05)
    trainer = Trainer(X, MC, TrainConfig(epochs=10_000, batch_size=16), on_snapshot=recorder)
    recorder.attach(trainer)
    trainer.start()
    end = time.time() + 30
    while recorder.checkpoints < 2 and time.time() < end:
        time.sleep(0.01)
    os._exit(3)


def _spawn():
    return multiprocessing.get_context("spawn")


def test_process_crash_mid_run_keeps_weights_and_step(tmp_path):
    root = tmp_path / "lab"
    child = _spawn().Process(target=_crash_mid_run, args=(str(root),))
    child.start()
    child.join(60)
    assert child.exitcode == 3
    with RunStore(root) as store:
        (record,) = store.list()
        assert record.status == RunStatus.RUNNING and record.step > 0 and not record.final
        assert record.interrupted and record.display_status == "interrupted"
        assert store.load_model(record.id).config == MC
        assert len(store.history(record.id)["step"]) > 0
        # filters use the status shown: this process's running run is "running", the dead one "interrupted"
        live = store.create("live", "toy", MC, TC)
        store.checkpoint(live, snapshot(make_model(), 3))
        assert [r.name for r in store.list(status="running")] == ["live"]
        assert [r.name for r in store.list(status="interrupted")] == ["crashed"]
        assert len(store.list(status=["running", "interrupted"], limit=1)) == 1


def test_live_hyperparameter_changes_are_recorded(store):
    X = data()
    recorder = RunRecorder.create(store, "live", "random", MC, TC, interval=0.0)
    trainer = Trainer(X, MC, TC, on_snapshot=recorder)
    recorder.attach(trainer)
    trainer.run(steps=3)
    trainer.set_hyperparameters(beta=0.5, lr=0.002)
    trainer.run(steps=2)
    record = store.get(recorder.run_id)
    assert record.status == RunStatus.PAUSED and record.step == 5
    assert record.train_config == TC  # as created (what "reproduce" needs)
    assert record.current_train_config == TrainConfig(rho=0.1, beta=0.5, lr=0.002, epochs=3, batch_size=16)
    assert store.load(recorder.run_id).train_config.beta == 0.5  # what "continue training" needs
    np.testing.assert_array_equal(store.history(recorder.run_id)["beta"], [2.0, 2.0, 2.0, 0.5, 0.5])


