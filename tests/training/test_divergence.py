"""Divergence told straight: the losses reported are those of the weights kept, a loss that grows a million-fold
over its best is divergence too, and the CLI exits non-zero with the message."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from sae import ModelConfig, TrainConfig, Trainer, sparse_autoencoder_loss
from sae.training.divergence import GROWTH_LIMIT, LossWatch
from sae.training.estimator import SparseAutoencoderTransformer
from sae.training.status import RunStatus


@pytest.fixture(scope="module")
def X():
    return (np.random.default_rng(0).normal(size=(500, 16)) * 100).astype(np.float32)  # far outside [0, 1]


def run(X, lr, momentum=0.9):
    trainer = Trainer(X, ModelConfig(16, 8, decoder_activation="linear"),
                      TrainConfig(optimizer="sgd", lr=lr, momentum=momentum, epochs=5, batch_size=50, beta=0))
    return trainer, trainer.run()


def full_loss(trainer) -> float:
    cfg = trainer.config
    with torch.no_grad():
        return float(sparse_autoencoder_loss(trainer.model, trainer.X, cfg.rho, cfg.beta, cfg.weight_decay)["total"])


def test_after_a_nan_the_losses_reported_are_those_of_the_weights_kept(X):
    calls = []

    def nan_at_step_30(model, x, *args, **kwargs):  # the objective, until one step's loss is NaN
        terms = sparse_autoencoder_loss(model, x, *args, **kwargs)
        calls.append(len(x))
        if len(calls) == 31:
            terms["total"] = terms["total"] * float("nan")
        return terms

    trainer = Trainer(X / 100, ModelConfig(16, 8, decoder_activation="linear"),
                      TrainConfig(optimizer="sgd", lr=0.01, epochs=5, batch_size=50, beta=0), loss=nan_at_step_30,
                      snapshot_interval=0.0)
    snap = trainer.run()
    assert snap.status == RunStatus.DIVERGED and "NaN at step 30" in snap.reason
    assert np.isfinite(snap.losses["total"])
    assert snap.losses["total"] == pytest.approx(full_loss(trainer), rel=1e-5)  # of the weights it holds
    for name, p in trainer.model.named_parameters():
        np.testing.assert_array_equal(p.detach().numpy(), snap.weights[name])
    assert trainer.weights_step == 30 and "Kept the weights of step 30" in snap.reason


def test_a_million_fold_growth_is_divergence(X):
    trainer, snap = run(X, lr=1.2)  # 8.2e4 at the start, 2.4e17 after 5 epochs, never NaN
    assert snap.status == RunStatus.DIVERGED, snap.reason
    assert "over a million times its best" in snap.reason and "learning rate 1.2" in snap.reason
    assert snap.losses["total"] == pytest.approx(full_loss(trainer), rel=1e-5)
    assert trainer.weights_step < trainer.step_count


def test_the_estimator_reports_the_kept_losses(X):
    est = SparseAutoencoderTransformer(8, decoder_activation="linear", optimizer="sgd", lr=1.2, epochs=5,
                                       batch_size=50, beta=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est.fit(X)
    assert any("diverged" in str(w.message) for w in caught)
    assert est.losses_["total"] < 1e6


def test_loss_watch_rule():
    watch = LossWatch()
    assert not any(watch.exploded(v) for v in (1.0, 1e-9, 1e-2, 0.5))  # falling far, then up but below the start
    watch = LossWatch()
    assert not any(watch.exploded(v) for v in (10.0, 2.0, 1e5))
    assert watch.exploded(3.0 * GROWTH_LIMIT)  # a million times the best (2) and above the start (10)


def test_a_sound_run_is_not_called_diverged(X):
    trainer, snap = run(X / 100, lr=0.01)
    assert snap.status == RunStatus.FINISHED
