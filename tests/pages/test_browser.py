"""The dashboard in a real browser: `streamlit run dashboard.py` driven by headless Chromium.

Uses Debian's /usr/bin/chromium through the playwright package (no `playwright install`).
Skipped when either is missing. The server runs on a free loopback port and is always killed.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

playwright = pytest.importorskip("playwright.sync_api")

from bench.streamlit_server import browser as chromium  # noqa: E402
from bench.streamlit_server import serve  # noqa: E402

PAGES = [("kl_penalty", "KL penalty"), ("filters", "Filters"), ("activations", "Activations"),
         ("codes", "Codes (PCA)"), ("reconstructions", "Reconstructions")]
APP = "Sparse Autoencoder Lab"
CHART_SELECTOR = "[data-testid='stPlotlyChart'] .js-plotly-plot, .sae-live-chart"  # st.plotly_chart or a live chart

# No skip: the test command (scripts/test.sh) installs Debian's chromium; without it these tests fail loudly.


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`streamlit run dashboard.py` on a free loopback port (bench/streamlit_server.py); killed (its whole
    process group) at the end. Its run store is a temporary directory (SAE_LAB_DATA), never the user's."""
    with lab_server(tmp_path_factory.mktemp("sae-lab-data")) as base:
        yield base


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


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
    return pg.evaluate("""() => [...document.querySelectorAll("[data-testid='stPlotlyChart'], .sae-live-chart")]
        .filter(e => e.getBoundingClientRect().height > 0 && e.querySelector('.main-svg')).length""")


def wait_charts(pg, n: int = 1, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while visible_charts(pg) < n:
        if time.monotonic() >= deadline:
            pg.screenshot(path=str(Path(tempfile.gettempdir()) / "sae-browser-test-failure.png"), full_page=True)
            shown = pg.evaluate("() => document.querySelector('[data-testid=stMain]')?.innerText ?? ''")[:1500]
            raise AssertionError(f"fewer than {n} charts drawn on {pg.url}; the page shows: {shown!r}")
        time.sleep(0.1)


def status(pg) -> str:
    return pg.locator("[data-testid='stSidebar'] [data-testid='stCaptionContainer']").filter(
        has_text="step").first.inner_text()


def step_of(pg) -> int:
    return int(re.search(r"step ([\d,]+)", status(pg)).group(1).replace(",", ""))


def last_loss_step(pg) -> float:
    """The last x of the loss chart's first curve, read from the live Plotly graph in the page."""
    return pg.evaluate("""() => { const g = document.querySelector("[data-testid='stPlotlyChart'] .js-plotly-plot, .sae-live-chart");
        const t = g && g._fullData && g._fullData[0];  // decoded arrays (data[] keeps the base64 payload)
        if (!t || !t.x || !t.x.length) return -1;
        return Number(t.x[t.x.length - 1]); }""")


def hidden_units_shown(pg, expected: str, timeout: float = 10.0) -> str:
    """The "Hidden units" box once it shows ``expected`` (or after ``timeout`` s): a widget whose value the panel
    sets from the URL is drawn with its default for one frame (~60 ms) before Streamlit applies the value."""
    box = pg.get_by_role("spinbutton", name="Hidden units")
    deadline = time.monotonic() + timeout
    while box.input_value() != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return box.input_value()


def no_exception(pg) -> None:
    assert pg.locator("[data-testid='stException']").count() == 0, pg.locator(
        "[data-testid='stException']").first.inner_text()
    assert not pg.errors, pg.errors


def wait_text(pg, needle: str, timeout: float = 60_000) -> None:
    """Wait until the page shows ``needle`` anywhere; fail saying what it shows instead."""
    try:
        pg.wait_for_function("s => document.body.innerText.includes(s)", arg=needle, timeout=timeout)
    except playwright.Error:
        raise AssertionError(f"{needle!r} never showed on {pg.url}; the page shows "
                             f"{pg.inner_text('body')[:2000]!r}") from None


def nav(pg, label: str) -> None:
    """Go to a page through the sidebar's link (the same Streamlit session, as a person would)."""
    pg.locator("[data-testid='stSidebar'] a").filter(has_text=label).first.click()
    pg.wait_for_function("l => document.title.startsWith(l)", arg=label, timeout=30_000)


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
    assert hidden_units_shown(pg, "25") == "25"
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
    assert hidden_units_shown(page, "16") == "16"
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


EXPERIMENT_PAGES = [("denoising", "Denoising"), ("anomaly_detection", "Anomaly detection"),
                    ("self_taught", "Self-taught features"), ("common_mistakes", "Common mistakes")]


def open_experiment_page(pg, url: str, label: str) -> None:
    """Open an experiment page and wait for its title and its Run button (its charts come after a run)."""
    pg.goto(url)
    pg.wait_for_selector("[data-testid='stApp']")
    pg.wait_for_function("t => [...document.querySelectorAll('h1')].some(h => h.innerText.includes(t))", arg=label,
                         timeout=60_000)
    pg.get_by_role("button", name="Run", exact=True).wait_for(timeout=30_000)


@pytest.mark.parametrize("path,label", EXPERIMENT_PAGES)
def test_every_experiment_page_opens_by_its_link(server, page, path, label):
    open_experiment_page(page, f"{server}/{path}?data=digits&hidden=16", label)
    assert page.title() == f"{label} · {APP}"
    page.get_by_role("link", name=label, exact=True).wait_for(timeout=15_000)  # the sidebar links to it
    no_exception(page)


def test_experiments_run_in_the_background_and_draw_their_results(server, page):
    """The polling fragment in a real browser: a run's progress, then its charts, without touching the page."""
    pg = page
    # the common-mistakes page starts its (one-second) comparison by itself
    open_experiment_page(pg, server + "/common_mistakes", "Common mistakes")
    pg.wait_for_function("() => document.body.innerText.includes('Finished in')", timeout=60_000)
    wait_charts(pg, 5)
    assert "with the mistake" in pg.locator("[data-testid='stTable']").first.inner_text()
    no_exception(pg)

    # denoising on the small digits set: press Run, the page fills in when the thread is done
    open_experiment_page(pg, server + "/denoising", "Denoising")
    pg.get_by_text("scikit-learn digits 8×8 (1,797)").click()
    pg.wait_for_timeout(500)
    pg.get_by_role("button", name="Run", exact=True).click()
    pg.wait_for_function("() => document.body.innerText.includes('Finished in')", timeout=90_000)
    wait_charts(pg, 2)
    assert "dB" in pg.locator("[data-testid='stMetric']").first.inner_text()
    no_exception(pg)


# ----------------------------------------------------------------------------- runs, sweeps, share

def overlaid_traces(pg) -> list[str]:
    """Names of the curves on the Runs page's overlaid loss chart ([] while it is not drawn)."""
    return pg.evaluate("""() => { for (const g of document.querySelectorAll("[data-testid='stPlotlyChart'] .js-plotly-plot, .sae-live-chart")) {
        const t = g._fullLayout && g._fullLayout.title && g._fullLayout.title.text;
        if (t && t.includes('runs overlaid') && t.includes('loss')) return g._fullData.map(d => d.name); }
        return []; }""")


def train_until_finished(pg, url: str) -> None:
    open_page(pg, url)
    pg.get_by_role("button", name="Train", exact=True).click()
    pg.wait_for_function("() => document.body.innerText.includes('finished:')", timeout=60_000)


def click_heatmap_cell(pg, title: str, row: int, column: int, rows: int, columns: int) -> None:
    """A real mouse click in the middle of one cell of the sweep heatmap titled ``title``."""
    box = pg.evaluate("""t => { for (const g of document.querySelectorAll("[data-testid='stPlotlyChart'] .js-plotly-plot, .sae-live-chart")) {
        const L = g._fullLayout; if (!L || !L.title || !String(L.title.text).includes(t)) continue;
        const r = g.getBoundingClientRect();
        return {x: r.left + L.xaxis._offset, y: r.top + L.yaxis._offset, w: L.xaxis._length, h: L.yaxis._length}; }
        return null; }""", title)
    assert box, f"no heatmap titled {title!r}"
    pg.mouse.click(box["x"] + box["w"] * (column + 0.5) / columns, box["y"] + box["h"] * (row + 0.5) / rows)


def test_runs_are_compared_and_a_sweep_opens_its_cells(server, page):
    """Two short runs, compared on the Runs page; a 3 x 3 sweep trained in the background on the Sweep page;
    a click on a heatmap cell opens that run, which joins the comparison."""
    pg = page
    train_until_finished(pg, server + "/?data=digits&hidden=16&epochs=20")
    train_until_finished(pg, server + "/?data=digits&hidden=16&epochs=20&beta=10")

    # the Runs page: a new session compares the two latest finished runs by default (the second run's final
    # record, with its metrics on all the data, is written a moment after its page said "finished")
    deadline = time.monotonic() + 30
    while True:
        pg.goto(server + "/runs?data=digits&hidden=16&epochs=20")
        pg.wait_for_selector("[data-testid='stApp']")
        pg.wait_for_timeout(2000)
        names = overlaid_traces(pg)
        if len(names) == 2:
            break
        assert time.monotonic() < deadline, f"the two runs are not compared: {names}"
    assert any("β=10" in n for n in names) and any("β=3" in n for n in names), names
    assert pg.title() == f"Runs · {APP}"
    wait_charts(pg, 3)  # curves, ρ̂ histograms, filters side by side
    no_exception(pg)

    # the Sweep page: the default 3 x 3 grid over rho x beta, 5 epochs a cell
    pg.get_by_role("link", name="Sweep", exact=True).click()
    pg.wait_for_function("t => document.title.startsWith(t)", arg="Sweep", timeout=30_000)
    epochs = pg.get_by_role("spinbutton", name="Epochs per cell")
    epochs.fill("5")
    pg.get_by_role("button", name="Start sweep").click()
    pg.wait_for_function("() => /[0-9] of 9 cells done/.test(document.body.innerText)", timeout=30_000)
    pg.wait_for_function("() => document.body.innerText.includes('9 of 9 cells done')", timeout=180_000)
    pg.wait_for_function("() => !document.body.innerText.includes('running')", timeout=30_000)
    wait_charts(pg, 5)  # four heatmaps and the small multiples
    texts = pg.evaluate("""() => [...document.querySelectorAll("[data-testid='stPlotlyChart'] .js-plotly-plot, .sae-live-chart")]
        .map(g => g._fullLayout.title && g._fullLayout.title.text)""")
    for title in ("Reconstruction error", "Mean ρ̂", "Dead units", "Probe accuracy"):
        assert any(t and title in t for t in texts), texts
    no_exception(pg)

    # a click on the middle cell (rho 0.05, beta 3) opens its run on the Runs page
    pg.wait_for_timeout(1000)
    click_heatmap_cell(pg, "Reconstruction error", 1, 1, 3, 3)
    pg.wait_for_function("() => document.title.startsWith('Runs') && location.search.includes('run=')",
                         timeout=30_000)
    pg.wait_for_function("() => document.body.innerText.includes('KL ρ=0.05 β=3 ')", timeout=30_000)
    assert "hidden=16" in pg.url, "the settings travel with the link"
    no_exception(pg)

    # ... and joins the comparison with the earlier runs
    pg.get_by_role("button", name="Add to comparison").click()
    pg.wait_for_function("() => document.body.innerText.includes('Runs to compare')", timeout=30_000)
    deadline = time.monotonic() + 30
    while len(overlaid_traces(pg)) != 3:
        assert time.monotonic() < deadline, overlaid_traces(pg)
        time.sleep(0.2)
    no_exception(pg)


@contextmanager
def lab_server(data_dir: Path):
    """`streamlit run dashboard.py` (own port, own process group) on the run store ``data_dir``; yields its URL."""
    with serve(data_dir=data_dir) as server:
        yield server.url


def keep_identity(context, token: str) -> None:
    """The browser of ``context`` holds ``token`` as its identity, as a first visit to the store would have left it
    (localStorage, before the page's own scripts; only if it holds none, so the page may replace it)."""
    context.add_init_script(f"if (!localStorage.getItem('sae-lab-identity')) "
                            f"localStorage.setItem('sae-lab-identity', {json.dumps(token)});")


@contextmanager
def browser_holding(browser, token: str):
    """A page of a fresh browser context whose localStorage holds the identity ``token``; closed at the end."""
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    keep_identity(context, token)
    pg = context.new_page()
    pg.errors = []
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    try:
        yield pg
    finally:
        context.close()


def download_model(pg) -> bytes:
    """The sidebar's "Model (.zip …)" download, as bytes."""
    button = pg.locator("[data-testid='stSidebar'] [data-testid='stDownloadButton']").filter(has_text="Model (.zip")
    if not button.is_visible():
        pg.locator("[data-testid='stSidebar'] [data-testid='stExpander']").filter(has_text="Share and export") \
            .locator("summary").click()
    with pg.expect_download(timeout=60_000) as info:
        button.click()
    return Path(info.value.path()).read_bytes()


def test_runs_survive_a_restart_and_a_model_round_trips_through_a_file(tmp_path, browser):
    """Train; restart the server; the run is listed, loads back into the live view; its model downloads,
    uploads and downloads again with the same weights."""
    from sae.runs.export import read_model_bundle

    context = browser.new_context(viewport={"width": 1400, "height": 1100}, accept_downloads=True)
    pg = context.new_page()
    pg.errors = []
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    try:
        with lab_server(tmp_path / "lab") as base:
            train_until_finished(pg, base + "/?data=digits&hidden=16&epochs=20")
            pg.wait_for_timeout(1500)  # the final metrics are recorded after the last step
        with lab_server(tmp_path / "lab") as base:  # a new server process on the same store
            pg.goto(base + "/runs?data=digits&hidden=16&epochs=20")  # one run: nothing to compare, no chart yet
            pg.wait_for_function("() => document.body.innerText.includes('1 of 1 runs shown')", timeout=60_000)
            pg.get_by_text("One run", exact=True).click()
            pg.get_by_role("button", name="Load into the live view").click()
            pg.wait_for_function("() => document.title.startsWith('Train')", timeout=30_000)
            pg.wait_for_function("() => document.body.innerText.includes('loaded run')", timeout=30_000)
            assert "paused" in status(pg) and step_of(pg) == 280  # 20 epochs x 14 full batches of 128
            no_exception(pg)

            first = download_model(pg)
            uploader = pg.locator("[data-testid='stSidebar'] [data-testid='stFileUploader']").filter(
                has_text="Open a saved model")
            uploader.locator("input[type='file']").set_input_files(
                {"name": "model.zip", "mimeType": "application/zip", "buffer": first})
            pg.wait_for_function("() => document.body.innerText.includes('opened model.zip')", timeout=30_000)
            wait_charts(pg, 2)
            no_exception(pg)
            second = download_model(pg)
    finally:
        context.close()
    a, b = read_model_bundle(first), read_model_bundle(second)
    for name, tensor in a.model.state_dict().items():
        assert (tensor == b.model.state_dict()[name]).all(), name
    assert a.train_config == b.train_config and a.dataset == b.dataset == "digits"


# ----------------------------------------------------------------------------- live charts stay interactive

def chart_state(pg, index: int) -> dict:
    """The x range and trace visibility of the index-th chart, and how many hover labels it shows."""
    return pg.evaluate("""i => { const g = document.querySelectorAll("[data-testid='stPlotlyChart'] .js-plotly-plot, .sae-live-chart")[i];
        const first = g._fullData && g._fullData[0], hover = g.querySelector('.hoverlayer');
        return {range: g._fullLayout.xaxis.range.slice(), visible: g._fullData.map(t => t.visible),
                hover: hover ? hover.childElementCount : 0,
                last: first && first.x && first.x.length ? Number(first.x[first.x.length - 1]) : -1}; }""", index)


def test_live_charts_keep_zoom_legend_and_hover_while_training(server, page):
    """While a run trains and the charts refresh several times a second: a drag-zoom stays, a legend click
    stays, a hover tooltip shows, and no chart is ever missing (each refresh updates the chart in place)."""
    pg = page
    open_page(pg, server + "/?data=digits&hidden=16&epochs=3000")
    pg.get_by_role("button", name="Train", exact=True).click()
    pg.wait_for_function("() => document.body.innerText.includes('running')", timeout=15_000)
    wait_charts(pg, 2)
    start = chart_state(pg, 0)["last"]
    deadline = time.monotonic() + 30
    while chart_state(pg, 0)["last"] <= start:  # the curves grow: refreshes are arriving
        assert time.monotonic() < deadline, "the loss chart never refreshed"
        time.sleep(0.2)

    box = pg.locator(CHART_SELECTOR).nth(0).bounding_box()
    pg.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.5)
    pg.mouse.down()
    pg.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.7, steps=8)
    pg.mouse.up()
    zoomed = chart_state(pg, 0)
    pg.locator(CHART_SELECTOR).nth(1).locator(".legendtoggle").nth(1).click()
    refreshed_from = zoomed["last"]
    deadline = time.monotonic() + 30
    while chart_state(pg, 0)["last"] <= refreshed_from or chart_state(pg, 1)["last"] <= refreshed_from:
        assert time.monotonic() < deadline, "the charts stopped refreshing"
        time.sleep(0.2)
    time.sleep(1.0)  # a few more refreshes
    after = chart_state(pg, 0)
    assert after["range"] == zoomed["range"], "the zoom was undone by a refresh"
    assert "legendonly" in chart_state(pg, 1)["visible"], "the legend click was undone by a refresh"

    shown, missing = 0, 0
    right = pg.locator(CHART_SELECTOR).nth(1).bounding_box()
    for i in range(30):
        pg.mouse.move(right["x"] + right["width"] * (0.2 + 0.02 * i), right["y"] + right["height"] * 0.6)
        time.sleep(0.1)
        shown += chart_state(pg, 1)["hover"] > 0
        missing += visible_charts(pg) < 2
    assert missing == 0, f"a chart was missing in {missing} of 30 samples"
    assert shown >= 20, f"a hover tooltip showed in only {shown} of 30 samples"
    assert "running" in status(pg)
    pg.get_by_role("button", name="Stop").click()
    pg.wait_for_function("() => document.body.innerText.includes('stopped by the user')", timeout=15_000)
    no_exception(pg)


def test_delete_removes_exactly_one_run_and_the_picker_follows(tmp_path, browser):
    """Delete → Delete permanently, clicked once: exactly one run leaves the store (to the trash), the
    confirmation closes, the URL drops the id; a fresh confirmation names another run; Undo brings the run back;
    a rename shows in the picker at once, and Load loads the run the picker names."""
    from sae.core.config import TrainConfig
    from sae.core.model import SparseAutoencoder
    from sae.runs.store import RunStore

    data = tmp_path / "lab"
    with RunStore(data) as store:
        alice = store.signer.issue("alice")  # the browser's identity: the runs are hers to delete
        ids = [store.add(f"run {k}", "digits", SparseAutoencoder(64, 9), TrainConfig(), owner=alice)
               for k in range(4)]
    doomed = ids[1]

    def stored() -> int:
        with RunStore(data) as s:
            return len(s)

    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    keep_identity(context, alice)
    pg = context.new_page()
    pg.errors = []
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    body = pg.locator("[data-testid='stPopoverBody']")
    confirm = pg.get_by_role("button", name="Delete permanently")
    try:
        with lab_server(data) as base:
            pg.goto(base + f"/runs?run={doomed}")
            pg.wait_for_function("() => document.body.innerText.includes('4 of 4 runs shown')", timeout=60_000)
            pg.locator("[data-testid='stPopover'] button").filter(has_text="Delete").click()
            confirm.wait_for(state="visible", timeout=15_000)
            assert "run 1" in body.inner_text()
            confirm.click()
            deadline = time.monotonic() + 30
            while stored() == 4:
                assert time.monotonic() < deadline, "the click deleted nothing"
                time.sleep(0.1)
            pg.wait_for_function("() => document.body.innerText.includes('3 of 3 runs shown')", timeout=30_000)
            pg.wait_for_timeout(1000)  # let any late rerun land
            assert not confirm.is_visible() and not body.is_visible(), "the confirmation stays open after use"
            assert stored() == 3, "one click deletes exactly one run"
            assert pg.get_by_text("Deleted run 1").is_visible(), "no Undo offered"
            pg.wait_for_function("d => !location.search.includes(d)", arg=doomed, timeout=15_000)
            on_view = re.search(r"run=([0-9a-f]{32})", pg.url).group(1)
            assert on_view != doomed

            pg.locator("[data-testid='stPopover'] button").filter(has_text="Delete").click()  # a fresh open
            confirm.wait_for(state="visible", timeout=15_000)
            text = body.inner_text()
            assert "run 1" not in text and f"run {ids.index(on_view)}" in text, text
            for _ in range(3):  # (under load a rerun can land between the key and the popover: press it again)
                pg.keyboard.press("Escape")
                try:
                    body.wait_for(state="hidden", timeout=10_000)
                    break
                except playwright.Error:
                    continue
            body.wait_for(state="hidden", timeout=5_000)
            assert stored() == 3

            pg.get_by_role("button", name="Undo").click()
            pg.wait_for_function("() => document.body.innerText.includes('4 of 4 runs shown')", timeout=30_000)
            pg.wait_for_function("d => location.search.includes(d)", arg=doomed, timeout=15_000)
            assert stored() == 4

            name = pg.locator(f".st-key-runs_name_{doomed} input")
            name.fill("renamed in the browser")
            pg.get_by_role("button", name="Rename").click()
            shown = """() => [...document.querySelectorAll("[class*='st-key-runs_open_']")].map(e => e.innerText + ' '
                + [...e.querySelectorAll('input')].map(i => i.value + ' ' + (i.getAttribute('aria-label') || ''))
                .join(' ')).join(' | ')"""  # the picker's text as shown (baseweb keeps the value in its input)
            try:  # one picker (the one before the rename has left the page), naming the new name
                pg.wait_for_function(f"() => ({shown})().includes('renamed in the browser ·') "
                                     f"&& !({shown})().includes(' | ')", timeout=30_000)
            except playwright.Error:
                raise AssertionError(f"the picker shows {pg.evaluate(shown)!r}") from None
            assert "run 1 ·" not in pg.evaluate(shown), "the picker keeps the old label"
            pg.get_by_role("button", name="Load into the live view").click()
            pg.wait_for_function("() => document.title.startsWith('Train')", timeout=30_000)
            pg.wait_for_function("() => document.body.innerText.includes('loaded run “renamed in the browser”')",
                                 timeout=30_000)
            no_exception(pg)
    finally:
        context.close()


def test_a_browser_keeps_its_signed_identity_and_a_forged_one_is_replaced(tmp_path, browser):
    """The identity token in localStorage: a browser the store gave one is that user across reloads (offered
    rename and delete of its own run, not of another's); a token the store did not sign is refused with a notice
    and replaced by a fresh identity, which the browser keeps and which survives a reload."""
    from sae.core.config import TrainConfig
    from sae.core.model import SparseAutoencoder
    from sae.runs.owners import Signer
    from sae.runs.store import RunStore

    data = tmp_path / "lab"
    with RunStore(data) as store:
        alice, bob = store.signer.issue("alice"), store.signer.issue("bob")
        mine = store.add("alice's run", "digits", SparseAutoencoder(64, 9), TrainConfig(), owner=alice)
        theirs = store.add("bob's run", "digits", SparseAutoencoder(64, 9), TrainConfig(), owner=bob)
    forged = Signer(b"another store's key, not this one").issue("alice")
    held = "() => localStorage.getItem('sae-lab-identity')"
    rename = "Rename"
    with lab_server(data) as base:
        with browser_holding(browser, alice) as pg:
            pg.goto(base + f"/runs?run={mine}")
            pg.get_by_role("button", name=rename).wait_for(timeout=60_000)
            pg.reload()
            pg.get_by_role("button", name=rename).wait_for(timeout=60_000)
            assert pg.evaluate(held) == alice, "the browser keeps the identity the store issued"
            pg.goto(base + f"/runs?run={theirs}")
            pg.wait_for_function("() => document.body.innerText.includes('belongs to someone else')", timeout=60_000)
            assert pg.get_by_role("button", name=rename).count() == 0, "no rename for bob's run"
            no_exception(pg)

        with browser_holding(browser, forged) as pg:
            pg.goto(base + f"/runs?run={mine}")
            pg.wait_for_function("() => document.body.innerText.includes('saved identity was refused')",
                                 timeout=60_000)
            pg.wait_for_function(f"() => ({held})() !== {json.dumps(forged)}", timeout=30_000)
            fresh = pg.evaluate(held)
            with RunStore(data) as store:
                assert store.identity(fresh).user.startswith("browser-"), "a fresh identity, signed by the store"
            pg.wait_for_function("() => document.body.innerText.includes('belongs to someone else')", timeout=30_000)
            assert pg.get_by_role("button", name=rename).count() == 0, "the forged identity was not adopted"
            pg.reload()
            pg.wait_for_function("() => document.body.innerText.includes('belongs to someone else')", timeout=60_000)
            assert "saved identity was refused" not in pg.inner_text("body"), "the fresh identity is accepted"
            assert pg.evaluate(held) == fresh, "and kept across the reload"
            no_exception(pg)


# ----------------------------------------------------------------------------- reload, links

def run_link(pg, timeout: float = 30_000) -> str:
    """The sidebar's "Link to this run" (Share and export), as shown."""
    section = pg.locator("[data-testid='stSidebar'] [data-testid='stExpander']").filter(has_text="Share and export")
    code = section.locator("[data-testid='stCode']").filter(has_text="run=")
    if not code.first.is_visible():
        section.locator("summary").click()
    code.first.wait_for(timeout=timeout)
    return code.first.inner_text().strip()


def test_a_reload_mid_run_keeps_the_run_training(server, page):
    """F5 while training: the page comes back with the same run (same record), still training, further on."""
    pg = page
    open_page(pg, server + "/?data=digits&hidden=16&epochs=3000")
    pg.get_by_role("button", name="Train", exact=True).click()
    pg.wait_for_function("() => document.body.innerText.includes('running')", timeout=15_000)
    try:
        link = run_link(pg, timeout=5_000)
    except playwright.TimeoutError:
        link = None  # checked after the reload
    deadline = time.monotonic() + 20
    while step_of(pg) == 0:
        assert time.monotonic() < deadline, "the run never took a step"
        time.sleep(0.2)
    before = step_of(pg)

    pg.reload()
    pg.wait_for_selector("[data-testid='stApp']")
    pg.wait_for_function("""() => [...document.querySelectorAll("[data-testid='stSidebar'] [data-testid='stCaptionContainer']")]
        .some(e => e.innerText.includes('running') && e.innerText.includes('step'))""", timeout=30_000)
    assert "running" in status(pg) and step_of(pg) >= before, status(pg)
    assert "hidden=16" in pg.url and "epochs=3000" in pg.url
    assert link is not None and run_link(pg) == link, "the same recorded run, not a new one"
    after = step_of(pg)
    deadline = time.monotonic() + 20
    while step_of(pg) <= after:  # and it keeps training
        assert time.monotonic() < deadline, "the run does not train after the reload"
        time.sleep(0.2)
    no_exception(pg)
    pg.get_by_role("button", name="Stop").click()
    pg.wait_for_function("() => document.body.innerText.includes('stopped by the user')", timeout=15_000)


def test_a_run_link_opens_the_trained_run_in_a_fresh_browser(server, browser):
    """"Link to this run" in one browser; the link opened in another (fresh context: no shared storage) shows that
    run's model at its step, paused, ready to continue; a deleted run's link says so."""
    first = browser.new_context(viewport={"width": 1400, "height": 1100})
    second = browser.new_context(viewport={"width": 1400, "height": 1100})
    try:
        pg = first.new_page()
        train_until_finished(pg, server + "/?data=digits&hidden=16&epochs=20&beta=5")
        pg.wait_for_timeout(1500)  # the final checkpoint is written after the last step
        link = run_link(pg)
        assert "run=" in link and link.startswith(server)

        other = second.new_page()
        other.errors = []
        other.on("pageerror", lambda e: other.errors.append(str(e)))
        open_page(other, link)
        other.wait_for_function("() => document.body.innerText.includes('Opened the linked run')", timeout=30_000)
        assert "paused" in status(other) and step_of(other) == 280, status(other)  # 20 epochs x 14 batches
        assert hidden_units_shown(other, "16") == "16"
        assert "run=" not in other.url and "beta=5" in other.url  # the link was used once; the settings stay
        no_exception(other)

        other.goto(server + "/?run=" + "0" * 32)
        other.wait_for_selector("[data-testid='stApp']")
        other.wait_for_function("() => document.body.innerText.includes('not in this server')", timeout=30_000)
        no_exception(other)
    finally:
        first.close()
        second.close()


# ----------------------------------------------------------------------------- a class at once

def test_two_sessions_train_at_once_none_queued(server, browser):
    """Two browsers press Train: both runs train at the same time (each in a worker process of its own), with
    no "queued" on the way; both step counters advance together."""
    contexts = [browser.new_context(viewport={"width": 1400, "height": 1000}) for _ in range(2)]
    try:
        pages = []
        for k, context in enumerate(contexts):
            pg = context.new_page()
            pg.errors = []
            pg.on("pageerror", lambda e, pg=pg: pg.errors.append(str(e)))
            open_page(pg, server + f"/?data=digits&hidden={20 + k}&epochs=100000")
            pages.append(pg)
        for pg in pages:
            pg.get_by_role("button", name="Train", exact=True).click()
        seen = []
        for pg in pages:
            pg.wait_for_function("() => document.body.innerText.includes('running')", timeout=15_000)
        first = [step_of(pg) for pg in pages]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            seen.extend(status(pg) for pg in pages)
            if all(step_of(pg) > s for pg, s in zip(pages, first)):
                break
            time.sleep(0.3)
        assert all(step_of(pg) > s for pg, s in zip(pages, first)), [status(pg) for pg in pages]
        assert all("running" in status(pg) for pg in pages)
        assert not any("queued" in line for line in seen)
        for pg in pages:
            pg.get_by_role("button", name="Stop").click()
            pg.wait_for_function("() => document.body.innerText.includes('stopped by the user')", timeout=15_000)
            no_exception(pg)
    finally:
        for context in contexts:
            context.close()


def test_two_dashboard_processes_share_one_run_store(tmp_path, browser):
    """Two `streamlit run` processes on one run store (as behind a proxy with sticky sessions): a run trained
    on each is listed by both."""
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    pg = context.new_page()
    pg.errors = []
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    try:
        with lab_server(tmp_path / "lab") as one, lab_server(tmp_path / "lab") as two:
            train_until_finished(pg, one + "/?data=digits&hidden=16&epochs=10")
            train_until_finished(pg, two + "/?data=digits&hidden=17&epochs=10")
            pg.wait_for_timeout(1500)  # the final metrics are recorded after the last step
            for base in (one, two):
                pg.goto(base + "/runs?data=digits&hidden=16&epochs=10")
                pg.wait_for_function("() => document.body.innerText.includes('2 of 2 runs shown')", timeout=60_000)
                no_exception(pg)
    finally:
        context.close()
