"""What a Trainer publishes: the :class:`Snapshot` of its state (:func:`take_snapshot`), and the columns of its
history rows.

A training step's loss terms (``sae.core.loss.LOSS_TERMS``: total, reconstruction, sparsity, weight_decay)
and rho_hat (s,) reach both as Python floats through :func:`terms_to_floats`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from sae.core.config import TrainConfig
from sae.core.loss import LOSS_TERMS
from sae.core.model import SparseAutoencoder
from sae.evaluation.health import DEAD_MEAN, run_health
from sae.evaluation.units import DEAD_RATIO
from sae.training.status import RunStatus

HISTORY_COLUMNS = ("step", "epoch", "time", *LOSS_TERMS, "rho_hat_mean", "rho_hat_std",
                   "rho_hat_min", "rho_hat_max", "dead", "rho", "beta", "lambda", "lr")  # the last four: settings in
# effect; "dead": units with rho_hat_j below the dead line on that step's batch (dead_line)
OPTIONAL_COLUMNS = ("dead",)  # added later: a saved history without them reads them as NaN


@dataclass(frozen=True)
class Snapshot:
    """What the trainer last published. Every array is a copy owned by the reader."""

    step: int  # optimiser steps taken (minibatches, or L-BFGS iterations)
    epoch: float  # passes over the data
    losses: dict[str, float]  # total, reconstruction, sparsity, weight_decay at the last step
    rho_hat: np.ndarray  # (s,) mean activation of each hidden unit, as used by the last step's penalty
    weights: dict[str, np.ndarray]  # encoder.weight (s, n), encoder.bias (s,), decoder.weight (n, s), decoder.bias (n,)
    hyper: dict[str, float]  # rho, beta, weight_decay, lr in effect
    samples_per_s: float  # throughput over at least RATE_WINDOW s (sae.training.throughput), paused time excluded;
    # 0 while not training (idle, queued, paused, diverged, stopped), the last window's rate once finished
    elapsed: float  # seconds spent training (paused time excluded)
    status: RunStatus  # idle, queued, running, paused, diverged, finished, stopped
    reason: str = ""  # why training stopped or paused, for the status line
    version: int = 0  # increases with every publication
    created: float = field(default_factory=time.time)
    dead_since: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # (s,) the first step of each
    # unit's current stretch below the dead line (on the recorded steps' batches), -1 if above it now; empty: unknown


def dead_line(config: TrainConfig) -> float:
    """The rho_hat_j below which a unit counts as dead on a batch: DEAD_RATIO * rho with a KL target, else DEAD_MEAN
    (``sae.evaluation.units``, ``sae.evaluation.health``)."""
    return DEAD_RATIO * config.rho if config.penalty == "kl" else DEAD_MEAN


def terms_to_floats(terms: dict[str, torch.Tensor], dead: torch.Tensor | None = None) -> list[float]:
    """The loss terms (LOSS_TERMS order) then rho_hat's mean, std (population), min, max, and with ``dead`` (s,)
    (bool: the units below the dead line) their number: Python floats, in a few tensor calls. ``terms["rho_hat"]``
    is (s,)."""
    rho_hat = terms["rho_hat"].detach()
    std, mean = torch.std_mean(rho_hat, correction=0)
    low, high = torch.aminmax(rho_hat)
    extra = [] if dead is None else [dead.sum().to(rho_hat.dtype)]
    return torch.stack([*(terms[k].detach() for k in LOSS_TERMS), mean, std, low, high, *extra]).tolist()


def take_snapshot(model: SparseAutoencoder, terms: dict[str, torch.Tensor] | None, config: TrainConfig, *, step: int,
                  epoch: float, samples_per_s: float, elapsed: float, status: RunStatus, reason: str,
                  version: int, dead_since: np.ndarray | None = None) -> Snapshot:
    """A Snapshot of ``model`` (its weights copied) after ``step`` steps; ``terms``: the loss terms of the last
    step that computed them (None before any: empty losses, rho_hat all NaN); ``config``: the settings in effect."""
    if terms is None:
        losses, rho_hat = {}, np.full(model.config.n_hidden, np.nan)
    else:
        losses = dict(zip(LOSS_TERMS, terms_to_floats(terms)))
        rho_hat = terms["rho_hat"].detach().numpy().copy()
    return Snapshot(step=step, epoch=epoch, losses=losses, rho_hat=rho_hat,
                    weights={k: v.detach().numpy().copy() for k, v in model.state_dict().items()},
                    hyper={k: getattr(config, k) for k in TrainConfig.LIVE_FIELDS}, samples_per_s=samples_per_s,
                    elapsed=elapsed, status=status, reason=reason, version=version,
                    dead_since=np.empty(0, np.int64) if dead_since is None else np.array(dead_since, np.int64))



def run_warnings(history: dict[str, np.ndarray], latest: Snapshot, config: TrainConfig,
                 rho_hat: np.ndarray | None = None) -> list[str]:
    """A run's health warnings (``sae.evaluation.health.run_health``) from its history and ``rho_hat`` (s,), by
    default the ``latest`` snapshot's; none before the first step. Trainer.health and RemoteTrainer.health."""
    if rho_hat is None:
        rho_hat = latest.rho_hat if latest.step > 0 else np.empty(0)
    return run_health(history, rho_hat, config.rho if config.penalty == "kl" else None)


__all__ = ["run_warnings", "dead_line", "OPTIONAL_COLUMNS", "Snapshot", "HISTORY_COLUMNS", "terms_to_floats", "take_snapshot"]
