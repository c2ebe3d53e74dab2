"""Who may do what, in the pages (AppTest), each test with its own run store.

- Runs page: another identity's run offers no rename and no delete, says why, and offers a copy, which is the
  session's own; when the session's identity changes under a page already drawn, the store refuses and the page
  says so; a teacher key (``[classroom]`` in the secrets) makes a moderator, a wrong one does not; without the
  secret nobody is a teacher.
- Identities: a forged token held by a session is refused with a notice and replaced, never used; what a browser
  reports is adopted only when the store issued it (``sae.ui.identity.adopt``); an OIDC login (``st.user``) is the
  identity when there is one, and only then.
- Sweep page: someone else's sweep cannot be deleted or cancelled from the page.

Sessions here have no browser: the tests set ``TOKEN_KEY`` as a browser's report would.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from sae.core.model import SparseAutoencoder  # noqa: E402
from sae.core.config import ModelConfig, TrainConfig  # noqa: E402
from sae.runs.owners import Signer  # noqa: E402
from sae.runs.store import RunStore  # noqa: E402
from sae.runs.sweep_spec import SweepSpec  # noqa: E402
from sae.ui import identity  # noqa: E402
from sae.ui.identity import REFUSED_KEY, TOKEN_KEY  # noqa: E402
from conftest import wait_for  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
HOME = str(ROOT / "dashboard.py")
RUNS, SWEEP = "pages/10_runs.py", "pages/11_sweep.py"
SMALL = {"data": "digits", "hidden": "9", "epochs": "4"}
TEACHER = {"classroom": {"teacher_key": "correct horse battery staple"}}
TEACHER_SUBMIT = "FormSubmitter:teacher_form-Take the teacher role"

pytestmark = pytest.mark.usefixtures("restore_process_state", "stop_live_jobs")  # tests/conftest.py


@pytest.fixture
def store(lab_data):
    """The store the dashboard records into (conftest points SAE_LAB_DATA at a fresh directory per test)."""
    with RunStore(lab_data) as s:
        yield s


@pytest.fixture
def tokens(store):
    return {"alice": store.signer.issue("alice"), "bob": store.signer.issue("bob")}


def quick_run(store: RunStore, name: str, owner: str | None) -> str:
    return store.add(name, "digits", SparseAutoencoder(64, 9), TrainConfig(), owner=owner)


def session(page: str = RUNS, token: str | None = None, secrets: dict | None = None,
            user: dict | None = None) -> AppTest:
    """A dashboard session on ``page``; ``token``: its identity as the browser reported it; ``secrets``: the
    server's secrets.toml; ``user``: what ``st.user`` holds (AppTest's default has no login)."""
    at = AppTest.from_file(HOME, default_timeout=60)
    for k, v in SMALL.items():
        at.query_params[k] = v
    if token is not None:
        at.session_state[TOKEN_KEY] = token
    if secrets:
        at.secrets.update(secrets)
    if user is not None:
        at.user = user
    at.run()
    if page != HOME:
        at.switch_page(page).run()
    no_exception(at)
    return at


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def open_run(at: AppTest, run_id: str) -> None:
    at.radio(key="runs_view").set_value("One run").run()
    box = next(w for w in at.selectbox if str(w.key).startswith("runs_open_"))
    box.set_value(run_id).run()
    no_exception(at)


def offers_changes(at: AppTest, run_id: str) -> bool:
    """Whether the page offers to rename or delete the run (its name box, its delete confirmation)."""
    names = [w for w in at.text_input if w.key == f"runs_name_{run_id}"]
    deletes = [b for b in at.button if b.key == f"runs_delete_{run_id}"]
    assert bool(names) == bool(deletes), "rename and delete come together"
    return bool(names)


def captions(at: AppTest) -> str:
    return " | ".join(c.value for c in at.caption)


def me(store: RunStore, at: AppTest):
    return store.identity(at.session_state[TOKEN_KEY])


# ----------------------------------------------------------------------------- the Runs page

def test_another_identitys_run_offers_no_rename_or_delete_but_a_copy(store, tokens):
    theirs = quick_run(store, "bob's run", tokens["bob"])
    mine = quick_run(store, "alice's run", tokens["alice"])
    at = session(token=tokens["alice"])
    owners = dict(zip(at.dataframe[0].value["name"], at.dataframe[0].value["owner"]))
    assert owners == {"bob's run": "someone else", "alice's run": "you"}, "a student does not see who"
    open_run(at, mine)
    assert offers_changes(at, mine)
    open_run(at, theirs)
    assert not offers_changes(at, theirs), "no rename, no delete for someone else's run"
    assert "this run belongs to someone else: you can copy it and continue the copy" in captions(at).lower()
    assert "owner: someone else" in captions(at)
    assert not at.button(key="runs_load").disabled, "anyone may load it (a continuation is their own run)"
    at.button(key="runs_copy").click().run()
    no_exception(at)
    assert not at.error, [e.value for e in at.error]
    (copy,) = [r for r in store.list() if r.id not in (theirs, mine)]
    assert copy.owned_by == "alice" and copy.parent_id == theirs and copy.name == "bob's run (copy)"
    assert at.session_state["runs_open"] == copy.id and any("This is your copy" in s.value for s in at.success)
    assert offers_changes(at, copy.id), "the copy is hers to rename and delete"
    at.text_input(key=f"runs_name_{copy.id}").set_value("alice's copy")
    at.button(key=f"FormSubmitter:runs_rename_form_{copy.id}-Rename").click().run()
    assert store.get(copy.id).name == "alice's copy" and store.get(theirs).name == "bob's run"


def test_the_page_refuses_what_the_store_refuses(store, tokens):
    """Widgets drawn for alice, clicked by a session that is bob by then: the store decides, not the page."""
    run_id = quick_run(store, "alice's run", tokens["alice"])
    at = session(token=tokens["alice"])
    open_run(at, run_id)
    at.text_input(key=f"runs_name_{run_id}").set_value("bob was here")
    at.session_state[TOKEN_KEY] = tokens["bob"]
    at.button(key=f"FormSubmitter:runs_rename_form_{run_id}-Rename").click().run()
    no_exception(at)
    assert any("Cannot rename: this run belongs to someone else" in e.value for e in at.error)
    assert store.get(run_id).name == "alice's run"
    assert not offers_changes(at, run_id), "bob is not offered alice's run"
    at.session_state[TOKEN_KEY] = tokens["alice"]
    at.run()
    (confirm,) = [b for b in at.button if b.key == f"runs_delete_{run_id}"]
    at.session_state[TOKEN_KEY] = tokens["bob"]
    confirm.click().run()
    no_exception(at)
    assert any("Cannot delete: this run belongs to someone else" in e.value for e in at.error)
    assert run_id in store and len(store.trash) == 0


def test_a_run_without_owner_is_only_copied_by_a_student(store, tokens):
    run_id = store.add("from python", "digits", SparseAutoencoder(64, 9), TrainConfig())
    at = session(token=tokens["alice"])
    open_run(at, run_id)
    assert not offers_changes(at, run_id)
    assert "has no owner" in captions(at) and "only a teacher can change it" in captions(at)


def test_a_teacher_key_makes_a_moderator_and_a_wrong_one_does_not(store, tokens):
    theirs = quick_run(store, "bob's run", tokens["bob"])
    at = session(token=tokens["alice"], secrets=TEACHER)
    open_run(at, theirs)
    assert not offers_changes(at, theirs)
    at.sidebar.text_input(key="teacher_key_input").set_value("guess")
    at.sidebar.button(key=TEACHER_SUBMIT).click().run()
    no_exception(at)
    assert any("not the teacher key" in e.value for e in at.sidebar.error)
    assert not offers_changes(at, theirs) and me(store, at).role == "student"
    at.sidebar.text_input(key="teacher_key_input").set_value(TEACHER["classroom"]["teacher_key"])
    at.sidebar.button(key=TEACHER_SUBMIT).click().run()
    no_exception(at)
    assert offers_changes(at, theirs), "the teacher may rename and delete anyone's run"
    assert "As the teacher you may rename or delete this run of bob" in captions(at)
    assert at.dataframe[0].value["owner"].tolist() == ["bob"], "a teacher sees whose run it is"
    assert me(store, at).role == "student", "the browser keeps a student's token: the role is this session's"
    at.button(key=f"runs_delete_{theirs}").click().run()
    no_exception(at)
    assert theirs not in store and theirs in store.trash, "moderated: in the trash"
    assert any("You are the teacher in this tab" in c.value for c in at.sidebar.caption)
    at.sidebar.button(key="teacher_leave").click().run()
    at.button(key="runs_undo").click().run()  # a student again: bob's run is not hers to restore
    assert any("Cannot undo: this run belongs to someone else" in e.value for e in at.error)
    assert theirs in store.trash


def test_without_the_secret_nobody_is_a_teacher(store, tokens):
    at = session(token=tokens["alice"])
    assert any("No teacher key is set on this server" in c.value for c in at.sidebar.caption)
    assert not [w for w in at.sidebar.text_input if w.key == "teacher_key_input"]


# ----------------------------------------------------------------------------- identities

def test_a_forged_identity_is_refused_and_never_used(store, tokens):
    """A session holding a token the store did not sign (a browser that edited its localStorage, or a store whose
    key was replaced) gets a notice and a fresh identity; the forged one changes nothing."""
    run_id = quick_run(store, "bob's run", tokens["bob"])
    signature = tokens["alice"].split(".")[2]
    stolen_signature = f"{tokens['bob'].split('.')[0]}.{tokens['bob'].split('.')[1]}.{signature}"
    for forged in (stolen_signature, Signer(b"k" * 32).issue("bob", "teacher"), "garbage"):
        at = session(HOME, token=forged)
        assert any("saved identity was refused" in w.value for w in at.warning), "a visible notice"
        fresh = at.session_state[TOKEN_KEY]
        assert fresh != forged and me(store, at).user not in ("alice", "bob"), "a fresh identity, not the forged one"
        at.switch_page(RUNS).run()
        open_run(at, run_id)
        assert not offers_changes(at, run_id)
        assert not any("refused" in w.value for w in at.warning), "the notice shows once"


def test_a_browsers_report_is_adopted_only_when_the_store_issued_it(store, tokens):
    signer = store.signer
    state: dict = {}
    identity.adopt(None, state, signer)  # a browser without a token: the session's identity goes to it
    first = state[TOKEN_KEY]
    assert signer.verify(first).user.startswith("browser-") and REFUSED_KEY not in state
    identity.adopt("", state, signer)
    assert state[TOKEN_KEY] == first, "a browser that has not stored it yet keeps the same identity"
    identity.adopt(tokens["alice"], state, signer)
    assert state[TOKEN_KEY] == tokens["alice"], "a token the store issued: this browser's identity again"
    identity.adopt(signer.issue("alice", "teacher"), state, signer)
    assert signer.verify(state[TOKEN_KEY]).role == "student", "the role comes from the teacher key, per session"
    for forged in (Signer(b"k" * 32).issue("alice"), "v1.e30.AAAA", 42):
        identity.adopt(forged, state, signer)
        assert state.pop(REFUSED_KEY) is True and state[TOKEN_KEY] != forged
        assert signer.verify(state[TOKEN_KEY]).user not in ("alice", "bob")


def test_a_login_is_the_identity_when_there_is_one(store):
    carol = store.signer.issue("carol@example.com")
    run_id = quick_run(store, "carol's run", carol)
    login = {"is_logged_in": True, "email": "carol@example.com", "sub": "c-1"}
    at = session(user=login)
    open_run(at, run_id)
    assert offers_changes(at, run_id), "the same login in any browser is the same owner"
    at = session(HOME, user=login)
    at.button(key="btn_train").click().run()
    job = at.session_state["sae_job"]
    assert wait_for(lambda: job.run_id is not None) and store.get(job.run_id).owned_by == "carol@example.com"
    job.stop()
    at = session(user=login)
    assert any("Signed in as **carol@example.com**" in c.value for c in at.sidebar.caption)
    assert [b.label for b in at.sidebar.button if b.key in ("identity_login", "identity_logout")] == ["Log out"]
    # a login configured, nobody logged in yet: a Log in button, the browser's identity meanwhile
    at = session(user={"is_logged_in": False})
    assert [b.label for b in at.sidebar.button if b.key in ("identity_login", "identity_logout")] == ["Log in"]
    assert me(store, at).user.startswith("browser-")
    # no login configured: st.user has an e-mail but no is_logged_in (AppTest's default): not an identity
    at = session(token=None)
    assert me(store, at).user.startswith("browser-")
    assert not [b for b in at.sidebar.button if b.key in ("identity_login", "identity_logout")]
    open_run(at, run_id)
    assert not offers_changes(at, run_id)


# ----------------------------------------------------------------------------- the Sweep page

def test_someone_elses_sweep_cannot_be_deleted_from_the_page(store, tokens):
    spec = SweepSpec(rhos=(0.1,), betas=(3.0,), model_config=ModelConfig(64, 9), train_config=TrainConfig(),
                     dataset="digits")
    sweep_id = store.sweeps.create("bob's grid", "digits", spec.to_dict(), (8, 8), owner=tokens["bob"])
    store.sweeps.update(sweep_id, "finished")
    at = session(SWEEP, token=tokens["alice"])
    assert at.session_state["sweep_pick"] == sweep_id
    at.button(key="sweep_delete").click().run()  # inside a popover the page draws disabled
    no_exception(at)
    assert any("Cannot delete this sweep: this sweep belongs to someone else" in e.value for e in at.error)
    assert store.sweeps.get(sweep_id).owned_by == "bob"
    at = session(SWEEP, token=tokens["bob"])
    at.button(key="sweep_delete").click().run()
    no_exception(at)
    assert store.sweeps.list() == []
