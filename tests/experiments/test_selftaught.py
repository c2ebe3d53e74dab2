"""Self-taught learning: features from digits 5-9 only, then codes vs raw pixels on digits 0-4."""

import numpy as np
import pytest

import sae.experiments.selftaught as selftaught
from sae import ModelConfig, TrainConfig
from sae.data import load_dataset
from sae.training.trainer import Trainer

SMALL = TrainConfig(rho=0.1, beta=3.0, weight_decay=3e-3, optimizer="lbfgs", max_iter=100, seed=0)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def recorded(digits):
    """One small run on sklearn digits, recording every X handed to a Trainer."""
    seen = []

    class RecordingTrainer(Trainer):
        def __init__(self, X, *args, **kwargs):
            seen.append(np.array(X, copy=True))
            super().__init__(X, *args, **kwargs)

    mp = pytest.MonkeyPatch()
    mp.setattr(selftaught, "Trainer", RecordingTrainer)
    try:
        result = selftaught.run_self_taught(digits.X, digits.labels, model_config=ModelConfig(64, 32),
                                            train_config=SMALL, test_fraction=0.3, seed=0)
    finally:
        mp.undo()
    return result, seen


def test_accuracies_and_sizes(recorded, digits):
    result, _ = recorded
    assert 0.0 <= result.codes_accuracy <= 1.0 and 0.0 <= result.raw_accuracy <= 1.0
    assert result.codes_accuracy > 0.8  # 5 classes: chance is 0.2
    assert result.status == "finished"
    n_task = int((digits.labels < 5).sum())
    assert result.n_train + result.n_test == n_task
    assert result.n_test == pytest.approx(0.3 * n_task, abs=1)
    assert result.n_feature_samples == int((digits.labels >= 5).sum())
    assert (result.n_hidden, result.n_inputs) == (32, 64)
    assert result.total_seconds >= result.feature_seconds > 0


def test_feature_model_never_saw_task_classes(recorded, digits):
    result, seen = recorded
    assert len(seen) == 1  # one autoencoder, trained once
    X, labels = digits.X, digits.labels
    np.testing.assert_array_equal(seen[0], X[labels >= 5])  # exactly the digits 5-9, nothing else
    task_rows = {row.tobytes() for row in X[labels < 5]}
    assert not any(row.tobytes() in task_rows for row in seen[0])
    assert set(np.unique(labels[result.feature_index])) == {5, 6, 7, 8, 9}
    assert set(np.unique(labels[result.train_index])) == set(np.unique(labels[result.test_index])) == {0, 1, 2, 3, 4}
    assert not set(result.train_index) & set(result.test_index)


def test_overlapping_classes_refused(digits):
    with pytest.raises(ValueError, match="disjoint"):
        selftaught.run_self_taught(digits.X, digits.labels, feature_classes=(4, 5, 6), task_classes=(0, 1, 4))


def test_filters_are_the_encoder_weights(recorded):
    result, _ = recorded
    W = result.filters
    assert W.shape == (32, 64) and np.array_equal(W, result.model.encoder.weight.detach().numpy())


def test_default_model_configs_share_the_mnist_sized_layer():
    from sae.experiments import anomaly, denoising

    for module in (selftaught, anomaly, denoising):
        assert module.default_model_config(784).n_hidden == 196 and module.default_model_config(64).n_hidden == 32
        assert module.default_model_config(1).n_hidden == 1
