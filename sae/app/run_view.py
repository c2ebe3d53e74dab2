"""What a lesson's check reads of a run: :class:`RunView`, one frozen picture of a run (and of its twin) with the
numbers the checks and the formulas share, computed once. No Streamlit.

A view holds the run's latest snapshot (weights, the last step's losses), its history (one row per recorded step:
the loss terms, rho_hat's mean / min / max, the dead count on that step's batch, and the settings in effect: rho,
beta, lambda, lr), its timeline's edits (every live change with its step, ``sae.training.timeline``), the twin's
snapshot, history and setup when there is one, the settings the run was made with, the settings in effect now,
and the evaluation rows of its data (at most :data:`EVAL_ROWS`, evenly spaced: all of it for the built-in sets but
the patches, 10,000 of them). From those it derives, on the evaluation rows:

    a_ij = f(W1 x_i + b1)                     activations (m, s)
    rho_hat_j = (1/m) sum_i a_ij              one number per unit (tanh: on (a + 1) / 2)
    J = recon + weight decay + sparsity       the objective's three terms, exactly (``sae.core.loss``)
    ||W1||^2 + ||W2||^2                       the squared weight norms weight decay acts on
    unit states                               dead / low / on target / high / dense (``sae.evaluation.units``)

The numbers are those of all the evaluation rows, not of the last minibatch (whose rho_hat is noisy on 128 rows):
a check passes or fails on what the model does to the data. :meth:`RunView.from_job` builds one from the
dashboard's :class:`sae.app.job.Job`; :meth:`RunView.of_trainer` from a :class:`sae.training.trainer.Trainer`
(tests, notebooks).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Mapping

import numpy as np
import torch

from sae.app.settings import Settings
from sae.core.config import ModelConfig, TrainConfig
from sae.core.loss import kl_divergence, sparse_autoencoder_loss
from sae.core.model import SparseAutoencoder
from sae.data import Dataset
from sae.evaluation import metrics
from sae.evaluation.units import UnitStates, unit_states
from sae.training.snapshot import Snapshot
from sae.training.timeline import Edit

if TYPE_CHECKING:
    from sae.app.job import Job
    from sae.experiments.mistake_compare import MistakeComparison
    from sae.training.trainer import Trainer

EVAL_ROWS = 10_000  # rows of the data a view measures on (evenly spaced when the data have more)


def eval_rows(n_samples: int, limit: int = EVAL_ROWS) -> np.ndarray | None:
    """The rows a view measures on: None for all of them (``n_samples <= limit``), else ``limit`` evenly spaced."""
    if n_samples <= limit:
        return None
    return np.linspace(0, n_samples - 1, limit).round().astype(np.int64)


@dataclass(frozen=True)
class NetView:
    """One trained network of a view (the run, or its twin): its snapshot, the settings in effect (``hyper``:
    rho, beta, weight_decay, lr) and what it does to the evaluation rows ``X`` (m, n)."""

    snapshot: Snapshot
    hyper: Mapping[str, float]
    model_config: ModelConfig
    penalty: str
    X: np.ndarray = field(repr=False)

    @property
    def step(self) -> int:
        return int(self.snapshot.step)

    @property
    def rho(self) -> float:
        return float(self.hyper["rho"])

    @property
    def beta(self) -> float:
        return float(self.hyper["beta"])

    @property
    def weight_decay(self) -> float:
        return float(self.hyper["weight_decay"])

    @property
    def activation(self) -> str:
        return self.model_config.activation

    @property
    def n_units(self) -> int:
        return self.model_config.n_hidden

    @property
    def kl(self) -> bool:
        """Whether the run's penalty is the KL divergence (the only one with a target rho)."""
        return self.penalty == "kl"

    @cached_property
    def model(self) -> SparseAutoencoder:
        return SparseAutoencoder.from_weights(self.model_config, self.snapshot.weights)

    @cached_property
    def activations(self) -> np.ndarray:
        """(m, s) a_ij on the evaluation rows."""
        return metrics.hidden_activations(self.model, self.X)

    @cached_property
    def rho_hat(self) -> np.ndarray:
        """(s,) float64, each unit's mean activation on the evaluation rows."""
        return np.asarray(metrics.rho_hat(self.activations, self.activation), dtype=np.float64)

    @property
    def rho_hat_mean(self) -> float:
        return float(self.rho_hat.mean())

    @cached_property
    def units(self) -> UnitStates:
        """Each unit's state on the evaluation rows (the KL target rho; none for L1 / TopK)."""
        return unit_states(self.activations, self.rho if self.kl else None, self.activation)

    @property
    def dead(self) -> np.ndarray:
        """Indices of the dead units (rho_hat_j < rho/10 and never above 0.1, ``sae.evaluation.units``)."""
        return self.units.dead

    @cached_property
    def kl_per_unit(self) -> np.ndarray:
        """(s,) KL(rho||rho_hat_j) of each unit at the current rho, float64."""
        return kl_divergence(self.rho, torch.as_tensor(self.rho_hat, dtype=torch.float64)).numpy()

    @cached_property
    def terms(self) -> dict[str, float]:
        """J's terms on the evaluation rows at the settings in effect: total, reconstruction, sparsity,
        weight_decay (``sae.core.loss.sparse_autoencoder_loss``)."""
        with torch.no_grad():
            out = sparse_autoencoder_loss(self.model, torch.from_numpy(np.array(self.X, dtype=np.float32)),
                                          self.rho, self.beta, self.weight_decay, self.penalty)
        return {k: float(v) for k, v in out.items() if k != "rho_hat"}

    @cached_property
    def weight_norms(self) -> tuple[float, float]:
        """(||W1||^2, ||W2||^2): the sums of squares weight decay acts on (biases excluded)."""
        w = self.snapshot.weights
        return (float(np.sum(np.square(w["encoder.weight"], dtype=np.float64))),
                float(np.sum(np.square(w["decoder.weight"], dtype=np.float64))))

    @property
    def weight_norm2(self) -> float:
        """||W1||^2 + ||W2||^2."""
        return sum(self.weight_norms)

    @property
    def filters(self) -> np.ndarray:
        """(s, n) the encoder's rows W1: what each unit responds to."""
        return self.snapshot.weights["encoder.weight"]


@dataclass(frozen=True)
class RunView:
    """A run as the lessons' checks see it (see the module docstring). ``run`` and ``twin`` are :class:`NetView`;
    ``history`` and ``twin_history`` are the Trainer's history columns; ``edits`` the run's timeline;
    ``twin_setup`` (the settings the twin changes, the step it forked at); ``mistakes`` the common-mistake
    comparisons this session has trained (mistake name -> ``sae.experiments.mistake_compare.MistakeComparison``)."""

    dataset: str
    image_shape: tuple[int, int] | None
    n_samples: int
    settings: Settings
    run: NetView
    history: Mapping[str, np.ndarray] = field(default_factory=dict, repr=False)
    edits: tuple[Edit, ...] = ()
    twin: NetView | None = None
    twin_history: Mapping[str, np.ndarray] | None = field(default=None, repr=False)
    twin_setup: tuple[Mapping[str, float], int] | None = None
    mistakes: Mapping[str, "MistakeComparison"] = field(default_factory=dict, repr=False)

    @property
    def m(self) -> int:
        """Evaluation rows."""
        return len(self.run.X)

    @property
    def optimizer(self) -> str:
        return self.settings.optimizer

    @property
    def step(self) -> int:
        return self.run.step

    def column(self, name: str) -> np.ndarray:
        """A history column (empty if the run has none: e.g. an old saved history without "dead")."""
        return np.asarray(self.history.get(name, np.empty(0)), dtype=np.float64)

    def sets(self, name: str) -> list[Edit]:
        """The run's "set" edits that changed setting ``name`` (rho, beta, weight_decay, lr), oldest first."""
        return [e for e in self.edits if e.kind == "set" and name in e.changes]

    # ------------------------------------------------------------------ builders
    @classmethod
    def of(cls, data: Dataset, settings: Settings, model_config: ModelConfig, config: TrainConfig,
           snapshot: Snapshot, history: Mapping[str, np.ndarray], edits=(), twin: Snapshot | None = None,
           twin_history=None, twin_setup=None, mistakes=None) -> "RunView":
        """A view from its parts: ``config`` is the run's TrainConfig in effect now (its live fields are the
        settings checked, even before the next step publishes them)."""
        rows = eval_rows(data.n_samples)
        X = data.X if rows is None else data.X[rows]
        hyper = {k: getattr(config, k) for k in TrainConfig.LIVE_FIELDS}
        run = NetView(snapshot, hyper, model_config, config.penalty, X)
        twin_side = None
        if twin is not None:
            twin_side = NetView(twin, dict(twin.hyper), model_config, config.penalty, X)
        return cls(dataset=data.name, image_shape=data.image_shape, n_samples=data.n_samples, settings=settings,
                   run=run, history=dict(history or {}), edits=tuple(edits), twin=twin_side,
                   twin_history=twin_history, twin_setup=twin_setup, mistakes=dict(mistakes or {}))

    @classmethod
    def from_job(cls, job: "Job", mistakes=None) -> "RunView":
        """The view of a dashboard job now (its trainer's current settings, latest snapshot, history, timeline,
        twin); ``mistakes``: the session's common-mistake comparisons."""
        trainer = job.trainer
        setup = job.twin_setup()
        twin = job.twin_latest() if setup is not None else None
        return cls.of(job.data, job.settings, job.model_config, trainer.config, job.latest(), job.history(),
                      job.timeline().edits, twin, job.twin_history() if twin is not None else None, setup, mistakes)

    @classmethod
    def of_trainer(cls, trainer: "Trainer", data: Dataset, settings: Settings | None = None,
                   mistakes=None) -> "RunView":
        """The view of a Trainer training on ``data`` (``settings``: what made it; by default read off the
        trainer's configs)."""
        config = trainer.config
        if settings is None:
            settings = Settings(dataset=data.name, n_hidden=trainer.model.config.n_hidden,
                                activation=trainer.model.config.activation, penalty=config.penalty,
                                optimizer=config.optimizer, rho=config.rho, beta=config.beta,
                                weight_decay=config.weight_decay, lr=config.lr, batch_size=config.batch_size,
                                epochs=config.epochs, max_iter=config.max_iter, seed=config.seed or 0)
        setup = trainer.twin_setup()
        twin = trainer.twin_latest() if setup is not None else None
        return cls.of(data, settings, trainer.model.config, config, trainer.latest(), trainer.history(),
                      trainer.timeline_view().edits, twin, trainer.twin_history() if twin is not None else None,
                      setup, mistakes)


__all__ = ["RunView", "NetView", "EVAL_ROWS", "eval_rows"]
