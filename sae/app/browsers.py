"""Which browser owns which live job, and which browser sessions show it (no Streamlit).

A browser (one profile's localStorage, see ``sae.ui.identity``) has at most ONE live job in this process. A reload
(F5), a second tab or a link opened in the same browser starts a new Streamlit session; that session finds the
browser's job here and shows it instead of starting an idle one. So:

- :class:`BrowserJobs` maps a browser id to its live :class:`sae.app.job.Job`, weakly: the sessions showing the job
  keep it alive (``st.session_state``), and when the last of them is dropped the job is collected and its thread
  stopped as before (layer 3 of ``sae.app.job``). The map never keeps a job alive by itself.
- :class:`Sessions` is a job's ``session_alive`` check (used by ``sae.app.reaper``): the job is watched while ANY
  session that showed it is connected. A reload's old session going away neither pauses nor stops a job the new
  session shows (:meth:`Sessions.others_alive` is asked before pausing on a disconnect).

A browser id is a random token the browser keeps; it is never taken from a URL, so a shared link cannot
hand someone else's live job over. It is a bearer token like a session cookie: whoever holds it shows the job.
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from sae.app.job import Job

logger = logging.getLogger(__name__)

MAX_ID_LENGTH = 64  # a browser id longer than this is not one the identity component made


def valid_browser_id(value: object) -> str | None:
    """``value`` if it looks like a browser id (a short string of letters, digits and dashes), else None."""
    if isinstance(value, str) and 8 <= len(value) <= MAX_ID_LENGTH and all(c.isalnum() or c == "-" for c in value):
        return value
    return None


class Sessions:
    """The sessions showing one job, as a callable ``session_alive`` check: true while any of them is connected
    (true when none is known, e.g. under AppTest, as the reaper assumes for an unknown check)."""

    def __init__(self) -> None:
        self._checks: dict[str, Callable[[], bool]] = {}
        self._lock = threading.Lock()

    def add(self, session_id: str, check: Callable[[], bool]) -> None:
        """Watch ``session_id`` (its ``check`` says whether it is connected); forget sessions already gone."""
        with self._lock:
            alive = {sid: c for sid, c in self._checks.items() if sid == session_id or _safe(c)}
            alive[session_id] = check
            self._checks = alive

    def others_alive(self, session_id: str) -> bool:
        """Whether a session other than ``session_id`` still shows the job (its disconnect must not pause it)."""
        with self._lock:
            checks = [c for sid, c in self._checks.items() if sid != session_id]
        return any(_safe(c) for c in checks)

    def __contains__(self, session_id: object) -> bool:
        with self._lock:
            return session_id in self._checks

    def __len__(self) -> int:
        with self._lock:
            return len(self._checks)

    def __call__(self) -> bool:
        with self._lock:
            checks = list(self._checks.values())
        return not checks or any(_safe(c) for c in checks)


def _safe(check: Callable[[], bool]) -> bool:
    try:
        return bool(check())
    except Exception:  # noqa: BLE001 - a broken check counts as a gone session, never as an error in the reaper
        logger.debug("session check failed", exc_info=True)
        return False


class BrowserJobs:
    """browser id -> that browser's live job (weakly held). Thread-safe."""

    def __init__(self) -> None:
        self._jobs: "weakref.WeakValueDictionary[str, Job]" = weakref.WeakValueDictionary()
        self._lock = threading.Lock()

    def job_for(self, browser_id: str | None) -> Job | None:
        """The browser's live job (any status, finished ones included), or None."""
        if not browser_id:
            return None
        with self._lock:
            return self._jobs.get(browser_id)

    def assign(self, browser_id: str | None, job: Job) -> None:
        """``job`` is now the browser's job (it replaces the one before: a new run, a loaded run, a claim)."""
        if browser_id:
            with self._lock:
                self._jobs[browser_id] = job

    def forget(self, browser_id: str, job: Job | None = None) -> None:
        """Drop the browser's entry (only if it is still ``job``, when given)."""
        with self._lock:
            if job is None or self._jobs.get(browser_id) is job:
                self._jobs.pop(browser_id, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._jobs)


_registry = BrowserJobs()


def browser_jobs() -> BrowserJobs:
    """The process-wide registry (one per server process, like the reaper's)."""
    return _registry


def sessions_of(job: Job) -> Sessions:
    """The job's :class:`Sessions`, installed as its ``session_alive`` check the first time it is asked for."""
    sessions = job.session_alive
    if not isinstance(sessions, Sessions):
        sessions = Sessions()
        job.session_alive = sessions
    return sessions


__all__ = ["BrowserJobs", "Sessions", "browser_jobs", "sessions_of", "valid_browser_id", "MAX_ID_LENGTH"]
