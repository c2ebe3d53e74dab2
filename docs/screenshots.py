"""Take a screenshot of every dashboard page while a model trains: docs/screenshots/*.png.

    python docs/screenshots.py [--seconds 8] [--out docs/screenshots]

Starts `streamlit run dashboard.py` on a free loopback port, drives it with headless Chromium
(Debian's /usr/bin/chromium through the playwright package), presses Train on the defaults, lets
it train for a few seconds, then opens every page through the sidebar links (the same session,
so the run keeps going) and photographs it. A second short run on the labelled `digits` data
set shows the Codes page with colours and linear probes. Then every experiment page is opened with its
defaults, its experiment run (Run, or by itself on the common-mistakes page) and photographed with its
results (`--only experiments` takes just these). Last, three short runs and a 3 x 3 sweep fill the Runs
and Sweep pages (`--only runs`). Then the Lessons page on UFLDL's exercise (`--only lessons`), and a class: its
board with two students' submissions and a student watching the broadcast (`--only classroom`). The server records
its runs in a temporary store, and is always killed at the end. A run with a twin (β 3 → 10, added before it
starts) shows the Train, KL penalty and Filters pages with both (`--only twin`; taken after the live pages).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.streamlit_server import browser, serve  # noqa: E402

WIDTH = 1440  # every screenshot's window width (px)
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
  const charts = [...document.querySelectorAll("[data-testid='stPlotlyChart'], .sae-live-chart")]
      .filter(e => e.getBoundingClientRect().height > 0);
  const drawn = charts.every(e => e.querySelector('.main-svg'));
  const faded = [...document.querySelectorAll("[data-testid='stElementContainer']")]
      .some(e => getComputedStyle(e).display !== 'none' && parseFloat(getComputedStyle(e).opacity) < 0.99);
  return charts.length > 0 && drawn && !faded;
}"""


@contextmanager
def streamlit_server(timeout: float = 60.0):
    """`streamlit run dashboard.py` on a free loopback port (bench/streamlit_server.py); yields the base URL;
    always killed. Its run store (SAE_LAB_DATA) is a temporary directory: the screenshots' runs never mix
    with the user's."""
    with tempfile.TemporaryDirectory(prefix="sae-screenshots-") as store, \
            serve(data_dir=store, timeout=timeout) as server:
        yield server.url


def settle(page, timeout: float = 5.0) -> None:
    """Wait until every visible chart is drawn and nothing is faded mid-redraw."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if page.evaluate(STABLE_JS):
            return
        time.sleep(0.05)


def snap(page, path: Path, pause: float, height: int | None = None) -> Path:
    """Photograph the page into ``path``: first the window ``height`` (if given), ``pause`` seconds for the page
    to poll a few snapshots, every chart drawn (``settle``)."""
    if height is not None:
        page.set_viewport_size({"width": WIDTH, "height": height})
    time.sleep(pause)
    settle(page)
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path))
    return path


def stop(page) -> None:
    """Press Stop if the run is still going (a run that has finished has its Stop button disabled)."""
    button = page.get_by_role("button", name="Stop", exact=True)
    if button.is_enabled():
        button.click()


def visit(page, pages: list[tuple[str, str, int]], out: Path) -> list[Path]:
    """Open each of ``pages`` (file, link label, window height) through the sidebar's links and photograph it."""
    saved = []
    for name, label, height in pages:
        page.set_viewport_size({"width": WIDTH, "height": height})
        page.get_by_role("link", name=label, exact=True).click()
        page.wait_for_function("t => document.title.startsWith(t)", arg=label, timeout=30_000)
        saved.append(snap(page, out / f"{name}.png", 2.0))
    return saved


def shoot(base: str, out: Path, seconds: float) -> list[Path]:
    saved = []
    with browser() as b:
        page = b.new_page(viewport={"width": WIDTH, "height": 1100})
        page.goto(base + "/")
        page.wait_for_selector("[data-testid='stPlotlyChart'], .sae-live-chart", timeout=90_000)
        page.get_by_role("button", name="Train").click()
        time.sleep(seconds)
        saved += visit(page, PAGES, out)
        stop(page)

        # a labelled data set for the Codes page: colours, hover pictures and the linear probes
        page.set_viewport_size({"width": WIDTH, "height": 1100})
        page.goto(base + "/codes?data=digits&hidden=49&rho=0.05")
        page.wait_for_selector("[data-testid='stPlotlyChart'], .sae-live-chart", timeout=90_000)
        page.get_by_role("button", name="Train").click()
        saved.append(snap(page, out / "7_codes_digits.png", max(4.0, seconds / 2)))
        stop(page)
    return saved


TWIN_PAGES = [("15_twin_train", "Train", 1250), ("16_twin_kl_penalty", "KL penalty", 1150),
              ("17_twin_filters", "Filters", 1250)]  # (file, link label, window height)


def add_twin(page, setting: str = "β", steps: int = 2) -> None:
    """Open the sidebar's "Add a twin", move the twin's ``setting`` ``steps`` options to the right, press Add."""
    page.get_by_text("Add a twin", exact=True).first.click()
    slider = page.locator("[data-testid='stSlider']", has_text=f"Twin's {setting}").get_by_role("slider")
    slider.focus()
    for _ in range(steps):
        slider.press("ArrowRight")
    page.get_by_role("button", name="Add a twin").click()
    page.wait_for_function("() => document.body.innerText.includes('Twin ·')", timeout=60_000)


def shoot_twin(base: str, out: Path, seconds: float) -> list[Path]:
    """A twin with β 3 → 10 beside the default run (added before it starts, so both train from step 0): the Train,
    KL penalty and Filters pages showing both."""
    saved = []
    with browser() as b:
        page = b.new_page(viewport={"width": WIDTH, "height": 1100})
        page.goto(base + "/")
        page.wait_for_selector("[data-testid='stPlotlyChart'], .sae-live-chart", timeout=90_000)
        add_twin(page)
        page.get_by_role("button", name="Resume").click()  # adding the twin held the new run paused at step 0
        time.sleep(seconds)
        saved += visit(page, TWIN_PAGES, out)
        stop(page)
    return saved


def shoot_experiments(base: str, out: Path, timeout: float = 600.0) -> list[Path]:
    """Each experiment page with its defaults: run it, wait for its results, photograph it."""
    saved = []
    with browser() as b:
        page = b.new_page(viewport={"width": WIDTH, "height": 1100})
        for name, path, title, height, press_run in EXPERIMENTS:
            page.set_viewport_size({"width": WIDTH, "height": height})
            page.goto(f"{base}/{path}")
            page.wait_for_function("t => document.title.startsWith(t)", arg=title, timeout=60_000)
            page.get_by_role("button", name="Run", exact=True).wait_for(timeout=60_000)
            if press_run:
                page.get_by_role("button", name="Run", exact=True).click()
            page.wait_for_function("() => document.body.innerText.includes('Finished in')",
                                   timeout=timeout * 1000)
            saved.append(snap(page, out / f"{name}.png", 1.5))
    return saved


def shoot_runs(base: str, out: Path, timeout: float = 600.0) -> list[Path]:
    """The Runs and Sweep pages with real content: three short runs on digits (β = 0.3, 3, 10), a 3 x 3
    sweep over ρ x β, then its best cell opened and compared with the two latest runs."""
    saved = []
    query = "data=digits&hidden=25&rho=0.05&epochs=60"
    with browser() as b:
        page = b.new_page(viewport={"width": WIDTH, "height": 1100})
        for beta in ("0.3", "3", "10"):
            page.goto(f"{base}/?{query}&beta={beta}")
            page.wait_for_selector("[data-testid='stPlotlyChart'], .sae-live-chart", timeout=90_000)
            page.get_by_role("button", name="Train", exact=True).click()
            page.wait_for_function("() => document.body.innerText.includes('finished:')", timeout=timeout * 1000)
        time.sleep(2.0)  # the final metrics are recorded just after the last step

        page.set_viewport_size({"width": WIDTH, "height": 1300})
        page.goto(f"{base}/sweep?{query}")
        page.get_by_role("button", name="Start sweep").click()
        page.wait_for_function("() => document.body.innerText.includes('9 of 9 cells done')", timeout=timeout * 1000)
        page.wait_for_function("() => !document.body.innerText.includes('running')", timeout=60_000)
        saved.append(snap(page, out / "13_sweep.png", 2.0))

        # its best cell's run, then that run compared with the two latest: (button, ready when, height, file)
        for button, ready, height, name in (
                ("Open its run", "() => document.title.startsWith('Runs')", 1500, "14_run"),
                ("Add to comparison", "() => document.body.innerText.includes('What differs')", 1750, "12_runs")):
            page.get_by_role("button", name=button).click()
            page.wait_for_function(ready, timeout=60_000)
            saved.append(snap(page, out / f"{name}.png", 2.0, height))
    return saved


def shoot_lessons(base: str, out: Path, timeout: float = 300.0) -> list[Path]:
    """The Lessons page: UFLDL's exercise set up by its own button and trained (400 L-BFGS iterations), step 1
    checked, then step 2 ("read J's three terms") checked and photographed with its formula; then the β lesson's
    first step checked on the same run: a failure, with its hint."""
    saved = []
    with browser() as b:
        page = b.new_page(viewport={"width": WIDTH, "height": 1250})
        page.goto(f"{base}/lessons")
        page.wait_for_function("() => document.title.startsWith('Lessons')", timeout=60_000)
        page.get_by_role("button", name="Set up this step").wait_for(timeout=60_000)
        page.get_by_role("button", name="Set up this step").click()
        page.wait_for_function("() => document.body.innerText.includes('Done: set data patches')", timeout=30_000)
        page.get_by_role("button", name="Train", exact=True).click()
        page.wait_for_function("() => document.body.innerText.includes('finished:')", timeout=timeout * 1000)
        page.get_by_role("button", name="Check my run").click()
        page.get_by_role("button", name="Next step").click()
        page.wait_for_function("() => document.body.innerText.includes('Step 2 of 4')", timeout=30_000)
        page.get_by_role("button", name="Check my run").click()
        page.wait_for_function("() => document.body.innerText.includes('At step 0 J was')", timeout=30_000)
        page.mouse.move(0, 0)
        saved.append(snap(page, out / "15_lessons.png", 1.0, 1420))

        page.locator("[data-testid='stMain'] [data-testid='stSelectbox']").first.click()
        page.get_by_role("option", name="What β does").click()
        page.wait_for_function("() => document.body.innerText.includes('Find a β at which units start to die')",
                               timeout=30_000)
        page.get_by_role("button", name="Check my run").click()
        page.wait_for_function("() => document.body.innerText.includes('Hint:')", timeout=30_000)
        page.mouse.move(0, 0)
        saved.append(snap(page, out / "16_lessons_hint.png", 1.0, 1150))
    return saved


def shoot_tuning(base: str, out: Path, timeout: float = 300.0) -> list[Path]:
    """The doctor and the timeline: SGD at lr 0.3 on the digits, β raised 3 → 20 after the first step; once units
    die the Train page's Doctor panel is photographed, then its Resample fix applied, a few seconds trained, and
    the Timeline panel photographed with its edits and the replay link."""
    saved = []
    with browser() as b:
        page = b.new_page(viewport={"width": WIDTH, "height": 1400})
        page.goto(f"{base}/?data=digits&hidden=25&opt=sgd&lr=0.3&rho=0.05&lambda=1e-4&batch=64&epochs=20000")
        page.get_by_role("button", name="Step", exact=True).click()
        page.wait_for_function("() => document.body.innerText.includes('paused')", timeout=60_000)
        for target in ("beta=5", "beta=10", "beta=20"):
            knob = page.locator("[data-testid='stSidebar'] [data-testid='stSlider']").filter(
                has_text="β: sparsity").get_by_role("slider").first
            knob.focus()
            knob.press("ArrowRight")
            page.wait_for_function("p => location.search.includes(p)", arg=target, timeout=15_000)
        page.get_by_role("button", name="Resume").click()
        page.wait_for_function("() => document.body.innerText.includes('have been dead')", timeout=timeout * 1000)
        doctor = page.locator("[data-testid='stExpander']").filter(has_text="Doctor").first
        doctor.scroll_into_view_if_needed()
        time.sleep(1.0)
        saved.append(out / "21_doctor.png")
        doctor.screenshot(path=str(saved[-1]))
        page.get_by_role("button", name="Resample the dead units").click()
        time.sleep(4.0)
        page.get_by_role("button", name="Pause").click()
        page.wait_for_function("() => document.body.innerText.includes('paused')", timeout=60_000)
        time.sleep(2.0)  # the whole-app rerun after the pause
        panel = page.locator("[data-testid='stExpander']").filter(has_text="Timeline").first
        panel.locator("summary").click()
        panel.locator("[data-testid='stCode']").first.wait_for(state="visible", timeout=30_000)
        time.sleep(1.0)
        saved.append(out / "22_timeline_marks.png")
        page.locator("[data-testid='stMain']").screenshot(path=str(saved[-1]))
        saved.append(out / "23_timeline.png")
        panel.screenshot(path=str(saved[-1]))
        stop(page)
    return saved


def shoot_classroom(base: str, out: Path, timeout: float = 300.0) -> list[Path]:
    """The Classroom page: a teacher starts a class; two students (browser contexts of their own) join by its
    link, train short runs on the digits with different β and submit them; the teacher's board ranks them. Then
    a student watching the teacher's broadcast on the Filters page."""
    saved = []
    query = "data=digits&hidden=25&rho=0.05&epochs=40"
    with browser() as b:
        teacher = b.new_context(viewport={"width": WIDTH, "height": 1500}).new_page()
        teacher.goto(f"{base}/classroom?{query}")
        teacher.get_by_label("Class name").fill("CS294A · week 3")
        teacher.get_by_role("button", name="Start a class").click()
        code = teacher.locator("[data-testid='stCode']").filter(has_text="class=").first
        code.wait_for(timeout=60_000)
        link = code.inner_text().strip()
        students = []
        for name, beta in (("Ada", "3"), ("Grace", "0.3")):
            page = b.new_context(viewport={"width": WIDTH, "height": 1100}).new_page()
            page.goto(f"{link}&{query}&beta={beta}")
            page.get_by_label("Your name (shown on the class board)").fill(name)
            page.get_by_role("button", name="Join", exact=True).click()
            page.get_by_role("button", name="Submit my run").wait_for(timeout=60_000)
            page.locator("[data-testid='stSidebar'] a").filter(has_text="Train").first.click()
            page.get_by_role("button", name="Train", exact=True).click()
            page.wait_for_function("() => document.body.innerText.includes('finished:')", timeout=timeout * 1000)
            page.locator("[data-testid='stSidebar'] a").filter(has_text="Classroom").first.click()
            page.get_by_role("button", name="Submit my run").click()
            page.wait_for_function("() => document.body.innerText.includes('Submitted at step')", timeout=120_000)
            students.append(page)
        teacher.locator("[data-testid='stSidebar'] a").filter(has_text="Train").first.click()
        teacher.get_by_role("button", name="Train", exact=True).click()
        teacher.locator("[data-testid='stSidebar'] a").filter(has_text="Classroom").first.click()
        teacher.get_by_role("button", name="Broadcast my run").click()
        teacher.wait_for_function("() => document.body.innerText.includes('#2 ')", timeout=60_000)
        saved.append(snap(teacher, out / "19_class_board.png", 2.0))
        watcher = students[0]
        watcher.reload()
        watcher.get_by_role("button", name="Watch the teacher's run").click()
        watcher.locator("[data-testid='stSidebar'] a").filter(has_text="Filters").first.click()
        watcher.wait_for_function("() => document.body.innerText.includes('read-only')", timeout=60_000)
        saved.append(snap(watcher, out / "20_class_watching.png", 3.0))
        stop(teacher)
    return saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0, help="training time before the first screenshot")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--only", choices=("all", "live", "twin", "tuning", "experiments", "runs", "lessons",
                                             "classroom"),
                        default="all",
                        help="live: the pages of the training run; twin: a run with its twin (β 10); experiments: "
                             "the experiment pages; runs: the Runs and Sweep pages; lessons: the Lessons page; "
                             "classroom: a class board with two submissions and a student watching the broadcast; tuning: "
                             "the doctor and the timeline")
    args = parser.parse_args()
    with streamlit_server() as base:
        saved = shoot(base, args.out, args.seconds) if args.only in ("all", "live") else []
        saved += shoot_twin(base, args.out, args.seconds) if args.only in ("all", "twin") else []
        saved += shoot_tuning(base, args.out) if args.only in ("all", "tuning") else []
        saved += shoot_experiments(base, args.out) if args.only in ("all", "experiments") else []
        saved += shoot_runs(base, args.out) if args.only in ("all", "runs") else []
        saved += shoot_lessons(base, args.out) if args.only in ("all", "lessons") else []
        saved += shoot_classroom(base, args.out) if args.only in ("all", "classroom") else []
        for path in saved:
            print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


if __name__ == "__main__":
    main()
