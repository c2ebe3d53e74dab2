"""Common mistakes: switch on a mistake that circulates in copied sparse-autoencoder code, see what it does."""

import math
from functools import partial

import streamlit as st

from sae.viz import filters
from sae.viz import experiment_figures as fx
from sae.core.config import ModelConfig
from sae.experiments.mistake_compare import compare_mistake, mistake_train_config
from sae.experiments.mistakes import MISTAKES
from sae.experiments.datasets import MISTAKE_DATASETS
from sae.ui import page, what_to_look_for
from sae.ui.experiment import experiment
from sae.ui.state import load_data

page("Common mistakes", ":material/bug_report:",
     "Each mistake is trained beside the correct objective on the same data, from the same initial weights, "
     "with the same optimiser: only the line of code in question differs.", experiment=True)

CORRECT_KL = r"\beta\sum_{j=1}^{s}\mathrm{KL}(\rho\,\Vert\,\hat\rho_j),\qquad \hat\rho_j=\frac1m\sum_{i=1}^{m}a_{ij}"
FORMULAS = {  # (correct, mistaken) in LaTeX
    "rho_hat_scalar": (CORRECT_KL, r"\beta\,\mathrm{KL}(\rho\,\Vert\,\bar\rho),\qquad "
                                   r"\bar\rho=\frac{1}{ms}\sum_{i=1}^{m}\sum_{j=1}^{s}a_{ij}"),
    "kl_per_activation": (CORRECT_KL, r"\beta\sum_{j=1}^{s}\frac1m\sum_{i=1}^{m}\mathrm{KL}(\rho\,\Vert\,a_{ij})"),
    "kl_on_reconstruction": (CORRECT_KL, r"\beta\sum_{k=1}^{n}\mathrm{KL}\Big(\rho\,\Big\Vert\,"
                                         r"\frac1m\sum_{i=1}^{m}\hat x_{ik}\Big)"),
    "linear_encoder": (r"a=\sigma(W_1x+b_1)\in(0,1)\ \Rightarrow\ \hat\rho_j\in(0,1)",
                       r"a=W_1x+b_1\in\mathbb R\ \Rightarrow\ \hat\rho_j<0\ \text{possible},\ "
                       r"\log\frac{\rho}{\hat\rho_j}=\mathrm{NaN}"),
    "batch_mean_score": (r"\mathrm{score}_i=\tfrac12\lVert\hat x_i-x_i\rVert^2",
                         r"\mathrm{score}_i=\frac1b\sum_{k\in\mathrm{batch}(i)}\tfrac12\lVert\hat x_k-x_k\rVert^2"),
    "softmax_output": (r"\hat x=\sigma(W_2a+b_2)\in(0,1)^n",
                       r"\hat x=\mathrm{softmax}(W_2a+b_2)\ \Rightarrow\ \textstyle\sum_k\hat x_k=1"),
}

left, right = st.columns([1, 2], gap="large")
with left:
    name = st.radio("Switch on a mistake", list(MISTAKES), format_func=lambda k: MISTAKES[k].title, key="mk_which",
                    persist_state="session")
    with st.expander("Data and training", icon=":material/tune:"):
        dataset = st.radio("Data set", list(MISTAKE_DATASETS), format_func=MISTAKE_DATASETS.get, key="mk_data",
                           persist_state="session")
        rho = st.select_slider("ρ", [0.01, 0.02, 0.05, 0.1], value=0.05, key="mk_rho", persist_state="session")
        iters = st.number_input("L-BFGS iterations", 5, 1000, 200, step=50, key="mk_iters", persist_state="session")
        seed = st.number_input("Seed", 0, 10_000, 0, key="mk_seed", persist_state="session")
        st.caption("64 → 25 sigmoid units, β = 3, λ = 1e-4, full-batch L-BFGS: the setting of "
                   "tests/test_mistakes.py.")
mistake = MISTAKES[name]
with right:
    st.subheader(mistake.title, anchor=False)
    st.markdown(mistake.explanation)
    correct_tex, wrong_tex = FORMULAS.get(name, ("", ""))
    if correct_tex:
        st.markdown(":green[**Correct**]")
        st.latex(correct_tex)
        st.markdown(":red[**The mistake**]")
        st.latex(wrong_tex)
    st.caption(f"**Look at:** {mistake.look_at}")

data = load_data(dataset)
config = {"mistake": name, "data": dataset, "rho": rho, "iters": int(iters), "seed": int(seed)}


run = partial(compare_mistake, name, data.X, ModelConfig(data.n_features, 25),  # a worker runs it
              mistake_train_config(rho, int(iters), int(seed)), seed=int(seed),
              outlier="invert" if dataset == "digits" else "noise")


result = experiment("mistakes", config, run, auto=True, label=f"{mistake.title}, {dataset}",
                    action="train the correct and the mistaken model side by side (about a second)")


def fmt(v: float, f: str = "{:.3g}") -> str:
    return "NaN" if v is None or not math.isfinite(v) else f.format(v)


if result is not None and result.wrong is None:  # the batch-mean anomaly score
    s = result.scores
    m = st.columns(4)
    m[0].metric("AUC, per-sample score", f"{s.auc_per_sample:.3f}")
    m[1].metric("AUC, batch-mean score", f"{s.auc_batch_mean:.3f}", f"{s.auc_batch_mean - s.auc_per_sample:+.3f}")
    m[2].metric(f"Outliers in the top {s.n_outliers}, per sample", f"{s.hits_per_sample} of {s.n_outliers}")
    m[3].metric(f"Outliers in the top {s.n_outliers}, batch mean", f"{s.hits_batch_mean} of {s.n_outliers}",
                help="A batch's rows share one score: a tie does not single an outlier out.")
    st.plotly_chart(fx.batch_score_figure(s.per_sample, s.batch_mean, s.is_outlier, s.batch_size), key="mk_scores")
    what_to_look_for(f"the red stars: on top of the upper chart, each alone; in the lower one only lifting their "
                     f"whole batch of {s.batch_size} a little, level with its {s.batch_size - 1} normal rows.")
elif result is not None:
    c, w = result.correct, result.wrong
    if w.diverged:
        st.error(f"With the mistake, training stopped at once: {w.reason}", icon=":material/error:")
        negative, above = w.rho_hat_out_of_range()
        st.markdown(f"At the initial weights {negative} of {len(w.rho_hat)} units have ρ̂ⱼ < 0 and {above} have "
                    "ρ̂ⱼ > 1: the KL term takes the log of a negative number. The filters below are the initial "
                    "weights, kept by the Trainer.")
    rows = [("reconstruction, mean ½‖x̂ᵢ − xᵢ‖²", "reconstruction", "{:.3g}"),
            ("mean of ρ̂ⱼ", "rho_hat_mean", "{:.4f}"),
            ("std of ρ̂ⱼ across units", "rho_hat_std", "{:.4f}"),
            ("min ρ̂ⱼ", "rho_hat_min", "{:.4f}"),
            ("max ρ̂ⱼ", "rho_hat_max", "{:.4f}"),
            (f"units with |ρ̂ⱼ − ρ| > ρ (of {len(c.rho_hat)})", "off_target", "{:.0f}"),
            ("dead units (never > 0.1)", "dead", "{:.0f}"),
            ("dense units (> 0.1 on over half the samples)", "dense", "{:.0f}"),
            ("lifetime sparsity (1 = selective)", "lifetime_sparsity", "{:.3f}"),
            ("final objective J", "final_loss", "{:.4g}")]
    top = st.columns([2, 3], gap="medium")
    with top[0]:
        st.table({"": [r[0] for r in rows], "correct": [fmt(c.summary[r[1]], r[2]) for r in rows],
                  "with the mistake": [fmt(w.summary[r[1]], r[2]) for r in rows]}, hide_index=True)
        st.caption(f"Target ρ = {result.rho:g}. Both trained in {result.seconds:.1f} s. The final objectives are "
                   "different functions; compare the reconstruction and the ρ̂ⱼ.")
    with top[1]:
        st.plotly_chart(fx.rho_hat_comparison(c.rho_hat, w.rho_hat, result.rho), key="mk_rho_hat")
    shape = data.image_shape
    f = st.columns(2, gap="medium")
    for col, side, label in ((f[0], c, ":green[**Correct**]"), (f[1], w, ":red[**With the mistake**]")):
        with col:
            st.markdown(f"{label} · filters W₁ · {side.status}")
            st.plotly_chart(filters.filters_figure(side.W1, shape, rho_hat=side.rho_hat, dead=side.dead_units(),
                                                   height=300),
                            key=f"mk_filters_{'c' if side is c else 'w'}", config={"displayModeBar": False})
    g = st.columns(2, gap="medium")
    with g[0]:
        st.plotly_chart(fx.activation_comparison(c.activations, w.activations), key="mk_act")
    with g[1]:
        st.plotly_chart(fx.loss_comparison(c.history, w.history), key="mk_loss")
    what_to_look_for(mistake.look_at)
