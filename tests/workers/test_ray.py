"""The Ray backend on a local Ray instance bound to the loopback address: a live run driven through an actor, a
sweep whose cells are actors, an experiment call, and a killed actor replaced from the last snapshot."""

import os

import pytest

ray = pytest.importorskip("ray", reason="ray is in requirements-dev.txt")  # installed by the test command

from sae.core.config import ModelConfig, TrainConfig  # noqa: E402
from sae.data import load_dataset  # noqa: E402
from sae.runs.store import RunStore  # noqa: E402
from sae.runs.sweep import Sweep  # noqa: E402
from sae.runs.sweep_spec import SweepSpec  # noqa: E402
from sae.training.progress import Progress  # noqa: E402
from sae.training.status import RunStatus  # noqa: E402
from sae.workers import backend as workers  # noqa: E402
from sae.workers.calls import call_in_worker  # noqa: E402
from sae.workers.ray_backend import RayBackend  # noqa: E402
from sae.workers.remote import RemoteTrainer  # noqa: E402

from conftest import wait_for  # noqa: E402


def where_am_i(label, progress):
    progress(1.0, "done")
    return label, os.getpid()


@pytest.fixture(scope="module")
def cluster():
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    backend = RayBackend(None, init_options=dict(num_cpus=2, _node_ip_address="127.0.0.1", include_dashboard=False))
    backend.warm()  # a local instance on the loopback address, with the sae package shipped to its workers
    try:
        assert len(ray.nodes()) == 1  # this machine only
        yield backend
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_a_live_run_on_a_ray_actor(cluster, digits):
    seen = []
    handle = RemoteTrainer(cluster, digits.X, ModelConfig(64, 25), TrainConfig(epochs=100_000, seed=1),
                           observers=[seen.append])
    try:
        handle.start()
        assert wait_for(lambda: handle.status == RunStatus.RUNNING and handle.latest().step > 0, timeout=120)
        handle.set_hyperparameters(beta=7.0)
        assert wait_for(lambda: handle.latest().hyper["beta"] == 7.0)
        handle.pause()
        assert wait_for(lambda: handle.status == RunStatus.PAUSED)
        at = handle.latest().step
        handle.step(3)
        assert wait_for(lambda: handle.latest().step == at + 3)
        handle.resume()
        assert wait_for(lambda: handle.latest().step > at + 3 and handle.status == RunStatus.RUNNING)
        assert len(handle.history()["step"]) > 0 and handle.latest().weights["encoder.weight"].shape == (25, 64)
        handle.stop("done here")
        assert handle.status == RunStatus.STOPPED and handle.latest().reason == "done here"
        versions = [s.version for s in seen]
        assert len(versions) > 5 and versions == sorted(set(versions))  # snapshots streamed back, in order
    finally:
        handle.close()


def test_a_killed_actor_is_replaced_from_the_last_snapshot(cluster, digits):
    handle = RemoteTrainer(cluster, digits.X, ModelConfig(64, 25), TrainConfig(epochs=100_000, seed=1))
    try:
        handle.start()
        assert wait_for(lambda: handle.latest().step > 10, timeout=120)
        ray.kill(handle._channel.actor, no_restart=True)
        assert wait_for(lambda: handle.restarts == 1)
        at = min(handle._restarted_at)
        assert "Ray actor died" in handle.latest().reason
        assert wait_for(lambda: handle.latest().step > at + 20 and handle.status == RunStatus.RUNNING, timeout=120)
    finally:
        handle.close()


def test_an_experiment_call_runs_on_an_actor(cluster):
    import sys
    from functools import partial

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # this test module is not on the workers' path
    progress = Progress()

    label, pid = call_in_worker(partial(where_am_i, "x"), progress, cluster)
    assert label == "x" and pid != os.getpid() and progress.state() == (1.0, "done")


def test_a_sweep_s_cells_are_actors(cluster, digits, tmp_path):
    spec = SweepSpec(rhos=(0.01, 0.1), betas=(3.0,), model_config=ModelConfig(64, 16),
                     train_config=TrainConfig(epochs=2.0, batch_size=128, seed=0), dataset="digits")
    previous = workers.use_backend(cluster)
    try:
        sweep = Sweep(spec, RunStore(tmp_path / "lab"), digits, parallel=2, probe=False).start()
        assert sweep.wait(180)
    finally:
        workers.use_backend(previous)
    cells = sweep.progress().cells
    assert [c.status for c in cells] == [RunStatus.FINISHED] * 2 and all(c.run_id for c in cells)
    assert all(RunStore(tmp_path / "lab").get(c.run_id).status == RunStatus.FINISHED for c in cells)
