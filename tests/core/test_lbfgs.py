"""Our L-BFGS: the compact-form direction equals the two-loop recursion; it minimises like torch's."""

import torch

from sae.core.lbfgs import LBFGS


def two_loop(g, pairs):
    """Nocedal & Wright, Algorithm 7.4: the textbook oracle."""
    q, alphas = g.clone(), []
    for s, y in reversed(pairs):
        rho = 1.0 / y.dot(s)
        alpha = rho * s.dot(q)
        q -= alpha * y
        alphas.append((rho, alpha))
    s, y = pairs[-1]
    r = (s.dot(y) / y.dot(y)) * q
    for (s, y), (rho, alpha) in zip(pairs, reversed(alphas)):
        r += s * (alpha - rho * y.dot(r))
    return -r


def rosenbrock(x):
    x = x.detach().requires_grad_(True)
    f = (100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum()
    f.backward()
    return f.item(), x.grad


def test_compact_direction_equals_two_loop():
    torch.manual_seed(0)
    opt = LBFGS(lambda x: ((x ** 2).sum().item(), 2 * x), torch.randn(30, dtype=torch.float64), history_size=5)
    pairs = []
    for _ in range(8):  # more pairs than the history keeps
        s = torch.randn(30, dtype=torch.float64)
        y = s * torch.rand(30, dtype=torch.float64) + 0.1 * torch.randn(30, dtype=torch.float64)
        if y.dot(s) <= 0:
            continue
        opt._remember(s, y)
        pairs = (pairs + [(s, y)])[-5:]
        torch.testing.assert_close(opt._direction(), two_loop(opt.g, pairs), rtol=1e-10, atol=1e-12)


def test_minimises_rosenbrock_like_torch():
    x0 = torch.full((10,), -1.0, dtype=torch.float64)
    ours = LBFGS(rosenbrock, x0, history_size=10, tolerance_change=1e-14)
    for _ in range(500):
        if not ours.iterate():
            break
    assert ours.f < 1e-10
    torch.testing.assert_close(ours.x, torch.ones(10, dtype=torch.float64), rtol=0, atol=1e-5)


def test_reset_forgets_history_and_re_evaluates():
    calls = []

    def quadratic(x):
        calls.append(1)
        return (x ** 2).sum().item(), 2 * x

    opt = LBFGS(quadratic, torch.ones(4, dtype=torch.float64))
    opt.iterate()
    n = len(calls)
    opt.reset()
    assert len(calls) == n + 1 and opt.pairs_kept == 0
