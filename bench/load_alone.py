"""One run alone, no page open: the reference for bench/load.py's training throughput.

    python -m bench.load_alone [--hidden 20] [--seconds 5] [--warmup 1.5]     # prints one JSON line

The same settings a bench session trains (the dashboard's defaults, ``sae.app.settings.Settings``, with its
hidden size) through the library's ``sae.Trainer`` in its own background thread, as the server's jobs run it
(snapshots every 0.1 s, torch threads chosen by the Trainer), but with nobody reading the snapshots and no
server in the process. Measured after ``--warmup`` s: samples/s (steps x batch / wall s), the CPU seconds this
process used per sample, and the cores it kept busy (CPU s / wall s). bench/load.py runs it in a child process
so that the figure comes from a fresh interpreter on the same machine, in the same bench run.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def cpu_seconds() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hidden", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=1.5)
    args = ap.parse_args(argv)

    from sae import Trainer
    from sae.app.settings import Settings
    from sae.data import load_dataset

    settings = Settings(n_hidden=args.hidden, epochs=100_000.0)
    data = load_dataset(settings.dataset)
    trainer = Trainer(data.X, settings.model_config(data), settings.train_config(), snapshot_interval=0.1)
    trainer.start()
    try:
        time.sleep(args.warmup)
        s0, t0, c0 = trainer.latest().step, time.perf_counter(), cpu_seconds()
        time.sleep(args.seconds)
        s1, t1, c1 = trainer.latest().step, time.perf_counter(), cpu_seconds()
    finally:
        trainer.stop("bench done")
        trainer.join(10)
    samples = (s1 - s0) * trainer.batch_size
    out = {"settings": {"dataset": settings.dataset, "n_hidden": args.hidden, "batch_size": trainer.batch_size,
                        "optimizer": settings.optimizer},
           "seconds": round(t1 - t0, 2), "steps": s1 - s0, "samples_per_s": round(samples / (t1 - t0), 1),
           "cpu_s_per_sample": (c1 - c0) / samples if samples else None,
           "cores_used": round((c1 - c0) / (t1 - t0), 3)}
    print(json.dumps(out), flush=True)
    return out


if __name__ == "__main__":
    main()
