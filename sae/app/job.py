"""The per-browser-session training job, and what stops its thread when the session goes away.

A :class:`Job` owns one :class:`sae.Trainer` (whose own background thread trains the model), the
data set it trains on, the :class:`Settings` it was built from, and small recorders fed by the
trainer's snapshot callback. Jobs live in ``st.session_state`` (see ``sae.ui.state``): they survive
reruns and page switches, and each browser session has its own. Nothing here imports Streamlit:
the training thread must never touch ``st.*``.

Cleanup, three layers (see ``sae.ui.state.watch_session`` for the first):

1. Disconnect: a session-scoped ``st.cache_resource(on_release=...)`` calls :meth:`Job.disconnected`
   when the browser's websocket closes: a running job pauses. If the same session reconnects
   (a network blip, a reload that reattaches) the next script run calls :meth:`Job.reconnected`,
   which resumes it.
2. Heartbeat: every script and fragment run stamps :meth:`Job.beat`. A process-wide reaper
   thread pauses a running job whose page has not polled for ``HEARTBEAT_PAUSE`` seconds
   (background tabs throttle timers to once a minute at worst, so the limit is minutes), and
   stops the thread of a job whose session has been inactive (``Job.session_alive()`` false,
   a check the Streamlit layer injects) for ``SESSION_GONE_STOP`` seconds.
3. Garbage collection: the trainer thread holds no reference to its Job; when Streamlit drops
   the session state (``server.disconnectedSessionTTL`` after a disconnect) the Job is
   collected and a ``weakref.finalize`` stops the thread.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
import weakref
from dataclasses import asdict, dataclass, fields, replace

import numpy as np
import torch

from sae.app.memo import ViewCache
from sae.core.config import ModelConfig, TrainConfig
from sae.training.status import ACTIVE_STATUSES, RunStatus
from sae.data import Dataset
from sae.core.model import SparseAutoencoder
from sae.training.slots import TrainingSlots
from sae.training.trainer import Snapshot, Trainer

logger = logging.getLogger(__name__)

HEARTBEAT_PAUSE = 180.0  # s without any page polling a running job -> pause it
SESSION_GONE_STOP = 150.0  # s a job's session has been inactive -> stop its thread (TTL is 120 s)
REAPER_PERIOD = 5.0
GC_PERIOD = 10.0  # s between full garbage collections by the reaper (see _reap_forever)
SUBSET_SIZE = 1000  # samples used by the pages' derived views (activations, PCA, reconstructions)
TRACE_SUBSET = 256  # samples whose activation histogram is recorded over training
TRACE_ROWS = 240  # rows kept by the distribution-over-time recorder (thinned by halving)
HIST_BINS = 50
RECORD_INTERVAL = 3.0  # s between checkpoints of a training run in the run store (a crash loses at most this)


@dataclass(frozen=True)
class Settings:
    """Everything the control panel sets. ``LIVE`` fields change a running job in place.

    Defaults: UFLDL's exercise (8x8 whitened natural patches, sigmoid units, KL penalty, beta 3,
    lambda 1e-4) with Adam instead of L-BFGS so that the run lasts long enough to tune it live:
    oriented edge filters appear after ~4,000 steps (a few seconds); rho 0.02 and lr 3e-2 get there
    about three times sooner than UFLDL's rho 0.01 with lr 1e-2.
    """

    dataset: str = "patches"  # built-in data set (sae.data.DATASETS)
    n_hidden: int = 36  # hidden units
    activation: str = "sigmoid"  # sigmoid, tanh, relu
    penalty: str = "kl"  # kl, l1, topk
    topk: int = 5  # k for the TopK penalty (ignored otherwise)
    optimizer: str = "adam"  # adam, sgd, lbfgs
    rho: float = 0.02  # target mean activation
    beta: float = 3.0  # sparsity weight
    weight_decay: float = 1e-4  # lambda
    lr: float = 3e-2  # learning rate (adam, sgd)
    batch_size: int = 128
    epochs: float = 300.0  # adam / sgd (patches: 79 steps per epoch)
    max_iter: int = 400  # lbfgs
    seed: int = 0

    LIVE = ("rho", "beta", "weight_decay", "lr")

    def model_config(self, data: Dataset) -> ModelConfig:
        """Raises ConfigError with a message for the user when the combination is invalid."""
        decoder = "sigmoid" if data.in_unit_interval else "linear"
        return ModelConfig(data.n_features, int(self.n_hidden), self.activation, decoder,
                           int(self.topk) if self.penalty == "topk" else None)

    def train_config(self) -> TrainConfig:
        return TrainConfig(rho=float(self.rho), beta=float(self.beta), weight_decay=float(self.weight_decay),
                           penalty=self.penalty, optimizer=self.optimizer, lr=float(self.lr),
                           batch_size=int(self.batch_size), epochs=float(self.epochs),
                           max_iter=int(self.max_iter), seed=int(self.seed))

    def changes(self, other: "Settings") -> tuple[dict, dict]:
        """(live, structural): the fields whose value differs in ``other``, split by kind."""
        diff = {f.name: getattr(other, f.name) for f in fields(self)
                if getattr(self, f.name) != getattr(other, f.name)}
        if self.penalty != "topk" and other.penalty != "topk":
            diff.pop("topk", None)  # k only matters under TopK
        if self.optimizer == other.optimizer:
            diff.pop("max_iter" if self.optimizer != "lbfgs" else "epochs", None)
        live = {k: v for k, v in diff.items() if k in self.LIVE}
        return live, {k: v for k, v in diff.items() if k not in self.LIVE}

    def as_dict(self) -> dict:
        return asdict(self)


# ----------------------------------------------------------------------------------- recorders

class DistributionTrace:
    """Histograms of rho_hat_j and of all activations, one row per published snapshot.

    Fed from the training thread as one of the trainer's observers (it must not
    reference the Job, so a dropped session's Job can be garbage-collected). Bounded: when full,
    every other row is dropped and only every second snapshot is recorded from then on.
    """

    def __init__(self, X_subset: np.ndarray, model_config: ModelConfig, rows: int = TRACE_ROWS,
                 bins: int = HIST_BINS) -> None:
        self.X = torch.as_tensor(np.array(X_subset, dtype=np.float32))
        self.model_config = model_config
        self.activation = model_config.activation
        self.rows, self.bins = rows, bins
        self.rho_edges = np.concatenate([[0.0], np.geomspace(1e-3, 1.0, bins)])  # log bins: 0.5 and 0.01 both show
        # sigmoid / relu (the latter rescaled per row to [0, 1] by its max, see record()): log bins, as
        # sparse codes put most activations far below 0.1; tanh spans [-1, 1]: linear bins
        self.act_log = self.activation != "tanh"
        self.act_edges = np.concatenate([[0.0], np.geomspace(1e-4, 1.0, bins)]) if self.act_log \
            else np.linspace(-1.0, 1.0, bins + 1)
        self._lock = threading.Lock()
        self._steps: list[float] = []
        self._rho: list[np.ndarray] = []
        self._act: list[np.ndarray] = []
        self._act_max: list[float] = []
        self._stride, self._seen = 1, 0

    def record(self, snap: Snapshot) -> None:
        """Called by the trainer after each publication (training thread)."""
        self._seen += 1
        if (self._seen - 1) % self._stride or not np.isfinite(snap.rho_hat).all():
            return
        with torch.no_grad():
            a = SparseAutoencoder.from_weights(self.model_config, snap.weights).encode(self.X).numpy().ravel()
        top = float(a.max()) if self.activation == "relu" else 1.0
        edges = self.act_edges * max(top, 1e-6) if self.activation == "relu" else self.act_edges
        rho_counts = np.histogram(np.clip(snap.rho_hat, 0, 1), self.rho_edges)[0]
        act_counts = np.histogram(a, edges)[0]
        with self._lock:
            if self._steps and snap.step == self._steps[-1]:
                self._steps.pop(), self._rho.pop(), self._act.pop(), self._act_max.pop()
            self._steps.append(float(snap.step))
            self._rho.append(rho_counts / max(1, len(snap.rho_hat)))
            self._act.append(act_counts / max(1, a.size))
            self._act_max.append(top)
            if len(self._steps) > self.rows:
                for seq in (self._steps, self._rho, self._act, self._act_max):
                    del seq[1::2]
                self._stride *= 2

    def arrays(self) -> dict[str, np.ndarray]:
        """step (r,), rho (r, bins) fractions, act (r, bins) fractions, edges, act_max (r,)."""
        with self._lock:
            n = len(self._steps)
            return {"step": np.array(self._steps),
                    "rho": np.array(self._rho).reshape(n, self.bins),
                    "act": np.array(self._act).reshape(n, self.bins),
                    "act_max": np.array(self._act_max),
                    "rho_edges": self.rho_edges, "act_edges": self.act_edges, "act_log": self.act_log}


# ----------------------------------------------------------------------------------- the job

_slots: TrainingSlots | None = None
_slots_lock = threading.Lock()


def training_slots() -> TrainingSlots:
    """The process-wide cap on trainers stepping at once: one per core minus one for the server
    (at least 1), or ``SAE_TRAINING_SLOTS``. Extra runs wait their turn with the status "queued"."""
    global _slots
    with _slots_lock:
        if _slots is None:
            default = max(1, (os.cpu_count() or 2) - 1)
            try:
                capacity = max(1, int(os.environ.get("SAE_TRAINING_SLOTS", default)))
            except ValueError:
                capacity = default
            _slots = TrainingSlots(capacity)
        return _slots


_ids = itertools.count(1)


def _stop_trainer(trainer: Trainer, reason: str) -> None:
    if trainer.status not in (RunStatus.FINISHED, RunStatus.STOPPED):
        trainer.stop(reason)


class Job:
    """One training run of one browser session. Control methods return quickly (the trainer's
    thread does the work) and are safe to call from script runs."""

    def __init__(self, settings: Settings, data: Dataset, subset: np.ndarray, *, store=None,
                 model: SparseAutoencoder | None = None, train_config: TrainConfig | None = None,
                 start_step: int = 0, history: dict[str, np.ndarray] | None = None,
                 parent_id: str | None = None, name: str | None = None) -> None:
        """``store``: a :class:`sae.runs.store.RunStore` in which the run is recorded once it trains (None: not
        recorded). ``model``, ``train_config``, ``start_step``, ``history``: continue a saved run (see
        :class:`sae.training.trainer.Trainer`); ``parent_id``: the recorded run it continues; ``name``: its record's name."""
        self.id = next(_ids)
        self.settings = settings
        self.data = data
        self.subset = subset  # (k,) indices of the rows the derived views use
        self.model_config = model.config if model is not None else settings.model_config(data)
        self.trace = DistributionTrace(data.X[subset[:TRACE_SUBSET]], self.model_config)
        self.trainer = Trainer(data.X, self.model_config, train_config or settings.train_config(), model=model,
                               start_step=start_step, history=history,
                               observers=[self.trace.record], snapshot_interval=0.1, slots=training_slots())
        self.store, self.parent_id, self.name = store, parent_id, name
        self.recorder = None  # the sae.runs.recorder.RunRecorder, from the first training step on
        self.record_error: str | None = None  # why the run could not be recorded (training carries on)
        self.note = ""  # a UI-side reason shown in the status line (e.g. paused on disconnect)
        self.last_beat = time.monotonic()
        self.resume_on_reconnect = False
        self.session_alive = None  # callable -> bool, set by the Streamlit layer; None: unknown
        self.gone_since: float | None = None
        self.gone_stop = SESSION_GONE_STOP  # s; the Streamlit layer sets server.disconnectedSessionTTL + 30
        self._derived_lock = threading.Lock()
        self._derived = None
        self.cache: ViewCache = ViewCache()  # the pages' per-job values (probe, frozen figures, ...): see sae.app.memo
        self._finalizer = weakref.finalize(self, _stop_trainer, self.trainer, "the browser session ended")
        _register(self)

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
        self._settle(lambda s: s.step >= target and s.status not in ACTIVE_STATUSES or s.status in (RunStatus.FINISHED, RunStatus.STOPPED))

    def stop(self, reason: str = "stopped by the user") -> None:
        if not self.final:
            self.trainer.stop(reason)
            self.trainer.join(2.0)

    def _record(self) -> None:
        """Before the first training step: create the run's record in the store and add its
        :class:`sae.runs.recorder.RunRecorder` to the trainer's observers, after the trace. The recorder
        references the store, the data and the trainer, never the Job (which stays collectable)."""
        if self.recorder is not None or self.store is None or self.final:
            return
        from sae.runs.table import default_run_name
        from sae.runs.recorder import RunRecorder
        from sae.runs.store import StoreError

        config = self.trainer.config  # with any live change made before the start
        try:
            self.recorder = RunRecorder.create(
                self.store, self.name or default_run_name(self.data.name, self.model_config, config),
                self.data.name, self.model_config, config, parent_id=self.parent_id, interval=RECORD_INTERVAL,
                X=self.data.X, labels=self.data.labels)
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
        """Change rho, beta, weight_decay or lr between two steps (Trainer.set_hyperparameters)."""
        if changes:
            self.trainer.set_hyperparameters(**changes)
            self.settings = replace(self.settings, **changes)

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

    # ---------------------------------------------------------------- derived views
    def derived(self):
        """The :class:`sae.app.derived.Derived` of the latest snapshot (cached per snapshot version)."""
        from sae.app.derived import Derived

        snap = self.latest()
        with self._derived_lock:
            if self._derived is None or self._derived.snapshot.version != snap.version:
                self._derived = Derived(snap, self.data, self.subset, self.model_config)
            return self._derived


# ----------------------------------------------------------------------------------- reaper

_jobs: "weakref.WeakSet[Job]" = weakref.WeakSet()
_reaper_lock = threading.Lock()
_reaper: threading.Thread | None = None


def _register(job: Job) -> None:
    global _reaper
    with _reaper_lock:
        _jobs.add(job)
        if _reaper is None or not _reaper.is_alive():
            _reaper = threading.Thread(target=_reap_forever, name="sae-ui-reaper", daemon=True)
            _reaper.start()


def reap(now: float | None = None) -> list[tuple[int, str]]:
    """One pass of the reaper: pause or stop jobs nobody watches. Returns [(job id, action)]."""
    now = time.monotonic() if now is None else now
    actions = []
    for job in list(_jobs):
        status = job.status
        if status in (RunStatus.FINISHED, RunStatus.STOPPED):
            continue
        alive = job.session_alive() if job.session_alive is not None else True
        if alive:
            job.gone_since = None
        elif job.gone_since is None:
            job.gone_since = now
        if job.gone_since is not None and now - job.gone_since > job.gone_stop:
            job.stop("stopped: the browser session ended")
            actions.append((job.id, "stop"))
        elif status in ACTIVE_STATUSES and now - job.last_beat > HEARTBEAT_PAUSE:
            job.resume_on_reconnect = True
            job.pause(f"paused: no page polled this run for {now - job.last_beat:.0f} s")
            actions.append((job.id, "pause"))
    return actions


def _reap_forever() -> None:
    """Reap every REAPER_PERIOD; collect garbage every GC_PERIOD. The dashboard turns off Streamlit's
    gc.collect() after every script run (``runner.postScriptGC``: ~0.25 s holding the GIL, several times a second
    per polling page), so the reference cycles a closed session leaves behind are freed here instead
    (cheap: sae.ui.page freezes the startup heap)."""
    import gc

    last_gc = time.monotonic()
    while True:
        time.sleep(REAPER_PERIOD)
        try:
            reap()
        except Exception:  # the reaper must outlive any one job's failure
            logger.warning("job reaper: reap() failed; retrying in %s s", REAPER_PERIOD, exc_info=True)
        if time.monotonic() - last_gc >= GC_PERIOD:
            last_gc = time.monotonic()
            gc.collect()


def live_jobs() -> list[Job]:
    """Jobs not yet garbage-collected (for tests and diagnostics)."""
    return list(_jobs)


def subset_indices(n_samples: int, size: int = SUBSET_SIZE, seed: int = 0) -> np.ndarray:
    """A fixed random subset of row indices (sorted) for the derived views."""
    if n_samples <= size:
        return np.arange(n_samples)
    return np.sort(np.random.default_rng(seed).choice(n_samples, size=size, replace=False))


__all__ = ["Settings", "Job", "DistributionTrace", "reap", "live_jobs", "subset_indices", "training_slots"]
