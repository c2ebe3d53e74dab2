"""Server memory: one session through a long run, then the increment per extra session.

    python bench/memory.py [--long 60] [--sessions 4]

Starts `streamlit run dashboard.py` on a loopback port, opens one browser session, trains for
--long seconds sampling the server's RSS (from /proc) every 2 s, then opens --sessions more sessions
that each press Train (they queue behind the one training slot) and reports the RSS increment per
session. Bounded in time; prints a table and writes bench/results/memory.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import print_table, save_json  # noqa: E402
from bench.streamlit_server import browser, serve  # noqa: E402


def open_and_train(b, url: str):
    context = b.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.goto(url)
    train = pg.get_by_role("button", name="Train", exact=True)
    train.wait_for(timeout=60_000)
    train.click()
    pg.wait_for_function("() => /running|queued/.test(document.body.innerText)", timeout=60_000)
    return context


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--long", type=float, default=60.0, help="seconds of training of the first session")
    parser.add_argument("--sessions", type=int, default=4, help="extra sessions opened afterwards")
    args = parser.parse_args()
    with browser() as b, serve() as server:
        idle = server.stats()["rss_mib"]
        first = open_and_train(b, server.url + "/?epochs=100000")
        samples, t0 = [], time.perf_counter()
        while time.perf_counter() - t0 < args.long:
            samples.append((time.perf_counter() - t0, server.stats()["rss_mib"]))
            time.sleep(2.0)
        half = [rss for t, rss in samples if t >= args.long / 2]
        after_long = samples[-1][1]
        contexts, steps = [first], [after_long]
        for _ in range(args.sessions):
            contexts.append(open_and_train(b, server.url))
            time.sleep(3.0)
            steps.append(server.stats()["rss_mib"])
        increments = [b_ - a for a, b_ in zip(steps, steps[1:])]
        for c in contexts:
            c.close()
        time.sleep(5.0)
        closed = server.stats()
    out = {"idle_rss_mib": idle, "rss_after_long_run_mib": after_long, "long_run_s": args.long,
           "rss_samples": samples, "second_half_growth_mib": max(half) - min(half) if half else 0.0,
           "increment_per_session_mib": statistics.median(increments), "increments": increments,
           "after_closing": closed}
    print_table("Server memory (RSS, MiB)", ["measure", "value"], [
        ["idle server", idle],
        [f"one session after {args.long:g} s of training", after_long],
        ["growth over the second half of that run", out["second_half_growth_mib"]],
        [f"increment per extra session (median of {args.sessions})", out["increment_per_session_mib"]],
        ["5 s after closing every session", closed["rss_mib"]],
    ])
    save_json("memory", out)


if __name__ == "__main__":
    main()
