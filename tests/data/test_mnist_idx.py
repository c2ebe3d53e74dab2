"""Tests for sae.data.mnist_idx: IDX files and download_mnist (cache, checksums, failures)."""
from __future__ import annotations

import gzip
import hashlib
import os
import struct

import numpy as np
import pytest

from sae import data as D
from sae.data import DataError


# ----------------------------------------------------------------------------- helpers

def idx_bytes(arr: np.ndarray, type_code: int = 0x08) -> bytes:
    """Serialise ``arr`` in IDX format: 00 00 <type> <ndim>, big-endian uint32 dims, data."""
    dtype = {0x08: ">u1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4"}[type_code]
    head = bytes([0, 0, type_code, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
    return head + np.asarray(arr).astype(dtype).tobytes()


def write_mnist(folder, n: int = 6, h: int = 28, w: int = 28, seed: int = 0, gz: bool = True,
                prefix: str = "train"):
    """Write a tiny MNIST-format pair (images, labels); returns (paths, images, labels)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, h, w), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    paths = []
    for name, payload in ((f"{prefix}-images-idx3-ubyte", idx_bytes(images)),
                          (f"{prefix}-labels-idx1-ubyte", idx_bytes(labels))):
        path = folder / (name + (".gz" if gz else ""))
        path.write_bytes(gzip.compress(payload) if gz else payload)
        paths.append(path)
    return paths, images, labels


# ------------------------------------------------------------------------- MNIST IDX

@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip(tmp_path, gz):
    (img_path, lab_path), images, labels = write_mnist(tmp_path, n=7, h=5, w=3, gz=gz)
    ds = D.load_mnist_idx(img_path, lab_path)
    assert ds.X.shape == (7, 15) and ds.image_shape == (5, 3) and ds.X.dtype == np.float32
    np.testing.assert_allclose(ds.X, images.reshape(7, 15) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(ds.labels, labels)
    assert D.load_mnist_idx(img_path).labels is None


@pytest.mark.parametrize("gz", [False, True])
def test_idx_truncated_file_is_a_data_error(tmp_path, gz):
    images = np.zeros((4, 6, 6), np.uint8)
    payload = idx_bytes(images)[:-10]
    path = tmp_path / ("imgs.idx.gz" if gz else "imgs.idx")
    path.write_bytes(gzip.compress(payload) if gz else payload)
    with pytest.raises(DataError, match="truncated"):
        D.load_mnist_idx(path)


def test_idx_truncated_gzip_stream_is_a_data_error(tmp_path):
    path = tmp_path / "imgs.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((50, 28, 28), np.uint8)))[:-20])
    with pytest.raises(DataError, match="gzip"):
        D.load_mnist_idx(path)


@pytest.mark.parametrize("payload, match", [
    (b"\x12\x34\x08\x03" + b"\x00" * 20, "magic number"),
    (b"\x00\x00\x42\x03" + b"\x00" * 20, "magic number"),
    (b"\x00\x00", "too short"),
    (b"\x00\x00\x08\x03\x00\x00", "header"),
    (idx_bytes(np.zeros((2, 3, 3), np.uint8)) + b"\x00", "bytes more"),
    (idx_bytes(np.zeros((4, 9), np.uint8)), "3 dimensions"),
])
def test_idx_bad_images_file(tmp_path, payload, match):
    path = tmp_path / "bad-images"
    path.write_bytes(payload)
    with pytest.raises(DataError, match=match):
        D.load_mnist_idx(path)


def test_idx_label_mismatches(tmp_path):
    (img_path, _), _, _ = write_mnist(tmp_path, n=5, h=4, w=4)
    few = tmp_path / "few-labels"
    few.write_bytes(idx_bytes(np.zeros(4, np.uint8)))
    with pytest.raises(DataError, match="4 labels but .* 5 images"):
        D.load_mnist_idx(img_path, few)
    wrong = tmp_path / "2d-labels"
    wrong.write_bytes(idx_bytes(np.zeros((5, 2), np.uint8)))
    with pytest.raises(DataError, match="1-D integer"):
        D.load_mnist_idx(img_path, wrong)
    with pytest.raises(DataError, match="Cannot read"):
        D.load_mnist_idx(tmp_path / "missing.gz")


def test_idx_non_byte_types(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4) / 7
    path = tmp_path / "float-images"
    path.write_bytes(idx_bytes(images, 0x0D))
    np.testing.assert_allclose(D.load_mnist_idx(path).X, images.reshape(2, 12), rtol=1e-6)


# -------------------------------------------------------------------- download_mnist

def test_download_mnist_from_file_url_then_uses_cache(tmp_path):
    src, cache = tmp_path / "mirror", tmp_path / "cache"
    src.mkdir()
    paths, images, labels = write_mnist(src, n=9)
    sums = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}
    calls: list[str] = []

    def counting_fetch(url):
        calls.append(url)
        return D.urlopen_with_timeout(url)

    base = src.as_uri() + "/"
    ds = D.download_mnist(cache, base_url=base, fetch=counting_fetch, sha256=sums)
    assert ds.name == "mnist-train" and ds.X.shape == (9, 784) and ds.image_shape == (28, 28)
    np.testing.assert_allclose(ds.X, images.reshape(9, -1) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(ds.labels, labels)
    assert sorted(os.listdir(cache)) == sorted(sums)  # no temporary files left behind
    assert len(calls) == 2
    for p in paths:  # the mirror is gone: only the cache can answer now
        p.unlink()
    again = D.download_mnist(cache, base_url=base, fetch=counting_fetch, sha256=sums)
    np.testing.assert_array_equal(again.X, ds.X)
    assert len(calls) == 2


def test_download_mnist_test_split_and_default_fetch(tmp_path):
    src = tmp_path / "mirror"
    src.mkdir()
    write_mnist(src, n=3, prefix="t10k")
    ds = D.download_mnist(tmp_path / "cache", base_url=src.as_uri(), split="test")
    assert ds.name == "mnist-test" and ds.n_samples == 3


def test_download_mnist_checksum_mismatch(tmp_path):
    src, cache = tmp_path / "mirror", tmp_path / "cache"
    src.mkdir()
    write_mnist(src)
    bad = {"train-images-idx3-ubyte.gz": "0" * 64}
    with pytest.raises(DataError, match="Checksum mismatch"):
        D.download_mnist(cache, base_url=src.as_uri() + "/", sha256=bad)
    assert not (cache / "train-images-idx3-ubyte.gz").exists()
    assert not any(name.endswith(".part") for name in os.listdir(cache))


def test_download_mnist_failures_are_data_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="Could not download"):
        D.download_mnist(tmp_path / "cache", base_url=empty.as_uri() + "/")
    with pytest.raises(DataError, match="split"):
        D.download_mnist(tmp_path / "cache", split="validation")
    assert os.listdir(tmp_path / "cache") == []


def test_default_mnist_source_is_checksummed():
    assert D.MNIST_URL.startswith("https://")
    assert set(D.MNIST_SHA256) == {f for pair in D.MNIST_FILES.values() for f in pair}
    assert all(len(v) == 64 for v in D.MNIST_SHA256.values())
