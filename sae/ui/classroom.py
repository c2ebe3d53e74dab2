"""The classroom in the dashboard: start or join a class, the teacher's broadcast (watched read-only on every page),
submitting a run to the class board, and the board itself (``pages/13_classroom.py`` wires these).

- A class lives in the run store (``store.classes``, :mod:`sae.runs.classroom`): its code, members, broadcast and
  board survive restarts. This session's class is the one its identity last started or joined.
- The join link is the Classroom page with ``?class=CODE``.
- Broadcasting registers the teacher's browser (``sae.app.broadcasts``); a student who presses Watch gets the
  teacher's current run on every page through a :class:`sae.app.broadcasts.ReadOnlyJob` (the sidebar's panel draws no
  controls then, :func:`watched`), until they press "Back to my run" or the broadcast ends.
- Submitting measures the run's scores now (``sae.evaluation.metrics.evaluate_run`` on the run's data: reconstruction
  error, mean ρ̂, dead units, probe accuracy) and puts a frozen copy on the board.
"""

from __future__ import annotations

import streamlit as st

from sae.app.broadcasts import ReadOnlyJob, broadcasts
from sae.app.job import Job
from sae.core.model import SparseAutoencoder
from sae.evaluation.metrics import evaluate_run
from sae.runs.classroom import RANKINGS, BoardRow, ClassRecord
from sae.runs.errors import StoreError
from sae.ui import identity, state, url
from sae.viz.images import tile_filters, to_png_bytes

CLASS_PARAM = "class"  # the join link's query parameter
WATCH_KEY = state.WATCH_CODE_KEY  # st.session_state: the class code whose broadcast this session watches
WATCH_JOB_KEY = state.WATCHED_KEY  # st.session_state: that broadcast's ReadOnlyJob (state.current_job)
ERROR_KEY, NOTICE_KEY = "sae_class_error", "sae_class_notice"
ENDED_KEY = "sae_class_broadcast_ended"  # a notice for any page: the broadcast being watched ended
PAGE = "pages/13_classroom.py"


def _store():
    return state.run_store()


def _report(exc: Exception) -> None:
    st.session_state[ERROR_KEY] = str(exc)


# ------------------------------------------------------------------ which class
def current_class() -> tuple[ClassRecord, bool] | None:
    """(this session's class, whether it teaches it): the class it most recently started or joined, or None."""
    if st.session_state.get("class_switching"):
        return None
    store, actor = _store(), identity.actor()
    chosen = st.session_state.get("sae_class_code")
    taught = store.classes.taught_by(actor)
    joined = store.classes.joined_by(actor)
    for record in taught + joined:
        if chosen is None or record.code == chosen:
            return record, record in taught
    return None


def _on_start() -> None:
    name = (st.session_state.get("class_new_name") or "").strip() or "My class"
    try:
        record = _store().classes.start(name, actor=identity.actor())
    except StoreError as exc:
        _report(exc)
        return
    st.session_state["sae_class_code"] = record.code
    st.session_state.pop("class_switching", None)


def _on_join() -> None:
    code = st.session_state.get("class_join_code") or ""
    name = (st.session_state.get("class_join_name") or "").strip()
    if not name:
        st.session_state[ERROR_KEY] = "Type the name the class board should show for you."
        return
    try:
        record = _store().classes.get(code)
        _store().classes.join(record.code, name, actor=identity.actor())
    except StoreError as exc:
        _report(exc)
        return
    st.session_state["sae_class_code"] = record.code
    st.session_state.pop("class_switching", None)
    st.query_params.pop(CLASS_PARAM, None)


def _on_close(code: str) -> None:
    try:
        _store().classes.close(code, actor=identity.actor())
    except StoreError as exc:
        _report(exc)
        return
    broadcasts().stop(code)
    st.session_state.pop("sae_class_code", None)


def _on_switch() -> None:
    st.session_state.pop("sae_class_code", None)
    st.session_state["class_switching"] = True


def join_link(code: str) -> str:
    """The absolute link that opens the Classroom page ready to join class ``code``."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        here = urlsplit(st.context.url or "")
    except Exception:  # noqa: BLE001 - no request behind this session (AppTest)
        here = urlsplit("")
    path = (here.path or "/").rstrip("/")
    base = path.rsplit("/", 1)[0] if path.endswith(("classroom", "13_classroom")) else path
    return urlunsplit((here.scheme, here.netloc, f"{base}/classroom", f"{CLASS_PARAM}={code}", ""))


# ------------------------------------------------------------------ the broadcast
def _on_broadcast(code: str) -> None:
    job, actor = state.own_job(), identity.actor()
    browser = identity.browser_id()
    if job is None or browser is None:
        st.session_state[ERROR_KEY] = "This browser is not identified yet: reload the page and try again."
        return
    try:
        _store().classes.broadcast(code, job.run_id, actor=actor)
    except StoreError as exc:
        _report(exc)
        return
    broadcasts().start(code, browser, "the teacher")


def _on_stop_broadcast(code: str) -> None:
    try:
        _store().classes.broadcast(code, None, actor=identity.actor())
    except StoreError as exc:
        _report(exc)
        return
    broadcasts().stop(code)


def _on_watch(code: str) -> None:
    """Watch the broadcast; this session's own run pauses meanwhile (watching costs no training)."""
    own = state.own_job()
    if own is not None and own.status in ("running", "queued"):
        own.pause("paused while you watch the teacher's broadcast")
    st.session_state[WATCH_KEY] = code


def on_back_to_my_run() -> None:
    st.session_state.pop(WATCH_KEY, None)
    st.session_state.pop(WATCH_JOB_KEY, None)


def watched() -> ReadOnlyJob | None:
    """The teacher's run this session watches (kept where ``state.current_job`` finds it), or None. A broadcast
    that ended puts the session back on its own run with a notice."""
    code = st.session_state.get(WATCH_KEY)
    if code is None:
        st.session_state.pop(WATCH_JOB_KEY, None)
        return None
    view = broadcasts().watch(code)
    if view is None:
        on_back_to_my_run()
        st.session_state[ENDED_KEY] = "The teacher stopped broadcasting: this is your own run again."
        return None
    st.session_state[WATCH_JOB_KEY] = view
    return view


def watch_sidebar(view: ReadOnlyJob) -> None:
    """The sidebar while watching: what this is, and the way back."""
    st.info(f"Watching **{view.owner_name}**'s run live (class {view.code}), read-only: every "
            "page shows it. Your own run waits, paused where you left it.", icon=":material/visibility:")
    st.button("Back to my run", key="class_back", on_click=on_back_to_my_run, icon=":material/undo:",
              width="stretch", type="primary")


def notices() -> None:
    """Under the page title: a broadcast that ended, and a banner while watching one."""
    note = st.session_state.pop(ENDED_KEY, None)
    if note:
        st.info(note, icon=":material/cast:")
    view = st.session_state.get(WATCH_JOB_KEY)
    if isinstance(view, ReadOnlyJob):
        st.info(f"You are watching **{view.owner_name}**'s run live, read-only (class {view.code}). "
                "Back to your own run: the sidebar.", icon=":material/cast:")


# ------------------------------------------------------------------ submitting
def scores_of(job: Job) -> dict[str, float]:
    """The board's scores of a job's current weights on its data (``evaluate_run``)."""
    snap = job.latest()
    model = SparseAutoencoder.from_weights(job.model_config, snap.weights)
    config = job.trainer.config
    rho = snap.hyper.get("rho") if config.penalty == "kl" else None
    metrics, _ = evaluate_run(model, job.data.X, job.data.labels, probe=True, rho=rho)
    metrics["steps"] = float(snap.step)
    return metrics


def _on_submit(code: str) -> None:
    job = state.own_job()
    if job is None or job.read_only or job.latest().step == 0:
        st.session_state[ERROR_KEY] = "Train your run first (press Train in the sidebar), then submit it."
        return
    if job.recorder is None or job.run_id is None:
        st.session_state[ERROR_KEY] = job.record_error or "This run is not recorded in the run store, so it " \
                                                          "cannot be submitted."
        return
    try:
        job.recorder.checkpoint(job.latest())  # the board gets the run as it is now
        _store().classes.submit(code, job.run_id, scores_of(job), actor=identity.actor())
    except StoreError as exc:
        _report(exc)
        return
    st.session_state[NOTICE_KEY] = f"Submitted at step {job.latest().step:,}: it is on the board below."


def _on_withdraw(code: str, run_id: str) -> None:
    try:
        _store().classes.withdraw(code, run_id, actor=identity.actor())
    except StoreError as exc:
        _report(exc)


# ------------------------------------------------------------------ the board
@st.cache_data(show_spinner=False, max_entries=256)
def _filters_png(run_id: str, dataset: str, _root: str) -> bytes | None:
    """A submission's filter grid as PNG (cached: a submission is a frozen copy, its weights never change)."""
    try:
        data = state.load_data(dataset)
    except Exception:  # noqa: BLE001 - an uploaded file's run: no picture
        return None
    if data.image_shape is None:
        return None
    model = _store().load_model(run_id)
    W = model.encoder.weight.detach().numpy()
    return to_png_bytes(tile_filters(W[:36], data.image_shape), scale=3)


def _setting_text(row: BoardRow) -> str:
    tc, mc = row.run.train_config, row.run.model_config
    hyper = row.run.hyper or {}
    parts = [f"{mc.n_hidden} units"]
    for key, label in (("rho", "ρ"), ("beta", "β"), ("weight_decay", "λ"), ("lr", "lr")):
        value = hyper.get(key, getattr(tc, key, None) if tc is not None else None)
        if value is not None:
            parts.append(f"{label} {url.fmt(float(value))}")
    if tc is not None:
        parts.append(tc.optimizer)
    return " · ".join(parts) + f" · step {row.run.step:,}"


BOARD_REFRESH = 4.0  # s between redraws of the board (students submit while the teacher projects it)


def board(code: str, teacher: bool) -> None:
    """The class board: submissions ranked by the chosen score, each with its filters, settings and scores; the
    teacher (and a submission's own student) may take one off; anyone may open one (a paused copy of it). Redrawn
    every BOARD_REFRESH seconds, so new submissions appear on the projector by themselves."""
    st.subheader("Class board", anchor=False)
    _board(code, teacher)


@st.fragment(run_every=BOARD_REFRESH)
def _board(code: str, teacher: bool) -> None:
    from sae.ui.share import on_load_run

    rank_by = st.segmented_control("Rank by", list(RANKINGS), default="reconstruction", key="class_rank_by",
                                   format_func=lambda k: RANKINGS[k][0]) or "reconstruction"
    rows = _store().classes.board(code, rank_by=rank_by)
    if not rows:
        st.caption("No submissions yet: students press “Submit my run” above.")
        return
    me = identity.identity()
    root = str(_store().root)
    for row in rows:
        with st.container(border=True):
            left, middle, right = st.columns([1, 4, 1.3], vertical_alignment="center")
            png = _filters_png(row.run.id, row.run.dataset, root)
            if png is not None:
                left.image(png, width="stretch")
            rank = "–" if row.rank is None else f"#{row.rank}"
            s = row.scores
            scores = " · ".join(part for part in (
                f"error **{s['reconstruction']:.4g}**" if "reconstruction" in s else "",
                f"mean ρ̂ {s['rho_hat_mean']:.3f}" if "rho_hat_mean" in s else "",
                f"dead units **{s['dead_units']:.0f}**" if "dead_units" in s else "",
                f"probe **{100 * s['probe_accuracy']:.1f}%**" if "probe_accuracy" in s else "") if part)
            middle.markdown(f"### {rank} {row.name}\n{scores}  \n:gray[{_setting_text(row)} · {row.run.dataset}]")
            right.button("Open", key=f"class_open_{row.run.id}", on_click=on_load_run, args=(row.run.id,),
                         icon=":material/open_in_new:", width="stretch",
                         help="Open this submission on every page (a paused copy: training it records a new run "
                              "of yours).")
            mine = me is not None and me.user == row.user
            if teacher or mine or (me is not None and me.is_teacher):
                right.button("Remove", key=f"class_remove_{row.run.id}", on_click=_on_withdraw,
                             args=(code, row.run.id), icon=":material/remove_circle:", width="stretch")


# ------------------------------------------------------------------ the page's parts
def errors() -> None:
    error = st.session_state.pop(ERROR_KEY, None)
    if error:
        st.error(error, icon=":material/error:")
    note = st.session_state.pop(NOTICE_KEY, None)
    if note:
        st.success(note, icon=":material/check_circle:")


def start_or_join() -> None:
    """No class yet (or switching): start one, or join one with its code (prefilled from a join link)."""
    code = st.query_params.get(CLASS_PARAM)
    if code is not None and "class_join_code" not in st.session_state:
        st.session_state["class_join_code"] = code
    left, right = st.columns(2, gap="large")
    with left.container(border=True):
        st.markdown("#### Join a class")
        st.text_input("Class code", key="class_join_code", max_chars=12, placeholder="e.g. K7Q2MX")
        st.text_input("Your name (shown on the class board)", key="class_join_name", max_chars=60)
        st.button("Join", key="class_join", on_click=_on_join, type="primary", icon=":material/login:")
    with right.container(border=True):
        st.markdown("#### Start a class")
        st.text_input("Class name", key="class_new_name", max_chars=80, placeholder="e.g. CS294A, week 3")
        st.button("Start a class", key="class_start", on_click=_on_start, icon=":material/school:")
        st.caption("You get a short code and a link for the students; you can broadcast your run to them and "
                   "collect their runs on a class board.")


def teacher_view(record: ClassRecord) -> None:
    code = record.code
    st.markdown(f"## {record.name}")
    left, right = st.columns([1, 2], vertical_alignment="center")
    left.markdown(f"<div style='font-size:3.2rem;font-weight:700;letter-spacing:0.3rem'>{code}</div>",
                  unsafe_allow_html=True)
    with right:
        st.caption("Students open this link (or the Classroom page and type the code):")
        st.code(join_link(code), language=None)
    members = _store().classes.members(code)
    st.caption(f"{len(members)} student{'s' * (len(members) != 1)} joined" +
               (": " + ", ".join(m.name for m in members) if members else ""))
    live = broadcasts().live(code)
    with st.container(border=True):
        if live:
            st.markdown(":red[●] **Broadcasting your run.** Students who press Watch see it live on every page, "
                        "read-only; a new run you start is broadcast in its place.")
            st.button("Stop broadcasting", key="class_stop_broadcast", on_click=_on_stop_broadcast, args=(code,),
                      icon=":material/cancel_presentation:")
        else:
            st.markdown("**Broadcast**: show your live run to every student, read-only, on any page; it costs them "
                        "no training.")
            st.button("Broadcast my run", key="class_broadcast", on_click=_on_broadcast, args=(code,),
                      type="primary", icon=":material/cast:")
    board(code, teacher=True)
    st.divider()
    c1, c2 = st.columns(2)
    c1.button("Switch to another class", key="class_switch", on_click=_on_switch)
    c2.button("Close this class", key="class_close", on_click=_on_close, args=(code,), icon=":material/block:")


def student_view(record: ClassRecord) -> None:
    code = record.code
    st.markdown(f"## {record.name}  \n:gray[class {code}]")
    me = _store().classes.member(code, actor=identity.actor())
    if me is not None:
        st.caption(f"You are on the board as **{me.name}**.")
    with st.container(border=True):
        if broadcasts().live(code):
            if st.session_state.get(WATCH_KEY) == code:
                st.markdown(":red[●] You are watching the teacher's run: every page shows it.")
                st.button("Back to my run", key="class_back_page", on_click=on_back_to_my_run, icon=":material/undo:")
            else:
                st.markdown(":red[●] **The teacher is broadcasting.**")
                st.button("Watch the teacher's run", key="class_watch", on_click=_on_watch, args=(code,),
                          type="primary", icon=":material/cast:")
        else:
            st.markdown("The teacher is not broadcasting now.")
    job = state.current_job()
    own = job is not None and not job.read_only
    with st.container(border=True):
        st.markdown("**Submit your run** to the board: its settings, its filters and its scores as they are now "
                    "(reconstruction error, mean ρ̂, dead units, probe accuracy). Training on afterwards does not "
                    "change what you submitted.")
        st.button("Submit my run", key="class_submit", on_click=_on_submit, args=(code,), type="primary",
                  icon=":material/upload:", disabled=not own,
                  help=None if own else "Go back to your own run first (sidebar).")
    board(code, teacher=False)
    st.divider()
    st.button("Join another class", key="class_switch", on_click=_on_switch)


__all__ = ["current_class", "watched", "watch_sidebar", "notices", "board", "start_or_join", "teacher_view",
           "student_view", "errors", "scores_of", "join_link", "on_back_to_my_run", "CLASS_PARAM", "WATCH_KEY",
           "WATCH_JOB_KEY"]
