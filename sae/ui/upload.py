"""The control panel's "Your data" widgets: a CSV or NPY file (at most :data:`UPLOAD_LIMIT_MB`, parsed by
``sae.data.load_array`` in memory, never written to disk) becomes the session's data set.

A bad file shows the reason and changes nothing; a good one is stored under ``sae.ui.state.UPLOAD_KEY`` and
selected as the data set ``sae.ui.state.UPLOAD`` (the same restart rule as any data set change, see
``sae.ui.controls``).
"""

from __future__ import annotations

import re

import streamlit as st

from sae.data import DataError, load_array, scale_dataset
from sae.ui import state

UPLOAD_LIMIT_MB = 50  # also server.maxUploadSize in .streamlit/config.toml; the smaller of the two applies
UPLOAD_TYPES = ("csv", "txt", "tsv", "npy")


def upload_limit_mb() -> int:
    """The upload cap in MB: UPLOAD_LIMIT_MB, or the server's ``server.maxUploadSize`` if smaller."""
    try:
        server = int(st.get_option("server.maxUploadSize"))
    except Exception:  # noqa: BLE001 - no config (a bare import): the code's cap alone
        server = UPLOAD_LIMIT_MB
    return max(1, min(UPLOAD_LIMIT_MB, server))


def parse_image_shape(text: str) -> tuple[int, int] | None:
    """'28x28', '28×28', '28 28' or '28,28' -> (28, 28); '' -> None; anything else: DataError."""
    text = (text or "").strip()
    if not text:
        return None
    m = re.fullmatch(r"(\d{1,5})\s*(?:[x×X*,]|\s)\s*(\d{1,5})", text)
    if m is None:
        raise DataError(f"image shape {text[:20]!r} is not height×width, e.g. 28x28 (or leave it empty).")
    return int(m.group(1)), int(m.group(2))


def display_name(name: str) -> str:
    """The uploaded file's name as shown in messages: harmless characters only, short. (It is never
    used as a path: the file's bytes are parsed in memory.)"""
    name = re.sub(r"[^\w.\- ]", "_", str(name))[-60:].strip() or "upload"
    return name


def on_upload() -> None:
    """"Use this data": parse the file; a bad file leaves everything as it was and says why."""
    st.session_state.pop("sae_upload_error", None)
    file = st.session_state.get("up_file")
    if file is None:
        st.session_state["sae_upload_error"] = "Choose a CSV or NPY file first."
        return
    name = display_name(getattr(file, "name", "upload"))
    limit = upload_limit_mb()
    try:
        labels = (st.session_state.get("up_labels") or "").strip() or None
        data = load_array(file, name, image_shape=parse_image_shape(st.session_state.get("up_shape", "")),
                          max_bytes=limit * 2**20, labels_column=labels)
        if st.session_state.get("up_scale", True):
            data = scale_dataset(data)  # says the range it came from in the description
    except DataError as exc:
        st.session_state["sae_upload_error"] = str(exc)
        return
    except Exception as exc:  # noqa: BLE001 - never a traceback for a file; load_array should not get here
        st.session_state["sae_upload_error"] = f"{name} could not be read ({type(exc).__name__})."
        return
    st.session_state[state.UPLOAD_KEY] = data
    st.session_state["data"] = state.UPLOAD
    st.session_state["sae_upload_note"] = data.description  # shown once, below the form: what was read and done


def upload_widgets() -> None:
    """"Your data": a CSV or NPY file becomes this session's data set (it lives in the session's memory)."""
    error = st.session_state.get("sae_upload_error")
    limit = upload_limit_mb()
    with st.expander("Your data · CSV or NPY", icon=":material/upload_file:", expanded=error is not None):
        with st.form("sae_upload_form", border=False, enter_to_submit=False):
            st.file_uploader(f"File (CSV or NPY, at most {limit} MB)", type=list(UPLOAD_TYPES), key="up_file",
                             max_upload_size=limit, help="One sample per row, one feature per column. CSV: an "
                             "optional header row; NPY: a 2-D array, or 3-D (samples × height × width).")
            c = st.columns(2)
            c[0].text_input("Image shape h×w", key="up_shape", placeholder="e.g. 28x28", max_chars=20,
                            help="Optional: rows are images of this size (filters are drawn as pictures).")
            c[1].text_input("Labels column", key="up_labels", placeholder="name or index", max_chars=64,
                            help="Optional: a CSV header name or column number (0, -1, ...) holding class labels.")
            st.checkbox("Scale into [0, 1]", value=True, key="up_scale",
                        help="Min-max scale the whole array, so that the sigmoid decoder can reproduce it. "
                             "Unscaled data outside [0, 1] get a linear decoder.")
            st.form_submit_button("Use this data", on_click=on_upload, key="btn_upload", width="stretch")
        if error:
            st.error(error, icon=":material/error:")
    note = st.session_state.pop("sae_upload_note", None)
    if note and error is None:
        st.info(note, icon=":material/info:")


__all__ = ["UPLOAD_LIMIT_MB", "UPLOAD_TYPES", "upload_limit_mb", "parse_image_shape", "display_name", "on_upload",
           "upload_widgets"]
