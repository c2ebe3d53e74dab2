"""One optimiser step as one fused kernel call, without torch.optim's per-step Python.

``torch.optim.Adam(fused=True).step()`` ends in two calls (``_foreach_add_`` on the step counters,
then ``_fused_adam_``), but reaches them through ~20 µs of Python (hooks, grouping by device, state
checks). On a small model that is a tenth of a training step. :class:`KernelStep` keeps the
optimiser (its state, ``param_groups``, ``state_dict`` stay the standard ones), lets it take the first
step itself (which creates the state), and from then on calls the same two kernels with the same
arguments, reading lr and the other settings from ``param_groups`` at every step. The update is
bit-for-bit the optimiser's own (tests/core/test_optimizer_step.py).

The kernels are private torch APIs, called through :mod:`sae.core.torch_private`; where that module
chose its fallback (a torch without them, or ``SAE_NO_PRIVATE_TORCH=1``) KernelStep is not ``supported``
and every step is ``optimizer.step()``.

Covered: Adam (not amsgrad, maximize, capturable or decoupled decay) and SGD with or without
momentum (not nesterov), one parameter group, every parameter with a gradient, on the CPU, all
created with ``fused=True``. Anything else goes through ``optimizer.step()``.
"""

from __future__ import annotations

import torch

from sae.core.torch_private import fused_adam_step, fused_kernels_available, fused_sgd_step


class KernelStep:
    """``step()`` equal to ``optimizer.step()`` for a fused CPU Adam or SGD; see the module docstring."""

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer
        group = optimizer.param_groups[0]
        self.params: list[torch.Tensor] = list(group["params"])
        self._ready = False
        self.kind = self._kind()
        self.supported = (len(optimizer.param_groups) == 1 and bool(group.get("fused"))
                          and all(p.device.type == "cpu" for p in self.params) and self.kind is not None
                          and fused_kernels_available())

    def _kind(self) -> str | None:
        g = self.optimizer.param_groups[0]
        if isinstance(self.optimizer, torch.optim.Adam) and not isinstance(self.optimizer, torch.optim.AdamW):
            plain = not (g["amsgrad"] or g["maximize"] or g["capturable"] or g.get("decoupled_weight_decay"))
            return "adam" if plain else None
        if isinstance(self.optimizer, torch.optim.SGD):
            return "sgd" if not (g["nesterov"] or g["maximize"]) else None
        return None

    def _prepare(self) -> bool:
        """After the optimiser's own first step: collect its state tensors (False if not as expected)."""
        grads = [p.grad for p in self.params]
        if any(g is None for g in grads):
            return False
        state = [self.optimizer.state.get(p, {}) for p in self.params]
        self.grads = grads
        if self.kind == "adam":
            if not all("exp_avg" in s and torch.is_tensor(s.get("step")) for s in state):
                return False
            self.exp_avgs = [s["exp_avg"] for s in state]
            self.exp_avg_sqs = [s["exp_avg_sq"] for s in state]
            self.steps = [s["step"] for s in state]
        else:
            momentum = self.optimizer.param_groups[0]["momentum"]
            buffers = [s.get("momentum_buffer") for s in state]
            if momentum and any(b is None for b in buffers):
                return False
            self.momentum_buffers = buffers if momentum else []
        return True

    def step(self) -> None:
        """One update of every parameter from its current ``.grad``."""
        if not self._ready:
            self.optimizer.step()
            self._ready = self.supported and self._prepare()
            return
        if any(p.grad is not g for p, g in zip(self.params, self.grads)):  # someone replaced a .grad
            self._ready = False
            self.optimizer.step()
            self._ready = self._prepare()
            return
        g = self.optimizer.param_groups[0]
        if self.kind == "adam":
            beta1, beta2 = g["betas"]
            fused_adam_step(self.params, self.grads, self.exp_avgs, self.exp_avg_sqs, self.steps, lr=g["lr"],
                            beta1=beta1, beta2=beta2, weight_decay=g["weight_decay"], eps=g["eps"])
        else:
            fused_sgd_step(self.params, self.grads, self.momentum_buffers, lr=g["lr"], momentum=g["momentum"],
                           dampening=g["dampening"], weight_decay=g["weight_decay"])
