"""The host inside a worker, without a process: its updates carry only the history rows the server lacks, and
the server's copy rebuilt from them is the trainer's history, through thinning."""

import numpy as np

from sae import ModelConfig, TrainConfig, Trainer
from sae.data import load_dataset
from sae.workers.host import TrainerHost, TrainerSpec, extend_history


def test_updates_carry_new_rows_only_and_rebuild_the_history_through_thinning():
    X = load_dataset("digits").X[:640]
    config = TrainConfig(epochs=80, batch_size=16, seed=0)  # 40 steps per epoch: 3,200 steps, past 2,000 rows
    model = Trainer(X, ModelConfig(64, 8), config).model
    spec = TrainerSpec(np.array(X), model.config, config,
                       {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}, snapshot_interval=0.0)
    host = TrainerHost(spec)
    have: dict[str, np.ndarray] = {}
    sizes = []
    host.trainer.start()
    while True:
        update = host.next_update(5.0)
        assert update is not None
        have = extend_history(have, update)
        sizes.append((update.history_start, len(update.history["step"])))
        if update.snapshot.status == "finished":
            break
    final = host.trainer.history()
    host.close()
    assert len(final["step"]) < host.trainer.step_count  # the history was thinned on the way
    for column, values in final.items():
        np.testing.assert_array_equal(have[column], values, err_msg=column)
    partial = [n for start, n in sizes if start > 0]
    assert partial and max(partial) < 200  # steady updates: the new rows, not the whole history
    assert sum(1 for start, _ in sizes if start == 0) >= 2  # the first update, and after each thinning


def test_an_acknowledgement_never_puts_back_a_snapshot_older_than_the_one_published():
    """A command's acknowledgement reads the latest snapshot; if the training thread publishes a newer one (a
    rewind's) before the acknowledgement is put, the newer one must stay in the box (it was lost before: the
    server kept showing the pre-rewind step while the history was already cut)."""
    from dataclasses import replace

    X = load_dataset("digits").X[:256]
    config = TrainConfig(epochs=2, batch_size=32, seed=0)
    model = Trainer(X, ModelConfig(64, 8), config).model
    spec = TrainerSpec(np.array(X), model.config, config,
                       {k: v.detach().numpy().copy() for k, v in model.state_dict().items()})
    host = TrainerHost(spec)
    stale = host.trainer.latest()
    newer = replace(stale, version=stale.version + 5, step=42)
    host._box.put(newer)  # as the training thread would, between the acknowledgement's read and its put
    host.trainer._latest = newer
    host._box.put(stale)  # the acknowledgement's late put
    update = host.next_update(1.0)
    host.close()
    assert update.snapshot.version == newer.version and update.snapshot.step == 42
