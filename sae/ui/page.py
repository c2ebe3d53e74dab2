"""Page scaffolding shared by the home page and every page in ``pages/``."""

from __future__ import annotations

import gc
import sys
import threading

import streamlit as st
import torch

from sae.ui import classroom, controls, identity, reattach, state, timeline
from sae.ui.chart import provide_plotly_js
from sae.ui import share
from sae.app.job import Job
from sae.workers import backend as workers

APP = "Sparse Autoencoder Lab"
TORCH_THREADS = 1  # per process: one trainer thread per session, one core left for the server
WARM_UP_DELAY = 4.0  # s after the first script run before the warm-up imports (see _warm_up)

_configured = False
_configure_lock = threading.Lock()


def configure_process() -> None:
    """Once per process: torch uses TORCH_THREADS intra-op threads (see the package docstring), and the
    heap as it stands (torch, plotly, scikit-learn: ~450,000 objects) is moved out of the garbage
    collector's sight with ``gc.freeze()``, so a full collection takes ~1 ms instead of ~250 ms holding the
    GIL (bench/load.py)."""
    global _configured
    with _configure_lock:
        if not _configured:
            torch.set_num_threads(TORCH_THREADS)
            provide_plotly_js()  # the live charts' Plotly bundle, served from static/ (see sae.ui.chart)
            workers.configure_from_args(sys.argv[1:])  # streamlit run dashboard.py -- --ray-address ADDRESS
            threading.Thread(target=workers.warm, name="sae-workers-warm-up", daemon=True).start()  # forkserver
            gc.collect()
            gc.freeze()
            import pandas  # noqa: F401 - before the warm-up thread imports scikit-learn (which imports pandas):
            # while pandas is half-imported there, Plotly's array checks in a page's thread raise AttributeError
            threading.Thread(target=_warm_up, name="sae-warm-up", daemon=True).start()
            _configured = True


def _warm_up() -> None:
    """Import and exercise, off the first page's path, what later pages need on first use: scikit-learn's
    PCA and logistic regression (0.8 s to import), the first Plotly scatter (0.2 s) and image (0.25 s).
    Without it the first visit to the Codes page took 2.5 s; then freeze the heap again (see configure_process).
    Starts WARM_UP_DELAY after the first script run began, so it does not slow the first page down."""
    import time

    import numpy as np

    time.sleep(WARM_UP_DELAY)

    from sae.viz import filters, samples
    from sae.evaluation.metrics import linear_probe, pca_projection

    Z = np.random.default_rng(0).random((40, 4))
    coords, explained = pca_projection(Z, 3)
    samples.pca_scatter(coords, explained, None, None, "warm-up", dims=2)
    filters.filters_figure(Z.T.astype(np.float32)[:, :4], (2, 2))  # plotly.express's image: 0.25 s the first time
    linear_probe(Z, np.arange(40) % 2)
    gc.collect()
    gc.freeze()


def page(title: str, icon: str, subtitle: str | None = None, run_links: bool = True,
         experiment: bool = False) -> Job:
    """Set the page config, find this browser's run (``sae.ui.reattach``: a reload keeps the live run), draw the
    control panel, the title; return the session's job. ``run_links``: a ``?run=<id>`` link puts that stored run
    on view here (the Runs page opens the run's record instead). ``experiment``: the page runs its own
    experiments, not the sidebar's run (the sidebar marks its settings as not used)."""
    configure_process()
    st.set_page_config(page_title=f"{title} · {APP}", page_icon=icon, layout="wide",
                       initial_sidebar_state="expanded")
    if not reattach.attach(run_links=run_links):
        reattach.waiting()  # the first script run of a new session: the browser's id comes with the next one
    job = controls.panel(page_id=title, experiment=experiment)
    share.follow_goto()  # a run loaded by a button on the previous run asked for another page
    share.sidebar_section(job)  # "Share and export": the model out, a saved model in
    with st.sidebar:
        identity.mount(share.link_run_id(state.own_job() or job))  # (never a watched broadcast)  # invisible; the browser remembers its current run
    st.title(f"{icon} {title}", anchor=False)
    if subtitle:
        st.caption(subtitle)
    reattach.notices()
    identity.notices()  # this browser's saved identity was refused (and replaced)
    classroom.notices()  # watching a teacher's broadcast, or one that ended
    timeline.replay_offer()  # a link that replays a run: what it will do, and its button
    return job


def what_to_look_for(text: str) -> None:
    """The one line on each view that says what to look for."""
    st.markdown(f":material/visibility: **What to look for:** {text}")


__all__ = ["page", "what_to_look_for", "configure_process", "APP", "TORCH_THREADS"]
