"""The timeline (every live change recorded with its step), rewind to a mark, replay of the schedule, resampling
dead units, and the seed-locked twin (sae.training.timeline, sae.training.trainer, sae.core.resample)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sae import ModelConfig, TrainConfig, Trainer
from sae.core.config import ConfigError
from sae.data import load_dataset
from sae.core.resample import resample_units, worst_reconstructed
from sae.training.timeline import Edit, Timeline, parse_schedule
from sae.training.status import RunStatus


def data(m: int = 240, n: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(0.05, 0.95, size=(m, n)).astype(np.float32)


def trainer(optimizer: str = "adam", **kw) -> Trainer:
    cfg = TrainConfig(optimizer=optimizer, lr=0.01 if optimizer == "adam" else 0.3, batch_size=32, epochs=8,
                      max_iter=40, seed=3, beta=3.0, rho=0.1, **kw)
    return Trainer(data(), ModelConfig(16, 8, decoder_activation="sigmoid"), cfg, snapshot_interval=60.0)


def weights(t: Trainer) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in t.model.state_dict().items()}


def assert_same(a: dict[str, np.ndarray], b: dict[str, np.ndarray], exact: bool = True) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if exact:
            assert np.array_equal(a[k], b[k]), k
        else:
            np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6, err_msg=k)


def edited_run(optimizer: str = "adam") -> Trainer:
    """A run with live changes at steps 10 and 25 and a resampling at 30, to step 45."""
    t = trainer(optimizer)
    t.run(steps=10)
    t.set_hyperparameters(beta=10.0)
    t.run(steps=15)
    t.set_hyperparameters(lr=t.config.lr / 2, rho=0.05)
    t.run(steps=5)
    t.resample([1, 4])
    t.run(steps=15)
    return t


# ------------------------------------------------------------------ the timeline
def test_every_live_change_is_recorded_with_the_step_it_took_effect_at():
    t = edited_run()
    sets = [(e.step, dict(e.changes), dict(e.before)) for e in t.timeline_view().edits if e.kind == "set"]
    assert sets == [(10, {"beta": 10.0}, {"beta": 3.0}), (25, {"lr": 0.005, "rho": 0.05}, {"lr": 0.01, "rho": 0.1})]
    resamples = [(e.step, e.changes["units"]) for e in t.timeline_view().edits if e.kind == "resample"]
    assert resamples == [(30, [1, 4])]
    history = t.history()
    assert history["beta"][history["step"] == 9] == 3.0 and history["beta"][history["step"] == 10] == 10.0


def test_pauses_resumes_and_steps_are_listed_but_not_scheduled():
    t = trainer()
    t.step(3)  # no thread: taken now
    t.pause()
    t.resume()
    kinds = [e.kind for e in t.timeline_view().edits]
    assert kinds == ["step", "pause", "resume"]
    assert t.timeline_view().schedule() == []


def test_an_edit_round_trips_through_json_and_a_malformed_one_is_refused():
    edit = Edit(12, "set", {"beta": 10.0}, {"beta": 3.0})
    assert Edit.from_dict(json.loads(json.dumps(edit.to_dict()))) == edit
    assert edit.label() == "β 3 → 10"
    for bad in ({"step": -1, "kind": "set"}, {"step": 2, "kind": "explode"}, {"kind": "set"},
                {"step": 2, "kind": "set", "changes": {"hidden": 5}}, {"step": 2, "kind": "set", "changes": {"beta": "x"}},
                {"step": 2, "kind": "resample", "changes": {"units": "all"}}):
        with pytest.raises(ConfigError):
            Edit.from_dict(bad)
    assert [e.kind for e in parse_schedule([{"step": 5, "kind": "pause"}, {"step": 3, "kind": "set",
                                                                           "changes": {"beta": 1.0}}])] == ["set"]


def test_checkpoints_stay_within_their_memory_budget_and_the_start_is_kept():
    t = trainer()
    t.run(steps=2)
    t.set_hyperparameters(beta=4.0)
    start, one = t.timeline._checkpoints[0].nbytes, t.timeline._checkpoints[2].nbytes  # (no moments at the start)
    t.timeline.budget = start + 2 * one + 10
    for _ in range(5):
        t.run(steps=2)
        t.set_hyperparameters(beta=t.config.beta + 1)
    steps = t.timeline_view().checkpoints
    assert len(steps) == 3 and steps[0] == 0 and steps[-1] == 12
    with pytest.raises(ConfigError, match="no checkpoint at step 2"):
        t.rewind(2)


# ------------------------------------------------------------------ rewind
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_rewind_restores_the_state_before_the_change_and_continues_exactly(optimizer):
    straight = trainer(optimizer)
    straight.run(steps=40)
    t = trainer(optimizer)
    t.run(steps=20)
    t.set_hyperparameters(beta=30.0)
    t.run(steps=12)
    t.rewind(20)
    assert t.step_count == 20 and t.config.beta == 3.0
    assert t.history()["step"].max() == 19
    assert [e.kind for e in t.timeline_view().edits] == ["rewind"]
    t.run(steps=20)
    assert_same(weights(t), weights(straight))  # weights, moments, random stream and batch order all restored
    np.testing.assert_array_equal(t.history()["total"], straight.history()["total"])


def test_rewind_while_a_thread_waits_paused_publishes_the_rewound_state():
    t = trainer()
    t.start()
    t.pause()
    t.join(0.2)
    deadline = __import__("time").monotonic() + 10
    while t.status != RunStatus.PAUSED and __import__("time").monotonic() < deadline:
        __import__("time").sleep(0.01)
    t.rewind(0)
    deadline = __import__("time").monotonic() + 10
    while t.latest().step != 0 and __import__("time").monotonic() < deadline:
        __import__("time").sleep(0.01)
    assert t.latest().step == 0 and t.latest().status == RunStatus.PAUSED
    t.stop()


# ------------------------------------------------------------------ replay
@pytest.mark.parametrize("optimizer", ["adam", "sgd", "lbfgs"])
def test_replaying_the_schedule_reproduces_the_run(optimizer):
    t = trainer(optimizer)
    t.run(steps=10)
    t.set_hyperparameters(beta=10.0)
    t.run(steps=6)
    if optimizer != "lbfgs":
        t.resample([0, 5])
    t.run(steps=4)
    t.set_hyperparameters(weight_decay=0.001)
    t.run(steps=8)
    schedule = json.loads(json.dumps([e.to_dict() for e in t.timeline_view().schedule()]))
    replay = trainer(optimizer)
    replay = Trainer(data(), ModelConfig(16, 8, decoder_activation="sigmoid"), replay.config, schedule=schedule,
                     snapshot_interval=60.0)
    replay.run(steps=28)
    assert_same(weights(replay), weights(t), exact=False)
    np.testing.assert_allclose(replay.history()["total"], t.history()["total"], rtol=1e-5)


def test_a_rewound_branch_replays_without_the_edits_it_undid():
    t = edited_run()
    t.rewind(25)  # undo the second change and the resampling
    t.set_hyperparameters(beta=1.0)
    t.run(steps=10)
    replay = Trainer(data(), ModelConfig(16, 8, decoder_activation="sigmoid"), trainer().config,
                     schedule=[e.to_dict() for e in t.timeline_view().schedule()], snapshot_interval=60.0)
    replay.run(steps=35)
    assert_same(weights(replay), weights(t), exact=False)


# ------------------------------------------------------------------ resampling
def test_resampled_units_point_at_the_worst_reconstructed_inputs_and_sit_at_rho_on_the_mean():
    t = trainer()
    t.run(steps=20)
    X = t.X
    worst = worst_reconstructed(t.model, X, 2)
    chosen = resample_units(t.model, X, [2, 6], rho=0.1)
    assert torch.equal(chosen, worst)
    with torch.no_grad():
        a_mean = t.model.encode(X.mean(0, keepdim=True))[0]
        a_target = t.model.encode(X[chosen])
    np.testing.assert_allclose(a_mean[[2, 6]].numpy(), [0.1, 0.1], rtol=1e-4)
    assert a_target[0, 2] > 0.1 and a_target[1, 6] > 0.1  # they fire more on the input they point at
    with pytest.raises(ConfigError):
        resample_units(t.model, X, [2, 2], rho=0.1)


def test_resampling_revives_units_killed_by_a_large_beta():
    digits = load_dataset("digits")  # SGD at lr 0.1: beta 10 kills about half the units within 10 epochs
    cfg = TrainConfig(optimizer="sgd", lr=0.1, batch_size=64, epochs=40, seed=0, beta=10.0, rho=0.05)
    t = Trainer(digits.X, ModelConfig(64, 25).for_data(digits.X), cfg, snapshot_interval=60.0)
    t.run(steps=280)
    dead = t.dead_units()
    assert len(dead) >= 5, dead
    assert t.history()["dead"][-1] >= 5
    t.set_hyperparameters(beta=3.0)
    t.resample()
    assert [e.changes["units"] for e in t.timeline_view().edits if e.kind == "resample"] == [dead]
    t.run(steps=280)
    assert len(t.dead_units()) <= len(dead) // 2
    assert t.history()["dead"][-1] <= len(dead) // 2


def test_resample_with_no_dead_unit_says_so():
    t = trainer()
    t.run(steps=5)
    t.resample()
    assert "no unit is dead" in t.action_error


# ------------------------------------------------------------------ the twin
@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_a_twin_with_no_setting_changed_equals_the_run_bit_for_bit(optimizer):
    t = trainer(optimizer)
    t.add_twin(0)
    t.run(steps=10)
    t.set_hyperparameters(beta=8.0)  # the twin follows the run's edits
    t.run(steps=10)
    assert t.twin_latest().step == 20
    twin_weights = {k: v for k, v in t.twin_latest().weights.items()}
    assert_same(twin_weights, t.latest().weights)
    np.testing.assert_array_equal(t.twin_history()["total"], t.history()["total"])


def test_a_twin_forked_at_the_start_later_catches_up_and_then_keeps_lock_step():
    t = trainer()
    t.run(steps=15)
    t.add_twin(0, beta=12.0)
    assert t.twin_latest().step == 0
    t.run(steps=15)  # the twin catches up (15 steps while the run waits), then both go on together
    assert t.twin_latest().step == t.step_count == 30
    assert t.twin_history()["beta"][-1] == 12.0 and t.history()["beta"][-1] == 3.0
    alone = trainer()
    alone.set_hyperparameters(beta=12.0)
    alone.run(steps=30)
    assert_same(t.twin_latest().weights, weights(alone))  # same start, same batches, its own beta


def test_a_twin_sees_the_same_batches_and_promoting_it_makes_it_the_run():
    t = trainer()
    t.run(steps=5)
    t.add_twin(None, beta=20.0)  # from now
    t.run(steps=10)
    twin = t.twin_latest()
    assert twin.hyper["beta"] == 20.0 and not np.array_equal(twin.weights["encoder.weight"],
                                                              t.latest().weights["encoder.weight"])
    t.promote_twin()
    assert t.twin_latest() is None and t.config.beta == 20.0
    assert_same(weights(t), twin.weights)
    kinds = [(e.kind, e.step) for e in t.timeline_view().edits]
    assert ("set", 5) in kinds and kinds[-1] == ("promote", 15)
    t.run(steps=5)
    replay = Trainer(data(), ModelConfig(16, 8, decoder_activation="sigmoid"), trainer().config,
                     schedule=[e.to_dict() for e in t.timeline_view().schedule()], snapshot_interval=60.0)
    replay.run(steps=20)
    assert_same(weights(replay), weights(t), exact=False)


def test_a_twin_refuses_settings_that_cannot_change_live():
    t = trainer()
    with pytest.raises(ConfigError):
        t.add_twin(0, batch_size=8)
    with pytest.raises(ConfigError):
        t.add_twin(0, beta=-1.0)
    with pytest.raises(ConfigError, match="no checkpoint"):
        t.add_twin(7, beta=1.0)


def test_rewind_removes_the_twin():
    t = trainer()
    t.add_twin(0, beta=9.0)
    t.run(steps=6)
    t.rewind(0)
    assert t.twin_latest() is None and t.step_count == 0


def test_timeline_bounds_its_listed_edits():
    timeline = Timeline()
    for i in range(5100):
        timeline.record(Edit(i, "pause"))
    assert len(timeline.edits) == 5000


def test_the_schedule_as_text_round_trips_exactly_and_bad_text_is_refused():
    from sae.training.timeline import parse_schedule_text, schedule_text

    t = edited_run()
    t.rewind(25)
    schedule = t.timeline_view().schedule()
    text = schedule_text(schedule)
    assert text == "10:beta=10.0;25:rewind=45"
    again = parse_schedule_text(text)
    assert [(e.step, e.kind, dict(e.changes)) for e in again] == [(e.step, e.kind, dict(e.changes)) for e in schedule]
    tricky = [Edit(3, "set", {"lr": 0.1 + 0.2, "rho": 1 / 3}), Edit(7, "resample", {"units": [0, 12]})]
    back = parse_schedule_text(schedule_text(tricky))
    assert back[0].changes == {"lr": 0.1 + 0.2, "rho": 1 / 3} and back[1].changes == {"units": [0, 12]}
    for bad in ("x:beta=1", "3:beta", "3:hidden=4", "3:beta=abc", "3:resample=a.b"):
        with pytest.raises(ConfigError, match="cannot read the edit"):
            parse_schedule_text(bad)
    assert parse_schedule_text("") == []


def test_the_timeline_knows_the_settings_the_run_began_with_through_rewinds_and_twins():
    t = trainer()
    first = t.config
    t.run(steps=5)
    t.set_hyperparameters(beta=7.0)
    t.add_twin(0, rho=0.2)
    t.run(steps=5)
    t.promote_twin()
    view = t.timeline_view()
    assert view.start == first and view.start_step == 0
    t.rewind(5)
    assert t.timeline_view().start == first
