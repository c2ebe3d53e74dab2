"""Full-batch L-BFGS with a strong-Wolfe line search, one iteration at a time.

UFLDL trains the sparse autoencoder with minFunc's L-BFGS. torch.optim.LBFGS does the same
maths but re-evaluates the objective at the start of every ``step()`` call, which doubles the
cost when a UI wants to see every iteration. This class keeps (x, f, g) between iterations so
each iteration costs one evaluation plus what the line search needs; the line search itself is
PyTorch's (``torch.optim.lbfgs._strong_wolfe``, the same one torch.optim.LBFGS uses).
"""

from __future__ import annotations

from collections import deque
from typing import Callable

import torch
from torch.optim.lbfgs import _strong_wolfe

Objective = Callable[[torch.Tensor], tuple[float, torch.Tensor]]  # theta (p,) -> (f, grad (p,))


class LBFGS:
    """Minimise ``fun`` from ``x0`` (p,), one ``iterate()`` at a time.

    Args:
        fun: theta (p,) -> (f, df/dtheta (p,)); must not keep references to theta.
        x0: starting point (p,); copied.
        history_size: number of (s, y) curvature pairs kept (minFunc's default is 100).
        tolerance_grad: converged when max |g| falls below it.
        tolerance_change: converged when the step or the change in f falls below it.
    """

    def __init__(self, fun: Objective, x0: torch.Tensor, history_size: int = 100,
                 tolerance_grad: float = 1e-9, tolerance_change: float = 1e-12) -> None:
        self.fun = fun
        self.x = x0.detach().clone()
        self.history_size = history_size
        self.tolerance_grad = tolerance_grad
        self.tolerance_change = tolerance_change
        self.evaluations = 0
        self.reset()

    def reset(self) -> None:
        """Forget the curvature pairs and re-evaluate at x (after the objective changed)."""
        self._s: deque[torch.Tensor] = deque(maxlen=self.history_size)
        self._y: deque[torch.Tensor] = deque(maxlen=self.history_size)
        self._rho: deque[float] = deque(maxlen=self.history_size)
        self.f, self.g = self._eval(self.x)
        self.first = True
        self.converged = ""

    def _eval(self, x: torch.Tensor) -> tuple[float, torch.Tensor]:
        self.evaluations += 1
        f, g = self.fun(x)
        return float(f), g.detach().clone()

    def _direction(self) -> torch.Tensor:
        """-H g by the two-loop recursion, H0 = (s'y / y'y) I."""
        q = -self.g
        alphas = []
        for s, y, rho in zip(reversed(self._s), reversed(self._y), reversed(self._rho)):
            alpha = rho * s.dot(q)
            q.add_(y, alpha=-alpha)
            alphas.append(alpha)
        if self._s:
            q.mul_(self._s[-1].dot(self._y[-1]) / self._y[-1].dot(self._y[-1]))
        for s, y, rho, alpha in zip(self._s, self._y, self._rho, reversed(alphas)):
            beta = rho * y.dot(q)
            q.add_(s, alpha=alpha - beta)
        return q

    def iterate(self) -> bool:
        """One L-BFGS iteration. Returns False once converged (reason in ``converged``)."""
        if self.converged:
            return False
        if self.g.abs().max() <= self.tolerance_grad:
            self.converged = "gradient below tolerance"
            return False
        d = self._direction()
        gtd = float(self.g.dot(d))
        if gtd > -self.tolerance_change:  # not a descent direction: restart from steepest descent
            self._s.clear(), self._y.clear(), self._rho.clear()
            d, gtd = -self.g, float(-self.g.dot(self.g))
        t = min(1.0, 1.0 / float(self.g.abs().sum())) if self.first else 1.0
        self.first = False

        def along(x: torch.Tensor, step: float, direction: torch.Tensor) -> tuple[float, torch.Tensor]:
            return self._eval(x + step * direction)

        f_new, g_new, t, _ = _strong_wolfe(along, self.x, t, d, self.f, self.g, gtd)
        step = t * d
        y = g_new - self.g
        ys = float(y.dot(step))
        if ys > 1e-10:
            self._s.append(step)
            self._y.append(y)
            self._rho.append(1.0 / ys)
        f_old = self.f
        self.x = self.x + step
        self.f, self.g = float(f_new), g_new
        if step.abs().max() <= self.tolerance_change:
            self.converged = "step below tolerance"
        elif abs(self.f - f_old) < self.tolerance_change:
            self.converged = "change in loss below tolerance"
        return True
