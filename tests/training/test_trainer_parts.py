"""The Trainer's parts used on their own: minibatch sampling, the rate meter, the run control, divergence
handling and the input checks (sae.training.batches, throughput, control, divergence, inputs)."""

import threading
import time

import numpy as np
import pytest
import torch

from sae import ConfigError, ModelConfig, TrainConfig
from sae.core.loss import LOSS_TERMS
from sae.training.batches import MinibatchSampler
from sae.training.control import RunControl
from sae.training.divergence import LastSound, divergence_reason
from sae.training.inputs import history_columns, new_model, steps_per_epoch, total_steps
from sae.training.snapshot import HISTORY_COLUMNS, Snapshot, take_snapshot
from sae.training.status import RunStatus
from sae.training.throughput import ThroughputMeter


# ----------------------------------------------------------------------------- minibatches

def test_each_epoch_is_a_fresh_permutation_cut_into_full_batches():
    X = torch.arange(23, dtype=torch.float32).repeat(3, 1).t().contiguous()  # row i is (i, i, i)
    sampler = MinibatchSampler(X, 5, steps_per_epoch=4, generator=torch.Generator().manual_seed(3))
    expected = torch.Generator().manual_seed(3)
    epochs = []
    for epoch in range(2):
        perm = torch.randperm(23, generator=expected)
        rows = []
        for step in range(epoch * 4, epoch * 4 + 4):
            batch = sampler.batch(step)
            assert batch.shape == (5, 3)
            rows.append(batch[:, 0].clone())
        rows = torch.cat(rows).long()
        assert torch.equal(rows, perm[:20])  # the same stream as torch.randperm; 3 rows left out
        assert len(set(rows.tolist())) == 20
        epochs.append(rows)
    assert not torch.equal(epochs[0], epochs[1])


def test_batches_share_one_buffer():
    X = torch.rand(40, 6)
    sampler = MinibatchSampler(X, 8, steps_per_epoch=5, generator=torch.Generator().manual_seed(0))
    first = sampler.batch(0)
    pointer, copy = first.data_ptr(), first.clone()
    second = sampler.batch(1)
    assert second.data_ptr() == pointer and not torch.equal(first, copy)  # valid until the next call


# ----------------------------------------------------------------------------- rate

class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_rate_covers_the_trailing_window():
    clock = FakeClock()
    meter = ThroughputMeter(window=1.0, clock=clock)
    assert meter.measure(0, 0.0, 10) == 0.0  # no training yet
    clock.now = 0.5
    assert meter.measure(20, 0.4, 10) == pytest.approx(500.0)  # 20 x 10 samples / 0.4 s
    clock.now = 0.8
    assert meter.measure(22, 0.7, 10) == pytest.approx(220 / 0.7)  # within the first window: all since the start
    clock.now = 1.6
    assert meter.measure(60, 1.4, 10) == pytest.approx(400 / 1.0)  # base: the mark at 0.5, (60-20) x 10 / (1.4-0.4)
    clock.now = 1.7
    assert meter.measure(60, 1.4, 10) == pytest.approx(400.0)  # the same window: the same figure
    clock.now = 2.0
    assert meter.measure(70, 1.6, 10) == pytest.approx(480 / 0.9)  # base: the mark at 0.8 (the newest >= 1 s old)


def test_rate_moves_with_every_publication():
    """Today's figure, not the first one: the figure follows a slowdown within a window of wall clock."""
    clock = FakeClock()
    meter = ThroughputMeter(window=1.0, clock=clock)
    step, elapsed, rates = 0, 0.0, []
    for k in range(60):  # 0.1 s publications; 100 steps per 0.1 s of training, then 10
        clock.now += 0.1
        step += 100 if k < 30 else 10
        elapsed += 0.1
        rates.append(meter.measure(step, elapsed, 1))
    assert rates[25] == pytest.approx(1000.0) and rates[-1] == pytest.approx(100.0)


def test_rate_after_a_pause_counts_training_time_only():
    clock = FakeClock()
    meter = ThroughputMeter(window=1.0, clock=clock)
    clock.now = 2.0
    meter.measure(10, 1.0, 4)
    clock.now = 100.0  # a long pause, then the trainer restarts the clock
    meter.restart(10, 1.0)
    clock.now = 101.5
    assert meter.measure(30, 2.0, 4) == pytest.approx(20 * 4 / 1.0)
    clock.now = 101.6
    assert meter.measure(31, 2.05, 4) == pytest.approx(21 * 4 / 1.05)  # base: the restart mark (1.6 s old)


# ----------------------------------------------------------------------------- control

def test_requested_steps_then_idle():
    control = RunControl()
    assert not control.idle()  # not paused
    control.request_steps(2)
    assert control.paused and not control.idle()
    control.take_step()
    control.take_step()
    assert control.idle()
    control.request_steps(1)
    control.pause(cancel_steps=False)
    assert not control.idle()
    control.pause()
    assert control.idle() and control.requested_steps == 0


def test_wait_while_idle_wakes_on_stop_and_on_resume():
    control = RunControl()
    control.pause()
    threading.Timer(0.05, control.stop, args=("bye",)).start()
    t = time.perf_counter()
    assert control.wait_while_idle() == "bye" and time.perf_counter() - t < 0.4
    control = RunControl()
    control.pause()
    threading.Timer(0.05, control.resume).start()
    assert control.wait_while_idle() is None and not control.paused


def test_changes_are_queued_and_taken_once():
    control = RunControl()
    control.queue_changes({"rho": 0.1, "lr": 0.01})
    control.queue_changes({"rho": 0.2})
    assert control.take_changes() == {"rho": 0.2, "lr": 0.01}
    assert control.take_changes() == {}


# ----------------------------------------------------------------------------- divergence

def snap(model, step: int, total: float | None) -> Snapshot:
    terms = None if total is None else {**{k: torch.tensor(total) for k in LOSS_TERMS}, "rho_hat": torch.rand(4)}
    return take_snapshot(model, terms, TrainConfig(), step=step, epoch=0.0, samples_per_s=0.0, elapsed=0.0,
                         status=RunStatus.RUNNING, reason="", version=step)


def test_last_sound_keeps_finite_losses_near_the_best_and_restores_them():
    model = new_model(ModelConfig(12, 4, decoder_activation="sigmoid"), seed=0)
    sound = LastSound()
    sound.offer(snap(model, 0, None))  # the first one always
    assert sound.snapshot.step == 0
    sound.offer(snap(model, 1, 2.0))
    sound.offer(snap(model, 2, 1.0))
    sound.offer(snap(model, 3, 15.0))  # more than 10x the best
    sound.offer(snap(model, 4, float("nan")))
    assert sound.snapshot.step == 2
    kept = sound.snapshot.weights["encoder.weight"].copy()
    with torch.no_grad():
        model.encoder.weight.fill_(float("nan"))
    assert sound.restore(model).step == 2
    np.testing.assert_array_equal(model.encoder.weight.detach().numpy(), kept)


def test_last_sound_judges_by_the_best_loss_of_any_step_not_only_of_published_ones():
    """Snapshots are published by the clock: the first one with losses may come when the loss has already grown
    a hundred-fold over the best step's. Judged only against published losses it would be kept, and the weights
    restored after divergence would depend on the machine's speed."""
    model = new_model(ModelConfig(12, 4, decoder_activation="sigmoid"), seed=0)
    sound = LastSound()
    sound.offer(snap(model, 0, None), best=np.inf)
    sound.offer(snap(model, 5, 3e7), best=8e4)  # steps 1-4 (unpublished) had losses near 8e4
    assert sound.snapshot.step == 0
    sound.offer(snap(model, 6, 5e5), best=8e4)  # within 10x of the best step
    assert sound.snapshot.step == 6


def test_divergence_reason_names_the_terms_the_cause_and_the_remedy():
    terms = {"total": torch.tensor(float("nan")), "reconstruction": torch.tensor(1.5),
             "sparsity": torch.tensor(float("nan")), "weight_decay": torch.tensor(0.25)}
    reason = divergence_reason(terms, 12, TrainConfig(lr=0.5), kept_step=10)
    assert reason == ("diverged: the loss became NaN at step 12 (reconstruction 1.5, sparsity nan, weight_decay 0.25); "
                      "the learning rate 0.5 is probably too high: lower it and resume. "
                      "Kept the weights of step 10, the last with a sound loss; the losses shown are theirs.")
    inf = {k: torch.tensor(float("inf")) for k in LOSS_TERMS}
    assert "became infinite" in divergence_reason(inf, 3, TrainConfig(optimizer="lbfgs"), 0)
    assert "line search" in divergence_reason(inf, 3, TrainConfig(optimizer="lbfgs"), 0)
    at_start = divergence_reason(inf, 0, TrainConfig(), 0)
    assert "initial weights" in at_start and "Kept" not in at_start


# ----------------------------------------------------------------------------- inputs

def test_total_steps_and_steps_per_epoch():
    assert steps_per_epoch(TrainConfig(batch_size=32), 100) == 3
    assert total_steps(TrainConfig(batch_size=32, epochs=2), 100) == 6
    assert total_steps(TrainConfig(batch_size=32, epochs=0.1), 100) == 1  # at least one step
    assert total_steps(TrainConfig(optimizer="lbfgs", max_iter=40), 100) == 40


def test_new_model_is_seeded():
    a, b = new_model(ModelConfig(12, 4, decoder_activation="sigmoid"), 5), new_model(ModelConfig(12, 4, decoder_activation="sigmoid"), 5)
    assert torch.equal(a.encoder.weight, b.encoder.weight)
    assert not torch.equal(a.encoder.weight, new_model(ModelConfig(12, 4, decoder_activation="sigmoid"), 6).encoder.weight)
    with pytest.raises(ConfigError, match="model_config"):
        new_model(None, 0)


def test_history_columns_keeps_the_known_columns_and_names_the_missing():
    saved = {c: np.arange(3.0) for c in HISTORY_COLUMNS} | {"extra": np.zeros(3)}
    assert list(history_columns(saved)) == list(HISTORY_COLUMNS)
    with pytest.raises(ConfigError, match="lacks the column\\(s\\) lambda, lr"):
        history_columns({c: v for c, v in saved.items() if c not in ("lr", "lambda")})
