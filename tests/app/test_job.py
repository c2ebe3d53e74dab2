"""sae.ui: the per-session job, its cleanup (disconnect, heartbeat, garbage collection) and the URL round trip."""

import gc
import time

import numpy as np

from sae.data import load_dataset
from sae.training.status import RunStatus, ACTIVE_STATUSES
from sae.app import job as job_module
from sae.app import reaper as reaper_module
from sae.ui.url import DEFAULTS, parse_url, url_params
from sae.app.job import Job, subset_indices
from sae.app.settings import Settings
from conftest import wait_for


def test_settings_changes_split_live_and_structural():
    a = Settings()
    live, structural = a.changes(Settings(beta=5.0, lr=0.1, n_hidden=49, dataset="mnist"))
    assert live == {"beta": 5.0, "lr": 0.1}
    assert structural == {"n_hidden": 49, "dataset": "mnist"}
    assert a.changes(Settings(topk=7)) == ({}, {})  # k only matters under TopK
    assert a.changes(Settings(max_iter=10)) == ({}, {})  # iterations only matter for L-BFGS
    assert a.changes(Settings(epochs=5.0)) == ({"epochs": 5.0}, {})  # the budget is live
    assert a.changes(Settings(optimizer="lbfgs", max_iter=10))[0] == {"max_iter": 10}


def test_url_round_trip_and_defaults_stay_out():
    assert url_params(DEFAULTS) == {}
    s = Settings(dataset="mnist", n_hidden=196, rho=0.1, beta=3.0, weight_decay=3e-3, penalty="l1", seed=4)
    params = url_params(s)  # MNIST's own defaults (196 units, rho 0.1, lambda 3e-3) stay out too
    assert params == {"data": "mnist", "penalty": "L1", "seed": "4", "epochs": "20000"}
    assert parse_url(params) == s
    bad = parse_url({"rho": "nonsense", "hidden": "-3", "data": "nope", "lr": "0.02"})
    assert bad.rho == DEFAULTS.rho and bad.n_hidden == DEFAULTS.n_hidden and bad.dataset == DEFAULTS.dataset
    assert bad.lr == 0.03  # snapped to the nearest slider option (log scale)


def test_job_controls(job):
    assert job.status == RunStatus.IDLE and not job.started
    job.step(3)
    assert wait_for(lambda: job.latest().step == 3 and job.status == RunStatus.PAUSED)
    job.start()
    assert job.status in ACTIVE_STATUSES
    job.apply_live(beta=7.0)
    assert wait_for(lambda: job.latest().hyper["beta"] == 7.0) and job.settings.beta == 7.0
    job.pause()
    assert job.status == RunStatus.PAUSED
    job.stop()
    assert job.status == RunStatus.STOPPED and job.final and not job.trainer.is_alive


def test_a_finished_job_goes_on_when_its_budget_is_raised(store):
    data = load_dataset("toy")
    j = Job(Settings(dataset="toy", n_hidden=2, epochs=20.0, batch_size=8), data, subset_indices(data.n_samples),
            store=store)
    try:
        j.start()
        assert wait_for(lambda: j.status == RunStatus.FINISHED and j.recorder.finished)
        first = j.run_id
        j.apply_live(epochs=60.0)
        assert j.status == RunStatus.PAUSED and not j.final and j.settings.epochs == 60.0
        j.resume()
        assert wait_for(lambda: j.status == RunStatus.FINISHED and j.latest().step == 60)
        assert j.run_id != first and store.get(j.run_id).parent_id == first  # a new record continues the first
        j.apply_live(epochs=10.0)  # lowering a finished run's budget changes nothing
        assert j.status == RunStatus.FINISHED and j.final
    finally:
        j.stop("test over")


def test_stop_an_idle_job():
    data = load_dataset("toy")
    j = Job(Settings(dataset="toy", n_hidden=2), data, subset_indices(data.n_samples))
    j.stop()
    assert j.status == RunStatus.STOPPED


def test_disconnect_pauses_and_reconnect_resumes(job):
    job.start()
    job.disconnected()
    assert wait_for(lambda: job.status == RunStatus.PAUSED) and "disconnected" in job.note
    job.reconnected()
    assert job.status in ACTIVE_STATUSES


def test_reaper_pauses_a_job_nobody_watches_and_stops_one_whose_session_ended(job):
    job.start()
    assert reaper_module.reap() == []
    job.last_beat -= reaper_module.HEARTBEAT_PAUSE + 1
    assert (job.id, "pause") in reaper_module.reap()
    assert job.status == RunStatus.PAUSED and "no page polled" in job.note
    job.beat()
    job.session_alive = lambda: False
    now = time.monotonic()
    assert reaper_module.reap(now) == []  # the session just went away: grace period
    assert (job.id, "stop") in reaper_module.reap(now + reaper_module.SESSION_GONE_STOP + 1)
    assert job.status == RunStatus.STOPPED and not job.trainer.is_alive


def test_a_dropped_job_stops_its_thread():
    data = load_dataset("digits")
    j = Job(Settings(dataset="digits", n_hidden=9, epochs=1000), data, subset_indices(data.n_samples))
    j.start()
    trainer = j.trainer
    assert trainer.is_alive
    del j
    gc.collect()
    assert wait_for(lambda: not trainer.is_alive)
    assert trainer.latest().status == RunStatus.STOPPED
    assert "session ended" in trainer.latest().reason


def test_distribution_trace_records_and_stays_bounded(job):
    job.trace.rows = 8
    job.start()
    assert wait_for(lambda: len(job.trace.arrays()["step"]) >= 4)
    arrays = job.trace.arrays()
    assert arrays["rho"].shape[1] == len(arrays["rho_edges"]) - 1
    assert np.allclose(arrays["rho"].sum(1), 1.0) and np.allclose(arrays["act"].sum(1), 1.0)
    assert wait_for(lambda: job.trace._stride > 1, timeout=10)
    assert len(job.trace.arrays()["step"]) <= 8 + 1


def test_derived_views_are_cached_per_snapshot(job):
    d = job.derived()
    assert job.derived() is d
    assert d.A.shape == (len(job.subset), 9) and d.errors.shape == (len(job.subset),)
    assert d.headline()["dead"] >= 0
    job.step(1)
    assert wait_for(lambda: job.latest().version != d.snapshot.version)
    assert job.derived() is not d


def test_each_job_has_its_own_view_cache_keyed_by_snapshot_version(job):
    data = load_dataset("toy")
    other = Job(Settings(dataset="toy", n_hidden=2), data, subset_indices(data.n_samples))
    try:
        calls = []

        def probe():
            calls.append(job.latest().step)
            return ("accuracy", job.latest().step)

        v0 = job.latest().version
        assert job.cache.memo("probe", v0, probe) == ("accuracy", 0)
        assert job.cache.memo("probe", v0, probe) == ("accuracy", 0) and calls == [0]  # same snapshot: cached
        assert "probe" in job.cache and "probe" not in other.cache  # per job: a new run starts empty
        job.step(1)
        assert wait_for(lambda: job.latest().version != v0)
        assert job.cache.memo("probe", job.latest().version, probe) == ("accuracy", 1) and calls == [0, 1]
        log = job.cache.setdefault("log", list)
        log.append(1)
        assert job.cache.setdefault("log", list) == [1] and job.cache.last("log") is log
        assert not hasattr(job, "_probe") and "probe" not in vars(job)  # nothing in the job's own attributes
    finally:
        other.stop()


def test_jobs_train_in_worker_processes_and_all_start_at_once():
    """No whole-run queue: three jobs started together all run, each in a worker process of its own."""
    import os

    data = load_dataset("digits")
    jobs = [Job(Settings(dataset="digits", n_hidden=10 + k, epochs=10_000.0), data, subset_indices(data.n_samples))
            for k in range(3)]
    try:
        for j in jobs:
            j.start()
        assert wait_for(lambda: all(j.status == RunStatus.RUNNING and j.latest().step > 0 for j in jobs))
        pids = {j.trainer.worker_pid for j in jobs}
        assert len(pids) == 3 and os.getpid() not in pids and None not in pids
        steps = [j.latest().step for j in jobs]
        assert wait_for(lambda: all(j.latest().step > s for j, s in zip(jobs, steps)))  # all advance together
    finally:
        for j in jobs:
            j.release()
    assert wait_for(lambda: not any(_alive(pid) for pid in pids))  # released: the workers end


def test_a_killed_worker_costs_its_session_nothing_but_a_message(store):
    """SIGKILL to a job's worker: the status line says what happened, the run goes on from its last snapshot on a
    fresh worker, and the run store keeps recording the same run past the step where it happened."""
    import os
    import signal

    from sae.ui.controls import status_text

    data = load_dataset("digits")
    j = Job(Settings(dataset="digits", n_hidden=12, epochs=100_000.0), data, subset_indices(data.n_samples),
            store=store)
    try:
        j.start()
        assert wait_for(lambda: j.latest().step > 50 and j.recorder.checkpoints > 0)
        killed = j.trainer.worker_pid
        os.kill(killed, signal.SIGKILL)
        assert wait_for(lambda: j.trainer.restarts == 1)
        at = min(j.trainer._restarted_at)
        assert "worker process of this run ended (killed by SIGKILL" in status_text(j)
        assert wait_for(lambda: j.status == RunStatus.RUNNING and j.latest().step > at + 100)
        assert j.trainer.worker_pid != killed and j.run_id is not None
        assert wait_for(lambda: store.get(j.run_id).step > at, timeout=30)  # one record, still growing
    finally:
        j.release()


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(") ")[1][0] != "Z"  # a zombie waiting to be reaped is gone


def test_warm_up_imports_what_later_pages_need_first(monkeypatch):
    import importlib
    import sys

    page_module = importlib.import_module("sae.ui.page")
    monkeypatch.setattr(page_module, "WARM_UP_DELAY", 0.0)
    try:
        page_module._warm_up()  # runs in a background thread in the server; any error there would go unseen
    finally:
        gc.unfreeze()  # it freezes the heap, as the server wants; this test process does not
    assert "sklearn.decomposition" in sys.modules and "sklearn.linear_model" in sys.modules
