"""sae.runs.owners and the run store's rule: a run belongs to whoever made it.

- Tokens: a round trip; anything the key did not sign is refused (a changed user, a changed role, another key,
  garbage); the key file is made once (0600), shared by every store on the directory, and a damaged one refused.
- The store: a second identity cannot rename, delete, trash, restore (or delete the sweep of) another's run; the
  owner can; a teacher can; ``actor=None`` (the local user) keeps today's behaviour; a forged token is refused by
  every call that takes one; a copy is the copier's, with the original's record, history and weights.
- An old (version 2) database gets the owner columns when opened; its runs have no owner.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import stat
import threading

import numpy as np
import pytest
import torch

from sae import ModelConfig, TrainConfig
from sae.data import load_dataset
from sae.runs.owners import (KEY_BYTES, KEY_FILE, ForgedIdentityError, Identity, PermissionDeniedError, Signer,
                             may_change, new_user, owner_label)
from sae.runs.recorder import RunRecorder
from sae.runs.store import DB_FILE, RunNotFoundError, RunStore, StoreError
from sae.runs.database import SCHEMA_VERSION
from sae.runs.sweep import Sweep
from sae.runs.sweep_spec import SweepSpec
from sae.runs.table import run_table
from sae.training.status import RunStatus

from conftest import MC, TC, history, make_model, old_database, snapshot, wait_for


@pytest.fixture
def tokens(store):
    """alice's and bob's student tokens, and a teacher's, issued by the store's own signer."""
    s = store.signer
    return {"alice": s.issue("alice"), "bob": s.issue("bob"), "teacher": s.issue("tess", "teacher")}


def recorded(store: RunStore, name: str, owner: str | None = None, seed: int = 0) -> str:
    run_id = store.create(name, "toy", MC, TC, owner=owner)
    store.finish(run_id, snapshot(make_model(seed), 8, RunStatus.FINISHED), history(9), {"reconstruction": 0.3})
    return run_id


def forge(token: str, **changes: str) -> str:
    """``token`` with its payload's fields changed and its signature kept (what a user editing localStorage makes)."""
    version, payload, signature = token.split(".")
    fields = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    fields.update(changes)
    encoded = base64.urlsafe_b64encode(json.dumps(fields, separators=(",", ":")).encode()).rstrip(b"=").decode()
    return f"{version}.{encoded}.{signature}"


# ----------------------------------------------------------------------------- tokens

def test_a_token_round_trips_to_its_identity():
    signer = Signer(os.urandom(32))
    assert signer.verify(signer.issue("alice")) == Identity("alice", "student")
    assert signer.verify(signer.issue("tess", "teacher")) == Identity("tess", "teacher")
    assert signer.verify(signer.issue("ünï cödé@example.com")).user == "ünï cödé@example.com"
    assert signer.identity(None) is None, "None is the library's local user"
    assert new_user() != new_user() and new_user().startswith("browser-")
    assert "key" not in repr(signer).replace("<key>", ""), "the key never shows"


def test_anything_the_key_did_not_sign_is_refused():
    signer, other = Signer(os.urandom(32)), Signer(os.urandom(32))
    alice = signer.issue("alice")
    forged = [forge(alice, u="bob"),  # another user, the signature kept
              forge(alice, r="teacher"),  # a promotion
              other.issue("alice"),  # the same identity under another store's key
              alice[:-2] + ("AA" if not alice.endswith("AA") else "BB"),  # a changed signature
              alice + ".x", "v2" + alice[2:], "", "garbage", "a.b.c", "v1..", "v1.é.x", "x" * 5000, None, 42,
              ["v1", "a", "b"]]
    for token in forged:
        with pytest.raises(ForgedIdentityError, match="not issued by this server"):
            signer.verify(token)
    assert signer.verify(alice) == Identity("alice")


def test_users_and_roles_are_checked_when_issued():
    signer = Signer(os.urandom(32))
    for user in ("", "two\nlines", "x" * 201, None):
        with pytest.raises(StoreError, match="user name"):
            signer.issue(user)
    with pytest.raises(StoreError, match="unknown role"):
        signer.issue("alice", "admin")
    with pytest.raises(StoreError, match="at least 16 bytes"):
        Signer(b"short")


def test_the_key_file_is_made_once_private_and_shared(tmp_path):
    root = tmp_path / "lab"
    with RunStore(root) as one:
        token = one.signer.issue("alice")
    path = root / KEY_FILE
    assert path.stat().st_size == KEY_BYTES and stat.S_IMODE(path.stat().st_mode) == 0o600
    with RunStore(root) as two:  # another process on the same store: the same key
        assert two.identity(token) == Identity("alice")
    with RunStore(tmp_path / "elsewhere") as foreign:
        with pytest.raises(ForgedIdentityError):
            foreign.identity(token)
    explicit = os.urandom(32)
    with RunStore(tmp_path / "explicit", identity_key=explicit) as given:
        assert Signer(explicit).verify(given.signer.issue("carol")) == Identity("carol")
        assert not (tmp_path / "explicit" / KEY_FILE).exists(), "a key passed in is not written anywhere"


def test_stores_opened_at_once_make_one_key(tmp_path):
    root = tmp_path / "lab"
    RunStore(root).close()
    signers: list[Signer] = []
    threads = [threading.Thread(target=lambda: signers.append(Signer.for_directory(root))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    token = signers[0].issue("alice")
    assert all(s.verify(token) == Identity("alice") for s in signers)
    assert [p.name for p in root.iterdir() if p.name.endswith(".tmp")] == [], "no temporary key left behind"


def test_a_damaged_key_file_is_refused(tmp_path):
    root = tmp_path / "lab"
    root.mkdir()
    (root / KEY_FILE).write_bytes(b"too short")
    with RunStore(root) as store:
        store.create("local", "toy", MC, TC)  # the local user needs no key
        with pytest.raises(StoreError, match="identity key .* is damaged"):
            store.identity("v1.x.y")  # any token: the key is needed to check it


# ----------------------------------------------------------------------------- the rule, in the store

def test_a_second_identity_cannot_rename_delete_trash_or_restore(store, tokens):
    run_id = recorded(store, "alice's", owner=tokens["alice"])
    before = store.get(run_id)
    assert before.owned_by == "alice"
    assert store.can_change(run_id, tokens["alice"]) and not store.can_change(run_id, tokens["bob"])
    for call in (lambda: store.rename(run_id, "bob was here", actor=tokens["bob"]),
                 lambda: store.trash.put(run_id, actor=tokens["bob"]),
                 lambda: store.delete(run_id, actor=tokens["bob"])):
        with pytest.raises(PermissionDeniedError, match="belongs to someone else: you can copy it and continue"):
            call()
    assert store.get(run_id) == before and store.weights_path(run_id).exists(), "nothing changed"
    store.trash.put(run_id, actor=tokens["alice"])
    with pytest.raises(PermissionDeniedError):
        store.trash.restore(run_id, actor=tokens["bob"])
    with pytest.raises(PermissionDeniedError):
        store.delete(run_id, actor=tokens["bob"])  # nor purge it from the trash
    assert run_id in store.trash


def test_the_owner_may_change_their_run(store, tokens):
    run_id = recorded(store, "mine", owner=tokens["alice"])
    store.rename(run_id, "still mine", actor=tokens["alice"])
    assert store.get(run_id).name == "still mine"
    store.trash.put(run_id, actor=tokens["alice"])
    assert run_id not in store and run_id in store.trash
    assert store.trash.restore(run_id, actor=tokens["alice"]).name == "still mine"
    store.delete(run_id, actor=tokens["alice"])
    assert run_id not in store and run_id not in store.trash and not store.weights_path(run_id).exists()


def test_a_teacher_may_change_any_run(store, tokens):
    theirs, nobodys = recorded(store, "alice's", owner=tokens["alice"]), recorded(store, "from python")
    for run_id in (theirs, nobodys):
        assert store.can_change(run_id, tokens["teacher"])
        store.rename(run_id, "moderated", actor=tokens["teacher"])
        store.trash.put(run_id, actor=tokens["teacher"])
        store.trash.restore(run_id, actor=tokens["teacher"])
        store.delete(run_id, actor=tokens["teacher"])
    assert len(store) == 0


def test_a_run_without_owner_is_the_local_users_and_a_teachers(store, tokens):
    run_id = recorded(store, "from python")
    assert store.get(run_id).owned_by is None
    assert not store.can_change(run_id, tokens["alice"])
    with pytest.raises(PermissionDeniedError, match="has no owner .* only a teacher can change it"):
        store.rename(run_id, "mine now", actor=tokens["alice"])
    assert store.can_change(run_id, None)


def test_actor_none_keeps_todays_behaviour(store, tokens):
    """The library's local user (a notebook, the CLI) renames, trashes, restores and deletes anyone's runs."""
    runs = [recorded(store, "alice's", owner=tokens["alice"]), recorded(store, "nobody's")]
    for run_id in runs:
        assert store.can_change(run_id, None)
        store.rename(run_id, "renamed")
        store.trash.put(run_id)
        store.trash.restore(run_id)
        store.delete(run_id)
    assert len(store) == 0


def test_a_forged_token_is_refused_by_every_call_that_takes_one(store, tokens):
    run_id = recorded(store, "alice's", owner=tokens["alice"])
    before = store.get(run_id)
    promoted, impersonated = forge(tokens["bob"], r="teacher"), forge(tokens["bob"], u="alice")
    foreign = Signer(os.urandom(32)).issue("alice", "teacher")
    calls = (lambda t: store.rename(run_id, "x", actor=t), lambda t: store.delete(run_id, actor=t),
             lambda t: store.trash.put(run_id, actor=t), lambda t: store.can_change(run_id, t),
             lambda t: store.create("x", "toy", MC, TC, owner=t), lambda t: store.copy(run_id, owner=t),
             lambda t: store.sweeps.create("x", "toy", {}, owner=t))
    for token in (promoted, impersonated, foreign, "garbage"):
        for call in calls:
            with pytest.raises(ForgedIdentityError):
                call(token)
    assert store.get(run_id) == before and len(store) == 1 and store.sweeps.list() == []


def test_a_refused_change_leaves_nothing_half_done(store, tokens):
    """The check and the change are one transaction: after a refusal the next allowed call works."""
    run_id = recorded(store, "alice's", owner=tokens["alice"])
    with pytest.raises(PermissionDeniedError):
        store.trash.put(run_id, actor=tokens["bob"])
    assert store.get(run_id).deleted is None and len(store.trash) == 0
    store.trash.put(run_id, actor=tokens["alice"])
    assert len(store.trash) == 1


def test_writing_the_runs_own_checkpoints_is_not_a_users_change(store, tokens):
    """The recorder that created a run keeps checkpointing it, whoever renames it meanwhile (its teacher)."""
    recorder = RunRecorder.create(store, "alice's live run", "toy", MC, TC, owner=tokens["alice"], interval=0.0)
    store.rename(recorder.run_id, "moderated", actor=tokens["teacher"])
    recorder.checkpoint(snapshot(make_model(), 3, RunStatus.RUNNING))
    recorder.finish(snapshot(make_model(), 5, RunStatus.FINISHED))
    record = store.get(recorder.run_id)
    assert recorder.error is None and record.step == 5 and record.owned_by == "alice" and record.name == "moderated"


# ----------------------------------------------------------------------------- copies

def test_a_copy_belongs_to_the_copier_and_holds_the_original(store, tokens):
    original = recorded(store, "alice's", owner=tokens["alice"], seed=3)
    before = store.get(original)
    copy_id = store.copy(original, owner=tokens["bob"])
    copy = store.get(copy_id)
    assert copy.owned_by == "bob" and copy.parent_id == original and copy.name == "alice's (copy)"
    assert (copy.status, copy.step, copy.reconstruction, copy.model_config, copy.train_config, copy.has_weights) == \
        (before.status, before.step, before.reconstruction, before.model_config, before.train_config, True)
    for key, values in store.history(original).items():
        np.testing.assert_array_equal(store.history(copy_id)[key], values)
    np.testing.assert_array_equal(store.rho_hat(copy_id), store.rho_hat(original))
    copied, weights = store.load_model(copy_id).state_dict(), store.load_model(original).state_dict()
    assert all(torch.equal(copied[k], weights[k]) for k in weights)
    store.rename(copy_id, "bob's now", actor=tokens["bob"])  # the copier may change the copy...
    store.trash.put(copy_id, actor=tokens["bob"])
    assert store.get(original) == before, "...and the original is untouched"
    store.delete(original, actor=tokens["alice"])
    assert store.trash.restore(copy_id, actor=tokens["bob"]).name == "bob's now", "the copy outlives the original"
    assert store.load_model(copy_id) is not None


def test_a_copy_of_a_live_run_is_stopped_at_its_checkpoint_and_may_be_renamed(store, tokens):
    live = store.create("training", "toy", MC, TC, owner=tokens["alice"])
    store.checkpoint(live, snapshot(make_model(), 4, RunStatus.RUNNING), history(5))
    copy_id = store.copy(live, "my copy", owner=tokens["bob"])
    copy = store.get(copy_id)
    assert (copy.name, copy.status, copy.step) == ("my copy", RunStatus.STOPPED, 4) and "copied while" in copy.reason
    assert store.copy(live) and store.get(store.list(search="(copy)")[0].id).owned_by is None, "owner None: nobody's"
    never = store.create("no weights", "toy", MC, TC)
    assert not store.get(store.copy(never, owner=tokens["bob"])).has_weights
    store.trash.put(live)
    with pytest.raises(RunNotFoundError):
        store.copy(live, owner=tokens["bob"])  # a trashed run is not listed, so not copied


# ----------------------------------------------------------------------------- sweeps

def test_a_sweep_and_its_runs_are_deleted_only_by_their_owner_or_a_teacher(store, tokens):
    sweep_id = store.sweeps.create("grid", "toy", {"rhos": [0.1]}, owner=tokens["alice"])
    cells = [store.create(f"cell {k}", "toy", MC, TC, sweep_id=sweep_id, owner=tokens["alice"]) for k in range(2)]
    store.trash.put(cells[1], actor=tokens["alice"])
    assert store.sweeps.get(sweep_id).owned_by == "alice"
    assert store.sweeps.can_change(sweep_id, tokens["alice"]) and not store.sweeps.can_change(sweep_id, tokens["bob"])
    with pytest.raises(PermissionDeniedError, match="this sweep belongs to someone else"):
        store.sweeps.delete(sweep_id, actor=tokens["bob"])
    assert cells[0] in store and cells[1] in store.trash and store.sweeps.get(sweep_id), "nothing was deleted"
    store.sweeps.delete(sweep_id, actor=tokens["teacher"])
    assert len(store) == 0 and len(store.trash) == 0 and store.sweeps.list() == []


def test_a_sweep_holding_someone_elses_run_is_not_deleted(store, tokens):
    sweep_id = store.sweeps.create("grid", "toy", {}, owner=tokens["alice"])
    store.create("bob's cell", "toy", MC, TC, sweep_id=sweep_id, owner=tokens["bob"])
    with pytest.raises(PermissionDeniedError):
        store.sweeps.delete(sweep_id, actor=tokens["alice"])
    assert len(store) == 1 and len(store.sweeps.list()) == 1


def test_only_the_owner_or_a_teacher_cancels_a_running_sweep(store, tokens, in_threads):
    spec = SweepSpec(rhos=(0.1,), betas=(3.0,), model_config=ModelConfig(64, 4),
                     train_config=TrainConfig(epochs=100_000.0), dataset="digits")
    sweep = Sweep(spec, store, load_dataset("digits"), parallel=1, probe=False, interval=0.05,
                  owner=tokens["alice"]).start()
    try:
        assert wait_for(lambda: sweep.progress().running == 1)
        (cell,) = store.list(sweep_id=sweep.id)
        assert cell.owned_by == "alice" and store.sweeps.get(sweep.id).owned_by == "alice", "the cells are hers"
        with pytest.raises(PermissionDeniedError):
            sweep.cancel(actor=tokens["bob"])
        assert not sweep.cancelled and sweep.progress().running == 1
        sweep.cancel(timeout=20, actor=tokens["teacher"])
        assert sweep.done and sweep.cancelled
    finally:
        sweep.cancel(timeout=20)


# ----------------------------------------------------------------------------- the run table, the rule itself

def test_the_rule_and_how_an_owner_reads(store, tokens):
    alice, teacher = Identity("alice"), Identity("tess", "teacher")
    assert may_change("alice", alice) and not may_change("bob", alice) and not may_change(None, alice)
    assert may_change("bob", teacher) and may_change(None, teacher) and may_change("bob", None)
    assert [owner_label(o, alice) for o in ("alice", "bob", None)] == ["you", "someone else", "nobody"]
    assert [owner_label(o, teacher) for o in ("alice", None)] == ["alice", "nobody"], "a teacher sees who"
    recorded(store, "a", owner=tokens["alice"])
    recorded(store, "b", owner=tokens["bob"])
    table = run_table(store.list(order_by="name", descending=False), alice)
    assert table["owner"].tolist() == ["you", "someone else"]


# ----------------------------------------------------------------------------- an old database

def test_a_version_2_database_gets_owners_when_opened(tmp_path):
    """A file as the Lab wrote it before owners (schema 2: the trash, no owned_by), with a run and a sweep."""
    root = tmp_path / "old-lab"
    conn = old_database(root, 2, run="from v2")
    with conn:
        conn.execute("INSERT INTO sweeps (id, name, dataset, created, updated, status, spec) "
                     "VALUES (?, 'old grid', 'toy', 1.0, 2.0, 'finished', '{}')", ("b" * 32,))
    conn.close()
    with RunStore(root) as store:
        (record,) = store.list()
        assert (record.id, record.name, record.owned_by) == ("a" * 32, "from v2", None)
        assert store.sweeps.get("b" * 32).owned_by is None
        student = store.signer.issue("alice")
        assert not store.can_change(record.id, student), "an old run has no owner: a student may only copy it"
        assert store.get(store.copy(record.id, owner=student)).owned_by == "alice"
        store.rename(record.id, "renamed by the local user")
    conn = sqlite3.connect(root / DB_FILE)
    assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    assert "owned_by" in [row[1] for row in conn.execute("PRAGMA table_info(runs)")]
    assert "owned_by" in [row[1] for row in conn.execute("PRAGMA table_info(sweeps)")]
    conn.close()
    with RunStore(root) as again:  # opening a migrated file again changes nothing
        assert sorted(r.name for r in again.list()) == ["from v2 (copy)", "renamed by the local user"]
