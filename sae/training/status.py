"""One vocabulary for the state of a run, a sweep, a sweep cell or an experiment task.

:class:`RunStatus` is a ``str`` enum: a member equals its value (``RunStatus.RUNNING == "running"``), prints
as it (``f"{RunStatus.PAUSED}"`` is ``"paused"``), and goes into JSON, SQLite rows and URLs as plain text, so
rows written before the enum existed read back unchanged.

Who uses which:

- a Trainer (and so a live run): idle, queued (waiting for a training slot, see ``sae.training.slots``),
  running, paused, diverged (behaves like paused: resume after lowering the rate), finished, stopped;
- the run store shows ``interrupted`` for a live status written by a process that has died;
- a sweep: running, finished, cancelled; a sweep cell: queued, running, failed, cancelled, or its trainer's
  final status;
- an experiment task (``sae.app.tasks``): queued, running, finished, failed, stopped.
"""

from __future__ import annotations

from enum import Enum


class RunStatus(str, Enum):
    """The state of a run; see the module docstring."""

    IDLE = "idle"
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    DIVERGED = "diverged"
    FINISHED = "finished"
    STOPPED = "stopped"
    INTERRUPTED = "interrupted"
    FAILED = "failed"
    CANCELLED = "cancelled"

    __str__ = str.__str__  # "running", not "RunStatus.RUNNING", in messages and f-strings
    __format__ = str.__format__

    @property
    def final(self) -> bool:
        """Whether a run in this state will not move again by itself (finished, stopped, diverged)."""
        return self in FINAL_STATUSES

    @property
    def live(self) -> bool:
        """Whether a run in this state may still train (idle, queued, running, paused)."""
        return self in LIVE_STATUSES


FINAL_STATUSES = frozenset({RunStatus.FINISHED, RunStatus.STOPPED, RunStatus.DIVERGED})
LIVE_STATUSES = frozenset({RunStatus.IDLE, RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.PAUSED})
ACTIVE_STATUSES = frozenset({RunStatus.QUEUED, RunStatus.RUNNING})  # holding or waiting for a training slot

__all__ = ["RunStatus", "FINAL_STATUSES", "LIVE_STATUSES", "ACTIVE_STATUSES"]
