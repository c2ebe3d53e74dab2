"""Take a screenshot of every dashboard page while a model trains: docs/screenshots/*.png.

    python docs/screenshots.py [--seconds 8] [--out docs/screenshots]

Starts `streamlit run dashboard.py` on a free loopback port, drives it with headless Chromium
(Debian's /usr/bin/chromium through the playwright package), presses Train on the defaults, lets
it train for a few seconds, then opens every page through the sidebar links (the same session,
so the run keeps going) and photographs it. A second short run on the labelled `digits` data
set shows the Codes page with colours and linear probes. Then every experiment page is opened with its
defaults, its experiment run (Run, or by itself on the common-mistakes page) and photographed with its
results (`--only experiments` takes just these). Last, three short runs and a 3 x 3 sweep fill the Runs
and Sweep pages (`--only runs`). The server records its runs in a temporary store, and is always killed
at the end.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("SAE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
PAGES = [("1_train", "Train", 1100), ("2_kl_penalty", "KL penalty", 1200), ("3_filters", "Filters", 1100),
         ("4_activations", "Activations", 1950), ("5_codes", "Codes (PCA)", 1100),
         ("6_reconstructions", "Reconstructions", 1000)]  # (file, link label, window height)
EXPERIMENTS = [  # (file, url path, title, window height, press Run)
    ("8_denoising", "denoising", "Denoising", 1250, True),
    ("9_anomaly_detection", "anomaly_detection", "Anomaly detection", 1400, True),
    ("10_self_taught", "self_taught", "Self-taught features", 1350, True),
    ("11_common_mistakes", "common_mistakes", "Common mistakes", 1950, False),
]
STABLE_JS = """() => {
  const charts = [...document.querySelectorAll("[data-testid='stPlotlyChart']")]
      .filter(e => e.getBoundingClientRect().height > 0);
  const drawn = charts.every(e => e.querySelector('.main-svg'));
  const faded = [...document.querySelectorAll("[data-testid='stElementContainer']")]
      .some(e => getComputedStyle(e).display !== 'none' && parseFloat(getComputedStyle(e).opacity) < 0.99);
  return charts.length > 0 && drawn && !faded;
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def streamlit_server(timeout: float = 60.0):
    """`streamlit run dashboard.py` on a free loopback port; yields the base URL; always killed. Its run store
    (SAE_LAB_DATA) is a temporary directory: the screenshots' runs never mix with the user's."""
    port = free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard.py"), "--server.port", str(port),
           "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    store = tempfile.TemporaryDirectory(prefix="sae-screenshots-")
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, env=dict(os.environ, SAE_LAB_DATA=store.name))
    base = f"http://127.0.0.1:{port}"
    try:
        end = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(base + "/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > end:
                raise RuntimeError("the Streamlit server did not start")
            time.sleep(0.2)
        yield base
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        store.cleanup()


def settle(page, timeout: float = 5.0) -> None:
    """Wait until every visible chart is drawn and nothing is faded mid-redraw."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if page.evaluate(STABLE_JS):
            return
        time.sleep(0.05)


def shoot(base: str, out: Path, seconds: float) -> list[Path]:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    saved = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1100})
        page.goto(base + "/")
        page.wait_for_selector("[data-testid='stPlotlyChart']", timeout=90_000)
        page.get_by_role("button", name="Train").click()
        time.sleep(seconds)
        for name, label, height in PAGES:
            page.set_viewport_size({"width": 1440, "height": height})
            page.get_by_role("link", name=label, exact=True).click()
            page.wait_for_function("t => document.title.startsWith(t)", arg=label, timeout=30_000)
            time.sleep(2.0)  # let the page poll a few snapshots
            settle(page)
            path = out / f"{name}.png"
            page.screenshot(path=str(path))
            saved.append(path)
        page.get_by_role("button", name="Stop").click()

        # a labelled data set for the Codes page: colours, hover pictures and the linear probes
        page.set_viewport_size({"width": 1440, "height": 1100})
        page.goto(base + "/codes?data=digits&hidden=49&rho=0.05")
        page.wait_for_selector("[data-testid='stPlotlyChart']", timeout=90_000)
        page.get_by_role("button", name="Train").click()
        time.sleep(max(4.0, seconds / 2))
        settle(page)
        path = out / "7_codes_digits.png"
        page.screenshot(path=str(path))
        saved.append(path)
        page.get_by_role("button", name="Stop").click()
        browser.close()
    return saved


def shoot_experiments(base: str, out: Path, timeout: float = 600.0) -> list[Path]:
    """Each experiment page with its defaults: run it, wait for its results, photograph it."""
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    saved = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1100})
        for name, path, title, height, press_run in EXPERIMENTS:
            page.set_viewport_size({"width": 1440, "height": height})
            page.goto(f"{base}/{path}")
            page.wait_for_function("t => document.title.startsWith(t)", arg=title, timeout=60_000)
            page.get_by_role("button", name="Run", exact=True).wait_for(timeout=60_000)
            if press_run:
                page.get_by_role("button", name="Run", exact=True).click()
            page.wait_for_function("() => document.body.innerText.includes('Finished in')",
                                   timeout=timeout * 1000)
            time.sleep(1.5)
            settle(page)
            path_png = out / f"{name}.png"
            page.screenshot(path=str(path_png))
            saved.append(path_png)
        browser.close()
    return saved


def shoot_runs(base: str, out: Path, timeout: float = 600.0) -> list[Path]:
    """The Runs and Sweep pages with real content: three short runs on digits (β = 0.3, 3, 10), a 3 x 3
    sweep over ρ x β, then its best cell opened and compared with the two latest runs."""
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    saved = []
    query = "data=digits&hidden=25&rho=0.05&epochs=60"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1100})
        for beta in ("0.3", "3", "10"):
            page.goto(f"{base}/?{query}&beta={beta}")
            page.wait_for_selector("[data-testid='stPlotlyChart']", timeout=90_000)
            page.get_by_role("button", name="Train", exact=True).click()
            page.wait_for_function("() => document.body.innerText.includes('finished:')", timeout=timeout * 1000)
        time.sleep(2.0)  # the final metrics are recorded just after the last step

        page.set_viewport_size({"width": 1440, "height": 1300})
        page.goto(f"{base}/sweep?{query}")
        page.get_by_role("button", name="Start sweep").click()
        page.wait_for_function("() => document.body.innerText.includes('9 of 9 cells done')", timeout=timeout * 1000)
        page.wait_for_function("() => !document.body.innerText.includes('running')", timeout=60_000)
        time.sleep(2.0)
        settle(page)
        path = out / "13_sweep.png"
        page.screenshot(path=str(path))
        saved.append(path)

        page.get_by_role("button", name="Open its run").click()
        page.wait_for_function("() => document.title.startsWith('Runs')", timeout=60_000)
        page.set_viewport_size({"width": 1440, "height": 1500})
        time.sleep(2.0)
        settle(page)
        path = out / "14_run.png"
        page.screenshot(path=str(path))
        saved.append(path)

        page.get_by_role("button", name="Add to comparison").click()
        page.wait_for_function("() => document.body.innerText.includes('What differs')", timeout=60_000)
        page.set_viewport_size({"width": 1440, "height": 1750})
        time.sleep(2.0)
        settle(page)
        path = out / "12_runs.png"
        page.screenshot(path=str(path))
        saved.append(path)
        browser.close()
    return saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0, help="training time before the first screenshot")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--only", choices=("all", "live", "experiments", "runs"), default="all",
                        help="live: the pages of the training run; experiments: the experiment pages; "
                             "runs: the Runs and Sweep pages")
    args = parser.parse_args()
    with streamlit_server() as base:
        saved = shoot(base, args.out, args.seconds) if args.only in ("all", "live") else []
        saved += shoot_experiments(base, args.out) if args.only in ("all", "experiments") else []
        saved += shoot_runs(base, args.out) if args.only in ("all", "runs") else []
        for path in saved:
            print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


if __name__ == "__main__":
    main()
