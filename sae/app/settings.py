"""The dashboard's settings: :class:`Settings`, everything the control panel sets, and the model and training
configurations it describes. A plain frozen dataclass (no Streamlit, no torch state): the URL layer
(``sae.ui.url``) reads and writes it, a :class:`sae.app.job.Job` is built from it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from sae.core.config import ModelConfig, TrainConfig
from sae.data import Dataset


@dataclass(frozen=True)
class Settings:
    """Everything the control panel sets. ``LIVE`` fields change a running job in place.

    Defaults: UFLDL's exercise (8x8 whitened natural patches, sigmoid units, KL penalty, beta 3,
    lambda 1e-4) with Adam instead of L-BFGS so that the run lasts long enough to tune it live:
    oriented edge filters appear after ~4,000 steps (a few seconds); rho 0.02 and lr 3e-2 get there
    about three times sooner than UFLDL's rho 0.01 with lr 1e-2.
    """

    dataset: str = "patches"  # built-in data set (sae.data.DATASETS)
    n_hidden: int = 36  # hidden units
    activation: str = "sigmoid"  # sigmoid, tanh, relu
    penalty: str = "kl"  # kl, l1, topk
    topk: int = 5  # k for the TopK penalty (ignored otherwise)
    optimizer: str = "adam"  # adam, sgd, lbfgs
    rho: float = 0.02  # target mean activation
    beta: float = 3.0  # sparsity weight
    weight_decay: float = 1e-4  # lambda
    lr: float = 3e-2  # learning rate (adam, sgd)
    batch_size: int = 128
    epochs: float = 300.0  # adam / sgd (patches: 79 steps per epoch)
    max_iter: int = 400  # lbfgs
    seed: int = 0

    LIVE = ("rho", "beta", "weight_decay", "lr")

    def model_config(self, data: Dataset) -> ModelConfig:
        """Raises ConfigError with a message for the user when the combination is invalid."""
        decoder = "sigmoid" if data.in_unit_interval else "linear"
        return ModelConfig(data.n_features, int(self.n_hidden), self.activation, decoder,
                           int(self.topk) if self.penalty == "topk" else None)

    def train_config(self) -> TrainConfig:
        return TrainConfig(rho=float(self.rho), beta=float(self.beta), weight_decay=float(self.weight_decay),
                           penalty=self.penalty, optimizer=self.optimizer, lr=float(self.lr),
                           batch_size=int(self.batch_size), epochs=float(self.epochs),
                           max_iter=int(self.max_iter), seed=int(self.seed))

    def changes(self, other: "Settings") -> tuple[dict, dict]:
        """(live, structural): the fields whose value differs in ``other``, split by kind."""
        diff = {f.name: getattr(other, f.name) for f in fields(self)
                if getattr(self, f.name) != getattr(other, f.name)}
        if self.penalty != "topk" and other.penalty != "topk":
            diff.pop("topk", None)  # k only matters under TopK
        if self.optimizer == other.optimizer:
            diff.pop("max_iter" if self.optimizer != "lbfgs" else "epochs", None)
        live = {k: v for k, v in diff.items() if k in self.LIVE}
        return live, {k: v for k, v in diff.items() if k not in self.LIVE}

    def as_dict(self) -> dict:
        return asdict(self)


__all__ = ["Settings"]
