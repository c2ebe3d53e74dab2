"""Are the learned filters strokes and edges, or noise and whole-input templates? Two measures.

A filter is a row w (n,) of the encoder W1 (s, n), shown as an (h, w) image. Its energy is
e_p = (w_p - mean(w))^2 (the mean is the grey background of UFLDL's display). The Filters page promises:

- pen strokes on digits: *local* structure, most of a filter's energy in a small part of the image.
  :func:`localization`: the largest share of the energy inside one k x k window, k = ceil(max(h, w) / 3)
  (28x28 -> 10, 8x8 -> 3). Measured on MNIST (5,000 digits, 196 units): noise ~0.2, whole-digit templates
  0.3-0.55 (rho 0.02, lambda 1e-4), strokes 0.65-0.75 (UFLDL's rho 0.1, beta 3, lambda 3e-3).
- oriented edges on natural patches: a grating-like filter (a Gabor) has its power at one spatial frequency
  and orientation. :func:`orientation`: the share of the filter's power (its 2-D DFT without the mean) in
  the strongest frequency and its mirror image. Measured on 8x8 whitened patches: noise ~0.12, edge filters
  0.45-0.7; digit templates and strokes score low (~0.1: a local stroke has a broad spectrum).

Both are compared with :func:`shuffled`: the same weights with their pixels shuffled within each filter (the
same values, no spatial structure), i.e. what "out of noise" means for these numbers. :func:`filter_report`
gives the medians over the units. tests/app/test_dataset_defaults.py trains each built-in set with its defaults
(``sae.app.settings.DATASET_DEFAULTS``) and checks the measure that fits its promise
(``sae.app.settings.DATASET_PROMISES``); tests/evaluation/test_filter_measures.py checks the measures on
filters whose answer is known.

Example:
    >>> report = filter_report(snapshot.weights["encoder.weight"], (8, 8))
    >>> report.orientation > 2 * report.orientation_noise      # edges, not noise
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def _centred(W: np.ndarray, image_shape: tuple[int, int]) -> np.ndarray:
    """(s, h, w) filters minus their mean, float64; ValueError unless W is (s, h * w)."""
    W = np.asarray(W, dtype=np.float64)
    h, w = image_shape
    if W.ndim != 2 or W.shape[1] != h * w:
        raise ValueError(f"filters must be (units, {h * w}) for {h}x{w} images, got shape {W.shape}.")
    return (W - W.mean(axis=1, keepdims=True)).reshape(len(W), h, w)


def _share(part: np.ndarray, total: np.ndarray) -> np.ndarray:
    return np.divide(part, total, out=np.zeros_like(total), where=total > 0)


def window_energy(W: np.ndarray, image_shape: tuple[int, int], side: int) -> np.ndarray:
    """(s,) the largest share of each filter's energy inside one ``side`` x ``side`` window of its image.

    Args:
        W: (s, n) filters, n = h * w, row-major images.
        image_shape: (h, w).
        side: the window's side in pixels (clipped to the image).
    Returns:
        (s,) values in [0, 1]; a constant filter (no energy) gets 0.
    """
    E = _centred(W, image_shape) ** 2
    h, w = image_shape
    kh, kw = min(side, h), min(side, w)
    C = np.zeros((len(E), h + 1, w + 1))
    C[:, 1:, 1:] = E.cumsum(axis=1).cumsum(axis=2)  # summed-area table: any window's sum in four lookups
    sums = C[:, kh:, kw:] - C[:, :-kh, kw:] - C[:, kh:, :-kw] + C[:, :-kh, :-kw]  # (s, h-kh+1, w-kw+1)
    return _share(sums.reshape(len(E), -1).max(axis=1), E.sum(axis=(1, 2)))


def localization_side(image_shape: tuple[int, int]) -> int:
    """The window side of :func:`localization`: a third of the image's larger side, rounded up."""
    return math.ceil(max(image_shape) / 3)


def localization(W: np.ndarray, image_shape: tuple[int, int]) -> np.ndarray:
    """(s,) the share of each filter's energy in its best window of side :func:`localization_side`."""
    return window_energy(W, image_shape, localization_side(image_shape))


def orientation(W: np.ndarray, image_shape: tuple[int, int]) -> np.ndarray:
    """(s,) the share of each filter's power (2-D DFT, mean removed) in its strongest frequency and the mirror
    frequency (a real image's spectrum is symmetric): near 1 for a grating or an edge, small for noise."""
    P = np.abs(np.fft.fft2(_centred(W, image_shape))) ** 2
    P = P.reshape(len(P), -1)
    top = -np.sort(-P, axis=1)[:, :2].sum(axis=1)  # the peak and its conjugate (equal; one for Nyquist bins)
    return np.minimum(_share(top, P.sum(axis=1)), 1.0)


def shuffled(W: np.ndarray, seed: int = 0) -> np.ndarray:
    """W (s, n) with the n values of each filter in a random order (each filter its own): no spatial structure."""
    W = np.asarray(W, dtype=np.float64)
    order = np.random.default_rng(seed).permuted(np.tile(np.arange(W.shape[1]), (len(W), 1)), axis=1)
    return np.take_along_axis(W, order, axis=1)


@dataclass(frozen=True)
class FilterReport:
    """Medians over the units of :func:`localization` and :func:`orientation`, for the filters and for
    their :func:`shuffled` copies (``*_noise``)."""

    localization: float
    localization_noise: float
    orientation: float
    orientation_noise: float


def filter_report(W: np.ndarray, image_shape: tuple[int, int], seed: int = 0) -> FilterReport:
    """The :class:`FilterReport` of filters W (s, h * w)."""
    noise = shuffled(W, seed)
    return FilterReport(float(np.median(localization(W, image_shape))),
                        float(np.median(localization(noise, image_shape))),
                        float(np.median(orientation(W, image_shape))),
                        float(np.median(orientation(noise, image_shape))))


__all__ = ["window_energy", "localization", "localization_side", "orientation", "shuffled", "FilterReport",
           "filter_report"]
