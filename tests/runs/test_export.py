"""sae.runs.export: every download re-imports to the same numbers; uploads are validated; the snippet runs."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from PIL import Image

from sae import ModelConfig, SparseAutoencoder, TrainConfig, Trainer
from sae.data import load_array, load_dataset
from sae.runs.export import (ExportError, codes_csv, download_name, figure_html, figure_png, filters_png, image_png,
                        model_bundle, png_export_available, read_model_bundle, read_model_upload, reproduce_snippet)
from sae.evaluation.metrics import hidden_activations
from sae.runs.files import load_run, save_run
from sae.runs.model_file import RunFileError, model_to_bytes


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def model():
    m = SparseAutoencoder(64, 9)
    g = torch.Generator().manual_seed(3)
    m.reset_parameters(g)
    with torch.no_grad():
        m.encoder.bias.normal_(generator=g)
    return m.eval()


# ----------------------------------------------------------------------------- codes

def test_codes_csv_reimports_to_the_same_numbers(model, digits):
    data = codes_csv(model, digits.X, digits.labels)
    assert data.startswith(b"h0,h1,h2,h3,h4,h5,h6,h7,h8,label\n")
    back = load_array(data, "codes.csv", labels_column="label")
    codes = hidden_activations(model, digits.X)
    assert back.X.shape == codes.shape == (1797, 9)
    np.testing.assert_array_equal(back.X, codes)  # bit-exact float32
    np.testing.assert_array_equal(back.labels, digits.labels)


def test_codes_csv_without_labels(model, digits):
    back = load_array(codes_csv(model, digits.X[:10]), "codes.csv")
    np.testing.assert_array_equal(back.X, hidden_activations(model, digits.X[:10]))
    assert back.labels is None


def test_codes_csv_refuses_mismatched_data(model, digits):
    with pytest.raises(ExportError, match="64 inputs"):
        codes_csv(model, np.zeros((3, 10)))
    with pytest.raises(ExportError, match="labels"):
        codes_csv(model, digits.X[:5], np.arange(4))


# ----------------------------------------------------------------------------- model bundle

def test_bundle_round_trip_gives_identical_outputs(model, digits):
    config = TrainConfig(rho=0.02, beta=2.5)
    hist = {"step": np.arange(5.0), "total": np.linspace(3, 1, 5)}
    data = model_bundle(model, config, "digits", hist)
    assert sorted(zipfile.ZipFile(io.BytesIO(data)).namelist()) == ["config.json", "history.npz",
                                                                    "model.safetensors"]
    run = read_model_bundle(data, "upload.zip")
    assert run.train_config == config and run.dataset == "digits" and run.model_config == model.config
    np.testing.assert_array_equal(run.history["total"], hist["total"])
    X = torch.from_numpy(np.array(digits.X))
    with torch.no_grad():
        for a, b in zip(model(X), run.model(X)):
            assert torch.equal(a, b)
    assert read_model_upload(data, "upload.zip").model_config == model.config


def test_bare_safetensors_upload(model):
    run = read_model_upload(model_to_bytes(model, TrainConfig(), "toy"), "model.safetensors")
    assert run.dataset == "toy" and torch.equal(run.model.encoder.weight, model.encoder.weight)


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, content in entries.items():
            zf.writestr(name, content)
    return buffer.getvalue()


def test_bad_bundles_are_refused_clearly(model):
    data = model_bundle(model, None, "toy")
    good = zipfile.ZipFile(io.BytesIO(data))
    files = {name: good.read(name) for name in good.namelist()}
    with pytest.raises(RunFileError, match="x.zip is not a valid model bundle: it is not a zip archive"):
        read_model_bundle(b"hello", "x.zip")
    with pytest.raises(RunFileError, match="unexpected entries"):
        read_model_bundle(_zip({**files, "../evil.py": b"print(1)"}), "x.zip")
    with pytest.raises(RunFileError, match=r"zip archive without the model weights \(model.safetensors\)"):
        read_model_bundle(_zip({"config.json": files["config.json"]}), "x.zip")
    with pytest.raises(RunFileError, match=r"zip archive without the configuration \(config.json\)"):
        read_model_bundle(_zip({"model.safetensors": files["model.safetensors"]}), "x.zip")
    with pytest.raises(RunFileError, match="x.zip"):
        read_model_bundle(_zip({**files, "config.json": b"{not json"}), "x.zip")
    with pytest.raises(RunFileError, match="pickle"):
        read_model_upload(b"\x80\x04\x95" + b"\x00" * 64, "model.safetensors")


@pytest.mark.parametrize("content,filename", [
    (b"hello", "model.zip"),  # not a zip at all, named like one
    ("truncated", "model.zip"),  # a real bundle cut in half: a damaged zip
    ("truncated", "model"),  # the same without a name that says zip: it starts like one
    (b"PK\x05\x06" + b"\x00" * 8, "model.bin"),  # the start of an empty archive, cut short
], ids=["junk", "truncated", "truncated-no-suffix", "broken-empty"])
def test_an_upload_that_is_a_broken_zip_is_not_called_a_bad_safetensors_file(model, content, filename):
    if content == "truncated":
        data = model_bundle(model, None, "toy")
        content = data[:len(data) // 2]
    with pytest.raises(RunFileError, match=f"{filename} is not a valid model bundle") as info:
        read_model_upload(content, filename)
    assert "safetensors" not in str(info.value)


def test_an_upload_without_the_weights_says_so(model):
    config_only = _zip({"config.json": zipfile.ZipFile(io.BytesIO(model_bundle(model))).read("config.json")})
    with pytest.raises(RunFileError, match="model.zip is a zip archive without the model weights"):
        read_model_upload(config_only, "model.zip")


# ----------------------------------------------------------------------------- the step of the weights

def test_bundles_and_model_files_carry_the_step_of_their_weights(model, tmp_path):
    hist = {"step": np.arange(5.0), "total": np.linspace(3, 1, 5)}
    data = model_bundle(model, TrainConfig(), "digits", hist, step=280)
    assert read_model_bundle(data, "m.zip").step == 280 and read_model_upload(data, "m.zip").step == 280
    bare = model_to_bytes(model, TrainConfig(), "digits", step=7)
    assert read_model_upload(bare, "m.safetensors").step == 7
    assert load_run(save_run(tmp_path / "run", model, None, step=0)).step == 0
    # older bundles and files have no step: None, and the reader falls back on the history
    assert read_model_bundle(model_bundle(model, TrainConfig(), "digits", hist), "old.zip").step is None
    assert read_model_upload(model_to_bytes(model), "old.safetensors").step is None


@pytest.mark.parametrize("step", [-1, 2.5, "3", True])
def test_a_step_that_is_not_a_whole_number_is_refused(model, step):
    with pytest.raises(RunFileError, match="whole number"):
        model_to_bytes(model, step=step)


def test_a_tampered_step_is_refused(model):
    from safetensors.torch import load, save

    data = model_to_bytes(model, step=3)
    metadata = json.loads(data[8:8 + int.from_bytes(data[:8], "little")])["__metadata__"]
    with pytest.raises(RunFileError, match="step '-3' is not a whole number"):
        read_model_upload(save(load(data), metadata={**metadata, "step": "-3"}), "m.safetensors")


# ----------------------------------------------------------------------------- figures

def test_figure_html_embeds_plotly_and_the_figure():
    fig = go.Figure(go.Scatter(x=[1, 2, 3], y=[4.5, 5.5, 6.5], name="curve-xyz"))
    html = figure_html(fig, title="loss <curves>").decode("utf-8")
    assert "curve-xyz" in html and "6.5" in html
    assert "<title>loss curves</title>" in html
    assert "<script src=" not in html and 'src="http' not in html  # plotly.js inline: works offline
    assert len(html) > 1_000_000  # plotly.js itself is inside
    with pytest.raises(ExportError):
        figure_html("not a figure")


def test_png_of_image_views(model):
    png = filters_png(model.encoder.weight.detach().numpy(), (8, 8), scale=3)
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.size == (3 * (3 * 9 + 1), 3 * (3 * 9 + 1))  # 3x3 grid of 8x8 + borders
    assert Image.open(io.BytesIO(image_png(np.eye(4), scale=2))).size == (8, 8)


def test_figure_png_needs_kaleido():
    if png_export_available():
        assert figure_png(go.Figure(go.Scatter(x=[0, 1], y=[0, 1]))).startswith(b"\x89PNG")
    else:
        with pytest.raises(ExportError, match="kaleido"):
            figure_png(go.Figure())


# ----------------------------------------------------------------------------- snippet

def test_reproduce_snippet_runs_and_reproduces():
    model_config = ModelConfig(4, 2)
    train_config = TrainConfig(rho=0.2, beta=1.5, epochs=20.0, batch_size=4, lr=0.05, seed=7)
    code = reproduce_snippet(model_config, train_config, "toy")
    assert "load_dataset('toy')" in code and "TrainConfig(rho=0.2, beta=1.5" in code
    namespace: dict = {}
    exec(compile(code, "<snippet>", "exec"), namespace)  # noqa: S102 - our own generated code
    assert namespace["snapshot"].status == "finished"
    assert namespace["model_config"] == model_config and namespace["train_config"] == train_config
    direct = Trainer(load_dataset("toy").X, model_config, train_config)
    direct.run()
    for key, value in direct.model.state_dict().items():
        assert torch.equal(namespace["model"].state_dict()[key], value)


def test_snippet_for_a_file_dataset_and_odd_names():
    code = reproduce_snippet(ModelConfig(4, 2), TrainConfig(seed=None), "file:my data'); import os #.csv")
    compile(code, "<snippet>", "exec")  # a hostile name stays a string literal
    assert "load_array(\"my data'); import os #.csv\")" in code
    assert "seed=None" in code and "numbers will differ" in code


def test_download_name():
    assert download_name("run ρ=0.01 / β=3", "zip") == "run-0.01-3.zip"
    assert download_name("../../etc/passwd", ".csv") == "etc-passwd.csv"
    assert download_name("", ".png") == "sae-run.png"
