"""Run directories: a trained model saved with its configuration and training history, and loaded back.

A run directory holds these files and nothing else:

    config.json         {"format": "sae-run", "format_version": 1, "sae_version": ..., "dataset": ...,
                         "model": ModelConfig fields, "train": TrainConfig fields or null}
    model.safetensors   the model file of :mod:`sae.runs.model_file` (its metadata repeats the configs)
    history.npz         optional: the training history, one float64 (rows,) array per column
                        (np.savez; read back with allow_pickle=False)
    optimizer.safetensors  optional: the optimiser state (``Trainer.optimizer_state()``: Adam's moments or SGD's
                        momentum, the random stream, the epoch's batch order), so :func:`continue_run` goes on
                        exactly where the run stopped
    filters.png         optional: the learned filters as a picture (the CLI writes it for image data)

:func:`save_run` never destroys: it refuses a directory holding a run (unless asked to overwrite it) or
anything else, and writes the whole run into a new directory beside the target, moved into place only once
every file is written (:func:`check_run_target` makes the same checks before training). :func:`load_run` checks each
one and returns a :class:`sae.runs.model_file.Run`. Nothing is ever pickled or read with ``torch.load``. Every
problem is a :class:`sae.runs.model_file.RunFileError` whose message names the file and says what is wrong.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sae.core.config import ConfigError, ModelConfig, TrainConfig, config_to_dict
from sae.core.model import SparseAutoencoder
from sae.runs.model_file import (FORMAT_VERSION, MAX_MODEL_BYTES, Run, RunFileError, config_from_json, lab_version,
                                 model_to_bytes, read_header, run_from_bytes)

if TYPE_CHECKING:
    from sae.training.trainer import Trainer

RUN_FORMAT = "sae-run"
CONFIG_FILE, MODEL_FILE, HISTORY_FILE = "config.json", "model.safetensors", "history.npz"
MAX_CONFIG_BYTES = 2**20
MAX_HISTORY_BYTES = 64 * 2**20
OPTIMIZER_FILE, OPTIMIZER_FORMAT = "optimizer.safetensors", "sae-optimizer"
FILTERS_FILE = "filters.png"
EXTRA_FILES = (FILTERS_FILE,)  # files a run directory may hold besides its own
RUN_FILES = (CONFIG_FILE, MODEL_FILE, HISTORY_FILE, OPTIMIZER_FILE, *EXTRA_FILES)
_CONFIG_KEYS = {"format", "format_version", "sae_version", "dataset", "model", "train"}


class RunExistsError(RunFileError):
    """The target directory already holds a run and replacing it was not asked for."""


def _write_file(path: Path, data: bytes) -> None:
    """Write one file of a new run directory (mode from the user's umask, like any file they make)."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _is_our_config(path: Path) -> bool:
    try:
        config = json.loads(path.read_bytes()[:MAX_CONFIG_BYTES].decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(config, dict) and config.get("format") == RUN_FORMAT


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_run_target(path: str | os.PathLike, *, overwrite: bool = False) -> str:
    """Check that a run can be written at ``path`` (call it before training); returns what is there now:
    ``"absent"``, ``"empty"`` (an empty directory) or ``"run"`` (a run of the Lab, only with ``overwrite``).

    Raises RunExistsError for a run without ``overwrite``, and RunFileError for a file, a directory holding
    anything that is not a run's (another tool's ``config.json``, your notes: never replaced) or a place that
    cannot be written. Creates nothing.
    """
    path = Path(path)
    state = "absent"
    if path.exists():
        if not path.is_dir():
            raise RunFileError(f"{path} exists and is not a directory; choose another output path.")
        try:
            names = sorted(p.name for p in path.iterdir())
        except OSError as exc:
            raise RunFileError(f"cannot read the directory {path}: {exc.strerror or exc}.") from None
        if names:
            foreign = [n for n in names if n not in RUN_FILES]
            if foreign or CONFIG_FILE not in names or not _is_our_config(path / CONFIG_FILE):
                shown = ", ".join(foreign[:5]) if foreign else ", ".join(names[:5])
                raise RunFileError(f"{path} holds files that are not a run of the Lab ({shown}); they are never "
                                   f"replaced: choose another output directory.")
            if not overwrite:
                raise RunExistsError(f"{path} already holds a run; nothing was replaced. Continue it, or pass "
                                     f"overwrite=True to replace it.")
            state = "run"
        else:
            state = "empty"
    parent = _nearest_existing(path.parent)
    if not parent.is_dir():
        raise RunFileError(f"cannot write the run to {path}: {parent} exists and is not a directory.")
    try:  # the one reliable test of "can I create a directory there"
        probe = tempfile.mkdtemp(prefix=".sae-write-check-", dir=parent)
        os.rmdir(probe)
    except OSError as exc:
        raise RunFileError(f"cannot write the run to {path}: {parent}: {exc.strerror or exc}.") from None
    return state


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
             step: int | None = None, overwrite: bool = False, optimizer_state: dict[str, Any] | None = None,
             extra_files: dict[str, bytes] | None = None) -> Path:
    """Write a run directory; returns its path. Writes never destroy:

    - ``path`` holding a run is refused (RunExistsError) unless ``overwrite``; then the whole directory is
      replaced, so no file of the earlier run (a ``filters.png`` of another shape) stays beside the new one;
    - ``path`` holding anything else (files that are not a run's) is refused, also with ``overwrite``;
    - the files are written into a new directory beside ``path`` and moved into place only when all are
      written: a failure leaves the earlier run (or nothing) and no half-written run.

    ``step``, the training step the weights are from, goes into the model file's metadata (``Run.step`` on
    loading); ``optimizer_state`` (``Trainer.optimizer_state()``) into ``optimizer.safetensors``: with both,
    :func:`continue_run` continues the run exactly. ``extra_files``: more files of the run by name (only ``filters.png``). Files and directory get
    the modes of the user's umask.
    """
    path = Path(path)
    extra = dict(extra_files or {})
    unknown = sorted(set(extra) - set(EXTRA_FILES))
    if unknown:
        raise RunFileError(f"a run directory holds no {', '.join(unknown)} (extra files: {', '.join(EXTRA_FILES)}).")
    state = check_run_target(path, overwrite=overwrite)
    config = {"format": RUN_FORMAT, "format_version": FORMAT_VERSION, "sae_version": lab_version(),
              "dataset": dataset, "model": config_to_dict(model.config),
              "train": None if train_config is None else config_to_dict(train_config)}
    files = {MODEL_FILE: model_to_bytes(model, train_config, dataset, step=step)}
    if history is not None:
        buffer = io.BytesIO()
        np.savez(buffer, **_history_arrays(history, str(path / HISTORY_FILE)))
        files[HISTORY_FILE] = buffer.getvalue()
    if optimizer_state is not None:
        files[OPTIMIZER_FILE] = _optimizer_bytes(optimizer_state, str(path / OPTIMIZER_FILE))
    files.update(extra)
    files[CONFIG_FILE] = (json.dumps(config, indent=2) + "\n").encode("utf-8")
    _move_into_place(path, files, state)
    return path


def _optimizer_bytes(state: dict[str, Any], what: str) -> bytes:
    import torch
    from safetensors.torch import save

    if not isinstance(state, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in state.items()):
        raise RunFileError(f"{what}: the optimiser state must be a dict of name -> tensor (Trainer.optimizer_state()).")
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}
    return save(tensors, metadata={"format": OPTIMIZER_FORMAT, "format_version": str(FORMAT_VERSION)})


def _load_optimizer(path: Path) -> dict[str, Any]:
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load

    data = _read_file(path, MAX_MODEL_BYTES, "optimiser state")
    _, metadata = read_header(data, str(path))
    if metadata.get("format") != OPTIMIZER_FORMAT:
        raise RunFileError(f"{path} is not the optimiser state of a Lab run.")
    try:
        tensors = load(data)
    except SafetensorError as exc:
        raise RunFileError(f"{path} is corrupt ({exc}).") from None
    for name, t in tensors.items():
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise RunFileError(f"{path}: {name} contains NaN or infinite values.")
    return tensors


def _move_into_place(path: Path, files: dict[str, bytes], state: str) -> None:
    """Write ``files`` into a new directory beside ``path``, then put it at ``path`` (``state``: what is there)."""
    token = secrets.token_hex(4)
    new, old = path.parent / f".{path.name}.new-{token}", path.parent / f".{path.name}.old-{token}"
    moved_away = False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.mkdir(new)  # mode 0777 less the umask
        for name, data in files.items():
            _write_file(new / name, data)
        if state == "empty":
            path.rmdir()
        elif state == "run":
            os.rename(path, old)
            moved_away = True
        os.rename(new, path)
    except OSError as exc:
        shutil.rmtree(new, ignore_errors=True)
        if moved_away and not path.exists():
            os.rename(old, path)
        raise RunFileError(f"cannot write the run to {path}: {exc.strerror or exc}; nothing was changed.") from None
    if moved_away:
        shutil.rmtree(old, ignore_errors=True)


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
    optimizer_path = path / OPTIMIZER_FILE
    optimizer_state = _load_optimizer(optimizer_path) if optimizer_path.exists() else None
    return Run(model, model_config, train_config, config.get("dataset"), history, path,
               config.get("sae_version"), stored.step, optimizer_state)


class NothingToDo(ConfigError):
    """A run asked to continue whose budget is already spent; ``field`` names the budget to raise."""

    def __init__(self, message: str, field: str, done: float) -> None:
        super().__init__(message)
        self.field, self.done = field, done


def continue_run(run: Run | str | os.PathLike, X, *, epochs: float | None = None, max_iter: int | None = None,
                 **trainer_kwargs: Any) -> "Trainer":
    """A Trainer that continues a saved run (a :class:`Run` or its directory) on X, from its recorded step, history
    and optimiser state: ``run()`` or ``start()`` it. ``epochs`` / ``max_iter``: the new budget of the whole run
    (as in ``TrainConfig``; default: the recorded one). Without a saved optimiser state a fresh one starts;
    L-BFGS always restarts its curvature memory. Raises :class:`NothingToDo` (a ConfigError) if the budget is
    already spent, and ConfigError if X does not fit the model.
    """
    from dataclasses import replace

    from sae.training.trainer import Trainer

    if not isinstance(run, Run):
        run = load_run(run)
    where = str(run.path) if run.path is not None else "the run"
    if run.train_config is None:
        raise ConfigError(f"{where} records no training configuration, so it cannot be continued.")
    changes = {k: v for k, v in (("epochs", epochs), ("max_iter", max_iter)) if v is not None}
    config = replace(run.train_config, **changes)
    step = run.step
    if step is None:  # written before the step was recorded: the last history row is the best guess
        steps = run.history.get("step")
        step = int(steps[-1]) + 1 if steps is not None and len(steps) else 0
    history = run.history
    if "step" in history:  # rows past the weights' step (a divergence went back to earlier weights) are not theirs
        keep = history["step"] < step
        history = {k: v[keep] for k, v in history.items()}
    trainer = Trainer(X, config=config, model=run.model.train(), start_step=step, history=history or None,
                      optimizer_state=run.optimizer_state, **trainer_kwargs)
    if trainer.is_done():
        if config.optimizer == "lbfgs":
            field, done, where_at = "max_iter", step, f"iteration {step} of {config.max_iter}"
        else:
            done = step / trainer.steps_per_epoch
            field, where_at = "epochs", f"epoch {done:g} of {config.epochs:g} (step {step})"
        raise NothingToDo(f"nothing left to do: {where} is at {where_at}; give {field} above {done:g} to "
                          f"continue it.", field, done)
    return trainer


__all__ = ["save_run", "load_run", "continue_run", "NothingToDo", "OPTIMIZER_FILE", "check_run_target", "RunExistsError", "RUN_FILES", "EXTRA_FILES", "FILTERS_FILE", "RUN_FORMAT", "CONFIG_FILE", "MODEL_FILE", "HISTORY_FILE", "MAX_CONFIG_BYTES",
           "MAX_HISTORY_BYTES"]
