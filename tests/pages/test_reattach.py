"""A new session of the same browser (a reload, a second tab) finds its run again; a ``?run=`` link puts a stored
run on view (sae.ui.reattach) — under AppTest, where the browser's id is set in session state as the identity
component would (sae.ui.identity)."""

from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from sae.training.status import ACTIVE_STATUSES, RunStatus
from sae.ui.identity import ID_KEY, LAST_RUN_KEY
from conftest import wait_for

ROOT = Path(__file__).resolve().parents[2]
HOME = str(ROOT / "dashboard.py")
SMALL = {"data": "digits", "hidden": "16", "epochs": "1000"}

pytestmark = pytest.mark.usefixtures("restore_process_state", "stop_live_jobs")  # tests/conftest.py


def session(browser: str | None, params=None, last_run: str | None = None, page: str = HOME) -> AppTest:
    """A new session (a page load) of the browser ``browser``."""
    at = AppTest.from_file(page, default_timeout=60)
    for k, v in (SMALL if params is None else params).items():
        at.query_params[k] = v
    if browser is not None:
        at.session_state[ID_KEY] = browser
        at.session_state[LAST_RUN_KEY] = last_run
    return at.run()


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def status_line(at: AppTest) -> str:
    return " ".join(c.value for c in at.sidebar.caption if "step" in c.value)


def train(at: AppTest):
    at.sidebar.button(key="btn_train").click().run()
    job = at.session_state["sae_job"]
    wait_for(lambda: job.latest().step > 0 and job.run_id is not None)
    return job


def test_a_reload_shows_the_same_run_still_training():
    first = session("browser-reload-01")
    job = train(first)
    step = job.latest().step
    again = session("browser-reload-01")  # F5: a new session of the same browser
    no_exception(again)
    assert again.session_state["sae_job"] is job
    line = status_line(again)
    assert job.status in ACTIVE_STATUSES and ("running" in line or "queued" in line), line
    assert job.latest().step >= step
    other = session("browser-other-02")  # another browser gets its own, idle job
    assert other.session_state["sae_job"] is not job and "idle" in status_line(other)


def test_a_second_tab_follows_a_new_run_started_in_the_first():
    tab1 = session("browser-tabs-0001")
    tab2 = session("browser-tabs-0001")
    assert tab1.session_state["sae_job"] is not tab2.session_state["sae_job"]  # idle jobs: each page load its own
    job = train(tab1)
    tab2.run()
    assert tab2.session_state["sae_job"] is job and job.status in ACTIVE_STATUSES
    tab1.sidebar.button(key="btn_reset").click().run()  # a new job in tab 1 replaces the browser's job
    fresh = tab1.session_state["sae_job"]
    assert fresh is not job and job.status == RunStatus.STOPPED
    tab2.run()
    assert tab2.session_state["sae_job"] is job  # an idle job is not followed: tab 2 shows its run, stopped
    assert "replaced by a new run" in status_line(tab2)
    tab1.sidebar.button(key="btn_train").click().run()
    tab2.run()
    assert tab2.session_state["sae_job"] is fresh and fresh.status in ACTIVE_STATUSES


def test_the_browsers_last_stored_run_comes_back_paused_when_no_job_is_live():
    first = session("browser-restart-1")
    job = train(first)
    run_id = job.run_id
    first.sidebar.button(key="btn_stop").click().run()
    # the server restarted: no live job for this browser, but it remembers its last run
    from sae.app.browsers import browser_jobs

    browser_jobs().forget("browser-restart-1")
    back = session("browser-restart-1", last_run=run_id)
    no_exception(back)
    restored = back.session_state["sae_job"]
    assert restored is not job and restored.parent_id == run_id
    assert restored.status == RunStatus.PAUSED and restored.latest().step > 0
    assert any("Your last run" in i.value for i in back.info), [i.value for i in back.info]


def test_a_run_link_opens_the_stored_run_paused_and_a_deleted_one_says_so():
    first = session("browser-linker-01")
    job = train(first)
    first.sidebar.button(key="btn_stop").click().run()
    run_id, step = job.run_id, job.latest().step
    opened = session("browser-fresh-0001", params={"run": run_id})  # a fresh browser, the bare link
    no_exception(opened)
    shown = opened.session_state["sae_job"]
    assert shown.parent_id == run_id and shown.status == RunStatus.PAUSED and shown.latest().step == step
    assert opened.session_state["hidden"] == 16  # the run's settings, not the defaults of a bare URL
    assert "run" not in opened.query_params
    assert any("Opened the linked run" in s.value for s in opened.success)
    missing = session("browser-fresh-0002", params={"run": "0" * 32})
    no_exception(missing)
    assert any("not in this server's run store" in e.value for e in missing.error)


def test_a_link_does_not_stop_the_browsers_training_run_without_asking():
    other = session("browser-done-0001")
    done = train(other)
    other.sidebar.button(key="btn_stop").click().run()
    tab = session("browser-busy-0001")
    job = train(tab)
    linked = session("browser-busy-0001", params=SMALL | {"run": done.run_id})  # same browser, new tab, a link
    no_exception(linked)
    assert linked.session_state["sae_job"] is job and job.status in ACTIVE_STATUSES
    linked.button(key="link_open").click().run()
    assert job.status == RunStatus.STOPPED
    assert linked.session_state["sae_job"].parent_id == done.run_id
