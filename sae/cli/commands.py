"""The command line's commands: ``train`` (new or resumed, written without destroying anything) and
``gradcheck``. Each takes the parsed arguments and returns the exit code."""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from sae.core.config import ConfigError, TrainConfig
from sae.training.status import RunStatus

FILTER_CELL_PIXELS = 32  # filters.png is upscaled so each filter is at least this many pixels wide


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
    from sae.training.timeline import parse_schedule_text
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
    schedule = parse_schedule_text(args.schedule) if args.schedule else ()
    trainer = Trainer(torch.tensor(data.X), model_config, config, schedule=schedule)  # a writable copy of data.X
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


__all__ = ["cmd_train", "cmd_gradcheck"]
