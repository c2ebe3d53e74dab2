"""Filters: each hidden unit's weights as an image (UFLDL's display normalisation)."""

import numpy as np
import streamlit as st

from sae.app.settings import filters_promise
from sae.app.twin import filter_similarity, relative_change, twin_derived, twin_state
from sae.app.views import rho_target, unit_order, unit_weights
from sae.evaluation.units import thresholds_text
from sae.viz import distributions, filters, samples
from sae.viz import twin as twin_figures
from sae.viz.style import activation_range
from sae.ui import page, share, twin as twin_ui, what_to_look_for
from sae.ui.chart import live_chart
from sae.ui.live import live

job = page("Filters", ":material/grid_view:",
           "Row j of W₁ is what hidden unit j looks for in an input. Grey is a zero weight, white excites the "
           "unit, black inhibits it; every filter is scaled to full contrast (UFLDL's display_network).")

c1, c2, c3 = st.columns([1.2, 1.2, 1])
which = c1.radio("Weights", ["encoder W₁", "decoder W₂ᵀ"], horizontal=True, key="flt_which", persist_state="session")
TWIN_GRID_HEIGHT = 250  # px: each of the two grids side by side in the left column (square grids)
ORDERS = {"unit": "unit", "ρ̂ (high first)": "rho_hat", "weight norm (high first)": "norm"}  # label: unit_order's by
sort = c2.radio("Order", list(ORDERS), horizontal=True, key="flt_sort", persist_state="session")
normalize = c3.radio("Contrast", ["ufldl", "per_filter"], horizontal=True, key="flt_norm", persist_state="session",
                     help="ufldl: subtract the global mean, scale each filter by its max |w| (grey = 0). "
                          "per_filter: stretch each filter's min..max.")


def _select_unit(key: str = "filters_chart") -> None:
    """A click on a filter selects its unit (the tile's invisible marker carries the unit index)."""
    event = st.session_state.get(key)
    try:
        points = event["selection"]["points"]
    except (KeyError, TypeError):
        return
    if points:
        custom = points[0].get("customdata")
        if isinstance(custom, dict):  # typed arrays may come back as {"0": ..., "1": ...}
            custom = [custom[k] for k in sorted(custom, key=int)]
        if custom:
            st.session_state["flt_unit"] = int(custom[0])


def draw(job) -> None:
    snap, d, data = job.latest(), job.derived(), job.data
    W = unit_weights(snap.weights, decoder=not which.startswith("encoder"))
    s = len(W)
    rho_hat, norms = d.rho_hat, np.linalg.norm(W, axis=1)
    order = unit_order(ORDERS[sort], rho_hat, norms)
    if st.session_state.get("flt_unit", 0) >= s:
        st.session_state["flt_unit"] = 0
    twin = twin_state(job)
    twin_ui.caption(twin, "the violet grid beside the run's")
    if twin is not None:  # the twin's filters in the run's order, so that unit j sits in the same cell in both
        td = twin_derived(job, twin)
        W_twin = unit_weights(twin.snapshot.weights, decoder=not which.startswith("encoder"))
        cosine, change = filter_similarity(W, W_twin), relative_change(W, W_twin)
    left, right = st.columns([3, 2], gap="medium")
    with right:
        unit = st.number_input("Unit (or click a filter)", 0, s - 1, key="flt_unit", step=1)
    with left:
        if data.image_shape is not None:
            fig = filters.filters_figure(W, data.image_shape, order=order, dead=d.dead, rho_hat=rho_hat,
                                         norms=norms, selected=unit, normalize=normalize,
                                         height=560 if twin is None else TWIN_GRID_HEIGHT)
            if twin is None:
                live_chart(fig, key="filters_chart", on_select=_select_unit,
                                config={"displayModeBar": False})
            else:  # side by side: the run's grid and the twin's
                g_run, g_twin = st.columns(2, gap="small")
                with g_run:
                    st.markdown(f"**{twin.run_name}**")
                    live_chart(fig, key="filters_chart", on_select=_select_unit, config={"displayModeBar": False})
                with g_twin:
                    st.markdown(f":violet[**{twin.twin_name}**]")
                    live_chart(filters.filters_figure(W_twin, data.image_shape, order=order, dead=td.dead,
                                                      rho_hat=td.rho_hat, norms=np.linalg.norm(W_twin, axis=1),
                                                      selected=unit, normalize=normalize, height=TWIN_GRID_HEIGHT),
                               key="filters_twin", on_select=lambda: _select_unit("filters_twin"),
                               config={"displayModeBar": False})
            with st.container(horizontal=True, vertical_alignment="center"):  # buttons as wide as their labels
                share.filters_download(W[order], data.image_shape, f"filters-step{snap.step}", key="dl_filters_png",
                                       normalize=normalize)
                share.figure_download(fig, f"filters-step{snap.step}", key="dl_filters_html")
                st.caption("Download these filters as a picture or an interactive page.")
        else:
            live_chart(filters.weights_heatmap(W[order], dead=d.dead,
                                                    title=f"{which}: {data.n_features} inputs, no image shape"),
                            key="filters_heatmap")
            if twin is not None:
                live_chart(filters.weights_heatmap(W_twin[order], dead=td.dead, title=f"{twin.twin_name}: {which}"),
                           key="filters_heatmap_twin")
        if twin is not None:  # how far each unit's filter moved
            live_chart(twin_figures.filter_similarity_figure(
                cosine, order, change, title=f"Run vs twin: cosine of each unit's filters (mean {cosine.mean():.3f})"),
                key="filters_similarity")
            st.caption(f"{int((cosine < 0.5).sum())} of {s} units point elsewhere in the twin (cos < 0.5), "
                       f"{int((cosine >= 0.9).sum())} nearly the same way (cos ≥ 0.9); median ‖Δw‖/‖w‖ = "
                       f"{np.median(change):.3g}.")
        dead = len(d.dead)
        what_to_look_for(f"{filters_promise(job.settings.dataset)}. "
                         + (f"{dead} dead unit{'s' if dead != 1 else ''} outlined in red; " if dead else
                            "No dead units right now (a dead unit would be outlined in red); ")
                         + f"{d.units.summary()}. {thresholds_text(d.rho, d.activation)}")
    with right:
        a = d.A[:, unit]
        c = st.columns(2)
        c[0].metric("ρ̂ⱼ", f"{rho_hat[unit]:.4f}", help="Mean activation of this unit over the subset.")
        c[1].metric("‖wⱼ‖", f"{norms[unit]:.3f}")
        st.markdown(f"Unit {unit} is **{d.units.state[unit]}**", help=thresholds_text(d.rho, d.activation))
        if twin is not None:
            st.markdown(f":violet[**In the twin**]: ρ̂ⱼ = {td.rho_hat[unit]:.4f}, ‖wⱼ‖ = "
                        f"{np.linalg.norm(W_twin[unit]):.3f}, **{td.units.state[unit]}**; cos(w_run, w_twin) = "
                        f"{cosine[unit]:.3f}")
        counts, edges = distributions.binned(a, 40, activation_range(d.activation))
        live_chart(distributions.histogram_figure(counts, edges,
                                                       f"activation of unit {unit} on {len(a):,} samples", "samples",
                                                       f"Activations of unit {unit}", color="#ff7f0e", log_y=True,
                                                       vlines={"ρ̂ⱼ": float(rho_hat[unit]),
                                                               "ρ": rho_target(job.settings.penalty,
                                                                                snap.hyper["rho"])}, height=260),
                        key="unit_hist")
        top = np.argsort(-a, kind="stable")[:12]
        st.markdown(f"**Inputs that activate unit {unit} most** (a = {a[top[0]]:.3f} … {a[top[-1]]:.3f})")
        if data.image_shape is not None:
            live_chart(samples.image_grid_figure(d.X[top], data.image_shape, columns=6, height=170,
                                                      normalize=not data.in_unit_interval),
                            key="unit_top", config={"displayModeBar": False})
        else:
            st.dataframe({"sample": d.subset[top], "a": a[top]}, hide_index=True)


live(draw)
