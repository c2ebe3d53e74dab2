"""The dashboard in a real browser: `streamlit run dashboard.py` driven by headless Chromium.

Uses Debian's /usr/bin/chromium through the playwright package (no `playwright install`).
Skipped when either is missing. The server runs on a free loopback port and is always killed.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

playwright = pytest.importorskip("playwright.sync_api")

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("SAE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
PAGES = [("kl_penalty", "KL penalty"), ("filters", "Filters"), ("activations", "Activations"),
         ("codes", "Codes (PCA)"), ("reconstructions", "Reconstructions")]
APP = "Sparse Autoencoder Lab"

pytestmark = pytest.mark.skipif(not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)),
                                reason=f"no Chromium at {CHROMIUM}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    """`streamlit run dashboard.py` on a free loopback port; killed (its whole process group) at the end."""
    port = free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard.py"), "--server.port", str(port),
           "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    log = open(os.devnull, "wb")
    env = dict(os.environ, SAE_TRAINING_SLOTS="1")  # one run at a time: a leaked run would queue the next
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(base + "/_stcore/health", timeout=2) as r:
                    if r.status == 200 and r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            assert proc.poll() is None, "the Streamlit server exited"
            assert time.monotonic() < deadline, "the Streamlit server did not answer /_stcore/health"
            time.sleep(0.2)
        yield base
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(10)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue
        log.close()


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.errors = errors
    yield pg
    context.close()


def visible_charts(pg) -> int:
    return pg.evaluate("""() => [...document.querySelectorAll("[data-testid='stPlotlyChart']")]
        .filter(e => e.getBoundingClientRect().height > 0 && e.querySelector('.main-svg')).length""")


def wait_charts(pg, n: int = 1, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while visible_charts(pg) < n:
        assert time.monotonic() < deadline, f"fewer than {n} charts drawn on {pg.url}"
        time.sleep(0.1)


def status(pg) -> str:
    return pg.locator("[data-testid='stSidebar'] [data-testid='stCaptionContainer']").filter(
        has_text="step").first.inner_text()


def step_of(pg) -> int:
    return int(re.search(r"step ([\d,]+)", status(pg)).group(1).replace(",", ""))


def last_loss_step(pg) -> float:
    """The last x of the loss chart's first curve, read from the live Plotly graph in the page."""
    return pg.evaluate("""() => { const g = document.querySelector("[data-testid='stPlotlyChart'] .js-plotly-plot");
        const t = g && g._fullData && g._fullData[0];  // decoded arrays (data[] keeps the base64 payload)
        if (!t || !t.x || !t.x.length) return -1;
        return Number(t.x[t.x.length - 1]); }""")


def no_exception(pg) -> None:
    assert pg.locator("[data-testid='stException']").count() == 0, pg.locator(
        "[data-testid='stException']").first.inner_text()
    assert not pg.errors, pg.errors


def open_page(pg, url: str) -> None:
    pg.goto(url)
    pg.wait_for_selector("[data-testid='stApp']")
    wait_charts(pg)


def test_dashboard_in_a_browser(server, page):
    pg = page
    # 1. a link straight to a page, as the very first request after the server started
    open_page(pg, server + "/filters?hidden=25&rho=0.05")
    assert pg.title() == f"Filters · {APP}"
    assert "Filters" in pg.locator("h1").first.inner_text()
    assert pg.get_by_role("spinbutton", name="Hidden units").input_value() == "25"
    no_exception(pg)

    # 2. the home page: set rho, beta and the hidden size in the panel; the URL follows
    open_page(pg, server + "/")
    assert pg.title() == f"Train · {APP}"
    hidden = pg.get_by_role("spinbutton", name="Hidden units")
    hidden.fill("25")
    hidden.press("Enter")
    pg.wait_for_function("() => /hidden=25/.test(location.search)", timeout=15_000)
    sidebar = pg.locator("[data-testid='stSidebar']")
    for label, param in (("ρ: target", "rho=0.03"), ("β: sparsity", "beta=5")):  # one notch right each
        knob = sidebar.locator("[data-testid='stSlider']").filter(has_text=label).get_by_role("slider")
        knob.focus()
        knob.press("ArrowRight")
        pg.wait_for_function("p => location.search.includes(p)", arg=param, timeout=15_000)
    assert all(p in pg.url for p in ("hidden=25", "rho=0.03", "beta=5"))

    # 3. Train: the status line runs and the loss chart grows
    pg.get_by_role("button", name="Train", exact=True).click()
    pg.wait_for_function("() => document.body.innerText.includes('running')", timeout=15_000)
    wait_charts(pg, 2)
    deadline = time.monotonic() + 20
    while last_loss_step(pg) <= 0:
        assert time.monotonic() < deadline, "the loss chart never showed a step"
        time.sleep(0.2)
    first = last_loss_step(pg)
    deadline = time.monotonic() + 20
    while last_loss_step(pg) <= first:
        assert time.monotonic() < deadline, "the loss chart did not change over time"
        time.sleep(0.2)
    assert "running" in status(pg) and "samples/s" in status(pg)
    no_exception(pg)

    # 4. Pause: the steps stop
    pg.get_by_role("button", name="Pause").click()
    pg.wait_for_function("() => document.body.innerText.includes('paused')", timeout=15_000)
    paused_at = step_of(pg)
    time.sleep(1.0)
    assert step_of(pg) == paused_at

    # 5. every page through its link in the panel: same session, same run, charts, no exception
    for path, label in PAGES:
        link = pg.get_by_role("link", name=label, exact=True)
        assert re.search(rf"{path}\?.*hidden=25", link.get_attribute("href")), "links carry the configuration"
        link.click()
        pg.wait_for_function("t => document.title.startsWith(t)", arg=label, timeout=30_000)
        wait_charts(pg)
        assert path in pg.url and "hidden=25" in pg.url and "beta=5" in pg.url
        assert step_of(pg) == paused_at and "paused" in status(pg)
        no_exception(pg)

    # 6. Resume, then Stop
    pg.get_by_role("button", name="Resume").click()
    pg.wait_for_function("() => document.body.innerText.includes('running')", timeout=15_000)
    pg.get_by_role("button", name="Stop").click()
    pg.wait_for_function("() => document.body.innerText.includes('stopped by the user')", timeout=15_000)
    assert step_of(pg) > paused_at


@pytest.mark.parametrize("path,label", PAGES)
def test_every_page_opens_by_its_link(server, page, path, label):
    open_page(page, f"{server}/{path}?data=digits&hidden=16")
    assert page.title() == f"{label} · {APP}"
    assert page.get_by_role("spinbutton", name="Hidden units").input_value() == "16"
    no_exception(page)


def test_closing_the_tab_releases_its_training(server, browser):
    """A session that goes away stops training: its job pauses on disconnect and gives back the
    server's training slot, so the next visitor's run starts at once instead of queueing."""
    first = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = first.new_page()
    open_page(pg, server + "/?data=digits&hidden=16&epochs=5000")
    pg.get_by_role("button", name="Train", exact=True).click()
    pg.wait_for_function("() => document.body.innerText.includes('running')", timeout=15_000)
    first.close()  # the tab goes away mid-run
    second = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        pg = second.new_page()
        open_page(pg, server + "/?data=digits&hidden=16&epochs=5000")
        pg.get_by_role("button", name="Train", exact=True).click()
        pg.wait_for_function("() => document.body.innerText.includes('running')", timeout=15_000)
        assert "queued" not in status(pg)
        pg.get_by_role("button", name="Stop").click()
        pg.wait_for_function("() => document.body.innerText.includes('stopped by the user')", timeout=15_000)
    finally:
        second.close()
