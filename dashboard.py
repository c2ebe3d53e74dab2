"""The Sparse Autoencoder Lab: `streamlit run dashboard.py`. This home page is where one trains."""

import math

import streamlit as st

from sae.app.twin import twin_derived, twin_state
from sae.app.views import rho_target, shown_deltas
from sae.evaluation.labels import METRIC_LABELS
from sae.evaluation.units import thresholds_text
from sae.viz import curves
from sae.viz import twin as twin_figures
from sae.ui import doctor, page, timeline, twin as twin_ui, what_to_look_for
from sae.ui.chart import live_chart
from sae.ui.live import headline_deltas, live

job = page("Train", ":material/model_training:",
           "Train a sparse autoencoder live: press Train in the sidebar, then move ρ, β, λ or the "
           "learning rate while it runs. Every page shows the same run.")

with st.expander("The objective being minimised", icon=":material/functions:"):
    st.latex(r"J(W,b)=\underbrace{\frac{1}{m}\sum_{i=1}^{m}\tfrac12\lVert \hat x_i-x_i\rVert^2}_{\text{reconstruction}}"
             r"+\underbrace{\frac{\lambda}{2}\left(\lVert W_1\rVert^2+\lVert W_2\rVert^2\right)}_{\text{weight decay}}"
             r"+\underbrace{\beta\sum_{j=1}^{s}\mathrm{KL}(\rho\,\Vert\,\hat\rho_j)}_{\text{sparsity}}")
    st.latex(r"a=f(W_1x+b_1),\quad \hat x=g(W_2a+b_2),\quad \hat\rho_j=\frac{1}{m}\sum_{i=1}^{m}a_j(x_i)")
    st.markdown("ρ̂ⱼ is **one number per hidden unit**: how often unit j fires on average. The KL term pulls "
                "every ρ̂ⱼ towards the target ρ; β says how hard. Biases are not decayed.")

log_y = st.toggle("Log scales", value=True, key="train_log_y", persist_state="session",
                  help="Log y axes: the loss terms differ by orders of magnitude, and ρ̂ starts near 0.5 "
                       "for a small target ρ.")


def draw(job) -> None:
    snap = job.latest()
    history = job.history()
    d = job.derived()
    twin = twin_state(job)  # None without a twin: the page is as it always was
    twin_history = (job.twin_history() or {}) if twin is not None else {}
    twin_ui.caption(twin)
    head = d.headline()
    deltas = headline_deltas(job, head)

    def shown(v, f):
        return "—" if v is None or not math.isfinite(v) else f.format(v)

    deltas = shown_deltas(deltas)

    def delta(key, f):
        return shown(deltas[key], f) if deltas[key] else None

    c = st.columns(4)
    c[0].metric("Loss J (last batch)", shown(head["loss"], "{:.4g}"), delta("loss", "{:+.3g}"),
                delta_color="inverse", help="Total objective on the last minibatch. Δ: change over the last 3 s.")
    target = rho_target(job.settings.penalty, snap.hyper["rho"])  # L1 and TopK have no target
    c[1].metric(METRIC_LABELS["rho_hat_mean"].name + ("" if target is None else f"  (target ρ = {target:g})"),
                shown(head["rho_hat"], "{:.4f}"), delta("rho_hat", "{:+.4f}"), delta_color="off",
                help="Mean over units of ρ̂ⱼ, measured on a fixed subset of up to 1,000 samples.")
    c[2].metric(METRIC_LABELS["dead_units"].name, shown(head["dead"], "{:.0f}"), delta("dead", "{:+.0f}"),
                delta_color="inverse",
                help=f"{d.units.summary()} on the subset. {thresholds_text(d.rho, d.activation)}")
    c[3].metric("L0 (active units per sample)", shown(head["l0"], "{:.2f}"), delta("l0", "{:+.2f}"),
                delta_color="off",
                help=f"Mean number of units with activity > 0.1 per sample, out of {len(snap.rho_hat)}.")

    if twin is not None:
        twin_ui.differences_table(d, twin_derived(job, twin), twin)

    doctor.panel(job)  # what is wrong with the run, its evidence and the fixes (sae.ui.doctor)

    left, right = st.columns(2)
    with left:
        if twin is None:
            live_chart(timeline.marked(curves.loss_curves(history, job.settings.penalty, log_y=log_y,
                                                          status=snap.status), job), key="loss_curves")
        else:  # overlaid: the twin dashed in the same term colours
            live_chart(timeline.marked(twin_figures.loss_curves(history, twin_history, job.settings.penalty,
                                                                log_y=log_y, names=(twin.run_name, twin.twin_name),
                                                                status=snap.status), job), key="loss_curves")
        what_to_look_for("the reconstruction term falling while the sparsity term (β·KL) first jumps then "
                         "settles; raise β live and watch the red curve and the total respond.")
    with right:
        if twin is None:
            live_chart(timeline.marked(curves.rho_hat_band(history, log_y=log_y, target=target is not None,
                                                           status=snap.status), job), key="rho_hat_band")
        else:  # with the twin's mean ρ̂ (and its target, where it differs)
            live_chart(timeline.marked(twin_figures.rho_hat_band(
                history, twin_history, log_y=log_y, target=target is not None,
                twin_target=target is not None and "rho" in twin.changes, names=(twin.run_name, twin.twin_name),
                status=snap.status), job), key="rho_hat_band")
        what_to_look_for("the blue band (ρ̂ⱼ across units) closing in on the dashed target ρ; "
                         "move ρ in the sidebar and the band follows it.")

    timeline.panel(job)  # inside the live view: the edits, and the replay link's step, stay current


live(draw)
