"""The live fragment's interval follows the load (sae.app.polling): made with the interval the live sessions ask
for, and made again (one whole-app rerun) when that changes while the run trains."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("streamlit")
import streamlit as st  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

import sae.ui.live  # noqa: E402
from conftest import wait_for  # noqa: E402
from sae.app import polling  # noqa: E402
from sae.training.status import RunStatus  # noqa: E402

HOME = str(Path(__file__).resolve().parents[2] / "dashboard.py")
pytestmark = pytest.mark.usefixtures("restore_process_state", "stop_live_jobs")  # tests/conftest.py


@pytest.fixture
def live_intervals(monkeypatch):
    """The run_every of every live-view fragment made, in order."""
    made: list[float | None] = []
    real = st.fragment

    def spy(func=None, *, run_every=None, **kwargs):
        def decorate(f):
            if f.__name__ == "_live_view":
                made.append(run_every)
            return real(run_every=run_every, **kwargs)(f)
        return decorate(func) if func is not None else decorate

    monkeypatch.setattr(st, "fragment", spy)
    monkeypatch.setattr(polling, "_polls", polling.LivePolls())  # this test's sessions only
    return made


def training_app() -> AppTest:
    at = AppTest.from_file(HOME, default_timeout=60)
    for k, v in {"data": "digits", "hidden": "16", "epochs": "1000"}.items():
        at.query_params[k] = v
    at.run()
    at.button(key="btn_train").click().run()
    job = at.session_state["sae_job"]
    assert wait_for(lambda: job.status == RunStatus.RUNNING and job.latest().step > 0)
    return at


def test_one_session_refreshes_fast_and_a_crowd_slows_it(live_intervals, monkeypatch):
    monkeypatch.setattr(sae.ui.live, "server_cores", lambda: 2)
    at = training_app()
    at.run()
    assert not at.exception
    assert live_intervals[-1] == polling.FASTEST  # alone on the server
    for i in range(15):  # fifteen other browsers watching their runs
        polling.live_polls().poll(f"other-{i}")
    at.run()
    assert live_intervals[-1] == polling.refresh_interval(16, 2) == polling.SLOWEST


def test_a_change_of_load_while_training_remakes_the_fragment(live_intervals, monkeypatch):
    """The fragment was made with 0.3 s; at a refresh the load asks for 1 s: one whole-app rerun makes it again."""
    at = training_app()
    wanted = [polling.FASTEST]
    monkeypatch.setattr(sae.ui.live, "refresh_interval", lambda n, cores: wanted[0])
    at.run()
    assert live_intervals[-1] == polling.FASTEST
    before = len(live_intervals)
    monkeypatch.setattr(sae.ui.live, "refresh_interval",
                        lambda n, cores: wanted.append(polling.SLOWEST) or wanted[-2])  # 0.3 once, then 1.0
    at.run()
    assert not at.exception
    assert live_intervals[before:] == [polling.FASTEST, polling.SLOWEST]  # made, then made again


def test_an_idle_page_does_not_poll_nor_count(live_intervals):
    at = AppTest.from_file(HOME, default_timeout=60)
    at.query_params["data"] = "digits"
    at.run()
    assert live_intervals[-1] is None
    assert polling.live_polls().count() == 0
