"""Anomaly detection: train on the normal classes only, flag what the autoencoder reconstructs badly."""

from functools import partial

import streamlit as st

from sae.viz import experiment_figures as fx
from sae.experiments.anomaly import default_model_config, default_train_config
from sae.core.config import ModelConfig, replace
from sae.experiments.denoising import flag_rates, rethreshold, run_anomaly
from sae.experiments.datasets import DIGIT_DATASETS
from sae.ui import page, what_to_look_for
from sae.ui.experiment import experiment
from sae.ui.state import load_data

page("Anomaly detection", ":material/crisis_alert:",
     "The autoencoder learns only the normal classes. Every test sample gets its own score, its reconstruction "
     "error; a sample is flagged when its score reaches the threshold τ set on the training scores.", experiment=True)
st.latex(r"\mathrm{score}_i=\tfrac12\lVert\hat x_i-x_i\rVert^2\ \text{(per sample, not a batch mean)}"
         r"\qquad \text{flag } i \iff \mathrm{score}_i\ge\tau,\quad \tau=\mu_{\text{train}}+k\,\sigma_{\text{train}}")

c = st.columns([1.2, 2])
dataset = c[0].radio("Data set", list(DIGIT_DATASETS), format_func=DIGIT_DATASETS.get,
                     key="an_data", persist_state="session")
normal = c[1].multiselect("Normal classes (the model trains on 70% of these; the rest are anomalies)", list(range(10)),
                          default=[0, 1, 2, 3, 4], key="an_normal", persist_state="session")
with st.expander("Model and training", icon=":material/tune:"):
    e = st.columns(3)
    hidden = e[0].selectbox("Hidden units", ["auto", 16, 25, 49, 100, 196], key="an_hidden", persist_state="session",
                            help="auto: 196 for MNIST, 32 for the 8×8 digits.")
    iters = e[1].number_input("L-BFGS iterations", 5, 1000, 200, step=50, key="an_iters", persist_state="session")
    seed = e[2].number_input("Seed", 0, 10_000, 0, key="an_seed", persist_state="session")
    st.caption("UFLDL's MNIST objective: ρ = 0.1, β = 3, λ = 3e-3, full-batch L-BFGS "
               "(sae.experiments.anomaly's defaults).")

data = load_data(dataset)
model_config = default_model_config(data.n_features) if hidden == "auto" else ModelConfig(data.n_features, int(hidden))
train_config = replace(default_train_config(int(seed)), max_iter=int(iters))
config = {"data": dataset, "normal": sorted(normal), "hidden": model_config.n_hidden, "iters": int(iters),
          "seed": int(seed)}


run = partial(run_anomaly, data.X, data.labels, normal, model_config, train_config,  # a worker runs it
              seed=int(seed))


result = experiment("anomaly", config, run, label=f"{dataset}, normal {sorted(normal)}",
                    action=f"train on the normal classes and score every test sample "
                           f"(about {'10' if dataset == 'mnist' else '2'} s)")

if result is not None:
    t = st.columns([2, 1])
    k = t[0].slider("Threshold τ = mean + k·σ of the training scores: k =", 0.0, 6.0, 2.0, 0.1, key="an_k",
                    help="k = 2 is the usual start. Lower flags more anomalies and more normal samples.")
    log_y = t[1].toggle("Log counts", False, key="an_log")
    report = rethreshold(result, k)
    m = st.columns(4)
    m[0].metric("ROC AUC", f"{report.auc:.3f}", help="P(a random anomaly scores above a random normal sample); "
                "independent of τ. 0.5 is chance.")
    m[1].metric("Threshold τ", f"{report.threshold:.3g}",
                help=f"mean {result.train_scores.mean():.3g} + {k:g} × std {result.train_scores.std():.3g} "
                     f"of the {len(result.train_scores):,} training scores")
    m[2].metric("Anomalies flagged (recall)", f"{report.recall:.1%}",
                help=f"{report.tp:,} of {report.tp + report.fn:,}")
    m[3].metric("False alarms (normals flagged)", f"{report.false_positive_rate:.1%}",
                help=f"{report.fp:,} of {report.fp + report.tn:,}")
    left, right = st.columns([3, 2], gap="medium")
    with left:
        h = result.histograms
        st.plotly_chart(fx.score_histograms(h.edges, h.normal, h.anomalous, report.threshold, log_y=log_y),
                        key="an_hist")
    with right:
        st.plotly_chart(fx.roc_figure(report.fpr, report.tpr, report.auc,
                                      (report.false_positive_rate, report.recall)), key="an_roc")
    left, right = st.columns([2, 3], gap="medium")
    with left:
        st.markdown(f"**Counts at τ = {report.threshold:.3g}**")
        st.table({"": [f"normal (held-out {', '.join(map(str, result.normal_classes))})",
                       f"anomalous ({', '.join(map(str, result.anomalous_classes))})"],
                  "score < τ: passed": [f"{report.tn:,}", f"{report.fn:,}"],
                  "score ≥ τ: flagged": [f"{report.fp:,}", f"{report.tp:,}"],
                  "total": [f"{report.tn + report.fp:,}", f"{report.fn + report.tp:,}"]}, hide_index=True)
        st.caption(f"Precision {report.precision:.1%} · accuracy {report.accuracy:.1%} · trained in "
                   f"{result.train_seconds:.1f} s on {len(result.train_index):,} normal samples ({result.reason}).")
    with right:
        st.plotly_chart(fx.class_bars(flag_rates(result, report.threshold), result.normal_classes,
                                      "Share of each class flagged at τ", "flagged"), key="an_classes")
    what_to_look_for("the red histogram (classes never trained on) lying to the right of the blue one; move k and "
                     "watch the counts trade missed anomalies for false alarms while the ROC point slides along "
                     "the curve. Anomalous digits that share strokes with normal ones (a 9 and a 4, a 7 and a 1) "
                     "are the ones that slip under τ.")
