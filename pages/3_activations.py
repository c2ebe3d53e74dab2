"""Activations: how sparse the hidden code is, and how its distribution moves during training."""

import streamlit as st

from sae.app.twin import twin_derived, twin_state
from sae.app.views import rho_target
from sae.evaluation.units import thresholds_text
from sae.viz import distributions
from sae.viz import twin as twin_figures
from sae.ui import page, timeline, twin as twin_ui, what_to_look_for
from sae.ui.chart import live_chart
from sae.ui.live import live

job = page("Activations", ":material/bar_chart:",
           "Hidden activations aᵢⱼ on a fixed subset of up to 1,000 samples, recomputed from each snapshot.")
st.latex(r"\hat\rho_j=\frac{1}{m}\sum_{i=1}^{m}a_j(x_i)\qquad L_0(x_i)=\#\{j:\ a_j(x_i)>0.1\}")
log_y = st.toggle("Log-scale counts", value=True, key="act_log", persist_state="session")


def draw(job) -> None:
    snap, d = job.latest(), job.derived()
    rho = rho_target(job.settings.penalty, snap.hyper["rho"])  # None under L1 and TopK: no target to draw
    history = job.history()
    twin = twin_state(job)
    twin_ui.caption(twin, "the violet outline over the run's bars")
    st.caption(f"{d.units.summary()}", help=thresholds_text(d.rho, d.activation))
    if twin is not None:  # the twin's histograms on the same bins, as violet outlines over the run's bars
        td = twin_derived(job, twin)
        names = (twin.run_name, twin.twin_name)
        st.caption(f":violet[{twin.twin_name}]: {td.units.summary()}", help=thresholds_text(td.rho, td.activation))
    c1, c2 = st.columns(2)
    with c1:
        live_chart(distributions.activation_histogram(d.A, d.activation, log_y=log_y) if twin is None else
                   twin_figures.activation_histograms(d.A, td.A, d.activation, log_y=log_y, names=names),
                   key="act_hist")
        what_to_look_for("a tall spike near 0 and a thin tail: most units are silent on most inputs.")
    with c2:
        live_chart(distributions.rho_hat_histogram(d.rho_hat, rho) if twin is None else
                   twin_figures.rho_hat_histograms(d.rho_hat, td.rho_hat, rho,
                                                   rho_target(job.settings.penalty, twin.snapshot.hyper["rho"]),
                                                   names=names),
                   key="rho_hist")
        what_to_look_for("the units' ρ̂ⱼ bunching at the red target line ρ." if rho is not None else
                         "how the units' ρ̂ⱼ spread: L1 and TopK set no target ρ (L1 pushes every activation "
                         "towards 0, TopK keeps k units per sample).")
    c3, c4 = st.columns(2)
    with c3:
        live_chart(distributions.l0_histogram(d.l0, d.A.shape[1]) if twin is None else
                   twin_figures.l0_histograms(d.l0, td.l0, d.A.shape[1], names=names), key="l0_hist")
        what_to_look_for("few active units per sample; it grows when you raise ρ.")
    with c4:
        live_chart(distributions.activation_heatmap(d.A, d.labels, d.activation), key="act_heatmap")
        what_to_look_for("a few bright cells per row; with labels, units that light up for one class.")
    trace = job.trace.arrays()
    c5, c6 = st.columns(2)
    with c5:
        live_chart(timeline.marked(distributions.distribution_over_time(
            trace["step"], trace["rho"], trace["rho_edges"], "ρ̂ⱼ (log scale)",
            "Distribution of ρ̂ⱼ over training (minibatch)",
            target=None if rho is None else (history["step"], history["rho"]), log_y=True, colorscale="Oranges",
            status=snap.status), job), key="rho_time")
        what_to_look_for("the ρ̂ⱼ distribution dropping from ~0.5 (sigmoid units start half on) onto the "
                         "target line within the first few hundred steps, then tightening around it.")
    with c6:
        relu = d.activation == "relu"  # unbounded: each row is binned on [0, that snapshot's max]
        y_title = ("aᵢⱼ / max aᵢⱼ" if relu else "aᵢⱼ") + (" (log scale)" if trace["act_log"] else "")
        live_chart(timeline.marked(distributions.distribution_over_time(
            trace["step"], trace["act"], trace["act_edges"], y_title, "Distribution of all activations over training",
            log_y=trace["act_log"], status=snap.status), job), key="act_time")
        what_to_look_for("the bulk of the activations sinking by decades while a few stay near 1: "
                         "that is a sparse code.")


live(draw)
