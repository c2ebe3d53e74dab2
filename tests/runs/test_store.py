"""sae.runs.store: round trips, restarts, concurrent writers (threads and processes), damage, ids.

Recording a Trainer (and a process crashing mid-run) is tested in test_recorder.py."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import sys
import threading
import traceback

import numpy as np
import pytest
import torch

from sae import ModelConfig
from sae.runs.recorder import RunRecorder
from sae.runs.store import DB_FILE, RunNotFoundError, RunStore, StoreError, check_run_id, default_root
from sae.training.status import RunStatus

from conftest import MC, TC, history, make_model, snapshot

# ----------------------------------------------------------------------------- basics

def test_round_trip(store):
    model = make_model(1)
    run_id = store.create("first run", "digits", MC, TC)
    assert store.get(run_id).status == "idle" and not store.get(run_id).has_weights
    store.checkpoint(run_id, snapshot(model, 10), history(11))
    store.finish(run_id, snapshot(model, 20, RunStatus.FINISHED, total=0.5), history(21),
                 {"reconstruction": 0.4, "dead_units": 2, "probe_accuracy": 0.9, "l0_mean": 1.5,
                  "rho_hat_mean": float("nan")})
    record = store.get(run_id)
    assert (record.name, record.dataset, record.status, record.step) == ("first run", "digits", RunStatus.FINISHED, 20)
    assert record.model_config == MC and record.train_config == TC
    assert record.total == 0.5 and record.reconstruction == 0.4 and record.dead_units == 2
    assert record.probe_accuracy == 0.9 and record.metrics == {"l0_mean": 1.5}
    assert record.rho_hat_mean is None  # NaN is recorded as unknown
    assert record.summary["rows"] == 21 and record.final and not record.interrupted
    hist = store.history(run_id)
    for key, values in history(21).items():
        np.testing.assert_array_equal(hist[key], values)
    np.testing.assert_array_equal(store.rho_hat(run_id), np.linspace(0.05, 0.2, 5))
    loaded = store.load_model(run_id)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
    run = store.load(run_id)
    assert run.train_config == TC and run.dataset == "digits" and len(run.history["step"]) == 21
    assert store.weights_path(run_id).is_file()
    row = record.row()
    assert row["rho"] == 0.1 and row["n_hidden"] == 5 and row["reconstruction"] == 0.4


def test_reopen_is_a_restart(tmp_path):
    root = tmp_path / "lab"
    with RunStore(root) as first:
        run_id = first.create("kept", "toy", MC, TC)
        first.checkpoint(run_id, snapshot(make_model(), 7), history(8))
    with RunStore(root) as second:
        (record,) = second.list()
        assert record.id == run_id and record.step == 7 and record.status == RunStatus.RUNNING
        assert not record.interrupted  # written by this (live) process
        assert second.history(run_id)["step"][-1] == 7
        second.load_model(run_id)


def test_default_root(monkeypatch, tmp_path):
    monkeypatch.setenv("SAE_LAB_DATA", str(tmp_path / "env"))
    assert default_root() == tmp_path / "env"
    with RunStore() as s:
        assert s.db_path == tmp_path / "env" / DB_FILE and s.db_path.exists()
    monkeypatch.delenv("SAE_LAB_DATA")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_root() == tmp_path / "xdg" / "sae-lab"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_root() == tmp_path / "home" / ".local" / "share" / "sae-lab"


def test_list_filters_and_sorting(store):
    ids = {}
    for name, dataset, recon, n in [("alpha", "digits", 3.0, 12), ("beta 100%", "digits", 1.0, 12),
                                    ("gamma", "toy", 2.0, 12), ("wide", "digits", None, 20)]:
        mc = ModelConfig(n, 5, decoder_activation="sigmoid")
        ids[name] = store.create(name, dataset, mc, TC)
        model = make_model(n=n)
        if recon is not None:
            store.finish(ids[name], snapshot(model, 5, RunStatus.FINISHED), None, {"reconstruction": recon})
    names = lambda records: [r.name for r in records]  # noqa: E731
    assert names(store.list(order_by="reconstruction", descending=False)) == ["beta 100%", "gamma", "alpha", "wide"]
    assert names(store.list(order_by="reconstruction")) == ["alpha", "gamma", "beta 100%", "wide"]  # unknown last
    assert set(names(store.list(dataset="digits"))) == {"alpha", "beta 100%", "wide"}
    assert names(store.list(search="100%")) == ["beta 100%"]
    assert names(store.list(search="A%")) == []  # % is literal, not a wildcard
    assert set(names(store.list(status=[RunStatus.FINISHED]))) == {"alpha", "beta 100%", "gamma"}
    assert names(store.list(n_inputs=20)) == ["wide"]
    assert len(store.list(limit=2)) == 2 and len(store) == 4 and ids["alpha"] in store
    with pytest.raises(StoreError, match="cannot sort"):
        store.list(order_by="name; DROP TABLE runs")


def test_rename_and_bad_names(store):
    run_id = store.create("old", "toy", MC, TC)
    store.rename(run_id, "  new name  ")
    assert store.get(run_id).name == "new name"
    for bad in ("", "   ", "two\nlines", "x" * 500, 5):
        with pytest.raises(StoreError):
            store.rename(run_id, bad)
    with pytest.raises(RunNotFoundError):
        store.rename("0" * 32, "ghost")


def test_delete_removes_row_history_and_weights(store):
    run_id = store.create("doomed", "toy", MC, TC)
    store.checkpoint(run_id, snapshot(make_model(), 3), history(4))
    path = store.weights_path(run_id)
    assert path.exists()
    store.delete(run_id)
    assert not path.exists() and run_id not in store and store.list() == []
    with pytest.raises(RunNotFoundError):
        store.get(run_id)
    with pytest.raises(RunNotFoundError):
        store.history(run_id)
    with sqlite3.connect(store.db_path) as conn:
        assert conn.execute("SELECT count(*) FROM histories").fetchone()[0] == 0
    with pytest.raises(RunNotFoundError):  # a late checkpoint of a deleted run leaves nothing behind
        store.checkpoint(run_id, snapshot(make_model(), 4), history(5))
    assert not path.exists() and list(store.weights_dir.iterdir()) == []
    with pytest.raises(RunNotFoundError):
        store.delete(run_id)


@pytest.mark.parametrize("bad", ["../x", "../../etc/passwd", "/tmp/x", "0" * 31, "0" * 33, "G" * 32, "A" * 32,
                                 "0" * 31 + "/", "", None, 7, "0" * 32 + "\x00"])
def test_malicious_run_ids_are_rejected(store, bad):
    for call in (store.get, store.load_model, store.history, store.delete, store.rho_hat, store.weights_path,
                 lambda i: store.rename(i, "x"), lambda i: store.checkpoint(i, snapshot(make_model(), 1)),
                 lambda i: RunRecorder(store, i), check_run_id):
        with pytest.raises(StoreError, match="not a valid"):
            call(bad)
    assert bad not in store
    assert list(store.weights_dir.iterdir()) == []


def test_missing_weights_file_message(store):
    run_id = store.create("lost weights", "toy", MC, TC)
    with pytest.raises(StoreError, match="no weights yet"):
        store.load_model(run_id)
    store.checkpoint(run_id, snapshot(make_model(), 2))
    store.weights_path(run_id).unlink()
    with pytest.raises(StoreError, match="missing") as info:
        store.load_model(run_id)
    assert str(store.weights_path(run_id)) in str(info.value) and "lost weights" in str(info.value)


def test_damaged_weights_file_message(store):
    run_id = store.create("bad weights", "toy", MC, TC)
    store.checkpoint(run_id, snapshot(make_model(), 2))
    store.weights_path(run_id).write_bytes(b"\x00" * 40)
    with pytest.raises(StoreError) as info:
        store.load_model(run_id)
    assert str(store.weights_path(run_id)) in str(info.value)


def test_nonfinite_weights_keep_the_last_good_file(store):
    run_id = store.create("nan", "toy", MC, TC)
    good = make_model(3)
    store.checkpoint(run_id, snapshot(good, 2))
    bad = make_model(4)
    with torch.no_grad():
        bad.encoder.weight[0, 0] = float("nan")
    store.checkpoint(run_id, snapshot(bad, 3, RunStatus.DIVERGED))
    assert store.get(run_id).status == RunStatus.DIVERGED and store.get(run_id).step == 3
    assert torch.equal(store.load_model(run_id).encoder.weight, good.encoder.weight)


def test_add_imported_model(store):
    model = make_model(5)
    run_id = store.add("upload", "file:model.safetensors", model, None, history(6), {"reconstruction": 0.2})
    record = store.get(run_id)
    assert record.status == RunStatus.FINISHED and record.train_config is None and record.reconstruction == 0.2
    assert record.step == 6 and record.row()["rho"] is None
    assert torch.equal(store.load_model(run_id).decoder.weight, model.decoder.weight)


# ----------------------------------------------------------------------------- concurrent writers

def _write_runs(root: str, tag: str, runs: int, checkpoints: int, barrier=None) -> None:
    """A writer (child process or parent) that creates runs and checkpoints them many times."""
    store = RunStore(root)
    model = make_model()
    if barrier is not None:
        barrier.wait(60)  # every writer starts at once: real contention
    for r in range(runs):
        run_id = store.create(f"{tag}-{r}", "toy", MC, TC)
        for step in range(1, checkpoints + 1):
            store.checkpoint(run_id, snapshot(model, step), history(step + 1))
        store.finish(run_id, snapshot(model, checkpoints, RunStatus.FINISHED), history(checkpoints + 1), {"dead_units": r})
    store.close()


def _write_runs_child(*args) -> None:
    """Child process entry: any error is printed and reported through the exit code."""
    try:
        _write_runs(*args)
    except BaseException:  # noqa: BLE001
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)


def _spawn():
    return multiprocessing.get_context("spawn")


def _check_writers(store: RunStore, tags: list[str], runs: int, checkpoints: int) -> None:
    records = {r.name: r for r in store.list()}
    assert len(records) == len(tags) * runs
    for tag in tags:
        for r in range(runs):
            record = records[f"{tag}-{r}"]
            assert record.status == RunStatus.FINISHED and record.step == checkpoints and record.dead_units == r
            assert len(store.history(record.id)["step"]) == checkpoints + 1
            store.load_model(record.id)


def test_concurrent_writers_threads(tmp_path):
    root = tmp_path / "lab"
    shared = RunStore(root)
    errors: list[BaseException] = []

    def writer(tag: str, own_store: bool) -> None:
        try:
            store = RunStore(root) if own_store else shared
            model = make_model()
            for r in range(4):
                run_id = store.create(f"{tag}-{r}", "toy", MC, TC)
                for step in range(1, 9):
                    store.checkpoint(run_id, snapshot(model, step), history(step + 1))
                    store.list(limit=5)  # readers interleave with writers
                store.finish(run_id, snapshot(model, 8, RunStatus.FINISHED), history(9), {"dead_units": r})
            if own_store:
                store.close()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    tags = [f"t{k}" for k in range(4)]
    threads = [threading.Thread(target=writer, args=(tag, k % 2 == 0)) for k, tag in enumerate(tags)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    _check_writers(shared, tags, 4, 8)
    shared.close()


def test_concurrent_writers_processes(tmp_path):
    root = tmp_path / "lab"
    RunStore(root).close()  # the schema exists before the race (creating it concurrently is tested below)
    ctx = _spawn()
    barrier = ctx.Barrier(3)
    children = [ctx.Process(target=_write_runs_child, args=(str(root), f"p{k}", 3, 15, barrier)) for k in range(2)]
    for child in children:
        child.start()
    _write_runs(str(root), "parent", 3, 15, barrier)  # the parent writes at the same time
    for child in children:
        child.join(120)
    assert [c.exitcode for c in children] == [0, 0]
    with RunStore(root) as store:
        _check_writers(store, ["p0", "p1", "parent"], 3, 15)


def test_concurrent_first_open_creates_one_schema(tmp_path):
    root = tmp_path / "lab"
    errors = []

    def opener():
        try:
            RunStore(root).close()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=opener) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with RunStore(root) as store:
        assert store.list() == []


# ----------------------------------------------------------------------------- damaged databases

def _filled_store(root) -> None:
    with RunStore(root) as store:
        for k in range(12):
            run_id = store.create(f"run {k}", "toy", MC, TC)
            store.checkpoint(run_id, snapshot(make_model(k), 5), history(400, offset=k))
    assert not (root / (DB_FILE + "-wal")).exists()  # the last close folded the log into the file


def test_garbage_database_gives_a_clear_message(tmp_path):
    root = tmp_path / "lab"
    root.mkdir()
    (root / DB_FILE).write_bytes(os.urandom(4096))
    with pytest.raises(StoreError) as info:
        RunStore(root)
    message = str(info.value)
    assert str(root / DB_FILE) in message and "not an SQLite database" in message
    assert "move it aside" in message and "SAE_LAB_DATA" in message


@pytest.mark.parametrize("keep", [0.5, 0.9, 50])
def test_truncated_database_gives_a_clear_message(tmp_path, keep):
    root = tmp_path / "lab"
    _filled_store(root)
    path = root / DB_FILE
    content = path.read_bytes()
    path.write_bytes(content[: int(len(content) * keep) if keep < 1 else keep])
    with pytest.raises(StoreError, match="truncated") as info:
        RunStore(root)
    assert str(path) in str(info.value) and "move it aside" in str(info.value)


def test_damaged_pages_give_a_clear_message(tmp_path):
    root = tmp_path / "lab"
    _filled_store(root)
    path = root / DB_FILE
    content = bytearray(path.read_bytes())
    content[4096:] = os.urandom(len(content) - 4096)  # every page but the first: same size, garbage
    path.write_bytes(bytes(content))
    with pytest.raises(StoreError, match="damaged") as info:
        with RunStore(root) as store:
            for record in store.list():
                store.history(record.id)
    assert str(path) in str(info.value)


def test_foreign_or_newer_database_is_refused(tmp_path):
    root = tmp_path / "foreign"
    root.mkdir()
    with sqlite3.connect(root / DB_FILE) as conn:
        conn.execute("CREATE TABLE people (name TEXT)")
    conn.close()
    with pytest.raises(StoreError, match="not a Sparse Autoencoder Lab run store"):
        RunStore(root)
    newer = tmp_path / "newer"
    RunStore(newer).close()
    with sqlite3.connect(newer / DB_FILE) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.close()
    with pytest.raises(StoreError, match="newer version"):
        RunStore(newer)


def test_data_directory_that_is_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="is a file"):
        RunStore(tmp_path / "file")


# ----------------------------------------------------------------------------- more of the API

def test_sweep_records(store):
    sweep_id = store.sweeps.create("grid", "digits", {"rhos": [0.01]}, (8, 8))
    run_id = store.create("cell", "digits", MC, TC, sweep_id=sweep_id)
    other = store.create("other", "digits", MC, TC)
    (record,) = store.sweeps.list()
    assert (record.id, record.status, record.spec, record.image_shape) == (sweep_id, "running", {"rhos": [0.01]},
                                                                          (8, 8))
    store.sweeps.update(sweep_id, "finished")
    assert store.sweeps.get(sweep_id).status == "finished"
    assert [r.id for r in store.list(sweep_id=sweep_id)] == [run_id]
    store.sweeps.delete(sweep_id)
    assert store.sweeps.list() == [] and run_id not in store and other in store
    with pytest.raises(RunNotFoundError):
        store.sweeps.get(sweep_id)
    with pytest.raises(StoreError, match="not a valid sweep id"):
        store.sweeps.get("../x")


def test_run_configs_are_read_once_and_checked(tmp_path):
    with RunStore(tmp_path) as first:
        run_id = first.create("configs", "digits", MC, TC)
        imported = first.add("imported", "toy", make_model())
        assert first.run_configs(run_id) == (MC, TC, "digits")
    with RunStore(tmp_path) as second:  # a fresh store reads them from the database
        assert second.run_configs(run_id) == (MC, TC, "digits")
        assert second.run_configs(imported) == (MC, None, "toy")
        with pytest.raises(RunNotFoundError):
            second.run_configs("0" * 32)
        with pytest.raises(StoreError, match="not a valid run id"):
            second.run_configs("../etc")
