"""Many users: N real browser sessions training at once against one `streamlit run dashboard.py`.

    python bench/load.py [--sessions 8] [--cycles 50] [--slots K] [--round-trips 6] [--deadline 900]
    python bench/load.py --url http://127.0.0.1:8501 --pid <server pid>     # attach to a running server

Starts its own server on a free loopback port (its run store in a temporary directory, a short
``server.disconnectedSessionTTL`` so that closed sessions are cleaned up within the run), or attaches to
``--url`` (loopback only). One headless Chromium (Debian's /usr/bin/chromium through the playwright
package), one browser context per session, so every session is a separate Streamlit session. Then:

1. before: the server's threads and resident memory (/proc/<pid>/status), fresh;
   baseline: the same after one warm-up session opened and closed (torch imported, reaper started);
2. N sessions each open the Train page with their own hidden size (20, 21, ...) and press Train;
3. under that load: p50/p95 of a widget round trip (type a seed in the panel, press Enter, until the
   browser has the finished rerun: the URL carries the seed and the app's script state is back to
   ``notRunning``), round-robin over the sessions, and of GET /_stcore/health polled every 0.1 s by a
   separate thread; training throughput (steps of all sessions per second);
4. every session sees only its own model: its Hidden units field, and the Filters page's unit picker
   (whose range comes from the session's trained weights), show its own hidden size; its own status;
5. all sessions close; the server's threads must come back to the baseline (disconnect -> pause, then
   the reaper stops each trainer thread ``disconnectedSessionTTL`` + 30 s later);
6. M quick open / Train / close cycles; threads must come back to the baseline again;
7. memory sampled throughout; a table on stdout and bench/results/load.json.

Bounded: at most 16 sessions and 200 cycles, every wait has a timeout, and a watchdog ends everything
(server, browser, this process) after ``--deadline`` seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.streamlit_server import Server, browser, launch  # noqa: E402

RESULTS = ROOT / "bench" / "results"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
HIDDEN0 = 20  # session i trains hidden size HIDDEN0 + i
REAPER_PERIOD = 5.0  # sae.app.reaper.REAPER_PERIOD

# Timestamps the first moment after a widget change at which the app's script is not running and the
# URL shows the change (the panel writes the URL during the rerun, before the rest of the page).
OBSERVER = """() => {
  const app = document.querySelector("[data-testid='stApp']");
  window.__rt = {want: null, done: null, t0: 0};
  new MutationObserver(() => {
    const r = window.__rt;
    if (r.want === null || r.done !== null) return;
    if (app.getAttribute('data-test-script-state') !== 'notRunning') return;
    if ((new URLSearchParams(location.search).get('seed') ?? '0') === r.want) r.done = performance.now();
  }).observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
}"""


# ------------------------------------------------------------------------------------------------ helpers

def proc_stats(pid: int | None) -> dict:
    """Threads and resident memory (MiB) of the server process, from /proc/<pid>/status."""
    if pid is None:
        return {}
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key == "Threads":
                out["threads"] = int(value)
            elif key == "VmRSS":
                out["rss_mib"] = round(int(value.split()[0]) / 1024, 1)
    except OSError:
        pass
    return out


def health(base: str, timeout: float = 10.0) -> float | None:
    """Seconds for GET /_stcore/health, None on failure."""
    t = time.perf_counter()
    try:
        with urllib.request.urlopen(base + "/_stcore/health", timeout=timeout) as r:
            ok = r.status == 200 and r.read().strip() == b"ok"
    except OSError:
        return None
    return time.perf_counter() - t if ok else None


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))]


def ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1000:,.0f} ms"


class Sampler(threading.Thread):
    """Polls /_stcore/health every ``period`` seconds and the server's /proc stats, until stopped."""

    def __init__(self, base: str, pid: int | None, period: float = 0.1) -> None:
        super().__init__(daemon=True, name="load-sampler")
        self.base, self.pid, self.period = base, pid, period
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
            if time.monotonic() - last_stats >= 0.5:
                last_stats = time.monotonic()
                self.stats.append(proc_stats(self.pid))
            self._halt.wait(self.period)

    def stop(self) -> None:
        self._halt.set()
        self.join(15)


def status_line(pg) -> str:
    return pg.locator("[data-testid='stSidebar'] [data-testid='stCaptionContainer']").filter(
        has_text="step").first.inner_text(timeout=30_000)


def step_of(pg) -> int:
    m = re.search(r"step ([\d,]+)", status_line(pg))
    return int(m.group(1).replace(",", "")) if m else -1


def open_session(browser, url: str):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    pg.goto(url)
    pg.wait_for_selector("[data-testid='stApp']")
    pg.get_by_role("button", name="Train", exact=True).wait_for()
    return context, pg


def press_train(pg) -> None:
    pg.get_by_role("button", name="Train", exact=True).click()
    pg.wait_for_function("() => /running|queued/.test(document.querySelector(\"[data-testid='stSidebar']\").innerText)",
                         timeout=60_000)


def round_trip(pg) -> float:
    """One widget round trip (seconds): a new seed typed in the panel until the rerun has finished."""
    box = pg.get_by_role("spinbutton", name="Seed")
    want = "1" if urllib.parse.parse_qs(urllib.parse.urlparse(pg.url).query).get("seed") != ["1"] else "0"
    box.fill(want)  # (the default seed 0 is left out of the URL; the observer reads absent as "0")
    pg.evaluate("w => { const r = window.__rt; r.want = w; r.done = null; r.t0 = performance.now(); }", want)
    box.press("Enter")
    pg.wait_for_function("() => window.__rt.done !== null", timeout=60_000, polling=10)
    return pg.evaluate("() => window.__rt.done - window.__rt.t0") / 1000


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
    """Threads and memory of an idle server: 11 s without requests, then a nudge."""
    time.sleep(11)
    nudge(base)
    return proc_stats(pid)


def wait_threads(base: str, pid: int | None, target: int, timeout: float) -> tuple[dict, float | None]:
    """Wait until the server has at most ``target`` threads; (stats, seconds it took or None)."""
    t0 = time.monotonic()
    while True:
        nudge(base)
        stats = proc_stats(pid)
        if not stats or stats.get("threads", 0) <= target:
            return stats, time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            return stats, None
        time.sleep(2.0)


# ------------------------------------------------------------------------------------------------ the run

def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=8, help="browser sessions training at once (1-16)")
    ap.add_argument("--cycles", type=int, default=50, help="open / Train / close cycles afterwards (0-200)")
    ap.add_argument("--round-trips", type=int, default=6, help="widget round trips per session")
    ap.add_argument("--slots", type=int, default=None, help="SAE_TRAINING_SLOTS for the server it starts")
    ap.add_argument("--ttl", type=int, default=15, help="server.disconnectedSessionTTL (s) for the server it starts")
    ap.add_argument("--server-arg", action="append", default=[], help="extra `streamlit run` option, e.g. "
                    "--server-arg=--runner.postScriptGC=true")
    ap.add_argument("--url", help="attach to this running server instead (loopback only)")
    ap.add_argument("--pid", type=int, help="with --url: the server's pid (for threads and memory)")
    ap.add_argument("--deadline", type=float, default=900.0, help="hard limit on the whole run (s)")
    ap.add_argument("--out", default=str(RESULTS / "load.json"))
    args = ap.parse_args(argv)
    if not 1 <= args.sessions <= 16 or not 0 <= args.cycles <= 200 or not 1 <= args.round_trips <= 50:
        ap.error("--sessions 1-16, --cycles 0-200, --round-trips 1-50")

    server: Server | None = None
    data_dir = tempfile.TemporaryDirectory(prefix="sae-load-")
    log_path = Path(data_dir.name) / "server.log"
    started = time.monotonic()

    def abort() -> None:  # the watchdog: nothing outlives the deadline
        print(f"\nDEADLINE: {args.deadline:.0f} s exceeded; stopping the server and exiting.", flush=True)
        if server is not None:
            server.stop()
        os._exit(3)

    watchdog = threading.Timer(args.deadline, abort)
    watchdog.daemon = True
    watchdog.start()
    ttl = args.ttl
    try:
        if args.url:
            host = urllib.parse.urlparse(args.url).hostname
            if host not in LOOPBACK:
                ap.error("--url must be a loopback address (127.0.0.1, localhost, ::1)")
            base, pid = args.url.rstrip("/"), args.pid
            ttl = 120  # unknown: assume Streamlit's default
            t = time.monotonic()
            while health(base, 2.0) is None:
                if time.monotonic() - t > 90:
                    raise SystemExit("the server did not answer /_stcore/health within 90 s")
                time.sleep(0.2)
        else:
            server = launch(env=None if args.slots is None else {"SAE_TRAINING_SLOTS": str(args.slots)},
                            extra_args=["--server.disconnectedSessionTTL", str(ttl), *args.server_arg],
                            data_dir=data_dir.name, log=log_path)
            base, pid = server.url, server.pid
            try:
                server.wait_healthy(90)
            except RuntimeError as exc:
                raise SystemExit(str(exc)) from None
        result: dict = {"sessions": args.sessions, "cycles": args.cycles, "slots": args.slots, "ttl_s": ttl,
                        "server_args": args.server_arg, "cores": os.cpu_count(), "before": proc_stats(pid)}
        # reap after ttl + 30 s (sae.ui.state.session_gone_stop), checked every REAPER_PERIOD
        cleanup_timeout = ttl + 30 + 3 * REAPER_PERIOD + 30

        with browser() as chromium:
            # 1. warm-up: one session opens the app (imports torch, loads the data, starts the reaper)
            ctx, pg = open_session(chromium, base + "/?hidden=10")
            pg.wait_for_function("() => document.querySelectorAll(\"[data-testid='stPlotlyChart'] .main-svg, .sae-live-chart .main-svg\")"
                                 ".length >= 2")
            ctx.close()
            result["baseline"] = baseline = quiet_stats(base, pid)
            print(f"server {base} (pid {pid}); before {result['before']}; baseline {baseline}", flush=True)

            # 2. N sessions, each with its own hidden size, press Train
            sessions = []
            for i in range(args.sessions):
                try:
                    ctx, pg = open_session(chromium, f"{base}/?hidden={HIDDEN0 + i}&epochs=100000")
                    press_train(pg)
                    pg.evaluate(OBSERVER)
                    sessions.append((i, ctx, pg))
                except Exception as exc:  # noqa: BLE001 - counted as not served
                    print(f"session {i}: not served ({type(exc).__name__}: {exc})", flush=True)
            result["sessions_served"] = len(sessions)
            print(f"{len(sessions)}/{args.sessions} sessions training or queued", flush=True)

            # 3. under load: widget round trips (round robin), health polled by the sampler
            sampler = Sampler(base, pid)
            sampler.start()
            steps0 = {i: step_of(pg) for i, _, pg in sessions}
            t_steps = time.monotonic()
            trips: list[float] = []
            failed_trips = 0
            for _ in range(args.round_trips):
                for i, _, pg in sessions:
                    try:
                        trips.append(round_trip(pg))
                    except Exception as exc:  # noqa: BLE001
                        failed_trips += 1
                        print(f"session {i}: round trip failed ({type(exc).__name__})", flush=True)
            steps1 = {i: step_of(pg) for i, _, pg in sessions}
            elapsed = time.monotonic() - t_steps
            statuses = {}
            for i, _, pg in sessions:
                m = re.search(r"\b(running|queued|paused|diverged|finished|stopped|idle)\b", status_line(pg))
                statuses[i] = m.group(1) if m else "?"

            # 4. each session sees only its own model
            own = 0
            for i, _, pg in sessions:
                hidden_field = pg.get_by_role("spinbutton", name="Hidden units").input_value()
                pg.get_by_role("link", name="Filters", exact=True).click()
                pg.wait_for_function("t => document.title.startsWith(t)", arg="Filters")
                unit = pg.get_by_role("spinbutton", name="Unit (or click a filter)")
                unit.wait_for()
                units = int(unit.get_attribute("max")) + 1
                if hidden_field == str(HIDDEN0 + i) and units == HIDDEN0 + i:
                    own += 1
                else:
                    print(f"session {i}: expected {HIDDEN0 + i} units, saw field {hidden_field}, model {units}")
            sampler.stop()
            during = [s for s in sampler.stats if s]
            result["own_model_checks"] = f"{own}/{len(sessions)}"
            result["round_trip"] = {"n": len(trips), "failed": failed_trips, "p50_s": pct(trips, 50),
                                    "p95_s": pct(trips, 95), "max_s": max(trips) if trips else None}
            result["health"] = {"n": len(sampler.health), "failed": sampler.failures,
                                "p50_s": pct(sampler.health, 50), "p95_s": pct(sampler.health, 95),
                                "max_s": max(sampler.health) if sampler.health else None}
            result["statuses"] = sorted(statuses.values())
            result["training_steps_per_s"] = round(sum(steps1[i] - steps0[i] for i in steps1) / elapsed, 1)
            result["during"] = {"threads_max": max((s["threads"] for s in during), default=None),
                                "rss_mib_max": max((s["rss_mib"] for s in during), default=None),
                                "rss_mib_first": during[0]["rss_mib"] if during else None,
                                "rss_mib_last": during[-1]["rss_mib"] if during else None,
                                "seconds": round(elapsed, 1)}
            print(f"round trip p50 {ms(result['round_trip']['p50_s'])} p95 {ms(result['round_trip']['p95_s'])}; "
                  f"health p50 {ms(result['health']['p50_s'])} p95 {ms(result['health']['p95_s'])}; "
                  f"{result['training_steps_per_s']} steps/s; {result['during']}", flush=True)

            # 5. all sessions close: threads back to the baseline
            for _, ctx, _ in sessions:
                ctx.close()
            stats, took = wait_threads(base, pid, baseline.get("threads", 0), cleanup_timeout)
            result["after_sessions"] = dict(stats, seconds_to_baseline=None if took is None else round(took, 1))
            print(f"after closing: {result['after_sessions']}", flush=True)

            # 6. M quick open / Train / close cycles
            peak = 0
            cycle_failures = 0
            rss_series = []  # after every 5th cycle: memory must level off, not climb with the cycles
            for c in range(args.cycles):
                try:
                    ctx, pg = open_session(chromium, f"{base}/?hidden={HIDDEN0 + c % 40}&epochs=100000")
                    press_train(pg)
                    ctx.close()
                except Exception as exc:  # noqa: BLE001
                    cycle_failures += 1
                    print(f"cycle {c}: failed ({type(exc).__name__})", flush=True)
                stats = proc_stats(pid)
                peak = max(peak, stats.get("threads", 0))
                if c % 5 == 4:
                    rss_series.append(stats.get("rss_mib"))
            stats, took = wait_threads(base, pid, baseline.get("threads", 0), cleanup_timeout)
            result["after_cycles"] = dict(stats, peak_threads=peak, failures=cycle_failures,
                                          rss_mib_every_5=rss_series,
                                          seconds_to_baseline=None if took is None else round(took, 1))
            print(f"after {args.cycles} cycles: {result['after_cycles']}", flush=True)
        result["wall_s"] = round(time.monotonic() - started, 1)
    finally:
        watchdog.cancel()
        if server is not None:
            server.stop()
        data_dir.cleanup()

    report(result)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"\nJSON: {out}")
    return result


def report(r: dict) -> None:
    b, base, d = r.get("before", {}), r.get("baseline", {}), r.get("during", {})
    a, c = r.get("after_sessions", {}), r.get("after_cycles", {})
    rows = [
        ("sessions served", f"{r.get('sessions_served')}/{r['sessions']} (each saw its own model: "
                            f"{r.get('own_model_checks')}); states {r.get('statuses')}"),
        ("widget round trip", f"p50 {ms(r['round_trip']['p50_s'])}, p95 {ms(r['round_trip']['p95_s'])}, "
                              f"max {ms(r['round_trip']['max_s'])} ({r['round_trip']['n']} trips, "
                              f"{r['round_trip']['failed']} failed)"),
        ("GET /_stcore/health", f"p50 {ms(r['health']['p50_s'])}, p95 {ms(r['health']['p95_s'])}, "
                                f"max {ms(r['health']['max_s'])} ({r['health']['n']} requests, "
                                f"{r['health']['failed']} failed)"),
        ("training", f"{r.get('training_steps_per_s')} steps/s over all sessions"),
        ("threads", f"before {b.get('threads')}, baseline {base.get('threads')}, during max {d.get('threads_max')}, "
                    f"after closing {a.get('threads')} ({a.get('seconds_to_baseline')} s to baseline), after "
                    f"{r['cycles']} cycles {c.get('threads')} (peak {c.get('peak_threads')}, "
                    f"{c.get('seconds_to_baseline')} s to baseline)"),
        ("memory (RSS)", f"before {b.get('rss_mib')} MiB, baseline {base.get('rss_mib')} MiB, during "
                         f"{d.get('rss_mib_first')} -> {d.get('rss_mib_last')} MiB (max {d.get('rss_mib_max')}), "
                         f"after closing {a.get('rss_mib')} MiB, after cycles {c.get('rss_mib')} MiB; "
                         f"every 5 cycles {c.get('rss_mib_every_5')}"),
    ]
    print(f"\nMany users: {r['sessions']} sessions, {r.get('cores')} cores, training slots "
          f"{r.get('slots') or 'default'}, {r.get('wall_s')} s")
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"  {k.ljust(width)}  {v}")


if __name__ == "__main__":
    main()
