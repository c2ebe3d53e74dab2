"""sae.training.full_batch: the full-batch L-BFGS driver used on its own (the Trainer's L-BFGS tests use it too)."""

import numpy as np
import pytest
import torch

from sae import ModelConfig, SparseAutoencoder, TrainConfig, sparse_autoencoder_loss
from sae.core.model import flat_parameters, load_flat_parameters
from sae.training import full_batch
from sae.training.full_batch import LBFGS_MEMORY_BYTES, FullBatchLBFGS

CFG = TrainConfig(optimizer="lbfgs", rho=0.1, beta=3.0, weight_decay=1e-3)


@pytest.fixture
def X():
    g = torch.Generator().manual_seed(1)
    return (torch.rand(200, 4, generator=g) @ torch.rand(4, 16, generator=g)) / 4  # low-rank, in [0, 1]


def model(seed: int = 0) -> SparseAutoencoder:
    m = SparseAutoencoder.from_config(ModelConfig(16, 5, decoder_activation="sigmoid"))
    m.reset_parameters(torch.Generator().manual_seed(seed))
    return m


def loss64(m: SparseAutoencoder, X: torch.Tensor, cfg: TrainConfig = CFG, theta: torch.Tensor | None = None) -> float:
    """J in float64 at the model's weights (or at theta (p,))."""
    twin = SparseAutoencoder.from_config(m.config).to(torch.float64)
    load_flat_parameters(twin, flat_parameters(m).to(torch.float64) if theta is None else theta)
    return sparse_autoencoder_loss(twin, X.to(torch.float64), cfg.rho, cfg.beta, cfg.weight_decay)["total"].item()


@pytest.mark.parametrize("fused", [True, False])
def test_iterations_lower_the_float64_loss_and_update_the_float32_model(X, fused):
    m = model()
    start = loss64(m, X)
    driver = FullBatchLBFGS(m, X, CFG, fused=fused)
    assert driver.lbfgs is None and driver.converged == ""  # nothing evaluated before the first iteration
    previous = None
    for _ in range(15):
        terms = driver.iterate()
        # the terms returned are those of the point the iteration started from
        assert terms["total"].item() == pytest.approx(start if previous is None else previous, rel=1e-12)
        assert terms["total"].dtype == torch.float64 and terms["rho_hat"].shape == (5,)
        previous = driver.lbfgs.f
        assert driver.lbfgs.x.dtype == torch.float64 and m.encoder.weight.dtype == torch.float32
        torch.testing.assert_close(flat_parameters(m), driver.lbfgs.x.to(torch.float32), rtol=0, atol=0)
        assert driver.lbfgs.f == pytest.approx(loss64(m, X, theta=driver.lbfgs.x), rel=1e-12)
    assert driver.lbfgs.f < 0.5 * start


def test_fused_and_autograd_evaluations_agree(X):
    """The fused pass (X^T, parameters as views of one vector) and autograd follow the same path."""
    drivers = [FullBatchLBFGS(model(), X, CFG, fused=fused) for fused in (True, False)]
    for _ in range(8):
        for d in drivers:
            d.iterate()
        assert drivers[0].lbfgs.f == pytest.approx(drivers[1].lbfgs.f, rel=1e-9)
    assert drivers[0]._X64.shape == (16, 200) and drivers[1]._X64.shape == (200, 16)  # X^T for the fused pass


def test_reset_re_evaluates_under_the_new_objective_and_drops_the_pairs(X):
    m = model()
    driver = FullBatchLBFGS(m, X, CFG)
    for _ in range(5):
        driver.iterate()
    assert driver.lbfgs.pairs_kept > 0
    x, evaluations = driver.lbfgs.x.clone(), driver.lbfgs.evaluations
    changed = TrainConfig(optimizer="lbfgs", rho=0.1, beta=6.0, weight_decay=1e-3)
    driver.reset(changed)
    assert driver.config is changed and driver.lbfgs.pairs_kept == 0
    assert driver.lbfgs.evaluations == evaluations + 1 and torch.equal(driver.lbfgs.x, x)
    assert driver.lbfgs.f == pytest.approx(loss64(m, X, changed, theta=x), rel=1e-12)
    terms = driver.iterate()  # starts from the re-evaluated point
    assert terms["total"].item() == pytest.approx(loss64(m, X, changed, theta=x), rel=1e-12)


def test_reset_before_the_first_iteration_only_changes_the_objective(X):
    m = model()
    driver = FullBatchLBFGS(m, X, CFG)
    changed = TrainConfig(optimizer="lbfgs", rho=0.05, beta=1.0, weight_decay=1e-4)
    driver.reset(changed)
    assert driver.lbfgs is None
    expected = loss64(m, X, changed)
    assert driver.iterate()["total"].item() == pytest.approx(expected, rel=1e-12)


def test_restart_starts_again_from_the_models_weights(X):
    m = model()
    driver = FullBatchLBFGS(m, X, CFG)
    for _ in range(3):
        driver.iterate()
    old_twin = driver.twin
    with torch.no_grad():
        m.load_state_dict(model(seed=7).state_dict())  # e.g. the last sound weights after a divergence
    driver.restart()
    assert driver.lbfgs is None
    terms = driver.iterate()
    assert driver.twin is not old_twin and driver.lbfgs.pairs_kept == 1
    assert terms["total"].item() == pytest.approx(loss64(model(seed=7), X), rel=1e-12)


def test_non_finite_start_is_reported_without_iterating(X):
    m = model()
    with torch.no_grad():
        m.encoder.weight[0, 0] = float("nan")
    driver = FullBatchLBFGS(m, X, CFG)
    terms = driver.iterate()
    assert not torch.isfinite(terms["total"]) and driver.lbfgs.evaluations == 1  # the start only


def test_memory_cap_sets_the_number_of_curvature_pairs(X, monkeypatch):
    p = 2 * 16 * 5 + 5 + 16
    driver = FullBatchLBFGS(model(), X, CFG)
    driver.iterate()
    assert LBFGS_MEMORY_BYTES // (2 * p * 8) > 100 and driver.lbfgs.history_size == 100  # minFunc's 100 fit
    monkeypatch.setattr(full_batch, "LBFGS_MEMORY_BYTES", 2 * p * 8 * 37)
    driver = FullBatchLBFGS(model(), X, CFG)
    driver.iterate()
    assert driver.lbfgs.history_size == 37
    monkeypatch.setattr(full_batch, "LBFGS_MEMORY_BYTES", 1)
    driver = FullBatchLBFGS(model(), X, CFG)
    driver.iterate()
    assert driver.lbfgs.history_size == 10  # never fewer


def test_a_trainer_drives_it_and_reads_its_convergence(X):
    from sae import Trainer

    trainer = Trainer(X, ModelConfig(16, 5), TrainConfig(optimizer="lbfgs", max_iter=5, seed=0))
    assert isinstance(trainer.full_batch, FullBatchLBFGS) and trainer.full_batch.model is trainer.model
    trainer.run()
    assert trainer.full_batch.lbfgs is trainer._lbfgs and trainer.step_count == 5
    np.testing.assert_array_equal(trainer.latest().weights["encoder.weight"],
                                  trainer.full_batch.lbfgs.x[:80].reshape(5, 16).float().numpy())
    assert Trainer(X, ModelConfig(16, 5), TrainConfig(optimizer="adam")).full_batch is None
