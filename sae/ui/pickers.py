"""Pickers over ids whose labels change: a selectbox and a multiselect that keep the choice by id.

In Streamlit 1.67 a selectbox or multiselect holds its value as the *label* the browser shows
(``format_func(option)``). When a label changes between runs (a run renamed, a status that moved on) the browser
still sends the old label: it matches no option, so the widget falls back to its first option while showing the
old text, and the page acts on a run other than the one named. These pickers keep the chosen ids in a plain
session-state key (``state_key``) and give the widget a key derived from its options' labels, so a change of any
label makes a new widget, drawn with the current labels around the same ids.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any, Callable, Sequence

import streamlit as st

logger = logging.getLogger(__name__)


def widget_key(state_key: str, ids: Sequence[str], labels: Sequence[str]) -> str:
    """``<state_key>_<digest of the ids and labels>``: the same while no option or label changes."""
    text = "\x1f".join(ids) + "\x1e" + "\x1f".join(labels)
    return f"{state_key}_{hashlib.blake2s(text.encode(), digest_size=6).hexdigest()}"


def pick_one(label: str, ids: Sequence[str], state_key: str, format_func: Callable[[str], str],
             **kwargs: Any) -> str | None:
    """A selectbox over ``ids``; the choice (an id) lives in ``st.session_state[state_key]``. Returns it.

    A chosen id that is no longer among ``ids`` (deleted, filtered out) gives way to the first one; None if
    there are no ids. ``kwargs`` go to ``st.selectbox`` (help, width, ...).
    """
    ids = list(ids)
    if not ids:
        st.session_state.pop(state_key, None)
        return None
    current = st.session_state.get(state_key)
    if current not in ids:
        current = ids[0]
    st.session_state[state_key] = current
    key = widget_key(state_key, ids, [format_func(i) for i in ids])
    st.session_state[key] = current  # set before the widget is drawn: it shows this id, with today's label

    def picked() -> None:
        st.session_state[state_key] = st.session_state[key]

    st.selectbox(label, ids, key=key, format_func=format_func, on_change=picked, **kwargs)
    return current


def pick_many(label: str, ids: Sequence[str], state_key: str, format_func: Callable[[str], str],
              max_selections: int | None = None, **kwargs: Any) -> list[str]:
    """A multiselect over ``ids``; the choice (a list of ids) lives in ``st.session_state[state_key]``.

    Chosen ids no longer among ``ids`` leave the choice. ``kwargs`` go to ``st.multiselect``.
    """
    ids = list(ids)
    chosen = [i for i in st.session_state.get(state_key, []) if i in ids][:max_selections]
    st.session_state[state_key] = chosen
    key = widget_key(state_key, ids, [format_func(i) for i in ids])
    st.session_state[key] = list(chosen)

    def picked() -> None:
        st.session_state[state_key] = list(st.session_state[key])

    st.multiselect(label, ids, key=key, format_func=format_func, on_change=picked, max_selections=max_selections,
                   **kwargs)
    return chosen


__all__ = ["pick_one", "pick_many", "widget_key"]
