"""sae.data.dataset: check_image_shape, the one rule for an image shape (Dataset and uploads use it)."""

import numpy as np
import pytest

from sae.data import DataError, Dataset, check_image_shape


def test_check_image_shape_accepts_a_matching_shape_as_ints():
    assert check_image_shape((np.int64(8), 8.0), 64) == (8, 8)
    assert check_image_shape(["2", 3], 6) == (2, 3)


@pytest.mark.parametrize("shape, match", [((8, 9), "does not match the 64 features"), ((0, 64), "does not match"),
                                          ((8,), "two integers"), ("ab", "two integers"), (None, "two integers")])
def test_check_image_shape_says_why_not(shape, match):
    with pytest.raises(DataError, match=match):
        check_image_shape(shape, 64)


def test_dataset_checks_its_image_shape():
    assert Dataset("x", np.zeros((3, 4), np.float32), None, (2, 2), "").image_shape == (2, 2)
    with pytest.raises(DataError):
        Dataset("x", np.zeros((3, 4), np.float32), None, (3, 2), "")
