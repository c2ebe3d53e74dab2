"""Runs: every training run recorded on this server. Filter and sort them, compare two to four, open one
(rename, delete, copy, download, load it back into the live view to continue training).

A run belongs to whoever made it (``sae.runs.owners``): only its owner, or a teacher (the sidebar's Teacher
panel), may rename or delete it; anyone may copy it, or load it, and continue the copy. The store checks every
change against this session's identity (``sae.ui.identity.actor``); the page only offers what the store allows.
A delete moves the run to the store's trash (``store.trash``): the page offers Undo, and the trash is purged
after a week. The pickers keep the chosen runs by id (``sae.ui.pickers``), and ``?run=`` in the URL follows the
run on view."""

import pandas as pd
import streamlit as st

from sae.runs import export
from sae.viz import curves, distributions, filters
from sae.viz.style import empty_figure
from sae.viz import run_figures
from sae.runs.compare import DEFAULT_COLUMNS, MAX_RUNS, CompareError, differing_settings, load_comparison
from sae.data import DATASETS
from sae.runs.table import (RUN_SORTS, STATUS_FILTERS, default_comparison, filter_runs, image_shape_for,
                            live_changes, live_run_ids, run_label, run_table)
from sae.runs.owners import denial, may_change, owner_label
from sae.runs.store import StoreError
from sae.runs.trash import KEEP_SECONDS
from sae.ui import identity, page, pickers, share, state

job = page("Runs", ":material/table_rows:",
           "Every training run is recorded automatically: its settings, curves, final metrics and weights. "
           "Choose two to four to compare, or open one to rename, delete, download or continue it.",
           run_links=False)  # here ?run=<id> opens that run's record (below), it does not load it

try:
    store = state.run_store()
    viewer = store.identity(identity.actor())  # who this session is: the store checks every change against it
except StoreError as exc:
    st.error(f"The run store cannot be opened: {exc}", icon=":material/error:")
    st.stop()
with st.sidebar:
    identity.identity_panel()

st.caption(f":material/database: Recorded in `{store.root}` (SQLite + safetensors). The store belongs to this "
           "server: everyone using it sees these runs, like a shared lab notebook, and they survive restarts. "
           "Start the server with `SAE_LAB_DATA=/some/dir` to keep them elsewhere.")
if job.record_error:
    st.warning(f"The current run is not being recorded: {job.record_error}", icon=":material/warning:")
error = st.session_state.pop("runs_error", None)
if error:
    st.error(error, icon=":material/error:")


def undo_delete(run_id: str) -> None:
    """Take the run this session deleted out of the trash and open it again."""
    st.session_state.pop("runs_deleted", None)
    try:
        store.trash.restore(run_id, actor=identity.actor())
    except StoreError as exc:
        st.session_state["runs_error"] = f"Cannot undo: {exc}"
        return
    st.session_state["runs_open"] = run_id
    st.session_state["runs_view"] = "One run"


deleted = st.session_state.get("runs_deleted")  # (id, name) of the run this session deleted last
if deleted and deleted[0] in store.trash:
    n = st.columns([6, 1], vertical_alignment="center")
    n[0].success(f"Deleted **{deleted[1]}** · kept in the trash for {KEEP_SECONDS / 86400:g} days",
                 icon=":material/delete:")
    n[1].button("Undo", icon=":material/undo:", on_click=undo_delete, args=(deleted[0],), key="runs_undo",
                width="stretch")

# ----------------------------------------------------------------------------- filters and the table
c = st.columns([2, 1.4, 1.4, 1.2, 1.1])
search = c[0].text_input("Name contains", key="runs_search", persist_state="session", placeholder="e.g. digits")
datasets = c[1].multiselect("Data set", sorted(set(DATASETS) | {r.dataset for r in store.list()}), key="runs_data",
                            persist_state="session")
statuses = c[2].multiselect("Status", list(STATUS_FILTERS), key="runs_status", persist_state="session")
sort = c[3].selectbox("Sort by", list(RUN_SORTS), key="runs_sort", persist_state="session")
sweeps = c[4].toggle("Sweep cells", value=True, key="runs_sweeps", persist_state="session",
                     help="Also list the runs that are cells of a sweep.")
order_by, descending = RUN_SORTS[sort]


def listed() -> tuple[list, list]:
    """(every run, the runs the filters let through), in the chosen order."""
    every = store.list(order_by=order_by, descending=descending)
    return every, filter_runs(every, search=search, datasets=datasets, statuses=statuses, sweep_cells=sweeps)


everything, records = listed()
by_id = {r.id: r for r in everything}
if not everything:
    st.info("No runs recorded yet. Press **Train** in the sidebar (every run is recorded as it trains), or start "
            "a sweep on the **Sweep** page.", icon=":material/info:")
    st.stop()
live_at_render = live_run_ids(everything)


FINAL_HELP = "In effect at the run's last recorded step (they can change while a run trains)."
CHANGED_HELP = ("The hyperparameters changed while the run trained, start→final. A run's name is given when it "
                "starts: a default name keeps the starting ρ and β.")


@st.fragment(run_every=2.0 if live_at_render else None)
def runs_table() -> None:
    """The table, redrawn every 2 s while a run trains; when one ends, the whole page follows."""
    every, shown = listed()
    table = run_table(shown, viewer)
    st.dataframe(table, hide_index=True, key="runs_table", height=min(318, 38 + 35 * max(1, len(table))),
                 column_order=[c for c in table.columns if c != "id"],
                 column_config={
                     "name": st.column_config.TextColumn("name", width="medium", pinned=True),
                     "n_hidden": st.column_config.NumberColumn("hidden"),
                     "rho": st.column_config.NumberColumn("final ρ", format="%g", help=FINAL_HELP),
                     "beta": st.column_config.NumberColumn("final β", format="%g", help=FINAL_HELP),
                     "changed": st.column_config.TextColumn("changed live", help=CHANGED_HELP),
                     "lambda": st.column_config.NumberColumn("final λ", format="%g", help=FINAL_HELP),
                     "lr": st.column_config.NumberColumn("final lr", format="%g", help=FINAL_HELP),
                     "epoch": st.column_config.NumberColumn("epoch", format="%.1f"),
                     "reconstruction": st.column_config.NumberColumn("recon. error", format="%.4g",
                                                                     help="½‖x̂−x‖², mean over all the data"),
                     "rho_hat_mean": st.column_config.NumberColumn("mean ρ̂", format="%.4f"),
                     "dead_units": st.column_config.NumberColumn("dead"),
                     "probe_accuracy": st.column_config.NumberColumn("probe acc.", format="percent",
                                                                     help="linear probe on the codes (labels)"),
                     "total": st.column_config.NumberColumn("J (last step)", format="%.4g"),
                     "elapsed": st.column_config.NumberColumn("train s", format="%.1f"),
                     "created": st.column_config.DatetimeColumn("created", format="YYYY-MM-DD HH:mm:ss"),
                     "owner": st.column_config.TextColumn("owner", help="Only a run's owner, or a teacher, may "
                                                          "rename or delete it; anyone may copy it."),
                 })
    st.caption(f"{len(shown)} of {len(every)} runs shown · click a column header to sort"
               + (" · updating while runs train" if live_at_render else ""))
    if live_run_ids(every) != live_at_render:
        st.rerun(scope="app")


runs_table()


def label(run_id: str) -> str:
    return run_label(by_id.get(run_id), run_id)


# the run named by the URL (?run=<id>, e.g. a sweep cell clicked on the Sweep page) opens once; a run deleted
# since leaves the URL
url_run = st.query_params.get("run")
if url_run and url_run not in by_id:
    del st.query_params["run"]
    st.caption(":material/info: The run in this link is no longer recorded (deleted).")
elif url_run and url_run != st.session_state.get("runs_url_seen"):
    st.session_state["runs_url_seen"] = url_run
    st.session_state["runs_open"] = url_run
    st.session_state["runs_view"] = "One run"
if "runs_compare" in st.session_state:  # runs deleted meanwhile leave the selections
    st.session_state["runs_compare"] = [i for i in st.session_state["runs_compare"] if i in by_id][:MAX_RUNS]
if st.session_state.get("runs_open") not in by_id:
    st.session_state.pop("runs_open", None)
if "runs_compare" not in st.session_state:  # a first visit compares the two latest finished runs (not sweep cells)
    st.session_state["runs_compare"] = default_comparison(store)

options = [r.id for r in records]
view = st.radio("View", ["Compare", "One run"], horizontal=True, key="runs_view", persist_state="session",
                label_visibility="collapsed")


def add_to_comparison(run_id: str) -> None:
    chosen = [i for i in st.session_state.get("runs_compare", []) if i != run_id]
    st.session_state["runs_compare"] = (chosen + [run_id])[-MAX_RUNS:]
    st.session_state["runs_view"] = "Compare"


def rename(run_id: str) -> None:
    try:
        store.rename(run_id, st.session_state.get(f"runs_name_{run_id}", ""), actor=identity.actor())
    except StoreError as exc:
        st.session_state["runs_error"] = f"Cannot rename: {exc}"


def copy(run_id: str) -> None:
    """Copy a run (anyone's) as this session's own, and open the copy."""
    try:
        copied = store.copy(run_id, owner=identity.actor())
    except StoreError as exc:
        st.session_state["runs_error"] = f"Cannot copy: {exc}"
        return
    st.session_state["runs_open"] = st.session_state["runs_copied"] = copied
    st.session_state["runs_view"] = "One run"


def delete(run_id: str, popover_key: str) -> None:
    """The confirmation's callback, bound to the run it names: trash that run (Undo brings it back), close
    the confirmation, and let the picker and the URL move on."""
    st.session_state[popover_key] = False
    try:
        record = store.trash.put(run_id, actor=identity.actor())
    except StoreError as exc:
        st.session_state["runs_error"] = f"Cannot delete: {exc}"
        return
    st.session_state["runs_deleted"] = (record.id, record.name)
    if st.session_state.get("runs_open") == run_id:
        st.session_state.pop("runs_open", None)
    if st.query_params.get("run") == run_id:
        del st.query_params["run"]


def shape_of(record) -> tuple[int, int] | None:
    known = state.load_data(record.dataset).image_shape if record.dataset in DATASETS else None
    return image_shape_for(record.model_config.n_inputs, known)


# ----------------------------------------------------------------------------- compare
if view == "Compare":
    if "run" in st.query_params:  # the URL names a run only while one is on view
        del st.query_params["run"]
    chosen = pickers.pick_many(f"Runs to compare (2 to {MAX_RUNS})", options + [i for i in st.session_state.get(
        "runs_compare", []) if i not in options], "runs_compare", label, max_selections=MAX_RUNS,
        placeholder="Choose runs")
    if len(chosen) < 2:
        st.info("Choose two to four runs above to see their loss curves overlaid, their filters side by side and "
                "their ρ̂ histograms.", icon=":material/compare_arrows:")
        st.stop()
    c = st.columns([2, 1.5, 1])
    column = c[0].radio("Curve", list(DEFAULT_COLUMNS), format_func=lambda k: run_figures.COLUMN_TITLES.get(k, k),
                        horizontal=True, key="runs_curve", persist_state="session")
    x_axis = c[1].radio("Against", ["step", "epoch", "time"], horizontal=True, key="runs_x", persist_state="session")
    log_y = c[2].toggle("Log y", value=True, key="runs_log", persist_state="session")
    try:
        comparison = load_comparison(store, chosen, x=x_axis)
    except (CompareError, StoreError) as exc:
        st.warning(f"These runs cannot be compared: {exc}", icon=":material/warning:")
        st.stop()
    names = comparison.names
    left, right = st.columns([3, 2], gap="medium")
    with left:
        rho = comparison.records[0].current_train_config.rho if comparison.records[0].current_train_config else None
        fig = run_figures.compare_curves(comparison.curves, column if column in comparison.curves.curves else "total",
                                          names, log_y=log_y, target=rho)
        st.plotly_chart(fig, key="cmp_curves")
        share.figure_download(fig, f"compare-{column}", key="dl_cmp_curves")
    with right:
        if comparison.histograms is not None:
            targets = {r.id: (r.current_train_config.rho if r.current_train_config else None)
                       for r in comparison.records}
            fig = run_figures.compare_rho_hat(comparison.histograms, names, targets)
            st.plotly_chart(fig, key="cmp_rho_hat")
            share.figure_download(fig, "compare-rho-hat", key="dl_cmp_rho")
        else:
            st.info("No ρ̂ recorded yet for these runs.")
    if comparison.filters:
        shape = shape_of(comparison.records[0])
        st.markdown("**Encoder filters W₁, side by side**")
        if shape is not None:
            fig = run_figures.filters_side_by_side(comparison.filters, shape, names)
            st.plotly_chart(fig, key="cmp_filters", config={"displayModeBar": False})
            share.figure_download(fig, "compare-filters", key="dl_cmp_filters")
        else:
            cols = st.columns(len(comparison.filters))
            for k, (run_id, W) in enumerate(comparison.filters.items()):
                cols[k].plotly_chart(filters.weights_heatmap(W, title=names[run_id]), key=f"cmp_w_{k}")
    differ = differing_settings(comparison.records)
    if differ:
        st.markdown("**What differs**")
        st.dataframe(pd.DataFrame({"setting": list(differ)} | {names[r.id]: [str(v[k]) for v in differ.values()]
                                                               for k, r in enumerate(comparison.records)}),
                     hide_index=True, key="cmp_differ")
    for run_id, why in comparison.missing.items():
        st.caption(f":material/info: {names.get(run_id, run_id)}: {why}")

# ----------------------------------------------------------------------------- one run
else:
    current = st.session_state.get("runs_open")
    open_options = options + ([current] if current and current not in options else [])
    if not open_options:
        st.info("No run matches the filters.")
        st.stop()
    run_id = pickers.pick_one("Run", open_options, "runs_open", label)
    record = by_id[run_id]
    if st.query_params.get("run") != run_id:  # the URL follows the run on view (a link to share it)
        st.query_params["run"] = run_id
        st.session_state["runs_url_seen"] = run_id
    tc = record.current_train_config
    ours = job.run_id == record.id
    c = st.columns(6)
    c[0].metric("Status", record.display_status, help=record.reason or None)
    c[1].metric("Step", f"{record.step:,}", help=f"epoch {record.epoch:,.1f} · {record.elapsed:,.1f} s of training")
    c[2].metric("Reconstruction error", "—" if record.reconstruction is None else f"{record.reconstruction:.4g}")
    c[3].metric("Mean ρ̂", "—" if record.rho_hat_mean is None else f"{record.rho_hat_mean:.4f}",
                help=None if tc is None else f"target ρ = {tc.rho:g}")
    c[4].metric("Dead units", "—" if record.dead_units is None else f"{record.dead_units}")
    c[5].metric("Probe accuracy", "—" if record.probe_accuracy is None else f"{record.probe_accuracy:.1%}")
    st.caption(f"{record.dataset} · {record.model_config.n_inputs} → {record.model_config.n_hidden} "
               f"{record.model_config.activation} · "
               + ("no training settings recorded" if tc is None else
                  f"{tc.penalty.upper()} ρ={tc.rho:g} β={tc.beta:g} λ={tc.weight_decay:g} · {tc.optimizer} "
                  f"lr={tc.lr:g} batch {tc.batch_size}"
                  + (f" (changed live: {live_changes(record)})" if live_changes(record) else ""))
               + f" · id `{record.id}`"
               + f" · owner: {owner_label(record.owned_by, viewer)}"
               + (" · this session's live run" if ours else "")
               + (f" · continued from {label(record.parent_id)}" if record.parent_id in by_id else ""))

    if st.session_state.pop("runs_copied", None) == record.id:
        st.success("This is your copy: rename it, delete it, or load it into the live view to continue it.",
                   icon=":material/content_copy:")
    mine = may_change(record.owned_by, viewer)  # the rule the store applies (sae.runs.owners), for what to offer
    if mine and viewer is not None and viewer.is_teacher and record.owned_by != viewer.user:
        st.caption(f":material/school: As the teacher you may rename or delete this run of "
                   f"{owner_label(record.owned_by, viewer)}.")
    a = st.columns([1.3, 1.3, 0.9, 2.4, 1])
    live_here = ours and not job.final
    a[0].button("Load into the live view", type="primary", icon=":material/open_in_browser:",
                on_click=share.on_load_run, args=(record.id,), key="runs_load",
                disabled=not record.has_weights or live_here, width="stretch",
                help="This is the run on view in this session already." if live_here else
                "Every page shows this model, paused at its step; Resume or Step trains it further (recorded as "
                "a new run). Replaces this session's current model.")
    a[1].button("Add to comparison", icon=":material/compare_arrows:", on_click=add_to_comparison, args=(record.id,),
                key="runs_add", width="stretch")
    a[2].button("Copy", icon=":material/content_copy:", on_click=copy, args=(record.id,), key="runs_copy",
                width="stretch", help="Your own copy of this run (record, curves, weights), to rename, delete or "
                                      "continue.")
    if not mine:  # the store would refuse: say why instead of offering rename and delete
        why = denial(record.owned_by)
        a[3].caption(f":material/lock: {why[:1].upper()}{why[1:]}")
    else:
        with a[3]:
            with st.form(f"runs_rename_form_{record.id}", border=False):
                r1, r2 = st.columns([3, 1])
                r1.text_input("New name", value=record.name, key=f"runs_name_{record.id}",
                              label_visibility="collapsed", max_chars=200)
                r2.form_submit_button("Rename", on_click=rename, args=(record.id,), width="stretch")
        confirm = f"runs_delete_pop_{record.id}"  # one confirmation per run: another run's starts closed
        with a[4].popover("Delete", icon=":material/delete:", width="stretch", key=confirm, on_change="rerun"):
            st.markdown(f"Delete **{record.name}** with its curves and weights? It stays in the trash for "
                        f"{KEEP_SECONDS / 86400:g} days: Undo brings it back.")
            st.button("Delete permanently", type="primary", on_click=delete, args=(record.id, confirm),
                      key=f"runs_delete_{record.id}")

    history = store.history(record.id)
    rho_hat = store.rho_hat(record.id)
    left, mid, right = st.columns([1.2, 1, 1], gap="medium")
    left.markdown("**The objective by term**")
    mid.markdown("**Encoder filters W₁**")
    with left:
        fig = curves.loss_curves(history, tc.penalty if tc else "kl", log_y=True) if history else \
            empty_figure("No curves recorded for this run.")
        st.plotly_chart(fig, key="run_curves")
        share.figure_download(fig, f"{record.name}-loss", key="dl_run_curves")
    with mid:
        if record.has_weights:
            W = store.load_model(record.id).encoder.weight.detach().numpy()
            shape = shape_of(record)
            if shape is not None:
                st.plotly_chart(filters.filters_figure(W, shape, rho_hat=rho_hat if rho_hat is not None and
                                                       len(rho_hat) == len(W) else None, height=340),
                                key="run_filters", config={"displayModeBar": False})
                share.filters_download(W, shape, f"{record.name}-filters", key="dl_run_filters")
            else:
                st.plotly_chart(filters.weights_heatmap(W, title="Encoder weights W₁"), key="run_filters")
        else:
            st.info("No weights recorded yet (the run never reached a checkpoint).")
    with right:
        if rho_hat is not None and len(rho_hat):
            fig = distributions.rho_hat_histogram(rho_hat, tc.rho if tc else None)
            st.plotly_chart(fig, key="run_rho_hat")
            share.figure_download(fig, f"{record.name}-rho-hat", key="dl_run_rho")
        else:
            st.info("No ρ̂ recorded for this run.")

    if record.has_weights:
        def bundle(run_id=record.id, dataset=record.dataset, step=record.step) -> bytes:
            run = store.load(run_id)
            return export.model_bundle(run.model, run.train_config, dataset, run.history, step=step)

        d = st.columns([1, 3])
        d[0].download_button("Model (.zip)", share.deferred(bundle, "The model"),
                             file_name=export.download_name(record.name, ".zip"), mime="application/zip",
                             on_click="ignore", key="runs_bundle", icon=":material/download:", width="stretch",
                             help="config.json + model.safetensors + history.npz; open it with “Open a saved "
                                  "model” in the sidebar, or sae.runs.export.read_model_bundle in Python.")
        if tc is not None:
            with d[1].expander("Reproduce in Python", icon=":material/code:"):
                st.code(export.reproduce_snippet(record.model_config, tc, record.dataset), language="python")
