"""The recorded sweeps: table ``sweeps`` of the run database, read and written through :class:`SweepTable`.

A sweep's cells are ordinary runs (``RunStore.create(..., sweep_id=...)``); this table keeps what the grid was
(``sae.runs.sweep_spec.SweepSpec.to_dict()``) and how the sweep ended, so its results can be drawn again after a
restart. A RunStore makes one SweepTable on its own connection and lock: ``store.sweeps.get(sweep_id)``.

A sweep belongs to whoever started it (``create(..., owner=token)``; its cells are that user's runs): deleting it,
with its cells, takes ``actor=`` as :meth:`sae.runs.store.RunStore.delete` does (:mod:`sae.runs.owners`).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

from sae.runs.codec import check_run_id, check_text, json_safe, new_id
from sae.runs.database import Database
from sae.runs.errors import RunNotFoundError, StoreError
from sae.runs.owners import may_change, require
from sae.training.status import RunStatus

if TYPE_CHECKING:
    from sae.runs.store import RunStore

logger = logging.getLogger(__name__)

_SWEEP_COLUMNS = "id, name, dataset, created, updated, status, spec, image_shape, owned_by"


@dataclass(frozen=True)
class SweepRecord:
    """One recorded sweep: its spec (``sae.runs.sweep_spec.SweepSpec.to_dict()``) and how it ended."""

    id: str
    name: str
    dataset: str
    created: float
    updated: float
    status: str  # running, finished, cancelled
    spec: dict[str, Any]
    image_shape: tuple[int, int] | None
    owned_by: str | None = None  # the user it belongs to (sae.runs.owners); None: no owner


class SweepTable:
    """Create, update, read and delete recorded sweeps; shares the run store's database (connection and lock).

    Args:
        db: the run database.
        runs: the store whose runs are the sweeps' cells (deleting a sweep deletes them, weights included).
    """

    def __init__(self, db: Database, runs: "RunStore") -> None:
        self._db = db
        self._runs = runs

    def create(self, name: str, dataset: str, spec: Mapping[str, Any],
               image_shape: tuple[int, int] | None = None, *, owner: str | None = None) -> str:
        """Record a sweep (status running) of ``owner`` (a token; None: no owner); its cells are runs created with
        ``sweep_id`` (and the same owner). Returns its id."""
        name, dataset = check_text(name, "sweep name"), check_text(dataset, "data set name")
        who = self._runs.identity(owner)
        sweep_id, now = new_id(), time.time()
        shape = None if image_shape is None else json.dumps([int(v) for v in image_shape])
        with self._db.transaction(write=True) as conn:
            conn.execute("INSERT INTO sweeps (id, name, dataset, created, updated, status, spec, image_shape, "
                         "owned_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (sweep_id, name, dataset, now, now, RunStatus.RUNNING, json.dumps(json_safe(dict(spec))),
                          shape, None if who is None else who.user))
        return sweep_id

    def update(self, sweep_id: str, status: str) -> None:
        """Set a sweep's status (how it ended: finished, cancelled)."""
        sweep_id = check_run_id(sweep_id, "sweep id")
        with self._db.transaction(write=True) as conn:
            found = conn.execute("UPDATE sweeps SET status = ?, updated = ? WHERE id = ?",
                                 (check_text(status, "status"), time.time(), sweep_id)).rowcount
        if not found:
            raise RunNotFoundError(f"there is no sweep {sweep_id} in {self._db.path}.")

    def _record(self, row: tuple) -> SweepRecord:
        sweep_id, name, dataset, created, updated, status, spec, shape, owned_by = row
        try:
            spec = json.loads(spec)
            shape = None if shape is None else tuple(int(v) for v in json.loads(shape))
        except (json.JSONDecodeError, TypeError, ValueError):
            raise StoreError(f"the stored sweep {sweep_id} in {self._db.path} is damaged.") from None
        return SweepRecord(sweep_id, name, dataset, created, updated, status, spec, shape,  # type: ignore[arg-type]
                           owned_by)

    def get(self, sweep_id: str) -> SweepRecord:
        sweep_id = check_run_id(sweep_id, "sweep id")
        with self._db.transaction() as conn:
            row = conn.execute(f"SELECT {_SWEEP_COLUMNS} FROM sweeps WHERE id = ?", (sweep_id,)).fetchone()
        if row is None:
            raise RunNotFoundError(f"there is no sweep {sweep_id} in {self._db.path}.")
        return self._record(row)

    def list(self) -> list[SweepRecord]:
        """All recorded sweeps, newest first."""
        with self._db.transaction() as conn:
            rows = conn.execute(f"SELECT {_SWEEP_COLUMNS} FROM sweeps ORDER BY created DESC").fetchall()
        return [self._record(row) for row in rows]

    def can_change(self, sweep_id: str, actor: str | None) -> bool:
        """Whether ``actor`` (a token; None: the local user) may delete or cancel the sweep. RunNotFoundError if
        there is no such sweep; ForgedIdentityError for a token not issued by this store."""
        return may_change(self.get(sweep_id).owned_by, self._runs.identity(actor))

    def delete(self, sweep_id: str, *, runs: bool = True, actor: str | None = None) -> None:
        """Remove a sweep record, and its cells' runs (with their weights; trashed ones too) unless ``runs=False``.
        ``actor``: who asks (a token; None: the local user): only the owner of the sweep and of every cell, or a
        teacher, may (PermissionDeniedError, and nothing is deleted)."""
        sweep_id = check_run_id(sweep_id, "sweep id")
        who = self._runs.identity(actor)
        require(self.get(sweep_id).owned_by, who, "sweep")
        cells = self._runs.list(sweep_id=sweep_id) + [r for r in self._runs.trash.list() if r.sweep_id == sweep_id]
        for cell in cells:
            require(cell.owned_by, who, "sweep")
        for run_id in [r.id for r in cells] if runs else []:
            try:
                self._runs.delete(run_id, actor=actor)
            except RunNotFoundError:  # deleted meanwhile (another page, another process): nothing left to do
                logger.debug("run %s of sweep %s was already deleted", run_id, sweep_id)
        with self._db.transaction(write=True) as conn:
            found = conn.execute("DELETE FROM sweeps WHERE id = ?", (sweep_id,)).rowcount
            if not runs:
                conn.execute("UPDATE runs SET sweep_id = NULL WHERE sweep_id = ?", (sweep_id,))
        if not found:
            raise RunNotFoundError(f"there is no sweep {sweep_id} in {self._db.path}.")


__all__ = ["SweepTable", "SweepRecord"]
