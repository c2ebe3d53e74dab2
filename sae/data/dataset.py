"""The :class:`Dataset` every loader returns, and :class:`DataError` for bad data.

This module imports nothing from its sibling modules.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Union

import numpy as np

from sae.core.config import decoder_for

PathLike = Union[str, "os.PathLike[str]"]


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
            object.__setattr__(self, "image_shape", check_image_shape(self.image_shape, X.shape[1]))

    @property
    def n_samples(self) -> int:
        return int(self.X.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.X.shape[1])

    @functools.cached_property
    def decoder(self) -> str:
        """The decoder ``auto`` stands for on these data (``sae.core.config.decoder_for``), computed once."""
        return decoder_for(self.X)

    @property
    def in_unit_interval(self) -> bool:
        """True when every value lies in [0, 1], so a sigmoid decoder can reproduce it."""
        return self.decoder == "sigmoid"

    def __repr__(self) -> str:
        return (f"Dataset(name={self.name!r}, X={self.n_samples}x{self.n_features}, "
                f"labels={'yes' if self.labels is not None else 'no'}, image_shape={self.image_shape})")


def check_image_shape(image_shape: tuple[int, int], n_features: int) -> tuple[int, int]:
    """(height, width) as ints if they describe one row of ``n_features`` pixels; otherwise a DataError saying why."""
    try:
        h, w = (int(v) for v in image_shape)
    except (TypeError, ValueError):
        raise DataError(f"image_shape must be two integers (height, width), got {image_shape!r}.") from None
    if h < 1 or w < 1 or h * w != n_features:
        raise DataError(f"image_shape {h}x{w} = {h * w} pixels does not match the {n_features} features "
                        f"per sample.")
    return h, w
