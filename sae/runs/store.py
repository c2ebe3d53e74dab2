"""The run store: every training run recorded in a local SQLite database, its weights beside it.

The data directory (``$SAE_LAB_DATA``, else ``$XDG_DATA_HOME/sae-lab``, else ``~/.local/share/sae-lab``)::

    runs.sqlite                     WAL-mode database: tables meta, runs, histories, sweeps
    weights/<run_id>.safetensors    each run's latest weights (sae.runs.files.model_to_bytes),
                                    replaced atomically (temporary file + os.replace)

Table ``runs`` holds one row per run: name, dataset, created/updated (Unix seconds), status and reason,
step / epoch / elapsed, the configs as JSON, the live hyperparameters in effect (JSON), the final
metrics as columns (total, reconstruction, sparsity, weight_decay, rho_hat_mean, dead_units,
probe_accuracy; NULL when unknown), further metrics and a history summary as JSON, and the last
rho_hat vector (float64 bytes). Table ``histories`` holds each run's bounded training history
(``Trainer.history()``, at most a few thousand rows) as one zlib-compressed float64 matrix plus its
column names, so a checkpoint updates the run row and its history in ONE transaction.

Concurrency: one connection per RunStore guarded by a lock (any thread may call any method), WAL
journaling (readers never wait for a writer), ``BEGIN IMMEDIATE`` for every write (no lock upgrade
deadlocks) and a 30 s busy timeout, so several threads, stores and processes can write at once.

A run id is 32 lowercase hex digits (``uuid4().hex``), generated here and checked on every call:
it is the only user-reachable part of a file name. Names are free text and never touch the disk.

Every problem is a :class:`StoreError` (a ValueError) with a one-sentence message: a damaged or
foreign database names the file and says how to start afresh; a missing weights file names it.
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import sqlite3
import threading
import time
import uuid
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch

from sae.core.config import ConfigError, ModelConfig, TrainConfig, config_from_dict, config_to_dict
from sae.training.status import FINAL_STATUSES, LIVE_STATUSES, RunStatus
from sae.core.model import SparseAutoencoder
from sae.runs.files import MAX_MODEL_BYTES, Run, RunFileError, model_from_bytes, model_to_bytes
from sae.training.trainer import Snapshot

SCHEMA_VERSION = 1
APPLICATION = "sae-lab"
DB_FILE, WEIGHTS_DIR = "runs.sqlite", "weights"
ENV_VAR = "SAE_LAB_DATA"
BUSY_TIMEOUT = 30.0  # seconds a writer waits for another one before giving up
METRIC_COLUMNS = ("total", "reconstruction", "sparsity", "weight_decay", "rho_hat_mean", "dead_units",
                  "probe_accuracy")
SORTABLE = ("name", "dataset", "created", "updated", "status", "step", "epoch", "elapsed", *METRIC_COLUMNS)
MAX_NAME = 200
MAX_HISTORY_ROWS = 100_000
_RUN_ID = re.compile(r"[0-9a-f]{32}")
_SQLITE_MAGIC = b"SQLite format 3\x00"
_PROCESS = uuid.uuid4().hex  # tells this process's runs from those of a previous (crashed) server
_HOST = socket.gethostname()

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    dataset TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    step INTEGER NOT NULL DEFAULT 0,
    epoch REAL NOT NULL DEFAULT 0,
    elapsed REAL NOT NULL DEFAULT 0,
    model_config TEXT NOT NULL,            -- JSON of ModelConfig
    train_config TEXT,                     -- JSON of TrainConfig as created (NULL for imported models)
    hyper TEXT NOT NULL DEFAULT '{}',      -- JSON: rho, beta, weight_decay, lr in effect at the last write
    total REAL, reconstruction REAL, sparsity REAL, weight_decay REAL,
    rho_hat_mean REAL, dead_units INTEGER, probe_accuracy REAL,
    metrics TEXT NOT NULL DEFAULT '{}',    -- JSON: further metrics (l0_mean, dense_units, ...)
    summary TEXT NOT NULL DEFAULT '{}',    -- JSON: history summary (rows, last values, best total)
    rho_hat BLOB,                          -- float64 (n_hidden,) at the last write
    has_weights INTEGER NOT NULL DEFAULT 0,
    parent_id TEXT,                        -- the run this one continued from
    sweep_id TEXT,                         -- the sweep this run is a cell of
    owner TEXT NOT NULL, pid INTEGER NOT NULL, host TEXT NOT NULL  -- who writes it (crash detection)
);
CREATE INDEX runs_updated ON runs (updated);
CREATE INDEX runs_sweep ON runs (sweep_id);
CREATE TABLE histories (
    run_id TEXT PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    columns TEXT NOT NULL,                 -- JSON list of column names
    rows INTEGER NOT NULL,
    data BLOB NOT NULL                     -- zlib(float64 little-endian (rows, columns) C order)
);
CREATE TABLE sweeps (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    dataset TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    status TEXT NOT NULL,
    spec TEXT NOT NULL,                    -- JSON of sae.runs.sweep.SweepSpec.to_dict()
    image_shape TEXT                       -- JSON [h, w] or NULL
);
"""
_ADVICE = ("move it aside (with any -wal and -shm files beside it) to start a new store, "
           f"or set {ENV_VAR} to another directory")


class StoreError(ValueError):
    """The run store cannot do what was asked; the message says which file or run, and why."""


class RunNotFoundError(StoreError):
    """No run (or sweep) with that id in this store."""


# ----------------------------------------------------------------------------- records

@dataclass(frozen=True)
class RunRecord:
    """One row of the run table, decoded. Metrics are None when not (yet) known."""

    id: str
    name: str
    dataset: str
    created: float  # Unix seconds
    updated: float
    status: str  # idle, queued, running, paused, diverged, finished, stopped
    reason: str
    step: int
    epoch: float
    elapsed: float  # seconds of training
    model_config: ModelConfig
    train_config: TrainConfig | None  # as created; see current_train_config for live changes
    hyper: dict[str, float]
    total: float | None
    reconstruction: float | None
    sparsity: float | None
    weight_decay: float | None
    rho_hat_mean: float | None
    dead_units: int | None
    probe_accuracy: float | None
    metrics: dict[str, Any] = field(default_factory=dict)  # further metrics
    summary: dict[str, Any] = field(default_factory=dict)  # history summary
    has_weights: bool = False
    parent_id: str | None = None
    sweep_id: str | None = None
    interrupted: bool = False  # was training when its process died (crash, killed server)

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def current_train_config(self) -> TrainConfig | None:
        """The train config with the live hyperparameters in effect at the last write."""
        if self.train_config is None:
            return None
        known = {k: v for k, v in self.hyper.items() if k in TrainConfig.LIVE_FIELDS}
        try:
            return replace(self.train_config, **known)
        except ConfigError:
            return self.train_config

    @property
    def display_status(self) -> str:
        return "interrupted" if self.interrupted else self.status

    def row(self) -> dict[str, Any]:
        """A flat dict for a table: identity, status, hyperparameters, final metrics.

        The hyperparameter lambda is ``lambda``; the weight-decay loss term is ``weight_decay_loss``.
        """
        mc, tc = self.model_config, self.current_train_config
        out: dict[str, Any] = {"id": self.id, "name": self.name, "dataset": self.dataset,
                               "status": self.display_status, "created": self.created, "updated": self.updated,
                               "step": self.step, "epoch": self.epoch, "elapsed": self.elapsed,
                               "n_inputs": mc.n_inputs, "n_hidden": mc.n_hidden, "activation": mc.activation}
        for name in ("rho", "beta", "weight_decay", "lr", "penalty", "optimizer", "batch_size", "seed"):
            out["lambda" if name == "weight_decay" else name] = None if tc is None else getattr(tc, name)
        for name in METRIC_COLUMNS:
            out[f"{name}_loss" if name == "weight_decay" else name] = getattr(self, name)
        return out


@dataclass(frozen=True)
class SweepRecord:
    """One recorded sweep: its spec (``sae.runs.sweep.SweepSpec.to_dict()``) and how it ended."""

    id: str
    name: str
    dataset: str
    created: float
    updated: float
    status: str  # running, finished, cancelled
    spec: dict[str, Any]
    image_shape: tuple[int, int] | None


# ----------------------------------------------------------------------------- helpers

def default_root() -> Path:
    """``$SAE_LAB_DATA``, else ``$XDG_DATA_HOME/sae-lab``, else ``~/.local/share/sae-lab``."""
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg and Path(xdg).expanduser().is_absolute() else \
        Path.home() / ".local" / "share"
    return base / APPLICATION


def new_id() -> str:
    return uuid.uuid4().hex


def check_run_id(run_id: Any, what: str = "run id") -> str:
    """Return ``run_id`` if it is 32 lowercase hex digits, else raise StoreError (it names a file)."""
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
        shown = repr(run_id) if len(repr(run_id)) <= 80 else repr(run_id)[:77] + "..."
        raise StoreError(f"{shown} is not a valid {what} (expected 32 hexadecimal digits).")
    return run_id


def _check_text(value: Any, what: str, allow_empty: bool = False) -> str:
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


def _number(value: Any) -> float | None:
    """A finite float, or None (SQL NULL) for None / NaN / infinity."""
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise StoreError(f"a metric must be a number, got {value!r}.") from None
    return value if math.isfinite(value) else None


def _json_safe(value: Any) -> Any:
    """Numbers, strings, lists and dicts for JSON; NaN/inf -> None, numpy scalars -> Python."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if value is None or isinstance(value, str):
        return value
    raise StoreError(f"cannot record a {type(value).__name__} in the run store (numbers and text only).")


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
        out["last"] = {k: _json_safe(float(np.asarray(v)[-1])) for k, v in history.items()}
        total = np.asarray(history.get("total", []), dtype=np.float64)
        if total.size and np.isfinite(total).any():
            out["best_total"] = float(np.nanmin(np.where(np.isfinite(total), total, np.nan)))
    return out


def model_from_weights(model_config: ModelConfig, weights: Mapping[str, np.ndarray]) -> SparseAutoencoder:
    """A model holding a Snapshot's weights (copied). Raises StoreError if they do not fit the config."""
    model = SparseAutoencoder.from_config(model_config)
    try:
        model.load_state_dict({k: torch.as_tensor(np.array(v, dtype=np.float32)) for k, v in weights.items()})
    except (RuntimeError, KeyError, TypeError, ValueError) as exc:
        raise StoreError(f"the snapshot's weights do not fit a {model_config.n_inputs} -> "
                         f"{model_config.n_hidden} model ({str(exc).splitlines()[0]}).") from None
    return model.eval()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _interrupted(status: str, owner: str, pid: int, host: str) -> bool:
    """A live status written by a process that is gone: it crashed or was killed mid-run."""
    if status not in LIVE_STATUSES or status == RunStatus.IDLE or owner == _PROCESS or host != _HOST:
        return False
    return pid == os.getpid() or not _pid_alive(pid)  # our pid but another owner: a restarted server


def _check_file_header(path: Path) -> None:
    """Refuse a file that is not SQLite, or is shorter than its own header says (truncated)."""
    try:
        if not path.exists():
            return
        size = path.stat().st_size
        if size == 0:
            return
        with path.open("rb") as fh:
            head = fh.read(100)
    except OSError as exc:
        raise StoreError(f"cannot read the run database {path}: {exc.strerror or exc}.") from None
    if not head.startswith(_SQLITE_MAGIC[: min(len(head), 16)]) or len(head) < 16:
        raise StoreError(f"{path} is not an SQLite database (damaged, or written by another program); {_ADVICE}.")
    if len(head) < 100:
        raise StoreError(f"{path} is truncated ({size} bytes, shorter than an SQLite header); {_ADVICE}.")
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        return  # pages may still live in the write-ahead log; SQLite recovers them
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(head[28:32], "big")
    if head[24:28] == head[92:96] and pages and size < pages * page_size:
        raise StoreError(f"{path} is truncated ({size:,} bytes; its header says {pages * page_size:,}); {_ADVICE}.")


# ----------------------------------------------------------------------------- the store

class RunStore:
    """Runs, histories, weights and sweeps in a data directory; safe to share between threads.

    Args:
        root: the data directory (created if needed); default :func:`default_root`.
        busy_timeout: seconds a write waits for another process's write before failing.

    Example:
        >>> store = RunStore(tmp_path)
        >>> run_id = store.create("first", "digits", ModelConfig(64, 25), TrainConfig())
        >>> [r.name for r in store.list()]
        ['first']
    """

    def __init__(self, root: str | os.PathLike | None = None, *, busy_timeout: float = BUSY_TIMEOUT) -> None:
        self.root = Path(root).expanduser() if root is not None else default_root()
        self.db_path = self.root / DB_FILE
        self.weights_dir = self.root / WEIGHTS_DIR
        self.busy_timeout = float(busy_timeout)
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._pid = os.getpid()
        self._configs: dict[str, tuple[ModelConfig, TrainConfig | None, str]] = {}
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"the data directory {self.root} is a file; set {ENV_VAR} to a directory.")
        try:
            self.weights_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the data directory {self.root} ({exc.strerror or exc}); "
                             f"set {ENV_VAR} to a writable directory.") from None
        _check_file_header(self.db_path)
        self._initialise()
        self._remove_stale_temporaries()

    # ------------------------------------------------------------------ connection
    def _connection(self) -> sqlite3.Connection:
        """The store's connection (reopened in a forked child: a connection must not cross a fork)."""
        if self._conn is None or self._pid != os.getpid():
            self._pid = os.getpid()
            conn = sqlite3.connect(self.db_path, timeout=self.busy_timeout, isolation_level=None,
                                   check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            conn.execute("PRAGMA foreign_keys = ON")
            deadline = time.monotonic() + self.busy_timeout
            while True:  # switching to WAL needs a moment alone with the file
                try:
                    conn.execute("PRAGMA journal_mode = WAL")
                    break
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) or time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            conn.execute("PRAGMA synchronous = NORMAL")  # WAL: durable across process crashes
            self._conn = conn
        return self._conn

    def _error(self, exc: sqlite3.Error) -> StoreError:
        text = str(exc)
        if "locked" in text or "busy" in text:
            return StoreError(f"the run database {self.db_path} stayed locked by another writer for "
                              f"{self.busy_timeout:g} s; try again.")
        if isinstance(exc, sqlite3.OperationalError) and ("full" in text or "readonly" in text
                                                          or "unable to open" in text):
            return StoreError(f"cannot write the run database {self.db_path} ({text}); free space or "
                              f"set {ENV_VAR} to a writable directory.")
        return StoreError(f"the run database {self.db_path} is damaged or not a run database ({text}); {_ADVICE}.")

    @contextmanager
    def _db(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """The connection, under the lock; ``write``: inside BEGIN IMMEDIATE ... COMMIT."""
        with self._lock:
            try:
                conn = self._connection()
                if write:
                    conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._error(exc) from None
            try:
                yield conn
                if write:
                    conn.execute("COMMIT")
            except BaseException as exc:
                if write and conn.in_transaction:
                    try:
                        conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                if isinstance(exc, sqlite3.Error):
                    raise self._error(exc) from None
                raise

    def _initialise(self) -> None:
        with self._db(write=True) as conn:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not tables:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)",
                                 [("schema_version", str(SCHEMA_VERSION)), ("application", APPLICATION),
                                  ("created", repr(time.time()))])
                return
            if "meta" not in tables:
                raise StoreError(f"{self.db_path} is an SQLite database but not a Sparse Autoencoder Lab "
                                 f"run store; {_ADVICE}.")
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            version = meta.get("schema_version", "")
            if meta.get("application") != APPLICATION or not version.isdigit():
                raise StoreError(f"{self.db_path} is not a Sparse Autoencoder Lab run store; {_ADVICE}.")
            if int(version) > SCHEMA_VERSION:
                raise StoreError(f"{self.db_path} was written by a newer version of the Lab (schema {version}; "
                                 f"this one reads {SCHEMA_VERSION}); update the Lab or {_ADVICE}.")
            # schema migrations from older versions go here (none yet: version 1 is the first)
            conn.execute("SELECT count(*) FROM runs").fetchone()  # touches the table: damage shows now

    def _remove_stale_temporaries(self, age: float = 600.0) -> None:
        """Half-written weight files of crashed writers (older than ``age`` seconds)."""
        now = time.time()
        try:
            for path in self.weights_dir.glob(".*.tmp"):
                if now - path.stat().st_mtime > age:
                    path.unlink(missing_ok=True)
        except OSError:
            pass

    def close(self) -> None:
        """Close the connection (reopened on next use). The last close folds the WAL into the file."""
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                try:
                    self._conn.close()
                except sqlite3.Error:
                    pass
            self._conn = None

    def __enter__(self) -> "RunStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r})"

    # ------------------------------------------------------------------ files
    def weights_path(self, run_id: str) -> Path:
        """``weights/<run_id>.safetensors`` (the id is checked: it is the only part from outside)."""
        return self.weights_dir / f"{check_run_id(run_id)}.safetensors"

    def _write_weights(self, run_id: str, data: bytes) -> None:
        path = self.weights_path(run_id)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")  # unique: writers never collide
        try:
            with tmp.open("wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise StoreError(f"cannot write the weights file {path} ({exc.strerror or exc}).") from None

    # ------------------------------------------------------------------ writing runs
    def create(self, name: str, dataset: str, model_config: ModelConfig, train_config: TrainConfig | None, *,
               parent_id: str | None = None, sweep_id: str | None = None) -> str:
        """Record a new run (status idle, step 0, no weights yet). Returns its id."""
        name, dataset = _check_text(name, "run name"), _check_text(dataset, "data set name")
        if not isinstance(model_config, ModelConfig):
            raise StoreError("model_config must be a ModelConfig.")
        if train_config is not None and not isinstance(train_config, TrainConfig):
            raise StoreError("train_config must be a TrainConfig or None.")
        parent_id = None if parent_id is None else check_run_id(parent_id, "parent run id")
        sweep_id = None if sweep_id is None else check_run_id(sweep_id, "sweep id")
        run_id, now = new_id(), time.time()
        hyper = {} if train_config is None else {k: getattr(train_config, k) for k in TrainConfig.LIVE_FIELDS}
        with self._db(write=True) as conn:
            conn.execute(
                "INSERT INTO runs (id, name, dataset, created, updated, status, model_config, train_config, hyper, "
                "parent_id, sweep_id, owner, pid, host) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, name, dataset, now, now, RunStatus.IDLE, json.dumps(config_to_dict(model_config)),
                 None if train_config is None else json.dumps(config_to_dict(train_config)), json.dumps(hyper),
                 parent_id, sweep_id, _PROCESS, os.getpid(), _HOST))
        self._configs[run_id] = (model_config, train_config, dataset)
        return run_id

    def _run_configs(self, run_id: str) -> tuple[ModelConfig, TrainConfig | None, str]:
        if run_id not in self._configs:
            with self._db() as conn:
                row = conn.execute("SELECT model_config, train_config, dataset FROM runs WHERE id = ?",
                                   (run_id,)).fetchone()
            if row is None:
                raise RunNotFoundError(f"there is no run {run_id} in {self.db_path}.")
            mc, tc = self._decode_configs(run_id, row[0], row[1])
            self._configs[run_id] = (mc, tc, row[2])
        return self._configs[run_id]

    def checkpoint(self, run_id: str, snapshot: Snapshot, history: Mapping[str, np.ndarray] | None = None) -> None:
        """Record a running run's latest state: weights file (atomic), status, step, losses, history.

        Cheap (a few ms for a bounded history): call it every few seconds from the training thread.
        Weights that are not finite are skipped (the previous file stays). A run deleted meanwhile
        raises RunNotFoundError and leaves no file behind.
        """
        self._write_snapshot(run_id, snapshot, history, status=snapshot.status)

    def finish(self, run_id: str, snapshot: Snapshot, history: Mapping[str, np.ndarray] | None = None,
               metrics: Mapping[str, Any] | None = None, *, rho_hat: np.ndarray | None = None) -> None:
        """Record a run's end: like :meth:`checkpoint`, plus final metrics.

        Args:
            snapshot: the last one; its status is kept if final (finished, stopped, diverged), else "stopped".
            metrics: values for the metric columns (``METRIC_COLUMNS``; e.g. reconstruction and rho_hat_mean
                measured on the whole data set override the last step's), any other key goes to the
                ``metrics`` JSON. Non-finite numbers are stored as unknown.
            rho_hat: the (n_hidden,) mean activations to keep instead of the snapshot's (e.g. on all data).
        """
        status = snapshot.status if snapshot.status in FINAL_STATUSES else RunStatus.STOPPED
        self._write_snapshot(run_id, snapshot, history, status=status, metrics=metrics or {}, rho_hat=rho_hat)

    def _write_snapshot(self, run_id: str, snapshot: Snapshot, history: Mapping[str, np.ndarray] | None,
                        status: str, metrics: Mapping[str, Any] | None = None,
                        rho_hat: np.ndarray | None = None) -> None:
        run_id = check_run_id(run_id)
        model_config, train_config, dataset = self._run_configs(run_id)
        hyper = {k: float(v) for k, v in snapshot.hyper.items()}
        columns: dict[str, Any] = {k: _number(snapshot.losses.get(k)) for k in METRIC_COLUMNS[:4]}
        vector = np.asarray(snapshot.rho_hat if rho_hat is None else rho_hat, dtype="<f8").ravel()
        columns["rho_hat_mean"] = _number(vector.mean()) if vector.size and np.isfinite(vector).all() else None
        extra: dict[str, Any] = {}
        for key, value in (metrics or {}).items():
            if key in METRIC_COLUMNS:
                number = _number(value)
                columns[key] = None if number is None else (int(round(number)) if key == "dead_units" else number)
            else:
                extra[str(key)] = _json_safe(value)
        encoded = None if history is None else encode_history(history)
        summary = None if history is None else json.dumps(history_summary(history))

        model = model_from_weights(model_config, snapshot.weights)
        current = train_config
        if train_config is not None:
            try:
                current = replace(train_config, **{k: v for k, v in hyper.items() if k in TrainConfig.LIVE_FIELDS})
            except ConfigError:
                current = train_config
        try:
            data = model_to_bytes(model, current, dataset)
        except RunFileError:
            data = None  # non-finite weights: keep the last good file
        if data is not None:
            self._write_weights(run_id, data)

        sets = ["updated = ?", "status = ?", "reason = ?", "step = ?", "epoch = ?", "elapsed = ?", "hyper = ?",
                "rho_hat = ?", "owner = ?", "pid = ?", "host = ?", *[f"{k} = ?" for k in columns]]
        values: list[Any] = [time.time(), status, str(snapshot.reason)[:2000], int(snapshot.step),
                             float(snapshot.epoch), float(snapshot.elapsed), json.dumps(_json_safe(hyper)),
                             vector.tobytes() if vector.size else None, _PROCESS, os.getpid(), _HOST,
                             *columns.values()]
        if data is not None:
            sets.append("has_weights = 1")
        if metrics is not None:
            sets.append("metrics = ?")
            values.append(json.dumps(extra))
        if summary is not None:
            sets.append("summary = ?")
            values.append(summary)
        with self._db(write=True) as conn:
            found = conn.execute(f"UPDATE runs SET {', '.join(sets)} WHERE id = ?", (*values, run_id)).rowcount
            if found and encoded is not None:
                conn.execute("INSERT OR REPLACE INTO histories (run_id, columns, rows, data) VALUES (?, ?, ?, ?)",
                             (run_id, *encoded))
        if not found:
            self.weights_path(run_id).unlink(missing_ok=True)
            self._configs.pop(run_id, None)
            raise RunNotFoundError(f"run {run_id} was deleted from {self.db_path}; nothing was recorded.")

    def add(self, name: str, dataset: str, model: SparseAutoencoder, train_config: TrainConfig | None = None,
            history: Mapping[str, np.ndarray] | None = None, metrics: Mapping[str, Any] | None = None) -> str:
        """Record an already trained model (an upload, a CLI run) as a finished run. Returns its id."""
        run_id = self.create(name, dataset, model.config, train_config)
        hist = dict(history or {})
        last = {k: float(np.asarray(v)[-1]) for k, v in hist.items() if len(v)}
        weights = {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}
        hyper = {} if train_config is None else {k: getattr(train_config, k) for k in TrainConfig.LIVE_FIELDS}
        snap = Snapshot(step=int(last["step"]) + 1 if "step" in last else 0, epoch=last.get("epoch", 0.0),
                        losses={k: last[k] for k in METRIC_COLUMNS[:4] if k in last}, rho_hat=np.array([]),
                        weights=weights, hyper=hyper, samples_per_s=0.0, elapsed=last.get("time", 0.0),
                        status=RunStatus.FINISHED, reason="imported")
        self.finish(run_id, snap, hist if hist else None, dict(metrics or {}))
        return run_id

    def rename(self, run_id: str, name: str) -> None:
        run_id, name = check_run_id(run_id), _check_text(name, "run name")
        with self._db(write=True) as conn:
            found = conn.execute("UPDATE runs SET name = ? WHERE id = ?", (name, run_id)).rowcount
        if not found:
            raise RunNotFoundError(f"there is no run {run_id} in {self.db_path}.")

    def delete(self, run_id: str) -> None:
        """Remove a run: its row, its history and its weights file."""
        run_id = check_run_id(run_id)
        with self._db(write=True) as conn:
            found = conn.execute("DELETE FROM runs WHERE id = ?", (run_id,)).rowcount
        self._configs.pop(run_id, None)
        try:
            self.weights_path(run_id).unlink(missing_ok=True)
        except OSError as exc:
            raise StoreError(f"the run was deleted but its weights file could not be removed "
                             f"({exc.strerror or exc}).") from None
        if not found:
            raise RunNotFoundError(f"there is no run {run_id} in {self.db_path}.")

    # ------------------------------------------------------------------ reading runs
    _COLUMNS = ("id, name, dataset, created, updated, status, reason, step, epoch, elapsed, model_config, "
                "train_config, hyper, total, reconstruction, sparsity, weight_decay, rho_hat_mean, dead_units, "
                "probe_accuracy, metrics, summary, has_weights, parent_id, sweep_id, owner, pid, host")

    def _decode_configs(self, run_id: str, model_json: str, train_json: str | None
                        ) -> tuple[ModelConfig, TrainConfig | None]:
        try:
            mc = config_from_dict(ModelConfig, json.loads(model_json))
            tc = None if train_json is None else config_from_dict(TrainConfig, json.loads(train_json))
        except (ConfigError, json.JSONDecodeError, TypeError) as exc:
            raise StoreError(f"the stored configuration of run {run_id} in {self.db_path} is damaged ({exc}).") \
                from None
        return mc, tc

    def _record(self, row: sqlite3.Row | tuple) -> RunRecord:
        (run_id, name, dataset, created, updated, status, reason, step, epoch, elapsed, mj, tj, hyper, total,
         recon, sparsity, wd, rho_mean, dead, probe, metrics, summary, has_w, parent, sweep, owner, pid,
         host) = row
        mc, tc = self._decode_configs(run_id, mj, tj)

        def loads(text: str) -> dict:
            try:
                value = json.loads(text or "{}")
            except json.JSONDecodeError:
                return {}
            return value if isinstance(value, dict) else {}

        return RunRecord(run_id, name, dataset, created, updated, status, reason, int(step), float(epoch),
                         float(elapsed), mc, tc, loads(hyper), total, recon, sparsity, wd, rho_mean,
                         None if dead is None else int(dead), probe, loads(metrics), loads(summary), bool(has_w),
                         parent, sweep, _interrupted(status, owner, int(pid), host))

    def get(self, run_id: str) -> RunRecord:
        run_id = check_run_id(run_id)
        with self._db() as conn:
            row = conn.execute(f"SELECT {self._COLUMNS} FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise RunNotFoundError(f"there is no run {run_id} in {self.db_path}.")
        return self._record(row)

    def list(self, *, status: str | Sequence[str] | None = None, dataset: str | None = None,
             search: str | None = None, sweep_id: str | None = None, n_inputs: int | None = None,
             order_by: str = "updated", descending: bool = True, limit: int | None = None) -> list[RunRecord]:
        """Runs matching every given filter, sorted.

        Args:
            status: one status or several, as shown (``RunRecord.display_status``: a live status written
                by a process that died reads ``interrupted``).
            dataset: exact data set name.
            search: case-insensitive substring of the run name.
            sweep_id: only the cells of this sweep.
            n_inputs: only models with this input size (runs whose filters can be compared).
            order_by: one of ``SORTABLE``; ``descending`` flips the order. Unknown values are NULL-last.
            limit: at most this many.
        """
        where, args = [], []
        wanted: set[str] | None = None
        if status is not None:
            wanted = {status} if isinstance(status, str) else set(status)
            stored = (wanted - {"interrupted"}) | (set(LIVE_STATUSES) if "interrupted" in wanted else set())
            where.append(f"status IN ({', '.join('?' * len(stored))})")
            args += sorted(stored)
        if dataset is not None:
            where.append("dataset = ?")
            args.append(dataset)
        if search:
            escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            where.append("name LIKE ? ESCAPE '\\'")
            args.append(f"%{escaped}%")
        if sweep_id is not None:
            where.append("sweep_id = ?")
            args.append(check_run_id(sweep_id, "sweep id"))
        if n_inputs is not None:
            where.append("json_extract(model_config, '$.n_inputs') = ?")
            args.append(int(n_inputs))
        if order_by not in SORTABLE:
            raise StoreError(f"cannot sort runs by {order_by!r}; choose one of {', '.join(SORTABLE)}.")
        sql = f"SELECT {self._COLUMNS} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        direction = "DESC" if descending else "ASC"
        sql += f" ORDER BY {order_by} IS NULL, {order_by} {direction}, created {direction}"
        if limit is not None and wanted is None:
            sql += f" LIMIT {max(0, int(limit))}"
        with self._db() as conn:
            rows = conn.execute(sql, args).fetchall()
        records = [self._record(row) for row in rows]
        if wanted is not None:  # filter on the status shown: a crashed "running" run is "interrupted"
            records = [r for r in records if r.display_status in wanted]
        return records if limit is None else records[:max(0, int(limit))]

    def __len__(self) -> int:
        with self._db() as conn:
            return int(conn.execute("SELECT count(*) FROM runs").fetchone()[0])

    def __contains__(self, run_id: object) -> bool:
        if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
            return False
        with self._db() as conn:
            return conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is not None

    def history(self, run_id: str) -> dict[str, np.ndarray]:
        """The run's recorded history: column -> (rows,) float64; {} before the first checkpoint."""
        run_id = check_run_id(run_id)
        with self._db() as conn:
            row = conn.execute("SELECT columns, rows, data FROM histories WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
                    raise RunNotFoundError(f"there is no run {run_id} in {self.db_path}.")
                return {}
        return decode_history(row[0], row[1], row[2], f"run {run_id}")

    def rho_hat(self, run_id: str) -> np.ndarray | None:
        """The (n_hidden,) mean activations recorded last (on all data once finished), or None."""
        run_id = check_run_id(run_id)
        with self._db() as conn:
            row = conn.execute("SELECT rho_hat FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise RunNotFoundError(f"there is no run {run_id} in {self.db_path}.")
        return None if row[0] is None else np.frombuffer(row[0], dtype="<f8").astype(np.float64)

    def load_model(self, run_id: str) -> SparseAutoencoder:
        """The run's latest recorded weights as a model (eval mode)."""
        return self.load(run_id, with_history=False).model

    def load(self, run_id: str, *, with_history: bool = True) -> Run:
        """Everything needed to continue a run: model, configs (live values applied), data set, history."""
        record = self.get(run_id)
        path = self.weights_path(record.id)
        if not record.has_weights:
            raise StoreError(f"run {record.name!r} has no weights yet (it never reached a checkpoint).")
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise StoreError(f"the weights file of run {record.name!r} is missing ({path}); delete the run "
                             f"or restore the file.") from None
        except OSError as exc:
            raise StoreError(f"cannot read the weights file {path} ({exc.strerror or exc}).") from None
        try:
            model, _, _ = model_from_bytes(data, expect=record.model_config, what=str(path),
                                           max_bytes=MAX_MODEL_BYTES)
        except RunFileError as exc:
            raise StoreError(str(exc)) from None
        history = self.history(record.id) if with_history else {}
        return Run(model, record.model_config, record.current_train_config, record.dataset, history, path)

    # ------------------------------------------------------------------ sweeps
    def create_sweep(self, name: str, dataset: str, spec: Mapping[str, Any],
                     image_shape: tuple[int, int] | None = None) -> str:
        """Record a sweep (status running); its cells are runs created with ``sweep_id``."""
        name, dataset = _check_text(name, "sweep name"), _check_text(dataset, "data set name")
        sweep_id, now = new_id(), time.time()
        shape = None if image_shape is None else json.dumps([int(v) for v in image_shape])
        with self._db(write=True) as conn:
            conn.execute("INSERT INTO sweeps (id, name, dataset, created, updated, status, spec, image_shape) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         (sweep_id, name, dataset, now, now, RunStatus.RUNNING, json.dumps(_json_safe(dict(spec))), shape))
        return sweep_id

    def update_sweep(self, sweep_id: str, status: str) -> None:
        sweep_id = check_run_id(sweep_id, "sweep id")
        with self._db(write=True) as conn:
            found = conn.execute("UPDATE sweeps SET status = ?, updated = ? WHERE id = ?",
                                 (_check_text(status, "status"), time.time(), sweep_id)).rowcount
        if not found:
            raise RunNotFoundError(f"there is no sweep {sweep_id} in {self.db_path}.")

    def _sweep_record(self, row: tuple) -> SweepRecord:
        sweep_id, name, dataset, created, updated, status, spec, shape = row
        try:
            spec = json.loads(spec)
            shape = None if shape is None else tuple(int(v) for v in json.loads(shape))
        except (json.JSONDecodeError, TypeError, ValueError):
            raise StoreError(f"the stored sweep {sweep_id} in {self.db_path} is damaged.") from None
        return SweepRecord(sweep_id, name, dataset, created, updated, status, spec, shape)  # type: ignore[arg-type]

    def get_sweep(self, sweep_id: str) -> SweepRecord:
        sweep_id = check_run_id(sweep_id, "sweep id")
        with self._db() as conn:
            row = conn.execute("SELECT id, name, dataset, created, updated, status, spec, image_shape FROM sweeps "
                               "WHERE id = ?", (sweep_id,)).fetchone()
        if row is None:
            raise RunNotFoundError(f"there is no sweep {sweep_id} in {self.db_path}.")
        return self._sweep_record(row)

    def sweeps(self) -> list[SweepRecord]:
        """All recorded sweeps, newest first."""
        with self._db() as conn:
            rows = conn.execute("SELECT id, name, dataset, created, updated, status, spec, image_shape FROM sweeps "
                                "ORDER BY created DESC").fetchall()
        return [self._sweep_record(row) for row in rows]

    def delete_sweep(self, sweep_id: str, *, runs: bool = True) -> None:
        """Remove a sweep record, and its cells' runs (with their weights) unless ``runs=False``."""
        sweep_id = check_run_id(sweep_id, "sweep id")
        ids = [r.id for r in self.list(sweep_id=sweep_id)] if runs else []
        for run_id in ids:
            try:
                self.delete(run_id)
            except RunNotFoundError:
                pass
        with self._db(write=True) as conn:
            found = conn.execute("DELETE FROM sweeps WHERE id = ?", (sweep_id,)).rowcount
            if not runs:
                conn.execute("UPDATE runs SET sweep_id = NULL WHERE sweep_id = ?", (sweep_id,))
        if not found:
            raise RunNotFoundError(f"there is no sweep {sweep_id} in {self.db_path}.")


__all__ = ["RunStore", "RunRecord", "SweepRecord", "StoreError", "RunNotFoundError", "default_root", "check_run_id",
           "model_from_weights", "encode_history", "decode_history", "METRIC_COLUMNS", "SORTABLE",
           "SCHEMA_VERSION", "ENV_VAR"]
