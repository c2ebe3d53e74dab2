"""What a Trainer starts from: the data as a float32 tensor, a new model or one that can train with the objective
and data, a saved history to continue, how many optimiser steps one pass over the data and the whole run take.
"""

from __future__ import annotations

import numpy as np
import torch

from sae.core.config import ConfigError, ModelConfig, TrainConfig
from sae.core.model import SparseAutoencoder
from sae.training.snapshot import HISTORY_COLUMNS, OPTIONAL_COLUMNS


def as_training_tensor(X) -> torch.Tensor:
    """X (m, n), numpy or torch, as a C-contiguous float32 tensor owned by the trainer (numpy input is copied).

    Raises ConfigError unless X is 2-D with m, n >= 1 and every value finite.
    """
    X = torch.from_numpy(np.array(X, dtype=np.float32, order="C", copy=True)) if not isinstance(X, torch.Tensor) \
        else X.detach().to(torch.float32).contiguous()
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
        raise ConfigError(f"training data must be a 2-D array (samples x features), got shape {tuple(X.shape)}.")
    if not torch.isfinite(X).all():
        raise ConfigError("training data contain NaN or infinite values.")
    return X


def new_model(model_config: ModelConfig | None, seed: int | None, X=None) -> SparseAutoencoder:
    """A fresh model of ``model_config`` for the data X (an ``auto`` decoder is chosen from X; without X it must
    be concrete): UFLDL initialisation, drawn from a generator seeded with ``seed`` if given."""
    if model_config is None:
        raise ConfigError("give a model_config or a model")
    model = SparseAutoencoder.from_config(model_config if X is None else model_config.for_data(X))
    if seed is not None:
        model.reset_parameters(torch.Generator().manual_seed(seed))
    return model


def check_compatible(model: ModelConfig, cfg: TrainConfig, n_features: int) -> None:
    """Refuse a model, objective and data that cannot train together (ConfigError with the reason)."""
    if model.n_inputs != n_features:
        raise ConfigError(f"the model expects {model.n_inputs} inputs but the data have {n_features} features.")
    if cfg.penalty == "kl" and model.activation == "relu":
        raise ConfigError("the KL penalty needs activations in [0, 1]; ReLU units are unbounded: "
                          "use the L1 or TopK penalty with ReLU.")
    if cfg.penalty == "topk" and not model.topk:
        raise ConfigError("the TopK penalty needs a model built with topk=k.")


def history_columns(history: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The HISTORY_COLUMNS of a saved history (other columns dropped); ConfigError naming any that are missing.
    A column added later (OPTIONAL_COLUMNS: "dead") reads as NaN when a history saved before it lacks it."""
    missing = sorted(set(HISTORY_COLUMNS) - set(history) - set(OPTIONAL_COLUMNS))
    if missing:
        raise ConfigError(f"the saved history lacks the column(s) {', '.join(missing)}.")
    rows = len(history["step"])
    return {c: history[c] if c in history else np.full(rows, np.nan) for c in HISTORY_COLUMNS}


def steps_per_epoch(config: TrainConfig, n_samples: int) -> int:
    """Optimiser steps per pass over n samples: 1 for full-batch L-BFGS, else the number of full minibatches
    (a tiny remainder batch would measure rho_hat on a handful of samples, so it is left out)."""
    if config.optimizer == "lbfgs":
        return 1
    return max(1, int(n_samples) // min(config.batch_size, int(n_samples)))


def total_steps(config: TrainConfig, n_samples: int) -> int:
    """Optimiser steps of the whole run: ``max_iter`` L-BFGS iterations, else ``epochs`` passes (at least one step)."""
    if config.optimizer == "lbfgs":
        return config.max_iter
    return max(1, round(config.epochs * steps_per_epoch(config, n_samples)))


__all__ = ["as_training_tensor", "new_model", "check_compatible", "history_columns", "steps_per_epoch", "total_steps"]
