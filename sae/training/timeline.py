"""A run's timeline: every live change with the step it took effect at (:class:`Edit`), the checkpoints a
rewind goes back to (:class:`Checkpoint`, in bounded memory), and the schedule a replay applies.

An edit at step k took effect *before* optimiser step k (the (k+1)-th step): a setting changed while step k
was being taken applies from step k + 1 on, and is recorded at k + 1. A checkpoint at step k is the state
*before* the edits at k (weights, the optimiser's state, the random stream, the epoch's batch order, the
settings): rewinding to a mark undoes the change made there and continues from the exact state the run was in.

Kinds of edits:

==========  ==============================================  ==============
kind        ``changes``                                     in the schedule
==========  ==============================================  ==============
set         the settings changed: {"beta": 10.0, ...}       yes
resample    the units re-initialised: {"units": [3, 17]}    yes
rewind      {"from": the step the run was at}               yes (L-BFGS restarts its curvature memory)
twin        the twin's settings: {"beta": 10.0}             no
promote     the twin's settings that became the run's       no (its ``set`` edit is)
pause       {}                                              no
resume      {}                                              no
step        {"n": steps requested}                          no
==========  ==============================================  ==============

The *schedule* (the kinds marked "yes", in order) is what a replay needs: a new Trainer with the run's first
settings and seed, given ``schedule=``, applies each edit when it reaches its step and takes the same steps
(``sae.training.trainer.Trainer``). Pauses and resumes do not change the math, so they are listed, not replayed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import torch

from sae.core.config import ConfigError, TrainConfig, config_from_dict, config_to_dict

EDIT_KINDS = ("set", "resample", "rewind", "twin", "promote", "pause", "resume", "step")
SCHEDULED_KINDS = ("set", "resample", "rewind")  # the edits that change what the run computes
CHECKPOINT_BYTES = 48 * 1024 ** 2  # default memory for checkpoints per run (the start's is always kept)
MAX_EDITS = 5000  # edits kept per run (the oldest listed-only ones go first)

SYMBOLS = {"rho": "ρ", "beta": "β", "weight_decay": "λ", "lr": "learning rate", "epochs": "epochs",
           "max_iter": "iterations"}


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


@dataclass(frozen=True)
class Edit:
    """One change to a run: its ``kind`` (see the module docstring), the ``step`` it took effect before,
    ``changes`` (JSON-safe), the values they replaced (``before``, for "set") and the wall-clock ``time``."""

    step: int
    kind: str
    changes: Mapping[str, Any] = field(default_factory=dict)
    before: Mapping[str, Any] = field(default_factory=dict)
    time: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        if self.kind not in EDIT_KINDS:
            raise ConfigError(f"unknown edit kind {self.kind!r}; one of {', '.join(EDIT_KINDS)}.")
        if int(self.step) != self.step or self.step < 0:
            raise ConfigError(f"an edit's step must be a whole number >= 0, got {self.step!r}.")

    @property
    def scheduled(self) -> bool:
        return self.kind in SCHEDULED_KINDS

    def label(self) -> str:
        """A short text for a chart mark or a list: "β 3 → 10", "resampled 4 units", "paused"."""
        if self.kind in ("set", "twin", "promote"):
            parts = [f"{SYMBOLS.get(k, k)} {_number(self.before[k]) + ' → ' if k in self.before else ''}{_number(v)}"
                     for k, v in self.changes.items()]
            prefix = {"set": "", "twin": "twin: ", "promote": "twin promoted: "}[self.kind]
            return prefix + (", ".join(parts) or "no change")
        if self.kind == "resample":
            n = len(self.changes.get("units", ()))
            return f"resampled {n} unit{'s' * (n != 1)}"
        if self.kind == "rewind":
            return f"rewound from step {int(self.changes.get('from', 0)):,}"
        if self.kind == "step":
            return f"{int(self.changes.get('n', 1)):,} step(s) requested"
        return {"pause": "paused", "resume": "resumed"}[self.kind]

    def to_dict(self) -> dict[str, Any]:
        return {"step": int(self.step), "kind": self.kind, "changes": dict(self.changes),
                "before": dict(self.before), "time": float(self.time)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Edit":
        """The edit of :meth:`to_dict` (from JSON: a link or the run store); ConfigError if malformed."""
        try:
            changes = dict(d.get("changes") or {})
            edit = cls(step=int(d["step"]), kind=str(d["kind"]), changes=changes, before=dict(d.get("before") or {}),
                       time=float(d.get("time", 0.0)))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"a malformed edit in the schedule: {d!r} ({exc}).") from None
        if edit.kind == "set":
            bad = set(changes) - set(TrainConfig.LIVE_FIELDS) - set(TrainConfig.BUDGET_FIELDS)
            if bad:
                raise ConfigError(f"an edit at step {edit.step} sets {', '.join(sorted(bad))}, which cannot change "
                                  "during training.")
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in changes.values()):
                raise ConfigError(f"an edit at step {edit.step} sets a value that is not a number: {changes!r}.")
        if edit.kind == "resample":
            units = changes.get("units")
            if not isinstance(units, list) or not all(isinstance(u, int) and u >= 0 for u in units):
                raise ConfigError(f"a resample edit at step {edit.step} must list its units as whole numbers.")
        return edit


def schedule_of(edits: Iterable[Edit]) -> list[Edit]:
    """The edits a replay applies (kinds in SCHEDULED_KINDS), in order."""
    return [e for e in edits if e.scheduled]


def parse_schedule(items: Iterable[Mapping[str, Any] | Edit]) -> list[Edit]:
    """Edits from dicts (or Edits), checked and sorted by step (stable); only the scheduled kinds are kept."""
    edits = [item if isinstance(item, Edit) else Edit.from_dict(item) for item in items]
    return sorted(schedule_of(edits), key=lambda e: e.step)


@dataclass(frozen=True)
class Checkpoint:
    """The state of a run before the edits at ``step``: parameter copies (``weights``), the optimiser's state
    tensors (``sae.training.minibatch.MinibatchOptimizer.state_tensors``: moments, random stream, batch order;
    empty for L-BFGS), the settings, and each unit's ``dead_since`` (s,)."""

    step: int
    weights: dict[str, torch.Tensor]
    optimizer: dict[str, torch.Tensor]
    config: TrainConfig
    dead_since: torch.Tensor
    history_rows: int  # rows of the history recorded before this step

    @property
    def nbytes(self) -> int:
        tensors = [*self.weights.values(), *self.optimizer.values(), self.dead_since]
        return sum(t.numel() * t.element_size() for t in tensors)


class Timeline:
    """The edits of a run's current branch and its checkpoints, bounded: checkpoints beyond ``budget`` bytes are
    dropped oldest first (never the one at step 0: a twin from the start needs it), so a mark may outlive its
    checkpoint (:meth:`can_rewind` says). Not thread-safe: the Trainer holds its control lock."""

    def __init__(self, budget: int = CHECKPOINT_BYTES, edits: Iterable[Edit] = (), start: TrainConfig | None = None,
                 start_step: int = 0) -> None:
        self.budget = int(budget)
        self.edits: list[Edit] = list(edits)
        self.start, self.start_step = start, int(start_step)  # the settings the run began with, at this step
        self._checkpoints: dict[int, Checkpoint] = {}
        self.version = 0  # bumped on every change (readers copy when it moved)

    # ------------------------------------------------------------ edits
    def record(self, edit: Edit) -> None:
        self.edits.append(edit)
        if len(self.edits) > MAX_EDITS:  # drop the oldest edit a replay does not need
            for i, old in enumerate(self.edits):
                if not old.scheduled:
                    del self.edits[i]
                    break
        self.version += 1

    def schedule(self) -> list[Edit]:
        return schedule_of(self.edits)

    # ------------------------------------------------------------ checkpoints
    def has_checkpoint(self, step: int) -> bool:
        return step in self._checkpoints

    def checkpoint_steps(self) -> list[int]:
        return sorted(self._checkpoints)

    def keep(self, checkpoint: Checkpoint) -> None:
        """Keep ``checkpoint`` (one per step: the first taken at a step is the state before all its edits)."""
        if checkpoint.step in self._checkpoints:
            return
        self._checkpoints[checkpoint.step] = checkpoint
        while sum(c.nbytes for c in self._checkpoints.values()) > self.budget:
            droppable = [s for s in sorted(self._checkpoints) if s != 0 and s != checkpoint.step]
            if not droppable:
                break
            del self._checkpoints[droppable[0]]
        self.version += 1

    def get(self, step: int) -> Checkpoint:
        if step not in self._checkpoints:
            kept = ", ".join(f"{s:,}" for s in self.checkpoint_steps()) or "none"
            raise ConfigError(f"there is no checkpoint at step {step:,} to rewind to (kept: {kept}); older ones are "
                              "dropped to bound the memory a run uses.")
        return self._checkpoints[step]

    def truncate(self, step: int, rewound_from: int) -> None:
        """The run went back to ``step``: forget the edits at and after it and the checkpoints after it, and
        record the rewind (a new branch starts here)."""
        self.edits = [e for e in self.edits if e.step < step]
        self._checkpoints = {s: c for s, c in self._checkpoints.items() if s <= step}
        self.record(Edit(step, "rewind", {"from": int(rewound_from)}))



@dataclass(frozen=True)
class TimelineView:
    """What readers see of a timeline: the edits (oldest first) and the steps a rewind can go to."""

    edits: tuple[Edit, ...] = ()
    checkpoints: tuple[int, ...] = ()
    version: int = 0
    start: TrainConfig | None = None  # the settings the run began with (a replay starts from them)
    start_step: int = 0  # the step it began at (0: trained from its initial weights; a replay needs that)

    def schedule(self) -> list[Edit]:
        return schedule_of(self.edits)



def timeline_to_dict(view: TimelineView) -> dict[str, Any]:
    """A JSON-safe form of a timeline (the run store keeps it with the run): the settings it began with, the step,
    the edits."""
    return {"start": None if view.start is None else config_to_dict(view.start), "start_step": int(view.start_step),
            "edits": [e.to_dict() for e in view.edits]}


def timeline_from_dict(d: Mapping[str, Any]) -> TimelineView:
    """The TimelineView of :func:`timeline_to_dict` (no checkpoints: they stay in the trainer's memory)."""
    start = d.get("start")
    return TimelineView(tuple(Edit.from_dict(e) for e in d.get("edits", ())), (),
                        start=None if start is None else config_from_dict(TrainConfig, start),
                        start_step=int(d.get("start_step", 0)))


def view_of(timeline: Timeline) -> TimelineView:
    return TimelineView(tuple(timeline.edits), tuple(timeline.checkpoint_steps()), timeline.version, timeline.start,
                        timeline.start_step)


# ------------------------------------------------------------------ the schedule as text (links, the command line)
def schedule_text(edits: Iterable[Edit]) -> str:
    """The scheduled edits as one short line for a link or a shell:
    ``"120:beta=10;300:lr=0.005,rho=0.05;450:resample=3.17;600:rewind=900"`` (step, then what; numbers in
    Python's shortest exact form, so a replay gets the very same values)."""
    parts = []
    for edit in schedule_of(edits):
        if edit.kind == "set":
            what = ",".join(f"{k}={v!r}" for k, v in edit.changes.items())
        elif edit.kind == "resample":
            what = "resample=" + ".".join(str(int(u)) for u in edit.changes.get("units", ()))
        else:
            what = f"rewind={int(edit.changes.get('from', 0))}"
        parts.append(f"{int(edit.step)}:{what}")
    return ";".join(parts)


def parse_schedule_text(text: str) -> list[Edit]:
    """The edits of :func:`schedule_text`; ConfigError naming the part that cannot be read."""
    edits = []
    for part in filter(None, (p.strip() for p in str(text).split(";"))):
        try:
            step_text, what = part.split(":", 1)
            step = int(step_text)
            pairs = [item.split("=", 1) for item in what.split(",")]
            if any(len(pair) != 2 for pair in pairs):
                raise ValueError("expected name=value")
            if pairs[0][0] == "resample":
                units = [int(u) for u in pairs[0][1].split(".") if u != ""]
                edits.append(Edit.from_dict({"step": step, "kind": "resample", "changes": {"units": units}}))
            elif pairs[0][0] == "rewind":
                edits.append(Edit(step, "rewind", {"from": int(pairs[0][1])}))
            else:
                changes = {k.strip(): float(v) if k.strip() not in ("max_iter",) else int(float(v)) for k, v in pairs}
                edits.append(Edit.from_dict({"step": step, "kind": "set", "changes": changes}))
        except (ValueError, ConfigError) as exc:
            raise ConfigError(f"cannot read the edit {part!r} of the schedule ({exc}); expected e.g. "
                              "'120:beta=10;300:lr=0.005,rho=0.05;450:resample=3.17'.") from None
    return sorted(edits, key=lambda e: e.step)


__all__ = ["Edit", "Checkpoint", "Timeline", "TimelineView", "view_of", "schedule_of", "parse_schedule",
           "schedule_text", "parse_schedule_text", "timeline_to_dict", "timeline_from_dict", "EDIT_KINDS",
           "SCHEDULED_KINDS", "CHECKPOINT_BYTES", "SYMBOLS"]
