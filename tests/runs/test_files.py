"""sae.runs.files and sae.runs.model_file: bit-exact round trips, and a clear RunFileError for every broken file."""

from __future__ import annotations

import io
import json
import os
import pathlib
import pickle
import stat

import numpy as np
import pytest
import torch
from safetensors.torch import save as st_save

from sae import ModelConfig, SparseAutoencoder, TrainConfig
from sae.core.config import config_to_dict
from sae.runs.files import CONFIG_FILE, HISTORY_FILE, MODEL_FILE, RunExistsError, check_run_target, load_run, save_run
from sae.runs.model_file import Run, RunFileError, model_from_bytes, model_to_bytes


def make_model(n=12, s=5, decoder="sigmoid", seed=0) -> SparseAutoencoder:
    model = SparseAutoencoder(n, s, decoder_activation=decoder)
    g = torch.Generator().manual_seed(seed)
    model.reset_parameters(g)
    with torch.no_grad():  # nonzero biases with awkward bit patterns
        model.encoder.bias.normal_(generator=g)
        model.decoder.bias.normal_(generator=g)
    return model


@pytest.fixture
def model():
    return make_model()


@pytest.fixture
def history():
    rng = np.random.default_rng(0)
    return {"step": np.arange(7, dtype=np.float64), "total": rng.random(7), "rho_hat_mean": rng.random(7) * 1e-3}


@pytest.fixture
def run_dir(tmp_path, model, history):
    return save_run(tmp_path / "run", model, TrainConfig(rho=0.01, optimizer="lbfgs"), history, "patches")


def bits(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy().view(np.int32)


def tensors_of(model, **changes):
    out = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    out.update(changes)
    return out


def meta_of(config: ModelConfig) -> dict[str, str]:
    return {"format": "sae-model", "format_version": "1", "model_config": json.dumps(config_to_dict(config))}


# ----------------------------------------------------------------------------- round trips

def test_run_round_trip_is_bit_exact(run_dir, model, history):
    run = load_run(run_dir)
    assert isinstance(run, Run)
    assert sorted(p.name for p in run_dir.iterdir()) == sorted([CONFIG_FILE, MODEL_FILE, HISTORY_FILE])
    assert run.model_config == model.config
    assert run.train_config == TrainConfig(rho=0.01, optimizer="lbfgs")
    assert run.dataset == "patches" and run.path == run_dir and run.sae_version
    assert not run.model.training
    for (name, a), b in zip(model.state_dict().items(), run.model.state_dict().values()):
        np.testing.assert_array_equal(bits(a), bits(b), err_msg=name)
    assert history.keys() == run.history.keys()
    for k in history:
        assert run.history[k].dtype == np.float64
        np.testing.assert_array_equal(run.history[k].view(np.int64), history[k].view(np.int64))
    x = torch.rand(3, 12)
    assert torch.equal(run.model(x)[0], model(x)[0])


def test_bytes_round_trip_with_linear_decoder():
    model = make_model(decoder="linear", seed=3)
    data = model_to_bytes(model, TrainConfig(beta=1.5), "file:me.csv")
    loaded, train, dataset = model_from_bytes(data, expect=ModelConfig(12, 5))
    assert loaded.config == model.config and train == TrainConfig(beta=1.5) and dataset == "file:me.csv"
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), loaded.parameters()))
    loaded, train, dataset = model_from_bytes(model_to_bytes(model))
    assert train is None and dataset is None


def test_config_json_is_readable_and_without_train_config(tmp_path, model):
    path = save_run(tmp_path / "r", model, None)
    config = json.loads((path / CONFIG_FILE).read_text())
    assert config["format"] == "sae-run" and config["format_version"] == 1
    assert config["model"] == config_to_dict(model.config) and config["train"] is None
    run = load_run(path)
    assert run.train_config is None and run.dataset is None and run.history == {}


def test_saving_without_history_removes_an_old_one(run_dir, model):
    assert (run_dir / HISTORY_FILE).exists()
    save_run(run_dir, model, None, overwrite=True)
    assert not (run_dir / HISTORY_FILE).exists()
    assert load_run(run_dir).history == {}


def test_foreign_safetensors_loads_only_with_an_expected_config(model):
    plain = st_save(tensors_of(model))  # no metadata at all
    with pytest.raises(RunFileError, match="no model configuration"):
        model_from_bytes(plain)
    loaded, _, _ = model_from_bytes(plain, expect=model.config)
    assert torch.equal(loaded.encoder.weight, model.encoder.weight)


# ----------------------------------------------------------------------------- directories and config.json

def test_missing_directory_or_not_a_directory(tmp_path, run_dir):
    with pytest.raises(RunFileError, match="no run directory"):
        load_run(tmp_path / "nope")
    with pytest.raises(RunFileError, match="not a directory"):
        load_run(run_dir / MODEL_FILE)


@pytest.mark.parametrize("name", [CONFIG_FILE, MODEL_FILE])
def test_missing_file(run_dir, name):
    (run_dir / name).unlink()
    with pytest.raises(RunFileError, match=f"{name} is missing"):
        load_run(run_dir)


@pytest.mark.parametrize("edit,match", [
    (lambda c: "{not json", "not valid JSON"),
    (lambda c: b"\xff\xfe\x00bin", "not a text file"),
    (lambda c: "[1, 2]", "must hold a JSON object"),
    (lambda c: dict(c, extra=1), "unknown field.*extra"),
    (lambda c: {k: v for k, v in c.items() if k != "model"}, "lacks the required field 'model'"),
    (lambda c: {k: v for k, v in c.items() if k != "format_version"}, "format_version"),
    (lambda c: dict(c, format_version=99), "format version 99"),
    (lambda c: dict(c, format="something-else"), "not a Sparse Autoencoder Lab run"),
    (lambda c: dict(c, model=dict(c["model"], colour="red")), "unknown ModelConfig field.*colour"),
    (lambda c: dict(c, model={k: v for k, v in c["model"].items() if k != "n_hidden"}), "n_hidden"),
    (lambda c: dict(c, model=dict(c["model"], n_hidden=0)), "n_hidden must be between"),
    (lambda c: dict(c, train=dict(c["train"], rho=2.0)), "rho"),
    (lambda c: dict(c, train=dict(c["train"], speed=1)), "unknown TrainConfig field.*speed"),
    (lambda c: dict(c, dataset=5), "dataset must be a string"),
])
def test_bad_config_json(run_dir, edit, match):
    config = json.loads((run_dir / CONFIG_FILE).read_text())
    new = edit(config)
    path = run_dir / CONFIG_FILE
    if isinstance(new, bytes):
        path.write_bytes(new)
    else:
        path.write_text(new if isinstance(new, str) else json.dumps(new))
    with pytest.raises(RunFileError, match=match) as info:
        load_run(run_dir)
    assert CONFIG_FILE in str(info.value)


def test_model_file_from_another_model(run_dir):
    other = make_model(12, 7)
    (run_dir / MODEL_FILE).write_bytes(model_to_bytes(other))
    with pytest.raises(RunFileError, match="12 -> 7 model but 12 -> 5 is needed"):
        load_run(run_dir)
    same_shape = SparseAutoencoder(12, 5, activation="tanh")
    (run_dir / MODEL_FILE).write_bytes(model_to_bytes(same_shape))
    with pytest.raises(RunFileError, match="different model"):
        load_run(run_dir)


# ----------------------------------------------------------------------------- model.safetensors

@pytest.mark.parametrize("cut", [0, 5, 8, 40, -1, -100])
def test_truncated_model_file(run_dir, cut):
    data = (run_dir / MODEL_FILE).read_bytes()
    (run_dir / MODEL_FILE).write_bytes(data[:cut])
    with pytest.raises(RunFileError, match="truncated|empty") as info:
        load_run(run_dir)
    assert MODEL_FILE in str(info.value)


@pytest.mark.parametrize("data,match", [
    (b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!", "not valid JSON"),
    (b"\x02\x00\x00\x00\x00\x00\x00\x00[]", "not a JSON object"),
    (b"\xff" * 64, "header length field is corrupt"),
    (b"hello world, I am not a model", "not a safetensors file"),
])
def test_corrupt_model_bytes(data, match):
    with pytest.raises(RunFileError, match=match):
        model_from_bytes(data)


def test_corrupt_tensor_entry(model):
    data = st_save(tensors_of(model), metadata=meta_of(model.config))
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    header["encoder.bias"]["data_offsets"] = [0, 3]  # not a whole float32, overlaps another tensor
    raw = json.dumps(header).encode()
    with pytest.raises(RunFileError, match="corrupt"):
        model_from_bytes(len(raw).to_bytes(8, "little") + raw + data[8 + n:])


@pytest.mark.parametrize("change,match", [
    (lambda t: {k: v for k, v in t.items() if k != "decoder.bias"}, "missing tensor.*decoder.bias"),
    (lambda t: dict(t, **{"encoder.extra": torch.zeros(2)}), "unexpected tensor.*encoder.extra"),
    (lambda t: dict(t, **{"encoder.weight": torch.zeros(5, 13)}), r"encoder.weight has shape \(5, 13\), expected \(5, 12\)"),
    (lambda t: dict(t, **{"decoder.weight": t["decoder.weight"].T.contiguous()}), "decoder.weight has shape"),
    (lambda t: dict(t, **{"encoder.bias": t["encoder.bias"].double()}), "dtype F64, expected float32"),
    (lambda t: dict(t, **{"encoder.bias": t["encoder.bias"].half()}), "dtype F16"),
    (lambda t: dict(t, **{"decoder.bias": torch.full((12,), float("nan"))}), "decoder.bias contains NaN"),
    (lambda t: dict(t, **{"encoder.weight": t["encoder.weight"].clone().fill_(float("inf"))}), "infinite"),
])
def test_bad_tensors(model, tmp_path, change, match):
    data = st_save(change(tensors_of(model)), metadata=meta_of(model.config))
    with pytest.raises(RunFileError, match=match):
        model_from_bytes(data)
    run = save_run(tmp_path / "r", model, None)
    (run / MODEL_FILE).write_bytes(data)
    with pytest.raises(RunFileError, match=match):
        load_run(run)


@pytest.mark.parametrize("meta,match", [
    ({"format": "other"}, "not a Sparse Autoencoder Lab model"),
    ({"format_version": "7"}, "format version '7'"),
    ({"model_config": "{oops"}, "not valid JSON"),
    ({"model_config": json.dumps({"n_inputs": 12, "n_hidden": 5, "size": 3})}, "unknown ModelConfig field"),
    ({"train_config": json.dumps({"optimizer": "rmsprop"})}, "optimizer must be one of"),
])
def test_bad_metadata(model, meta, match):
    data = st_save(tensors_of(model), metadata=dict(meta_of(model.config), **meta))
    with pytest.raises(RunFileError, match=match):
        model_from_bytes(data)


def test_expect_mismatch_and_size_limit_and_type(model):
    data = model_to_bytes(model)
    with pytest.raises(RunFileError, match="12 -> 5 model but 784 -> 5 is needed"):
        model_from_bytes(data, expect=ModelConfig(784, 5))
    with pytest.raises(RunFileError, match="too large"):
        model_from_bytes(data, max_bytes=100)
    with pytest.raises(RunFileError, match="expected bytes"):
        model_from_bytes("a string")  # type: ignore[arg-type]
    model_from_bytes(bytearray(data), expect=ModelConfig(12, 5, activation="tanh"))  # shape is what is checked


class _Trap:
    """Unpickling this creates a file: proof that a loader ran pickle."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return pathlib.Path.touch, (self.path,)


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_pickles_are_refused_not_loaded(run_dir, tmp_path, writer):
    trap = tmp_path / "pickle-was-loaded"
    payload = {"encoder.weight": _Trap(trap)}
    if writer == "pickle":
        data = pickle.dumps(payload, protocol=4)
    else:
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        data = buffer.getvalue()
    (run_dir / MODEL_FILE).write_bytes(data)
    with pytest.raises(RunFileError, match="pickle / torch.save checkpoint.*refused"):
        load_run(run_dir)
    with pytest.raises(RunFileError, match="refused"):
        model_from_bytes(data)
    assert not trap.exists()


# ----------------------------------------------------------------------------- history.npz

def test_history_with_objects_is_refused(run_dir, tmp_path):
    trap = tmp_path / "pickle-was-loaded"
    buffer = io.BytesIO()
    np.savez(buffer, step=np.arange(3.0), evil=np.array([_Trap(trap)], dtype=object))
    (run_dir / HISTORY_FILE).write_bytes(buffer.getvalue())
    with pytest.raises(RunFileError, match="pickled Python objects"):
        load_run(run_dir)
    assert not trap.exists()


@pytest.mark.parametrize("content,match", [
    (b"garbage", "corrupt"),
    (None, "corrupt or truncated"),  # a truncated archive
    ("lengths", "different lengths"),
    ("2d", "1-D array of numbers"),
])
def test_bad_history(run_dir, content, match):
    path = run_dir / HISTORY_FILE
    if content is None:
        content = path.read_bytes()[:-30]
    elif content == "lengths":
        buffer = io.BytesIO()
        np.savez(buffer, step=np.arange(3.0), total=np.ones(4))
        content = buffer.getvalue()
    elif content == "2d":
        buffer = io.BytesIO()
        np.savez(buffer, step=np.ones((2, 2)))
        content = buffer.getvalue()
    path.write_bytes(content)
    with pytest.raises(RunFileError, match=match) as info:
        load_run(run_dir)
    assert HISTORY_FILE in str(info.value)


# ----------------------------------------------------------------------------- saving

def test_save_refuses_bad_targets_and_models(tmp_path, model):
    file = tmp_path / "a-file"
    file.write_text("x")
    with pytest.raises(RunFileError, match="not a directory"):
        save_run(file, model, None)
    with torch.no_grad():
        model.encoder.weight[0, 0] = float("nan")
    with pytest.raises(RunFileError, match="NaN or infinite.*nothing was saved"):
        save_run(tmp_path / "nan", model, None)
    assert not (tmp_path / "nan").exists()
    with pytest.raises(RunFileError, match="history column"):
        save_run(tmp_path / "h", make_model(), None, {"step": np.array(["a", "b"])})


# ----------------------------------------------------------------------------- writes never destroy

def snapshot_dir(path: pathlib.Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


def test_an_existing_run_is_not_replaced_without_overwrite(run_dir, model):
    before = snapshot_dir(run_dir)
    with pytest.raises(RunExistsError, match="already holds a run.*overwrite=True"):
        save_run(run_dir, make_model(seed=1), None)
    assert snapshot_dir(run_dir) == before
    assert isinstance(RunExistsError("x"), RunFileError)


def test_overwrite_replaces_the_whole_directory_no_stale_files(run_dir):
    (run_dir / "filters.png").write_bytes(b"an earlier run's picture")
    other = make_model(n=4, s=3)
    save_run(run_dir, other, None, overwrite=True)
    assert sorted(p.name for p in run_dir.iterdir()) == [CONFIG_FILE, MODEL_FILE]  # no stale filters.png, history
    assert load_run(run_dir).model_config.n_inputs == 4
    assert [p.name for p in run_dir.parent.iterdir()] == [run_dir.name]  # no temporary directory left beside it


@pytest.mark.parametrize("name,content", [(CONFIG_FILE, b'{"tool": "someone else"}'), ("notes.txt", b"mine"),
                                          (MODEL_FILE, b"not ours")])
def test_a_directory_of_foreign_files_is_refused_even_with_overwrite(tmp_path, model, name, content):
    target = tmp_path / "theirs"
    target.mkdir()
    (target / name).write_bytes(content)
    for overwrite in (False, True):
        with pytest.raises(RunFileError, match="not a run of the Lab"):
            save_run(target, model, None, overwrite=overwrite)
    assert snapshot_dir(target) == {name: content}


def test_a_run_with_a_foreign_file_beside_it_is_refused(run_dir, model):
    (run_dir / "my-notes.txt").write_text("keep me")
    with pytest.raises(RunFileError, match="my-notes.txt"):
        save_run(run_dir, model, None, overwrite=True)
    assert (run_dir / "my-notes.txt").read_text() == "keep me"


def test_an_empty_directory_is_used(tmp_path, model):
    (tmp_path / "empty").mkdir()
    assert load_run(save_run(tmp_path / "empty", model, None)).model_config == model.config


def test_a_failed_write_leaves_the_old_run_and_no_half_written_one(run_dir, model, monkeypatch):
    import sae.runs.files as files

    before = snapshot_dir(run_dir)
    real, calls = files._write_file, []

    def failing(path, data):
        calls.append(path.name)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real(path, data)

    monkeypatch.setattr(files, "_write_file", failing)
    with pytest.raises(RunFileError, match="No space left on device"):
        save_run(run_dir, make_model(seed=3), None, overwrite=True)
    calls.clear()
    with pytest.raises(RunFileError):
        save_run(run_dir.parent / "new", make_model(seed=3), None)
    assert snapshot_dir(run_dir) == before
    assert sorted(p.name for p in run_dir.parent.iterdir()) == [run_dir.name]  # nothing half-written beside it


def test_check_run_target_before_training(tmp_path, run_dir):
    blocker = tmp_path / "f"
    blocker.write_text("")
    with pytest.raises(RunFileError, match="not a directory"):
        check_run_target(blocker / "run")
    with pytest.raises(RunExistsError):
        check_run_target(run_dir)
    assert check_run_target(run_dir, overwrite=True) == "run"
    assert check_run_target(tmp_path / "a" / "b") == "absent"
    assert not (tmp_path / "a").exists()  # checking creates nothing
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f", "run"]


def test_saved_files_follow_the_umask(tmp_path, model):
    old = os.umask(0o022)
    try:
        path = save_run(tmp_path / "r", model, None, {"step": np.arange(3.0)}, extra_files={"filters.png": b"png"})
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o755
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in path.iterdir()} == {
        CONFIG_FILE: 0o644, MODEL_FILE: 0o644, HISTORY_FILE: 0o644, "filters.png": 0o644}


def test_optimiser_state_round_trip_and_refusals(tmp_path, model):
    state = {"encoder.weight.exp_avg": torch.randn(5, 12), "generator": torch.arange(7, dtype=torch.uint8)}
    path = save_run(tmp_path / "r", model, None, optimizer_state=state)
    loaded = load_run(path).optimizer_state
    assert set(loaded) == set(state) and all(torch.equal(loaded[k], v) for k, v in state.items())
    (path / "optimizer.safetensors").write_bytes(pickle.dumps({"x": 1}))
    with pytest.raises(RunFileError, match="pickle"):
        load_run(path)
    (path / "optimizer.safetensors").write_bytes(st_save(tensors_of(model)))
    with pytest.raises(RunFileError, match="not the optimiser state"):
        load_run(path)
    with pytest.raises(RunFileError, match="dict of name -> tensor"):
        save_run(tmp_path / "r2", model, None, optimizer_state={"a": np.zeros(2)})


def test_errors_are_value_errors():
    assert issubclass(RunFileError, ValueError)
