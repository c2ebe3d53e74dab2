r"""The lessons' checks: pure functions of a :class:`sae.app.run_view.RunView` returning a :class:`CheckResult`
(passed, and a message with the learner's own numbers). No Streamlit.

Each check judges what the run *does* (measured on its evaluation rows, ``sae.app.run_view``) and, where the
lesson is about a change, what its history and timeline show happened (the settings column of every history
row, the "set" edits with their steps). A check that needs training first says how far the run is
(:data:`MIN_STEPS` minibatch steps, :data:`MIN_ITERATIONS` L-BFGS iterations). tests/app/test_lessons.py trains a run
that does what each check asks and one that does not, and checks both answers.

The measures and their thresholds (measured on these data sets; see the tests):

- *on target*: rho/2 <= rho_hat_j <= 2 rho; *dead*: rho_hat_j < rho/10 and never above 0.1 (``sae.evaluation.units``).
- *edge-like filter*: at least :data:`EDGE_SHARE` of the filter's power (its 2-D DFT, mean removed) in one spatial
  frequency and its mirror image (``sae.evaluation.filters.orientation``). Edge filters on whitened 8x8 patches
  score 0.45-0.7, noise ~0.12 and never above 0.3. *Edges*: at least :data:`EDGE_FRACTION` of the filters edge-like
  and their median share at least :data:`EDGE_NOISE_RATIO` times that of the same weights pixel-shuffled.
- *strokes*: the median share of a filter's energy in its best window of a third of the image
  (``sae.evaluation.filters.localization``) at least :data:`STROKE_MARGIN` above the shuffled weights'.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sae.app.run_view import NetView, RunView
from sae.core.loss import kl_divergence
from sae.evaluation.filters import localization, orientation, shuffled
from sae.evaluation.units import DEAD_RATIO, HIGH_RATIO, LOW_RATIO, UnitState

MIN_STEPS = 100  # minibatch steps before a trained state is judged
MIN_ITERATIONS = 20  # L-BFGS iterations before a trained state is judged
EDGE_SHARE = 0.3  # a filter is edge-like with at least this share of its power at one spatial frequency
EDGE_FRACTION = 0.5  # edges: at least this share of the filters edge-like ...
EDGE_NOISE_RATIO = 2.5  # ... and their median share this many times the shuffled weights'
STROKE_MARGIN = 0.1  # strokes: median localization at least this much above the shuffled weights'
MEAN_TOLERANCE = 0.10  # "mean rho_hat within 10% of rho"
UFLDL_TOLERANCE = 0.20  # the exercise's "mean rho_hat near rho"
ON_TARGET_SHARE = 0.9  # "every unit on target": at least this share of the units (36 units: 33)
LIVE_STEPS = 50  # steps the units must have lived at a lower beta before a higher one kills them
HIGH_BETA = 20.0  # "a large beta" for Adam
HIGH_BETA_STEPS = 300  # steps at a large beta before "Adam does not kill units" is judged
TWIN_STEPS = 50  # steps the twin must have trained since its fork


@dataclass(frozen=True)
class CheckResult:
    """A check's answer: ``passed``, and ``message``: what was measured on the learner's run, in numbers."""

    passed: bool
    message: str


def fail(message: str) -> CheckResult:
    return CheckResult(False, message)


def ok(message: str) -> CheckResult:
    return CheckResult(True, message)


# ------------------------------------------------------------------ small readers of a view
def n(x: float, digits: int = 3) -> str:
    """A number for a message: 0.0213, 1.2e-05, 12,345."""
    if x is None or not np.isfinite(x):
        return "NaN" if x is None or np.isnan(x) else ("∞" if x > 0 else "−∞")
    if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e6):
        return f"{x:.{max(1, digits - 1)}e}"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


def steps_needed(view: RunView) -> int:
    return MIN_ITERATIONS if view.optimizer == "lbfgs" else MIN_STEPS


def step_word(view: RunView) -> str:
    return "iterations" if view.optimizer == "lbfgs" else "steps"


def untrained(view: RunView, needed: int | None = None) -> CheckResult | None:
    """A failure if the run has taken fewer than ``needed`` steps (default: :func:`steps_needed`), else None."""
    needed = steps_needed(view) if needed is None else needed
    if view.step < needed:
        return fail(f"Your run is at step {view.step:,}: train it for at least {needed:,} {step_word(view)} first "
                    "(press Train in the sidebar).")
    return None


def not_kl(view: RunView) -> CheckResult | None:
    if not view.run.kl:
        return fail(f"Your run uses the {view.run.penalty.upper()} penalty, which has no target ρ: set “Sparsity "
                    "penalty” to KL in the sidebar.")
    return None


def steps_with(view: RunView, column: str, holds) -> int:
    """How many of the latest steps the history column ``column`` has satisfied ``holds`` (a function of a numpy
    array) without a break, up to now; 0 if its newest row does not satisfy it."""
    values, steps = view.column(column), view.column("step")
    if len(values) == 0:
        return 0
    good = np.asarray(holds(values), dtype=bool)
    if not good[-1]:
        return 0
    bad = np.flatnonzero(~good)
    start = steps[bad[-1] + 1] if len(bad) else steps[0]
    return int(view.step - start)


def on_target(net: NetView) -> int:
    return int((net.units.state == UnitState.ON_TARGET).sum())


def unit_list(values: np.ndarray, k: int = 5) -> str:
    shown = ", ".join(f"unit {j}: {n(v)}" for j, v in enumerate(values[:k]))
    return shown + (", …" if len(values) > k else "")


# ------------------------------------------------------------------ filters
@dataclass(frozen=True)
class FilterShapes:
    """What the filters of a network look like: each filter's orientation share (s,), the shuffled weights'
    median, and the localization medians (filters, shuffled)."""

    shares: np.ndarray
    noise: float
    local: float
    local_noise: float

    @property
    def edge_like(self) -> int:
        return int((self.shares >= EDGE_SHARE).sum())

    @property
    def median(self) -> float:
        return float(np.median(self.shares))

    @property
    def edges(self) -> bool:
        return self.edge_like >= EDGE_FRACTION * len(self.shares) and self.median >= EDGE_NOISE_RATIO * self.noise

    @property
    def strokes(self) -> bool:
        return self.local >= self.local_noise + STROKE_MARGIN

    def edges_text(self) -> str:
        return (f"{self.edge_like} of {len(self.shares)} filters are edge-like (≥ {EDGE_SHARE:.0%} of their power at "
                f"one spatial frequency); their median share is {n(self.median, 2)} against {n(self.noise, 2)} for "
                "the same weights shuffled")


def filter_shapes(net: NetView, image_shape: tuple[int, int]) -> FilterShapes:
    W = net.filters
    noise = shuffled(W)
    return FilterShapes(orientation(W, image_shape), float(np.median(orientation(noise, image_shape))),
                        float(np.median(localization(W, image_shape))),
                        float(np.median(localization(noise, image_shape))))


def wrong_data(view: RunView, wanted: tuple[str, ...] = ("patches",)) -> CheckResult | None:
    """A failure unless the run trains on one of the ``wanted`` data sets (edges need the natural-image patches)."""
    if view.dataset in wanted:
        return None
    names = " or ".join(f"“{w}”" for w in wanted)
    return fail(f"Your run trains on {view.dataset!r}: this step needs {names}; choose it in the sidebar (or press "
                "“Set up this step”).")


def no_images(view: RunView) -> CheckResult | None:
    if view.image_shape is None:
        return fail(f"The data set {view.dataset!r} is not images: filters cannot be edges or strokes.")
    return None


# ------------------------------------------------------------------ UFLDL's exercise
UFLDL = {"dataset": "patches", "n_hidden": 25, "activation": "sigmoid", "penalty": "kl", "rho": 0.01, "beta": 3.0,
         "weight_decay": 1e-4}
UFLDL_NAMES = {"dataset": "data set", "n_hidden": "hidden units", "activation": "activation", "penalty": "penalty",
               "rho": "ρ", "beta": "β", "weight_decay": "λ"}


def ufldl_differences(view: RunView) -> list[str]:
    """What differs in the run from UFLDL's exercise, as "ρ 0.02 (the exercise: 0.01)"."""
    have = {"dataset": view.dataset, "n_hidden": view.run.n_units, "activation": view.run.activation,
            "penalty": view.run.penalty, **{k: view.run.hyper[k] for k in ("rho", "beta", "weight_decay")}}
    return [f"{UFLDL_NAMES[k]} {have[k]:g} (the exercise: {UFLDL[k]:g})" if isinstance(UFLDL[k], float) else
            f"{UFLDL_NAMES[k]} {have[k]} (the exercise: {UFLDL[k]})" for k in UFLDL if have[k] != UFLDL[k]]


def check_ufldl_setup(view: RunView) -> CheckResult:
    wrong = ufldl_differences(view)
    if wrong:
        return fail("Not UFLDL's exercise yet: " + "; ".join(wrong) + ".")
    return ok(f"Your run is UFLDL's exercise: {view.n_samples:,} whitened 8×8 patches, 64 → 25 sigmoid units, "
              f"KL penalty with ρ = 0.01, β = 3, λ = 1e-4 (optimiser: {view.optimizer}).")


def _ufldl_guard(view: RunView) -> CheckResult | None:
    wrong = ufldl_differences(view)
    if wrong:
        return fail("This is not UFLDL's exercise (" + "; ".join(wrong) + "): do step 1 first.")
    return untrained(view)


def check_ufldl_terms(view: RunView) -> CheckResult:
    """J's three terms: trained until the reconstruction is the largest term (at the start the sparsity term is
    almost all of J: every rho_hat_j is near 0.5, far from rho)."""
    guard = _ufldl_guard(view)
    if guard:
        return guard
    t = view.run.terms
    start = view.column("total")
    began = f"At step 0 J was {n(start[0])}; now " if len(start) and view.column("step")[0] == 0 else "Now "
    numbers = (f"J = {n(t['total'])} = {n(t['reconstruction'])} reconstruction + {n(t['weight_decay'])} weight decay "
               f"+ {n(t['sparsity'])} sparsity (on {view.m:,} samples)")
    if t["reconstruction"] >= max(t["sparsity"], t["weight_decay"]):
        return ok(f"{began}{numbers}. The units are sparse, so what is left of J is mostly reconstructing the "
                  "patches.")
    top = "sparsity" if t["sparsity"] >= t["weight_decay"] else "weight decay"
    return fail(f"{began}{numbers}: {top} is still the largest term. Keep training.")


def check_ufldl_rho(view: RunView) -> CheckResult:
    guard = _ufldl_guard(view)
    if guard:
        return guard
    net, rho = view.run, view.run.rho
    mean, count = net.rho_hat_mean, on_target(net)
    text = (f"mean ρ̂ = {n(mean)} against ρ = {rho:g} ({(mean - rho) / rho:+.0%}) on {view.m:,} samples; {count} of "
            f"{net.n_units} units on target (ρ̂ⱼ between {rho * LOW_RATIO:g} and {rho * HIGH_RATIO:g}), ρ̂ⱼ from "
            f"{n(net.rho_hat.min())} to {n(net.rho_hat.max())}")
    if abs(mean - rho) <= UFLDL_TOLERANCE * rho and count == net.n_units:
        return ok(f"Every unit is near its target: {text}.")
    return fail(f"Not yet: {text}. The check wants the mean within {UFLDL_TOLERANCE:.0%} of ρ and every unit on "
                "target.")


def check_ufldl_edges(view: RunView) -> CheckResult:
    guard = _ufldl_guard(view)
    if guard:
        return guard
    return check_edges(view)


# ------------------------------------------------------------------ edges and strokes
def check_edges(view: RunView) -> CheckResult:
    """Edge-like filters on natural image patches."""
    guard = wrong_data(view) or no_images(view) or untrained(view)
    if guard:
        return guard
    shapes = filter_shapes(view.run, view.image_shape)
    if shapes.edges:
        return ok(f"Edges: {shapes.edges_text()}.")
    return fail(f"Not edges yet: {shapes.edges_text()}. The check wants at least {EDGE_FRACTION:.0%} of them "
                f"edge-like and a median {EDGE_NOISE_RATIO:g}× the shuffled one.")


def check_no_sparsity_no_edges(view: RunView) -> CheckResult:
    """With beta = 0 from the start on the patches, the filters are not edges."""
    guard = wrong_data(view)
    if guard:
        return guard
    betas = view.column("beta")
    if view.run.beta != 0 or len(betas) == 0 or np.any(betas != 0):
        shown = ", ".join(f"{b:g}" for b in np.unique(betas)) or f"{view.run.beta:g}"
        return fail(f"β must be 0 from the start of the run; this run has had β = {shown}.")
    needed = 5 * steps_needed(view) if view.optimizer == "lbfgs" else 10 * MIN_STEPS
    guard = untrained(view, needed)
    if guard:
        return guard
    shapes = filter_shapes(view.run, view.image_shape)
    mean = view.run.rho_hat_mean
    if shapes.edges:
        return fail(f"With β = 0 these filters still pass as edges: {shapes.edges_text()}.")
    return ok(f"No edges without sparsity: after {view.step:,} {step_word(view)} at β = 0, {shapes.edges_text()}. "
              f"Every unit fires on about half the patches (mean ρ̂ = {n(mean)}) and codes a blend of them.")


def check_strokes(view: RunView) -> CheckResult:
    guard = wrong_data(view, ("digits", "mnist")) or untrained(view)
    if guard:
        return guard
    shapes = filter_shapes(view.run, view.image_shape)
    text = (f"the median filter holds {n(shapes.local, 2)} of its energy in its best window of a third of the "
            f"image (shuffled weights: {n(shapes.local_noise, 2)}); {shapes.edge_like} of "
            f"{len(shapes.shares)} filters are edge-like")
    if shapes.strokes and not shapes.edges:
        return ok(f"Strokes, not edges: {text}. A digit's parts are local strokes; its filters are not gratings.")
    return fail(f"Not strokes yet: {text}. The check wants the energy at least {STROKE_MARGIN:g} more local than "
                "the shuffled weights'.")


# ------------------------------------------------------------------ what rho_hat_j is
def check_rho_hat_own(view: RunView) -> CheckResult:
    """With beta = 0 for a while, every unit sits at its own rho_hat_j, far from rho."""
    guard = not_kl(view)
    if guard:
        return guard
    if view.run.beta != 0:
        return fail(f"β is {view.run.beta:g} now: set β to 0, so that nothing pulls the units towards ρ.")
    at_zero = steps_with(view, "beta", lambda b: b == 0)
    if at_zero < steps_needed(view):
        return fail(f"β has been 0 for {at_zero:,} {step_word(view)}: train at least {steps_needed(view):,}.")
    net, rho = view.run, view.run.rho
    count = on_target(net)
    text = (f"{unit_list(net.rho_hat)} (from {n(net.rho_hat.min())} to {n(net.rho_hat.max())}, mean "
            f"{n(net.rho_hat_mean)}); {count} of {net.n_units} on target ρ = {rho:g}")
    if count < net.n_units / 2:
        return ok(f"β = 0 for the last {at_zero:,} {step_word(view)}: each unit has its own ρ̂ⱼ, set by the "
                  f"reconstruction alone: {text}.")
    return fail(f"Most units are still on target ({text}): train longer at β = 0.")


def check_rho_hat_pulled(view: RunView) -> CheckResult:
    """Mean rho_hat within 10% of rho, and (nearly) every unit on target: the KL term acts on each rho_hat_j."""
    guard = not_kl(view) or untrained(view)
    if guard:
        return guard
    net, rho = view.run, view.run.rho
    if net.beta == 0:
        return fail("β is 0: nothing pulls the units towards ρ. Raise β (3 is UFLDL's).")
    mean, count = net.rho_hat_mean, on_target(net)
    off = (mean - rho) / rho
    text = (f"mean ρ̂ = {n(mean)} against ρ = {rho:g} ({off:+.1%}) on {view.m:,} samples; {count} of {net.n_units} "
            f"units on target, ρ̂ⱼ from {n(net.rho_hat.min())} to {n(net.rho_hat.max())}")
    near = abs(off) <= MEAN_TOLERANCE
    if near and count >= ON_TARGET_SHARE * net.n_units:
        return ok(f"Within {MEAN_TOLERANCE:.0%}: {text}. The KL term pulled each ρ̂ⱼ, not just their mean.")
    if near:
        return fail(f"The mean is right but the units are not: {text}. The penalty is a sum over units of "
                    "KL(ρ‖ρ̂ⱼ): give it time to bring each one in.")
    return fail(f"Not within {MEAN_TOLERANCE:.0%} yet: {text}.")


# ------------------------------------------------------------------ what beta does
def check_beta_kills(view: RunView) -> CheckResult:
    """The history shows units alive at a lower beta and dying once beta was raised (SGD)."""
    guard = not_kl(view)
    if guard:
        return guard
    net = view.run
    dead_now = len(net.dead)
    betas, dead, steps = view.column("beta"), view.column("dead"), view.column("step")
    if len(dead) == 0 or np.isnan(dead).all():
        return fail("This run's history has no dead-unit count (a run saved by an older version): start a new run.")
    if dead_now == 0:
        extra = (" With Adam that may never happen: it scales each step by the gradient's running size, so a larger "
                 "β does not make larger steps. Use SGD.") if view.optimizer == "adam" else ""
        top = betas.max() if len(betas) else net.beta
        raised = "" if view.sets("beta") else " β has not been changed during this run: raise it while it trains."
        sgd = "" if view.optimizer in ("sgd", "adam") else " This step uses SGD (“Set up this step”)."
        return fail(f"No unit is dead now (β has reached {top:g}, optimiser {view.optimizer}).{raised}{extra}{sgd}")
    alive = np.flatnonzero(np.nan_to_num(dead) < 1)
    if len(alive) == 0:
        return fail("Units were dead from the first recorded step: start at a lower β and raise it.")
    k = alive[-1] + 1  # the first row of the trailing stretch with dead units
    if k >= len(dead):
        return fail(f"{dead_now} units are dead on the data but none on the latest batch: train on.")
    beta_die = betas[k]
    lived = (betas[:k] < beta_die) & (np.nan_to_num(dead[:k]) < 1)
    lived_steps = steps[:k][lived]
    if len(lived_steps) == 0 or lived_steps.max() - steps[0] < LIVE_STEPS:
        return fail(f"{dead_now} of {net.n_units} units are dead, but the run never trained {LIVE_STEPS} steps "
                    f"at a lower β with every unit alive: the units died at β = {beta_die:g}, the β they started "
                    "with. Start lower (β = 3), train a while, then raise β.")
    below = betas[:k][lived].max()
    return ok(f"Every unit lived at β ≤ {below:g} (steps {int(steps[0]):,}–{int(lived_steps.max()):,}); with "
              f"β = {beta_die:g} units began to die at step {int(steps[k]):,}, and now {dead_now} of {net.n_units} "
              f"are dead (ρ̂ⱼ < ρ/10 = {net.rho * DEAD_RATIO:g} and never above 0.1 on {view.m:,} samples). "
              f"Optimiser: {view.optimizer}, learning rate {net.hyper['lr']:g}.")


def check_adam_survives(view: RunView) -> CheckResult:
    guard = not_kl(view)
    if guard:
        return guard
    if view.optimizer != "adam":
        return fail(f"This run uses {view.optimizer}: choose Adam in the sidebar (a new run).")
    net = view.run
    high = steps_with(view, "beta", lambda b: b >= HIGH_BETA)
    if net.beta < HIGH_BETA:
        return fail(f"β is {net.beta:g}: raise it to {HIGH_BETA:g} or more.")
    if high < HIGH_BETA_STEPS:
        return fail(f"β has been ≥ {HIGH_BETA:g} for {high:,} steps: train at least {HIGH_BETA_STEPS}.")
    dead = len(net.dead)
    if dead:
        return fail(f"{dead} of {net.n_units} units are dead: this run does not show it.")
    return ok(f"β = {net.beta:g} for the last {high:,} steps with Adam, and 0 of {net.n_units} units are dead "
              f"(ρ̂ⱼ from {n(net.rho_hat.min())} to {n(net.rho_hat.max())}). Adam divides each parameter's step by "
              "the running size of its gradient: a β ten times larger does not make steps ten times larger.")


# ------------------------------------------------------------------ why KL is asymmetric
def _mirror_costs(net: NetView, units: np.ndarray) -> tuple[float, float]:
    """(beta sum KL(rho||rho_hat_j), the same with each rho_hat_j mirrored to rho^2 / rho_hat_j) over ``units``."""
    r = net.rho_hat[units]
    mirrored = np.clip(net.rho ** 2 / np.maximum(r, 1e-300), 0.0, 1.0)
    pay = net.beta * net.kl_per_unit[units].sum()
    other = net.beta * float(kl_divergence(net.rho, torch.as_tensor(mirrored, dtype=torch.float64)).sum())
    return float(pay), other


def _side_check(view: RunView, above: bool) -> CheckResult:
    guard = not_kl(view) or untrained(view)
    if guard:
        return guard
    net, rho = view.run, view.run.rho
    if net.beta == 0:
        return fail("β is 0: the units pay nothing either way. Set β to 3.")
    units = np.flatnonzero(net.rho_hat >= HIGH_RATIO * rho) if above else \
        np.flatnonzero(net.rho_hat <= LOW_RATIO * rho)
    where = "at least twice as often as" if above else "at most half as often as"
    if len(units) < net.n_units / 2:
        return fail(f"Only {len(units)} of {net.n_units} units fire {where} ρ = {rho:g} (mean ρ̂ = "
                    f"{n(net.rho_hat_mean)}). Pause first, then move ρ {'down' if above else 'up'}: a running "
                    "optimiser brings them back to ρ within a few dozen steps.")
    ratio = float(np.exp(np.mean(np.abs(np.log(np.maximum(net.rho_hat[units], 1e-12) / rho)))))
    pay, other = _mirror_costs(net, units)
    side, mirror = ("above", "below") if above else ("below", "above")
    text = (f"{len(units)} of {net.n_units} units fire {where} ρ = {rho:g} (typically {ratio:.1f}× {side} it). They "
            f"pay β·ΣKL = {n(pay)}; the same units as far {mirror} ρ (ρ̂ⱼ → ρ²/ρ̂ⱼ) would pay {n(other)}")
    if (pay > other) == above:
        factor = pay / other if above else other / pay
        return ok(f"{text}: {factor:.1f}× {'less' if above else 'more'}. Firing too often costs more than firing "
                  "too rarely by the same factor.")
    return fail(f"{text}. With ρ ≥ 0.5 the curve's steep side is on the left: use a small ρ.")


def check_units_above(view: RunView) -> CheckResult:
    return _side_check(view, above=True)


def check_units_below(view: RunView) -> CheckResult:
    return _side_check(view, above=False)


# ------------------------------------------------------------------ what weight decay buys
def check_no_decay(view: RunView) -> CheckResult:
    """lambda = 0 for a while on the patches: the weights grow and the filters are not edges."""
    guard = wrong_data(view)
    if guard:
        return guard
    net = view.run
    if net.weight_decay != 0:
        return fail(f"λ is {net.weight_decay:g} now: set λ to 0.")
    needed = 5 * steps_needed(view) if view.optimizer == "lbfgs" else 10 * MIN_STEPS
    at_zero = steps_with(view, "lambda", lambda v: v == 0)
    if at_zero < needed:
        return fail(f"λ has been 0 for {at_zero:,} {step_word(view)}: train at least {needed:,}.")
    shapes = filter_shapes(net, view.image_shape)
    w1, w2 = net.weight_norms
    text = (f"after {at_zero:,} {step_word(view)} at λ = 0, ‖W₁‖² + ‖W₂‖² = {n(w1)} + {n(w2)} = {n(w1 + w2)} "
            f"(at λ = 1e-4 its decay term would be {n(0.5e-4 * (w1 + w2))}); {shapes.edges_text()}")
    if not shapes.edges:
        return ok(f"No decay, no edges: {text}. The units reach their sparsity with large weights that fit the "
                  "patches' noise.")
    return fail(f"These filters are still edges: {text}. Train longer at λ = 0.")


def _twin_guard(view: RunView, setting: str) -> CheckResult | None:
    if view.twin is None or view.twin_setup is None:
        return fail("Your run has no twin: add one (the button below, or the twin controls).")
    changes, fork = view.twin_setup
    if setting not in changes:
        shown = ", ".join(f"{k} = {v:g}" for k, v in changes.items()) or "nothing"
        return fail(f"Your twin changes {shown}; this step needs a twin that changes {setting}.")
    trained = view.twin.step - fork
    if trained < TWIN_STEPS:
        return fail(f"The twin has trained {trained:,} steps since it forked at step {fork:,}: train at least "
                    f"{TWIN_STEPS}.")
    return None


def check_twin_decay(view: RunView) -> CheckResult:
    guard = wrong_data(view) or _twin_guard(view, "weight_decay")
    if guard:
        return guard
    run, twin = view.run, view.twin
    if run.weight_decay == twin.weight_decay:
        return fail(f"Run and twin both have λ = {run.weight_decay:g}: give the twin another λ.")
    hi, lo = (run, twin) if run.weight_decay > twin.weight_decay else (twin, run)
    name = {id(run): "the run", id(twin): "the twin"}
    hs, ls = filter_shapes(hi, view.image_shape), filter_shapes(lo, view.image_shape)
    text = (f"{name[id(hi)]} (λ = {hi.weight_decay:g}): ‖W‖² = {n(hi.weight_norm2)}, {hs.edge_like} of "
            f"{len(hs.shares)} filters edge-like, reconstruction {n(hi.terms['reconstruction'])}; "
            f"{name[id(lo)]} (λ = {lo.weight_decay:g}): ‖W‖² = {n(lo.weight_norm2)}, {ls.edge_like} edge-like, "
            f"reconstruction {n(lo.terms['reconstruction'])}")
    if hs.edges and not ls.edges and hi.weight_norm2 * 3 <= lo.weight_norm2:
        return ok(f"Same seed, same batches, only λ differs: {text}. Weight decay buys small weights and edge "
                  "filters, for a little reconstruction error.")
    return fail(f"Not shown yet: {text}. The check wants edges only with the larger λ and ‖W‖² at least 3× "
                "smaller there.")


# ------------------------------------------------------------------ the twin: beta = 10 kills units
def check_twin_beta_kills(view: RunView) -> CheckResult:
    guard = not_kl(view) or _twin_guard(view, "beta")
    if guard:
        return guard
    run, twin = view.run, view.twin
    fork = view.twin_setup[1]
    if twin.beta < 10 or twin.beta <= run.beta:
        return fail(f"The twin's β is {twin.beta:g} and the run's {run.beta:g}: give the twin β = 10 (or more), "
                    "above the run's.")
    rd, td = len(run.dead), len(twin.dead)
    text = (f"the run (β = {run.beta:g}) has {rd} dead units of {run.n_units}, its twin (β = {twin.beta:g}) {td}, "
            f"at step {twin.step:,} (forked at step {fork:,}; optimiser {view.optimizer}, learning rate "
            f"{run.hyper['lr']:g})")
    if td > rd:
        return ok(f"Same seed, same batches, only β differs: {text}.")
    why = " The twin forked after the units had settled near ρ: fork from step 0." if fork > 0 else ""
    why += " Adam does not let a large β kill units: use SGD." if view.optimizer == "adam" else ""
    return fail(f"The twin does not show it: {text}.{why}")


def check_twin_lr_saves(view: RunView) -> CheckResult:
    guard = not_kl(view) or _twin_guard(view, "lr")
    if guard:
        return guard
    run, twin = view.run, view.twin
    rd, td = len(run.dead), len(twin.dead)
    text = (f"the run (learning rate {run.hyper['lr']:g}) has {rd} dead units of {run.n_units}, its twin "
            f"(learning rate {twin.hyper['lr']:g}) {td}; both at β = {run.beta:g}")
    if rd == 0:
        return fail(f"No unit of the run is dead ({text}): the run itself must lose units (SGD, β = 10).")
    if twin.hyper["lr"] < run.hyper["lr"] and td < rd:
        return ok(f"Same objective, smaller steps: {text}. The units died of the optimiser's overshoot, not "
                  "because the objective wants them dead.")
    return fail(f"Not shown: {text}. Give the twin a smaller learning rate than the run's.")


# ------------------------------------------------------------------ when the math is wrong (Common mistakes page)
def _mistake(view: RunView, name: str, title: str):
    result = view.mistakes.get(name)
    if result is None or result.wrong is None:
        return None, fail(f"No result for “{title}” in this session yet: open the Common mistakes page, switch it "
                          "on, and let it train (about a second).")
    return result, None


def check_mistake_scalar(view: RunView) -> CheckResult:
    result, missing = _mistake(view, "rho_hat_scalar", "ρ̂ as one scalar for the whole layer")
    if missing:
        return missing
    c, w = result.correct.summary, result.wrong.summary
    text = (f"mean ρ̂ {n(c['rho_hat_mean'])} (correct) vs {n(w['rho_hat_mean'])} (mistake) against ρ = "
            f"{result.rho:g}; the spread of ρ̂ⱼ across units (std) {n(c['rho_hat_std'])} vs {n(w['rho_hat_std'])}; "
            f"dead units {c['dead']:.0f} vs {w['dead']:.0f}, dense {c['dense']:.0f} vs {w['dense']:.0f}")
    if w["rho_hat_std"] >= 5 * c["rho_hat_std"] and w["dead"] + w["dense"] > c["dead"] + c["dense"]:
        return ok(f"{text}. Only the layer's average is held at ρ: single units are always on or never on.")
    return fail(f"The comparison does not show it: {text}. Train it longer (more L-BFGS iterations).")


def check_mistake_every_activation(view: RunView) -> CheckResult:
    result, missing = _mistake(view, "kl_per_activation", "KL on every activation instead of on ρ̂_j")
    if missing:
        return missing
    c, w = result.correct.summary, result.wrong.summary
    text = (f"lifetime sparsity (1 = a unit fires on few samples) {n(c['lifetime_sparsity'])} correct vs "
            f"{n(w['lifetime_sparsity'])} with the mistake; mean ρ̂ {n(c['rho_hat_mean'])} vs {n(w['rho_hat_mean'])}")
    if w["lifetime_sparsity"] <= 0.5 * c["lifetime_sparsity"]:
        return ok(f"{text}. Every activation is pulled to ρ, so no unit is selective.")
    return fail(f"The comparison does not show it: {text}.")


def check_mistake_linear(view: RunView) -> CheckResult:
    result, missing = _mistake(view, "linear_encoder", "Linear encoder under a KL penalty")
    if missing:
        return missing
    w = result.wrong
    negative, above = w.rho_hat_out_of_range()
    if w.diverged:
        return ok(f"Training stopped at once: {w.reason} At the initial weights {negative} of {len(w.rho_hat)} "
                  f"units have ρ̂ⱼ < 0 and {above} have ρ̂ⱼ > 1: log(ρ/ρ̂ⱼ) of a negative ρ̂ⱼ is NaN.")
    return fail(f"The mistaken run did not diverge ({w.status}); {negative} units with ρ̂ⱼ < 0.")


__all__ = ["CheckResult", "FilterShapes", "filter_shapes", "ufldl_differences", "UFLDL", "steps_with", "n",
           "MIN_STEPS", "MIN_ITERATIONS", "EDGE_SHARE", "EDGE_FRACTION", "EDGE_NOISE_RATIO", "STROKE_MARGIN",
           "MEAN_TOLERANCE", "UFLDL_TOLERANCE", "ON_TARGET_SHARE", "LIVE_STEPS", "HIGH_BETA", "HIGH_BETA_STEPS",
           "TWIN_STEPS", "check_ufldl_setup", "check_ufldl_terms", "check_ufldl_rho", "check_ufldl_edges",
           "check_edges", "check_no_sparsity_no_edges", "check_strokes", "check_rho_hat_own", "check_rho_hat_pulled",
           "check_beta_kills", "check_adam_survives", "check_units_above", "check_units_below", "check_no_decay",
           "check_twin_decay", "check_twin_beta_kills", "check_twin_lr_saves", "check_mistake_scalar",
           "check_mistake_every_activation", "check_mistake_linear"]
