import numpy as np
import pytest
import torch

from sae import SparseAutoencoder
from sae.evaluation import metrics


def test_reconstruction_errors_are_per_sample():
    model = SparseAutoencoder(6, 3)
    X = np.random.default_rng(0).random((10, 6), dtype=np.float32)
    X[3] = 50.0  # an outlier gets its own, larger score
    errors = metrics.reconstruction_errors(model, X)
    x_hat = model(torch.as_tensor(X))[0].detach().numpy()
    np.testing.assert_allclose(errors, 0.5 * ((x_hat - X) ** 2).sum(1), rtol=1e-6)
    assert errors.shape == (10,) and errors.argmax() == 3


def test_rho_hat_dead_dense_l0():
    A = np.array([[0.9, 0.0, 0.5], [0.8, 0.01, 0.0], [0.7, 0.02, 0.0], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(metrics.rho_hat(A), A.mean(0))
    assert list(metrics.dead_units(A)) == [1]
    assert list(metrics.dense_units(A)) == [0]
    np.testing.assert_array_equal(metrics.l0_per_sample(A), [2, 1, 1, 0])


def test_tanh_activity_is_shifted():
    A = np.array([[-1.0, 1.0], [-1.0, 0.0]])
    np.testing.assert_allclose(metrics.rho_hat(A, "tanh"), [0.0, 0.75])
    assert list(metrics.dead_units(A, "tanh")) == [0]


def test_treves_rolls_sparseness_extremes():
    one_hot = np.eye(5)
    uniform = np.ones((5, 5))
    assert metrics.lifetime_sparsity(one_hot) == pytest.approx(np.ones(5))
    assert metrics.population_sparsity(uniform) == pytest.approx(np.zeros(5))


def test_pca_projection_explained_variance():
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(200, 1)) @ np.array([[3.0, 1.0, 0.0]]) + 0.01 * rng.normal(size=(200, 3))
    coords, ratio = metrics.pca_projection(Z, 2)
    assert coords.shape == (200, 2) and ratio[0] > 0.99 and ratio.sum() <= 1.0 + 1e-9


def test_linear_probe_separable_vs_noise():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 60)
    separable = np.eye(3)[labels] + 0.05 * rng.normal(size=(180, 3))
    noise = rng.normal(size=(180, 3))
    assert metrics.linear_probe(separable, labels) == 1.0
    assert metrics.linear_probe(noise, labels) < 0.6


def test_summary_fields():
    model = SparseAutoencoder(6, 4)
    summary = metrics.summarize(model, np.random.default_rng(0).random((30, 6), dtype=np.float32))
    assert 0 < summary.rho_hat_mean < 1 and summary.dead_units == 0 and summary.l0_mean > 0


def test_probe_accuracy_only_where_a_probe_means_something():
    from sae.evaluation.metrics import linear_probe, probe_accuracy

    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 20)
    X = rng.normal(size=(60, 4)) + labels[:, None]
    assert probe_accuracy(X, labels) == linear_probe(X, labels)
    assert probe_accuracy(X, None) is None
    assert probe_accuracy(X, np.zeros(60, int)) is None  # one class
    assert probe_accuracy(X[:19], labels[:19]) is None  # too few rows
    assert probe_accuracy(np.ones((60, 4)), labels) == 1 / 3  # constant codes: chance


def test_pca_or_zeros():
    from sae.evaluation.metrics import pca_or_zeros, pca_projection

    Z = np.random.default_rng(1).normal(size=(30, 5))
    coords, ratios = pca_or_zeros(Z, 3)
    ref = pca_projection(Z, 3)
    assert np.allclose(coords, ref[0]) and np.allclose(ratios, ref[1])
    coords, ratios = pca_or_zeros(np.full((30, 5), 0.5), 3)
    assert coords.shape == (30, 3) and ratios.shape == (3,) and not coords.any() and not ratios.any()


def test_evaluate_run_counts_dead_units_relative_to_rho_as_the_live_pages_do():
    """A unit firing weakly on every sample (a = 0.02 < 0.1) at target rho = 0.02 is on target, not dead: the
    recorded metric agrees with the Train page (sae.evaluation.units). Without a KL target, activity decides."""
    model = SparseAutoencoder(4, 3)
    with torch.no_grad():
        model.encoder.weight.zero_()
        model.encoder.bias.fill_(float(np.log(0.02 / 0.98)))  # sigmoid -> 0.02 for every input
    X = np.random.default_rng(0).random((50, 4)).astype(np.float32)
    with_target, rho = metrics.evaluate_run(model, X, probe=False, rho=0.02)
    assert np.allclose(rho, 0.02, atol=1e-6)
    assert with_target["dead_units"] == 0
    without_target, _ = metrics.evaluate_run(model, X, probe=False)
    assert without_target["dead_units"] == 3
