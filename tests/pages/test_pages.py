"""The dashboard's pages under Streamlit's AppTest: every page renders, training is live and controllable.

AppTest runs fragments inline (``run_every`` never fires), so "live" is checked by running the app
again after the background trainer has moved.
"""

import base64
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from sae.training.status import RunStatus, ACTIVE_STATUSES
from conftest import figure_specs, wait_for

ROOT = Path(__file__).resolve().parents[2]
HOME = str(ROOT / "dashboard.py")
PAGES = ["pages/1_kl_penalty.py", "pages/2_filters.py", "pages/3_activations.py", "pages/4_codes.py",
         "pages/5_reconstructions.py"]
SMALL = {"data": "digits", "hidden": "16", "epochs": "1000"}  # quick to load, long enough to watch


pytestmark = pytest.mark.usefixtures("restore_process_state", "stop_live_jobs")  # tests/conftest.py


def app(params=None) -> AppTest:
    at = AppTest.from_file(HOME, default_timeout=60)
    for k, v in (params or SMALL).items():
        at.query_params[k] = v
    return at.run()


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def job_of(at: AppTest):
    return at.session_state["sae_job"]


def charts(at: AppTest) -> list[dict]:
    return figure_specs(at)


def test_home_renders_the_panel_and_the_train_view():
    at = app()
    no_exception(at)
    assert at.title[0].value.endswith("Train")
    labels = [b.label for b in at.sidebar.button]
    for name in ("Train", "Step", "Stop", "Reset"):
        assert name in labels
    assert "Resume" in labels or "Pause" in labels
    for key in ("data", "hidden", "act", "penalty", "rho", "beta", "lambda", "opt", "lr", "batch", "epochs", "seed"):
        assert key in at.session_state, key
    assert len(charts(at)) == 2
    assert any("idle" in c.value for c in at.sidebar.caption)
    assert len(at.metric) == 4
    assert at.latex, "the objective is shown in LaTeX"


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_without_exception(page):
    at = app()
    at.switch_page(page).run()
    no_exception(at)
    assert charts(at), f"{page} draws no chart"
    assert at.title[0].value


def test_settings_from_the_url_build_the_job():
    at = app({"data": "digits", "hidden": "25", "rho": "0.1", "beta": "5", "penalty": "L1"})
    no_exception(at)
    job = job_of(at)
    assert job.data.name == "digits" and job.model_config.n_hidden == 25
    assert job.settings.rho == 0.1 and job.settings.beta == 5.0 and job.settings.penalty == "l1"
    assert at.query_params["hidden"] in ("25", ["25"]) and at.query_params["penalty"] in ("L1", ["L1"])


def test_train_produces_snapshots_and_charts():
    at = app()
    at.button(key="btn_train").click().run()
    no_exception(at)
    job = job_of(at)
    assert job.status in ACTIVE_STATUSES
    assert wait_for(lambda: job.latest().step > 50)
    at.run()
    loss = charts(at)[0]
    steps = loss["data"][0]["x"]
    assert loss["data"], "loss chart has curves"
    assert any("running" in c.value or "finished" in c.value for c in at.sidebar.caption)
    first = job.latest().version
    assert wait_for(lambda: job.latest().version > first)  # snapshots keep coming
    assert steps  # non-empty curve


def test_pause_stops_the_steps_and_resume_continues():
    at = app()
    at.button(key="btn_train").click().run()
    job = job_of(at)
    assert wait_for(lambda: job.latest().step > 20)
    at.button(key="btn_pause").click().run()
    assert job.status == RunStatus.PAUSED
    step = job.latest().step
    time.sleep(0.4)
    assert job.latest().step == step
    assert at.button(key="btn_pause").label == "Resume"
    at.button(key="btn_pause").click().run()
    assert wait_for(lambda: job.latest().step > step)


def test_step_takes_one_step_then_pauses():
    at = app()
    at.button(key="btn_step").click().run()
    job = job_of(at)
    assert wait_for(lambda: job.latest().step == 1 and job.status == RunStatus.PAUSED)
    at.button(key="btn_step").click().run()
    assert wait_for(lambda: job.latest().step == 2)


def test_live_beta_change_reaches_the_trainer():
    at = app()
    at.button(key="btn_train").click().run()
    job = job_of(at)
    assert wait_for(lambda: job.latest().step > 10)
    at.select_slider(key="beta").set_value(10.0).run()
    no_exception(at)
    assert job_of(at) is job, "a live change keeps the run"
    assert wait_for(lambda: job.latest().hyper["beta"] == 10.0)
    assert job.trainer.config.beta == 10.0
    at.select_slider(key="rho").set_value(0.1).run()
    assert wait_for(lambda: job.latest().hyper["rho"] == 0.1)
    assert wait_for(lambda: job.history()["beta"][-1] == 10.0)


def test_structural_change_asks_before_restarting():
    at = app()
    at.button(key="btn_train").click().run()
    job = job_of(at)
    assert wait_for(lambda: job.latest().step > 10)
    at.number_input(key="hidden").set_value(9).run()
    no_exception(at)
    assert job_of(at) is job and job.status in ACTIVE_STATUSES
    assert any("hidden size" in w.value for w in at.warning)
    at.button(key="btn_restart").click().run()
    new = job_of(at)
    assert new is not job and new.model_config.n_hidden == 9
    assert job.status == RunStatus.STOPPED
    assert wait_for(lambda: new.latest().step > 0)


def test_switching_pages_keeps_the_running_job():
    at = app()
    at.button(key="btn_train").click().run()
    job = job_of(at)
    for page in PAGES + ["dashboard.py"]:
        before = job.latest().step
        at.switch_page(page).run()
        no_exception(at)
        assert job_of(at) is job
        assert job.status in ACTIVE_STATUSES or job.status == RunStatus.FINISHED
        assert wait_for(lambda: job.latest().step > before)
    assert at.number_input(key="hidden").value == 16  # the settings survive the page switches too


def test_stop_and_reset():
    at = app()
    at.button(key="btn_train").click().run()
    job = job_of(at)
    at.button(key="btn_stop").click().run()
    assert job.status == RunStatus.STOPPED
    assert any("stopped by the user" in c.value for c in at.sidebar.caption)
    at.button(key="btn_reset").click().run()
    fresh = job_of(at)
    assert fresh is not job and fresh.status == RunStatus.IDLE and fresh.latest().step == 0


def test_invalid_combination_is_explained_and_train_disabled():
    at = app({"data": "digits", "hidden": "16", "act": "relu"})  # relu with the KL penalty
    no_exception(at)
    assert any("KL" in e.value for e in at.sidebar.error)
    assert at.button(key="btn_train").disabled


@pytest.mark.parametrize("params", [
    {"data": "toy", "hidden": "2"},  # no image shape: heatmaps instead of pictures, four samples
    {"data": "mnist", "hidden": "49"},  # 28x28 images
    {"data": "digits", "hidden": "16", "act": "tanh"},
    {"data": "digits", "hidden": "16", "act": "relu", "penalty": "L1"},
    {"data": "digits", "hidden": "16", "act": "relu", "penalty": "TopK", "k": "3"},
    {"data": "digits", "hidden": "16", "opt": "lbfgs", "iters": "20"},
], ids=["toy", "mnist", "tanh", "relu-l1", "topk", "lbfgs"])
def test_every_page_under_other_settings(params):
    at = app(params)
    no_exception(at)
    job = job_of(at)
    at.button(key="btn_step").click().run()
    assert wait_for(lambda: job.latest().step >= 1)
    for page in PAGES:
        at.switch_page(page).run()
        no_exception(at)
        assert charts(at), page


def plotted_labels(chart: dict) -> dict[str, int]:
    """Points per trace of a scatter coloured by label: {label: count}."""
    counts = {}
    for trace in chart["data"]:
        x = trace["x"]
        n = len(base64.b64decode(x["bdata"])) // np.dtype(x["dtype"]).itemsize if isinstance(x, dict) else len(x)
        counts[trace["name"]] = counts.get(trace["name"], 0) + n
    return counts


def test_codes_on_mnist_shows_all_ten_digits():
    """The stored MNIST sample is sorted by class; the Codes page plotted digits 0-3 only (94/95/89/22 of 300)."""
    at = app({"data": "mnist", "hidden": "16"})
    at.switch_page("pages/4_codes.py").run()
    no_exception(at)
    for chart in charts(at)[:2]:  # raw inputs and hidden codes
        counts = plotted_labels(chart)
        total = sum(counts.values())
        assert sorted(counts) == [str(d) for d in range(10)], counts
        assert all(0.06 <= c / total <= 0.14 for c in counts.values()), counts


def test_a_run_whose_units_all_die_says_so():
    """SGD at lr 3 on patches: every unit dies; the run ended 'finished' with no word. Now the Train page's doctor
    says so, and the status line carries the warning in the finished reason."""
    at = app({"data": "patches", "opt": "sgd", "lr": "3", "epochs": "5"})
    job = job_of(at)
    assert job.settings.optimizer == "sgd" and job.settings.lr == 3.0
    at.button(key="btn_train").click().run()
    assert wait_for(lambda: job.status == RunStatus.FINISHED)
    at.run()
    no_exception(at)
    assert any("all 36 units have been dead" in e.value for e in at.error), [e.value for e in at.error]
    assert any("warning: all 36 units are dead" in c.value for c in at.sidebar.caption)


def test_a_healthy_run_shows_no_warning_and_states_the_unit_thresholds():
    at = app()
    at.button(key="btn_step").click().run()
    job = job_of(at)
    assert wait_for(lambda: job.latest().step == 1 and job.status == RunStatus.PAUSED)
    at.run()
    no_exception(at)
    assert not at.warning
    assert "dead = ρ̂ⱼ <" in at.metric[2].help and "on target" in at.metric[2].help


# ------------------------------------------------------------------ defaults per data set, a live budget

def test_a_link_naming_only_the_data_set_gives_its_defaults():
    at = app({"data": "mnist"})
    no_exception(at)
    job = job_of(at)
    assert job.model_config.n_hidden == 196  # UFLDL's MNIST settings
    assert (job.settings.rho, job.settings.beta, job.settings.weight_decay) == (0.1, 3.0, 3e-3)
    assert at.number_input(key="hidden").value == 196 and at.select_slider(key="rho").value == 0.1
    assert dict(at.query_params) in ({"data": "mnist"}, {"data": ["mnist"]})


def test_choosing_a_data_set_in_the_sidebar_gives_its_defaults():
    at = app({"data": "digits", "rho": "0.3"})
    at.selectbox(key="data").set_value("mnist").run()
    no_exception(at)
    assert at.number_input(key="hidden").value == 196
    assert at.select_slider(key="rho").value == 0.1 and at.select_slider(key="lambda").value == 3e-3
    assert job_of(at).model_config.n_hidden == 196  # an untouched job is rebuilt with them


def test_epochs_change_a_running_job_without_a_restart():
    at = app()
    at.button(key="btn_train").click().run()
    job = job_of(at)
    assert wait_for(lambda: job.latest().step > 20)
    at.number_input(key="epochs").set_value(2000).run()
    no_exception(at)
    assert job_of(at) is job and not any("new run" in w.value for w in at.warning)
    assert wait_for(lambda: job.trainer.total_steps == 2000 * job.trainer.steps_per_epoch)
    at.number_input(key="epochs").set_value(1).run()  # below the current step: the run finishes
    assert wait_for(lambda: job.status == RunStatus.FINISHED)
    at.run()
    at.number_input(key="epochs").set_value(500).run()  # raised after the end: paused, Resume continues
    assert job_of(at) is job and job.status == RunStatus.PAUSED
    assert at.button(key="btn_pause").label == "Resume" and not at.button(key="btn_pause").disabled
    step = job.latest().step
    at.button(key="btn_pause").click().run()
    assert wait_for(lambda: job.latest().step > step)


def test_experiment_pages_mark_the_sidebar_settings_as_not_theirs():
    at = app()
    at.switch_page("pages/6_denoising.py").run()
    no_exception(at)
    assert any("not used here" in c.value for c in at.sidebar.caption)
    at.switch_page("pages/2_filters.py").run()
    assert not any("not used here" in c.value for c in at.sidebar.caption)


def test_the_l1_penalty_has_no_target_rho():
    at = app({"data": "digits", "hidden": "16", "act": "relu", "penalty": "L1"})
    no_exception(at)
    assert at.select_slider(key="rho").disabled
    assert any("have none" in c.value for c in at.sidebar.caption)
    job = job_of(at)
    at.button(key="btn_step").click().run()
    assert wait_for(lambda: job.latest().step >= 1)
    at.run()
    band = next(c for c in charts(at) if any(t.get("name") == "mean ρ̂" for t in c["data"]))
    assert not any(t.get("name") == "target ρ" for t in band["data"])
    assert "target" not in at.metric[1].label
