"""The model file: a trained model as safetensors bytes, and back, with nothing but numbers and strings in it.

    model.safetensors   the four float32 tensors encoder.weight (s, n), encoder.bias (s,),
                        decoder.weight (n, s), decoder.bias (n,); its metadata repeats the configs
                        as JSON strings (``model_config``, ``train_config``), so the file stands alone
                        (upload / download), and holds the data set name ("dataset"), the Lab version
                        ("sae_version") and the training step the weights are from ("step"), if given

:func:`model_to_bytes` writes it; :func:`run_from_bytes` (a :class:`Run` without history or path) and
:func:`model_from_bytes` read it, checking the header, the shapes, the dtypes and the values before building
the model. Nothing is ever pickled or read with ``torch.load``: a pickle or ``torch.save`` checkpoint is
refused. Every problem with a file a user gives us is a :class:`RunFileError` whose message names the file
and says what is wrong with it. Run directories (``config.json`` + this file + ``history.npz``) are
:mod:`sae.runs.files`.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sae.core.config import ConfigError, ModelConfig, TrainConfig, config_from_dict, config_to_dict
from sae.core.model import SparseAutoencoder

FORMAT_VERSION = 1  # of the model file and of the run directory's config.json
MODEL_FORMAT = "sae-model"
TENSOR_NAMES = ("encoder.weight", "encoder.bias", "decoder.weight", "decoder.bias")
MAX_MODEL_BYTES = 256 * 2**20  # a 784 -> 4096 model is 26 MB; the largest allowed config is far beyond use
MAX_HEADER_BYTES = 2**20  # safetensors JSON header


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
    optimizer_state: dict[str, torch.Tensor] | None = None  # Trainer.optimizer_state() if saved with the run


def lab_version() -> str:
    """The version of the Lab writing a file (``sae.__version__``), recorded in it as ``sae_version``."""
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
    metadata = {"format": MODEL_FORMAT, "format_version": str(FORMAT_VERSION), "sae_version": lab_version(),
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


def read_header(data: bytes, what: str) -> tuple[dict[str, Any], dict[str, str]]:
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


def config_from_json(cls: type, text: Any, what: str) -> Any:
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
    header, metadata = read_header(data, what)
    fmt = metadata.get("format")
    if fmt is not None and fmt != MODEL_FORMAT:
        raise RunFileError(f"{what} is a {fmt!r} file, not a Sparse Autoencoder Lab model.")
    version = metadata.get("format_version", str(FORMAT_VERSION))
    if not version.isdigit() or int(version) > FORMAT_VERSION:
        raise RunFileError(f"{what} has format version {version!r}; this version of the Lab reads "
                           f"version {FORMAT_VERSION} (update the Lab to read it).")
    if "model_config" in metadata:
        config = config_from_json(ModelConfig, metadata["model_config"], what)
    elif expect is not None:
        config = expect
    else:
        raise RunFileError(f"{what} carries no model configuration in its metadata; "
                           f"was it saved by the Sparse Autoencoder Lab?")
    train = config_from_json(TrainConfig, metadata["train_config"], what) if "train_config" in metadata else None
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
    if config.decoder_activation == "auto":  # ModelConfig's default: the file (or expect) does not say
        raise RunFileError(f"{what} does not record which decoder its weights use (sigmoid or linear); "
                           f"was it saved by the Sparse Autoencoder Lab?")
    model = SparseAutoencoder.from_config(config)
    model.load_state_dict({name: tensors[name] for name in TENSOR_NAMES}, strict=True)
    return Run(model.eval(), config, train, metadata.get("dataset"), sae_version=metadata.get("sae_version"),
               step=None if step is None else int(step))


__all__ = ["Run", "RunFileError", "model_to_bytes", "model_from_bytes", "run_from_bytes", "tensor_shapes",
           "config_from_json", "read_header", "lab_version", "FORMAT_VERSION", "MODEL_FORMAT", "TENSOR_NAMES", "MAX_MODEL_BYTES",
           "MAX_HEADER_BYTES"]
