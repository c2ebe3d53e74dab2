"""The timeline, rewind, replay, resampling and the twin across the process boundary: a RemoteTrainer's run in a
worker process does what the in-thread Trainer does (tests/training/test_timeline.py) and shows it to the server."""

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


def config(**kw) -> TrainConfig:
    return TrainConfig(**{"seed": 3, "epochs": 20, "batch_size": 64, "optimizer": "sgd", "lr": 0.1, "rho": 0.05, **kw})


def remote(backend, data, handles, **kw) -> RemoteTrainer:
    handle = RemoteTrainer(backend, data.X, ModelConfig(64, 25), config(), **kw)
    handles.append(handle)
    return handle


def steps(handle: RemoteTrainer, n: int) -> None:
    target = handle.latest().step + n
    handle.step(n)
    assert wait_for(lambda: handle.latest().step >= target and handle.status == RunStatus.PAUSED, 60)


def test_edits_twin_rewind_and_replay_in_a_worker(backend, digits, handles):
    handle = remote(backend, digits, handles)
    steps(handle, 20)
    handle.set_hyperparameters(beta=10.0)
    handle.add_twin(0, beta=1.0)
    steps(handle, 20)  # 20 catch-up steps of the twin, then 20 together
    assert wait_for(lambda: handle.twin_latest() is not None and handle.twin_latest().step == handle.latest().step == 40, 60)
    assert handle.twin_setup() == ({"beta": 1.0}, 0)
    twin = handle.twin_latest()
    assert twin.hyper["beta"] == 1.0 and len(handle.twin_history()["step"]) == len(handle.history()["step"])
    kinds = [(e.kind, e.step) for e in handle.timeline_view().edits]
    assert ("set", 20) in kinds and ("twin", 20) in kinds
    assert 20 in handle.timeline_view().checkpoints

    schedule = [e.to_dict() for e in handle.timeline_view().schedule()]
    replay = remote(backend, digits, handles, schedule=schedule)
    steps(replay, 40)
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
    handle = remote(backend, digits, handles)
    handle.set_hyperparameters(beta=10.0)
    steps(handle, 280)
    dead = [int(j) for j in np.flatnonzero(handle.latest().dead_since >= 0)]
    assert len(dead) >= 5
    handle.resample()
    assert wait_for(lambda: any(e.kind == "resample" for e in handle.timeline_view().edits), 30)
    handle.add_twin(None, beta=2.0)
    steps(handle, 10)
    assert wait_for(lambda: handle.twin_latest() is not None and handle.twin_latest().step == handle.latest().step, 30)
    twin_weights = handle.twin_latest().weights
    handle.promote_twin()
    assert wait_for(lambda: handle.config.beta == 2.0 and handle.twin_latest() is None, 30)
    for name, w in twin_weights.items():
        np.testing.assert_array_equal(handle.latest().weights[name], w)
    assert handle.timeline_view().edits[-1].kind == "promote"
