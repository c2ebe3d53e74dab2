"""sae.experiments.datasets: the experiment pages' data set choices, one definition."""

import pytest

from sae.data import DATASETS
from sae.experiments.datasets import DIGIT_DATASETS, EXPERIMENT_DATASET_LABELS, MISTAKE_DATASETS, dataset_choices


def test_choices_are_built_in_data_sets_in_page_order():
    assert list(DIGIT_DATASETS) == ["mnist", "digits"] and list(MISTAKE_DATASETS) == ["digits", "patches"]
    assert DIGIT_DATASETS["digits"] == MISTAKE_DATASETS["digits"] == "scikit-learn digits 8×8 (1,797)"
    assert set(EXPERIMENT_DATASET_LABELS) <= set(DATASETS)


def test_dataset_choices_refuses_an_unknown_name():
    assert dataset_choices("patches") == {"patches": "whitened natural-image patches 8×8 (10,000)"}
    with pytest.raises(KeyError):
        dataset_choices("cifar")
