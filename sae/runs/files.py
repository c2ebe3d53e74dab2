"""Run directories: a trained model saved with its configuration and training history, and loaded back.

A run directory holds three files:

    config.json         {"format": "sae-run", "format_version": 1, "sae_version": ..., "dataset": ...,
                         "model": ModelConfig fields, "train": TrainConfig fields or null}
    model.safetensors   the model file of :mod:`sae.runs.model_file` (its metadata repeats the configs)
    history.npz         optional: the training history, one float64 (rows,) array per column
                        (np.savez; read back with allow_pickle=False)

:func:`save_run` writes every file atomically (a temporary file, then a rename); :func:`load_run` checks each
one and returns a :class:`sae.runs.model_file.Run`. Nothing is ever pickled or read with ``torch.load``. Every
problem is a :class:`sae.runs.model_file.RunFileError` whose message names the file and says what is wrong.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from sae.core.config import ModelConfig, TrainConfig, config_to_dict
from sae.core.model import SparseAutoencoder
from sae.runs.model_file import (FORMAT_VERSION, MAX_MODEL_BYTES, Run, RunFileError, config_from_json, lab_version,
                                 model_to_bytes, run_from_bytes)

RUN_FORMAT = "sae-run"
CONFIG_FILE, MODEL_FILE, HISTORY_FILE = "config.json", "model.safetensors", "history.npz"
MAX_CONFIG_BYTES = 2**20
MAX_HISTORY_BYTES = 64 * 2**20
_CONFIG_KEYS = {"format", "format_version", "sae_version", "dataset", "model", "train"}


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
    config = {"format": RUN_FORMAT, "format_version": FORMAT_VERSION, "sae_version": lab_version(),
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
    model_config = config_from_json(ModelConfig, config["model"], what)
    train = config.get("train")
    train_config = None if train is None else config_from_json(TrainConfig, train, what)

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


__all__ = ["save_run", "load_run", "RUN_FORMAT", "CONFIG_FILE", "MODEL_FILE", "HISTORY_FILE", "MAX_CONFIG_BYTES",
           "MAX_HISTORY_BYTES"]
