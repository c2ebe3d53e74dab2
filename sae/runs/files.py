"""Saving and loading trained models: run directories and in-memory safetensors bytes.

A run directory holds three files:

    config.json         {"format": "sae-run", "format_version": 1, "sae_version": ..., "dataset": ...,
                         "model": ModelConfig fields, "train": TrainConfig fields or null}
    model.safetensors   the four float32 tensors encoder.weight (s, n), encoder.bias (s,),
                        decoder.weight (n, s), decoder.bias (n,); its metadata repeats the configs
                        as JSON strings, so the file also stands alone (upload / download), and
                        holds the training step the weights are from ("step"), if it was given
    history.npz         optional: the training history, one float64 (rows,) array per column
                        (np.savez; read back with allow_pickle=False)

Nothing is ever pickled or read with ``torch.load``: a model file can only carry numbers and
strings, never code. Every problem with a file a user gives us is a :class:`RunFileError` whose
message names the file and says what is wrong with it.
"""

from __future__ import annotations

import io
import json
import os
import struct
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sae.core.config import ConfigError, ModelConfig, TrainConfig, config_from_dict, config_to_dict
from sae.core.model import SparseAutoencoder

FORMAT_VERSION = 1
RUN_FORMAT, MODEL_FORMAT = "sae-run", "sae-model"
CONFIG_FILE, MODEL_FILE, HISTORY_FILE = "config.json", "model.safetensors", "history.npz"
TENSOR_NAMES = ("encoder.weight", "encoder.bias", "decoder.weight", "decoder.bias")
MAX_MODEL_BYTES = 256 * 2**20  # a 784 -> 4096 model is 26 MB; the largest allowed config is far beyond use
MAX_CONFIG_BYTES = 2**20
MAX_HISTORY_BYTES = 64 * 2**20
MAX_HEADER_BYTES = 2**20  # safetensors JSON header
_CONFIG_KEYS = {"format", "format_version", "sae_version", "dataset", "model", "train"}


class RunFileError(ValueError):
    """A run directory or model file that cannot be saved or loaded; the message says which and why."""


@dataclass
class Run:
    """A loaded run directory."""

    model: SparseAutoencoder  # in eval mode
    model_config: ModelConfig
    train_config: TrainConfig | None
    dataset: str | None  # the data set it was trained on, as recorded (e.g. "patches", "file:my.csv")
    history: dict[str, np.ndarray] = field(default_factory=dict)  # column -> (rows,) float64; {} if none saved
    path: Path | None = None
    sae_version: str | None = None  # the Lab version that wrote it
    step: int | None = None  # the training step the weights are from; None if not recorded (older files)


def _sae_version() -> str:
    import sae

    return getattr(sae, "__version__", "unknown")


def tensor_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """The shape of each saved tensor for a model config: W1 (s, n), b1 (s,), W2 (n, s), b2 (n,)."""
    n, s = config.n_inputs, config.n_hidden
    return {"encoder.weight": (s, n), "encoder.bias": (s,), "decoder.weight": (n, s), "decoder.bias": (n,)}


# ----------------------------------------------------------------------------- model <-> bytes

def model_to_bytes(model: SparseAutoencoder, train_config: TrainConfig | None = None,
                   dataset: str | None = None, *, step: int | None = None) -> bytes:
    """The model as safetensors bytes (float32 tensors), with its configs as JSON in the metadata, and
    ``step`` (the training step the weights are from; a whole number >= 0) if given."""
    if step is not None and (isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0):
        raise RunFileError(f"the step must be a whole number >= 0, got {step!r}; nothing was saved.")
    tensors, state = {}, model.state_dict()
    for name in TENSOR_NAMES:
        tensor = state[name].detach().to(device="cpu", dtype=torch.float32).contiguous().clone()
        if not torch.isfinite(tensor).all():
            raise RunFileError(f"the model's {name} contains NaN or infinite values; nothing was saved.")
        tensors[name] = tensor
    metadata = {"format": MODEL_FORMAT, "format_version": str(FORMAT_VERSION), "sae_version": _sae_version(),
                "model_config": json.dumps(config_to_dict(model.config))}
    if train_config is not None:
        metadata["train_config"] = json.dumps(config_to_dict(train_config))
    if dataset is not None:
        metadata["dataset"] = str(dataset)
    if step is not None:
        metadata["step"] = str(int(step))
    from safetensors.torch import save

    return save(tensors, metadata=metadata)


def _looks_like_pickle(data: bytes) -> bool:
    """torch.save writes a ZIP archive (PK..) around a pickle; plain pickles start with 0x80 (protocol 2+)."""
    return data[:2] == b"PK" or data[:1] == b"\x80"


def _read_header(data: bytes, what: str) -> tuple[dict[str, Any], dict[str, str]]:
    """Parse and check a safetensors header: 8-byte little-endian length N, then N bytes of JSON.

    Returns (tensor entries name -> {dtype, shape, data_offsets}, metadata).
    """
    if not data:
        raise RunFileError(f"{what} is empty (0 bytes).")
    if len(data) < 8:
        raise RunFileError(f"{what} is truncated: {len(data)} bytes is too short to be a safetensors file.")
    (n,) = struct.unpack("<Q", data[:8])
    plausible = n <= MAX_HEADER_BYTES and 8 + n <= len(data) and data[8:9] == b"{"
    if not plausible and _looks_like_pickle(data):
        raise RunFileError(f"{what} is a pickle / torch.save checkpoint, which can run code when loaded; "
                           f"it is refused: save models as safetensors (save_run or model_to_bytes).")
    if n > MAX_HEADER_BYTES:
        raise RunFileError(f"{what} is not a safetensors file (its header length field is corrupt).")
    if 8 + n > len(data):
        raise RunFileError(f"{what} is truncated: its header needs {n} bytes but only {len(data) - 8} follow.")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise RunFileError(f"{what} is corrupt or not a safetensors file (its header is not valid JSON).") from None
    if not isinstance(header, dict):
        raise RunFileError(f"{what} is corrupt: its header is not a JSON object.")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise RunFileError(f"{what} is corrupt: its metadata must map names to strings.")
    body = len(data) - 8 - n
    for name, entry in header.items():
        ok = (isinstance(entry, dict) and isinstance(entry.get("shape"), list)
              and isinstance(entry.get("data_offsets"), list) and len(entry["data_offsets"]) == 2
              and all(isinstance(v, int) for v in entry["data_offsets"] + entry["shape"]))
        if not ok:
            raise RunFileError(f"{what} is corrupt: the header entry of tensor {name!r} is malformed.")
        if entry["data_offsets"][1] > body:
            raise RunFileError(f"{what} is truncated: tensor {name!r} ends at byte {entry['data_offsets'][1]} "
                               f"of the data but only {body} bytes of data are present.")
    return header, metadata


def _config_from_json(cls: type, text: Any, what: str) -> Any:
    """A config dataclass from a JSON string (metadata) or an already-decoded dict (config.json)."""
    if isinstance(text, str):
        try:
            text = json.loads(text)
        except json.JSONDecodeError:
            raise RunFileError(f"{what}: the stored {cls.__name__} is not valid JSON.") from None
    try:
        return config_from_dict(cls, text)
    except ConfigError as exc:
        raise RunFileError(f"{what}: {exc}") from None


def _check_expected(config: ModelConfig, expect: ModelConfig | None, what: str) -> None:
    if expect is not None and (config.n_inputs, config.n_hidden) != (expect.n_inputs, expect.n_hidden):
        raise RunFileError(f"{what} holds a {config.n_inputs} -> {config.n_hidden} model but "
                           f"{expect.n_inputs} -> {expect.n_hidden} is needed here "
                           f"({expect.n_inputs} inputs, {expect.n_hidden} hidden units).")


def model_from_bytes(data: bytes, expect: ModelConfig | None = None, *, what: str = "the model file",
                     max_bytes: int = MAX_MODEL_BYTES) -> tuple[SparseAutoencoder, TrainConfig | None, str | None]:
    """(model in eval mode, the TrainConfig stored with it or None, the data set name or None) from
    :func:`model_to_bytes` output: :func:`run_from_bytes` (see it for the arguments) without the rest."""
    run = run_from_bytes(data, expect, what=what, max_bytes=max_bytes)
    return run.model, run.train_config, run.dataset


def run_from_bytes(data: bytes, expect: ModelConfig | None = None, *, what: str = "the model file",
                   max_bytes: int = MAX_MODEL_BYTES) -> Run:
    """Rebuild a model from :func:`model_to_bytes` output (or any safetensors file with the four tensors),
    with what its metadata records: a :class:`Run` without history or path.

    Args:
        data: the safetensors bytes.
        expect: if given, the model must have its n_inputs and n_hidden (else RunFileError); it also
            supplies the configuration when the file's metadata carries none.
        what: how messages name the file (a path, an upload's name).
        max_bytes: refuse larger inputs before parsing them.

    Returns:
        a Run: the model in eval mode, its config, the TrainConfig stored with it or None, the data set name
        or None, the Lab version that wrote it or None, the training step of the weights or None.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise RunFileError(f"{what}: expected bytes, got {type(data).__name__}.")
    data = bytes(data)
    if len(data) > max_bytes:
        raise RunFileError(f"{what} is too large ({len(data) / 2**20:.1f} MiB); the limit is "
                           f"{max_bytes / 2**20:.0f} MiB.")
    header, metadata = _read_header(data, what)
    fmt = metadata.get("format")
    if fmt is not None and fmt != MODEL_FORMAT:
        raise RunFileError(f"{what} is a {fmt!r} file, not a Sparse Autoencoder Lab model.")
    version = metadata.get("format_version", str(FORMAT_VERSION))
    if not version.isdigit() or int(version) > FORMAT_VERSION:
        raise RunFileError(f"{what} has format version {version!r}; this version of the Lab reads "
                           f"version {FORMAT_VERSION} (update the Lab to read it).")
    if "model_config" in metadata:
        config = _config_from_json(ModelConfig, metadata["model_config"], what)
    elif expect is not None:
        config = expect
    else:
        raise RunFileError(f"{what} carries no model configuration in its metadata; "
                           f"was it saved by the Sparse Autoencoder Lab?")
    train = _config_from_json(TrainConfig, metadata["train_config"], what) if "train_config" in metadata else None
    _check_expected(config, expect, what)

    shapes = tensor_shapes(config)
    missing, extra = sorted(set(shapes) - set(header)), sorted(set(header) - set(shapes))
    if missing:
        raise RunFileError(f"{what} is missing tensor(s) {', '.join(missing)}.")
    if extra:
        raise RunFileError(f"{what} has unexpected tensor(s) {', '.join(extra)}; "
                           f"expected exactly {', '.join(TENSOR_NAMES)}.")
    for name, shape in shapes.items():
        entry = header[name]
        if entry.get("dtype") != "F32":
            raise RunFileError(f"{what}: tensor {name} has dtype {entry.get('dtype')}, expected float32 (F32).")
        if tuple(entry["shape"]) != shape:
            raise RunFileError(f"{what}: tensor {name} has shape {tuple(entry['shape'])}, expected {shape} "
                               f"for a {config.n_inputs} -> {config.n_hidden} model.")

    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        tensors = load(data)
    except SafetensorError as exc:
        raise RunFileError(f"{what} is corrupt ({exc}).") from None
    for name in TENSOR_NAMES:
        if not torch.isfinite(tensors[name]).all():
            raise RunFileError(f"{what}: tensor {name} contains NaN or infinite values.")
    step = metadata.get("step")
    if step is not None and not (step.isascii() and step.isdigit()):
        raise RunFileError(f"{what} is corrupt: its step {step[:20]!r} is not a whole number.")
    model = SparseAutoencoder.from_config(config)
    model.load_state_dict({name: tensors[name] for name in TENSOR_NAMES}, strict=True)
    return Run(model.eval(), config, train, metadata.get("dataset"), sae_version=metadata.get("sae_version"),
               step=None if step is None else int(step))


# ----------------------------------------------------------------------------- run directories

def _write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file and a rename, so a crash never leaves a half-written file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _history_arrays(history: dict[str, Any], what: str) -> dict[str, np.ndarray]:
    """Check history columns: string names, 1-D real-number arrays of one common length -> float64."""
    if not isinstance(history, dict):
        raise RunFileError(f"{what}: the history must be a dict of column name -> 1-D array.")
    out, length = {}, None
    for name, values in history.items():
        if not isinstance(name, str) or not name or "/" in name:
            raise RunFileError(f"{what}: history column name {name!r} is not a valid name.")
        values = np.asarray(values)
        if values.ndim != 1 or values.dtype.kind not in "biuf":
            raise RunFileError(f"{what}: history column {name!r} must be a 1-D array of numbers, "
                               f"got {values.dtype} with shape {values.shape}.")
        if length is not None and len(values) != length:
            raise RunFileError(f"{what}: history columns have different lengths ({length} and {len(values)}).")
        length = len(values)
        out[name] = values.astype(np.float64)
    return out


def save_run(path: str | os.PathLike, model: SparseAutoencoder, train_config: TrainConfig | None,
             history: dict[str, np.ndarray] | None = None, dataset: str | None = None, *,
             step: int | None = None) -> Path:
    """Write a run directory (created if needed; the run files in it are replaced). Returns its path.

    Without a history any old ``history.npz`` is removed, so a directory never mixes two runs. ``step``, the
    training step the weights are from, goes into the model file's metadata (``Run.step`` on loading).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunFileError(f"{path} exists and is not a directory; choose another output path.")
    config = {"format": RUN_FORMAT, "format_version": FORMAT_VERSION, "sae_version": _sae_version(),
              "dataset": dataset, "model": config_to_dict(model.config),
              "train": None if train_config is None else config_to_dict(train_config)}
    model_bytes = model_to_bytes(model, train_config, dataset, step=step)
    history_bytes = None
    if history is not None:
        buffer = io.BytesIO()
        np.savez(buffer, **_history_arrays(history, str(path / HISTORY_FILE)))
        history_bytes = buffer.getvalue()
    try:
        path.mkdir(parents=True, exist_ok=True)
        _write_atomic(path / MODEL_FILE, model_bytes)
        if history_bytes is not None:
            _write_atomic(path / HISTORY_FILE, history_bytes)
        elif (path / HISTORY_FILE).exists():
            (path / HISTORY_FILE).unlink()
        _write_atomic(path / CONFIG_FILE, (json.dumps(config, indent=2) + "\n").encode("utf-8"))
    except OSError as exc:
        raise RunFileError(f"cannot write the run to {path}: {exc.strerror or exc}.") from None
    return path


def _read_file(path: Path, limit: int, what: str) -> bytes:
    if not path.is_file():
        raise RunFileError(f"{path} is missing: a run directory needs {CONFIG_FILE} and {MODEL_FILE}.")
    try:
        size = path.stat().st_size
        if size > limit:
            raise RunFileError(f"{path} is too large ({size / 2**20:.1f} MiB) to be a {what}.")
        return path.read_bytes()
    except OSError as exc:
        raise RunFileError(f"cannot read {path}: {exc.strerror or exc}.") from None


def _load_config(path: Path) -> dict[str, Any]:
    data = _read_file(path, MAX_CONFIG_BYTES, "run configuration")
    try:
        config = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise RunFileError(f"{path} is not a text file.") from None
    except json.JSONDecodeError as exc:
        raise RunFileError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}, "
                           f"column {exc.colno}).") from None
    if not isinstance(config, dict):
        raise RunFileError(f"{path} must hold a JSON object, got {type(config).__name__}.")
    unknown = sorted(set(config) - _CONFIG_KEYS)
    if unknown:
        raise RunFileError(f"{path} has unknown field(s): {', '.join(unknown)}.")
    for key in ("format_version", "model"):
        if key not in config:
            raise RunFileError(f"{path} lacks the required field {key!r}.")
    if config.get("format", RUN_FORMAT) != RUN_FORMAT:
        raise RunFileError(f"{path} describes a {config['format']!r}, not a Sparse Autoencoder Lab run.")
    version = config["format_version"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise RunFileError(f"{path}: format_version must be a positive whole number, got {version!r}.")
    if version > FORMAT_VERSION:
        raise RunFileError(f"{path} has format version {version}; this version of the Lab reads "
                           f"version {FORMAT_VERSION} (update the Lab to read it).")
    if config.get("dataset") is not None and not isinstance(config["dataset"], str):
        raise RunFileError(f"{path}: dataset must be a string or null.")
    return config


def _load_history(path: Path) -> dict[str, np.ndarray]:
    data = _read_file(path, MAX_HISTORY_BYTES, "training history")
    if not data.startswith(b"PK\x03\x04"):
        raise RunFileError(f"{path} is corrupt: it is not an .npz (ZIP) archive.")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            columns = {name: npz[name] for name in npz.files}
    except ValueError as exc:
        if "pickle" in str(exc):
            raise RunFileError(f"{path} holds pickled Python objects, which are refused.") from None
        raise RunFileError(f"{path} is corrupt ({exc}).") from None
    except (OSError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise RunFileError(f"{path} is corrupt or truncated ({exc}).") from None
    return _history_arrays(columns, str(path))


def load_run(path: str | os.PathLike) -> Run:
    """Read a run directory written by :func:`save_run`; raises RunFileError on any problem."""
    path = Path(path)
    if not path.exists():
        raise RunFileError(f"no run directory at {path}.")
    if not path.is_dir():
        raise RunFileError(f"{path} is not a directory; a run is a directory holding {CONFIG_FILE} "
                           f"and {MODEL_FILE}.")
    config = _load_config(path / CONFIG_FILE)
    what = str(path / CONFIG_FILE)
    model_config = _config_from_json(ModelConfig, config["model"], what)
    train = config.get("train")
    train_config = None if train is None else _config_from_json(TrainConfig, train, what)

    model_path = path / MODEL_FILE
    stored = run_from_bytes(_read_file(model_path, MAX_MODEL_BYTES, "model file"), expect=model_config,
                            what=str(model_path))
    model = stored.model
    if model.config != model_config:
        raise RunFileError(f"{model_path} was saved for a different model ({model.config}) than "
                           f"{CONFIG_FILE} describes ({model_config}).")
    history_path = path / HISTORY_FILE
    history = _load_history(history_path) if history_path.exists() else {}
    return Run(model, model_config, train_config, config.get("dataset"), history, path,
               config.get("sae_version"), stored.step)


__all__ = ["Run", "RunFileError", "save_run", "load_run", "model_to_bytes", "model_from_bytes", "run_from_bytes",
           "tensor_shapes", "FORMAT_VERSION", "CONFIG_FILE", "MODEL_FILE", "HISTORY_FILE", "MAX_MODEL_BYTES"]
