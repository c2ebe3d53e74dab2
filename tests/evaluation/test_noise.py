import numpy as np
import pytest
import torch

from sae import ConfigError, ModelConfig, TrainConfig, Trainer, sparse_autoencoder_loss, SparseAutoencoder
from sae.evaluation.metrics import reconstructions
from sae.evaluation.noise import corrupt, psnr


def test_gaussian_noise_level_and_clip():
    x = torch.full((2000, 10), 0.5)
    noisy = corrupt(x, "gaussian", 0.1, torch.Generator().manual_seed(0))
    assert noisy.std().item() == pytest.approx(0.1, rel=0.05)
    clipped = corrupt(x, "gaussian", 5.0, torch.Generator().manual_seed(0))
    assert clipped.min() == 0.0 and clipped.max() == 1.0
    assert torch.equal(x, torch.full((2000, 10), 0.5))  # the input is not modified


def test_masking_zeroes_the_given_fraction():
    x = torch.ones(1000, 50)
    masked = corrupt(x, "masking", 0.3, torch.Generator().manual_seed(0))
    assert (masked == 0).float().mean().item() == pytest.approx(0.3, abs=0.01)
    assert set(masked.unique().tolist()) == {0.0, 1.0}


def test_psnr_matches_definition():
    clean = torch.zeros(3, 4)
    estimate = torch.full((3, 4), 0.1)
    torch.testing.assert_close(psnr(clean, estimate), torch.full((3,), 20.0))
    assert torch.isfinite(psnr(clean, clean)).all()


def test_loss_target_is_what_is_reconstructed():
    model = SparseAutoencoder(6, 3).double()
    x, target = torch.rand(5, 6, dtype=torch.float64), torch.rand(5, 6, dtype=torch.float64)
    terms = sparse_autoencoder_loss(model, x, 0.1, 0.0, 0.0, target=target)
    assert terms["reconstruction"].item() == pytest.approx(0.5 * ((model(x)[0] - target) ** 2).sum().item() / 5)


def test_denoising_training_beats_the_noise():
    rng = np.random.default_rng(0)
    X = (rng.random((800, 6)) @ rng.random((6, 36)) / 6).astype(np.float32)
    trainer = Trainer(X, ModelConfig(36, 24), TrainConfig(noise="gaussian", noise_level=0.2, epochs=150, lr=1e-2,
                                                          batch_size=64, beta=0.1, rho=0.2, weight_decay=1e-5))
    trainer.run()
    Xt = torch.as_tensor(X)
    noisy = corrupt(Xt, "gaussian", 0.2, torch.Generator().manual_seed(1))
    denoised = torch.as_tensor(reconstructions(trainer.model, noisy))
    assert psnr(Xt, denoised).mean() > psnr(Xt, noisy).mean() + 3  # at least 3 dB better than the input


def test_denoising_with_lbfgs_refused():
    with pytest.raises(ConfigError, match="lbfgs"):
        TrainConfig(noise="gaussian", noise_level=0.4, optimizer="lbfgs")
    with pytest.raises(ConfigError, match="noise"):
        TrainConfig(noise="salt")
    with pytest.raises(ConfigError, match="noise level"):
        TrainConfig(noise="masking", noise_level=1.5)
