"""The twin in the dashboard under AppTest: added, promoted and removed from the sidebar's controls; with one, the
Train, KL penalty, Filters, Activations, Codes and Reconstructions pages show it beside the run (by visible text and
chart legend names); without one, nothing of it shows."""

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from sae.core.config import ConfigError
from sae.training.status import RunStatus
from conftest import figure_specs, wait_for
from test_pages import PAGES, app, job_of, no_exception  # tests/pages/test_pages.py: digits, 16 units

pytestmark = pytest.mark.usefixtures("restore_process_state", "stop_live_jobs")  # tests/conftest.py


def texts(at: AppTest, where=None) -> str:
    """Every markdown and caption text of the page's main area (or ``where``), one string."""
    where = at.main if where is None else where
    return "\n".join([m.value for m in where.markdown] + [c.value for c in where.caption])


def chart_words(at: AppTest) -> list[str]:
    """Every trace name and title of the page's charts."""
    out = []
    for fig in figure_specs(at):
        out += [t.get("name") or "" for t in fig["data"]]
        title = fig.get("layout", {}).get("title", {})
        out.append(title.get("text", "") if isinstance(title, dict) else str(title))
    return out


def steps(job, n: int) -> None:
    target = job.latest().step + n
    job.step(n)
    assert wait_for(lambda: job.latest().step >= target and job.status == RunStatus.PAUSED, 60)
    assert wait_for(lambda: job.twin_latest() is None or job.twin_latest().step == job.latest().step, 60)


def add_twin(at: AppTest, beta: float | None = 10.0, start: str = "start") -> None:
    """Set the twin's β in the sidebar's form, choose where it starts, press "Add a twin"; wait for it to show."""
    if beta is not None:
        at.select_slider(key="twin_beta").set_value(beta)
    at.radio(key="twin_from").set_value(start)
    at.button(key="btn_twin_add").click().run()
    no_exception(at)
    job = job_of(at)
    assert wait_for(lambda: job.twin_setup() is not None, 60), job.action_error
    at.run()


@pytest.fixture
def with_twin():
    """The dashboard with a twin at β 10 beside the run at β 3, both 30 steps in."""
    at = app()
    add_twin(at)
    steps(job_of(at), 30)
    at.run()
    no_exception(at)
    return at


def test_without_a_twin_nothing_of_it_shows():
    at = app()
    no_exception(at)
    assert "btn_twin_add" in [b.key for b in at.sidebar.button]
    assert "btn_twin_promote" not in [b.key for b in at.sidebar.button]
    assert at.select_slider(key="twin_beta").value == 3.0  # the form starts from the run's settings
    steps(job_of(at), 10)
    for page in [None, *PAGES]:
        if page is not None:
            at.switch_page(page).run()
        no_exception(at)
        assert "Twin ·" not in texts(at) and "twin" not in texts(at).lower(), page
        assert not any("twin" in w.lower() for w in chart_words(at)), page


def test_with_a_twin_the_train_page_overlays_both(with_twin):
    at = with_twin
    assert "Twin · β 10" in texts(at)
    words = chart_words(at)
    assert "twin (β 10), dashed" in words and "total J" in words  # loss curves overlaid
    assert "twin (β 10): mean ρ̂" in words  # the twin's mean ρ̂ on the band
    table = at.dataframe[0].value
    assert list(table.columns) == ["", "run (β 3)", "twin (β 10)", "twin − run"]
    assert "dead units" in list(table[""])
    assert "Twin · β 10" in texts(at, at.sidebar)  # the controls say which twin it is


def test_with_a_twin_the_kl_page_puts_both_sets_of_units_on_the_curve(with_twin):
    at = with_twin
    at.switch_page("pages/1_kl_penalty.py").run()
    no_exception(at)
    assert "Twin · β 10" in texts(at)
    figs = figure_specs(at)
    assert len(figs) == 2
    for fig in figs:  # the full curve and the zoom
        names = [t.get("name") for t in fig["data"]]
        assert "run (β 3): 16 units" in names, names
        assert "twin (β 10): 10·KL(ρ‖ρ̂)" in names  # its own curve: β 10
    full = [t.get("name") for t in figs[0]["data"]]
    assert "twin (β 10): 16 units" in full
    assert "twin (β 10)" in texts(at)  # its total penalty beside the run's


def test_with_a_twin_the_filters_page_shows_both_grids_and_their_difference(with_twin):
    at = with_twin
    at.switch_page("pages/2_filters.py").run()
    no_exception(at)
    text = texts(at)
    assert "Twin · β 10" in text and "run (β 3)" in text and "twin (β 10)" in text
    figs = figure_specs(at)
    grids = [f for f in figs if any(t.get("name") == "units" for t in f["data"])]
    assert len(grids) == 2  # run and twin side by side
    assert any("cosine of each unit's filters" in w for w in chart_words(at))
    assert "In the twin" in text  # the selected unit in the twin


def test_with_a_twin_the_activations_codes_and_reconstructions_pages_show_both(with_twin):
    at = with_twin
    at.switch_page("pages/3_activations.py").run()
    no_exception(at)
    assert "Twin · β 10" in texts(at)
    pairs = [f for f in figure_specs(at) if [t.get("name") for t in f["data"]][:2] == ["run (β 3)", "twin (β 10)"]]
    assert len(pairs) == 3  # activations, ρ̂ⱼ and L0 histograms

    at.switch_page("pages/4_codes.py").run()
    no_exception(at)
    assert "Twin · β 10" in texts(at)
    words = chart_words(at)
    assert any(w.startswith("run (β 3): codes") for w in words) and any(w.startswith("twin (β 10): codes")
                                                                         for w in words)
    assert any(w.startswith("Raw inputs") for w in words)

    at.switch_page("pages/5_reconstructions.py").run()
    no_exception(at)
    assert "twin (β 10)" in texts(at)
    assert any(m.label == "Mean error · twin (β 10)" for m in at.metric)


def test_a_twin_with_no_change_draws_the_run_twice():
    at = app()
    add_twin(at, beta=None)
    steps(job_of(at), 20)
    at.switch_page("pages/1_kl_penalty.py").run()
    no_exception(at)
    assert "Twin · no change" in texts(at)
    data = figure_specs(at)[0]["data"]
    run = next(t for t in data if t.get("name") == "run: 16 units")
    twin = next(t for t in data if t.get("name") == "twin (no change): 16 units")
    np.testing.assert_array_equal(run["x"], twin["x"])
    np.testing.assert_array_equal(run["y"], twin["y"])


def test_promote_from_the_controls_makes_the_twin_the_run(with_twin):
    at = with_twin
    job = job_of(at)
    twin_weights = job.twin_latest().weights
    assert not at.button(key="btn_twin_promote").disabled
    at.button(key="btn_twin_promote").click().run()
    no_exception(at)
    assert wait_for(lambda: job.twin_setup() is None, 30)
    assert job.settings.beta == 10.0 and at.session_state["beta"] == 10.0  # the panel follows the promoted settings
    at.run()
    assert job.trainer.config.beta == 10.0  # and does not set the old β back
    for name, w in twin_weights.items():
        np.testing.assert_array_equal(job.latest().weights[name], w)
    assert "Twin ·" not in texts(at) and "btn_twin_add" in [b.key for b in at.sidebar.button]


def test_remove_from_the_controls_leaves_the_run(with_twin):
    at = with_twin
    job = job_of(at)
    at.button(key="btn_twin_remove").click().run()
    no_exception(at)
    assert wait_for(lambda: job.twin_setup() is None, 30)
    at.run()
    assert job.settings.beta == 3.0 and job.latest().step == 30
    assert "Twin ·" not in texts(at) and not any("twin" in w for w in chart_words(at))
    assert "btn_twin_add" in [b.key for b in at.sidebar.button]


def test_a_twin_from_the_start_catches_up_before_it_can_be_promoted():
    at = app()
    job = job_of(at)
    steps(job, 30)
    at.run()
    add_twin(at)
    assert "catching up: step 0 of 30" in texts(at, at.sidebar)
    assert at.button(key="btn_twin_promote").disabled
    steps(job, 1)  # the twin trains its 30 steps first, then both take one
    at.run()
    assert "in lock step at step 31" in texts(at, at.sidebar)
    assert not at.button(key="btn_twin_promote").disabled


def test_a_twin_from_now_starts_level():
    at = app()
    steps(job_of(at), 12)
    at.run()
    add_twin(at, start="now")
    assert job_of(at).twin_setup() == ({"beta": 10.0}, 12)
    assert "from step 12" in texts(at, at.sidebar) and not at.button(key="btn_twin_promote").disabled


def test_a_refused_twin_is_one_line_in_the_sidebar(monkeypatch):
    at = app()
    job = job_of(at)

    def refuse(from_step=0, **changes):
        raise ConfigError("a twin may change rho, beta, weight_decay, lr, not batch_size.")

    monkeypatch.setattr(job, "add_twin", refuse)
    at.select_slider(key="twin_beta").set_value(10.0)
    at.button(key="btn_twin_add").click().run()
    no_exception(at)
    assert [e.value for e in at.sidebar.error] == ["a twin may change rho, beta, weight_decay, lr, not batch_size."]
    assert job.twin_setup() is None and "btn_twin_add" in [b.key for b in at.sidebar.button]
