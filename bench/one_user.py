"""One user, five times: does the Train page keep drawing, and does the run keep its speed, while it trains?

    python bench/one_user.py [--runs 5] [--seconds 10] [--browser-nice 19]

For each run: a fresh `streamlit run dashboard.py` (bench/streamlit_server.py), one headless Chromium page on
the Train page with the dashboard's defaults (its first page starts the workers' forkserver, which preloads
torch; the bench waits until it is ready, as a server is before its class arrives), Train pressed. Recorded by the page hooks of bench/load_browser.py:
the seconds from the click to "running", every change the loss chart draws (so the longest gap between two
drawn changes in the first ``--seconds`` s after the click, from the first one on), and the steps the status
line shows. The run's samples/s over that window (steps x batch / s) is compared with the same settings trained
by the library alone in a child process with no page and no server (bench/load_alone.py), measured just before.

Targets (issue 13): no gap over 1 s between chart updates in the first 10 s after Train, on every run; samples/s
while the page refreshes >= 0.95x the run alone. Prints a table; writes bench/results/one_user.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.load_browser import click_train, open_session, status, wait_state  # noqa: E402
from bench.load_stats import descendants, read_stats  # noqa: E402
from bench.streamlit_server import browser, serve  # noqa: E402

WARM_TIMEOUT = 90.0  # s to wait for a new server's forkserver (it imports torch and trains once first)


def wait_warm(server_pid: int) -> float:
    """Seconds until the server's forkserver is ready (it names itself sae-forkserver once warm)."""
    start = time.monotonic()
    while time.monotonic() - start < WARM_TIMEOUT:
        for pid in descendants(server_pid, read_stats()):
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == "sae-forkserver":
                    return time.monotonic() - start
            except OSError:
                continue
        time.sleep(0.2)
    raise TimeoutError("the server's forkserver did not get ready")


def alone(hidden: int, seconds: float) -> dict:
    out = subprocess.run([sys.executable, "-m", "bench.load_alone", "--hidden", str(hidden), "--seconds",
                          str(seconds)], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def loss_chart_times(pg) -> list[float]:
    """performance.now() of every drawn change of the page's first live chart (the loss curves)."""
    return pg.evaluate("() => (window.__bench.charts.find(c => c.el.isConnected) || {times: []}).times || []")


def one_run(b, seconds: float) -> dict:
    with serve() as server:
        context, pg = open_session(b, server.url + "/")
        warm = wait_warm(server.pid)  # a first page starts the forkserver; a class arrives after that
        try:
            click_train(pg)
            state = wait_state(pg, ("running",), 30)
            st = status(pg)
            click = st["clickAt"]
            running = next((t for t, s in st["states"] if s == "running"), None)
            steps0, at0 = st["step"], st["stepAt"]
            pg.wait_for_timeout(max(0.0, seconds * 1000 - (st["now"] - click)))
            st = status(pg)
            times = [t for t in loss_chart_times(pg) if click <= t <= click + seconds * 1000]
            gaps = [(b_ - a_) / 1000 for a_, b_ in zip(times, times[1:])]
            rate_steps = (st["step"] - steps0) / ((st["stepAt"] - at0) / 1000) if st["stepAt"] > at0 else 0.0
        finally:
            context.close()
    return {"warm_s": round(warm, 1), "state": state, "click_to_running_s": None if running is None else round((running - click) / 1000, 3),
            "first_update_s": round((times[0] - click) / 1000, 3) if times else None,
            "updates": len(times), "max_gap_s": round(max(gaps), 3) if gaps else None,
            "steps_per_s": round(rate_steps, 1)}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--browser-nice", type=int, default=0,
                    help="run Chromium at this niceness (e.g. 19: the page takes only the CPU the server leaves, "
                         "as on a student's own machine); 0: the same priority as the server")
    args = ap.parse_args(argv)

    from sae.app.settings import Settings
    from sae.data import load_dataset

    settings = Settings()
    batch = min(settings.batch_size, load_dataset(settings.dataset).n_samples)
    runs = []
    with browser(args.browser_nice) as b:
        for k in range(args.runs):
            reference = alone(settings.n_hidden, 5.0)
            run = one_run(b, args.seconds)
            run["samples_per_s"] = round(run["steps_per_s"] * batch, 1)
            run["alone_samples_per_s"] = reference["samples_per_s"]
            run["ratio"] = round(run["samples_per_s"] / reference["samples_per_s"], 3)
            runs.append(run)
            print(f"run {k + 1}: {run}", flush=True)
    print(f"\nOne user, {args.runs} runs, defaults ({settings.dataset}, {settings.n_hidden} hidden, batch {batch}):")
    print("| run | click → running | first chart update | updates in 10 s | longest gap | samples/s with the page "
          "| alone | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for k, r in enumerate(runs, 1):
        print(f"| {k} | {r['click_to_running_s']} s | {r['first_update_s']} s | {r['updates']} | {r['max_gap_s']} s "
              f"| {r['samples_per_s']:,.0f} | {r['alone_samples_per_s']:,.0f} | {r['ratio']:.2f}× |")
    gaps_ok = all(r["max_gap_s"] is not None and r["max_gap_s"] <= 1.0 for r in runs)
    ratio_ok = all(r["ratio"] >= 0.95 for r in runs)
    print(f"\nno gap over 1 s on every run: {'met' if gaps_ok else 'NOT MET'}; "
          f"samples/s >= 0.95x alone on every run: {'met' if ratio_ok else 'NOT MET'}")
    out = {"browser_nice": args.browser_nice, "runs": runs, "gaps_met": gaps_ok, "ratio_met": ratio_ok}
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    (ROOT / "bench" / "results" / "one_user.json").write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
