"""Per-job memory of the pages: values derived from a job and kept between script runs (no Streamlit).

A :class:`ViewCache` lives on each :class:`sae.app.job.Job` (``job.cache``), so what it holds belongs to that
run and goes with it: a new run starts empty, a dropped session's values are collected with its job. Keys are
short names chosen by the page ("probe", "codes_fig", ...); two pages must not use the same name for different
things.

- :meth:`ViewCache.memo`: ``compute()`` once per version (e.g. a snapshot's ``version``), optionally throttled
  while training (``keep_for``);
- :meth:`ViewCache.put` / :meth:`ViewCache.last`: keep a value, read the latest one whatever its version (a view
  frozen by the user);
- :meth:`ViewCache.setdefault`: a mutable object kept with the job (e.g. a log of recent numbers).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Hashable, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class _Entry:
    version: Hashable
    created: float  # time.monotonic() when stored
    value: Any


class ViewCache:
    """Named values of one job, each with the version it was computed for. Thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}

    def memo(self, key: str, version: Hashable, compute: Callable[[], T], *, keep_for: float = 0.0) -> T:
        """The value stored under ``key`` if it was computed for ``version``; otherwise ``compute()``, stored.

        ``keep_for``: a value of another version is still returned while it is younger than ``keep_for``
        seconds (a throttle for costly values: at most one computation per ``keep_for`` s while versions change).
        ``compute`` runs outside the lock."""
        with self._lock:
            entry = self._entries.get(key)
        if entry is not None and (entry.version == version or self._clock() - entry.created < keep_for):
            return entry.value
        return self.put(key, compute(), version)

    def put(self, key: str, value: T, version: Hashable = None) -> T:
        """Store ``value`` under ``key`` (computed for ``version``); returns it."""
        with self._lock:
            self._entries[key] = _Entry(version, self._clock(), value)
        return value

    def last(self, key: str, default: Any = None) -> Any:
        """The latest value stored under ``key``, whatever its version (``default`` if none)."""
        with self._lock:
            entry = self._entries.get(key)
        return default if entry is None else entry.value

    def setdefault(self, key: str, factory: Callable[[], T]) -> T:
        """The object stored under ``key``, created by ``factory()`` the first time (e.g. a deque the caller
        appends to: it is kept by reference)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry(None, self._clock(), factory())
            return entry.value

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._entries

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


__all__ = ["ViewCache"]
