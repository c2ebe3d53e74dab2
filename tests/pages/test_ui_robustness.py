"""The dashboard under bad links, diverging training and many sessions (AppTest and the Job layer).

- Links: every query parameter the widgets cannot show falls back to its default with a warning that
  names it, never a traceback; the widgets themselves are bounded.
- Divergence: the only way to make a run diverge from the UI is data outside [0, 1] (a linear
  decoder) with a high rate: the learning-rate slider stops at 3 and the library refuses lr > 10
  (lr = 1e3 is a bad input, see test_bad_input.py), and on the built-in sets (all in [0, 1]) the
  sigmoid decoder keeps every loss finite even at lr 3 (measured: adam and sgd, sigmoid/tanh/ReLU).
  So the test uploads unscaled data, trains with SGD at lr 3, and checks the explanation, the kept
  weights on the pages, and that lowering the rate and Resume carries on.
- Many users: sessions see only their own job; a server-wide cap queues runs visibly; torch runs one
  thread; 50 open-and-close cycles leave no trainer thread behind; a long run stays bounded in memory.
"""

from __future__ import annotations

import gc
import io
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("streamlit")
import torch  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

from sae.data import load_dataset  # noqa: E402
from sae.training.status import RunStatus
from sae.training.slots import TrainingSlots  # noqa: E402
from sae.app import job as job_module  # noqa: E402
from sae.app import reaper as reaper_module  # noqa: E402
from sae.app import trace as trace_module  # noqa: E402
from sae.ui.controls import status_text  # noqa: E402
from sae.ui.url import DEFAULTS  # noqa: E402
from sae.app.job import Job, subset_indices  # noqa: E402
from sae.app.settings import Settings, defaults_for  # noqa: E402
from conftest import chart_payloads, wait_for

ROOT = Path(__file__).resolve().parents[2]
HOME = str(ROOT / "dashboard.py")
SMALL = {"data": "digits", "hidden": "16", "epochs": "1000"}


pytestmark = pytest.mark.usefixtures("restore_process_state", "stop_live_jobs")  # tests/conftest.py


def app(params=None) -> AppTest:
    at = AppTest.from_file(HOME, default_timeout=60)
    for k, v in (SMALL if params is None else params).items():
        at.query_params[k] = v
    return at.run()


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def job_of(at: AppTest) -> Job:
    return at.session_state["sae_job"]


def trainer_threads() -> int:
    return sum(t.name == "sae-trainer" and t.is_alive() for t in threading.enumerate())


# ----------------------------------------------------------------------------------- links with bad values

DIGITS = defaults_for("digits")  # the links below name the digits, whose own defaults apply
BAD_LINKS = [
    # (query parameter, value, widget key's default)
    ("rho", "0", DIGITS.rho), ("rho", "1", DIGITS.rho), ("rho", "-0.5", DIGITS.rho),
    ("beta", "-1", DIGITS.beta), ("beta", "1e9", DIGITS.beta),
    ("hidden", "0", DIGITS.n_hidden), ("hidden", str(10**9), DIGITS.n_hidden), ("hidden", "2.5", DIGITS.n_hidden),
    ("lr", "0", DIGITS.lr), ("lr", "1e3", DIGITS.lr), ("lr", "nan", DIGITS.lr),
    ("batch", str(10**9), DIGITS.batch_size), ("batch", "0", DIGITS.batch_size),
    ("lambda", "-1e-4", DIGITS.weight_decay), ("epochs", "1e309", int(DIGITS.epochs)),
    ("seed", "-1", DIGITS.seed), ("hidden", "abc", DIGITS.n_hidden), ("rho", "0x1p-3; DROP TABLE", DIGITS.rho),
    ("data", "../../etc/passwd", "patches"),
    ("data", "upload", "patches"), ("act", "<script>", DIGITS.activation), ("opt", "", DIGITS.optimizer),
    ("penalty", "L2", DIGITS.penalty), ("k", "999999", DIGITS.topk),
]


@pytest.mark.parametrize("key, value, default", BAD_LINKS, ids=[f"{k}={v[:12]}" for k, v, _ in BAD_LINKS])
def test_bad_link_value_warns_and_falls_back_to_the_default(key, value, default):
    params = {"data": "digits", key: value} if key != "data" else {key: value}
    if key == "k":
        params["penalty"] = "TopK"
        params["act"] = "relu"
    at = app(params)
    no_exception(at)
    warnings = [w.value for w in at.sidebar.warning]
    assert any(w.startswith(f"`{key}=") and "using the default" in w for w in warnings), warnings
    assert at.session_state[key] == default
    assert key not in at.query_params  # the URL now says what the panel uses (the default is left out)
    job = job_of(at)
    base = DIGITS if key != "data" else DEFAULTS
    assert job.settings == Settings(**{**base.as_dict(),
                                       **({"penalty": "topk", "activation": "relu"} if key == "k" else {})})
    at.button(key="btn_step").click().run()  # and the session works
    no_exception(at)
    assert wait_for(lambda: job_of(at).latest().step == 1)


def test_several_bad_values_get_one_warning_each_and_good_ones_are_kept():
    at = app({"data": "digits", "hidden": "0", "rho": "1", "beta": "5", "lr": "1e3", "batch": "1000000000"})
    no_exception(at)
    warnings = [w.value for w in at.sidebar.warning]
    assert len(warnings) == 4, warnings
    assert job_of(at).settings.beta == 5.0 and job_of(at).data.name == "digits"
    at.select_slider(key="beta").set_value(10.0).run()  # the user moves on: the warnings go
    assert not at.sidebar.warning


def test_values_between_slider_notches_snap_without_a_warning():
    at = app({"data": "digits", "lr": "0.02", "rho": "0.011", "batch": "100"})
    no_exception(at)
    assert not at.sidebar.warning
    assert (at.session_state["lr"], at.session_state["rho"], at.session_state["batch"]) == (0.03, 0.01, 128)


def test_widgets_are_bounded_to_valid_values():
    from sae.core.config import TrainConfig
    from sae.ui.url import BATCH_OPTIONS, BETA_OPTIONS, LAMBDA_OPTIONS, LR_OPTIONS, RHO_OPTIONS

    at = app()
    hidden = at.number_input(key="hidden")
    assert (hidden.min, hidden.max) == (1, 1024)
    assert (at.number_input(key="epochs").min, at.number_input(key="seed").min) == (1, 0)
    assert 0 < min(RHO_OPTIONS) and max(RHO_OPTIONS) < 1 and min(BETA_OPTIONS) >= 0 and min(LAMBDA_OPTIONS) >= 0
    assert 0 < min(LR_OPTIONS) and max(LR_OPTIONS) <= 10 and min(BATCH_OPTIONS) >= 1
    for rho in RHO_OPTIONS:  # every combination the sliders offer is one the library accepts
        for lr in LR_OPTIONS:
            TrainConfig(rho=rho, lr=lr, beta=max(BETA_OPTIONS), weight_decay=max(LAMBDA_OPTIONS))
    assert len(at.select_slider(key="rho").options) == len(RHO_OPTIONS)  # the slider offers exactly these


def test_batch_larger_than_the_data_is_capped_with_a_note():
    at = app({"data": "toy", "hidden": "2", "batch": "128"})
    no_exception(at)
    assert any("only 4 samples" in c.value and "batch 4" in c.value for c in at.sidebar.caption)
    at.button(key="btn_step").click().run()
    job = job_of(at)
    assert wait_for(lambda: job.latest().step == 1)
    assert job.trainer.batch_size == 4


def test_an_enormous_model_is_refused_with_a_reason():
    from sae.ui import state

    at = app()
    wide = np.random.default_rng(0).random((3, 6000)).astype(np.float32)
    buf = io.BytesIO()
    np.save(buf, wide)
    at.get("file_uploader")[0].set_value(("wide.npy", buf.getvalue(), "application/octet-stream"))
    at.button(key="btn_upload").click().run()
    at.number_input(key="hidden").set_value(1024).run()
    no_exception(at)
    assert any("weights per layer" in e.value for e in at.sidebar.error)
    assert at.button(key="btn_train").disabled
    assert job_of(at).model_config.n_hidden * job_of(at).data.n_features <= state.MAX_WEIGHTS


# ----------------------------------------------------------------------------------- divergence

def _raw_csv() -> bytes:
    X = np.random.default_rng(0).normal(size=(300, 20)) * 20  # far outside [0, 1]: a linear decoder
    return "\n".join(",".join(f"{v:.4f}" for v in row) for row in X).encode()


def test_diverging_run_explains_keeps_its_weights_and_resumes_at_a_lower_rate():
    at = app({"opt": "sgd", "lr": "3", "hidden": "8", "epochs": "2000"})  # 3 is the slider's largest rate
    at.get("file_uploader")[0].set_value(("raw.csv", _raw_csv(), "text/csv"))
    at.checkbox(key="up_scale").set_value(False)
    at.button(key="btn_upload").click().run()
    no_exception(at)
    job = job_of(at)
    assert job.data.name == "raw" and job.model_config.decoder_activation == "linear"

    at.button(key="btn_train").click().run()
    assert wait_for(lambda: job.status == RunStatus.DIVERGED, timeout=30)
    at.run()
    no_exception(at)
    snap = job.latest()
    status = [c.value for c in at.sidebar.caption if "step" in c.value][0]
    assert "diverged" in status and "learning rate 3 is probably too high" in status
    assert "Kept the weights of step" in status
    assert any("Training diverged" in e.value and "Resume" in e.value for e in at.sidebar.error)
    assert at.button(key="btn_pause").label == "Resume" and not at.button(key="btn_pause").disabled
    for name, w in snap.weights.items():  # the kept weights are finite, and they are the model's
        assert np.isfinite(w).all(), name
        np.testing.assert_array_equal(w, dict(job.trainer.model.state_dict())[name].numpy())

    for page in ["pages/2_filters.py", "pages/5_reconstructions.py", "dashboard.py"]:  # the views show them
        at.switch_page(page).run()
        no_exception(at)
        assert job_of(at) is job and job.latest().version == snap.version
        for _, payload in chart_payloads(at):
            assert "NaN" not in payload and "Infinity" not in payload

    diverged_at = job.latest().step
    at.select_slider(key="lr").set_value(1e-3).run()  # lower the rate: applies to the waiting run
    no_exception(at)
    assert job_of(at) is job and job.status == RunStatus.DIVERGED
    at.button(key="btn_pause").click().run()  # Resume
    no_exception(at)
    assert wait_for(lambda: job.latest().step > diverged_at + 50, timeout=30)
    snap = job.latest()
    assert snap.status in (RunStatus.RUNNING, RunStatus.FINISHED) and np.isfinite(snap.losses["total"])
    assert snap.hyper["lr"] == 1e-3
    history = job.history()
    assert history["step"][-1] > diverged_at and np.isfinite(history["total"]).all()


# ----------------------------------------------------------------------------------- many users

def test_each_session_sees_only_its_own_model():
    a, b = app({"data": "digits", "hidden": "9"}), app({"data": "digits", "hidden": "16"})
    a.button(key="btn_step").click().run()
    b.button(key="btn_step").click().run()
    ja, jb = job_of(a), job_of(b)
    assert ja is not jb and ja.model_config.n_hidden == 9 and jb.model_config.n_hidden == 16
    assert wait_for(lambda: ja.latest().step == 1 and jb.latest().step == 1)
    a.select_slider(key="beta").set_value(10.0).run()
    b.run()
    assert ja.settings.beta == 10.0 and jb.settings.beta == DEFAULTS.beta
    assert a.number_input(key="hidden").value == 9 and b.number_input(key="hidden").value == 16


def test_a_second_session_trains_at_once_beside_the_first():
    """No whole-run queue: each session's run trains from its click, in a worker process of its own."""
    first, second = app(), app()
    first.button(key="btn_train").click().run()
    second.button(key="btn_train").click().run()
    j1, j2 = job_of(first), job_of(second)
    assert wait_for(lambda: j1.status == j2.status == RunStatus.RUNNING and j1.latest().step > 0
                    and j2.latest().step > 0)
    assert j1.trainer.worker_pid != j2.trainer.worker_pid
    second.run()
    no_exception(second)
    status = [c.value for c in second.sidebar.caption if "step" in c.value][0]
    assert "running" in status and "queued" not in status
    j1.stop()
    j2.stop()


def test_queued_status_line_text(in_threads):
    """In thread mode (SAE_LAB_WORKERS=threads) a Trainer may hold training slots: the queue's line."""
    data = load_dataset("toy")
    slots = TrainingSlots(1)
    jobs = []
    try:
        for _ in range(3):
            job = Job(Settings(dataset="toy", n_hidden=2, epochs=1e6), data, subset_indices(data.n_samples))
            job.trainer.slots = slots
            jobs.append(job)
            job.start()
        assert wait_for(lambda: [j.status for j in jobs] == ["running", "queued", "queued"])
        assert wait_for(lambda: "1 run ahead" in status_text(jobs[2]))
        assert "queued" in status_text(jobs[1]) and "0 runs ahead" in status_text(jobs[1])
    finally:
        for job in jobs:
            job.stop()


def test_the_dashboard_runs_torch_on_one_thread(monkeypatch):
    import sys

    page = sys.modules["sae.ui.page"]  # (sae.ui.page the attribute is the function)
    monkeypatch.setattr(page, "_configured", False)
    torch.set_num_threads(2)
    app()
    # set from the script's thread; OpenMP keeps a count per thread, and threads started afterwards
    # (the trainers, the next script runs) take the new one
    seen = []
    t = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    t.start(), t.join()
    assert page.TORCH_THREADS == 1 and seen == [1]


@pytest.mark.parametrize("how", ["session gone (reaper)", "session state dropped (GC)"])
def test_fifty_open_and_close_cycles_leave_no_trainer_thread(how):
    data = load_dataset("toy")
    assert wait_for(lambda: trainer_threads() == 0, timeout=10), "a trainer thread from an earlier test"
    baseline = threading.active_count()
    for i in range(50):
        job = Job(Settings(dataset="toy", n_hidden=2, epochs=1e6, seed=i), data, subset_indices(data.n_samples))
        job.start()  # the session trains ...
        assert wait_for(lambda: job.latest().step > 0)
        job.disconnected()  # ... its browser tab closes: the run pauses, the thread waits for a reconnect
        assert wait_for(lambda: job.status == RunStatus.PAUSED)
        trainer = job.trainer
        if how.startswith("session gone"):
            job.session_alive = lambda: False  # what Runtime.is_active_session says after the disconnect
            now = time.monotonic()
            reaper_module.reap(now)
            assert (job.id, "stop") in reaper_module.reap(now + reaper_module.SESSION_GONE_STOP + 1)
        else:  # Streamlit dropped the session's state after server.disconnectedSessionTTL
            del job
            gc.collect()
        assert wait_for(lambda: not trainer.is_alive, timeout=10), f"cycle {i}: the trainer thread is still alive"
        del trainer
    assert wait_for(lambda: trainer_threads() == 0, timeout=10)
    assert wait_for(lambda: threading.active_count() <= baseline, timeout=10), \
        [t.name for t in threading.enumerate()]


def test_a_long_run_stays_bounded_in_memory():
    data = load_dataset("toy")
    job = Job(Settings(dataset="toy", n_hidden=2, epochs=1e6), data, subset_indices(data.n_samples))
    job.start()
    try:
        assert wait_for(lambda: job.latest().step > 20_000, timeout=60)
        sizes = []
        for _ in range(3):
            steps = job.latest().step
            assert wait_for(lambda: job.latest().step > steps + 5_000, timeout=60)
            history = job.history()
            trace = job.trace.arrays()
            sizes.append((len(history["step"]), len(trace["step"])))
            job.derived()
        for rows, trace_rows in sizes:
            assert rows <= 2_000 + 1 and trace_rows <= trace_module.TRACE_ROWS + 1
        assert job.history()["step"][0] == 0  # thinned, not truncated: it still spans the whole run
        assert len(json.dumps(job.history()["total"].tolist())) < 100_000
    finally:
        job.stop()


def test_the_reaper_stops_a_gone_sessions_thread_once_streamlit_has_dropped_the_session():
    at = app()
    job = job_of(at)
    assert job.gone_stop == 120 + 30  # server.disconnectedSessionTTL (Streamlit's default) + 30 s
    job.start()
    job.disconnected()
    assert wait_for(lambda: job.status == RunStatus.PAUSED)
    job.session_alive = lambda: False
    now = time.monotonic()
    assert reaper_module.reap(now) == []
    assert reaper_module.reap(now + job.gone_stop - 1) == []  # within the TTL the tab may come back
    assert (job.id, "stop") in reaper_module.reap(now + job.gone_stop + 1)
    assert wait_for(lambda: not job.trainer.is_alive)
