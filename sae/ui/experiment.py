"""The experiment panel of the extra pages: Run / Stop, a polling progress line, results kept per configuration.

``experiment(name, config, fn)`` draws the buttons and the status of this page's experiment for ``config``
and returns its result once finished (None before). The experiment itself, ``fn(progress=...)``, runs as a
:class:`sae.app.tasks.Task` in a worker process, never in the script run. Tasks live per session in
``st.session_state[f"exp_{name}"]`` (an :class:`Experiments`), keyed by the configuration, so going back to a
setting already run, or to the page, shows its result at once. One task per page runs at a time.

The status line is ONE fragment that re-runs every ``POLL_SECONDS`` only while a task of the page is
queued or running (``run_every=None`` otherwise: no polling when idle), and asks for a whole-app rerun
when the task ends so the page draws the result.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any, Callable

import streamlit as st

from sae.training.progress import Progress
from sae.training.status import RunStatus

from sae.app.tasks import Task

POLL_SECONDS = 0.5
KEEP = 5  # experiments kept per page and session (the oldest go first; a result holds up to ~2.5 MB)


class Experiments:
    """One page's experiments in one session: configuration key -> its latest Task."""

    def __init__(self) -> None:
        self.tasks: OrderedDict[str, Task] = OrderedDict()

    def get(self, key: str) -> Task | None:
        return self.tasks.get(key)

    def active(self) -> Task | None:
        return next((t for t in self.tasks.values() if t.active), None)

    def start(self, key: str, fn: Callable[[Progress], Any], label: str = "") -> Task:
        """Stop this page's running task (if any) and run ``fn`` for ``key``."""
        running = self.active()
        if running is not None:
            running.stop()
        self.tasks.pop(key, None)
        self.tasks[key] = task = Task(fn, label)
        while len(self.tasks) > KEEP:
            oldest = next(k for k, t in self.tasks.items() if not t.active)
            del self.tasks[oldest]
        return task.start()

    def stop(self) -> None:
        running = self.active()
        if running is not None:
            running.stop()


def config_key(config: dict) -> str:
    """A stable key for a configuration dict (JSON with sorted keys)."""
    return json.dumps(config, sort_keys=True, default=str)


def experiments(name: str) -> Experiments:
    """This session's :class:`Experiments` of page ``name``."""
    return st.session_state.setdefault(f"exp_{name}", Experiments())


def _start(name: str, key: str, fn: Callable[[Progress], Any], label: str) -> None:
    experiments(name).start(key, fn, label)


def _stop(name: str) -> None:
    experiments(name).stop()


def _status(task: Task | None, other: Task | None, action: str) -> None:
    if task is None:
        if other is not None:
            st.info(f"A run with other settings ({other.label}) is still going; press **Run** to replace it with "
                    "these settings, or go back to those to watch it.", icon=":material/hourglass_top:")
        else:
            st.info(f"Press **Run** to {action}.", icon=":material/play_circle:")
    elif task.status in (RunStatus.QUEUED, RunStatus.RUNNING):
        fraction, message = task.progress.state()
        st.progress(fraction, text=f"{message or 'starting'} · {task.elapsed:.0f} s")
    elif task.status == RunStatus.FINISHED:
        st.caption(f":material/check_circle: Finished in {task.elapsed:.1f} s. Kept for these settings in this "
                   "session: come back to them and the results are here at once.")
    elif task.status == RunStatus.FAILED:
        st.error(task.error, icon=":material/error:")
    elif task.status == RunStatus.STOPPED:
        st.warning("Stopped before the end: press **Run** to start again.", icon=":material/stop_circle:")


def experiment(name: str, config: dict, fn: Callable[[Progress], Any], *, action: str = "run the experiment",
               label: str = "", auto: bool = False) -> Any | None:
    """Run / Stop buttons and the status line of page ``name``'s experiment with ``config``.

    Args:
        fn: ``fn(progress=...) -> result``, run in a worker process when the user presses Run (so a
            ``functools.partial`` of a library function, which pickles; see ``sae.app.tasks``).
        action: completes "Press Run to ...".
        label: a short description of ``config`` (shown while another setting's run is going).
        auto: start at once when this configuration has never run, stopping the page's run of another
            setting (for cheap experiments).
    Returns the finished result for ``config``, or None.
    """
    exps = experiments(name)
    key = config_key(config)
    if auto and exps.get(key) is None:  # cheap: a new setting replaces a run still going
        exps.start(key, fn, label)
    task = exps.get(key)
    buttons, status = st.columns([1, 4], vertical_alignment="center")
    with buttons:
        b = st.columns(2, gap="small")
        b[0].button("Run", type="primary", icon=":material/play_arrow:", key=f"{name}_run", width="stretch",
                    on_click=_start, args=(name, key, fn, label), disabled=task is not None and task.active,
                    help="Train in the background; the page stays usable.")
        b[1].button("Stop", icon=":material/stop:", key=f"{name}_stop", width="stretch", on_click=_stop,
                    args=(name,), disabled=exps.active() is None)
    watched = exps.active()

    @st.fragment(run_every=POLL_SECONDS if watched is not None else None)
    def _status_line() -> None:
        now = exps.active()
        if now is not watched:  # a run ended (or another began): redraw the page with its result
            st.rerun(scope="app")
        current = exps.get(key)
        _status(current, now if now is not current else None, action)

    with status:
        _status_line()
    task = exps.get(key)
    return task.result if task is not None and task.status == RunStatus.FINISHED else None


__all__ = ["experiment", "experiments", "Experiments", "config_key", "POLL_SECONDS", "KEEP"]
