"""Minibatches for the stochastic optimisers: :class:`MinibatchSampler`."""

from __future__ import annotations

import torch


class MinibatchSampler:
    """The minibatches (b, n) of X (m, n): each epoch a fresh random permutation of the m rows, cut into
    ``steps_per_epoch`` batches of b consecutive indices (the m - steps_per_epoch b left over are left out).

    Rows are gathered (``index_select``) into one (b, n) buffer reused by every call, so a batch is valid
    until the next call. The permutations are drawn from ``generator``, which the caller may share (with
    the denoising noise, for one seeded random stream).
    """

    def __init__(self, X: torch.Tensor, batch_size: int, steps_per_epoch: int, generator: torch.Generator) -> None:
        self.X = X
        self.batch_size = batch_size
        self.steps_per_epoch = steps_per_epoch
        self.generator = generator
        self._order = torch.empty(0, dtype=torch.long)  # (m,) this epoch's permutation
        self._batch = torch.empty(0)  # the (b, n) buffer, allocated by the first call

    def batch(self, step: int) -> torch.Tensor:
        """The minibatch (b, n) of optimiser step ``step`` (counted from the run's start): batch
        step % steps_per_epoch of the current permutation; a new permutation at the first batch of an epoch."""
        start = (step % self.steps_per_epoch) * self.batch_size
        if start == 0 or len(self._order) == 0:
            self._order = torch.randperm(len(self.X), generator=self.generator)
        if self._batch.shape != (self.batch_size, self.X.shape[1]):
            self._batch = self.X.new_empty(self.batch_size, self.X.shape[1])
        return torch.index_select(self.X, 0, self._order[start:start + self.batch_size], out=self._batch)


__all__ = ["MinibatchSampler"]
