"""sae.runs.trash: a delete that can be undone. A trashed run leaves list/get/len/in, keeps its row, history and
weights, comes back exactly on restore, and is purged (for good) after KEEP_SECONDS or beyond MAX_TRASHED;
an old (version 1) database file gets the trash when it is opened."""

from __future__ import annotations

import sqlite3
import time

import numpy as np
import pytest
import torch

from sae.runs import database
from sae.runs.store import DB_FILE, RunNotFoundError, RunStore, StoreError
from sae.runs.trash import KEEP_SECONDS
from sae.training.status import RunStatus

from conftest import MC, TC, history, make_model, old_database, snapshot


def recorded(store: RunStore, name: str, seed: int = 0) -> str:
    run_id = store.create(name, "toy", MC, TC)
    store.finish(run_id, snapshot(make_model(seed), 8, RunStatus.FINISHED), history(9), {"reconstruction": 0.3})
    return run_id


def test_trash_hides_a_run_and_restore_brings_it_back_exactly(store):
    keep, doomed = recorded(store, "keep"), recorded(store, "doomed", seed=1)
    before, weights = store.get(doomed), store.load_model(doomed).state_dict()
    trashed = store.trash.put(doomed)
    assert trashed.id == doomed and trashed.deleted is not None and trashed.name == "doomed"
    assert [r.id for r in store.list()] == [keep] and len(store) == 1 and doomed not in store
    with pytest.raises(RunNotFoundError):
        store.get(doomed)
    assert [r.id for r in store.trash.list()] == [doomed] and len(store.trash) == 1 and doomed in store.trash
    assert store.weights_path(doomed).is_file(), "the weights stay until the run is purged"
    restored = store.trash.restore(doomed)
    assert restored == before and store.get(doomed) == before, "name, times, metrics: exactly as it was"
    assert len(store) == 2 and len(store.trash) == 0 and doomed not in store.trash
    np.testing.assert_array_equal(store.history(doomed)["total"], history(9)["total"])
    for key, value in store.load_model(doomed).state_dict().items():
        assert torch.equal(value, weights[key])


def test_trash_refuses_what_it_cannot_do(store):
    run_id = recorded(store, "once")
    with pytest.raises(RunNotFoundError, match="not in the trash"):
        store.trash.restore(run_id)  # listed, not trashed
    store.trash.put(run_id)
    with pytest.raises(RunNotFoundError):
        store.trash.put(run_id)  # a second delete of the same run does nothing
    with pytest.raises(StoreError, match="not a valid run id"):
        store.trash.put("../x")
    assert "../x" not in store.trash and len(store.trash) == 1
    store.delete(run_id)  # a trashed run can be deleted for good
    assert len(store.trash) == 0 and not store.weights_path(run_id).exists()
    with pytest.raises(RunNotFoundError):
        store.trash.restore(run_id)


def test_a_trashed_run_that_still_trains_keeps_being_recorded(store):
    run_id = store.create("training", "toy", MC, TC)
    store.checkpoint(run_id, snapshot(make_model(), 3), history(4))
    store.trash.put(run_id)
    store.checkpoint(run_id, snapshot(make_model(), 9), history(10))
    assert store.trash.restore(run_id).step == 9


def test_purge_after_a_while_or_beyond_the_limit(store):
    old, recent = recorded(store, "old"), recorded(store, "recent", seed=1)
    store.trash.put(old)
    store.trash.put(recent)
    assert store.trash.purge() == [], "nothing is old yet"
    later = time.time() + KEEP_SECONDS + 60
    assert sorted(store.trash.purge(now=later)) == sorted([old, recent])
    assert len(store.trash) == 0 and list(store.weights_dir.iterdir()) == []
    with sqlite3.connect(store.db_path) as conn:
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM histories").fetchone()[0] == 0
    conn.close()
    store.trash.max_trashed = 2
    ids = [recorded(store, f"run {k}", seed=k) for k in range(3)]
    for run_id in ids:
        store.trash.put(run_id)  # the third put purges the oldest delete
    assert {r.id for r in store.trash.list()} == set(ids[1:]) and not store.weights_path(ids[0]).exists()


def test_opening_a_store_purges_old_trash(tmp_path):
    with RunStore(tmp_path) as store:
        old, kept = recorded(store, "old"), recorded(store, "kept", seed=1)
        store.trash.put(old)
        store.trash.put(kept)
    with sqlite3.connect(tmp_path / DB_FILE) as conn:
        conn.execute("UPDATE runs SET deleted = ? WHERE id = ?", (time.time() - KEEP_SECONDS - 1, old))
    conn.close()
    with RunStore(tmp_path) as store:
        assert [r.id for r in store.trash.list()] == [kept]
        assert not store.weights_path(old).exists() and store.weights_path(kept).exists()


def test_a_version_1_database_gets_the_trash_when_opened(tmp_path):
    """A file as the first Lab wrote it (schema 1, no ``deleted`` column), with one run in it."""
    root = tmp_path / "old-lab"
    conn = old_database(root, 1, run="from v1")
    conn.commit()
    conn.close()
    with RunStore(root) as store:
        (record,) = store.list()
        assert (record.id, record.name, record.status, record.deleted) == ("a" * 32, "from v1", "finished", None)
        store.trash.put(record.id)
        assert store.list() == [] and [r.id for r in store.trash.list()] == ["a" * 32]
        store.trash.restore(record.id)
    conn = sqlite3.connect(root / DB_FILE)
    assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(database.SCHEMA_VERSION)
    assert "deleted" in [row[1] for row in conn.execute("PRAGMA table_info(runs)")]
    conn.close()
    with RunStore(root) as again:  # opening a migrated file again changes nothing
        assert [r.name for r in again.list()] == ["from v1"]


def test_a_new_database_has_the_same_schema_as_a_migrated_one(tmp_path):
    RunStore(tmp_path / "new").close()
    old = tmp_path / "old"
    conn = old_database(old, 1)
    conn.commit()
    conn.close()
    RunStore(old).close()

    def schema(path):
        with sqlite3.connect(path / DB_FILE) as c:
            rows = c.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
        c.close()
        return rows

    assert schema(tmp_path / "new") == schema(old)


def test_deleting_a_sweep_deletes_its_trashed_cells_too(store):
    sweep_id = store.sweeps.create("grid", "toy", {"rhos": [0.1]})
    cell = store.create("cell", "toy", MC, TC, sweep_id=sweep_id)
    store.trash.put(cell)
    store.sweeps.delete(sweep_id)
    assert len(store.trash) == 0
