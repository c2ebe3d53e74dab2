"""A one-off experiment in a background thread (the extra pages' Run button). No Streamlit here: the thread
never touches ``st.*``; the page reads the task's fields, which the thread only ever replaces whole.

A task waits for one of the server's training slots (``sae.app.job.training_slots``, shared with the live
training runs, so the server keeps a core) for its whole run, then calls ``fn(progress)``. ``stop()`` works
while queued and while running (the experiment checks its :class:`sae.training.progress.Progress` between steps).
"""

from __future__ import annotations

import itertools
import threading
import time
import weakref
from typing import Any, Callable

from sae.core.config import ConfigError
from sae.data import DataError
from sae.training.progress import Cancelled, Progress
from sae.training.slots import TrainingSlots, queued_reason
from sae.training.status import ACTIVE_STATUSES, RunStatus


_ids = itertools.count(1)
_tasks: "weakref.WeakSet[Task]" = weakref.WeakSet()


class Task:
    """``fn(progress) -> result`` run once in a daemon thread.

    Attributes (read from any thread): status, result (when RunStatus.FINISHED), error (a message, when RunStatus.FAILED),
    progress (fraction and message), started / ended (monotonic seconds).
    """

    def __init__(self, fn: Callable[[Progress], Any], slots: TrainingSlots | None = None, label: str = "") -> None:
        self.id = next(_ids)
        self.fn = fn
        self.slots = slots
        self.label = label
        self.progress = Progress()
        self.status = RunStatus.QUEUED
        self.result: Any = None
        self.error = ""
        self.started = time.monotonic()
        self.ended: float | None = None
        self._thread = threading.Thread(target=self._run, name=f"sae-experiment-{self.id}", daemon=True)
        _tasks.add(self)

    def start(self) -> "Task":
        self._thread.start()
        return self

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def elapsed(self) -> float:
        return (self.ended if self.ended is not None else time.monotonic()) - self.started

    def stop(self, wait: float = 1.0) -> None:
        """Ask the experiment to stop; wait up to ``wait`` s for it to end."""
        self.progress.stop()
        if self._thread.is_alive():
            self._thread.join(wait)

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _wait_for_slot(self) -> None:
        while not self.slots.acquire(self, timeout=0.25):
            self.progress.check()
            ahead = self.slots.position(self) - 1
            self.progress.report(0.0, f"{queued_reason(self.slots.capacity, ahead)} "
                                      "(live runs and experiments share them)")

    def _run(self) -> None:
        try:
            if self.slots is not None:
                self._wait_for_slot()
            self.progress.check()
            self.started = time.monotonic()  # queueing is not running time
            self.status = RunStatus.RUNNING
            result = self.fn(self.progress)
            self.result = result
            self.status = RunStatus.FINISHED
        except Cancelled:
            self.status = RunStatus.STOPPED
        except (ValueError, ConfigError, DataError) as exc:  # messages written for the user
            self.error = str(exc)
            self.status = RunStatus.FAILED
        except Exception as exc:  # noqa: BLE001 - shown as one line, never a traceback
            self.error = f"the experiment failed: {type(exc).__name__}: {exc}"
            self.status = RunStatus.FAILED
        finally:
            if self.slots is not None:
                self.slots.release(self)
            self.ended = time.monotonic()


def live_tasks() -> list[Task]:
    """Tasks not yet garbage-collected (for tests and diagnostics)."""
    return list(_tasks)


__all__ = ["Task", "live_tasks"]
