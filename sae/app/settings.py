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

    The class defaults are those of the default data set, ``patches``: UFLDL's exercise (8x8 whitened natural
    patches, sigmoid units, KL penalty, beta 3, lambda 1e-4) with Adam instead of L-BFGS so that the run can be
    tuned live: oriented edge filters appear after ~4,000 steps (a few seconds); rho 0.02 and lr 3e-2 get there
    about three times sooner than UFLDL's rho 0.01 with lr 1e-2. The budget, 20,000 epochs (1.6 M steps), lasts
    about ten minutes on one core: a run goes on through a demo until it is stopped, and the epochs (like the
    L-BFGS iterations) can be raised or lowered while it trains (``LIVE``). The other built-in sets have their
    own defaults (:data:`DATASET_DEFAULTS`, :func:`defaults_for`).
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
    epochs: float = 20_000.0  # adam / sgd (patches: 78 steps per epoch, ~40 epochs/s alone on one core)
    max_iter: int = 400  # lbfgs
    seed: int = 0

    LIVE = ("rho", "beta", "weight_decay", "lr", "epochs", "max_iter")  # the last two: the budget

    def model_config(self, data: Dataset) -> ModelConfig:
        """Raises ConfigError with a message for the user when the combination is invalid."""
        return ModelConfig(data.n_features, int(self.n_hidden), self.activation, data.decoder,  # "auto", cached
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


# What differs from the class defaults for each built-in set, chosen so that the Filters page's promise
# (DATASET_PROMISES) holds; checked by tests/app/test_dataset_defaults.py with sae.evaluation.filters.
DATASET_DEFAULTS: dict[str, dict] = {
    "patches": {},
    # UFLDL's MNIST settings (rho 0.1, beta 3, lambda 3e-3, 196 units), with Adam: strokes and digit parts after
    # ~20 epochs (~800 steps); rho 0.02 and lambda 1e-4 (the patches' values) give whole-digit templates instead
    "mnist": {"n_hidden": 196, "rho": 0.1, "beta": 3.0, "weight_decay": 3e-3, "lr": 3e-2, "epochs": 5_000.0},
    # the same objective on 8x8 digits: blobs and short strokes (at 8x8 a stroke is a few pixels)
    "digits": {"n_hidden": 36, "rho": 0.1, "beta": 3.0, "weight_decay": 3e-3, "lr": 3e-2, "epochs": 20_000.0},
    # the 4-2-4 problem: two units, each on for half of the inputs in a binary code, hence rho 0.5; no decay
    "toy": {"n_hidden": 2, "rho": 0.5, "beta": 3.0, "weight_decay": 0.0, "lr": 0.1, "batch_size": 8,
            "epochs": 100_000.0},
}

# What each built-in set's filters should show (the Filters page says so; the test measures it).
DATASET_PROMISES: dict[str, str] = {
    "patches": "oriented edges (small light/dark bars at every angle and position) appearing out of noise",
    "mnist": "pen strokes (bars and arcs, each a part of a digit) appearing out of noise and whole-digit "
             "templates",
    "digits": "blobs and short pen strokes (parts of digits; at 8×8 a stroke is a few pixels) appearing out of noise",
    "toy": "each one-hot input given its own on/off pattern of the two units (a binary code)",
}


def filters_promise(dataset: str) -> str:
    """What the Filters page tells the user to look for on ``dataset`` (any data: a generic sentence)."""
    return DATASET_PROMISES.get(dataset, "structure appearing out of noise: oriented edges on image patches, "
                                         "pen strokes on digits")


def defaults_for(dataset: str) -> Settings:
    """The default settings for ``dataset``: the class defaults with that set's :data:`DATASET_DEFAULTS`
    (an uploaded file or an unknown name: the class defaults, with that name)."""
    return Settings(dataset=dataset, **DATASET_DEFAULTS.get(dataset, {}))


__all__ = ["Settings", "DATASET_DEFAULTS", "DATASET_PROMISES", "defaults_for", "filters_promise"]
