"""The job reaper: one process-wide registry of live jobs and one daemon thread that pauses or stops the
jobs nobody watches (layer 2 of the cleanup described in ``sae.app.job``), and collects garbage.

Every :class:`sae.app.job.Job` calls :func:`register` from its constructor; the registry holds jobs weakly, so
a dropped session's Job is still collected (layer 3). This module never imports ``sae.app.job`` at run time:
it uses a job by duck typing (``status``, ``session_alive``, ``gone_since``, ``gone_stop``, ``last_beat``,
``resume_on_reconnect``, ``id``, ``pause``, ``release``, ``released``).
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from typing import TYPE_CHECKING

from sae.training.status import ACTIVE_STATUSES, RunStatus

if TYPE_CHECKING:
    from sae.app.job import Job

logger = logging.getLogger(__name__)

HEARTBEAT_PAUSE = 180.0  # s without any page polling a running job -> pause it
SESSION_GONE_STOP = 150.0  # s a job's session has been inactive -> stop its thread (TTL is 120 s)
REAPER_PERIOD = 5.0
GC_PERIOD = 10.0  # s between full garbage collections by the reaper (see _reap_forever)

_jobs: "weakref.WeakSet[Job]" = weakref.WeakSet()
_reaper_lock = threading.Lock()
_reaper: threading.Thread | None = None


def register(job: Job) -> None:
    """Add ``job`` to the registry (weakly) and start the reaper thread if it is not running."""
    global _reaper
    with _reaper_lock:
        _jobs.add(job)
        if _reaper is None or not _reaper.is_alive():
            _reaper = threading.Thread(target=_reap_forever, name="sae-ui-reaper", daemon=True)
            _reaper.start()


def reap(now: float | None = None) -> list[tuple[int, str]]:
    """One pass of the reaper: pause or stop jobs nobody watches. Returns [(job id, action)]."""
    now = time.monotonic() if now is None else now
    actions = []
    for job in list(_jobs):
        status = job.status
        if job.released:
            continue
        alive = job.session_alive() if job.session_alive is not None else True
        if alive:
            job.gone_since = None
        elif job.gone_since is None:
            job.gone_since = now
        if job.gone_since is not None and now - job.gone_since > job.gone_stop:
            job.release("stopped: the browser session ended")  # ends the run and frees its worker process
            actions.append((job.id, "stop"))
        elif status in (RunStatus.FINISHED, RunStatus.STOPPED):
            continue
        elif status in ACTIVE_STATUSES and now - job.last_beat > HEARTBEAT_PAUSE:
            job.resume_on_reconnect = True
            job.pause(f"paused: no page polled this run for {now - job.last_beat:.0f} s")
            actions.append((job.id, "pause"))
    return actions


def _reap_forever() -> None:
    """Reap every REAPER_PERIOD; collect garbage every GC_PERIOD. The dashboard turns off Streamlit's
    gc.collect() after every script run (``runner.postScriptGC``: ~0.25 s holding the GIL, several times a second
    per polling page), so the reference cycles a closed session leaves behind are freed here instead
    (cheap: sae.ui.page freezes the startup heap)."""
    import gc

    last_gc = time.monotonic()
    while True:
        time.sleep(REAPER_PERIOD)
        try:
            reap()
        except Exception:  # the reaper must outlive any one job's failure
            logger.warning("job reaper: reap() failed; retrying in %s s", REAPER_PERIOD, exc_info=True)
        if time.monotonic() - last_gc >= GC_PERIOD:
            last_gc = time.monotonic()
            gc.collect()


def live_jobs() -> list[Job]:
    """Jobs not yet garbage-collected (for tests and diagnostics)."""
    return list(_jobs)


__all__ = ["register", "reap", "live_jobs", "HEARTBEAT_PAUSE", "SESSION_GONE_STOP", "REAPER_PERIOD", "GC_PERIOD"]
