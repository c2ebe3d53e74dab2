"""The run store: every training run recorded in a local SQLite database, its weights beside it.

The data directory (``$SAE_LAB_DATA``, else ``$XDG_DATA_HOME/sae-lab``, else ``~/.local/share/sae-lab``)::

    runs.sqlite                     WAL-mode database: tables meta, runs, histories, sweeps
    identity.key                    the secret that signs identity tokens (sae.runs.owners), mode 0600
    weights/<run_id>.safetensors    each run's latest weights (sae.runs.model_file.model_to_bytes),
                                    replaced atomically (temporary file + os.replace)

Its parts, one job each: :mod:`sae.runs.database` (schema, the one connection and lock, concurrency, damage
checks), :mod:`sae.runs.codec` (ids, text, numbers, JSON and histories in and out of rows),
:mod:`sae.runs.records` (:class:`RunRecord`, crash detection), :mod:`sae.runs.sweep_table` (the recorded
sweeps: ``store.sweeps``), :mod:`sae.runs.trash` (deleted runs kept for a while, restorable:
``store.trash``), :mod:`sae.runs.owners` (who may change a run: ``store.signer`` issues and verifies identity
tokens) and this module, :class:`RunStore`: the runs and their weights files.

Who may do what: a run belongs to the user whose token created it (``create(..., owner=token)``). Anyone may
read, compare, load and :meth:`RunStore.copy` any run; :meth:`RunStore.rename`, :meth:`RunStore.delete`,
``trash.put`` and ``trash.restore`` take ``actor=token`` and refuse (:class:`PermissionDeniedError`) a student who
does not own the run; a teacher's token may change any run. A token this store did not issue is refused
(:class:`ForgedIdentityError`). ``actor=None`` / ``owner=None`` is the library's local user (a notebook, the
command line): it may change anything, as before ownership existed, and what it records has no owner. The
dashboard always passes its session's token. Checkpoints and the finish of a run are written by the process
that created it (its recorder), not by a user: they are not checked.

A run id is 32 lowercase hex digits (``uuid4().hex``), generated here and checked on every call:
it is the only user-reachable part of a file name. Names are free text and never touch the disk.

Every problem is a :class:`StoreError` (a ValueError) with a one-sentence message: a damaged or
foreign database names the file and says how to start afresh; a missing weights file names it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from sae.core.config import ConfigError, ModelConfig, TrainConfig, config_to_dict
from sae.core.model import SparseAutoencoder
from sae.runs.codec import (MAX_NAME, check_run_id, check_text, decode_configs, decode_history, encode_history,
                            history_summary, is_run_id, json_safe, metric_columns, new_id)
from sae.runs.database import BUSY_TIMEOUT, ENV_VAR, SCHEMA_VERSION, Database
from sae.runs.errors import ForgedIdentityError, PermissionDeniedError, RunNotFoundError, StoreError
from sae.runs.model_file import MAX_MODEL_BYTES, Run, RunFileError, model_from_bytes, model_to_bytes
from sae.runs.owners import Identity, Signer, may_change, require
from sae.runs.records import METRIC_COLUMNS, RUN_COLUMNS, RunRecord, list_filters, run_record, writer
from sae.runs.sweep_table import SweepRecord, SweepTable
from sae.runs.classroom import Classes
from sae.runs.trash import Trash
from sae.training.status import FINAL_STATUSES, RunStatus
from sae.training.timeline import TimelineView, timeline_from_dict, timeline_to_dict
from sae.training.trainer import Snapshot

logger = logging.getLogger(__name__)

APPLICATION = "sae-lab"
DB_FILE, WEIGHTS_DIR = "runs.sqlite", "weights"
SORTABLE = ("name", "dataset", "created", "updated", "status", "step", "epoch", "elapsed", *METRIC_COLUMNS)


def default_root() -> Path:
    """``$SAE_LAB_DATA``, else ``$XDG_DATA_HOME/sae-lab``, else ``~/.local/share/sae-lab``."""
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg and Path(xdg).expanduser().is_absolute() else \
        Path.home() / ".local" / "share"
    return base / APPLICATION


def _write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to a unique temporary file beside ``path``, then rename it over ``path``."""
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


def _remove_stale_temporaries(weights_dir: Path, age: float = 600.0) -> None:
    """Remove half-written weight files of crashed writers (older than ``age`` seconds)."""
    now = time.time()
    try:
        for path in weights_dir.glob(".*.tmp"):
            if now - path.stat().st_mtime > age:
                path.unlink(missing_ok=True)
    except OSError as exc:  # housekeeping only: a file left behind is retried at the next start
        logger.warning("cannot remove stale temporary weights files in %s: %s", weights_dir, exc)


def _read_model(path: Path, record: RunRecord) -> SparseAutoencoder:
    """The model in a run's weights file; StoreError if the run has none yet, or the file is missing or damaged."""
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
        model, _, _ = model_from_bytes(data, expect=record.model_config, what=str(path), max_bytes=MAX_MODEL_BYTES)
    except RunFileError as exc:
        raise StoreError(str(exc)) from None
    return model


class RunStore:
    """Runs, histories and weights in a data directory, and its sweeps (``store.sweeps``); thread-safe.

    Args:
        root: the data directory (created if needed); default :func:`default_root`.
        busy_timeout: seconds a write waits for another process's write before failing.
        identity_key: the secret that signs identity tokens (at least 16 bytes); default: the data directory's
            ``identity.key``, made on first use, so every process on this store accepts the same tokens.

    Attributes:
        sweeps: the recorded sweeps (:class:`sae.runs.sweep_table.SweepTable`), on the same connection.
        trash: the deleted runs kept for a while (:class:`sae.runs.trash.Trash`): ``store.trash.put(run_id)``
            is the delete a user can undo (``store.trash.restore``); :meth:`delete` is final. Trashed runs are
            left out of :meth:`list`, :meth:`get`, ``len`` and ``in``; opening a store purges old ones.
        signer: issues and verifies the identity tokens of ``owner=`` and ``actor=`` (:class:`sae.runs.owners.Signer`).

    Example:
        >>> store = RunStore(tmp_path)
        >>> run_id = store.create("first", "digits", ModelConfig(64, 25, decoder_activation="sigmoid"), TrainConfig())
        >>> [r.name for r in store.list()]
        ['first']
    """

    def __init__(self, root: str | os.PathLike | None = None, *, busy_timeout: float = BUSY_TIMEOUT,
                 identity_key: bytes | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_root()
        self._signer = None if identity_key is None else Signer(identity_key)
        self._signer_lock = threading.Lock()
        self.db_path = self.root / DB_FILE
        self.weights_dir = self.root / WEIGHTS_DIR
        self.busy_timeout = float(busy_timeout)
        self._configs: dict[str, tuple[ModelConfig, TrainConfig | None, str]] = {}
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"the data directory {self.root} is a file; set {ENV_VAR} to a directory.")
        try:
            self.weights_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the data directory {self.root} ({exc.strerror or exc}); "
                             f"set {ENV_VAR} to a writable directory.") from None
        self._db = Database(self.db_path, self.busy_timeout)
        self.sweeps = SweepTable(self._db, self)
        self.trash = Trash(self._db, self)
        self.classes = Classes(self._db, self)
        _remove_stale_temporaries(self.weights_dir)
        self.trash.purge()

    def close(self) -> None:
        """Close the connection (reopened on next use). The last close folds the WAL into the file."""
        self._db.close()

    def __enter__(self) -> "RunStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r})"

    # ------------------------------------------------------------------ who may change what
    @property
    def signer(self) -> Signer:
        """The signer of this store's identity tokens (its key file is read, or made, on first use)."""
        with self._signer_lock:
            if self._signer is None:
                self._signer = Signer.for_directory(self.root)
            return self._signer

    def identity(self, token: str | None) -> Identity | None:
        """The identity a token carries (ForgedIdentityError if this store did not issue it); None for None,
        the library's local user."""
        return None if token is None else self.signer.verify(token)

    def _require(self, conn: Any, run_id: str, who: Identity | None) -> None:
        """Inside a transaction: PermissionDeniedError unless ``who`` may change the run (a missing run passes:
        the caller reports it)."""
        if who is None or who.is_teacher:
            return
        row = conn.execute("SELECT owned_by FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is not None:
            require(row[0], who)

    def can_change(self, run_id: str, actor: str | None) -> bool:
        """Whether ``actor`` (a token; None: the local user) may rename, delete or restore the run, listed or in
        the trash. RunNotFoundError if there is no such run; ForgedIdentityError for a token not issued here."""
        run_id, who = check_run_id(run_id), self.identity(actor)
        with self._db.transaction() as conn:
            row = conn.execute("SELECT owned_by FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise RunNotFoundError(f"there is no run {run_id} in {self.db_path}.")
        return may_change(row[0], who)

    def weights_path(self, run_id: str) -> Path:
        """``weights/<run_id>.safetensors`` (the id is checked: it is the only part from outside)."""
        return self.weights_dir / f"{check_run_id(run_id)}.safetensors"

    # ------------------------------------------------------------------ writing runs
    def create(self, name: str, dataset: str, model_config: ModelConfig, train_config: TrainConfig | None, *,
               parent_id: str | None = None, sweep_id: str | None = None, owner: str | None = None) -> str:
        """Record a new run (status idle, step 0, no weights yet). Returns its id.

        ``owner``: the token of the user the run belongs to (ForgedIdentityError if this store did not issue it);
        None: no owner (the local user's run: only a teacher or the local user may change it).
        """
        name, dataset = check_text(name, "run name"), check_text(dataset, "data set name")
        who = self.identity(owner)
        if not isinstance(model_config, ModelConfig):
            raise StoreError("model_config must be a ModelConfig.")
        if model_config.decoder_activation == "auto":
            raise StoreError("a run records the decoder its weights use: make 'auto' concrete for the data with "
                             "model_config.for_data(X) (or use the trainer's model.config).")
        if train_config is not None and not isinstance(train_config, TrainConfig):
            raise StoreError("train_config must be a TrainConfig or None.")
        parent_id = None if parent_id is None else check_run_id(parent_id, "parent run id")
        sweep_id = None if sweep_id is None else check_run_id(sweep_id, "sweep id")
        run_id, now = new_id(), time.time()
        hyper = {} if train_config is None else {k: getattr(train_config, k) for k in TrainConfig.LIVE_FIELDS}
        with self._db.transaction(write=True) as conn:
            conn.execute(
                "INSERT INTO runs (id, name, dataset, created, updated, status, model_config, train_config, hyper, "
                "parent_id, sweep_id, owner, pid, host, owned_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, name, dataset, now, now, RunStatus.IDLE, json.dumps(config_to_dict(model_config)),
                 None if train_config is None else json.dumps(config_to_dict(train_config)), json.dumps(hyper),
                 parent_id, sweep_id, *writer(), None if who is None else who.user))
        self._configs[run_id] = (model_config, train_config, dataset)
        return run_id

    def run_configs(self, run_id: str) -> tuple[ModelConfig, TrainConfig | None, str]:
        """(model config, train config as created, data set name) of a run; cached, as they never change."""
        run_id = check_run_id(run_id)
        if run_id not in self._configs:
            with self._db.transaction() as conn:
                row = conn.execute("SELECT model_config, train_config, dataset FROM runs WHERE id = ?",
                                   (run_id,)).fetchone()
            if row is None:
                raise RunNotFoundError(f"there is no run {run_id} in {self.db_path}.")
            mc, tc = decode_configs(row[0], row[1], f"run {run_id} in {self.db_path}")
            self._configs[run_id] = (mc, tc, row[2])
        return self._configs[run_id]

    def checkpoint(self, run_id: str, snapshot: Snapshot, history: Mapping[str, np.ndarray] | None = None, *,
                   timeline: TimelineView | None = None) -> None:
        """Record a running run's latest state: weights file (atomic), status, step, losses, history.

        Cheap (a few ms for a bounded history): call it every few seconds from the training thread.
        Weights that are not finite are skipped (the previous file stays). A run deleted meanwhile
        raises RunNotFoundError and leaves no file behind. ``timeline``: the run's edits so far (kept with it, so the
        run can be replayed: :meth:`timeline`).
        """
        self._write_snapshot(run_id, snapshot, history, status=snapshot.status, timeline=timeline)

    def finish(self, run_id: str, snapshot: Snapshot, history: Mapping[str, np.ndarray] | None = None,
               metrics: Mapping[str, Any] | None = None, *, rho_hat: np.ndarray | None = None,
               timeline: TimelineView | None = None) -> None:
        """Record a run's end: like :meth:`checkpoint`, plus final metrics.

        Args:
            snapshot: the last one; its status is kept if final (finished, stopped, diverged), else "stopped".
            metrics: values for the metric columns (``METRIC_COLUMNS``; e.g. reconstruction and rho_hat_mean
                measured on the whole data set override the last step's), any other key goes to the
                ``metrics`` JSON. Non-finite numbers are stored as unknown.
            rho_hat: the (n_hidden,) mean activations to keep instead of the snapshot's (e.g. on all data).
        """
        status = snapshot.status if snapshot.status in FINAL_STATUSES else RunStatus.STOPPED
        self._write_snapshot(run_id, snapshot, history, status=status, metrics=metrics or {}, rho_hat=rho_hat,
                             timeline=timeline)

    def _weights_bytes(self, run_id: str, snapshot: Snapshot, hyper: Mapping[str, float]) -> bytes | None:
        """The snapshot's model as a weights file (live hyperparameters applied), None if its weights are not finite."""
        model_config, train_config, dataset = self.run_configs(run_id)
        try:
            model = SparseAutoencoder.from_weights(model_config, snapshot.weights)
        except ValueError as exc:  # the message starts "weights do not fit ..."
            raise StoreError(f"the snapshot's {exc}") from None
        current = train_config
        if train_config is not None:
            try:
                current = replace(train_config, **{k: v for k, v in hyper.items() if k in TrainConfig.LIVE_FIELDS})
            except ConfigError as exc:  # the file then describes the run as created
                logger.debug("run %s: live hyperparameters %s not applied to its weights file (%s)", run_id, hyper, exc)
                current = train_config
        try:
            return model_to_bytes(model, current, dataset)
        except RunFileError as exc:  # non-finite weights: keep the last good file
            logger.debug("run %s: weights not written (%s)", run_id, exc)
            return None

    def _write_snapshot(self, run_id: str, snapshot: Snapshot, history: Mapping[str, np.ndarray] | None,
                        status: str, metrics: Mapping[str, Any] | None = None,
                        rho_hat: np.ndarray | None = None, timeline: TimelineView | None = None) -> None:
        run_id = check_run_id(run_id)
        self.run_configs(run_id)  # a missing run fails here, before anything is written
        hyper = {k: float(v) for k, v in snapshot.hyper.items()}
        vector = np.asarray(snapshot.rho_hat if rho_hat is None else rho_hat, dtype="<f8").ravel()
        columns, extra = metric_columns(snapshot.losses, metrics, vector)
        encoded = None if history is None else encode_history(history)
        summary = None if history is None else json.dumps(history_summary(history))
        data = self._weights_bytes(run_id, snapshot, hyper)
        if data is not None:
            _write_atomically(self.weights_path(run_id), data)

        sets = ["updated = ?", "status = ?", "reason = ?", "step = ?", "epoch = ?", "elapsed = ?", "hyper = ?",
                "rho_hat = ?", "owner = ?", "pid = ?", "host = ?", *[f"{k} = ?" for k in columns]]
        values: list[Any] = [time.time(), status, str(snapshot.reason)[:2000], int(snapshot.step),
                             float(snapshot.epoch), float(snapshot.elapsed), json.dumps(json_safe(hyper)),
                             vector.tobytes() if vector.size else None, *writer(), *columns.values()]
        if data is not None:
            sets.append("has_weights = 1")
        if metrics is not None:
            sets.append("metrics = ?")
            values.append(json.dumps(extra))
        if summary is not None:
            sets.append("summary = ?")
            values.append(summary)
        if timeline is not None:
            sets.append("timeline = ?")
            values.append(json.dumps(timeline_to_dict(timeline)))
        with self._db.transaction(write=True) as conn:
            found = conn.execute(f"UPDATE runs SET {', '.join(sets)} WHERE id = ?", (*values, run_id)).rowcount
            if found and encoded is not None:
                conn.execute("INSERT OR REPLACE INTO histories (run_id, columns, rows, data) VALUES (?, ?, ?, ?)",
                             (run_id, *encoded))
        if not found:
            self.weights_path(run_id).unlink(missing_ok=True)
            self._configs.pop(run_id, None)
            raise RunNotFoundError(f"run {run_id} was deleted from {self.db_path}; nothing was recorded.")

    def add(self, name: str, dataset: str, model: SparseAutoencoder, train_config: TrainConfig | None = None,
            history: Mapping[str, np.ndarray] | None = None, metrics: Mapping[str, Any] | None = None, *,
            owner: str | None = None) -> str:
        """Record an already trained model (an upload, a CLI run) as a finished run, ``owner``'s (a token; None:
        no owner). Returns its id."""
        run_id = self.create(name, dataset, model.config, train_config, owner=owner)
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

    def copy(self, run_id: str, name: str | None = None, *, owner: str | None = None) -> str:
        """Duplicate a listed run as a new run of ``owner`` (a token; None: no owner): its record, history and
        weights, ``parent_id`` the original, in no sweep. Anyone may copy any run: a copy is how someone else's
        run is continued. A run copied while it trains is recorded as stopped at its last checkpoint. Returns
        the copy's id."""
        record = self.get(run_id)
        who = self.identity(owner)
        name = check_text(f"{record.name[:MAX_NAME - 7]} (copy)" if name is None else name, "run name")
        status, reason = (record.status, record.reason) if record.final else \
            (RunStatus.STOPPED, f"copied while it was {record.display_status}")
        copy_id, now = new_id(), time.time()
        path = self.weights_path(copy_id)
        if record.has_weights:
            try:
                data = self.weights_path(record.id).read_bytes()
            except FileNotFoundError:
                raise StoreError(f"the weights file of run {record.name!r} is missing "
                                 f"({self.weights_path(record.id)}); it cannot be copied.") from None
            except OSError as exc:
                raise StoreError(f"cannot read the weights file of run {record.name!r} "
                                 f"({exc.strerror or exc}).") from None
            _write_atomically(path, data)
        metrics = ", ".join(METRIC_COLUMNS)
        try:
            with self._db.transaction(write=True) as conn:
                found = conn.execute(
                    "INSERT INTO runs (id, name, created, updated, status, reason, owner, pid, host, owned_by, "
                    "parent_id, has_weights, dataset, step, epoch, elapsed, model_config, train_config, hyper, "
                    f"{metrics}, metrics, summary, rho_hat) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, id, ?, dataset, "
                    f"step, epoch, elapsed, model_config, train_config, hyper, {metrics}, metrics, summary, rho_hat "
                    "FROM runs WHERE id = ? AND deleted IS NULL",
                    (copy_id, name, now, now, status, reason, *writer(), None if who is None else who.user,
                     int(record.has_weights), record.id)).rowcount
                conn.execute("INSERT INTO histories (run_id, columns, rows, data) SELECT ?, columns, rows, data "
                             "FROM histories WHERE run_id = ?", (copy_id, record.id))
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        if not found:  # deleted since it was read
            path.unlink(missing_ok=True)
            raise RunNotFoundError(f"there is no run {record.id} in {self.db_path}.")
        return copy_id

    def rename(self, run_id: str, name: str, *, actor: str | None = None) -> None:
        """Rename a run (listed or trashed). ``actor``: who asks (a token; None: the local user): only the run's
        owner or a teacher may (PermissionDeniedError)."""
        run_id, name = check_run_id(run_id), check_text(name, "run name")
        who = self.identity(actor)
        with self._db.transaction(write=True) as conn:
            self._require(conn, run_id, who)
            found = conn.execute("UPDATE runs SET name = ? WHERE id = ?", (name, run_id)).rowcount
        if not found:
            raise RunNotFoundError(f"there is no run {run_id} in {self.db_path}.")

    def delete(self, run_id: str, *, actor: str | None = None) -> None:
        """Remove a run for good (listed or in the trash): its row, its history and its weights file.

        The delete a user can undo is ``store.trash.put(run_id)``. ``actor``: who asks (a token; None: the local
        user): only the run's owner or a teacher may (PermissionDeniedError).
        """
        run_id = check_run_id(run_id)
        who = self.identity(actor)
        with self._db.transaction(write=True) as conn:
            self._require(conn, run_id, who)
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
    def get(self, run_id: str) -> RunRecord:
        run_id = check_run_id(run_id)
        with self._db.transaction() as conn:
            row = conn.execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE id = ? AND deleted IS NULL",
                               (run_id,)).fetchone()
        if row is None:
            raise RunNotFoundError(f"there is no run {run_id} in {self.db_path}.")
        return run_record(row, str(self.db_path))

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
        where, args, wanted = list_filters(status, dataset, search, sweep_id, n_inputs)
        where.insert(0, "deleted IS NULL")  # trashed runs are listed by store.trash.list()
        if order_by not in SORTABLE:
            raise StoreError(f"cannot sort runs by {order_by!r}; choose one of {', '.join(SORTABLE)}.")
        sql = f"SELECT {RUN_COLUMNS} FROM runs WHERE " + " AND ".join(where)
        direction = "DESC" if descending else "ASC"
        sql += f" ORDER BY {order_by} IS NULL, {order_by} {direction}, created {direction}"
        if limit is not None and wanted is None:
            sql += f" LIMIT {max(0, int(limit))}"
        with self._db.transaction() as conn:
            rows = conn.execute(sql, args).fetchall()
        records = [run_record(row, str(self.db_path)) for row in rows]
        if wanted is not None:  # filter on the status shown: a crashed "running" run is "interrupted"
            records = [r for r in records if r.display_status in wanted]
        return records if limit is None else records[:max(0, int(limit))]

    def __len__(self) -> int:
        with self._db.transaction() as conn:
            return int(conn.execute("SELECT count(*) FROM runs WHERE deleted IS NULL").fetchone()[0])

    def __contains__(self, run_id: object) -> bool:
        if not is_run_id(run_id):
            return False
        with self._db.transaction() as conn:
            return conn.execute("SELECT 1 FROM runs WHERE id = ? AND deleted IS NULL",
                                (run_id,)).fetchone() is not None

    def history(self, run_id: str) -> dict[str, np.ndarray]:
        """The run's recorded history: column -> (rows,) float64; {} before the first checkpoint."""
        run_id = check_run_id(run_id)
        with self._db.transaction() as conn:
            row = conn.execute("SELECT columns, rows, data FROM histories WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
                    raise RunNotFoundError(f"there is no run {run_id} in {self.db_path}.")
                return {}
        return decode_history(row[0], row[1], row[2], f"run {run_id}")

    def timeline(self, run_id: str) -> TimelineView | None:
        """The run's recorded timeline (the settings it began with and every edit, with the step each took effect
        at; ``sae.training.timeline``), or None for a run recorded without one. ``TimelineView.schedule()`` is what
        a replay applies (``Trainer(..., schedule=...)``; the dashboard's replay link)."""
        run_id = check_run_id(run_id)
        with self._db.transaction() as conn:
            row = conn.execute("SELECT timeline FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise RunNotFoundError(f"there is no run {run_id} in {self.db_path}.")
        if row[0] is None:
            return None
        try:
            return timeline_from_dict(json.loads(row[0]))
        except (ValueError, ConfigError) as exc:
            raise StoreError(f"the timeline of run {run_id} in {self.db_path} is damaged ({exc}).") from None

    def rho_hat(self, run_id: str) -> np.ndarray | None:
        """The (n_hidden,) mean activations recorded last (on all data once finished), or None."""
        run_id = check_run_id(run_id)
        with self._db.transaction() as conn:
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
        model = _read_model(path, record)
        history = self.history(record.id) if with_history else {}
        return Run(model, record.model_config, record.current_train_config, record.dataset, history, path)


__all__ = ["RunStore", "RunRecord", "SweepRecord", "StoreError", "RunNotFoundError", "PermissionDeniedError",
           "ForgedIdentityError", "Identity", "default_root", "check_run_id",
           "METRIC_COLUMNS", "SORTABLE", "SCHEMA_VERSION", "ENV_VAR", "DB_FILE"]
