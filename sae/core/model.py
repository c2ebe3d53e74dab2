"""The sparse autoencoder network (UFLDL / CS294A)."""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np
import torch
from torch import Tensor, nn

from sae.core.config import ConfigError, ModelConfig

_HIDDEN = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}
def _identity(z: Tensor) -> Tensor:
    return z


_OUTPUT = {"sigmoid": torch.sigmoid, "linear": _identity}


def keep_topk(a: Tensor, k: int) -> Tensor:
    """Zero all but the k largest entries of each row. a: (m, n_hidden) -> (m, n_hidden)."""
    values, index = torch.topk(a, k, dim=1)
    return torch.zeros_like(a).scatter(1, index, values)


class SparseAutoencoder(nn.Module):
    r"""One-hidden-layer autoencoder: a = f(W1 x + b1), x_hat = g(W2 a + b2).

    Args:
        n_inputs: input dimension n.
        n_hidden: hidden units s.
        activation: f, one of ``sigmoid`` (the classic), ``tanh`` or ``relu``.
        decoder_activation: g, ``sigmoid`` for data in [0, 1] or ``linear``. A model has a concrete decoder:
            ``auto`` (ModelConfig's default) is chosen from the data by ``ModelConfig.for_data(X)``, which the
            Trainer calls, so here it is refused.
        topk: if set, keep only the k largest hidden activations of each sample.

    Shape:
        x: (m, n) -> x_hat: (m, n), a: (m, s).

    Attributes:
        encoder: ``nn.Linear(n, s)``; ``encoder.weight`` is W1 with shape (s, n): row j is unit j's filter.
        decoder: ``nn.Linear(s, n)``; ``decoder.weight`` is W2 with shape (n, s).

    Initialisation (UFLDL): weights uniform in +-sqrt(6 / (n + s + 1)), biases zero.

    Example:
        >>> model = SparseAutoencoder(64, 25)
        >>> x_hat, a = model(torch.rand(10, 64))
        >>> x_hat.shape, a.shape
        (torch.Size([10, 64]), torch.Size([10, 25]))
    """

    def __init__(self, n_inputs: int, n_hidden: int, activation: str = "sigmoid",
                 decoder_activation: str = "sigmoid", topk: int | None = None) -> None:
        super().__init__()
        self.config = ModelConfig(n_inputs, n_hidden, activation, decoder_activation, topk)
        if decoder_activation not in _OUTPUT:
            raise ConfigError(f"a model needs a concrete decoder, 'sigmoid' or 'linear', not {decoder_activation!r}: "
                              "'auto' is chosen from the training data with ModelConfig.for_data(X) "
                              "(the Trainer does this).")
        self.encoder = nn.Linear(n_inputs, n_hidden)
        self.decoder = nn.Linear(n_hidden, n_inputs)
        self._f = _HIDDEN[activation]
        self._g = _OUTPUT[decoder_activation]
        self.reset_parameters()

    @classmethod
    def from_config(cls, config: ModelConfig) -> "SparseAutoencoder":
        return cls(config.n_inputs, config.n_hidden, config.activation, config.decoder_activation, config.topk)

    @classmethod
    def from_weights(cls, config: ModelConfig, weights: Mapping[str, np.ndarray]) -> "SparseAutoencoder":
        """A model (eval mode) holding ``weights`` (name -> array, as in ``state_dict()``; copied as float32).

        The one way to turn a Snapshot's weights back into a network. Raises ValueError, starting "weights do
        not fit", when a name is missing or unknown or a shape differs from what ``config`` describes. Draws no
        random numbers: the network is built on the meta device (no initialisation) and takes the arrays as its own.
        """
        with torch.device("meta"):
            model = cls.from_config(config)
        expected = {name: tuple(value.shape) for name, value in model.state_dict().items()}
        fit = f"weights do not fit a {config.n_inputs} -> {config.n_hidden} model"
        if not isinstance(weights, Mapping):
            raise ValueError(f"{fit} (expected a dict of name -> array, got {type(weights).__name__}).")
        missing, unknown = sorted(set(expected) - set(weights)), sorted(map(str, set(weights) - set(expected)))
        problems = ([f"missing {', '.join(missing)}"] if missing else []) + \
            ([f"unknown {', '.join(unknown)}"] if unknown else [])
        if problems:
            raise ValueError(f"{fit} ({'; '.join(problems)}).")
        tensors = {}
        for name, shape in expected.items():
            try:
                array = np.array(weights[name], dtype=np.float32)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{fit} ({name} is not an array of numbers: {exc}).") from None
            if array.shape != shape:
                raise ValueError(f"{fit} ({name} has shape {array.shape}, expected {shape}).")
            tensors[name] = torch.from_numpy(array)
        model.load_state_dict(tensors, assign=True)
        return model.eval()

    @property
    def activation(self) -> str:
        return self.config.activation

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """UFLDL's initialisation: W ~ U(-r, r), r = sqrt(6 / (n_inputs + n_hidden + 1)); b = 0."""
        r = math.sqrt(6.0 / (self.config.n_inputs + self.config.n_hidden + 1))
        with torch.no_grad():
            for layer in (self.encoder, self.decoder):
                layer.weight.uniform_(-r, r, generator=generator)
                layer.bias.zero_()

    def encode(self, x: Tensor) -> Tensor:
        """Hidden activations a = f(W1 x + b1), TopK applied if set. (m, n) -> (m, s)."""
        a = self._f(self.encoder(x))
        return keep_topk(a, self.config.topk) if self.config.topk else a

    def decode(self, a: Tensor) -> Tensor:
        """Reconstruction x_hat = g(W2 a + b2). (m, s) -> (m, n)."""
        return self._g(self.decoder(a))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Returns (x_hat, a): the reconstruction (m, n) and the hidden activations (m, s)."""
        a = self.encode(x)
        return self.decode(a), a

    def extra_repr(self) -> str:
        c = self.config
        return (f"n_inputs={c.n_inputs}, n_hidden={c.n_hidden}, activation={c.activation!r}, "
                f"decoder_activation={c.decoder_activation!r}" + (f", topk={c.topk}" if c.topk else ""))


def unit_activity(a: Tensor, activation: str) -> Tensor:
    """Map hidden activations to [0, 1] for measuring rho_hat: (a + 1) / 2 for tanh, a otherwise."""
    return (a + 1.0) / 2.0 if activation == "tanh" else a


def flat_parameters(model: nn.Module) -> Tensor:
    """All parameters as one flat vector (p,), in ``parameters()`` order (a copy)."""
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def load_flat_parameters(model: nn.Module, theta: Tensor) -> None:
    """Copy a flat vector theta (p,) into the model's parameters, in ``parameters()`` order."""
    with torch.no_grad():
        offset = 0
        for p in model.parameters():
            p.copy_(theta[offset:offset + p.numel()].view_as(p))
            offset += p.numel()
