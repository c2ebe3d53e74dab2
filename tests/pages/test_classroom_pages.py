"""The classroom in the pages (AppTest): a teacher starts a class, students join by its code, the teacher broadcasts
a run that students watch read-only on any page, students submit runs to the board, which ranks them; and one
student cannot remove another's submission."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from sae.app.broadcasts import ReadOnlyJob, broadcasts  # noqa: E402
from sae.runs.store import RunStore  # noqa: E402
from sae.training.status import RunStatus  # noqa: E402
from sae.ui.identity import ID_KEY, TOKEN_KEY  # noqa: E402
from conftest import wait_for  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
HOME = str(ROOT / "dashboard.py")
CLASSROOM = "pages/13_classroom.py"
SMALL = {"data": "digits", "hidden": "9", "epochs": "1000"}

pytestmark = pytest.mark.usefixtures("restore_process_state", "stop_live_jobs")


@pytest.fixture
def store(lab_data):
    with RunStore(lab_data) as s:
        yield s


def session(store: RunStore, user: str, page: str = CLASSROOM, params: dict | None = None) -> AppTest:
    at = AppTest.from_file(HOME, default_timeout=60)
    for k, v in {**SMALL, **(params or {})}.items():
        at.query_params[k] = v
    at.session_state[TOKEN_KEY] = store.signer.issue(user)
    at.session_state[ID_KEY] = f"browser-of-{user}-0000"
    at.switch_page(page)
    return at.run()


def ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def train(at: AppTest, steps: int) -> None:
    job = at.session_state["sae_job"]
    job.step(steps)
    assert wait_for(lambda: job.latest().step >= steps and job.status == RunStatus.PAUSED and job.run_id, 60)


def markdown(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown)


def test_a_class_from_start_to_board(store):
    teacher = session(store, "teacher")
    teacher.text_input(key="class_new_name").input("Week 3").run()
    teacher.button(key="class_start").click().run()
    ok(teacher)
    (record,) = store.classes.taught_by(store.signer.issue("teacher"))
    assert record.code in markdown(teacher)
    assert any(f"class={record.code}" in c.value for c in teacher.code)  # the join link

    students = {}
    for name in ("ann", "bob"):
        at = session(store, name, params={"class": record.code})  # opened by the join link
        assert at.text_input(key="class_join_code").value == record.code
        at.text_input(key="class_join_name").input(name.title()).run()
        at.button(key="class_join").click().run()
        ok(at)
        assert "Week 3" in markdown(at)
        students[name] = at
    assert [m.name for m in store.classes.members(record.code)] == ["Ann", "Bob"]

    # the teacher broadcasts a run; a student watches it, read-only, on another page
    teacher.switch_page("dashboard.py").run()
    train(teacher, 15)
    teacher.switch_page(CLASSROOM).run()
    teacher.button(key="class_broadcast").click().run()
    ok(teacher)
    ann = students["ann"]
    ann.run()
    ann.button(key="class_watch").click().run()
    ok(ann)
    ann.switch_page("pages/2_filters.py").run()
    ok(ann)
    watched = ann.session_state["sae_class_watched_job"]
    assert isinstance(watched, ReadOnlyJob) and watched.job is teacher.session_state["sae_job"]
    assert any("watching" in i.value for i in ann.info)
    assert not [b for b in ann.sidebar.button if b.key == "btn_train"]  # no controls on someone else's run
    train(teacher, 25)
    ann.run()
    assert ann.session_state["sae_class_watched_job"].latest().step >= 25  # the broadcast moves
    ann.button(key="class_back").click().run()
    ok(ann)
    assert "sae_class_watched_job" not in ann.session_state

    # both students train and submit; the board ranks them
    for name, at in students.items():
        at.switch_page("dashboard.py").run()
        train(at, 20 if name == "ann" else 60)
        at.switch_page(CLASSROOM).run()
        at.button(key="class_submit").click().run()
        ok(at)
        assert any("Submitted at step" in s.value for s in at.success)
    board = store.classes.board(record.code)
    assert sorted(r.name for r in board) == ["Ann", "Bob"] and [r.rank for r in board] == [1, 2]
    assert board[0].scores["reconstruction"] <= board[1].scores["reconstruction"]
    teacher.run()
    text = markdown(teacher)
    assert f"#1 {board[0].name}" in text and f"#2 {board[1].name}" in text

    # bob sees no Remove on ann's submission, and the store refuses him anyway
    bob = students["bob"]
    bob.run()
    ann_row = next(r for r in board if r.name == "Ann")
    assert not [b for b in bob.button if b.key == f"class_remove_{ann_row.run.id}"]
    from sae.runs.errors import PermissionDeniedError
    with pytest.raises(PermissionDeniedError):
        store.classes.withdraw(record.code, ann_row.run.id, actor=store.signer.issue("bob"))
    with pytest.raises(PermissionDeniedError):
        store.trash.put(ann_row.run.id, actor=store.signer.issue("bob"))
    # the teacher stops broadcasting: a watcher is put back on their own run
    ann.button(key="class_watch").click().run() if [b for b in ann.button if b.key == "class_watch"] else None
    teacher.button(key="class_stop_broadcast").click().run()
    ok(teacher)
    assert not broadcasts().live(record.code)
    ann.run()
    ok(ann)
    assert "sae_class_watched_job" not in ann.session_state


@pytest.mark.parametrize("code, message", [("ZZZZ99", "no open class with the code ZZZZ99"),
                                           ("NOPE", "'NOPE' is not a class code")])
def test_a_bad_code_says_so(store, code, message):
    at = session(store, "carol", params={"class": code})
    at.text_input(key="class_join_name").input("Carol").run()
    at.button(key="class_join").click().run()
    ok(at)
    assert any(message in e.value for e in at.error), [e.value for e in at.error]
    assert at.text_input(key="class_join_code").value == code  # still there to correct
