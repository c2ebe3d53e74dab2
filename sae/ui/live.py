"""The live view: ONE fragment per page that redraws from the latest snapshot.

While the session's job is running the fragment re-runs every ``POLL_SECONDS`` (0.3 s: about
three redraws a second); otherwise it is drawn once per script run and stops polling
(``run_every=None``). Training itself never runs here: the fragment only reads copies the
trainer published. When the job's status changes (finished, paused by the reaper, ...) the
fragment asks for a whole-app rerun so buttons and polling follow.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Callable

import streamlit as st

from sae.ui import state
from sae.training.status import RunStatus
from sae.ui.controls import POLL_SECONDS
from sae.app.job import Job


def live(draw: Callable[[Job], None]) -> None:
    """Run ``draw(job)`` now and, while training, every POLL_SECONDS inside one fragment."""
    job = state.current_job()
    status_at_render = job.status if job is not None else None

    # a queued run's views do not change: only the status line polls (and reruns the page when it starts)
    @st.fragment(run_every=POLL_SECONDS if status_at_render == RunStatus.RUNNING else None)
    def _live_view() -> None:
        current = state.current_job()
        if current is None:
            st.info("No run in this session yet.")
            return
        current.beat()
        if current is not job or current.status != status_at_render:
            st.rerun(scope="app")
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


__all__ = ["live", "headline_deltas", "derived"]
