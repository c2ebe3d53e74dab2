"""Imported once by the workers' forkserver (``sae.workers.process``), before it forks any worker: torch, the
library, and every module a first training step imports lazily (a tiny run), so that a worker starts training
within milliseconds and shares those pages with its siblings.

The forkserver keeps one torch thread and never starts an OpenMP pool, so forking it is safe; each worker
then sets its own thread count (``sae.training.background``).
"""

from __future__ import annotations

import numpy as np
import torch

torch.set_num_threads(1)

from sae.core.config import ModelConfig, TrainConfig  # noqa: E402 - after the thread count
from sae.training.trainer import Trainer  # noqa: E402
from sae.workers import host as _host  # noqa: E402,F401 - the workers' entry points' modules
from sae.workers import process as _process  # noqa: E402,F401


def _warm_up() -> None:
    X = np.random.default_rng(0).random((64, 16), dtype=np.float32)
    for optimizer in ("adam", "sgd", "lbfgs"):
        Trainer(X, ModelConfig(16, 4), TrainConfig(optimizer=optimizer, epochs=2, max_iter=2, batch_size=32,
                                                   seed=0)).run()


_warm_up()
_process.name_process("sae-forkserver")  # named once ready: ps (and bench/one_user.py) can tell it is warm
