"""One call in a worker: :func:`call_in_worker` runs ``fn(progress=...)`` (an experiment, a sweep cell) in a
fresh worker of a backend and returns its result, relaying the worker's progress reports into the caller's
:class:`sae.training.progress.Progress` and its stop switch to the worker.

``fn`` and its result cross a process boundary, so they must pickle: a module-level function, or a
``functools.partial`` of one with its arguments (the dashboard's pages pass those). This is pickle between
the server and its own workers, never of a user's file.
"""

from __future__ import annotations

import pickle
from typing import Any, Callable

from sae.training.progress import Cancelled, Progress
from sae.workers.host import HostFailed, TaskEnd, TaskProgress

POLL_SECONDS = 0.2  # how often the caller looks at its stop switch while waiting


class WorkerLost(RuntimeError):
    """The worker running a call ended before the call did."""


def crosses_processes(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` can be sent to a worker (it pickles: no closure, no lambda, no local function)."""
    try:
        pickle.dumps(fn)
    except Exception:  # noqa: BLE001 - pickling can fail with many exception types
        return False
    return True


def call_in_worker(fn: Callable[..., Any], progress: Progress, backend) -> Any:
    """``fn(progress=...)`` in a fresh worker of ``backend``; its result, or the exception it raised.

    Raises :class:`sae.training.progress.Cancelled` once ``progress.stop()`` has stopped it, and
    :class:`WorkerLost` (with how the worker ended) if the worker dies first.
    """
    progress.check()
    channel = backend.open_task(fn)
    asked_to_stop = False
    try:
        while True:
            if progress.stopped and not asked_to_stop:
                channel.send(("stop",))
                asked_to_stop = True
            try:
                message = channel.recv(POLL_SECONDS)
            except EOFError:
                raise WorkerLost(f"the worker process running it ended ({channel.end_text()})") from None
            if message is None:
                continue
            if isinstance(message, TaskProgress):
                progress.report(message.fraction, message.message)
            elif isinstance(message, TaskEnd):
                progress.report(*message.progress)
                if message.cancelled:
                    raise Cancelled("stopped by the user")
                if message.error is not None:
                    raise message.error
                return message.result
            elif isinstance(message, HostFailed):
                raise WorkerLost(f"it could not start in its worker: {message.message}")
    finally:
        channel.close()


__all__ = ["call_in_worker", "crosses_processes", "WorkerLost", "POLL_SECONDS"]
