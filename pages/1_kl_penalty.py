"""KL penalty: the curve KL(ρ‖ρ̂) and every hidden unit's current ρ̂ⱼ on it."""

import inspect

import numpy as np
import streamlit as st

import sae.core.loss
from sae.app.twin import twin_derived, twin_state
from sae.app.views import kl_units, kl_zoom_limit
from sae.viz import curves
from sae.viz import twin as twin_figures
from sae.ui import page, twin as twin_ui, what_to_look_for
from sae.ui.chart import live_chart
from sae.ui.live import live

job = page("KL penalty", ":material/function:",
           "The sparsity penalty of each hidden unit as a function of its mean activation ρ̂ⱼ.")

st.latex(r"\mathrm{KL}(\rho\,\Vert\,\hat\rho_j)=\rho\log\frac{\rho}{\hat\rho_j}+(1-\rho)\log\frac{1-\rho}{1-\hat\rho_j}"
         r"\qquad\frac{\partial\,\mathrm{KL}}{\partial\hat\rho_j}=-\frac{\rho}{\hat\rho_j}+\frac{1-\rho}{1-\hat\rho_j}")
c1, c2, c3 = st.columns([1, 1, 2])
scaled = c1.toggle("Scale by β", value=True, key="kl_scaled", persist_state="session")
derivative = c2.toggle("Show the derivative", value=False, key="kl_derivative", persist_state="session",
                       help="β·dKL/dρ̂ⱼ: what backprop adds to unit j's delta (before f′).")
compare = c3.multiselect("Compare with ρ =", [0.01, 0.05, 0.1, 0.2, 0.3, 0.5], default=[0.2], key="kl_compare",
                         persist_state="session", help="UFLDL draws the classic figure for ρ = 0.2.")


def draw(job) -> None:
    snap = job.latest()
    rho, beta = snap.hyper["rho"], snap.hyper["beta"]
    rho_hat = snap.rho_hat if np.isfinite(snap.rho_hat).all() else job.derived().rho_hat
    scale = beta if scaled else 1.0
    if job.settings.penalty != "kl":
        st.info(f"This run uses the {job.settings.penalty.upper()} penalty: the KL curve is drawn for reference; "
                "it does not act on the units.", icon=":material/info:")
    twin = twin_state(job)
    twin_ui.caption(twin, "the violet diamonds (on its own dashed curve where its ρ or β differs)")
    if twin is not None:  # the twin's ρ̂ⱼ on its own ρ and β (on the run's curve where they are the same)
        t_snap = twin.snapshot
        t_rho, t_beta = t_snap.hyper["rho"], t_snap.hyper["beta"]
        t_rho_hat = t_snap.rho_hat if np.isfinite(t_snap.rho_hat).all() else twin_derived(job, twin).rho_hat
        t_scale = t_beta if scaled else 1.0
        both = dict(twin_rho=t_rho, twin_scale=t_scale, twin_rho_hat=t_rho_hat, derivative=derivative,
                    compare=compare, names=(twin.run_name, twin.twin_name))
    left, right = st.columns([3, 2], gap="medium")
    with left:
        title = "Over all of (0, 1)"
        live_chart(curves.kl_curve(rho, scale, rho_hat, derivative=derivative, compare=compare, title=title)
                   if twin is None else twin_figures.kl_curve(rho, scale, rho_hat, title=title, **both),
                   key="kl_curve")
    with right:
        hi = kl_zoom_limit(rho, rho_hat)
        if twin is not None:
            hi = max(hi, kl_zoom_limit(t_rho, t_rho_hat))
        title = f"Zoom on ρ̂ ≤ {hi:.2g}, where the units are"
        live_chart(curves.kl_curve(rho, scale, rho_hat, derivative=derivative, compare=compare, x_range=(0.0, hi),
                                   title=title)
                   if twin is None else twin_figures.kl_curve(rho, scale, rho_hat, x_range=(0.0, hi), title=title,
                                                              **both),
                   key="kl_zoom")
    units = kl_units(rho, rho_hat, scale)
    c = st.columns(4)
    c[0].metric("β·Σⱼ KL(ρ‖ρ̂ⱼ)" if scaled else "Σⱼ KL(ρ‖ρ̂ⱼ)", f"{units.total:.4g}",
                help="The sparsity term of J, from the ρ̂ⱼ of the last minibatch.")
    c[1].metric("Units above ρ", units.above)
    c[2].metric("Units below ρ", units.below)
    worst = units.worst
    c[3].metric("Most penalised unit", f"#{worst}",
                help=f"ρ̂ = {rho_hat[worst]:.4f}, penalty {units.per_unit[worst]:.4g}")
    if twin is not None:
        t_units = kl_units(t_rho, t_rho_hat, t_scale)
        st.caption(f":violet[**{twin.twin_name}**]: {'β·' if scaled else ''}Σⱼ KL(ρ‖ρ̂ⱼ) = {t_units.total:.4g} "
                   f"({t_units.total - units.total:+.4g} vs the run) · {t_units.above} units above its ρ = "
                   f"{t_rho:g}, {t_units.below} below · most penalised unit #{t_units.worst}")
    what_to_look_for("the orange points (one per hidden unit) sliding down the curve into its minimum at ρ. "
                     "The curve is steep on the right: a unit that fires too often pays much more than one "
                     "that fires too rarely. Change ρ in the sidebar and watch the valley move and the units follow.")


live(draw)

with st.expander("The source of the KL function used in training", icon=":material/code:"):
    st.code(inspect.getsource(sae.core.loss.kl_divergence), language="python")
    st.code(inspect.getsource(sae.core.loss.kl_divergence_grad), language="python")
