"""The seed-locked twin as the pages see it (no Streamlit): what it changes, where it stands, its derived views and
how it differs from the run.

A twin (``Job.add_twin``, ``sae.training.trainer.Trainer.add_twin``) trains beside the run from the same initial
weights and the same minibatch order, with a few live settings changed (ρ, β, λ, the learning rate), in lock step.

- :func:`add_twin`: add one to a job, from the start or from now, once the run's checkpoints are known;
- :func:`twin_state`: a :class:`TwinState` (its settings, the run's values of them, its latest snapshot, whether it
  is still catching up), or None without a twin; its ``run_name`` / ``twin_name`` are the charts' legend names
  ("run (β 3)", "twin (β 10)");
- :func:`twin_derived`: the :class:`sae.app.derived.Derived` of the twin's latest snapshot on the run's subset,
  cached per twin snapshot in the job's view cache;
- :func:`differences`: run vs twin on the numbers the Train page heads with (loss, reconstruction error, mean ρ̂,
  dead units, L0);
- :func:`filter_similarity`: the cosine of each unit's run and twin filters;
- :func:`align_signs`: the twin's principal components turned to point the way the run's do (a PCA's signs are
  arbitrary; equal codes must draw equal pictures).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from sae.app.derived import Derived
from sae.core.config import TrainConfig
from sae.training.status import RunStatus
from sae.training.timeline import SYMBOLS
from sae.training.trainer import Snapshot

CACHE_KEY = "twin_derived"  # the job.cache entry of the twin's Derived
WAIT_SECONDS = 10.0  # how long add_twin waits for a starting worker and for the twin to show
TWIN_FIELDS = TrainConfig.LIVE_FIELDS  # the settings a twin may change: rho, beta, weight_decay, lr


def setting_text(values: Mapping[str, float]) -> str:
    """Settings as the legend names them: {"beta": 10.0} -> "β 10"; several joined by ", "; none -> "no change"."""
    parts = [f"{SYMBOLS.get(k, k)} {float(values[k]):g}" for k in TWIN_FIELDS if k in values]
    parts += [f"{k} {values[k]}" for k in values if k not in TWIN_FIELDS]
    return ", ".join(parts) or "no change"


@dataclass(frozen=True)
class TwinState:
    """The twin of a run at one moment."""

    changes: dict[str, float]  # the settings the twin fixes: {"beta": 10.0}
    from_step: int  # the step it forked at
    snapshot: Snapshot = field(repr=False)  # its latest
    run_step: int  # the run's step at the same moment
    run_values: dict[str, float]  # the run's values of the changed settings now

    @property
    def label(self) -> str:
        """"β 10" (or "no change")."""
        return setting_text(self.changes)

    @property
    def run_label(self) -> str:
        """The run's values of the same settings: "β 3"."""
        return setting_text(self.run_values) if self.changes else "no change"

    @property
    def twin_name(self) -> str:
        """The twin's legend name: "twin (β 10)"."""
        return f"twin ({self.label})"

    @property
    def run_name(self) -> str:
        """The run's legend name beside a twin: "run (β 3)"."""
        return f"run ({self.run_label})" if self.changes else "run"

    @property
    def diverged(self) -> bool:
        return self.snapshot.status == RunStatus.DIVERGED

    @property
    def behind(self) -> bool:
        """Still catching up with the run (a twin forked in the past trains alone first)."""
        return not self.diverged and self.snapshot.step < self.run_step

    @property
    def level(self) -> bool:
        """At the run's step (it can be promoted)."""
        return not self.diverged and self.snapshot.step == self.run_step

    def progress_text(self) -> str:
        """Where it stands, in a few words."""
        if self.diverged:
            return f"diverged at step {self.snapshot.step:,}" + (f": {self.snapshot.reason}"
                                                                   if self.snapshot.reason else "")
        if self.behind:
            return f"catching up: step {self.snapshot.step:,} of {self.run_step:,}"
        return f"in lock step at step {self.snapshot.step:,}"


def twin_state(job) -> TwinState | None:
    """The job's twin now, or None without one (``job``: a :class:`sae.app.job.Job`)."""
    setup, snap = job.twin_setup(), job.twin_latest()
    if setup is None or snap is None:
        return None
    changes, from_step = setup
    run = job.latest()
    return TwinState(dict(changes), int(from_step), snap, run.step,
                     {k: float(run.hyper[k]) for k in changes if k in run.hyper})


def _version(snap: Snapshot) -> tuple:
    """What tells one twin snapshot from another (a new twin's versions start again at 0: its time differs)."""
    return snap.version, snap.created, snap.step


def twin_derived(job, state: TwinState | None = None) -> Derived | None:
    """The :class:`Derived` of the twin's latest snapshot (same data, subset and model as the run's), computed once
    per twin snapshot and kept in ``job.cache``; None without a twin."""
    state = twin_state(job) if state is None else state
    if state is None:
        return None
    snap = state.snapshot
    return job.cache.memo(CACHE_KEY, _version(snap),
                          lambda: Derived(snap, job.data, job.subset, job.model_config,
                                          penalty=job.trainer.config.penalty))


def start_step(job) -> int:
    """The step a twin "from the start" forks at: the run's first checkpoint (0 for a new run, a continued run's first
    step)."""
    checkpoints = job.timeline().checkpoints
    return min(checkpoints) if checkpoints else job.latest().step


def add_twin(job, changes: Mapping[str, float], from_start: bool = True, timeout: float = WAIT_SECONDS) -> None:
    """Add a twin to ``job`` with ``changes`` from the run's start (or from now), and wait (up to ``timeout`` s) until
    it shows or the trainer says why not (``job.action_error``). A run that has not started is held paused first, and
    its checkpoints waited for: a worker process that is still starting has not reported them yet, and the twin is
    checked against them. ConfigError for settings a twin cannot take."""
    end = time.monotonic() + timeout
    if not job.started:
        job.hold(job.note)
    while not job.timeline().checkpoints and job.trainer.is_alive and time.monotonic() < end:
        time.sleep(0.01)
    job.add_twin(start_step(job) if from_start else None, **changes)
    while job.twin_setup() is None and not job.action_error and job.trainer.is_alive and time.monotonic() < end:
        time.sleep(0.01)


DIFFERENCE_ROWS = (  # (key, what it is)
    ("loss", "loss J (last batch)"),
    ("reconstruction", "reconstruction error ½‖x̂−x‖² (subset mean)"),
    ("rho_hat", "mean ρ̂ (subset)"),
    ("dead", "dead units"),
    ("l0", "L0: active units per sample"),
)


def numbers(d: Derived) -> dict[str, float]:
    """The numbers :func:`differences` compares, of one Derived."""
    return {**d.headline(), "reconstruction": float(np.mean(d.errors))}


def differences(run: Derived, twin: Derived) -> list[tuple[str, float, float, float]]:
    """(what, run's value, twin's value, twin − run) for each of ``DIFFERENCE_ROWS``."""
    a, b = numbers(run), numbers(twin)
    return [(name, a[key], b[key], b[key] - a[key]) for key, name in DIFFERENCE_ROWS]


def filter_similarity(W_run: np.ndarray, W_twin: np.ndarray) -> np.ndarray:
    """(s,) cosine similarity of each unit's filter in the run and in the twin (rows of (s, n) weights); exactly 1 for
    equal filters (two zero ones too), 0 for a zero filter beside another."""
    a, b = np.asarray(W_run, dtype=np.float64), np.asarray(W_twin, dtype=np.float64)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    dot = (a * b).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where((na > 0) & (nb > 0), dot / (na * nb), np.where((na == 0) & (nb == 0), 1.0, 0.0))
    return np.where((a == b).all(axis=1), 1.0, np.clip(cos, -1.0, 1.0))  # equal filters: exactly 1


def relative_change(W_run: np.ndarray, W_twin: np.ndarray) -> np.ndarray:
    """(s,) ‖w_twin − w_run‖ / ‖w_run‖ per unit (0 where both are zero)."""
    a, b = np.asarray(W_run, dtype=np.float64), np.asarray(W_twin, dtype=np.float64)
    na = np.linalg.norm(a, axis=1)
    diff = np.linalg.norm(b - a, axis=1)
    return np.where(na > 0, diff / np.where(na > 0, na, 1.0), np.where(diff > 0, np.inf, 0.0))


def align_signs(coords: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``coords`` (m, k) with each column's sign flipped where it runs against ``reference``'s column (same rows):
    two PCAs of the same samples then point the same way."""
    coords, reference = np.asarray(coords), np.asarray(reference)
    k = min(coords.shape[1], reference.shape[1])
    signs = np.ones(coords.shape[1])
    signs[:k] = np.where((coords[:, :k] * reference[:, :k]).sum(axis=0) < 0, -1.0, 1.0)
    return coords * signs


__all__ = ["TwinState", "twin_state", "twin_derived", "add_twin", "start_step", "setting_text", "differences",
           "numbers", "filter_similarity", "relative_change", "align_signs", "DIFFERENCE_ROWS", "TWIN_FIELDS",
           "CACHE_KEY", "WAIT_SECONDS"]
