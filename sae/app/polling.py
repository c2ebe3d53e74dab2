"""How often a live view refreshes: fast with few viewers, slower as more sessions poll the same server (no Streamlit).

Every refresh of a live page (its fragment re-running while a run trains) costs the server 10-100 ms of Python
holding the GIL (bench/refresh.py), shared with every other session and every training thread of the process. A
class of 16 browsers each refreshing three times a second would ask for more than the server has. So:

- :class:`LivePolls` records when each session's live view last polled; :meth:`LivePolls.count` is the number of
  sessions that polled within the last ``window`` seconds (a dict of timestamps: a count costs microseconds);
- :func:`refresh_interval` turns that count into seconds between refreshes: the server spends at most about
  ``REFRESHES_PER_CORE`` refreshes per second per core on live views, shared by the live sessions, never
  faster than ``FASTEST`` (0.3 s, about three redraws a second) nor slower than ``SLOWEST`` (1 s) while training.
"""

from __future__ import annotations

import math
import os
import threading
import time

FASTEST = 0.3  # s between refreshes with few live sessions
SLOWEST = 1.0  # s: never slower while a run trains
REFRESHES_PER_CORE = 6.0  # refreshes per second per core the server spends on live views (~50 ms each: ~30 %)
STEP = 0.1  # intervals are rounded up to this step, so a count that wobbles does not change them each time
WINDOW = 3.0  # s: a session that polled within this is live (three times the slowest interval)


def refresh_interval(live_sessions: int, cores: int) -> float:
    """Seconds between two refreshes of one live view when ``live_sessions`` sessions poll a server of ``cores``
    cores: ``live_sessions / (cores * REFRESHES_PER_CORE)`` rounded up to ``STEP``, within [FASTEST, SLOWEST].

    >>> refresh_interval(1, 2), refresh_interval(8, 2), refresh_interval(16, 2)
    (0.3, 0.7, 1.0)
    """
    share = max(int(live_sessions), 1) / (max(int(cores), 1) * REFRESHES_PER_CORE)
    stepped = math.ceil(round(share / STEP, 6)) * STEP
    return round(min(SLOWEST, max(FASTEST, stepped)), 3)


def server_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class LivePolls:
    """session id -> when its live view last polled. Thread-safe; old entries are dropped as it goes."""

    def __init__(self, window: float = WINDOW, clock=time.monotonic) -> None:
        self.window = window
        self._clock = clock
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def poll(self, session_id: str) -> None:
        """``session_id``'s live view refreshed now."""
        with self._lock:
            self._last[session_id] = self._clock()

    def forget(self, session_id: str) -> None:
        """``session_id`` stopped polling (its run ended, or it left the live page)."""
        with self._lock:
            self._last.pop(session_id, None)

    def count(self, including: str | None = None) -> int:
        """Sessions that polled within the window (``including`` counts as one of them, e.g. a session about to
        start polling)."""
        now = self._clock()
        with self._lock:
            self._last = {sid: t for sid, t in self._last.items() if now - t <= self.window}
            return len(self._last) + (including is not None and including not in self._last)


_polls = LivePolls()


def live_polls() -> LivePolls:
    """The process-wide record (one per server process, like the browser registry)."""
    return _polls


__all__ = ["LivePolls", "live_polls", "refresh_interval", "server_cores", "FASTEST", "SLOWEST", "REFRESHES_PER_CORE",
           "STEP", "WINDOW"]
