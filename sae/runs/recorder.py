"""Recording a Trainer in the run store: :class:`RunRecorder`, one of the trainer's observers.

A :class:`RunRecorder` checkpoints a training run into a :class:`sae.runs.store.RunStore` as it trains and
finishes the record with the final metrics of :func:`sae.evaluation.metrics.evaluate_run`. It is one observer
among others (e.g. a UI trace): ``Trainer(..., observers=[trace, recorder])`` or ``trainer.add_observer(recorder)``.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any, Callable, Mapping

import numpy as np

from sae.core.config import ModelConfig, TrainConfig
from sae.training.status import RunStatus
from sae.evaluation.metrics import evaluate_run
from sae.core.model import SparseAutoencoder
from sae.runs.store import RunNotFoundError, RunStore, StoreError, check_run_id
from sae.training.trainer import Snapshot


class RunRecorder:
    """A Trainer observer that records the run in a RunStore as it trains.

    Checkpoints at most every ``interval`` seconds while running, at once when the trainer pauses or
    diverges, and finishes the record (with :func:`sae.evaluation.metrics.evaluate_run` metrics when the data are given) when it
    finishes or stops. So a run is recorded without anyone calling the store, and a crash loses at
    most ``interval`` seconds. Store problems never stop training: the last one is kept in ``error``.

    Example:
        >>> recorder = RunRecorder.create(store, "digits 25", "digits", model_config, train_config, X=data.X)
        >>> trainer = Trainer(data.X, model_config, train_config, observers=[recorder])
        >>> recorder.attach(trainer)  # the recorder reads trainer.history() at each checkpoint
        >>> trainer.start()

    It holds no reference to anything but the store, the data and the trainer's history method,
    so a UI object owning the trainer can still be garbage-collected.
    """

    def __init__(self, store: RunStore, run_id: str, *, interval: float = 5.0,
                 history: Callable[[], Mapping[str, np.ndarray]] | None = None, X=None, labels=None,
                 probe: bool = True) -> None:
        self.store = store
        self.run_id = check_run_id(run_id)
        self.interval = float(interval)
        self._history = history
        self._timeline: Callable[[], Any] | None = None
        self._X, self._labels, self._probe = X, labels, probe
        self._lock = threading.Lock()
        self._last = -math.inf
        self.error: str | None = None  # the last store problem (training carries on)
        self.finished = False
        self.checkpoints = 0

    @classmethod
    def create(cls, store: RunStore, name: str, dataset: str, model_config: ModelConfig, train_config: TrainConfig,
               *, parent_id: str | None = None, sweep_id: str | None = None, owner: str | None = None,
               **kwargs: Any) -> "RunRecorder":
        """Create the run in ``store`` and return its recorder (keyword arguments as for the constructor).
        ``owner``: the identity token of the user the run belongs to (``sae.runs.owners``; None: no owner). The
        recorder's checkpoints and finish are the writes of the run's own process, not a user's: the store does
        not check them against an owner."""
        run_id = store.create(name, dataset, model_config, train_config, parent_id=parent_id, sweep_id=sweep_id,
                              owner=owner)
        return cls(store, run_id, **kwargs)

    def attach(self, trainer: Any) -> "RunRecorder":
        """Read the history from ``trainer.history()`` (and its edits from ``trainer.timeline_view()``, so the
        stored run can be replayed) at each checkpoint."""
        self._history = trainer.history
        self._timeline = getattr(trainer, "timeline_view", None)
        return self

    def __call__(self, snapshot: Snapshot) -> None:
        """The observer call (training thread)."""
        if snapshot.status in (RunStatus.FINISHED, RunStatus.STOPPED):
            self.finish(snapshot)
        elif snapshot.step == 0 and snapshot.status in (RunStatus.IDLE, RunStatus.QUEUED):
            return  # nothing learnt yet: the record made by create() says it all
        elif snapshot.status in (RunStatus.PAUSED, RunStatus.DIVERGED) or time.monotonic() - self._last >= self.interval:
            self.checkpoint(snapshot)

    def _current_history(self) -> Mapping[str, np.ndarray] | None:
        return None if self._history is None else self._history()

    def _current_timeline(self):
        return None if self._timeline is None else self._timeline()

    def checkpoint(self, snapshot: Snapshot) -> None:
        with self._lock:
            if self.finished:
                return
            self._last = time.monotonic()
            try:
                self.store.checkpoint(self.run_id, snapshot, self._current_history(), timeline=self._current_timeline())
                self.checkpoints += 1
                self.error = None
            except RunNotFoundError as exc:
                self.error, self.finished = str(exc), True  # deleted by the user: stop recording
            except (StoreError, OSError) as exc:
                self.error = str(exc)

    def finish(self, snapshot: Snapshot) -> None:
        """Record the end of the run (metrics measured on the data if given). Idempotent."""
        with self._lock:
            if self.finished:
                return
            self.finished = True
            metrics, rho_hat = {}, None
            try:
                if self._X is not None and snapshot.step > 0 and np.isfinite(snapshot.rho_hat).all():
                    model_config, train_config, _ = self.store.run_configs(self.run_id)
                    kl = train_config is None or train_config.penalty == "kl"
                    target = snapshot.hyper.get("rho") if kl else None
                    try:
                        model = SparseAutoencoder.from_weights(model_config, snapshot.weights)
                    except ValueError as exc:
                        raise StoreError(f"the snapshot's {exc}") from None
                    metrics, rho_hat = evaluate_run(model, self._X, self._labels, probe=self._probe, rho=target)
                self.store.finish(self.run_id, snapshot, self._current_history(), metrics, rho_hat=rho_hat,
                                  timeline=self._current_timeline())
                self.error = None
            except (StoreError, OSError) as exc:
                self.error = str(exc)


__all__ = ["RunRecorder"]
