"""This browser's identity: a random id the browser keeps in localStorage, handed to Python by a tiny component.

Why: a reload (F5), a second tab or a link opened in the same browser is a NEW Streamlit session, with an empty
``st.session_state``. The id lets that session find the browser's live job again (``sae.app.browsers``,
``sae.ui.reattach``), and it is what later run ownership can key on.

How: :func:`mount` draws an invisible ``st.components.v2`` element whose JavaScript reads (or creates, with
``crypto.randomUUID``) the id under ``localStorage["sae-lab-browser-id"]`` and reports it with
``setStateValue("browser", {id, last_run})`` the first time; that report reruns the script and
:func:`_on_report` keeps the id in ``st.session_state[ID_KEY]``. Python passes the browser's current run back
(``data={"id", "run"}``); the script keeps it in ``localStorage["sae-lab-last-run"]``, so after a server restart the
browser still knows which stored run was its last (``last_run``).

The id is never read from or written to the URL: a shared link must not carry someone's session. Where
localStorage is blocked the id lives for one page load (the page works as before: no reattach). A session with
no browser behind it (``AppTest``: no HTTP headers) never gets an id; tests set ``ID_KEY`` themselves.
"""

from __future__ import annotations

import logging

import streamlit as st

from sae.app.browsers import valid_browser_id

logger = logging.getLogger(__name__)

ID_KEY = "sae_browser_id"  # st.session_state: this browser's id, once reported
LAST_RUN_KEY = "sae_browser_last_run"  # st.session_state: the stored run the browser reported as its last, or None
COMPONENT_KEY = "sae_browser"  # the component's own widget key

_JS = """
const ID = "sae-lab-browser-id", LAST = "sae-lab-last-run";
function storage() { try { const s = window.localStorage; s.getItem(ID); return s; } catch (e) { return null; } }
function randomId() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();  // secure contexts (https, localhost)
  const b = new Uint8Array(16); crypto.getRandomValues(b);
  return Array.from(b, x => x.toString(16).padStart(2, "0")).join("");
}
let pageId = null;  // the id of this page load when localStorage is blocked
export default function ({ data, setStateValue }) {
  const s = storage();
  let id = s ? s.getItem(ID) : pageId;
  if (!id || !/^[A-Za-z0-9-]{8,64}$/.test(id)) {
    id = randomId();
    if (s) { try { s.setItem(ID, id); } catch (e) { pageId = id; } } else { pageId = id; }
  }
  if (data && data.id === id) {  // Python knows this browser: remember its current run
    try { if (s) { if (data.run) s.setItem(LAST, data.run); else s.removeItem(LAST); } } catch (e) {}
    return;
  }
  setStateValue("browser", { id: id, last_run: s ? s.getItem(LAST) : null });
}
"""

_component = st.components.v2.component("sae_browser_identity", js=_JS, isolate_styles=False)


def browser_id() -> str | None:
    """This browser's id, or None while it is not known yet (the first script run of a session) or never will be."""
    return st.session_state.get(ID_KEY)


def last_run() -> str | None:
    """The stored run this browser last showed, as it reported it (None if none)."""
    return st.session_state.get(LAST_RUN_KEY)


def has_browser() -> bool:
    """Whether a browser is behind this session (so an id will come): false under AppTest (no HTTP headers)."""
    try:
        return bool(st.context.headers)
    except Exception:  # noqa: BLE001 - no context at all
        return False


def _on_report() -> None:
    """The component reported {id, last_run}: keep them (a callback, so before the script runs)."""
    report = (st.session_state.get(COMPONENT_KEY) or {}).get("browser") or {}
    found = valid_browser_id(report.get("id"))
    if found is None:
        logger.warning("ignored a malformed browser id report")
        return
    st.session_state[ID_KEY] = found
    run = report.get("last_run")
    st.session_state[LAST_RUN_KEY] = run if isinstance(run, str) and 0 < len(run) <= 64 else None


def mount(run_id: str | None = None) -> None:
    """Draw the (invisible) identity element; ``run_id``: the stored run the browser should remember as its last
    (its live run's record, or the run it continues; None forgets it). Call once per script run."""
    known = browser_id()
    data = {"id": known, "run": run_id} if known else None
    _component(key=COMPONENT_KEY, data=data, on_browser_change=_on_report, height=0, width="stretch")


__all__ = ["browser_id", "last_run", "has_browser", "mount", "ID_KEY", "LAST_RUN_KEY", "COMPONENT_KEY"]
