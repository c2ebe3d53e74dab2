"""The doctor on screen: a compact line under the status line of every page, and the Train page's panel with each
finding's sentence, its evidence chart and its fix buttons.

The findings are ``sae.app.doctor.job_findings`` (``sae.evaluation.doctor`` has the rules); this module only draws
them and wires the buttons:

- a live fix (rho, beta, lambda, learning rate) is applied to the run at once (``Job.apply_live``) and written into
  the panel's widgets, so that the sidebar shows it and does not set the old value back; a value between two of a
  slider's notches goes to the nearest notch beyond the current value in the fix's direction (:func:`to_notches`);
- "Resample" re-initialises the dead units (``Job.resample``);
- a fix that needs a new run (the batch size) sets the panel's widget for the next run, and the panel then offers
  its "Restart with these settings"; one the panel has no widget for (the decoder) is said in words.
"""

from __future__ import annotations

import math

import streamlit as st

from sae.app.doctor import job_findings
from sae.app.job import Job
from sae.core.config import ConfigError
from sae.evaluation.doctor import SEVERE, Finding, Fix
from sae.ui.chart import live_chart
from sae.ui.url import KEYS, SLIDERS, fmt
from sae.viz.evidence import evidence_figure

WIDGET_KEYS = {name: key for key, name in KEYS.items()}  # Settings field -> the panel's widget key
RERUN = "sae_doctor_rerun"  # set by a fix's callback: the fragment that drew the button reruns the whole app
ICON = ":material/stethoscope:"


def to_notches(changes: dict[str, float], current: dict[str, float]) -> dict[str, float]:
    """``changes`` moved onto the panel's slider notches (``sae.ui.url.SLIDERS``): the notch nearest the proposed value
    (log scale) among those beyond the current value in the same direction; a setting with no such notch is left
    out. Settings without a slider pass unchanged."""
    out = {}
    for name, value in changes.items():
        options = SLIDERS.get(name)
        if options is None:
            out[name] = value
            continue
        now = current.get(name, value)
        beyond = [o for o in options if (o > now if value > now else o < now)]
        if not beyond:
            continue
        if value <= 0 or any(o <= 0 for o in beyond):
            out[name] = min(beyond, key=lambda o: abs(o - value))
        else:
            out[name] = min(beyond, key=lambda o: abs(math.log(o / value)))
    return out


def _live_changes(job: Job, fix: Fix) -> dict[str, float]:
    config = job.trainer.config
    return to_notches(fix.changes or {}, {k: getattr(config, k) for k in (fix.changes or {})})


def _apply(job: Job, fix: Fix) -> None:
    """A fix button's callback (before the rerun): carry the fix out, report a failure in the panel's error box."""
    try:
        if fix.resample:
            job.resample()
            if job.action_error:
                st.session_state["sae_error"] = job.action_error
        if fix.changes:
            changes = _live_changes(job, fix)
            job.apply_live(**changes)
            for name, value in changes.items():
                st.session_state[WIDGET_KEYS[name]] = value
        for name, value in (fix.restart or {}).items():
            if name in WIDGET_KEYS:
                st.session_state[WIDGET_KEYS[name]] = _restart_value(name, value)
    except ConfigError as exc:
        st.session_state["sae_error"] = str(exc)
    st.session_state[RERUN] = True


def _restart_value(name: str, value):
    """A new run's setting on the panel's widget: a batch size goes to the smallest notch at least as large."""
    options = SLIDERS.get(name)
    if options is None:
        return value
    return next((o for o in options if o >= value), options[-1])


def _label(job: Job, fix: Fix) -> str | None:
    """The button's text with the values it will really set (the slider's notches), or None if it can set none."""
    if fix.changes:
        changes = _live_changes(job, fix)
        if not changes:
            return None
        symbols = {"rho": "ρ", "beta": "β", "weight_decay": "λ", "lr": "the learning rate"}
        config = job.trainer.config
        return " · ".join(f"{'Raise' if v > getattr(config, k) else 'Lower'} {symbols.get(k, k)} "
                          f"{fmt(getattr(config, k))} → {fmt(v)}" for k, v in changes.items())
    if fix.restart:
        values = {k: _restart_value(k, v) for k, v in fix.restart.items()}
        return "New run with " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in values.items())
    return fix.label


def findings(job: Job | None) -> list[Finding]:
    """The job's findings now (none without a job or before its first step)."""
    return [] if job is None else job_findings(job)


def line(job: Job) -> None:
    """The compact line under the status line: the findings' headlines (their sentences on hover)."""
    if job.latest().step == 0:
        return
    found = findings(job)
    if not found:
        st.caption(f"{ICON} Doctor: nothing wrong seen.")
        return
    colour = "red" if found[0].severity >= SEVERE else "orange"
    st.caption(f":{colour}[{ICON} **Doctor:** " + " · ".join(f.headline for f in found) + "]",
               help="\n\n".join(f.sentence for f in found) + "\n\nThe Train page's Doctor panel has the evidence "
                                                             "and the fixes.")


def panel(job: Job) -> None:
    """The Train page's Doctor panel: each finding's sentence, evidence chart and fix buttons."""
    if st.session_state.pop(RERUN, False):
        st.rerun(scope="app")  # a fix changed the panel's widgets: redraw the sidebar too
    found = findings(job)
    with st.expander("Doctor", icon=ICON, expanded=True):
        if not found:
            st.caption("Nothing wrong seen." if job.latest().step else "The doctor reads the run once it trains.")
            return
        for finding in found:
            (st.error if finding.severity >= SEVERE else st.warning)(finding.sentence, icon=ICON)
            chart, buttons = st.columns([3, 2], vertical_alignment="center")
            with chart:
                live_chart(evidence_figure(finding.evidence), key=f"doctor_{finding.rule}",
                           config={"displayModeBar": False})
            with buttons:
                if job.read_only:  # someone else's run (a teacher's broadcast): the fixes are theirs to apply
                    st.caption("Its owner can apply the fixes: " + " · ".join(f.label for f in finding.fixes))
                else:
                    _fix_buttons(job, finding)


def _fix_buttons(job: Job, finding: Finding) -> None:
    for i, fix in enumerate(finding.fixes):
        label = _label(job, fix)
        if fix.restart and not set(fix.restart) & set(WIDGET_KEYS):
            st.caption(f":material/restart_alt: {fix.label}: the panel has no such setting; a new run (Train) "
                       "chooses the decoder from the data, linear for data outside [0, 1].")
            continue
        if label is None:
            continue
        st.button(label, key=f"doctor_{finding.rule}_{i}", on_click=_apply, args=(job, fix), width="stretch",
                  type="primary" if i == 0 else "secondary", icon=":material/restart_alt:" if fix.restart else None,
                  help="Sets the panel for a new run: then press “Restart with these settings”." if fix.restart
                  else None)


__all__ = ["line", "panel", "findings", "to_notches", "WIDGET_KEYS"]
