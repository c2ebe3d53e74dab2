"""Tuning by hand in a real browser (headless Chromium, see test_browser.py): the doctor, the twin, the timeline.

One run, as a person would drive it: raise β until units die; the doctor says so; its Resample fix brings the
dead-unit count down; a twin with β changed shows beside the run on the Filters and KL pages; a rewind goes back to
before the β change; after one more change the replay link, opened in a fresh browser context, trains the same
curve.
"""

from __future__ import annotations

import re
import time
from urllib.parse import unquote

import numpy as np
import pytest

playwright = pytest.importorskip("playwright.sync_api")

from test_browser import browser, browser_holding, lab_server, nav, no_exception, wait_text  # noqa: E402,F401

# SGD at lr 0.3 on the digits, beta raised from 3 to 20 after the first step: 22 of 25 units die within a few
# hundred steps and stay dead (measured with these settings in a Trainer)
START = "/?data=digits&hidden=25&opt=sgd&lr=0.3&rho=0.05&lambda=1e-4&batch=64&epochs=20000"



def body(pg) -> str:
    return pg.inner_text("body")



def status_line(pg) -> str:
    return pg.locator("[data-testid='stSidebar'] [data-testid='stCaptionContainer']").filter(
        has_text="step").first.inner_text()


def step_of(pg) -> int:
    return int(re.search(r"step ([\d,]+)", status_line(pg)).group(1).replace(",", ""))


def wait_status(pg, word: str, timeout: float = 10.0) -> bool:
    """Whether the sidebar's status line says ``word`` (running, paused) within ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while word not in status_line(pg):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def dead_units(pg) -> int:
    metric = pg.locator("[data-testid='stMetric']").filter(has_text="Dead units")
    return int(metric.locator("[data-testid='stMetricValue']").inner_text().strip())



def slider_right(pg, label: str, *params: str) -> None:
    """Move a sidebar slider one notch right per parameter, waiting each time until the URL shows it (a press
    during the rerun of the previous one would be lost)."""
    for param in params:
        knob = pg.locator("[data-testid='stSidebar'] [data-testid='stSlider']").filter(has_text=label) \
            .get_by_role("slider").first
        knob.focus()
        knob.press("ArrowRight")
        pg.wait_for_function("p => location.search.includes(p)", arg=param, timeout=15_000)


def total_curve(pg) -> tuple[list[float], list[float]]:
    """(steps, J) of the loss chart's "total J" curve, read from the live Plotly graph."""
    return tuple(pg.evaluate("""() => {
        for (const g of document.querySelectorAll('.sae-live-chart, .js-plotly-plot')) {
            const t = (g._fullData || []).find(t => (t.name || '').startsWith('total J'));
            if (t) return [Array.from(t.x, Number), Array.from(t.y, Number)];
        }
        return [[], []]; }"""))


def final_curve(pg, until: int, timeout: float = 20.0) -> tuple[list[float], list[float]]:
    """The loss chart's total-J curve once it shows the run's last recorded rows (the history keeps every 4th row
    after it was thinned, so its last row lies within 8 steps of ``until``; the chart redraws a moment after the
    status line says paused)."""
    deadline = time.monotonic() + timeout
    while True:
        steps, totals = total_curve(pg)
        if steps and until - 8 <= steps[-1] < until:
            return steps, totals
        assert time.monotonic() < deadline, f"the loss chart ends at step {steps[-1] if steps else None}, " \
                                            f"not near {until}"
        time.sleep(0.3)


def resume(pg) -> None:
    """Resume, clicked again if a rerun in flight swallowed the first click."""
    for _ in range(3):
        resume_button = pg.get_by_role("button", name="Resume")
        if resume_button.count():
            resume_button.click()
        try:  # running: the button says Pause
            pg.get_by_role("button", name="Pause").wait_for(timeout=10_000)
            return
        except playwright.Error:
            continue
    raise AssertionError(f"Resume did not start the run; the page shows {body(pg)[:1500]!r}")


def pause(pg) -> None:
    pg.get_by_role("button", name="Pause").click()
    assert wait_status(pg, "paused", 30), status_line(pg)


def test_doctor_twin_rewind_and_replay_in_a_browser(tmp_path, browser):
    from sae.runs.store import RunStore

    data = tmp_path / "lab"
    with RunStore(data) as store:
        token = store.signer.issue("tuner")
    with lab_server(data) as base, browser_holding(browser, token) as pg:
        pg.goto(base + START)
        pg.get_by_role("button", name="Step", exact=True).click()  # the run's first step, then paused
        assert wait_status(pg, "paused", 60), status_line(pg)

        # raise beta until units die: 3 -> 5 -> 10 -> 20, live, then go on; the doctor says so
        slider_right(pg, "β: sparsity", "beta=5", "beta=10", "beta=20")
        resume(pg)
        wait_text(pg, "have been dead", timeout=120_000)
        before = dead_units(pg)
        assert before >= 3, f"only {before} dead units"
        no_exception(pg)

        # its fix: resample; the dead-unit count falls
        pg.get_by_role("button", name=re.compile(r"Resample the dead unit")).click()
        deadline = time.monotonic() + 60
        while dead_units(pg) >= before:
            assert time.monotonic() < deadline, f"the dead-unit count stayed at {dead_units(pg)} after resampling"
            time.sleep(0.3)

        # a twin with beta changed to 10, from now; both show on Filters and KL penalty
        pg.locator("[data-testid='stSidebar'] [data-testid='stExpander']").filter(has_text="Add a twin") \
            .locator("summary").click()
        twin_beta = pg.locator("[data-testid='stSidebar'] [data-testid='stSlider']").filter(has_text="Twin's β") \
            .get_by_role("slider")
        twin_beta.focus()
        twin_beta.press("ArrowLeft")  # 20 -> 10
        pg.locator("[data-testid='stSidebar']").get_by_text("From now").click()
        pg.get_by_role("button", name="Add a twin").click()
        wait_text(pg, "Twin · β 10")
        nav(pg, "Filters")
        wait_text(pg, "twin (β 10)")
        assert "run (β 20)" in body(pg)
        nav(pg, "KL penalty")
        wait_text(pg, "twin (β 10)")
        no_exception(pg)

        # rewind to before the beta change
        nav(pg, "Train")
        pause(pg)
        pg.locator("[data-testid='stExpander']").filter(has_text="Timeline").locator("summary").first.click()
        row = pg.locator("[data-testid='stHorizontalBlock']").filter(has_text=re.compile(r"β [\d.]+ → 20")).last
        changed_at = int(re.search(r"step ([\d,]+)", row.inner_text()).group(1).replace(",", ""))
        row.get_by_role("button", name="Rewind").click()
        deadline = time.monotonic() + 30
        while step_of(pg) != changed_at:
            assert time.monotonic() < deadline, f"the run is at step {step_of(pg)}, not back at {changed_at}: " \
                                                f"{status_line(pg)!r} {body(pg)[-3000:]!r}"
            time.sleep(0.2)
        pg.wait_for_function("() => !location.search.includes('beta=20')", timeout=15_000)  # the panel follows
        assert "Twin · β" not in body(pg)

        # one more change (beta 5) and a few hundred steps, then the replay link in a fresh context
        slider_right(pg, "β: sparsity", "beta=5")
        resume(pg)
        target = changed_at + 150
        deadline = time.monotonic() + 120
        while step_of(pg) < target:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        pause(pg)
        code = pg.locator("[data-testid='stCode']").filter(has_text="edits=").first
        if not code.is_visible():
            pg.locator("[data-testid='stExpander']").filter(has_text="Timeline").locator("summary").first.click()
        code.wait_for(timeout=30_000)
        paused_at = step_of(pg)
        deadline = time.monotonic() + 15
        while f"until={paused_at}" not in code.inner_text():  # the link follows the run
            assert time.monotonic() < deadline, f"the link says {code.inner_text()!r} at step {paused_at}"
            time.sleep(0.2)
        link = code.inner_text().strip()
        assert f"{changed_at}:beta=5.0" in unquote(link), link
        until = int(re.search(r"until=(\d+)", link).group(1))
        steps, totals = final_curve(pg, until)
        no_exception(pg)

        with browser_holding(browser, token) as fresh:
            fresh.goto(link)
            wait_text(fresh, "This link replays a run")
            fresh.get_by_role("button", name="Replay").click()
            deadline = time.monotonic() + 180
            while not (step_of(fresh) == until and "paused" in status_line(fresh)):
                assert time.monotonic() < deadline, f"the replay is at step {step_of(fresh)} of {until}"
                time.sleep(0.3)
            replay_steps, replay_totals = final_curve(fresh, until)
            # (the run's history kept every 4th row after it had been thinned before the rewind, and a chart shows
            # at most 1,000 points: compare the steps both curves show, which span the whole run; a faster machine
            # thins more often before the rewind, so fewer steps are shared)
            common, mine, theirs = np.intersect1d(steps, replay_steps, return_indices=True)
            assert len(common) >= 30 and common[-1] >= until - 16, (len(common), common[-3:], until)
            np.testing.assert_allclose(np.asarray(replay_totals)[theirs], np.asarray(totals)[mine], rtol=1e-4)
            no_exception(fresh)
