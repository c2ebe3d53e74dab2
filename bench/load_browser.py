"""The browser side of bench/load.py: what one session does, and the page hooks that time it.

``HOOKS`` is added to every page of a session's browser context (``context.add_init_script``) before the app
loads, and keeps ``window.__bench``:

- the Train click: a capturing click listener stamps ``clickAt`` (``performance.now()``) when a click lands on
  the Train button (``.st-key-btn_train``: the button's widget key is ``btn_train``, sae/ui/controls.py);
- the status line: every 25 ms the sidebar's captions (``[data-testid='stSidebar']
  [data-testid='stCaptionContainer']``) are matched against ``<state> · step <n>`` (sae.ui.controls.status_text
  writes "● **running** · step 1,234 · ..."); each change of state is appended to ``states`` with its time, and
  the last step count is kept (``step``, ``stepAt``) for the training throughput;
- chart redraws: the live charts (sae/ui/chart.py) draw with ``window.Plotly.react`` inside a components-v2
  element; Plotly's bundle is loaded lazily, so a setter on ``window.Plotly`` wraps ``react`` the moment the
  bundle assigns it. Each graph div gets a record (``charts``): ``calls`` (every react) and ``changed`` (reacts
  whose data + layout JSON differs from the previous call on that div: a redraw the user can see). The chart's
  name is its Streamlit key (the ``st-key-<key>`` class of an enclosing element) or its title.

Charts drawn by ``st.plotly_chart`` (the fallback when static/plotly.min.js cannot be written) use Streamlit's
own Plotly bundle and are not counted: ``fallback_charts`` reports how many such charts a page shows.
"""

from __future__ import annotations

import re
import time
import urllib.parse

HOOKS = r"""(() => {
  if (window.__bench) return;
  const B = window.__bench = {charts: [], clickAt: null, states: [], state: null, step: null, stepAt: null};
  const STATUS = /\b(idle|queued|running|paused|diverged|finished|stopped|interrupted|failed)\W*step\s*([\d,]+)/;
  document.addEventListener("click", (e) => {
    const b = e.target && e.target.closest ? e.target.closest(".st-key-btn_train") : null;
    if (b) { B.clickAt = performance.now(); B.states = []; B.state = null; }
  }, true);
  setInterval(() => {
    const bar = document.querySelector("[data-testid='stSidebar']");
    if (!bar) return;
    for (const c of bar.querySelectorAll("[data-testid='stCaptionContainer']")) {
      const m = STATUS.exec(c.textContent);
      if (!m) continue;
      const now = performance.now();
      B.step = parseInt(m[2].replace(/,/g, ""), 10); B.stepAt = now;
      if (m[1] !== B.state) { B.state = m[1]; B.states.push([now, m[1]]); }
      break;
    }
  }, 25);
  function nameOf(gd, layout) {
    const keyed = gd.closest("[class*='st-key-']");
    const cls = keyed ? [...keyed.classList].find((k) => k.startsWith("st-key-")) : null;
    if (cls) return cls.slice(7);
    const t = layout && layout.title;
    return (t && (t.text || (typeof t === "string" ? t : ""))) || "chart";
  }
  function wrap(P) {
    if (!P || typeof P.react !== "function" || P.__benchWrapped) return P;
    const react = P.react;
    P.react = function (gd, data, layout) {
      try {
        let c = gd.__bench;
        if (!c) { c = gd.__bench = {id: B.charts.length, name: "", calls: 0, changed: 0, sig: null, el: gd};
                  B.charts.push(c); }
        const sig = JSON.stringify([data, layout]);
        c.calls += 1;
        if (sig !== c.sig) {
          c.changed += 1; c.sig = sig;
          (c.times = c.times || []).push(performance.now());  // when each change was drawn (bench/one_user.py)
          if (c.times.length > 4000) c.times.splice(0, 2000);
        }
        c.name = nameOf(gd, layout);
      } catch (e) { /* never break the app */ }
      return react.apply(this, arguments);
    };
    P.__benchWrapped = true;
    return P;
  }
  let plotly = window.Plotly;
  Object.defineProperty(window, "Plotly", {configurable: true, enumerable: true,
    get() { return plotly; }, set(v) { plotly = wrap(v); }});
  if (plotly) wrap(plotly);
  B.snapshot = () => {
    for (const c of B.charts) if (!c.el.isConnected) c.sig = null;  // a chart of a page left: free its JSON
    return {now: performance.now(), title: document.title, step: B.step, state: B.state,
            charts: B.charts.filter((c) => c.el.isConnected).map((c) => ({id: c.id, name: c.name, calls: c.calls,
                                                                         changed: c.changed})),
            fallback_charts: document.querySelectorAll("[data-testid='stPlotlyChart']").length,
            undrawn: [...document.querySelectorAll(".sae-live-chart")].filter((e) => !e.__bench).length};
  };
})();"""

# Timestamps the first moment after a widget change at which the app's script is not running and the
# URL shows the change (the panel writes the URL during the rerun, before the rest of the page).
ROUND_TRIP_OBSERVER = """() => {
  if (window.__rt) return;
  const app = document.querySelector("[data-testid='stApp']");
  window.__rt = {want: null, done: null, t0: 0};
  new MutationObserver(() => {
    const r = window.__rt;
    if (r.want === null || r.done !== null) return;
    if (app.getAttribute('data-test-script-state') !== 'notRunning') return;
    if ((new URLSearchParams(location.search).get('seed') ?? '0') === r.want) r.done = performance.now();
  }).observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
}"""

# The live pages: every page whose view is drawn by sae.ui.live.live (a fragment redrawing while a run
# trains): (nav link label, document.title prefix). Train is dashboard.py.
LIVE_PAGES = (("Train", "Train"), ("KL penalty", "KL penalty"), ("Filters", "Filters"),
              ("Activations", "Activations"), ("Codes (PCA)", "Codes (PCA)"), ("Reconstructions", "Reconstructions"))

STATES = ("idle", "queued", "running", "paused", "diverged", "finished", "stopped", "interrupted", "failed")


def open_session(browser, url: str, timeout_ms: int = 60_000):
    """A new browser context (a separate Streamlit session, with its own localStorage identity) on ``url``,
    hooks installed; returns (context, page) once the Train button is there."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_init_script(HOOKS)
    pg = context.new_page()
    pg.set_default_timeout(timeout_ms)
    pg.goto(url)
    pg.wait_for_selector("[data-testid='stApp']")
    train_button(pg).wait_for()
    return context, pg


def train_button(pg):
    # the key's container holds a second, hidden button element; the visible one is named Train
    return pg.locator(".st-key-btn_train").get_by_role("button", name="Train", exact=True)


def click_train(pg) -> None:
    """Press Train (its enabled state is awaited by playwright); the hooks stamp the click."""
    train_button(pg).click()


def status(pg) -> dict:
    """What the hooks saw of the status line: {clickAt, states: [[t, state], ...], state, step, stepAt, now}."""
    return pg.evaluate("() => ({clickAt: __bench.clickAt, states: __bench.states, state: __bench.state, "
                       "step: __bench.step, stepAt: __bench.stepAt, now: performance.now()})")


def wait_state(pg, states: tuple[str, ...], timeout_s: float) -> str | None:
    """Wait until the status line shows one of ``states``; the state, or None after ``timeout_s``."""
    try:
        pg.wait_for_function("s => s.includes(window.__bench.state)", arg=list(states), timeout=timeout_s * 1000,
                             polling=50)
    except Exception:  # noqa: BLE001 - playwright's TimeoutError; the caller records None
        return None
    return status(pg)["state"]


def click_timing(st: dict) -> dict:
    """From status(): seconds from the Train click to the first "running", and whether "queued" was seen."""
    click = st.get("clickAt")
    seen = {s: t for t, s in reversed(st.get("states") or [])}  # first time of each state
    running = seen.get("running")
    return {"to_running_s": None if click is None or running is None else max(0.0, (running - click) / 1000),
            "queued": "queued" in seen}


def chart_snapshot(pg) -> dict:
    return pg.evaluate("() => window.__bench.snapshot()")


def chart_rates(s0: dict, s1: dict) -> dict:
    """Per chart on the page at the end: changed redraws / s and react calls / s over the interval (a chart
    first drawn inside the interval counts from zero)."""
    seconds = (s1["now"] - s0["now"]) / 1000
    before = {c["id"]: c for c in s0["charts"]}
    out = {}
    for c in s1["charts"]:
        if seconds > 0:
            b = before.get(c["id"], {"changed": 0, "calls": 0})
            name = c["name"] if c["name"] not in out else f"{c['name']}#{c['id']}"
            out[name] = {"changed": c["changed"] - b["changed"], "calls": c["calls"] - b["calls"],
                         "per_s": round((c["changed"] - b["changed"]) / seconds, 2)}
    return {"seconds": seconds, "charts": out, "fallback_charts": s1.get("fallback_charts", 0),
            "undrawn": s1.get("undrawn", 0)}


def go_to(pg, label: str, title: str, timeout_s: float = 60) -> None:
    """Switch page inside the session (the sidebar link: a client-side switch, the same Streamlit session) and
    wait until the page's title is shown and at least one live chart has drawn."""
    pg.locator("[data-testid='stSidebarNav'], [data-testid='stSidebar']").first.get_by_role(
        "link", name=label, exact=True).click(timeout=timeout_s * 1000)
    for what, wait in (("the page title", lambda: pg.wait_for_function(
                            "t => document.title.startsWith(t)", arg=title, timeout=timeout_s * 1000)),
                       ("a drawn live chart", lambda: wait_charts(pg, timeout_s))):
        try:
            wait()
        except Exception as exc:  # noqa: BLE001 - say which wait ran out
            raise TimeoutError(f"{title}: no {what} within {timeout_s:.0f} s") from exc
    time.sleep(0.5)  # the page's first redraws settle before a measurement starts


def wait_charts(pg, timeout_s: float = 60, all_within_s: float = 10) -> None:
    """Wait until a live chart element on the page (``.sae-live-chart``, created before Plotly draws into it) has
    been drawn by Plotly (TimeoutError after ``timeout_s``), then up to ``all_within_s`` more for every one of
    them (a chart still undrawn then is counted by the snapshot's ``undrawn``)."""
    pg.wait_for_function("() => [...document.querySelectorAll('.sae-live-chart')].some("
                         "(e) => e.__bench && e.__bench.changed > 0)", timeout=timeout_s * 1000, polling=100)
    try:
        pg.wait_for_function("() => [...document.querySelectorAll('.sae-live-chart')].every("
                             "(e) => e.__bench && e.__bench.changed > 0)", timeout=all_within_s * 1000, polling=100)
    except Exception:  # noqa: BLE001 - playwright's TimeoutError: measured as it is
        pass


def round_trip(pg, timeout_s: float = 60) -> float:
    """One widget round trip (seconds): a new seed typed in the panel until the rerun has finished."""
    pg.evaluate(ROUND_TRIP_OBSERVER)
    box = pg.get_by_role("spinbutton", name="Seed")
    want = "1" if urllib.parse.parse_qs(urllib.parse.urlparse(pg.url).query).get("seed") != ["1"] else "0"
    box.fill(want)  # (the default seed 0 is left out of the URL; the observer reads absent as "0")
    pg.evaluate("w => { const r = window.__rt; r.want = w; r.done = null; r.t0 = performance.now(); }", want)
    box.press("Enter")
    pg.wait_for_function("() => window.__rt.done !== null", timeout=timeout_s * 1000, polling=10)
    return pg.evaluate("() => window.__rt.done - window.__rt.t0") / 1000


def status_text(pg) -> str:
    return pg.locator("[data-testid='stSidebar'] [data-testid='stCaptionContainer']").filter(
        has_text="step").first.inner_text(timeout=30_000)


def state_of(text: str) -> str:
    m = re.search(r"\b(" + "|".join(STATES) + r")\b", text)
    return m.group(1) if m else "?"


def own_model(pg, hidden: int, timeout_s: float = 60) -> tuple[bool, str]:
    """The session sees its own model: its Hidden units field, and the Filters page's unit picker (whose range
    comes from the session's trained weights), both show ``hidden``. Leaves the session on the Filters page."""
    field = pg.get_by_role("spinbutton", name="Hidden units").input_value(timeout=timeout_s * 1000)
    if not pg.title().startswith("Filters"):
        go_to(pg, "Filters", "Filters", timeout_s)
    unit = pg.get_by_role("spinbutton", name="Unit (or click a filter)")
    unit.wait_for(timeout=timeout_s * 1000)
    units = int(unit.get_attribute("max")) + 1
    return field == str(hidden) and units == hidden, f"field {field}, model {units}"


def sleep_until(t: float) -> None:
    time.sleep(max(0.0, t - time.monotonic()))


__all__ = ["HOOKS", "LIVE_PAGES", "open_session", "click_train", "status", "wait_state", "click_timing",
           "chart_snapshot", "chart_rates", "go_to", "round_trip", "status_text", "state_of", "own_model"]
