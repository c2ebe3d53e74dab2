r"""Anomaly detection by reconstruction error: train on "normal" classes, flag what reconstructs badly.

A sparse autoencoder trained only on normal samples reconstructs them well and other things badly.
Each sample i gets its OWN score, its reconstruction error

    score_i = 1/2 ||x_hat_i - x_i||^2                       (m, n) -> (m,)

(``sae.evaluation.metrics.reconstruction_errors``), never the mean loss of the batch it happens to sit in:
a batch mean gives every sample of a batch the same number, so an outlier cannot be singled out
(``sae.experiments.mistakes.batch_mean_scores`` shows that mistake).

A sample is flagged when score_i >= tau, with the threshold set on the training (normal) scores:

    tau = mean(train scores) + k * std(train scores)        (k = 2 by default)

The ``>=`` is scikit-learn's ``roc_curve`` convention, so the operating point (fpr, tpr) at tau lies
on the ROC curve. ROC and AUC come from ``sklearn.metrics`` and do not depend on tau.

Example:
    >>> from sae import ModelConfig, TrainConfig
    >>> from sae.data import load_dataset
    >>> data = load_dataset("digits")
    >>> result = run_anomaly_experiment(data.X, data.labels, (0, 1, 2, 3, 4))
    >>> result.report.auc > 0.5
    True
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from sae.core.config import ModelConfig, TrainConfig
from sae.evaluation.metrics import reconstruction_errors
from sae.core.model import SparseAutoencoder
from sae.training.progress import ProgressCallback, notify, run_trainer
from sae.training.trainer import Trainer

DEFAULT_HIDDEN = 196  # MNIST's UFLDL-sized layer; smaller inputs get n_inputs // 2 (see default_model_config)


def anomaly_scores(model: SparseAutoencoder, X) -> np.ndarray:
    """Each sample's own score 1/2 ||x_hat_i - x_i||^2: (m, n) -> (m,). Higher = more anomalous."""
    return reconstruction_errors(model, X)


def labelled_split_inputs(X, labels, test_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """X as float32 (m, n) and labels (m,) for an experiment that holds out ``test_fraction`` of them;
    ValueError with the reason if the shapes do not match or the fraction is not strictly inside (0, 1)."""
    X = np.asarray(X, dtype=np.float32)
    labels = np.asarray(labels)
    if X.ndim != 2 or labels.shape != (len(X),):
        raise ValueError(f"X must be (m, n) and labels (m,), got {X.shape} and {labels.shape}.")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}.")
    return X, labels


def split_normal(labels, normal_classes: Sequence[int]) -> np.ndarray:
    """Boolean mask (m,): True where ``labels`` (m,) is one of ``normal_classes``.

    Raises ValueError if ``normal_classes`` is empty or names a class absent from ``labels``.
    """
    labels = np.asarray(labels)
    classes = np.unique(np.asarray(list(normal_classes)))
    if classes.size == 0:
        raise ValueError("choose at least one normal class.")
    missing = np.setdiff1d(classes, labels)
    if missing.size:
        raise ValueError(f"normal class(es) {', '.join(map(str, missing.tolist()))} do not occur in the labels.")
    return np.isin(labels, classes)


def fit_threshold(train_scores, k: float = 2.0) -> float:
    """tau = mean + k * sigma of the training scores (sigma: population std, ddof=0). (m,) -> float."""
    scores = np.asarray(train_scores, dtype=np.float64)
    if scores.size == 0 or not np.isfinite(scores).all():
        raise ValueError("the training scores must be a non-empty array of finite numbers.")
    return float(scores.mean() + k * scores.std())


@dataclass(frozen=True)
class AnomalyReport:
    """How well scores separate anomalies (positives) from normal samples, overall and at one threshold.

    Attributes:
        fpr, tpr, thresholds: sklearn ``roc_curve(is_anomaly, scores)``, each (p,).
        auc: sklearn ``roc_auc_score(is_anomaly, scores)``: P(score of a random anomaly > a random normal's).
        threshold: tau; a sample is flagged when score >= tau.
        tp, fp, tn, fn: anomalies flagged, normals flagged, normals passed, anomalies passed.
        precision: tp / (tp + fp), 0.0 when nothing is flagged (depends on the class ratio of the test set).
        recall: tp / (tp + fn) = tpr at tau.
        false_positive_rate: fp / (fp + tn) = fpr at tau.
        accuracy: (tp + tn) / total.
    """

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray
    auc: float
    threshold: float
    tp: int
    fp: int
    tn: int
    fn: int
    precision: float
    recall: float
    false_positive_rate: float
    accuracy: float

    @property
    def total(self) -> int:
        return self.tp + self.fp + self.tn + self.fn

    def roc_points(self, max_points: int = 2000) -> tuple[np.ndarray, np.ndarray]:
        """(fpr, tpr) thinned to at most ``max_points`` points (ends kept) for drawing."""
        n = len(self.fpr)
        if n <= max_points:
            return self.fpr, self.tpr
        index = np.unique(np.linspace(0, n - 1, max_points).round().astype(int))
        return self.fpr[index], self.tpr[index]


def evaluate(scores, is_anomaly, threshold: float) -> AnomalyReport:
    """ROC, AUC and the confusion counts at ``threshold`` of per-sample ``scores`` (m,) against ``is_anomaly`` (m,)."""
    from sklearn.metrics import roc_auc_score, roc_curve

    scores = np.asarray(scores, dtype=np.float64)
    truth = np.asarray(is_anomaly, dtype=bool)
    if scores.shape != truth.shape or scores.ndim != 1:
        raise ValueError(f"scores {scores.shape} and is_anomaly {truth.shape} must be 1-D of the same length.")
    if not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or infinite values.")
    if truth.all() or not truth.any():
        raise ValueError("ROC needs both normal and anomalous samples among the scored ones.")
    fpr, tpr, thresholds = roc_curve(truth, scores)
    flagged = scores >= threshold
    tp, fp = int((flagged & truth).sum()), int((flagged & ~truth).sum())
    tn, fn = int((~flagged & ~truth).sum()), int((~flagged & truth).sum())
    return AnomalyReport(fpr=fpr, tpr=tpr, thresholds=thresholds, auc=float(roc_auc_score(truth, scores)),
                         threshold=float(threshold), tp=tp, fp=fp, tn=tn, fn=fn,
                         precision=tp / (tp + fp) if tp + fp else 0.0, recall=tp / (tp + fn),
                         false_positive_rate=fp / (fp + tn), accuracy=(tp + tn) / len(scores))


@dataclass(frozen=True)
class Histograms:
    """Two score histograms on shared bins: ``edges`` (bins + 1,), ``normal`` and ``anomalous`` counts (bins,)."""

    edges: np.ndarray
    normal: np.ndarray
    anomalous: np.ndarray

    @property
    def centers(self) -> np.ndarray:
        return 0.5 * (self.edges[:-1] + self.edges[1:])


def binned_histograms(scores_normal, scores_anomalous, bins: int = 50) -> Histograms:
    """Bin both score sets on the same ``bins`` equal-width bins spanning all scores (server-side, for the UI).

    Shapes: (m0,), (m1,) -> edges (bins + 1,), counts (bins,) each; counts sum to m0 and m1.
    """
    normal = np.asarray(scores_normal, dtype=np.float64).ravel()
    anomalous = np.asarray(scores_anomalous, dtype=np.float64).ravel()
    both = np.concatenate([normal, anomalous])
    if both.size == 0 or not np.isfinite(both).all():
        raise ValueError("need at least one score, and only finite ones.")
    if not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(f"bins must be a whole number >= 1, got {bins!r}.")
    edges = np.histogram_bin_edges(both, bins=int(bins))
    return Histograms(edges, np.histogram(normal, edges)[0], np.histogram(anomalous, edges)[0])


def default_model_config(n_inputs: int) -> ModelConfig:
    """n_inputs -> min(196, n_inputs // 2) sigmoid hidden units (784 -> 196, 64 -> 32)."""
    return ModelConfig(n_inputs, max(1, min(DEFAULT_HIDDEN, n_inputs // 2)))


def default_train_config(seed: int | None = 0) -> TrainConfig:
    """UFLDL's MNIST objective (rho 0.1, beta 3, lambda 3e-3), full-batch L-BFGS for 200 iterations."""
    return TrainConfig(rho=0.1, beta=3.0, weight_decay=3e-3, optimizer="lbfgs", max_iter=200, seed=seed)


@dataclass(frozen=True)
class AnomalyExperiment:
    """Everything the anomaly page draws. Indices refer to rows of the X given to the experiment.

    Attributes:
        model: the autoencoder, trained on ``train_index`` only (normal classes).
        status, reason: the Trainer's final status ("finished", "diverged", ...) and its explanation.
        normal_classes: the classes treated as normal.
        train_index (m_tr,): normal training rows; train_scores (m_tr,) their scores (they set tau).
        test_index (m_te,): held-out normal rows, then every anomalous row.
        test_labels (m_te,), test_scores (m_te,), is_anomaly (m_te,): per test row.
        threshold, k: tau = mean + k sigma of train_scores.
        report: ROC/AUC and counts on the test rows.
        histograms: shared-bin histograms of the held-out normal and the anomalous test scores.
        class_mean_scores: label -> mean test score of that class.
        train_seconds: wall time of the training.
    """

    model: SparseAutoencoder
    status: str
    reason: str
    normal_classes: tuple[int, ...]
    train_index: np.ndarray
    train_scores: np.ndarray
    test_index: np.ndarray
    test_labels: np.ndarray
    test_scores: np.ndarray
    is_anomaly: np.ndarray
    threshold: float
    k: float
    report: AnomalyReport
    histograms: Histograms
    class_mean_scores: dict[int, float]
    train_seconds: float

    @property
    def anomalous_classes(self) -> tuple[int, ...]:
        """The test classes that are not normal (sorted): those the model never saw."""
        return tuple(int(c) for c in np.unique(self.test_labels) if int(c) not in set(self.normal_classes))


def run_anomaly_experiment(X, labels, normal_classes: Sequence[int] = (0, 1, 2, 3, 4),
                           model_config: ModelConfig | None = None, train_config: TrainConfig | None = None,
                           test_fraction: float = 0.3, seed: int = 0, k: float = 2.0,
                           bins: int = 50, *, progress: ProgressCallback | None = None) -> AnomalyExperiment:
    """Train on the normal classes' training split, then score held-out normals and all anomalies.

    Steps: the normal rows are split (stratified by label, ``seed``) into train and held-out parts
    (``test_fraction`` held out); the model is trained on the normal training rows only; tau is set
    from their scores; the test set is the held-out normal rows plus every row of the other classes.

    Args:
        X: (m, n) data; labels: (m,) integer classes.
        model_config: default ``default_model_config(n)``; train_config: default ``default_train_config(seed)``.
        test_fraction: share of the normal rows held out, in (0, 1).
        seed: the split (and the default training config's seed).
        k: threshold in standard deviations above the mean training score.
        bins: histogram bins.
        progress: optional ``progress(fraction, message)`` callback (``sae.training.progress``): the training reports
            its steps on [0, 0.95], the scoring starts at 0.97; raising in it stops the run between two
            optimiser steps. ``sae.training.progress.Progress`` is one. The result does not depend on it.
    """
    from sklearn.model_selection import train_test_split

    X, labels = labelled_split_inputs(X, labels, test_fraction)
    normal = split_normal(labels, normal_classes)
    if normal.all():
        raise ValueError("every class is normal: leave at least one class out as the anomalies.")
    normal_index = np.flatnonzero(normal)
    train_index, held_out = train_test_split(normal_index, test_size=test_fraction, random_state=seed,
                                             stratify=labels[normal_index])
    train_index, held_out = np.sort(train_index), np.sort(held_out)

    trainer = Trainer(X[train_index], model_config or default_model_config(X.shape[1]),
                      train_config or default_train_config(seed))
    start = time.perf_counter()
    snapshot = run_trainer(trainer, progress, 0.0, 0.95,
                           f"training on the normal classes ({len(train_index):,} samples)")
    train_seconds = time.perf_counter() - start

    notify(progress, 0.97, "scoring every test sample by its own reconstruction error")
    model = trainer.model
    train_scores = anomaly_scores(model, X[train_index])
    test_index = np.concatenate([held_out, np.flatnonzero(~normal)])
    test_scores = anomaly_scores(model, X[test_index])
    is_anomaly = ~normal[test_index]
    threshold = fit_threshold(train_scores, k)
    report = evaluate(test_scores, is_anomaly, threshold)
    test_labels = labels[test_index]
    return AnomalyExperiment(
        model=model, status=snapshot.status, reason=snapshot.reason,
        normal_classes=tuple(int(c) for c in np.unique(list(normal_classes))),
        train_index=train_index, train_scores=train_scores, test_index=test_index, test_labels=test_labels,
        test_scores=test_scores, is_anomaly=is_anomaly, threshold=threshold, k=float(k), report=report,
        histograms=binned_histograms(test_scores[~is_anomaly], test_scores[is_anomaly], bins),
        class_mean_scores={int(c): float(test_scores[test_labels == c].mean()) for c in np.unique(test_labels)},
        train_seconds=train_seconds)
