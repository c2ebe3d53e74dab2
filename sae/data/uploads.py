"""User data: :func:`load_array` (CSV or NPY parsing and validation), :func:`scale_to_unit_interval` and
:func:`scale_dataset` (the same, saying what it did in the Dataset's description).

The CSV header rule (the one CSV reader: the CLI and the dashboard both call :func:`load_array`): the first
row is a header, skipped and named in the description, when

- none of its fields is a number (column names), or
- its fields are 0, 1, ..., n-1 (the column numbers pandas writes for an unnamed frame, ``to_csv(index=False)``)
  and at least two rows follow it, or
- some of its fields are (non-empty) non-numbers where the next row has numbers (names mixed with numbers, e.g.
  ``label,0,1,...``), or it holds the ``labels_column`` name.
"""
from __future__ import annotations

import io
import logging
import math
import os
from pathlib import Path
from typing import IO, Callable, Union

import numpy as np

from sae.data.dataset import DataError, Dataset, PathLike, check_image_shape

Source = Union[PathLike, bytes, bytearray, memoryview, IO[bytes]]

logger = logging.getLogger(__name__)

_NPY_MAGIC = b"\x93NUMPY"
_TEXT_SUFFIXES = (".csv", ".txt", ".tsv", ".dat")


def scale_to_unit_interval(X: np.ndarray) -> np.ndarray:
    """Min-max scale the whole array into [0, 1]: (X - min) / (max - min); constant -> zeros.

    Returns a new float32 array of the same shape.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.size == 0:
        return X.astype(np.float32)
    lo, hi = X.min(), X.max()
    if not hi > lo:
        return np.zeros(X.shape, dtype=np.float32)
    return np.clip((X - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def scale_dataset(data: Dataset) -> Dataset:
    """``data`` min-max scaled into [0, 1] (:func:`scale_to_unit_interval`) with a description that says so and
    gives the original range; data already in [0, 1] are returned as they are."""
    if data.in_unit_interval:
        return data
    lo, hi = float(data.X.min()), float(data.X.max())
    return Dataset(data.name, scale_to_unit_interval(data.X), data.labels, data.image_shape,
                   f"{data.description} Min-max scaled from [{lo:.4g}, {hi:.4g}] into [0, 1] "
                   f"(every value minus {lo:.4g}, divided by {hi - lo:.4g}).")


def _read_source(source: Source, filename: str, max_bytes: int) -> tuple[bytes, str]:
    """Read at most ``max_bytes`` from a path, bytes or binary file-like; returns (data, filename)."""
    limit = f"{max_bytes / 2**20:.0f} MiB" if max_bytes >= 2**20 else f"{max_bytes:,} bytes"
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if filename == "upload":
            filename = path.name
        try:
            size = path.stat().st_size
            if size > max_bytes:
                raise DataError(f"{filename} is too large ({size / 2**20:.1f} MiB); the limit is {limit}.")
            data = path.read_bytes()
        except DataError:
            raise
        except OSError as e:
            raise DataError(f"Cannot read {source}: {e.strerror or e}.") from None
    elif hasattr(source, "read"):
        size = getattr(source, "size", None)  # Streamlit's UploadedFile knows its size
        if isinstance(size, int) and size > max_bytes:
            raise DataError(f"{filename} is too large ({size / 2**20:.1f} MiB); the limit is {limit}.")
        if hasattr(source, "seek"):
            try:
                source.seek(0)
            except (OSError, ValueError) as e:  # not seekable: read from where it is
                logger.debug("%s: cannot rewind the upload (%s); reading from its current position", filename, e)
        data = source.read(max_bytes + 1)
        if isinstance(data, str):
            data = data.encode("utf-8")
    else:
        raise DataError(f"Cannot read data from a {type(source).__name__}; give a path, bytes or a file.")
    if len(data) > max_bytes:
        raise DataError(f"{filename} is too large (more than {limit}); the limit is {limit}.")
    return data, filename


def load_array(source: Source, filename: str = "upload", *, image_shape: tuple[int, int] | None = None,
               max_bytes: int = 50 * 2**20, labels_column: str | int | None = None,
               header: bool | None = None) -> Dataset:
    """Load user data (CSV or NPY) as a Dataset, or raise :class:`DataError` saying what is wrong.

    Args:
        source: a path, bytes, or a binary file-like (e.g. Streamlit's UploadedFile).
        filename: used to pick the format by suffix (``.csv/.txt/.tsv/.dat`` text, ``.npy``),
            else NPY is sniffed by its magic bytes; also names the data set in messages.
        image_shape: (height, width) of one row; must satisfy h * w == n_features. When None,
            a 3-D NPY (n, h, w) gives (h, w), and a square n_features >= 16 gives a square.
        max_bytes: refuse larger inputs before parsing them.
        labels_column: CSV header name, or a column index (0, -1, or as a string "0", "-1"), to use as
            integer labels, not as a feature (non-numeric CSV labels are mapped to codes in sorted order).
        header: CSV only: None (default) applies the header rule of the module docstring; True / False say
            whether the first row is a header. The description always says which it was.

    CSV: optional header row (the rule in the module docstring; a skipped header is named in the
    description); comma, semicolon (with decimal commas allowed), tab or whitespace delimiters, '"' quotes.
    NPY: read with ``np.load(allow_pickle=False)`` only; object arrays are refused. A 2-D array (n, d) is n samples
    of d features; a 3-D array (n, h, w) is n images of h x w pixels, flattened row-major to (n, h * w).

    Returns:
        Dataset with X (n_samples, n_features) float32, finite, n_samples >= 2, n_features >= 1.
    """
    data, filename = _read_source(source, filename, max_bytes)
    if len(data) == 0:
        raise DataError(f"{filename} is empty (0 bytes).")
    suffix = Path(filename).suffix.lower()
    if suffix == ".npz" or data[:4] == b"PK\x03\x04":
        raise DataError(f"{filename} is a ZIP/NPZ archive; save a single array with np.save (.npy) instead.")
    is_npy = suffix == ".npy" or (suffix not in _TEXT_SUFFIXES and data.startswith(_NPY_MAGIC))
    if labels_column is not None:
        labels_column = str(labels_column)
    if is_npy:
        if header is not None:
            raise DataError(f"{filename} is an NPY file: a header row is a matter of CSV text files only.")
        X, labels, shape3, where = _parse_npy(data, filename, labels_column)
        label_note = f", labels from column {labels_column}" if labels is not None else ""
        header_note = ""
    else:
        X, labels, where, label_note, header_note = _parse_text(data, filename, labels_column, header)
        shape3 = None
    X = _validate_matrix(X, filename, where)
    n, d = X.shape
    if image_shape is not None:
        image_shape = check_image_shape(image_shape, d)
    elif shape3 is not None:
        image_shape = shape3
    elif d >= 16 and math.isqrt(d) ** 2 == d:
        image_shape = (math.isqrt(d), math.isqrt(d))
    desc = f"{n:,} samples x {d:,} features from {filename}{label_note}.{header_note}"
    if image_shape is not None:
        desc += f" Shown as {image_shape[0]}x{image_shape[1]} images."
    return Dataset(Path(filename).stem or filename, X, labels, image_shape, desc)


def _validate_matrix(X: np.ndarray, filename: str, where: Callable[[int, int], str]) -> np.ndarray:
    """Check a 2-D numeric matrix: >= 2 samples, >= 1 feature, finite, fits float32."""
    n, d = X.shape
    if n == 0:
        raise DataError(f"{filename} has no samples (shape {X.shape}).")
    if d == 0:
        raise DataError(f"{filename} has 0 features per sample (shape {X.shape}); need at least 1 column.")
    if n == 1:
        raise DataError(f"{filename} has only 1 sample (row); need at least 2 samples to train on.")
    X = np.asarray(X, dtype=np.float64)
    bad = ~np.isfinite(X)
    if bad.any():
        count = int(bad.sum())
        i, j = (int(v) for v in np.argwhere(bad)[0])
        kind = "NaN" if np.isnan(X[i, j]) else "inf"
        raise DataError(f"{filename} has {count:,} NaN or infinite value{'s' if count > 1 else ''} "
                        f"(first: {kind} at {where(i, j)}); fill or drop them first.")
    big = np.abs(X) > np.finfo(np.float32).max
    if big.any():
        i, j = (int(v) for v in np.argwhere(big)[0])
        raise DataError(f"{filename} has a value too large for float32 ({X[i, j]:.3g} at {where(i, j)}).")
    return np.ascontiguousarray(X, dtype=np.float32)


def _integer_labels(values: np.ndarray, filename: str, column: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(values) & (values == np.round(values)) & (np.abs(values) < 2**62)
    if not ok.all():
        i = int(np.argmin(ok))
        raise DataError(f"{filename}: labels column {column} must hold integers; sample {i + 1} "
                        f"has {values[i]:g}.")
    return values.astype(np.int64)


def _column_index(labels_column: str, header: list[str] | None, n_columns: int, filename: str) -> int:
    """Resolve a labels column given as a header name or an integer index string."""
    name = str(labels_column).strip()
    if header is not None and name in header:
        return header.index(name)
    try:
        j = int(name)
    except ValueError:
        cols = ", ".join(repr(h) for h in header[:10]) + (" ..." if len(header) > 10 else "") if header else ""
        hint = f"columns are {cols}" if header else "the file has no header row, so give a column number"
        raise DataError(f"{filename}: labels column {name!r} not found; {hint}.") from None
    if not -n_columns <= j < n_columns:
        raise DataError(f"{filename}: labels column {j} is out of range for {n_columns} columns.")
    return j % n_columns


# --- NPY

def _parse_npy(data: bytes, filename: str, labels_column: str | None):
    """NPY bytes -> (X (n, d) float64, labels | None, image_shape | None, where)."""
    bio = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(bio)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(bio)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(bio)
        else:
            raise DataError(f"{filename} is not a valid NPY file version 1 or 2 (it says version "
                            f"{version[0]}.{version[1]}).")
    except DataError:
        raise
    except Exception as e:  # malformed header from an untrusted file: any parse error is bad data
        raise DataError(f"{filename} is not a valid NPY file ({e}).") from None
    if dtype.hasobject:
        raise DataError(f"{filename} holds Python objects; only numeric arrays are accepted.")
    kinds = {"c": "complex numbers", "U": "text", "S": "byte strings", "V": "a structured/record array",
             "M": "dates", "m": "time deltas"}
    if dtype.kind not in "biuf":
        raise DataError(f"{filename} holds {kinds.get(dtype.kind, dtype)}; only numeric arrays are accepted.")
    expected = math.prod(shape) * dtype.itemsize
    if len(data) - bio.tell() < expected:
        raise DataError(f"{filename} is truncated: its header promises shape {shape} "
                        f"({expected:,} bytes of data), found {len(data) - bio.tell():,}.")
    try:
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as e:
        raise DataError(f"{filename} is not a valid NPY file ({e}).") from None
    shape3 = None
    if arr.ndim < 2:
        raise DataError(f"{filename} holds a {arr.ndim}-D array of shape {arr.shape}; need samples x "
                        f"features, e.g. save X.reshape(-1, 1) for one feature or X.reshape(1, -1) "
                        f"for one sample.")
    if arr.ndim == 3:
        n, h, w = arr.shape
        arr = arr.reshape(n, h * w)
        shape3 = (h, w) if h * w > 0 else None
    elif arr.ndim > 3:
        raise DataError(f"{filename} holds a {arr.ndim}-D array of shape {arr.shape}; expected 2-D "
                        f"(samples x features) or 3-D (samples x height x width).")
    labels = None
    if labels_column is not None:
        if shape3 is not None:
            raise DataError(f"{filename} is a stack of images; labels_column needs a 2-D array.")
        j = _column_index(labels_column, None, arr.shape[1], filename)
        labels = _integer_labels(arr[:, j], filename, str(j))
        arr = np.delete(arr, j, axis=1)

    def where(i: int, j: int) -> str:
        return f"row {i}, column {j} (0-based)"
    return arr.astype(np.float64, copy=False), labels, shape3, where


# --- CSV / text

def _detect_delimiter(line: str) -> str | None:
    """';' beats ',' (so '1,5;2,0' reads as decimal commas), then ',', tab, else whitespace (None)."""
    for d in (";", ",", "\t"):
        if d in line:
            return d
    return None


def _split(line: str, delim: str | None) -> list[str]:
    fields = line.split() if delim is None else [f.strip() for f in line.split(delim)]
    return [f[1:-1].strip() if len(f) >= 2 and f[0] == f[-1] == '"' else f for f in fields]


def _to_float(field: str, delim: str | None) -> float:
    """float(field); with ';' delimiters a single decimal comma is accepted ('1,5' -> 1.5)."""
    try:
        return float(field)
    except ValueError:
        if delim == ";" and field.count(",") == 1 and "." not in field:
            return float(field.replace(",", "."))
        raise


def _is_number(field: str, delim: str | None) -> bool:
    try:
        _to_float(field, delim)
        return True
    except ValueError:
        return False


def _parse_text(data: bytes, filename: str, labels_column: str | None, header_asked: bool | None = None):
    """CSV-like bytes -> (X (n, d) float64, labels | None, where, label note)."""
    nul = data.find(b"\x00")
    if nul >= 0:
        raise DataError(f"{filename} looks like binary data, not CSV text (NUL byte at position {nul}).")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{filename} is not UTF-8 text (undecodable byte at position {e.start}); "
                        f"upload a CSV or NPY file.") from None
    lines = [(no, ln) for no, ln in enumerate(text.splitlines(), start=1) if ln.strip()]
    if not lines:
        raise DataError(f"{filename} has no data (only blank lines).")
    delim = _detect_delimiter(lines[0][1])
    first = _split(lines[0][1], delim)
    second = _split(lines[1][1], delim) if len(lines) > 1 else None
    if header_asked is None:
        kind = _header_kind(first, second, len(lines) - 1, delim, labels_column)
    else:
        kind = "as asked" if header_asked else None
    header = first if kind else None
    rows = lines[1:] if header is not None else lines
    if not rows:
        raise DataError(f"{filename} has a header row but no data rows.")
    n_cols = len(header) if header is not None else len(_split(rows[0][1], delim))
    j_label = None if labels_column is None else _column_index(labels_column, header, n_cols, filename)

    table = _fast_parse(rows, delim, n_cols)
    if table is not None:
        labels = None if j_label is None else _integer_labels(table[:, j_label], filename, repr(labels_column))
        note = ""
    else:
        table, label_strings = _slow_parse(rows, delim, n_cols, j_label, header, filename)
        labels, note = (None, "") if label_strings is None else _encode_labels(label_strings, filename,
                                                                               repr(labels_column))
    if j_label is not None:
        table = np.delete(table, j_label, axis=1)
        note = f", labels from column {labels_column!r}{note}"
    linenos = np.array([no for no, _ in rows])

    def where(i: int, j: int) -> str:
        col = j + (1 if j_label is not None and j >= j_label else 0)
        return f"line {linenos[i]}, column {col + 1}"
    if kind == "as asked":
        header_note = " The first row was read as a header and skipped, as asked."
    elif kind is not None:
        header_note = f" The first row ({kind}) was read as a header and skipped."
    else:
        header_note = " The first row is data (no header row" + (", as asked)." if header_asked is False else ").")
    return table, labels, where, note, header_note


def _header_kind(first: list[str], second: list[str] | None, rows_after: int, delim: str | None,
                 labels_column: str | None) -> str | None:
    """Why the first CSV row is a header (a few words for the description), or None if it is data.
    The rule is in the module docstring."""
    numeric = [_is_number(f, delim) for f in first]
    if not any(numeric):
        return "column names"
    if all(numeric):
        values = [_to_float(f, delim) for f in first]
        if len(values) >= 2 and rows_after >= 2 and values == list(range(len(values))):
            return f"0, 1, …, {len(values) - 1}: column numbers, as pandas writes them"
        return None
    if labels_column is not None and str(labels_column).strip() in first:
        return "column names"
    if second is not None and len(second) == len(first) and any(
            not ok and name != "" and _is_number(f, delim) for ok, name, f in zip(numeric, first, second)):
        return "column names"
    return None


def _fast_parse(rows: list[tuple[int, str]], delim: str | None, n_cols: int) -> np.ndarray | None:
    """numpy's C parser on well-formed input; None on any problem (the slow path explains it)."""
    try:
        table = np.loadtxt([ln for _, ln in rows], delimiter=delim, dtype=np.float64, ndmin=2,
                           comments=None, quotechar='"')
    except Exception:  # any failure is re-diagnosed, with line and column, by _slow_parse
        return None
    return table if table.shape == (len(rows), n_cols) else None


def _slow_parse(rows, delim, n_cols, j_label, header, filename):
    """Pure-Python parse that names the first bad line/column. Labels are kept as strings."""
    expected_from = "the header" if header is not None else f"line {rows[0][0]}"
    table = np.empty((len(rows), n_cols), dtype=np.float64)
    labels: list[str] | None = [] if j_label is not None else None
    for i, (no, line) in enumerate(rows):
        fields = _split(line, delim)
        if len(fields) != n_cols:
            raise DataError(f"{filename}: line {no} has {len(fields)} column{'s' if len(fields) != 1 else ''}"
                            f", expected {n_cols} (as in {expected_from}).")
        for j, f in enumerate(fields):
            if j == j_label:
                labels.append(f)  # type: ignore[union-attr]
                table[i, j] = 0.0
                continue
            try:
                table[i, j] = _to_float(f, delim)
            except ValueError:
                what = "an empty value" if f == "" else f"a non-numeric value {f[:30]!r}"
                raise DataError(f"{filename} has {what} at line {no}, column {j + 1}.") from None
    return table, labels


def _encode_labels(strings: list[str], filename: str, column: str) -> tuple[np.ndarray, str]:
    """Integer-valued strings -> those integers; otherwise class names -> codes in sorted order."""
    try:
        values = np.array([float(s) for s in strings], dtype=np.float64)
    except ValueError:
        values = None
    if values is not None:  # numeric labels must be integers, as on the fast path
        return _integer_labels(values, filename, column), ""
    classes, codes = np.unique(np.array(strings, dtype=str), return_inverse=True)
    shown = ", ".join(f"{c}={k}" for k, c in enumerate(classes[:6])) + (" ..." if len(classes) > 6 else "")
    return codes.astype(np.int64), f" ({len(classes)} classes: {shown})"
