"""The trash: deleted runs kept for a while, so a delete can be undone.

``store.trash.put(run_id)`` is the delete the pages offer: it stamps the run's ``deleted`` column (the row, its
history and its weights file stay as they are), so :meth:`sae.runs.store.RunStore.list`, ``get``, ``len`` and
``in`` stop showing it. :meth:`Trash.restore` clears the stamp: the run is back exactly as it was (name, times,
metrics, curves, weights). :meth:`Trash.purge` deletes for good (``RunStore.delete``) the runs trashed more than
``KEEP_SECONDS`` ago and all but the ``MAX_TRASHED`` most recently trashed; opening a store and every ``put``
purge. A run that is still training when trashed keeps being recorded (its checkpoints update the row), so a
restore gives back its latest state; once purged, its next checkpoint fails as for any deleted run.

``put`` and ``restore`` take ``actor=`` (an identity token, :mod:`sae.runs.owners`): only the run's owner or a
teacher may trash or restore it; None is the library's local user, who may. The purge is housekeeping by age and
count, done by the store, not by a user: it asks nobody.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from sae.runs.codec import check_run_id, is_run_id
from sae.runs.database import Database
from sae.runs.errors import RunNotFoundError
from sae.runs.records import RUN_COLUMNS, RunRecord, run_record

if TYPE_CHECKING:
    from sae.runs.store import RunStore

logger = logging.getLogger(__name__)

KEEP_SECONDS = 7 * 24 * 3600.0  # a trashed run is purged a week after its delete
MAX_TRASHED = 100  # at most this many trashed runs are kept (the oldest deletes are purged first)


class Trash:
    """Move runs to the trash, list them, restore them, purge old ones; shares the run store's database.

    Args:
        db: the run database.
        runs: the store whose runs these are (a purge deletes through it: row, history, weights file).
        keep_seconds: how long a trashed run is kept.
        max_trashed: how many trashed runs are kept at most.

    Example:
        >>> store.trash.put(run_id, actor=token)      # gone from store.list()
        >>> store.trash.restore(run_id, actor=token)  # back, exactly as it was
    """

    def __init__(self, db: Database, runs: "RunStore", *, keep_seconds: float = KEEP_SECONDS,
                 max_trashed: int = MAX_TRASHED) -> None:
        self._db = db
        self._runs = runs
        self.keep_seconds = float(keep_seconds)
        self.max_trashed = int(max_trashed)

    def put(self, run_id: str, *, actor: str | None = None) -> RunRecord:
        """Move a listed run to the trash; returns its record (``deleted`` set). RunNotFoundError if it is not
        listed (never recorded, already trashed or deleted); PermissionDeniedError if ``actor`` may not change it."""
        run_id = check_run_id(run_id)
        who = self._runs.identity(actor)
        with self._db.transaction(write=True) as conn:
            self._runs._require(conn, run_id, who)
            found = conn.execute("UPDATE runs SET deleted = ? WHERE id = ? AND deleted IS NULL",
                                 (time.time(), run_id)).rowcount
            row = conn.execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)).fetchone()
        if not found or row is None:
            raise RunNotFoundError(f"there is no run {run_id} to delete in {self._db.path}.")
        self.purge()
        return run_record(row, str(self._db.path))

    def restore(self, run_id: str, *, actor: str | None = None) -> RunRecord:
        """Take a run out of the trash, exactly as it was; returns its record. RunNotFoundError if it is not
        in the trash (restored already, or purged); PermissionDeniedError if ``actor`` may not change it."""
        run_id = check_run_id(run_id)
        who = self._runs.identity(actor)
        with self._db.transaction(write=True) as conn:
            self._runs._require(conn, run_id, who)
            found = conn.execute("UPDATE runs SET deleted = NULL WHERE id = ? AND deleted IS NOT NULL",
                                 (run_id,)).rowcount
        if not found:
            raise RunNotFoundError(f"run {run_id} is not in the trash of {self._db.path} (restored already, "
                                   f"or deleted for good).")
        return self._runs.get(run_id)

    def list(self) -> list[RunRecord]:
        """The trashed runs, most recently deleted first."""
        with self._db.transaction() as conn:
            rows = conn.execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE deleted IS NOT NULL "
                                f"ORDER BY deleted DESC").fetchall()
        return [run_record(row, str(self._db.path)) for row in rows]

    def __len__(self) -> int:
        with self._db.transaction() as conn:
            return int(conn.execute("SELECT count(*) FROM runs WHERE deleted IS NOT NULL").fetchone()[0])

    def __contains__(self, run_id: object) -> bool:
        if not is_run_id(run_id):
            return False
        with self._db.transaction() as conn:
            return conn.execute("SELECT 1 FROM runs WHERE id = ? AND deleted IS NOT NULL",
                                (run_id,)).fetchone() is not None

    def purge(self, *, now: float | None = None) -> list[str]:
        """Delete for good the runs trashed more than ``keep_seconds`` before ``now`` (default: the clock), and
        all but the ``max_trashed`` most recent deletes. Returns their ids."""
        cutoff = (time.time() if now is None else float(now)) - self.keep_seconds
        with self._db.transaction() as conn:
            rows = conn.execute("SELECT id, deleted FROM runs WHERE deleted IS NOT NULL "
                                "ORDER BY deleted DESC").fetchall()
        doomed = [run_id for k, (run_id, deleted) in enumerate(rows) if deleted < cutoff or k >= self.max_trashed]
        purged = []
        for run_id in doomed:
            try:
                self._runs.delete(run_id)
                purged.append(run_id)
            except RunNotFoundError:  # purged meanwhile by another store on the same file
                logger.debug("trashed run %s was already deleted", run_id)
        if purged:
            logger.info("purged %d run(s) from the trash of %s", len(purged), self._db.path)
        return purged


__all__ = ["Trash", "KEEP_SECONDS", "MAX_TRASHED"]
