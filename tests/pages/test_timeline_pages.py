"""The timeline in the dashboard (sae.ui.timeline): edits listed and marked on the Train page's charts, Rewind
from the panel, and a replay link that reproduces the run in a fresh session (AppTest)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from sae.training.status import RunStatus  # noqa: E402
from conftest import figure_specs, wait_for  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
HOME = str(ROOT / "dashboard.py")
SMALL = {"data": "digits", "hidden": "16", "epochs": "1000", "opt": "sgd", "lr": "0.1"}

pytestmark = pytest.mark.usefixtures("restore_process_state", "stop_live_jobs")


def app(params=None) -> AppTest:
    at = AppTest.from_file(HOME, default_timeout=60)
    for k, v in (SMALL if params is None else params).items():
        at.query_params[k] = v
    return at.run()


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def job_of(at: AppTest):
    return at.session_state["sae_job"]


def step(at: AppTest, n: int) -> None:
    job = job_of(at)
    target = job.latest().step + n
    job.step(n)
    assert wait_for(lambda: job.latest().step >= target and job.status == RunStatus.PAUSED, 60)
    at.run()
    no_exception(at)


def edited(at: AppTest) -> None:
    """20 steps, β 3 → 10 from the panel's slider, 15 more steps."""
    step(at, 20)
    at.select_slider(key="beta").set_value(10.0).run()
    no_exception(at)
    step(at, 15)


def test_edits_are_listed_marked_on_the_charts_and_rewind_goes_back(lab_data):
    at = app()
    edited(at)
    job = job_of(at)
    assert [(e.kind, e.step) for e in job.timeline().edits if e.kind == "set"] == [("set", 20)]
    expander = next(e for e in at.expander if e.label.startswith("Timeline"))
    assert any("β 3 → 10" in m.value for m in expander.markdown)
    marked = [spec for spec in figure_specs(at) if any(t.get("name") == "edits" for t in spec["data"])]
    assert len(marked) == 2  # the loss curves and the ρ̂ band
    shapes = [s for s in marked[0]["layout"]["shapes"] if s.get("line", {}).get("dash") == "dot"]
    assert 20 in [s["x0"] for s in shapes]

    at.button(key="timeline_rewind_20").click().run()
    no_exception(at)
    assert wait_for(lambda: job_of(at).latest().step == 20, 30)
    at.run()
    assert job_of(at).trainer.config.beta == 3.0
    assert at.session_state["beta"] == 3.0  # the panel follows the rewound settings
    assert [e.kind for e in job_of(at).timeline().edits if e.step >= 20] == ["rewind"]


def test_the_replay_link_reproduces_the_run_in_a_fresh_session(lab_data):
    at = app()
    edited(at)
    job = job_of(at)
    link = next(c.value for c in at.code if "edits=" in c.value)
    params = dict(parse_qsl(urlsplit(link).query))
    assert params["edits"] == "20:beta=10.0" and params["until"] == "35"
    assert "beta" not in params  # the settings the run began with: the default β 3

    fresh = app(params)  # a new session opened by the link
    no_exception(fresh)
    assert any("This link replays a run" in m.value for m in fresh.markdown)
    fresh.button(key="timeline_replay").click().run()
    no_exception(fresh)
    replay = job_of(fresh)
    assert replay is not job
    assert wait_for(lambda: replay.latest().step == 35 and replay.status == RunStatus.PAUSED, 60)
    for name, w in job.latest().weights.items():
        np.testing.assert_allclose(replay.latest().weights[name], w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(replay.history()["total"], job.history()["total"], rtol=1e-5)
    fresh.run()
    assert "edits" not in fresh.query_params  # done: the URL no longer asks for it


def test_a_malformed_replay_link_says_why_and_the_page_works(lab_data):
    at = app({**SMALL, "edits": "12:beta=oops", "until": "30"})
    no_exception(at)
    assert any("cannot be read" in w.value for w in at.warning)
    at = app({**SMALL, "edits": "12:beta=5", "until": "-3"})
    no_exception(at)
    assert any("until=" in w.value for w in at.warning)
