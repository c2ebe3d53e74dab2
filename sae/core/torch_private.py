r"""The fence around torch's private APIs: every ``torch._*`` call of the library, each with a public fallback.

Three fast paths use APIs torch does not promise to keep:

- ``torch._foreach_add_``, ``torch._fused_adam_``, ``torch._fused_sgd_``: the fused optimiser kernels
  :class:`sae.core.optimizer_step.KernelStep` calls directly. Fallback: KernelStep delegates every step to
  ``optimizer.step()`` (the same update, with torch.optim's per-step Python).
- ``torch._C._nn.mkldnn_linear``: oneDNN's float32 product, used by :mod:`sae.core.fused` for big minibatch
  products. Fallback: the pass keeps its MKL ``addmm`` path (the one it already takes for small products);
  :func:`onednn_linear` itself computes ``torch.nn.functional.linear``.
- ``torch.optim.lbfgs._strong_wolfe``: the line search of :class:`sae.core.lbfgs.LBFGS`. Fallback:
  :func:`fallback_strong_wolfe`, this module's own implementation of the same search.

The choice is made once, at import, by :func:`choose`: a private API is used if it is present (with the
expected signature, for the line search) and the environment variable ``SAE_NO_PRIVATE_TORCH`` is not set to a
true value (``1``, ``true``, ``yes``). When any fallback is in use, one warning goes to this module's logger.
Tests call :func:`choose` to switch at run time; the rest of the library asks this module at call time.
"""

from __future__ import annotations

import inspect
import logging
import math
import os
from collections.abc import Callable

import torch
from torch import Tensor
from torch.nn import functional as F

logger = logging.getLogger(__name__)

ENV_VAR = "SAE_NO_PRIVATE_TORCH"
FUSED_KERNELS, ONEDNN_LINEAR, STRONG_WOLFE = "fused optimiser kernels", "oneDNN linear", "strong-Wolfe line search"

LineFunction = Callable[[Tensor, float, Tensor], tuple[float, Tensor]]  # (x, t, d) -> (f(x + t d), grad there)

_fused_kernels = False
_onednn = False
_torch_strong_wolfe: Callable | None = None


def _private_strong_wolfe() -> Callable | None:
    """torch's ``_strong_wolfe`` if present with the signature this library calls it with."""
    try:
        from torch.optim.lbfgs import _strong_wolfe
    except ImportError:
        return None
    try:
        names = list(inspect.signature(_strong_wolfe).parameters)
    except (TypeError, ValueError):
        return None
    expected = ["obj_func", "x", "t", "d", "f", "g", "gtd", "c1", "c2", "tolerance_change", "max_ls"]
    return _strong_wolfe if names[:len(expected)] == expected else None


def choose(allow_private: bool | None = None) -> tuple[str, ...]:
    """(Re)choose each private API or its fallback; returns the fallbacks in use (one warning if any).

    ``allow_private``: None reads ``SAE_NO_PRIVATE_TORCH``; False forces every fallback; True uses each private
    API that this torch has.
    """
    global _fused_kernels, _onednn, _torch_strong_wolfe
    if allow_private is None:
        allow_private = os.environ.get(ENV_VAR, "").strip().lower() in ("", "0", "false", "no")
    nn = getattr(getattr(torch, "_C", None), "_nn", None)
    _fused_kernels = allow_private and all(callable(getattr(torch, k, None))
                                           for k in ("_foreach_add_", "_fused_adam_", "_fused_sgd_"))
    _onednn = allow_private and callable(getattr(nn, "mkldnn_linear", None)) and torch.backends.mkldnn.is_available()
    _torch_strong_wolfe = _private_strong_wolfe() if allow_private else None
    fallbacks = fallbacks_in_use()
    if fallbacks:
        why = f"{ENV_VAR} is set" if not allow_private else f"torch {torch.__version__} lacks the private API"
        logger.warning("public-API fallback for the %s (%s): same results within float rounding, may run slower",
                       ", ".join(fallbacks), why)
    return fallbacks


def fallbacks_in_use() -> tuple[str, ...]:
    """Names of the fast paths currently on their public fallback (empty: every private API in use)."""
    return tuple(name for name, private in ((FUSED_KERNELS, _fused_kernels), (ONEDNN_LINEAR, _onednn),
                                            (STRONG_WOLFE, _torch_strong_wolfe is not None)) if not private)


# ----------------------------------------------------------------------------- fused optimiser kernels

def fused_kernels_available() -> bool:
    """Whether :func:`fused_adam_step` and :func:`fused_sgd_step` may be called (else use ``optimizer.step()``)."""
    return _fused_kernels


def fused_adam_step(params: list[Tensor], grads: list[Tensor], exp_avgs: list[Tensor], exp_avg_sqs: list[Tensor],
                    steps: list[Tensor], *, lr: float, beta1: float, beta2: float, weight_decay: float,
                    eps: float) -> None:
    """What ``Adam(fused=True).step()`` ends in (plain Adam): step counters + 1, then the fused update in place."""
    torch._foreach_add_(steps, 1)
    torch._fused_adam_(params, grads, exp_avgs, exp_avg_sqs, [], steps, amsgrad=False, lr=lr, beta1=beta1,
                       beta2=beta2, weight_decay=weight_decay, eps=eps, maximize=False)


def fused_sgd_step(params: list[Tensor], grads: list[Tensor], momentum_buffers: list[Tensor], *, lr: float,
                   momentum: float, dampening: float, weight_decay: float) -> None:
    """What ``SGD(fused=True).step()`` ends in after its first step (no nesterov): the fused update in place."""
    torch._fused_sgd_(params, grads, momentum_buffers, weight_decay=weight_decay, momentum=momentum, lr=lr,
                      dampening=dampening, nesterov=False, maximize=False, is_first_step=False)


# ----------------------------------------------------------------------------- oneDNN product

def onednn_available() -> bool:
    """Whether :func:`onednn_linear` runs oneDNN's kernel (else it is ``F.linear``, and the fused pass uses MKL)."""
    return _onednn


def onednn_linear(P: Tensor, Q: Tensor, bias: Tensor | None = None) -> Tensor:
    """P Q^T (+ bias), P (a, k), Q (b, k) -> (a, b); dense tensors in and out.

    Private path: oneDNN, strict float32 (each operand copied into oneDNN's layout). Fallback: ``F.linear``.
    """
    if not _onednn:
        return F.linear(P, Q, bias)
    return torch._C._nn.mkldnn_linear(P.contiguous().to_mkldnn(), Q.contiguous().to_mkldnn(),
                                      None if bias is None else bias.to_mkldnn()).to_dense()


# ----------------------------------------------------------------------------- strong-Wolfe line search

def strong_wolfe(obj_func: LineFunction, x: Tensor, t: float, d: Tensor, f: float, g: Tensor, gtd: float,
                 c1: float = 1e-4, c2: float = 0.9, tolerance_change: float = 1e-9,
                 max_ls: int = 25) -> tuple[float, Tensor, float, int]:
    """torch's ``_strong_wolfe`` if chosen, else :func:`fallback_strong_wolfe` (same arguments and returns)."""
    search = _torch_strong_wolfe or fallback_strong_wolfe
    return search(obj_func, x, t, d, f, g, gtd, c1, c2, tolerance_change, max_ls)


def _cubic_minimizer(a: float, fa: float, ga: float, b: float, fb: float, gb: float,
                     lo: float, hi: float) -> float:
    """Minimiser of the cubic matching (f, f') at a and b (Nocedal & Wright eq. 3.59), clipped to [lo, hi].

    The formula is written with b the right end (so its square root is taken positive); where the cubic has
    no minimiser (negative discriminant) or is degenerate (a == b) the middle of [lo, hi] is returned.
    """
    if a > b:
        a, fa, ga, b, fb, gb = b, fb, gb, a, fa, ga
    try:
        d1 = ga + gb - 3.0 * (fa - fb) / (a - b)
        disc = d1 * d1 - ga * gb
        if not disc >= 0:
            return (lo + hi) / 2.0
        d2 = math.sqrt(disc)
        return min(max(b - (b - a) * (gb + d2 - d1) / (gb - ga + 2.0 * d2), lo), hi)
    except ZeroDivisionError:  # a == b, or a degenerate cubic
        return (lo + hi) / 2.0


def fallback_strong_wolfe(obj_func: LineFunction, x: Tensor, t: float, d: Tensor, f: float, g: Tensor, gtd: float,
                          c1: float = 1e-4, c2: float = 0.9, tolerance_change: float = 1e-9,
                          max_ls: int = 25) -> tuple[float, Tensor, float, int]:
    r"""A step t along d meeting the strong Wolfe conditions; returns (f(x + t d), its gradient, t, evaluations).

    With phi(t) = f(x + t d): sufficient decrease phi(t) <= f + c1 t gtd and curvature |phi'(t)| <= c2 |gtd|.
    Nocedal & Wright, Algorithm 3.5 (bracketing) and 3.6 (zoom), with the choices of minFunc's WolfeLineSearch
    (which torch's ``_strong_wolfe`` also follows, so both searches take the same steps):

    - bracketing: trial steps grow by cubic extrapolation through the last two points, kept within
      [t + 0.01 (t - t_prev), 10 t], until a trial fails sufficient decrease, or (from the third trial on) does
      not improve on the previous one, or has phi' >= 0: the last two trials then bracket a Wolfe point.
      A trial meeting both conditions ends the search;
    - zoom: the bracket's two ends are ordered by value (low end: the lower phi, a tie keeps the earlier order);
      each trial is the cubic minimiser through both ends; one that lands within a tenth of the bracket width of an
      end twice in a row (or outside) is moved to a tenth of the width from the nearer end. A trial failing
      sufficient decrease or not below the low end replaces the high end; otherwise it is the answer if it meets
      the curvature condition, else the new low end (and if phi rises from it towards the high end, the old low
      end becomes the high end). The zoom stops when the bracket's width times max |d| (the largest change in x
      it spans) falls below ``tolerance_change``;
    - at most ``max_ls`` trials after the first; the result is the low end (or, if bracketing ran out of
      trials, the better of t = 0 and the last trial).

    ``obj_func(x, t, d)`` returns (f, gradient) at x + t d; gradients are copied, so it may reuse a buffer.
    The interpolation runs in Python floats (float64) also for float32 problems (torch's, in the tensors' dtype,
    can overflow there to a nan step); otherwise the steps agree with torch's to rounding.
    """
    d_norm = float(d.abs().max())
    gtd = float(gtd)
    f_new, g_new = obj_func(x, t, d)
    evals, trials = 1, 0
    gtd_new = float(g_new.dot(d))
    prev = (0.0, float(f), g.clone(), gtd)  # (t, phi, gradient, phi')
    bracket: list[tuple[float, float, Tensor, float]] = []
    while trials < max_ls:
        here = (float(t), float(f_new), g_new, gtd_new)
        if f_new > f + c1 * t * gtd or (trials > 1 and f_new >= prev[1]):
            bracket = [prev, (here[0], here[1], g_new.clone(), here[3])]
            break
        if abs(gtd_new) <= -c2 * gtd:
            return f_new, g_new, t, evals
        if gtd_new >= 0:
            bracket = [prev, (here[0], here[1], g_new.clone(), here[3])]
            break
        t = _cubic_minimizer(*prev[:2], prev[3], *here[:2], here[3], t + 0.01 * (t - prev[0]), 10.0 * t)
        prev = (here[0], here[1], g_new.clone(), here[3])
        f_new, g_new = obj_func(x, t, d)
        evals, trials = evals + 1, trials + 1
        gtd_new = float(g_new.dot(d))
    if not bracket:  # out of trials while extrapolating
        best = (f, g.clone(), 0.0) if f <= f_new else (f_new, g_new, t)
        return best[0], best[1], best[2], evals

    low, high = (0, 1) if bracket[0][1] <= bracket[1][1] else (1, 0)
    near_end = False  # the previous trial landed close to an end of the bracket
    while trials < max_ls and abs(bracket[1][0] - bracket[0][0]) * d_norm >= tolerance_change:
        (a, fa, _, ga), (b, fb, _, gb) = bracket
        left, right = min(a, b), max(a, b)
        t = _cubic_minimizer(a, fa, ga, b, fb, gb, left, right)
        margin = 0.1 * (right - left)
        if min(right - t, t - left) < margin:
            if near_end or t >= right or t <= left:
                t = right - margin if abs(t - right) < abs(t - left) else left + margin
                near_end = False
            else:
                near_end = True
        else:
            near_end = False
        f_new, g_new = obj_func(x, t, d)
        evals, trials = evals + 1, trials + 1
        gtd_new = float(g_new.dot(d))
        here = (float(t), float(f_new), g_new.clone(), gtd_new)
        if f_new > f + c1 * t * gtd or f_new >= bracket[low][1]:
            bracket[high] = here
            low, high = (0, 1) if bracket[0][1] <= bracket[1][1] else (1, 0)
            continue
        if abs(gtd_new) <= -c2 * gtd:
            bracket[low] = here
            break
        if gtd_new * (bracket[high][0] - bracket[low][0]) >= 0:
            bracket[high] = bracket[low]
        bracket[low] = here
    t, f_new, g_new, _ = bracket[low]
    return f_new, g_new, t, evals


choose()
