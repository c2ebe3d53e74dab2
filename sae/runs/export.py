"""Downloads: the model (a zip of safetensors + config), the codes as CSV, figures, a Python snippet.

Every function returns bytes or text for a download button (or a file), and every reader validates
what it is given: :func:`read_model_bundle` / :func:`read_model_upload` go through sae.runs.files and
sae.runs.model_file (``load_run`` / ``run_from_bytes``), so an upload is checked exactly like a run directory
and nothing is ever unpickled.

- :func:`model_bundle`: ``<name>.zip`` holding ``config.json``, ``model.safetensors`` and, if given,
  ``history.npz``: the run-directory format of :func:`sae.runs.files.save_run`, zipped. The training step
  of the weights, if given, is in the model file's metadata (``Run.step`` when read back; None in bundles
  written before it was recorded).
- :func:`codes_csv`: the hidden codes a = f(W1 x + b1), one row per sample, header ``h0..h{s-1}``
  (and ``label``); values printed with 9 significant digits, so float32 codes read back exactly
  (``sae.data.load_array(data, "codes.csv", labels_column="label")``).
- :func:`figure_html`: a standalone HTML page with plotly.js embedded (works offline, ~4.7 MB).
- :func:`figure_png`: needs the ``kaleido`` package (absent on these machines; see
  :func:`png_export_available`). Image views have :func:`filters_png` / :func:`image_png` instead.
- :func:`reproduce_snippet`: Python code that retrains the run with the sae API.
"""

from __future__ import annotations

import io
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from sae.core.config import ModelConfig, TrainConfig, config_to_dict
from sae.viz.images import tile_filters, to_png_bytes
from sae.core.model import SparseAutoencoder
from sae.runs.files import CONFIG_FILE, HISTORY_FILE, MODEL_FILE, load_run, save_run
from sae.runs.model_file import MAX_MODEL_BYTES, Run, RunFileError, run_from_bytes

MAX_BUNDLE_BYTES = MAX_MODEL_BYTES + 80 * 2**20  # model + config + history, uncompressed
BUNDLE_FILES = (CONFIG_FILE, MODEL_FILE, HISTORY_FILE)
BUNDLE_PARTS = {CONFIG_FILE: "the configuration", MODEL_FILE: "the model weights"}  # the required entries
ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")  # a zip's first bytes (an entry; an empty archive)
BUILTIN_DATASETS = ("patches", "mnist", "digits", "toy")


class ExportError(ValueError):
    """Something cannot be exported as asked; the message says why."""


# ----------------------------------------------------------------------------- model bundle

def model_bundle(model: SparseAutoencoder, train_config: TrainConfig | None = None, dataset: str | None = None,
                 history: Mapping[str, np.ndarray] | None = None, *, step: int | None = None) -> bytes:
    """A zip of the run-directory files (sae.runs.files.save_run): config.json, model.safetensors[, history.npz].
    ``step``: the training step the weights are from (kept in model.safetensors' metadata), if known."""
    with tempfile.TemporaryDirectory(prefix="sae-bundle-") as tmp:
        folder = save_run(Path(tmp) / "run", model, train_config, None if history is None else dict(history),
                          dataset, step=step)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name in BUNDLE_FILES:
                if (folder / name).exists():
                    zf.write(folder / name, arcname=name)
    return buffer.getvalue()


def read_model_bundle(data: bytes, filename: str = "the model bundle") -> Run:
    """Validate and load a :func:`model_bundle` zip; raises RunFileError naming ``filename``.

    Only the three known file names are accepted (no folders, no other entries), each within the
    persistence size limits, checked while reading (a lying zip header cannot inflate more). A file that is
    not a zip archive (or a damaged one) and a zip without the configuration or the weights each get their
    own message. ``Run.step`` is the training step of the weights, None in bundles that do not record it.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise RunFileError(f"{filename}: expected bytes, got {type(data).__name__}.")
    data = bytes(data)
    if len(data) > MAX_BUNDLE_BYTES:
        raise RunFileError(f"{filename} is too large ({len(data) / 2**20:.1f} MiB) to be a model bundle.")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise RunFileError(f"{filename} is not a valid model bundle: it is not a zip archive, or a damaged one; "
                           "download the model again.") from None
    with zf, tempfile.TemporaryDirectory(prefix="sae-upload-") as tmp:
        folder = Path(tmp) / "run"
        folder.mkdir()
        names = [info.filename for info in zf.infolist()]
        unknown = sorted(set(names) - set(BUNDLE_FILES))
        if unknown:
            raise RunFileError(f"{filename} holds unexpected entries ({', '.join(unknown[:5])}); a model bundle "
                               f"holds only {', '.join(BUNDLE_FILES)}.")
        if len(set(names)) != len(names):
            raise RunFileError(f"{filename} holds the same file twice.")
        for name, part in BUNDLE_PARTS.items():
            if name not in names:
                raise RunFileError(f"{filename} is a zip archive without {part} ({name}); it is not a Sparse "
                                   f"Autoencoder Lab model bundle.")
        total = 0
        for name in names:
            try:
                with zf.open(name) as member:
                    content = member.read(MAX_BUNDLE_BYTES - total + 1)
            except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
                raise RunFileError(f"{filename} is damaged ({name}: {exc}).") from None
            total += len(content)
            if total > MAX_BUNDLE_BYTES:
                raise RunFileError(f"{filename} unpacks to more than {MAX_BUNDLE_BYTES / 2**20:.0f} MiB; refused.")
            (folder / name).write_bytes(content)
        try:
            run = load_run(folder)
        except RunFileError as exc:
            raise RunFileError(str(exc).replace(str(folder), filename)) from None
    run.path = None
    return run


def read_model_upload(data: bytes, filename: str) -> Run:
    """An uploaded model: a bundle zip, or a bare ``.safetensors`` written by the Lab. Raises RunFileError.

    A ``.zip`` name, or a file that starts like a zip (unless named ``.safetensors``), is read as a bundle
    (:func:`read_model_bundle`: a damaged zip is "not a valid model bundle"); anything else as safetensors.
    """
    data = bytes(data)
    name = filename.lower()
    if name.endswith(".zip") or (data.startswith(ZIP_SIGNATURES) and not name.endswith(".safetensors")):
        return read_model_bundle(data, filename)
    return run_from_bytes(data, what=filename)


# ----------------------------------------------------------------------------- codes

def codes_csv(model: SparseAutoencoder, X, labels=None, *, batch_size: int = 4096) -> bytes:
    """The hidden codes of every sample as CSV bytes: header ``h0,...,h{s-1}[,label]``, one row per sample."""
    from sae.evaluation.metrics import hidden_activations

    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2 or X.shape[1] != model.config.n_inputs:
        raise ExportError(f"the model takes {model.config.n_inputs} inputs per sample but the data have shape "
                          f"{X.shape}.")
    codes = hidden_activations(model, X, batch_size)
    header = [f"h{j}" for j in range(codes.shape[1])]
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (len(X),) or labels.dtype.kind not in "biu":
            raise ExportError(f"labels must be {len(X)} whole numbers, one per sample; got shape {labels.shape}.")
        header.append("label")
    buffer = io.StringIO()
    buffer.write(",".join(header) + "\n")
    table = codes.astype(np.float32).astype(np.float64)  # exact; 9 digits round-trip any float32
    fmt = ["%.9g"] * table.shape[1]
    if labels is not None:
        table = np.column_stack([table, labels.astype(np.float64)])  # integers < 2**53 stay exact
        fmt.append("%d")
    np.savetxt(buffer, table, fmt=fmt, delimiter=",")
    return buffer.getvalue().encode("ascii")


# ----------------------------------------------------------------------------- figures

def figure_html(fig: Any, *, title: str | None = None) -> bytes:
    """A standalone HTML page of a plotly figure, plotly.js embedded (no network needed to open it)."""
    if not hasattr(fig, "to_html"):
        raise ExportError(f"expected a plotly Figure, got {type(fig).__name__}.")
    html = fig.to_html(include_plotlyjs=True, full_html=True, config={"displaylogo": False})
    if title:
        safe = re.sub(r"[<>&\"']", "", title)[:200]
        html = html.replace("<head>", f"<head><title>{safe}</title>", 1)
    return html.encode("utf-8")


def png_export_available() -> bool:
    """Whether plotly can render PNG here (it needs the kaleido package)."""
    try:
        import kaleido  # noqa: F401
    except ImportError:
        return False
    return True


def figure_png(fig: Any, *, width: int | None = None, height: int | None = None, scale: float = 2.0) -> bytes:
    """A plotly figure as PNG bytes; needs kaleido (see :func:`png_export_available`), else ExportError."""
    if not png_export_available():
        raise ExportError("PNG export of charts needs the kaleido package, which is not installed; "
                          "download the chart as HTML, or the image views as PNG.")
    return fig.to_image(format="png", width=width, height=height, scale=scale)


def filters_png(W, image_shape: tuple[int, int], *, normalize: str = "ufldl", scale: int = 4,
                columns: int | None = None) -> bytes:
    """The filter grid (rows of W1, UFLDL's display) as a PNG, upscaled ``scale`` times."""
    return to_png_bytes(tile_filters(np.asarray(W), image_shape, normalize=normalize, columns=columns), scale)


def image_png(img, *, scale: int = 4) -> bytes:
    """A [0, 1] grayscale image (H, W) as a PNG (e.g. a tiled reconstruction grid)."""
    return to_png_bytes(img, scale)


# ----------------------------------------------------------------------------- code snippet

def _call(name: str, config: Any) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in config_to_dict(config).items())
    return f"{name}({args})"


def reproduce_snippet(model_config: ModelConfig, train_config: TrainConfig, dataset: str | None) -> str:
    """Python code that retrains this run with the sae API (built-in data sets load by name).

    Every value is written with ``repr`` (configs are validated dataclasses; the data set name is a
    string literal), so the text never carries anything but these settings.
    """
    if not isinstance(model_config, ModelConfig) or not isinstance(train_config, TrainConfig):
        raise ExportError("reproduce_snippet needs a ModelConfig and a TrainConfig.")
    name = (dataset or "").strip()
    builtin = name.lower() in BUILTIN_DATASETS
    seed_note = ("" if train_config.seed is not None else
                 "# seed=None: every run starts from fresh random weights, so numbers will differ.\n")
    if builtin:
        load = f"data = load_dataset({name.lower()!r})\n"
        imports = "from sae.data import load_dataset\n"
    else:
        shown = name.removeprefix("file:") or "my_data.csv"
        load = (f"# The run was trained on {name!r}: point this at your copy of that file.\n"
                f"data = load_array({shown!r})\n")
        imports = "from sae.data import load_array\n"
    return (
        "# Reproduce a Sparse Autoencoder Lab run (pip install the Lab, then run this file).\n"
        "from sae import ModelConfig, TrainConfig, Trainer\n"
        + imports
        + "from sae.runs.files import save_run\n\n"
        + load
        + f"model_config = {_call('ModelConfig', model_config)}\n"
        + f"train_config = {_call('TrainConfig', train_config)}\n"
        + seed_note
        + "\ntrainer = Trainer(data.X, model_config, train_config)\n"
        + "snapshot = trainer.run()  # or trainer.start() and poll trainer.latest()\n"
        + "print(snapshot.reason, snapshot.losses)\n"
        + "model = trainer.model  # encoder.weight (n_hidden, n_inputs): one filter per row\n"
        + f"# save_run('sae-run', model, train_config, trainer.history(), dataset={name or None!r})\n"
    )


def download_name(name: str, suffix: str) -> str:
    """A safe file name for a download from free text (a run name): letters, digits, -_. only."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", str(name)).strip("-.")[:80] or "sae-run"
    suffix = suffix if suffix.startswith(".") else f".{suffix}"
    return f"{stem}{suffix}"


__all__ = ["ExportError", "model_bundle", "read_model_bundle", "read_model_upload", "codes_csv", "figure_html",
           "figure_png", "png_export_available", "filters_png", "image_png", "reproduce_snippet", "download_name"]
