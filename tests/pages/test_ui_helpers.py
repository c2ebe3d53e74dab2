"""Small public helpers of sae.ui: the settings key and current_settings(), share.deferred."""

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from sae.ui import share, state  # noqa: E402
from sae.app.settings import Settings  # noqa: E402


def test_deferred_makes_the_data_on_click_and_turns_a_failure_into_a_message():
    calls = []
    make = share.deferred(lambda: calls.append(1) or b"data", "The model")
    assert calls == [] and make() == b"data" and calls == [1]

    def broken() -> bytes:
        raise RuntimeError("disk full")

    assert share.deferred(broken, "The codes")() == b"The codes could not be exported: disk full\n"


def _script():
    import streamlit as st

    from sae.app.settings import Settings
    from sae.ui import state

    st.text(repr(state.current_settings()))
    st.session_state[state.SETTINGS_KEY] = Settings(n_hidden=7)
    st.text(repr(state.current_settings()))


def test_current_settings_reads_the_one_settings_key():
    assert state.SETTINGS_KEY == "sae_settings"
    at = AppTest.from_function(_script).run()
    assert not at.exception
    assert at.text[0].value == "None" and at.text[1].value == repr(Settings(n_hidden=7))
