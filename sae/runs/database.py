"""The run store's SQLite file: its schema, its one connection and lock, and the checks that refuse a damaged file.

A :class:`Database` is shared by a :class:`sae.runs.store.RunStore` (tables ``runs`` and ``histories``) and its
:class:`sae.runs.sweep_table.SweepTable` (table ``sweeps``): one connection guarded by one lock (any thread may
call any method), WAL journaling (readers never wait for a writer), ``BEGIN IMMEDIATE`` for every write (no lock
upgrade deadlocks) and a busy timeout, so several threads, stores and processes can write at once.

Table ``runs`` holds one row per run: name, dataset, created/updated (Unix seconds), status and reason,
step / epoch / elapsed, the configs as JSON, the live hyperparameters in effect (JSON), the final
metrics as columns (total, reconstruction, sparsity, weight_decay, rho_hat_mean, dead_units,
probe_accuracy; NULL when unknown), further metrics and a history summary as JSON, and the last
rho_hat vector (float64 bytes), ``deleted`` (Unix seconds it was moved to the trash, NULL while it is
listed; :mod:`sae.runs.trash`) and ``owned_by`` (the user the run belongs to, :mod:`sae.runs.owners`; NULL: no
owner). Columns ``owner``, ``pid`` and ``host`` are not that: they name the *process* that last wrote the row, for
crash detection (:func:`sae.runs.records.writer`). Table ``histories`` holds each run's bounded training history
(``Trainer.history()``, at most a few thousand rows) as one zlib-compressed float64 matrix plus its
column names, so a checkpoint updates the run row and its history in ONE transaction.

Versions: a new file gets the version-1 schema (``_SCHEMA``, as the first Lab wrote it) and then every
migration in ``MIGRATIONS``, exactly as an old file does when it is opened, so old and new files end up alike.
Version 2 added ``runs.deleted`` (the trash); version 3 ``runs.owned_by`` and ``sweeps.owned_by`` (who may change
them; rows from before have none); version 4 ``runs.timeline`` (the settings a run began with and its edits,
:mod:`sae.training.timeline`) and the classroom's tables ``classes``, ``class_members`` and ``class_submissions``
(:mod:`sae.runs.classroom`). A file written by a newer Lab is refused.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sae.runs.errors import StoreError

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 4
APPLICATION = "sae-lab"
ENV_VAR = "SAE_LAB_DATA"
BUSY_TIMEOUT = 30.0  # seconds a writer waits for another one before giving up
_SQLITE_MAGIC = b"SQLite format 3\x00"
ADVICE = ("move it aside (with any -wal and -shm files beside it) to start a new store, "
          f"or set {ENV_VAR} to another directory")

# kept byte for byte (comments included): SQLite stores each CREATE statement in sqlite_master
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
# version -> the statements that bring a file of version - 1 to it (run inside the opening transaction)
MIGRATIONS: dict[int, tuple[str, ...]] = {
    2: ("ALTER TABLE runs ADD COLUMN deleted REAL",  # the trash: when the run was deleted (NULL: listed)
        "CREATE INDEX runs_deleted ON runs (deleted)"),
    3: ("ALTER TABLE runs ADD COLUMN owned_by TEXT",  # the user a run belongs to (sae.runs.owners; NULL: nobody)
        "ALTER TABLE sweeps ADD COLUMN owned_by TEXT"),  # the user a sweep belongs to
    4: ("ALTER TABLE runs ADD COLUMN timeline TEXT",  # JSON: the settings it began with and its edits
        "CREATE TABLE classes (code TEXT PRIMARY KEY, name TEXT NOT NULL, teacher TEXT NOT NULL, created REAL NOT NULL, "
        "broadcast TEXT, closed REAL)",  # sae.runs.classroom
        "CREATE TABLE class_members (code TEXT NOT NULL REFERENCES classes (code) ON DELETE CASCADE, "
        "user TEXT NOT NULL, name TEXT NOT NULL, joined REAL NOT NULL, PRIMARY KEY (code, user))",
        "CREATE TABLE class_submissions (code TEXT NOT NULL REFERENCES classes (code) ON DELETE CASCADE, "
        "run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE, user TEXT NOT NULL, submitted REAL NOT NULL, "
        "scores TEXT NOT NULL DEFAULT '{}', PRIMARY KEY (code, run_id))"),
}


def check_file_header(path: Path) -> None:
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
        raise StoreError(f"{path} is not an SQLite database (damaged, or written by another program); {ADVICE}.")
    if len(head) < 100:
        raise StoreError(f"{path} is truncated ({size} bytes, shorter than an SQLite header); {ADVICE}.")
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        return  # pages may still live in the write-ahead log; SQLite recovers them
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(head[28:32], "big")
    if head[24:28] == head[92:96] and pages and size < pages * page_size:
        raise StoreError(f"{path} is truncated ({size:,} bytes; its header says {pages * page_size:,}); {ADVICE}.")


class Database:
    """The run database file: checked and initialised on creation, then used through :meth:`transaction`.

    Args:
        path: the SQLite file (created with the schema if missing or empty).
        busy_timeout: seconds a write waits for another process's write before failing.
    """

    def __init__(self, path: Path, busy_timeout: float = BUSY_TIMEOUT) -> None:
        self.path = path
        self.busy_timeout = float(busy_timeout)
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._pid = os.getpid()
        check_file_header(path)
        self._initialise()

    def _connection(self) -> sqlite3.Connection:
        """The connection (reopened in a forked child: a connection must not cross a fork)."""
        if self._conn is None or self._pid != os.getpid():
            self._pid = os.getpid()
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None,
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
            return StoreError(f"the run database {self.path} stayed locked by another writer for "
                              f"{self.busy_timeout:g} s; try again.")
        if isinstance(exc, sqlite3.OperationalError) and ("full" in text or "readonly" in text
                                                          or "unable to open" in text):
            return StoreError(f"cannot write the run database {self.path} ({text}); free space or "
                              f"set {ENV_VAR} to a writable directory.")
        return StoreError(f"the run database {self.path} is damaged or not a run database ({text}); {ADVICE}.")

    @contextmanager
    def transaction(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """The connection, under the lock; ``write``: inside BEGIN IMMEDIATE ... COMMIT. SQLite errors -> StoreError."""
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
                    except sqlite3.Error as rollback:  # the original error is the one to report
                        logger.warning("rollback failed in %s: %s", self.path, rollback)
                if isinstance(exc, sqlite3.Error):
                    raise self._error(exc) from None
                raise

    def _initialise(self) -> None:
        with self.transaction(write=True) as conn:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not tables:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)",
                                 [("schema_version", "1"), ("application", APPLICATION),
                                  ("created", repr(time.time()))])
                self._migrate(conn, 1, quiet=True)
                return
            if "meta" not in tables:
                raise StoreError(f"{self.path} is an SQLite database but not a Sparse Autoencoder Lab "
                                 f"run store; {ADVICE}.")
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            version = meta.get("schema_version", "")
            if meta.get("application") != APPLICATION or not version.isdigit():
                raise StoreError(f"{self.path} is not a Sparse Autoencoder Lab run store; {ADVICE}.")
            if int(version) > SCHEMA_VERSION:
                raise StoreError(f"{self.path} was written by a newer version of the Lab (schema {version}; "
                                 f"this one reads {SCHEMA_VERSION}); update the Lab or {ADVICE}.")
            conn.execute("SELECT count(*) FROM runs").fetchone()  # touches the table: damage shows now
            self._migrate(conn, int(version))

    def _migrate(self, conn: sqlite3.Connection, version: int, quiet: bool = False) -> None:
        """Bring a file of ``version`` to ``SCHEMA_VERSION`` (inside the opening write transaction)."""
        if version < SCHEMA_VERSION and not quiet:
            logger.info("run database %s: schema %d -> %d", self.path, version, SCHEMA_VERSION)
        for target in range(version + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[target]:
                conn.execute(statement)
            conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(target),))

    def close(self) -> None:
        """Close the connection (reopened on next use). The last close folds the WAL into the file."""
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                try:
                    self._conn.close()
                except sqlite3.Error as exc:  # nothing left to lose: the next use opens a new connection
                    logger.debug("closing %s failed: %s", self.path, exc)
            self._conn = None


__all__ = ["Database", "check_file_header", "SCHEMA_VERSION", "MIGRATIONS", "APPLICATION", "ENV_VAR", "BUSY_TIMEOUT",
           "ADVICE"]
