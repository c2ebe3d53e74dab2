"""The CSV header rule of sae.data.uploads (the one CSV reader of the CLI and the dashboard), with files
written by pandas, and the scaling into [0, 1] saying what it did."""
from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from sae.data import DataError, load_array, scale_dataset


def pandas_csv(frame: pd.DataFrame) -> bytes:
    buf = io.StringIO()
    frame.to_csv(buf, index=False)
    return buf.getvalue().encode()


@pytest.fixture(scope="module")
def pixels():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(30, 784)).astype(float)  # 30 images of 28x28, 0..255


def test_pandas_column_numbers_are_a_header_not_a_sample(pixels):
    data = load_array(pandas_csv(pd.DataFrame(pixels)), "digits.csv")  # header 0,1,...,783
    assert data.X.shape == (30, 784) and data.image_shape == (28, 28)
    np.testing.assert_array_equal(data.X, pixels)
    assert "header" in data.description and "0, 1, …, 783" in data.description


def test_the_header_does_not_squash_the_scaled_data(pixels):
    scaled = scale_dataset(load_array(pandas_csv(pd.DataFrame(pixels)), "digits.csv"))
    assert scaled.X.max() == 1.0 and scaled.X.min() == 0.0  # not [0, 0.33] (the header's 783 as the max)
    assert "Min-max scaled from [0, 255] into [0, 1]" in scaled.description


def test_a_label_column_named_in_a_pandas_header(pixels):
    frame = pd.DataFrame(pixels)
    frame.insert(0, "label", np.arange(30) % 10)
    data = load_array(pandas_csv(frame), "digits.csv", labels_column="label")
    assert data.X.shape == (30, 784)
    np.testing.assert_array_equal(data.labels, np.arange(30) % 10)
    np.testing.assert_array_equal(data.X, pixels)
    assert "header" in data.description and "labels from column 'label'" in data.description


def test_a_mixed_header_of_names_and_numbers_is_a_header(pixels):
    frame = pd.DataFrame(pixels[:, :6], columns=["a", 1, 2, 3, 4, "b"])
    data = load_array(pandas_csv(frame), "mixed.csv")
    np.testing.assert_array_equal(data.X, pixels[:, :6])
    assert "header" in data.description


def test_names_header_is_reported_too():
    data = load_array(b"x,y\n1,2\n3,4\n", "d.csv")
    assert data.X.shape == (2, 2) and "header" in data.description


def test_a_file_without_header_keeps_its_first_row():
    data = load_array(b"5,1,2\n0,1,2\n", "d.csv")  # the second row looks like column numbers, the first does not
    assert data.X.shape == (2, 3) and "skipped" not in data.description
    data = load_array(b"0.5,1,2\n3,4,5\n", "d.csv")
    assert data.X.shape == (2, 3) and "skipped" not in data.description


def test_column_numbers_with_one_row_after_them_are_data():
    data = load_array(b"0,1,2\n3,4,5\n", "d.csv")  # as a header it would leave one sample: too few to train on
    assert data.X.shape == (2, 3) and "skipped" not in data.description


def test_non_numeric_data_after_a_named_header_still_fails_clearly():
    with pytest.raises(DataError, match="non-numeric value 'oops' at line 3"):
        load_array(b"a,b\n1,2\noops,4\n", "d.csv")


def test_scale_dataset_leaves_unit_data_alone_and_says_nothing():
    data = load_array(b"0,0.5\n1,0.25\n", "d.csv")
    assert scale_dataset(data) is data


def test_header_can_be_forced_either_way():
    # column numbers with one row after them read as data by the rule; header=True says otherwise
    data = load_array(b"0,1,2\n3,4,5\n6,7,8\n", "d.csv", header=True)
    np.testing.assert_array_equal(data.X, [[3, 4, 5], [6, 7, 8]])
    assert "header" in data.description and "as asked" in data.description
    data = load_array(b"0,1,2\n3,4,5\n6,7,8\n", "d.csv", header=False)  # the rule would skip it
    assert data.X.shape == (3, 3) and "no header" in data.description
    with pytest.raises(DataError, match="non-numeric value 'x' at line 1"):
        load_array(b"x,y\n1,2\n3,4\n", "d.csv", header=False)


def test_the_description_says_when_there_is_no_header():
    assert "no header row" in load_array(b"5,1,2\n0,1,2\n", "d.csv").description


def test_header_is_for_text_files_only():
    with pytest.raises(DataError, match="header.*CSV"):
        load_array(np.zeros((3, 2)).tobytes(), "d.npy", header=True)
