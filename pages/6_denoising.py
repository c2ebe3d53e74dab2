"""Denoising: a sparse autoencoder trained to give back the clean x from a corrupted x̃."""

from functools import partial

import streamlit as st

from sae.viz import experiment_figures as fx
from sae.core.config import ModelConfig
from sae.experiments.denoising import default_model_config, denoising_train_config, run_denoising
from sae.experiments.datasets import DIGIT_DATASETS
from sae.ui import page, what_to_look_for
from sae.ui.experiment import experiment
from sae.ui.state import load_data

page("Denoising", ":material/blur_off:",
     "The encoder sees a corrupted input x̃, the loss compares the output with the clean x. Trained beside a plain "
     "sparse autoencoder with the same settings, both are tested on held-out images at every noise level.",
     experiment=True)
st.latex(r"\tilde x=\mathrm{clip}_{[0,1]}(x+\sigma\varepsilon),\ \varepsilon\sim\mathcal N(0,I)"
         r"\qquad J=\frac1m\sum_i\tfrac12\lVert\hat x(\tilde x_i)-x_i\rVert^2+\dots"
         r"\qquad \mathrm{PSNR}=10\log_{10}\frac{1}{\frac1n\lVert\hat x-x\rVert^2}\ \mathrm{dB}")

c = st.columns([1.3, 1, 1.6])
dataset = c[0].radio("Data set", list(DIGIT_DATASETS), format_func=DIGIT_DATASETS.get,
                     key="dn_data", persist_state="session")
noise = c[1].radio("Noise", ["gaussian", "masking"], key="dn_noise", persist_state="session",
                   help="gaussian: x + σ·N(0, 1), clipped to [0, 1] (σ = 0.4 is the classic example). "
                        "masking: each pixel set to 0 with probability p.")
level = c[2].select_slider("Training noise level (σ, or the masked fraction)", [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
                           value=0.4, key="dn_level", persist_state="session")
with st.expander("Model and training", icon=":material/tune:"):
    e = st.columns(4)
    hidden = e[0].selectbox("Hidden units", ["auto", 16, 25, 49, 100, 196, 400], key="dn_hidden",
                            persist_state="session", help="auto: 196 for MNIST, 32 for the 8×8 digits.")
    epochs = e[1].number_input("Epochs (Adam, batches of 128)", 1, 200, 40, key="dn_epochs", persist_state="session")
    seed = e[2].number_input("Seed", 0, 10_000, 0, key="dn_seed", persist_state="session")
    plain = e[3].toggle("Train a plain SAE to compare", True, key="dn_plain", persist_state="session")
    st.caption("ρ = 0.1, β = 3, λ = 1e-4, Adam lr 1e-2; 20% of the images held out for the PSNR figures.")

data = load_data(dataset)
model_config = default_model_config(data.n_features) if hidden == "auto" else ModelConfig(data.n_features, int(hidden))
n_hidden = model_config.n_hidden
config = {"data": dataset, "noise": noise, "level": level, "hidden": n_hidden, "epochs": int(epochs),
          "seed": int(seed), "plain": plain}


run = partial(run_denoising, data.X, model_config=model_config,  # runs in a worker process: a partial pickles
              train_config=denoising_train_config(noise, level, float(epochs), int(seed)), plain=plain, seed=int(seed))


result = experiment("denoising", config, run, label=f"{dataset}, {noise} {level:g}",
                    action=f"train the two models (about {'10' if dataset == 'mnist' else '3'} s)")

if result is not None:
    i = result.level_index(result.level)
    m = st.columns(4)
    m[0].metric(f"Noisy input x̃ (σ = {result.level:g})" if result.noise == "gaussian"
                else f"Noisy input x̃ ({result.level:.0%} masked)", f"{result.psnr_noisy[i]:.1f} dB")
    m[1].metric("Denoising SAE", f"{result.psnr_denoised[i]:.1f} dB",
                f"{result.psnr_denoised[i] - result.psnr_noisy[i]:+.1f} dB vs noisy")
    if result.psnr_plain is not None:
        m[2].metric("Plain SAE on x̃", f"{result.psnr_plain[i]:.1f} dB",
                    f"{result.psnr_plain[i] - result.psnr_noisy[i]:+.1f} dB vs noisy")
        m[3].metric("On clean inputs: denoising / plain",
                    f"{result.psnr_clean_denoised:.1f} / {result.psnr_clean_plain:.1f} dB",
                    help="PSNR of each model's reconstruction of the clean held-out images.")
    left, right = st.columns([3, 2], gap="medium")
    with left:
        shown = st.select_slider("Show the examples at noise level", [float(v) for v in result.levels],
                                 value=float(result.levels[i]),
                                 key="dn_show", format_func=lambda v: f"{v:g}")
        j = result.level_index(shown)
        rows = {"noisy x̃": result.noisy[j], "denoised": result.denoised[j]}
        if result.plain is not None:
            rows["plain SAE"] = result.plain[j]
        rows["clean x"] = result.clean
        st.plotly_chart(fx.denoising_grid(rows, data.image_shape), key="dn_grid", config={"displayModeBar": False})
        st.caption(f"{len(result.clean)} held-out images; PSNR at this level: noisy {result.psnr_noisy[j]:.1f} dB, "
                   f"denoised {result.psnr_denoised[j]:.1f} dB"
                   + (f", plain {result.psnr_plain[j]:.1f} dB" if result.psnr_plain is not None else "") + ".")
    with right:
        st.plotly_chart(fx.psnr_curves(result.levels, result.psnr_noisy, result.psnr_denoised, result.psnr_plain,
                                       result.level, result.noise), key="dn_psnr")
    what_to_look_for("the green curve above the grey one (the denoising model removes noise it never saw on these "
                     "images) and above the orange one (a plain sparse autoencoder passes much of the noise "
                     "through). On clean inputs the plain model wins: the denoising one expects noise.")
    st.caption(f"Trained on {result.n_train:,} images in {result.train_seconds:.1f} s "
               f"({result.reason}); PSNR over {result.n_test:,} held-out images.")
