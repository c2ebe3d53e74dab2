r"""Tile filters and images into one grid picture, and encode it as PNG (numpy + pillow only).

The filter view follows UFLDL's ``display_network.m``: for encoder weights W (k, n),

    W' = W - mean(W)                      one global mean over every weight
    cell_j = W'_j / max_i |W'_ji|         each filter scaled by its own largest magnitude -> [-1, 1]
    pixel  = (cell_j + 1) / 2             [-1, 1] -> [0, 1]; 0.5 is a zero weight

on a black (-1 -> 0) background, laid out in a square-ish grid. So mid-grey means "this
pixel does not matter", white "excites the unit", black "inhibits it", and every filter
uses the full contrast range whatever its norm.

Every function is array-in / array-out: images are float arrays in [0, 1] of shape (H, W).
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

FILTER_NORMALIZATIONS = ("ufldl", "per_filter", "none")
IMAGE_NORMALIZATIONS = ("minmax", "none")
MAX_PNG_PIXELS = 50_000_000  # refuse to build absurdly large upscaled images


class ImageError(ValueError):
    """An array that cannot be shown as the requested images; the message says why."""


def grid_shape(count: int, columns: int | None = None) -> tuple[int, int]:
    """(rows, columns) of a square-ish grid for ``count`` cells, UFLDL's rule.

    Without ``columns``: a perfect square stays square; otherwise columns start at
    ceil(sqrt(count)) and grow (up to 1.2 sqrt(count)) until they divide ``count``, so
    the last row is full when a near-square divisor exists.
    """
    if count < 1:
        raise ImageError(f"need at least one image to tile, got {count}.")
    if columns is not None:
        if not isinstance(columns, (int, np.integer)) or columns < 1:
            raise ImageError(f"columns must be a whole number >= 1, got {columns!r}.")
        columns = min(int(columns), count)
        return -(-count // columns), columns
    root = math.isqrt(count)
    if root * root == count:
        return root, root
    cols = math.ceil(math.sqrt(count))
    while count % cols and cols < 1.2 * math.sqrt(count):
        cols += 1
    return -(-count // cols), cols


def _as_rows(X, image_shape: tuple[int, int], what: str) -> tuple[np.ndarray, int, int]:
    """Check X (k, h*w) against image_shape; returns (X float64, h, w)."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X[None, :]
    if X.ndim != 2:
        raise ImageError(f"{what} must be a 2-D array (one row per image), got shape {X.shape}.")
    try:
        h, w = (int(v) for v in image_shape)
    except (TypeError, ValueError):
        raise ImageError(f"image_shape must be two integers (height, width), got {image_shape!r}.") from None
    if h < 1 or w < 1 or h * w != X.shape[1]:
        raise ImageError(f"image_shape {h}x{w} = {h * w} pixels does not match the {X.shape[1]} values per row.")
    if X.shape[0] < 1:
        raise ImageError(f"need at least one image to tile, got {what} of shape {X.shape}.")
    if not np.isfinite(X).all():
        raise ImageError(f"{what} contain NaN or infinite values.")
    return X, h, w


def _check_border(border: int) -> int:
    if not isinstance(border, (int, np.integer)) or border < 0:
        raise ImageError(f"border must be a whole number >= 0, got {border!r}.")
    return int(border)


def tile(cells: np.ndarray, columns: int | None = None, border: int = 1, border_value: float = 0.0) -> np.ndarray:
    """Lay out images cells (k, h, w), already in [0, 1], on a grid separated by ``border`` pixels.

    Returns (rows*(h+border)+border, cols*(w+border)+border) float64; unused cells and borders
    take ``border_value``.
    """
    k, h, w = cells.shape
    border = _check_border(border)
    rows, cols = grid_shape(k, columns)
    out = np.full((rows * (h + border) + border, cols * (w + border) + border), float(border_value))
    for j in range(k):
        r, c = divmod(j, cols)
        y, x = border + r * (h + border), border + c * (w + border)
        out[y:y + h, x:x + w] = cells[j]
    return out


def tile_positions(count: int, image_shape: tuple[int, int], columns: int | None = None,
                   border: int = 1) -> np.ndarray:
    """(count, 4) pixel boxes (x0, y0, x1, y1) of each tile of :func:`tile`, cell edges."""
    h, w = image_shape
    _, cols = grid_shape(count, columns)
    j = np.arange(count)
    r, c = j // cols, j % cols
    x0 = border + c * (w + border) - 0.5
    y0 = border + r * (h + border) - 0.5
    return np.stack([x0, y0, x0 + w, y0 + h], axis=1)


def tile_filters(W, image_shape: tuple[int, int], normalize: str = "ufldl", columns: int | None = None,
                 border: int = 1) -> np.ndarray:
    """Grid image of the rows of W (k, n): row j is hidden unit j's encoder filter, reshaped to image_shape.

    Args:
        W: (k, n) weights, n = h * w (row-major images).
        image_shape: (h, w).
        normalize: ``ufldl``: subtract the global mean of W, scale each filter by its own max |value|
            into [-1, 1], map to [0, 1] (display_network.m). ``per_filter``: min-max each filter to
            [0, 1]. ``none``: clip the raw values to [0, 1].
        columns: grid columns (default: square-ish, see :func:`grid_shape`).
        border: black pixels between and around cells.

    Returns:
        (H, W) float64 image in [0, 1].
    """
    W, h, w = _as_rows(W, image_shape, "filters")
    if normalize == "ufldl":
        W = W - W.mean()
        scale = np.abs(W).max(axis=1, keepdims=True)
        W = W / np.where(scale > 0, scale, 1.0)  # an all-zero filter stays 0 -> mid-grey
        cells = (W + 1.0) / 2.0
    elif normalize == "per_filter":
        cells = _minmax_rows(W)
    elif normalize == "none":
        cells = W
    else:
        raise ImageError(f"normalize must be one of {', '.join(FILTER_NORMALIZATIONS)}; got {normalize!r}.")
    return np.clip(tile(cells.reshape(-1, h, w), columns, border, 0.0), 0.0, 1.0)


def tile_images(X, image_shape: tuple[int, int], normalize: str = "minmax", columns: int | None = None,
                border: int = 1, border_value: float = 0.5) -> np.ndarray:
    """Grid image of data rows X (m, n), each reshaped to image_shape.

    Args:
        normalize: ``minmax``: each image scaled to [0, 1] by its own min and max (a constant
            image becomes mid-grey); ``none``: values clipped to [0, 1] (data already in range).
        border_value: grey by default, so black- and white-background images both stay apart.

    Returns:
        (H, W) float64 image in [0, 1].
    """
    X, h, w = _as_rows(X, image_shape, "images")
    if normalize == "minmax":
        cells = _minmax_rows(X)
    elif normalize == "none":
        cells = X
    else:
        raise ImageError(f"normalize must be one of {', '.join(IMAGE_NORMALIZATIONS)}; got {normalize!r}.")
    return np.clip(tile(cells.reshape(-1, h, w), columns, border, border_value), 0.0, 1.0)


def _minmax_rows(X: np.ndarray) -> np.ndarray:
    """(X_i - min X_i) / (max X_i - min X_i) per row; constant rows -> 0.5."""
    lo, hi = X.min(axis=1, keepdims=True), X.max(axis=1, keepdims=True)
    span = hi - lo
    return np.where(span > 0, (X - lo) / np.where(span > 0, span, 1.0), 0.5)


def to_uint8(img, scale: int = 1) -> np.ndarray:
    """[0, 1] float image (H, W) -> uint8 (H*scale, W*scale), nearest-neighbour upscaled."""
    img = np.asarray(img, dtype=np.float64)
    if img.ndim != 2 or img.size == 0:
        raise ImageError(f"an image must be a non-empty 2-D array, got shape {img.shape}.")
    if not np.isfinite(img).all():
        raise ImageError("the image contains NaN or infinite values.")
    if not isinstance(scale, (int, np.integer)) or scale < 1:
        raise ImageError(f"scale must be a whole number >= 1, got {scale!r}.")
    if img.size * scale * scale > MAX_PNG_PIXELS:
        raise ImageError(f"a {img.shape[0]}x{img.shape[1]} image upscaled {scale}x would exceed "
                         f"{MAX_PNG_PIXELS:,} pixels; use a smaller scale.")
    out = np.rint(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)
    if scale > 1:
        out = np.repeat(np.repeat(out, scale, axis=0), scale, axis=1)
    return out


def to_png_bytes(img, scale: int = 1) -> bytes:
    """Encode a [0, 1] grayscale image (H, W) as PNG bytes, upscaled ``scale`` times (nearest neighbour)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(to_uint8(img, scale)).save(buffer, format="PNG")
    return buffer.getvalue()


def save_png(img, path: str | Path, scale: int = 1) -> Path:
    """Write :func:`to_png_bytes` of ``img`` to ``path``; returns the path."""
    path = Path(path)
    path.write_bytes(to_png_bytes(img, scale))
    return path


__all__ = ["ImageError", "grid_shape", "tile", "tile_positions", "tile_filters", "tile_images", "to_uint8",
           "to_png_bytes", "save_png", "FILTER_NORMALIZATIONS", "IMAGE_NORMALIZATIONS"]
