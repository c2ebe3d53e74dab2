"""Sweep: a grid over ρ × β (and optionally the hidden size) trained in the background, every cell recorded as
a run; the result as small multiples of the filters and heatmaps of the metrics; a click on a cell opens its run.

A sweep and its cells belong to whoever started it (``sae.runs.owners``): only they, or a teacher, may cancel or
delete it; the store and the sweep check this session's identity (``sae.ui.identity.actor``)."""

from datetime import datetime
from functools import partial

import numpy as np
import streamlit as st

from sae.viz import run_figures
from sae.core.config import ConfigError
from sae.data import DATASETS, DataError
from sae.viz.run_figures import cell_from_event
from sae.evaluation.labels import metric_label
from sae.runs.table import best_cell, sweep_label
from sae.runs.store import StoreError
from sae.runs.sweep_results import load_sweep
from sae.runs.sweep import default_parallel
from sae.runs.sweep_spec import MAX_AXIS, SweepError, default_cell_budget, spec_from_choices
from sae.training.status import RunStatus
from sae.ui import identity, page, share, state, url
from sae.ui.chart import live_chart

HEATMAPS = ("reconstruction", "rho_hat_mean", "dead_units", "probe_accuracy")
HIDDEN_OPTIONS = (4, 9, 16, 25, 36, 49, 64, 100, 144, 196, 256)
POLL = 1.5  # s between progress redraws while a sweep trains (figures are rebuilt only when a cell changes)
RUNS_PAGE = "pages/10_runs.py"

job = page("Sweep", ":material/grid_on:",
           "Train a grid of runs over ρ × β (and optionally the hidden size) in the background, each recorded as a "
           "run. The result: every cell's filters side by side, and heatmaps of what each setting gives.")
try:
    store = state.run_store()
    identity.actor()  # this session's identity, checked now: every start, cancel and delete below passes it
except StoreError as exc:
    st.error(f"The run store cannot be opened: {exc}", icon=":material/error:")
    st.stop()
with st.sidebar:
    identity.identity_panel()
registry = share.sweep_registry()
settings = state.current_settings() or job.settings
parallel = default_parallel()


def start_sweep() -> None:
    """Form callback: build the spec from the form and the sidebar's settings, start it in the background."""
    st.session_state.pop("sweep_error", None)
    s = state.current_settings() or job.settings
    try:
        data = state.dataset(s.dataset)
        spec = spec_from_choices(s.model_config(data), s.train_config(), data.name,
                                 rhos=st.session_state["sweep_rhos"], betas=st.session_state["sweep_betas"],
                                 hidden_sizes=st.session_state.get("sweep_hidden"),
                                 budget=int(st.session_state["sweep_epochs"]), name=st.session_state.get("sweep_name"))
        sweep = registry.start(spec, store, data, parallel=parallel, owner=identity.actor())
    except (SweepError, ConfigError, DataError, StoreError) as exc:
        st.session_state["sweep_error"] = f"Cannot start this sweep: {exc}"
        return
    st.session_state["sweep_pick"] = sweep.id


# ----------------------------------------------------------------------------- a new sweep
sweeps = store.sweeps.list()
try:
    data_name = state.dataset(settings.dataset).name
except DataError:
    data_name = settings.dataset
with st.expander("New sweep", icon=":material/add_circle:", expanded=not sweeps):
    with st.form("sweep_form", border=False):
        c = st.columns([2, 2, 1.6, 1, 1.4])
        c[0].multiselect("ρ values (rows)", url.RHO_OPTIONS, default=(0.01, 0.05, 0.2), key="sweep_rhos",
                         max_selections=MAX_AXIS, format_func=url.fmt)
        c[1].multiselect("β values (columns)", url.BETA_OPTIONS, default=(0.3, 3.0, 10.0), key="sweep_betas",
                         max_selections=MAX_AXIS, format_func=url.fmt)
        c[2].multiselect("Hidden sizes (optional)", HIDDEN_OPTIONS, key="sweep_hidden", max_selections=MAX_AXIS,
                         placeholder=f"{settings.n_hidden} (the sidebar's)",
                         help="One ρ × β grid per hidden size. Empty: the sidebar's hidden size only.")
        lbfgs = settings.optimizer == "lbfgs"
        try:
            n_samples = state.dataset(settings.dataset).n_samples
        except DataError:
            n_samples = None
        default = default_cell_budget(settings.train_config(), n_samples)
        c[3].number_input("Iterations per cell" if lbfgs else "Epochs per cell", 1, 100_000, int(default),
                          key="sweep_epochs", help="Every cell trains this long: try short sweeps first.")
        c[4].text_input("Name", key="sweep_name", placeholder=f"sweep on {data_name}", max_chars=200)
        st.form_submit_button("Start sweep", type="primary", icon=":material/play_arrow:", on_click=start_sweep,
                              key="sweep_start")
    tc = settings.train_config()
    st.caption(f"Everything else comes from the sidebar: {data_name}, {settings.activation} units, "
               f"{tc.penalty.upper()} penalty, λ={tc.weight_decay:g}, {tc.optimizer}"
               + ("" if lbfgs else f" lr={tc.lr:g}, batch {tc.batch_size}") + f", seed {tc.seed} (the same for every "
               f"cell: same initial weights, so cells differ by ρ, β and the hidden size alone). {parallel} cells train at "
               "once, each in a worker of its own, sharing the cores with everyone's live runs. A sweep trains on "
               "the server: closing the tab does not stop it. It is yours: only you (or a teacher) may cancel or "
               "delete it.")
error = st.session_state.pop("sweep_error", None)
if error:
    st.error(error, icon=":material/error:")

sweeps = store.sweeps.list()
if not sweeps:
    st.info("No sweeps yet: choose the values above and press **Start sweep**.", icon=":material/info:")
    st.stop()
by_id = {s.id: s for s in sweeps}
url_sweep = st.query_params.get("sweep")
if url_sweep and url_sweep != st.session_state.get("sweep_url_seen"):
    st.session_state["sweep_url_seen"] = url_sweep
    if url_sweep in by_id:
        st.session_state["sweep_pick"] = url_sweep
if st.session_state.get("sweep_pick") not in by_id:
    st.session_state["sweep_pick"] = sweeps[0].id


top = st.columns([4, 1])
pick = top[0].selectbox("Sweep", list(by_id), key="sweep_pick", format_func=lambda i: sweep_label(by_id[i]))
st.query_params["sweep"] = pick
st.session_state["sweep_url_seen"] = pick
live_at_render = registry.get(pick)
running_at_render = live_at_render is not None and not live_at_render.done
try:
    mine = store.sweeps.can_change(pick, identity.actor())  # the store's own rule, for what the page offers
except StoreError:  # deleted meanwhile (another session): nothing to offer
    mine = False
with top[1].popover("Delete", icon=":material/delete:", width="stretch", disabled=running_at_render or not mine,
                    help=None if mine else "Only whoever started this sweep, or a teacher, may delete it."):
    st.markdown("Delete this sweep **and its runs** (curves and weights)? This cannot be undone.")

    def delete_sweep(sweep_id=pick) -> None:
        try:
            store.sweeps.delete(sweep_id, actor=identity.actor())
        except StoreError as exc:
            st.session_state["sweep_error"] = f"Cannot delete this sweep: {exc}"
            return
        st.session_state.pop("sweep_pick", None)

    st.button("Delete permanently", type="primary", on_click=delete_sweep, key="sweep_delete")


def labelled(sweep, sweep_id: str, results) -> bool:
    """Whether the sweep's data have labels (so its cells have a probe accuracy)."""
    if np.isfinite(results.metrics["probe_accuracy"]).any():
        return True
    if sweep is not None:
        return getattr(sweep.data, "labels", None) is not None
    name = by_id[sweep_id].dataset
    return name in DATASETS and state.load_data(name).labels is not None


def clicked(key: str) -> None:
    """A click on a cell of a heatmap or of the small multiples: remember it (the fragment opens the run)."""
    cell = cell_from_event(st.session_state.get(key))
    if cell is not None:
        st.session_state["sweep_clicked"] = cell


def open_run(run_id: str) -> None:
    st.session_state["sweep_open_run"] = run_id


def cancel(sweep) -> None:
    try:
        sweep.cancel(wait=False, actor=identity.actor())
    except StoreError as exc:
        st.session_state["sweep_error"] = f"Cannot cancel: {exc}"


@st.fragment(run_every=POLL if running_at_render else None)
def sweep_view() -> None:
    share.follow_goto()  # "Load into the live view" (a button in here) switches to the Train page
    sweep = registry.get(pick)
    if sweep is not None:
        progress = sweep.progress()
        text = progress.summary
        if sweep.done:
            st.progress(1.0, text=text)
        else:
            c = st.columns([5, 1])
            c[0].progress(min(1.0, progress.fraction), text=text)
            c[1].button("Cancel", icon=":material/stop:", on_click=cancel, args=(sweep,), key="sweep_cancel",
                        width="stretch", disabled=not mine,
                        help=None if mine else "Only whoever started this sweep, or a teacher, may cancel it.")
        version = (pick, tuple(c.status for c in progress.cells))
    else:
        record = by_id[pick]
        status = registry.display_status(record)
        st.caption(f"**{status}** · last update {datetime.fromtimestamp(record.updated):%d %b %H:%M:%S}"
                   + (" · the server stopped while this sweep trained: the cells it finished are kept"
                      if status == RunStatus.INTERRUPTED else ""))
        version = (pick, record.updated)
    cache = st.session_state.get("sweep_cache")
    if cache is not None and cache[0] == version:
        results = cache[1]  # nothing finished or started since the last redraw: no need to read the store
    else:
        try:
            results = sweep.results() if sweep is not None else load_sweep(store, pick)[1]
        except (StoreError, SweepError) as exc:
            st.error(f"This sweep cannot be read: {exc}", icon=":material/error:")
            return
        st.session_state["sweep_cache"] = (version, results)
        st.session_state["sweep_figs"] = {}
    figs = st.session_state.setdefault("sweep_figs", {})

    def figure(kind: str, *args):
        """The figure of ``kind`` for these results, built once per (kind, arguments)."""
        if (kind, args) not in figs:
            figs[(kind, args)] = getattr(run_figures, kind)(results, *args)
        return figs[(kind, args)]
    sizes = results.hidden_sizes
    h = 0
    if len(sizes) > 1:
        h = st.radio("Hidden size", list(range(len(sizes))), format_func=lambda k: f"{sizes[k]} hidden",
                     horizontal=True, key="sweep_hidden_view")
    maps = st.container()
    left, right = st.columns([3, 1.1], gap="medium")
    goals = [m for m in ("probe_accuracy", "reconstruction", "dead_units", "rho_hat_mean")
             if m != "probe_accuracy" or labelled(sweep, pick, results)]
    by = right.selectbox("Best cell by", goals, format_func=lambda m: metric_label(m).name, key="sweep_best_by",
                         help="Probe accuracy: higher is better; reconstruction error and dead units: lower; "
                              "mean ρ̂: closest to the cell's target ρ.")
    best = best_cell(results, by, h)

    chosen = st.session_state.pop("sweep_clicked", None) or None
    target = st.session_state.pop("sweep_open_run", None)
    if chosen is not None:
        target = results.run_at(h, *chosen)
    if target:
        st.switch_page(RUNS_PAGE, query_params=url.url_params(settings) | {"run": target})

    cols = maps.columns(len(HEATMAPS))
    for k, metric in enumerate(HEATMAPS):
        key = f"sweep_map_{metric}"
        fig = figure("sweep_heatmap", metric, h, best)
        with cols[k]:
            live_chart(fig, key=key, on_select=partial(clicked, key), config={"displayModeBar": False})
    with left:
        filters_fig = figure("sweep_filters", h, best)
        live_chart(filters_fig, key="sweep_filters", on_select=partial(clicked, "sweep_filters"),
                   config={"displayModeBar": False})
        st.caption("Each cell: the first filters (rows of W₁) of that run, UFLDL's display. **Click a cell** (here or "
                   "on a heatmap) to open its run. The orange outline marks the best cell.")
    with right:
        if best is None:
            st.info("No finished cell yet." if sweep is not None and not sweep.done else "No cell has this metric.")
        else:
            i, j = best
            run_id = results.run_at(h, i, j)
            st.markdown(f"**ρ = {results.rhos[i]:g}, β = {results.betas[j]:g}**"
                        + (f", {sizes[h]} hidden" if len(sizes) > 1 else ""))
            for metric in HEATMAPS:
                value = results.metrics[metric][h, i, j]
                if np.isfinite(value):
                    shown = f"{value:.1%}" if metric == "probe_accuracy" else f"{value:.4g}"
                    st.markdown(f"{metric_label(metric).title}: **{shown}**")
            if run_id:
                st.button("Open its run", icon=":material/open_in_new:", on_click=open_run, args=(run_id,),
                          key="sweep_open_best", width="stretch")
                st.button("Load into the live view", icon=":material/open_in_browser:", type="primary",
                          on_click=share.on_load_run, args=(run_id,), key="sweep_load_best", width="stretch")
        d = st.columns(2)
        with d[0]:
            share.figure_download(figure("sweep_heatmap", by, h, best), f"sweep-{by}",
                                  key="dl_sweep_map", label="Heatmap")
        with d[1]:
            share.figure_download(filters_fig, "sweep-filters", key="dl_sweep_filters", label="Filters")
        st.caption("Downloads are interactive HTML files.")
    failed = [c for c in (sweep.progress().cells if sweep is not None else ()) if c.status == RunStatus.FAILED]
    for cell in failed:
        st.caption(f":material/error: ρ={cell.rho:g} β={cell.beta:g}: {cell.reason}")
    if running_at_render and (sweep is None or sweep.done):
        st.rerun(scope="app")  # finished: redraw once without polling


sweep_view()
