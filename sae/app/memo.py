"""Per-job memory of the pages: values derived from a job and kept between script runs (no Streamlit).

A :class:`ViewCache` lives on each :class:`sae.app.job.Job` (``job.cache``), so what it holds belongs to that
run and goes with it: a new run starts empty, a dropped session's values are collected with its job. Keys are
short names chosen by the page ("probe", "codes_fig", ...); two pages must not use the same name for different
things.

- :meth:`ViewCache.memo`: ``compute()`` once per version (e.g. a snapshot's ``version``), optionally throttled
  while training (``keep_for``);
- :meth:`ViewCache.refresh`: the same while training, without making the page wait: the stored value at once, and a
  newer one computed in a background thread for the next redraw (stale-while-revalidate);
- :meth:`ViewCache.put` / :meth:`ViewCache.last`: keep a value, read the latest one whatever its version (a view
  frozen by the user);
- :meth:`ViewCache.setdefault`: a mutable object kept with the job (e.g. a log of recent numbers).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Hashable, TypeVar

T = TypeVar("T")
logger = logging.getLogger(__name__)


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
        self._computing: dict[str, threading.Thread] = {}

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

    def refresh(self, key: str, version: Hashable, compute: Callable[[], T], *, keep_for: float = 0.0) -> T:
        """Like :meth:`memo`, but a stale value is returned at once and ``compute()`` runs in a daemon thread
        (at most one per key), storing its result for the next call. Only the very first value of ``key`` is
        computed in the calling thread. For a costly value on a page that redraws while a run trains (the Codes
        page's linear probe: a page switch never waits for a refit)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                stale = None
            elif entry.version == version or self._clock() - entry.created < keep_for:
                return entry.value
            else:
                stale = entry
                running = self._computing.get(key)
                if running is None or not running.is_alive():
                    worker = threading.Thread(target=self._compute_into, args=(key, version, compute),
                                              name=f"sae-view-{key}", daemon=True)
                    self._computing[key] = worker
                    worker.start()
        return self.put(key, compute(), version) if stale is None else stale.value

    def _compute_into(self, key: str, version: Hashable, compute: Callable[[], Any]) -> None:
        try:
            self.put(key, compute(), version)
        except Exception:  # noqa: BLE001 - a failed refresh keeps the stale value; the next call tries again
            logger.warning("refreshing the view value %r failed", key, exc_info=True)

    def join(self, timeout: float | None = None) -> None:
        """Wait for the background computations started so far (tests)."""
        with self._lock:
            workers = list(self._computing.values())
        for worker in workers:
            worker.join(timeout)

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
