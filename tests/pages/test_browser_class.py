"""A class in real browsers: a teacher and two students, each a browser context of its own (its own identity in
localStorage), on one `streamlit run dashboard.py` (headless Chromium, see test_browser.py).

The teacher starts a class and broadcasts a training run; both students join by the link, watch the broadcast
move on another page, go back to their own runs, train and submit them; the board ranks both; one student's
attempt to delete the other's submitted run is refused (no Delete offered, the page says why, the store
unchanged).
"""

from __future__ import annotations

import re
import time

import pytest

playwright = pytest.importorskip("playwright.sync_api")

from test_browser import browser, browser_holding, lab_server, nav, no_exception, wait_text  # noqa: E402,F401

SMALL = "data=digits&hidden=9&opt=sgd&lr=0.1&epochs=2000"



def text(pg) -> str:
    return pg.inner_text("body")



def sidebar_step(pg) -> int:
    caption = pg.locator("[data-testid='stSidebar'] [data-testid='stCaptionContainer']").filter(has_text="step")
    return int(re.search(r"step ([\d,]+)", caption.first.inner_text()).group(1).replace(",", ""))



def train(pg) -> None:
    pg.get_by_role("button", name="Train", exact=True).click()
    wait_text(pg, "running")


def test_a_class_in_three_browsers(tmp_path, browser):
    from sae.runs.store import RunStore

    data = tmp_path / "lab"
    with RunStore(data) as store:
        tokens = {who: store.signer.issue(who) for who in ("teacher", "ann", "bob")}
    with lab_server(data) as base, browser_holding(browser, tokens["teacher"]) as teacher, \
            browser_holding(browser, tokens["ann"]) as ann, browser_holding(browser, tokens["bob"]) as bob:
        # the teacher starts a class and broadcasts a training run
        teacher.goto(base + f"/classroom?{SMALL}")
        teacher.get_by_label("Class name").fill("Week 3")
        teacher.get_by_role("button", name="Start a class").click()
        wait_text(teacher, "Broadcast my run")
        shown = teacher.locator("[data-testid='stCode']").filter(has_text="class=").first
        shown.wait_for(timeout=30_000)
        link = shown.inner_text().strip()
        code = link.rsplit("=", 1)[1]
        nav(teacher, "Train")
        train(teacher)
        nav(teacher, "Classroom")
        teacher.get_by_role("button", name="Broadcast my run").click()
        wait_text(teacher, "Broadcasting your run")
        no_exception(teacher)

        # both students join by the link and watch the broadcast move, on another page
        for pg, name in ((ann, "Ann"), (bob, "Bob")):
            pg.goto(link + f"&{SMALL}")
            box = pg.get_by_label("Class code")
            deadline = time.monotonic() + 15  # (a widget set from the URL may show its default for a frame)
            while box.input_value() != code and time.monotonic() < deadline:
                time.sleep(0.05)
            assert box.input_value() == code, "the join link fills in the code"
            pg.get_by_label("Your name (shown on the class board)").fill(name)
            pg.get_by_role("button", name="Join", exact=True).click()
            wait_text(pg, "The teacher is broadcasting")
            pg.get_by_role("button", name="Watch the teacher's run").click()
            wait_text(pg, "You are watching the teacher's run")
            nav(pg, "Filters")
            wait_text(pg, "read-only")
            assert pg.get_by_role("button", name="Train", exact=True).count() == 0, "no controls on the broadcast"
            first = sidebar_step(pg)
            deadline = time.monotonic() + 60
            while sidebar_step(pg) <= first:
                assert time.monotonic() < deadline, f"{name} never saw the broadcast move past step {first}"
                time.sleep(0.3)
            no_exception(pg)

        # back to their own runs: train, submit
        for pg, steps in ((ann, 1.0), (bob, 4.0)):
            pg.get_by_role("button", name="Back to my run").click()
            nav(pg, "Train")
            pg.wait_for_function("() => !document.body.innerText.includes('read-only')", timeout=30_000)
            train(pg)
            time.sleep(steps)
            nav(pg, "Classroom")
            pg.get_by_role("button", name="Submit my run").click()
            wait_text(pg, "Submitted at step")
            no_exception(pg)

        # the board ranks both, on the teacher's projector by itself
        wait_text(teacher, "#2 ", timeout=60_000)
        board = text(teacher)
        assert "#1 " in board and ("#1 Ann" in board or "#1 Bob" in board) and "#2 " in board
        with RunStore(data) as store:
            rows = store.classes.board(code)
            assert [r.rank for r in rows] == [1, 2] and sorted(r.name for r in rows) == ["Ann", "Bob"]
            anns = next(r.run.id for r in rows if r.name == "Ann")
            before = len(store)

        # bob tries to delete ann's submitted run: refused
        bob.goto(base + f"/runs?run={anns}")
        wait_text(bob, "belongs to someone else")
        assert bob.locator("[data-testid='stPopover'] button").filter(has_text="Delete").count() == 0
        with RunStore(data) as store:
            assert len(store) == before and anns in store
        no_exception(bob)
        no_exception(teacher)
