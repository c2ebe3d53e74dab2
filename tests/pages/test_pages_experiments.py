"""The experiment pages under AppTest: each renders, runs its experiment in the background through its own
widgets (tiny settings), draws the result, keeps it per setting, stops on request and explains failures.

AppTest runs fragments inline (``run_every`` never fires), so a run is followed by waiting for the page's
background task and running the app again, as a poll of the fragment would.
"""

from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from sae.experiments.denoising import rethreshold  # noqa: E402
from sae.training.status import RunStatus
from sae.app import tasks  # noqa: E402
from conftest import figure_specs, wait_for

ROOT = Path(__file__).resolve().parents[2]
HOME = str(ROOT / "dashboard.py")
PAGES = {"denoising": ("pages/6_denoising.py", "Denoising"),
         "anomaly": ("pages/7_anomaly_detection.py", "Anomaly detection"),
         "selftaught": ("pages/8_self_taught.py", "Self-taught features"),
         "mistakes": ("pages/9_common_mistakes.py", "Common mistakes")}
TINY = {"denoising": {"dn_data": "digits", "dn_epochs": 3},
        "anomaly": {"an_data": "digits", "an_iters": 15},
        "selftaught": {"st_data": "digits", "st_iters": 15},
        "mistakes": {"mk_iters": 15}}


pytestmark = pytest.mark.usefixtures("restore_process_state")  # tests/conftest.py


@pytest.fixture(autouse=True)
def stop_everything(stop_live_jobs):
    """Every experiment and training job a test started is stopped (they share the server's training slots):
    the experiments here, then the jobs (``stop_live_jobs``)."""
    yield
    for task in tasks.live_tasks():
        task.stop(wait=5.0)


def open_page(name: str, settings: dict | None = None) -> AppTest:
    """The home page (a small live job), then the page, then ``settings`` set through the page's widgets."""
    at = AppTest.from_file(HOME, default_timeout=60)
    at.query_params["data"], at.query_params["hidden"] = "digits", "16"
    at.run()
    at.switch_page(PAGES[name][0]).run()
    for key, value in (settings or {}).items():
        set_widget(at, key, value)
    return at


def set_widget(at: AppTest, key: str, value) -> None:
    for kind in ("radio", "number_input", "selectbox", "select_slider", "slider", "multiselect", "toggle"):
        widgets = [w for w in at.get(kind) if getattr(w, "key", None) == key]
        if widgets:
            widgets[0].set_value(value).run()
            no_exception(at)
            return
    raise KeyError(f"no widget with key {key!r}")


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def experiments(at: AppTest, name: str):
    return at.session_state[f"exp_{name}"]


def finish(at: AppTest, name: str, timeout: float = 90.0):
    """Wait for the page's background task, then rerun the app (what the polling fragment does)."""
    exps = experiments(at, name)
    assert wait_for(lambda: exps.active() is None, timeout), "the experiment did not finish"
    at.run()
    no_exception(at)
    return exps


def run(at: AppTest, name: str):
    at.button(key=f"{name}_run").click().run()
    no_exception(at)
    return finish(at, name)


def charts(at: AppTest) -> list[dict]:
    return figure_specs(at)


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


@pytest.mark.parametrize("name", PAGES)
def test_page_renders_with_title_formula_and_run_button(name):
    at = open_page(name)
    no_exception(at)
    assert at.title[0].value.endswith(PAGES[name][1])
    assert at.latex, "the page shows its formula"
    assert at.button(key=f"{name}_run").label == "Run"
    assert at.button(key=f"{name}_stop").label == "Stop"
    if name != "mistakes":  # the others wait for Run; the mistakes page starts its cheap run by itself
        assert any("Press **Run**" in i.value for i in at.info)
        assert not charts(at)
        assert experiments(at, name).active() is None


def test_denoising_runs_and_shows_images_and_psnr():
    at = open_page("denoising", TINY["denoising"])
    exps = run(at, "denoising")
    task = next(iter(exps.tasks.values()))
    assert task.status == RunStatus.FINISHED, task.error
    result = task.result
    names = [c.get("layout", {}).get("title", {}).get("text", "") for c in charts(at)]
    assert len(charts(at)) == 2 and any("PSNR" in n for n in names)
    shown = metrics(at)
    assert shown["Denoising SAE"] == f"{result.psnr_denoised[result.level_index(0.4)]:.1f} dB"
    assert result.noisy.shape == result.denoised.shape == (len(result.levels), 8, 64)
    assert any("Finished in" in c.value for c in at.caption)
    # the examples at another noise level: no new run, the same result
    at.select_slider(key="dn_show").set_value(0.8).run()
    no_exception(at)
    assert len(exps.tasks) == 1
    assert any(f"noisy {result.psnr_noisy[-1]:.1f} dB, denoised {result.psnr_denoised[-1]:.1f} dB" in c.value
               for c in at.caption)
    assert any("What to look for" in m.value for m in at.markdown)


def test_denoising_masking_noise_option():
    at = open_page("denoising", TINY["denoising"] | {"dn_noise": "masking", "dn_plain": False})
    exps = run(at, "denoising")
    result = next(iter(exps.tasks.values())).result
    assert result.noise == "masking" and result.psnr_plain is None and result.plain is None
    assert "Plain SAE on x̃" not in metrics(at)
    assert len(charts(at)) == 2


def test_anomaly_runs_and_the_threshold_moves_the_counts():
    at = open_page("anomaly", TINY["anomaly"])
    exps = run(at, "anomaly")
    result = next(iter(exps.tasks.values())).result
    assert len(charts(at)) == 3  # histograms, ROC, per-class shares
    shown = metrics(at)
    assert shown["ROC AUC"] == f"{result.report.auc:.3f}"
    assert shown["Threshold τ"] == f"{result.threshold:.3g}"  # k = 2 is the library's tau
    r = result.report
    counts = str(at.table[0].value)
    assert all(f"{n:,}" in counts for n in (r.tn, r.fp, r.fn, r.tp))
    at.slider(key="an_k").set_value(0.0).run()  # tau = the mean training score: many more flags
    no_exception(at)
    assert len(exps.tasks) == 1, "moving the threshold does not retrain"
    lower = metrics(at)
    def percent(shown, label):
        return float(shown[label].rstrip("%"))

    assert percent(lower, "Anomalies flagged (recall)") >= percent(shown, "Anomalies flagged (recall)")
    alarms = "False alarms (normals flagged)"
    assert percent(lower, alarms) > percent(shown, alarms)
    r0 = rethreshold(result, 0.0)
    assert str(at.table[0].value) != counts and f"{r0.fp:,}" in str(at.table[0].value)
    hist = charts(at)[0]
    assert {t["name"] for t in hist["data"]} == {"normal (held out)", "anomalous"}


def test_anomaly_failure_is_a_message_not_a_traceback():
    at = open_page("anomaly", TINY["anomaly"] | {"an_normal": list(range(10))})
    at.button(key="anomaly_run").click().run()
    finish(at, "anomaly")
    assert any("every class is normal" in e.value for e in at.error)
    assert not charts(at)


def test_self_taught_runs_and_reports_both_accuracies():
    at = open_page("selftaught", TINY["selftaught"])
    exps = run(at, "selftaught")
    result = next(iter(exps.tasks.values())).result
    assert result.feature_classes == (5, 6, 7, 8, 9) and result.task_classes == (0, 1, 2, 3, 4)
    acc = charts(at)[0]
    assert acc["data"][0]["y"] == pytest.approx([result.codes_accuracy, result.raw_accuracy], abs=1e-9)
    assert len(charts(at)) == 2  # accuracies and the learned filters
    table = at.table[0].value
    cells = str(table)
    assert f"{result.codes_accuracy:.1%}" in cells and f"{result.raw_accuracy:.1%}" in cells


def test_mistakes_page_runs_by_itself_and_compares_both_models():
    at = open_page("mistakes", TINY["mistakes"])
    exps = finish(at, "mistakes")
    (task,) = [t for t in exps.tasks.values() if t.status == RunStatus.FINISHED]  # the default setting's run was replaced
    result = task.result
    assert task.status == RunStatus.FINISHED and result.mistake.name == "rho_hat_scalar" and result.wrong is not None
    assert result.correct.history["step"][-1] < 15  # the tiny setting came from the page's widget
    assert len(charts(at)) == 5  # rho_hat, two filter grids, activations, losses
    assert "with the mistake" in str(at.table[0].value)
    for name in ("kl_per_activation", "kl_on_reconstruction", "softmax_output"):
        at.radio(key="mk_which").set_value(name).run()  # switching the mistake starts its run
        finish(at, "mistakes")
        assert len(charts(at)) == 5, name
        assert any(name == t.result.mistake.name for t in exps.tasks.values() if t.result is not None)


def test_linear_encoder_mistake_shows_the_nan():
    at = open_page("mistakes", TINY["mistakes"])
    finish(at, "mistakes")
    at.radio(key="mk_which").set_value("linear_encoder").run()
    finish(at, "mistakes")
    assert any("NaN" in e.value and "diverged" in e.value for e in at.error)
    assert any("ρ̂ⱼ < 0" in m.value for m in at.markdown)


def test_batch_mean_mistake_shows_the_scores():
    at = open_page("mistakes", TINY["mistakes"])
    finish(at, "mistakes")
    at.radio(key="mk_which").set_value("batch_mean_score").run()
    exps = finish(at, "mistakes")
    scores = next(t.result for t in exps.tasks.values() if t.result is not None and t.result.scores is not None).scores
    shown = metrics(at)
    assert shown["AUC, per-sample score"] == f"{scores.auc_per_sample:.3f}"
    assert scores.auc_per_sample > scores.auc_batch_mean
    assert len(charts(at)) == 1


def test_results_are_kept_per_setting_and_across_pages():
    at = open_page("mistakes", TINY["mistakes"])
    exps = finish(at, "mistakes")
    before = list(exps.tasks.values())
    at.switch_page("pages/3_activations.py").run()
    at.switch_page(PAGES["mistakes"][0]).run()
    no_exception(at)
    assert exps.active() is None and list(exps.tasks.values()) == before, "no new run on return"
    assert len(charts(at)) == 5
    assert at.number_input(key="mk_iters").value == 15  # the page's settings survive the switch


def test_stop_ends_a_running_experiment():
    at = open_page("selftaught", {"st_data": "mnist", "st_iters": 1000})
    at.button(key="selftaught_run").click().run()
    exps = experiments(at, "selftaught")
    task = exps.active()
    assert task is not None and task.status in (RunStatus.QUEUED, RunStatus.RUNNING)
    assert at.button(key="selftaught_run").disabled and not at.button(key="selftaught_stop").disabled
    assert wait_for(lambda: task.progress.state()[0] > 0)
    at.button(key="selftaught_stop").click().run()
    assert wait_for(lambda: task.status == RunStatus.STOPPED, 10)
    at.run()
    no_exception(at)
    assert any("Stopped" in w.value for w in at.warning)
    assert not charts(at)
