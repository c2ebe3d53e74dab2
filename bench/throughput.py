"""Minibatch training throughput: the trainer as the dashboard runs it vs a plain PyTorch loop.

    python bench/throughput.py [--repeats 5] [--seconds 1.5] [--compile]

First the facts that decide the figures on a machine: CPU vendor and model, the instruction sets MKL and oneDNN
choose their code by, torch's CPU capability and thread count, and which library the fast path's products take
for each shape (sae.core.cpu: oneDNN only on AVX-512 CPUs that are not Intel's), then a kernel check: one step of
the hand-derived pass with its products forced to MKL and forced to oneDNN, 1 thread, so the rule's choice can be
judged on this machine.

Same data, same batches (one seeded permutation per epoch, as sae.Trainer draws them), batch 256,
Adam, sigmoid units, the KL penalty; MNIST 784->196 (the 5,000 real digits) and whitened 8x8
natural-image patches 64->25. Contenders, interleaved round by round (median of the rounds):

  plain loop            nn.Linear + autograd + torch.optim.Adam, nothing else (the reference), at torch's
                        default thread count and at 1 thread
  plain + fused Adam    the same with Adam(fused=True): what the optimiser kernel alone buys
  hand-derived grads    sae.core.fused.FusedObjective + plain Adam: what the hand-derived pass alone buys
  compiled loss         torch.compile of the plain loss (with --compile; compiling takes a while)
  dashboard (autograd)  sae.Trainer(fused=False) in its background thread holding a training slot, a
                        consumer reading snapshots three times a second as the UI does
  dashboard (fast)      sae.Trainer() as the dashboard runs it: hand-derived pass + fused Adam called as
                        one kernel, 1 torch thread (the dashboard's setting: one core per run, the
                        other for the page)
  Trainer.start()       the same from a notebook at torch's default thread count (the training thread
                        picks one thread for a small model, see sae.Trainer's ``threads``)
  Trainer, N threads    the same forced to torch's default thread count (Trainer(threads=N)): whether the
                        one-thread rule (sae.training.background.SMALL_STEP_FLOPS) is right for this shape

torch.set_num_threads is process-wide, so each contender sets its thread count before it runs.

Prints samples/s, the ratio to the plain loop and the fraction of this machine's float32 matmul peak
(a step costs 10 b n s FLOPs: two matmuls of 2 b n s forward, three backward), and writes bench/results/throughput.json.
"""

from __future__ import annotations

import argparse
import re
import sys
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import interleaved, matmul_peak_gflops, median, plain_objective, print_table, save_json  # noqa: E402
from sae import ModelConfig, TrainConfig, Trainer  # noqa: E402
from sae.training.slots import TrainingSlots  # noqa: E402
from sae.data import load_dataset  # noqa: E402
from sae.core.cpu import cpu_facts, onednn_is_faster_here  # noqa: E402
from sae.core.fused import ONEDNN_MIN_MACS, FusedObjective, onednn_available, takes_onednn  # noqa: E402
from sae.training.background import SMALL_STEP_FLOPS  # noqa: E402
from sae.core.model import SparseAutoencoder  # noqa: E402

RHO, BETA, LAMBDA, LR, BATCH, SEED = 0.1, 3.0, 3e-3, 1e-3, 256, 0


def batches(X: torch.Tensor, steps: int):
    """The trainer's batch order: a fresh seeded permutation each epoch."""
    g = torch.Generator().manual_seed(SEED)
    per_epoch = max(1, len(X) // BATCH)  # full batches only, as sae.Trainer
    order = None
    for step in range(steps):
        start = (step % per_epoch) * BATCH
        if start == 0:
            order = torch.randperm(len(X), generator=g)
        yield X[order[start:start + BATCH]]


def plain_loop(X: torch.Tensor, n_hidden: int, steps: int, fused_adam: bool = False, compiled: bool = False) -> float:
    n = X.shape[1]
    torch.manual_seed(SEED)
    enc, dec = torch.nn.Linear(n, n_hidden), torch.nn.Linear(n_hidden, n)
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=LR, fused=fused_adam or None)

    def loss_fn(x):
        return plain_objective(enc, dec, x, RHO, BETA, LAMBDA)

    if compiled:
        loss_fn = torch.compile(loss_fn)
        for x in batches(X, 3):  # compile outside the timing
            loss_fn(x).backward()
    t = time.perf_counter()
    for x in batches(X, steps):
        loss = loss_fn(x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps * BATCH / (time.perf_counter() - t)


def hand_derived(X: torch.Tensor, n_hidden: int, steps: int) -> float:
    model = SparseAutoencoder(X.shape[1], n_hidden)
    objective = FusedObjective(model, "kl")
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    t = time.perf_counter()
    for x in batches(X, steps):
        objective.loss_and_grad(x, RHO, BETA, LAMBDA)
        opt.step()
    return steps * BATCH / (time.perf_counter() - t)


def dashboard_trainer(X: torch.Tensor, n_hidden: int, steps: int, fused: bool, served: bool = True,
                      threads: int | None = None) -> float:
    """sae.Trainer in its thread (holding a training slot when ``served``, as in the dashboard); a consumer
    polls the latest snapshot every 0.3 s like the UI fragment. ``threads``: the Trainer's (default: this
    thread's count when served, else the training thread's own rule)."""
    epochs = steps / max(1, len(X) // BATCH)
    trainer = Trainer(X, ModelConfig(X.shape[1], n_hidden),
                      TrainConfig(rho=RHO, beta=BETA, weight_decay=LAMBDA, lr=LR, batch_size=BATCH, epochs=epochs,
                                  seed=SEED), fused=fused, slots=TrainingSlots(1) if served else None,
                      threads=threads or (torch.get_num_threads() if served else None))
    done = threading.Event()

    def consumer():
        while not done.wait(0.3):
            snap = trainer.latest()
            snap.rho_hat.mean(), snap.weights["encoder.weight"].shape  # what a page reads

    reader = threading.Thread(target=consumer, daemon=True)
    reader.start()
    t = time.perf_counter()
    trainer.start()
    trainer.join()
    elapsed = time.perf_counter() - t
    done.set()
    reader.join()
    assert trainer.latest().status == "finished", trainer.latest().reason
    return trainer.step_count * BATCH / elapsed


def machine_facts() -> dict:
    """What decides the figures on this machine (printed, and saved with the results)."""
    facts = cpu_facts()
    config = torch.__config__.show()
    mkl = re.search(r"Math Kernel Library Version ([\w.]+)", config)
    dnn = re.search(r"MKL-DNN v([\w.]+)", config)
    return {"vendor": facts.vendor, "model": facts.model, "family_model": facts.family_model,
            "flags": list(facts.flags), "torch_capability": facts.capability, "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "mkl": mkl.group(1) if mkl else None, "onednn": dnn.group(1) if dnn else None,
            "onednn_kernel_in_use": onednn_available(), "onednn_faster_here": onednn_is_faster_here()}


def print_facts(facts: dict) -> None:
    print(f"CPU: {facts['vendor']} {facts['model']} ({facts['family_model'] or 'family unknown'}); "
          f"flags: {' '.join(facts['flags']) or '(unknown)'}")
    kernel = "in use" if facts["onednn_kernel_in_use"] else "fenced off"
    print(f"torch {facts['torch']}: CPU capability {facts['torch_capability']}, {facts['torch_threads']} threads; "
          f"MKL {facts['mkl']}, oneDNN {facts['onednn']} (private kernel {kernel})")
    print("big float32 products (>= {:,} multiply-adds) go to: {}".format(
        ONEDNN_MIN_MACS, "oneDNN (AVX-512, not Intel)" if facts["onednn_faster_here"] and facts["onednn_kernel_in_use"]
        else "MKL" + ("" if facts["onednn_faster_here"] else " (no AVX-512, or Intel: oneDNN would not be faster)")))


def kernel_check(X: torch.Tensor, n_hidden: int, repeats: int) -> dict:
    """One step of the hand-derived pass (values skipped, as most trainer steps), its products forced to MKL and to
    oneDNN, 1 thread, interleaved; returns ms per step for each and the median ratio."""
    torch.set_num_threads(1)
    model = SparseAutoencoder(X.shape[1], n_hidden)
    x = X[:BATCH].contiguous()
    passes = {"MKL": FusedObjective(model, "kl", onednn=False), "oneDNN": FusedObjective(model, "kl", onednn=True)}
    times: dict[str, list[float]] = {k: [] for k in passes}
    for _ in range(max(5, repeats * 3)):
        for k, objective in passes.items():
            objective.loss_and_grad(x, RHO, BETA, LAMBDA, values=False)
            t = time.perf_counter()
            for _ in range(20):
                objective.loss_and_grad(x, RHO, BETA, LAMBDA, values=False)
            times[k].append((time.perf_counter() - t) / 20 * 1e3)
    return {"mkl_ms": median(times["MKL"]), "onednn_ms": median(times["oneDNN"]),
            "onednn_over_mkl": median([d / m for m, d in zip(times["MKL"], times["oneDNN"])])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds (median reported)")
    parser.add_argument("--seconds", type=float, default=1.5, help="target seconds per contender per round")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile of the plain loss")
    args = parser.parse_args()

    threads = torch.get_num_threads()
    facts = machine_facts()
    print_facts(facts)
    peak = matmul_peak_gflops()
    print(f"float32 matmul peak of this process: {peak:.0f} GFLOP/s ({torch.get_num_threads()} threads)")
    results = {"cpu": facts, "peak_gflops": peak, "models": {}}
    for name, dataset, n_hidden in (("MNIST 784->196", "mnist", 196), ("patches 64->25", "patches", 25)):
        X = torch.from_numpy(load_dataset(dataset).X.copy())
        n = X.shape[1]
        check = kernel_check(X, n_hidden, args.repeats)
        torch.set_num_threads(threads)
        step_flops = 10 * BATCH * n * n_hidden
        print(f"\n{name}, batch {BATCH}: {BATCH * n * n_hidden:,} multiply-adds a product -> the fast path takes "
              f"{'oneDNN' if takes_onednn(BATCH, n, n_hidden) else 'MKL'}; a step is {step_flops / 1e9:.2f} GFLOP -> "
              f"a training thread takes {1 if step_flops < SMALL_STEP_FLOPS else threads} thread(s) unless told")
        print(f"kernel check (hand-derived step, 1 thread): MKL {check['mkl_ms']:.2f} ms, "
              f"oneDNN {check['onednn_ms']:.2f} ms"
              f" (oneDNN/MKL time {check['onednn_over_mkl']:.2f}: {'oneDNN' if check['onednn_over_mkl'] < 1 else 'MKL'}"
              " is faster here)")
        plain_loop(X, n_hidden, 50)  # warm-up
        probe = plain_loop(X, n_hidden, 200)  # size the runs to ~--seconds
        steps = max(1000, int(args.seconds * probe / BATCH))
        contenders = {  # label -> (torch threads, run)
            f"plain loop, {threads} threads": (threads, lambda: plain_loop(X, n_hidden, steps)),
            "plain loop, 1 thread": (1, lambda: plain_loop(X, n_hidden, steps)),
            "plain + fused Adam, 1 thread": (1, lambda: plain_loop(X, n_hidden, steps, fused_adam=True)),
            "hand-derived grads, 1 thread": (1, lambda: hand_derived(X, n_hidden, steps)),
            "dashboard (autograd), 1 thread": (1, lambda: dashboard_trainer(X, n_hidden, steps, fused=False)),
            "dashboard (fast), 1 thread": (1, lambda: dashboard_trainer(X, n_hidden, steps, fused=True)),
            f"Trainer.start(), {threads} threads": (threads, lambda: dashboard_trainer(X, n_hidden, steps, fused=True,
                                                                                     served=False)),
        }
        if threads > 1:
            contenders[f"Trainer, {threads} threads (forced)"] = (
                threads, lambda: dashboard_trainer(X, n_hidden, steps, fused=True, served=False, threads=threads))
        if args.compile:
            contenders["compiled loss, 1 thread"] = (1, lambda: plain_loop(X, n_hidden, steps, compiled=True))

        def with_threads(n, run):
            def call():
                torch.set_num_threads(n)
                return run()
            return call

        runs = interleaved({k: with_threads(*v) for k, v in contenders.items()}, args.repeats)
        torch.set_num_threads(threads)
        ref1, ref_n = runs["plain loop, 1 thread"], runs[f"plain loop, {threads} threads"]
        flops = 10 * BATCH * X.shape[1] * n_hidden
        rows, model_out = [], {}
        for label, values in runs.items():
            rate = median(values)
            vs1 = median([v / p for v, p in zip(values, ref1)])
            vs_n = median([v / p for v, p in zip(values, ref_n)])
            rows.append([label, rate, vs1, vs_n, rate / BATCH * flops / 1e9 / peak])
            model_out[label] = {"samples_per_s": rate, "x_plain_1_thread": vs1, f"x_plain_{threads}_threads": vs_n,
                                "fraction_of_peak": rate / BATCH * flops / 1e9 / peak, "runs": values}
        print_table(f"{name}, batch {BATCH}, {steps} steps x {args.repeats} rounds (ratios: median of paired rounds)",
                    ["contender", "samples/s", "x plain 1t", f"x plain {threads}t", "of matmul peak"], rows)
        results["models"][name] = {"fast_path_library": "oneDNN" if takes_onednn(BATCH, n, n_hidden) else "MKL",
                                   "kernel_check": check, "contenders": model_out}
    save_json("throughput", results)


if __name__ == "__main__":
    main()
