"""The run store's codec: how values are checked on the way into the database and decoded on the way out.

Pure functions, no database: ids (:func:`new_id`, :func:`check_run_id`), free text (:func:`check_text`), numbers
(:func:`finite_or_none`), JSON (:func:`json_safe`, :func:`json_object`), configs (:func:`decode_configs`) and
training histories (:func:`encode_history` / :func:`decode_history`, :func:`history_summary`). Kept apart from
:class:`sae.runs.store.RunStore` so the storage format can be read, tested and changed in one place.

Every problem is a :class:`sae.runs.errors.StoreError` with a one-sentence message.
"""

from __future__ import annotations

import json
import math
import re
import uuid
import zlib
from typing import Any, Mapping

import numpy as np

from sae.core.config import ConfigError, ModelConfig, TrainConfig, config_from_dict
from sae.runs.errors import StoreError

MAX_NAME = 200
METRIC_COLUMNS = ("total", "reconstruction", "sparsity", "weight_decay", "rho_hat_mean", "dead_units",
                  "probe_accuracy")  # the runs table's metric columns; the first four are loss terms
MAX_HISTORY_ROWS = 100_000
_RUN_ID = re.compile(r"[0-9a-f]{32}")


def new_id() -> str:
    """A fresh run or sweep id: 32 lowercase hex digits (``uuid4().hex``)."""
    return uuid.uuid4().hex


def is_run_id(value: object) -> bool:
    """Whether ``value`` is 32 lowercase hex digits (a well-formed run or sweep id)."""
    return isinstance(value, str) and _RUN_ID.fullmatch(value) is not None


def check_run_id(run_id: Any, what: str = "run id") -> str:
    """Return ``run_id`` if it is 32 lowercase hex digits, else raise StoreError (it names a file)."""
    if not is_run_id(run_id):
        shown = repr(run_id) if len(repr(run_id)) <= 80 else repr(run_id)[:77] + "..."
        raise StoreError(f"{shown} is not a valid {what} (expected 32 hexadecimal digits).")
    return run_id


def check_text(value: Any, what: str, allow_empty: bool = False) -> str:
    """``value`` stripped, if it is one line of at most MAX_NAME characters; else StoreError naming ``what``."""
    if not isinstance(value, str):
        raise StoreError(f"the {what} must be text, got {type(value).__name__}.")
    value = value.strip()
    if not value and not allow_empty:
        raise StoreError(f"the {what} must not be empty.")
    if len(value) > MAX_NAME:
        raise StoreError(f"the {what} is too long ({len(value)} characters; the limit is {MAX_NAME}).")
    if any(ord(c) < 32 for c in value):
        raise StoreError(f"the {what} must not contain control characters such as newlines.")
    return value


def finite_or_none(value: Any) -> float | None:
    """A finite float, or None (SQL NULL) for None / NaN / infinity; StoreError if not a number."""
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise StoreError(f"a metric must be a number, got {value!r}.") from None
    return value if math.isfinite(value) else None


def json_safe(value: Any) -> Any:
    """Numbers, strings, lists and dicts for JSON; NaN/inf -> None, numpy scalars -> Python."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [json_safe(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if value is None or isinstance(value, str):
        return value
    raise StoreError(f"cannot record a {type(value).__name__} in the run store (numbers and text only).")


def json_object(text: str | None) -> dict:
    """A stored JSON object; {} for NULL, damaged text or anything but an object (shown as unknown, not an error)."""
    try:
        value = json.loads(text or "{}")
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def decode_configs(model_json: str, train_json: str | None, what: str) -> tuple[ModelConfig, TrainConfig | None]:
    """The stored configs of a run (train config None for imported models); StoreError naming ``what`` if damaged."""
    try:
        mc = config_from_dict(ModelConfig, json.loads(model_json))
        tc = None if train_json is None else config_from_dict(TrainConfig, json.loads(train_json))
    except (ConfigError, json.JSONDecodeError, TypeError) as exc:
        raise StoreError(f"the stored configuration of {what} is damaged ({exc}).") from None
    return mc, tc


def encode_history(history: Mapping[str, Any]) -> tuple[str, int, bytes]:
    """(column names as JSON, rows, zlib-compressed float64 matrix). Raises StoreError on bad columns."""
    if not isinstance(history, Mapping):
        raise StoreError("a history must be a dict of column name -> 1-D array.")
    names, columns = [], []
    for name, values in history.items():
        values = np.asarray(values)
        if not isinstance(name, str) or not name or values.ndim != 1 or values.dtype.kind not in "biuf":
            raise StoreError(f"history column {name!r} must be a named 1-D array of numbers.")
        if columns and len(values) != len(columns[0]):
            raise StoreError(f"history columns have different lengths ({len(columns[0])} and {len(values)}).")
        names.append(name)
        columns.append(values.astype("<f8"))
    rows = len(columns[0]) if columns else 0
    if rows > MAX_HISTORY_ROWS:
        raise StoreError(f"a history of {rows:,} rows is too long to record (limit {MAX_HISTORY_ROWS:,}); thin it.")
    matrix = np.stack(columns, axis=1) if columns else np.empty((0, 0), "<f8")
    return json.dumps(names), rows, zlib.compress(np.ascontiguousarray(matrix).tobytes(), 1)


def decode_history(columns_json: str, rows: int, data: bytes, what: str) -> dict[str, np.ndarray]:
    """Inverse of :func:`encode_history`; a damaged record raises StoreError naming ``what``."""
    try:
        names = json.loads(columns_json)
        expected = int(rows) * len(names) * 8
        inflater = zlib.decompressobj()
        raw = inflater.decompress(data, expected + 1)  # never inflate more than the header promises
        if not isinstance(names, list) or len(raw) != expected or inflater.unconsumed_tail:
            raise ValueError("size mismatch")
    except (ValueError, TypeError, zlib.error):
        raise StoreError(f"the stored history of {what} is damaged; delete the run or ignore its curves.") from None
    matrix = np.frombuffer(raw, dtype="<f8").reshape(int(rows), len(names)) if names else np.empty((0, 0))
    return {name: matrix[:, i].astype(np.float64) for i, name in enumerate(names)}


def history_summary(history: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """rows, the last value of every column and the lowest total loss seen."""
    if not history:
        return {"rows": 0}
    rows = len(next(iter(history.values())))
    out: dict[str, Any] = {"rows": rows}
    if rows:
        out["last"] = {k: json_safe(float(np.asarray(v)[-1])) for k, v in history.items()}
        total = np.asarray(history.get("total", []), dtype=np.float64)
        if total.size and np.isfinite(total).any():
            out["best_total"] = float(np.nanmin(np.where(np.isfinite(total), total, np.nan)))
    return out


def metric_columns(losses: Mapping[str, float], metrics: Mapping[str, Any] | None, vector: np.ndarray
                   ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(values of the metric columns, further metrics for the JSON column) of a snapshot's losses and
    measured metrics.

    ``vector``: the rho_hat to record (its mean fills ``rho_hat_mean``); a metric named like a column overrides
    the snapshot's loss; ``dead_units`` is a whole number; anything else goes to the JSON of further metrics.
    """
    columns: dict[str, Any] = {k: finite_or_none(losses.get(k)) for k in METRIC_COLUMNS[:4]}
    columns["rho_hat_mean"] = finite_or_none(vector.mean()) if vector.size and np.isfinite(vector).all() else None
    extra: dict[str, Any] = {}
    for key, value in (metrics or {}).items():
        if key in METRIC_COLUMNS:
            number = finite_or_none(value)
            columns[key] = None if number is None else (int(round(number)) if key == "dead_units" else number)
        else:
            extra[str(key)] = json_safe(value)
    return columns, extra


__all__ = ["new_id", "is_run_id", "check_run_id", "check_text", "finite_or_none", "json_safe", "json_object",
           "decode_configs", "encode_history", "decode_history", "history_summary", "metric_columns", "METRIC_COLUMNS",
           "MAX_NAME", "MAX_HISTORY_ROWS"]
