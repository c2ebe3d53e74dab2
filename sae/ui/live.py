"""The live view: ONE fragment per page that redraws from the latest snapshot.

While the session's job is running the fragment re-runs every ``sae.app.polling.refresh_interval(live sessions,
cores)`` seconds: 0.3 s (about three redraws a second) with few sessions polling this server, up to 1 s with
many; otherwise it is drawn once per script run and stops polling (``run_every=None``). Training itself never
runs here: the fragment only reads copies the trainer published. When the job's status changes (finished, paused
by the reaper, ...) the fragment asks for a whole-app rerun so buttons and polling follow.

A fragment's ``run_every`` is fixed when the fragment is made, which :func:`live` does at every whole-app run. So
each refresh records its session's poll (``sae.app.polling.live_polls``) and compares the interval the load asks
for now with the one the fragment was made with; when they differ by ``REARM`` or more (sessions joined or left)
it asks for one whole-app rerun, which makes the fragment again with the new interval.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Callable

import streamlit as st

from sae.app.job import Job
from sae.app.polling import live_polls, refresh_interval, server_cores
from sae.training.status import RunStatus
from sae.ui import state

REARM = 0.2  # s: a refresh interval this far from the wanted one re-makes the fragment (one whole-app rerun)


def _session_id() -> str:
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    return "" if ctx is None else ctx.session_id


def live(draw: Callable[[Job], None]) -> None:
    """Run ``draw(job)`` now and, while training, every ``refresh_interval(...)`` seconds inside one fragment."""
    job = state.current_job()
    status_at_render = job.status if job is not None else None
    session, polls = _session_id(), live_polls()
    # a queued run's views do not change: only the status line polls (and reruns the page when it starts)
    every = refresh_interval(polls.count(including=session), server_cores()) \
        if status_at_render == RunStatus.RUNNING else None
    if every is None:
        polls.forget(session)

    @st.fragment(run_every=every)
    def _live_view() -> None:
        current = state.current_job()
        if current is None:
            st.info("No run in this session yet.")
            return
        current.beat()
        if current is not job or current.status != status_at_render:
            st.rerun(scope="app")
        if every is not None:
            polls.poll(session)
            if abs(refresh_interval(polls.count(), server_cores()) - every) >= REARM:
                st.rerun(scope="app")  # the load changed: make the fragment again with the new interval
        draw(current)

    _live_view()


def headline_deltas(job: Job, values: dict[str, float], window: float = 3.0) -> dict[str, float | None]:
    """Change of each headline number over the last ``window`` seconds of wall time (None at first)."""
    log: deque = job.cache.setdefault("headline_log", lambda: deque(maxlen=256))  # (time, version, values)
    now = time.monotonic()
    version = job.latest().version
    if not log or log[-1][1] != version:
        log.append((now, version, dict(values)))
    past = None
    for t, v, vals in log:
        if now - t <= window:
            break
        past = vals
    if past is None and len(log) > 1 and log[0][1] != version:
        past = log[0][2]
    return {k: (None if past is None or k not in past else values[k] - past[k]) for k in values}


def derived(job: Job):
    """The job's per-snapshot derived views (activations etc. on a ≤1,000-sample subset)."""
    return job.derived()


__all__ = ["live", "headline_deltas", "derived", "REARM"]
