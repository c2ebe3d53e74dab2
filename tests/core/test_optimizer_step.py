"""KernelStep: the optimiser's own update, bit for bit, without torch.optim's per-step Python."""

import pytest
import torch

from sae.core.optimizer_step import KernelStep
from sae.core.torch_private import fused_kernels_available


def problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    params = [torch.randn(7, 5, generator=g).requires_grad_(), torch.randn(7, generator=g).requires_grad_()]
    x = torch.randn(32, 5, generator=g)
    return params, x


def loss(params, x, step):
    w, b = params
    return ((torch.tanh(x @ w.t() + b) - 0.1 * step) ** 2).mean()


def train(make_optimizer, use_kernel, steps=25, lr_change_at=10):
    params, x = problem()
    opt = make_optimizer(params)
    update = KernelStep(opt).step if use_kernel else opt.step
    for step in range(steps):
        for p in params:
            p.grad = None if step == 0 else p.grad
        if step:
            for p in params:
                p.grad.zero_()
        loss(params, x, step).backward()
        if step == lr_change_at:
            opt.param_groups[0]["lr"] *= 0.5  # a live learning-rate change is read at the next step
        update()
    return [p.detach().clone() for p in params], opt


OPTIMIZERS = {
    "adam": lambda ps: torch.optim.Adam(ps, lr=1e-2, fused=True),
    "adam with decay": lambda ps: torch.optim.Adam(ps, lr=1e-2, weight_decay=1e-2, fused=True),
    "sgd": lambda ps: torch.optim.SGD(ps, lr=0.1, fused=True),
    "sgd momentum": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, fused=True),
}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_kernel_step_equals_optimizer_step_bitwise(name):
    (ref, ref_opt), (got, got_opt) = (train(OPTIMIZERS[name], False), train(OPTIMIZERS[name], True))
    for a, b in zip(ref, got):
        assert torch.equal(a, b)
    for p_ref, p_got in zip(ref_opt.param_groups[0]["params"], got_opt.param_groups[0]["params"]):
        s_ref, s_got = ref_opt.state[p_ref], got_opt.state[p_got]
        assert s_ref.keys() == s_got.keys()
        for k in s_ref:  # the optimiser's state (moments, step counts) advanced exactly as its own step does
            assert torch.equal(s_ref[k], s_got[k]), k


@pytest.mark.skipif(not fused_kernels_available(), reason="fused kernels fenced off (sae.core.torch_private)")
def test_kernel_step_is_used_after_the_first_step():
    params, x = problem()
    opt = torch.optim.Adam(params, lr=1e-2, fused=True)
    kernel = KernelStep(opt)
    calls = []
    original = opt.step
    opt.step = lambda *a, **k: (calls.append(1), original(*a, **k))[1]
    for _ in range(5):
        opt.zero_grad(set_to_none=False)
        loss(params, x, 0).backward()
        kernel.step()
    assert kernel.supported and len(calls) == 1  # only the first step (it creates the state)
    assert int(opt.state[params[0]]["step"]) == 5


@pytest.mark.parametrize("make", [lambda ps: torch.optim.Adam(ps, lr=1e-2),  # not fused
                                  lambda ps: torch.optim.Adam(ps, lr=1e-2, amsgrad=True, fused=True),
                                  lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, fused=True),
                                  lambda ps: torch.optim.AdamW(ps, lr=1e-2, fused=True)])
def test_unsupported_settings_fall_back_to_the_optimizer(make):
    ref, _ = train(make, False)
    got, opt = train(make, True)
    assert not KernelStep(opt).supported
    for a, b in zip(ref, got):
        assert torch.equal(a, b)


def test_a_replaced_gradient_tensor_is_picked_up():
    params, x = problem()
    opt = torch.optim.SGD(params, lr=0.1, fused=True)
    kernel = KernelStep(opt)
    loss(params, x, 0).backward()
    kernel.step()
    before = [p.detach().clone() for p in params]
    for p in params:
        p.grad = torch.ones_like(p)  # a new tensor, not the one the kernel collected
    kernel.step()
    for p, b in zip(params, before):
        torch.testing.assert_close(p.detach(), b - 0.1)
