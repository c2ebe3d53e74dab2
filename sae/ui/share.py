"""Runs into the live view, files in and out, and the server's sweeps (the Streamlit side of ``sae.runs.table``).

- :func:`load_stored_run` / :func:`load_upload`: a recorded run (from the run store) or an uploaded model
  file (a ``.zip`` bundle or a ``.safetensors``) becomes this session's job, paused at its step: every
  page shows it, Resume or Step continues it (recorded as a new run whose parent is the loaded one).
  The sidebar's settings are set to the run's, so nothing asks for a restart.
- :func:`sidebar_section`: "Share and export" under the control panel of every page: the model as a
  bundle, the codes as CSV, a "reproduce in Python" snippet, and the upload of a saved model.
- :func:`figure_download`, :func:`filters_download`: a chart as standalone HTML, filters as PNG (chart PNGs
  come from the camera icon of each chart: this machine has no kaleido for server-side PNG).
- :func:`sweep_registry`: the sweeps training in this process (shared by every session, like the store).

Every problem with a file or a stored run is shown as its one-sentence message (RunFileError,
StoreError, DataError, ConfigError), never a traceback.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

import numpy as np
import streamlit as st

from sae.runs import export
from sae.core.config import ConfigError, ModelConfig, TrainConfig
from sae.data import DATASETS, DataError, Dataset
from sae.runs.table import continuation
from sae.runs.sweep import SweepRegistry
from sae.runs.model_file import RunFileError
from sae.runs.store import StoreError
from sae.core.model import SparseAutoencoder
from sae.training.inputs import history_columns

from sae.ui import identity, state, url
from sae.ui.upload import display_name
from sae.app.job import Job, subset_indices
from sae.app.settings import Settings

UPLOAD_TYPES = ("zip", "safetensors")
ERROR_KEY = "share_error"  # sidebar upload problems
GOTO_KEY = "share_goto"  # a page to switch to on the next script run (after a callback loaded a run)
LOADED_KEY = "share_loaded"  # a one-line note of what was just loaded


class LoadError(ValueError):
    """A run or model that cannot be put on view; the message says why."""


@st.cache_resource(show_spinner=False)
def sweep_registry() -> SweepRegistry:
    """The sweeps started on this server, by id: they belong to the process, not to a browser session."""
    return SweepRegistry()


# ----------------------------------------------------------------------------- settings for a model

def _snap(options: tuple, value: float) -> float:
    return url.nearest(options, float(value))  # the panel's own rule for URL values


def settings_for(model_config: ModelConfig, train_config: TrainConfig, dataset: str, base: Settings) -> Settings:
    """The control panel's settings that describe a model and its training (values snapped to what the
    widgets offer; the trainer itself keeps the exact config). ``dataset`` is a panel value."""
    penalty = "topk" if model_config.topk else train_config.penalty
    raw = replace(base, dataset=dataset, n_hidden=int(model_config.n_hidden), activation=model_config.activation,
                  penalty=penalty, topk=int(model_config.topk or base.topk), optimizer=train_config.optimizer,
                  rho=_snap(url.RHO_OPTIONS, train_config.rho), beta=_snap(url.BETA_OPTIONS, train_config.beta),
                  weight_decay=_snap(url.LAMBDA_OPTIONS, train_config.weight_decay),
                  lr=_snap(url.LR_OPTIONS, train_config.lr),
                  batch_size=int(_snap(url.BATCH_OPTIONS, train_config.batch_size)),
                  epochs=float(min(100_000, max(1, int(np.ceil(train_config.epochs))))),
                  max_iter=int(min(100_000, max(1, train_config.max_iter))),
                  seed=int(train_config.seed or 0))
    snapped = url.parse_url(url.url_params(raw))  # exactly what the widgets will hold
    return replace(snapped, dataset=dataset)


def _data_for(dataset: str | None, n_inputs: int) -> tuple[str, Dataset]:
    """(panel value, data set) for a model's recorded data set: a built-in one, or this session's own file
    if it is the one. Models without a data set name get the session's data set, or a built-in one that fits."""
    upload = st.session_state.get(state.UPLOAD_KEY)
    if dataset in DATASETS:
        data = state.load_data(dataset)
        if data.n_features != n_inputs:
            raise LoadError(f"the model takes {n_inputs} inputs but the {dataset} data set has {data.n_features} "
                            "features per sample.")
        return dataset, data
    if dataset:
        if upload is not None and upload.name == dataset and upload.n_features == n_inputs:
            return state.UPLOAD, upload
        raise LoadError(f"this model was trained on your file {dataset!r}: open that file under “Your data” in "
                        "the sidebar first, then load the model again.")
    current = state.current_settings()
    candidates = ([current.dataset] if current is not None and current.dataset in DATASETS else []) + list(DATASETS)
    for name in candidates:
        data = state.load_data(name)
        if data.n_features == n_inputs:
            return name, data
    raise LoadError(f"the model takes {n_inputs} inputs and names no data set; none of the built-in data sets "
                    f"({', '.join(DATASETS)}) has {n_inputs} features.")


def _history_or_none(history: dict[str, np.ndarray] | None) -> dict[str, np.ndarray] | None:
    """The history if the Trainer can continue it (every column it records), else None."""
    if not history or not len(history.get("step", ())):
        return None
    try:
        return {c: np.asarray(v, dtype=np.float64) for c, v in history_columns(history).items()}
    except ConfigError:
        return None


def _set_widgets(settings: Settings) -> None:
    """Put ``settings`` in the panel's widgets (callbacks only: before the widgets are drawn)."""
    for key, value in url.widget_values(settings).items():  # the panel's own mapping
        st.session_state[key] = value


def _install(model, model_config: ModelConfig, train_config: TrainConfig | None, dataset: str | None, step: int,
             history: dict[str, np.ndarray] | None, *, parent_id: str | None, name: str, note: str) -> Job:
    """Build the paused job for a model, make it this session's job, set the panel's widgets."""
    limit = getattr(state, "MAX_WEIGHTS", None)
    if limit is not None and model_config.n_inputs * model_config.n_hidden > limit:
        raise LoadError(f"a {model_config.n_inputs} → {model_config.n_hidden} model is larger than this server "
                        f"allows ({limit:,} weights per layer).")
    panel_name, data = _data_for(dataset, model_config.n_inputs)
    base = state.current_settings() or Settings()
    config = continuation(train_config or base.train_config(), int(step), data.n_samples)
    settings = settings_for(model_config, config, panel_name, base)
    job = Job(settings, data, subset_indices(data.n_samples), store=state.run_store_or_none(), model=model,
              train_config=config, start_step=int(step), history=_history_or_none(history), parent_id=parent_id,
              name=name, owner=identity.owner_or_none())  # a continuation is this session's run, whoever's the first
    state.set_job(job)
    job.hold(note)
    _set_widgets(settings)
    return job


def load_stored_run(run_id: str) -> Job:
    """Put a recorded run on view in this session, paused at its last recorded step. Raises LoadError,
    StoreError or ConfigError with a message for the user."""
    store = state.run_store()
    record = store.get(run_id)
    run = store.load(run_id)
    step = record.step
    return _install(run.model, record.model_config, run.train_config, record.dataset, step, run.history,
                    parent_id=record.id, name=f"{record.name} (continued)"[:200],
                    note=f"loaded run “{record.name}” at step {step:,}: Resume or Step continues it "
                         "(recorded as a new run)")


def load_upload(data: bytes, filename: str) -> Job:
    """Put an uploaded model (a bundle .zip or a .safetensors written by the Lab) on view, paused.
    Raises RunFileError / LoadError / ConfigError with a message for the user."""
    run = export.read_model_upload(bytes(data), filename)
    history = run.history or {}
    if run.step is not None:  # the step of the weights, as the bundle records it
        step = run.step
        if "step" in history:  # rows recorded after those weights (a download while training) are dropped
            history = {name: values[history["step"] < step] for name, values in history.items()}
    else:  # a bundle from before the step was recorded: the step after its last history row
        step = int(history["step"][-1]) + 1 if "step" in history and len(history["step"]) else 0
    shown = display_name(filename)
    return _install(run.model, run.model_config, run.train_config, run.dataset, step, history, parent_id=None,
                    name=f"{shown} (continued)"[:200],
                    note=f"opened {shown}" + (f" (step {step:,})" if step else "") +
                         ": every page shows it; Resume or Step trains it further")


# ----------------------------------------------------------------------------- callbacks

def on_load_run(run_id: str, goto: str | None = "dashboard.py") -> None:
    """Button callback: load a recorded run into the live view, then (next run) switch to ``goto``."""
    try:
        job = load_stored_run(run_id)
    except (LoadError, StoreError, RunFileError, ConfigError, DataError) as exc:
        st.session_state["runs_error"] = f"Cannot load this run: {exc}"
        return
    st.session_state[LOADED_KEY] = job.note
    if goto:
        st.session_state[GOTO_KEY] = goto


def on_upload_model() -> None:
    """File uploader callback: open the uploaded model in the live view (or say why not)."""
    st.session_state.pop(ERROR_KEY, None)
    file = st.session_state.get("share_upload")
    if file is None:
        return
    name = getattr(file, "name", "model")
    try:
        job = load_upload(file.getvalue(), name)
    except (RunFileError, LoadError, ConfigError, DataError, StoreError) as exc:
        st.session_state[ERROR_KEY] = str(exc)
        return
    except Exception as exc:  # noqa: BLE001 - a user's file never shows a traceback
        st.session_state[ERROR_KEY] = f"{name} could not be opened ({type(exc).__name__})."
        return
    st.session_state[LOADED_KEY] = job.note


def follow_goto() -> None:
    """After a callback loaded a run: switch to the page it asked for (carrying the new settings)."""
    target = st.session_state.pop(GOTO_KEY, None)
    job = state.own_job()
    if target and job is not None:
        st.switch_page(target, query_params=url.url_params(job.settings) or None)


# ----------------------------------------------------------------------------- exports

def job_model(job_or_trainer: Any, model_config: ModelConfig):
    """The model of a job's (or trainer's) latest snapshot, as a fresh SparseAutoencoder."""
    trainer = getattr(job_or_trainer, "trainer", job_or_trainer)
    return SparseAutoencoder.from_weights(model_config, trainer.latest().weights)


def job_bundle(job_or_trainer: Any, model_config: ModelConfig, dataset: str) -> bytes:
    """The model bundle (.zip: config.json, model.safetensors, history.npz) of the latest snapshot, with its step."""
    trainer = getattr(job_or_trainer, "trainer", job_or_trainer)
    snap = trainer.latest()  # one snapshot: the weights and their step
    return export.model_bundle(SparseAutoencoder.from_weights(model_config, snap.weights), trainer.config, dataset,
                               trainer.history(), step=snap.step)


def deferred(fn: Callable[[], bytes], what: str) -> Callable[[], bytes]:
    """A download's data made on click (in another thread: no st.* in there); a failure becomes a text file."""
    def make() -> bytes:
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - the user gets the message, not a broken download
            return f"{what} could not be exported: {exc}\n".encode()
    return make


def link_run_id(job: Job) -> str | None:
    """The stored run a link to this job carries: its own record (checkpointed every few seconds while it trains),
    or, before it trains, the run it continues. None: nothing recorded yet."""
    return job.run_id or job.parent_id


def run_link(job: Job) -> str | None:
    """An absolute link that opens this job's stored run in any browser (``?run=<id>`` plus its settings, on this
    page; ``sae.ui.reattach`` loads it), or None while the job has no record."""
    from urllib.parse import urlencode, urlsplit, urlunsplit

    run_id = link_run_id(job)
    if run_id is None:
        return None
    query = urlencode({"run": run_id} | url.url_params(job.settings))
    try:
        here = urlsplit(st.context.url or "")
    except Exception:  # noqa: BLE001 - no request behind this session (AppTest): a relative link
        here = urlsplit("")
    return urlunsplit((here.scheme, here.netloc, here.path or "/", query, ""))


def sidebar_section(job: Job) -> None:
    """"Share and export" at the bottom of the sidebar: the current model out, a saved model in."""
    error = st.session_state.get(ERROR_KEY)
    loaded = st.session_state.pop(LOADED_KEY, None)
    with st.sidebar.expander("Share and export", icon=":material/ios_share:", expanded=bool(error or loaded)):
        if loaded:
            st.success(loaded, icon=":material/check_circle:")
        st.caption("The page's URL reproduces these settings: copy it to share them. Every chart saves itself "
                   "as a PNG from its camera icon (top right, on hover).")
        link = run_link(job)
        st.markdown("**Link to this run**")
        if link is None:
            st.caption("Train first: a link can carry the run once it is recorded.")
        else:
            st.code(link, language=None, wrap_lines=True)
            st.caption("Copy it (icon on the right): it opens this run in any browser, paused at its last checkpoint "
                       "(saved every few seconds while it trains); training it there records a new run continuing "
                       "this one.")
        trainer, mc, data = job.trainer, job.model_config, job.data
        stem = f"sae-{data.name}-{mc.n_hidden}-step{job.latest().step}"
        st.download_button("Model (.zip: safetensors + config)", deferred(lambda: job_bundle(trainer, mc, data.name),
                                                                         "The model"),
                           file_name=export.download_name(stem, ".zip"), mime="application/zip", on_click="ignore",
                           key="share_model", icon=":material/download:", width="stretch",
                           help="The current weights, configs and history; open it again below, or with "
                                "sae.runs.export.read_model_bundle / sae.runs.files.load_run in Python.")
        st.download_button("Codes a = f(W₁x + b₁) as CSV",
                           deferred(lambda: export.codes_csv(job_model(trainer, mc), data.X, data.labels), "The codes"),
                           file_name=export.download_name(f"{stem}-codes", ".csv"), mime="text/csv",
                           on_click="ignore", key="share_codes", icon=":material/download:", width="stretch",
                           help=f"One row per sample ({data.n_samples:,}), one column per hidden unit"
                                + (", and the label." if data.labels is not None else "."))
        with st.popover("Reproduce in Python", icon=":material/code:", width="stretch"):
            st.code(export.reproduce_snippet(mc, trainer.config, data.name), language="python")
        st.file_uploader("Open a saved model (.zip or .safetensors)", type=list(UPLOAD_TYPES), key="share_upload",
                         on_change=on_upload_model,
                         help="A model downloaded from the Lab: it replaces this session's model on every page, "
                              "paused; Resume trains it further.")
        if error:
            st.error(error, icon=":material/error:")


def figure_download(fig, name: str, key: str, label: str = "HTML") -> None:
    """A small button: the chart as a standalone HTML page (plotly.js inside, opens offline)."""
    st.download_button(label, deferred(lambda: export.figure_html(fig, title=name), name),
                       file_name=export.download_name(name, ".html"), mime="text/html", on_click="ignore", key=key,
                       icon=":material/download:", help="The chart as an interactive HTML file (works offline).")


def filters_download(W: np.ndarray, image_shape: tuple[int, int], name: str, key: str,
                     normalize: str = "ufldl") -> None:
    """A small button: the filter grid as a PNG (4x upscaled, UFLDL's display normalisation)."""
    W = np.array(W, copy=True)
    st.download_button("PNG", deferred(lambda: export.filters_png(W, image_shape, normalize=normalize), name),
                       file_name=export.download_name(name, ".png"), mime="image/png", on_click="ignore", key=key,
                       icon=":material/download:", help="The filters as a picture, 4× upscaled.")


# the old private name, until pages/10_runs.py uses ``deferred``


__all__ = ["load_stored_run", "load_upload", "on_load_run", "on_upload_model", "follow_goto", "sidebar_section",
           "figure_download", "filters_download", "deferred", "link_run_id", "run_link", "job_bundle", "job_model", "settings_for",
           "sweep_registry", "LoadError"]
