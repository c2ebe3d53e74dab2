"""The twin in the dashboard: its controls in the sidebar (add one, see where it stands, remove or promote it) and
the bits of page chrome every view uses to show it beside the run.

A twin trains beside the run from the same initial weights and minibatch order with a few live settings changed
(``sae.app.job.Job.add_twin``; what the pages derive from it: ``sae.app.twin``; its figures: ``sae.viz.twin``).

- :func:`controls`: the "Twin" expander under the run's buttons (``sae.ui.controls.panel`` draws it): a small form
  (the twin's ρ, β, λ and learning rate, set to the run's; the ones moved away from the run's are what the twin
  changes; from the start or from now), then, while a twin exists, its settings, whether it is catching up, and
  Promote (only when level with the run) and Remove;
- :func:`caption`: the line each page shows above its views while a twin exists ("Twin · β 10 …");
- :func:`differences_table`: run vs twin on loss, reconstruction error, mean ρ̂, dead units and L0.
"""

from __future__ import annotations

import time

import streamlit as st

from sae.app.derived import Derived
from sae.app.job import Job
from sae.app.polling import live_polls, refresh_interval, server_cores
from sae.app.twin import TWIN_FIELDS, TwinState, add_twin, differences, start_step, twin_state
from sae.core.config import ConfigError
from sae.training.status import RunStatus
from sae.training.timeline import SYMBOLS
from sae.ui import state, url

ERROR_KEY = "sae_twin_error"  # the last twin command's error, shown once in the expander
PENDING_KEY = "sae_twin_pending"  # time.monotonic() of an "Add a twin" whose twin has not shown yet
ADD_WAIT = 3.0  # s the Add button's callback waits for the twin (a worker that is still starting takes longer:
# the expander then says so and polls until it shows)
PENDING_POLL = 0.5  # s between those polls
PENDING_GIVE_UP = 60.0  # s after which a twin that never showed is no longer waited for
BASE_KEY = "sae_twin_base"  # the run's values the form was last set to
WIDGETS = {"rho": "twin_rho", "beta": "twin_beta", "weight_decay": "twin_lambda", "lr": "twin_lr"}  # field -> key
OPTIONS = {"rho": url.RHO_OPTIONS, "beta": url.BETA_OPTIONS, "weight_decay": url.LAMBDA_OPTIONS,
           "lr": url.LR_OPTIONS}
RUN_WIDGETS = {"rho": "rho", "beta": "beta", "weight_decay": "lambda", "lr": "lr"}  # the panel's own keys
STARTS = {"start": "from the start", "now": "from now"}
HOW = "dashed (in the same colours) or violet in the charts"


# ---------------------------------------------------------------------------------- what the form offers

def fields(job: Job) -> tuple[str, ...]:
    """The settings a twin of this run can usefully change: ρ only under the KL penalty, β not under TopK, the
    learning rate not under L-BFGS (its line search sets the step)."""
    s = job.settings
    skip = {"rho"} if s.penalty != "kl" else set()
    skip |= {"beta"} if s.penalty == "topk" else set()
    skip |= {"lr"} if s.optimizer == "lbfgs" else set()
    return tuple(f for f in TWIN_FIELDS if f not in skip)


def run_values(job: Job) -> dict[str, float]:
    """The run's current values of the settings a twin may change."""
    return {f: float(getattr(job.settings, f)) for f in TWIN_FIELDS}


def _options(field: str, value: float) -> tuple[float, ...]:
    """The slider's choices, with the run's own value among them."""
    options = OPTIONS[field]
    return options if value in options else tuple(sorted({*options, value}))


def _seed_form(job: Job) -> None:
    """Before the form is drawn: its sliders show the run's values, and follow them when they change."""
    base = run_values(job)
    if st.session_state.get(BASE_KEY) != base or any(k not in st.session_state for k in WIDGETS.values()):
        for field, key in WIDGETS.items():
            st.session_state[key] = base[field]
        st.session_state[BASE_KEY] = base


def requested_changes(job: Job) -> dict[str, float]:
    """The settings the form's sliders moved away from the run's values."""
    base = run_values(job)
    out = {}
    for field in fields(job):
        value = st.session_state.get(WIDGETS[field])
        if value is not None and float(value) != base[field]:
            out[field] = float(value)
    return out


# ---------------------------------------------------------------------------------- callbacks

def _carry_out(command) -> Job | None:
    """Run a twin command on the session's job; its error (raised, or reported by the trainer) goes to the
    expander as one line."""
    job = state.current_job()
    if job is None:
        return None
    try:
        command(job)
    except ConfigError as exc:
        st.session_state[ERROR_KEY] = str(exc)
        return job
    if job.action_error:
        st.session_state[ERROR_KEY] = job.action_error
    return job


def on_add() -> None:
    from_start = st.session_state.get("twin_from") != "now"
    job = _carry_out(lambda job: add_twin(job, requested_changes(job), from_start=from_start, timeout=ADD_WAIT))
    if job is not None and job.twin_setup() is None and ERROR_KEY not in st.session_state:
        st.session_state[PENDING_KEY] = time.monotonic()  # its worker is still starting: wait for it (_pending)


def on_remove() -> None:
    _carry_out(lambda job: job.remove_twin())


def on_promote() -> None:
    job = _carry_out(lambda job: job.promote_twin())
    if job is not None and job.twin_setup() is None:  # the run took the twin's settings: so does the panel
        values = url.widget_values(job.settings)
        for key in RUN_WIDGETS.values():
            st.session_state[key] = values[key]


# ---------------------------------------------------------------------------------- the sidebar

def controls(job: Job) -> None:
    """The "Twin" expander of the sidebar (see the module docstring)."""
    twin = twin_state(job)
    title = "Twin · " + twin.label if twin is not None else "Add a twin"
    with st.expander(title, icon=":material/call_split:", expanded=twin is not None):
        error = st.session_state.pop(ERROR_KEY, None)
        if error:
            st.error(error, icon=":material/error:")
        pending = st.session_state.get(PENDING_KEY)
        if pending is not None and (twin is not None or job.action_error
                                    or time.monotonic() - pending > PENDING_GIVE_UP):
            st.session_state.pop(PENDING_KEY, None)  # it showed, failed, or never came
            if twin is None:
                st.error(job.action_error or "The twin did not start: the run's worker did not answer.",
                         icon=":material/error:")
            pending = None
        if twin is not None:
            _state(job, twin)
        elif pending is not None:
            _pending(job)
        else:
            _form(job)


def _form(job: Job) -> None:
    _seed_form(job)
    st.caption("A second model trained beside this run from the same initial weights and the same minibatches, "
               "in lock step. Move the settings it should change; the others follow the run.")
    base = run_values(job)
    with st.form("twin_form", border=False):
        for field in fields(job):
            st.select_slider(f"Twin's {SYMBOLS[field]}", _options(field, base[field]), key=WIDGETS[field],
                             format_func=url.fmt, help=f"The run's: {url.fmt(base[field])}.")
        first = start_step(job)
        st.radio("Start", tuple(STARTS), key="twin_from", horizontal=True,
                 format_func=lambda k: f"{STARTS[k]} (step {first:,})" if k == "start" else STARTS[k],
                 help="From the start: the twin trains from the run's first step and catches up (the run waits), "
                      "then both go on together. From now: it starts from the run's weights as they are.")
        st.form_submit_button("Add a twin", icon=":material/call_split:", on_click=on_add, key="btn_twin_add",
                              type="primary", width="stretch", disabled=job.final,
                              help="The run has ended: start a new one to add a twin." if job.final else None)


def _pending(job: Job) -> None:
    """The twin was asked for but has not shown yet (the run's worker process is still starting): say so, and look
    again every PENDING_POLL s; redraw the app when it shows or fails."""

    @st.fragment(run_every=PENDING_POLL)
    def _wait() -> None:
        current = state.current_job()
        st.caption(":orange[◔] Adding the twin: waiting for the run's worker to start…")
        if current is not job or job.twin_setup() is not None or job.action_error or \
                time.monotonic() - st.session_state.get(PENDING_KEY, 0.0) > PENDING_GIVE_UP:
            st.rerun(scope="app")

    _wait()


def _state(job: Job, twin: TwinState) -> None:
    st.markdown(f":violet[**Twin · {twin.label}**] beside the run ({twin.run_label}), from step {twin.from_step:,}")
    _progress(job, twin)
    row = st.columns(2, gap="small")
    row[0].button("Promote", on_click=on_promote, key="btn_twin_promote",
                  disabled=not twin.level, width="stretch",
                  help="The twin becomes the run (its weights, settings and history); recorded as a new branch."
                  if twin.level else "Promote it once it is level with the run.")
    row[1].button("Remove", on_click=on_remove, key="btn_twin_remove", width="stretch",
                  help="Stop training the twin; the run goes on.")


def progress_text(twin: TwinState) -> str:
    icon = ":red[▲]" if twin.diverged else ":orange[◔]" if twin.behind else ":violet[●]"
    return f"{icon} {twin.progress_text()}"


def _progress(job: Job, twin: TwinState) -> None:
    """Where the twin stands, refreshed with the live views while the run trains; a change that matters to the
    buttons (caught up, diverged, gone) redraws the app."""
    every = refresh_interval(live_polls().count(), server_cores()) if job.status == RunStatus.RUNNING else None
    level_at_render = (twin.level, twin.diverged)

    @st.fragment(run_every=every)
    def _line() -> None:
        current = state.current_job()
        now = twin_state(current) if current is not None else None
        if current is not job or now is None:
            st.rerun(scope="app")
        st.caption(progress_text(now))
        if (now.level, now.diverged) != level_at_render:
            st.rerun(scope="app")

    _line()


# ---------------------------------------------------------------------------------- page chrome

def caption(twin: TwinState | None, how: str = HOW) -> None:
    """The line a page shows above its views while a twin exists (nothing without one); ``how``: where the page
    shows the twin."""
    if twin is None:
        return
    st.markdown(f":violet-badge[:material/call_split: **Twin · {twin.label}**] beside the **{twin.run_name}**, from "
                f"step {twin.from_step:,} · {twin.progress_text()} · the twin is {how}.")


def differences_table(run: Derived, twin_derived: Derived, twin: TwinState) -> None:
    """Run vs twin on the headline numbers, with the difference."""
    rows = differences(run, twin_derived)
    st.dataframe({"": [name for name, *_ in rows],
                  twin.run_name: [_number(a) for _, a, _, _ in rows],
                  twin.twin_name: [_number(b) for _, _, b, _ in rows],
                  "twin − run": [_number(d, signed=True) for *_, d in rows]},
                 hide_index=True, width="stretch")


def _number(value: float, signed: bool = False) -> str:
    if value != value:  # NaN
        return "—"
    return format(value, "+.4g" if signed else ".4g")


__all__ = ["controls", "caption", "differences_table", "progress_text", "fields", "run_values",
           "requested_changes", "on_add", "on_remove", "on_promote", "WIDGETS", "HOW"]
