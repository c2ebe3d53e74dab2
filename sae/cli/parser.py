"""The command line's arguments: the ``train`` and ``gradcheck`` sub-commands, every default shown in
``--help`` (no flags = UFLDL's exercise), and which flags a user actually gave (for ``--resume``)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from sae.core.config import ACTIVATIONS, DECODER_CHOICES, OPTIMIZERS, PENALTIES, TrainConfig

from sae.cli.commands import cmd_gradcheck, cmd_train

_DEFAULTS = TrainConfig(rho=0.01, beta=3.0, weight_decay=1e-4, optimizer="lbfgs", max_iter=400, seed=0)
# No flags = UFLDL's exercise (25 sigmoid units on 8x8 natural-image patches, rho 0.01, beta 3, lambda 1e-4, 400
# L-BFGS iterations), whose oriented edge filters are the published result; the rest are TrainConfig's defaults.


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line ``error: ...`` on stderr and exit code 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"error: {message} (see: {self.prog} --help)\n")


def program_name() -> str:
    """How the user called us, for usage lines: ``sae`` (the console script) or ``python -m sae``."""
    return "sae" if os.path.basename(sys.argv[0]) == "sae" else "python -m sae"


def build_parser() -> argparse.ArgumentParser:
    from sae.data import DATASETS

    parser = _Parser(prog=program_name(), description="The Sparse Autoencoder Lab: train the classic "
                     "KL-sparsity autoencoder (UFLDL / CS294A) or check its gradients.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    train = commands.add_parser(
        "train", help="train a sparse autoencoder and save the run",
        description="Train a sparse autoencoder a = f(W1 x + b1), x_hat = g(W2 a + b2) minimising "
                    "J = mean 1/2||x_hat - x||^2 + lambda/2 (||W1||^2 + ||W2||^2) + beta sum_j KL(rho||rho_hat_j).",
        epilog="Example (UFLDL's exercise, oriented edge filters in a few seconds): python -m sae train "
               "--dataset patches --hidden 25 --rho 0.01 --beta 3 --weight-decay 1e-4 --optimizer lbfgs "
               "--max-iter 400 --seed 0 --out runs/ufldl")
    source = train.add_mutually_exclusive_group()
    source.add_argument("--dataset", default="patches", choices=DATASETS,
                        help="built-in data set: patches = 10,000 whitened 8x8 natural-image patches, "
                             "mnist = 5,000 28x28 digits, digits = scikit-learn's 1,797 8x8 digits, "
                             "toy = the 4x4 one-hot set (default: %(default)s)")
    source.add_argument("--data", metavar="PATH",
                        help="train on your own file instead of --dataset: a CSV (one sample per row; its header row is detected, "
                             "see --header) or a .npy of shape (n, d) = n samples of d features, or (n, h, w) = n "
                             "images of h x w pixels, flattened row by row; (n, h, w) arrays and square rows of "
                             ">= 16 values are treated as images (filters.png is written) (default: none, "
                             "--dataset is used)")
    train.add_argument("--header", action=argparse.BooleanOptionalAction, default=None,
                       help="CSV: whether the first row is a header (--header) or data (--no-header); by default a "
                            "first row is a header if a field is not a number, or if it is exactly 0, 1, ..., n-1 "
                            "(what pandas writes) above other rows; the choice is printed (default: detect)")
    train.add_argument("--labels-column", metavar="NAME|INDEX", default=None,
                       help="CSV or 2-D .npy: a column of labels, by header name or 0-based index (-1 = last), "
                            "kept out of the features (default: none, every column is a feature)")
    model = train.add_argument_group("model")
    model.add_argument("--hidden", type=int, default=25, metavar="S",
                       help="number of hidden units (features learned) (default: %(default)s)")
    model.add_argument("--activation", default="sigmoid", choices=ACTIVATIONS,
                       help="hidden activation f; relu needs --penalty l1 or topk (default: %(default)s)")
    model.add_argument("--decoder", default="auto", choices=DECODER_CHOICES,
                       help="output activation g; auto = sigmoid when the data lie in [0, 1], "
                            "else linear (default: %(default)s)")
    model.add_argument("--topk", type=int, default=None, metavar="K",
                       help="keep only the K largest activations per sample; needed by --penalty topk "
                            "(default: off)")
    objective = train.add_argument_group("objective")
    objective.add_argument("--penalty", default=_DEFAULTS.penalty, choices=PENALTIES,
                           help="sparsity penalty: kl = beta sum_j KL(rho||rho_hat_j), l1 = beta mean "
                                "sum_j |a_j|, topk = none besides the TopK codes (default: %(default)s)")
    objective.add_argument("--rho", type=float, default=_DEFAULTS.rho,
                           help="target mean activation rho of each hidden unit, in (0, 1) (default: %(default)s)")
    objective.add_argument("--beta", type=float, default=_DEFAULTS.beta,
                           help="weight beta of the sparsity penalty (default: %(default)s)")
    objective.add_argument("--weight-decay", type=float, default=_DEFAULTS.weight_decay, metavar="LAMBDA",
                           help="L2 weight decay lambda on W1 and W2 (default: %(default)s)")
    optim = train.add_argument_group("optimisation")
    optim.add_argument("--optimizer", default=_DEFAULTS.optimizer, choices=OPTIMIZERS,
                       help="adam or sgd on minibatches, or full-batch lbfgs as in UFLDL (default: %(default)s)")
    optim.add_argument("--lr", type=float, default=_DEFAULTS.lr,
                       help="learning rate for adam / sgd; lbfgs ignores it (default: %(default)s)")
    optim.add_argument("--batch-size", type=int, default=_DEFAULTS.batch_size,
                       help="minibatch size for adam / sgd (default: %(default)s)")
    optim.add_argument("--epochs", type=float, default=_DEFAULTS.epochs,
                       help="passes over the data for adam / sgd (default: %(default)s)")
    optim.add_argument("--max-iter", type=int, default=_DEFAULTS.max_iter,
                       help="iterations for lbfgs (default: %(default)s)")
    optim.add_argument("--seed", type=int, default=0,
                       help="seeds the initial weights, the batch order and which patches are cut "
                            "(default: %(default)s)")
    optim.add_argument("--schedule", metavar="EDITS", default=None,
                       help="live changes to apply at their steps, as the dashboard's replay link carries them "
                            "(its edits= value), e.g. '120:beta=10;300:lr=0.005,rho=0.05;450:resample=3.17': with "
                            "the run's first settings and seed this retrains the very run (default: none)")
    output = train.add_argument_group("output")
    output.add_argument("--resume", metavar="DIR", default=None,
                        help="continue the run saved in DIR from its recorded step, history and optimiser state, "
                             "with its own settings and data, up to a new --epochs / --max-iter (the budget of "
                             "the whole run); written back to DIR unless --out names another (default: off)")
    output.add_argument("--out", metavar="DIR", default=None,
                        help="write the run here: config.json, model.safetensors, history.npz and, for "
                             "image data, filters.png (default: nothing is saved)")
    output.add_argument("--overwrite", action="store_true",
                        help="replace the run already in --out (without it, a run there is never replaced; a "
                             "directory holding other files is refused in any case) (default: off)")
    output.add_argument("--quiet", action="store_true",
                        help="no progress bar and no data description (the summary is still printed) (default: off)")
    output.add_argument("--threads", type=int, default=None, metavar="N",
                        help="torch threads for training (default: 1 for a model whose step is under 2 GFLOP, as "
                             "the dashboard runs, where more threads only cost start-up time; else torch's own)")
    train.set_defaults(handler=cmd_train)

    grad = commands.add_parser(
        "gradcheck", help="check backpropagation against numerical gradients",
        description="Compare the analytic gradient of J with central differences in float64 for every "
                    "supported (activation, penalty, decoder); UFLDL's measure ||g_num - g|| / ||g_num + g|| "
                    "must be below 1e-9. Exits 1 if any combination fails.")
    grad.add_argument("--seed", type=int, default=0, help="seed of the random model and data (default: %(default)s)")
    grad.set_defaults(handler=cmd_gradcheck)
    return parser


# --------------------------------------------------------------------------- train


def given_flags(argv: Sequence[str] | None) -> set[str]:
    """The destinations of the options given on the command line (not left at their defaults)."""
    parser = build_parser()
    for sub in parser._subparsers._group_actions[0].choices.values():  # type: ignore[union-attr]
        for action in sub._actions:
            action.default = argparse.SUPPRESS
        sub.set_defaults(handler=None)
    given = vars(parser.parse_args(argv))
    return {k for k in given if k not in ("command", "handler")}


__all__ = ["build_parser", "given_flags", "program_name"]
