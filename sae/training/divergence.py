"""When the loss becomes NaN or infinite, or grows a million-fold over its best (:class:`LossWatch`):
:class:`LastSound` keeps the weights to go back to, :func:`divergence_reason` tells the user what happened and
what to try."""

from __future__ import annotations

import numpy as np
import torch

from sae.core.config import TrainConfig
from sae.core.loss import LOSS_TERMS
from sae.core.model import SparseAutoencoder
from sae.training.snapshot import Snapshot


GROWTH_LIMIT = 1e6  # a loss this many times its best (and above its start) has diverged, finite or not


class LossWatch:
    """The first and the lowest total loss of a run; :meth:`exploded` says when a finite loss has diverged all the
    same: above ``GROWTH_LIMIT`` times the best and above the first (so a loss that fell by orders of magnitude
    may wander back up without being called diverged)."""

    def __init__(self) -> None:
        self.first: float | None = None
        self.best = np.inf

    def exploded(self, total: float) -> bool:
        if self.first is None:
            self.first = total
        grew = total > GROWTH_LIMIT * self.best and total > self.first
        self.best = min(self.best, total)
        return grew


class LastSound:
    """The latest published snapshot with a sound loss: the first one, then any whose total loss is finite
    and at most 10 times the lowest seen (a loss that blows up on its way to NaN is not sound). The lowest is
    over every step (``best``, from :class:`LossWatch`), not only the published ones: snapshots come by the
    clock, so on a slow machine the first published loss may already have grown far past the best step's."""

    def __init__(self) -> None:
        self.snapshot: Snapshot | None = None
        self._best = np.inf

    def offer(self, snapshot: Snapshot, best: float = np.inf) -> None:
        """Keep ``snapshot`` if it is sound; ``best``: the lowest total loss of any step so far."""
        total = snapshot.losses.get("total")
        self._best = min(self._best, best)
        if self.snapshot is None or (total is not None and np.isfinite(total) and total <= 10 * self._best):
            self.snapshot = snapshot
            self._best = min(self._best, total if total is not None else np.inf)

    def restore(self, model: SparseAutoencoder) -> Snapshot:
        """Copy the kept snapshot's weights into ``model``; returns that snapshot."""
        snapshot = self.snapshot
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(torch.from_numpy(snapshot.weights[name]))  # type: ignore[union-attr]
        return snapshot  # type: ignore[return-value]


def divergence_reason(terms: dict[str, torch.Tensor], step: int, config: TrainConfig, kept_step: int) -> str:
    """The status line of a run whose loss ``terms`` became non-finite at ``step``, its weights restored to
    those of ``kept_step``: which terms, the likely cause under ``config`` and the remedy."""
    bad = {k: float(terms[k].detach()) for k in LOSS_TERMS if k in terms}
    values = ", ".join(f"{k} {v:g}" for k, v in bad.items() if k != "total")
    if all(np.isfinite(v) for v in bad.values()):
        what = f"grew to {bad.get('total', np.nan):g} at step {step}, over a million times its best"
    else:
        what = f"became {'NaN' if any(np.isnan(v) for v in bad.values()) else 'infinite'} at step {step}"
    if step == 0:
        why = ("the objective is undefined at the initial weights, so no learning rate can help: "
               "check the data and the model")
    elif config.optimizer == "lbfgs":
        why = "the line search left the region where the loss is finite; try a larger lambda or a minibatch optimizer"
    else:
        why = f"the learning rate {config.lr:g} is probably too high: lower it and resume"
    kept = f"Kept the weights of step {kept_step}, the last with a sound loss; the losses shown are theirs." \
        if step else ""
    return f"diverged: the loss {what} ({values}); {why}. {kept}".strip()


__all__ = ["LastSound", "LossWatch", "GROWTH_LIMIT", "divergence_reason"]
