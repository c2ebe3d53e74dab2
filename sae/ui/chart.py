"""Live charts that stay interactive: a Plotly figure redrawn in place, keeping the user's zoom, legend and hover.

``st.plotly_chart`` rebuilds its chart whenever the figure changes, so in a view that refreshes three times a
second a drag-zoom is undone, a legend click never sticks, a hover tooltip never appears and the chart blinks
blank on some redraws (streamlit issues 5107, 6355). :func:`live_chart` draws the figure with a small
components-v2 element instead: the same ``<div>`` stays in the page, and every refresh hands Plotly's own
``Plotly.react`` the new data with a constant ``layout.uirevision``, which is Plotly's way to keep the user's
view state across data updates.

Plotly's JavaScript is the bundle shipped inside the ``plotly`` Python package (never downloaded): at start-up
:func:`provide_plotly_js` copies it into the app's ``static/`` folder, which Streamlit serves at
``/app/static/`` (``server.enableStaticServing`` in ``.streamlit/config.toml``), and the page loads it once
for all its charts. Where that copy cannot be made (a read-only checkout), charts fall back to
``st.plotly_chart``.

A click on a point (``on_select``) reports ``{"points": [{"x", "y", "curve_number", "point_index",
"customdata"}]}`` as the trigger value ``selection`` of the element: ``st.session_state[key]["selection"]``,
as ``st.plotly_chart``'s selection event reads for the Filters page's unit picker.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any, Callable

import plotly
import streamlit as st

log = logging.getLogger(__name__)

COMPONENT = "sae_live_plotly"
APP_ROOT = Path(__file__).resolve().parents[2]  # the folder of dashboard.py: Streamlit serves its static/
STATIC_PLOTLY = APP_ROOT / "static" / "plotly.min.js"
BUNDLED_PLOTLY = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
DEFAULT_CONFIG = {"displaylogo": False, "responsive": True,  # no cloud upload button: nothing leaves the machine
                  "modeBarButtonsToRemove": ["sendChartToCloud", "lasso2d", "select2d"]}

_JS = r"""
function plotlyLoaded() {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  if (!window.__saePlotly) {  // one <script> per page, shared by every chart
    window.__saePlotly = new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = new URL("app/static/plotly.min.js?v=" + encodeURIComponent(window.__saePlotlyVersion || ""),
                           document.baseURI).href;
      script.onload = () => resolve(window.Plotly);
      script.onerror = () => { window.__saePlotly = null; reject(new Error("plotly.min.js did not load")); };
      document.head.appendChild(script);
    });
  }
  return window.__saePlotly;
}

export default function ({ data, parentElement, setTriggerValue }) {
  let div = parentElement.querySelector(":scope > .sae-live-chart");
  if (!div) {
    div = document.createElement("div");
    div.className = "sae-live-chart";
    div.setAttribute("data-testid", "saeLiveChart");
    parentElement.appendChild(div);
  }
  window.__saePlotlyVersion = data.version;
  const fig = JSON.parse(data.figure);
  // the modebar stands upright in a right margin of its own, clear of the legend above the plot
  const margin = Object.assign({}, fig.layout.margin, { r: Math.max((fig.layout.margin || {}).r || 0, 40) });
  const modebar = Object.assign({ orientation: "v" }, fig.layout.modebar);
  const layout = Object.assign({}, fig.layout, { uirevision: data.uirevision, margin, modebar });
  div.style.height = (layout.height || 450) + "px";
  div.style.width = "100%";
  plotlyLoaded().then((Plotly) => {
    Plotly.react(div, fig.data || [], layout, Object.assign({}, data.config));
    if (data.selectable && !div.__saeClick) {
      div.__saeClick = true;
      div.on("plotly_click", (event) => {
        const points = (event.points || []).map((p) => ({
          x: p.x, y: p.y, curve_number: p.curveNumber, point_index: p.pointIndex,
          customdata: p.customdata === undefined ? null : p.customdata }));
        setTriggerValue("selection", { points });
      });
    }
  });
}
"""

_CSS = ".sae-live-chart { min-height: 40px; }"


def provide_plotly_js() -> bool:
    """Copy Plotly's bundled JavaScript to ``static/plotly.min.js`` unless an identical copy is there.
    Returns whether the file is available (False: read-only folder; charts use st.plotly_chart)."""
    try:
        if not (STATIC_PLOTLY.exists() and STATIC_PLOTLY.stat().st_size == BUNDLED_PLOTLY.stat().st_size):
            STATIC_PLOTLY.parent.mkdir(exist_ok=True)
            tmp = STATIC_PLOTLY.with_suffix(".tmp")
            shutil.copyfile(BUNDLED_PLOTLY, tmp)
            tmp.replace(STATIC_PLOTLY)
        return True
    except OSError as exc:
        log.warning("cannot provide %s (%s); live charts fall back to st.plotly_chart", STATIC_PLOTLY, exc)
        return False


_component = None


def _renderer():
    global _component
    if _component is None:
        _component = st.components.v2.component(COMPONENT, js=_JS, css=_CSS, isolate_styles=False)
    return _component


def live_chart(fig: Any, *, key: str, on_select: Callable[[], None] | None = None,
               config: dict | None = None, uirevision: str | None = None) -> None:
    """Draw ``fig`` (a ``go.Figure``) so that refreshes update it in place (see the module docstring).

    Args:
        key: the element's key; the same key across refreshes keeps the same chart (and the user's view).
        on_select: called (as a Streamlit callback) after a click on a point; the event is
            ``st.session_state[key]["selection"]``.
        config: Plotly's config (``displayModeBar`` ...), merged over ``DEFAULT_CONFIG``.
        uirevision: a new value resets the user's zoom and legend state (e.g. a new axis quantity); default: key.
    """
    if not STATIC_PLOTLY.exists():
        st.plotly_chart(fig, key=key, config=config or {},
                        **({"on_select": on_select, "selection_mode": "points"} if on_select else {}))
        return
    data = {"figure": fig.to_json(), "uirevision": uirevision or key, "config": {**DEFAULT_CONFIG, **(config or {})},
            "selectable": on_select is not None, "version": plotly.__version__}
    kwargs = {"on_selection_change": on_select} if on_select is not None else {}
    _renderer()(data=data, key=key, **kwargs)


__all__ = ["live_chart", "provide_plotly_js", "COMPONENT", "STATIC_PLOTLY"]
