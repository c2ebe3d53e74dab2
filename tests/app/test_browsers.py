"""sae.app.browsers: a browser's live job found again by its id (weakly held), and a job watched by several
sessions (a reload's new one, a second tab) is neither paused nor reaped while any of them is connected."""

import gc


from sae.app import reaper
from sae.app.browsers import BrowserJobs, Sessions, sessions_of, valid_browser_id
from sae.app.job import Job, subset_indices
from sae.app.settings import Settings
from sae.data import load_dataset
from sae.training.status import ACTIVE_STATUSES, RunStatus
from conftest import wait_for


def test_the_registry_finds_the_browsers_job_and_a_new_one_replaces_it(job):
    jobs = BrowserJobs()
    assert jobs.job_for("browser-a1") is None and jobs.job_for(None) is None
    jobs.assign("browser-a1", job)
    assert jobs.job_for("browser-a1") is job and jobs.job_for("browser-b2") is None
    data = load_dataset("digits")
    newer = Job(Settings(dataset="digits", n_hidden=4), data, subset_indices(data.n_samples))
    jobs.assign("browser-a1", newer)
    assert jobs.job_for("browser-a1") is newer
    jobs.forget("browser-a1", job)  # not its job any more: nothing happens
    assert jobs.job_for("browser-a1") is newer
    jobs.forget("browser-a1")
    assert jobs.job_for("browser-a1") is None


def test_the_registry_never_keeps_a_dropped_job_alive():
    jobs = BrowserJobs()
    data = load_dataset("digits")
    j = Job(Settings(dataset="digits", n_hidden=4), data, subset_indices(data.n_samples))
    trainer = j.trainer
    jobs.assign("browser-a1", j)
    del j
    gc.collect()
    assert jobs.job_for("browser-a1") is None and len(jobs) == 0
    assert trainer.status in (RunStatus.IDLE, RunStatus.STOPPED)


def test_sessions_are_alive_while_any_is_and_a_gone_one_is_forgotten():
    alive = {"old": True, "new": True}
    sessions = Sessions()
    assert sessions()  # none known: the reaper assumes alive, as for a job without a check
    sessions.add("old", lambda: alive["old"])
    sessions.add("new", lambda: alive["new"])
    assert sessions() and sessions.others_alive("old") and sessions.others_alive("new")
    alive["old"] = False  # F5: the old session is gone, the new one shows the job
    assert sessions() and sessions.others_alive("old") and not sessions.others_alive("new")
    sessions.add("third", lambda: True)
    assert "old" not in sessions and len(sessions) == 2
    alive["new"] = False
    assert sessions()  # "third" still


def test_a_job_shown_by_a_new_session_is_not_reaped_for_the_old_ones_disconnect(job):
    """The reaper stops a job whose session is gone; after a reload it must look at the new session too."""
    job.start()
    wait_for(lambda: job.status in ACTIVE_STATUSES)
    alive = {"old": True, "new": True}
    sessions = sessions_of(job)
    assert job.session_alive is sessions
    sessions.add("old", lambda: alive["old"])
    sessions.add("new", lambda: alive["new"])
    alive["old"] = False
    job.gone_stop = 0.0
    assert (job.id, "stop") not in reaper.reap()
    assert job.status in ACTIVE_STATUSES
    alive["new"] = False  # every session that showed it is gone: now it stops
    reaper.reap(now=1e9)  # noted gone
    assert (job.id, "stop") in reaper.reap(now=1e9 + 1)
    assert job.status == RunStatus.STOPPED


def test_browser_ids_are_checked():
    assert valid_browser_id("3f2a9c1e-1b2c-4d5e-8f90-123456789abc")
    for bad in (None, 42, "", "short", "x" * 65, "has space in it", "../../etc/passwd"):
        assert valid_browser_id(bad) is None
