r"""A circulating mistake beside the correct model, trained on the same data from the same seed. No Streamlit.

For a mistaken objective of ``sae.experiments.mistakes.MISTAKES`` two Trainers run one after the other: the correct
``sparse_autoencoder_loss`` and the mistaken one (``Trainer(..., loss=fn)``), with the same model shape, the
same TrainConfig (so the same initial weights) and the same X. Each becomes a :class:`Side`: its history,
filters, per-unit rho_hat, activations and per-sample reconstruction errors, measured on the network the
objective trained (the linear encoder's a = W1 x + b1, the softmax output's x_hat).

The batch-mean anomaly score is not an objective: :func:`compare_mistake` trains the correct model on part
of X, hides a few outliers (inverted images, or noise) among the held-out rows and scores every row twice,
by its own error and by its batch's mean error (``sae.experiments.mistakes.batch_mean_scores``): :class:`BatchScores`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from sae.core.config import ModelConfig, TrainConfig
from sae.evaluation.metrics import dead_units, dense_units, hidden_activations, lifetime_sparsity, reconstructions
from sae.experiments.mistakes import MISTAKES, Mistake, batch_mean_scores, softmax_reconstructions
from sae.core.model import SparseAutoencoder
from sae.training.progress import Progress, ensure_progress
from sae.training.status import RunStatus
from sae.training.trainer import Trainer

SHOWN_SAMPLES = 1000  # rows whose activations a Side keeps (histograms)


def mistake_train_config(rho: float = 0.05, max_iter: int = 200, seed: int | None = 0) -> TrainConfig:
    """UFLDL's 8x8 objective (beta 3, lambda 1e-4) with rho 0.05, full-batch L-BFGS: the setting under which
    ``tests/test_mistakes.py`` measures every mistake's damage on the 64-25 digits model (~0.4 s per model)."""
    return TrainConfig(rho=rho, beta=3.0, weight_decay=1e-4, optimizer="lbfgs", max_iter=max_iter, seed=seed)


@dataclass(frozen=True)
class Side:
    """One trained model of the comparison.

    Attributes:
        label: "correct" or the mistake's title.
        status, reason: the Trainer's final status ("finished", "diverged", ...) and why.
        history: the Trainer's history (step, total, reconstruction, sparsity, weight_decay, rho_hat_*, ...).
        W1 (s, n): encoder weights (the filters).
        rho_hat (s,): each unit's mean activation over all of X, on the network this objective trains.
        activations (k, s): the hidden activations of the first k <= SHOWN_SAMPLES rows.
        errors (m,): each row's own reconstruction error 1/2 ||x_hat_i - x_i||^2.
        summary: headline numbers (see :func:`summarize_side`).
    """

    label: str
    status: str
    reason: str
    history: dict[str, np.ndarray]
    W1: np.ndarray
    rho_hat: np.ndarray
    activations: np.ndarray
    errors: np.ndarray
    summary: dict[str, float]

    @property
    def diverged(self) -> bool:
        """Whether its training diverged (the Trainer kept the last weights with a sound loss)."""
        return self.status == RunStatus.DIVERGED

    def dead_units(self) -> np.ndarray:
        """Units never active on the shown rows (``activations``); none for a diverged side (nothing learned)."""
        return np.empty(0, dtype=np.int64) if self.diverged else dead_units(self.activations)

    def rho_hat_out_of_range(self) -> tuple[int, int]:
        """(units with rho_hat_j < 0, units with rho_hat_j > 1): impossible for sigmoid units, the log of a
        negative number in the KL term."""
        return int((self.rho_hat < 0).sum()), int((self.rho_hat > 1).sum())


@dataclass(frozen=True)
class BatchScores:
    """Anomaly scores of held-out rows with hidden outliers, scored two ways.

    Attributes:
        per_sample (m,): each row's own error (correct); batch_mean (m,): its batch's mean error (the mistake).
        is_outlier (m,): where the outliers sit; batch_size: rows per batch.
        auc_per_sample, auc_batch_mean: ROC AUC of each score for finding the outliers.
        hits_per_sample, hits_batch_mean: outliers among the top-n scores, n = number of outliers (ties broken
            against the outliers: a batch of equal scores does not count as found).
    """

    per_sample: np.ndarray
    batch_mean: np.ndarray
    is_outlier: np.ndarray
    batch_size: int
    auc_per_sample: float
    auc_batch_mean: float
    hits_per_sample: int
    hits_batch_mean: int

    @property
    def n_outliers(self) -> int:
        return int(self.is_outlier.sum())


@dataclass(frozen=True)
class MistakeComparison:
    """What the common-mistakes page draws. ``wrong`` is None for the batch-mean score, ``scores`` None otherwise."""

    mistake: Mistake
    rho: float
    correct: Side
    wrong: Side | None
    scores: BatchScores | None
    seconds: float


@torch.no_grad()
def network_outputs(name: str | None, model: SparseAutoencoder, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(activations (m, s), reconstructions (m, n)) of the network objective ``name`` trains (None: correct)."""
    if name == "linear_encoder":
        a = model.encoder(torch.from_numpy(np.array(X, dtype=np.float32)))  # no sigmoid: the mistake
        return a.numpy(), model.decode(a).numpy()
    if name == "softmax_output":
        return hidden_activations(model, X), softmax_reconstructions(model, X)
    return hidden_activations(model, X), reconstructions(model, X)


def summarize_side(A: np.ndarray, errors: np.ndarray, rho: float, history: dict[str, np.ndarray]) -> dict[str, float]:
    """Headline numbers: reconstruction (mean error), rho_hat mean/std/min/max, units off target
    (|rho_hat_j - rho| > rho), dead and dense units, lifetime sparsity, final J. NaN where undefined."""
    r = A.mean(axis=0).astype(np.float64)
    bounded = bool(np.all((A >= 0) & (A <= 1)))  # activity measures need activations in [0, 1]
    final = history.get("total")
    return {"reconstruction": float(np.mean(errors)), "rho_hat_mean": float(r.mean()), "rho_hat_std": float(r.std()),
            "rho_hat_min": float(r.min()), "rho_hat_max": float(r.max()),
            "off_target": float(np.sum(np.abs(r - rho) > rho)),
            "dead": float(len(dead_units(A))) if bounded else float("nan"),
            "dense": float(len(dense_units(A))) if bounded else float("nan"),
            "lifetime_sparsity": float(lifetime_sparsity(A).mean()) if bounded else float("nan"),
            "final_loss": float(final[-1]) if final is not None and len(final) else float("nan")}


def _side(label: str, name: str | None, trainer: Trainer, snapshot, X: np.ndarray, rho: float) -> Side:
    A, X_hat = network_outputs(name, trainer.model, X)
    errors = 0.5 * ((X_hat - X) ** 2).sum(axis=1)
    history = trainer.history()
    return Side(label=label, status=snapshot.status, reason=snapshot.reason, history=history,
                W1=trainer.model.encoder.weight.detach().numpy().copy(), rho_hat=A.mean(axis=0),
                activations=A[:SHOWN_SAMPLES].copy(), errors=errors, summary=summarize_side(A, errors, rho, history))


def _hits(scores: np.ndarray, is_outlier: np.ndarray) -> int:
    """Outliers among the top-n scores (n = #outliers); a row ties below every equal-scored normal row."""
    n = int(is_outlier.sum())
    order = np.lexsort((is_outlier.astype(int), -scores))  # by score descending, normals first among equals
    return int(is_outlier[order[:n]].sum())


OUTLIERS = ("invert", "noise")


def batch_scores(model: SparseAutoencoder, X: np.ndarray, n_outliers: int = 8, batch_size: int = 64,
                 seed: int = 0, outlier: str = "invert") -> BatchScores:
    """Replace ``n_outliers`` random rows of X (m, n) by outliers and score every row by its own reconstruction
    error and by its batch's mean error. ``outlier``: "invert" (x -> lo + hi - x, for digits: white on black
    becomes black on white) or "noise" (uniform noise over the data's range, for data whose inverse looks
    like more data, e.g. whitened patches)."""
    from sklearn.metrics import roc_auc_score

    X = np.array(X, dtype=np.float32)
    if not 1 <= n_outliers < len(X):
        raise ValueError(f"need between 1 and {len(X) - 1} outliers, got {n_outliers}.")
    if outlier not in OUTLIERS:
        raise ValueError(f"outlier must be one of {', '.join(OUTLIERS)}, got {outlier!r}.")
    rng = np.random.default_rng(seed)
    is_outlier = np.zeros(len(X), dtype=bool)
    is_outlier[rng.choice(len(X), n_outliers, replace=False)] = True
    lo, hi = float(X.min()), float(X.max())
    if outlier == "invert":
        X[is_outlier] = lo + hi - X[is_outlier]
    else:
        X[is_outlier] = rng.uniform(lo, hi, size=(n_outliers, X.shape[1]))
    per_sample = 0.5 * ((reconstructions(model, X) - X) ** 2).sum(axis=1).astype(np.float64)
    batch_mean = batch_mean_scores(model, X, batch_size=batch_size)
    return BatchScores(per_sample=per_sample, batch_mean=batch_mean, is_outlier=is_outlier, batch_size=batch_size,
                       auc_per_sample=float(roc_auc_score(is_outlier, per_sample)),
                       auc_batch_mean=float(roc_auc_score(is_outlier, batch_mean)),
                       hits_per_sample=_hits(per_sample, is_outlier), hits_batch_mean=_hits(batch_mean, is_outlier))


def compare_mistake(name: str, X, model_config: ModelConfig | None = None, train_config: TrainConfig | None = None,
                    n_outliers: int = 8, batch_size: int = 64, outlier: str = "invert", seed: int = 0,
                    progress: Progress | None = None) -> MistakeComparison:
    """Train the correct objective and the mistake ``name`` (a key of ``MISTAKES``) side by side on X (m, n).

    model_config: default n -> min(25, n // 2) sigmoid units; train_config: default :func:`mistake_train_config`.
    For "batch_mean_score": the correct model trains on 70% of the rows; the rest, with ``n_outliers``
    outliers (see :func:`batch_scores`), are scored per sample and per batch of ``batch_size``.
    """
    if name not in MISTAKES:
        raise ValueError(f"unknown mistake {name!r}; choose one of {', '.join(MISTAKES)}.")
    p = ensure_progress(progress)
    mistake = MISTAKES[name]
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2 or len(X) < 10:
        raise ValueError(f"X must be (m, n) with at least 10 rows, got {X.shape}.")
    model_config = model_config or ModelConfig(X.shape[1], max(1, min(25, X.shape[1] // 2)))
    config = train_config or mistake_train_config(seed=seed)
    start = time.perf_counter()

    if mistake.loss is None:  # the batch-mean score: one model, two ways to score its errors
        order = np.random.default_rng(seed).permutation(len(X))
        n_train = int(0.7 * len(X))
        train_rows, test_rows = np.sort(order[:n_train]), np.sort(order[n_train:])
        trainer = Trainer(X[train_rows], model_config, config)
        snapshot = p.train(trainer, 0.0, 0.9, "correct model")
        p.report(0.95, "scoring the held-out rows")
        scores = batch_scores(trainer.model, X[test_rows], n_outliers, batch_size, seed, outlier)
        correct = _side("correct", None, trainer, snapshot, X[train_rows], config.rho)
        return MistakeComparison(mistake, config.rho, correct, None, scores, time.perf_counter() - start)

    right = Trainer(X, model_config, config)
    right_snap = p.train(right, 0.0, 0.48, "correct objective")
    wrong = Trainer(X, model_config, config, loss=mistake.loss)
    wrong_snap = p.train(wrong, 0.5, 0.96, mistake.title)
    p.report(0.98, "measuring both models")
    return MistakeComparison(mistake, config.rho, _side("correct", None, right, right_snap, X, config.rho),
                             _side(mistake.title, name, wrong, wrong_snap, X, config.rho), None,
                             time.perf_counter() - start)


__all__ = ["OUTLIERS", "Side", "BatchScores", "MistakeComparison", "compare_mistake", "batch_scores", "network_outputs",
           "summarize_side", "mistake_train_config", "SHOWN_SAMPLES"]
