"""The epoch / iteration budget changes while a run trains (Trainer.set_budget, set_hyperparameters)."""

import threading

import numpy as np
import pytest
import torch

from sae import ConfigError, ModelConfig, TrainConfig, Trainer
from sae.training.status import RunStatus
from conftest import wait_for


@pytest.fixture(scope="module")
def X():
    g = torch.Generator().manual_seed(0)
    basis = torch.rand(6, 32, generator=g)
    codes = torch.rand(400, 6, generator=g)
    return ((codes @ basis) / 6).numpy()  # 400 samples: 4 steps per epoch at batch 100


STARTED: list[Trainer] = []


@pytest.fixture(autouse=True)
def stop_trainers():
    """No training thread outlives its test (later tests count them)."""
    yield
    while STARTED:
        trainer = STARTED.pop()
        trainer.stop("test over")
        trainer.join(5)


def _trainer(X, **kw):
    cfg = TrainConfig(**{"batch_size": 100, "epochs": 5.0, **kw})
    trainer = Trainer(X, ModelConfig(32, 8), cfg, snapshot_interval=0.02)
    STARTED.append(trainer)
    return trainer


def test_budget_fields_are_named_by_the_config():
    assert TrainConfig.BUDGET_FIELDS == ("epochs", "max_iter")


def test_raising_epochs_in_the_calling_thread_lengthens_the_run(X):
    trainer = _trainer(X)
    trainer.run(steps=4)
    trainer.set_budget(epochs=10)
    assert trainer.total_steps == 40 and trainer.config.epochs == 10
    snap = trainer.run()
    assert snap.status == RunStatus.FINISHED and snap.step == 40


def test_set_hyperparameters_accepts_the_budget(X):
    trainer = _trainer(X)
    trainer.set_hyperparameters(epochs=2, beta=1.0)
    assert trainer.total_steps == 8 and trainer.config.beta == 1.0
    assert trainer.run().step == 8


def test_bad_budgets_are_refused_and_nothing_changes(X):
    trainer = _trainer(X)
    for bad in ({"epochs": 0}, {"epochs": float("nan")}, {"max_iter": 0}, {"max_iter": 2.5}):
        with pytest.raises(ConfigError):
            trainer.set_budget(**bad)
    with pytest.raises(ConfigError, match="restart"):
        trainer.set_hyperparameters(batch_size=10)
    assert trainer.total_steps == 20 and trainer.config.epochs == 5


def test_raising_the_budget_of_a_running_thread_keeps_it_going(X):
    trainer = _trainer(X, epochs=50)
    trainer.start()
    assert wait_for(lambda: trainer.step_count > 10)
    trainer.set_budget(epochs=200)
    assert wait_for(lambda: trainer.latest().status == RunStatus.FINISHED, timeout=30)
    assert trainer.latest().step == 800 and trainer.history()["step"][-1] == 799


def test_lowering_the_budget_below_the_current_step_finishes_the_run(X):
    trainer = _trainer(X, epochs=100_000)
    trainer.start()
    assert wait_for(lambda: trainer.step_count > 30)
    trainer.set_budget(epochs=1)
    assert wait_for(lambda: trainer.latest().status == RunStatus.FINISHED)
    step = trainer.latest().step
    assert step >= 30 and "finished" in trainer.latest().reason
    trainer.join(2)
    assert not trainer.is_alive and trainer.step_count == step


def test_lowering_the_budget_of_a_paused_run_finishes_it_at_once(X):
    trainer = _trainer(X, epochs=100_000)
    trainer.start()
    assert wait_for(lambda: trainer.step_count > 10)
    trainer.pause()
    assert wait_for(lambda: trainer.latest().status == RunStatus.PAUSED)
    trainer.set_budget(epochs=1)
    assert wait_for(lambda: trainer.latest().status == RunStatus.FINISHED)


def test_a_finished_run_continues_when_the_budget_is_raised_and_resumed(X):
    trainer = _trainer(X, epochs=2)
    trainer.start()
    assert wait_for(lambda: trainer.latest().status == RunStatus.FINISHED)
    trainer.set_budget(epochs=6)
    snap = trainer.latest()
    assert snap.status == RunStatus.PAUSED and "Resume" in snap.reason  # no longer final: it can go on
    trainer.resume()
    assert wait_for(lambda: trainer.latest().status == RunStatus.FINISHED and trainer.latest().step == 24)
    steps = trainer.history()["step"]
    assert np.array_equal(steps, np.arange(24))  # one unbroken history


def test_a_finished_run_takes_single_steps_after_a_raise(X):
    trainer = _trainer(X, epochs=1)
    trainer.start()
    assert wait_for(lambda: trainer.latest().status == RunStatus.FINISHED)
    trainer.set_budget(epochs=3)
    trainer.step(2)
    assert wait_for(lambda: trainer.latest().step == 6 and trainer.latest().status == RunStatus.PAUSED)


def test_a_raise_that_stays_below_the_step_leaves_a_finished_run_finished(X):
    trainer = _trainer(X, epochs=3)
    trainer.start()
    assert wait_for(lambda: trainer.latest().status == RunStatus.FINISHED)
    trainer.set_budget(epochs=2)
    assert trainer.latest().status == RunStatus.FINISHED
    trainer.resume()
    assert trainer.latest().status == RunStatus.FINISHED and not trainer.is_alive


def test_a_stopped_run_stays_stopped(X):
    trainer = _trainer(X, epochs=100_000)
    trainer.start()
    assert wait_for(lambda: trainer.step_count > 5)
    trainer.stop()
    trainer.join(2)
    trainer.set_budget(epochs=200_000)
    trainer.resume()
    assert trainer.latest().status == RunStatus.STOPPED and not trainer.is_alive


def test_lbfgs_iterations_are_live_too(X):
    trainer = _trainer(X, optimizer="lbfgs", max_iter=3)
    trainer.start()
    assert wait_for(lambda: trainer.latest().status == RunStatus.FINISHED)
    assert trainer.latest().step == 3
    trainer.set_hyperparameters(max_iter=8)
    trainer.resume()
    assert wait_for(lambda: trainer.latest().status == RunStatus.FINISHED and trainer.latest().step == 8)


def test_budget_changes_from_many_threads_are_safe(X):
    trainer = _trainer(X, epochs=100_000)
    trainer.start()
    assert wait_for(lambda: trainer.step_count > 5)

    def hammer(k):
        for i in range(50):
            trainer.set_budget(epochs=50_000 + 1000 * k + i)
    threads = [threading.Thread(target=hammer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert trainer.latest().status in (RunStatus.RUNNING, RunStatus.QUEUED)
    trainer.set_budget(epochs=1)
    assert wait_for(lambda: trainer.latest().status == RunStatus.FINISHED)
    trainer.join(2)
    assert not trainer.is_alive
