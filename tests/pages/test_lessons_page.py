"""The Lessons page under AppTest (pages/12_lessons.py, sae.ui.lessons): it renders every lesson; Check my run shows
a failure with a hint, Set up this step puts the suggested settings in the sidebar and the check passes; progress is
kept per browser in the data directory and survives a new session; without a browser id it is kept for the session
and saved once the id comes; the twin and the Common mistakes steps work through the page."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from sae.app import tasks  # noqa: E402
from sae.app.lesson_progress import DB_FILE, ProgressStore  # noqa: E402
from sae.app.lessons import LESSONS  # noqa: E402
from sae.training.status import RunStatus  # noqa: E402
from sae.ui.identity import ID_KEY  # noqa: E402
from sae.ui.lessons import DONE_MARK  # noqa: E402
from conftest import wait_for  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
HOME = str(ROOT / "dashboard.py")
LESSONS_PAGE = "pages/12_lessons.py"
SMALL = {"data": "digits", "hidden": "16", "epochs": "1000"}

pytestmark = pytest.mark.usefixtures("restore_process_state", "stop_live_jobs")  # tests/conftest.py


@pytest.fixture(autouse=True)
def stop_tasks():
    yield
    for task in tasks.live_tasks():
        task.stop(wait=5.0)


def session(browser: str | None, params=None) -> AppTest:
    """A new page load of the Lessons page by browser ``browser`` (None: its id not known)."""
    at = AppTest.from_file(HOME, default_timeout=60)
    for k, v in (SMALL if params is None else params).items():
        at.query_params[k] = v
    if browser is not None:
        at.session_state[ID_KEY] = browser
    at.run()
    at.switch_page(LESSONS_PAGE).run()
    no_exception(at)
    return at


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def click(at: AppTest, key: str) -> AppTest:
    at.button(key=key).click().run()
    no_exception(at)
    return at


def steps(at: AppTest) -> list[bool]:
    """Whether each step of the chosen lesson shows as done (the step list's buttons)."""
    lesson = at.selectbox(key="lesson_pick").value
    return [DONE_MARK in b.label for b in at.button if b.key.startswith(f"lesson_goto_{lesson}_")]


def chosen_step(at: AppTest) -> int:
    lesson = at.selectbox(key="lesson_pick").value
    return next(int(b.key.rsplit("_", 1)[1]) for b in at.button
                if b.key.startswith(f"lesson_goto_{lesson}_") and b.proto.type == "secondary")


def steps_done_line(at: AppTest) -> str:
    return next(c.value for c in at.caption if "Steps done:" in c.value)


def choose(at: AppTest, lesson_id: str) -> AppTest:
    at.selectbox(key="lesson_pick").set_value(lesson_id).run()
    no_exception(at)
    return at


def test_the_page_renders_every_lesson_with_its_formula():
    at = session("browser-lessons-01")
    assert at.title[0].value.endswith("Lessons")
    assert at.selectbox(key="lesson_pick").options == [x.title for x in LESSONS]
    assert steps_done_line(at).endswith("none yet")
    for item in LESSONS:
        choose(at, item.id)
        assert len(steps(at)) == len(item.steps)
        assert any(item.steps[0].title in s.value for s in at.subheader)
        assert at.latex, f"{item.id}: no formula"
        assert any("Your run now: step 0" in c.value for c in at.caption)


def test_check_my_run_fails_with_a_hint_and_passes_after_set_up(lab_data):
    at = session("browser-lessons-02")
    click(at, "lesson_check_ufldl_setup")
    assert any("Not UFLDL's exercise yet" in e.value and "hidden units 16 (the exercise: 25)" in e.value
               for e in at.error)
    assert any(i.value.startswith("**Hint:**") for i in at.info)
    assert not any(s.value for s in at.success)

    click(at, "lesson_setup_ufldl_setup")  # the suggested settings go into the sidebar's widgets
    assert (at.session_state["data"], at.session_state["hidden"], at.session_state["rho"],
            at.session_state["opt"], at.session_state["iters"]) == ("patches", 25, 0.01, "lbfgs", 400)
    job = at.session_state["sae_job"]
    assert job.data.name == "patches" and job.model_config.n_hidden == 25  # an idle job follows at once

    click(at, "lesson_check_ufldl_setup")
    assert any("Your run is UFLDL's exercise" in s.value for s in at.success)
    assert not any(i.value.startswith("**Hint:**") for i in at.info)
    assert steps(at) == [True, False, False, False]
    assert "UFLDL's sparse-autoencoder exercise 1/4" in steps_done_line(at)
    click(at, "lesson_next_ufldl_setup")
    assert chosen_step(at) == 1 and any("Step 2 of 4" in h.value for h in at.subheader)
    click(at, "lesson_goto_ufldl_3")
    assert chosen_step(at) == 3 and any("Step 4 of 4" in h.value for h in at.subheader)
    saved = ProgressStore(lab_data).records("browser-lessons-02")
    record = saved[("ufldl", "setup")]
    assert record.done and record.tries == 2 and record.failures == 1 and (lab_data / DB_FILE).exists()


def test_progress_survives_a_new_session_of_the_same_browser():
    at = session("browser-lessons-03")
    click(at, "lesson_setup_ufldl_setup")
    click(at, "lesson_check_ufldl_setup")

    again = session("browser-lessons-03")  # a reload: a new session, the same browser
    assert steps(again) == [True, False, False, False]
    assert chosen_step(again) == 1  # the first step not done
    assert "UFLDL's sparse-autoencoder exercise 1/4" in steps_done_line(again)
    assert any("saved for this browser" in p.proto.text for p in again.get("progress"))
    other = session("browser-lessons-04")  # another browser has its own progress
    assert not any(steps(other))


def test_without_a_browser_id_progress_is_kept_for_the_session_then_saved(lab_data):
    at = session(None, {"data": "patches", "hidden": "25", "rho": "0.01"})
    click(at, "lesson_check_ufldl_setup")  # beta 3, lambda 1e-4 are the patches' defaults: it passes
    assert any("Your run is UFLDL's exercise" in s.value for s in at.success)
    assert any("kept for this session only" in p.proto.text for p in at.get("progress"))
    assert not (lab_data / DB_FILE).exists() or not ProgressStore(lab_data).records("browser-lessons-05")

    at.session_state[ID_KEY] = "browser-lessons-05"  # the browser's id arrives
    at.run()
    no_exception(at)
    assert any("saved for this browser" in p.proto.text for p in at.get("progress"))
    assert ProgressStore(lab_data).records("browser-lessons-05")[("ufldl", "setup")].done
    assert steps(session("browser-lessons-05"))[0]


def test_the_twin_step_through_the_page(in_threads):
    at = session("browser-lessons-06")
    choose(at, "twin")
    click(at, "lesson_check_twin_kills")
    assert any("no twin" in e.value for e in at.error)
    click(at, "lesson_setup_twin_kills")  # digits, 25 units, rho 0.05, SGD at lr 0.1, beta 3
    assert (at.session_state["opt"], at.session_state["lr"], at.session_state["rho"]) == ("sgd", 0.1, 0.05)
    click(at, "lesson_twin_twin_kills")
    assert any("Twin added" in s.value for s in at.success)
    job = at.session_state["sae_job"]
    assert job.twin_setup() == ({"beta": 10.0}, 0)
    job.step(140)
    assert wait_for(lambda: job.latest().step >= 140 and job.status == RunStatus.PAUSED, 60)
    at.run()
    click(at, "lesson_check_twin_kills")
    assert any("Same seed, same batches, only β differs" in s.value for s in at.success), \
        [e.value for e in at.error]
    assert any("twin at step 140" in c.value for c in at.caption)


def test_a_common_mistake_step_opens_the_page_and_is_checked_from_its_result():
    at = session("browser-lessons-07")
    choose(at, "mistakes")
    click(at, "lesson_check_mistakes_scalar")
    assert any("No result for “ρ̂ as one scalar" in e.value for e in at.error)
    click(at, "lesson_setup_mistakes_scalar")  # switches the mistake on and opens Common mistakes
    assert at.title[0].value.endswith("Common mistakes")
    assert at.radio(key="mk_which").value == "rho_hat_scalar"
    exps = at.session_state["exp_mistakes"]
    assert wait_for(lambda: exps.active() is None, 120), "the comparison did not finish"
    at.switch_page(LESSONS_PAGE).run()
    no_exception(at)
    click(at, "lesson_check_mistakes_scalar")
    assert any("Only the layer's average is held at ρ" in s.value for s in at.success), [e.value for e in at.error]


def test_every_check_answers_on_a_run_without_a_kl_target():
    """ReLU units with the L1 penalty (no ρ): every step's check answers (failing, saying why) and every formula draws."""
    at = session("browser-lessons-08", {"data": "digits", "hidden": "16", "act": "relu", "penalty": "L1"})
    for item in LESSONS:
        choose(at, item.id)
        for i, step in enumerate(item.steps):
            click(at, f"lesson_goto_{item.id}_{i}")
            click(at, f"lesson_check_{item.id}_{step.id}")
            assert at.error or at.success, (item.id, step.id)
            assert at.latex, (item.id, step.id)
    choose(at, "rho_hat")
    click(at, "lesson_goto_rho_hat_1")
    click(at, "lesson_check_rho_hat_pulled")
    assert any("L1 penalty, which has no target ρ" in e.value for e in at.error)
