"""A run as the store returns it: :class:`RunRecord`, decoded from a row of table ``runs``; which rows a
filter selects (:func:`list_filters`).

Also who wrote a row (:func:`writer`): every write records its process, so a run left "running" by a process
that has died since (a crash, a killed server) reads as ``interrupted`` (:func:`is_interrupted`). That writing
process is not who the run belongs to: that is ``RunRecord.owned_by`` (:mod:`sae.runs.owners`).
"""

from __future__ import annotations

import os
import socket
import sqlite3
import uuid
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

from sae.core.config import ConfigError, ModelConfig, TrainConfig
from sae.runs.codec import METRIC_COLUMNS, check_run_id, decode_configs, json_object
from sae.training.status import FINAL_STATUSES, LIVE_STATUSES, RunStatus

RUN_COLUMNS = ("id, name, dataset, created, updated, status, reason, step, epoch, elapsed, model_config, "
               "train_config, hyper, total, reconstruction, sparsity, weight_decay, rho_hat_mean, dead_units, "
               "probe_accuracy, metrics, summary, has_weights, parent_id, sweep_id, owner, pid, host, deleted, owned_by")
_PROCESS = uuid.uuid4().hex  # tells this process's runs from those of a previous (crashed) server
_HOST = socket.gethostname()


@dataclass(frozen=True)
class RunRecord:
    """One row of the run table, decoded. Metrics are None when not (yet) known."""

    id: str
    name: str
    dataset: str
    created: float  # Unix seconds
    updated: float
    status: str  # idle, queued, running, paused, diverged, finished, stopped
    reason: str
    step: int
    epoch: float
    elapsed: float  # seconds of training
    model_config: ModelConfig
    train_config: TrainConfig | None  # as created; see current_train_config for live changes
    hyper: dict[str, float]
    total: float | None
    reconstruction: float | None
    sparsity: float | None
    weight_decay: float | None
    rho_hat_mean: float | None
    dead_units: int | None
    probe_accuracy: float | None
    metrics: dict[str, Any] = field(default_factory=dict)  # further metrics
    summary: dict[str, Any] = field(default_factory=dict)  # history summary
    has_weights: bool = False
    parent_id: str | None = None
    sweep_id: str | None = None
    interrupted: bool = False  # was training when its process died (crash, killed server)
    deleted: float | None = None  # Unix seconds it went to the trash (sae.runs.trash); None while listed
    owned_by: str | None = None  # the user it belongs to (sae.runs.owners); None: no owner (older, or from Python)

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def current_train_config(self) -> TrainConfig | None:
        """The train config with the live hyperparameters in effect at the last write."""
        if self.train_config is None:
            return None
        known = {k: v for k, v in self.hyper.items() if k in TrainConfig.LIVE_FIELDS}
        try:
            return replace(self.train_config, **known)
        except ConfigError:
            return self.train_config

    @property
    def display_status(self) -> str:
        return RunStatus.INTERRUPTED if self.interrupted else self.status

    def row(self) -> dict[str, Any]:
        """A flat dict for a table: identity, status, hyperparameters, final metrics.

        The hyperparameter lambda is ``lambda``; the weight-decay loss term is ``weight_decay_loss``.
        """
        mc, tc = self.model_config, self.current_train_config
        out: dict[str, Any] = {"id": self.id, "name": self.name, "dataset": self.dataset,
                               "status": self.display_status, "created": self.created, "updated": self.updated,
                               "step": self.step, "epoch": self.epoch, "elapsed": self.elapsed,
                               "n_inputs": mc.n_inputs, "n_hidden": mc.n_hidden, "activation": mc.activation}
        for name in ("rho", "beta", "weight_decay", "lr", "penalty", "optimizer", "batch_size", "seed"):
            out["lambda" if name == "weight_decay" else name] = None if tc is None else getattr(tc, name)
        for name in METRIC_COLUMNS:
            out[f"{name}_loss" if name == "weight_decay" else name] = getattr(self, name)
        return out


def writer() -> tuple[str, int, str]:
    """(owner, pid, host) to record with every write: this process, as crash detection needs it."""
    return _PROCESS, os.getpid(), _HOST


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def is_interrupted(status: str, owner: str, pid: int, host: str) -> bool:
    """A live status written by a process that is gone: it crashed or was killed mid-run."""
    if status not in LIVE_STATUSES or status == RunStatus.IDLE or owner == _PROCESS or host != _HOST:
        return False
    return pid == os.getpid() or not _pid_alive(pid)  # our pid but another owner: a restarted server


def run_record(row: sqlite3.Row | tuple, where: str) -> RunRecord:
    """Decode a row of ``SELECT {RUN_COLUMNS} FROM runs``; ``where`` (the database file) names it in errors."""
    (run_id, name, dataset, created, updated, status, reason, step, epoch, elapsed, mj, tj, hyper, total,
     recon, sparsity, wd, rho_mean, dead, probe, metrics, summary, has_w, parent, sweep, owner, pid,
     host, deleted, owned_by) = row
    mc, tc = decode_configs(mj, tj, f"run {run_id} in {where}")
    return RunRecord(run_id, name, dataset, created, updated, status, reason, int(step), float(epoch),
                     float(elapsed), mc, tc, json_object(hyper), total, recon, sparsity, wd, rho_mean,
                     None if dead is None else int(dead), probe, json_object(metrics), json_object(summary),
                     bool(has_w), parent, sweep, is_interrupted(status, owner, int(pid), host), deleted,
                     owned_by)


def list_filters(status: str | Sequence[str] | None, dataset: str | None, search: str | None,
                 sweep_id: str | None, n_inputs: int | None) -> tuple[list[str], list[Any], set[str] | None]:
    """(SQL conditions, their arguments, the statuses wanted as shown) for :meth:`sae.runs.store.RunStore.list`.

    A wanted ``interrupted`` selects every live stored status: whether its writer died is only known per record.
    """
    where: list[str] = []
    args: list[Any] = []
    wanted: set[str] | None = None
    if status is not None:
        wanted = {status} if isinstance(status, str) else set(status)
        interrupted = RunStatus.INTERRUPTED in wanted
        stored = (wanted - {RunStatus.INTERRUPTED}) | (set(LIVE_STATUSES) if interrupted else set())
        where.append(f"status IN ({', '.join('?' * len(stored))})")
        args += sorted(stored)
    if dataset is not None:
        where.append("dataset = ?")
        args.append(dataset)
    if search:
        escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append("name LIKE ? ESCAPE '\\'")
        args.append(f"%{escaped}%")
    if sweep_id is not None:
        where.append("sweep_id = ?")
        args.append(check_run_id(sweep_id, "sweep id"))
    if n_inputs is not None:
        where.append("json_extract(model_config, '$.n_inputs') = ?")
        args.append(int(n_inputs))
    return where, args, wanted


__all__ = ["RunRecord", "run_record", "list_filters", "writer", "is_interrupted", "METRIC_COLUMNS", "RUN_COLUMNS"]
