"""The run handle across the process boundary: every operation of the Trainer's API on a RemoteTrainer whose
run trains in a worker process, fair sharing, recovery from a killed worker, and a run out of memory."""

import os
import signal

import numpy as np
import pytest

from sae.core.config import ConfigError, ModelConfig, TrainConfig
from sae.data import load_dataset
from sae.training.status import RunStatus
from sae.training.trainer import Trainer
from sae.workers.process import LocalBackend
from sae.workers.remote import RemoteTrainer

from conftest import wait_for


@pytest.fixture(scope="module")
def backend():
    b = LocalBackend()
    b.warm()
    return b


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture
def handles():
    made = []
    yield made
    for handle in made:
        handle.close()


def remote(backend, data, handles, **config):
    handle = RemoteTrainer(backend, data.X, ModelConfig(64, 25), TrainConfig(**{"seed": 3, **config}))
    handles.append(handle)
    return handle


def test_a_remote_run_equals_the_in_thread_run_bit_for_bit(backend, digits, handles):
    seen = []
    handle = remote(backend, digits, handles, epochs=4)
    handle.add_observer(seen.append)
    handle.start()
    handle.join(60)
    local = Trainer(digits.X, ModelConfig(64, 25), TrainConfig(seed=3, epochs=4))
    local.run()
    snap = handle.latest()
    assert snap.status == RunStatus.FINISHED and snap.step == local.latest().step == handle.total_steps
    for name, w in local.latest().weights.items():
        np.testing.assert_array_equal(snap.weights[name], w)
    # the reported loss sums in another order on the worker's one thread than on this process's threads
    assert snap.losses == pytest.approx(local.latest().losses, rel=1e-6)
    np.testing.assert_array_equal(handle.history()["step"], local.history()["step"])
    np.testing.assert_allclose(handle.history()["total"], local.history()["total"], rtol=1e-6)
    assert seen[-1].status == RunStatus.FINISHED  # the observers saw the end before join returned
    versions = [s.version for s in seen]
    assert versions == sorted(set(versions))
    assert handle.worker_pid not in (None, os.getpid())


def test_pause_resume_step_and_stop_cross_the_boundary(backend, digits, handles):
    handle = remote(backend, digits, handles, epochs=100_000)
    handle.start()
    assert wait_for(lambda: handle.status == RunStatus.RUNNING and handle.latest().step > 0)
    handle.pause()
    assert wait_for(lambda: handle.status == RunStatus.PAUSED)
    paused_at = handle.latest().step
    handle.step(5)
    assert wait_for(lambda: handle.latest().step == paused_at + 5 and handle.status == RunStatus.PAUSED)
    handle.resume()
    assert wait_for(lambda: handle.status == RunStatus.RUNNING and handle.latest().step > paused_at + 5)
    handle.stop("enough")
    snap = handle.latest()
    assert snap.status == RunStatus.STOPPED and snap.reason == "enough" and not handle.is_alive


def test_live_changes_apply_in_the_worker(backend, digits, handles):
    handle = remote(backend, digits, handles, epochs=100_000, beta=3.0)
    handle.start()
    assert wait_for(lambda: handle.latest().step > 0)
    handle.set_hyperparameters(beta=10.0, rho=0.05, lr=0.01, weight_decay=0.001)
    assert wait_for(lambda: handle.latest().hyper == {"rho": 0.05, "beta": 10.0, "weight_decay": 0.001, "lr": 0.01})
    assert wait_for(lambda: (handle.history()["beta"][-1], handle.history()["rho"][-1]) == (10.0, 0.05))
    with pytest.raises(ConfigError, match="cannot change during training"):
        handle.set_hyperparameters(n_hidden=3)
    with pytest.raises(ConfigError):
        handle.set_hyperparameters(rho=0.0)
    assert handle.config.rho == 0.05


def test_a_finished_run_continues_when_its_budget_is_raised(backend, digits, handles):
    handle = remote(backend, digits, handles, epochs=2)
    handle.start()
    handle.join(60)
    done = handle.latest().step
    assert handle.status == RunStatus.FINISHED
    handle.set_budget(epochs=4)
    assert handle.status == RunStatus.PAUSED and handle.total_steps == 2 * done  # in effect when it returns
    handle.resume()
    handle.join(60)
    assert handle.status == RunStatus.FINISHED and handle.latest().step == 2 * done


def test_health_is_read_from_the_mirrored_history(backend, digits, handles):
    handle = remote(backend, digits, handles, epochs=100_000, beta=0.0, rho=0.01)
    assert handle.health() == []  # nothing before training
    handle.start()
    assert wait_for(lambda: handle.latest().step > 50)
    assert isinstance(handle.health(), list)


def test_two_runs_share_the_cores_both_advance(backend, digits, handles):
    a = remote(backend, digits, handles, epochs=100_000)
    b = remote(backend, digits, handles, epochs=100_000)
    a.start()
    b.start()
    assert wait_for(lambda: a.latest().step > 0 and b.latest().step > 0)
    sa, sb = a.latest().step, b.latest().step
    assert wait_for(lambda: a.latest().step > sa + 100 and b.latest().step > sb + 100)
    assert a.status == b.status == RunStatus.RUNNING


def test_a_killed_worker_is_replaced_and_the_run_goes_on(backend, digits, handles):
    handle = remote(backend, digits, handles, epochs=100_000)
    other = remote(backend, digits, handles, epochs=100_000)
    handle.start()
    other.start()
    assert wait_for(lambda: handle.latest().step > 20 and other.latest().step > 0)
    first = handle.worker_pid
    os.kill(first, signal.SIGKILL)
    assert wait_for(lambda: handle.restarts == 1)
    assert wait_for(lambda: handle.worker_pid not in (None, first) and handle.status == RunStatus.RUNNING)
    restarted_at = min(handle._restarted_at)
    assert "SIGKILL" in handle.latest().reason and f"step {restarted_at:,}" in handle.latest().reason
    assert wait_for(lambda: handle.latest().step > restarted_at + 50)  # trains on, from the last snapshot
    steps = handle.history()["step"]
    assert (np.diff(steps) > 0).all()  # one history, no step counted twice
    other_step = other.latest().step
    assert wait_for(lambda: other.latest().step > other_step) and other.restarts == 0  # untouched


def test_a_paused_run_whose_worker_dies_comes_back_paused(backend, digits, handles):
    handle = remote(backend, digits, handles, epochs=100_000)
    handle.start()
    assert wait_for(lambda: handle.latest().step > 0)
    handle.pause()
    assert wait_for(lambda: handle.status == RunStatus.PAUSED)
    step = handle.latest().step
    os.kill(handle.worker_pid, signal.SIGKILL)
    assert wait_for(lambda: handle.restarts == 1 and handle.worker_pid is not None)
    assert wait_for(lambda: handle.status == RunStatus.PAUSED)
    assert handle.latest().step == step


def test_a_worker_dying_twice_at_the_same_step_stops_the_run(backend, digits, handles):
    handle = remote(backend, digits, handles, epochs=100_000)
    handle.start()
    assert wait_for(lambda: handle.latest().step > 0)
    handle.pause()
    assert wait_for(lambda: handle.status == RunStatus.PAUSED)
    os.kill(handle.worker_pid, signal.SIGKILL)
    assert wait_for(lambda: handle.restarts == 1 and handle.worker_pid is not None and
                    handle.status == RunStatus.PAUSED)
    os.kill(handle.worker_pid, signal.SIGKILL)  # paused: the same step again
    assert wait_for(lambda: handle.status == RunStatus.STOPPED)
    assert "ended again" in handle.latest().reason


def test_a_run_out_of_memory_fails_alone_with_a_message(digits, handles):
    """Each worker's memory is capped: a model too big for it stops with the allocation error; another run on the
    same backend trains on."""
    small = LocalBackend(memory_limit=300 * 1024 ** 2)
    fine = RemoteTrainer(small, digits.X, ModelConfig(64, 25), TrainConfig(epochs=100_000))
    handles.append(fine)
    fine.start()
    huge = np.zeros((400_000, 64), np.float32)  # 100 MB of data: the worker's copies exceed 300 MB
    hungry = RemoteTrainer(small, huge, ModelConfig(64, 25), TrainConfig(epochs=1, batch_size=400_000))
    handles.append(hungry)
    hungry.start()
    assert wait_for(lambda: hungry.status == RunStatus.STOPPED, timeout=60)
    assert hungry.latest().reason.startswith("out of memory: this run needs more than the 300 MiB a worker may use")
    step = fine.latest().step
    assert wait_for(lambda: fine.latest().step > step) and fine.status == RunStatus.RUNNING


# ----------------------------------------------------------------------------- the timeline and the twin in a worker

def timeline_config(**kw) -> TrainConfig:
    return TrainConfig(**{"seed": 3, "epochs": 20, "batch_size": 64, "optimizer": "sgd", "lr": 0.1, "rho": 0.05, **kw})


def sgd_remote(backend, data, handles, **kw) -> RemoteTrainer:
    """A run on SGD at lr 0.1 (units die at beta 10), with the handle's keyword arguments ``kw``."""
    handle = RemoteTrainer(backend, data.X, ModelConfig(64, 25), timeline_config(), **kw)
    handles.append(handle)
    return handle


def take_steps(handle: RemoteTrainer, n: int) -> None:
    target = handle.latest().step + n
    handle.step(n)
    assert wait_for(lambda: handle.latest().step >= target and handle.status == RunStatus.PAUSED, 60)


def test_edits_twin_rewind_and_replay_in_a_worker(backend, digits, handles):
    handle = sgd_remote(backend, digits, handles)
    take_steps(handle, 20)
    handle.set_hyperparameters(beta=10.0)
    handle.add_twin(0, beta=1.0)
    take_steps(handle, 20)  # 20 catch-up steps of the twin, then 20 together
    assert wait_for(lambda: handle.twin_latest() is not None and handle.twin_latest().step == handle.latest().step == 40, 60)
    assert handle.twin_setup() == ({"beta": 1.0}, 0)
    twin = handle.twin_latest()
    assert twin.hyper["beta"] == 1.0 and len(handle.twin_history()["step"]) == len(handle.history()["step"])
    kinds = [(e.kind, e.step) for e in handle.timeline_view().edits]
    assert ("set", 20) in kinds and ("twin", 20) in kinds
    assert 20 in handle.timeline_view().checkpoints

    schedule = [e.to_dict() for e in handle.timeline_view().schedule()]
    replay = sgd_remote(backend, digits, handles, schedule=schedule)
    take_steps(replay, 40)
    for name, w in handle.latest().weights.items():
        np.testing.assert_allclose(replay.latest().weights[name], w, rtol=1e-5, atol=1e-6)

    handle.rewind(20)
    assert wait_for(lambda: handle.latest().step == 20, 30)
    assert handle.config.beta == 3.0 and handle.twin_latest() is None
    assert handle.history()["step"].max() == 19
    assert [e.kind for e in handle.timeline_view().edits if e.step >= 20] == ["rewind"]
    with pytest.raises(ConfigError, match="no checkpoint"):
        handle.rewind(33)


def test_resample_and_promote_in_a_worker(backend, digits, handles):
    handle = sgd_remote(backend, digits, handles)
    handle.set_hyperparameters(beta=10.0)
    take_steps(handle, 280)
    dead = [int(j) for j in np.flatnonzero(handle.latest().dead_since >= 0)]
    assert len(dead) >= 5
    handle.resample()
    assert wait_for(lambda: any(e.kind == "resample" for e in handle.timeline_view().edits), 30)
    handle.add_twin(None, beta=2.0)
    take_steps(handle, 10)
    assert wait_for(lambda: handle.twin_latest() is not None and handle.twin_latest().step == handle.latest().step, 30)
    twin_weights = handle.twin_latest().weights
    handle.promote_twin()
    assert wait_for(lambda: handle.config.beta == 2.0 and handle.twin_latest() is None, 30)
    assert wait_for(lambda: handle.latest().hyper["beta"] == 2.0, 30)  # the snapshot published after the promotion
    for name, w in twin_weights.items():
        np.testing.assert_array_equal(handle.latest().weights[name], w)
    assert handle.timeline_view().edits[-1].kind == "promote"
