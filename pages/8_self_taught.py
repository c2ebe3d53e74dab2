"""Self-taught learning (UFLDL's exercise): features learned on unlabelled digits 5–9 help classify digits 0–4."""

from functools import partial

import numpy as np
import streamlit as st

from sae.viz import filters
from sae.viz import experiment_figures as fx
from sae.core.config import ModelConfig, replace
from sae.experiments.denoising import run_self_taught_experiment
from sae.experiments.selftaught import default_model_config, default_train_config
from sae.experiments.datasets import DIGIT_DATASETS
from sae.ui import page, what_to_look_for
from sae.ui.experiment import experiment
from sae.ui.state import load_data

page("Self-taught features", ":material/school:",
     "Learn features without labels on some classes, then use them for a task on other classes: logistic regression "
     "on the codes a = f(W₁x + b₁) against logistic regression on the raw pixels x, same split, same classifier.",
     experiment=True)
st.latex(r"\underbrace{x\in\{5,\dots,9\}}_{\text{unlabelled}}\ \xrightarrow{\ \text{sparse AE}\ }\ W_1,b_1"
         r"\qquad\underbrace{x\in\{0,\dots,4\}}_{\text{labelled}}\ \mapsto\ a=f(W_1x+b_1)"
         r"\ \xrightarrow{\ \text{logistic regression}\ }\ y")

c = st.columns([1.2, 1, 1])
dataset = c[0].radio("Data set", list(DIGIT_DATASETS), format_func=DIGIT_DATASETS.get,
                     key="st_data", persist_state="session")
features = c[1].multiselect("Feature classes (labels unused)", list(range(10)), default=[5, 6, 7, 8, 9],
                            key="st_features", persist_state="session")
task = c[2].multiselect("Task classes (classified)", list(range(10)), default=[0, 1, 2, 3, 4], key="st_task",
                        persist_state="session")
with st.expander("Model and training", icon=":material/tune:"):
    e = st.columns(4)
    hidden = e[0].selectbox("Hidden units", ["auto", 25, 49, 100, 196, 400], key="st_hidden", persist_state="session",
                            help="auto: 196 for MNIST (UFLDL uses 200), 32 for the 8×8 digits.")
    iters = e[1].number_input("L-BFGS iterations", 5, 1000, 200, step=50, key="st_iters", persist_state="session",
                              help="UFLDL runs 400; 200 reaches about the same accuracy here in half the time.")
    C = e[2].select_slider("Classifier C (inverse L2)", [0.01, 0.1, 1.0, 10.0], value=1.0, key="st_C",
                           persist_state="session")
    seed = e[3].number_input("Seed", 0, 10_000, 0, key="st_seed", persist_state="session")
    st.caption("ρ = 0.1, β = 3, λ = 3e-3 (UFLDL's self-taught objective); a stratified 70/30 split of the task "
               "classes; scikit-learn's LogisticRegression on both representations.")

data = load_data(dataset)
model_config = default_model_config(data.n_features) if hidden == "auto" else ModelConfig(data.n_features, int(hidden))
train_config = replace(default_train_config(int(seed)), max_iter=int(iters))
config = {"data": dataset, "features": sorted(features), "task": sorted(task), "hidden": model_config.n_hidden,
          "iters": int(iters), "C": C, "seed": int(seed)}


run = partial(run_self_taught_experiment, data.X, data.labels, features, task, model_config,  # a worker runs it
              train_config, seed=int(seed), C=C)


result = experiment("selftaught", config, run, label=f"{dataset}, features {sorted(features)}",
                    action=f"learn the features and fit both classifiers "
                           f"(about {'15' if dataset == 'mnist' else '3'} s)")

if result is not None:
    left, right = st.columns([1, 1], gap="medium")
    with left:
        st.plotly_chart(fx.accuracy_figure(result.codes_accuracy, result.raw_accuracy,
                                           (0.98, 0.96) if dataset == "mnist" else None,
                                           chance=1.0 / len(result.task_classes)), key="st_acc")
    with right:
        gap = result.codes_accuracy - result.raw_accuracy
        st.metric("Codes minus raw pixels", f"{100 * gap:+.1f} points",
                  help=f"One test digit is {100 / result.n_test:.2f} points.")
        st.table({"representation": ["sparse-AE codes a", "raw pixels x"],
                  "dimensions": [result.n_hidden, result.n_inputs],
                  "train / test digits": [f"{result.n_train:,} / {result.n_test:,}"] * 2,
                  "test accuracy": [f"{result.codes_accuracy:.1%}", f"{result.raw_accuracy:.1%}"],
                  "UFLDL, full MNIST": ["≈ 98%", "≈ 96%"]}, hide_index=True)
        st.caption(f"Features learned on {result.n_feature_samples:,} digits "
                   f"{', '.join(map(str, result.feature_classes))} in {result.feature_seconds:.1f} s "
                   f"({result.reason}); classifiers fitted in {result.classify_seconds:.1f} s; chance is "
                   f"{1 / len(result.task_classes):.0%}. UFLDL learns its "
                   "features from ~29,000 digits, about twelve times this sample: the gap here is smaller and a "
                   "different seed moves it by about half a point.")
    W = result.filters
    shown = np.arange(min(len(W), 100))
    st.markdown(f"**The features, learned without a single digit {', '.join(map(str, result.task_classes))}** "
                f"(first {len(shown)} of {len(W)} filters W₁)")
    st.plotly_chart(filters.filters_figure(W[shown], data.image_shape, height=420), key="st_filters",
                    config={"displayModeBar": False})
    what_to_look_for("the orange bar above the blue one: pen-stroke features learned on other digits, without "
                     "labels, make the task easier for the same linear classifier.")
