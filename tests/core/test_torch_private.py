"""The fence around torch's private APIs: each public fallback gives the private path's results.

Comparisons switch paths with ``torch_private.choose``, so they run whatever ``SAE_NO_PRIVATE_TORCH`` says;
the ``restore`` fixture puts back the choice the process started with.
"""

import importlib
import logging
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.optim.lbfgs as torch_lbfgs

from sae.core import torch_private as tp
from sae.core.fused import ONEDNN_MIN_MACS, FusedObjective
from sae.core.lbfgs import LBFGS
from sae.core.loss import sparse_autoencoder_loss
from sae.core.model import SparseAutoencoder, flat_parameters, load_flat_parameters
from sae.core.optimizer_step import KernelStep

ALL = (tp.FUSED_KERNELS, tp.ONEDNN_LINEAR, tp.STRONG_WOLFE)
TORCH_STRONG_WOLFE = getattr(torch_lbfgs, "_strong_wolfe", None)
needs_torch_search = pytest.mark.skipif(TORCH_STRONG_WOLFE is None, reason="this torch has no _strong_wolfe")


@pytest.fixture
def restore():
    yield
    tp.choose()


def fence_records(caplog):
    return [r for r in caplog.records if r.name == tp.__name__ and r.levelno == logging.WARNING]


def test_the_environment_variable_decides_at_import():
    disabled = os.environ.get(tp.ENV_VAR, "").strip().lower() not in ("", "0", "false", "no")
    assert tp.fallbacks_in_use() == (ALL if disabled else ())


# ----------------------------------------------------------------------------- optimiser kernels

OPTIMIZERS = {"adam": lambda ps: torch.optim.Adam(ps, lr=1e-2, weight_decay=1e-3, fused=True),
              "sgd momentum": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, fused=True)}


def train(make_optimizer, kernel: bool, steps: int = 6):
    g = torch.Generator().manual_seed(0)
    params = [torch.randn(7, 5, generator=g).requires_grad_(), torch.randn(7, generator=g).requires_grad_()]
    x = torch.randn(32, 5, generator=g)
    opt = make_optimizer(params)
    stepper = KernelStep(opt) if kernel else None
    for step in range(steps):
        opt.zero_grad(set_to_none=False)
        ((torch.tanh(x @ params[0].t() + params[1]) - 0.1 * step) ** 2).mean().backward()
        stepper.step() if stepper else opt.step()
    return [p.detach().clone() for p in params], stepper


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_kernel_step_fallback_equals_optimizer_step(name, restore):
    reference, _ = train(OPTIMIZERS[name], kernel=False)
    for allow_private in (False, True):
        tp.choose(allow_private)
        got, stepper = train(OPTIMIZERS[name], kernel=True)
        assert stepper.supported == (allow_private and tp.fused_kernels_available())
        for a, b in zip(got, reference):
            assert torch.equal(a, b)  # both paths: bit for bit


# ----------------------------------------------------------------------------- oneDNN product

def test_onednn_linear_fallback_is_f_linear(restore):
    g = torch.Generator().manual_seed(1)
    P, Q, b = torch.randn(64, 300, generator=g), torch.randn(40, 300, generator=g), torch.randn(40, generator=g)
    tp.choose(False)
    fallback = tp.onednn_linear(P, Q, b)
    torch.testing.assert_close(fallback, P @ Q.t() + b)
    tp.choose(True)
    if not tp.onednn_available():
        pytest.skip("this torch has no oneDNN linear")
    torch.testing.assert_close(tp.onednn_linear(P, Q, b), fallback, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("activation,decoder", [("sigmoid", "sigmoid"), ("relu", "linear")])
def test_fused_pass_with_onednn_equals_the_fallback_product(activation, decoder, restore, monkeypatch):
    m, n, s = 128, 256, 128
    assert m * n * s >= ONEDNN_MIN_MACS  # big enough for oneDNN (forced below: the CPU rule may prefer MKL here)
    g = torch.Generator().manual_seed(2)
    model = SparseAutoencoder(n, s, activation, decoder)
    model.reset_parameters(g)
    x = torch.rand(m, n, generator=g)
    results = []
    for allow_private in (True, False):
        tp.choose(allow_private)
        if allow_private and not tp.onednn_available():
            pytest.skip("this torch has no oneDNN linear")
        if not allow_private:  # the fallback never reaches the private kernel
            monkeypatch.setattr(torch._C._nn, "mkldnn_linear", lambda *a: pytest.fail("private kernel called"))
        terms = FusedObjective(model, "kl", onednn=True).loss_and_grad(x, 0.1, 3.0, 1e-3)
        results.append((terms, [p.grad.clone() for p in model.parameters()]))
    (dnn, dnn_grads), (mkl, mkl_grads) = results
    for k in mkl:
        torch.testing.assert_close(dnn[k], mkl[k], rtol=2e-6, atol=1e-7)
    for a, b in zip(dnn_grads, mkl_grads):
        torch.testing.assert_close(a, b, rtol=2e-5, atol=1e-7)


# ----------------------------------------------------------------------------- strong-Wolfe line search

def rosenbrock(x):
    x = x.detach().requires_grad_(True)
    f = (100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum()
    f.backward()
    return f.item(), x.grad


def quadratic(x):
    scale = torch.logspace(0, 3, len(x), dtype=x.dtype)  # condition number 1000
    return 0.5 * float((scale * x * x).sum()), scale * x


def sae_objective(dtype=torch.float64, seed=0):
    """J of a 12 -> 5 sparse autoencoder on 30 samples, as theta (p,) -> (J, dJ/dtheta), and a start theta0."""
    g = torch.Generator().manual_seed(seed)
    model = SparseAutoencoder(12, 5).to(dtype)
    model.reset_parameters(g)
    x = torch.rand(30, 12, generator=g, dtype=dtype)

    def fun(theta):
        load_flat_parameters(model, theta)
        model.zero_grad(set_to_none=True)
        total = sparse_autoencoder_loss(model, x, 0.1, 3.0, 1e-3)["total"]
        total.backward()
        return total.item(), torch.cat([p.grad.reshape(-1) for p in model.parameters()])

    return fun, flat_parameters(model)


def starts():
    g = torch.Generator().manual_seed(3)
    yield "rosenbrock", rosenbrock, torch.randn(6, generator=g, dtype=torch.float64)
    yield "quadratic", quadratic, torch.randn(8, generator=g, dtype=torch.float64)
    fun, theta0 = sae_objective()
    yield "sparse autoencoder", fun, theta0


CASES = [(name, fun, x0, t, perturbed) for name, fun, x0 in starts() for t in (1e-4, 1.0, 10.0)
         for perturbed in (False, True)]


def search_case(fun, x0, perturbed):
    f, g = fun(x0)
    d = -g
    if perturbed:  # a descent direction that is not the gradient's: the search must bracket and zoom
        d = d + 0.5 * g.abs().max() * torch.randn(len(g), generator=torch.Generator().manual_seed(4), dtype=g.dtype)
    gtd = float(g.dot(d))
    assert gtd < 0
    return f, g, d, gtd, lambda x, t, d: fun(x + t * d)


@pytest.mark.parametrize("name,fun,x0,t,perturbed", CASES, ids=[f"{c[0]}-t{c[3]}-{'p' if c[4] else 'g'}" for c in CASES])
def test_fallback_search_meets_the_strong_wolfe_conditions(name, fun, x0, t, perturbed):
    f, g, d, gtd, along = search_case(fun, x0, perturbed)
    f_new, g_new, step, evals = tp.fallback_strong_wolfe(along, x0, t, d, f, g, gtd)
    assert step > 0 and 1 <= evals <= 26
    assert f_new <= f + 1e-4 * step * gtd  # sufficient decrease
    assert abs(float(g_new.dot(d))) <= 0.9 * abs(gtd)  # curvature
    f_check, g_check = fun(x0 + step * d)
    assert math.isclose(f_new, f_check, rel_tol=1e-12) and torch.allclose(g_new, g_check, rtol=1e-12, atol=0)


@needs_torch_search
@pytest.mark.parametrize("name,fun,x0,t,perturbed", CASES, ids=[f"{c[0]}-t{c[3]}-{'p' if c[4] else 'g'}" for c in CASES])
def test_fallback_search_takes_torchs_step(name, fun, x0, t, perturbed):
    f, g, d, gtd, along = search_case(fun, x0, perturbed)
    ours = tp.fallback_strong_wolfe(along, x0, t, d, f, g, gtd)
    theirs = TORCH_STRONG_WOLFE(along, x0, t, d, f, g, gtd)
    assert ours[3] == theirs[3]  # the same trials
    assert math.isclose(ours[2], float(theirs[2]), rel_tol=1e-10)
    assert math.isclose(ours[0], float(theirs[0]), rel_tol=1e-10)
    torch.testing.assert_close(ours[1], theirs[1], rtol=1e-10, atol=1e-12)


@needs_torch_search
def test_fallback_search_takes_torchs_step_in_float32():
    fun, theta0 = sae_objective(torch.float32, seed=1)
    f, g, d, gtd, along = search_case(fun, theta0, perturbed=True)
    for t in (1e-3, 1.0):
        ours = tp.fallback_strong_wolfe(along, theta0, t, d, f, g, gtd)
        theirs = TORCH_STRONG_WOLFE(along, theta0, t, d, f, g, gtd)
        assert ours[3] == theirs[3]
        assert math.isclose(ours[2], float(theirs[2]), rel_tol=1e-4)  # torch interpolates in float32, we in float64
        assert math.isclose(ours[0], float(theirs[0]), rel_tol=1e-5)


@needs_torch_search
@pytest.mark.parametrize("problem", ["rosenbrock", "sparse autoencoder"])
def test_lbfgs_with_the_fallback_search_reaches_torchs_loss(problem, restore):
    if problem == "rosenbrock":
        fun, x0, iterations = rosenbrock, torch.full((10,), -1.0, dtype=torch.float64), 200
    else:
        fun, x0 = sae_objective(seed=2)
        iterations = 60
    finals = []
    for allow_private in (True, False):
        tp.choose(allow_private)
        assert (tp.STRONG_WOLFE in tp.fallbacks_in_use()) != allow_private
        opt = LBFGS(fun, x0, history_size=10)
        for _ in range(iterations):
            if not opt.iterate():
                break
        finals.append(opt.f)
    assert math.isclose(finals[0], finals[1], rel_tol=1e-6, abs_tol=1e-12)


# ----------------------------------------------------------------------------- choice and warning

def test_one_warning_however_often_the_fallbacks_are_used(caplog, restore):
    caplog.set_level(logging.WARNING, logger=tp.__name__)
    assert tp.choose(False) == ALL
    for make in OPTIMIZERS.values():
        train(make, kernel=True)
    model = SparseAutoencoder(256, 128)
    for _ in range(3):
        FusedObjective(model).loss_and_grad(torch.rand(128, 256), 0.1, 3.0, 1e-3)
    opt = LBFGS(quadratic, torch.ones(5, dtype=torch.float64))
    for _ in range(5):
        opt.iterate()
    records = fence_records(caplog)
    assert len(records) == 1
    message = records[0].getMessage()
    assert all(name in message for name in ALL) and tp.ENV_VAR in message


def test_no_warning_when_every_private_api_is_there(caplog, restore):
    caplog.set_level(logging.WARNING, logger=tp.__name__)
    assert tp.choose(True) == ()
    assert fence_records(caplog) == []


def test_missing_private_apis_are_found_at_import(caplog, monkeypatch):
    caplog.set_level(logging.WARNING, logger=tp.__name__)
    monkeypatch.delattr(torch, "_fused_adam_")
    monkeypatch.delattr(torch._C._nn, "mkldnn_linear")
    monkeypatch.delattr(torch_lbfgs, "_strong_wolfe")
    monkeypatch.delenv(tp.ENV_VAR, raising=False)
    try:
        importlib.reload(tp)
        assert tp.fallbacks_in_use() == ALL
        records = fence_records(caplog)
        assert len(records) == 1 and "lacks" in records[0].getMessage()
        opt = LBFGS(rosenbrock, torch.zeros(4, dtype=torch.float64))  # the library runs on the fallbacks
        while opt.iterate():
            pass
        assert opt.f < 1e-10
    finally:
        monkeypatch.undo()
        tp.choose()


def test_import_sae_works_without_the_private_apis():
    """A fresh interpreter whose torch lacks every private API the library uses: ``import sae`` and a run work."""
    script = textwrap.dedent("""
        import torch
        import torch.optim.lbfgs as torch_lbfgs
        # (torch._foreach_add_ stays: torch's own optimiser code needs it; one missing kernel is enough)
        for owner, name in ((torch, "_fused_adam_"), (torch, "_fused_sgd_"), (torch._C._nn, "mkldnn_linear"),
                            (torch_lbfgs, "_strong_wolfe")):
            delattr(owner, name)
        import numpy as np
        import sae
        from sae.core import torch_private
        X = np.random.default_rng(0).random((64, 8), dtype=np.float32)
        trainer = sae.Trainer(X, sae.ModelConfig(8, 3), sae.TrainConfig(optimizer="lbfgs", max_iter=5, rho=0.1))
        trainer.run()
        print(torch_private.fallbacks_in_use(), trainer.history()["total"][-1])
    """)
    env = {k: v for k, v in os.environ.items() if k != tp.ENV_VAR}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[2]), env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert all(name in done.stdout for name in ALL)
    assert done.stderr.count("public-API fallback") == 1  # the one warning (logging's last-resort handler)
