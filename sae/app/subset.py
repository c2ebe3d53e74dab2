"""The rows of a data set the pages' derived views use: :func:`subset_indices` picks them, :func:`stratified_order`
puts them in an order whose every prefix is a fair sample.

Pages take "the first N" rows of the subset: the Codes page plots 300 points, the Reconstructions page's "fixed"
pick shows the first 16, the activation trace records the first 256. Data sets may be stored sorted (the MNIST
sample is sorted by class): the first rows of a sorted subset were digits 0-3 only. So the subset is kept in a
stratified random order: with labels, class c (n_c of the N rows) takes the places

    key_i = (r_i + u_i) / n_c,   r_i = 0..n_c-1 a random rank of row i within its class,  u_i ~ U[0, 1),

sorted by key. Any prefix of length k then holds k n_c / N ± 1 rows of class c, in random order. Without labels
the order is a random permutation. A fixed seed keeps the views stable from one snapshot to the next.
"""

from __future__ import annotations

import numpy as np

SUBSET_SIZE = 1000  # samples used by the pages' derived views (activations, PCA, reconstructions)


def subset_indices(n_samples: int, size: int = SUBSET_SIZE, seed: int = 0) -> np.ndarray:
    """A fixed random subset of row indices (sorted) for the derived views; :class:`sae.app.job.Job` orders it
    with :func:`stratified_order`."""
    if n_samples <= size:
        return np.arange(n_samples)
    return np.sort(np.random.default_rng(seed).choice(n_samples, size=size, replace=False))


def stratified_order(indices: np.ndarray, labels: np.ndarray | None, seed: int = 0) -> np.ndarray:
    """``indices`` (k,) reordered so that every prefix is representative: stratified by ``labels[indices]`` when
    labels exist (one label per row of the data set), random otherwise (see the module docstring)."""
    indices = np.asarray(indices)
    rng = np.random.default_rng(seed)
    if labels is None or len(indices) == 0:
        return indices[rng.permutation(len(indices))]
    classes, inverse, counts = np.unique(np.asarray(labels)[indices], return_inverse=True, return_counts=True)
    rank = np.empty(len(indices))
    for c in range(len(classes)):
        members = np.flatnonzero(inverse == c)
        rank[members] = rng.permutation(len(members))
    keys = (rank + rng.random(len(indices))) / counts[inverse]
    return indices[np.argsort(keys, kind="stable")]


__all__ = ["SUBSET_SIZE", "subset_indices", "stratified_order"]
