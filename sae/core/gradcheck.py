"""Gradient check (UFLDL's computeNumericalGradient / checkNumericalGradient).

Compares the analytic gradient of J (backpropagation through ``sparse_autoencoder_loss``) with
central differences g_num_i = (J(theta + eps e_i) - J(theta - eps e_i)) / (2 eps), in float64,
and reports UFLDL's measure ||g_num - g|| / ||g_num + g||, which should be below 1e-9.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from sae.core.config import ACTIVATIONS, DECODER_ACTIVATIONS, PENALTIES
from sae.core.loss import sparse_autoencoder_loss
from sae.core.model import SparseAutoencoder, load_flat_parameters

# Every (activation, penalty, decoder) combination the library trains: all of them but ReLU under KL (refused by
# sae.training.inputs.check_compatible: KL needs activations in [0, 1]): 3 x 3 x 2 - 2 = 16.
COMBINATIONS = tuple((a, p, d) for a in ACTIVATIONS for p in PENALTIES for d in DECODER_ACTIVATIONS
                     if not (a == "relu" and p == "kl"))


def numerical_gradient(fun: Callable[[torch.Tensor], torch.Tensor], theta: torch.Tensor,
                       eps: float = 1e-5) -> torch.Tensor:
    """Central differences of a scalar function at theta (p,) -> (p,)."""
    grad = torch.empty_like(theta)
    for i in range(theta.numel()):
        step = torch.zeros_like(theta)
        step[i] = eps
        grad[i] = (fun(theta + step) - fun(theta - step)) / (2 * eps)
    return grad


def relative_difference(g_num: torch.Tensor, g: torch.Tensor) -> float:
    """UFLDL's measure ||g_num - g|| / ||g_num + g||."""
    return float((g_num - g).norm() / (g_num + g).norm())


@dataclass(frozen=True)
class GradCheck:
    activation: str
    penalty: str
    decoder: str
    difference: float  # ||g_num - g|| / ||g_num + g||

    @property
    def passed(self) -> bool:
        return self.difference < 1e-9


def gradient_check(activation: str = "sigmoid", penalty: str = "kl", decoder: str = "sigmoid", *,
                   n_inputs: int = 8, n_hidden: int = 5, n_samples: int = 10, rho: float = 0.1,
                   beta: float = 3.0, weight_decay: float = 1e-3, seed: int = 0) -> GradCheck:
    """Check the gradient of J for one model on random data, in float64."""
    generator = torch.Generator().manual_seed(seed)
    topk = 2 if penalty == "topk" else None
    model = SparseAutoencoder(n_inputs, n_hidden, activation, decoder, topk=topk).double()
    model.reset_parameters(generator)
    with torch.no_grad():  # nonzero biases so every term of the gradient is exercised
        for p in (model.encoder.bias, model.decoder.bias):
            p.uniform_(-0.1, 0.1, generator=generator)
    x = torch.rand(n_samples, n_inputs, generator=generator, dtype=torch.float64)
    params = list(model.parameters())
    theta0 = torch.cat([p.detach().reshape(-1) for p in params])

    def loss(theta: torch.Tensor) -> torch.Tensor:
        load_flat_parameters(model, theta)
        return sparse_autoencoder_loss(model, x, rho, beta, weight_decay, penalty)["total"]

    loss(theta0).backward()
    g = torch.cat([p.grad.reshape(-1) for p in params])
    with torch.no_grad():
        g_num = numerical_gradient(loss, theta0)
    return GradCheck(activation, penalty, decoder, relative_difference(g_num, g))


def gradient_check_all(seed: int = 0) -> list[GradCheck]:
    """The gradient check for every supported (activation, penalty, decoder) combination."""
    return [gradient_check(a, p, d, seed=seed) for a, p, d in COMBINATIONS]
