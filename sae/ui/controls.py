"""The control panel: the same sidebar on every page: navigation, the Train / Pause / Step / Stop / Reset
buttons and their callbacks, the live status line with the doctor's line under it (``sae.ui.doctor``), and the
settings widgets.

The settings' round trip through the URL (which query parameter holds which setting, what a link may
hold) is ``sae.ui.url``; the "Your data" upload widgets are ``sae.ui.upload``.

What a change does:
- rho, beta, lambda, learning rate, and the budget (epochs, L-BFGS iterations): applied to the running
  trainer at once (``Trainer.set_hyperparameters``); the charts show the effect. A budget lowered below the
  current step finishes the run; one raised after the run finished lets Resume continue it.
- the data set: the other settings take that set's defaults (``sae.app.settings.defaults_for``).
- anything else (data set, hidden size, activation, ...): an untouched (idle) job is rebuilt
  silently; a job that has trained asks before restarting.

Bad input never costs the user what they have:
- a URL value the widgets cannot show falls back to its default with a warning (``sae.ui.url.check_url``);
- the widgets themselves are bounded (number inputs have min/max, sliders offer valid values only);
- a bad uploaded file shows the reason and changes nothing (``sae.ui.upload``).
"""

from __future__ import annotations

import math

import streamlit as st

from sae.app.polling import live_polls, refresh_interval, server_cores
from sae.app.job import Job
from sae.app.settings import Settings
from sae.core.config import ACTIVATIONS, OPTIMIZERS, ConfigError
from sae.data import DATASETS, DataError
from sae.training.status import ACTIVE_STATUSES, RunStatus
from sae.ui import doctor, state, twin
from sae.ui.upload import upload_widgets
from sae.ui.url import (BATCH_OPTIONS, BETA_OPTIONS, DEFAULTS, LAMBDA_OPTIONS, LR_OPTIONS, PENALTY_LABELS, RHO_OPTIONS,
                        dataset_defaults_to_widgets, fmt, settings_from_state, sync_url, sync_widgets, url_params)

POLL_SECONDS = 0.3  # how often live views redraw while training (about 3 per second)
QUEUED_POLL_SECONDS = 1.0  # how often a queued run's status line looks whether its turn has come

PENALTY_HELP = ("KL: β·Σⱼ KL(ρ‖ρ̂ⱼ), the classic (needs activations in [0, 1]). L1: β·(1/m)·Σᵢ Σⱼ |aᵢⱼ|. "
                "TopK: keep the k largest activations of each sample, no penalty term.")
DATASET_LABELS = {"patches": "8×8 whitened natural-image patches (10,000)",
                  "mnist": "MNIST handwritten digits, 28×28 (5,000)",
                  "digits": "scikit-learn digits, 8×8 (1,797)",
                  "toy": "four one-hot vectors: the 4-2-4 problem"}
FIELD_LABELS = {"dataset": "data set", "n_hidden": "hidden size", "activation": "activation",
                "penalty": "penalty", "topk": "k", "optimizer": "optimizer", "batch_size": "batch size",
                "epochs": "epochs", "max_iter": "iterations", "seed": "seed"}
UPLOAD = state.UPLOAD

PAGES = (  # (script, label, icon); the entry file is the Train page
    ("dashboard.py", "Train", ":material/model_training:"),
    ("pages/1_kl_penalty.py", "KL penalty", ":material/function:"),
    ("pages/2_filters.py", "Filters", ":material/grid_view:"),
    ("pages/3_activations.py", "Activations", ":material/bar_chart:"),
    ("pages/4_codes.py", "Codes (PCA)", ":material/scatter_plot:"),
    ("pages/5_reconstructions.py", "Reconstructions", ":material/compare:"),
    ("pages/6_denoising.py", "Denoising", ":material/blur_off:"),
    ("pages/7_anomaly_detection.py", "Anomaly detection", ":material/crisis_alert:"),
    ("pages/8_self_taught.py", "Self-taught features", ":material/school:"),
    ("pages/9_common_mistakes.py", "Common mistakes", ":material/bug_report:"),
    ("pages/10_runs.py", "Runs", ":material/table_rows:"),
    ("pages/11_sweep.py", "Sweep", ":material/grid_on:"),
    ("pages/12_lessons.py", "Lessons", ":material/menu_book:"),
    ("pages/13_classroom.py", "Classroom", ":material/groups:"),
)


def _common(key: str) -> dict:
    return {"key": key, "persist_state": "session"}


OWN_OBJECTIVE_NOTE = ("This page's experiment sets its own model and objective (on the page): the sidebar's "
                      "settings below belong to the Train run and are not used here.")
NO_TARGET_HELP = "ρ is the KL penalty's target; the L1 and TopK penalties have none, so it is not used now."


def settings_widgets(notes: dict | None = None, experiment: bool = False) -> Settings:
    """Draw the settings widgets (in the current container) and return what they say. ``notes`` receives
    placeholders for remarks that need the data (``"batch"``). ``experiment``: the page runs its own
    experiments and ignores these settings (they are marked so)."""
    d = DEFAULTS
    notes = {} if notes is None else notes
    if experiment:
        st.caption(f":material/info: {OWN_OBJECTIVE_NOTE}")
    st.markdown("**Data and model**" + (" · :gray[the Train run's]" if experiment else ""))
    upload = st.session_state.get(state.UPLOAD_KEY)
    options = DATASETS + ((UPLOAD,) if upload is not None else ())
    if st.session_state.get("data") not in options:
        st.session_state["data"] = d.dataset
    dataset = st.selectbox("Data set", options, index=options.index(d.dataset), **_common("data"),
                           format_func=lambda v: f"your file: {upload.name}" if v == UPLOAD else v,
                           on_change=lambda: dataset_defaults_to_widgets(st.session_state["data"]),
                           help="Built-in and offline, or your own file (below). Changing it starts a new run "
                                "and sets the other settings to that set's defaults.")
    st.caption(upload.description if dataset == UPLOAD else DATASET_LABELS.get(dataset, ""))
    upload_widgets()
    n_hidden = st.number_input("Hidden units", 1, 1024, d.n_hidden, step=1, **_common("hidden"),
                               help="Number of features the autoencoder learns. Changing it starts a new run.")
    activation = st.selectbox("Activation f", ACTIVATIONS, index=ACTIVATIONS.index(d.activation),
                              **_common("act"), help="sigmoid is the classic. tanh: ρ̂ is measured on (a+1)/2. "
                              "ReLU activations are unbounded: use the L1 or TopK penalty.")
    penalty = st.selectbox("Sparsity penalty", tuple(PENALTY_LABELS), index=0,
                           format_func=PENALTY_LABELS.get, **_common("penalty"), help=PENALTY_HELP)
    topk = d.topk
    if penalty == "topk":
        topk = st.number_input("k (active units per sample)", 1, 1024, d.topk, step=1, **_common("k"))

    st.markdown("**Objective** · " + (":gray[the Train run's, not used here]" if experiment else "applies live"))
    kl = penalty == "kl"
    rho = st.select_slider("ρ: target mean activation", RHO_OPTIONS, d.rho, format_func=fmt, **_common("rho"),
                           disabled=not kl, help="Each hidden unit j should fire on average ρ̂ⱼ ≈ ρ.")
    if not kl:
        st.caption(f":material/block: {NO_TARGET_HELP}")
    beta = st.select_slider("β: sparsity weight", BETA_OPTIONS, d.beta, format_func=fmt, **_common("beta"))
    weight_decay = st.select_slider("λ: weight decay", LAMBDA_OPTIONS, d.weight_decay, format_func=fmt,
                                    **_common("lambda"))

    st.markdown("**Optimiser**")
    optimizer = st.selectbox("Optimizer", OPTIMIZERS, index=OPTIMIZERS.index(d.optimizer), **_common("opt"),
                             help="adam / sgd on minibatches; lbfgs: full batch with a line search (UFLDL's minFunc).")
    lr = st.select_slider("Learning rate · applies live", LR_OPTIONS, d.lr, format_func=fmt, **_common("lr"),
                          disabled=optimizer == "lbfgs", help="L-BFGS uses its line search instead.")
    epochs, max_iter, batch = d.epochs, d.max_iter, d.batch_size
    if optimizer == "lbfgs":
        max_iter = st.number_input("Iterations · applies live", 1, 100_000, d.max_iter, step=50, **_common("iters"),
                                   help="The run's length; change it while it trains (below the current "
                                        "iteration it finishes the run; after the end, raise it and Resume).")
    else:
        batch = st.select_slider("Batch size", BATCH_OPTIONS, d.batch_size, **_common("batch"))
        notes["batch"] = st.empty()
        epochs = st.number_input("Epochs · applies live", 1, 100_000, int(d.epochs), step=10, **_common("epochs"),
                                 help="The run's length; change it while it trains (below the current epoch "
                                      "it finishes the run; after the end, raise it and Resume).")
    seed = st.number_input("Seed", 0, 2**31 - 1, d.seed, step=1, **_common("seed"))
    return Settings(dataset=dataset, n_hidden=int(n_hidden), activation=activation, penalty=penalty,
                    topk=int(topk), optimizer=optimizer, rho=float(rho), beta=float(beta),
                    weight_decay=float(weight_decay), lr=float(lr), batch_size=int(batch),
                    epochs=float(epochs), max_iter=int(max_iter), seed=int(seed))


# ---------------------------------------------------------------------------------- buttons

def _report(exc: Exception) -> None:
    st.session_state["sae_error"] = str(exc)


def _fresh_job(start: bool) -> None:
    try:
        job = state.set_job(state.new_job(settings_from_state()))
    except (ConfigError, DataError) as exc:
        _report(exc)
        return
    if start:
        job.start()


def changes(job: Job, settings: Settings) -> tuple[dict, dict]:
    """(live, structural) changes from the job's settings to ``settings``; a newly uploaded file
    counts as a new data set even under the same name."""
    live, structural = job.settings.changes(settings)
    if settings.dataset == UPLOAD and job.data is not st.session_state.get(state.UPLOAD_KEY):
        structural["dataset"] = UPLOAD
    return live, structural


def on_train() -> None:
    job = state.own_job()
    settings = settings_from_state()
    if job is None or job.final or changes(job, settings)[1]:
        _fresh_job(start=True)
    else:
        job.start()


def on_pause_resume() -> None:
    job = state.own_job()
    if job is None:
        return
    if job.status in ACTIVE_STATUSES:
        job.pause()
    elif job.status in (RunStatus.PAUSED, RunStatus.DIVERGED):
        job.resume()


def on_step() -> None:
    job = state.own_job()
    if job is not None and not job.final:
        job.step(1)


def on_stop() -> None:
    job = state.own_job()
    if job is not None:
        job.stop()


def on_reset() -> None:
    _fresh_job(start=False)


# ---------------------------------------------------------------------------------- status

def status_text(job: Job) -> str:
    """One line: state, step, epoch, samples/s, elapsed, and why it stopped."""
    snap = job.latest()
    icon = {RunStatus.RUNNING: ":green[●]", RunStatus.QUEUED: ":orange[◔]", RunStatus.PAUSED: ":orange[❚❚]",
            RunStatus.DIVERGED: ":red[▲]", RunStatus.FINISHED: ":blue[■]", RunStatus.STOPPED: ":gray[■]",
            RunStatus.IDLE: ":gray[○]"}.get(snap.status, "")
    rate = snap.samples_per_s
    rate_text = f"{rate / 1000:,.0f}k samples/s" if rate >= 1000 else f"{rate:,.0f} samples/s"
    line = (f"{icon} **{snap.status}** · step {snap.step:,} · epoch {snap.epoch:,.1f} · "
            f"{rate_text} · {snap.elapsed:,.1f} s")
    why = job.note if job.note and snap.status in (RunStatus.PAUSED, RunStatus.STOPPED) else snap.reason
    if why and why != snap.status:
        line += f"  \n{why}"
    return line  # what is wrong with the run while it goes: the doctor's line below (sae.ui.doctor)


def status_line(job: Job) -> None:
    """The live status line (its own small fragment in the sidebar)."""

    every = refresh_interval(live_polls().count(), server_cores()) if job.status == RunStatus.RUNNING \
        else QUEUED_POLL_SECONDS if job.status == RunStatus.QUEUED else None  # the live views' pace (sae.app.polling)

    @st.fragment(run_every=every)
    def _status() -> None:
        current = state.current_job()
        if current is None:
            return
        current.beat()
        st.caption(status_text(current), width="stretch")
        doctor.line(current)
        if current is not job or current.status != job_status_at_render:
            st.rerun(scope="app")  # buttons and polling depend on the status: redraw everything

    job_status_at_render = job.status
    _status()


# ---------------------------------------------------------------------------------- the panel

def navigation(settings: Settings | None) -> None:
    """Links to every page, carrying the configuration in their query parameters."""
    params = url_params(settings) if settings is not None else {}
    for script, label, icon in PAGES:
        st.page_link(script, label=label, icon=icon, query_params=params or None)


def buttons(job: Job, settings: Settings | None) -> None:
    status = job.status
    valid = settings is not None
    underway = (RunStatus.RUNNING, RunStatus.QUEUED, RunStatus.PAUSED, RunStatus.DIVERGED)
    final = (RunStatus.FINISHED, RunStatus.STOPPED)
    row1 = st.columns(2, gap="small")
    row1[0].button("Train", type="primary", icon=":material/play_arrow:", on_click=on_train,
                   disabled=not valid or status in underway, width="stretch",
                   key="btn_train", help="Start a run with these settings.")
    pausing = status in ACTIVE_STATUSES
    row1[1].button("Pause" if pausing else "Resume", icon=":material/pause:" if pausing else ":material/resume:",
                   on_click=on_pause_resume, disabled=status not in underway,
                   width="stretch", key="btn_pause")
    row2 = st.columns(3, gap="small")
    row2[0].button("Step", on_click=on_step, disabled=status in (RunStatus.RUNNING, RunStatus.QUEUED, *final),
                   width="stretch", key="btn_step", help="One optimiser step, then pause.")
    row2[1].button("Stop", on_click=on_stop, disabled=status in (RunStatus.IDLE, *final), width="stretch",
                   key="btn_stop", help="End the run; its model stays on view.")
    row2[2].button("Reset", on_click=on_reset, width="stretch", key="btn_reset",
                   help="Discard the run: a fresh untrained model with the panel's settings.")


def panel(page_id: str = "", experiment: bool = False) -> Job:
    """Draw the sidebar (navigation, buttons, status, settings) and return the session's job,
    with live changes applied. ``page_id`` names the calling page (page switches are detected);
    ``experiment``: the page runs its own experiments (the settings are marked as not used there)."""
    from sae.ui import classroom

    view = classroom.watched()  # a teacher's broadcast this session watches: shown read-only, no controls
    if view is not None:
        with st.sidebar:
            st.markdown("**Sparse Autoencoder Lab** · :gray[UFLDL / CS294A]")
            navigation(state.current_settings())
            st.divider()
            classroom.watch_sidebar(view)
            status_line(view)  # type: ignore[arg-type]
        return view  # type: ignore[return-value]
    sync_widgets(page_id)
    with st.sidebar:
        st.markdown("**Sparse Autoencoder Lab** · :gray[UFLDL / CS294A]")
        nav = st.container()
        st.divider()
        top = st.container()
        notes: dict = {}
        with st.container():
            settings = settings_widgets(notes, experiment)
        sync_url(settings)

        error = st.session_state.pop("sae_error", None)
        invalid, data = None, None
        try:
            data = state.validate(settings)
        except (ConfigError, DataError) as exc:
            invalid = str(exc)
        job = state.get_job(settings if invalid is None else Settings())

        if data is not None and settings.optimizer != "lbfgs" and settings.batch_size > data.n_samples:
            notes["batch"].caption(f":material/info: The data have only {data.n_samples:,} samples: each step "
                                   f"uses all of them (batch {data.n_samples:,}).")
        url_warnings = st.session_state.get("sae_url_warnings")
        if url_warnings and url_warnings[0] != settings:  # the user has moved on from the link's settings
            st.session_state["sae_url_warnings"] = url_warnings = None

        live, structural = changes(job, settings)
        if live and invalid is None:
            job.apply_live(**live)
        if structural and invalid is None and not job.started:
            job = state.set_job(state.new_job(settings))  # nothing trained yet: rebuild silently
            structural = {}

        with nav:
            navigation(settings)
        with top:
            buttons(job, None if invalid else settings)
            status_line(job)
            for warning in url_warnings[1] if url_warnings else ():
                st.warning(warning, icon=":material/link_off:")
            if error:
                st.error(error)
            if job.status == RunStatus.DIVERGED:
                lr_helps = job.settings.optimizer != "lbfgs" and job.latest().step > 0
                st.error("Training diverged (the loss became NaN or infinite). The last weights with a sound loss "
                         "are kept and every page shows them. " +
                         ("Lower the learning rate (it applies at once), then press Resume." if lr_helps else
                          "The status line says why; change the settings and start a new run."),
                         icon=":material/warning:")
            if invalid:
                st.error(invalid, icon=":material/error:")
            elif structural:
                changed = ", ".join(f"{FIELD_LABELS.get(k, k)} → {_show(v)}" for k, v in structural.items())
                changed = changed.replace(f"→ {UPLOAD}", "→ your file")
                st.warning(f"Changed {changed}: this needs a new run.", icon=":material/restart_alt:")
                st.button("Restart with these settings", on_click=_fresh_job, kwargs={"start": True},
                          key="btn_restart", width="stretch", type="primary")
            if not experiment:
                twin.controls(job)  # "Add a twin" / the twin's state, Promote, Remove (sae.ui.twin)
    return job


def _show(v) -> str:
    return fmt(v) if isinstance(v, float) and not math.isnan(v) else str(v)


__all__ = ["panel", "status_text", "status_line", "settings_widgets", "changes", "navigation", "buttons", "PAGES",
           "POLL_SECONDS", "QUEUED_POLL_SECONDS", "UPLOAD"]
