"""The built-in data sets the experiment pages offer, with the words that describe them (one home for the
choices of the denoising, anomaly, self-taught and common-mistakes pages). No Streamlit.

- :data:`DIGIT_DATASETS`: labelled digit images (denoising, anomaly detection, self-taught learning need
  images and classes);
- :data:`MISTAKE_DATASETS`: the common-mistakes page (the digits, and the natural-image patches where the
  sigmoid decoder's range matters).

Each maps a ``sae.data.DATASETS`` name to a short description for a radio button.
"""

from __future__ import annotations

EXPERIMENT_DATASET_LABELS = {"mnist": "MNIST 28×28 (5,000 digits)",
                             "digits": "scikit-learn digits 8×8 (1,797)",
                             "patches": "whitened natural-image patches 8×8 (10,000)"}


def dataset_choices(*names: str) -> dict[str, str]:
    """{name: description} of the given built-in data sets, in that order."""
    return {name: EXPERIMENT_DATASET_LABELS[name] for name in names}


DIGIT_DATASETS = dataset_choices("mnist", "digits")
MISTAKE_DATASETS = dataset_choices("digits", "patches")

__all__ = ["EXPERIMENT_DATASET_LABELS", "DIGIT_DATASETS", "MISTAKE_DATASETS", "dataset_choices"]
