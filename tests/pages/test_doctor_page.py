"""The doctor in the dashboard (Streamlit's AppTest): a run made to go wrong shows the doctor's line on every page
and its panel on the Train page, and a fix button's action reaches the job.

The runs train in threads of this process (``in_threads``): the fixes act on the job's own Trainer.
"""

from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from conftest import figure_specs, wait_for  # noqa: E402
from sae.training.status import RunStatus  # noqa: E402
from sae.ui.doctor import to_notches  # noqa: E402

pytestmark = pytest.mark.usefixtures("restore_process_state", "stop_live_jobs", "in_threads")

HOME = str(Path(__file__).resolve().parents[2] / "dashboard.py")
# SGD's first steps at beta 10 leave about half the 25 units dead (tests/evaluation/test_doctor.py)
DYING = {"data": "digits", "hidden": "25", "opt": "sgd", "lr": "0.1", "beta": "10", "batch": "64", "rho": "0.05",
         "epochs": "10"}
SMALL_BATCH = {"data": "digits", "hidden": "25", "rho": "0.01", "batch": "8", "epochs": "2"}


def finished_run(params: dict) -> AppTest:
    at = AppTest.from_file(HOME, default_timeout=60)
    for k, v in params.items():
        at.query_params[k] = v
    at.run()
    at.button(key="btn_train").click().run()
    job = at.session_state["sae_job"]
    assert wait_for(lambda: job.status == RunStatus.FINISHED)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def alerts(at: AppTest) -> list[str]:
    return [e.value for e in at.error] + [w.value for w in at.warning]


def doctor_line(at: AppTest) -> str:
    return next((c.value for c in at.sidebar.caption if "Doctor" in c.value), "")


def test_a_dying_run_shows_the_doctors_line_and_panel_and_resampling_brings_the_units_back():
    at = finished_run(DYING)
    job = at.session_state["sae_job"]
    assert "units dead" in doctor_line(at), doctor_line(at)
    sentence = next(a for a in alerts(at) if "units have been dead" in a)
    assert sentence.split()[1:3] == ["of", "25"] and "Resample them" in sentence
    assert any(spec["layout"]["yaxis"]["title"]["text"].startswith("dead units") for spec in figure_specs(at))
    dead_before = float(at.metric[2].value)
    assert dead_before >= 5
    button = at.button(key="doctor_dying_units_0")
    assert button.label == "Resample the dead units"
    button.click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert [e.kind for e in job.timeline().edits if e.kind == "resample"] == ["resample"]
    assert not job.trainer.dead_units()
    assert float(at.metric[2].value) < dead_before  # the Train page's dead-unit count fell
    assert not any("units have been dead" in a for a in alerts(at))
    assert "units dead" not in doctor_line(at)


def test_a_live_fix_reaches_the_job_and_the_panels_widget():
    at = finished_run(DYING)
    job = at.session_state["sae_job"]
    button = at.button(key="doctor_dying_units_1")
    assert button.label == "Lower β 10 → 3"
    button.click().run()
    assert job.trainer.config.beta == 3.0 and job.settings.beta == 3.0
    assert at.session_state["beta"] == 3.0  # the sidebar shows it, and does not set 10 back
    at.run()
    assert job.trainer.config.beta == 3.0
    assert "beta" not in dict(at.query_params)  # the link holds it too: 3 is the digits' default, left out


def test_the_doctors_line_is_on_every_page():
    at = finished_run(DYING)
    for page in ("pages/1_kl_penalty.py", "pages/2_filters.py", "pages/10_runs.py"):
        at.switch_page(page).run()
        assert not at.exception, [e.value for e in at.exception]
        assert "units dead" in doctor_line(at), page


def test_a_fix_that_needs_a_new_run_sets_the_panel_for_it():
    at = finished_run(SMALL_BATCH)
    sentence = next(a for a in alerts(at) if a.startswith("A batch of 8 at ρ = 0.01"))
    assert "A batch of 512 or more" in sentence
    button = at.button(key="doctor_batch_too_small_0")
    assert button.label == "New run with batch size 512"
    button.click().run()
    assert at.session_state["batch"] == 512
    assert any("batch size → 512" in w.value for w in at.warning)  # the panel asks to restart
    at.button(key="btn_restart").click().run()
    assert at.session_state["sae_job"].trainer.config.batch_size == 512


def test_a_healthy_run_has_a_quiet_doctor():
    at = AppTest.from_file(HOME, default_timeout=60)
    at.query_params["data"] = "digits"
    at.run()
    assert doctor_line(at) == ""  # nothing to read before the first step
    at.button(key="btn_step").click().run()
    job = at.session_state["sae_job"]
    assert wait_for(lambda: job.latest().step == 1 and job.status == RunStatus.PAUSED)
    at.run()
    assert "nothing wrong seen" in doctor_line(at) and not alerts(at)


def test_fixes_go_to_the_sliders_notches_in_their_direction():
    assert to_notches({"beta": 10 / 3}, {"beta": 10.0}) == {"beta": 3.0}
    assert to_notches({"rho": 0.1}, {"rho": 0.05}) == {"rho": 0.1}
    assert to_notches({"lr": 0.0003}, {"lr": 0.001}) == {"lr": 0.0003}
    assert to_notches({"beta": 0.0}, {"beta": 0.03}) == {"beta": 0.0}
    assert to_notches({"beta": 100.0}, {"beta": 50.0}) == {}  # no notch above 50: no such fix
    assert to_notches({"rho": 0.06}, {"rho": 0.05}) == {"rho": 0.08}  # the next notch up, not 0.05 again
