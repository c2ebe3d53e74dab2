"""Tests for sae.data.patches: bundled photos, whitening, patch sampling and normalisation."""
from __future__ import annotations

import numpy as np
import pytest

from sae import data as D
from sae.data import DataError


# ----------------------------------------------------------------------------- helpers

def neighbour_correlation(img: np.ndarray) -> float:
    """Correlation of horizontally adjacent pixels of a (H, W) image."""
    return float(np.corrcoef(img[:, :-1].ravel(), img[:, 1:].ravel())[0, 1])


def spectral_slope(img: np.ndarray, lo: float = 0.02, hi: float = 0.25) -> float:
    """Slope of log power vs log frequency (cycles/pixel) in [lo, hi]: natural images ~ -2."""
    power = np.abs(np.fft.rfft2(img - img.mean())) ** 2
    f = np.hypot(np.fft.rfftfreq(img.shape[1])[None, :], np.fft.fftfreq(img.shape[0])[:, None])
    band = (f > lo) & (f < hi)
    return float(np.polyfit(np.log(f[band]), np.log(power[band]), 1)[0])


# ------------------------------------------------------------------- natural patches

def test_patches_deterministic_for_a_seed_and_different_across_seeds():
    a = D.natural_image_patches(2_000, 8, seed=0)
    b = D.natural_image_patches(2_000, 8, seed=0)
    c = D.natural_image_patches(2_000, 8, seed=1)
    np.testing.assert_array_equal(a.X, b.X)
    assert not np.allclose(a.X, c.X)


def test_patches_size_and_count_follow_arguments():
    ds = D.load_dataset("patches", n_samples=500, patch_size=12, seed=4)
    assert ds.X.shape == (500, 144) and ds.image_shape == (12, 12)
    assert ds.X.min() >= 0.1 - 1e-6 and ds.X.max() <= 0.9 + 1e-6
    with pytest.raises(DataError, match="patch_size"):
        D.natural_image_patches(10, patch_size=1)


def test_patches_follow_ufldl_normalisation():
    X = D.load_dataset("patches").X.astype(np.float64)
    means = X.mean(axis=1)
    # Each patch had its own mean removed, and 0 maps to (0 + 1) * 0.4 + 0.1 = 0.5.
    assert np.median(means) == pytest.approx(0.5, abs=1e-3)
    unclipped = (X.min(axis=1) > 0.1 + 1e-6) & (X.max(axis=1) < 0.9 - 1e-6)
    assert unclipped.mean() > 0.5
    np.testing.assert_allclose(means[unclipped], 0.5, atol=1e-5)
    # Clipping at 3 standard deviations: (x - 0.5) / 0.4 has std just under 1/3, few values clipped.
    z = (X - 0.5) / 0.4
    assert 0.25 < z.std() < 1 / 3
    clipped = np.isclose(np.abs(z), 1.0, atol=1e-5).mean()
    assert 0 < clipped < 0.05


def test_whiten_gives_zero_mean_unit_variance():
    img = np.random.default_rng(0).random((40, 56))
    out = D.whiten(img)
    assert out.shape == img.shape and out.dtype == np.float32
    assert abs(out.mean()) < 1e-5 and out.std() == pytest.approx(1.0, rel=1e-4)


def test_whitening_flattens_the_spectrum():
    raw = D.grayscale_photos()
    white = D.whitened_photos()
    assert len(raw) == len(white) >= 10
    raw_slopes = np.array([spectral_slope(p) for _, p in raw])
    white_slopes = np.array([spectral_slope(p) for _, p in white])
    # The filter is ~ f in amplitude, f^2 in power: it lifts the log-log slope by ~2 everywhere.
    assert raw_slopes.mean() < -2.0
    assert np.all(white_slopes - raw_slopes > 1.5)
    assert abs(white_slopes.mean()) < 1.2
    # Neighbouring pixels become much less alike, in whole photos and in the patches.
    assert np.mean([neighbour_correlation(p) for _, p in raw]) > 0.85
    assert np.mean([neighbour_correlation(p) for _, p in white]) < 0.75
    rng = np.random.default_rng(0)
    raw_patches = D.sample_patches([p for _, p in raw], 5_000, 8, rng, margin=4)
    white_patches = D.natural_image_patches(5_000, 8, seed=0).X

    def patch_corr(X):
        P = X.reshape(-1, 8, 8) - X.reshape(-1, 8, 8).mean(axis=(1, 2), keepdims=True)
        return neighbour_correlation(P.transpose(1, 0, 2).reshape(8, -1))
    assert patch_corr(white_patches) < patch_corr(raw_patches) - 0.1


def test_sample_patches_cuts_the_right_pixels():
    img = np.arange(20 * 30, dtype=np.float32).reshape(20, 30)
    other = -np.arange(10 * 12, dtype=np.float32).reshape(10, 12) - 1
    P = D.sample_patches([img, other], 200, 5, np.random.default_rng(0))
    for row in P.reshape(-1, 5, 5):
        src = img if row[0, 0] >= 0 else other
        r, c = np.argwhere(src == row[0, 0])[0]
        np.testing.assert_array_equal(row, src[r:r + 5, c:c + 5])
    assert (P[:, 0] < 0).any() and (P[:, 0] >= 0).any()
