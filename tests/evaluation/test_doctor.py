"""sae.evaluation.doctor: every rule fires on a real run made to show it, and stays quiet on healthy UFLDL runs.

The runs are short trainings on the built-in 8x8 digits (1,797 samples, 64 inputs), seconds each; their facts are
read as the dashboard reads a live job's (``sae.app.doctor.facts_of``). Synthetic histories cover the edges.
"""

from __future__ import annotations

import functools
from dataclasses import replace

import numpy as np
import pytest
import torch

from sae import ModelConfig, TrainConfig, Trainer
from sae.app.doctor import facts_of
from sae.app.settings import Settings, defaults_for
from sae.data import load_dataset
from sae.evaluation import doctor
from sae.evaluation.doctor import (DEAD_STEPS, HARMFUL, MIN_STEPS, NOTICE, RULES, SEVERE, DataFacts, RunFacts,
                                   data_facts, diagnose, nice, window)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread, as in the dashboard: these small steps gain nothing from two, and lose much on a busy
    machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@functools.lru_cache(maxsize=None)
def digits():
    return load_dataset("digits")


def train(model_config: ModelConfig, config: TrainConfig, X=None, steps: int | None = None):
    """A trainer on the digits (or X) after ``steps`` steps (default: its whole budget), and its RunFacts."""
    X = digits().X if X is None else X
    trainer = Trainer(X, model_config, config)
    trainer.run(steps=steps)
    return trainer, facts_of(trainer, model_config, data_facts(X))


# The runs made to show each rule (settings found by trying; the comments give what they did here).
SICK = {
    # SGD's first steps overshoot: beta * KL's gradient at rho_hat = 0.5 drives 12 of 25 units far below rho/10
    "dying_units": lambda: train(ModelConfig(64, 25), TrainConfig(optimizer="sgd", lr=0.1, beta=10, rho=0.05,
                                                                  batch_size=64, epochs=10)),
    # no sparsity at all: 17 of 25 units on for more than half the inputs
    "dense_units": lambda: train(ModelConfig(64, 25), TrainConfig(beta=0.0, rho=0.05, lr=3e-2, batch_size=128,
                                                                  epochs=20)),
    # beta 0.03 holds the mean rho_hat at ~0.26 against rho = 0.05, no unit dense
    "rho_hat_off_target": lambda: train(ModelConfig(64, 25), TrainConfig(beta=0.03, rho=0.05, lr=3e-2,
                                                                         batch_size=128, epochs=20)),
    # beta 50 on batches of 32 under SGD: beta * KL (its batch noise) is ~80% of J, the reconstruction crawls
    "penalty_dominates": lambda: train(ModelConfig(64, 25), TrainConfig(optimizer="sgd", lr=1e-2, beta=50, rho=0.1,
                                                                        batch_size=32, epochs=40)),
    # lambda 0.03: ||W||^2 from 70 down to a few, the reconstruction stuck at the mean input's error
    "decay_dominates": lambda: train(ModelConfig(64, 25), TrainConfig(weight_decay=3e-2, rho=0.1, lr=3e-2,
                                                                      batch_size=128, epochs=30)),
    # Adam at lr 1 with a linear decoder and no penalty: J climbs back up to 1.5x its best
    "loss_unstable": lambda: train(ModelConfig(64, 25, decoder_activation="linear"),
                                   TrainConfig(lr=1.0, beta=0.0, rho=0.1, batch_size=128, epochs=40)),
    # the digits times 3 under a sigmoid decoder
    "data_out_of_range": lambda: train(ModelConfig(64, 25, decoder_activation="sigmoid"),
                                       TrainConfig(rho=0.1, lr=3e-2, epochs=10), X=digits().X * 3),
    # a batch of 8 at rho = 0.01: 0.08 firings of a unit on target per batch
    "batch_too_small": lambda: train(ModelConfig(64, 25), TrainConfig(rho=0.01, batch_size=8, lr=3e-2, epochs=2)),
}


@functools.lru_cache(maxsize=None)
def sick(rule: str):
    return SICK[rule]()


def settings_run(settings: Settings, steps: int | None = None):
    data = load_dataset(settings.dataset)
    return train(settings.model_config(data), settings.train_config(), X=data.X, steps=steps)


HEALTHY = {  # UFLDL's objective on the digits, as the dashboard's defaults for them, and UFLDL's own L-BFGS
    "digits adam": lambda: settings_run(defaults_for("digits"), steps=3000),
    "digits lbfgs": lambda: settings_run(replace(defaults_for("digits"), optimizer="lbfgs", max_iter=400)),
    "patches adam": lambda: settings_run(defaults_for("patches"), steps=2000),
}


@functools.lru_cache(maxsize=None)
def healthy(name: str):
    return HEALTHY[name]()


def by_rule(findings, rule):
    return next(f for f in findings if f.rule == rule)


# ------------------------------------------------------------------------------------- every rule, on real runs

@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.__name__)
def test_every_rule_fires_on_a_run_made_to_show_it(rule):
    trainer, facts = sick(rule.__name__)
    finding = rule(facts)
    assert finding is not None and finding.rule == rule.__name__
    assert finding.rule in {f.rule for f in diagnose(facts)}, "diagnose reports it (nothing explains it away)"
    assert finding.sentence and finding.headline and finding.fixes
    assert len(finding.evidence.x) == len(finding.evidence.y) == len(facts.history["step"]) > 0


@pytest.mark.parametrize("run", HEALTHY)
@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.__name__)
def test_every_rule_stays_quiet_on_a_healthy_run(rule, run):
    trainer, facts = healthy(run)
    assert rule(facts) is None, rule(facts).sentence


def test_a_healthy_run_is_quiet_all_along():
    """Not only at the end: early on (ρ̂ falling from 0.5, J falling fast) the doctor waits for evidence."""
    data = digits()
    settings = defaults_for("digits")
    trainer = Trainer(data.X, settings.model_config(data), settings.train_config())
    for steps in (1, 60, 150, 400, 1000):
        trainer.run(steps=steps - trainer.step_count)
        assert diagnose(facts_of(trainer, settings.model_config(data), data_facts(data.X))) == [], steps


# ------------------------------------------------------------------------------------- what each rule says

def test_dying_units_says_how_many_for_how_long_and_offers_resampling_first():
    trainer, facts = sick("dying_units")
    finding = doctor.dying_units(facts)
    dead = (facts.dead_since >= 0) & (facts.step - facts.dead_since >= DEAD_STEPS)
    assert 5 <= dead.sum() < 25
    assert finding.sentence.startswith(f"{dead.sum()} of 25 units have been dead (ρ̂ⱼ < ρ/10 = 0.005) for the last ")
    assert finding.severity == HARMFUL
    assert finding.fixes[0].resample and finding.fixes[0].label.startswith("Resample")
    assert finding.fixes[1].changes == {"beta": 3.0} and finding.fixes[2].changes == {"rho": 0.1}
    assert finding.evidence.reference == 25 and finding.evidence.y[-1] == facts.history["dead"][-1]
    assert [f.rule for f in diagnose(facts)] == ["dying_units"]  # the penalty's share is the dead units' doing


def test_resampling_as_the_fix_says_brings_the_dead_units_back():
    """The fix does what it promises: after Trainer.resample the units are alive and the finding is gone."""
    trainer, _ = train(ModelConfig(64, 25), TrainConfig(optimizer="sgd", lr=0.1, beta=10, rho=0.05, batch_size=64,
                                                        epochs=10))
    before = len(trainer.dead_units())
    assert before >= 5
    trainer.set_budget(epochs=12)
    trainer.resample()
    trainer.run()
    facts = facts_of(trainer, trainer.model.config, data_facts(digits().X))
    assert len(trainer.dead_units()) < before
    assert facts.resampled == (280,)
    assert doctor.dying_units(facts) is None
    assert diagnose(facts) == []  # the dead units' share of J before the resampling is not held against the run


def test_a_run_whose_units_all_die_is_severe_and_says_only_that():
    trainer, facts = train(ModelConfig(64, 25), TrainConfig(optimizer="sgd", lr=0.3, beta=10, rho=0.05,
                                                            batch_size=64, epochs=10))
    found = diagnose(facts)
    assert found[0].rule == "dying_units" and found[0].severity == SEVERE
    assert found[0].sentence.startswith("all 25 units have been dead")
    assert {f.rule for f in found} == {"dying_units"}  # off target and the penalty's share: explained by it


def test_dense_units_offer_a_stronger_beta():
    trainer, facts = sick("dense_units")
    finding = doctor.dense_units(facts)
    assert "units are dense (ρ̂ⱼ > 0.5" in finding.sentence and "β = 0 is too weak" in finding.sentence
    assert finding.fixes[0].changes == {"beta": 1.0} and finding.severity == NOTICE
    assert "rho_hat_off_target" not in {f.rule for f in diagnose(facts)}  # explained by the dense units


def test_mean_rho_hat_off_target_gives_the_ratio():
    trainer, facts = sick("rho_hat_off_target")
    finding = doctor.rho_hat_off_target(facts)
    assert "the target ρ = 0.05 (above it)" in finding.sentence
    assert finding.evidence.reference == 0.05 and finding.fixes[0].changes == {"beta": 0.1}


def test_a_dominating_penalty_offers_a_lower_beta():
    trainer, facts = sick("penalty_dominates")
    finding = doctor.penalty_dominates(facts)
    assert finding.sentence.startswith("β·KL is ") and "β = 50 is too high" in finding.sentence
    assert finding.fixes[0].changes == {"beta": 20.0} and finding.evidence.percent


def test_a_dominating_weight_decay_offers_a_tenth_of_lambda():
    trainer, facts = sick("decay_dominates")
    finding = doctor.decay_dominates(facts)
    assert finding.sentence.startswith("λ = 0.03 has shrunk the weights to ")
    assert "of what outputting the mean input gives" in finding.sentence
    assert finding.fixes[0].changes == {"weight_decay": 0.003}


def test_a_climbing_loss_blames_the_learning_rate():
    trainer, facts = sick("loss_unstable")
    finding = doctor.loss_unstable(facts)
    assert finding.sentence.startswith("J has climbed to ") and "the learning rate 1 is too high" in finding.sentence
    assert finding.fixes[0].changes == {"lr": 0.1} and finding.severity == SEVERE


def test_data_outside_the_sigmoid_decoders_range_needs_a_new_run():
    trainer, facts = sick("data_out_of_range")
    finding = doctor.data_out_of_range(facts)
    X = digits().X.astype(np.float64) * 3
    floor = 0.5 * ((X - np.clip(X, 0, 1)) ** 2).sum(axis=1).mean()
    assert facts.data.clip_floor == pytest.approx(floor)
    assert f"never fall below {floor:.3g}" in finding.sentence
    assert facts.history["reconstruction"][-1] > floor  # the error indeed stays above it
    assert finding.fixes[0].restart == {"decoder_activation": "linear"} and finding.fixes[0].changes is None


def test_a_small_batch_asks_for_a_bigger_one():
    trainer, facts = sick("batch_too_small")
    finding = doctor.batch_too_small(facts)
    assert finding.sentence.startswith("A batch of 8 at ρ = 0.01 holds 0.08 firings")
    assert finding.fixes[0].restart == {"batch_size": 512}


# ------------------------------------------------------------------------------------- synthetic histories

def history(n: int, stride: int = 1, **columns) -> dict[str, np.ndarray]:
    step = np.arange(n, dtype=np.float64) * stride
    base = {"step": step, "total": np.full(n, 2.0), "reconstruction": np.full(n, 1.9), "sparsity": np.full(n, 0.05),
            "weight_decay": np.full(n, 0.05), "rho_hat_mean": np.full(n, 0.1), "rho_hat_max": np.full(n, 0.15),
            "dead": np.zeros(n), "rho": np.full(n, 0.1), "beta": np.full(n, 3.0), "lambda": np.full(n, 1e-3),
            "lr": np.full(n, 0.03)}
    return base | {k: np.asarray(v, dtype=np.float64) for k, v in columns.items()}


def facts(h, s: int = 10, dead_since=None, **config) -> RunFacts:
    step = int(h["step"][-1]) + 1
    return RunFacts(h, step, np.full(s, 0.1), np.full(s, -1) if dead_since is None else np.asarray(dead_since),
                    TrainConfig(rho=0.1, lr=0.03, weight_decay=1e-3, **config), data=DataFacts(mean_error=2.0))


def test_trends_wait_for_enough_steps_after_the_last_change():
    assert window(facts(history(40, stride=2))) is None  # 78 steps < MIN_STEPS
    assert window(facts(history(400))) is not None
    beta = np.r_[np.full(350, 3.0), np.full(50, 10.0)]  # beta changed 50 steps ago
    assert window(facts(history(400, beta=beta))) is None
    beta = np.r_[np.full(100, 3.0), np.full(300, 10.0)]
    rows = window(facts(history(400, beta=beta)))
    assert rows[0] >= 100 and len(rows) == 150 and MIN_STEPS <= 300


def test_trends_start_again_after_a_resampling():
    assert window(replace(facts(history(400)), resampled=(350,))) is None
    assert window(replace(facts(history(400)), resampled=(100,)))[0] >= 100


def test_dying_units_without_a_per_unit_record_read_the_histories_dead_column():
    dead = np.r_[np.zeros(100), np.full(300, 4.0)]
    f = facts(history(400, dead=dead), dead_since=np.empty(0, np.int64))
    finding = doctor.dying_units(f)
    assert finding.sentence.startswith(f"4 of 10 units have been dead (ρ̂ⱼ < ρ/10 = 0.01) for the last {DEAD_STEPS}")
    assert doctor.dying_units(facts(history(400, dead=dead * 0), dead_since=np.empty(0, np.int64))) is None
    short = np.r_[np.zeros(300), np.full(100, 4.0)]  # dead for 100 steps only: not yet
    assert doctor.dying_units(facts(history(400, dead=short), dead_since=np.empty(0, np.int64))) is None


def test_one_unit_in_ten_dead_is_reported_a_brief_dip_is_not():
    since = np.full(10, -1)
    since[3] = 100
    assert doctor.dying_units(facts(history(400), dead_since=since)).headline == "1 of 10 units dead"
    since[3] = 350
    assert doctor.dying_units(facts(history(400), dead_since=since)) is None


def test_a_loss_that_keeps_jumping_is_oscillating():
    rng = np.random.default_rng(0)
    level = np.tile(np.repeat([1.0, 1.45], 50), 3)  # jumps by more than SWING, three times, around a level of ~1.2
    total = level * (1 + 0.02 * rng.standard_normal(300))
    h = history(600, total=np.r_[np.full(300, 1.25), total])
    finding = doctor.loss_unstable(facts(h, optimizer="sgd"))
    assert finding.headline == "J oscillating" and "rose by more than 30% 3 times" in finding.sentence
    assert doctor.loss_unstable(facts(h, optimizer="lbfgs")) is None  # its line search never climbs
    calm = history(600, total=1.0 + 0.02 * rng.standard_normal(600))
    assert doctor.loss_unstable(facts(calm)) is None


def test_a_higher_loss_after_beta_was_raised_is_not_blamed_on_the_learning_rate():
    """J's definition changes with rho, beta and lambda: its best level is taken since the objective last changed."""
    total = np.r_[np.full(300, 1.0), np.full(300, 3.0)]
    h = history(600, total=total, reconstruction=np.full(600, 0.9), beta=np.r_[np.full(300, 3.0), np.full(300, 10.0)])
    assert doctor.loss_unstable(facts(h)) is None
    h = history(600, total=total, reconstruction=np.full(600, 0.9), lr=np.r_[np.full(300, 0.03), np.full(300, 0.3)])
    assert doctor.loss_unstable(facts(h)).headline == "J climbing"  # the learning rate alone changed


def test_diagnose_puts_the_most_serious_first():
    h = history(400, total=np.linspace(1, 3, 400))  # climbing: severe
    f = replace(facts(h, optimizer="adam"), rho_hat=np.full(10, 0.9))  # and every unit dense: a notice
    found = diagnose(f)
    assert [x.severity for x in found] == sorted((x.severity for x in found), reverse=True)
    assert found[0].rule == "loss_unstable"


def test_nothing_is_said_before_the_first_step():
    empty = {c: np.empty(0) for c in history(1)}
    f = RunFacts(empty, 0, np.full(10, np.nan), np.empty(0, np.int64), TrainConfig())
    assert diagnose(f) == []


def test_data_facts_measure_the_range_and_the_errors_out_of_reach():
    X = np.array([[0.0, 2.0], [1.0, -1.0]], dtype=np.float32)
    d = data_facts(X)
    assert (d.low, d.high, d.outside) == (-1.0, 2.0, 0.5)
    assert d.clip_floor == pytest.approx(0.5 * (1 + 1) / 2)
    assert d.mean_error == pytest.approx(0.5 * ((0.25 + 2.25) * 2) / 2)
    assert data_facts(np.random.default_rng(0).random((50, 4))).outside == 0


def test_fixes_propose_numbers_a_person_would_type():
    assert [nice(x) for x in (10 / 3, 50 / 3, 0.09, 3e-2 * 0.1, 0.7, 1.0)] == [3.0, 20.0, 0.1, 0.003, 0.5, 1.0]
