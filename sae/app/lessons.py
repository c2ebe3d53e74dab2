"""The Lessons page's lessons: :class:`Lesson` (id, title, an introduction, steps) and :class:`Step` (what to do in
the live app, the check that reads the learner's own run, a hint for after a wrong try, the formula with the run's
numbers, suggested settings). No Streamlit.

Every check is a pure function of a :class:`sae.app.run_view.RunView` returning a
:class:`sae.app.lesson_checks.CheckResult` (``sae.app.lesson_checks``); every formula a function of the view and a
unit j returning LaTeX lines (``sae.app.lesson_formulas``). Ids are stable: progress is stored under
``(lesson.id, step.id)`` (``sae.app.lesson_progress``).

    >>> from sae.app.lessons import LESSONS, lesson
    >>> step = lesson("ufldl").steps[0]
    >>> step.check(RunView.from_job(job)).passed
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from sae.app import lesson_formulas as f
from sae.app.lesson_checks import (CheckResult, check_adam_survives, check_beta_kills, check_edges,
                                   check_mistake_every_activation, check_mistake_linear, check_mistake_scalar,
                                   check_no_decay, check_no_sparsity_no_edges, check_rho_hat_own,
                                   check_rho_hat_pulled, check_strokes, check_twin_beta_kills, check_twin_decay,
                                   check_twin_lr_saves, check_ufldl_edges, check_ufldl_rho, check_ufldl_setup,
                                   check_ufldl_terms, check_units_above, check_units_below)
from sae.app.run_view import RunView
from sae.evaluation.filters import localization, orientation

FILTERS_PAGE = ("pages/2_filters.py", "Filters")
KL_PAGE = ("pages/1_kl_penalty.py", "KL penalty")
TRAIN_PAGE = ("dashboard.py", "Train")
MISTAKES_PAGE = ("pages/9_common_mistakes.py", "Common mistakes")
ACTIVATIONS_PAGE = ("pages/3_activations.py", "Activations")


@dataclass(frozen=True)
class Step:
    """One thing to do in the live app, and its check.

    Attributes:
        id: stable within its lesson (progress is stored under it).
        title: a few words.
        instruction: what to do and what to watch (Markdown).
        check: RunView -> CheckResult, a pure function of the run.
        hint: shown after a wrong try.
        formula: (RunView, unit j) -> LaTeX lines with the run's numbers.
        focus: RunView -> the unit the formula shows first (default 0).
        setup: suggested settings (``sae.app.settings.Settings`` fields) for "Set up this step": with a
            ``dataset``, that set's defaults and these; without, the current settings and these.
        pause_first: the setup pauses a running run first (the change must meet the units where they are).
        twin: the settings a twin from step 0 changes ("Add the twin"), or None.
        mistake: the Common mistakes page's mistake to switch on, or None.
        links: pages to look at, (script, label).
    """

    id: str
    title: str
    instruction: str
    check: Callable[[RunView], CheckResult]
    hint: str
    formula: Callable[[RunView, int], list[str]]
    focus: Callable[[RunView], int] = lambda view: 0
    setup: Mapping[str, Any] = field(default_factory=dict)
    pause_first: bool = False
    twin: Mapping[str, float] | None = None
    mistake: str | None = None
    links: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Lesson:
    """A short lesson: ``intro`` (Markdown: what it teaches and why) and its :class:`Step` list."""

    id: str
    title: str
    intro: str
    steps: tuple[Step, ...]

    def step(self, step_id: str) -> Step:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(f"lesson {self.id!r} has no step {step_id!r}")


# ------------------------------------------------------------------ which unit a formula shows first
def farthest(view: RunView) -> int:
    """The unit whose rho_hat_j is farthest from rho, as a ratio."""
    r = np.maximum(view.run.rho_hat, 1e-12)
    return int(np.argmax(np.abs(np.log(r / view.run.rho))))


def most_penalised(view: RunView) -> int:
    return int(np.argmax(view.run.kl_per_unit))


def dead_or_lowest(view: RunView) -> int:
    dead = view.run.dead
    return int(dead[0]) if len(dead) else int(np.argmin(view.run.rho_hat))


def most_edge_like(view: RunView) -> int:
    return 0 if view.image_shape is None else int(np.argmax(orientation(view.run.filters, view.image_shape)))


def most_local(view: RunView) -> int:
    return 0 if view.image_shape is None else int(np.argmax(localization(view.run.filters, view.image_shape)))


# ------------------------------------------------------------------ the lessons
UFLDL_SETUP = {"dataset": "patches", "n_hidden": 25, "activation": "sigmoid", "penalty": "kl", "rho": 0.01,
               "beta": 3.0, "weight_decay": 1e-4, "optimizer": "lbfgs", "max_iter": 400}
DIGITS_SGD = {"dataset": "digits", "n_hidden": 25, "optimizer": "sgd", "lr": 0.1, "beta": 3.0}

LESSONS: tuple[Lesson, ...] = (
    Lesson("ufldl", "UFLDL's sparse-autoencoder exercise",
           "Andrew Ng's CS294A / UFLDL exercise: learn 25 features from 10,000 patches (8×8 pixels) of whitened "
           "natural images with a sparse autoencoder: 64 inputs → 25 sigmoid units → 64 outputs, target activation "
           "ρ = 0.01, sparsity weight β = 3, weight decay λ = 1e-4, minimised by L-BFGS (UFLDL's minFunc) for 400 "
           "iterations. What comes out is UFLDL's famous figure: edge detectors at every position and orientation, "
           "like the receptive fields of simple cells in the visual cortex. Four steps: set it up, train and read "
           "J's three terms, check that every unit fires about 1% of the time, look at the filters.",
           (Step("setup", "Set up the exercise",
                 "In the sidebar choose the **patches**, **25** hidden units, **sigmoid**, the **KL** penalty, "
                 "**ρ = 0.01**, **β = 3**, **λ = 1e-4**, and **lbfgs** with **400** iterations, or press **Set up "
                 "this step**. (The Lab's own default for the patches is Adam, which can be tuned while it runs; "
                 "L-BFGS is what UFLDL used: the whole data set each iteration, with a line search.)",
                 check_ufldl_setup,
                 "The check lists each setting that differs from the exercise. “Set up this step” sets them all; "
                 "the optimiser is free.",
                 f.objective, setup=UFLDL_SETUP),
            Step("terms", "Train, and read J's three terms",
                 "Press **Train** and watch the Train page's loss chart. At step 0 every unit fires on about half the "
                 "patches (ρ̂ⱼ ≈ 0.5 against ρ = 0.01), so the sparsity term β·Σⱼ KL(ρ‖ρ̂ⱼ) is about 48 of J's 50. "
                 "Train until the **reconstruction term is the largest** of the three: the units have become sparse "
                 "and what J still measures is mostly how well the patches come back.",
                 check_ufldl_terms,
                 "L-BFGS gets there within a few dozen iterations, Adam within a few hundred steps. On the Train page "
                 "the red sparsity curve drops under the blue reconstruction curve.",
                 f.objective, links=(TRAIN_PAGE,)),
            Step("rho", "Every unit near ρ",
                 "Each unit should now fire about ρ = 1% of the time. The check measures each ρ̂ⱼ on the data and "
                 "wants the mean ρ̂ within 20% of ρ **and every unit on target** (ρ̂ⱼ between ρ/2 and 2ρ). On the KL "
                 "penalty page each orange point is one unit, sitting in the curve's valley.",
                 check_ufldl_rho,
                 "Train longer: the KL curve is flat near its minimum, so the last stretch towards ρ is slow. A "
                 "little more β (5) holds the units closer; it applies live.",
                 f.kl_sum, focus=most_penalised, links=(KL_PAGE,)),
            Step("edges", "Get edge-like filters",
                 "Open the **Filters** page: each tile is one unit's row of W₁, the input pattern that drives it "
                 "most. The check reads each filter's 2-D spectrum: an edge is a small grating, with most of its "
                 "power at one spatial frequency and orientation; noise spreads its power everywhere.",
                 check_ufldl_edges,
                 "UFLDL's 400 L-BFGS iterations give clear edges; 100 are often enough. With Adam train a few "
                 "thousand steps.",
                 f.orientation_share, focus=most_edge_like, links=(FILTERS_PAGE,)))),

    Lesson("rho_hat", "What ρ̂ⱼ is",
           "ρ̂ⱼ = (1/m) Σᵢ aⱼ(xᵢ) is hidden unit j's activation averaged over the m training samples: how often "
           "unit j fires. It is **one number per unit**: not one number for the whole layer, not one per "
           "activation. The sparsity term compares each unit's ρ̂ⱼ with the target ρ, KL(ρ‖ρ̂ⱼ), and adds them up. "
           "Switch the penalty off, then on again, and watch every unit's ρ̂ⱼ move on its own.",
           (Step("own", "Switch the penalty off",
                 "Set **β = 0** (it applies live, or press **Set up this step**) and train a few hundred steps. "
                 "With no penalty nothing holds the units near ρ: the reconstruction alone decides how often each "
                 "unit fires. On the **KL penalty** page every orange point is one unit's ρ̂ⱼ.",
                 check_rho_hat_own,
                 "The check wants β = 0 for at least 100 steps and most units off target. Keep training at β = 0.",
                 f.rho_hat, focus=farthest, setup={"beta": 0.0}, links=(KL_PAGE,)),
            Step("pulled", "Bring mean ρ̂ within 10% of ρ, unit by unit",
                 "Now raise **β** back to 3 while it trains and watch the points slide into the curve's valley at "
                 "ρ. The check wants the mean ρ̂ within 10% of ρ **and** at least 90% of the units on target: a "
                 "right mean with wrong units is what the “ρ̂ as one scalar” mistake produces.",
                 check_rho_hat_pulled,
                 "Give it a few hundred steps after raising β. If the mean stays just outside 10%, raise β to 5: "
                 "the KL curve is flat near ρ, and a larger β holds the units closer.",
                 f.kl_unit, focus=farthest, setup={"beta": 3.0}, links=(KL_PAGE,)))),

    Lesson("beta", "What β does",
           "β weighs the sparsity term against the reconstruction: J = reconstruction + weight decay + "
           "β·Σⱼ KL(ρ‖ρ̂ⱼ). A larger β pushes every ρ̂ⱼ harder towards ρ. Too hard, and with plain SGD a step "
           "overshoots: the unit's bias is thrown so far negative that it never fires again. It is **dead** "
           "(ρ̂ⱼ < ρ/10 and never above 0.1 on any sample), and KL(ρ‖ρ̂ⱼ) is flat there, so nothing brings it back.",
           (Step("kills", "Find a β at which units start to die",
                 "**Set up this step** (8×8 digits, 25 units, SGD at learning rate 0.1, β = 3) and train a few "
                 "hundred steps: every unit lives. Then raise **β** while it trains, one notch at a time (5, 10, "
                 "20, 50), a few hundred steps each, and watch the Train page's dead-unit count. The check reads "
                 "the run's history: the β at which the first units died, after they had lived at a lower one.",
                 check_beta_kills,
                 "An SGD step is learning rate × gradient, and the KL gradient grows with β. Once the units sit "
                 "near ρ it takes a large β (about 50 here) to throw them out. The dead units are outlined on the "
                 "Filters page.",
                 lambda v, j: f.kl_gradient(v, j) + f.dead_rule(v, j), focus=dead_or_lowest,
                 setup=DIGITS_SGD, links=(TRAIN_PAGE, FILTERS_PAGE)),
            Step("adam", "Try the same with Adam",
                 "**Set up this step** (the same, with Adam), train a few hundred steps at β = 3, then raise **β** "
                 "to 20 or 50 and train 300 steps more. Adam divides each weight's step by the running size of its "
                 "gradient, so a larger β does not make larger steps: no unit dies.",
                 check_adam_survives,
                 "The check wants Adam, β ≥ 20 for the last 300 steps, and no dead unit.",
                 f.kl_gradient, focus=most_penalised, setup={**DIGITS_SGD, "optimizer": "adam", "lr": 3e-2},
                 links=(TRAIN_PAGE,)))),

    Lesson("asymmetry", "Why the KL penalty is asymmetric",
           "KL(ρ‖ρ̂ⱼ) is zero at ρ̂ⱼ = ρ and grows on both sides, but not equally. For a small ρ, a unit firing c "
           "times too often pays much more than one firing c times too rarely: the (1−ρ)·log((1−ρ)/(1−ρ̂ⱼ)) part "
           "weighs 1−ρ ≈ 1, the ρ·log(ρ/ρ̂ⱼ) part only ρ. Silence is cheap, which is why a heavy penalty kills "
           "units rather than saturating them. Put your units on each side of ρ and compare what they pay with "
           "what they would pay mirrored.",
           (Step("above", "Put the units above ρ",
                 "Train at the defaults (ρ = 0.02) for a few hundred steps, then **pause** and lower **ρ to 0.005** "
                 "(**Set up this step** does both). The units still fire as they learned to: now about 4× more "
                 "often than ρ. Check while paused.",
                 check_units_above,
                 "A running optimiser brings the units to the new ρ within a few dozen steps: pause first. "
                 "While paused a new ρ applies at once.",
                 f.asymmetry, focus=most_penalised, setup={"rho": 0.005}, pause_first=True, links=(KL_PAGE,)),
            Step("below", "Put the units below ρ",
                 "Resume until the units have settled at the new ρ (or start from the defaults again), then "
                 "**pause** and raise **ρ to 0.08**: now the units fire about 4× too rarely. Compare what they pay "
                 "with the mirrored cost.",
                 check_units_below,
                 "Pause first, then raise ρ; the check wants most units at or below ρ/2.",
                 f.asymmetry, focus=most_penalised, setup={"rho": 0.08}, pause_first=True, links=(KL_PAGE,)))),

    Lesson("edges", "Edges from natural images",
           "Trained on patches of natural images, a sparse autoencoder's units become edge detectors: small, "
           "oriented light/dark bars, like the receptive fields of V1 simple cells (Olshausen & Field, 1996). Edges "
           "need two things: natural images, and sparsity. Take each away and look.",
           (Step("edges", "Get edge-like filters",
                 "**Set up this step** (the patches with their defaults) and train: within a few thousand steps the "
                 "Filters page fills with bars at every angle and position.",
                 check_edges,
                 "With Adam edges appear after about 4,000 steps (10 s on a quiet machine); L-BFGS gets them in "
                 "about 100 iterations.",
                 f.orientation_share, focus=most_edge_like, setup={"dataset": "patches"}, links=(FILTERS_PAGE,)),
            Step("nosparsity", "No sparsity, no edges",
                 "Start a **new run** on the patches with **β = 0** (**Set up this step**, then Train) and train a "
                 "thousand steps or more. Without a sparsity penalty every unit fires on about half the patches, and "
                 "codes a blend of them.",
                 check_no_sparsity_no_edges,
                 "β must be 0 from the run's first step (a fresh run), for at least 1,000 steps.",
                 f.orientation_share, focus=most_edge_like, setup={"dataset": "patches", "beta": 0.0},
                 links=(FILTERS_PAGE,)),
            Step("strokes", "Digits give strokes",
                 "**Set up this step** (the 8×8 digits with their defaults) and train a few hundred steps: the "
                 "filters become blobs and short pen strokes, parts of digits, not gratings. The check measures how "
                 "local each filter's energy is.",
                 check_strokes,
                 "Train a few hundred steps on “digits” (or “mnist”).",
                 f.localization_share, focus=most_local, setup={"dataset": "digits"}, links=(FILTERS_PAGE,)))),

    Lesson("decay", "What weight decay buys",
           "The weight-decay term (λ/2)(‖W₁‖² + ‖W₂‖²) charges for large weights (biases are free). Without it a "
           "sigmoid unit can meet the sparsity target with huge weights and a very negative bias, fitting the noise "
           "of the patches; with it the weights stay small and the filters are smooth edges. Its gradient is λW: "
           "every step shrinks every weight a little.",
           (Step("off", "Switch weight decay off",
                 "**Set up this step** (the patches with λ = 0) and train a thousand steps or more. Watch the weight "
                 "decay term disappear from J, and the filters dissolve into noise on the Filters page.",
                 check_no_decay,
                 "λ = 0 must hold for the last 1,000 steps; the edges fade as the weights grow.",
                 f.weight_decay, setup={"dataset": "patches", "weight_decay": 0.0}, links=(FILTERS_PAGE,)),
            Step("twin", "Make the twin show what λ buys",
                 "**Set up this step** (UFLDL's exercise with λ = 0, L-BFGS, 200 iterations), then **add the twin**: "
                 "a second model from the same weights on the same data, with λ = 1e-4, trained beside your run. "
                 "Train, and compare the two.",
                 check_twin_decay,
                 "The twin must change λ and train 50 steps since its fork. The check wants edges only on the side "
                 "with the larger λ, and ‖W‖² at least 3× smaller there.",
                 f.twin_decay, setup={**UFLDL_SETUP, "weight_decay": 0.0, "max_iter": 200},
                 twin={"weight_decay": 1e-4}, links=(FILTERS_PAGE,)))),

    Lesson("twin", "The twin: what β = 10 does to units",
           "A twin is a second model trained beside your run: the same initial weights, the same batches in the "
           "same order, one setting changed. Whatever differs between the two is that setting's doing. Use it to "
           "show that a large β kills units with SGD, and why.",
           (Step("kills", "Make the twin show that β = 10 kills units",
                 "**Set up this step** (8×8 digits, 25 units, ρ = 0.05, SGD at learning rate 0.1, β = 3), **add the "
                 "twin** (β = 10 from step 0), then press **Resume** (or Train) for 10 epochs (140 steps). Compare "
                 "the dead-unit counts.",
                 check_twin_beta_kills,
                 "Fork from step 0: β = 10 kills units in the first steps, while every ρ̂ⱼ is near 0.5 and the KL "
                 "gradient is steep. A twin forked later finds the units already near ρ, and they survive.",
                 f.twin_dead, focus=dead_or_lowest, setup={**DIGITS_SGD, "rho": 0.05}, twin={"beta": 10.0}),
            Step("lr", "Make the twin show that smaller steps save them",
                 "**Set up this step** (the same with β = 10 for the run: its units die), **add the twin** with "
                 "learning rate 0.01 from step 0, and train 10 epochs.",
                 check_twin_lr_saves,
                 "The run must lose units (SGD, β = 10, learning rate 0.1) and the twin must change only the "
                 "learning rate, to a smaller one.",
                 f.twin_dead, focus=dead_or_lowest, setup={**DIGITS_SGD, "rho": 0.05, "beta": 10.0},
                 twin={"lr": 0.01}))),

    Lesson("mistakes", "When the math is wrong",
           "Copied sparse-autoencoder code often gets one line of the math wrong, and it still trains: nothing "
           "crashes, the numbers are just wrong. The **Common mistakes** page trains each mistake beside the correct "
           "objective (the same data, the same initial weights, the same optimiser). Switch three of them on "
           "there, then check here what broke.",
           (Step("scalar", "ρ̂ as one scalar for the whole layer",
                 "On **Common mistakes** switch on “ρ̂ as one scalar for the whole layer” (**Set up this step**, "
                 "then open the page): the penalty holds the layer's average activation at ρ instead of each unit's.",
                 check_mistake_scalar,
                 "The page trains it by itself when you open it with the mistake switched on; come back when it "
                 "says “Finished”.",
                 f.mistake_scalar, mistake="rho_hat_scalar", links=(MISTAKES_PAGE,)),
            Step("every", "KL on every activation",
                 "Switch on “KL on every activation instead of on ρ̂_j”: every single activation is pulled to ρ, "
                 "instead of each unit's average.",
                 check_mistake_every_activation,
                 "Open Common mistakes with this mistake switched on and wait for “Finished”.",
                 f.mistake_every_activation, mistake="kl_per_activation", links=(MISTAKES_PAGE,)),
            Step("linear", "A linear encoder under a KL penalty",
                 "Switch on “Linear encoder under a KL penalty”: without the sigmoid an activation can be negative, "
                 "and so can ρ̂ⱼ.",
                 check_mistake_linear,
                 "Open Common mistakes with this mistake switched on and wait for “Finished”.",
                 f.mistake_linear, mistake="linear_encoder", links=(MISTAKES_PAGE,)))),
)


def lesson(lesson_id: str) -> Lesson:
    """The lesson with this id (KeyError if none)."""
    for item in LESSONS:
        if item.id == lesson_id:
            return item
    raise KeyError(f"no lesson {lesson_id!r}; the lessons are {', '.join(x.id for x in LESSONS)}")


__all__ = ["Lesson", "Step", "LESSONS", "lesson", "CheckResult", "UFLDL_SETUP", "FILTERS_PAGE", "KL_PAGE",
           "TRAIN_PAGE", "MISTAKES_PAGE", "farthest", "most_penalised", "dead_or_lowest", "most_edge_like",
           "most_local"]
