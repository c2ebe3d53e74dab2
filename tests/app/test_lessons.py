"""Every lesson's check passes on a real short run that does what the step asks, and fails on one that does not
(sae.app.lessons, sae.app.lesson_checks); every formula renders with the run's numbers.

The runs are small (a few seconds each on a busy 2-core machine): 2,000 of the 10,000 patches with L-BFGS, the 8x8
digits with SGD or Adam for a few hundred steps; a module-scoped fixture trains each once.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from sae import Trainer
from sae.app.lesson_checks import CheckResult, filter_shapes
from sae.app.lessons import LESSONS, UFLDL_SETUP, lesson
from sae.app.run_view import RunView, eval_rows
from sae.app.settings import Settings, defaults_for
from sae.data import Dataset, load_dataset
from sae.experiments.mistake_compare import compare_mistake, mistake_train_config
from sae.core.config import ModelConfig
from sae.ui.url import SLIDERS, KEYS, widget_values


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def check(lesson_id: str, step_id: str, view: RunView) -> CheckResult:
    result = lesson(lesson_id).step(step_id).check(view)
    assert isinstance(result, CheckResult) and result.message, result
    return result


def passes(lesson_id, step_id, view) -> str:
    result = check(lesson_id, step_id, view)
    assert result.passed, result.message
    return result.message


def fails(lesson_id, step_id, view) -> str:
    result = check(lesson_id, step_id, view)
    assert not result.passed, result.message
    return result.message


def patches_2000() -> Dataset:
    """The first 2,000 of the 10,000 whitened patches, under the patches' name (L-BFGS 5x faster)."""
    data = load_dataset("patches")
    return Dataset("patches", data.X[:2000], None, data.image_shape, data.description)


def trainer(data: Dataset, settings: Settings) -> Trainer:
    return Trainer(data.X, settings.model_config(data), settings.train_config())


def view(t: Trainer, data: Dataset, settings: Settings, mistakes=None) -> RunView:
    return RunView.of_trainer(t, data, settings, mistakes)


def ufldl(**changes) -> Settings:
    return replace(defaults_for("patches"), **{**UFLDL_SETUP, **changes})


# ------------------------------------------------------------------ runs, trained once per module
@pytest.fixture(scope="module")
def patches():
    return patches_2000()


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def ufldl_done(patches):
    """UFLDL's exercise, 100 L-BFGS iterations on 2,000 patches: edges, every unit on target."""
    s = ufldl(max_iter=100)
    t = trainer(patches, s)
    t.run()
    return view(t, patches, s)


@pytest.fixture(scope="module")
def ufldl_slow(patches):
    """UFLDL's settings, Adam at a learning rate too small to get anywhere in 100 steps."""
    s = ufldl(optimizer="adam", lr=1e-4, epochs=10)
    t = trainer(patches, s)
    t.run(steps=100)
    return view(t, patches, s)


@pytest.fixture(scope="module")
def rho_hat_runs(digits):
    """Digits' defaults (36 units, rho 0.1, Adam): 300 steps at beta 0, then 600 at beta 3. Three views: at beta 0,
    just after beta went back to 3 (the units still off target), and at the end."""
    s = replace(defaults_for("digits"), beta=0.0)
    t = trainer(digits, s)
    t.run(steps=300)
    at_zero = view(t, digits, s)
    t.set_hyperparameters(beta=3.0)
    raised = view(t, digits, s)
    t.run(steps=600)
    return at_zero, raised, view(t, digits, s)


@pytest.fixture(scope="module")
def sgd_beta_runs(digits):
    """SGD at lr 0.1 on the digits, 25 units, rho 0.1: 100 steps at beta 3, 100 at beta 20 (all alive), 150 at
    beta 50 (units die). Views after beta 20 and at the end."""
    s = replace(defaults_for("digits"), n_hidden=25, optimizer="sgd", lr=0.1, beta=3.0)
    t = trainer(digits, s)
    t.run(steps=100)
    t.set_hyperparameters(beta=20.0)
    t.run(steps=100)
    alive = view(t, digits, s)
    t.set_hyperparameters(beta=50.0)
    t.run(steps=150)
    return alive, view(t, digits, s)


@pytest.fixture(scope="module")
def sgd_dead_from_the_start(digits):
    """SGD at lr 0.1, rho 0.05, beta 10 from the first step: about half the units die, never having lived at a
    lower beta."""
    s = replace(defaults_for("digits"), n_hidden=25, optimizer="sgd", lr=0.1, beta=10.0, rho=0.05)
    t = trainer(digits, s)
    t.run(steps=140)
    return view(t, digits, s)


@pytest.fixture(scope="module")
def adam_beta_runs(digits):
    """Adam on the digits, 25 units: 100 steps at beta 3 (view), then 300 at beta 50 (view)."""
    s = replace(defaults_for("digits"), n_hidden=25, beta=3.0)
    t = trainer(digits, s)
    t.run(steps=100)
    low = view(t, digits, s)
    t.set_hyperparameters(beta=50.0)
    t.run(steps=300)
    return low, view(t, digits, s)


@pytest.fixture(scope="module")
def twin_runs(digits):
    """SGD at lr 0.1, rho 0.05, 25 units, 140 steps: (run beta 3 + twin beta 10 from step 0), (the same with the twin
    forked at step 70), (run beta 10 + twin lr 0.01 from step 0), (run beta 10 + twin lr 0.3)."""
    base = replace(defaults_for("digits"), n_hidden=25, optimizer="sgd", lr=0.1, beta=3.0, rho=0.05)
    out = []
    for s, fork, changes in ((base, 0, {"beta": 10.0}), (base, 70, {"beta": 10.0}),
                             (replace(base, beta=10.0), 0, {"lr": 0.01}), (replace(base, beta=10.0), 0, {"lr": 0.3})):
        t = trainer(digits, s)
        if fork:
            t.run(steps=fork)
        t.add_twin(None if fork else 0, **changes)  # forked now (step 70), or from the start
        t.run(steps=140 - fork)
        out.append(view(t, digits, s))
    return out


@pytest.fixture(scope="module")
def decay_twin(patches):
    """UFLDL's exercise with lambda = 0, 100 L-BFGS iterations on 2,000 patches, and a twin with lambda = 1e-4."""
    s = ufldl(weight_decay=0.0, max_iter=100)
    t = trainer(patches, s)
    t.add_twin(0, weight_decay=1e-4)
    t.run()
    return view(t, patches, s)


# ------------------------------------------------------------------ the catalogue
def test_every_lesson_has_steps_with_checks_hints_and_formulas():
    ids = [x.id for x in LESSONS]
    assert len(ids) == len(set(ids)) >= 6
    assert {"ufldl", "rho_hat", "beta", "asymmetry", "edges", "decay", "twin", "mistakes"} <= set(ids)
    for item in LESSONS:
        assert item.intro and item.steps
        steps = [s.id for s in item.steps]
        assert len(steps) == len(set(steps))
        for step in item.steps:
            assert step.instruction and step.hint and callable(step.check) and callable(step.formula)


def test_every_setup_is_a_setting_the_sidebar_can_show():
    """"Set up this step" writes the setup into the sidebar's widgets: each value must be one they offer."""
    for item in LESSONS:
        for step in item.steps:
            if not step.setup:
                continue
            base = defaults_for(step.setup.get("dataset", "patches"))
            settings = replace(base, **step.setup)
            values = widget_values(settings)
            for key, name in KEYS.items():
                if name in SLIDERS:
                    assert values[key] in SLIDERS[name], (item.id, step.id, name, values[key])


# ------------------------------------------------------------------ UFLDL's exercise
def test_ufldl_setup(patches):
    s = ufldl()
    passes("ufldl", "setup", view(trainer(patches, s), patches, s))
    d = defaults_for("patches")
    message = fails("ufldl", "setup", view(trainer(patches, d), patches, d))
    assert "hidden units 36 (the exercise: 25)" in message and "ρ 0.02 (the exercise: 0.01)" in message


def test_ufldl_terms(ufldl_done, ufldl_slow):
    message = passes("ufldl", "terms", ufldl_done)
    assert "At step 0 J was" in message and "reconstruction" in message
    assert "sparsity is still the largest term" in fails("ufldl", "terms", ufldl_slow)
    d = defaults_for("patches")
    assert "not UFLDL's exercise" in fails("ufldl", "terms", view(trainer(patches_2000(), d), patches_2000(), d))


def test_ufldl_rho(ufldl_done, ufldl_slow):
    passes("ufldl", "rho", ufldl_done)
    assert "0 of 25 units on target" in fails("ufldl", "rho", ufldl_slow)


def test_ufldl_edges(ufldl_done, ufldl_slow):
    assert "25 of 25 filters are edge-like" in passes("ufldl", "edges", ufldl_done) or \
        passes("ufldl", "edges", ufldl_done)
    assert "Not edges yet" in fails("ufldl", "edges", ufldl_slow)


# ------------------------------------------------------------------ what rho_hat_j is
def test_rho_hat_own(rho_hat_runs):
    at_zero, raised, end = rho_hat_runs
    message = passes("rho_hat", "own", at_zero)
    assert "unit 0:" in message and "0 of 36 on target" in message
    assert "β is 3 now" in fails("rho_hat", "own", end)


def test_rho_hat_pulled(rho_hat_runs):
    at_zero, raised, end = rho_hat_runs
    message = passes("rho_hat", "pulled", end)
    assert "within 10%" in message.lower()
    assert "β is 0" in fails("rho_hat", "pulled", at_zero)
    assert "Not within 10%" in fails("rho_hat", "pulled", raised)  # beta is back, the units not yet


# ------------------------------------------------------------------ what beta does
def test_beta_kills(sgd_beta_runs, sgd_dead_from_the_start, adam_beta_runs):
    alive, dead = sgd_beta_runs
    message = passes("beta", "kills", dead)
    assert "Every unit lived at β ≤ 20" in message and "with β = 50 units began to die" in message
    assert "No unit is dead now" in fails("beta", "kills", alive)
    assert "started with" in fails("beta", "kills", sgd_dead_from_the_start)
    assert "With Adam" in fails("beta", "kills", adam_beta_runs[1])


def test_adam_survives(adam_beta_runs, sgd_beta_runs):
    low, high = adam_beta_runs
    assert "0 of 25 units are dead" in passes("beta", "adam", high)
    assert "raise it to 20" in fails("beta", "adam", low)
    assert "uses sgd" in fails("beta", "adam", sgd_beta_runs[1])


# ------------------------------------------------------------------ why KL is asymmetric
def test_units_above_and_below(digits):
    s = defaults_for("digits")  # rho 0.1
    t = trainer(digits, s)
    t.run(steps=300)
    settled = view(t, digits, s)
    fails("asymmetry", "above", settled)
    fails("asymmetry", "below", settled)
    t.set_hyperparameters(rho=0.02)  # not trained since: the units fire about 5x too often
    above = view(t, digits, s)
    message = passes("asymmetry", "above", above)
    assert "× less" in message
    fails("asymmetry", "below", above)
    t.set_hyperparameters(rho=0.3)
    below = view(t, digits, s)
    assert "× more" in passes("asymmetry", "below", below)
    fails("asymmetry", "above", below)
    t.set_hyperparameters(rho=0.02)
    t.run(steps=300)  # an optimiser that runs on brings them back to rho
    assert "Pause first" in fails("asymmetry", "above", view(t, digits, s))


# ------------------------------------------------------------------ edges and strokes
def test_edges(ufldl_done, ufldl_slow, rho_hat_runs):
    passes("edges", "edges", ufldl_done)
    fails("edges", "edges", ufldl_slow)
    assert "this step needs “patches”" in fails("edges", "edges", rho_hat_runs[2])


def test_no_sparsity_no_edges(patches, ufldl_done):
    s = ufldl(beta=0.0, max_iter=100)
    t = trainer(patches, s)
    t.run()
    passes("edges", "nosparsity", view(t, patches, s))
    assert "β must be 0 from the start" in fails("edges", "nosparsity", ufldl_done)


def test_strokes(digits, ufldl_done):
    s = replace(defaults_for("digits"), optimizer="lbfgs", max_iter=150)
    t = trainer(digits, s)
    t.run()
    passes("edges", "strokes", view(t, digits, s))
    slow = replace(defaults_for("digits"), lr=1e-4)
    t = trainer(digits, slow)
    t.run(steps=100)
    assert "Not strokes yet" in fails("edges", "strokes", view(t, digits, slow))
    fails("edges", "strokes", ufldl_done)


# ------------------------------------------------------------------ weight decay
def test_no_decay(decay_twin, ufldl_done):
    message = passes("decay", "off", decay_twin)
    assert "‖W₁‖² + ‖W₂‖²" in message
    assert "λ is 0.0001 now" in fails("decay", "off", ufldl_done)


def test_twin_shows_what_decay_buys(decay_twin, ufldl_done, twin_runs):
    message = passes("decay", "twin", decay_twin)
    assert "the twin (λ = 0.0001)" in message and "the run (λ = 0)" in message
    assert "no twin" in fails("decay", "twin", ufldl_done)
    assert "this step needs “patches”" in fails("decay", "twin", twin_runs[0])


# ------------------------------------------------------------------ the twin
def test_twin_shows_beta_10_kills_units(twin_runs, decay_twin, ufldl_done):
    from_start, late, _, _ = twin_runs
    message = passes("twin", "kills", from_start)
    assert "the run (β = 3) has 0 dead units" in message
    assert "fork from step 0" in fails("twin", "kills", late)
    assert "changes weight_decay" in fails("twin", "kills", decay_twin)
    assert "no twin" in fails("twin", "kills", ufldl_done)


def test_twin_shows_smaller_steps_save_them(twin_runs):
    from_start, _, slower, faster = twin_runs
    passes("twin", "lr", slower)
    fails("twin", "lr", faster)
    fails("twin", "lr", from_start)


# ------------------------------------------------------------------ the common mistakes
@pytest.fixture(scope="module")
def mistakes(digits):
    mc = ModelConfig(digits.n_features, 25)
    return {name: compare_mistake(name, digits.X, mc, mistake_train_config(0.05, 200, 0), seed=0)
            for name in ("rho_hat_scalar", "kl_per_activation", "linear_encoder")}


def test_the_mistakes_are_checked_from_the_sessions_comparisons(mistakes, rho_hat_runs, digits):
    base = rho_hat_runs[2]
    with_results = replace(base, mistakes=mistakes)
    for step, title in (("scalar", "ρ̂ as one scalar"), ("every", "KL on every activation"),
                        ("linear", "Linear encoder")):
        passes("mistakes", step, with_results)
        assert title in fails("mistakes", step, base)  # not run in this session yet
    barely = compare_mistake("rho_hat_scalar", digits.X, ModelConfig(digits.n_features, 25),
                             mistake_train_config(0.05, 1, 0), seed=0)  # one iteration: nothing to see yet
    assert "does not show it" in fails("mistakes", "scalar", replace(base, mistakes={"rho_hat_scalar": barely}))


# ------------------------------------------------------------------ formulas and views
def test_every_formula_renders_with_the_runs_numbers(ufldl_done, twin_runs, decay_twin, mistakes):
    views = [ufldl_done, twin_runs[0], decay_twin, replace(ufldl_done, mistakes=mistakes)]
    for item in LESSONS:
        for step in item.steps:
            for v in views:
                unit = step.focus(v)
                assert 0 <= unit < v.run.n_units
                lines = step.formula(v, unit)
                assert lines and all(isinstance(x, str) and x for x in lines), (item.id, step.id)
    t = ufldl_done.run.terms
    line = lesson("ufldl").steps[1].formula(ufldl_done, 0)[-1]
    assert line.endswith(f"={t['total']:.3g}") and f"{t['reconstruction']:.3g}" in line


def test_the_view_measures_on_all_rows_up_to_the_limit(patches):
    assert eval_rows(2000) is None
    rows = eval_rows(50_000)
    assert len(rows) == 10_000 and rows[0] == 0 and rows[-1] == 49_999
    s = ufldl()
    v = view(trainer(patches, s), patches, s)
    assert v.m == 2000 and v.run.rho_hat.shape == (25,)
    np.testing.assert_allclose(v.run.rho_hat.mean(), v.run.activations.mean(), rtol=1e-6)
    terms = v.run.terms
    assert terms["total"] == pytest.approx(terms["reconstruction"] + terms["sparsity"] + terms["weight_decay"],
                                           rel=1e-5)
    assert filter_shapes(v.run, (8, 8)).edge_like <= 3  # initial weights: noise
