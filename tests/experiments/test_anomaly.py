"""Anomaly detection by per-sample reconstruction error: scores, threshold, ROC/AUC, counts, histograms, experiment."""

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score, roc_curve

from sae import ModelConfig, SparseAutoencoder, TrainConfig
from sae.experiments.anomaly import (anomaly_scores, binned_histograms, evaluate, fit_threshold, run_anomaly_experiment,
                         split_normal)
from sae.data import load_dataset
from sae.evaluation.metrics import reconstruction_errors


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def experiment(digits):
    return run_anomaly_experiment(digits.X, digits.labels, (0, 1, 2, 3, 4), ModelConfig(64, 32),
                                  TrainConfig(rho=0.1, beta=3.0, weight_decay=3e-3, optimizer="lbfgs", max_iter=150),
                                  test_fraction=0.3, seed=0)


@pytest.fixture
def synthetic():
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.normal(1.0, 0.3, 300), rng.normal(2.0, 0.5, 100)])
    is_anomaly = np.r_[np.zeros(300, bool), np.ones(100, bool)]
    return scores, is_anomaly


def test_scores_are_per_sample_within_one_batch(digits):
    torch.manual_seed(0)
    model = SparseAutoencoder(64, 16)
    batch = digits.X[:64]
    scores = anomaly_scores(model, batch)
    assert scores.shape == (64,)
    assert len(np.unique(scores)) == 64  # every sample its own number, not the batch mean
    np.testing.assert_array_equal(scores, reconstruction_errors(model, batch))
    x_hat = model(torch.as_tensor(np.array(batch)))[0].detach().numpy()
    np.testing.assert_allclose(scores, 0.5 * ((x_hat - batch) ** 2).sum(1), rtol=1e-5)


def test_split_normal_mask_and_errors():
    labels = np.array([0, 1, 2, 3, 1, 0, 4])
    np.testing.assert_array_equal(split_normal(labels, (0, 1)), [True, True, False, False, True, True, False])
    with pytest.raises(ValueError, match="do not occur"):
        split_normal(labels, (0, 9))
    with pytest.raises(ValueError, match="at least one"):
        split_normal(labels, ())


def test_threshold_is_mean_plus_k_sigma():
    scores = np.array([1.0, 2.0, 3.0, 4.0, 10.0])
    assert fit_threshold(scores) == pytest.approx(scores.mean() + 2 * scores.std())
    assert fit_threshold(scores, k=3.0) == pytest.approx(scores.mean() + 3 * scores.std())
    assert fit_threshold(scores, k=0.0) == pytest.approx(4.0)
    with pytest.raises(ValueError):
        fit_threshold([1.0, np.nan])


def test_roc_and_auc_equal_sklearn(synthetic):
    scores, is_anomaly = synthetic
    report = evaluate(scores, is_anomaly, threshold=1.6)
    fpr, tpr, thresholds = roc_curve(is_anomaly, scores)
    np.testing.assert_array_equal(report.fpr, fpr)
    np.testing.assert_array_equal(report.tpr, tpr)
    np.testing.assert_array_equal(report.thresholds, thresholds)
    assert report.auc == roc_auc_score(is_anomaly, scores)
    assert 0.85 < report.auc < 1.0


def test_counts_add_up_and_match_definitions(synthetic):
    scores, is_anomaly = synthetic
    tau = 1.6
    r = evaluate(scores, is_anomaly, tau)
    flagged = scores >= tau
    assert r.total == r.tp + r.fp + r.tn + r.fn == len(scores)
    assert r.tp + r.fn == is_anomaly.sum() and r.fp + r.tn == (~is_anomaly).sum()
    assert r.tp + r.fp == flagged.sum()
    assert r.tp == (flagged & is_anomaly).sum()
    assert r.precision == pytest.approx(r.tp / (r.tp + r.fp))
    assert r.recall == pytest.approx(r.tp / (r.tp + r.fn))
    assert r.false_positive_rate == pytest.approx(r.fp / (r.fp + r.tn))
    # the operating point lies on sklearn's ROC curve (same >= convention)
    fpr_full, tpr_full, thr_full = roc_curve(is_anomaly, scores, drop_intermediate=False)
    i = np.flatnonzero(thr_full >= tau)[-1]
    assert (fpr_full[i], tpr_full[i]) == pytest.approx((r.false_positive_rate, r.recall))
    # nothing flagged: precision 0 by convention, recall 0
    none = evaluate(scores, is_anomaly, threshold=scores.max() + 1)
    assert none.tp == none.fp == 0 and none.precision == 0.0 and none.recall == 0.0


def test_evaluate_refuses_one_class(synthetic):
    scores, _ = synthetic
    with pytest.raises(ValueError, match="both"):
        evaluate(scores, np.zeros(len(scores), bool), 1.0)


def test_binned_histograms_share_edges():
    normal, anomalous = np.array([0.0, 0.1, 0.2, 0.5]), np.array([0.4, 1.0, 2.0])
    h = binned_histograms(normal, anomalous, bins=10)
    assert h.edges.shape == (11,) and h.normal.shape == h.anomalous.shape == (10,)
    assert h.edges[0] == 0.0 and h.edges[-1] == 2.0
    assert h.normal.sum() == 4 and h.anomalous.sum() == 3
    np.testing.assert_array_equal(h.normal, np.histogram(normal, h.edges)[0])
    assert h.centers.shape == (10,)
    one = binned_histograms([1.0, 1.0], [], bins=5)  # constant scores still give valid bins
    assert one.normal.sum() == 2 and one.anomalous.sum() == 0


def test_roc_points_thinned():
    rng = np.random.default_rng(1)
    scores = rng.random(10_000)
    r = evaluate(scores, rng.random(10_000) < 0.5, 0.5)
    fpr, tpr = r.roc_points(max_points=500)
    assert len(fpr) <= 500 and fpr[0] == r.fpr[0] and fpr[-1] == r.fpr[-1] and tpr[-1] == 1.0


def test_experiment_on_digits_separates_unseen_classes(experiment, digits):
    e = experiment
    labels = digits.labels
    assert e.status == "finished"
    # trained on the normal training split only; tested on held-out normal + every anomalous digit
    assert set(np.unique(labels[e.train_index])) == {0, 1, 2, 3, 4}
    assert not set(e.train_index) & set(e.test_index)
    anomalous_rows = np.flatnonzero(labels >= 5)
    assert set(anomalous_rows) <= set(e.test_index)
    assert e.is_anomaly.sum() == len(anomalous_rows)
    held_out = (~e.is_anomaly).sum()
    assert held_out == pytest.approx(0.3 * (labels < 5).sum(), abs=2)
    np.testing.assert_array_equal(e.is_anomaly, labels[e.test_index] >= 5)
    # scores are each sample's own error; the threshold comes from the training scores
    np.testing.assert_allclose(e.test_scores, reconstruction_errors(e.model, digits.X[e.test_index]), rtol=1e-6)
    assert e.threshold == pytest.approx(e.train_scores.mean() + 2 * e.train_scores.std())
    assert e.report.auc > 0.8  # measured ~0.93: clearly better than chance (0.5)
    assert e.report.total == len(e.test_index)
    assert e.histograms.normal.sum() == held_out and e.histograms.anomalous.sum() == len(anomalous_rows)
    assert np.mean([e.class_mean_scores[c] for c in range(5, 10)]) > np.mean([e.class_mean_scores[c]
                                                                             for c in range(5)])


def test_experiment_refuses_all_normal(digits):
    with pytest.raises(ValueError, match="every class is normal"):
        run_anomaly_experiment(digits.X, digits.labels, tuple(range(10)))


def test_anomalous_classes_are_the_test_classes_never_trained_on(experiment):
    assert experiment.anomalous_classes == (5, 6, 7, 8, 9)
