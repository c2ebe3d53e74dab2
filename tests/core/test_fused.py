"""The fast path equals autograd: gradients, training runs, and the gradient check."""

import numpy as np
import pytest
import torch

from sae import ModelConfig, SparseAutoencoder, TrainConfig, Trainer, sparse_autoencoder_loss
from sae.core import fused as fused_module
from sae.core.fused import ONEDNN_MIN_MACS, FusedObjective, onednn_available, supports, takes_onednn
from sae.core.gradcheck import numerical_gradient, relative_difference
from sae.core.model import flat_parameters, load_flat_parameters

CASES = [("sigmoid", "sigmoid", "kl"), ("sigmoid", "linear", "kl"), ("tanh", "sigmoid", "kl"),
         ("tanh", "linear", "l1"), ("relu", "linear", "l1"), ("sigmoid", "sigmoid", "l1")]


def make(activation, decoder, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    model = SparseAutoencoder(12, 7, activation, decoder).to(dtype)
    model.reset_parameters(g)
    with torch.no_grad():
        model.encoder.bias.uniform_(-0.3, 0.3, generator=g)
        model.decoder.bias.uniform_(-0.3, 0.3, generator=g)
    return model, torch.rand(20, 12, generator=g, dtype=dtype)


@pytest.mark.parametrize("activation,decoder,penalty", CASES)
def test_fused_terms_and_gradients_equal_autograd(activation, decoder, penalty):
    model, x = make(activation, decoder)
    ref = sparse_autoencoder_loss(model, x, 0.1, 3.0, 1e-3, penalty)
    ref["total"].backward()
    ref_grads = {k: p.grad.clone() for k, p in model.named_parameters()}
    got = FusedObjective(model, penalty).loss_and_grad(x, 0.1, 3.0, 1e-3)
    for k in ("total", "reconstruction", "sparsity", "weight_decay", "rho_hat"):
        torch.testing.assert_close(got[k], ref[k].detach(), rtol=1e-12, atol=1e-14)
    for k, p in model.named_parameters():
        torch.testing.assert_close(p.grad, ref_grads[k], rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("activation,decoder,penalty", CASES)
def test_fused_gradient_check_below_1e9(activation, decoder, penalty):
    model, x = make(activation, decoder, seed=3)
    fused = FusedObjective(model, penalty)
    theta0 = flat_parameters(model)

    def loss(theta):
        load_flat_parameters(model, theta)
        return fused.loss_and_grad(x, 0.1, 3.0, 1e-3)["total"]

    loss(theta0)
    g = torch.cat([p.grad.reshape(-1).clone() for p in model.parameters()])
    assert relative_difference(numerical_gradient(loss, theta0), g) < 1e-9


def test_supports():
    assert supports(SparseAutoencoder(4, 3), "kl")
    assert not supports(SparseAutoencoder(4, 3, "relu", topk=2), "topk")
    assert not supports(SparseAutoencoder(4, 3), "kl", rho_hat_mode="ema")


@pytest.mark.parametrize("optimizer,lr,steps", [("adam", 1e-2, None), ("sgd", 0.3, None), ("lbfgs", 1.0, 10)])
def test_fused_training_run_matches_autograd_run(optimizer, lr, steps):
    """Same runs within float32 rounding. L-BFGS amplifies rounding over many iterations (its path is
    chaotic), so it is compared over its first 10 iterations."""
    X = np.random.default_rng(0).random((500, 16), dtype=np.float32)
    cfg = TrainConfig(optimizer=optimizer, lr=lr, epochs=5, max_iter=steps or 30, batch_size=50, rho=0.1)
    runs = []
    for fused in (True, False):
        trainer = Trainer(X, ModelConfig(16, 6), cfg, fused=fused)
        assert (trainer._fused is not None) == fused
        trainer.run()
        runs.append((trainer.model.encoder.weight.detach(), trainer.history()["total"]))
    torch.testing.assert_close(runs[0][0], runs[1][0], rtol=1e-3, atol=2e-4)
    np.testing.assert_allclose(runs[0][1], runs[1][1], rtol=1e-4)


def test_fused_with_denoising_target_equals_autograd():
    model, x = make("sigmoid", "sigmoid")
    target = torch.rand_like(x)
    ref = sparse_autoencoder_loss(model, x, 0.1, 3.0, 1e-3, target=target)
    ref["total"].backward()
    ref_grads = {k: p.grad.clone() for k, p in model.named_parameters()}
    got = FusedObjective(model).loss_and_grad(x, 0.1, 3.0, 1e-3, target)
    torch.testing.assert_close(got["total"], ref["total"].detach())
    for k, p in model.named_parameters():
        torch.testing.assert_close(p.grad, ref_grads[k])


@pytest.mark.parametrize("bias", [-60.0, 60.0])
def test_fused_gradient_equals_autograd_where_the_kl_clamp_bites(bias):
    """A unit stuck at 0 (or 1) has rho_hat outside [eps, 1 - eps]: the clamped KL passes no gradient there."""
    model, x = make("sigmoid", "sigmoid")
    with torch.no_grad():
        model.encoder.bias[0] = bias
    ref = sparse_autoencoder_loss(model, x, 0.1, 3.0, 1e-3)
    eps = torch.finfo(x.dtype).eps
    assert not eps < float(ref["rho_hat"][0].detach()) < 1 - eps  # the clamp is active for unit 0
    ref["total"].backward()
    ref_grads = {k: p.grad.clone() for k, p in model.named_parameters()}
    got = FusedObjective(model).loss_and_grad(x, 0.1, 3.0, 1e-3)
    torch.testing.assert_close(got["total"], ref["total"].detach(), rtol=1e-12, atol=1e-14)
    for k, p in model.named_parameters():
        torch.testing.assert_close(p.grad, ref_grads[k], rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("activation,decoder,penalty", CASES)
def test_samples_in_columns_gives_the_same_terms_and_gradients(activation, decoder, penalty):
    """X^T (n, m) in, UFLDL's layout: the same J and dJ/dtheta as one sample per row (float64 rounding)."""
    model, x = make(activation, decoder, seed=5)
    target = torch.rand_like(x)
    fused = FusedObjective(model, penalty)
    for tgt in (None, target):
        rows = fused.loss_and_grad(x, 0.1, 3.0, 1e-3, tgt)
        rows_grads = [p.grad.clone() for p in model.parameters()]
        cols = fused.loss_and_grad(x.t().contiguous(), 0.1, 3.0, 1e-3, None if tgt is None else tgt.t().contiguous(),
                                   samples_in_columns=True)
        for k in rows:
            torch.testing.assert_close(cols[k], rows[k], rtol=1e-12, atol=1e-14)
        for g, p in zip(rows_grads, model.parameters()):
            torch.testing.assert_close(p.grad, g, rtol=1e-12, atol=1e-14)


@pytest.mark.skipif(not onednn_available(), reason="oneDNN linear unavailable or fenced off (sae.core.torch_private)")
@pytest.mark.parametrize("activation,decoder,penalty", CASES)
def test_onednn_products_equal_mkl_products_in_float32(activation, decoder, penalty):
    """The oneDNN kernels (used for big minibatch products) give MKL's terms and gradients within float32 rounding."""
    model, x = make(activation, decoder, dtype=torch.float32, seed=7)
    target = torch.rand_like(x)
    results = []
    for onednn in (False, True):
        terms = FusedObjective(model, penalty, onednn=onednn).loss_and_grad(x, 0.1, 3.0, 1e-3, target)
        results.append((terms, [p.grad.clone() for p in model.parameters()]))
    (mkl, mkl_grads), (dnn, dnn_grads) = results
    for k in mkl:
        torch.testing.assert_close(dnn[k], mkl[k], rtol=2e-6, atol=1e-7)
    for a, b in zip(dnn_grads, mkl_grads):
        torch.testing.assert_close(a, b, rtol=2e-5, atol=1e-7)


@pytest.mark.parametrize("faster_here", [True, False])
def test_big_float32_minibatches_go_to_onednn_only_where_it_is_the_faster_library(faster_here, monkeypatch):
    """The rule's decision, not its timing: 5 oneDNN products for a big minibatch where sae.core.cpu says oneDNN
    beats MKL (AVX-512, not Intel), none for a small one, none anywhere else."""
    monkeypatch.setattr(fused_module, "onednn_is_faster_here", lambda: faster_here)
    calls = []
    original = torch._C._nn.mkldnn_linear
    monkeypatch.setattr(torch._C._nn, "mkldnn_linear", lambda *a: calls.append(1) or original(*a))
    for m, n, s in ((256, 784, 196), (256, 64, 25)):
        big = m * n * s >= ONEDNN_MIN_MACS
        assert takes_onednn(m, n, s) == (big and faster_here and onednn_available())
        assert not takes_onednn(m, n, s, torch.float64)
        FusedObjective(SparseAutoencoder(n, s)).loss_and_grad(torch.rand(m, n), 0.1, 3.0, 1e-3)
        assert len(calls) == (5 if takes_onednn(m, n, s) else 0)
        calls.clear()


def test_fast_path_training_on_a_mnist_sized_model_matches_autograd():
    """784 -> 196, batch 256 (oneDNN products where available): the run equals the autograd run within float32."""
    X = np.random.default_rng(1).random((768, 784), dtype=np.float32)
    cfg = TrainConfig(lr=1e-3, epochs=3, batch_size=256, rho=0.1, seed=0)
    runs = []
    for fused in (True, False):
        trainer = Trainer(X, ModelConfig(784, 196), cfg, fused=fused)
        trainer.run()
        runs.append((trainer.model.encoder.weight.detach().clone(), trainer.history()["total"]))
    torch.testing.assert_close(runs[0][0], runs[1][0], rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(runs[0][1], runs[1][1], rtol=1e-5)
