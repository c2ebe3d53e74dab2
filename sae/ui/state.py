"""The session's job in ``st.session_state``, the process-wide data cache, and the session guard.

``get_job(settings)`` returns this browser session's :class:`sae.ui.session.Job`, creating an idle
one (untrained model, step 0) the first time, so every page has something to draw before Train.
"""

from __future__ import annotations

import streamlit as st

from sae.config import ConfigError
from sae.data import DataError, Dataset, load_dataset
from sae.train import check_compatible  # the Trainer's own rules (e.g. no KL penalty on ReLU units)

from .session import Job, Settings, subset_indices


JOB_KEY = "sae_job"


@st.cache_resource(show_spinner="Loading the data set…", max_entries=8)
def load_data(name: str) -> Dataset:
    """Built-in data sets are read-only: one copy per process, shared by every session."""
    return load_dataset(name)


def _release(guard: "_Guard") -> None:
    job = guard.job()
    if job is not None:
        job.disconnected()


class _Guard:
    def __init__(self, job: Job) -> None:
        import weakref

        self.job = weakref.ref(job)  # a weak reference: the guard must not keep a dropped job alive


@st.cache_resource(scope="session", on_release=_release, show_spinner=False)
def _watch(job_id: int, _job: Job) -> _Guard:
    """One guard per (session, job); Streamlit clears session-scoped caches when the browser
    disconnects, which calls ``_release`` -> ``Job.disconnected`` (a running job pauses)."""
    return _Guard(_job)


def _session_alive_check():
    """A thread-safe callable telling whether the current session is still connected."""
    try:
        from streamlit.runtime import Runtime
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        ctx = get_script_run_ctx()
        if ctx is None or not Runtime.exists():
            return None
        runtime, session_id = Runtime.instance(), ctx.session_id
        return lambda: runtime.is_active_session(session_id)
    except Exception:  # noqa: BLE001 - e.g. AppTest has no real runtime: no check
        return None


def watch_session(job: Job) -> None:
    """Stamp the heartbeat, (re)arm the disconnect guard, resume a job paused by a disconnect."""
    job.beat()
    _watch(job.id, job)
    if job.session_alive is None:
        job.session_alive = _session_alive_check()
    job.reconnected()


def validate(settings: Settings) -> Dataset:
    """Check the settings as the Trainer will (raises ConfigError / DataError with a user message)."""
    data = load_data(settings.dataset)
    model_config, train_config = settings.model_config(data), settings.train_config()
    check_compatible(model_config, train_config, data.n_features)
    return data


def new_job(settings: Settings) -> Job:
    """Build an idle job for ``settings``. Raises ConfigError / DataError with a user message."""
    data = validate(settings)
    return Job(settings, data, subset_indices(data.n_samples))


def current_job() -> Job | None:
    return st.session_state.get(JOB_KEY)


def set_job(job: Job) -> Job:
    old = current_job()
    if old is not None and old is not job:
        old.stop("replaced by a new run")
    st.session_state[JOB_KEY] = job
    watch_session(job)
    return job


def get_job(settings: Settings) -> Job:
    """This session's job, created from ``settings`` (or the defaults if those are invalid)."""
    job = current_job()
    if job is None:
        try:
            job = new_job(settings)
        except (ConfigError, DataError):
            job = new_job(Settings())
        set_job(job)
    else:
        watch_session(job)
    return job


__all__ = ["load_data", "validate", "get_job", "new_job", "set_job", "current_job", "watch_session", "JOB_KEY"]
