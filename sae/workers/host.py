"""What runs inside a worker (a forked process or a Ray actor): a *host* that owns one Trainer, or one task
(an experiment, a sweep cell), obeys the commands the server sends, and hands the server its newest state.

Both hosts have the same three methods, which is all a transport needs (``sae.workers.process`` for local
processes, ``sae.workers.ray_backend`` for Ray):

- ``handle(name, args, kwargs, seq)``: obey one command (the Trainer's control calls; ``stop`` for a task);
  a run's host then sends its state again, marked as having carried out command ``seq``;
- ``next_update(timeout)``: wait for the newest state (an :class:`Update` of the run with its history, or a
  task's :class:`TaskProgress` / :class:`TaskEnd`), None after ``timeout`` seconds or once closed;
- ``close(reason)``: stop and wake the consumer.

States pass through a latest-wins :class:`sae.workers.mailbox.Mailbox`: the training thread never waits for
the server, and a slow server skips to the newest snapshot.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np

from sae.core.config import ModelConfig, TrainConfig
from sae.core.model import SparseAutoencoder
from sae.training.progress import Cancelled, Progress
from sae.training.snapshot import Snapshot
from sae.training.timeline import Edit, TimelineView
from sae.training.trainer import Trainer
from sae.workers.mailbox import Mailbox

logger = logging.getLogger(__name__)

TRAINER_COMMANDS = frozenset({"start", "pause", "resume", "step", "stop", "set_hyperparameters", "rewind", "resample",
                              "add_twin", "remove_twin", "promote_twin"})


@dataclass(frozen=True)
class TrainerSpec:
    """Everything a worker needs to build the run's Trainer: the data X (m, n) float32, the two configs, the
    weights to start from (the server draws the initial ones, so a restarted worker and the server agree on
    them), and where to continue (``start_step``, ``history``: columns of the run so far)."""

    X: np.ndarray
    model_config: ModelConfig
    train_config: TrainConfig
    weights: dict[str, np.ndarray]
    start_step: int = 0
    history: dict[str, np.ndarray] | None = None
    snapshot_interval: float = 0.1
    threads: int | None = None
    schedule: tuple[Edit, ...] = ()  # edits to apply at their steps (a replay)
    edits: tuple[Edit, ...] = ()  # the timeline so far (a restarted worker keeps listing the run's edits)
    timeline_start: tuple[TrainConfig, int] | None = None  # the settings and step the run began with


@dataclass(frozen=True)
class Twin:
    """A run's twin as the server sees it: its snapshot, its new history rows from ``history_start`` on (as for
    :class:`Update`), and its (settings changed, step it forked at)."""

    snapshot: Snapshot
    history: dict[str, np.ndarray]
    history_start: int
    setup: tuple[dict[str, float], int]


@dataclass(frozen=True)
class Update:
    """A run's newest snapshot and its history rows from index ``history_start`` on (column -> (rows,) array):
    the rows before it are the ones the server already has (every Update a host makes reaches the server, in
    order), so a steady run sends a few new rows, not its whole history, ten times a second. ``history_start``
    0: the whole history (the first state, or after the history was thinned). ``acked``: the sequence number of
    the last command the worker has carried out (its effect is in here)."""

    snapshot: Snapshot
    history: dict[str, np.ndarray]
    acked: int = 0
    history_start: int = 0
    twin: Twin | None = None  # None: the run has no twin
    timeline: TimelineView | None = None  # None: unchanged since the last Update
    config: TrainConfig | None = None  # the settings in effect (a rewind or a promoted twin changes them wholesale)
    action_error: str = ""  # why the last command could not be carried out


def merge_rows(have: dict[str, np.ndarray], rows: dict[str, np.ndarray], start: int) -> dict[str, np.ndarray]:
    """A history after new ``rows`` from row ``start`` on (0: the whole history): new arrays, never changed in place."""
    if start == 0:
        return rows
    if any(len(have.get(c, ())) < start for c in rows):
        logger.warning("history rows before row %d are missing; the run's curves have a gap", start)
    return {c: np.concatenate([have.get(c, np.empty(0))[:start], new]) for c, new in rows.items()}


def extend_history(have: dict[str, np.ndarray], update: Update) -> dict[str, np.ndarray]:
    """The server's copy of a run's history after ``update``: new arrays (never changed in place)."""
    return merge_rows(have, update.history, update.history_start)


@dataclass(frozen=True)
class TaskProgress:
    fraction: float
    message: str


@dataclass(frozen=True)
class TaskEnd:
    """How a task ended: its ``result``, or the ``error`` it raised (``cancelled``: stopped by a command), and
    its last progress report (``progress``: fraction, message)."""

    result: Any = None
    error: BaseException | None = None
    cancelled: bool = False
    progress: tuple[float, str] = (0.0, "")


@dataclass(frozen=True)
class HostFailed:
    """The host could not be built (bad data, not enough memory, ...): the run cannot start."""

    message: str


class TrainerHost:
    """One Trainer in a worker; its snapshots go to the mailbox (see the module docstring)."""

    def __init__(self, spec: TrainerSpec) -> None:
        model = SparseAutoencoder.from_weights(spec.model_config, spec.weights)
        self.trainer = Trainer(spec.X, spec.model_config, spec.train_config, model=model,
                               start_step=spec.start_step, history=spec.history,
                               snapshot_interval=spec.snapshot_interval, threads=spec.threads,
                               schedule=spec.schedule, edits=spec.edits, timeline_start=spec.timeline_start)
        self._box: Mailbox[Snapshot] = Mailbox()
        self.acked = 0
        self._sent = (-1, 0)  # (history generation, rows) the server has: every Update made is delivered
        self._twin_sent: tuple[int, int, int] = (0, -1, 0)  # (which twin, its history generation, rows) likewise
        self._timeline_sent: tuple[int, int] = (0, -1)  # (which timeline, its version)
        self.trainer.add_observer(self._box.put)
        self._box.put(self.trainer.latest())

    def handle(self, name: str, args: tuple = (), kwargs: dict | None = None, seq: int = 0) -> None:
        if name not in TRAINER_COMMANDS:
            raise ValueError(f"unknown command {name!r}")
        try:
            getattr(self.trainer, name)(*args, **(kwargs or {}))
        finally:
            if seq:
                self.acked = max(self.acked, seq)
                self._box.put(self.trainer.latest())  # the state after it, marked as done

    def next_update(self, timeout: float | None = None) -> Update | None:
        snapshot = self._box.take(timeout)
        if snapshot is None:
            return None
        trainer = self.trainer
        newest = trainer.latest()
        if newest.version > snapshot.version:  # published since it was put (a command's acknowledgement may put a
            snapshot = newest  # state read before its thread published a newer one): the rest is read now too
        generation, start, rows = trainer.history_since(*self._sent)
        self._sent = (generation, start + len(rows["step"]))
        return Update(snapshot, rows, self.acked, history_start=start, twin=self._twin(), timeline=self._timeline(),
                      config=trainer.config, action_error=trainer.action_error)

    def _twin(self) -> Twin | None:
        twin, setup = self.trainer._twin, self.trainer.twin_setup()
        if twin is None or setup is None:
            return None
        which, generation, rows = self._twin_sent
        if which != id(twin):
            generation, rows = -1, 0
        generation, start, new = twin.history_since(generation, rows)
        self._twin_sent = (id(twin), generation, start + len(new["step"]))
        return Twin(twin.latest(), new, start, setup)

    def _timeline(self) -> TimelineView | None:
        view = self.trainer.timeline_view()
        key = (id(self.trainer.timeline), view.version)
        if key == self._timeline_sent:
            return None
        self._timeline_sent = key
        return view

    def close(self, reason: str = "the run was closed") -> None:
        self.trainer.stop(reason)
        self._box.close()


class _ReportingProgress(Progress):
    """A Progress whose reports also go to the task's mailbox."""

    def __init__(self, box: Mailbox) -> None:
        super().__init__()
        self._box = box

    def report(self, fraction: float, message: str) -> None:
        super().report(fraction, message)
        self._box.put(TaskProgress(*self.state()))


class TaskHost:
    """``fn(progress=...)`` run once in a thread of the worker; ``stop`` makes its next progress call raise
    :class:`sae.training.progress.Cancelled`."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self._box: Mailbox[TaskProgress | TaskEnd] = Mailbox()
        self.progress = _ReportingProgress(self._box)
        self._thread = threading.Thread(target=self._run, args=(fn,), name="sae-task", daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[..., Any]) -> None:
        try:
            end = TaskEnd(result=fn(progress=self.progress))
        except Cancelled:
            end = TaskEnd(cancelled=True)
        except Exception as exc:  # noqa: BLE001 - handed to the server, which re-raises it
            end = TaskEnd(error=exc)
        self._box.put(replace(end, progress=self.progress.state()))  # the last put: never replaced by a progress report

    def handle(self, name: str, args: tuple = (), kwargs: dict | None = None, seq: int = 0) -> None:
        if name != "stop":
            raise ValueError(f"unknown command {name!r}")
        self.progress.stop()

    def next_update(self, timeout: float | None = None) -> TaskProgress | TaskEnd | None:
        return self._box.take(timeout)

    def close(self, reason: str = "") -> None:
        self.progress.stop()
        self._thread.join(2.0)
        self._box.close()


__all__ = ["TrainerSpec", "Twin", "Update", "extend_history", "merge_rows", "TaskProgress", "TaskEnd", "HostFailed", "TrainerHost", "TaskHost",
           "TRAINER_COMMANDS"]
