"""Where one live refresh spends its time, per page: building the figures, serialising them, the rest.

    python bench/refresh.py [--dataset patches] [--repeats 12] [--profile] [--live] [--twin]

Runs each live page (Train, KL penalty, Filters, Activations, Codes, Reconstructions) under Streamlit's AppTest
with a run that has trained for a few seconds, and times the page's live fragment (``sae.ui.live.live``'s draw)
split into
  build      the sae.viz functions that make the figures (numpy + Plotly graph_objects, incl. its validation)
  serialise  ``sae.ui.chart.chart_data``: the figure -> the data the browser gets
  rest       everything else in the fragment (metrics, the derived views' cache lookups, Streamlit elements)
and the payload: the live charts' data per refresh as the page sends it (KiB). The run is paused while measured (so the snapshot and
its derived views are fixed; ``--live`` keeps it training, which adds the derived views' recomputation and
the trainer's share of the GIL to "rest"). ``--twin`` adds a twin (β 10) before training, so that every page
draws the run and its twin (``sae.ui.twin``). ``--profile`` prints the cProfile hot spots of all fragments.
Medians over ``--repeats`` refreshes; figures are per refresh (all charts of the page). Writes
bench/results/refresh.json (refresh_twin.json with ``--twin``).
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import io
import json
import pstats
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import machine, print_table, save_json  # noqa: E402

PAGES = {"Train": "dashboard.py", "KL penalty": "pages/1_kl_penalty.py", "Filters": "pages/2_filters.py",
         "Activations": "pages/3_activations.py", "Codes (PCA)": "pages/4_codes.py",
         "Reconstructions": "pages/5_reconstructions.py"}
VIZ_MODULES = ("curves", "distributions", "filters", "samples", "style", "twin")
NOT_FIGURES = {"binned", "kl_values", "hover_image", "thin", "f32", "activation_range", "waiting_message"}


class Meter:
    """Accumulates the time of the fragment and of the viz and serialisation calls made inside it."""

    def __init__(self) -> None:
        self.in_fragment = False
        self.profiler: cProfile.Profile | None = None  # profiles the fragments (they run in the script thread)
        self.depth = 0  # nested viz calls count once
        self.reset()

    def reset(self) -> None:
        self.fragment = self.build = self.serialise = 0.0
        self.payload = 0
        self.charts = 0

    def viz(self, fn):
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            if not self.in_fragment or self.depth:
                self.depth += 1
                try:
                    return fn(*args, **kwargs)
                finally:
                    self.depth -= 1
            self.depth += 1
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.build += time.perf_counter() - t
                self.depth -= 1
        return timed

    def serialiser(self, fn):
        @functools.wraps(fn)
        def timed(fig, **kwargs):
            t = time.perf_counter()
            out = fn(fig, **kwargs)
            if self.in_fragment:
                self.serialise += time.perf_counter() - t
                self.payload += len(out) if isinstance(out, bytes) else len(json.dumps(out))  # as the element has it
                self.charts += 1
            return out
        return timed

    def live(self, fn):
        meter = self

        @functools.wraps(fn)
        def live(draw):
            def timed_draw(job):
                meter.in_fragment = True
                if meter.profiler:
                    meter.profiler.enable()
                t = time.perf_counter()
                try:
                    draw(job)
                finally:
                    meter.fragment += time.perf_counter() - t
                    meter.in_fragment = False
                    if meter.profiler:
                        meter.profiler.disable()
            return fn(timed_draw)
        return live


def instrument(meter: Meter) -> None:
    import importlib

    import sae.ui.chart
    import sae.ui.live

    for name in VIZ_MODULES:
        module = importlib.import_module(f"sae.viz.{name}")
        for attr in getattr(module, "__all__", ()):
            fn = getattr(module, attr)
            if callable(fn) and not isinstance(fn, type) and attr not in NOT_FIGURES:
                setattr(module, attr, meter.viz(fn))
    sae.ui.chart.chart_data = meter.serialiser(sae.ui.chart.chart_data)
    sae.ui.live.live = meter.live(sae.ui.live.live)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="patches", help="built-in data set (its default settings)")
    parser.add_argument("--repeats", type=int, default=12, help="refreshes per page (medians reported)")
    parser.add_argument("--train", type=float, default=8.0,
                        help="seconds of training before measuring (past the start-up warm-up, sae.ui.page)")
    parser.add_argument("--live", action="store_true", help="keep training while measuring")
    parser.add_argument("--twin", action="store_true", help="a twin (β 10) trains beside the run: pages draw both")
    parser.add_argument("--profile", action="store_true", help="print cProfile's hot spots of the fragments")
    args = parser.parse_args()

    from streamlit.testing.v1 import AppTest

    meter = Meter()
    instrument(meter)
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=120)
    at.query_params["data"] = args.dataset
    at.run()
    if args.twin:  # added before the start (the run is held paused), then resumed: both train from step 0
        at.select_slider(key="twin_beta").set_value(10.0)
        at.button(key="btn_twin_add").click().run()
        job = at.session_state["sae_job"]
        end = time.monotonic() + 60
        while job.twin_setup() is None and time.monotonic() < end:
            time.sleep(0.05)
        at.run()
        at.button(key="btn_pause").click().run()
    else:
        at.button(key="btn_train").click().run()
    job = at.session_state["sae_job"]
    time.sleep(args.train)
    if not args.live:
        job.pause()
    profiler = meter.profiler = cProfile.Profile() if args.profile else None
    rows, out = [], {"machine": machine(), "dataset": args.dataset, "step": job.latest().step,
                     "live": args.live, "twin": args.twin, "pages": {}}
    try:
        for label, script in PAGES.items():
            at.switch_page(script).run()  # first visit: caches, imports
            at.run()
            samples = []
            for _ in range(args.repeats):
                meter.reset()
                at.run()
                assert not at.exception, [e.value for e in at.exception]
                samples.append((meter.fragment, meter.build, meter.serialise, meter.payload, meter.charts))
            med = [statistics.median(s[k] for s in samples) for k in range(5)]
            fragment, build, serialise, payload, charts = med
            out["pages"][label] = {"fragment_ms": 1e3 * fragment, "build_ms": 1e3 * build,
                                   "serialise_ms": 1e3 * serialise, "rest_ms": 1e3 * (fragment - build - serialise),
                                   "payload_kib": payload / 1024, "charts": int(charts)}
            p = out["pages"][label]
            rows.append([label, int(charts), p["fragment_ms"], p["build_ms"], p["serialise_ms"], p["rest_ms"],
                         p["payload_kib"]])
    finally:
        job.stop("bench over")
    total = [sum(r[k] for r in rows) for k in range(2, 7)]
    rows.append(["all six pages", sum(r[1] for r in rows), *total])
    with_twin = " with a twin" if args.twin else ""
    print_table(f"One live refresh per page ({args.dataset}{with_twin}, step {out['step']:,}, "
                f"{'training' if args.live else 'paused'}; medians of {args.repeats})",
                ["page", "charts", "fragment ms", "build ms", "serialise ms", "rest ms", "payload KiB"], rows)
    if profiler:
        stream = io.StringIO()
        stats = pstats.Stats(profiler, stream=stream).strip_dirs()
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(r"(basedatatypes|basevalidators|_json|viz|chart)", 30)
        print(stream.getvalue())
    save_json("refresh_twin" if args.twin else "refresh", out)


if __name__ == "__main__":
    main()
