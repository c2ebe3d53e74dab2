"""The UFLDL reference run: L-BFGS, 400 iterations, 10,000 whitened 8x8 patches, 64->25.

    python bench/ufldl_lbfgs.py [--repeats 5]

The project (sae.Trainer: its one-iteration-at-a-time L-BFGS on the hand-derived full-batch pass)
against plain torch.optim.LBFGS with autograd (history 100, strong Wolfe, the same tolerances) from
the same initial weights on the same data, interleaved, median of the rounds. Prints times, their
ratio and both final costs; writes bench/results/ufldl_lbfgs.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import interleaved, median, print_table, save_json  # noqa: E402
from sae import ModelConfig, TrainConfig, Trainer, sparse_autoencoder_loss  # noqa: E402
from sae.data import load_dataset  # noqa: E402

CONFIG = TrainConfig(rho=0.01, beta=3.0, weight_decay=1e-4, optimizer="lbfgs", max_iter=400, seed=0)


def project(X: torch.Tensor, out: dict) -> float:
    trainer = Trainer(X, ModelConfig(64, 25), CONFIG)
    t = time.perf_counter()
    trainer.run()
    elapsed = time.perf_counter() - t
    out["project"] = (trainer.latest().losses["total"], trainer.step_count)
    return elapsed


def plain(X: torch.Tensor, out: dict) -> float:
    model = Trainer(X, ModelConfig(64, 25), CONFIG).model  # the same seeded initial weights
    opt = torch.optim.LBFGS(model.parameters(), lr=1, max_iter=CONFIG.max_iter, history_size=100,
                            line_search_fn="strong_wolfe", tolerance_grad=1e-9, tolerance_change=1e-12)

    def closure():
        opt.zero_grad()
        loss = sparse_autoencoder_loss(model, X, CONFIG.rho, CONFIG.beta, CONFIG.weight_decay)["total"]
        loss.backward()
        return loss

    t = time.perf_counter()
    opt.step(closure)
    elapsed = time.perf_counter() - t
    final = sparse_autoencoder_loss(model, X, CONFIG.rho, CONFIG.beta, CONFIG.weight_decay)["total"].item()
    out["plain"] = (final, opt.state[next(iter(opt.state))]["n_iter"])
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    X = torch.from_numpy(load_dataset("patches").X.copy())
    costs: dict = {}
    runs = interleaved({"plain torch.optim.LBFGS": lambda: plain(X, costs),
                        "sae.Trainer (lbfgs)": lambda: project(X, costs)}, args.repeats)
    t_plain, t_ours = median(runs["plain torch.optim.LBFGS"]), median(runs["sae.Trainer (lbfgs)"])
    ratios = [o / p for o, p in zip(runs["sae.Trainer (lbfgs)"], runs["plain torch.optim.LBFGS"])]
    (c_plain, it_plain), (c_ours, it_ours) = costs["plain"], costs["project"]
    print_table(f"UFLDL run: 10,000 patches 64->25, L-BFGS {CONFIG.max_iter} iterations, {args.repeats} rounds",
                ["contender", "seconds", "iterations", "final cost"],
                [["plain torch.optim.LBFGS", t_plain, it_plain, c_plain], ["sae.Trainer (lbfgs)", t_ours, it_ours, c_ours]])
    print(f"\ntime ratio (project / plain): {median(ratios):.3f} (median of paired rounds); "
          f"final cost relative difference {abs(c_ours - c_plain) / abs(c_plain):.2e}")
    save_json("ufldl_lbfgs", {"seconds": runs, "ratio": median(ratios), "final_cost": {"plain": c_plain, "project": c_ours},
                              "iterations": {"plain": it_plain, "project": it_ours}})


if __name__ == "__main__":
    main()
