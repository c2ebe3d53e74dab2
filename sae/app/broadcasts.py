"""A teacher's broadcast: every student of a class sees the teacher's live run, read-only, on any page.

:class:`Broadcasts` maps a class code to the teacher's *browser* (one per server process, like
``sae.app.browsers``): a student's page finds the run to show as that browser's current job
(``browser_jobs().job_for``), so when the teacher starts a new run the broadcast follows it. Students read the same
Job object the teacher's page reads: its snapshots, its history and its derived views (cached once per snapshot),
so watching costs no training and little work of their own.

:class:`ReadOnlyJob` is what a watching student's pages get: every reading attribute of the Job, and a clear
refusal (:class:`ReadOnlyError`) for anything that would change the teacher's run (train, pause, step, a live
change, a rewind, a twin, a resampling...). The pages look at ``job.read_only`` to leave such buttons out.
No Streamlit here.
"""

from __future__ import annotations

import threading
from typing import Any

from sae.app.browsers import browser_jobs
from sae.app.job import Job

CHANGES = frozenset({"start", "hold", "pause", "resume", "step", "stop", "release", "apply_live", "resample",
                     "rewind", "add_twin", "remove_twin", "promote_twin", "disconnected", "reconnected"})


class ReadOnlyError(PermissionError):
    """A change asked of a run shown read-only (a teacher's broadcast)."""


class ReadOnlyJob:
    """A view of someone else's :class:`sae.app.job.Job` that reads and never changes it (see the module docstring).
    ``owner_name``: whose run it is, for the pages' banner; ``code``: the class broadcasting it."""

    read_only = True

    def __init__(self, job: Job, owner_name: str, code: str) -> None:
        object.__setattr__(self, "_job", job)
        object.__setattr__(self, "owner_name", owner_name)
        object.__setattr__(self, "code", code)

    @property
    def job(self) -> Job:
        return self._job

    def __getattr__(self, name: str) -> Any:
        if name in CHANGES:
            def refuse(*args: Any, **kwargs: Any) -> None:
                raise ReadOnlyError(f"this is {self.owner_name}'s run, shown read-only: go back to your own run to "
                                    "train or change it.")
            return refuse
        return getattr(self._job, name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise ReadOnlyError(f"this is {self.owner_name}'s run, shown read-only.")

    def beat(self) -> None:
        """Watching keeps nothing alive on its own: the teacher's page does (no heartbeat is stamped)."""


class Broadcasts:
    """class code -> (the teacher's browser id, the teacher's display name). Thread-safe."""

    def __init__(self) -> None:
        self._by_code: dict[str, tuple[str, str]] = {}
        self._lock = threading.Lock()

    def start(self, code: str, teacher_browser: str, teacher_name: str) -> None:
        with self._lock:
            self._by_code[code] = (teacher_browser, teacher_name)

    def stop(self, code: str) -> None:
        with self._lock:
            self._by_code.pop(code, None)

    def live(self, code: str) -> bool:
        with self._lock:
            return code in self._by_code

    def watch(self, code: str) -> ReadOnlyJob | None:
        """The broadcast run of class ``code`` as a :class:`ReadOnlyJob`, or None when nothing is broadcast (or the
        teacher's browser has no run in this process)."""
        with self._lock:
            entry = self._by_code.get(code)
        if entry is None:
            return None
        job = browser_jobs().job_for(entry[0])
        return None if job is None else ReadOnlyJob(job, entry[1], code)


_registry = Broadcasts()


def broadcasts() -> Broadcasts:
    """The process-wide registry."""
    return _registry


__all__ = ["Broadcasts", "ReadOnlyJob", "ReadOnlyError", "broadcasts", "CHANGES"]
