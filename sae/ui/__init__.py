"""The dashboard's Streamlit layer: the only part of ``sae`` that imports streamlit.

- ``session``: the per-browser-session training job (no Streamlit: the trainer thread's side),
- ``state``: the job in ``st.session_state``, the process-wide data cache, the disconnect guard,
- ``controls``: the sidebar control panel (URL-bound settings, buttons, status line),
- ``live``: the one polling fragment per page,
- ``derived``: per-snapshot computations shared by the pages.

Torch runs with ONE intra-op thread in the dashboard process (set once, by the first page drawn:
``sae.ui.page.configure_process``): each session's trainer is one thread, so several sessions on a
2-core machine do not oversubscribe the cores, and the server keeps a core to answer the browser.
It is not done at import, so that importing ``sae.ui`` (e.g. while pytest collects tests) leaves
torch alone.
"""

from __future__ import annotations

from sae.ui.page import page, what_to_look_for

__all__ = ["page", "what_to_look_for"]
