r"""Experiments beyond the live run: denoising, anomaly detection, self-taught learning. No Streamlit.

Each ``run_*`` function takes plain arrays and configs, trains what it needs in the CALLING thread and
returns a frozen result; the dashboard calls them from a background thread (``sae.app.tasks``). An optional
:class:`sae.training.progress.Progress` receives the progress and can stop the run between two optimiser steps.

- :func:`run_denoising`: a denoising sparse autoencoder (inputs corrupted by ``sae.evaluation.noise.corrupt``, the clean
  x reconstructed) and, with the same settings, a plain one; PSNR of both on held-out images against the
  noise level, and examples noisy / denoised / clean.
- :func:`run_anomaly`: ``sae.experiments.anomaly.run_anomaly_experiment`` with a :class:`Progress` (same split, same
  numbers); :func:`rethreshold` moves tau = mean + k sigma of the training scores.
- :func:`run_self_taught_experiment`: ``sae.experiments.selftaught.run_self_taught`` with a :class:`Progress`.

A :class:`sae.training.progress.Progress` is the ``progress(fraction, message)`` callback those library functions
take: it keeps the latest report for another thread and raises ``Cancelled`` once stopped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import torch

from sae.experiments.anomaly import (DEFAULT_HIDDEN, AnomalyExperiment, AnomalyReport, evaluate, fit_threshold,
                                     run_anomaly_experiment)
from sae.core.config import ModelConfig, TrainConfig
from sae.core.model import SparseAutoencoder
from sae.evaluation.noise import corrupt, psnr
from sae.training.progress import Progress, ensure_progress
from sae.experiments.selftaught import SelfTaughtResult, run_self_taught
from sae.training.trainer import Trainer


# ------------------------------------------------------------------------------------------ denoising

DENOISING_LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)  # test noise levels of the PSNR curve


def default_model_config(n_inputs: int) -> ModelConfig:
    """n_inputs -> min(196, n_inputs // 2) sigmoid hidden units (784 -> 196 for MNIST, 64 -> 32 for the digits)."""
    return ModelConfig(n_inputs, max(1, min(DEFAULT_HIDDEN, n_inputs // 2)))


def denoising_train_config(noise: str = "gaussian", level: float = 0.4, epochs: float = 40.0,
                           seed: int | None = 0) -> TrainConfig:
    """rho 0.1, beta 3, lambda 1e-4, Adam (lr 1e-2, batches of 128): on MNIST 784-196, 40 epochs, Gaussian 0.4
    gives ~17 dB on held-out digits against 11 dB for the noisy input (measured; lambda 3e-3 blurs: ~14 dB)."""
    return TrainConfig(rho=0.1, beta=3.0, weight_decay=1e-4, optimizer="adam", lr=1e-2, batch_size=128,
                       epochs=epochs, noise=noise, noise_level=level, seed=seed)


@dataclass(frozen=True)
class DenoisingResult:
    """A denoising sparse autoencoder against a plain one on held-out images.

    Attributes:
        noise, level: the training corruption ("gaussian": x + level N(0, 1) clipped to the data range;
            "masking": each input zeroed with probability level).
        levels (L,): test noise levels; psnr_noisy, psnr_denoised, psnr_plain (L,): mean PSNR in dB over the
            test images of the corrupted input, of the denoising model's output and of the plain model's
            output (None without the plain model), each against the clean image.
        psnr_clean_denoised, psnr_clean_plain: PSNR of each model's reconstruction of the CLEAN test images.
        clean (k, n), noisy (L, k, n), denoised (L, k, n), plain (L, k, n) or None: k example test images.
        model, plain_model: the two autoencoders; history: the denoising model's training history.
        status, reason: the denoising trainer's final status; train_seconds: both trainings.
        n_train, n_test: rows used for training and for the PSNR figures.
    """

    noise: str
    level: float
    levels: np.ndarray
    psnr_noisy: np.ndarray
    psnr_denoised: np.ndarray
    psnr_plain: np.ndarray | None
    psnr_clean_denoised: float
    psnr_clean_plain: float | None
    clean: np.ndarray
    noisy: np.ndarray
    denoised: np.ndarray
    plain: np.ndarray | None
    model: SparseAutoencoder
    plain_model: SparseAutoencoder | None
    history: dict[str, np.ndarray]
    status: str
    reason: str
    train_seconds: float
    n_train: int
    n_test: int

    def level_index(self, level: float) -> int:
        """Index into ``levels`` of the test level nearest ``level``."""
        return int(np.argmin(np.abs(self.levels - level)))


@torch.no_grad()
def _outputs(model: SparseAutoencoder, X: torch.Tensor) -> torch.Tensor:
    return model(X)[0]


def run_denoising(X, noise: str = "gaussian", level: float = 0.4, model_config: ModelConfig | None = None,
                  train_config: TrainConfig | None = None, plain: bool = True, test_fraction: float = 0.2,
                  levels: Sequence[float] = DENOISING_LEVELS, n_examples: int = 8, seed: int = 0,
                  progress: Progress | None = None) -> DenoisingResult:
    """Train a denoising sparse autoencoder on corrupted inputs (and, if ``plain``, the same model on clean ones),
    then measure PSNR on held-out images at every test noise level.

    Args:
        X: (m, n) data in [0, 1] (PSNR uses a data range of 1).
        noise, level: the training corruption; ignored if ``train_config`` is given (its noise is used).
        model_config: default n -> min(196, n // 2) sigmoid units. train_config: default
            :func:`denoising_train_config`; the plain model uses it with ``noise="none"``.
        test_fraction: share of the rows held out (random, ``seed``); levels: test noise levels.
        n_examples: test images kept (at every level) for display.
    """
    p = ensure_progress(progress)
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2 or len(X) < 4:
        raise ValueError(f"X must be (m, n) with at least 4 rows, got {X.shape}.")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}.")
    config = train_config or denoising_train_config(noise, level, seed=seed)
    if config.noise == "none":
        raise ValueError("a denoising run needs noise: choose gaussian or masking.")
    model_config = model_config or ModelConfig(X.shape[1], max(1, min(196, X.shape[1] // 2)))
    order = np.random.default_rng(seed).permutation(len(X))
    n_test = max(1, int(round(test_fraction * len(X))))
    train_rows, test_rows = np.sort(order[n_test:]), np.sort(order[:n_test])

    start = time.perf_counter()
    share = 0.5 if plain else 1.0
    trainer = Trainer(X[train_rows], model_config, config)
    snapshot = p.train(trainer, 0.0, share * 0.95, f"denoising model ({config.noise} {config.noise_level:g})")
    plain_model = None
    if plain:
        plain_trainer = Trainer(X[train_rows], model_config, replace(config, noise="none", noise_level=0.0))
        p.train(plain_trainer, share * 0.95, 0.95, "plain model (clean inputs)")
        plain_model = plain_trainer.model
    train_seconds = time.perf_counter() - start

    p.report(0.96, "measuring PSNR on the held-out images")
    model = trainer.model.eval()
    clean = torch.from_numpy(X[test_rows])
    lo, hi = float(X.min()), float(X.max())
    levels = np.asarray(sorted({round(float(v), 4) for v in levels}), dtype=np.float64)
    k = min(n_examples, len(test_rows))
    generator = torch.Generator().manual_seed(seed + 1)  # the same noisy images for both models
    rows = {"noisy": [], "denoised": [], "plain": []}
    curves = {"noisy": [], "denoised": [], "plain": []}
    for v in levels:
        p.check()
        noisy = corrupt(clean, config.noise, float(v), generator, clip=(lo, hi))
        outputs = {"noisy": noisy, "denoised": _outputs(model, noisy)}
        if plain_model is not None:
            outputs["plain"] = _outputs(plain_model, noisy)
        for name, out in outputs.items():
            curves[name].append(float(psnr(clean, out).mean()))
            rows[name].append(out[:k].numpy())
    return DenoisingResult(
        noise=config.noise, level=float(config.noise_level), levels=levels,
        psnr_noisy=np.array(curves["noisy"]), psnr_denoised=np.array(curves["denoised"]),
        psnr_plain=np.array(curves["plain"]) if plain_model is not None else None,
        psnr_clean_denoised=float(psnr(clean, _outputs(model, clean)).mean()),
        psnr_clean_plain=float(psnr(clean, _outputs(plain_model, clean)).mean()) if plain_model is not None else None,
        clean=X[test_rows[:k]].copy(), noisy=np.stack(rows["noisy"]), denoised=np.stack(rows["denoised"]),
        plain=np.stack(rows["plain"]) if plain_model is not None else None,
        model=model, plain_model=plain_model, history=trainer.history(), status=snapshot.status,
        reason=snapshot.reason, train_seconds=train_seconds, n_train=len(train_rows), n_test=len(test_rows))


# ------------------------------------------------------------------------------------------ anomaly

def run_anomaly(X, labels, normal_classes: Sequence[int] = (0, 1, 2, 3, 4), model_config: ModelConfig | None = None,
                train_config: TrainConfig | None = None, test_fraction: float = 0.3, seed: int = 0, k: float = 2.0,
                bins: int = 50, progress: Progress | None = None) -> AnomalyExperiment:
    """``sae.experiments.anomaly.run_anomaly_experiment`` with a :class:`Progress` (progress and a stop): same arguments,
    same result.

    Trains on the normal classes' training split only, scores every held-out normal and every anomalous
    row by its own reconstruction error, sets tau = mean + k sigma of the training scores.
    """
    return run_anomaly_experiment(X, labels, normal_classes, model_config, train_config, test_fraction, seed, k,
                                  bins, progress=progress)


def rethreshold(experiment: AnomalyExperiment, k: float) -> AnomalyReport:
    """The experiment's test report at tau = mean + k sigma of its training scores (ROC and AUC unchanged)."""
    return evaluate(experiment.test_scores, experiment.is_anomaly, fit_threshold(experiment.train_scores, k))


def flag_rates(experiment: AnomalyExperiment, threshold: float) -> dict[int, float]:
    """Per test class: the share of its samples with score >= threshold."""
    flagged = experiment.test_scores >= threshold
    return {int(c): float(flagged[experiment.test_labels == c].mean()) for c in np.unique(experiment.test_labels)}


# ------------------------------------------------------------------------------------------ self-taught

def run_self_taught_experiment(X, labels, feature_classes: Sequence[int] = (5, 6, 7, 8, 9),
                               task_classes: Sequence[int] = (0, 1, 2, 3, 4), model_config: ModelConfig | None = None,
                               train_config: TrainConfig | None = None, test_fraction: float = 0.3, seed: int = 0,
                               C: float = 1.0, classifier_max_iter: int = 1000,
                               progress: Progress | None = None) -> SelfTaughtResult:
    """``sae.experiments.selftaught.run_self_taught`` with a :class:`Progress` (progress and a stop): same arguments, same
    result.

    Features learned on the feature classes (labels unused); logistic regression on the task classes'
    codes a = f(W1 x + b1) and on their raw pixels, same stratified split, both test accuracies.
    """
    return run_self_taught(X, labels, feature_classes, task_classes, model_config, train_config, test_fraction, seed,
                           C, classifier_max_iter, progress=progress)


__all__ = ["DenoisingResult", "DENOISING_LEVELS", "default_model_config", "denoising_train_config", "run_denoising",
           "run_anomaly", "rethreshold", "flag_rates", "run_self_taught_experiment"]
