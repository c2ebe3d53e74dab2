"""The dashboard's Streamlit layer: the only part of ``sae`` that imports streamlit.

- ``page``: the frame every page is drawn in (``page``, ``what_to_look_for``, process configuration),
- ``state``: the job in ``st.session_state``, the process-wide data cache, the disconnect guard,
- ``controls``: the sidebar control panel (navigation, buttons, status line, settings widgets),
- ``url``: the settings' round trip through the URL's query parameters,
- ``upload``: the "Your data" upload widgets,
- ``live``: the one polling fragment per page,
- ``pickers``: selectbox and multiselect over run ids whose labels change (renames): the choice is kept by id,
- ``share``: runs into the live view, files in and out (model bundles, uploads), the server's sweeps,
- ``identity``: this browser's id and signed identity token (localStorage, via a tiny components-v2 element), its
  last stored run, an OIDC login where configured, the teacher role; ``identity.actor()``: whose changes these are,
- ``reattach``: a new session of a known browser finds its run again (reload, second tab, restart); ``?run=`` links,
- ``twin``: the twin's controls in the sidebar (add, promote, remove) and the line each page shows while one exists,
- ``experiment``: the experiment pages' Run / Stop and polling progress line.

The per-session job itself (``sae.app.job``) and the views derived from a snapshot (``sae.app.derived``) have
no Streamlit in them and live in ``sae.app``.

Torch runs with ONE intra-op thread in the dashboard process (set once, by the first page drawn:
``sae.ui.page.configure_process``): each session's trainer is one thread, so several sessions on a
2-core machine do not oversubscribe the cores, and the server keeps a core to answer the browser.
It is not done at import, so that importing ``sae.ui`` (e.g. while pytest collects tests) leaves
torch alone.
"""

from __future__ import annotations

from sae.ui.page import page, what_to_look_for

__all__ = ["page", "what_to_look_for"]
