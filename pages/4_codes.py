"""Codes (PCA): the hidden codes a(x) projected on their principal components, beside the raw inputs."""

import numpy as np
import streamlit as st

from sae.app.twin import align_signs, twin_derived, twin_state
from sae.viz import samples
from sae.evaluation.metrics import pca_or_zeros, pca_projection, probe_accuracy
from sae.ui import page, twin as twin_ui, what_to_look_for
from sae.ui.chart import live_chart
from sae.ui.live import live
from sae.training.status import ACTIVE_STATUSES

POINTS = 300  # points drawn per scatter (each carries a small hover picture of its input)
PROBE_EVERY = 4.0  # s between linear-probe refits while training

job = page("Codes (PCA)", ":material/scatter_plot:",
           "Each input x becomes a code a = f(W₁x + b₁). Principal components of the codes (live) beside those "
           "of the raw inputs (fixed), on a subset of the data; hover a point to see its input.")
c1, c2 = st.columns([1, 3])
dims = 3 if c1.radio("View", ["2-D", "3-D"], horizontal=True, key="codes_dims", persist_state="session") == "3-D" else 2
freeze = c2.toggle("Freeze the codes view (rotate or zoom it while training continues)", key="codes_freeze",
                   persist_state="session")


@st.cache_resource(show_spinner="Projecting the raw inputs…", max_entries=8)
def raw_view(name: str, n: int, _X: np.ndarray, _labels, _shape):
    """PCA of the raw inputs, the hover pictures and the raw-input probe: fixed per data set."""
    coords, explained = pca_projection(_X, 3)
    hover = None
    if _shape is not None:
        lo, hi = float(_X.min()), float(_X.max())
        hover = [samples.hover_image(x, _shape, max_side=10, lo=lo, hi=hi) for x in _X[:POINTS]]
    return coords, explained, hover, probe_accuracy(_X, _labels)


d0 = job.derived()
labels = d0.labels
raw_coords, raw_explained, hover, raw_probe = raw_view(job.data.name, len(d0.X), d0.X, labels, job.data.image_shape)
shown_labels = labels[:POINTS] if labels is not None else None



def draw_raw() -> None:
    live_chart(samples.pca_scatter(raw_coords[:POINTS], raw_explained, shown_labels, hover,
                                        f"Raw inputs x ({job.data.n_features} dims)", dims=dims), key="pca_raw")
    st.caption("Explained variance: "
               + ", ".join(f"PC{i + 1} {100 * v:.1f}%" for i, v in enumerate(raw_explained[:dims])))


def probe_codes(job, d, key: str = "codes_probe") -> tuple[float, int] | None:
    """(linear-probe accuracy on the codes, its step): while training, the last fit at once and a refit in the
    background at most every PROBE_EVERY s (a page switch never waits for a fit); else fitted for this snapshot."""
    if labels is None or raw_probe is None:
        return None
    def fit() -> tuple[float, int]:
        return probe_accuracy(d.A, labels), d.snapshot.step

    version = (d.snapshot.version, d.snapshot.created)  # a twin's versions start again at 0
    if job.status in ACTIVE_STATUSES:  # training: show the last fit now, refit in the background (at most every
        return job.cache.refresh(key, version, fit, keep_for=PROBE_EVERY)  # PROBE_EVERY s)
    return job.cache.memo(key, version, fit)


def codes_view(job, d, key: str, name: str, reference: np.ndarray | None = None) -> np.ndarray:
    """One codes PCA (the run's, or the twin's with ``reference``: the run's coordinates, whose directions its
    components take), its explained variance and its probe; returns the coordinates drawn."""
    if freeze and key in job.cache:
        fig, coords, explained, step = job.cache.last(key)
    else:
        coords, explained = pca_or_zeros(d.A, 3)
        if reference is not None:
            coords = align_signs(coords, reference)
        fig = samples.pca_scatter(coords[:POINTS], explained, shown_labels, hover,
                                  f"{name}codes a ({d.A.shape[1]} units) · step {d.snapshot.step:,}", dims=dims)
        step = d.snapshot.step
        job.cache.put(key, (fig, coords, explained, step))
    live_chart(fig, key="pca_" + key)
    st.caption("Explained variance: " + ", ".join(f"PC{i + 1} {100 * v:.1f}%" for i, v in enumerate(explained[:dims]))
               + (f" · frozen at step {step:,}" if freeze else ""))
    probe = probe_codes(job, d, key + "_probe")
    if probe is not None:
        c = st.columns(2)
        accuracy, measured_at = probe
        c[0].metric("Linear probe on codes", f"{accuracy:.1%}", f"{accuracy - raw_probe:+.1%} vs raw",
                    help=f"Held-out accuracy of a logistic regression on a (measured at step {measured_at:,}; "
                         f"refitted every {PROBE_EVERY:g} s while training).")
        c[1].metric("Linear probe on raw inputs", f"{raw_probe:.1%}", help="Same split, raw pixels x.")
    return coords


def draw(job) -> None:
    d = job.derived()
    twin = twin_state(job)
    if (twin is not None) != with_twin:
        st.rerun(scope="app")  # the twin came or went: the page's layout changes
    if twin is None:
        codes_view(job, d, "codes", "Hidden ")
    else:  # the run's codes beside the twin's, the twin's components turned the run's way
        twin_ui.caption(twin, "on the right")
        run_col, twin_col = st.columns(2, gap="medium")
        with run_col:
            coords = codes_view(job, d, "codes", f"{twin.run_name}: ")
        with twin_col:
            codes_view(job, twin_derived(job, twin), "codes_twin", f"{twin.twin_name}: ", reference=coords)
    if labels is None or raw_probe is None:
        why = "has no labels: no colours and" if labels is None else "is too small for"
        st.info(f"This data set {why} no linear probe. Try digits or mnist.", icon=":material/info:")
    what_to_look_for("classes pulling apart in the codes as features form; compare the probe accuracy "
                     "of the codes with that of the raw inputs.")


with_twin = twin_state(job) is not None
if with_twin:  # the codes of the run and of its twin side by side, the raw inputs' below
    live(draw)
    left, _ = st.columns(2, gap="medium")
    with left:
        draw_raw()
else:
    left, right = st.columns(2, gap="medium")
    with left:
        draw_raw()
    with right:
        live(draw)
