"""What a sweep is: the grid over rho x beta (x hidden size) around base configs, validated before anything trains.

A :class:`SweepSpec` holds the axes and the base :class:`sae.core.config.ModelConfig` / ``TrainConfig``; its
:meth:`SweepSpec.cells` are the :class:`Cell` s a :class:`sae.runs.sweep.Sweep` trains. It round-trips through
JSON (:meth:`SweepSpec.to_dict`), which is how the store keeps it (``sae.runs.sweep_table``).
:func:`spec_from_choices` and :func:`default_cell_budget` turn the Sweep page's choices into a spec.

Every cell uses the same seed (the base config's, 0 if unset): the same initial weights for one
hidden size and the same minibatch order, so differences between cells come from rho, beta and the
hidden size alone.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

import numpy as np

from sae.core.config import ConfigError, ModelConfig, TrainConfig, config_from_dict, config_to_dict
from sae.training.trainer import steps_per_epoch

MAX_AXIS = 8  # values per axis
MAX_CELLS = 64  # cells per sweep
MAX_SWEEP_NAME = 200  # the store's limit on names
CELL_STEPS = 2000  # the default budget of a cell: about this many minibatch steps


class SweepError(ValueError):
    """A sweep that cannot be set up or run as asked; the message says why."""


def _axis(values: Any, name: str, kind: type) -> tuple:
    try:
        values = tuple(values)
    except TypeError:
        raise SweepError(f"{name} must be a list of values, got {values!r}.") from None
    if not 1 <= len(values) <= MAX_AXIS:
        raise SweepError(f"{name} needs between 1 and {MAX_AXIS} values, got {len(values)}.")
    try:
        values = tuple(kind(v) if kind is float else v for v in values)
    except (TypeError, ValueError):
        raise SweepError(f"{name} must hold numbers, got {values!r}.") from None
    if kind is int and not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        raise SweepError(f"{name} must hold whole numbers, got {values!r}.")
    values = tuple(int(v) for v in values) if kind is int else values
    if len(set(values)) != len(values):
        raise SweepError(f"{name} lists a value twice: {values!r}.")
    return values


@dataclass(frozen=True)
class Cell:
    """One grid point: index (hidden, rho, beta) into the spec's axes, and its full configs."""

    index: tuple[int, int, int]
    rho: float
    beta: float
    n_hidden: int
    model_config: ModelConfig
    train_config: TrainConfig

    @property
    def label(self) -> str:
        return f"ρ={self.rho:g} β={self.beta:g} s={self.n_hidden}"


@dataclass(frozen=True, kw_only=True)
class SweepSpec:
    """A grid over rho x beta (x hidden size) around base configs. Every cell is validated here.

    Attributes:
        rhos: target activations (rows of the heatmaps).
        betas: sparsity weights (columns).
        hidden_sizes: optional hidden sizes (one grid per size); default: the base model's only.
        model_config: the base model (its n_hidden is used when hidden_sizes is None).
        train_config: the base training settings; its seed (0 if None) is used by every cell.
        dataset: the data set name recorded with every run (a built-in name lets Sweep load it).
        name: shown in the store; default "sweep on <dataset>".
    """

    rhos: Sequence[float]
    betas: Sequence[float]
    model_config: ModelConfig
    train_config: TrainConfig
    dataset: str
    hidden_sizes: Sequence[int] | None = None
    name: str = ""

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "rhos", _axis(self.rhos, "rhos", float))
        set_(self, "betas", _axis(self.betas, "betas", float))
        if self.hidden_sizes is not None:
            set_(self, "hidden_sizes", _axis(self.hidden_sizes, "hidden sizes", int))
        if not isinstance(self.model_config, ModelConfig) or not isinstance(self.train_config, TrainConfig):
            raise SweepError("a sweep needs a ModelConfig and a TrainConfig as its base.")
        if not isinstance(self.dataset, str) or not self.dataset.strip():
            raise SweepError("a sweep needs the name of its data set.")
        if self.train_config.penalty == "topk":
            raise SweepError("a rho x beta sweep needs the KL or L1 penalty; TopK codes ignore both.")
        if self.train_config.penalty == "l1" and len(self.rhos) > 1:
            raise SweepError("rho has no effect under the L1 penalty: sweep beta (and the hidden size) with one rho.")
        if self.train_config.seed is None:
            set_(self, "train_config", replace(self.train_config, seed=0))
        count = len(self.rhos) * len(self.betas) * len(self.sizes)
        if count > MAX_CELLS:
            raise SweepError(f"this sweep has {count} cells; the limit is {MAX_CELLS}.")
        if not self.name:
            set_(self, "name", f"sweep on {self.dataset}")
        self.cells()  # validates every cell's configs

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(self.hidden_sizes) if self.hidden_sizes is not None else (self.model_config.n_hidden,)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(hidden sizes, rhos, betas)."""
        return len(self.sizes), len(self.rhos), len(self.betas)

    def cells(self) -> list[Cell]:
        """All cells, hidden size outermost, then rho, then beta. Raises SweepError on a bad value."""
        out = []
        for h, n_hidden in enumerate(self.sizes):
            for i, rho in enumerate(self.rhos):
                for j, beta in enumerate(self.betas):
                    try:
                        mc = replace(self.model_config, n_hidden=n_hidden)
                        tc = replace(self.train_config, rho=rho, beta=beta)
                    except ConfigError as exc:
                        raise SweepError(f"cell ρ={rho:g}, β={beta:g}, {n_hidden} hidden: {exc}") from None
                    out.append(Cell((h, i, j), rho, beta, n_hidden, mc, tc))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"rhos": list(self.rhos), "betas": list(self.betas),
                "hidden_sizes": None if self.hidden_sizes is None else list(self.hidden_sizes),
                "model_config": config_to_dict(self.model_config), "train_config": config_to_dict(self.train_config),
                "dataset": self.dataset, "name": self.name}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SweepSpec":
        try:
            return cls(rhos=data["rhos"], betas=data["betas"], hidden_sizes=data.get("hidden_sizes"),
                       model_config=config_from_dict(ModelConfig, data["model_config"]),
                       train_config=config_from_dict(TrainConfig, data["train_config"]),
                       dataset=data["dataset"], name=data.get("name", ""))
        except (KeyError, TypeError, ConfigError) as exc:
            raise SweepError(f"the stored sweep description is incomplete or invalid ({exc}).") from None



def spec_from_choices(model_config: ModelConfig, train_config: TrainConfig, dataset: str, *,
                      rhos: Sequence[float], betas: Sequence[float], hidden_sizes: Sequence[int] | None = None,
                      budget: int, name: str | None = "") -> SweepSpec:
    """The spec of a sweep form: the axes (sorted), every cell trained for ``budget`` epochs (L-BFGS: iterations).

    Args:
        model_config, train_config: the base (the sidebar's settings).
        dataset: the data set's name; a blank ``name`` becomes "sweep on <dataset>" (cut to the store's limit).
        hidden_sizes: empty or None: the base model's hidden size only.

    Raises SweepError or ConfigError with a message for the user.
    """
    budget = int(budget)
    train_config = replace(train_config, max_iter=budget) if train_config.optimizer == "lbfgs" else \
        replace(train_config, epochs=float(budget))
    name = (name or "").strip() or f"sweep on {dataset}"
    return SweepSpec(rhos=sorted(rhos), betas=sorted(betas), hidden_sizes=sorted(hidden_sizes or []) or None,
                     model_config=model_config, train_config=train_config, dataset=dataset,
                     name=name[:MAX_SWEEP_NAME])


def default_cell_budget(train_config: TrainConfig, n_samples: int | None) -> int:
    """What the form offers as each cell's length: L-BFGS its iterations; else epochs for about CELL_STEPS steps,
    at least 5 and at most the base config's epochs (one step per epoch assumed when ``n_samples`` is unknown)."""
    if train_config.optimizer == "lbfgs":
        return int(train_config.max_iter)
    per_epoch = 1 if n_samples is None else steps_per_epoch(train_config, n_samples)
    return int(np.clip(round(CELL_STEPS / per_epoch), 5, train_config.epochs))


__all__ = ["SweepSpec", "Cell", "SweepError", "spec_from_choices", "default_cell_budget", "MAX_AXIS", "MAX_CELLS"]
