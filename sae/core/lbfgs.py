"""Full-batch L-BFGS with a strong-Wolfe line search, one iteration at a time.

UFLDL trains the sparse autoencoder with minFunc's L-BFGS. torch.optim.LBFGS does the same
maths but re-evaluates the objective at the start of every ``step()`` call, which doubles the
cost when a UI wants to see every iteration. This class keeps (x, f, g) between iterations so
each iteration costs one evaluation plus what the line search needs; the line search itself is
PyTorch's (``torch.optim.lbfgs._strong_wolfe``, the same one torch.optim.LBFGS uses), a private API
reached through :mod:`sae.core.torch_private`, whose own implementation of the same search
(``fallback_strong_wolfe``) takes over where torch lacks it or ``SAE_NO_PRIVATE_TORCH=1``.
"""

from __future__ import annotations

from typing import Callable

import torch

from sae.core.torch_private import strong_wolfe

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
        self.reset_memory()  # pairs s_i = x_{i+1} - x_i, y_i = g_{i+1} - g_i in ring buffers; SY, YY (k, k)
        self.f, self.g = self._eval(self.x)
        self.first = True
        self.converged = ""

    def _eval(self, x: torch.Tensor) -> tuple[float, torch.Tensor]:
        self.evaluations += 1
        f, g = self.fun(x)
        return float(f), g.detach().clone()

    def reset_memory(self) -> None:
        """Drop the curvature pairs (keep x, f, g).

        Pairs live in one buffer (2 history_size, p): rows [0, h) a ring of s_i, rows [h, 2h) a ring of
        y_i, written in place (a new pair overwrites the oldest: an iteration copies one row, not the
        history). ``_order`` lists the ring rows of the kept pairs oldest first; SY = S'Y and YY = Y'Y
        (k, k) are kept in that time order. An iteration reads the buffer about four times (matrix-vector
        products): for the new pair's products, for u = S g and w = Y g, and for the direction.
        """
        p, h = self.x.numel(), self.history_size
        if getattr(self, "_pairs", None) is None or self._pairs.shape != (2 * h, p):
            self._pairs = self.x.new_zeros(2 * h, p)  # zeros: unused rows meet only zero weights
        self._order = torch.empty(0, dtype=torch.long)
        self._next = 0  # the ring row the next pair goes to
        self._SY, self._YY = self.x.new_empty(0, 0), self.x.new_empty(0, 0)

    @property
    def pairs_kept(self) -> int:
        """How many curvature pairs the inverse-Hessian approximation uses now."""
        return len(self._order)

    def _remember(self, s: torch.Tensor, y: torch.Tensor) -> None:
        """Add the pair (s, y), dropping the oldest beyond history_size; update S'Y and Y'Y."""
        h = self.history_size
        if len(self._order) == h:  # the oldest pair, at ring row _next, gives way
            self._order = self._order[1:]
            self._SY, self._YY = self._SY[1:, 1:], self._YY[1:, 1:]
        order = self._order
        with_y, y_with_s = self._pairs @ y, self._pairs[h:] @ s  # (S y, Y y) and Y s: matrix-vector products
        sy_col, yy, sy_row = with_y[order], with_y[h + order], y_with_s[order]
        k = len(order)
        SY = self._SY.new_empty(k + 1, k + 1)
        SY[:k, :k], SY[:k, k], SY[k, :k], SY[k, k] = self._SY, sy_col, sy_row, s.dot(y)
        YY = self._YY.new_empty(k + 1, k + 1)
        YY[:k, :k], YY[:k, k], YY[k, :k], YY[k, k] = self._YY, yy, yy, y.dot(y)
        self._pairs[self._next], self._pairs[h + self._next] = s, y
        self._order = torch.cat([order, torch.tensor([self._next])])
        self._next = (self._next + 1) % h
        self._SY, self._YY = SY, YY

    def _direction(self) -> torch.Tensor:
        """-H g with H the L-BFGS inverse Hessian, H0 = gamma I, gamma = s'y / y'y of the newest pair.

        Compact representation (Byrd, Nocedal & Schnabel 1994), equal to the two-loop recursion:
        with R = triu(S'Y), D = diag(S'Y), u = S g, w = Y g, v = R^-1 u,
        H g = gamma g + S'(R^-T ((D + gamma Y'Y) v - gamma w)) - gamma Y' v: a few small matrix
        operations per iteration instead of 4k vector operations.
        """
        g, order, h = self.g, self._order, self.history_size
        if len(order) == 0:
            return -g
        SY = self._SY
        gamma = SY[-1, -1] / self._YY[-1, -1]
        R = torch.triu(SY)
        products = self._pairs @ g  # (2h,): S g, then Y g
        u, w = products[order], products[h + order]
        v = torch.linalg.solve_triangular(R, u[:, None], upper=True)[:, 0]
        rhs = torch.diagonal(SY) * v + gamma * (self._YY @ v) - gamma * w
        z = torch.linalg.solve_triangular(R.t(), rhs[:, None], upper=False)[:, 0]
        weights = g.new_zeros(2 * h)  # z on the s rows, -gamma v on the y rows, in ring order
        weights[order], weights[h + order] = z, -gamma * v
        return -(gamma * g + self._pairs.t() @ weights)

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
            self.reset_memory()
            d, gtd = -self.g, float(-self.g.dot(self.g))
        t = min(1.0, 1.0 / float(self.g.abs().sum())) if self.first else 1.0
        self.first = False

        def along(x: torch.Tensor, step: float, direction: torch.Tensor) -> tuple[float, torch.Tensor]:
            return self._eval(x + step * direction)

        f_new, g_new, t, _ = strong_wolfe(along, self.x, t, d, self.f, self.g, gtd)
        step = t * d
        y = g_new - self.g
        if float(y.dot(step)) > 1e-10:  # keep only pairs with positive curvature
            self._remember(step, y)
        f_old = self.f
        self.x = self.x + step
        self.f, self.g = float(f_new), g_new
        if step.abs().max() <= self.tolerance_change:
            self.converged = "step below tolerance"
        elif abs(self.f - f_old) < self.tolerance_change:
            self.converged = "change in loss below tolerance"
        return True
