"""The session's job in ``st.session_state``, the process-wide data cache, and the session guard.

``get_job(settings)`` returns this browser session's :class:`sae.app.job.Job`, creating an idle
one (untrained model, step 0) the first time, so every page has something to draw before Train.

A job belongs to the browser, not only to the session (``sae.app.browsers``): :func:`set_job` records it as the
browser's job (when the browser's id is known, ``sae.ui.identity``), and :func:`get_job` follows the browser's
job when another tab of the same browser replaced it by one that has started. Finding the job again after a reload is ``sae.ui.reattach``.
"""

from __future__ import annotations

import streamlit as st

from sae.core.config import ConfigError
from sae.data import DataError, Dataset, load_dataset
from sae.runs.store import RunStore, StoreError, default_root
from sae.training.trainer import check_compatible  # the Trainer's own rules (e.g. no KL penalty on ReLU units)

from sae.app.browsers import browser_jobs, sessions_of
from sae.app.job import Job, subset_indices
from sae.app.reaper import SESSION_GONE_STOP
from sae.app.settings import Settings
from sae.ui.identity import browser_id, owner_or_none


JOB_KEY = "sae_job"
SETTINGS_KEY = "sae_settings"  # the control panel's last settings (written by sae.ui.url.sync_url)
UPLOAD = "upload"  # Settings.dataset of the session's own file ("Your data" in the control panel)
UPLOAD_KEY = "sae_upload"  # st.session_state key of that file's Dataset (kept in memory, never on disk)
MAX_WEIGHTS = 4 * 2**20  # n_inputs x n_hidden per weight matrix (16 MiB); 784 x 1024 is 0.8 M


@st.cache_resource(show_spinner="Loading the data set…", max_entries=8)
def load_data(name: str) -> Dataset:
    """Built-in data sets are read-only: one copy per process, shared by every session."""
    return load_dataset(name)


def _release(guard: "_Guard") -> None:
    """The session's connection closed: a running job pauses, unless another session (a reload's new one, a second
    tab of the same browser) still shows it."""
    job = guard.job()
    if job is not None and not sessions_of(job).others_alive(guard.session_id):
        job.disconnected()


class _Guard:
    def __init__(self, job: Job, session_id: str) -> None:
        import weakref

        self.job = weakref.ref(job)  # a weak reference: the guard must not keep a dropped job alive
        self.session_id = session_id


@st.cache_resource(scope="session", on_release=_release, show_spinner=False)
def _watch(job_id: int, session_id: str, _job: Job) -> _Guard:
    """One guard per (session, job); Streamlit clears session-scoped caches when the browser
    disconnects, which calls ``_release`` -> ``Job.disconnected`` (a running job pauses)."""
    return _Guard(_job, session_id)


def _session_id() -> str:
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    return "" if ctx is None else ctx.session_id


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
    """Stamp the heartbeat, (re)arm the disconnect guard, add this session to the ones showing the job (the reaper
    stops it only when all of them are gone), resume a job paused by a disconnect."""
    job.beat()
    session_id = _session_id()
    _watch(job.id, session_id, job)
    sessions = sessions_of(job)
    if session_id not in sessions:
        check = _session_alive_check()
        if check is not None:
            sessions.add(session_id, check)
        job.gone_stop = session_gone_stop()
    job.reconnected()


def session_gone_stop() -> float:
    """Seconds after which the reaper stops the thread of a job whose session disconnected: Streamlit's
    ``server.disconnectedSessionTTL`` (after it nobody can reconnect to the session) plus 30 s."""
    try:
        return float(st.get_option("server.disconnectedSessionTTL")) + 30.0
    except Exception:  # noqa: BLE001 - no config: the library's default
        return SESSION_GONE_STOP


def validate(settings: Settings) -> Dataset:
    """Check the settings as the Trainer will (raises ConfigError / DataError with a user message)."""
    data = dataset(settings.dataset)
    model_config, train_config = settings.model_config(data), settings.train_config()
    check_compatible(model_config, train_config, data.n_features)
    if data.n_features * model_config.n_hidden > MAX_WEIGHTS:
        raise ConfigError(f"{data.n_features:,} inputs x {model_config.n_hidden:,} hidden units is "
                          f"{data.n_features * model_config.n_hidden:,} weights per layer, more than this server "
                          f"allows ({MAX_WEIGHTS:,}): use fewer hidden units or fewer features.")
    return data


def dataset(name: str) -> Dataset:
    """A built-in data set (shared, cached) or, for ``UPLOAD``, this session's uploaded file."""
    if name == UPLOAD:
        data = st.session_state.get(UPLOAD_KEY)
        if data is None:
            raise DataError("No file uploaded in this session: add one under “Your data”, or pick a built-in set.")
        return data
    return load_data(name)


def new_job(settings: Settings, schedule=()) -> Job:
    """Build an idle job for ``settings``, its record this session's user's (``sae.ui.identity.actor``);
    ``schedule``: edits to apply at their steps (a replay). Raises ConfigError / DataError with a user message."""
    data = validate(settings)
    return Job(settings, data, subset_indices(data.n_samples), store=run_store_or_none(), owner=owner_or_none(),
               schedule=schedule)


@st.cache_resource(show_spinner=False, max_entries=4)
def _open_store(root: str) -> RunStore:
    return RunStore(root)


def run_store() -> RunStore:
    """The process-wide run store in ``$SAE_LAB_DATA`` (default ``~/.local/share/sae-lab``). Shared
    infrastructure like the data cache, not a user's model: every session records its runs there, and
    the Runs page lists the runs of everyone using this server (a lab notebook). Raises StoreError."""
    return _open_store(str(default_root()))


def run_store_or_none() -> RunStore | None:
    """:func:`run_store`, or None when it cannot be opened (training goes on unrecorded; the Runs page
    says why)."""
    try:
        return run_store()
    except StoreError:
        return None


def current_settings() -> Settings | None:
    """The settings the control panel last showed in this session (None before it was first drawn)."""
    return st.session_state.get(SETTINGS_KEY)


WATCH_CODE_KEY = "sae_class_watching"  # the class whose broadcast this session watches (sae.ui.classroom)
WATCHED_KEY = "sae_class_watched_job"  # that broadcast's ReadOnlyJob, while it is on


def current_job() -> Job | None:
    """This session's job, or the teacher's broadcast it watches (read-only, sae.app.broadcasts.ReadOnlyJob)."""
    return st.session_state.get(WATCHED_KEY) or st.session_state.get(JOB_KEY)


def own_job() -> Job | None:
    """This session's own job, even while it watches a broadcast."""
    return st.session_state.get(JOB_KEY)


def set_job(job: Job) -> Job:
    """Make ``job`` this session's and this browser's job; the job it replaces is stopped (its record stays in the
    run store)."""
    old = own_job()
    st.session_state.pop(WATCH_CODE_KEY, None)  # a run of one's own ends any watching
    st.session_state.pop(WATCHED_KEY, None)
    if old is not None and old is not job:
        old.stop("replaced by a new run")
    return show_job(job)


def show_job(job: Job) -> Job:
    """Make ``job`` (already running elsewhere, e.g. the browser's job from before a reload) this session's and this
    browser's job, without stopping anything."""
    st.session_state[JOB_KEY] = job
    browser_jobs().assign(browser_id(), job)
    if job.settings.dataset == UPLOAD and job.data is not None:
        st.session_state[UPLOAD_KEY] = job.data  # the file the job trains on (a new session of the same browser)
    watch_session(job)
    return job


def _live(job: Job) -> bool:
    return job.started and not job.final


def get_job(settings: Settings) -> Job:
    """This session's job, created from ``settings`` (or the defaults if those are invalid). When another tab of the
    same browser has replaced the browser's job since, this session shows that one instead."""
    job = own_job()
    browsers_job = browser_jobs().job_for(browser_id())
    if browsers_job is not None and browsers_job is not job and browsers_job.started:
        return show_job(browsers_job)  # an untouched (idle) job is not worth following: each page load has its own
    if job is None:
        try:
            job = new_job(settings)
        except (ConfigError, DataError):
            job = new_job(Settings())
        set_job(job)
    else:
        if _live(job) and (browsers_job is None or not _live(browsers_job)):
            browser_jobs().assign(browser_id(), job)  # it started here (Train): the browser's newest run
        watch_session(job)
    return job


__all__ = ["load_data", "dataset", "validate", "get_job", "new_job", "set_job", "current_job", "own_job", "watch_session",
           "run_store", "run_store_or_none", "current_settings", "show_job", "JOB_KEY", "SETTINGS_KEY", "UPLOAD", "UPLOAD_KEY", "MAX_WEIGHTS"]
