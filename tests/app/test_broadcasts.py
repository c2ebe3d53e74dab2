"""A teacher's broadcast (sae.app.broadcasts): students get the teacher's current run read-only."""

import pytest

from sae.app.broadcasts import Broadcasts, ReadOnlyError, ReadOnlyJob
from sae.app.browsers import browser_jobs
from sae.app.job import Job, subset_indices
from sae.app.settings import Settings
from sae.data import load_dataset


@pytest.fixture
def small_job(in_threads):
    data = load_dataset("digits")
    job = Job(Settings(dataset="digits", n_hidden=8, epochs=5.0), data, subset_indices(data.n_samples))
    yield job
    job.release()


def test_a_watcher_reads_the_teachers_run_and_cannot_change_it(small_job):
    browser_jobs().assign("teacher-browser-1", small_job)
    casts = Broadcasts()
    assert casts.watch("ABCDEF") is None
    casts.start("ABCDEF", "teacher-browser-1", "Ms Lovelace")
    view = casts.watch("ABCDEF")
    assert isinstance(view, ReadOnlyJob) and view.read_only and not small_job.read_only
    assert view.latest() is small_job.latest() and view.settings is small_job.settings
    for change in (view.start, view.pause, lambda: view.step(3), lambda: view.apply_live(beta=9.0),
                   lambda: view.rewind(0), lambda: view.add_twin(0, beta=1.0), view.resample, view.stop):
        with pytest.raises(ReadOnlyError, match="Ms Lovelace's run, shown read-only"):
            change()
    with pytest.raises(ReadOnlyError):
        view.note = "hacked"
    assert small_job.status == "idle" and small_job.note == ""
    casts.stop("ABCDEF")
    assert casts.watch("ABCDEF") is None


def test_the_broadcast_follows_the_teachers_new_run(small_job, in_threads):
    data = load_dataset("digits")
    casts = Broadcasts()
    browser_jobs().assign("teacher-browser-2", small_job)
    casts.start("QWERTY", "teacher-browser-2", "T")
    assert casts.watch("QWERTY").job is small_job
    newer = Job(Settings(dataset="digits", n_hidden=4, epochs=5.0), data, subset_indices(data.n_samples))
    browser_jobs().assign("teacher-browser-2", newer)
    assert casts.watch("QWERTY").job is newer
    newer.release()
