"""The Lessons page's Streamlit side: choosing a lesson and a step, "Set up this step", "Check my run", the hint
after a wrong try, the formula with the run's live numbers, and the learner's progress.

The lessons, their checks and formulas are ``sae.app.lessons`` (no Streamlit); a check reads a
:class:`sae.app.run_view.RunView` of the session's job (:func:`run_view`, one per snapshot version, kept in the job's
``cache``), with the common-mistake comparisons this session trained on the Common mistakes page
(:func:`mistake_results`).

Progress (:func:`progress`) belongs to the browser: its id (``sae.ui.identity``) keys the rows of
``lessons.sqlite`` in the data directory (``sae.app.lesson_progress.ProgressStore``), so a reload, a new tab or a
server restart shows the same steps done. Until the browser has reported its id (the first moments of a session;
never where local storage is blocked, or under AppTest unless a test sets it) progress is kept in the session, and
moves into the store as soon as the id is known; the page says which.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace

import streamlit as st

from sae.app.lesson_checks import CheckResult
from sae.app.lesson_progress import LearnerProgress, ProgressError, ProgressStore, SessionProgress, StepRecord
from sae.app.lessons import LESSONS, Lesson, Step, dead_or_lowest, farthest, lesson, most_edge_like, most_local, \
    most_penalised
from sae.app.run_view import RunView
from sae.app.settings import Settings, defaults_for
from sae.runs.store import default_root
from sae.training.status import ACTIVE_STATUSES, RunStatus
from sae.ui import state, url
from sae.ui.identity import browser_id
from sae.ui.live import live

logger = logging.getLogger(__name__)

SESSION_KEY = "sae_lessons_session"  # st.session_state: SessionProgress (no browser id yet)
MERGED_KEY = "sae_lessons_merged"  # st.session_state: the browser id the session's progress was moved to
RESULTS_KEY = "sae_lessons_results"  # st.session_state: {(lesson, step): CheckResult} the latest checks here
NOTE_KEY = "sae_lessons_note"  # st.session_state: (lesson, step, kind, text): what a setup or twin button did
LESSON_KEY = "lesson_pick"  # widget: the chosen lesson
MISTAKE_WIDGET = "mk_which"  # the Common mistakes page's radio (pages/9_common_mistakes.py)
MISTAKES_EXPERIMENT = "mistakes"  # that page's experiments (sae.ui.experiment)
GOTO_KEY = "share_goto"  # sae.ui.share.follow_goto: a page to switch to on the next script run

FOCUS = {farthest: "the unit farthest from ρ", most_penalised: "the unit paying the most KL",
         dead_or_lowest: "a dead unit, else the least active", most_edge_like: "the most edge-like filter",
         most_local: "the most local filter"}
FIELD_NAMES = {"dataset": "data", "n_hidden": "hidden units", "activation": "activation", "penalty": "penalty",
               "optimizer": "optimiser", "rho": "ρ", "beta": "β", "weight_decay": "λ", "lr": "learning rate",
               "max_iter": "iterations", "epochs": "epochs"}


# ------------------------------------------------------------------ progress
@st.cache_resource(show_spinner=False, max_entries=4)
def _open_store(root: str) -> ProgressStore:
    return ProgressStore(root)


def progress_store() -> tuple[ProgressStore | None, str]:
    """The server's progress store in the data directory, or (None, why not)."""
    try:
        return _open_store(str(default_root())), ""
    except ProgressError as exc:
        return None, str(exc)


def progress() -> tuple[LearnerProgress | SessionProgress, str]:
    """This browser's progress, and "" when it is saved for the browser, else why it is kept for this session only.
    A session's progress moves into the store once its browser id is known."""
    session: SessionProgress = st.session_state.setdefault(SESSION_KEY, SessionProgress())
    learner = browser_id()
    store, problem = progress_store()
    if learner is None:
        return session, ("this browser has not told the server its id yet (it does a moment after the page opens, "
                         "unless the browser blocks local storage)")
    if store is None:
        return session, f"the progress file cannot be used: {problem}"
    mine = LearnerProgress(store, learner)
    if st.session_state.get(MERGED_KEY) != learner:
        try:
            store.merge(learner, session.records())
            session.clear()
            st.session_state[MERGED_KEY] = learner
        except (ProgressError, OSError, ValueError) as exc:
            logger.warning("could not save the session's lesson progress: %s", exc)
    return mine, ""


def records() -> dict[tuple[str, str], StepRecord]:
    try:
        return progress()[0].records()
    except Exception as exc:  # noqa: BLE001 - a damaged or locked file must not break the page
        logger.warning("cannot read the lesson progress: %s", exc)
        return {}


def done_count(item: Lesson, recs: dict) -> int:
    return sum(1 for s in item.steps if recs.get((item.id, s.id), StepRecord(item.id, s.id)).done)


# ------------------------------------------------------------------ the run as the checks see it
def mistake_results() -> dict:
    """The common-mistake comparisons this session finished (mistake name -> result; the newest per mistake)."""
    out = {}
    exps = st.session_state.get(f"exp_{MISTAKES_EXPERIMENT}")
    for key, task in (exps.tasks.items() if exps is not None else ()):
        if task.status == RunStatus.FINISHED and task.result is not None:
            try:
                out[json.loads(key)["mistake"]] = task.result
            except (ValueError, KeyError, TypeError):
                continue
    return out


def run_view(job) -> RunView:
    """The session's run as the checks see it, computed once per snapshot version (of the run and its twin)."""
    mistakes = mistake_results()
    twin = job.twin_latest()
    version = (job.latest().version, None if twin is None else twin.version, job.twin_setup() is not None,
               repr(job.trainer.config), tuple(sorted((k, id(v)) for k, v in mistakes.items())))
    return job.cache.memo("lesson_view", version, lambda: RunView.from_job(job, mistakes))


# ------------------------------------------------------------------ buttons
def setup_settings(setup: dict, current: Settings) -> Settings:
    """What "Set up this step" puts in the sidebar: with a data set, that set's defaults and the setup; without,
    the current settings and the setup."""
    base = defaults_for(setup["dataset"]) if "dataset" in setup else current
    return replace(base, **setup)


def setup_text(step: Step) -> str:
    parts = []
    for k, v in step.setup.items():
        shown = url.fmt(v) if isinstance(v, float) else str(v)
        parts.append(f"{FIELD_NAMES.get(k, k)} {shown}")
    return ", ".join(parts)


def _note(item: Lesson, step: Step, kind: str, text: str) -> None:
    st.session_state[NOTE_KEY] = (item.id, step.id, kind, text)


def _on_setup(lesson_id: str, step_id: str) -> None:
    item = lesson(lesson_id)
    step = item.step(step_id)
    job = state.current_job()
    said = []
    if step.pause_first and job is not None and job.status in ACTIVE_STATUSES:
        job.pause()
        said.append("paused the run")
    if step.setup:
        target = setup_settings(dict(step.setup), url.settings_from_state())
        for key, value in url.widget_values(target).items():
            st.session_state[key] = value
        said.append(f"set {setup_text(step)} in the sidebar")
    if step.mistake:
        st.session_state[MISTAKE_WIDGET] = step.mistake
        st.session_state[GOTO_KEY] = "pages/9_common_mistakes.py"
        said.append("switched the mistake on")
    after = (" A change of data set, hidden size or optimiser needs a new run: press Train (or “Restart with these "
             "settings”) in the sidebar." if step.setup and any(k in step.setup for k in ("dataset", "n_hidden",
                                                                                        "optimizer")) else "")
    _note(item, step, "info", "Done: " + "; ".join(said) + "." + after)


def _on_twin(lesson_id: str, step_id: str) -> None:
    item = lesson(lesson_id)
    step = item.step(step_id)
    job = state.current_job()
    if job is None or not step.twin:
        return
    _, structural = job.settings.changes(url.settings_from_state())
    if structural:
        _note(item, step, "error", "The sidebar's settings need a new run first: press Train (or “Restart with "
                                   "these settings”), then add the twin.")
        return
    if job.final:
        _note(item, step, "error", "This run has ended: press Train for a new one, then add the twin.")
        return
    try:
        job.add_twin(0, **step.twin)
    except Exception as exc:  # noqa: BLE001 - ConfigError from the trainer, or a worker gone: say it
        _note(item, step, "error", f"The twin could not be added: {exc}")
        return
    error = job.action_error
    if error:
        _note(item, step, "error", f"The twin could not be added: {error}")
        return
    changes = ", ".join(f"{FIELD_NAMES.get(k, k)} {url.fmt(v)}" for k, v in step.twin.items())
    go = "press Resume in the sidebar to train both" if job.status == RunStatus.PAUSED else "both train on"
    _note(item, step, "success", f"Twin added: {changes}, from step 0 (the run's initial weights); {go}.")


def _on_check(lesson_id: str, step_id: str) -> None:
    step = lesson(lesson_id).step(step_id)
    job = state.current_job()
    if job is None:
        return
    try:
        result = step.check(run_view(job))
    except Exception as exc:  # noqa: BLE001 - a bug in a check must not lose the page; it is not the learner's fault
        logger.exception("lesson check %s.%s failed", lesson_id, step_id)
        st.session_state.setdefault(RESULTS_KEY, {})[(lesson_id, step_id)] = \
            CheckResult(False, f"The check could not read your run ({exc}). Nothing was recorded.")
        return
    st.session_state.setdefault(RESULTS_KEY, {})[(lesson_id, step_id)] = result
    try:
        progress()[0].record(lesson_id, step_id, result.passed, result.message)
    except Exception as exc:  # noqa: BLE001 - shown, the check's answer still stands
        logger.warning("cannot save the lesson progress: %s", exc)
        st.session_state[NOTE_KEY] = (lesson_id, step_id, "warning", f"Your progress could not be saved: {exc}")


def _on_choose(lesson_id: str, index: int) -> None:
    st.session_state[step_key(lesson_id)] = index


def _on_reset(lesson_id: str) -> None:
    prog, _ = progress()
    prog.clear(lesson_id)
    results = st.session_state.get(RESULTS_KEY, {})
    for key in [k for k in results if k[0] == lesson_id]:
        del results[key]


# ------------------------------------------------------------------ drawing
def step_key(lesson_id: str) -> str:
    return f"lesson_step_{lesson_id}"


HOW_IT_WORKS = ("Each step asks you to do something with the run in the sidebar. **Check my run** measures your run as "
                "it is now and answers with its own numbers; after a wrong try it adds a hint. Below each step, the "
                "formula it is about, with your run's numbers in it.")


DONE_MARK = ":green[:material/check_circle:]"  # a step done, in its title (Markdown)
TODO_MARK = ":gray[:material/radio_button_unchecked:]"  # a step not done yet, in the step list


def choose_lesson(recs: dict) -> Lesson:
    """The lesson picker, and a line with the steps done in each lesson begun."""
    titles = {x.id: x.title for x in LESSONS}
    chosen = st.selectbox("Lesson", list(titles), format_func=titles.get, key=LESSON_KEY, persist_state="session")
    begun = [f"{x.title} {done_count(x, recs)}/{len(x.steps)}" for x in LESSONS if done_count(x, recs)]
    st.caption(":material/checklist: Steps done: " + (" · ".join(begun) if begun else "none yet"))
    return lesson(chosen)


def choose_step(item: Lesson, recs: dict) -> int:
    """The step list: one button per step, a check mark on the steps done, the chosen one outlined. The first time
    a lesson is shown in a session, the chosen step is its first step not done."""
    done = [recs.get((item.id, s.id), StepRecord(item.id, s.id)).done for s in item.steps]
    key = step_key(item.id)
    if key not in st.session_state:
        st.session_state[key] = next((i for i, d in enumerate(done) if not d), 0)
    chosen = min(int(st.session_state[key]), len(item.steps) - 1)
    st.markdown("**Steps**")
    for i, step in enumerate(item.steps):
        st.button(f"{DONE_MARK if done[i] else TODO_MARK} {i + 1}. {step.title}", key=f"lesson_goto_{item.id}_{i}",
                  on_click=_on_choose, args=(item.id, i), type="secondary" if i == chosen else "tertiary",
                  width="stretch", help="Done" if done[i] else "Not done yet")
    return chosen


def progress_line(item: Lesson, recs: dict, saved_why: str) -> None:
    n = done_count(item, recs)
    left, right = st.columns([4, 1], vertical_alignment="center")
    where = ("saved for this browser on this server" if not saved_why else
             f"kept for this session only: {saved_why}")
    left.progress(n / len(item.steps), text=f"**{n} of {len(item.steps)} steps done** · progress {where}")
    right.button("Start again", key=f"lesson_reset_{item.id}", on_click=_on_reset, args=(item.id,),
                 icon=":material/restart_alt:", width="stretch", help="Forget this lesson's progress.")


def step_card(job, item: Lesson, index: int, recs: dict) -> None:
    """The chosen step: what to do, its buttons, the latest check and the hint, the formula with live numbers."""
    step = item.steps[index]
    record = recs.get((item.id, step.id), StepRecord(item.id, step.id))
    mark = f" {DONE_MARK}" if record.done else ""
    st.subheader(f"Step {index + 1} of {len(item.steps)} · {step.title}{mark}", anchor=False)
    st.markdown(step.instruction)
    if step.links:
        params = url.url_params(job.settings) or None
        cols = st.columns(len(step.links) + 2)
        for col, (script, label) in zip(cols, step.links, strict=False):
            col.page_link(script, label=f"Open {label}", icon=":material/open_in_new:", query_params=params)

    buttons = st.container(horizontal=True, gap="small")
    if step.setup or step.mistake:
        buttons.button("Set up this step", key=f"lesson_setup_{item.id}_{step.id}", on_click=_on_setup,
                       args=(item.id, step.id), icon=":material/tune:",
                       help=("Puts " + setup_text(step) + " in the sidebar" if step.setup else
                             "Switches the mistake on and opens Common mistakes")
                       + (" (pausing the run first)" if step.pause_first else "") + ".")
    if step.twin:
        changes = ", ".join(f"{FIELD_NAMES.get(k, k)} = {url.fmt(v)}" for k, v in step.twin.items())
        buttons.button(f"Add the twin ({changes})", key=f"lesson_twin_{item.id}_{step.id}", on_click=_on_twin,
                       args=(item.id, step.id), icon=":material/call_split:",
                       help="A second model from the run's initial weights, trained beside it on the same "
                            f"batches with {changes}.")
    buttons.button("Check my run", key=f"lesson_check_{item.id}_{step.id}", on_click=_on_check,
                   args=(item.id, step.id), type="primary", icon=":material/task_alt:",
                   help="Measures your run as it is now and says what it found.")

    note = st.session_state.get(NOTE_KEY)
    if note and note[:2] == (item.id, step.id):
        getattr(st, note[2])(note[3], icon=":material/info:" if note[2] == "info" else None)
    result = st.session_state.get(RESULTS_KEY, {}).get((item.id, step.id))
    if result is not None:
        if result.passed:
            st.success(result.message, icon=":material/check_circle:")
        else:
            st.error(result.message, icon=":material/cancel:")
            st.info(f"**Hint:** {step.hint}", icon=":material/lightbulb:")
    elif record.tries:
        when = time.strftime("%d %b %H:%M", time.localtime(record.updated))
        verdict = "passed" if record.last_ok else "did not pass"
        st.caption(f"Your last check ({when}) {verdict}: {record.message}")
        if not record.last_ok:
            st.info(f"**Hint:** {step.hint}", icon=":material/lightbulb:")
    if result is not None and result.passed and index + 1 < len(item.steps):
        st.button("Next step", key=f"lesson_next_{item.id}_{step.id}", on_click=_on_choose, args=(item.id, index + 1),
                  icon=":material/arrow_forward:")

    st.markdown("**The math, with your run's numbers**")
    focus = FOCUS.get(step.focus)
    unit = None
    if focus is not None:
        units = job.model_config.n_hidden
        unit = st.number_input(f"Unit j (empty: {focus})", min_value=0, max_value=units - 1, value=None, step=1,
                               key=f"lesson_unit_{item.id}_{step.id}_{units}", placeholder=focus,
                               help=f"Any of the run's {units} hidden units, numbered from 0 as on the Filters page.")

    def draw(current) -> None:
        view = run_view(current)
        j = int(unit) if unit is not None else step.focus(view)
        for line in step.formula(view, j):
            st.latex(line)
        snap = current.latest()
        st.caption(f"Your run now: step {snap.step:,} · {view.dataset} · {snap.status} · measured on {view.m:,} "
                   f"samples" + (f" · twin at step {view.twin.step:,}" if view.twin is not None else "")
                   + ". The numbers follow the run while it trains.")

    live(draw)


__all__ = ["HOW_IT_WORKS", "DONE_MARK", "TODO_MARK", "progress", "progress_store", "records", "run_view", "mistake_results", "setup_settings",
           "choose_lesson", "choose_step", "step_card", "progress_line", "SESSION_KEY", "RESULTS_KEY", "LESSON_KEY"]
