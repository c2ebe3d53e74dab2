"""This browser's identity: a random id and a signed identity token the browser keeps in localStorage, handed to
Python by a tiny component; or the login of ``st.user`` where one is configured; and the teacher role.

Why: a reload (F5), a second tab or a link opened in the same browser is a NEW Streamlit session, with an empty
``st.session_state``. The id lets that session find the browser's live job again (``sae.app.browsers``,
``sae.ui.reattach``); the token says who the session is, so the run store knows whose runs it may change
(``sae.runs.owners``: a run belongs to whoever made it; a teacher moderates).

How: :func:`mount` draws an invisible ``st.components.v2`` element whose JavaScript reads (or creates, with
``crypto.randomUUID``) the id under ``localStorage["sae-lab-browser-id"]`` and reports it with
``setStateValue("browser", {id, last_run, token})`` the first time; that report reruns the script and
:func:`_on_report` keeps the id in ``st.session_state[ID_KEY]``. Python passes back (``data={"id", "run", "token"}``)
the browser's current run, which the script keeps in ``localStorage["sae-lab-last-run"]`` (so after a server
restart the browser still knows which stored run was its last), and the browser's identity token, kept in
``localStorage["sae-lab-identity"]``.

The token: the first time a browser reports none, the server issues one (``RunStore.signer``: HMAC-SHA256 with the
store's secret ``identity.key``) for a new random user, and the browser keeps it. On every later load the browser
reports it; verified, it is this session's identity again (it survives reloads and server restarts). A token the
store did not sign (altered, made up, or from another store) is refused: the page says so in one line
(:func:`notices`) and the browser gets a fresh identity; the refused one is never adopted.

Where an OIDC login is configured (``[auth]`` in ``.streamlit/secrets.toml``) and the user has logged in
(``st.user.is_logged_in``), the identity is the login's e-mail (or subject) instead, the same in every browser.
Without ``[auth]``, ``st.user`` has no ``is_logged_in`` at all (Streamlit 1.67): it is read with ``.get``. A login
is a different user from the browser's: log in before recording the runs you want to keep as yours.

The teacher role: ``[classroom] teacher_key = "..."`` in ``.streamlit/secrets.toml``. :func:`identity_panel` (a small
expander, on the Runs and Sweep pages, with Log in / Log out where a login is configured) turns this session's
identity into a teacher's when the key matches (``hmac.compare_digest``); it lasts for the session (a reload asks
again) and is never kept in the browser. Without the secret, nobody has the role.

:func:`actor` is the one function the pages call: this session's token, for every store call that records a run
(``owner=``) or changes one (``actor=``). The id and the token are never read from or written to the URL: a
shared link must not carry someone's session or identity. Where localStorage is blocked they live for one page load.
A session with no browser behind it (``AppTest``: no HTTP headers) never reports: :func:`actor` issues it an identity
of its own; tests set ``ID_KEY`` and ``TOKEN_KEY`` themselves.
"""

from __future__ import annotations

import hmac
import logging
from typing import Mapping, MutableMapping

import streamlit as st

from sae.app.browsers import valid_browser_id
from sae.runs.owners import STUDENT, TEACHER, ForgedIdentityError, Identity, Signer, new_user
from sae.runs.errors import StoreError
from sae.runs.store import default_root

logger = logging.getLogger(__name__)

ID_KEY = "sae_browser_id"  # st.session_state: this browser's id, once reported
LAST_RUN_KEY = "sae_browser_last_run"  # st.session_state: the stored run the browser reported as its last, or None
COMPONENT_KEY = "sae_browser"  # the component's own widget key
TOKEN_KEY = "sae_identity_token"  # st.session_state: the identity token this browser keeps (a student's)
TEACHER_KEY = "sae_identity_teacher"  # st.session_state: this session's teacher token, after the teacher key
LOGIN_KEY = "sae_identity_login"  # st.session_state: (user, token) of the st.user login
REFUSED_KEY = "sae_identity_refused"  # st.session_state: the browser's token was refused (a notice to show once)
TEACHER_ERROR_KEY = "sae_teacher_error"

_JS = """
const ID = "sae-lab-browser-id", LAST = "sae-lab-last-run", TOKEN = "sae-lab-identity";
function storage() { try { const s = window.localStorage; s.getItem(ID); return s; } catch (e) { return null; } }
function randomId() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();  // secure contexts (https, localhost)
  const b = new Uint8Array(16); crypto.getRandomValues(b);
  return Array.from(b, x => x.toString(16).padStart(2, "0")).join("");
}
let pageId = null;  // the id of this page load when localStorage is blocked
export default function ({ data, setStateValue }) {
  const s = storage();
  let id = s ? s.getItem(ID) : pageId;
  if (!id || !/^[A-Za-z0-9-]{8,64}$/.test(id)) {
    id = randomId();
    if (s) { try { s.setItem(ID, id); } catch (e) { pageId = id; } } else { pageId = id; }
  }
  if (data && data.id === id) {  // Python knows this browser: remember its current run and its identity token
    try {
      if (s) {
        if (data.run) s.setItem(LAST, data.run); else s.removeItem(LAST);
        if (data.token && s.getItem(TOKEN) !== data.token) s.setItem(TOKEN, data.token);
      }
    } catch (e) {}
    return;
  }
  setStateValue("browser", { id: id, last_run: s ? s.getItem(LAST) : null, token: s ? s.getItem(TOKEN) : null });
}
"""

_component = st.components.v2.component("sae_browser_identity", js=_JS, isolate_styles=False)


# ----------------------------------------------------------------------------- the browser's id

def browser_id() -> str | None:
    """This browser's id, or None while it is not known yet (the first script run of a session) or never will be."""
    return st.session_state.get(ID_KEY)


def last_run() -> str | None:
    """The stored run this browser last showed, as it reported it (None if none)."""
    return st.session_state.get(LAST_RUN_KEY)


def has_browser() -> bool:
    """Whether a browser is behind this session (so an id will come): false under AppTest (no HTTP headers)."""
    try:
        return bool(st.context.headers)
    except Exception:  # noqa: BLE001 - no context at all
        return False


def _on_report() -> None:
    """The component reported {id, last_run, token}: keep them (a callback, so before the script runs)."""
    report = (st.session_state.get(COMPONENT_KEY) or {}).get("browser") or {}
    found = valid_browser_id(report.get("id"))
    if found is None:
        logger.warning("ignored a malformed browser id report")
        return
    st.session_state[ID_KEY] = found
    run = report.get("last_run")
    st.session_state[LAST_RUN_KEY] = run if isinstance(run, str) and 0 < len(run) <= 64 else None
    try:
        adopt(report.get("token"), st.session_state, signer())
    except StoreError as exc:  # the store's key cannot be read: actor() says so when a page needs it
        logger.warning("the browser's identity token was not checked: %s", exc)


def mount(run_id: str | None = None) -> None:
    """Draw the (invisible) identity element; ``run_id``: the stored run the browser should remember as its last
    (its live run's record, or the run it continues; None forgets it). Call once per script run."""
    known = browser_id()
    data = {"id": known, "run": run_id, "token": st.session_state.get(TOKEN_KEY)} if known else None
    _component(key=COMPONENT_KEY, data=data, on_browser_change=_on_report, height=0, width="stretch")


# ----------------------------------------------------------------------------- who this session is

@st.cache_resource(show_spinner=False, max_entries=4)
def _signer(root: str) -> Signer:
    return Signer.for_directory(root)


def signer() -> Signer:
    """The signer of the server's run store (``$SAE_LAB_DATA/identity.key``, shared by every server process on
    it). Raises StoreError if the key cannot be read or made."""
    return _signer(str(default_root()))


def adopt(reported: object, session: MutableMapping, sig: Signer) -> None:
    """What a browser's reported token makes of this session's ``TOKEN_KEY`` (``session``: ``st.session_state``).

    A token ``sig`` issued is this browser's identity (a teacher's is kept as a student's of the same user: the
    role comes from the teacher key, in one session). No token: the session's own (issued now if it has none)
    goes to the browser to keep. Anything else is refused: a fresh identity, and ``REFUSED_KEY`` for the notice.
    """
    if reported is None or reported == "":
        if not session.get(TOKEN_KEY):
            session[TOKEN_KEY] = sig.issue(new_user())
        return
    try:
        who = sig.verify(reported)
    except ForgedIdentityError:
        logger.warning("refused a browser's identity token that this run store did not issue")
        session[REFUSED_KEY] = True
        session[TOKEN_KEY] = sig.issue(new_user())
        return
    session[TOKEN_KEY] = reported if who.role == STUDENT else sig.issue(who.user)


def _login_user() -> str | None:
    """The user of ``st.user``'s login (e-mail, else ``oidc:<subject>``) when logged in, else None (no login
    configured: ``st.user`` then has no ``is_logged_in``; under AppTest it is whatever the test set)."""
    try:
        user = st.user
        if user.get("is_logged_in") is not True:
            return None
        email, subject = user.get("email"), user.get("sub")
    except Exception:  # noqa: BLE001 - no script context, or a Streamlit without st.user
        return None
    if isinstance(email, str) and email.strip():
        return email.strip()
    if isinstance(subject, str) and subject.strip():
        return f"oidc:{subject.strip()}"
    return None


def _own_token() -> str:
    """The session's student token: the login's, else the browser's, else one issued now for this session."""
    login = _login_user()
    if login is not None:
        held = st.session_state.get(LOGIN_KEY)
        if not held or held[0] != login:
            held = (login, signer().issue(login[:200]))
            st.session_state[LOGIN_KEY] = held
        return held[1]
    token = st.session_state.get(TOKEN_KEY)
    if token and _user_of(token) is None:  # not this store's (its key was replaced since?): refused, never used
        logger.warning("refused this session's identity token: this run store did not issue it")
        st.session_state[REFUSED_KEY] = True
        token = None
    if not token:
        token = st.session_state[TOKEN_KEY] = signer().issue(new_user())
    return token


def _user_of(token: str) -> str | None:
    try:
        return signer().verify(token).user
    except ForgedIdentityError:
        return None


def actor() -> str:
    """This session's identity token: pass it as ``owner=`` when recording a run and ``actor=`` when changing one.
    A teacher token while this session holds one (for the same user), else the login's, else the browser's.
    Raises StoreError if the store's key cannot be read."""
    own = _own_token()
    teacher = st.session_state.get(TEACHER_KEY)
    if teacher:
        if _user_of(teacher) == _user_of(own):
            return teacher
        st.session_state.pop(TEACHER_KEY, None)  # the login changed: the role went with the user
    return own


def owner_or_none() -> str | None:
    """:func:`actor` for a run about to be recorded (a Job's ``owner=``), or None when the store's key cannot be
    read: the run is then recorded without an owner (only a teacher may change it), if the store opens at all."""
    try:
        return actor()
    except StoreError as exc:
        logger.warning("a run will be recorded without an owner: %s", exc)
        return None


def identity() -> Identity | None:
    """Who this session is (user, role), or None if the store's key cannot be read."""
    try:
        return signer().verify(actor())
    except StoreError:
        return None


def notices() -> None:
    """Under the page title, once: this browser's identity token was refused and replaced (checked now)."""
    owner_or_none()
    if st.session_state.pop(REFUSED_KEY, False):
        st.warning("This browser's saved identity was refused (this server did not issue it: altered, or from "
                   "another server): it has a fresh one, which owns none of the runs here.", icon=":material/gpp_bad:")


# ----------------------------------------------------------------------------- the login, the teacher role

def _classroom() -> Mapping:
    """``[classroom]`` of ``.streamlit/secrets.toml``, or {} (no secrets file, no such table)."""
    try:
        section = st.secrets.get("classroom")
    except Exception:  # noqa: BLE001 - no secrets file (StreamlitSecretNotFoundError) or an unreadable one
        return {}
    return section if isinstance(section, Mapping) else {}


def teacher_key() -> str | None:
    """``[classroom] teacher_key`` of ``.streamlit/secrets.toml``, or None (no secrets file, no such entry)."""
    key = _classroom().get("teacher_key")
    return key if isinstance(key, str) and key.strip() else None


def login_configured() -> bool:
    """Whether an OIDC login is configured (``[auth]`` in the secrets): Streamlit then gives ``st.user`` an
    ``is_logged_in``, False until the user logs in."""
    try:
        return st.user.get("is_logged_in") is not None
    except Exception:  # noqa: BLE001 - no script context
        return False


def is_teacher() -> bool:
    who = identity()
    return who is not None and who.is_teacher


def _become_teacher() -> None:
    """The teacher form's callback: the key given, compared in constant time; a match makes this session a teacher."""
    given = st.session_state.get("teacher_key_input") or ""
    st.session_state["teacher_key_input"] = ""
    key = teacher_key()
    if key is None or not hmac.compare_digest(given.encode("utf-8"), key.encode("utf-8")):
        st.session_state[TEACHER_ERROR_KEY] = "That is not the teacher key."
        return
    try:
        user = signer().verify(_own_token()).user
        st.session_state[TEACHER_KEY] = signer().issue(user, TEACHER)
    except StoreError as exc:
        st.session_state[TEACHER_ERROR_KEY] = f"Cannot take the teacher role: {exc}"


def _leave_teacher() -> None:
    st.session_state.pop(TEACHER_KEY, None)


def identity_panel() -> None:
    """A "You and your runs" expander (draw it in the sidebar): who this session is; Log in / Log out where a login
    is configured; the teacher key (or leave the role, or why nobody can have it)."""
    teacher, login = is_teacher(), _login_user()
    with st.expander("You and your runs", icon=":material/person:", expanded=teacher):
        if login is not None:
            st.caption(f"Signed in as **{login}**: the runs you record are yours, in any browser.")
        else:
            st.caption("This browser is who you are here: the runs it records are yours to rename and delete. "
                       "Another browser, or this one with its site data cleared, is someone else.")
        if login_configured():
            if login is None and st.button("Log in", icon=":material/login:", key="identity_login"):
                provider = _classroom().get("login_provider")
                st.login(provider if isinstance(provider, str) and provider else None)
            if login is not None and st.button("Log out", icon=":material/logout:", key="identity_logout"):
                st.logout()
        if teacher_key() is None:
            st.caption("No teacher key is set on this server, so nobody has the teacher role here. To moderate, put "
                       "`teacher_key = \"...\"` under `[classroom]` in `.streamlit/secrets.toml` and restart.")
            return
        if teacher:
            st.caption(":material/school: You are the teacher in this tab: you may rename and delete any run or "
                       "sweep. A reload asks for the key again.")
            st.button("Leave the teacher role", on_click=_leave_teacher, key="teacher_leave")
            return
        with st.form("teacher_form", border=False):
            st.text_input("Teacher key", type="password", key="teacher_key_input",
                          help="The teacher may rename and delete any run or sweep (moderation), in this tab.")
            st.form_submit_button("Take the teacher role", on_click=_become_teacher)
        error = st.session_state.pop(TEACHER_ERROR_KEY, None)
        if error:
            st.error(error, icon=":material/error:")


__all__ = ["browser_id", "last_run", "has_browser", "mount", "actor", "owner_or_none", "identity", "adopt", "signer", "notices",
           "teacher_key", "login_configured", "is_teacher", "identity_panel", "ID_KEY", "LAST_RUN_KEY", "COMPONENT_KEY", "TOKEN_KEY",
           "TEACHER_KEY", "LOGIN_KEY", "REFUSED_KEY"]
