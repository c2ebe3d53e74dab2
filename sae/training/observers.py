"""Who hears of a Trainer's snapshots: :class:`Observers`, a list of callbacks each called with every Snapshot.

An observer is any callable ``observer(snapshot)`` (a UI trace, a ``sae.runs.recorder.RunRecorder``, a
sweep's bookkeeping, ``list.append``...). The trainer calls them in the order they were added, from the
thread that publishes (the training thread, or the caller's for ``Trainer.run``), outside its lock, so a slow
observer delays training but never a control call. An observer that raises does not stop the others nor
training: its first failure is reported (a RuntimeWarning and a logged warning with the traceback), later
ones are logged at debug level, and the last exception is kept in ``error``.
"""

from __future__ import annotations

import logging
import threading
import warnings
from typing import Callable, Iterable, Iterator

from sae.training.snapshot import Snapshot

logger = logging.getLogger(__name__)

Observer = Callable[[Snapshot], None]


class Observers:
    """An ordered list of observers; :meth:`add` and :meth:`remove` are safe from any thread, also while
    :meth:`notify` runs (it calls the observers present when it started)."""

    def __init__(self, observers: Iterable[Observer] = ()) -> None:
        self._lock = threading.RLock()
        self._observers: tuple[Observer, ...] = ()  # replaced, never mutated: notify() reads it without the lock
        self._reported: list[Observer] = []  # observers whose failure was reported
        self.error: Exception | None = None  # the last exception raised by an observer
        for observer in observers:
            self.add(observer)

    def add(self, observer: Observer) -> None:
        """Call ``observer`` with every snapshot from now on, after those added before it."""
        if not callable(observer):
            raise TypeError(f"an observer must be callable, got {observer!r}")
        with self._lock:
            self._observers = (*self._observers, observer)

    def remove(self, observer: Observer) -> None:
        """Stop calling ``observer`` (its first occurrence, compared with ==). ValueError if it is not here."""
        with self._lock:
            observers = list(self._observers)
            observers.remove(observer)
            self._observers = tuple(observers)
            if observer not in observers and observer in self._reported:
                self._reported.remove(observer)

    def replace(self, old: Observer | None, new: Observer | None) -> None:
        """Remove ``old`` (if given and present), then add ``new`` (if given): it is called last."""
        with self._lock:
            if old is not None and old in self._observers:
                self.remove(old)
            if new is not None:
                self.add(new)

    def __iter__(self) -> Iterator[Observer]:
        return iter(self._observers)

    def __len__(self) -> int:
        return len(self._observers)

    def __contains__(self, observer: object) -> bool:
        return observer in self._observers

    def notify(self, snapshot: Snapshot) -> None:
        """Call every observer with ``snapshot``, in order; an exception is kept and reported, never raised."""
        for observer in self._observers:
            try:
                observer(snapshot)
            except Exception as exc:  # a broken observer must not kill training
                self._failed(observer, exc)

    def _failed(self, observer: Observer, exc: Exception) -> None:
        self.error = exc
        with self._lock:
            first = observer not in self._reported
            if first:
                self._reported.append(observer)
        name = getattr(observer, "__qualname__", type(observer).__qualname__)
        if first:
            logger.warning("snapshot observer %s failed (training carries on): %r", name, exc, exc_info=exc)
            warnings.warn(f"on_snapshot callback failed: {exc!r}", RuntimeWarning, stacklevel=4)
        else:
            logger.debug("snapshot observer %s failed again: %r", name, exc, exc_info=exc)


class Observable:
    """The observer API of a class that keeps an :class:`Observers` in ``self._observers`` and the observer given
    as ``on_snapshot=`` in ``self._on_snapshot`` (the Trainer). Every method is safe from any thread."""

    _observers: Observers
    _on_snapshot: Observer | None

    def add_observer(self, observer: Observer) -> None:
        """Call ``observer(snapshot)`` with every snapshot published from now on, after the observers added before."""
        self._observers.add(observer)

    def remove_observer(self, observer: Observer) -> None:
        """Stop calling ``observer``; ValueError if it is not an observer."""
        self._observers.remove(observer)

    @property
    def observers(self) -> tuple[Observer, ...]:
        return tuple(self._observers)

    @property
    def on_snapshot(self) -> Observer | None:
        """The observer given as ``on_snapshot=``; assigning replaces it (called last from then on; None removes it)."""
        return self._on_snapshot

    @on_snapshot.setter
    def on_snapshot(self, observer: Observer | None) -> None:
        self._observers.replace(self._on_snapshot, observer)
        self._on_snapshot = observer

    @property
    def callback_error(self) -> Exception | None:
        """The last exception raised by an observer (training carried on), or None."""
        return self._observers.error


__all__ = ["Observer", "Observers", "Observable"]
