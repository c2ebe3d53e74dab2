"""Reconstructions: originals beside what the autoencoder gives back, each with its own error."""

import streamlit as st

from sae.app.twin import twin_derived, twin_state
from sae.app.views import fills_unit_interval, pick_samples
from sae.evaluation.labels import METRIC_LABELS
from sae.viz import distributions, samples
from sae.ui import page, twin as twin_ui, what_to_look_for
from sae.ui.chart import live_chart
from sae.ui.live import live

job = page("Reconstructions", ":material/compare:",
           "Left of each pair the input x, right the reconstruction x̂ = g(W₂a + b₂), above it the sample's own "
           "error ½‖x̂ − x‖² (a per-sample score, not the batch mean).")
c1, c2 = st.columns([2, 1])
n = c1.slider("Samples shown", 4, 32, 16, step=4, key="rec_n", persist_state="session")
pick = c2.radio("Which", ["fixed", "worst", "best"], horizontal=True, key="rec_pick", persist_state="session")


def draw(job) -> None:
    d, data = job.derived(), job.data
    errors = d.errors
    idx = pick_samples(errors, n, pick)
    twin = twin_state(job)
    twin_ui.caption(twin, "below the run")
    td = twin_derived(job, twin) if twin is not None else None
    left, right = st.columns([3, 2], gap="medium")
    # digits and MNIST fill [0, 1] and are shown as they are; other data (e.g. whitened patches in
    # [0.1, 0.9]) are stretched per pair, the same scale for the input and its reconstruction
    stretch = not fills_unit_interval(d.X)
    with left:
        if data.image_shape is not None:
            live_chart(samples.reconstruction_figure(d.X[idx], d.X_hat[idx], errors[idx], data.image_shape,
                                                          index=d.subset[idx], columns=4,
                                                          normalize=stretch),
                            key="rec_pairs", config={"displayModeBar": False})
        else:
            live_chart(samples.matrix_pair_figure(d.X[idx], d.X_hat[idx], index=d.subset[idx]), key="rec_pairs")
        if td is not None:  # the same samples through the twin
            st.markdown(f":violet[**{twin.twin_name}**]: the same samples")
            if data.image_shape is not None:
                live_chart(samples.reconstruction_figure(d.X[idx], td.X_hat[idx], td.errors[idx], data.image_shape,
                                                         index=d.subset[idx], columns=4, normalize=stretch),
                           key="rec_pairs_twin", config={"displayModeBar": False})
            else:
                live_chart(samples.matrix_pair_figure(d.X[idx], td.X_hat[idx], index=d.subset[idx]),
                           key="rec_pairs_twin")
    with right:
        c = st.columns(2)
        c[0].metric("Mean error ½‖x̂−x‖²", f"{errors.mean():.4g}", help=f"Over {len(errors):,} samples.")
        c[1].metric("Worst sample", f"{errors.max():.4g}")
        if td is not None:
            c = st.columns(2)
            c[0].metric(f"Mean error · {twin.twin_name}", f"{td.errors.mean():.4g}",
                        f"{td.errors.mean() - errors.mean():+.3g} vs the run", delta_color="inverse")
            c[1].metric("Worst sample · twin", f"{td.errors.max():.4g}")
        counts, edges = distributions.binned(errors, 40)
        live_chart(distributions.histogram_figure(counts, edges, "½‖x̂ᵢ − xᵢ‖² per sample", "samples",
                                                       f"{METRIC_LABELS['reconstruction'].name} per sample",
                                                       color="#9467bd", vlines={"mean": float(errors.mean())},
                                                       height=320), key="rec_hist")
    what_to_look_for("blurry blobs sharpening into the inputs. Raise β or lower ρ: codes get sparser and "
                     "reconstructions worse — the trade-off the objective balances.")


live(draw)
