"""The Trainer: learning, control from another thread, live changes, divergence, determinism."""

import time

import numpy as np
import pytest
import torch

from sae import ConfigError, ModelConfig, TrainConfig, Trainer
from sae.training.slots import TrainingSlots
from sae.training.status import RunStatus
from sae.training.trainer import RATE_WINDOW, SMALL_STEP_FLOPS
from conftest import wait_for


@pytest.fixture(scope="module")
def X():
    g = torch.Generator().manual_seed(0)
    # low-rank data in [0, 1]: learnable by a small model
    basis = torch.rand(6, 32, generator=g)
    codes = torch.rand(600, 6, generator=g)
    return ((codes @ basis) / 6).numpy()


@pytest.mark.parametrize("optimizer,lr", [("adam", 1e-2), ("sgd", 0.5), ("lbfgs", 1.0)])
def test_loss_falls(X, optimizer, lr):
    trainer = Trainer(X, ModelConfig(32, 16), TrainConfig(optimizer=optimizer, lr=lr, epochs=30, max_iter=60,
                                                          batch_size=64, rho=0.1))
    snap = trainer.run()
    hist = trainer.history()
    assert snap.status == RunStatus.FINISHED
    assert hist["total"][-1] < 0.5 * hist["total"][0]
    assert np.isfinite(hist["total"]).all()


def test_snapshot_contents(X):
    trainer = Trainer(X, ModelConfig(32, 8), TrainConfig(epochs=2, batch_size=100))
    snap = trainer.run()
    assert snap.step == trainer.total_steps == 12 and snap.epoch == pytest.approx(2.0)
    assert set(snap.losses) == {"total", "reconstruction", "sparsity", "weight_decay"}
    assert snap.losses["total"] == pytest.approx(sum(snap.losses[k] for k in ("reconstruction", "sparsity", "weight_decay")))
    assert snap.rho_hat.shape == (8,)
    assert snap.weights["encoder.weight"].shape == (8, 32)
    # the snapshot holds copies, not views of the live parameters
    snap.weights["encoder.weight"][:] = 0
    assert trainer.model.encoder.weight.abs().sum() > 0
    assert snap.samples_per_s > 0 and snap.elapsed > 0
    assert "finished" in snap.reason


def test_background_pause_resume_step_stop(X):
    trainer = Trainer(X, ModelConfig(32, 8), TrainConfig(epochs=10_000, batch_size=32), snapshot_interval=0.02)
    trainer.start()
    assert wait_for(lambda: trainer.step_count > 20)
    trainer.pause()
    assert wait_for(lambda: trainer.latest().status == RunStatus.PAUSED)
    paused_at = trainer.step_count
    time.sleep(0.3)
    assert trainer.step_count == paused_at  # pause stops the steps
    trainer.step(3)
    assert wait_for(lambda: trainer.step_count == paused_at + 3)
    time.sleep(0.2)
    assert trainer.step_count == paused_at + 3 and trainer.latest().status == RunStatus.PAUSED
    trainer.resume()
    assert wait_for(lambda: trainer.step_count > paused_at + 20)
    assert trainer.latest().status == RunStatus.RUNNING
    trainer.stop()
    trainer.join(5)
    assert not trainer.is_alive
    assert trainer.latest().status == RunStatus.STOPPED and "user" in trainer.latest().reason


def test_live_beta_change_takes_effect(X):
    trainer = Trainer(X, ModelConfig(32, 8), TrainConfig(epochs=10_000, batch_size=64, beta=0.0, rho=0.05),
                      snapshot_interval=0.01)
    trainer.start()
    assert wait_for(lambda: trainer.step_count > 5)
    assert trainer.latest().losses.get("sparsity", 0.0) == 0.0 or trainer.latest().hyper["beta"] == 0.0
    trainer.set_hyperparameters(beta=5.0, lr=0.02)
    assert wait_for(lambda: trainer.latest().hyper["beta"] == 5.0 and trainer.latest().losses["sparsity"] > 0)
    assert trainer.optimizer.param_groups[0]["lr"] == 0.02
    trainer.stop()
    trainer.join(5)
    hist = trainer.history()
    assert hist["beta"][0] == 0.0 and hist["beta"][-1] == 5.0
    assert (hist["sparsity"][hist["beta"] == 0.0] == 0).all()
    assert (hist["sparsity"][hist["beta"] == 5.0] > 0).all()


def test_live_change_drives_rho_hat_towards_new_target(X):
    trainer = Trainer(X, ModelConfig(32, 8), TrainConfig(epochs=60, batch_size=64, rho=0.3, beta=3.0, lr=0.02))
    trainer.run(steps=300)
    high = trainer.latest().rho_hat.mean()
    trainer.set_hyperparameters(rho=0.02)
    trainer.run(steps=400)
    assert trainer.latest().rho_hat.mean() < 0.5 * high


@pytest.mark.parametrize("change,match", [(dict(rho=0.0), "rho"), (dict(beta=-1.0), "beta"),
                                          (dict(lr=0.0), "learning rate"), (dict(n_hidden=5), "restart")])
def test_bad_live_change_refused_and_nothing_changes(X, change, match):
    trainer = Trainer(X, ModelConfig(32, 8), TrainConfig())
    with pytest.raises(ConfigError, match=match):
        trainer.set_hyperparameters(**change)
    assert trainer.config == TrainConfig()


def test_divergence_stops_and_keeps_last_finite_weights(X):
    trainer = Trainer(X * 50, ModelConfig(32, 8, decoder_activation="linear"),
                      TrainConfig(optimizer="sgd", lr=10.0, momentum=0.9, epochs=100, batch_size=64, beta=0.0),
                      snapshot_interval=0.0)
    trainer.start()
    assert wait_for(lambda: trainer.latest().status == RunStatus.DIVERGED)
    snap = trainer.latest()
    assert "diverged" in snap.reason and "learning rate" in snap.reason
    for name, p in trainer.model.named_parameters():
        assert torch.isfinite(p).all()
        np.testing.assert_array_equal(p.detach().numpy(), snap.weights[name])
    assert trainer.is_alive  # waiting: the user may lower the rate and resume
    trainer.set_hyperparameters(lr=1e-4)
    step = trainer.step_count
    trainer.resume()
    assert wait_for(lambda: trainer.step_count > step + 20)
    assert np.isfinite(trainer.latest().losses["total"])
    trainer.stop()
    trainer.join(5)


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_seed_makes_runs_reproducible(X, optimizer):
    def run(seed):
        trainer = Trainer(X, ModelConfig(32, 8), TrainConfig(optimizer=optimizer, epochs=3, max_iter=15, seed=seed))
        trainer.run()
        return trainer.model.encoder.weight.detach().clone(), trainer.history()["total"]

    (w1, h1), (w2, h2), (w3, _) = run(1), run(1), run(2)
    torch.testing.assert_close(w1, w2, rtol=0, atol=0)
    np.testing.assert_array_equal(h1, h2)
    assert not torch.equal(w1, w3)


def test_history_stays_bounded_over_a_long_run(X):
    trainer = Trainer(X, ModelConfig(32, 4), TrainConfig(epochs=1000, batch_size=600), history_capacity=100)
    trainer.run()
    hist = trainer.history()
    assert len(hist["step"]) <= 100
    assert hist["step"][0] == 0 and hist["step"][-1] > 900  # spans the whole run
    assert np.all(np.diff(hist["step"]) > 0)


def test_ema_rho_hat_option(X):
    trainer = Trainer(X, ModelConfig(32, 8), TrainConfig(epochs=5, batch_size=32, rho_hat="ema", ema_decay=0.9))
    snap = trainer.run()
    assert np.isfinite(snap.losses["total"]) and snap.rho_hat.shape == (8,)


def test_lbfgs_follows_torch_lbfgs_iteration_by_iteration(X):
    """Same algorithm as torch.optim.LBFGS (strong Wolfe, history 100, same first step): in float64 the
    two paths agree to rounding for tens of iterations. (Later they part ways as any two float
    implementations of L-BFGS on this non-convex objective do: bench/ufldl_lbfgs.py shows the growth.)"""
    from sae import sparse_autoencoder_loss
    cfg = TrainConfig(optimizer="lbfgs", max_iter=200, rho=0.1, beta=3.0, weight_decay=1e-3, seed=0)
    ours = Trainer(X, ModelConfig(32, 8), cfg)
    reference = Trainer(X, ModelConfig(32, 8), cfg).model.to(torch.float64)
    X64 = torch.as_tensor(X, dtype=torch.float64)
    opt = torch.optim.LBFGS(reference.parameters(), lr=1, max_iter=1, max_eval=10 ** 6, history_size=100,
                            line_search_fn="strong_wolfe", tolerance_grad=1e-9, tolerance_change=1e-12)

    def closure():
        opt.zero_grad()
        loss = sparse_autoencoder_loss(reference, X64, 0.1, 3.0, 1e-3)["total"]
        loss.backward()
        return loss

    first = None
    for _ in range(30):
        ours.run(steps=1)
        opt.step(closure)
        ref_cost = sparse_autoencoder_loss(reference, X64, 0.1, 3.0, 1e-3)["total"].item()
        first = first or ref_cost
        assert ours._lbfgs.f == pytest.approx(ref_cost, rel=1e-9)
    assert ref_cost < 0.5 * first  # it did move
    assert ours._lbfgs.x.dtype == torch.float64 and ours.model.encoder.weight.dtype == torch.float32


def test_incompatible_configs_refused(X):
    with pytest.raises(ConfigError, match="ReLU"):
        Trainer(X, ModelConfig(32, 8, activation="relu"), TrainConfig(penalty="kl"))
    with pytest.raises(ConfigError, match="inputs"):
        Trainer(X, ModelConfig(10, 8), TrainConfig())
    with pytest.raises(ConfigError, match="NaN"):
        Trainer(np.full((4, 32), np.nan), ModelConfig(32, 8), TrainConfig())
    with pytest.raises(ConfigError, match="2-D"):
        Trainer(np.zeros(32), ModelConfig(32, 8), TrainConfig())


def test_batch_larger_than_data_is_capped(X):
    trainer = Trainer(X[:50], ModelConfig(32, 8), TrainConfig(batch_size=10_000, epochs=3))
    assert trainer.batch_size == 50 and trainer.run().step == 3


def test_on_snapshot_callback_receives_increasing_versions(X):
    seen = []
    trainer = Trainer(X, ModelConfig(32, 8), TrainConfig(epochs=20, batch_size=32), on_snapshot=seen.append,
                      snapshot_interval=0.0)
    trainer.run()
    versions = [s.version for s in seen]
    assert versions == sorted(versions) and len(set(versions)) == len(versions)
    assert seen[-1].status == RunStatus.FINISHED


def test_slots_cap_concurrent_runs_and_queue_the_rest(X):
    from sae.training.slots import TrainingSlots

    slots = TrainingSlots(1)
    first = Trainer(X, ModelConfig(32, 8), TrainConfig(epochs=10_000, batch_size=32), slots=slots)
    second = Trainer(X, ModelConfig(32, 8), TrainConfig(epochs=10_000, batch_size=32), slots=slots)
    first.start()
    assert wait_for(lambda: first.step_count > 5)
    second.start()
    assert wait_for(lambda: second.latest().status == RunStatus.QUEUED)
    assert "0 runs ahead" in second.latest().reason and second.step_count == 0
    first.pause()  # a paused run gives its slot back
    assert wait_for(lambda: second.step_count > 5)
    assert slots.running == 1 and slots.position(second) == 0
    first.resume()
    assert wait_for(lambda: first.latest().status == RunStatus.QUEUED)
    second.stop()
    second.join(5)
    assert wait_for(lambda: first.latest().status == RunStatus.RUNNING)
    first.stop()
    first.join(5)
    assert slots.running == 0 and slots.waiting == 0


def test_stop_while_queued_leaves_the_line(X):
    from sae.training.slots import TrainingSlots

    slots = TrainingSlots(1)
    holder = object()
    slots.acquire(holder)
    trainer = Trainer(X, ModelConfig(32, 8), TrainConfig(epochs=10), slots=slots)
    trainer.start()
    assert wait_for(lambda: slots.waiting == 1)
    trainer.stop()
    trainer.join(5)
    assert not trainer.is_alive and slots.waiting == 0 and trainer.latest().status == RunStatus.STOPPED


def test_history_keeps_loss_terms_and_settings_apart(X):
    trainer = Trainer(X, ModelConfig(32, 8), TrainConfig(epochs=2, batch_size=100, weight_decay=1e-2))
    trainer.run()
    hist = trainer.history()
    assert (hist["lambda"] == 1e-2).all()
    assert (hist["weight_decay"] > 0).all() and not np.allclose(hist["weight_decay"], 1e-2)
    np.testing.assert_allclose(hist["total"], hist["reconstruction"] + hist["sparsity"] + hist["weight_decay"],
                               rtol=1e-5)


def test_continue_a_saved_run_keeps_step_and_history(X):
    first = Trainer(X, ModelConfig(32, 8), TrainConfig(epochs=2, batch_size=100))
    first.run()
    saved = first.history()
    second = Trainer(X, ModelConfig(32, 8), TrainConfig(epochs=4, batch_size=100), model=first.model,
                     start_step=first.step_count, history=saved)
    second.run()
    hist = second.history()
    assert second.step_count == 24
    np.testing.assert_array_equal(hist["step"][:len(saved["step"])], saved["step"])
    assert hist["step"][-1] == 23
    with pytest.raises(ConfigError, match="lacks"):
        Trainer(X, ModelConfig(32, 8), TrainConfig(), history={"step": np.arange(3.0)})


def test_a_failing_callback_does_not_kill_training(X):
    def broken(snapshot):
        raise RuntimeError("observer bug")

    with pytest.warns(RuntimeWarning, match="observer bug"):
        trainer = Trainer(X, ModelConfig(32, 8), TrainConfig(epochs=3, batch_size=100), on_snapshot=broken)
    trainer.start()
    trainer.join(20)
    assert trainer.latest().status == RunStatus.FINISHED and isinstance(trainer.callback_error, RuntimeError)


def test_a_slow_callback_does_not_block_control_calls(X):
    def slow(snapshot):
        if snapshot.status == RunStatus.PAUSED:
            time.sleep(1.0)

    trainer = Trainer(X, ModelConfig(32, 8), TrainConfig(epochs=10_000, batch_size=32), on_snapshot=slow)
    trainer.start()
    assert wait_for(lambda: trainer.step_count > 5)
    trainer.pause()
    assert wait_for(lambda: trainer.latest().status == RunStatus.PAUSED)  # published before the callback runs
    t = time.perf_counter()
    trainer.history()
    trainer.stop()
    assert time.perf_counter() - t < 0.5
    trainer.join(5)


def test_stop_before_start_publishes_the_stop(X):
    trainer = Trainer(X, ModelConfig(32, 8), TrainConfig())
    assert not trainer.started
    trainer.stop("reset by the user")
    assert trainer.latest().status == RunStatus.STOPPED and trainer.latest().reason == "reset by the user"


@pytest.mark.parametrize("threads,big,expected", [(None, False, 1), (2, False, 2), (None, True, "caller")])
def test_training_thread_sets_its_own_torch_threads(X, threads, big, expected):
    """A small step trains on one thread inside the background thread; the caller's count is untouched."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen = []
        # big: one full-batch L-BFGS step over 2,000 x 784 -> 196, about 3 GFLOP
        data = np.random.default_rng(0).random((2000, 784), dtype=np.float32) if big else X
        config = TrainConfig(optimizer="lbfgs", max_iter=1) if big else TrainConfig(epochs=1, batch_size=256)
        trainer = Trainer(data, ModelConfig(784, 196) if big else ModelConfig(32, 8), config, threads=threads,
                          on_snapshot=lambda snap: seen.append((snap.status, torch.get_num_threads())))
        assert (trainer.step_flops() >= SMALL_STEP_FLOPS) == big
        trainer.start()
        trainer.join(60)
        assert trainer.latest().status == RunStatus.FINISHED
        assert {n for status, n in seen if status != "idle"} == {2 if expected == "caller" else expected}
        assert torch.get_num_threads() == 2  # the calling thread keeps its own
    finally:
        torch.set_num_threads(before)


def test_threads_must_be_positive(X):
    with pytest.raises(ConfigError, match="threads"):
        Trainer(X, ModelConfig(32, 8), TrainConfig(), threads=0)


def test_rate_is_measured_over_a_window_not_one_slow_step(X):
    """A single step slowed down (the GIL taken by a page redraw) right after a snapshot must not show as
    the training rate: measured over that step alone it would read ~1/100 of the steady rate."""
    trainer = Trainer(X, ModelConfig(32, 8), TrainConfig(epochs=5000, batch_size=50), snapshot_interval=0.05)
    trainer.start()
    assert wait_for(lambda: trainer.latest().samples_per_s > 0)
    time.sleep(1.2)
    steady = trainer.latest().samples_per_s
    original, armed = trainer._fused.loss_and_grad, []

    def slow_after_a_snapshot(*args, **kwargs):
        if armed:
            armed.clear()
            time.sleep(0.04)
        return original(*args, **kwargs)

    rates = []
    trainer._fused.loss_and_grad = slow_after_a_snapshot
    trainer.on_snapshot = lambda snap: armed.append(1) if len(rates) < 5 else None
    end = time.time() + 0.6
    while time.time() < end:
        rates.append(trainer.latest().samples_per_s)
        time.sleep(0.005)
    trainer.stop()
    trainer.join(10)
    assert min(rates) > steady / 5


def _rate_ratios(trainer: Trainer, batch: int, samples: int, interval: float = RATE_WINDOW) -> list[float]:
    """The published samples/s over the rate measured from the snapshots themselves, (step delta x batch) /
    (training-time delta), on ``samples`` successive samples ``interval`` s apart."""
    ratios, previous = [], trainer.latest()
    for _ in range(samples):
        time.sleep(interval)
        snap = trainer.latest()
        if snap.elapsed > previous.elapsed:
            measured = (snap.step - previous.step) * batch / (snap.elapsed - previous.elapsed)
            ratios.append(snap.samples_per_s / measured)
        previous = snap
    return ratios


def test_rate_follows_the_measured_rate_with_a_training_slot_held(X):
    """A server's trainers hold a training slot. Holding it restarted the rate clock before every step, so the
    status kept its first figure for the whole run ('2k' on a run doing 25k samples/s). Here the steps slow
    down ~50x halfway: the published rate must follow, within a factor of 2 on every sample (samples are taken
    once the meter's trailing window has passed since the change)."""
    batch = 50
    trainer = Trainer(X, ModelConfig(32, 8), TrainConfig(epochs=1e6, batch_size=batch), snapshot_interval=0.05,
                      slots=TrainingSlots(1))
    original, delay = trainer._fused.loss_and_grad, []

    def maybe_slow(*args, **kwargs):
        if delay:
            time.sleep(delay[0])
        return original(*args, **kwargs)

    trainer._fused.loss_and_grad = maybe_slow
    trainer.start()
    try:
        assert wait_for(lambda: trainer.latest().samples_per_s > 0)
        time.sleep(RATE_WINDOW)
        fast = _rate_ratios(trainer, batch, 3)
        delay.append(0.003)
        time.sleep(RATE_WINDOW + 0.5)  # the meter's trailing window has passed since the change
        slow = _rate_ratios(trainer, batch, 3)
    finally:
        trainer.stop()
        trainer.join(10)
    assert len(fast) == len(slow) == 3
    assert all(0.5 <= r <= 2.0 for r in fast + slow), (fast, slow)


def test_rate_while_paused_or_queued_is_zero(X):
    """A paused run trains no samples: its status must not repeat the last running figure ('18k' while paused).
    Choice: 0 while paused, queued, diverged or stopped; a finished run keeps the rate of its last window."""
    slots = TrainingSlots(1)
    trainer = Trainer(X, ModelConfig(32, 8), TrainConfig(epochs=1e6, batch_size=50), snapshot_interval=0.05,
                      slots=slots)
    other = Trainer(X, ModelConfig(32, 8), TrainConfig(epochs=1e6, batch_size=50), snapshot_interval=0.05,
                    slots=slots)
    trainer.start()
    try:
        assert wait_for(lambda: trainer.latest().samples_per_s > 0)
        trainer.pause()
        assert wait_for(lambda: trainer.latest().status == RunStatus.PAUSED)
        assert trainer.latest().samples_per_s == 0.0
        other.start()
        assert wait_for(lambda: other.latest().status == RunStatus.RUNNING and other.latest().samples_per_s > 0)
        trainer.resume()
        assert wait_for(lambda: trainer.latest().status == RunStatus.QUEUED)
        assert trainer.latest().samples_per_s == 0.0
    finally:
        for t in (trainer, other):
            t.stop()
            t.join(10)
    finished = Trainer(X, ModelConfig(32, 8), TrainConfig(epochs=3, batch_size=50)).run()
    assert finished.status == RunStatus.FINISHED and finished.samples_per_s > 0
