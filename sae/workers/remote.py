"""The server's handle on a run that trains in a worker: :class:`RemoteTrainer`, with the Trainer's own API
(``start``, ``pause``, ``resume``, ``step``, ``stop``, ``join``, ``set_hyperparameters``, ``set_budget``,
``latest``, ``history``, ``health``, observers, ``config``, ``total_steps``), so the dashboard's Job and the
sweeps drive either one.

How it works: commands go to the worker at once (queued while the worker starts); one receiver thread per
handle takes the worker's newest :class:`sae.workers.host.Update`, keeps it (``latest()``, ``history()``) and
calls the observers (the UI trace, the run recorder) in that thread. Snapshot versions are the handle's own,
so they keep increasing across worker restarts.

Faults stay local: when a worker ends without a final state (killed, out of memory, a crash) the handle
starts a fresh worker from the last snapshot it received (weights, step, history and the settings as changed
since) and puts it back in the state the user left it (training, or paused); the status line says what
happened. The optimiser's moments restart. A worker that ends again at the same step stops the run with the
reason, keeping its last snapshot.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from typing import Iterable

import numpy as np

from sae.core.config import ConfigError, ModelConfig, TrainConfig
from sae.core.model import SparseAutoencoder
from sae.training.inputs import (as_training_tensor, check_compatible, history_columns, new_model, steps_per_epoch,
                                 total_steps)
from sae.training.observers import Observable, Observer, Observers
from sae.training.snapshot import HISTORY_COLUMNS, Snapshot, run_warnings, take_snapshot
from sae.training.status import RunStatus
from sae.training.timeline import Edit, TimelineView, parse_schedule
from sae.workers.host import HostFailed, TrainerSpec, Twin, Update, extend_history, merge_rows
from sae.workers.process import shutting_down

logger = logging.getLogger(__name__)

ENDED = frozenset({RunStatus.FINISHED, RunStatus.STOPPED})  # the training thread has ended
STOP_SECONDS = 5.0  # how long stop() waits for the worker's final state before declaring the run stopped
SYNC_SECONDS = 2.0  # how long a live change waits for the worker to have applied it
STARTING = "starting: the run's worker process is getting ready"
MEMORY_ERRORS = ("can't allocate memory", "MemoryError", "Cannot allocate memory", "std::bad_alloc")
NOTICE_SECONDS = 20.0  # how long a restart's notice stays in the status line


class RemoteTrainer(Observable):
    """A run training in a worker of ``backend`` (``sae.workers.process.LocalBackend`` or
    ``sae.workers.ray_backend.RayBackend``). Arguments as for :class:`sae.training.trainer.Trainer`; the data
    are checked and the initial weights drawn here (seeded like the Trainer's), then sent to the worker."""

    def __init__(self, backend, X, model_config: ModelConfig | None = None, config: TrainConfig | None = None, *,
                 model: SparseAutoencoder | None = None, on_snapshot: Observer | None = None,
                 observers: Iterable[Observer] = (), snapshot_interval: float = 0.1, start_step: int = 0,
                 history: dict[str, np.ndarray] | None = None, threads: int | None = None,
                 schedule: Iterable[Edit | dict] = (), edits: Iterable[Edit] = ()) -> None:
        self.config = config or TrainConfig()
        data = as_training_tensor(X).numpy()  # checked (2-D, finite) and owned
        m, n = data.shape
        model = model if model is not None else new_model(model_config, self.config.seed, data)
        check_compatible(model.config, self.config, n)
        self.model_config = model.config
        self.n_samples = m
        self.batch_size = min(self.config.batch_size, m)
        self.steps_per_epoch = steps_per_epoch(self.config, m)
        self.total_steps = total_steps(self.config, m)
        self.snapshot_interval = snapshot_interval
        self._observers = Observers()
        self._on_snapshot: Observer | None = None
        self.on_snapshot = on_snapshot
        for observer in observers:
            self._observers.add(observer)
        weights = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
        self._spec = TrainerSpec(data, model.config, self.config, weights, start_step, history, snapshot_interval,
                                 threads, tuple(parse_schedule(schedule)), tuple(edits))
        self._timeline = TimelineView(tuple(edits), (start_step,), start=self.config, start_step=start_step)
        self._twin: Twin | None = None
        self._twin_history: dict[str, np.ndarray] = {}
        self.action_error = ""
        self._backend = backend
        self._cond = threading.Condition()
        given = history_columns(history) if history else {}  # checked here, as the Trainer would
        self._history: dict[str, np.ndarray] = {c: np.asarray(given[c], np.float64).copy() if c in given
                                                else np.empty(0) for c in HISTORY_COLUMNS}
        self._latest = take_snapshot(model, None, self.config, step=start_step,
                                     epoch=start_step / self.steps_per_epoch, samples_per_s=0.0, elapsed=0.0,
                                     status=RunStatus.IDLE, reason="", version=0)
        self._delivered = self._latest  # the last snapshot the observers have been given
        self._started = False
        self._wants_running = False  # what the user last asked: train (start/resume) or not (pause/step)
        self._paused_early = False  # pause() before start()
        self._closed = False
        self._channel = None
        self._pending: list[tuple] = []  # commands sent before the worker is up
        self._seq = 0  # commands sent; the worker acknowledges them in order (Update.acked)
        self._acked = 0
        self._worker_version = -1
        self._restarted_at: set[int] = set()
        self._elapsed_offset = 0.0
        self._notice, self._notice_until = "", 0.0
        self.restarts = 0
        self._receiver = threading.Thread(target=self._receive, name="sae-remote-trainer", daemon=True)
        self._receiver.start()

    # ---------------------------------------------------------------- state (any thread)
    @property
    def status(self) -> RunStatus:
        return self._latest.status

    @property
    def started(self) -> bool:
        return self._started

    @property
    def is_alive(self) -> bool:
        return self._started and not self._closed and self._latest.status not in ENDED

    @property
    def worker_pid(self) -> int | None:
        """The process id of the local worker (None before it is up, or for Ray)."""
        channel = self._channel
        return getattr(channel, "pid", None)

    def latest(self) -> Snapshot:
        return self._latest

    @property
    def model(self) -> SparseAutoencoder:
        """The network as of the latest snapshot (a copy built here; the one training lives in the worker)."""
        return SparseAutoencoder.from_weights(self.model_config, self._latest.weights)

    def history(self) -> dict[str, np.ndarray]:
        return dict(self._history)  # the arrays are replaced whole on every update, never changed in place

    def twin_latest(self) -> Snapshot | None:
        twin = self._twin
        return None if twin is None else twin.snapshot

    def twin_history(self) -> dict[str, np.ndarray] | None:
        return None if self._twin is None else dict(self._twin_history)

    def twin_setup(self) -> tuple[dict[str, float], int] | None:
        twin = self._twin
        return None if twin is None else twin.setup

    def timeline_view(self) -> TimelineView:
        return self._timeline

    def health(self, rho_hat: np.ndarray | None = None) -> list[str]:
        """As :meth:`sae.training.trainer.Trainer.health`."""
        return run_warnings(self.history(), self.latest(), self.config, rho_hat)

    # ---------------------------------------------------------------- control (any thread)
    def start(self) -> None:
        with self._cond:
            if self._started:
                raise RuntimeError("this trainer was already started; use resume()")
            self._started = True
            self._wants_running = not self._paused_early  # pause() then start(): start paused (a loaded model)
            self._send(("start",))
        self._starting()

    def pause(self) -> None:
        with self._cond:
            self._wants_running = False
            self._paused_early = self._paused_early or not self._started
            self._send(("pause",))

    def resume(self) -> None:
        with self._cond:
            self._wants_running = True
            self._send(("resume",))
        self._starting()

    def _starting(self) -> None:
        """Say "running" at once, before the worker confirms it (~25 ms; seconds while a new server's
        forkserver still imports torch), so that a page polls from the click on. The worker's next state
        replaces it (a finished run that cannot go on says "finished" again)."""
        if self._wants_running and self._latest.status in (RunStatus.IDLE, RunStatus.PAUSED, RunStatus.DIVERGED):
            self._publish_here(RunStatus.RUNNING, STARTING)

    def step(self, n: int = 1) -> None:
        """Take n steps in the worker, then stay paused."""
        with self._cond:
            if not self._started:
                self._started = True
                self._send(("pause",))
                self._send(("start",))
            self._wants_running = False
            self._send(("step", (n,)))

    def stop(self, reason: str = "stopped by the user") -> None:
        """End the run (final), waiting up to STOP_SECONDS for the worker's last state; a worker that does not
        answer is closed and the run declared stopped here."""
        with self._cond:
            self._wants_running = False
            self._send(("stop", (reason,)))
            answered = self._cond.wait_for(lambda: self._delivered.status in ENDED or self._closed, STOP_SECONDS)
        if not answered:
            self._end(RunStatus.STOPPED, reason)
        elif self._latest.status == RunStatus.FINISHED:
            self.close()  # stopping a finished run: nothing can continue it, free its worker

    def join(self, timeout: float | None = None) -> None:
        """Wait until the run has ended (finished or stopped) or ``timeout`` seconds."""
        with self._cond:
            self._cond.wait_for(lambda: not self._started or self._closed or self._delivered.status in ENDED,
                                timeout)

    def set_hyperparameters(self, **changes: float) -> None:
        """As :meth:`sae.training.trainer.Trainer.set_hyperparameters` (validated here, applied in the worker)."""
        bad = set(changes) - set(TrainConfig.LIVE_FIELDS) - set(TrainConfig.BUDGET_FIELDS)
        if bad:
            raise ConfigError(f"{', '.join(sorted(bad))} cannot change during training; restart instead.")
        config = replace(self.config, **changes)  # validates
        with self._cond:
            self.config = config
            if set(changes) & set(TrainConfig.BUDGET_FIELDS):
                self.total_steps = total_steps(config, self.n_samples)
            seq = self._send(("set_hyperparameters", (), dict(changes)))
            # as a Trainer does: once this returns the change is in effect (a finished run whose budget was
            # raised is "paused"), unless the worker is still starting
            self._cond.wait_for(lambda: self._acked >= seq or self._closed, SYNC_SECONDS if self._channel else 0)

    # ---------------------------------------------------------------- timeline, twin, resampling (any thread)
    def rewind(self, step: int) -> None:
        """As :meth:`sae.training.trainer.Trainer.rewind` (the checkpoints live in the worker)."""
        if int(step) not in self._timeline.checkpoints:
            kept = ", ".join(f"{s:,}" for s in self._timeline.checkpoints) or "none"
            raise ConfigError(f"there is no checkpoint at step {int(step):,} to rewind to (kept: {kept}).")
        self._command("rewind", int(step))

    def resample(self, units: list[int] | None = None) -> None:
        if units is not None:
            units = [int(u) for u in units]
            if len(set(units)) != len(units) or any(not 0 <= u < self.model_config.n_hidden for u in units):
                raise ConfigError(f"units to resample must be distinct numbers in [0, {self.model_config.n_hidden}).")
        self._command("resample", units)

    def add_twin(self, from_step: int | None = 0, **changes: float) -> None:
        bad = set(changes) - set(TrainConfig.LIVE_FIELDS)
        if bad:
            raise ConfigError(f"a twin may change {', '.join(TrainConfig.LIVE_FIELDS)}, not {', '.join(sorted(bad))}.")
        replace(self.config, **changes)  # validates
        if from_step is not None and int(from_step) not in self._timeline.checkpoints:
            raise ConfigError(f"there is no checkpoint at step {int(from_step):,} to start a twin from.")
        self._command("add_twin", from_step, **changes)

    def remove_twin(self) -> None:
        self._command("remove_twin")

    def promote_twin(self) -> None:
        self._command("promote_twin")

    def _command(self, name: str, *args, **kwargs) -> None:
        """Send a command and wait (up to SYNC_SECONDS) until the worker has carried it out."""
        with self._cond:
            self.action_error = ""
            seq = self._send((name, tuple(args), dict(kwargs)))
            self._cond.wait_for(lambda: self._acked >= seq or self._closed, SYNC_SECONDS if self._channel else 0)

    def set_budget(self, epochs: float | None = None, max_iter: int | None = None) -> None:
        changes = {k: v for k, v in (("epochs", epochs), ("max_iter", max_iter)) if v is not None}
        self.set_hyperparameters(**changes)

    def close(self) -> None:
        """End the worker (a run not yet ended is stopped first). Idempotent."""
        if self._latest.status not in ENDED and self._started and not self._closed:
            self.stop("the run was closed")
        with self._cond:
            if self._closed:
                return
            self._closed = True
            channel, self._channel = self._channel, None
            self._cond.notify_all()
        if channel is not None:
            channel.close()

    # ---------------------------------------------------------------- the receiver thread
    def _send(self, command: tuple) -> int:
        """(holding ``_cond``) to the worker, or queued until it is up; numbered (returned) for its
        acknowledgement."""
        self._seq += 1
        name, args, kwargs = (*command, (), None)[:3]
        numbered = (name, args, kwargs, self._seq)
        if self._channel is None:
            self._pending.append(numbered)
        else:
            self._channel.send(numbered)
        return self._seq

    def _receive(self) -> None:
        while True:
            channel = self._connect()
            if channel is None:
                return
            self._pump(channel)
            if self._closed or self._latest.status in ENDED or shutting_down():
                return
            if not self._restart(channel.end_text()):
                return

    def _connect(self):
        try:
            channel = self._backend.open_trainer(self._spec)
        except Exception as exc:  # noqa: BLE001 - shown in the status line
            logger.warning("could not start a worker: %s", exc, exc_info=exc)
            self._end(RunStatus.STOPPED, f"could not start a worker for this run: {type(exc).__name__}: {exc}")
            return None
        with self._cond:
            if self._closed:
                closed = True
            else:
                closed = False
                self._channel = channel
                for command in self._pending:
                    channel.send(command)
                self._pending = []
        if closed:
            channel.close()
            return None
        return channel

    def _pump(self, channel) -> None:
        """Take the worker's states until it ends (or stops the run)."""
        while True:
            try:
                message = channel.recv()
            except EOFError:
                return
            if isinstance(message, HostFailed):
                self._end(RunStatus.STOPPED, self._explain(f"the run could not start in its worker: {message.message}"))
                return
            if isinstance(message, Update):
                self._apply(message)
                if message.snapshot.status == RunStatus.STOPPED:
                    self.close()  # a stopped run is final: its worker ends
                    return

    def _apply(self, update: Update) -> None:
        snap = update.snapshot
        with self._cond:
            self._history = extend_history(self._history, update)  # new rows come with every update, repeats too
            self._acked = max(self._acked, update.acked)
            twin = update.twin
            self._twin_history = {} if twin is None else merge_rows(self._twin_history, twin.history,
                                                                     twin.history_start)
            self._twin = twin
            if update.timeline is not None:
                self._timeline = update.timeline
            if update.config is not None and self._acked >= self._seq:  # (no change of ours is still on its way)
                if update.config != self.config:
                    self.config = update.config
                    self.total_steps = total_steps(update.config, self.n_samples)
                self.action_error = update.action_error
            # an acknowledgement repeats the worker's last state: nothing new unless we said otherwise meanwhile
            repeated = snap.version == self._worker_version and snap.status == self._latest.status
            self._worker_version = snap.version
            if repeated or snap.status == RunStatus.IDLE and self._started:
                # (a (re)started worker's first state: the commands queued for it follow at once)
                self._cond.notify_all()
                return
            reason = snap.reason
            if self._notice and not reason and time.monotonic() < self._notice_until:
                reason = self._notice
            if snap.status == RunStatus.STOPPED:
                reason = self._explain(reason)
            snap = replace(snap, version=self._latest.version + 1, elapsed=snap.elapsed + self._elapsed_offset,
                           reason=reason)
            self._latest = snap
        self._deliver(snap)

    def _deliver(self, snap: Snapshot) -> None:
        """Call the observers, then wake those waiting for an end (``join``: the observers have seen it, as
        with a Trainer's thread, which calls them before it ends)."""
        self._observers.notify(snap)
        with self._cond:
            self._delivered = snap
            self._cond.notify_all()

    def _explain(self, reason: str) -> str:
        """An allocation failure in the worker, said plainly (with the cap it hit)."""
        if not any(sign in reason for sign in MEMORY_ERRORS):
            return reason
        limit = getattr(self._backend, "memory_limit", None)
        cap = f"the {limit / 1024 ** 2:,.0f} MiB a worker may use (SAE_LAB_WORKER_MEMORY)" if limit else \
            "the memory a worker may use"
        return f"out of memory: this run needs more than {cap}; try fewer hidden units or a smaller batch ({reason})"

    def _publish_here(self, status: RunStatus, reason: str) -> None:
        with self._cond:
            snap = replace(self._latest, status=status, reason=reason, samples_per_s=0.0,
                           version=self._latest.version + 1)
            self._latest = snap
        self._deliver(snap)

    def _end(self, status: RunStatus, reason: str) -> None:
        """The run ends here, without its worker (which is closed)."""
        if self._latest.status not in ENDED:
            self._publish_here(status, reason)
        self.close()

    def _restart(self, why: str) -> bool:
        """A fresh worker from the last snapshot (see the module docstring). False if the run stops instead."""
        last = self._latest
        if "SIGTERM" in why or "SIGHUP" in why or "forkserver ended" in why:  # asked to end (the server stopping,
            # an administrator): no restart
            self._end(RunStatus.STOPPED, f"the worker process of this run was ended ({why}); the run stops here "
                                         "with its last snapshot")
            return False
        if last.step in self._restarted_at:
            self._end(RunStatus.STOPPED, f"the worker process of this run ended again at step {last.step:,} ({why}); "
                                         "the run stops here with its last snapshot")
            return False
        self._restarted_at.add(last.step)
        self.restarts += 1
        notice = (f"the worker process of this run ended ({why}); training goes on from step {last.step:,} on a "
                  "fresh worker (the optimiser's state restarts)")
        logger.warning("run at step %d: %s", last.step, notice)
        with self._cond:
            history = self.history()  # sent with a later state than the snapshot: keep the rows before it
            if "step" in history:
                kept = history["step"] < last.step
                history = {name: column[kept] for name, column in history.items()}
            self._history = history
            self._spec = replace(self._spec, weights=last.weights, start_step=last.step, history=history,
                                 train_config=self.config, schedule=(),
                                 edits=tuple(e for e in self._timeline.edits if e.step <= last.step),
                                 timeline_start=(self._timeline.start, self._timeline.start_step))
            self._twin, self._twin_history = None, {}  # the twin lived in the worker: it is gone
            self._elapsed_offset = last.elapsed
            self._notice, self._notice_until = notice, time.monotonic() + NOTICE_SECONDS
            self._channel = None
            self._worker_version = -1
            self._pending = []
            for command in ([("pause",), ("start",)] if self._started else []) + \
                    ([("resume",)] if self._wants_running else []):
                self._send(command)
        self._publish_here(RunStatus.QUEUED if self._wants_running else last.status, notice)
        return True


__all__ = ["RemoteTrainer", "STOP_SECONDS"]
