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

What travels per refresh (``chart_data``; ``bench/refresh.py`` measures it): the figure's JSON as Plotly has it
(numpy arrays as base64 typed arrays) with two things taken out that would repeat on every refresh:
- the standard template (``sae.viz.style.TEMPLATE``, ~7 KiB per figure) is named, not sent: the browser loads it
  once per page from ``static/`` (written beside plotly.min.js by :func:`provide_plotly_js`);
- a numeric array that occurs more than once in a figure (the steps shared by every loss curve) is sent once,
  in ``sae_arrays``, and referred to as ``{"sae_ref": i}`` elsewhere.
:func:`decode_figure` is the Python mirror of what the browser does with it (the tests read charts through it).

A click on a point (``on_select``) reports ``{"points": [{"x", "y", "curve_number", "point_index",
"customdata"}]}`` as the trigger value ``selection`` of the element: ``st.session_state[key]["selection"]``,
as ``st.plotly_chart``'s selection event reads for the Filters page's unit picker.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any, Callable

import plotly
import streamlit as st
from plotly.io.json import to_json_plotly

from sae.viz import style

log = logging.getLogger(__name__)

COMPONENT = "sae_live_plotly"
APP_ROOT = Path(__file__).resolve().parents[2]  # the folder of dashboard.py: Streamlit serves its static/
STATIC_PLOTLY = APP_ROOT / "static" / "plotly.min.js"
BUNDLED_PLOTLY = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
_TEMPLATE_TEXT = style._template_json(style.TEMPLATE)  # the JSON the figures carry
TEMPLATE_NAME = f"sae-template-{hashlib.sha1(_TEMPLATE_TEXT.encode()).hexdigest()[:12]}.json"  # new content, new name
STATIC_TEMPLATE = STATIC_PLOTLY.parent / TEMPLATE_NAME
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

function templateLoaded(name) {  // the standard template, fetched once per page (see chart.py)
  if (!name) return Promise.resolve(null);
  const cache = window.__saeTemplates || (window.__saeTemplates = {});
  if (!cache[name]) {
    cache[name] = fetch(new URL("app/static/" + name, document.baseURI).href)
      .then((r) => { if (!r.ok) throw new Error(name + ": " + r.status); return r.json(); })
      .catch((e) => { delete cache[name]; throw e; });
  }
  return cache[name];
}

function resolveArrays(fig) {  // {"sae_ref": i} -> a copy of the typed-array spec fig.sae_arrays[i]
  const table = fig.sae_arrays;
  delete fig.sae_arrays;
  if (!table) return;
  const walk = (o) => {
    for (const k in o) {
      const v = o[k];
      if (v && typeof v === "object") {
        if (v.sae_ref !== undefined) o[k] = Object.assign({}, table[v.sae_ref]); else walk(v);
      }
    }
  };
  walk(fig.data);
}

export default function ({ data, parentElement, setTriggerValue }) {
  let div = parentElement.querySelector(":scope > .sae-live-chart");
  if (!div) {
    div = document.createElement("div");
    div.className = "sae-live-chart";
    div.setAttribute("data-testid", "saeLiveChart");
    parentElement.appendChild(div);
  }
  const msg = data instanceof Uint8Array ? JSON.parse(new TextDecoder().decode(data)) : data;  // chart_data's bytes
  window.__saePlotlyVersion = msg.version;
  const fig = typeof msg.figure === "string" ? JSON.parse(msg.figure) : msg.figure;
  resolveArrays(fig);
  // the modebar stands upright in a right margin of its own, clear of the legend above the plot
  const margin = Object.assign({}, fig.layout.margin, { r: Math.max((fig.layout.margin || {}).r || 0, 40) });
  const modebar = Object.assign({ orientation: "v" }, fig.layout.modebar);
  const layout = Object.assign({}, fig.layout, { uirevision: msg.uirevision, margin, modebar });
  div.style.height = (layout.height || 450) + "px";
  div.style.width = "100%";
  Promise.all([plotlyLoaded(), templateLoaded(msg.template)]).then(([Plotly, template]) => {
    if (template) layout.template = template;
    Plotly.react(div, fig.data || [], layout, Object.assign({}, msg.config));
    if (msg.selectable && !div.__saeClick) {
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
        if not STATIC_TEMPLATE.exists():
            tmp = STATIC_TEMPLATE.with_suffix(".tmp")
            tmp.write_text(_TEMPLATE_TEXT)
            tmp.replace(STATIC_TEMPLATE)
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


def _compact(fig: Any) -> tuple[dict, bool]:
    """(the figure's JSON as a dict, compacted; whether the standard template was taken out)."""
    obj = style._typed_arrays({"data": fig._data, "layout": fig._layout} if hasattr(fig, "_layout")
                              else fig)  # a go.Figure's own property dicts (to_dict would deep-copy them first)
    layout = obj.setdefault("layout", {})
    named = layout.get("template") == _standard_template()
    if named:
        del layout["template"]
    seen: dict[tuple, int] = {}  # (dtype, bdata, shape) -> times
    specs: dict[tuple, dict] = {}

    def walk(o, visit):
        for k, v in (o.items() if isinstance(o, dict) else enumerate(o)):
            if isinstance(v, dict) and "bdata" in v and "dtype" in v:
                visit(o, k, v)
            elif isinstance(v, (dict, list)):
                walk(v, visit)

    def count(_o, _k, v):
        key = (v["dtype"], v["bdata"], str(v.get("shape")))
        seen[key] = seen.get(key, 0) + 1
        specs.setdefault(key, v)

    walk(obj.get("data", []), count)
    shared = [key for key, n in seen.items() if n > 1]
    if shared:
        index = {key: i for i, key in enumerate(shared)}

        def refer(o, k, v):
            i = index.get((v["dtype"], v["bdata"], str(v.get("shape"))))
            if i is not None:
                o[k] = {"sae_ref": i}

        walk(obj["data"], refer)
        obj["sae_arrays"] = [specs[key] for key in shared]
    return obj, named


_STANDARD: list = []


def _standard_template() -> dict:
    if not _STANDARD:
        _STANDARD.append(json.loads(_TEMPLATE_TEXT))
    return _STANDARD[0]


def chart_data(fig: Any, *, key: str, config: dict | None = None, uirevision: str | None = None,
               selectable: bool = False) -> bytes:
    """What one refresh of a live chart sends to the browser (the component's data): UTF-8 JSON bytes, which
    Streamlit forwards as they are. (A dict would be serialised again by ``json.dumps``: the figure's JSON
    escaped inside a string, every non-ASCII character as ``\\uXXXX``; the Codes page's hover pictures tripled.)"""
    compact, named = _compact(fig)
    return _dumps({"figure": compact, "template": TEMPLATE_NAME if named else None, "uirevision": uirevision or key,
                   "config": {**DEFAULT_CONFIG, **(config or {})}, "selectable": selectable,
                   "version": plotly.__version__})


def _dumps(obj: dict) -> bytes:
    """orjson's bytes as they are (Plotly's to_json also escapes <, > and / for HTML pages: "<br>" 3× longer);
    Plotly's own encoder for what orjson cannot write (dates, object arrays)."""
    try:
        import orjson

        return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)
    except (ImportError, TypeError):
        return to_json_plotly(obj).encode()


def decode_figure(data: bytes) -> dict:
    """The figure (Plotly JSON as a dict) that the browser draws from one refresh's ``data``: the mirror of the
    component's JavaScript (arrays resolved, the named template put back)."""
    data = json.loads(data)
    fig = data["figure"]
    table = fig.pop("sae_arrays", None)

    def walk(o):
        for k, v in (o.items() if isinstance(o, dict) else enumerate(o)):
            if isinstance(v, dict) and "sae_ref" in v:
                o[k] = dict(table[v["sae_ref"]])
            elif isinstance(v, (dict, list)):
                walk(v)

    if table:
        walk(fig["data"])
    if data.get("template"):
        fig.setdefault("layout", {})["template"] = json.loads(_TEMPLATE_TEXT)
    return fig


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
    data = chart_data(fig, key=key, config=config, uirevision=uirevision, selectable=on_select is not None)
    kwargs = {"on_selection_change": on_select} if on_select is not None else {}
    _renderer()(data=data, key=key, **kwargs)


__all__ = ["live_chart", "provide_plotly_js", "chart_data", "decode_figure", "COMPONENT",
           "STATIC_PLOTLY", "STATIC_TEMPLATE", "TEMPLATE_NAME"]
