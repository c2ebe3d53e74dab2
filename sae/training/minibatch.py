"""Adam or SGD on minibatches: :class:`MinibatchOptimizer`, one step at a time."""

from __future__ import annotations

import math

import torch

from sae.core.config import ConfigError, TrainConfig
from sae.core.fused import FusedObjective
from sae.core.loss import LossFunction, sparse_autoencoder_loss
from sae.core.model import SparseAutoencoder
from sae.core.optimizer_step import KernelStep
from sae.evaluation.noise import corrupt
from sae.training.batches import MinibatchSampler


class MinibatchOptimizer:
    """Steps of Adam or SGD (with momentum) on the minibatches x (b, n) of X (m, n).

    A step: the next minibatch x of :class:`sae.training.batches.MinibatchSampler`; for denoising the input
    corrupt(x) (the configured noise, clipped to X's range) with x as the target; the loss terms J and
    dJ/dtheta by the hand-derived pass (``fused``, a :class:`sae.core.fused.FusedObjective` of the model) or
    by ``loss`` and autograd; then the update, by torch's fused optimiser kernels called directly
    (:class:`sae.core.optimizer_step.KernelStep`: the same update with none of torch.optim's per-step Python).
    With ``rho_hat="ema"`` the penalty's rho_hat mixes the previous step's with the batch's (autograd only).

    Args:
        model: the model trained (its parameters are updated in place).
        X: (m, n) float32 data.
        config: optimizer (``adam``; anything else builds SGD: an ``lbfgs`` trainer keeps an unused one as its
            ``optimizer``), lr, momentum; the other settings are read from the config given to each :meth:`step`.
        batch_size, steps_per_epoch: b and the number of minibatches per epoch.
        generator: the random stream of the permutations and the noise, in that order at every step.
        loss: the objective for autograd (signature of ``sae.core.loss.sparse_autoencoder_loss``).
        fused: the fused pass to use instead of autograd, or None.
    """

    def __init__(self, model: SparseAutoencoder, X: torch.Tensor, config: TrainConfig, batch_size: int,
                 steps_per_epoch: int, generator: torch.Generator, *, loss: LossFunction = sparse_autoencoder_loss,
                 fused: FusedObjective | None = None) -> None:
        self.model = model
        self.loss = loss
        self.fused = fused
        self.batches = MinibatchSampler(X, batch_size, steps_per_epoch, generator)
        self._generator = generator
        self._data_range = (float(X.min()), float(X.max()))
        self.rho_hat_ema: torch.Tensor | None = None  # (s,) the last step's rho_hat, with rho_hat="ema"
        self.reset(config)

    def reset(self, config: TrainConfig) -> None:
        """A fresh optimiser (``self.optimizer``: no moments) and its one-call update; forget the rho_hat average."""
        params = list(self.model.parameters())
        if config.optimizer == "adam":  # fused kernels: the same update in one call
            self.optimizer = torch.optim.Adam(params, lr=config.lr, fused=True)
        else:  # unused by lbfgs
            self.optimizer = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, fused=True)
        self._update = KernelStep(self.optimizer).step
        self.rho_hat_ema = None

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Everything a continued run needs to take the same next steps, as named tensors (saved with a run):
        each parameter's optimiser state (``<param>.exp_avg``, ``.exp_avg_sq``, ``.step`` for Adam;
        ``<param>.momentum_buffer`` for SGD), the random stream (``generator``) and this epoch's batch order
        (``batch_order``, (m,) or empty). Copies; call it between steps."""
        out: dict[str, torch.Tensor] = {}
        for name, p in self.model.named_parameters():
            for key, value in self.optimizer.state.get(p, {}).items():
                if torch.is_tensor(value):
                    out[f"{name}.{key}"] = value.detach().clone()
        out["generator"] = self._generator.get_state().clone()
        out["batch_order"] = self.batches._order.clone()
        return out

    def load_state_tensors(self, tensors: dict[str, torch.Tensor], optimizer: str) -> None:
        """Take up :meth:`state_tensors` of an earlier run of the same model (``optimizer``: its config's);
        raises ConfigError, changing nothing, if they do not fit."""
        def refuse(why: str) -> ConfigError:
            return ConfigError(f"the saved optimiser state does not fit this run: {why}.")

        tensors = dict(tensors)
        generator, order = tensors.pop("generator", None), tensors.pop("batch_order", None)
        keys = {"adam": ("exp_avg", "exp_avg_sq", "step"), "sgd": ("momentum_buffer",)}.get(optimizer, ())
        state, params = {}, dict(self.model.named_parameters())
        seen = {k.rsplit(".", 1)[1] for k in tensors if "." in k}
        if tensors and not seen <= set(keys):
            raise refuse(f"it holds {', '.join(sorted(seen))}, not the state of {optimizer}")
        for index, (name, p) in enumerate(params.items()):
            entry = {key: tensors.pop(f"{name}.{key}") for key in keys if f"{name}.{key}" in tensors}
            if not entry:
                continue
            if len(entry) != len(keys):
                raise refuse(f"parameter {name} lacks part of its {optimizer} state")
            for key, value in entry.items():
                if key != "step" and tuple(value.shape) != tuple(p.shape):
                    raise refuse(f"{name}.{key} has shape {tuple(value.shape)}, the model's {name} {tuple(p.shape)}")
            state[index] = entry
        if tensors:
            raise refuse(f"unknown tensor(s) {', '.join(sorted(tensors))}")
        m = len(self.batches.X)
        if order is not None and len(order) and (order.dtype != torch.long or order.shape != (m,)
                                                 or not torch.equal(torch.sort(order).values, torch.arange(m))):
            raise refuse(f"its batch order is not an order of the {m} samples")
        if state:
            self.optimizer.load_state_dict({"state": state, "param_groups": self.optimizer.state_dict()["param_groups"]})
            self._update = KernelStep(self.optimizer).step
        if generator is not None:
            try:
                self._generator.set_state(generator.to(torch.uint8))
            except RuntimeError as exc:
                raise refuse(f"its random stream is not a generator state ({exc})") from None
        if order is not None:
            self.batches._order = order.clone()

    def reset_units(self, units: list[int]) -> None:
        """Zero the optimiser's moments of hidden ``units`` (their encoder rows and biases, their decoder columns):
        resampled units start their optimisation afresh (Adam's step count is per tensor and stays)."""
        if not units:
            return
        index = torch.tensor(units)
        params = dict(self.model.named_parameters())
        for name, dim in (("encoder.weight", 0), ("encoder.bias", 0), ("decoder.weight", 1)):
            for key, value in self.optimizer.state.get(params[name], {}).items():
                if key != "step" and torch.is_tensor(value) and value.dim() > dim:
                    value.index_fill_(dim, index, 0.0)
        self.rho_hat_ema = None

    def set_lr(self, lr: float) -> None:
        """Take the following steps with learning rate ``lr`` (moments kept)."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def step(self, step: int, config: TrainConfig, values: bool = True) -> tuple[dict[str, torch.Tensor], bool]:
        """Optimiser step number ``step`` (from the run's start) with the settings of ``config``.

        Returns the loss terms on the minibatch (total, reconstruction, sparsity, weight_decay, rho_hat (s,), ...)
        and whether they are finite; the parameters are updated only if they are. ``values=False`` lets the
        fused pass skip the sparsity and weight-decay values (then "total" is absent).
        """
        cfg = config
        x = self.batches.batch(step)
        x_in, target = (x, None) if cfg.noise == "none" else (self._corrupt(x, cfg), x)
        if self.fused is not None:
            terms = self.fused.loss_and_grad(x_in, cfg.rho, cfg.beta, cfg.weight_decay, target, values)
            finite = math.isfinite(terms["reconstruction"])  # NaN weights show in every term
            if finite and "total" in terms:  # huge finite weights: their decay term overflows first
                finite = math.isfinite(terms["total"])
        else:
            prior = self.rho_hat_ema if cfg.rho_hat == "ema" else None
            terms = self.loss(self.model, x_in, cfg.rho, cfg.beta, cfg.weight_decay, cfg.penalty,
                              target=target, rho_hat_prior=prior, ema_decay=cfg.ema_decay)
            finite = bool(torch.isfinite(terms["total"]))
            if finite:
                self.optimizer.zero_grad(set_to_none=False)  # keep the .grad tensors KernelStep holds
                terms["total"].backward()
        if finite:
            self._update()
            if cfg.rho_hat == "ema":
                self.rho_hat_ema = terms["rho_hat"].detach()
        return terms, finite

    def _corrupt(self, x: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
        """The denoising input: x (b, n) corrupted by the configured noise, clipped to the data's range."""
        return corrupt(x, cfg.noise, cfg.noise_level, self._generator, clip=self._data_range)


__all__ = ["MinibatchOptimizer"]
