"""Many users: N real browser sessions training at once against one `streamlit run dashboard.py`, for several N.

    python bench/load.py [--sessions 1,8,16] [--cycles 50] [--round-trips 6] [--page-seconds 4] [--costing]
    python bench/load.py --sessions 1,2 --cycles 2 --round-trips 2 --page-seconds 3 --costing    # short check
    python bench/load.py --url http://127.0.0.1:8501 --pid <server pid>    # attach to a running server

For every N in ``--sessions`` a fresh server (its own port, its run store in a temporary directory, a short
``server.disconnectedSessionTTL`` so that closed sessions are cleaned up within the run); with ``--url`` every N
runs against that one server (loopback only). One headless Chromium (Debian's /usr/bin/chromium through the
playwright package), one browser context per session, so every session is a separate Streamlit session. The
page hooks and selectors are in bench/load_browser.py, the /proc and target arithmetic in bench/load_stats.py.

Per N:
1. before: the server tree's processes, threads, RSS, PSS (the server and all its descendants, from /proc),
   fresh; baseline: the same after one warm-up session opened and closed (torch imported, reaper started);
   then "one run alone": the sessions' settings trained in a child process for ``--alone-seconds``
   (bench/load_alone.py: ``sae.Trainer``, no server work, no page), this N's throughput reference, taken
   minutes before it on the same (noisy) machine;
2. N sessions open the Train page with their own hidden size (20, 21, ...), then each presses Train; the
   page hooks time the click and the status line: click -> "running" per session, and whether it showed
   "queued" on the way;
3. under that load: widget round trips (round robin, as before), GET /_stcore/health every 0.1 s from a
   separate thread, the tree's memory every second;
4. chart tour: all sessions switch to each live page in turn (Train, KL penalty, Filters, Activations,
   Codes (PCA), Reconstructions) and stay ``--page-seconds``; every session's changed Plotly redraws per
   chart per second are counted in the browser, and the server tree's CPU seconds and the samples trained
   over the same windows are kept for ``--costing``;
5. training throughput: every session's step count (from its status line) at the start of the load and at its
   end; samples/s summed over sessions against one run alone;
6. every session sees only its own model (its Hidden units field and the Filters page's unit picker);
7. all sessions close; the tree's processes, threads and memory 60 s later against the baseline (and how long
   the threads took to come back); then M quick open / Train / close cycles, threads back to the baseline again.
Then a table per N with the targets (met / not met), a summary across N, with ``--costing`` the cost of a
refresh and of a session and the cores / nodes for ``--students``; everything in bench/results/load.json.

Bounded: at most 16 sessions per N and 200 cycles, every wait has a timeout, and a watchdog ends everything
(server, browser, this process) after ``--deadline`` seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import load_browser as lb  # noqa: E402
from bench.load_stats import (COSTING_FORMULA, back_to_idle, costing, median, ms, num, pct,  # noqa: E402
                              targets, tree_stats)
from bench.streamlit_server import Server, browser, launch  # noqa: E402

RESULTS = ROOT / "bench" / "results"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
HIDDEN0 = 20  # session i trains hidden size HIDDEN0 + i (the dashboard's other defaults: patches, batch 128)
BATCH = 128  # sae.app.settings.Settings.batch_size, the default the sessions train with
REAPER_PERIOD = 5.0  # sae.app.reaper.REAPER_PERIOD
IDLE_AFTER_S = 60.0  # the tree must be idle this long after the sessions close


# ------------------------------------------------------------------------------------------------ server side

def health(base: str, timeout: float = 10.0) -> float | None:
    """Seconds for GET /_stcore/health, None on failure."""
    t = time.perf_counter()
    try:
        with urllib.request.urlopen(base + "/_stcore/health", timeout=timeout) as r:
            ok = r.status == 200 and r.read().strip() == b"ok"
    except OSError:
        return None
    return time.perf_counter() - t if ok else None


class Sampler(threading.Thread):
    """Polls /_stcore/health every ``period`` s and the server tree's /proc figures every ``stats_period`` s."""

    def __init__(self, base: str, pid: int | None, period: float = 0.1, stats_period: float = 1.0) -> None:
        super().__init__(daemon=True, name="load-sampler")
        self.base, self.pid, self.period, self.stats_period = base, pid, period, stats_period
        self.health: list[float] = []
        self.failures = 0
        self.stats: list[dict] = []
        self._halt = threading.Event()

    def run(self) -> None:
        last_stats = 0.0
        while not self._halt.is_set():
            latency = health(self.base)
            if latency is None:
                self.failures += 1
            else:
                self.health.append(latency)
            if time.monotonic() - last_stats >= self.stats_period:
                last_stats = time.monotonic()
                s = tree_stats(self.pid)
                if s:
                    self.stats.append(s)
            self._halt.wait(self.period)

    def stop(self) -> None:
        self._halt.set()
        self.join(15)

    def figures(self) -> tuple[dict, dict]:
        """(health, memory) summaries of what was sampled."""
        h = {"n": len(self.health), "failed": self.failures, "p50_s": pct(self.health, 50),
             "p95_s": pct(self.health, 95), "max_s": max(self.health, default=None)}
        s = self.stats
        m = {"samples": len(s), "rss_mib_max": max((x["rss_mib"] for x in s), default=None),
             "pss_mib_max": max((x["pss_mib"] for x in s if x.get("pss_mib") is not None), default=None),
             "rss_mib_first": s[0]["rss_mib"] if s else None, "rss_mib_last": s[-1]["rss_mib"] if s else None,
             "processes_max": max((x["processes"] for x in s), default=None),
             "threads_max": max((x["threads"] for x in s), default=None)}
        return h, m


def nudge(base: str) -> None:
    """Two plain requests. The server's worker-thread pool (anyio, at most 40 threads) retires threads
    idle for 10 s only when it is next used: this makes it do so, so that thread counts compare."""
    for path in ("/", "/_stcore/health"):
        try:
            with urllib.request.urlopen(base + path, timeout=10) as r:
                r.read()
        except OSError:
            pass


def quiet_stats(base: str, pid: int | None) -> dict:
    """The tree of an idle server: 11 s without requests, then a nudge."""
    time.sleep(11)
    nudge(base)
    return brief(tree_stats(pid))


def brief(s: dict) -> dict:
    return {k: v for k, v in s.items() if k != "pids"}


def at_baseline(s: dict, baseline: dict) -> bool:
    return bool(s) and s["threads"] <= baseline.get("threads", 0) and \
        s["processes"] <= baseline.get("processes", 1)


def wait_baseline(base: str, pid: int | None, baseline: dict, timeout: float) -> tuple[dict, float | None]:
    """Wait until the tree has at most the baseline's threads and processes; (stats, seconds it took or None)."""
    t0 = time.monotonic()
    while True:
        nudge(base)
        s = brief(tree_stats(pid))
        if not s or at_baseline(s, baseline):
            return s, time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            return s, None
        time.sleep(2.0)


def train_alone(seconds: float, timeout: float = 180) -> dict:
    """bench/load_alone.py in a child process: one run, no server, no page."""
    try:
        out = subprocess.run([sys.executable, "-m", "bench.load_alone", "--hidden", str(HIDDEN0), "--seconds",
                              str(seconds)], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                             check=False)
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (subprocess.TimeoutExpired, ValueError, IndexError) as exc:
        print(f"the run alone failed: {type(exc).__name__}: {exc}", flush=True)
        return {}


def mean_alone(runs: list[dict]) -> dict:
    runs = [r for r in runs if r.get("samples_per_s")]
    if not runs:
        return {"runs": runs}
    keys = ("samples_per_s", "cpu_s_per_sample", "cores_used")
    out = {k: sum(r[k] for r in runs) / len(runs) for k in keys if all(r.get(k) is not None for r in runs)}
    return dict(out, runs=runs, settings=runs[0].get("settings"))


# ------------------------------------------------------------------------------------------------ sessions

@dataclass
class Session:
    i: int
    context: object
    page: object

    @property
    def hidden(self) -> int:
        return HIDDEN0 + self.i


def open_sessions(chromium, base: str, n: int) -> list[Session]:
    sessions = []
    for i in range(n):
        try:
            ctx, pg = lb.open_session(chromium, f"{base}/?hidden={HIDDEN0 + i}&epochs=100000")
            sessions.append(Session(i, ctx, pg))
        except Exception as exc:  # noqa: BLE001 - counted as not served
            print(f"session {i}: not served ({type(exc).__name__}: {exc})", flush=True)
    return sessions


def start_training(sessions: list[Session], timeout_s: float) -> dict:
    """Every session presses Train (one after the other, as students do); then each one's click -> running."""
    for s in sessions:
        try:
            lb.click_train(s.page)
        except Exception as exc:  # noqa: BLE001
            print(f"session {s.i}: Train click failed ({type(exc).__name__})", flush=True)
    deadline = time.monotonic() + timeout_s
    times, queued, states = [], 0, []
    for s in sessions:
        lb.wait_state(s.page, ("running",), max(0.5, deadline - time.monotonic()))
        t = lb.click_timing(lb.status(s.page))
        times.append(t["to_running_s"])
        queued += t["queued"]
        states.append(lb.status(s.page)["state"])
    reached = [t for t in times if t is not None]
    return {"per_session_s": [None if t is None else round(t, 3) for t in times], "reached": len(reached),
            "max_s": max(reached) if len(reached) == len(times) and reached else None,
            "max_reached_s": max(reached, default=None), "median_s": median(reached), "queued_ever": queued,
            "states_after_wait": states, "wait_limit_s": timeout_s}


def round_trips(sessions: list[Session], rounds: int, timeout_s: float) -> dict:
    """Every session's widget round trips; one that has not finished after ``timeout_s`` counts as taking
    ``timeout_s`` (so the percentiles are lower bounds once trips fail, never flattered by leaving them out)."""
    trips, failed = [], 0
    for _ in range(rounds):
        for s in sessions:
            try:
                trips.append(lb.round_trip(s.page, timeout_s))
            except Exception as exc:  # noqa: BLE001
                failed += 1
                trips.append(timeout_s)
                print(f"session {s.i}: round trip failed ({type(exc).__name__})", flush=True)
    return {"n": len(trips) - failed, "failed": failed, "timeout_s": timeout_s, "p50_s": pct(trips, 50),
            "p95_s": pct(trips, 95), "max_s": max(trips, default=None)}


def steps(sessions: list[Session]) -> dict[int, tuple[float, int | None]]:
    """Each session's (page clock ms, step) from its status line."""
    out = {}
    for s in sessions:
        try:
            st = lb.status(s.page)
            out[s.i] = (st["stepAt"], st["step"])
        except Exception:  # noqa: BLE001
            out[s.i] = (None, None)
    return out


def training_rate(m0: dict, m1: dict, alone: dict) -> dict:
    """Samples/s summed over sessions, each over its own interval between two step readings."""
    per = {}
    for i, (t0, s0) in m0.items():
        t1, s1 = m1.get(i, (None, None))
        if None not in (t0, s0, t1, s1) and t1 > t0 and s1 >= s0:
            per[i] = (s1 - s0) * BATCH / ((t1 - t0) / 1000)
    total = sum(per.values()) if per else None
    a = alone.get("samples_per_s")
    return {"samples_per_s": None if total is None else round(total), "sessions_measured": len(per),
            "per_session_samples_per_s": {i: round(v) for i, v in per.items()},
            "alone_samples_per_s": None if a is None else round(a),
            "ratio_to_alone": None if total is None or not a else round(total / a, 3)}


def chart_tour(sessions: list[Session], pid: int | None, seconds: float) -> dict:
    """All sessions on each live page in turn for ``seconds``: per page and session, every chart's changed
    redraws per second; the tree CPU s, wall s and samples trained inside the measured windows (for costing)."""
    pages, window = {}, {"seconds": 0.0, "tree_cpu_s": 0.0, "samples": 0, "chart_updates": 0}
    for label, title in lb.LIVE_PAGES:
        here = []
        for s in sessions:
            try:
                if not s.page.title().startswith(title):
                    lb.go_to(s.page, label, title)
                here.append(s)
            except Exception as exc:  # noqa: BLE001
                print(f"session {s.i}: page {label} not measured ({type(exc).__name__}: "
                      f"{str(exc).splitlines()[0][:160] if str(exc) else ''})", flush=True)
        cpu0, t0 = tree_stats(pid, pss=False), time.monotonic()
        snaps0 = {s.i: lb.chart_snapshot(s.page) for s in here}
        lb.sleep_until(t0 + seconds)
        snaps1 = {s.i: lb.chart_snapshot(s.page) for s in here}
        cpu1, t1 = tree_stats(pid, pss=False), time.monotonic()
        per_session = {i: lb.chart_rates(snaps0[i], snaps1[i]) for i in snaps1}
        pages[label] = page_figures(per_session, len(sessions))
        window["seconds"] += t1 - t0
        if cpu0 and cpu1:
            window["tree_cpu_s"] += cpu1["cpu_s"] - cpu0["cpu_s"]
        window["chart_updates"] += sum(c["changed"] for r in per_session.values() for c in r["charts"].values())
        window["samples"] += sum(max(0, (snaps1[i]["step"] or 0) - (snaps0[i]["step"] or 0)) for i in snaps1) * BATCH
        print(f"  {label:16} min {num(pages[label]['min_per_s'])} /s, median {num(pages[label]['median_per_s'])} "
              f"/s over {len(here)} sessions; charts {pages[label]['charts']}", flush=True)
    window = {k: round(v, 2) if isinstance(v, float) else v for k, v in window.items()}
    return {"page_seconds": seconds, "pages": pages, "window": window}


def page_figures(per_session: dict, n: int) -> dict:
    """One page: a chart is live if it changed in some session (a chart that never changes anywhere, like the
    Codes page's raw-input PCA, is listed as static); a session's rate is that of its slowest live chart."""
    names = sorted({k for r in per_session.values() for k in r["charts"]})
    live = [k for k in names if any(r["charts"].get(k, {}).get("changed", 0) > 0 for r in per_session.values())]
    rates = []
    for r in per_session.values():
        mine = [r["charts"][k]["per_s"] for k in live if k in r["charts"]]
        rates.append(min(mine) if mine else 0.0)
    rates += [0.0] * (n - len(per_session))  # a session that never drew the page counts as 0 /s
    return {"min_per_s": min(rates) if rates else None, "median_per_s": median(rates),
            "charts": {k: median([r["charts"][k]["per_s"] for r in per_session.values() if k in r["charts"]])
                       for k in live},
            "static_charts": [k for k in names if k not in live],
            "fallback_charts": max((r["fallback_charts"] for r in per_session.values()), default=0),
            "undrawn_charts": max((r.get("undrawn", 0) for r in per_session.values()), default=0),
            "sessions_measured": len(per_session)}


def own_models(sessions: list[Session]) -> str:
    own = 0
    for s in sessions:
        try:
            ok, seen = lb.own_model(s.page, s.hidden)
        except Exception as exc:  # noqa: BLE001
            ok, seen = False, type(exc).__name__
        own += ok
        if not ok:
            print(f"session {s.i}: expected {s.hidden} units, saw {seen}", flush=True)
    return f"{own}/{len(sessions)}"


def idle_after_close(base: str, pid: int | None, baseline: dict, cleanup_timeout: float) -> dict:
    """The tree IDLE_AFTER_S after the sessions closed (polled every 2 s, with a nudge); if not yet back to the
    baseline's threads and processes then, wait on (at most ``cleanup_timeout`` in all) for how long it takes."""
    t0 = time.monotonic()
    back_at = None
    while time.monotonic() - t0 < IDLE_AFTER_S:
        nudge(base)
        s = tree_stats(pid, pss=False)
        if back_at is None and at_baseline(s, baseline):
            back_at = time.monotonic() - t0
        time.sleep(2.0)
    nudge(base)
    at60 = brief(tree_stats(pid))
    took = back_at
    if not at_baseline(at60, baseline):
        later, extra = wait_baseline(base, pid, baseline, max(0.0, cleanup_timeout - IDLE_AFTER_S))
        took = None if extra is None else IDLE_AFTER_S + extra
        at60["later"] = later
    ok = back_to_idle(baseline, at60)
    text = (f"{at60.get('processes')} processes, {at60.get('threads')} threads, {num(at60.get('rss_mib'), '{:,.0f}')}"
            f" MiB RSS, {num(at60.get('pss_mib'), '{:,.0f}')} MiB PSS (baseline {baseline.get('processes')}, "
            f"{baseline.get('threads')}, {num(baseline.get('rss_mib'), '{:,.0f}')}, "
            f"{num(baseline.get('pss_mib'), '{:,.0f}')}); threads back after {num(took, '{:.0f}')} s")
    return dict(at60, seconds_to_baseline=None if took is None else round(took, 1), back_to_idle=ok, text=text)


def cycles(chromium, base: str, pid: int | None, baseline: dict, count: int, cleanup_timeout: float) -> dict:
    """``count`` quick open / Train / close cycles; threads must come back to the baseline again."""
    peak, failures, rss_series = 0, 0, []  # RSS after every 5th cycle: must level off, not climb
    for c in range(count):
        try:
            ctx, pg = lb.open_session(chromium, f"{base}/?hidden={HIDDEN0 + c % 40}&epochs=100000")
            lb.click_train(pg)
            if lb.wait_state(pg, ("running", "queued"), 60) is None:
                raise TimeoutError("neither running nor queued within 60 s")
            ctx.close()
        except Exception as exc:  # noqa: BLE001
            failures += 1
            print(f"cycle {c}: failed ({type(exc).__name__})", flush=True)
        s = tree_stats(pid, pss=False)
        peak = max(peak, s.get("threads", 0))
        if c % 5 == 4:
            rss_series.append(s.get("rss_mib"))
    s, took = wait_baseline(base, pid, baseline, cleanup_timeout)
    return dict(s, peak_threads=peak, failures=failures, rss_mib_every_5=rss_series,
                seconds_to_baseline=None if took is None else round(took, 1))


# ------------------------------------------------------------------------------------------------ one N

def measure(chromium, base: str, pid: int | None, n: int, args, ttl: int) -> dict:
    r: dict = {"sessions": n, "url": base, "pid": pid, "ttl_s": ttl, "before": brief(tree_stats(pid))}
    cleanup_timeout = ttl + 30 + 3 * REAPER_PERIOD + 30  # reap after ttl + 30 s (sae.ui.state), every REAPER_PERIOD

    # 1. warm-up: one session opens the app (imports torch, loads the data, starts the reaper)
    ctx, pg = lb.open_session(chromium, base + "/?hidden=10")
    pg.wait_for_function("() => document.querySelectorAll(\"[data-testid='stPlotlyChart'] .main-svg, "
                         ".sae-live-chart .main-svg\").length >= 2")
    ctx.close()
    r["baseline"] = baseline = quiet_stats(base, pid)
    print(f"\n== N = {n}: server {base} (pid {pid}); before {r['before']}; baseline {baseline}", flush=True)
    # 1b. one run alone, now (the server idle, no page open): this N's reference for the training throughput
    r["alone"] = alone = train_alone(args.alone_seconds)
    print(f"one run alone (child process, no server, no page): {alone}", flush=True)

    # 2. N sessions open the Train page, then each presses Train
    sessions = open_sessions(chromium, base, n)
    r["sessions_served"] = len(sessions)
    sampler = Sampler(base, pid)
    sampler.start()
    r["click_to_running"] = start_training(sessions, args.running_timeout)
    c = r["click_to_running"]
    print(f"click -> running: max {ms(c['max_reached_s'])} ({c['reached']}/{len(sessions)} reached), median "
          f"{ms(c['median_s'])}, {c['queued_ever']} ever queued; states {c['states_after_wait']}", flush=True)

    # 3.-5. under load: round trips, chart tour, training throughput
    m0 = steps(sessions)
    r["round_trip"] = round_trips(sessions, args.round_trips, args.round_trip_timeout)
    print(f"round trip p50 {ms(r['round_trip']['p50_s'])} p95 {ms(r['round_trip']['p95_s'])}", flush=True)
    r["charts"] = chart_tour(sessions, pid, args.page_seconds)
    m1 = steps(sessions)
    r["training"] = training_rate(m0, m1, alone)
    r["statuses"] = sorted(lb.state_of(lb.status_text(s.page)) for s in sessions)

    # 6. each session sees only its own model
    r["own_model_checks"] = own_models(sessions)
    sampler.stop()
    r["health"], r["memory"] = sampler.figures()
    print(f"health p95 {ms(r['health']['p95_s'])}; training {r['training']['samples_per_s']} samples/s "
          f"({r['training']['ratio_to_alone']} x alone); memory {r['memory']}", flush=True)

    # 7. close; idle 60 s later; cycles
    for s in sessions:
        s.context.close()
    r["after_close"] = idle_after_close(base, pid, baseline, cleanup_timeout)
    print(f"{IDLE_AFTER_S:.0f} s after closing: {r['after_close']['text']}", flush=True)
    if args.cycles:
        r["after_cycles"] = cycles(chromium, base, pid, baseline, args.cycles, cleanup_timeout)
        print(f"after {args.cycles} cycles: {r['after_cycles']}", flush=True)
    r["targets"] = [{"name": a, "target": b, "measured": m, "met": ok} for a, b, m, ok in targets(r)]
    return r


# ------------------------------------------------------------------------------------------------ the run

def parse_sessions(text: str) -> list[int]:
    values = [int(x) for x in str(text).split(",") if x.strip()]
    if not values or any(not 1 <= v <= 16 for v in values):
        raise argparse.ArgumentTypeError("a comma-separated list of session counts, each 1-16")
    return values


def mem_total_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=parse_sessions, default=[1, 8, 16],
                    help="browser sessions training at once, a list (each 1-16; a fresh server for each)")
    ap.add_argument("--cycles", type=int, default=50, help="open / Train / close cycles afterwards (0-200)")
    ap.add_argument("--round-trips", type=int, default=6, help="widget round trips per session")
    ap.add_argument("--round-trip-timeout", type=float, default=20.0,
                    help="a round trip not finished after this many seconds fails and counts as this long")
    ap.add_argument("--browser-nice", type=int, default=0,
                    help="run Chromium at this niceness, in its own scheduler group (e.g. 19: the pages take only "
                         "the CPU the server and its workers leave, as browsers on the students' machines would)")
    ap.add_argument("--page-seconds", type=float, default=4.0, help="seconds every session stays on each live page")
    ap.add_argument("--running-timeout", type=float, default=60.0, help="longest wait for a session's 'running' (s)")
    ap.add_argument("--alone-seconds", type=float, default=5.0, help="seconds the run alone is measured (per N)")
    ap.add_argument("--workers", choices=("processes", "threads"), default="processes",
                    help="where the servers it starts train runs (SAE_LAB_WORKERS): worker processes (default) or "
                         "the server's threads, for comparison")
    ap.add_argument("--ttl", type=int, default=15, help="server.disconnectedSessionTTL (s) for the servers it starts")
    ap.add_argument("--server-arg", action="append", default=[], help="extra `streamlit run` option, e.g. "
                    "--server-arg=--runner.postScriptGC=true")
    ap.add_argument("--url", help="attach to this running server instead (loopback only)")
    ap.add_argument("--pid", type=int, help="with --url: the server's pid (for its process tree)")
    ap.add_argument("--costing", action="store_true", help="print the costing section (also kept in the JSON)")
    ap.add_argument("--students", type=int, default=100, help="--costing: students to plan for")
    ap.add_argument("--node-cores", type=int, default=os.cpu_count() or 2, help="--costing: cores of a node")
    ap.add_argument("--node-mem-gib", type=float, default=round(mem_total_gib(), 1), help="--costing: memory of a node")
    ap.add_argument("--train-cores", type=float, default=None, help="--costing: cores one run uses (default: "
                    "measured, CPU s / wall s of the run alone; below 1 on a busy machine)")
    ap.add_argument("--deadline", type=float, default=5400.0, help="hard limit on the whole run (s)")
    ap.add_argument("--out", default=str(RESULTS / "load.json"))
    args = ap.parse_args(argv)
    if not 0 <= args.cycles <= 200 or not 1 <= args.round_trips <= 50 or not 0.5 <= args.page_seconds <= 60:
        ap.error("--cycles 0-200, --round-trips 1-50, --page-seconds 0.5-60")
    if args.url and urllib.parse.urlparse(args.url).hostname not in LOOPBACK:
        ap.error("--url must be a loopback address (127.0.0.1, localhost, ::1)")

    server: list[Server | None] = [None]  # the current one, for the watchdog
    started = time.monotonic()

    def abort() -> None:  # the watchdog: nothing outlives the deadline
        print(f"\nDEADLINE: {args.deadline:.0f} s exceeded; stopping the server and exiting.", flush=True)
        if server[0] is not None:
            server[0].stop()
        os._exit(3)

    watchdog = threading.Timer(args.deadline, abort)
    watchdog.daemon = True
    watchdog.start()
    result: dict = {"sessions": args.sessions, "cycles": args.cycles, "workers": args.workers, "cores": os.cpu_count(),
                    "server_args": args.server_arg, "page_seconds": args.page_seconds,
                    "browser_nice": args.browser_nice, "runs": []}
    try:
        with browser(args.browser_nice) as chromium:
            for n in args.sessions:
                r = run_one(chromium, n, args, server)
                if args.costing:
                    alone = dict(r.get("alone", {}))
                    if args.train_cores is not None:
                        alone["cores_used"] = args.train_cores
                    r["costing"] = costing(r, alone, args.students, args.node_cores, args.node_mem_gib * 1024)
                result["runs"].append(r)
        result["alone"] = mean_alone([r.get("alone", {}) for r in result["runs"]])
        result["wall_s"] = round(time.monotonic() - started, 1)
    finally:
        watchdog.cancel()
        if server[0] is not None:
            server[0].stop()

    report(result, args.costing)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"\nJSON: {out}")
    return result


def run_one(chromium, n: int, args, server: list) -> dict:
    """One N: against ``--url``, or a fresh server that is stopped afterwards."""
    if args.url:
        base = args.url.rstrip("/")
        t = time.monotonic()
        while health(base, 2.0) is None:
            if time.monotonic() - t > 90:
                raise SystemExit("the server did not answer /_stcore/health within 90 s")
            time.sleep(0.2)
        return measure(chromium, base, args.pid, n, args, 120)  # ttl unknown: assume Streamlit's default
    with tempfile.TemporaryDirectory(prefix="sae-load-") as data_dir:
        server[0] = s = launch(env={"SAE_LAB_WORKERS": args.workers},
                               extra_args=["--server.disconnectedSessionTTL", str(args.ttl), *args.server_arg],
                               data_dir=data_dir, log=Path(data_dir) / "server.log")
        try:
            try:
                s.wait_healthy(90)
            except RuntimeError as exc:
                raise SystemExit(str(exc)) from None
            return measure(chromium, s.url, s.pid, n, args, args.ttl)
        finally:
            s.stop()
            server[0] = None


# ------------------------------------------------------------------------------------------------ report

def report(result: dict, with_costing: bool) -> None:
    a = result.get("alone", {})
    print(f"\nMany users: sessions {result['sessions']}, {result['cores']} cores, runs in "
          f"{result.get('workers')}, {result.get('wall_s')} s. One run alone (a child process, no server, "
          f"no page; measured before each N, mean of {len(a.get('runs', []))}): "
          f"{num(a.get('samples_per_s'), '{:,.0f}')} samples/s, {num(a.get('cores_used'))} cores busy")
    for r in result["runs"]:
        print(f"\nN = {r['sessions']} ({r.get('sessions_served')} served; each saw its own model: "
              f"{r.get('own_model_checks')}; states {r.get('statuses')})")
        rows = [(t["name"], t["target"], t["measured"], "met" if t["met"] else
                 ("not measured" if t["met"] is None else "NOT MET")) for t in r["targets"]]
        table(("figure", "target", "measured", ""), rows)
        extra = [("round trip p50", ms(r["round_trip"]["p50_s"])), ("health p50", ms(r["health"]["p50_s"])),
                 ("tree during load", (f"max {r['memory']['processes_max']} processes, "
                                       f"{r['memory']['threads_max']} threads; RSS {r['memory']['rss_mib_first']} -> "
                                       f"{r['memory']['rss_mib_last']} MiB")),
                 ("baseline", f"{r['baseline']}")]
        for label, p in r["charts"]["pages"].items():
            extra.append((f"  {label}", f"min {num(p['min_per_s'])} /s, median {num(p['median_per_s'])} /s; per "
                                        f"chart {p['charts']}" + (f"; static {p['static_charts']}" if
                                                                  p["static_charts"] else "")))
        if "after_cycles" in r:
            c = r["after_cycles"]
            extra.append(("after cycles", (f"{c.get('threads')} threads (peak {c.get('peak_threads')}), "
                                           f"{c.get('seconds_to_baseline')} s to baseline, {c.get('failures')} "
                                           f"failed; RSS every 5 {c.get('rss_mib_every_5')}")))
        for k, v in extra:
            print(f"    {k:18} {v}")

    print("\nAcross N")
    rows = []
    for r in result["runs"]:
        c, m = r["click_to_running"], r["memory"]
        worst = [p["min_per_s"] for p in r["charts"]["pages"].values()]
        met = sum(bool(t["met"]) for t in r["targets"])
        rows.append((str(r["sessions"]), ms(c["max_reached_s"]) + ("" if c["max_s"] is not None else " (some never)"),
                     str(c["queued_ever"]), num(min(worst) if worst and None not in worst else None),
                     ms(r["round_trip"]["p95_s"]), ms(r["health"]["p95_s"]),
                     num(r["training"]["ratio_to_alone"]) + " x", num(m["rss_mib_max"], "{:,.0f}"),
                     num(m["pss_mib_max"], "{:,.0f}"), "yes" if r["after_close"].get("back_to_idle") else "no",
                     f"{met}/{len(r['targets'])}"))
    table(("N", "click->running max", "queued", "charts min /s", "RT p95", "health p95", "train vs alone",
           "RSS MiB", "PSS MiB", "idle 60 s", "targets met"), rows)

    if with_costing:
        print("\nCosting (from the measured figures; formulas below)")
        rows = []
        for r in result["runs"]:
            c = r.get("costing", {})
            rows.append((str(r["sessions"]), num(c.get("cpu_ms_per_update")), num(c.get("ui_cores_per_session"), "{:.3f}"),
                         num(c.get("train_cores_per_run")), num(c.get("mem_mib_per_session_pss"), "{:,.0f}"),
                         num(c.get("mem_mib_per_session_rss"), "{:,.0f}"), num(c.get("cores"), "{:,.0f}"),
                         f"{c.get('nodes', '-')} (cpu {c.get('nodes_by_cpu', '-')}, mem {c.get('nodes_by_memory', '-')})"))
        c0 = result["runs"][-1].get("costing", {}) if result["runs"] else {}
        table(("N", "server CPU ms / chart update", "UI cores / session", "train cores / run", "MiB / session (PSS)",
               "(RSS)", f"cores for {c0.get('students', '?')}",
               f"nodes of {c0.get('node_cores', '?')} cores, {num(c0.get('node_mem_mib', 0) / 1024, '{:.0f}')} GiB"),
              rows)
        print(COSTING_FORMULA)


def table(header: tuple, rows: list[tuple]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    print("  " + "  ".join(str(h).ljust(w) for h, w in zip(header, widths)))
    for row in rows:
        print("  " + "  ".join(str(x).ljust(w) for x, w in zip(row, widths)))


if __name__ == "__main__":
    main()
