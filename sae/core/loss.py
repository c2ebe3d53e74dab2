r"""The sparse autoencoder objective (UFLDL / CS294A), as pure functions.

For m samples x_i, hidden activations a_i = f(W1 x_i + b1) and reconstructions
x_hat_i = g(W2 a_i + b2):

    rho_hat_j = (1/m) sum_i a_ij                          one number per hidden unit j
    KL(rho||rho_hat_j) = rho log(rho/rho_hat_j) + (1-rho) log((1-rho)/(1-rho_hat_j))
    J = (1/m) sum_i 1/2 ||x_hat_i - x_i||^2               reconstruction
        + beta sum_j KL(rho||rho_hat_j)                   sparsity
        + lambda/2 (||W1||^2 + ||W2||^2)                  weight decay (biases not decayed)

This is UFLDL's convention, under which its published hyperparameters work
(rho = 0.01, beta = 3, lambda = 1e-4 on 8x8 natural-image patches).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from sae.core.model import SparseAutoencoder, unit_activity

LOSS_TERMS = ("total", "reconstruction", "sparsity", "weight_decay")
LossFunction = Callable[..., dict[str, Tensor]]  # an objective with the signature and terms of sparse_autoencoder_loss


def kl_divergence(rho: float | Tensor, rho_hat: Tensor) -> Tensor:
    r"""Elementwise KL divergence between Bernoulli(rho) and Bernoulli(rho_hat).

    KL(rho||rho_hat) = rho log(rho / rho_hat) + (1 - rho) log((1 - rho) / (1 - rho_hat)).
    Zero at rho_hat = rho, positive elsewhere. rho_hat is clamped to [eps, 1 - eps] (eps the
    dtype's machine epsilon) so the value stays finite at rho_hat = 0 or 1; inside that range
    the formula is exact. Shape: rho_hat (s,) -> (s,).
    """
    eps = torch.finfo(rho_hat.dtype).eps
    rho_hat = rho_hat.clamp(eps, 1.0 - eps)
    rho = torch.as_tensor(rho, dtype=rho_hat.dtype, device=rho_hat.device)
    return torch.xlogy(rho, rho / rho_hat) + torch.xlogy(1.0 - rho, (1.0 - rho) / (1.0 - rho_hat))


def kl_divergence_grad(rho: float | Tensor, rho_hat: Tensor) -> Tensor:
    """d KL(rho||rho_hat) / d rho_hat = -rho / rho_hat + (1 - rho) / (1 - rho_hat), elementwise (s,)."""
    return -rho / rho_hat + (1.0 - rho) / (1.0 - rho_hat)


def mean_activation(a: Tensor, activation: str = "sigmoid") -> Tensor:
    """rho_hat_j = (1/m) sum_i a_ij: each unit's mean activation over the samples. (m, s) -> (s,).

    tanh units are measured on (a + 1) / 2 so that rho_hat lies in [0, 1].
    """
    return unit_activity(a, activation).mean(dim=0)


def sparse_autoencoder_loss(model: SparseAutoencoder, x: Tensor, rho: float, beta: float,
                            weight_decay: float, penalty: str = "kl", *, target: Tensor | None = None,
                            rho_hat_prior: Tensor | None = None, ema_decay: float = 0.0) -> dict[str, Tensor]:
    r"""The objective J on a batch x (m, n), split into named terms.

    Args:
        model: the autoencoder (its activation decides how rho_hat is measured).
        x: (m, n) samples.
        rho: target activation in (0, 1).
        beta: sparsity weight.
        weight_decay: lambda.
        penalty: ``kl`` -> beta sum_j KL(rho||rho_hat_j); ``l1`` -> beta (1/m) sum_i sum_j |a_ij|;
            ``topk`` -> 0 (sparsity comes from the model's TopK codes).
        target: (m, n) what x_hat should reproduce, if not x itself (denoising: x is the corrupted input).
        rho_hat_prior: (s,) a running estimate of rho_hat; if given, the KL uses
            rho_hat = ema_decay * rho_hat_prior + (1 - ema_decay) * rho_hat_batch (gradient through the batch part).

    Returns:
        dict with scalar tensors ``total``, ``reconstruction``, ``sparsity``, ``weight_decay`` and the
        (s,) tensor ``rho_hat`` used by the penalty (the batch's unless a prior was given).
    """
    x_hat, a = model(x)
    m = x.shape[0]
    reconstruction = 0.5 * (x_hat - (x if target is None else target)).pow(2).sum() / m
    rho_hat = mean_activation(a, model.activation)
    if rho_hat_prior is not None:
        rho_hat = ema_decay * rho_hat_prior.detach() + (1.0 - ema_decay) * rho_hat
    if penalty == "kl":
        sparsity = beta * kl_divergence(rho, rho_hat).sum()
    elif penalty == "l1":
        sparsity = beta * a.abs().sum() / m
    elif penalty == "topk":
        sparsity = torch.zeros((), dtype=x.dtype, device=x.device)
    else:
        raise ValueError(f"unknown penalty {penalty!r}; use kl, l1 or topk")
    decay = 0.5 * weight_decay * (model.encoder.weight.pow(2).sum() + model.decoder.weight.pow(2).sum())
    return {"total": reconstruction + sparsity + decay, "reconstruction": reconstruction,
            "sparsity": sparsity, "weight_decay": decay, "rho_hat": rho_hat}
