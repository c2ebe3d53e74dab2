"""The run's timeline in the dashboard: every edit marked on the time-axis charts (:func:`marked`), listed with a
Rewind button where a checkpoint is kept (:func:`panel`), and the link that replays the run (:func:`replay_link`,
offered on opening by :func:`replay_offer`).

A replay link carries the settings the run began with (the usual query parameters), its schedule of edits
(``edits=``, ``sae.training.timeline.schedule_text``) and the step it had reached (``until=``). Opening it shows
what it will do and a Replay button: a new run from those settings and the same seed applies each edit at its step
and pauses at ``until``, step for step the run that was shared (tests/training/test_timeline.py).
"""

from __future__ import annotations

import time
from urllib.parse import urlencode, urlsplit, urlunsplit

import streamlit as st

from sae.app.job import Job
from sae.core.config import ConfigError
from sae.data import DataError
from sae.training.timeline import TimelineView, parse_schedule_text, schedule_text
from sae.ui import state, url
from sae.viz.marks import mark_edits

EDITS_PARAM, UNTIL_PARAM = "edits", "until"
ERROR_KEY = "sae_timeline_error"
PANEL_KEY = "timeline_panel"  # the Timeline expander's open state
RERUN_KEY = "sae_timeline_rerun"  # set by Rewind's callback: the live fragment that drew it reruns the whole app
LISTED = 40  # steps with edits listed in the panel (newest first)


def marked(fig, job: Job):
    """``fig`` (x: steps) with the run's edits marked (sae.viz.marks)."""
    return mark_edits(fig, job.timeline().edits)


# ------------------------------------------------------------------ the replay link
def replay_link(job: Job) -> str | None:
    """An absolute link that replays this run in any browser (see the module docstring), or None when the run
    cannot be replayed from a link: it continues a saved model, or trains on an uploaded file."""
    from sae.ui.share import settings_for

    view = job.timeline()
    if view.start is None or view.start_step != 0 or job.settings.dataset == state.UPLOAD:
        return None
    start = settings_for(job.model_config, view.start, job.settings.dataset, job.settings)
    query = urlencode(url.url_params(start) | {EDITS_PARAM: schedule_text(view.edits),
                                               UNTIL_PARAM: str(job.latest().step)})
    try:
        here = urlsplit(st.context.url or "")
    except Exception:  # noqa: BLE001 - no request behind this session (AppTest): a relative link
        here = urlsplit("")
    return urlunsplit((here.scheme, here.netloc, here.path or "/", query, ""))


def _link_replay() -> tuple[list, int] | None:
    """The replay this page's URL asks for: (edits, until), or None. ConfigError if it cannot be read."""
    text = st.query_params.get(EDITS_PARAM)
    if text is None:
        return None
    edits = parse_schedule_text(text)
    until = st.query_params.get(UNTIL_PARAM, "")
    try:
        steps = int(until)
    except ValueError:
        raise ConfigError(f"until={until!r} is not a step number.") from None
    if steps < 1:
        raise ConfigError("until= must be at least 1 step.")
    return edits, steps


def _on_replay() -> None:
    """Replay: a new run from the link's settings and schedule, trained to ``until`` and paused there."""
    try:
        edits, until = _link_replay()  # type: ignore[misc]
        job = state.set_job(state.new_job(url.settings_from_state(), schedule=edits))
    except (ConfigError, DataError) as exc:
        st.session_state[ERROR_KEY] = str(exc)
        return
    job.step(until)
    for key in (EDITS_PARAM, UNTIL_PARAM):
        st.query_params.pop(key, None)


def replay_offer() -> None:
    """On a page opened by a replay link: what the replay will do, and its button (nothing otherwise)."""
    try:
        replay = _link_replay()
    except ConfigError as exc:
        st.warning(f"This link's replay cannot be read: {exc}", icon=":material/warning:")
        return
    if replay is None:
        return
    edits, until = replay
    listed = "; ".join(f"step {e.step:,}: {e.label()}" for e in edits[:6]) + (" …" if len(edits) > 6 else "")
    with st.container(border=True):
        st.markdown(f":material/replay: **This link replays a run**: the settings in the sidebar and their seed, "
                    f"then {len(edits)} edit{'s' * (len(edits) != 1)}" + (f" ({listed})" if edits else "")
                    + f", to step {until:,}. It trains the same steps as the run that was shared.")
        st.button("Replay", key="timeline_replay", on_click=_on_replay, type="primary", icon=":material/replay:")


# ------------------------------------------------------------------ the panel
def _on_rewind(step: int) -> None:
    job = state.own_job()
    if job is None:
        return
    try:
        job.rewind(step)
    except ConfigError as exc:
        st.session_state[ERROR_KEY] = str(exc)
        return
    follow_settings(job)
    st.session_state[RERUN_KEY] = True  # the sidebar (status line, widgets, twin) shows the rewound run too


def follow_settings(job: Job) -> None:
    """Put the job's settings (after a rewind or a promoted twin changed them) in the panel's widgets, so the next
    run of the script does not apply the old values again (a callback: before the widgets are drawn)."""
    for key, value in url.widget_values(job.settings).items():
        st.session_state[key] = value


def _ago(t: float) -> str:
    seconds = max(0.0, time.time() - t)
    return f"{seconds:.0f} s ago" if seconds < 90 else f"{seconds / 60:.0f} min ago" if seconds < 5400 else \
        time.strftime("%H:%M", time.localtime(t))


def _groups(view: TimelineView) -> list[tuple[int, list]]:
    """(step, its edits) newest first, at most LISTED steps."""
    steps: dict[int, list] = {}
    for edit in view.edits:
        steps.setdefault(int(edit.step), []).append(edit)
    return sorted(steps.items(), reverse=True)[:LISTED]


def panel(job: Job) -> None:
    """The "Timeline" expander: the edits, newest first, with Rewind where a checkpoint is kept, and the replay
    link."""
    if st.session_state.pop(RERUN_KEY, False):
        st.rerun(scope="app")
    view = job.timeline()
    error = st.session_state.pop(ERROR_KEY, None) or job.action_error
    if error:
        st.session_state[PANEL_KEY] = True  # open, to show it
    # a fixed label and a key that tracks whether it is open: otherwise reruns of the live view closed it under the
    # user's eyes (a label with the count was a new expander at every edit)
    with st.expander("Timeline", icon=":material/history:", key=PANEL_KEY, on_change="rerun"):
        if error:
            st.error(error, icon=":material/error:")
        st.caption(f"**{len(view.edits)} edit{'s' * (len(view.edits) != 1)}.** Every live change is recorded with the step it took effect at and marked on the charts "
                   "(dotted lines; hover the triangles). **Rewind** goes back to the state just before a mark "
                   "(weights, optimiser state, batch order, settings) and continues from there as a new branch of "
                   "the run; the edits after it are dropped. Checkpoints use bounded memory: the oldest go first, "
                   "the start is always kept.")
        rows = _groups(view)
        if 0 in view.checkpoints and not any(step == 0 for step, _ in rows):
            rows.append((0, []))
        for step, edits in rows:
            left, middle, right = st.columns([1, 4, 1.2], vertical_alignment="center")
            left.markdown(f"**step {step:,}**")
            what = " · ".join(e.label() for e in edits) or "the start"
            when = f" · {_ago(edits[-1].time)}" if edits else ""
            middle.markdown(f"{what}<span style='color:#888'>{when}</span>", unsafe_allow_html=True)
            if step in view.checkpoints and not job.read_only:
                right.button("Rewind", key=f"timeline_rewind_{step}", on_click=_on_rewind, args=(step,),
                             icon=":material/undo:", width="stretch",
                             help=f"Back to the state just before step {step:,}'s edits.")
        link = replay_link(job)
        st.markdown("**Link that replays this run**")
        if link is None:
            st.caption("A run that continues a saved model, or trains on an uploaded file, cannot be replayed "
                       "from a link.")
        else:
            st.code(link, language=None, wrap_lines=True)
            st.caption(f"Opens this run's first settings with its {len(view.schedule())} scheduled edit(s) in any "
                       f"browser; Replay there trains to step {job.latest().step:,} and reproduces this run.")


__all__ = ["marked", "panel", "follow_settings", "replay_link", "replay_offer", "EDITS_PARAM", "UNTIL_PARAM"]
