"""MNIST-format IDX files: parsing, :func:`load_mnist_idx`, and the cached, checksummed :func:`download_mnist`."""
from __future__ import annotations

import gzip
import hashlib
import http.client
import math
import os
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import IO, Callable

import numpy as np

from .dataset import DataError, Dataset, PathLike

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
