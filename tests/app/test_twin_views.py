"""The twin as the pages see it (sae.app.twin): its state and names, its derived views cached per twin snapshot, run vs
twin differences, and a twin that changes nothing showing exactly what the run shows, through the Job."""

import numpy as np
import pytest

from sae.app.job import Job, subset_indices
from sae.app.settings import Settings
from sae.app.twin import (add_twin, align_signs, differences, filter_similarity, relative_change, setting_text,
                          start_step, twin_derived, twin_state)
from sae.data import load_dataset
from sae.training.status import RunStatus
from sae.workers.backend import use_backend

from conftest import wait_for


@pytest.fixture(params=["threads", "processes"])
def digits_job(request):
    """An idle job on the digits (9 hidden units), training in a thread of this process or in a worker process (the
    dashboard's default), stopped and freed after the test."""
    previous = use_backend(None) if request.param == "threads" else None
    data = load_dataset("digits")
    job = Job(Settings(dataset="digits", n_hidden=9, epochs=1000), data, subset_indices(data.n_samples))
    yield job
    job.release("test over")
    if request.param == "threads":
        use_backend(previous)


def steps(job: Job, n: int) -> None:
    """n steps of the run (and of its twin, in lock step), then both level and paused."""
    target = job.latest().step + n
    job.step(n)
    assert wait_for(lambda: job.latest().step >= target and job.status == RunStatus.PAUSED, 60)
    assert wait_for(lambda: job.twin_latest() is None or job.twin_latest().step == job.latest().step, 60)


def test_setting_text_names_the_changed_settings_in_a_fixed_order():
    assert setting_text({"beta": 10.0}) == "β 10"
    assert setting_text({"lr": 0.003, "rho": 0.05}) == "ρ 0.05, learning rate 0.003"
    assert setting_text({}) == "no change"


def test_without_a_twin_there_is_no_state_and_no_derived_view(job):
    assert twin_state(job) is None and twin_derived(job) is None


def test_a_twin_with_no_setting_changed_shows_exactly_what_the_run_shows(digits_job):
    """The library checks the weights bit for bit; here the views the pages draw, through the Job."""
    job = digits_job
    add_twin(job, {})
    steps(job, 25)
    state = twin_state(job)
    assert state is not None and state.level and state.changes == {} and state.twin_name == "twin (no change)"
    run, twin = job.derived(), twin_derived(job, state)
    for name, w in run.snapshot.weights.items():
        np.testing.assert_array_equal(twin.snapshot.weights[name], w)
    np.testing.assert_array_equal(twin.A, run.A)
    np.testing.assert_array_equal(twin.rho_hat, run.rho_hat)
    np.testing.assert_array_equal(twin.X_hat, run.X_hat)
    np.testing.assert_array_equal(twin.l0, run.l0)
    assert twin.headline() == run.headline()
    assert all(d == 0 for *_, d in differences(run, twin))
    for column in ("total", "reconstruction", "sparsity", "rho_hat_mean"):
        np.testing.assert_array_equal(job.twin_history()[column], job.history()[column])
    np.testing.assert_array_equal(filter_similarity(run.snapshot.weights["encoder.weight"],
                                                    twin.snapshot.weights["encoder.weight"]), np.ones(9))


def test_a_twin_with_beta_changed_differs_and_names_both(digits_job):
    job = digits_job
    steps(job, 5)
    add_twin(job, {"beta": 10.0}, from_start=False)  # from now: level at once
    state = twin_state(job)
    assert state.from_step == 5 and state.level and not state.behind
    assert (state.label, state.run_label) == ("β 10", "β 3")
    assert (state.twin_name, state.run_name) == ("twin (β 10)", "run (β 3)")
    steps(job, 20)
    run, twin = job.derived(), twin_derived(job)
    assert twin.snapshot.hyper["beta"] == 10.0 and run.snapshot.hyper["beta"] == 3.0
    assert not np.array_equal(twin.snapshot.weights["encoder.weight"], run.snapshot.weights["encoder.weight"])
    rows = {name: (a, b, d) for name, a, b, d in differences(run, twin)}
    a, b, d = rows["loss J (last batch)"]
    assert d == pytest.approx(b - a) and a == run.snapshot.losses["total"] and b == twin.snapshot.losses["total"]
    assert rows["reconstruction error ½‖x̂−x‖² (subset mean)"][1] == pytest.approx(float(np.mean(twin.errors)))


def test_the_twin_view_is_cached_per_twin_snapshot(digits_job):
    job = digits_job
    add_twin(job, {"beta": 10.0})
    first = twin_derived(job)
    assert twin_derived(job) is first  # the same snapshot: computed once
    steps(job, 3)
    second = twin_derived(job)
    assert second is not first and second.snapshot.step == 3 and twin_derived(job) is second
    job.remove_twin()
    assert wait_for(lambda: job.twin_setup() is None, 30)
    assert twin_derived(job) is None
    add_twin(job, {"beta": 10.0}, from_start=False)  # a new twin: its versions start again, its view is new
    assert twin_derived(job) is not second


def test_a_twin_from_the_start_catches_up_before_it_is_level(digits_job):
    job = digits_job
    steps(job, 30)
    assert start_step(job) == 0
    add_twin(job, {"beta": 10.0})
    state = twin_state(job)
    assert state.from_step == 0 and state.snapshot.step == 0 and state.behind and not state.level
    assert state.progress_text() == "catching up: step 0 of 30"
    steps(job, 1)
    state = twin_state(job)
    assert state.level and state.progress_text() == "in lock step at step 31"


def test_a_setting_a_twin_cannot_change_is_refused(job):
    from sae.core.config import ConfigError

    with pytest.raises(ConfigError):
        add_twin(job, {"batch_size": 8})
    assert twin_state(job) is None


def test_filter_similarity_and_relative_change():
    W = np.array([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0], [1.0, 1.0]])
    V = np.array([[2.0, 0.0], [0.0, -1.0], [0.0, 0.0], [1.0, -1.0]])
    np.testing.assert_allclose(filter_similarity(W, V), [1.0, -1.0, 1.0, 0.0])
    np.testing.assert_allclose(relative_change(W, V), [1.0, 1.5, 0.0, np.sqrt(2)])
    assert filter_similarity(W, np.zeros_like(W))[0] == 0.0


def test_align_signs_turns_each_component_the_reference_way():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((50, 3))
    flipped = ref * np.array([-1.0, 1.0, -1.0])
    np.testing.assert_array_equal(align_signs(flipped, ref), ref)
    np.testing.assert_array_equal(align_signs(ref, ref), ref)
