"""A new session of a known browser finds its run again; a ``?run=`` link puts a stored run on view.

Called by ``sae.ui.page.page`` before the control panel, on every script run (:func:`attach`). The first time a
session knows its browser's id (``sae.ui.identity``), in this order:

1. The browser's live job in this process (``sae.app.browsers``) if it has started (trained, or a loaded model): a
   reload (F5), a second tab, a link opened in the same browser. The session shows that job, whatever its state
   (an idle, untouched job is not kept: the new page load builds its own from its URL); a run paused because its tab went away resumes
   (``Job.reconnected``), one the user paused stays paused. Two tabs show and control the same job.
2. Else, when the browser remembers a stored run as its last one (the server restarted, or the run was stopped
   after its tab closed) and no link asks for another run: that run is loaded, paused at its last checkpoint
   (``sae.ui.share.load_stored_run``: Resume continues it as a new run), with a notice saying why.
3. Else nothing: ``sae.ui.state.get_job`` builds an idle job as before.

Before the id is known (the first script run of a new session: the component reports on its first render) the
page draws nothing but a short "opening" line and stops (:func:`attach` returns False), so a fresh idle job never
flashes in place of the live one. If no id comes within ``MAX_WAIT`` seconds (localStorage blocked and scripts
failing) the page goes on without one.

``?run=<run id>`` on any page but Runs (where it opens the run's record, see pages/10_runs.py) loads that stored
run into this session's live view, paused, as a continuation (a new record whose parent is the linked run), then
leaves the URL. If this browser's run is training, the link waits for the user's OK instead of stopping it.
"""

from __future__ import annotations

import logging
import time

import streamlit as st

from sae.app.browsers import browser_jobs
from sae.app.job import Job
from sae.runs.errors import RunNotFoundError
from sae.training.status import ACTIVE_STATUSES
from sae.ui import identity, share, state, url

logger = logging.getLogger(__name__)

MAX_WAIT = 3.0  # s a new session waits for its browser's id before drawing without it
WAIT_KEY = "sae_browser_wait_since"
ATTACHED_KEY = "sae_browser_attached"  # the browser id this session attached for
LINK_SEEN_KEY = "sae_run_link_seen"  # the last ?run= value handled in this session
PENDING_KEY = "sae_run_link_pending"  # a linked run waiting for the user's OK
NOTICE_KEY = "sae_reattach_notice"  # (job id, step, kind, text): shown under the title while that job sits there
LINK_PARAM = "run"


def attach(run_links: bool = True) -> bool:
    """Find this browser's run for this session (see the module docstring). False: the browser's id has not come
    yet; the caller draws :func:`waiting` and stops. ``run_links``: this page puts ``?run=`` links on view."""
    browser = identity.browser_id()
    if browser is None and state.own_job() is None and identity.has_browser():
        since = st.session_state.setdefault(WAIT_KEY, time.monotonic())
        if time.monotonic() - since < MAX_WAIT:
            return False
        logger.info("no browser id after %.1f s: this session goes on without one", MAX_WAIT)
    link = st.query_params.get(LINK_PARAM) if run_links else None
    if browser is not None and st.session_state.get(ATTACHED_KEY) != browser:
        st.session_state[ATTACHED_KEY] = browser
        _first_attach(browser, restore=not link)
    if link:
        _follow_link(link)
    return True


def waiting() -> None:
    """The page of a session waiting for its browser's id: one line, the identity element, a timer that goes on
    without the id after MAX_WAIT (the id's report normally reruns the page within a fraction of a second)."""
    st.caption(":material/hourglass_top: Opening your session…")
    with st.sidebar:
        identity.mount()

    @st.fragment(run_every=1.0)
    def _give_up() -> None:
        if time.monotonic() - st.session_state.get(WAIT_KEY, time.monotonic()) >= MAX_WAIT:
            st.rerun(scope="app")

    _give_up()
    st.stop()


def _first_attach(browser: str, restore: bool) -> None:
    job = state.own_job()
    live = browser_jobs().job_for(browser)
    if live is not None and live is not job and live.started:  # an idle, untouched job is nothing to keep
        if job is None or not job.started:  # nothing of this session's own to keep: show the browser's run
            state.show_job(live)
            _widgets_follow(live)
            logger.info("session reattached to job %s (%s, step %s)", live.id, live.status, live.latest().step)
        else:  # this session trained a run of its own before the id came: it is the browser's newest
            browser_jobs().assign(browser, job)
        return
    if job is not None:
        browser_jobs().assign(browser, job)
        return
    last = identity.last_run()
    if restore and last:
        _restore(last)


def _restore(run_id: str) -> None:
    """Load the browser's last stored run, paused, with a notice (or say why it cannot come back)."""
    try:
        job = share.load_stored_run(run_id)
    except RunNotFoundError:
        return  # deleted since: nothing to say, a fresh run follows
    except Exception as exc:  # noqa: BLE001 - a run that cannot come back never blocks the page
        _notice(None, "warning", f"Your last run could not be brought back: {exc}")
        return
    _widgets_follow(job)
    record_name = job.name.removesuffix(" (continued)") if job.name else run_id
    _notice(job, "info", f"Your last run “{record_name}” was no longer live on this server (the server restarted, "
                         f"or the run was stopped after its tab closed). It is back at its last checkpoint, step "
                         f"{job.latest().step:,}, paused: **Resume** trains it further (recorded as a new run "
                         "continuing it), **Reset** starts afresh.")


def _follow_link(link: str) -> None:
    """Handle ``?run=`` once per value: put the run on view, or ask first if this browser's run is training."""
    if link == st.session_state.get(LINK_SEEN_KEY):
        return
    st.session_state[LINK_SEEN_KEY] = link
    del st.query_params[LINK_PARAM]  # one-shot: the URL goes back to the settings (a reload keeps the run anyway)
    job = state.own_job()
    if job is not None and link in (job.run_id, job.parent_id):
        return  # already on view (or its continuation)
    if job is not None and job.status in ACTIVE_STATUSES:  # training (or queued to): ask before stopping it
        st.session_state[PENDING_KEY] = link
        return
    open_link(link)


def open_link(run_id: str) -> None:
    """Load the linked run into the live view (button callback too); a notice says what happened."""
    st.session_state.pop(PENDING_KEY, None)
    try:
        job = share.load_stored_run(run_id)
    except RunNotFoundError:
        _notice(state.own_job(), "error", f"The link's run `{run_id}` is not in this server's run store: it was "
                                              "deleted, or the link comes from another server.")
        return
    except Exception as exc:  # noqa: BLE001 - a bad link shows its reason, never a traceback
        _notice(state.own_job(), "error", f"The link's run could not be opened: {exc}")
        return
    _widgets_follow(job, force=True)
    name = job.name.removesuffix(" (continued)") if job.name else run_id
    _notice(job, "success", f"Opened the linked run “{name}” at step {job.latest().step:,}, paused: every page shows "
                            "it; **Resume** trains it further (recorded as a new run continuing it).")


def _keep_mine() -> None:
    st.session_state.pop(PENDING_KEY, None)


def notices() -> None:
    """Under the page title: what :func:`attach` did (restored / opened / could not open), and a pending link."""
    job = state.own_job()
    notice = st.session_state.get(NOTICE_KEY)
    if notice is not None:
        job_id, step, kind, text = notice
        if job_id is None or job is not None and job_id == job.id and job.latest().step == step:
            getattr(st, kind)(text, icon={"info": ":material/history:", "success": ":material/link:",
                                          "warning": ":material/warning:", "error": ":material/link_off:"}[kind])
        if job_id is None or job is None or job_id != job.id or job.latest().step != step:
            st.session_state.pop(NOTICE_KEY, None)  # shown once (no job to tie it to), or the user has moved on
    pending = st.session_state.get(PENDING_KEY)
    if pending and job is not None:
        with st.container(border=True):
            st.markdown(f":material/link: This link opens the stored run `{pending}`. Your run in this browser is "
                        "still training: opening the link stops it (it stays on the Runs page).")
            c = st.columns([1, 1, 3])
            c[0].button("Open the linked run", on_click=open_link, args=(pending,), key="link_open", type="primary")
            c[1].button("Keep my run", on_click=_keep_mine, key="link_keep")


def _notice(job: Job | None, kind: str, text: str) -> None:
    st.session_state[NOTICE_KEY] = (None if job is None else job.id, None if job is None else job.latest().step,
                                    kind, text)


def _widgets_follow(job: Job, force: bool = False) -> None:
    """Show the job's settings in the panel, unless the URL asks for other ones (then the URL's settings fill the
    widgets as for any link, and the panel offers to restart with them): ``force`` (a ?run= link) always shows the
    job's. The epochs / iterations a continuation extended do not count as a difference."""
    params = {k: v for k, v in st.query_params.to_dict().items() if k in url.KEYS}
    if params and not force:
        live, structural = job.settings.changes(url.parse_url(params))
        if live or set(structural) - {"epochs", "max_iter"}:
            return
    for key, value in url.widget_values(job.settings).items():
        st.session_state[key] = value
    st.session_state["sae_url"] = params  # the URL is not news to the panel (sae.ui.url.sync_widgets)


__all__ = ["attach", "waiting", "notices", "open_link", "MAX_WAIT", "LINK_PARAM"]
