"""Classes: a teacher's class with a short join code, its members, the run the teacher broadcasts, and the class
board of the runs students submitted (``store.classes``, a :class:`Classes` of a :class:`sae.runs.store.RunStore`).

Tables (schema version 4, :mod:`sae.runs.database`)::

    classes            code (6 characters), name, teacher (a user), created, broadcast (a run id or NULL), closed
    class_members      code, user, name (as shown on the board), joined
    class_submissions  code, run_id (a frozen copy of the student's run), user, submitted, scores (JSON)

Who may do what (identities are the store's tokens, :mod:`sae.runs.owners`): anyone may start a class and is its
teacher; anyone with the code may join; a member submits runs they own (the board keeps a *copy* of the run as it
was, owned by them, so training on does not change what was submitted); the class's teacher (or anyone with the
teacher role) chooses the broadcast, removes submissions and closes the class; a student may withdraw their own
submission. ``actor=None`` is the library's local user, who may do anything.

The board ranks submissions by one score (:data:`RANKINGS`): the reconstruction error at the run's sparsity (its
mean ρ̂ⱼ is shown beside it, so a low error bought with dense codes shows), dead units, or the linear probe's
accuracy; ties are broken by the time of submission.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

from sae.runs.codec import check_run_id, check_text
from sae.runs.errors import PermissionDeniedError, StoreError
from sae.runs.owners import Identity

if TYPE_CHECKING:
    from sae.runs.database import Database
    from sae.runs.records import RunRecord
    from sae.runs.store import RunStore

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read off a projector
CODE_LENGTH = 6
MAX_MEMBERS_NAME = 60
RANKINGS = {  # score -> (label, lower is better)
    "reconstruction": ("reconstruction error ½‖x̂−x‖²", True),
    "dead_units": ("dead units", True),
    "probe_accuracy": ("linear-probe accuracy", False),
}


class ClassNotFoundError(StoreError):
    """No class has this code (or it was closed)."""


@dataclass(frozen=True)
class ClassRecord:
    code: str
    name: str
    teacher: str  # the user who started it
    created: float
    broadcast: str | None = None  # the run id the teacher broadcasts, or None
    closed: float | None = None


@dataclass(frozen=True)
class Member:
    code: str
    user: str
    name: str
    joined: float


@dataclass(frozen=True)
class BoardRow:
    """One submission on the board: its rank (1 = best; None without the ranking score), who submitted it, the
    run (a frozen copy), and the scores measured when it was submitted."""

    rank: int | None
    user: str
    name: str
    run: "RunRecord"
    submitted: float
    scores: dict[str, float] = field(default_factory=dict)


def normalize_code(code: str) -> str:
    """A join code as typed (any case, spaces, dashes) in its canonical form; StoreError if it cannot be one."""
    text = "".join(ch for ch in str(code).upper() if ch not in " -")
    if len(text) != CODE_LENGTH or any(ch not in CODE_ALPHABET for ch in text):
        raise ClassNotFoundError(f"{code!r} is not a class code ({CODE_LENGTH} letters and digits).")
    return text


class Classes:
    """The classes of one run store (see the module docstring); every method is one transaction."""

    def __init__(self, db: "Database", store: "RunStore") -> None:
        self._db = db
        self._store = store

    # ------------------------------------------------------------ helpers
    def _who(self, actor: str | None) -> Identity | None:
        return self._store.identity(actor)

    def _user(self, actor: str | None) -> str:
        who = self._who(actor)
        return "local" if who is None else who.user

    def _may_moderate(self, record: ClassRecord, who: Identity | None) -> bool:
        return who is None or who.is_teacher or who.user == record.teacher

    @staticmethod
    def _record(row) -> ClassRecord:
        return ClassRecord(*row)

    # ------------------------------------------------------------ classes
    def start(self, name: str, *, actor: str | None) -> ClassRecord:
        """A new class taught by ``actor``, with a fresh join code."""
        name = check_text(name, "class name")
        teacher = self._user(actor)
        now = time.time()
        with self._db.transaction(write=True) as conn:
            for _ in range(20):
                code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
                if conn.execute("SELECT 1 FROM classes WHERE code = ?", (code,)).fetchone() is None:
                    break
            else:  # 32**6 codes: a clash twenty times running means something else is wrong
                raise StoreError("could not find a free class code; try again.")
            conn.execute("INSERT INTO classes (code, name, teacher, created) VALUES (?, ?, ?, ?)",
                         (code, name, teacher, now))
        return ClassRecord(code, name, teacher, now)

    def get(self, code: str) -> ClassRecord:
        code = normalize_code(code)
        with self._db.transaction() as conn:
            row = conn.execute("SELECT code, name, teacher, created, broadcast, closed FROM classes "
                               "WHERE code = ? AND closed IS NULL", (code,)).fetchone()
        if row is None:
            raise ClassNotFoundError(f"there is no open class with the code {code}.")
        return self._record(row)

    def close(self, code: str, *, actor: str | None) -> None:
        record, who = self.get(code), self._who(actor)
        if not self._may_moderate(record, who):
            raise PermissionDeniedError("only the class's teacher may close it.")
        with self._db.transaction(write=True) as conn:
            conn.execute("UPDATE classes SET closed = ?, broadcast = NULL WHERE code = ?", (time.time(), record.code))

    def taught_by(self, actor: str | None) -> list[ClassRecord]:
        """The open classes ``actor`` teaches, newest first."""
        user = self._user(actor)
        with self._db.transaction() as conn:
            rows = conn.execute("SELECT code, name, teacher, created, broadcast, closed FROM classes "
                                "WHERE teacher = ? AND closed IS NULL ORDER BY created DESC", (user,)).fetchall()
        return [self._record(r) for r in rows]

    def joined_by(self, actor: str | None) -> list[ClassRecord]:
        """The open classes ``actor`` has joined, latest join first."""
        user = self._user(actor)
        with self._db.transaction() as conn:
            rows = conn.execute("SELECT c.code, c.name, c.teacher, c.created, c.broadcast, c.closed FROM classes c "
                                "JOIN class_members m ON m.code = c.code WHERE m.user = ? AND c.closed IS NULL "
                                "ORDER BY m.joined DESC", (user,)).fetchall()
        return [self._record(r) for r in rows]

    # ------------------------------------------------------------ members
    def join(self, code: str, name: str, *, actor: str | None) -> Member:
        """Join (or rename oneself in) a class."""
        record = self.get(code)
        name = check_text(name, "your name")[:MAX_MEMBERS_NAME]
        user, now = self._user(actor), time.time()
        with self._db.transaction(write=True) as conn:
            conn.execute("INSERT INTO class_members (code, user, name, joined) VALUES (?, ?, ?, ?) "
                         "ON CONFLICT (code, user) DO UPDATE SET name = excluded.name", (record.code, user, name, now))
            row = conn.execute("SELECT code, user, name, joined FROM class_members WHERE code = ? AND user = ?",
                               (record.code, user)).fetchone()
        return Member(*row)

    def members(self, code: str) -> list[Member]:
        record = self.get(code)
        with self._db.transaction() as conn:
            rows = conn.execute("SELECT code, user, name, joined FROM class_members WHERE code = ? ORDER BY joined",
                                (record.code,)).fetchall()
        return [Member(*r) for r in rows]

    def member(self, code: str, *, actor: str | None) -> Member | None:
        user = self._user(actor)
        with self._db.transaction() as conn:
            row = conn.execute("SELECT code, user, name, joined FROM class_members WHERE code = ? AND user = ?",
                               (normalize_code(code), user)).fetchone()
        return None if row is None else Member(*row)

    # ------------------------------------------------------------ broadcast
    def broadcast(self, code: str, run_id: str | None, *, actor: str | None) -> None:
        """Show run ``run_id`` to every member (None: stop broadcasting). The class's teacher only."""
        record, who = self.get(code), self._who(actor)
        if not self._may_moderate(record, who):
            raise PermissionDeniedError("only the class's teacher may broadcast to it.")
        run_id = None if run_id is None else check_run_id(run_id)
        with self._db.transaction(write=True) as conn:
            conn.execute("UPDATE classes SET broadcast = ? WHERE code = ?", (run_id, record.code))

    # ------------------------------------------------------------ the board
    def submit(self, code: str, run_id: str, scores: Mapping[str, float], *, actor: str | None,
               name: str | None = None) -> str:
        """Submit ``actor``'s run to the board: a frozen copy of it (as last checkpointed) with ``scores`` (measured
        by the caller on the run's data, e.g. ``sae.evaluation.metrics.evaluate_run``). Returns the copy's id.
        PermissionDeniedError unless ``actor`` is a member (or the teacher) and owns the run."""
        record, who = self.get(code), self._who(actor)
        user = "local" if who is None else who.user
        if who is not None and not self._may_moderate(record, who) and self.member(code, actor=actor) is None:
            raise PermissionDeniedError("join the class before submitting to its board.")
        if not self._store.can_change(run_id, actor):
            raise PermissionDeniedError("you can only submit your own runs: copy this one first, train the copy, "
                                        "then submit that.")
        source = self._store.get(run_id)
        copy_id = self._store.copy(run_id, name or f"{source.name[:80]} · board {record.code}", owner=actor)
        clean = {k: float(v) for k, v in scores.items() if isinstance(v, (int, float))}
        with self._db.transaction(write=True) as conn:
            conn.execute("INSERT INTO class_submissions (code, run_id, user, submitted, scores) VALUES (?, ?, ?, ?, ?)",
                         (record.code, copy_id, user, time.time(), json.dumps(clean)))
        return copy_id

    def withdraw(self, code: str, run_id: str, *, actor: str | None) -> None:
        """Take a submission off the board: its submitter, the class's teacher or a teacher."""
        record, who = self.get(code), self._who(actor)
        run_id = check_run_id(run_id)
        with self._db.transaction(write=True) as conn:
            row = conn.execute("SELECT user FROM class_submissions WHERE code = ? AND run_id = ?",
                               (record.code, run_id)).fetchone()
            if row is None:
                raise StoreError("that run is not on this class's board.")
            if not (self._may_moderate(record, who) or who is not None and who.user == row[0]):
                raise PermissionDeniedError("only the student who submitted it or the teacher may take it off the "
                                            "board.")
            conn.execute("DELETE FROM class_submissions WHERE code = ? AND run_id = ?", (record.code, run_id))

    def board(self, code: str, rank_by: str = "reconstruction") -> list[BoardRow]:
        """The submissions ranked by ``rank_by`` (a key of RANKINGS); those without that score come last."""
        if rank_by not in RANKINGS:
            raise StoreError(f"rank by one of {', '.join(RANKINGS)}, not {rank_by!r}.")
        record = self.get(code)
        with self._db.transaction() as conn:
            rows = conn.execute("SELECT s.run_id, s.user, COALESCE(m.name, s.user), s.submitted, s.scores "
                                "FROM class_submissions s LEFT JOIN class_members m "
                                "ON m.code = s.code AND m.user = s.user WHERE s.code = ?", (record.code,)).fetchall()
        entries = []
        for run_id, user, name, submitted, scores in rows:
            try:
                run = self._store.get(run_id)
            except StoreError:  # deleted (or in the trash) since: off the board
                continue
            entries.append((run, user, name, submitted, json.loads(scores or "{}")))
        lower_better = RANKINGS[rank_by][1]

        def key(entry) -> tuple:
            value = entry[4].get(rank_by)
            missing = value is None
            return (missing, 0.0 if missing else (value if lower_better else -value), entry[3])

        entries.sort(key=key)
        out, rank = [], 0
        for run, user, name, submitted, scores in entries:
            has = scores.get(rank_by) is not None
            rank += has
            out.append(BoardRow(rank if has else None, user, name, run, submitted, scores))
        return out


__all__ = ["Classes", "ClassRecord", "Member", "BoardRow", "ClassNotFoundError", "RANKINGS", "CODE_LENGTH",
           "normalize_code"]
