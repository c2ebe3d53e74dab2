"""sae.training.progress: the Progress callback with its stop switch, and ensure_progress."""

import threading

import pytest

from sae.training.progress import Cancelled, Progress, ensure_progress, notify


def test_progress_keeps_the_latest_report_clipped():
    p = Progress()
    assert p.state() == (0.0, "")
    p(0.25, "a quarter")
    assert p.state() == (0.25, "a quarter")
    p.report(1.7, "over")
    assert p.state() == (1.0, "over")
    p.report(-1.0, "under")
    assert p.state() == (0.0, "under")


def test_a_stopped_progress_raises_cancelled_from_another_thread():
    p = Progress()
    t = threading.Thread(target=p.stop)
    t.start()
    t.join()
    assert p.stopped
    with pytest.raises(Cancelled):
        p(0.5, "half")
    assert p.state() == (0.5, "half")  # the report is kept before the stop is raised
    with pytest.raises(Cancelled):
        p.check()


def test_ensure_progress_and_notify():
    p = Progress()
    assert ensure_progress(p) is p
    fresh = ensure_progress(None)
    assert isinstance(fresh, Progress) and fresh is not p and not fresh.stopped
    seen = []
    notify(lambda f, m: seen.append((f, m)), 0.5, "x")
    notify(None, 0.5, "nobody listens")
    assert seen == [(0.5, "x")]
