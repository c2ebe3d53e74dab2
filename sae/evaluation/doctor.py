"""The doctor: what is going wrong with a run, from its history, in one sentence with the evidence and a fix.

Each rule is a function of a :class:`RunFacts` (the history rows, the last rho_hat (s,), each unit's dead_since (s,),
the TrainConfig in effect, the decoder, the data's range) that returns a :class:`Finding` or None; :func:`diagnose`
runs them all, most serious first. Plain numpy: no torch, no training loop (``sae.app.doctor`` builds the facts
of a live job). The history's columns are those of ``sae.training.snapshot.HISTORY_COLUMNS``.

Trends are judged on a window (:func:`window`): the rows since the last change of rho, beta, lambda or the
learning rate (a live change starts a new experiment) and since the last resampling, of which the last
``RECENT_SHARE``, and only once that
spans ``MIN_STEPS`` steps and ``MIN_ROWS`` rows. :func:`sae.evaluation.health.thirds` compares the median of the
window's first third with that of its last third (a minibatch loss is noisy; medians of thirds are not).

The rules, with s hidden units, b the batch size, J = R + W + P (reconstruction (1/m) sum_i 1/2 ||x_hat_i - x_i||^2,
weight decay (lambda/2)(||W1||^2 + ||W2||^2), beta * penalty):

- ``dying_units``: k >= max(1, DYING_SHARE * s) units have had rho_hat_j below the dead line (rho/10 under KL:
  ``sae.evaluation.health.dead_line``) on every recorded batch for the last DEAD_STEPS steps or more
  (``Snapshot.dead_since``), or every unit is dead now (``sae.evaluation.health.all_units_dead``). A sigmoid unit
  with rho_hat_j -> 0 gets from the KL penalty a gradient of only about -beta * rho on its bias (the factor
  f' = a(1 - a) ~ rho_hat_j cancels the -rho/rho_hat_j of dKL/drho_hat_j), so a unit driven deep below comes back
  slowly if at all (SGD at lr 0.1, beta 10, lambda 1e-4 on the digits: 12 of 25 units still dead after 800 steps;
  with lambda 3e-3 the decay pulls their weights in and they return after ~500): resampling (``Trainer.resample``)
  brings it back at once; lowering beta or raising rho keeps more from dying.
- ``dense_units``: k >= max(1, DENSE_SHARE * s) units with rho_hat_j above max(HIGH_RATIO * rho, DENSE_RHO_HAT)
  (dense: on for more than half the inputs, ``sae.evaluation.units``) and the window's largest rho_hat_j stayed
  above that line: beta is too weak to pull them down.
- ``rho_hat_off_target``: mean_j rho_hat_j outside [LOW_RATIO * rho, HIGH_RATIO * rho] at the end of the window,
  and its distance |log(mean rho_hat / rho)| did not shrink by CLOSING over it: beta too weak for the target.
- ``penalty_dominates``: P is more than PENALTY_SHARE of J while R fell by less than RECON_SLOW over the window:
  beta too high, the penalty's gradient (and, on a minibatch, its noise) drowns the reconstruction's.
- ``decay_dominates``: lambda has shrunk ||W1||^2 + ||W2||^2 (= 2 W / lambda, per row) below SHRUNK of its first
  recorded value while R fell by less than RECON_SLOW over the window: the decay holds the weights near zero. (The
  term W itself is then small: its share of J would not show it.)
- ``loss_unstable`` (Adam, SGD): J climbs (its level, the median of the window's last third, is CLIMB above the
  lowest level since rho, beta or lambda last changed: the objective is the same, so only the steps can have made
  it worse) or oscillates (the median of a block of rows rose by SWING or more over the block before it at least
  twice, the window cut into SWING_BLOCKS blocks): the learning rate is too high.
- ``data_out_of_range``: a sigmoid decoder g outputs (0, 1) and the data leave [0, 1]: the error
  (1/m) sum_i 1/2 ||clip(x_i, 0, 1) - x_i||^2 can never be trained away. A new run with a linear decoder.
- ``batch_too_small`` (Adam, SGD, KL on each batch's rho_hat): a unit on target fires on about b * rho samples of
  a batch; with b * rho < MIN_FIRINGS most batches see it fire on none ((1 - rho)^b > 1/e), so its batch rho_hat_j
  swings between ~0 and several rho and the KL gradient with it. The rule fires when the recorded batch mean
  rho_hat also swings (its interquartile range over the window is above NOISY * rho). The fix: a batch of
  MIN_FIRINGS_FIX / rho or more (a new run: the batch size cannot change live).

A finding that another explains is left out (``EXPLAINED_BY``): mean rho_hat off target when units are dying or
dense; the penalty's share of J when units are dying (the dead units' KL(rho || ~0) is what dominates).

Example:
    >>> facts = RunFacts(trainer.history(), snap.step, snap.rho_hat, snap.dead_since, trainer.config,
    ...                  decoder="sigmoid", data=data_facts(X))
    >>> for finding in diagnose(facts): print(finding.sentence, [fix.label for fix in finding.fixes])
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np

from sae.core.config import TrainConfig
from sae.evaluation.health import MIN_ROWS, PENALTY_SHARE, all_units_dead, dead_line, thirds
from sae.evaluation.units import DENSE_RHO_HAT, HIGH_RATIO, LOW_RATIO

# --- the window trends are judged on
MIN_STEPS = 100  # steps since the last settings change before a trend is judged (the first steps always move fast);
# and at least MIN_ROWS history rows (sae.evaluation.health's, for the same reason: medians of thirds of them)
RECENT_SHARE = 0.5  # the window: the last half of the rows since the last settings change (what the run does now)
SETTING_COLUMNS = ("rho", "beta", "lambda", "lr")  # history columns of the live settings: a change starts a window
OBJECTIVE_COLUMNS = ("rho", "beta", "lambda")  # the settings J depends on (the learning rate does not)

# --- dying units
DEAD_STEPS = 200  # a unit below the dead line on every recorded batch for this many steps is dying (an early dip
# of a healthy run lasts a few dozen steps; a unit knocked out by an overshoot stays out for thousands)
DYING_SHARE = 0.1  # ... reported when at least this share of the units (and at least one) is

# --- dense units, mean rho_hat off target
DENSE_SHARE = 0.1  # dense units reported when at least this share of the units (and at least one) is dense
CLOSING = 0.1  # mean rho_hat off target is still approaching while its log-distance to rho shrinks by this much

# --- the loss terms
RECON_SLOW = 0.1  # "the reconstruction stalls" (under a dominating penalty or decay): it fell by less than this over
# the window (a penalty's noise keeps it crawling; a healthy run's R still falls by a third over the same steps)
SHRUNK = 0.5  # the weights held near zero: ||W||^2 below this share of its value at the start (healthy runs grow
# theirs: UFLDL's objective on the digits, lambda 3e-3, takes it from 70 to ~360; lambda 0.03 brings it to ~1)

# --- the learning rate
CLIMB = 0.2  # J climbing: its level this much above its best (a plateau's levels wander by ~10% on patches)
SWING = 0.3  # J oscillating: the median of a block of rows rising by this much over the block before it, twice or
SWING_BLOCKS = 12  # more, the window cut into this many blocks ...
SWING_ROWS = 8  # ... of at least this many rows (a median of 8 minibatch losses moves a few percent, not 30)

# --- the batch
MIN_FIRINGS = 1.0  # b * rho below this: a unit on target fires on no sample of most batches
MIN_FIRINGS_FIX = 5.0  # the batch the fix asks for: b * rho >= this (a unit on target fires on ~5 samples a batch)
NOISY = 0.15  # ... and the batch mean rho_hat's interquartile range over the window is above this share of rho
# (healthy runs at b * rho >= 2.5: under 0.1)

SEVERE, HARMFUL, NOTICE = 3, 2, 1  # Finding.severity: the run learns nothing / part of it is wasted / off target


@dataclass(frozen=True)
class DataFacts:
    """What the doctor needs of the training data X (m, n): its range, the share of values outside [0, 1], the
    error a sigmoid decoder can never train away, (1/m) sum_i 1/2 ||clip(x_i, 0, 1) - x_i||^2, and the error of
    outputting the mean input, (1/m) sum_i 1/2 ||x_bar - x_i||^2 (what a model that learned nothing makes)."""

    low: float = 0.0
    high: float = 1.0
    outside: float = 0.0
    clip_floor: float = 0.0
    mean_error: float = 0.0


def data_facts(X) -> DataFacts:
    """:class:`DataFacts` of X (m, n), numpy or anything np.asarray takes (read in its own dtype, not copied)."""
    X = np.asarray(X)
    if X.size == 0:
        return DataFacts()
    m = X.shape[0]
    low, high = float(X.min()), float(X.max())
    mean_error = float(0.5 * X.var(axis=0, dtype=np.float64).sum())  # (1/m) sum_i 1/2 ||x_i - x_bar||^2
    if low >= 0 and high <= 1:
        return DataFacts(low, high, 0.0, 0.0, mean_error)
    gap = X - np.clip(X, 0, 1)
    return DataFacts(low, high, float(np.count_nonzero(gap) / X.size),
                     float(0.5 * np.square(gap, dtype=np.float64).sum() / m), mean_error)


@dataclass(frozen=True)
class RunFacts:
    """Everything a rule reads: a run's history and last state, as plain values.

    Attributes:
        history: column -> (rows,) arrays in step order (``sae.training.snapshot.HISTORY_COLUMNS``; "dead" may be
            missing or NaN in an old saved history).
        step: optimiser steps taken.
        rho_hat: (s,) each unit's mean activation on the last step's batch (NaN before any step).
        dead_since: (s,) the first step of each unit's current stretch below the dead line, -1 if above it now;
            empty when unknown (the history's "dead" column is used instead).
        config: the TrainConfig in effect (rho, beta, weight_decay, lr, penalty, optimizer, batch_size, rho_hat).
        decoder: the output activation g actually used ("sigmoid" or "linear").
        activation: the hidden activation f.
        data: the training data's :class:`DataFacts`.
        batch_size: samples per step (the config's, capped at the data size; all of them for L-BFGS).
        resampled: the steps at which units were resampled (``Trainer.timeline_view``'s "resample" edits): the
            run changed there in a way no history column shows, so trends are judged from the last one on.
    """

    history: Mapping[str, np.ndarray]
    step: int
    rho_hat: np.ndarray
    dead_since: np.ndarray
    config: TrainConfig
    decoder: str = "sigmoid"
    activation: str = "sigmoid"
    data: DataFacts = field(default_factory=DataFacts)
    batch_size: int | None = None
    resampled: tuple[int, ...] = ()

    @property
    def units(self) -> int:
        return int(np.asarray(self.rho_hat).size)

    @property
    def kl(self) -> bool:
        """Whether the run has a KL target rho (the rules about rho need one; KL is refused with ReLU units)."""
        return self.config.penalty == "kl"

    @property
    def minibatch(self) -> bool:
        return self.config.optimizer != "lbfgs"

    def column(self, name: str) -> np.ndarray:
        """A history column as float64 (rows,): NaN where the history lacks it."""
        n = len(self.history.get("step", ()))
        values = self.history.get(name)
        return np.full(n, np.nan) if values is None else np.asarray(values, dtype=np.float64)


@dataclass(frozen=True)
class Evidence:
    """The small chart behind a finding: y (rows,) over x (rows,) steps, and a line to compare with."""

    x: np.ndarray
    y: np.ndarray
    label: str  # what y is ("dead units", "mean ρ̂", ...)
    reference: float | None = None  # a level to compare with (ρ, the share 0.5, ...)
    reference_label: str = ""
    log_y: bool = False
    percent: bool = False  # y is a share: show it as a percentage


@dataclass(frozen=True)
class Fix:
    """One click that treats a finding.

    Attributes:
        label: the button's text ("Lower β 10 → 3").
        changes: live settings to apply now (rho, beta, weight_decay, lr), or None.
        resample: re-initialise the dead units (``Trainer.resample``).
        restart: settings a new run needs (batch_size, decoder_activation), or None: they cannot change live.
    """

    label: str
    changes: dict[str, float] | None = None
    resample: bool = False
    restart: dict[str, object] | None = None


@dataclass(frozen=True)
class Finding:
    """What a rule found: ``sentence`` says what is wrong with the numbers; ``headline``: the same in a few words
    (the compact line on every page); ``evidence``: its chart; ``fixes``: the one-click treatments, best first."""

    rule: str
    sentence: str
    headline: str
    evidence: Evidence
    fixes: tuple[Fix, ...] = ()
    severity: int = NOTICE  # SEVERE, HARMFUL or NOTICE


# ------------------------------------------------------------------------------------- helpers

def settled(facts: RunFacts, columns: tuple[str, ...] = SETTING_COLUMNS) -> np.ndarray:
    """Indices of the history rows since the last change of any of ``columns`` (settings in effect at each row) and
    since the last resampling."""
    steps = facts.column("step")
    n = len(steps)
    start = int(np.searchsorted(steps, max(facts.resampled), side="left")) if facts.resampled else 0
    for name in columns:
        v = facts.column(name)
        if n > 1 and np.isfinite(v).all():
            changed = np.flatnonzero(v[1:] != v[:-1])
            if changed.size:
                start = max(start, int(changed[-1]) + 1)
    return np.arange(start, n)


def window(facts: RunFacts) -> np.ndarray | None:
    """Indices of the rows a trend is judged on (see the module docstring), or None while there are too few."""
    rows = settled(facts)
    steps = facts.column("step")
    if len(rows) < MIN_ROWS or steps[rows[-1]] - steps[rows[0]] < MIN_STEPS:
        return None
    return rows[-max(MIN_ROWS, int(math.ceil(RECENT_SHARE * len(rows)))):]


def nice(x: float) -> float:
    """The number of the series 1, 2, 3, 5 x 10^k nearest to x > 0 on a log scale (what a person would type)."""
    if not x > 0:
        return 0.0
    k = math.floor(math.log10(x))
    candidates = [m * 10.0 ** e for e in (k - 1, k, k + 1) for m in (1, 2, 3, 5)]
    return float(f"{min(candidates, key=lambda c: abs(math.log(c / x))):.3g}")


def _evidence(facts: RunFacts, y: np.ndarray, label: str, **kw) -> Evidence:
    return Evidence(facts.column("step"), np.asarray(y, dtype=np.float64), label, **kw)


def _share(facts: RunFacts, term: str) -> np.ndarray:
    """A loss term's share of J per row."""
    total = facts.column("total")
    return facts.column(term) / np.where(total > 0, total, np.nan)


def _span(facts: RunFacts, rows: np.ndarray) -> int:
    """Steps from the first of ``rows`` to the last step taken."""
    return int(facts.step - facts.column("step")[rows[0]])


def _n(k: int, s: int) -> str:
    return f"all {s}" if k == s else f"{k} of {s}"


def _scaled(name: str, symbol: str, value: float, factor: float) -> Fix:
    """A live fix: setting ``name`` (shown as ``symbol``) from ``value`` to about ``value * factor`` (:func:`nice`)."""
    new = nice(value * factor)
    return Fix(f"{'Raise' if factor > 1 else 'Lower'} {symbol} {value:g} → {new:g}", changes={name: new})


def _raise_beta(beta: float) -> Fix:
    """beta times 3 (from 0: to 1)."""
    return _scaled("beta", "β", beta, 3.0) if beta > 0 else Fix("Raise β 0 → 1", changes={"beta": 1.0})


# ------------------------------------------------------------------------------------- the rules

def dying_units(facts: RunFacts) -> Finding | None:
    """Units below the dead line for DEAD_STEPS steps or more, or all units dead now (see the module docstring)."""
    s, cfg = facts.units, facts.config
    rho = cfg.rho if facts.kl else None
    line = dead_line(rho)
    all_dead = facts.step > 0 and all_units_dead(facts.rho_hat, rho)
    since = np.asarray(facts.dead_since, dtype=np.int64)
    if since.size == s and s:
        lasting = (since >= 0) & (facts.step - since >= DEAD_STEPS)
        if all_dead:
            lasting = since >= 0
        k = int(lasting.sum())
        for_steps = int(facts.step - since[lasting].max()) if k else 0  # the shortest stretch among them
    else:  # no per-unit record: the fewest dead units on any recorded batch of the last DEAD_STEPS steps
        steps, dead = facts.column("step"), facts.column("dead")
        recent = steps >= facts.step - DEAD_STEPS
        covered = len(steps) and steps[0] <= facts.step - DEAD_STEPS and np.isfinite(dead[recent]).all()
        k, for_steps = (int(dead[recent].min()), DEAD_STEPS) if covered else (0, 0)
    if all_dead and k < s:
        k, for_steps = s, 0
    if k < max(1, math.ceil(DYING_SHARE * s)):
        return None
    limit = f"ρ̂ⱼ < ρ/10 = {line:g}" if rho is not None else f"ρ̂ⱼ < {line:g}"
    how_long = f"for the last {for_steps:,} steps or more" if for_steps else "on the last batch"
    sentence = (f"{_n(k, s)} units {'have' if k > 1 else 'has'} been dead ({limit}) {how_long}: "
                f"{'they carry' if k > 1 else 'it carries'} nothing, and a unit this far down comes back slowly if "
                f"at all. Resample {'them' if k > 1 else 'it'}; " +
                ("lowering β or raising ρ keeps more from dying." if rho is not None else
                 "lowering β keeps more from dying."))
    fixes = [Fix(f"Resample the {'dead units' if k > 1 else 'dead unit'}", resample=True)]
    if cfg.beta > 0:
        fixes.append(_scaled("beta", "β", cfg.beta, 1 / 3))
    if rho is not None and 2 * rho < 1:
        fixes.append(_scaled("rho", "ρ", rho, 2.0))
    evidence = _evidence(facts, facts.column("dead"), "dead units",
                         reference=float(s), reference_label=f"all {s} units")
    return Finding("dying_units", sentence, f"{_n(k, s)} units dead", evidence, tuple(fixes),
                   SEVERE if k == s else HARMFUL)


def dense_units(facts: RunFacts) -> Finding | None:
    """Units on more than half the time (rho_hat_j > max(2 rho, 0.5)), and staying so over the window."""
    rows = window(facts)
    if not facts.kl or rows is None:
        return None
    cfg, s = facts.config, facts.units
    line = max(HIGH_RATIO * cfg.rho, DENSE_RHO_HAT)
    rho_hat = np.asarray(facts.rho_hat, dtype=np.float64)
    k = int((rho_hat > line).sum())
    top = facts.column("rho_hat_max")
    if k < max(1, math.ceil(DENSE_SHARE * s)) or not thirds(top[rows])[1] > line:
        return None
    sentence = (f"{_n(k, s)} units are dense (ρ̂ⱼ > {line:g}, on for more than half the inputs, the largest "
                f"{rho_hat.max():.2f} against ρ = {cfg.rho:g}) and have stayed so for the last "
                f"{_span(facts, rows):,} steps: a unit on for nearly every input "
                f"carries little; β = {cfg.beta:g} is too weak to pull it down.")
    evidence = _evidence(facts, top, "largest ρ̂ⱼ", reference=line, reference_label=f"dense above {line:g}")
    return Finding("dense_units", sentence, f"{_n(k, s)} units dense", evidence, (_raise_beta(cfg.beta),), NOTICE)


def rho_hat_off_target(facts: RunFacts) -> Finding | None:
    """mean rho_hat stays outside [rho/2, 2 rho] and does not get closer (log-distance) over the window."""
    rows = window(facts)
    if not facts.kl or rows is None:
        return None
    cfg = facts.config
    mean = facts.column("rho_hat_mean")[rows]
    if not (np.isfinite(mean).all() and (mean > 0).all()):
        return None
    gap = np.abs(np.log(mean / cfg.rho))
    first, last = thirds(gap)
    if last < (1 - CLOSING) * first:
        return None  # still approaching
    now = float(np.median(mean[-max(1, len(mean) // 3):]))
    if LOW_RATIO * cfg.rho <= now <= HIGH_RATIO * cfg.rho:
        return None
    side = "above" if now > cfg.rho else "below"
    sentence = (f"The mean ρ̂ has stayed at {now:.3g}, {now / cfg.rho:.2g}× the target ρ = {cfg.rho:g} ({side} it), "
                f"over the last {_span(facts, rows):,} steps without getting closer: "
                f"β = {cfg.beta:g} is too weak to pull the units to ρ.")
    evidence = _evidence(facts, facts.column("rho_hat_mean"), "mean ρ̂", reference=cfg.rho,
                         reference_label=f"target ρ = {cfg.rho:g}", log_y=True)
    return Finding("rho_hat_off_target", sentence, f"mean ρ̂ {now / cfg.rho:.2g}× ρ", evidence,
                   (_raise_beta(cfg.beta),), NOTICE)


def _levels(values: np.ndarray, size: int) -> np.ndarray:
    """Medians of consecutive blocks of ``size`` rows of ``values``, the last block ending at the last row."""
    k = len(values) // size
    return np.median(values[len(values) - k * size:].reshape(k, size), axis=1)


def penalty_dominates(facts: RunFacts) -> Finding | None:
    """beta * penalty more than PENALTY_SHARE of J while the reconstruction fell by less than RECON_SLOW over the
    window: beta too high."""
    rows = window(facts)
    cfg = facts.config
    if cfg.penalty == "topk" or rows is None:
        return None
    share = thirds(_share(facts, "sparsity")[rows])[1]
    first, last = thirds(facts.column("reconstruction")[rows])
    if not (share > PENALTY_SHARE and first > 0 and last > (1 - RECON_SLOW) * first):
        return None
    name = "β·KL" if cfg.penalty == "kl" else "β·L1"
    fell = f"fell only {1 - last / first:.0%}" if last < first else "did not fall"
    sentence = (f"{name} is {share:.0%} of J while the reconstruction error {fell} over the last "
                f"{_span(facts, rows):,} steps ({first:.3g} → {last:.3g}): β = {cfg.beta:g} is too high, the "
                "penalty's gradient drowns the reconstruction's.")
    evidence = _evidence(facts, _share(facts, "sparsity"), f"{name} share of J", reference=PENALTY_SHARE,
                         reference_label=f"{PENALTY_SHARE:.0%}", percent=True)
    fixes = (_scaled("beta", "β", cfg.beta, 1 / 3),) if cfg.beta > 0 else ()
    return Finding("penalty_dominates", sentence, f"{name} {share:.0%} of J", evidence, fixes, HARMFUL)


def decay_dominates(facts: RunFacts) -> Finding | None:
    """lambda has shrunk ||W1||^2 + ||W2||^2 (= 2 * weight_decay / lambda per row) below SHRUNK of its first recorded
    value while the reconstruction fell by less than RECON_SLOW over the window: lambda holds the weights near zero."""
    rows = window(facts)
    cfg = facts.config
    if rows is None or not cfg.weight_decay > 0:
        return None
    lam = facts.column("lambda")
    norm = 2 * facts.column("weight_decay") / np.where(lam > 0, lam, np.nan)  # ||W1||^2 + ||W2||^2 per row
    start, now = norm[0], thirds(norm[rows])[1]
    first, last = thirds(facts.column("reconstruction")[rows])
    if not (now < SHRUNK * start and first > 0 and last > (1 - RECON_SLOW) * first):
        return None
    gives = f", {last / facts.data.mean_error:.0%} of what outputting the mean input gives" \
        if facts.data.mean_error > 0 else ""
    sentence = (f"λ = {cfg.weight_decay:g} has shrunk the weights to {now / start:.0%} of their size at the start "
                f"(‖W₁‖² + ‖W₂‖² {start:.3g} → {now:.3g}) and the reconstruction error has stopped falling at "
                f"{last:.3g}{gives}: the weight decay holds the weights near zero.")
    evidence = _evidence(facts, norm, "‖W₁‖² + ‖W₂‖²", reference=float(start),
                         reference_label=f"at the start: {start:.3g}", log_y=True)
    fixes = (_scaled("weight_decay", "λ", cfg.weight_decay, 0.1),)
    return Finding("decay_dominates", sentence, f"λ holds the weights at {now / start:.0%}", evidence, fixes,
                   HARMFUL)


def loss_unstable(facts: RunFacts) -> Finding | None:
    """Under Adam or SGD, J climbing (its level now CLIMB above its best since rho, beta or lambda last changed: the
    objective is the same, only the optimiser can have made it worse) or oscillating (block medians of J rising by
    SWING or more at least twice in the window, see the module docstring): the learning rate is too high."""
    rows = window(facts)
    if not facts.minibatch or rows is None:
        return None
    cfg = facts.config
    total = facts.column("total")
    same = settled(facts, OBJECTIVE_COLUMNS)
    size = max(1, len(rows) // 3)  # a level: the median of as many rows as the window's last third
    levels, recent = _levels(total[same], size), _levels(total[rows], max(SWING_ROWS, len(rows) // SWING_BLOCKS))
    if not (np.isfinite(levels).all() and (levels > 0).all()):
        return None
    best, now = float(levels.min()), float(levels[-1])
    rises = int((recent[1:] > (1 + SWING) * recent[:-1]).sum())
    if now > (1 + CLIMB) * best:
        at = int(facts.column("step")[same][len(total[same]) - len(levels) * size + int(levels.argmin()) * size])
        what, headline = f"J has climbed to {now:.3g}, {now / best:.2g}× its best level ({best:.3g}, from step {at:,})", \
            "J climbing"
    elif rises >= 2:
        what, headline = (f"J keeps jumping: its level rose by more than {SWING:.0%} {rises} times over the last "
                          f"{_span(facts, rows):,} steps (between {recent.min():.3g} and {recent.max():.3g})"), \
            "J oscillating"
    else:
        return None
    sentence = f"{what}: the learning rate {cfg.lr:g} is too high for {cfg.optimizer}."
    evidence = _evidence(facts, total, "J (each recorded batch)", reference=best,
                         reference_label=f"best level {best:.3g}", log_y=True)
    return Finding("loss_unstable", sentence, headline, evidence, (_scaled("lr", "the learning rate", cfg.lr, 0.1),),
                   SEVERE)


def data_out_of_range(facts: RunFacts) -> Finding | None:
    """A sigmoid decoder on data outside [0, 1]: part of the error can never be trained away."""
    d = facts.data
    if facts.decoder != "sigmoid" or not d.outside:
        return None
    sentence = (f"The data run from {d.low:.3g} to {d.high:.3g} but a sigmoid decoder only outputs values in "
                f"(0, 1): {d.outside:.0%} of the values are out of its reach, so the reconstruction error can "
                f"never fall below {d.clip_floor:.3g}. Train a new run with a linear decoder (or scale the data "
                "into [0, 1]).")
    evidence = _evidence(facts, facts.column("reconstruction"), "reconstruction error",
                         reference=d.clip_floor, reference_label=f"out of reach: {d.clip_floor:.3g}", log_y=True)
    return Finding("data_out_of_range", sentence, "data outside the decoder's (0, 1)", evidence,
                   (Fix("New run with a linear decoder", restart={"decoder_activation": "linear"}),), SEVERE)


def batch_too_small(facts: RunFacts) -> Finding | None:
    """b * rho < MIN_FIRINGS and the batch mean rho_hat swings: too few samples a batch to estimate rho_hat."""
    cfg = facts.config
    b = facts.batch_size or cfg.batch_size
    if not (facts.kl and facts.minibatch and cfg.rho_hat == "batch") or b * cfg.rho >= MIN_FIRINGS:
        return None
    rows = window(facts)
    if rows is None:
        return None
    mean = facts.column("rho_hat_mean")[rows]
    spread = float(np.subtract(*np.percentile(mean, [75, 25])))
    if not spread > NOISY * cfg.rho:
        return None
    want = int(2 ** math.ceil(math.log2(MIN_FIRINGS_FIX / cfg.rho)))
    sentence = (f"A batch of {b} at ρ = {cfg.rho:g} holds {b * cfg.rho:.2g} firings of a unit on target: most "
                f"batches see it fire on none ({(1 - cfg.rho) ** b:.0%} of them), so each batch's ρ̂ⱼ swings between "
                f"0 and {1 / b:.3g} and the KL gradient with it (the mean ρ̂ moves by {spread / cfg.rho:.0%} of ρ "
                f"from batch to batch). A batch of {want} or more gives a stable ρ̂ⱼ.")
    evidence = _evidence(facts, facts.column("rho_hat_mean"), "mean ρ̂ (each recorded batch)",
                         reference=cfg.rho, reference_label=f"target ρ = {cfg.rho:g}")
    return Finding("batch_too_small", sentence, f"batch {b} too small for ρ = {cfg.rho:g}", evidence,
                   (Fix(f"New run with batch {want}", restart={"batch_size": want}),), NOTICE)


RULES: tuple[Callable[[RunFacts], Finding | None], ...] = (
    data_out_of_range, dying_units, loss_unstable, penalty_dominates, decay_dominates, dense_units,
    rho_hat_off_target, batch_too_small)
EXPLAINED_BY = {"rho_hat_off_target": ("dying_units", "dense_units"), "penalty_dominates": ("dying_units",)}


def diagnose(facts: RunFacts) -> list[Finding]:
    """Every rule's finding, most serious first (severity, then RULES order), less those another explains."""
    found = [f for f in (rule(facts) for rule in RULES) if f is not None]
    names = {f.rule for f in found}
    found = [f for f in found if not names & set(EXPLAINED_BY.get(f.rule, ()))]
    return sorted(found, key=lambda f: -f.severity)  # stable: RULES order within a severity


__all__ = ["RunFacts", "DataFacts", "Evidence", "Fix", "Finding", "data_facts", "diagnose", "window", "settled",
           "dying_units", "dense_units", "rho_hat_off_target", "penalty_dominates", "decay_dominates",
           "loss_unstable", "data_out_of_range", "batch_too_small", "RULES", "EXPLAINED_BY", "MIN_STEPS",
           "RECENT_SHARE", "DEAD_STEPS", "DYING_SHARE", "DENSE_SHARE", "CLOSING", "DECAY_SHARE",
           "CLIMB", "SWING", "SWING_BLOCKS", "SWING_ROWS", "RECON_SLOW", "SHRUNK", "SETTING_COLUMNS", "OBJECTIVE_COLUMNS", "nice", "MIN_FIRINGS", "MIN_FIRINGS_FIX", "NOISY", "SEVERE", "HARMFUL", "NOTICE"]
