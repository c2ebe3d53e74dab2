"""Natural image patches: bundled photos, whitening, patch sampling and UFLDL normalisation."""
from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Sequence

import numpy as np

from .dataset import DataError, Dataset

# Grayscale photographs of natural scenes and objects bundled with scikit-image (files in
# skimage/data, no download) and scikit-learn (load_sample_images). Text, synthetic, binary,
# astronomical and microscopy images are left out on purpose.
SKIMAGE_PHOTOS: tuple[str, ...] = (
    "astronaut.png", "camera.png", "chelsea.png", "coffee.png", "rocket.jpg", "coins.png",
    "moon.png", "motorcycle_left.png", "brick.png", "grass.png", "gravel.png",
)
SKLEARN_PHOTOS: tuple[str, ...] = ("china.jpg", "flower.jpg")
PHOTO_SHORT_SIDE = 512     # photos larger than this are downscaled to this short side
WHITEN_F0 = 0.4            # Olshausen & Field's cutoff f0 = 0.4 N cycles/image = 0.4 cycles/pixel
PATCH_MARGIN = 4           # pixels skipped at photo borders (FFT wrap-around artefacts of whitening)


def whiten(image: np.ndarray, f0: float = WHITEN_F0) -> np.ndarray:
    """Olshausen & Field's whitening of one grayscale image, normalised to unit variance.

    In the Fourier domain multiply by ``f * exp(-(f/f0)^4)``: the ramp ``f`` flattens the
    1/f amplitude spectrum of natural images, the exponential removes the highest (noisy,
    aliased) frequencies. O&F use f in cycles/image with f0 = 0.4 N for an N x N image,
    i.e. f0 = 0.4 cycles/pixel, which is what this uses for any (H, W).

    Args:
        image: (H, W) float grayscale.
    Returns:
        (H, W) float32 with mean 0 and variance 1.
    """
    img = np.asarray(image, dtype=np.float64)
    h, w = img.shape
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.hypot(fx, fy)                                   # (H, W//2+1) cycles/pixel
    filt = f * np.exp(-((f / f0) ** 4))
    out = np.fft.irfft2(np.fft.rfft2(img - img.mean()) * filt, s=(h, w))
    out -= out.mean()
    return (out / out.std()).astype(np.float32)


def _package_dir(package: str, *parts: str) -> Path:
    """A folder inside an installed package, located without importing it (imports cost ~1 s)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"The package {package!r} is not installed; it ships the photos for 'patches'.")
    return Path(list(spec.submodule_search_locations)[0], *parts)


def _read_gray(path: Path) -> np.ndarray:
    """An image file -> (H, W) float64 grayscale in [0, 1], downscaled so the short side <= 512.

    RGB -> gray with the ITU-R BT.709 luma weights (as ``skimage.color.rgb2gray``).
    """
    from PIL import Image

    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB"), dtype=np.float64) / 255.0
    gray = rgb @ np.array([0.2125, 0.7154, 0.0721])
    short = min(gray.shape)
    if short > PHOTO_SHORT_SIDE:
        scale = PHOTO_SHORT_SIDE / short
        size = (round(gray.shape[1] * scale), round(gray.shape[0] * scale))  # PIL wants (W, H)
        small = Image.fromarray(gray.astype(np.float32), mode="F").resize(size, Image.Resampling.LANCZOS)
        gray = np.clip(np.asarray(small, dtype=np.float64), 0.0, 1.0)  # Lanczos overshoots a little
    return gray


@functools.lru_cache(maxsize=1)
def grayscale_photos() -> tuple[tuple[str, np.ndarray], ...]:
    """The bundled photos as (name, (H, W) float64 grayscale in [0, 1]) pairs (read-only, cached).

    Files are read straight from the scikit-image and scikit-learn package folders: nothing is
    downloaded, and missing files are skipped.
    """
    paths = [_package_dir("skimage", "data", f) for f in SKIMAGE_PHOTOS]
    paths += [_package_dir("sklearn", "datasets", "images", f) for f in SKLEARN_PHOTOS]
    photos = []
    for path in paths:
        if path.exists():
            gray = _read_gray(path)
            gray.flags.writeable = False
            photos.append((path.stem, gray))
    if len(photos) < 3:
        raise DataError("Too few bundled photographs found; reinstall scikit-image and scikit-learn.")
    return tuple(photos)


@functools.lru_cache(maxsize=1)
def whitened_photos() -> tuple[tuple[str, np.ndarray], ...]:
    """:func:`grayscale_photos` passed through :func:`whiten` (read-only, cached)."""
    out = []
    for name, p in grayscale_photos():
        wp = whiten(p)
        wp.flags.writeable = False
        out.append((name, wp))
    return tuple(out)


def sample_patches(images: Sequence[np.ndarray], n_patches: int, patch_size: int,
                   rng: np.random.Generator, margin: int = 0) -> np.ndarray:
    """Cut random square patches: image uniform over ``images``, position uniform in it.

    Vectorised: all images are concatenated into one flat buffer and every patch pixel is
    gathered with one fancy-indexing call.

    Returns:
        (n_patches, patch_size**2) float32, each row a row-major patch.
    """
    p = patch_size
    heights = np.array([im.shape[0] for im in images])
    widths = np.array([im.shape[1] for im in images])
    if p < 1 or np.any(np.minimum(heights, widths) - 2 * margin < p):
        raise DataError(f"patch_size {p} does not fit in the smallest image "
                        f"({heights.min()}x{widths.min()} px, margin {margin}).")
    flat = np.concatenate([np.ravel(im).astype(np.float32) for im in images])
    offsets = np.concatenate([[0], np.cumsum(heights * widths)[:-1]])
    k = rng.integers(len(images), size=n_patches)                    # which image
    r = rng.integers(margin, heights[k] - p - margin + 1)            # top row
    c = rng.integers(margin, widths[k] - p - margin + 1)             # left column
    dy, dx = np.divmod(np.arange(p * p), p)                          # (p*p,) offsets inside a patch
    idx = (offsets[k] + r * widths[k] + c)[:, None] + dy[None, :] * widths[k][:, None] + dx[None, :]
    return flat[idx]


def normalize_patches(patches: np.ndarray) -> np.ndarray:
    """UFLDL's ``normalizeData``: (n, d) patches -> values in [0.1, 0.9].

    x <- x - mean(x) per patch; s = 3 std(all values); x <- clip(x, -s, s) / s;
    x <- (x + 1) * 0.4 + 0.1. So an unclipped patch has mean exactly 0.5.
    """
    x = np.asarray(patches, dtype=np.float64)
    x = x - x.mean(axis=1, keepdims=True)
    pstd = 3.0 * x.std()
    if pstd == 0:
        pstd = 1.0
    x = np.clip(x, -pstd, pstd) / pstd
    return ((x + 1.0) * 0.4 + 0.1).astype(np.float32)


def natural_image_patches(n_patches: int = 10_000, patch_size: int = 8, seed: int = 0) -> Dataset:
    """UFLDL's ``sampleIMAGES`` on whitened photos: (n_patches, patch_size**2) in [0.1, 0.9].

    Photos (:data:`SKIMAGE_PHOTOS`, :data:`SKLEARN_PHOTOS`) -> float grayscale -> short side
    <= 512 px -> :func:`whiten` (1/f filter, unit variance), done once and cached. Then
    patches uniform over photos and positions (``np.random.default_rng(seed)``, a 4 px border
    skipped) -> :func:`normalize_patches`. Deterministic for a seed.
    """
    if not isinstance(n_patches, (int, np.integer)) or n_patches < 2:
        raise DataError(f"n_patches must be an integer >= 2, got {n_patches!r}.")
    if not isinstance(patch_size, (int, np.integer)) or not 2 <= patch_size <= 64:
        raise DataError(f"patch_size must be an integer from 2 to 64, got {patch_size!r}.")
    photos = whitened_photos()
    rng = np.random.default_rng(seed)
    X = normalize_patches(sample_patches([im for _, im in photos], int(n_patches), int(patch_size),
                                         rng, margin=PATCH_MARGIN))
    return Dataset("patches", X, None, (int(patch_size), int(patch_size)),
                   f"{n_patches:,} random {patch_size}x{patch_size} patches of {len(photos)} whitened "
                   f"natural photographs, normalised into [0.1, 0.9] as in UFLDL's sampleIMAGES.")
