"""The whole bad-input list in one place: every case gets a clear message, never a traceback.

1. Uploads (``sae.data.load_array``): non-numeric, NaN, inf, empty, one row, ragged CSV, 1-D, too large,
   binary garbage, an NPY holding pickled objects, an image shape that does not fit. The same list is
   run against the pages (AppTest): the "Your data" form shows the reason and the session keeps its
   job, model, history and settings.
2. Hyperparameters at and past their limits (ρ = 0 or 1, β < 0, hidden 0 or enormous, learning rate
   0 or 1e3, batch larger than the data) against the library; their URL forms are in
   tests/test_ui_robustness.py.
3. A saved model that is truncated, tampered with, or of another shape (``sae.runs.model_file``; library
   side only: the upload of a model file belongs to the Runs page).
4. The server's production settings in .streamlit/config.toml.

Property-based (hypothesis): the URL parser and the image-shape parser never raise and only return
values the widgets accept; a model file with random bytes flipped loads as a sound model or is refused
with a RunFileError.
"""

from __future__ import annotations

import io
import json
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sae import ModelConfig, SparseAutoencoder, TrainConfig, Trainer
from sae.core.config import ConfigError
from sae.data import DataError, load_array
from sae.runs.model_file import RunFileError, model_from_bytes, model_to_bytes
from conftest import UNPICKLED, Trap, npy_bytes, wait_for

ROOT = Path(__file__).resolve().parents[2]
HOME = str(ROOT / "dashboard.py")
pytestmark = pytest.mark.usefixtures("restore_process_state", "stop_live_jobs")  # conftest.py; 1b runs the pages


UPLOAD_LIMIT = 50 * 2**20  # the dashboard's cap (upload.UPLOAD_LIMIT_MB, server.maxUploadSize)
TOO_LARGE = b"1,2\n" * (UPLOAD_LIMIT // 4 + 1024)  # just over 50 MiB of valid CSV

# (id, filename, payload, form fields {"shape": ..., "labels": ...}, message regex)
BAD_UPLOADS = [
    ("non-numeric", "d.csv", b"1,2\n3,abc\n5,6\n", {}, r"non-numeric value 'abc' at line 2, column 2"),
    ("nan", "d.csv", b"1,2\nnan,4\n5,6\n", {}, r"NaN or infinite value .*NaN at line 2, column 1"),
    ("inf", "d.csv", b"1,2\n3,inf\n5,6\n", {}, r"NaN or infinite value .*inf at line 2, column 2"),
    ("nan-npy", "d.npy", npy_bytes(np.array([[1.0, np.inf], [3.0, 4.0]])), {}, r"first: inf at row 0, column 1"),
    ("empty", "d.csv", b"", {}, r"d.csv is empty"),
    ("one-row", "d.csv", b"1,2,3\n", {}, r"only 1 sample"),
    ("ragged", "d.csv", b"1,2,3\n4,5,6\n7,8\n", {}, r"line 3 has 2 columns, expected 3"),
    ("1-d", "d.npy", npy_bytes(np.arange(10.0)), {}, r"1-D array of shape \(10,\)"),
    ("too-large", "big.csv", TOO_LARGE, {}, r"big.csv is too large.*limit is 50 MiB"),
    ("binary-garbage", "garbage.csv", bytes(range(256)) * 8, {}, r"binary data, not CSV text"),
    ("pickled-objects-npy", "objects.npy", npy_bytes(np.array([Trap(), 1], dtype=object), allow_pickle=True), {},
     r"holds Python objects; only numeric arrays are accepted"),
    ("image-shape-mismatch", "d.csv", b"1,2,3\n4,5,6\n", {"shape": "2x2"},
     r"image_shape 2x2 = 4 pixels does not match the 3 features"),
    ("image-shape-3d-mismatch", "d.npy", npy_bytes(np.zeros((3, 4, 4))), {"shape": "3x3"},
     r"does not match the 16 features"),
]
UPLOAD_IDS = [case[0] for case in BAD_UPLOADS]


def _image_shape(text: str | None):
    if not text:
        return None
    h, w = text.split("x")
    return int(h), int(w)


# ----------------------------------------------------------------------------------- 1. uploads (library)

@pytest.mark.parametrize("filename, payload, form, match", [c[1:] for c in BAD_UPLOADS], ids=UPLOAD_IDS)
def test_bad_upload_is_refused_with_a_clear_message(filename, payload, form, match):
    UNPICKLED.clear()
    with pytest.raises(DataError, match=match) as info:
        load_array(payload, filename, image_shape=_image_shape(form.get("shape")), max_bytes=UPLOAD_LIMIT)
    message = str(info.value)
    assert "\n" not in message and len(message) < 300 and "Traceback" not in message
    assert UNPICKLED == []  # nothing was ever unpickled


def test_too_large_upload_is_refused_before_it_is_read():
    class Upload(io.BytesIO):  # Streamlit's UploadedFile knows its size
        size = UPLOAD_LIMIT + 1

        def read(self, *args):
            raise AssertionError("read before the size check")

    with pytest.raises(DataError, match="too large"):
        load_array(Upload(b""), "big.npy", max_bytes=UPLOAD_LIMIT)


# ----------------------------------------------------------------------------------- 2. hyperparameters (library)

@pytest.mark.parametrize("kwargs, match", [
    (dict(rho=0.0), "strictly between 0 and 1"), (dict(rho=1.0), "strictly between 0 and 1"),
    (dict(beta=-1.0), "beta .* must be >= 0"), (dict(beta=-1e-12), "beta"),
    (dict(lr=0.0), r"learning rate must be in \(0, 10\]"), (dict(lr=1e3), r"learning rate must be in \(0, 10\]"),
    (dict(lr=float("nan")), "finite"), (dict(batch_size=0), "batch size"), (dict(weight_decay=-1.0), "weight decay"),
], ids=["rho=0", "rho=1", "beta<0", "beta=-1e-12", "lr=0", "lr=1e3", "lr=nan", "batch=0", "lambda<0"])
def test_hyperparameters_past_their_limits_are_refused(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig(**kwargs)


@pytest.mark.parametrize("n_hidden, match", [(0, "between 1 and 4096"), (-1, "between 1 and 4096"),
                                             (10**9, "between 1 and 4096"), (2.5, "whole number")],
                         ids=["hidden=0", "hidden=-1", "hidden=1e9", "hidden=2.5"])
def test_hidden_size_past_its_limits_is_refused(n_hidden, match):
    with pytest.raises(ConfigError, match=match):
        ModelConfig(64, n_hidden)


def test_hyperparameters_at_their_limits_are_accepted():
    TrainConfig(rho=1e-9, beta=0.0, weight_decay=0.0, lr=10.0, batch_size=1)
    ModelConfig(64, 1), ModelConfig(64, 4096)


@pytest.mark.parametrize("change", [dict(rho=0.0), dict(rho=1.0), dict(beta=-1.0), dict(lr=0.0), dict(lr=1e3)],
                         ids=["rho=0", "rho=1", "beta<0", "lr=0", "lr=1e3"])
def test_bad_live_change_is_refused_and_the_run_keeps_its_settings(change):
    X = np.random.default_rng(0).random((40, 8), dtype=np.float32)
    trainer = Trainer(X, ModelConfig(8, 3), TrainConfig(epochs=2))
    with pytest.raises(ConfigError):
        trainer.set_hyperparameters(**change)
    assert trainer.config == TrainConfig(epochs=2)
    assert trainer.run().status == "finished"


def test_batch_larger_than_the_data_is_capped():
    X = np.random.default_rng(0).random((30, 8), dtype=np.float32)
    trainer = Trainer(X, ModelConfig(8, 3), TrainConfig(batch_size=10**9, epochs=2))
    assert trainer.batch_size == 30 and trainer.run().step == 2


# ----------------------------------------------------------------------------------- 3. saved models

def _model(n: int = 12, s: int = 5) -> SparseAutoencoder:
    model = SparseAutoencoder(n, s)
    model.reset_parameters(torch.Generator().manual_seed(0))
    return model


def _edit_header(data: bytes, edit) -> bytes:
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    edit(header)
    raw = json.dumps(header).encode()
    return len(raw).to_bytes(8, "little") + raw + data[8 + n:]


def _set_meta(key, value):
    return lambda h: h["__metadata__"].__setitem__(key, value)


def _nan_weights(data: bytes) -> bytes:
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    start = 8 + n + header["encoder.weight"]["data_offsets"][0]
    return data[:start] + np.full(4, np.nan, np.float32).tobytes() + data[start + 16:]


GOOD = model_to_bytes(_model(), TrainConfig())
BAD_MODELS = [
    # (id, bytes, expected ModelConfig or None, message regex)
    ("truncated-empty", GOOD[:0], None, "empty"),
    ("truncated-header", GOOD[:40], None, "truncated"),
    ("truncated-data", GOOD[:-1], None, "truncated"),
    ("truncated-half", GOOD[:len(GOOD) // 2], None, "truncated"),
    ("tampered-header-json", GOOD[:8] + b"}" + GOOD[9:], None, "not valid JSON|corrupt"),
    ("tampered-length", b"\xff" * 8 + GOOD[8:], None, "header length field is corrupt"),
    ("tampered-shape", _edit_header(GOOD, lambda h: h["encoder.weight"].__setitem__("shape", [6, 12])), None,
     "corrupt|shape"),
    ("tampered-config", _edit_header(GOOD, _set_meta("model_config", json.dumps(
        {"n_inputs": 12, "n_hidden": 7}))), None, r"encoder.weight has shape \(5, 12\), expected \(7, 12\)"),
    ("tampered-config-invalid", _edit_header(GOOD, _set_meta("model_config", json.dumps(
        {"n_inputs": 12, "n_hidden": 0}))), None, "n_hidden must be between 1"),
    ("tampered-format", _edit_header(GOOD, _set_meta("format", "evil")), None, "not a Sparse Autoencoder Lab model"),
    ("tampered-train-config", _edit_header(GOOD, _set_meta("train_config", json.dumps({"lr": 1e3}))), None,
     "learning rate"),
    ("tampered-nan-weights", _nan_weights(GOOD), None, "NaN or infinite"),
    ("pickle", b"\x80\x04\x95" + b"\x00" * 64, None, "pickle"),
    ("other-shape", model_to_bytes(_model(12, 7)), ModelConfig(12, 5), "12 -> 7 model but 12 -> 5 is needed"),
    ("other-inputs", GOOD, ModelConfig(784, 5), "12 -> 5 model but 784 -> 5 is needed"),
]


@pytest.mark.parametrize("data, expect, match", [c[1:] for c in BAD_MODELS], ids=[c[0] for c in BAD_MODELS])
def test_bad_model_file_is_refused_with_a_clear_message(data, expect, match):
    with pytest.raises(RunFileError, match=match) as info:
        model_from_bytes(data, expect=expect, what="upload.safetensors")
    assert "upload.safetensors" in str(info.value) and "\n" not in str(info.value)


def test_a_model_file_that_does_not_say_its_decoder_is_refused_unless_the_caller_does():
    """A flipped byte in the key "model_config" (the keys come in a random order, so hypothesis found it only now
    and then) left the configuration to ``expect``, whose decoder is ModelConfig's default "auto": a ConfigError
    escaped instead of the file's own message."""
    from safetensors.torch import save

    tensors = {k: v.contiguous() for k, v in _model().state_dict().items()}
    bare = save(tensors, metadata={"format": "sae-model"})
    with pytest.raises(RunFileError, match="does not record which decoder"):
        model_from_bytes(bare, expect=ModelConfig(12, 5), what="upload.safetensors")
    model, _, _ = model_from_bytes(bare, expect=ModelConfig(12, 5, decoder_activation="linear"))
    assert model.config.decoder_activation == "linear"


def test_the_good_model_file_loads():
    model, train, _ = model_from_bytes(GOOD, expect=ModelConfig(12, 5))
    for name, p in _model().state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], p, rtol=0, atol=0)
    assert train == TrainConfig()


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(flips=st.lists(st.tuples(st.integers(0, len(GOOD) - 1), st.integers(1, 255)), min_size=1, max_size=6),
       cut=st.one_of(st.none(), st.integers(0, len(GOOD))))
def test_a_model_file_with_flipped_bytes_loads_soundly_or_is_refused(flips, cut):
    data = bytearray(GOOD)
    for i, x in flips:
        data[i] ^= x
    data = bytes(data[:cut] if cut is not None else data)
    try:
        model, _, _ = model_from_bytes(data, expect=ModelConfig(12, 5))
    except RunFileError as exc:
        assert str(exc)
        return
    assert model.config.n_inputs == 12 and model.config.n_hidden == 5  # flipped weight bytes are just numbers
    assert all(torch.isfinite(p).all() for p in model.parameters())


# ----------------------------------------------------------------------------------- 4. server settings

def test_production_server_settings():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    server = config["server"]
    assert server["headless"] is True
    assert server["fileWatcherType"] == "none" and server["runOnSave"] is False
    assert server["enableXsrfProtection"] is True
    assert 1 <= server["maxUploadSize"] <= 50
    assert config["browser"]["gatherUsageStats"] is False
    from sae.ui import upload
    assert upload.UPLOAD_LIMIT_MB >= server["maxUploadSize"]  # the code's cap is not looser than announced


def test_no_pickle_anywhere_a_user_file_is_read():
    """Every np.load in the library passes allow_pickle=False; no torch.load or pickle.load at all."""
    import re

    for path in (ROOT / "sae").rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"\b(torch|pickle|joblib|dill)\.loads?\(", text), path
        for m in re.finditer(r"np\.load\(", text):
            call = text[m.start():m.start() + 160].split("\n\n")[0]
            assert "allow_pickle=False" in call, f"{path}: {call}"


# ----------------------------------------------------------------------------------- property-based: the UI parsers

@settings(max_examples=300, deadline=None, database=None)
@given(params=st.dictionaries(st.sampled_from(["data", "hidden", "act", "penalty", "k", "opt", "rho", "beta", "lambda",
                                               "lr", "batch", "epochs", "iters", "seed", "other"]),
                              st.one_of(st.text(max_size=12), st.floats().map(str), st.integers().map(str),
                                        st.sampled_from(["0", "1", "-1", "1e3", "1e309", "nan", "inf", "10**9",
                                                         "upload", "KL", "topk", "2048", "0.8"])),
                              max_size=8))
def test_any_url_gives_valid_settings_and_a_warning_per_unusable_value(params):
    from sae.ui.url import BATCH_OPTIONS, INT_LIMITS, LR_OPTIONS, RHO_OPTIONS, check_url
    from sae.app.settings import Settings

    settings_, warnings = check_url(params)
    assert isinstance(settings_, Settings)
    assert settings_.rho in RHO_OPTIONS and settings_.lr in LR_OPTIONS and settings_.batch_size in BATCH_OPTIONS
    for name, (lo, hi) in INT_LIMITS.items():
        assert lo <= getattr(settings_, name) <= hi
    settings_.train_config()  # the library accepts every value the URL can produce
    assert len(warnings) <= len(params)
    for w in warnings:
        assert "using the default" in w and "\n" not in w


@settings(max_examples=300, deadline=None, database=None)
@given(text=st.one_of(st.text(max_size=24), st.from_regex(r"\s*\d{1,6}\s*[x×X*, ]\s*\d{1,6}\s*", fullmatch=True)))
def test_image_shape_parser_returns_two_ints_or_a_data_error(text):
    from sae.ui.upload import parse_image_shape

    try:
        shape = parse_image_shape(text)
    except DataError as exc:
        assert "height×width" in str(exc)
        return
    assert shape is None and not text.strip() or (isinstance(shape, tuple) and len(shape) == 2
                                                  and all(isinstance(v, int) for v in shape))


# ----------------------------------------------------------------------------------- 1b. uploads against the pages

AppTest = pytest.importorskip("streamlit.testing.v1").AppTest
SMALL = {"data": "digits", "hidden": "16", "epochs": "1000"}


def app(params=None):
    at = AppTest.from_file(HOME, default_timeout=60)
    for k, v in (params or SMALL).items():
        at.query_params[k] = v
    return at.run()


def upload(at, filename: str, payload: bytes, shape: str = "", labels: str = "", scale: bool = True):
    at.get("file_uploader")[0].set_value((filename, payload, "application/octet-stream"))
    at.text_input(key="up_shape").set_value(shape)
    at.text_input(key="up_labels").set_value(labels)
    at.checkbox(key="up_scale").set_value(scale)
    return at.button(key="btn_upload").click().run()


def no_exception(at) -> None:
    assert not at.exception, [e.value for e in at.exception]


def widget_values(at) -> dict:
    from sae.ui.url import KEYS

    return {k: at.session_state[k] for k in KEYS if k in at.session_state}


@pytest.mark.parametrize("filename, payload, form, match", [c[1:] for c in BAD_UPLOADS], ids=UPLOAD_IDS)
def test_bad_upload_in_the_page_shows_why_and_keeps_everything(filename, payload, form, match):
    import re

    at = app()
    at.button(key="btn_step").click().run()
    at.button(key="btn_step").click().run()
    job = at.session_state["sae_job"]
    assert wait_for(lambda: job.latest().step == 2)
    before = (job.latest().version, job.settings, {k: v.copy() for k, v in job.history().items()},
              {k: v.copy() for k, v in job.latest().weights.items()}, widget_values(at), dict(at.query_params))

    UNPICKLED.clear()
    upload(at, filename, payload, shape=form.get("shape", ""))
    no_exception(at)
    errors = [e.value for e in at.sidebar.error]
    assert any(re.search(match, e) for e in errors), errors
    assert UNPICKLED == []
    assert "sae_upload" not in at.session_state
    # the session keeps what it had: the same job, model, history and settings
    assert at.session_state["sae_job"] is job
    version, settings_, history, weights, widgets, query = before
    assert job.latest().version == version and job.settings == settings_ and job.latest().step == 2
    for k, v in job.history().items():
        np.testing.assert_array_equal(v, history[k])
    for k, v in job.latest().weights.items():
        np.testing.assert_array_equal(v, weights[k])
    assert widget_values(at) == widgets and dict(at.query_params) == query
    # and it can go on training
    at.button(key="btn_step").click().run()
    assert wait_for(lambda: job.latest().step == 3)


def test_an_uploaded_file_name_never_becomes_a_path():
    at = app()
    upload(at, "../../../etc/passwd.csv", b"1,2\n3,4\n5,6\n")
    no_exception(at)
    data = at.session_state["sae_upload"]
    assert data.X.shape == (3, 2)  # the bytes that were sent, not a file on the server
    assert "/" not in data.name and "/" not in data.description


def test_bad_image_shape_text_is_explained():
    at = app()
    upload(at, "d.csv", b"1,2,3,4\n5,6,7,8\n", shape="two by two")
    no_exception(at)
    assert any("height×width" in e.value for e in at.sidebar.error)


def test_good_upload_becomes_the_data_set_and_a_trained_run_asks_before_restarting():
    at = app()
    at.button(key="btn_train").click().run()
    job = at.session_state["sae_job"]
    assert wait_for(lambda: job.latest().step > 5)
    rows = np.random.default_rng(0).integers(0, 256, size=(60, 16))
    csv = "\n".join(",".join(map(str, r)) for r in rows).encode()
    upload(at, "pixels.csv", csv, shape="4x4")
    no_exception(at)
    assert not at.sidebar.error
    data = at.session_state["sae_upload"]
    assert data.X.shape == (60, 16) and data.image_shape == (4, 4)
    assert data.X.min() == 0.0 and data.X.max() == 1.0  # scaled into [0, 1]
    assert at.selectbox(key="data").value == "upload"
    assert at.session_state["sae_job"] is job and job.status in ("running", "queued")  # not restarted
    assert any("data set → your file" in w.value for w in at.warning)
    assert at.query_params["data"] in ("upload", ["upload"])  # the URL says the data are the session's file
    at.button(key="btn_restart").click().run()
    new = at.session_state["sae_job"]
    assert new is not job and new.data is data and new.model_config.n_inputs == 16
    assert wait_for(lambda: new.latest().step > 0)


def test_a_pandas_csv_skips_its_header_and_the_page_says_what_was_done():
    import pandas as pd

    rows = np.random.default_rng(0).integers(0, 256, size=(40, 16))
    frame = pd.DataFrame(rows)
    frame.insert(0, "label", np.arange(40) % 4)
    at = app()
    upload(at, "pixels.csv", frame.to_csv(index=False).encode(), labels="label")
    no_exception(at)
    data = at.session_state["sae_upload"]
    assert data.X.shape == (40, 16) and data.X.min() == 0.0 and data.X.max() == 1.0  # the header is not a sample
    np.testing.assert_array_equal(data.labels, np.arange(40) % 4)
    shown = " ".join(i.value for i in at.sidebar.info)
    assert "header" in shown and "Min-max scaled from [" in shown
    assert at.query_params["data"] in ("upload", ["upload"])


def test_a_link_with_data_upload_but_no_file_falls_back_with_a_warning():
    at = app({"data": "upload"})
    no_exception(at)
    assert job_of_session(at).data.name == "patches"
    assert any("data=upload" in w.value for w in at.sidebar.warning)


def job_of_session(at):
    return at.session_state["sae_job"]


def test_a_second_upload_under_the_same_name_is_a_new_data_set():
    at = app()
    upload(at, "a.csv", b"1,2\n3,4\n5,6\n")
    first = at.session_state["sae_job"]
    assert first.data.n_samples == 3  # an untrained job is rebuilt silently
    at.button(key="btn_step").click().run()
    upload(at, "a.csv", b"1,2\n3,4\n5,6\n7,8\n")
    assert at.session_state["sae_job"] is first  # it has trained: ask first
    assert any("your file" in w.value for w in at.warning)
    at.button(key="btn_restart").click().run()
    assert at.session_state["sae_job"].data.n_samples == 4


PAGES = ["pages/1_kl_penalty.py", "pages/2_filters.py", "pages/3_activations.py", "pages/4_codes.py",
         "pages/5_reconstructions.py", "dashboard.py"]


@pytest.mark.parametrize("filename, payload, form", [
    ("one-feature.csv", b"\n".join(b"%d" % i for i in range(20)), {}),
    ("labelled.csv", b"a,b,c,label\n" + b"\n".join(b"%d,%d,%d,%d" % (i, i % 3, 7 - i % 5, i % 2) for i in range(30)),
     {"labels": "label"}),
    ("images.npy", npy_bytes(np.random.default_rng(1).random((25, 6, 5))), {}),
    ("raw.npy", npy_bytes(np.random.default_rng(2).normal(size=(40, 9)) * 100), {"scale": False}),
], ids=["1-feature", "labels", "3-d-images", "unscaled"])
def test_every_page_draws_an_uploaded_data_set(filename, payload, form):
    at = app()
    upload(at, filename, payload, labels=form.get("labels", ""), scale=form.get("scale", True))
    no_exception(at)
    assert not at.sidebar.error, [e.value for e in at.sidebar.error]
    job = at.session_state["sae_job"]
    assert job.data is at.session_state["sae_upload"]
    at.button(key="btn_step").click().run()
    assert wait_for(lambda: job.latest().step >= 1)
    for page in PAGES:
        at.switch_page(page).run()
        no_exception(at)
        assert at.session_state["sae_job"] is job and at.selectbox(key="data").value == "upload"
