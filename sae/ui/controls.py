"""The control panel: the same sidebar on every page.

Every setting is a widget whose key is its URL query parameter, so a link reproduces a
configuration; values equal to their default stay out of the URL. The URL is kept by this
module (``st.query_params``) rather than by ``bind="query-params"``: in Streamlit 1.67 bound
parameters belong to the page whose script created the widget and are dropped on a page switch
(and widget values seeded from a URL do not survive the switch), so the panel, drawn by every
page, does it itself:

- a URL the panel did not write (first load, a pasted link, back/forward) sets the widgets;
- on a page switch the widgets get the session's last settings back;
- after the widgets are drawn the URL is rewritten from them, and the page links carry the
  same parameters.

What a change does:
- rho, beta, lambda, learning rate: applied to the running trainer at once
  (``Trainer.set_hyperparameters``); the charts show the effect.
- anything else (data set, hidden size, activation, ...): an untouched (idle) job is rebuilt
  silently; a job that has trained asks before restarting.

Bad input never costs the user what they have:
- a URL value the widgets cannot show (``rho=0``, ``hidden=10**9``, ``lr=abc``, ...) falls back to
  its default with a warning naming the parameter (:func:`check_url`); values between two slider
  notches snap to the nearest one;
- the widgets themselves are bounded (number inputs have min/max, sliders offer valid values only);
- "Your data" (a CSV or NPY file, at most ``UPLOAD_LIMIT_MB``, parsed by ``sae.data.load_array`` in
  memory, never written to disk): a bad file shows the reason and changes nothing; a good one becomes
  the session's data set (the same restart rule as any data set change).
"""

from __future__ import annotations

import math
import re
from dataclasses import fields

import streamlit as st

from sae.core.config import ACTIVATIONS, OPTIMIZERS, ConfigError
from sae.training.status import RunStatus, ACTIVE_STATUSES
from sae.data import DATASETS, DataError, Dataset, load_array, scale_to_unit_interval

from sae.ui import state
from sae.app.job import Job
from sae.app.settings import Settings

POLL_SECONDS = 0.3  # how often live views redraw while training (about 3 per second)
QUEUED_POLL_SECONDS = 1.0  # how often a queued run's status line looks whether its turn has come

RHO_OPTIONS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.08, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8)
BETA_OPTIONS = (0.0, 0.03, 0.1, 0.3, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0)
LAMBDA_OPTIONS = (0.0, 1e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2)
LR_OPTIONS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0)
BATCH_OPTIONS = (8, 16, 32, 64, 128, 256, 512, 1024, 2048)
# Option labels are what the URL holds (see url_params): keep them short.
PENALTY_LABELS = {"kl": "KL", "l1": "L1", "topk": "TopK"}
PENALTY_HELP = ("KL: β·Σⱼ KL(ρ‖ρ̂ⱼ), the classic (needs activations in [0, 1]). L1: β·(1/m)·Σᵢ Σⱼ |aᵢⱼ|. "
                "TopK: keep the k largest activations of each sample, no penalty term.")
DATASET_LABELS = {"patches": "8×8 whitened natural-image patches (10,000)",
                  "mnist": "MNIST handwritten digits, 28×28 (5,000)",
                  "digits": "scikit-learn digits, 8×8 (1,797)",
                  "toy": "four one-hot vectors: the 4-2-4 problem"}
FIELD_LABELS = {"dataset": "data set", "n_hidden": "hidden size", "activation": "activation",
                "penalty": "penalty", "topk": "k", "optimizer": "optimizer", "batch_size": "batch size",
                "epochs": "epochs", "max_iter": "iterations", "seed": "seed"}

# widget key (= URL query parameter) -> Settings field
KEYS = {"data": "dataset", "hidden": "n_hidden", "act": "activation", "penalty": "penalty", "k": "topk",
        "opt": "optimizer", "rho": "rho", "beta": "beta", "lambda": "weight_decay", "lr": "lr",
        "batch": "batch_size", "epochs": "epochs", "iters": "max_iter", "seed": "seed"}
DEFAULTS = Settings()
UPLOAD = state.UPLOAD
UPLOAD_LIMIT_MB = 50  # also server.maxUploadSize in .streamlit/config.toml; the smaller of the two applies
UPLOAD_TYPES = ("csv", "txt", "tsv", "npy")

# What the widgets accept: a URL value outside these falls back to the default, with a warning.
INT_LIMITS = {"n_hidden": (1, 1024), "topk": (1, 1024), "max_iter": (1, 100_000), "epochs": (1, 100_000),
              "seed": (0, 2**31 - 1)}
SLIDERS = {"rho": RHO_OPTIONS, "beta": BETA_OPTIONS, "weight_decay": LAMBDA_OPTIONS, "lr": LR_OPTIONS,
           "batch_size": BATCH_OPTIONS}
CHOICES = {"dataset": DATASETS, "activation": ACTIVATIONS, "optimizer": OPTIMIZERS, "penalty": tuple(PENALTY_LABELS)}

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
)


def fmt(x: float) -> str:
    """Compact number for sliders: 0.0001 -> 1e-4, 0.05 -> 0.05."""
    if x == 0:
        return "0"
    if abs(x) < 1e-3 or abs(x) >= 1e4:
        mantissa, exponent = f"{x:.0e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    return f"{x:g}"


def _common(key: str) -> dict:
    return {"key": key, "persist_state": "session"}


def nearest(options: tuple, value: float) -> float:
    """The option closest to value on a log scale (zero only matches zero-ish values)."""
    def distance(o: float) -> float:
        if o == 0 or value == 0:
            return 0.0 if o == value else abs(o - value) + (1e9 if value > 0 and o == 0 and value > 1e-7 else 0)
        return abs(math.log(o) - math.log(value))
    return min(options, key=distance)


def parse_url(params: dict[str, str]) -> Settings:
    """Settings from query parameters; unknown or invalid values fall back to the defaults."""
    return check_url(params)[0]


def check_url(params: dict[str, str]) -> tuple[Settings, list[str]]:
    """(settings, warnings): the settings the query parameters describe, and one sentence for every
    parameter that could not be used as given (it keeps its default). Never raises."""
    values = DEFAULTS.as_dict()
    warnings = []
    for key, name in KEYS.items():
        raw = params.get(key)
        if raw is None:
            continue
        try:
            values[name] = _url_value(name, str(raw))
        except ValueError as exc:
            shown = re.sub(r"[^\w.+\-]", "?", str(raw))  # shown in a code span: no backticks, no newlines
            shown = shown if len(shown) <= 24 else shown[:21] + "…"
            default = widget_values(DEFAULTS)[key]
            warnings.append(f"`{key}={shown}` in the link: {exc}; using the default "
                            f"{fmt(default) if isinstance(default, float) else default}.")
    return Settings(**values), warnings


def _url_value(name: str, raw: str):
    """One query parameter's value for Settings field ``name``, or ValueError saying what is wrong."""
    text = raw.strip()
    if name in CHOICES:
        value = text.lower()
        if name == "penalty":
            value = {v.lower(): k for k, v in PENALTY_LABELS.items()}.get(value, value)
        if value not in CHOICES[name]:
            names = [PENALTY_LABELS[c] for c in CHOICES[name]] if name == "penalty" else CHOICES[name]
            raise ValueError(f"not one of {', '.join(names)}")
        return value
    try:
        number = float(text)
    except ValueError:
        raise ValueError("not a number") from None
    if not math.isfinite(number):
        raise ValueError("not a finite number")
    if name in INT_LIMITS or name == "batch_size":
        if number != int(number):
            raise ValueError("not a whole number")
    if name in SLIDERS:
        options = SLIDERS[name]
        lo, hi = min(options), max(options)
        if not lo <= number <= hi:
            raise ValueError(f"outside the range the slider offers ({fmt(lo)} to {fmt(hi)})")
        return nearest(options, number)
    lo, hi = INT_LIMITS[name]
    if not lo <= number <= hi:
        raise ValueError(f"outside the allowed range ({lo:,} to {hi:,})")
    return float(number) if name == "epochs" else int(number)


def widget_values(settings: Settings) -> dict:
    """Settings -> {widget key: widget value}."""
    out = {}
    for key, name in KEYS.items():
        value = getattr(settings, name)
        out[key] = int(value) if name == "epochs" else value
    return out


def sync_widgets(page_id: str) -> None:
    """Before the widgets are drawn: take the URL's settings if the URL is new to us, or the
    session's last settings after a page switch (see the module docstring)."""
    url = {k: v for k, v in st.query_params.to_dict().items() if k in KEYS}
    last_url = st.session_state.get("sae_url")
    memory = state.current_settings()
    target = None
    if last_url is None or url != last_url:
        target, warnings = check_url(url)
        st.session_state["sae_url_warnings"] = (target, warnings) if warnings else None
    elif st.session_state.get("sae_page") != page_id and memory is not None:
        target = memory
    if target is not None:
        for key, value in widget_values(target).items():
            st.session_state[key] = value
    st.session_state["sae_page"] = page_id


def sync_url(settings: Settings) -> None:
    """After the widgets: write the settings into the URL (only what differs from the defaults)."""
    params = url_params(settings)
    current = st.query_params.to_dict()
    if {k: v for k, v in current.items() if k in KEYS} != params:
        st.query_params.from_dict({k: v for k, v in current.items() if k not in KEYS} | params)
    st.session_state["sae_url"] = params
    st.session_state[state.SETTINGS_KEY] = settings


def settings_widgets(notes: dict | None = None) -> Settings:
    """Draw the settings widgets (in the current container) and return what they say. ``notes`` receives
    placeholders for remarks that need the data (``"batch"``)."""
    d = DEFAULTS
    notes = {} if notes is None else notes
    st.markdown("**Data and model**")
    upload = st.session_state.get(state.UPLOAD_KEY)
    options = DATASETS + ((UPLOAD,) if upload is not None else ())
    if st.session_state.get("data") not in options:
        st.session_state["data"] = d.dataset
    dataset = st.selectbox("Data set", options, index=options.index(d.dataset), **_common("data"),
                           format_func=lambda v: f"your file: {upload.name}" if v == UPLOAD else v,
                           help="Built-in and offline, or your own file (below). Changing it starts a new run.")
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

    st.markdown("**Objective** · applies live")
    rho = st.select_slider("ρ: target mean activation", RHO_OPTIONS, d.rho, format_func=fmt,
                           **_common("rho"), help="Each hidden unit j should fire on average ρ̂ⱼ ≈ ρ.")
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
        max_iter = st.number_input("Iterations", 1, 100_000, d.max_iter, step=50, **_common("iters"))
    else:
        batch = st.select_slider("Batch size", BATCH_OPTIONS, d.batch_size, **_common("batch"))
        notes["batch"] = st.empty()
        epochs = st.number_input("Epochs", 1, 100_000, int(d.epochs), step=10, **_common("epochs"))
    seed = st.number_input("Seed", 0, 2**31 - 1, d.seed, step=1, **_common("seed"))
    return Settings(dataset=dataset, n_hidden=int(n_hidden), activation=activation, penalty=penalty,
                    topk=int(topk), optimizer=optimizer, rho=float(rho), beta=float(beta),
                    weight_decay=float(weight_decay), lr=float(lr), batch_size=int(batch),
                    epochs=float(epochs), max_iter=int(max_iter), seed=int(seed))


# ---------------------------------------------------------------------------------- your data

def upload_limit_mb() -> int:
    """The upload cap in MB: UPLOAD_LIMIT_MB, or the server's ``server.maxUploadSize`` if smaller."""
    try:
        server = int(st.get_option("server.maxUploadSize"))
    except Exception:  # noqa: BLE001 - no config (a bare import): the code's cap alone
        server = UPLOAD_LIMIT_MB
    return max(1, min(UPLOAD_LIMIT_MB, server))


def parse_image_shape(text: str) -> tuple[int, int] | None:
    """'28x28', '28×28', '28 28' or '28,28' -> (28, 28); '' -> None; anything else: DataError."""
    text = (text or "").strip()
    if not text:
        return None
    m = re.fullmatch(r"(\d{1,5})\s*(?:[x×X*,]|\s)\s*(\d{1,5})", text)
    if m is None:
        raise DataError(f"image shape {text[:20]!r} is not height×width, e.g. 28x28 (or leave it empty).")
    return int(m.group(1)), int(m.group(2))


def display_name(name: str) -> str:
    """The uploaded file's name as shown in messages: harmless characters only, short. (It is never
    used as a path: the file's bytes are parsed in memory.)"""
    name = re.sub(r"[^\w.\- ]", "_", str(name))[-60:].strip() or "upload"
    return name


def on_upload() -> None:
    """"Use this data": parse the file; a bad file leaves everything as it was and says why."""
    st.session_state.pop("sae_upload_error", None)
    file = st.session_state.get("up_file")
    if file is None:
        st.session_state["sae_upload_error"] = "Choose a CSV or NPY file first."
        return
    name = display_name(getattr(file, "name", "upload"))
    limit = upload_limit_mb()
    try:
        labels = (st.session_state.get("up_labels") or "").strip() or None
        data = load_array(file, name, image_shape=parse_image_shape(st.session_state.get("up_shape", "")),
                          max_bytes=limit * 2**20, labels_column=labels)
        if st.session_state.get("up_scale", True) and not data.in_unit_interval:
            data = Dataset(data.name, scale_to_unit_interval(data.X), data.labels, data.image_shape,
                           data.description + " Min-max scaled into [0, 1].")
    except DataError as exc:
        st.session_state["sae_upload_error"] = str(exc)
        return
    except Exception as exc:  # noqa: BLE001 - never a traceback for a file; load_array should not get here
        st.session_state["sae_upload_error"] = f"{name} could not be read ({type(exc).__name__})."
        return
    st.session_state[state.UPLOAD_KEY] = data
    st.session_state["data"] = UPLOAD


def upload_widgets() -> None:
    """"Your data": a CSV or NPY file becomes this session's data set (it lives in the session's memory)."""
    error = st.session_state.get("sae_upload_error")
    limit = upload_limit_mb()
    with st.expander("Your data · CSV or NPY", icon=":material/upload_file:", expanded=error is not None):
        with st.form("sae_upload_form", border=False, enter_to_submit=False):
            st.file_uploader(f"File (CSV or NPY, at most {limit} MB)", type=list(UPLOAD_TYPES), key="up_file",
                             max_upload_size=limit, help="One sample per row, one feature per column. CSV: an "
                             "optional header row; NPY: a 2-D array, or 3-D (samples × height × width).")
            c = st.columns(2)
            c[0].text_input("Image shape h×w", key="up_shape", placeholder="e.g. 28x28", max_chars=20,
                            help="Optional: rows are images of this size (filters are drawn as pictures).")
            c[1].text_input("Labels column", key="up_labels", placeholder="name or index", max_chars=64,
                            help="Optional: a CSV header name or column number (0, -1, ...) holding class labels.")
            st.checkbox("Scale into [0, 1]", value=True, key="up_scale",
                        help="Min-max scale the whole array, so that the sigmoid decoder can reproduce it. "
                             "Unscaled data outside [0, 1] get a linear decoder.")
            st.form_submit_button("Use this data", on_click=on_upload, key="btn_upload", width="stretch")
        if error:
            st.error(error, icon=":material/error:")


def url_params(settings: Settings) -> dict[str, str]:
    """The query parameters that reproduce ``settings`` (defaults left out), formatted as the widgets
    show them (parse_url reads them back). Page links carry them so the URL keeps the configuration
    across pages."""
    out = {}
    for key, name in KEYS.items():
        value, default = getattr(settings, name), getattr(DEFAULTS, name)
        if value == default or name == "dataset" and value == UPLOAD:  # a link cannot carry a file
            continue
        if name == "topk" and settings.penalty != "topk":
            continue
        if name == "max_iter" and settings.optimizer != "lbfgs" or name in ("epochs", "batch_size") \
                and settings.optimizer == "lbfgs":
            continue
        if name == "penalty":
            out[key] = PENALTY_LABELS[value]
        elif name in ("rho", "beta", "weight_decay", "lr"):
            out[key] = fmt(value)
        elif isinstance(value, float):
            out[key] = f"{value:g}"
        else:
            out[key] = str(value)
    return out


def settings_from_state() -> Settings:
    """The panel's settings as stored in session state (inside button callbacks)."""
    values = {}
    for key, name in KEYS.items():
        if key in st.session_state:
            values[name] = st.session_state[key]
    base = DEFAULTS.as_dict() | values
    types = {f.name: type(getattr(DEFAULTS, f.name)) for f in fields(Settings)}
    return Settings(**{k: types[k](v) for k, v in base.items()})


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
    job = state.current_job()
    settings = settings_from_state()
    if job is None or job.final or changes(job, settings)[1]:
        _fresh_job(start=True)
    else:
        job.start()


def on_pause_resume() -> None:
    job = state.current_job()
    if job is None:
        return
    if job.status in ACTIVE_STATUSES:
        job.pause()
    elif job.status in (RunStatus.PAUSED, RunStatus.DIVERGED):
        job.resume()


def on_step() -> None:
    job = state.current_job()
    if job is not None and not job.final:
        job.step(1)


def on_stop() -> None:
    job = state.current_job()
    if job is not None:
        job.stop()


def on_reset() -> None:
    _fresh_job(start=False)


# ---------------------------------------------------------------------------------- status

def status_text(job: Job) -> str:
    """One line: state, step, epoch, samples/s, elapsed, and why it stopped."""
    snap = job.latest()
    icon = {RunStatus.RUNNING: ":green[●]", RunStatus.QUEUED: ":orange[◔]", RunStatus.PAUSED: ":orange[❚❚]", RunStatus.DIVERGED: ":red[▲]",
            RunStatus.FINISHED: ":blue[■]", RunStatus.STOPPED: ":gray[■]", RunStatus.IDLE: ":gray[○]"}.get(snap.status, "")
    rate = snap.samples_per_s
    rate_text = f"{rate / 1000:,.0f}k samples/s" if rate >= 1000 else f"{rate:,.0f} samples/s"
    line = (f"{icon} **{snap.status}** · step {snap.step:,} · epoch {snap.epoch:,.1f} · "
            f"{rate_text} · {snap.elapsed:,.1f} s")
    why = job.note if job.note and snap.status in (RunStatus.PAUSED, RunStatus.STOPPED) else snap.reason
    if why and why != snap.status:
        line += f"  \n{why}"
    return line


def status_line(job: Job) -> None:
    """The live status line (its own small fragment in the sidebar)."""

    every = POLL_SECONDS if job.status == RunStatus.RUNNING else QUEUED_POLL_SECONDS if job.status == RunStatus.QUEUED else None

    @st.fragment(run_every=every)
    def _status() -> None:
        current = state.current_job()
        if current is None:
            return
        current.beat()
        st.caption(status_text(current), width="stretch")
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
    row1 = st.columns(2, gap="small")
    row1[0].button("Train", type="primary", icon=":material/play_arrow:", on_click=on_train,
                   disabled=not valid or status in (RunStatus.RUNNING, RunStatus.QUEUED, RunStatus.PAUSED, RunStatus.DIVERGED), width="stretch",
                   key="btn_train", help="Start a run with these settings.")
    pausing = status in ACTIVE_STATUSES
    row1[1].button("Pause" if pausing else "Resume", icon=":material/pause:" if pausing else ":material/resume:",
                   on_click=on_pause_resume, disabled=status not in (RunStatus.RUNNING, RunStatus.QUEUED, RunStatus.PAUSED, RunStatus.DIVERGED),
                   width="stretch", key="btn_pause")
    row2 = st.columns(3, gap="small")
    row2[0].button("Step", on_click=on_step, disabled=status in (RunStatus.RUNNING, RunStatus.QUEUED, RunStatus.FINISHED, RunStatus.STOPPED), width="stretch",
                   key="btn_step", help="One optimiser step, then pause.")
    row2[1].button("Stop", on_click=on_stop, disabled=status in (RunStatus.IDLE, RunStatus.FINISHED, RunStatus.STOPPED), width="stretch",
                   key="btn_stop", help="End the run; its model stays on view.")
    row2[2].button("Reset", on_click=on_reset, width="stretch", key="btn_reset",
                   help="Discard the run: a fresh untrained model with the panel's settings.")


def panel(page_id: str = "") -> Job:
    """Draw the sidebar (navigation, buttons, status, settings) and return the session's job,
    with live changes applied. ``page_id`` names the calling page (page switches are detected)."""
    sync_widgets(page_id)
    with st.sidebar:
        st.markdown("**Sparse Autoencoder Lab** · :gray[UFLDL / CS294A]")
        nav = st.container()
        st.divider()
        top = st.container()
        notes: dict = {}
        with st.container():
            settings = settings_widgets(notes)
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
    return job


def _show(v) -> str:
    return fmt(v) if isinstance(v, float) and not math.isnan(v) else str(v)


__all__ = ["panel", "status_text", "settings_widgets", "settings_from_state", "check_url", "parse_url", "changes",
           "upload_widgets", "upload_limit_mb", "parse_image_shape", "PAGES", "POLL_SECONDS", "DEFAULTS", "KEYS",
           "UPLOAD", "UPLOAD_LIMIT_MB", "fmt", "nearest", "widget_values", "display_name"]
