"""Validated configuration dataclasses.

Every limit a user can hit is checked here, in ``__post_init__``, with a message fit
to show them. The library, the CLI and the dashboard all build configs through these
classes, so a bad value is refused in one place and the same way everywhere.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

ACTIVATIONS = ("sigmoid", "tanh", "relu")
DECODER_ACTIVATIONS = ("sigmoid", "linear")
DECODER_CHOICES = ("auto", *DECODER_ACTIVATIONS)  # auto: chosen from the training data (ModelConfig.for_data)
PENALTIES = ("kl", "l1", "topk")
OPTIMIZERS = ("adam", "sgd", "lbfgs")
RHO_HAT_MODES = ("batch", "ema")
NOISES = ("none", "gaussian", "masking")

MAX_HIDDEN = 4096  # wider than any model here needs; a 784x4096 layer is already 13 MB
MAX_INPUTS = 65536


class ConfigError(ValueError):
    """A configuration value out of its range; the message says which and why."""


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _whole(value: Any) -> Any:
    """A numpy integer as a Python int (configs are saved as JSON); anything else unchanged, to be judged."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and type(value).__name__ != "bool_":
        return int(value)
    return value


def _normalise(config: Any, whole: tuple[str, ...], real: tuple[str, ...]) -> None:
    """Store numpy numbers as Python ints and floats (a frozen dataclass, so through object.__setattr__)."""
    for name in whole:
        object.__setattr__(config, name, _whole(getattr(config, name)))
    for name in real:
        value = getattr(config, name)
        if isinstance(value, numbers.Real) and not isinstance(value, bool) and type(value).__name__ != "bool_":
            object.__setattr__(config, name, float(value))


def _finite(name: str, value: float) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}.") from None
    _check(math.isfinite(value), f"{name} must be a finite number, got {value}.")
    return value


@dataclass(frozen=True)
class ModelConfig:
    """Shape of the network: x (n_inputs) -> a = f(W1 x + b1) (n_hidden) -> x_hat = g(W2 a + b2)."""

    n_inputs: int  # input dimension (pixels per image)
    n_hidden: int  # hidden units (number of features learned)
    activation: str = "sigmoid"  # hidden f: sigmoid (classic), tanh (rho_hat on (a+1)/2), relu (L1/TopK)
    decoder_activation: str = "auto"  # output g: sigmoid, linear, or auto: sigmoid for data in [0, 1], else linear
    topk: int | None = None  # keep only the k largest activations per sample (TopK models)

    def __post_init__(self) -> None:
        _normalise(self, ("n_inputs", "n_hidden", "topk"), ())
        for name, limit in (("n_inputs", MAX_INPUTS), ("n_hidden", MAX_HIDDEN)):
            value = getattr(self, name)
            _check(isinstance(value, int) and not isinstance(value, bool),
                   f"{name} must be a whole number, got {value!r}.")
            _check(1 <= value <= limit, f"{name} must be between 1 and {limit}, got {value}.")
        _check(self.activation in ACTIVATIONS,
               f"activation must be one of {', '.join(ACTIVATIONS)}; got {self.activation!r}.")
        _check(self.decoder_activation in DECODER_CHOICES,
               f"decoder activation must be one of {', '.join(DECODER_CHOICES)}; "
               f"got {self.decoder_activation!r}.")
        if self.topk is not None:
            _check(isinstance(self.topk, int) and 1 <= self.topk <= self.n_hidden,
                   f"TopK k must be between 1 and the hidden size {self.n_hidden}, got {self.topk!r}.")

    def for_data(self, X: Any) -> "ModelConfig":
        """This config with an ``auto`` decoder made concrete for the training data X (m, n), numpy or torch:
        ``sigmoid`` when every value lies in [0, 1] (a sigmoid output can reach them), ``linear`` otherwise.
        A named decoder is kept as it is."""
        if self.decoder_activation != "auto":
            return self
        return replace(self, decoder_activation=decoder_for(X))


def decoder_for(X: Any) -> str:
    """The decoder ``auto`` stands for on X (numpy or torch, any shape): sigmoid if min >= 0 and max <= 1."""
    count = X.numel() if callable(getattr(X, "numel", None)) else X.size  # torch tensor or numpy array
    return "sigmoid" if count and bool(X.min() >= 0) and bool(X.max() <= 1) else "linear"


@dataclass(frozen=True)
class TrainConfig:
    """Objective and optimiser: J = mean_i 1/2||x_hat_i - x_i||^2 + lambda/2 (||W1||^2 + ||W2||^2) + beta * penalty."""

    rho: float = 0.05  # target mean activation of each hidden unit, in (0, 1)
    beta: float = 3.0  # weight of the sparsity penalty, >= 0
    weight_decay: float = 1e-4  # lambda: L2 weight decay on W1 and W2 (not the biases), >= 0
    penalty: str = "kl"  # kl: beta sum_j KL(rho||rho_hat_j); l1: beta mean_i sum_j |a_ij|; topk: none (k-sparse codes)
    optimizer: str = "adam"  # adam, sgd (with momentum) on minibatches; lbfgs full batch with strong Wolfe, in float64
    lr: float = 1e-2  # learning rate (Adam, SGD); L-BFGS uses its line search and ignores it
    momentum: float = 0.9  # SGD momentum
    batch_size: int = 256  # minibatch size (capped at the data size); lbfgs uses the full batch
    epochs: float = 50.0  # passes over the data for adam/sgd
    max_iter: int = 400  # iterations for lbfgs
    rho_hat: str = "batch"  # batch: rho_hat from the current minibatch; ema: exponential moving average
    ema_decay: float = 0.9  # decay of the rho_hat moving average (ema mode)
    seed: int | None = 0  # seeds init and batch order; None for a fresh random run
    noise: str = "none"  # denoising: corrupt inputs with "gaussian" or "masking" noise, reconstruct the clean x
    noise_level: float = 0.0  # gaussian: std of the added noise (0.4 classic); masking: fraction of inputs zeroed

    def __post_init__(self) -> None:
        _normalise(self, ("batch_size", "max_iter", "seed"),
                   ("rho", "beta", "weight_decay", "lr", "momentum", "epochs", "ema_decay", "noise_level"))
        rho = _finite("rho", self.rho)
        _check(0.0 < rho < 1.0, f"rho (target activation) must lie strictly between 0 and 1, got {rho:g}: "
               "KL(rho||rho_hat) needs log(rho) and log(1 - rho).")
        _check(_finite("beta", self.beta) >= 0, f"beta (sparsity weight) must be >= 0, got {self.beta:g}.")
        _check(_finite("weight_decay", self.weight_decay) >= 0,
               f"weight decay (lambda) must be >= 0, got {self.weight_decay:g}.")
        _check(self.penalty in PENALTIES, f"penalty must be one of {', '.join(PENALTIES)}; got {self.penalty!r}.")
        _check(self.optimizer in OPTIMIZERS,
               f"optimizer must be one of {', '.join(OPTIMIZERS)}; got {self.optimizer!r}.")
        lr = _finite("learning rate", self.lr)
        _check(0.0 < lr <= 10.0, f"learning rate must be in (0, 10], got {lr:g}.")
        _check(0.0 <= _finite("momentum", self.momentum) < 1.0, f"momentum must be in [0, 1), got {self.momentum}.")
        _check(isinstance(self.batch_size, int) and self.batch_size >= 1,
               f"batch size must be a whole number >= 1, got {self.batch_size!r}.")
        _check(_finite("epochs", self.epochs) > 0, f"epochs must be > 0, got {self.epochs}.")
        _check(isinstance(self.max_iter, int) and self.max_iter >= 1,
               f"max_iter must be a whole number >= 1, got {self.max_iter!r}.")
        _check(self.rho_hat in RHO_HAT_MODES, f"rho_hat must be one of {', '.join(RHO_HAT_MODES)}.")
        _check(0.0 <= _finite("ema_decay", self.ema_decay) < 1.0, f"ema_decay must be in [0, 1), got {self.ema_decay}.")
        _check(self.noise in NOISES, f"noise must be one of {', '.join(NOISES)}; got {self.noise!r}.")
        level = _finite("noise level", self.noise_level)
        _check(0.0 <= level <= (1.0 if self.noise == "masking" else 10.0),
               f"noise level must be in [0, {1 if self.noise == 'masking' else 10}], got {level:g}.")
        _check(self.noise == "none" or self.optimizer != "lbfgs",
               "denoising draws fresh noise every step: use adam or sgd, not the full-batch lbfgs.")
        _check(self.seed is None or (isinstance(self.seed, int) and self.seed >= 0),
               f"seed must be a whole number >= 0 or None, got {self.seed!r}.")

    LIVE_FIELDS = ("rho", "beta", "weight_decay", "lr")  # may change between steps without a restart
    BUDGET_FIELDS = ("epochs", "max_iter")  # the run's length: may also change while it trains (Trainer.set_budget)


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass."""
    return asdict(config)


def config_from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Build ``cls`` from a dict, refusing unknown keys with a clear message (then validating)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{cls.__name__} must be a JSON object, got {type(data).__name__}.")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    _check(not unknown, f"unknown {cls.__name__} field(s): {', '.join(unknown)}.")
    try:
        return cls(**data)
    except TypeError as exc:  # missing required fields
        raise ConfigError(f"{cls.__name__}: {exc}") from None


__all__ = ["ModelConfig", "TrainConfig", "ConfigError", "config_to_dict", "config_from_dict", "replace",
           "ACTIVATIONS", "DECODER_ACTIVATIONS", "PENALTIES", "OPTIMIZERS", "RHO_HAT_MODES", "NOISES"]
