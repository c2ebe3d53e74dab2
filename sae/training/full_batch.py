"""Full-batch L-BFGS on a float64 twin of the model: :class:`FullBatchLBFGS`, one iteration at a time.

As minFunc does for UFLDL: the line search compares losses that differ in the seventh digit near a minimum,
which float32 cannot tell apart (its iterations stall there and two float32 runs part ways in the fourth
digit). So the objective J(theta) over all m samples is evaluated in float64, on a float64 copy of the model
(the twin) and of the data, and the float32 model receives the iterate theta after every iteration.
"""

from __future__ import annotations

import copy
import logging

import torch

from sae.core.config import TrainConfig
from sae.core.fused import FusedObjective
from sae.core.lbfgs import LBFGS
from sae.core.loss import LossFunction, sparse_autoencoder_loss
from sae.core.model import SparseAutoencoder, flat_parameters, load_flat_parameters

logger = logging.getLogger(__name__)

LBFGS_MEMORY_BYTES = 64 * 2**20  # cap on L-BFGS's curvature pairs (minFunc's 100 fit up to ~40k parameters)


class FullBatchLBFGS:
    """Minimises the full-batch objective J(theta) of ``model`` on X (m, n) with :class:`sae.core.lbfgs.LBFGS`.

    theta (p,) is the model's parameters flattened in ``model.parameters()`` order (p = 2 s n + s + n for
    s hidden units and n inputs). The driver owns, from the first :meth:`iterate` on:

    - ``twin``: a float64 deep copy of the model, on which J and dJ/dtheta are evaluated. With the fused
      pass its parameters and their ``.grad`` are views of two flat float64 vectors (p,), so an evaluation
      costs one copy of theta in and none out;
    - the data in float64: X^T (n, m), one sample per column, for the fused pass (faster matmuls, see
      ``sae.core.fused``); X (m, n) for autograd. Made once, kept across restarts;
    - the terms (total, reconstruction, sparsity, weight_decay, rho_hat, ...) of every evaluation of an
      iteration, to report the terms at the point the next iteration starts from without evaluating again;
    - ``lbfgs``: the LBFGS instance, keeping min(100, max(10, LBFGS_MEMORY_BYTES / (2 p 8))) curvature pairs.

    Args:
        model: the float32 model; receives theta after every iteration.
        X: (m, n) float32 data.
        config: the objective's settings (penalty, rho, beta, weight_decay; lr is unused: the line search
            chooses the step). Replaced by :meth:`reset` on a live change.
        loss: the objective for autograd, with the signature of ``sae.core.loss.sparse_autoencoder_loss``.
        fused: evaluate with the hand-derived pass (``sae.core.fused.FusedObjective``) instead of autograd;
            the caller checks that it covers the model and penalty.
    """

    def __init__(self, model: SparseAutoencoder, X: torch.Tensor, config: TrainConfig, *,
                 loss: LossFunction = sparse_autoencoder_loss, fused: bool = True) -> None:
        self.model = model
        self.X = X
        self.config = config
        self.loss = loss
        self.fused = fused
        self.lbfgs: LBFGS | None = None
        self.twin: SparseAutoencoder | None = None
        self._twin_fused: FusedObjective | None = None
        self._twin_theta: torch.Tensor | None = None  # (p,) the twin's parameters are views of it (fused only)
        self._twin_grad: torch.Tensor | None = None  # (p,) their .grad are views of it (fused only)
        self._X64: torch.Tensor | None = None  # (n, m) for the fused pass, else (m, n)
        self._evaluated: list[tuple[float, dict[str, torch.Tensor]]] = []  # (J, terms) of this iteration's evaluations
        self._terms_here: dict[str, torch.Tensor] = {}  # the terms at the current iterate

    @property
    def converged(self) -> str:
        """Why L-BFGS stopped ("gradient below tolerance", ...), or "" while it can go on (or has not started)."""
        return self.lbfgs.converged if self.lbfgs is not None else ""

    def iterate(self) -> dict[str, torch.Tensor]:
        """One L-BFGS iteration (starting L-BFGS from the model's weights first if needed).

        Returns the loss terms at the point the iteration started from. When they are not finite
        the iteration is not taken (the caller restores sound weights and calls :meth:`restart`).
        """
        if self.lbfgs is None:
            self._start()
            self._terms_here = self._evaluated[-1][1]
        terms = self._terms_here
        if not torch.isfinite(terms["total"]):
            return terms
        self._evaluated.clear()
        self.lbfgs.iterate()
        load_flat_parameters(self.model, self.lbfgs.x)
        self._terms_here = next((t for f, t in reversed(self._evaluated) if f == self.lbfgs.f), self._terms_here)
        return terms

    def reset(self, config: TrainConfig) -> None:
        """The objective changed (a live rho, beta or weight_decay): re-evaluate J at the current iterate and
        drop the curvature pairs, which describe the old objective."""
        self.config = config
        if self.lbfgs is not None:
            self.lbfgs.reset()
            self._terms_here = self._evaluated[-1][1]

    def restart(self) -> None:
        """Forget L-BFGS and the twin: the next :meth:`iterate` starts afresh from the model's weights."""
        self.lbfgs = None

    def _start(self) -> None:
        """L-BFGS from the model's current weights, on a fresh float64 twin."""
        self.twin = twin = copy.deepcopy(self.model).to(torch.float64)
        theta = flat_parameters(twin)
        self._twin_fused = None
        if self.fused:  # the twin's parameters and gradients are views of two flat vectors
            self._twin_theta, self._twin_grad = theta.clone(), torch.zeros_like(theta)
            offset = 0
            for p in twin.parameters():
                p.data = self._twin_theta[offset:offset + p.numel()].view_as(p)
                p.grad = self._twin_grad[offset:offset + p.numel()].view_as(p)
                offset += p.numel()
            self._twin_fused = FusedObjective(twin, self.config.penalty)
        if self._X64 is None:  # the fused pass takes one sample per column (faster matmuls, see sae.core.fused)
            X64 = self.X.to(torch.float64)
            self._X64 = X64.t().contiguous() if self._twin_fused is not None else X64
        pairs = min(100, max(10, LBFGS_MEMORY_BYTES // (2 * theta.numel() * theta.element_size())))
        logger.debug("L-BFGS starts: %d parameters, %d curvature pairs, fused=%s", theta.numel(), pairs, self.fused)
        self.lbfgs = LBFGS(self._objective, theta, history_size=pairs)

    def _objective(self, theta: torch.Tensor) -> tuple[float, torch.Tensor]:
        """J(theta) over all m samples and dJ/dtheta (p,), in float64 (the gradient may be a buffer that the
        next call overwrites: LBFGS copies it)."""
        cfg, model = self.config, self.twin
        if self._twin_fused is not None:
            self._twin_theta.copy_(theta)  # one copy: the parameters are views of it
            terms = self._twin_fused.loss_and_grad(self._X64, cfg.rho, cfg.beta, cfg.weight_decay,
                                                   samples_in_columns=True)
            grad = self._twin_grad  # filled through the .grad views (the caller copies it)
        else:
            load_flat_parameters(model, theta)
            model.zero_grad(set_to_none=True)
            terms = self.loss(model, self._X64, cfg.rho, cfg.beta, cfg.weight_decay, cfg.penalty)
            terms["total"].backward()
            grad = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
        f = float(terms["total"].detach())
        self._evaluated.append((f, {k: v.detach() for k, v in terms.items()}))
        return f, grad


__all__ = ["FullBatchLBFGS", "LBFGS_MEMORY_BYTES"]
