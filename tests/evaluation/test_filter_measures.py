"""The stroke / edge measures of sae.evaluation.filters on filters whose answer is known."""

import numpy as np
import pytest

from sae.evaluation.filters import (filter_report, localization, localization_side, orientation, shuffled,
                                    window_energy)


def gabor(h, angle, freq=0.25, sigma=2.0, centre=None):
    y, x = np.mgrid[:h, :h].astype(float)
    cy, cx = centre or ((h - 1) / 2, (h - 1) / 2)
    u = (x - cx) * np.cos(angle) + (y - cy) * np.sin(angle)
    return (np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * sigma ** 2)) * np.cos(2 * np.pi * freq * u)).ravel()


def stroke(h=28, at=(6, 6), length=7):
    img = np.zeros((h, h))
    for t in range(length):
        img[at[0] + t, at[1] + t // 2] = 1.0
    return img.ravel()


def ring(h=28, radius=9):
    y, x = np.mgrid[:h, :h]
    r = np.hypot(y - h / 2, x - h / 2)
    return (np.abs(r - radius) < 1.5).astype(float).ravel()


def test_window_energy_of_a_single_pixel_and_of_a_constant():
    W = np.zeros((2, 64))
    W[0, 27] = 5.0
    assert window_energy(W, (8, 8), 1)[0] == pytest.approx(1 - 1 / 64, abs=0.02)  # the mean is removed first
    assert window_energy(W, (8, 8), 3)[1] == 0.0  # no energy: 0, not NaN
    assert window_energy(W, (8, 8), 8)[0] == pytest.approx(1.0)


def test_window_energy_matches_a_brute_force_search():
    rng = np.random.default_rng(1)
    W = rng.normal(size=(3, 35))
    E = ((W - W.mean(1, keepdims=True)) ** 2).reshape(3, 5, 7)
    brute = [max(E[i, r:r + 3, c:c + 3].sum() for r in range(3) for c in range(5)) / E[i].sum() for i in range(3)]
    assert np.allclose(window_energy(W, (5, 7), 3), brute)


def test_localization_ranks_a_stroke_above_a_template_above_noise():
    noise = np.random.default_rng(0).normal(size=(20, 784))
    strokes = np.stack([stroke(at=(r, c)) for r, c in [(3, 3), (10, 12), (18, 5)]])
    templates = np.stack([ring(radius=r) for r in (7, 8, 9)])
    assert localization_side((28, 28)) == 10 and localization_side((8, 8)) == 3
    s, t, n = (np.median(localization(W, (28, 28))) for W in (strokes, templates, noise))
    assert s > 0.9 and 0.2 < t < 0.6 and n < 0.3 and s > t > n


def test_orientation_finds_gratings_not_noise_or_strokes():
    gabors = np.stack([gabor(8, a) for a in np.linspace(0, np.pi, 6, endpoint=False)])
    noise = np.random.default_rng(0).normal(size=(50, 64))
    assert np.median(orientation(gabors, (8, 8))) > 0.4
    assert np.median(orientation(noise, (8, 8))) < 0.2
    assert np.all(orientation(gabors, (8, 8)) <= 1.0)


def test_shuffled_keeps_the_values_and_the_report_compares_with_it():
    gabors = np.stack([gabor(8, a) for a in (0, 1, 2)])
    mixed = shuffled(gabors, seed=3)
    assert np.allclose(np.sort(mixed, axis=1), np.sort(gabors, axis=1))
    report = filter_report(gabors, (8, 8))
    assert report.orientation > 2 * report.orientation_noise


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="28x28"):
        localization(np.zeros((3, 100)), (28, 28))
