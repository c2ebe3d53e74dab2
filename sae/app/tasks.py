"""A one-off experiment (the extra pages' Run button), run in a worker process of its own
(``sae.workers.backend.call``: ``fn(progress=...)`` must pickle, e.g. a ``functools.partial`` of a library
function; anything else runs in this process) and watched by a small thread here. No Streamlit here: the
thread never touches ``st.*``; the page reads the task's fields, which the thread only ever replaces whole.

Every task starts at once (no queue: the operating system shares the cores among the workers). ``stop()``
reaches the worker, where the experiment checks its :class:`sae.training.progress.Progress` between steps.
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
from sae.training.status import ACTIVE_STATUSES, RunStatus
from sae.workers.backend import call
from sae.workers.calls import WorkerLost


_ids = itertools.count(1)
_tasks: "weakref.WeakSet[Task]" = weakref.WeakSet()


class Task:
    """``fn(progress=...) -> result`` run once, in a worker (see the module docstring).

    Attributes (read from any thread): status, result (when RunStatus.FINISHED), error (a message, when RunStatus.FAILED),
    progress (fraction and message), started / ended (monotonic seconds).
    """

    def __init__(self, fn: Callable[..., Any], label: str = "") -> None:
        self.id = next(_ids)
        self.fn = fn
        self.label = label
        self.progress = Progress()
        self.status = RunStatus.RUNNING  # from the first click: nothing to wait for
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

    def _run(self) -> None:
        try:
            self.progress.check()
            self.started = time.monotonic()
            self.status = RunStatus.RUNNING
            result = call(self.fn, self.progress)
            self.result = result
            self.status = RunStatus.FINISHED
        except Cancelled:
            self.status = RunStatus.STOPPED
        except (ValueError, ConfigError, DataError) as exc:  # messages written for the user
            self.error = str(exc)
            self.status = RunStatus.FAILED
        except WorkerLost as exc:
            self.error = f"the experiment stopped: {exc}. Press Run to start it again."
            self.status = RunStatus.FAILED
        except Exception as exc:  # noqa: BLE001 - shown as one line, never a traceback
            self.error = f"the experiment failed: {type(exc).__name__}: {exc}"
            self.status = RunStatus.FAILED
        finally:
            self.ended = time.monotonic()


def live_tasks() -> list[Task]:
    """Tasks not yet garbage-collected (for tests and diagnostics)."""
    return list(_tasks)


__all__ = ["Task", "live_tasks"]
