"""Bounded training history: every column keeps at most ``capacity`` rows, however long a run is.

When the buffer fills, every other row is dropped and the recording stride doubles, so the
history always spans the whole run at an even resolution (like a thinned curve), in O(capacity)
memory and amortised O(1) per step. Rows that fall between strides are not recorded at all,
so the cost on the training hot path shrinks as the run grows.
"""

from __future__ import annotations

import numpy as np


class History:
    """Columns of floats sampled every ``stride`` steps. Not thread-safe: the owner locks."""

    def __init__(self, columns: tuple[str, ...], capacity: int = 2000) -> None:
        if capacity < 4 or capacity % 2:
            raise ValueError("capacity must be an even number >= 4")
        self.columns = tuple(columns)
        self.capacity = capacity
        self.stride = 1
        self._data = np.empty((capacity, len(self.columns)), dtype=np.float64)
        self._n = 0
        self.generation = 0  # bumped whenever rows already recorded change (thinning, load): see since()

    def __len__(self) -> int:
        return self._n

    def wants(self, step: int) -> bool:
        """Whether the row of this step would be kept (record only those: saves the work)."""
        return step % self.stride == 0

    def append(self, step: int, values: list[float]) -> None:
        """Record one row (values in column order) if ``step`` falls on the stride."""
        if step % self.stride:
            return
        if self._n == self.capacity:
            self._data[: self.capacity // 2] = self._data[::2].copy()
            self._n = self.capacity // 2
            self.stride *= 2
            self.generation += 1
            if step % self.stride:
                return
        self._data[self._n] = values
        self._n += 1

    def truncate(self, step: int) -> None:
        """Forget the rows of steps at and after ``step`` (a rewind); the first column must be the step."""
        keep = int(np.searchsorted(self._data[: self._n, 0], step, side="left"))
        if keep != self._n:
            self._n = keep
            self.generation += 1

    def to_dict(self) -> dict[str, np.ndarray]:
        """A copy of the history: column name -> (rows,) float64 array."""
        data = self._data[: self._n].copy()
        return {name: data[:, i] for i, name in enumerate(self.columns)}

    def since(self, generation: int, start: int) -> tuple[int, int, dict[str, np.ndarray]]:
        """What a reader holding the first ``start`` rows of ``generation`` lacks: (this generation, the index of
        the first row given, those rows as columns). A reader of another generation gets every row (index 0):
        the rows it holds were thinned or replaced since. Lets a worker send only new rows with each state."""
        if generation != self.generation or not 0 <= start <= self._n:
            start = 0
        data = self._data[start: self._n].copy()
        return self.generation, start, {name: data[:, i] for i, name in enumerate(self.columns)}

    def load(self, columns: dict[str, np.ndarray]) -> None:
        """Replace the contents with saved columns (thinned to fit, stride reset to span them)."""
        n = len(next(iter(columns.values()))) if columns else 0
        rows = np.stack([np.asarray(columns[c], dtype=np.float64) for c in self.columns], axis=1) if n else \
            np.empty((0, len(self.columns)))
        while len(rows) > self.capacity:
            rows = rows[::2]
        self._data[: len(rows)] = rows
        self._n = len(rows)
        self.generation += 1
        steps = rows[:, self.columns.index("step")] if "step" in self.columns and len(rows) > 1 else None
        self.stride = max(1, int(np.min(np.diff(steps)))) if steps is not None else 1
