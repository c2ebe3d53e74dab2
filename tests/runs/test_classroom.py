"""Classes (sae.runs.classroom): codes, members, the broadcast, the board and who may do what; and the run store
keeping each run's timeline so it can be replayed (sae.runs.store.RunStore.timeline)."""

import numpy as np
import pytest

from sae.core.config import ModelConfig, TrainConfig
from sae.data import load_dataset
from sae.runs.classroom import CODE_LENGTH, ClassNotFoundError, normalize_code
from sae.runs.errors import ForgedIdentityError, PermissionDeniedError
from sae.runs.recorder import RunRecorder
from sae.runs.store import RunStore
from sae.training.trainer import Trainer

MC = ModelConfig(64, 9, decoder_activation="sigmoid")


@pytest.fixture
def store(tmp_path):
    with RunStore(tmp_path / "lab") as s:
        yield s


def trained_run(store, token, beta=3.0, steps=30):
    digits = load_dataset("digits")
    cfg = TrainConfig(optimizer="adam", lr=0.03, batch_size=64, epochs=5, beta=beta, rho=0.1, seed=1)
    t = Trainer(digits.X, MC, cfg, snapshot_interval=60.0)
    recorder = RunRecorder.create(store, f"run β {beta}", "digits", MC, cfg, owner=token)
    recorder.attach(t)
    t.add_observer(recorder)
    t.run(steps=steps)
    t.set_hyperparameters(beta=beta * 2)
    t.run(steps=5)
    recorder.checkpoint(t.latest())
    return recorder.run_id, t


def test_a_class_gets_a_readable_code_and_members_join_with_it(store):
    teacher, ann = store.signer.issue("teacher-1"), store.signer.issue("ann")
    cls = store.classes.start("Unsupervised learning, week 3", actor=teacher)
    assert len(cls.code) == CODE_LENGTH and cls.teacher == "teacher-1"
    assert normalize_code(cls.code.lower()[:3] + "-" + cls.code.lower()[3:]) == cls.code
    store.classes.join(cls.code.lower(), "Ann", actor=ann)
    store.classes.join(cls.code, "Ann B.", actor=ann)  # joining again renames
    assert [(m.user, m.name) for m in store.classes.members(cls.code)] == [("ann", "Ann B.")]
    assert [c.code for c in store.classes.joined_by(ann)] == [cls.code]
    assert [c.code for c in store.classes.taught_by(teacher)] == [cls.code]
    with pytest.raises(ClassNotFoundError):
        store.classes.join("ZZZZZZ", "x", actor=ann)
    with pytest.raises(ClassNotFoundError):
        store.classes.get("not a code")
    with pytest.raises(ForgedIdentityError):
        store.classes.join(cls.code, "Mallory", actor=ann[:-2] + "xx")


def test_only_the_classes_teacher_broadcasts_moderates_and_closes(store):
    teacher, ann = store.signer.issue("teacher-1"), store.signer.issue("ann")
    cls = store.classes.start("c", actor=teacher)
    store.classes.join(cls.code, "Ann", actor=ann)
    run_id = store.create("r", "digits", MC, TrainConfig(), owner=teacher)
    with pytest.raises(PermissionDeniedError):
        store.classes.broadcast(cls.code, run_id, actor=ann)
    store.classes.broadcast(cls.code, run_id, actor=teacher)
    assert store.classes.get(cls.code).broadcast == run_id
    with pytest.raises(PermissionDeniedError):
        store.classes.close(cls.code, actor=ann)
    store.classes.close(cls.code, actor=teacher)
    with pytest.raises(ClassNotFoundError):
        store.classes.get(cls.code)


def test_the_board_ranks_frozen_copies_and_students_cannot_submit_or_withdraw_others_runs(store):
    teacher, ann, bob = (store.signer.issue(u) for u in ("teacher-1", "ann", "bob"))
    moderator = store.signer.issue("someone", role="teacher")
    cls = store.classes.start("c", actor=teacher)
    ann_run, ann_trainer = trained_run(store, ann, beta=3.0)
    bob_run, _ = trained_run(store, bob, beta=0.3)
    with pytest.raises(PermissionDeniedError, match="join the class"):
        store.classes.submit(cls.code, ann_run, {"reconstruction": 1.0}, actor=ann)
    store.classes.join(cls.code, "Ann", actor=ann)
    store.classes.join(cls.code, "Bob", actor=bob)
    with pytest.raises(PermissionDeniedError, match="only submit your own runs"):
        store.classes.submit(cls.code, ann_run, {"reconstruction": 0.1}, actor=bob)
    ann_copy = store.classes.submit(cls.code, ann_run, {"reconstruction": 2.0, "dead_units": 0.0,
                                                        "probe_accuracy": 0.9}, actor=ann)
    bob_copy = store.classes.submit(cls.code, bob_run, {"reconstruction": 1.5, "dead_units": 3.0,
                                                        "probe_accuracy": 0.8}, actor=bob)
    assert ann_copy != ann_run and store.get(ann_copy).owned_by == "ann" and store.get(ann_copy).parent_id == ann_run
    board = store.classes.board(cls.code)
    assert [(r.rank, r.name) for r in board] == [(1, "Bob"), (2, "Ann")]
    assert [r.name for r in store.classes.board(cls.code, rank_by="probe_accuracy")] == ["Ann", "Bob"]
    assert [r.name for r in store.classes.board(cls.code, rank_by="dead_units")] == ["Ann", "Bob"]
    frozen = store.get(ann_copy).step
    ann_trainer.run(steps=5)  # training on does not change the submission
    assert store.get(ann_copy).step == frozen
    with pytest.raises(PermissionDeniedError):
        store.classes.withdraw(cls.code, ann_copy, actor=bob)
    with pytest.raises(PermissionDeniedError):
        store.trash.put(ann_copy, actor=bob)  # nor delete it through the store
    store.classes.withdraw(cls.code, bob_copy, actor=bob)
    store.classes.withdraw(cls.code, ann_copy, actor=moderator)
    assert store.classes.board(cls.code) == []


def test_a_deleted_submission_leaves_the_board(store):
    teacher, ann = store.signer.issue("t"), store.signer.issue("ann")
    cls = store.classes.start("c", actor=teacher)
    store.classes.join(cls.code, "Ann", actor=ann)
    run_id, _ = trained_run(store, ann)
    copy = store.classes.submit(cls.code, run_id, {"reconstruction": 1.0}, actor=ann)
    store.trash.put(copy, actor=ann)
    assert store.classes.board(cls.code) == []


def test_the_store_keeps_a_runs_timeline_and_it_replays_the_run(store):
    run_id, trainer = trained_run(store, None, beta=3.0, steps=20)
    view = store.timeline(run_id)
    assert view.start == trainer.timeline_view().start and view.start_step == 0
    assert [(e.kind, e.step, dict(e.changes)) for e in view.schedule()] == [("set", 20, {"beta": 6.0})]
    digits = load_dataset("digits")
    replay = Trainer(digits.X, MC, view.start, schedule=view.schedule(), snapshot_interval=60.0)
    replay.run(steps=25)
    for name, w in trainer.latest().weights.items():
        np.testing.assert_allclose(replay.latest().weights[name], w, rtol=1e-5, atol=1e-6)
    plain = store.create("no timeline", "digits", MC, TrainConfig())
    assert store.timeline(plain) is None
