"""A learner's progress through the lessons: which steps they have done, how often they tried, what the last check
said. Kept server-side so that it survives reloads and restarts. No Streamlit.

- :class:`ProgressStore`: ``lessons.sqlite`` in the data directory (``sae.runs.store.default_root()``, beside the
  run store's ``runs.sqlite``, whose schema it leaves alone), one row per (learner, lesson, step). Every write is
  one SQLite transaction (atomic; WAL mode, so several server processes may share the file). The learner is the
  browser's id (``sae.ui.identity``): a reload, a second tab or a server restart finds the same progress.
- :class:`LearnerProgress`: one learner's part of the store (``record``, ``records``, ``clear``);
- :class:`SessionProgress`: the same interface in memory, for a session whose browser id is not known (yet): its
  progress moves into the store once the id comes (:meth:`ProgressStore.merge`).

Both record a check with ``record`` and answer ``records`` with :class:`StepRecord` s.

    >>> store = ProgressStore(default_root())
    >>> store.record("browser-1234", "ufldl", "setup", True, "Your run is UFLDL's exercise ...")
    >>> store.done("browser-1234", "ufldl")
    {'setup'}
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

DB_FILE = "lessons.sqlite"
SCHEMA_VERSION = 1
APPLICATION_ID = 0x5AE1E550  # PRAGMA application_id: marks the file as the Lab's lesson progress
MAX_MESSAGE = 2000  # characters of a check's message kept
MAX_KEY = 64  # characters of a learner, lesson or step id

_SCHEMA = """
CREATE TABLE IF NOT EXISTS progress (
    learner   TEXT NOT NULL,
    lesson    TEXT NOT NULL,
    step      TEXT NOT NULL,
    tries     INTEGER NOT NULL DEFAULT 0,
    failures  INTEGER NOT NULL DEFAULT 0,
    passed_at REAL,
    last_ok   INTEGER NOT NULL DEFAULT 0,
    message   TEXT NOT NULL DEFAULT '',
    updated   REAL NOT NULL,
    PRIMARY KEY (learner, lesson, step)
)"""


class ProgressError(RuntimeError):
    """The progress file cannot be opened or written; the message names it and says why."""


@dataclass(frozen=True)
class StepRecord:
    """One learner's history with one step: ``tries`` (checks run), ``failures``, ``passed_at`` (time of the first
    pass, None if never), ``last_ok`` (whether the latest check passed) and its ``message``."""

    lesson: str
    step: str
    tries: int = 0
    failures: int = 0
    passed_at: float | None = None
    last_ok: bool = False
    message: str = ""
    updated: float = 0.0

    @property
    def done(self) -> bool:
        """Passed at least once (a later failure does not undo it: the learner did it)."""
        return self.passed_at is not None

    def after(self, passed: bool, message: str, now: float) -> "StepRecord":
        """This record after one more check."""
        return replace(self, tries=self.tries + 1, failures=self.failures + (not passed),
                       passed_at=self.passed_at if self.passed_at is not None or not passed else now,
                       last_ok=bool(passed), message=str(message)[:MAX_MESSAGE], updated=now)


def _key(value: str, what: str) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_KEY:
        raise ValueError(f"a {what} must be a string of 1 to {MAX_KEY} characters, got {value!r}.")
    return value


class SessionProgress:
    """Progress kept in memory (one session's, before its browser is known). Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[tuple[str, str], StepRecord] = {}

    def record(self, lesson: str, step: str, passed: bool, message: str, now: float | None = None) -> StepRecord:
        key = (_key(lesson, "lesson id"), _key(step, "step id"))
        with self._lock:
            old = self._records.get(key, StepRecord(*key))
            self._records[key] = new = old.after(passed, message, time.time() if now is None else now)
        return new

    def records(self) -> dict[tuple[str, str], StepRecord]:
        with self._lock:
            return dict(self._records)

    def clear(self, lesson: str | None = None) -> None:
        with self._lock:
            self._records = {k: v for k, v in self._records.items() if lesson is not None and k[0] != lesson}


class ProgressStore:
    """Every learner's progress in ``<root>/lessons.sqlite`` (see the module docstring)."""

    def __init__(self, root: str | Path, timeout: float = 5.0) -> None:
        self.root = Path(root).expanduser()
        self.path = self.root / DB_FILE
        self.timeout = timeout
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with self._connect() as db:
                version = db.execute("PRAGMA user_version").fetchone()[0]
                app = db.execute("PRAGMA application_id").fetchone()[0]
                tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
                if (version, app) == (0, 0) and not tables:
                    db.execute("PRAGMA journal_mode=WAL")
                    db.execute(_SCHEMA)
                    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                elif app != APPLICATION_ID or version != SCHEMA_VERSION:
                    raise ProgressError(f"{self.path} is not the Lab's lesson progress (version {version}); move it "
                                        "away to start afresh.")
        except sqlite3.DatabaseError as exc:
            raise ProgressError(f"cannot open the lesson progress {self.path} ({exc}); move it away to start "
                                "afresh.") from None
        except OSError as exc:
            raise ProgressError(f"cannot create the lesson progress in {self.root} ({exc.strerror or exc}).") \
                from None

    def _connect(self) -> sqlite3.Connection:
        """A new connection per call: script threads never share one; closed by the ``with`` of the callers."""
        db = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        db.execute("PRAGMA busy_timeout = %d" % int(self.timeout * 1000))
        return _Closing(db)

    # ------------------------------------------------------------ reads
    def records(self, learner: str) -> dict[tuple[str, str], StepRecord]:
        """(lesson, step) -> StepRecord of every step ``learner`` has checked."""
        with self._connect() as db:
            rows = db.execute("SELECT lesson, step, tries, failures, passed_at, last_ok, message, updated FROM "
                              "progress WHERE learner = ?", (_key(learner, "learner"),)).fetchall()
        return {(r[0], r[1]): StepRecord(r[0], r[1], int(r[2]), int(r[3]), r[4], bool(r[5]), r[6], float(r[7]))
                for r in rows}

    def done(self, learner: str, lesson: str) -> set[str]:
        """The steps of ``lesson`` that ``learner`` has passed."""
        return {step for (les, step), rec in self.records(learner).items() if les == lesson and rec.done}

    # ------------------------------------------------------------ writes (each one transaction)
    def record(self, learner: str, lesson: str, step: str, passed: bool, message: str,
               now: float | None = None) -> StepRecord:
        """One more check of ``step``: its outcome and message; returns the step's record after it."""
        key = (_key(learner, "learner"), _key(lesson, "lesson id"), _key(step, "step id"))
        now = time.time() if now is None else now
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute("SELECT tries, failures, passed_at, last_ok, message, updated FROM progress WHERE "
                                 "learner = ? AND lesson = ? AND step = ?", key).fetchone()
                old = StepRecord(lesson, step) if row is None else \
                    StepRecord(lesson, step, int(row[0]), int(row[1]), row[2], bool(row[3]), row[4], float(row[5]))
                new = old.after(passed, message, now)
                self._write(db, key[0], new)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return new

    @staticmethod
    def _write(db, learner: str, rec: StepRecord) -> None:
        db.execute("INSERT OR REPLACE INTO progress (learner, lesson, step, tries, failures, passed_at, last_ok, "
                   "message, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (learner, rec.lesson, rec.step, rec.tries, rec.failures, rec.passed_at, int(rec.last_ok),
                    rec.message, rec.updated))

    def merge(self, learner: str, records: dict[tuple[str, str], StepRecord]) -> None:
        """Add a session's progress (:class:`SessionProgress`) to ``learner``'s: tries and failures add up, the
        earliest pass and the newest message win. One transaction."""
        _key(learner, "learner")
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                for (lesson, step), rec in records.items():
                    row = db.execute("SELECT tries, failures, passed_at, last_ok, message, updated FROM progress "
                                     "WHERE learner = ? AND lesson = ? AND step = ?", (learner, lesson, step)).fetchone()
                    if row is not None:
                        old = StepRecord(lesson, step, int(row[0]), int(row[1]), row[2], bool(row[3]), row[4],
                                         float(row[5]))
                        passes = [t for t in (old.passed_at, rec.passed_at) if t is not None]
                        newest = rec if rec.updated >= old.updated else old
                        rec = replace(newest, tries=old.tries + rec.tries, failures=old.failures + rec.failures,
                                      passed_at=min(passes) if passes else None)
                    self._write(db, learner, rec)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def clear(self, learner: str, lesson: str | None = None) -> None:
        """Forget ``learner``'s progress (in ``lesson``, or all of it)."""
        with self._connect() as db:
            if lesson is None:
                db.execute("DELETE FROM progress WHERE learner = ?", (_key(learner, "learner"),))
            else:
                db.execute("DELETE FROM progress WHERE learner = ? AND lesson = ?", (_key(learner, "learner"), lesson))


class LearnerProgress:
    """One learner's progress in a :class:`ProgressStore`, with :class:`SessionProgress`'s interface."""

    def __init__(self, store: ProgressStore, learner: str) -> None:
        self.store, self.learner = store, _key(learner, "learner")

    def record(self, lesson: str, step: str, passed: bool, message: str, now: float | None = None) -> StepRecord:
        return self.store.record(self.learner, lesson, step, passed, message, now)

    def records(self) -> dict[tuple[str, str], StepRecord]:
        return self.store.records(self.learner)

    def clear(self, lesson: str | None = None) -> None:
        self.store.clear(self.learner, lesson)


class _Closing:
    """A connection that closes at the end of its ``with`` block (sqlite3's own ``with`` only commits)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> sqlite3.Connection:
        return self._db

    def __exit__(self, *exc) -> None:
        self._db.close()

    def execute(self, *args):
        return self._db.execute(*args)


__all__ = ["ProgressStore", "LearnerProgress", "SessionProgress", "StepRecord", "ProgressError", "DB_FILE", "SCHEMA_VERSION"]
