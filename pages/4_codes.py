"""Codes (PCA): the hidden codes a(x) projected on their principal components, beside the raw inputs."""

import time

import numpy as np
import streamlit as st

from sae.viz import figures
from sae.evaluation.metrics import linear_probe, pca_projection
from sae.ui import page, what_to_look_for
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
        hover = [figures.hover_image(x, _shape, max_side=10, lo=lo, hi=hi) for x in _X[:POINTS]]
    probe = linear_probe(_X, _labels) if _labels is not None and len(np.unique(_labels)) > 1 and len(_X) >= 20 else None
    return coords, explained, hover, probe


d0 = job.derived()
labels = d0.labels
raw_coords, raw_explained, hover, raw_probe = raw_view(job.data.name, len(d0.X), d0.X, labels, job.data.image_shape)
shown_labels = labels[:POINTS] if labels is not None else None

left, right = st.columns(2, gap="medium")
with left:
    st.plotly_chart(figures.pca_scatter(raw_coords[:POINTS], raw_explained, shown_labels, hover,
                                        f"Raw inputs x ({job.data.n_features} dims)", dims=dims), key="pca_raw")
    st.caption("Explained variance: "
               + ", ".join(f"PC{i + 1} {100 * v:.1f}%" for i, v in enumerate(raw_explained[:dims])))


def probe_codes(job, d) -> float | None:
    """Linear-probe accuracy on the codes, refitted at most every PROBE_EVERY s (cached on the job)."""
    if labels is None or raw_probe is None:
        return None
    cache = job.__dict__.get("_probe")
    version = d.snapshot.version
    stale = cache is None or (cache[0] != version and (time.monotonic() - cache[1] > PROBE_EVERY
                                                       or job.status not in ACTIVE_STATUSES))
    if stale:
        A = d.A
        acc = linear_probe(A, labels) if np.ptp(A, axis=0).max() > 0 else 1.0 / len(np.unique(labels))
        job.__dict__["_probe"] = cache = (version, time.monotonic(), acc, d.snapshot.step)
    return cache


def draw(job) -> None:
    d = job.derived()
    if freeze and "_codes_fig" in job.__dict__:
        fig, explained, step = job.__dict__["_codes_fig"]
    else:
        coords, explained = pca_projection(d.A, 3) if np.ptp(d.A, axis=0).max() > 0 else \
            (np.zeros((len(d.A), 3)), np.zeros(3))
        fig = figures.pca_scatter(coords[:POINTS], explained, shown_labels, hover,
                                  f"Hidden codes a ({d.A.shape[1]} units) · step {d.snapshot.step:,}", dims=dims)
        step = d.snapshot.step
        job.__dict__["_codes_fig"] = (fig, explained, step)
    st.plotly_chart(fig, key="pca_codes")
    st.caption("Explained variance: " + ", ".join(f"PC{i + 1} {100 * v:.1f}%" for i, v in enumerate(explained[:dims]))
               + (f" · frozen at step {step:,}" if freeze else ""))
    probe = probe_codes(job, d)
    if probe is not None:
        c = st.columns(2)
        c[0].metric("Linear probe on codes", f"{probe[2]:.1%}", f"{probe[2] - raw_probe:+.1%} vs raw",
                    help=f"Held-out accuracy of a logistic regression on a (measured at step {probe[3]:,}; "
                         f"refitted every {PROBE_EVERY:g} s while training).")
        c[1].metric("Linear probe on raw inputs", f"{raw_probe:.1%}", help="Same split, raw pixels x.")
    else:
        why = "has no labels: no colours and" if labels is None else "is too small for"
        st.info(f"This data set {why} no linear probe. Try digits or mnist.", icon=":material/info:")
    what_to_look_for("classes pulling apart in the codes as features form; compare the probe accuracy "
                     "of the codes with that of the raw inputs.")


with right:
    live(draw)
