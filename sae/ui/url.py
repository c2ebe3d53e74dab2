"""The URL <-> settings layer of the control panel: which query parameter holds which setting, what values
the widgets accept, and the two-way sync between ``st.query_params`` and the widgets.

Every setting is a widget whose key is its URL query parameter (:data:`KEYS`), so a link reproduces a
configuration; values equal to their default stay out of the URL (:func:`url_params`). The URL is kept by
this module (``st.query_params``) rather than by ``bind="query-params"``: in Streamlit 1.67 bound
parameters belong to the page whose script created the widget and are dropped on a page switch
(and widget values seeded from a URL do not survive the switch), so the panel, drawn by every
page, does it itself:

- a URL the panel did not write (first load, a pasted link, back/forward) sets the widgets
  (:func:`sync_widgets`);
- on a page switch the widgets get the session's last settings back;
- after the widgets are drawn the URL is rewritten from them (:func:`sync_url`), and the page links carry
  the same parameters.

Defaults depend on the data set (``sae.app.settings.defaults_for``): ``?data=mnist`` alone gives MNIST's
defaults, a parameter in the URL wins over them, and the URL leaves out what equals the chosen set's defaults.
An uploaded file is written as ``data=upload`` (a link cannot carry the file: where the session has none, the
link falls back to the default set with a warning).

A URL value the widgets cannot show (``rho=0``, ``hidden=10**9``, ``lr=abc``, ...) falls back to
its default with a warning naming the parameter (:func:`check_url`); values between two slider
notches snap to the nearest one (:func:`nearest`).
"""

from __future__ import annotations

import math
import re
from dataclasses import fields

import streamlit as st

from sae.app.settings import Settings, defaults_for
from sae.core.config import ACTIVATIONS, OPTIMIZERS
from sae.data import DATASETS
from sae.ui import state

RHO_OPTIONS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.08, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8)
BETA_OPTIONS = (0.0, 0.03, 0.1, 0.3, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0)
LAMBDA_OPTIONS = (0.0, 1e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2)
LR_OPTIONS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0)
BATCH_OPTIONS = (8, 16, 32, 64, 128, 256, 512, 1024, 2048)
# Option labels are what the URL holds (see url_params): keep them short.
PENALTY_LABELS = {"kl": "KL", "l1": "L1", "topk": "TopK"}

# widget key (= URL query parameter) -> Settings field
KEYS = {"data": "dataset", "hidden": "n_hidden", "act": "activation", "penalty": "penalty", "k": "topk",
        "opt": "optimizer", "rho": "rho", "beta": "beta", "lambda": "weight_decay", "lr": "lr",
        "batch": "batch_size", "epochs": "epochs", "iters": "max_iter", "seed": "seed"}
DEFAULTS = Settings()

# What the widgets accept: a URL value outside these falls back to the default, with a warning.
INT_LIMITS = {"n_hidden": (1, 1024), "topk": (1, 1024), "max_iter": (1, 100_000), "epochs": (1, 100_000),
              "seed": (0, 2**31 - 1)}
SLIDERS = {"rho": RHO_OPTIONS, "beta": BETA_OPTIONS, "weight_decay": LAMBDA_OPTIONS, "lr": LR_OPTIONS,
           "batch_size": BATCH_OPTIONS}
CHOICES = {"dataset": DATASETS, "activation": ACTIVATIONS, "optimizer": OPTIMIZERS, "penalty": tuple(PENALTY_LABELS)}


def fmt(x: float) -> str:
    """Compact number for sliders: 0.0001 -> 1e-4, 0.05 -> 0.05."""
    if x == 0:
        return "0"
    if abs(x) < 1e-3 or abs(x) >= 1e4:
        mantissa, exponent = f"{x:.0e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    return f"{x:g}"


def nearest(options: tuple, value: float) -> float:
    """The option closest to value on a log scale (zero only matches zero-ish values)."""
    def distance(o: float) -> float:
        if o == 0 or value == 0:
            return 0.0 if o == value else abs(o - value) + (1e9 if value > 0 and o == 0 and value > 1e-7 else 0)
        return abs(math.log(o) - math.log(value))
    return min(options, key=distance)


def parse_url(params: dict[str, str], upload: bool = False) -> Settings:
    """Settings from query parameters; unknown or invalid values fall back to the defaults."""
    return check_url(params, upload)[0]


def check_url(params: dict[str, str], upload: bool = False) -> tuple[Settings, list[str]]:
    """(settings, warnings): the settings the query parameters describe, and one sentence for every
    parameter that could not be used as given (it keeps its default). Never raises.

    The data set is read first: the other parameters default to its :func:`sae.app.settings.defaults_for`.
    ``upload``: whether the session holds an uploaded file (``data=upload`` selects it)."""
    warnings: list[str] = []
    dataset = DEFAULTS.dataset
    raw = params.get("data")
    if raw is not None and str(raw).strip().lower() == state.UPLOAD:
        if upload:
            dataset = state.UPLOAD
        else:
            warnings.append(f"`data=upload` in the link: a link cannot carry a file, and this session has none "
                            f"(add it under “Your data”); using the default {DEFAULTS.dataset}.")
    elif raw is not None:
        dataset = _checked("data", "dataset", raw, DEFAULTS, warnings, dataset)
    base = defaults_for(dataset)
    values = base.as_dict()
    for key, name in KEYS.items():
        raw = params.get(key)
        if raw is not None and name != "dataset":
            values[name] = _checked(key, name, raw, base, warnings, values[name])
    return Settings(**values), warnings


def _checked(key: str, name: str, raw, base: Settings, warnings: list[str], fallback):
    """One URL value, or ``fallback`` with a warning in ``warnings`` saying why (and naming base's default)."""
    try:
        return _url_value(name, str(raw))
    except ValueError as exc:
        shown = re.sub(r"[^\w.+\-]", "?", str(raw))  # shown in a code span: no backticks, no newlines
        shown = shown if len(shown) <= 24 else shown[:21] + "…"
        default = widget_values(base)[key]
        warnings.append(f"`{key}={shown}` in the link: {exc}; using the default "
                        f"{fmt(default) if isinstance(default, float) else default}.")
        return fallback


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
        target, warnings = check_url(url, upload=st.session_state.get(state.UPLOAD_KEY) is not None)
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


def url_params(settings: Settings) -> dict[str, str]:
    """The query parameters that reproduce ``settings`` (the data set's defaults left out), formatted as the
    widgets show them (parse_url reads them back). Page links carry them so the URL keeps the configuration
    across pages. An uploaded file is ``data=upload`` (the file itself stays in the session)."""
    out = {}
    base = defaults_for(settings.dataset)
    for key, name in KEYS.items():
        value, default = getattr(settings, name), getattr(base, name)
        if name == "dataset":
            default = DEFAULTS.dataset
        if value == default:
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


def dataset_defaults_to_widgets(dataset: str) -> None:
    """The data set widget changed: every other setting takes that set's defaults (an uploaded file keeps
    the current settings). A ``on_change`` callback of the data set box."""
    if dataset == state.UPLOAD:
        return
    for key, value in widget_values(defaults_for(dataset)).items():
        st.session_state[key] = value


def settings_from_state() -> Settings:
    """The panel's settings as stored in session state (inside button callbacks)."""
    values = {}
    for key, name in KEYS.items():
        if key in st.session_state:
            values[name] = st.session_state[key]
    base = defaults_for(values.get("dataset", DEFAULTS.dataset)).as_dict() | values
    types = {f.name: type(getattr(DEFAULTS, f.name)) for f in fields(Settings)}
    return Settings(**{k: types[k](v) for k, v in base.items()})


__all__ = ["KEYS", "DEFAULTS", "INT_LIMITS", "SLIDERS", "CHOICES", "PENALTY_LABELS", "RHO_OPTIONS", "BETA_OPTIONS",
           "LAMBDA_OPTIONS", "LR_OPTIONS", "BATCH_OPTIONS", "fmt", "nearest", "parse_url", "check_url", "url_params",
           "widget_values", "sync_widgets", "sync_url", "settings_from_state", "dataset_defaults_to_widgets"]
