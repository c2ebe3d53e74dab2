"""The UFLDL reference run: L-BFGS, 400 iterations, 10,000 whitened 8x8 patches, 64->25.

    python bench/ufldl_lbfgs.py [--repeats 5] [--threads N]

The project (sae.Trainer: its one-iteration-at-a-time L-BFGS on the hand-derived full-batch pass,
in float64 as minFunc) against plain torch.optim.LBFGS with autograd on the objective as anyone would
write it (bench.common.plain_objective; history 100, strong Wolfe, the
same tolerances, no cap on evaluations so both take the same 400 iterations), from the same initial
weights on the same data, interleaved, median of the rounds. The reference runs in float64 (the
comparison: same precision, same iterations) and in float32 (torch's default, for context: its
iterations stall where float32 cannot tell two losses apart). Prints times, ratios, iterations,
evaluations and final costs; writes bench/results/ufldl_lbfgs.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import interleaved, median, plain_objective, print_table, save_json  # noqa: E402
from sae import ModelConfig, TrainConfig, Trainer, sparse_autoencoder_loss  # noqa: E402
from sae.data import load_dataset  # noqa: E402

CONFIG = TrainConfig(rho=0.01, beta=3.0, weight_decay=1e-4, optimizer="lbfgs", max_iter=400, seed=0)
PROJECT, PLAIN64, PLAIN32 = "sae.Trainer (lbfgs, float64)", "torch.optim.LBFGS, float64", "torch.optim.LBFGS, float32"


def project(X: torch.Tensor, out: dict) -> float:
    trainer = Trainer(X, ModelConfig(64, 25), CONFIG)
    t = time.perf_counter()
    trainer.run()
    elapsed = time.perf_counter() - t
    out[PROJECT] = {"final_cost": trainer.latest().losses["total"], "iterations": trainer.step_count,
                    "evaluations": trainer.full_batch.lbfgs.evaluations}
    return elapsed


def plain(X: torch.Tensor, out: dict, dtype: torch.dtype) -> float:
    model = Trainer(X, ModelConfig(64, 25), CONFIG).model.to(dtype)  # the same seeded initial weights
    enc, dec = model.encoder, model.decoder  # two nn.Linear
    X = X.to(dtype)
    opt = torch.optim.LBFGS(model.parameters(), lr=1, max_iter=CONFIG.max_iter, max_eval=10 ** 6, history_size=100,
                            line_search_fn="strong_wolfe", tolerance_grad=1e-9, tolerance_change=1e-12)

    def closure():
        opt.zero_grad()
        loss = plain_objective(enc, dec, X, CONFIG.rho, CONFIG.beta, CONFIG.weight_decay)
        loss.backward()
        return loss

    t = time.perf_counter()
    opt.step(closure)
    elapsed = time.perf_counter() - t
    final = sparse_autoencoder_loss(model, X, CONFIG.rho, CONFIG.beta, CONFIG.weight_decay)["total"].item()
    state = opt.state[next(iter(opt.state))]
    out[PLAIN64 if dtype == torch.float64 else PLAIN32] = {"final_cost": final, "iterations": state["n_iter"],
                                                           "evaluations": state["func_evals"]}
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    X = torch.from_numpy(load_dataset("patches").X.copy())
    out: dict = {}
    runs = interleaved({PLAIN64: lambda: plain(X, out, torch.float64), PLAIN32: lambda: plain(X, out, torch.float32),
                        PROJECT: lambda: project(X, out)}, args.repeats)
    ref = out[PLAIN64]["final_cost"]
    rows = []
    for name in (PLAIN64, PLAIN32, PROJECT):
        r = out[name]
        r["seconds"] = median(runs[name])
        r["x_plain_float64"] = median([a / b for a, b in zip(runs[name], runs[PLAIN64])])
        r["cost_rel_diff_vs_plain_float64"] = abs(r["final_cost"] - ref) / abs(ref)
        rows.append([name, r["seconds"], r["x_plain_float64"], r["iterations"], r["evaluations"], f"{r['final_cost']:.10f}",
                     f"{r['cost_rel_diff_vs_plain_float64']:.1e}"])
    print_table(f"UFLDL run: 10,000 patches 64->25, L-BFGS {CONFIG.max_iter} iterations, {args.repeats} rounds "
                f"({torch.get_num_threads()} torch threads)",
                ["contender", "seconds", "x plain f64", "iterations", "evaluations", "final cost", "rel. diff"], rows)
    save_json("ufldl_lbfgs", {"contenders": out, "seconds": runs, "threads": torch.get_num_threads()})


if __name__ == "__main__":
    main()
