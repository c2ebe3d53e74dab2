"""Shared helpers for the benchmarks: interleaved repeats, medians, the machine, a table and JSON."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "python": platform.python_version()}


def matmul_peak_gflops(n: int = 1024, repeats: int = 20) -> float:
    """Best float32 matmul rate of this process (GFLOP/s), measured in the same run as the benchmark."""
    a, b = torch.rand(n, n), torch.rand(n, n)
    torch.mm(a, b)
    best = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2 * n ** 3 / (time.perf_counter() - t) / 1e9)
    return best


def plain_objective(enc: torch.nn.Linear, dec: torch.nn.Linear, x: torch.Tensor, rho: float, beta: float,
                    weight_decay: float) -> torch.Tensor:
    """The reference: the sparse autoencoder objective as anyone would write it with torch (autograd).

    sigmoid hidden and output units, rho_hat the batch mean, beta KL, lambda/2 on both weight matrices.
    """
    a = torch.sigmoid(enc(x))
    x_hat = torch.sigmoid(dec(a))
    rho_hat = a.mean(0)
    kl = (rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))).sum()
    return 0.5 * (x_hat - x).pow(2).sum() / x.shape[0] + beta * kl + \
        0.5 * weight_decay * (enc.weight.pow(2).sum() + dec.weight.pow(2).sum())


def interleaved(contenders: dict[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    """Run each contender once per round, rounds interleaved so machine noise hits all alike."""
    out: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, run in contenders.items():
            out[name].append(run())
    return out


def median(values: list[float]) -> float:
    return statistics.median(values)


def print_table(title: str, header: list[str], rows: list[list]) -> None:
    widths = [max(len(str(h)), *(len(_fmt(r[i])) for r in rows)) for i, h in enumerate(header)]
    print(f"\n{title}")
    print("  ".join(str(h).ljust(w) for h, w in zip(header, widths)))
    for row in rows:
        print("  ".join(_fmt(v).ljust(w) for v, w in zip(row, widths)))


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:,.3g}" if abs(v) < 100 else f"{v:,.0f}"
    return str(v)


def save_json(name: str, data: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **data}, indent=2))
    print(f"\nJSON: {path}")
    return path
