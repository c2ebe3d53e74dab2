"""The command line: ``python -m sae train ...`` and ``python -m sae gradcheck``.

Exit codes: 0 success; 1 training diverged or a gradient check failed; 2 a bad flag, value, data
or file (one line ``error: ...`` on stderr, never a traceback); 130 interrupted (Ctrl-C).

Example (UFLDL's exercise, a few seconds):
    python -m sae train --dataset patches --hidden 25 --rho 0.01 --beta 3 --weight-decay 1e-4 \\
        --optimizer lbfgs --max-iter 400 --seed 0 --out runs/ufldl
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path
from typing import Sequence

from sae.core.config import ACTIVATIONS, DECODER_CHOICES, OPTIMIZERS, PENALTIES, ConfigError, TrainConfig
from sae.training.status import RunStatus

_DEFAULTS = TrainConfig(rho=0.01, beta=3.0, weight_decay=1e-4, optimizer="lbfgs", max_iter=400, seed=0)
# No flags = UFLDL's exercise (25 sigmoid units on 8x8 natural-image patches, rho 0.01, beta 3, lambda 1e-4, 400
# L-BFGS iterations), whose oriented edge filters are the published result; the rest are TrainConfig's defaults.
FILTER_CELL_PIXELS = 32  # filters.png is upscaled so each filter is at least this many pixels wide


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

def _load_data(args):
    from sae.data import load_array, load_dataset

    if args.data:
        data = load_array(args.data, labels_column=args.labels_column, header=args.header)
        if not args.quiet:
            print(data.description, file=sys.stderr)
        return data, f"file:{Path(args.data).name}"
    if args.header is not None or args.labels_column is not None:
        flag = "--labels-column" if args.labels_column is not None else "--header/--no-header"
        raise ConfigError(f"{flag} applies to a file given with --data, not to a built-in data set.")
    data = load_dataset(args.dataset, seed=args.seed)
    return data, data.name


def _check_out(out: str, overwrite: bool) -> None:
    """Refuse an --out that would destroy something or cannot be written, before any training."""
    from sae.runs.files import RunExistsError, check_run_target

    try:
        check_run_target(out, overwrite=overwrite)
    except RunExistsError:
        raise ConfigError(f"--out {out} already holds a run; nothing was changed: continue it with --resume {out}, "
                          f"or replace it with --overwrite.") from None


RESUME_FLAGS = {"resume", "epochs", "max_iter", "out", "overwrite", "quiet", "threads", "data", "header",
                "labels_column"}  # what --resume accepts: the budget, the output, and the file the run was trained on


def _new_trainer(args: argparse.Namespace):
    """(trainer, data, its name, where to write, whether a run there may be replaced) for a new run."""
    import torch

    from sae.core.config import ModelConfig
    from sae.training.trainer import Trainer

    if args.penalty == "topk" and args.topk is None:
        raise ConfigError("--penalty topk needs --topk K (how many units stay active per sample).")
    config = TrainConfig(rho=args.rho, beta=args.beta, weight_decay=args.weight_decay, penalty=args.penalty,
                         optimizer=args.optimizer, lr=args.lr, batch_size=args.batch_size, epochs=args.epochs,
                         max_iter=args.max_iter, seed=args.seed)
    if args.out:
        _check_out(args.out, args.overwrite)
    data, dataset_name = _load_data(args)
    model_config = ModelConfig(data.n_features, args.hidden, args.activation, args.decoder, args.topk).for_data(data.X)
    trainer = Trainer(torch.tensor(data.X), model_config, config)  # a writable copy: data.X is read-only
    return trainer, data, dataset_name, args.out, args.overwrite


def _resumed_trainer(args: argparse.Namespace, given: set[str]):
    """The same for ``--resume DIR``: the run's own settings, data and state; written back to DIR by default."""
    import torch

    from sae.data import load_dataset
    from sae.runs.files import NothingToDo, continue_run, load_run

    changed = sorted(given - RESUME_FLAGS)
    if changed:
        flag = "--" + changed[0].replace("_", "-")
        raise ConfigError(f"{flag} cannot change when continuing a run (--resume keeps its settings; give only "
                          f"--epochs / --max-iter, --out, --quiet, --threads); start a new run to change it.")
    run = load_run(args.resume)
    recorded = run.dataset or ""
    if args.data:
        data, dataset_name = _load_data(args)
    elif recorded.startswith("file:") or not recorded:
        raise ConfigError(f"{args.resume} was trained on {recorded[5:] or 'data it does not name'}: give that file "
                          f"again with --data PATH.")
    else:
        data, dataset_name = load_dataset(recorded, seed=run.train_config.seed if run.train_config else 0), recorded
    out = args.out or args.resume
    same = Path(out).resolve() == Path(args.resume).resolve()
    overwrite = same or args.overwrite
    _check_out(out, overwrite)
    budget = {k: getattr(args, k) for k in ("epochs", "max_iter") if k in given}
    try:
        trainer = continue_run(run, torch.tensor(data.X), **budget)
    except NothingToDo as exc:
        flag = "--" + exc.field.replace("_", "-")
        raise ConfigError(f"{exc}".replace(f"give {exc.field} above", f"give {flag} above")) from None
    return trainer, data, dataset_name, out, overwrite


def cmd_train(args: argparse.Namespace) -> int:
    import numpy as np
    import torch
    from tqdm import tqdm

    from sae.viz.images import to_png_bytes, tile_filters
    from sae.core.loss import sparse_autoencoder_loss
    from sae.evaluation.metrics import summarize
    from sae.runs.files import FILTERS_FILE, save_run

    from sae.training.trainer import SMALL_STEP_FLOPS

    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {args.threads}.")
    if args.resume:
        trainer, data, dataset_name, out_dir, overwrite = _resumed_trainer(args, getattr(args, "given", set()))
    else:
        trainer, data, dataset_name, out_dir, overwrite = _new_trainer(args)
    config, mc, start_step = trainer.config, trainer.model.config, trainer.step_count
    X = trainer.X
    threads = args.threads or (1 if trainer.step_flops() < SMALL_STEP_FLOPS else torch.get_num_threads())
    torch.set_num_threads(threads)
    if not args.quiet:
        what = f"continuing {args.resume} from step {trainer.step_count}: " if args.resume else ""
        print(f"{what}{dataset_name}: {data.n_samples:,} samples x {data.n_features} features -> {mc.n_hidden} hidden "
              f"units ({mc.activation}/{mc.decoder_activation}, {config.penalty} penalty, {config.optimizer}; "
              f"{threads} torch thread{'s' if threads > 1 else ''})",
              file=sys.stderr)

    unit = "it" if config.optimizer == "lbfgs" else "step"
    bar = tqdm(total=trainer.total_steps, unit=unit, disable=args.quiet, file=sys.stderr, leave=False)

    def progress(snap) -> None:
        bar.update(snap.step - bar.n)
        if snap.losses:
            bar.set_postfix(loss=f"{snap.losses['total']:.4g}", rho_hat=f"{float(np.mean(snap.rho_hat)):.3g}",
                            refresh=False)

    wall, elapsed_before = time.perf_counter(), trainer.latest().elapsed
    try:
        snapshot = trainer.run(progress=progress)
    finally:
        bar.close()
    wall = time.perf_counter() - wall

    model = trainer.model.eval()
    with torch.no_grad():
        terms = sparse_autoencoder_loss(model, X, config.rho, config.beta, config.weight_decay, config.penalty)
    summary = summarize(model, X)
    print(snapshot.reason)
    print(f"loss (all data): total {float(terms['total']):.6g} = reconstruction {float(terms['reconstruction']):.6g}"
          f" + sparsity {float(terms['sparsity']):.6g} + weight decay {float(terms['weight_decay']):.6g}")
    active = {"relu": "a > 0", "tanh": "(a+1)/2 > 0.1"}.get(mc.activation, "a > 0.1")
    print(f"mean rho_hat {summary.rho_hat_mean:.4g} (target {config.rho:g}, std {summary.rho_hat_std:.3g}); "
          f"dead units {summary.dead_units}/{mc.n_hidden}; active units per sample {summary.l0_mean:.3g} "
          f"(active: {active})")
    print(f"time {snapshot.elapsed - elapsed_before:.2f} s training, {wall:.2f} s wall; {trainer.step_count} {unit}s"
          + (f" in all (from step {start_step})" if args.resume else ""))

    if out_dir:
        extra = {}
        if data.image_shape is not None:
            scale = max(1, math.ceil(FILTER_CELL_PIXELS / max(data.image_shape)))
            extra[FILTERS_FILE] = to_png_bytes(tile_filters(model.encoder.weight.detach().numpy(),
                                                            data.image_shape), scale=scale)
        diverged = snapshot.status == RunStatus.DIVERGED  # the weights kept are of an earlier step, its state is gone
        optimizer_state = trainer.optimizer_state() if config.optimizer != "lbfgs" and not diverged else None
        out = save_run(out_dir, model, config, trainer.history(), dataset_name, step=trainer.weights_step,
                       overwrite=overwrite, optimizer_state=optimizer_state, extra_files=extra)
        print(f"saved {out}: {', '.join(p.name for p in sorted(out.iterdir()))}"
              + (f" (the weights of step {trainer.weights_step})" if diverged else ""))
    if snapshot.status == RunStatus.DIVERGED:
        print(f"error: {snapshot.reason}", file=sys.stderr)
        return 1
    return 0


# --------------------------------------------------------------------------- gradcheck

def cmd_gradcheck(args: argparse.Namespace) -> int:
    from sae.core.gradcheck import gradient_check_all

    if args.seed < 0:
        raise ConfigError(f"seed must be >= 0, got {args.seed}.")
    results = gradient_check_all(seed=args.seed)
    print(f"{'activation':<11} {'penalty':<8} {'decoder':<8} {'||g_num-g||/||g_num+g||':>24}  result")
    for r in results:
        print(f"{r.activation:<11} {r.penalty:<8} {r.decoder:<8} {r.difference:>24.3e}  "
              f"{'ok' if r.passed else 'FAIL (>= 1e-9)'}")
    failed = sum(not r.passed for r in results)
    print(f"{len(results) - failed}/{len(results)} passed")
    return 1 if failed else 0


# --------------------------------------------------------------------------- entry point

def _given_flags(argv: Sequence[str] | None) -> set[str]:
    """The destinations of the options given on the command line (not left at their defaults)."""
    parser = build_parser()
    for sub in parser._subparsers._group_actions[0].choices.values():  # type: ignore[union-attr]
        for action in sub._actions:
            action.default = argparse.SUPPRESS
        sub.set_defaults(handler=None)
    given = vars(parser.parse_args(argv))
    return {k for k in given if k not in ("command", "handler")}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (argparse usage errors exit 2 through SystemExit)."""
    from sae.data import DataError
    from sae.viz.images import ImageError
    from sae.runs.model_file import RunFileError

    args = build_parser().parse_args(argv)
    args.given = _given_flags(argv)
    try:
        return args.handler(args)
    except (ConfigError, DataError, RunFileError, ImageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; nothing saved", file=sys.stderr)
        return 130


__all__ = ["main", "build_parser"]
