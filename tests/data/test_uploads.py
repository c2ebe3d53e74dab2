"""Tests for sae.data.uploads (load_array, scale_to_unit_interval) and the Dataset container."""
from __future__ import annotations

import io

import numpy as np
import pytest

from conftest import UNPICKLED, Trap, npy_bytes
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sae import data as D
from sae.data import DataError, Dataset


# ----------------------------------------------------------------------------- helpers

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
@example(arr=np.array([[1.34556673e-141], [1.34556673e-141]]), cut=0)  # below float32's range: stored as 0
def test_load_array_on_random_npy_returns_valid_data_or_data_error(arr, cut):
    payload = npy_bytes(arr)
    payload = payload[:len(payload) - cut] if cut < 20 else payload  # sometimes truncate
    try:
        ds = D.load_array(payload, "a.npy")
    except DataError:
        return
    assert_valid_dataset(ds)
    with np.errstate(over="ignore", under="ignore"):  # data are float32: compare with the values float32 holds
        expected = arr.reshape(arr.shape[0], -1).astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(ds.X, expected, rtol=1e-6)
