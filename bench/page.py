"""The page as a user meets it, in headless Chromium: cold start, click-to-first-chart, refresh rate, page switch.

    python bench/page.py [--repeats 3] [--watch 4]

Starts `streamlit run dashboard.py` on a loopback port (bench/streamlit_server.py) and measures:
  cold start      launch of the server -> /_stcore/health answers, and -> the home page rendered
                  (Train button visible) in an already running browser
  first chart     click on Train -> the loss chart holds a curve (read from the live Plotly graph)
  refresh rate    changes of the loss chart per second while training (polled every 50 ms), and the
                  training rate the status line shows meanwhile (the page and the run share the GIL)
  page switch     click on a sidebar link -> that page's title and its charts drawn
Each repeat is a fresh browser session on the same server; medians are reported. Prints a table and
writes bench/results/page.json. Loopback only; every wait is bounded.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import print_table, save_json  # noqa: E402
from bench.streamlit_server import browser, serve  # noqa: E402

PAGES = ["KL penalty", "Filters", "Activations", "Codes (PCA)", "Reconstructions", "Train"]
LAST_X = """() => { const g = document.querySelector("[data-testid='stPlotlyChart'] .js-plotly-plot, .sae-live-chart");
    const t = g && g._fullData && g._fullData[0];
    return (!t || !t.x || !t.x.length) ? -1 : Number(t.x[t.x.length - 1]); }"""
CHARTS = """() => [...document.querySelectorAll("[data-testid='stPlotlyChart'], .sae-live-chart")]
    .filter(e => e.getBoundingClientRect().height > 0 && e.querySelector('.main-svg')).length"""


def wait(pg, js: str, arg=None, timeout: float = 30.0) -> None:
    pg.wait_for_function(js, arg=arg, timeout=timeout * 1000, polling=20)


def session(b, url: str, watch: float) -> dict:
    context = b.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    try:
        pg.goto(url)
        train = pg.get_by_role("button", name="Train", exact=True)
        train.wait_for(timeout=60_000)
        t = time.perf_counter()
        train.click()
        wait(pg, f"() => ({LAST_X})() > 0")
        first_chart = time.perf_counter() - t

        changes, last, end = 0, pg.evaluate(LAST_X), time.perf_counter() + watch
        t = time.perf_counter()
        while time.perf_counter() < end:
            x = pg.evaluate(LAST_X)
            changes += x != last
            last = x
            pg.wait_for_timeout(50)
        refresh = changes / (time.perf_counter() - t)
        status = pg.locator("[data-testid='stSidebar']").inner_text()
        rate = re.search(r"([\d,.]+)(k?) samples/s", status)
        training_rate = float(rate.group(1).replace(",", "")) * (1000 if rate.group(2) else 1) if rate else float("nan")

        switches = {}
        for label in PAGES:
            link = pg.locator("[data-testid='stSidebar'] a").filter(has_text=label).first
            t = time.perf_counter()
            link.click()
            wait(pg, "t => [...document.querySelectorAll('h1')].some(h => h.innerText.includes(t))", arg=label)
            wait(pg, f"() => ({CHARTS})() > 0")
            switches[label] = time.perf_counter() - t
        stop = pg.get_by_role("button", name="Stop", exact=True)
        if stop.is_enabled():  # the run may have finished while the pages were visited
            stop.click()
        return {"first_chart_s": first_chart, "refresh_per_s": refresh, "switch_s": switches,
                "training_samples_per_s": training_rate}
    finally:
        context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="fresh browser sessions (medians reported)")
    parser.add_argument("--watch", type=float, default=4.0, help="seconds of training watched for the refresh rate")
    args = parser.parse_args()
    with browser() as b:
        cold = []
        for _ in range(args.repeats):  # cold start: a new server each time
            with serve() as server:
                pg = b.new_page()
                pg.goto(server.url)
                pg.get_by_role("button", name="Train", exact=True).wait_for(timeout=60_000)
                cold.append((server.healthy, time.perf_counter() - server.started))
                pg.close()
        with serve() as server:
            runs = [session(b, server.url + "/?epochs=2000", args.watch) for _ in range(args.repeats)]
    med = statistics.median
    out = {
        "cold_start_health_s": med(c[0] for c in cold), "cold_start_first_render_s": med(c[1] for c in cold),
        "click_to_first_chart_s": med(r["first_chart_s"] for r in runs),
        "refresh_per_s": med(r["refresh_per_s"] for r in runs),
        "training_samples_per_s_while_watched": med(r["training_samples_per_s"] for r in runs),
        "page_switch_s": {p: med(r["switch_s"][p] for r in runs) for p in PAGES},
        "runs": runs, "cold": cold,
    }
    switch = list(out["page_switch_s"].values())
    print_table(f"The page in headless Chromium ({args.repeats} repeats, medians)", ["measure", "value", "target"], [
        ["cold start: launch -> health ok (s)", out["cold_start_health_s"], "-"],
        ["cold start: launch -> first render (s)", out["cold_start_first_render_s"], "<= 5"],
        ["click Train -> first chart (s)", out["click_to_first_chart_s"], "<= 1"],
        ["chart refreshes per second", out["refresh_per_s"], ">= 2"],
        ["training rate while the chart refreshes (samples/s)", out["training_samples_per_s_while_watched"], "-"],
        ["page switch, median over pages (s)", med(switch), "<= 1"],
        ["page switch, slowest page (s)", max(switch), "<= 1"],
    ])
    save_json("page", out)


if __name__ == "__main__":
    main()
