"""sae.viz.images: UFLDL's display_network normalisation, grid layout, PNG encoding."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image

from sae.viz.images import ImageError, grid_shape, save_png, tile_filters, tile_images, tile_positions, to_png_bytes


def display_network(A: np.ndarray, h: int, w: int) -> np.ndarray:
    """Oracle: a line-by-line port of UFLDL's display_network.m (columns of A are filters),
    with MATLAB's column-major reshape replaced by our row-major one, and [-1, 1] mapped to [0, 1]."""
    A = A - A.mean()
    L, M = A.shape
    if math.isqrt(M) ** 2 != M:
        n = math.ceil(math.sqrt(M))
        while M % n != 0 and n < 1.2 * math.sqrt(M):
            n += 1
        m = math.ceil(M / n)
    else:
        n = m = math.isqrt(M)
    buf = 1
    array = -np.ones((buf + m * (h + buf), buf + n * (w + buf)))
    k = 0
    for i in range(m):
        for j in range(n):
            if k >= M:
                continue
            clim = np.max(np.abs(A[:, k]))
            array[buf + i * (h + buf): buf + i * (h + buf) + h, buf + j * (w + buf): buf + j * (w + buf) + w] = \
                A[:, k].reshape(h, w) / clim
            k += 1
    return (array + 1) / 2


@pytest.mark.parametrize("k,h,w", [(25, 8, 8), (10, 6, 6), (7, 3, 5), (1, 4, 4), (196, 28, 28)])
def test_tile_filters_matches_display_network(k, h, w):
    W = np.random.default_rng(k).normal(size=(k, h * w))
    np.testing.assert_allclose(tile_filters(W, (h, w)), display_network(W.T, h, w), atol=1e-12)


def test_hand_computed_ufldl_normalisation():
    # mean 0.25; filter 0 -> [0.75, -1.25, -0.25, -0.25] / 1.25; filter 1 -> [1.75, -.25, -.25, -.25] / 1.75
    W = np.array([[1.0, -1.0, 0.0, 0.0], [2.0, 0.0, 0.0, 0.0]])
    img = tile_filters(W, (2, 2))
    assert img.shape == (4, 7)  # one row of two 2x2 cells, 1-pixel black borders
    np.testing.assert_allclose(img[1:3, 1:3], [[0.8, 0.0], [0.4, 0.4]])
    np.testing.assert_allclose(img[1:3, 4:6], [[1.0, 3 / 7], [3 / 7, 3 / 7]])
    border = np.ones_like(img, dtype=bool)
    border[1:3, 1:3] = border[1:3, 4:6] = False
    assert (img[border] == 0).all()  # black borders


def test_invariant_to_scale_and_offset_of_all_weights():
    W = np.random.default_rng(0).normal(size=(16, 25))
    ref = tile_filters(W, (5, 5))
    np.testing.assert_allclose(tile_filters(3.7 * W + 2.0, (5, 5)), ref, atol=1e-12)


def test_each_filter_uses_full_contrast_and_rows_are_row_major():
    W = np.zeros((4, 12))
    W[2, 1 * 4 + 3] = 5.0  # filter 2: one hot pixel at row 1, column 3 of a 3x4 image
    W[0, 0] = -0.01  # tiny filter: still reaches the full range after its own scaling
    img = tile_filters(W + 0.0, (3, 4), border=0)
    rows, cols = grid_shape(4)
    assert img.shape == (rows * 3, cols * 4)
    cell2 = img[3:6, 0:4]  # grid 2x2: filter 2 is row 1, column 0
    assert np.unravel_index(np.argmax(cell2), cell2.shape) == (1, 3)
    assert cell2.max() == pytest.approx(1.0)
    assert img[0:3, 0:4].min() == pytest.approx(0.0)


def test_zero_filters_are_mid_grey():
    img = tile_filters(np.zeros((4, 4)), (2, 2), border=0)
    np.testing.assert_allclose(img, 0.5)


@pytest.mark.parametrize("count,expected", [(1, (1, 1)), (4, (2, 2)), (2, (1, 2)), (7, (2, 4)), (10, (3, 4)),
                                            (12, (3, 4)), (196, (14, 14)), (200, (12, 17))])
def test_grid_shape_is_square_ish(count, expected):
    assert grid_shape(count) == expected
    rows, cols = grid_shape(count)
    assert rows * cols >= count and (rows - 1) * cols < count


def test_columns_and_border_options():
    W = np.random.default_rng(1).normal(size=(6, 9))
    img = tile_filters(W, (3, 3), columns=6, border=2)
    assert img.shape == (3 + 4, 6 * 5 + 2)
    assert grid_shape(6, columns=10) == (1, 6)


def test_other_filter_normalisations():
    W = np.array([[0.0, 2.0, 4.0, 2.0], [-1.0, -1.0, -1.0, -1.0]])
    img = tile_filters(W, (2, 2), normalize="per_filter", border=0)
    np.testing.assert_allclose(img[:, :2], [[0.0, 0.5], [1.0, 0.5]])
    np.testing.assert_allclose(img[:, 2:], 0.5)
    clipped = tile_filters(W, (2, 2), normalize="none", border=0)
    np.testing.assert_allclose(clipped[:, :2], [[0.0, 1.0], [1.0, 1.0]])


def test_tile_images_min_max_per_image():
    X = np.array([[0.0, 1.0, 2.0, 3.0], [10.0, 10.0, 10.0, 10.0], [-5.0, 5.0, 0.0, 0.0]])
    img = tile_images(X, (2, 2), border=1)
    assert img.shape == (2 + 2, 3 * 3 + 1)  # 3 images -> one row of 3 (UFLDL's grid rule)
    np.testing.assert_allclose(img[1:3, 1:3], [[0.0, 1 / 3], [2 / 3, 1.0]])
    np.testing.assert_allclose(img[1:3, 4:6], 0.5)  # a constant image is mid-grey
    np.testing.assert_allclose(img[1:3, 7:9], [[0.0, 1.0], [0.5, 0.5]])
    assert (img[0] == 0.5).all() and (img[:, 3] == 0.5).all()  # grey borders by default
    five = tile_images(np.ones((5, 4)), (2, 2), columns=3, border=0, border_value=0.0)
    assert five.shape == (4, 6) and (five[2:, 4:] == 0.0).all()  # the unused sixth cell takes border_value
    raw = tile_images(np.array([[0.2, 0.4, 1.5, -1.0]]), (2, 2), normalize="none", border=0)
    np.testing.assert_allclose(raw, [[0.2, 0.4], [1.0, 0.0]])


def test_png_bytes_round_trip_and_nearest_neighbour_upscale(tmp_path):
    img = np.array([[0.0, 0.5], [1.0, 0.25]])
    data = to_png_bytes(img, scale=3)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    decoded = np.asarray(Image.open(io.BytesIO(data)))
    assert decoded.shape == (6, 6) and decoded.dtype == np.uint8
    expected = np.rint(img * 255).astype(np.uint8)
    np.testing.assert_array_equal(decoded, np.kron(expected, np.ones((3, 3), dtype=np.uint8)))
    path = save_png(img, tmp_path / "x.png", scale=1)
    np.testing.assert_array_equal(np.asarray(Image.open(path)), expected)


@pytest.mark.parametrize("call,match", [
    (lambda: tile_filters(np.zeros((3, 10)), (3, 3)), "does not match the 10 values"),
    (lambda: tile_filters(np.zeros((3, 9)), (3, 3), normalize="zscore"), "normalize must be one of"),
    (lambda: tile_filters(np.full((2, 4), np.nan), (2, 2)), "NaN"),
    (lambda: tile_filters(np.zeros((2, 2, 2)), (2, 2)), "2-D"),
    (lambda: tile_filters(np.zeros((0, 4)), (2, 2)), "at least one"),
    (lambda: tile_filters(np.zeros((2, 4)), (2, 2), border=-1), "border"),
    (lambda: tile_filters(np.zeros((2, 4)), "2x2"), "image_shape"),
    (lambda: tile_images(np.zeros((2, 4)), (2, 2), normalize="ufldl"), "normalize must be one of"),
    (lambda: to_png_bytes(np.zeros((2, 2)), scale=0), "scale"),
    (lambda: to_png_bytes(np.zeros(4)), "2-D"),
    (lambda: to_png_bytes(np.zeros((5000, 5000)), scale=4), "exceed"),
])
def test_bad_arguments_raise_image_error(call, match):
    with pytest.raises(ImageError, match=match):
        call()
    assert issubclass(ImageError, ValueError)


def test_tile_positions_match_sae_images_layout():
    W = np.zeros((5, 12))
    W[2] = 1.0  # one bright filter
    img = tile_filters(W, (3, 4), normalize="none", border=1)
    x0, y0, x1, y1 = tile_positions(5, (3, 4))[2]
    cell = img[int(y0 + 0.5):int(y1 + 0.5), int(x0 + 0.5):int(x1 + 0.5)]
    assert cell.shape == (3, 4) and np.all(cell == 1.0)
