"""The per-browser-session training job: :class:`Job`, and the fixed subset of rows its derived views use
(:func:`subset_indices`, in the stratified order of :mod:`sae.app.subset`).

A :class:`Job` owns one run handle (``sae.workers.backend.new_trainer``: by default the run trains in a
worker process of its own, driven through a :class:`sae.workers.remote.RemoteTrainer` with the Trainer's API;
with ``SAE_LAB_WORKERS=threads``, a :class:`sae.Trainer` whose background thread trains in this process), the
data set it trains on, the :class:`sae.app.settings.Settings` it was built from, and small recorders fed by
the run's snapshots (:class:`sae.app.trace.DistributionTrace`). Jobs live in ``st.session_state``
(see ``sae.ui.state``): they survive reruns and page switches, and each browser session has its own. Nothing
here imports Streamlit: the threads that deliver snapshots must never touch ``st.*``.

Cleanup, three layers (see ``sae.ui.state.watch_session`` for the first):

1. Disconnect: a session-scoped ``st.cache_resource(on_release=...)`` calls :meth:`Job.disconnected`
   when the browser's websocket closes and no other session shows the job (``sae.app.browsers.Sessions``):
   a running job pauses. When a session shows it again (a network blip; a reload, which finds the browser's
   job in ``sae.app.browsers``) the next script run calls :meth:`Job.reconnected`, which resumes it.
2. Heartbeat: every script and fragment run stamps :meth:`Job.beat`. A process-wide reaper
   thread (``sae.app.reaper``, with which every Job registers itself) pauses a running job whose page has
   not polled for ``HEARTBEAT_PAUSE`` seconds (background tabs throttle timers to once a minute at worst,
   so the limit is minutes), and stops the thread of a job whose sessions have all been inactive
   (``Job.session_alive()`` false: a ``sae.app.browsers.Sessions`` the Streamlit layer fills) for
   ``SESSION_GONE_STOP`` seconds.
3. Garbage collection: the trainer thread holds no reference to its Job; when Streamlit drops
   the session state (``server.disconnectedSessionTTL`` after a disconnect) the Job is
   collected and a ``weakref.finalize`` stops the thread.
"""

from __future__ import annotations

import itertools
import threading
import time
import weakref
from dataclasses import replace

import numpy as np

from sae.app.memo import ViewCache
from sae.app.reaper import SESSION_GONE_STOP, register
from sae.app.settings import Settings
from sae.app.subset import SUBSET_SIZE, stratified_order, subset_indices
from sae.app.trace import TRACE_SUBSET, DistributionTrace
from sae.core.config import TrainConfig
from sae.core.model import SparseAutoencoder
from sae.data import Dataset
from sae.training.status import ACTIVE_STATUSES, RunStatus
from sae.training.trainer import Snapshot
from sae.workers.backend import new_trainer

RECORD_INTERVAL = 3.0  # s between checkpoints of a training run in the run store (a crash loses at most this)


_ids = itertools.count(1)


def _stop_trainer(trainer, reason: str) -> None:
    """End a run and free what trains it (a worker process; nothing more for an in-thread Trainer)."""
    if trainer.status not in (RunStatus.FINISHED, RunStatus.STOPPED):
        trainer.stop(reason)
    close = getattr(trainer, "close", None)  # RemoteTrainer: its worker; a Trainer's thread has ended
    if close is not None:
        close()


class Job:
    """One training run of one browser session. Control methods return quickly (the trainer's
    thread does the work) and are safe to call from script runs."""

    read_only = False  # (a teacher's broadcast is shown to students through sae.app.broadcasts.ReadOnlyJob)

    def __init__(self, settings: Settings, data: Dataset, subset: np.ndarray, *, store=None,
                 model: SparseAutoencoder | None = None, train_config: TrainConfig | None = None,
                 start_step: int = 0, history: dict[str, np.ndarray] | None = None,
                 parent_id: str | None = None, name: str | None = None, owner: str | None = None,
                 schedule=()) -> None:
        """``store``: a :class:`sae.runs.store.RunStore` in which the run is recorded once it trains (None: not
        recorded). ``model``, ``train_config``, ``start_step``, ``history``: continue a saved run (see
        :class:`sae.training.trainer.Trainer`); ``parent_id``: the recorded run it continues; ``name``: its record's
        name; ``owner``: the identity token its record belongs to (``sae.runs.owners``; None: no owner);
        ``schedule``: edits to apply at their steps (a replay, ``sae.training.timeline``)."""
        self.id = next(_ids)
        self.settings = settings
        self.data = data
        self.subset = stratified_order(subset, data.labels)  # (k,) the rows the derived views use; every prefix
        # is a fair sample (the pages take the first N of them; sae.app.subset)
        self.model_config = model.config if model is not None else settings.model_config(data)
        self.trace = DistributionTrace(data.X[self.subset[:TRACE_SUBSET]], self.model_config)
        self.trainer = new_trainer(data.X, self.model_config, train_config or settings.train_config(), model=model,
                                   start_step=start_step, history=history, observers=[self.trace.record],
                                   snapshot_interval=0.1, schedule=schedule)
        self.store, self.parent_id, self.name, self.owner = store, parent_id, name, owner
        self.recorder = None  # the sae.runs.recorder.RunRecorder, from the first training step on
        self.record_error: str | None = None  # why the run could not be recorded (training carries on)
        self.note = ""  # a UI-side reason shown in the status line (e.g. paused on disconnect)
        self.last_beat = time.monotonic()
        self.resume_on_reconnect = False
        self.released = False  # release() ended the run and freed its worker
        self.session_alive = None  # callable -> bool, set by the Streamlit layer; None: unknown
        self.gone_since: float | None = None
        self.gone_stop = SESSION_GONE_STOP  # s; the Streamlit layer sets server.disconnectedSessionTTL + 30
        self._derived_lock = threading.Lock()
        self._derived = None
        self.cache: ViewCache = ViewCache()  # the pages' per-job values (probe, frozen figures, ...): see sae.app.memo
        self._finalizer = weakref.finalize(self, _stop_trainer, self.trainer, "the browser session ended")
        register(self)

    # ---------------------------------------------------------------- state
    @property
    def status(self) -> str:
        return self.latest().status

    @property
    def started(self) -> bool:
        return self.trainer.started

    @property
    def final(self) -> bool:
        return self.status in (RunStatus.FINISHED, RunStatus.STOPPED)

    def latest(self) -> Snapshot:
        return self.trainer.latest()

    def history(self) -> dict[str, np.ndarray]:
        return self.trainer.history()

    def beat(self) -> None:
        self.last_beat = time.monotonic()

    # ---------------------------------------------------------------- control
    def start(self) -> None:
        """Train in the background (or resume a paused run)."""
        self.note = ""
        self._record()
        if not self.started:
            self.trainer.start()
        else:
            self.trainer.resume()
        self._settle(lambda s: s.status != RunStatus.PAUSED and s.status != RunStatus.IDLE)

    def hold(self, note: str = "") -> None:
        """Start the training thread paused (a loaded model: on view in every page, continued by Resume or
        Step). Nothing is recorded until it trains."""
        if not self.started:
            self.trainer.pause()
            self.trainer.start()
        self.note = note
        self._settle(lambda s: s.status not in ACTIVE_STATUSES and s.status != RunStatus.IDLE)

    def pause(self, note: str = "", wait: bool = True) -> None:
        """Pause; ``wait``: until the trainer has published it (never from the server's event loop)."""
        self.note = note
        self.trainer.pause()
        if wait:
            self._settle(lambda s: s.status not in ACTIVE_STATUSES)

    def resume(self) -> None:
        self.start()

    def step(self, n: int = 1) -> None:
        """Take n optimiser steps in the training thread, then stay paused."""
        self.note = ""
        target = self.latest().step + n
        self._record()
        if not self.started:
            self.trainer.pause()
            self.trainer.start()
        self.trainer.step(n)
        self._settle(lambda s: s.step >= target and s.status not in ACTIVE_STATUSES
                     or s.status in (RunStatus.FINISHED, RunStatus.STOPPED))

    def stop(self, reason: str = "stopped by the user") -> None:
        if not self.final:
            self.trainer.stop(reason)
            self.trainer.join(2.0)

    def release(self, reason: str = "the browser session ended") -> None:
        """End the run for good and free its worker (the reaper, for a session that is gone; a finished run's
        worker otherwise waits for a raised budget)."""
        self.released = True
        _stop_trainer(self.trainer, reason)

    def _record(self) -> None:
        """Before the first training step: create the run's record in the store and add its
        :class:`sae.runs.recorder.RunRecorder` to the trainer's observers, after the trace. The recorder
        references the store, the data and the trainer, never the Job (which stays collectable)."""
        if self.recorder is not None and self.recorder.finished and not self.final:
            # a finished run goes on (its budget was raised): its record is closed, a new one continues it
            self.trainer.remove_observer(self.recorder)
            self.parent_id, self.recorder = self.recorder.run_id, None
        if self.recorder is not None or self.store is None or self.final:
            return
        from sae.runs.recorder import RunRecorder
        from sae.runs.store import StoreError
        from sae.runs.table import default_run_name

        config = self.trainer.config  # with any live change made before the start
        try:
            self.recorder = RunRecorder.create(
                self.store, self.name or default_run_name(self.data.name, self.model_config, config),
                self.data.name, self.model_config, config, parent_id=self.parent_id, owner=self.owner,
                interval=RECORD_INTERVAL, X=self.data.X, labels=self.data.labels)
        except (StoreError, OSError) as exc:
            self.record_error = str(exc)
            return
        self.recorder.attach(self.trainer)
        self.trainer.add_observer(self.recorder)

    @property
    def run_id(self) -> str | None:
        """The id of this run's record in the store (None until it trains, or when not recorded)."""
        return None if self.recorder is None else self.recorder.run_id

    def apply_live(self, **changes: float) -> None:
        """Change rho, beta, weight_decay, lr or the budget (epochs, max_iter) between two steps
        (Trainer.set_hyperparameters): a raised budget makes a finished run paused again (Resume continues it)."""
        if changes:
            self.trainer.set_hyperparameters(**changes)
            self.settings = replace(self.settings, **changes)

    # ---------------------------------------------------------------- timeline, twin, resampling
    def resample(self, units: list[int] | None = None) -> None:
        """Re-initialise the dead units (or ``units``) towards the worst-reconstructed inputs (Trainer.resample);
        recorded in the timeline. A run not yet started is held paused first, so the change shows at once."""
        self._command(lambda: self.trainer.resample(units))

    def rewind(self, step: int) -> None:
        """Go back to the timeline's mark at ``step`` (Trainer.rewind); the run continues as a new branch: a new
        record in the store whose parent is the run so far. The panel's settings follow the rewound ones."""
        self._command(lambda: self.trainer.rewind(step), branch=True)

    def add_twin(self, from_step: int | None = 0, **changes: float) -> None:
        """Train a seed-locked twin beside the run with ``changes`` (Trainer.add_twin)."""
        self._command(lambda: self.trainer.add_twin(from_step, **changes))

    def remove_twin(self) -> None:
        self._command(self.trainer.remove_twin, done=lambda: self.trainer.twin_setup() is None)

    def promote_twin(self) -> None:
        """The twin becomes the run (Trainer.promote_twin): a new branch, recorded as a new run."""
        self._command(self.trainer.promote_twin, branch=True)

    def twin_latest(self) -> Snapshot | None:
        return self.trainer.twin_latest()

    def twin_history(self) -> dict[str, np.ndarray] | None:
        return self.trainer.twin_history()

    def twin_setup(self) -> tuple[dict[str, float], int] | None:
        return self.trainer.twin_setup()

    def timeline(self):
        """The run's :class:`sae.training.timeline.TimelineView` (edits, checkpoint steps)."""
        return self.trainer.timeline_view()

    @property
    def action_error(self) -> str:
        """Why the last rewind, resampling or twin command could not be carried out ("" if it was)."""
        return self.trainer.action_error

    def _command(self, call, branch: bool = False, done=None) -> None:
        """Carry out a timeline command; wait briefly for its effect to be published; a ``branch`` (rewind,
        promotion) starts a new record whose parent is the run so far, and the settings follow the trainer's."""
        if not self.started:
            self.hold(self.note)
        before, version = self.trainer.timeline_view(), self.latest().version
        call()
        # done once the trainer's timeline shows it and a snapshot since has come (a worker's acknowledgement may come
        # before its training thread has carried the command out; the settings and the state the page draws next must
        # be the new ones), or it said why not
        finished = done or (lambda: self.trainer.timeline_view() != before)
        self._settle(lambda s: finished() and s.version > version or bool(self.trainer.action_error), timeout=3.0)
        config = self.trainer.config
        self.settings = replace(self.settings, **{k: getattr(config, k) for k in (*TrainConfig.LIVE_FIELDS,
                                                                                 *TrainConfig.BUDGET_FIELDS)})
        if branch and self.recorder is not None:
            self.trainer.remove_observer(self.recorder)
            self.parent_id, self.recorder = self.recorder.run_id, None
            self._record()

    def _settle(self, done, timeout: float = 1.0) -> None:
        """Wait briefly until the trainer's published state satisfies ``done`` (so the rerun that
        follows a button click draws the new state)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end and self.trainer.is_alive and not done(self.latest()):
            time.sleep(0.005)

    # ---------------------------------------------------------------- session lifecycle
    def disconnected(self) -> None:
        """The browser's connection closed (on_release of the session-scoped resource). Called on
        Streamlit's event loop: only flags the trainer, never waits."""
        if self.status in ACTIVE_STATUSES:
            self.resume_on_reconnect = True
            self.pause("paused: the browser disconnected", wait=False)

    def reconnected(self) -> None:
        if self.resume_on_reconnect and self.status == RunStatus.PAUSED:
            self.resume_on_reconnect = False
            self.start()

    def health(self) -> list[str]:
        """The run-health warnings (all units dead, J stalled: ``sae.evaluation.health``); empty before training."""
        return self.trainer.health()

    # ---------------------------------------------------------------- derived views
    def derived(self):
        """The :class:`sae.app.derived.Derived` of the latest snapshot (cached per snapshot version)."""
        from sae.app.derived import Derived

        snap = self.latest()
        with self._derived_lock:
            if self._derived is None or self._derived.snapshot.version != snap.version:
                self._derived = Derived(snap, self.data, self.subset, self.model_config,
                                        penalty=self.trainer.config.penalty)
            return self._derived


__all__ = ["Job", "subset_indices", "SUBSET_SIZE", "RECORD_INTERVAL"]
