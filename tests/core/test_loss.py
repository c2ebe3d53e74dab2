"""Oracle tests: the loss against a hand-written NumPy formula (UFLDL's sparseAutoencoderCost)."""

import numpy as np
import pytest
import torch

from sae import SparseAutoencoder, kl_divergence, kl_divergence_grad, sparse_autoencoder_loss


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def ufldl_cost_and_grad(W1, b1, W2, b2, X, rho, beta, lam):
    """UFLDL's sparseAutoencoderCost, columns = samples as in the notes: X (n, m). Returns cost, grads, terms."""
    m = X.shape[1]
    z2 = W1 @ X + b1[:, None]
    a2 = sigmoid(z2)
    z3 = W2 @ a2 + b2[:, None]
    a3 = sigmoid(z3)
    rho_hat = a2.mean(axis=1)
    recon = 0.5 * np.sum((a3 - X) ** 2) / m
    kl = np.sum(rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat)))
    decay = 0.5 * lam * (np.sum(W1 ** 2) + np.sum(W2 ** 2))
    delta3 = -(X - a3) * a3 * (1 - a3)
    sparsity_delta = beta * (-rho / rho_hat + (1 - rho) / (1 - rho_hat))
    delta2 = (W2.T @ delta3 + sparsity_delta[:, None]) * a2 * (1 - a2)
    grads = {
        "encoder.weight": delta2 @ X.T / m + lam * W1,
        "encoder.bias": delta2.sum(axis=1) / m,
        "decoder.weight": delta3 @ a2.T / m + lam * W2,
        "decoder.bias": delta3.sum(axis=1) / m,
    }
    terms = {"reconstruction": recon, "sparsity": beta * kl, "weight_decay": decay,
             "total": recon + beta * kl + decay, "rho_hat": rho_hat}
    return terms, grads


@pytest.fixture
def model_and_data():
    g = torch.Generator().manual_seed(0)
    model = SparseAutoencoder(12, 7).double()
    model.reset_parameters(g)
    with torch.no_grad():
        model.encoder.bias.uniform_(-0.2, 0.2, generator=g)
        model.decoder.bias.uniform_(-0.2, 0.2, generator=g)
    x = torch.rand(20, 12, generator=g, dtype=torch.float64)
    return model, x


def test_loss_terms_match_numpy_oracle(model_and_data):
    model, x = model_and_data
    rho, beta, lam = 0.05, 3.0, 1e-3
    terms = sparse_autoencoder_loss(model, x, rho, beta, lam)
    p = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    oracle, _ = ufldl_cost_and_grad(p["encoder.weight"], p["encoder.bias"], p["decoder.weight"], p["decoder.bias"],
                                    x.numpy().T, rho, beta, lam)
    for name in ("reconstruction", "sparsity", "weight_decay", "total"):
        assert terms[name].item() == pytest.approx(oracle[name], rel=1e-12), name
    np.testing.assert_allclose(terms["rho_hat"].detach().numpy(), oracle["rho_hat"], rtol=1e-12)


def test_gradients_match_ufldl_backprop(model_and_data):
    model, x = model_and_data
    rho, beta, lam = 0.1, 3.0, 3e-3
    sparse_autoencoder_loss(model, x, rho, beta, lam)["total"].backward()
    p = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    _, grads = ufldl_cost_and_grad(p["encoder.weight"], p["encoder.bias"], p["decoder.weight"], p["decoder.bias"],
                                   x.numpy().T, rho, beta, lam)
    for name, param in model.named_parameters():
        np.testing.assert_allclose(param.grad.numpy(), grads[name], rtol=1e-10, atol=1e-14, err_msg=name)


def test_rho_hat_is_per_unit_mean_over_samples(model_and_data):
    model, x = model_and_data
    terms = sparse_autoencoder_loss(model, x, 0.1, 3.0, 0.0)
    a = model.encode(x).detach()
    assert terms["rho_hat"].shape == (7,)
    torch.testing.assert_close(terms["rho_hat"].detach(), a.mean(dim=0))


def test_weight_decay_excludes_biases(model_and_data):
    model, x = model_and_data
    before = sparse_autoencoder_loss(model, x, 0.1, 3.0, 1.0)["weight_decay"].item()
    with torch.no_grad():
        model.encoder.bias.add_(5.0)
        model.decoder.bias.add_(5.0)
    assert sparse_autoencoder_loss(model, x, 0.1, 3.0, 1.0)["weight_decay"].item() == pytest.approx(before)


@pytest.mark.parametrize("rho", [0.01, 0.05, 0.2, 0.5, 0.9])
def test_kl_zero_at_target_positive_elsewhere(rho):
    rho_hat = torch.linspace(0.001, 0.999, 999, dtype=torch.float64)
    kl = kl_divergence(rho, rho_hat)
    assert kl_divergence(rho, torch.tensor([rho], dtype=torch.float64)).abs().item() < 1e-15
    far = (rho_hat - rho).abs() > 1e-6
    assert (kl[far] > 0).all()
    # minimum of the curve sits at rho
    assert abs(rho_hat[kl.argmin()].item() - rho) <= 0.001


def test_kl_matches_formula_and_derivative():
    rho, rho_hat = 0.2, torch.tensor([0.05, 0.2, 0.6], dtype=torch.float64, requires_grad=True)
    expected = [rho * np.log(rho / r) + (1 - rho) * np.log((1 - rho) / (1 - r)) for r in (0.05, 0.2, 0.6)]
    kl = kl_divergence(rho, rho_hat)
    np.testing.assert_allclose(kl.detach().numpy(), expected, rtol=1e-13)
    kl.sum().backward()
    torch.testing.assert_close(rho_hat.grad, kl_divergence_grad(rho, rho_hat.detach()))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kl_finite_at_zero_and_one(dtype):
    rho_hat = torch.tensor([0.0, 1.0], dtype=dtype, requires_grad=True)
    kl = kl_divergence(0.05, rho_hat)
    assert torch.isfinite(kl).all() and (kl > 0).all()
    kl.sum().backward()
    assert torch.isfinite(rho_hat.grad).all()


def test_tanh_rho_hat_measured_on_shifted_activity():
    model = SparseAutoencoder(5, 3, activation="tanh").double()
    x = torch.rand(8, 5, dtype=torch.float64)
    terms = sparse_autoencoder_loss(model, x, 0.1, 1.0, 0.0)
    torch.testing.assert_close(terms["rho_hat"].detach(), ((model.encode(x) + 1) / 2).mean(0).detach())
    assert ((terms["rho_hat"] > 0) & (terms["rho_hat"] < 1)).all()


def test_l1_penalty_is_beta_mean_of_row_sums():
    model = SparseAutoencoder(5, 4, activation="relu", decoder_activation="linear").double()
    x = torch.rand(6, 5, dtype=torch.float64)
    terms = sparse_autoencoder_loss(model, x, 0.1, 2.5, 0.0, penalty="l1")
    a = model.encode(x).detach()
    assert terms["sparsity"].item() == pytest.approx(2.5 * a.abs().sum(dim=1).mean().item(), rel=1e-12)


def test_topk_keeps_k_largest_and_has_no_penalty():
    model = SparseAutoencoder(6, 10, activation="relu", topk=3).double()
    x = torch.rand(9, 6, dtype=torch.float64)
    a = model.encode(x)
    assert ((a != 0).sum(dim=1) <= 3).all()
    dense = torch.relu(model.encoder(x))
    torch.testing.assert_close(a.max(dim=1).values, dense.max(dim=1).values)
    assert sparse_autoencoder_loss(model, x, 0.1, 3.0, 0.0, penalty="topk")["sparsity"].item() == 0.0


def test_ema_rho_hat_mixes_prior_and_batch(model_and_data):
    model, x = model_and_data
    prior = torch.full((7,), 0.3, dtype=torch.float64)
    terms = sparse_autoencoder_loss(model, x, 0.1, 3.0, 0.0, rho_hat_prior=prior, ema_decay=0.9)
    batch = model.encode(x).mean(0).detach()
    torch.testing.assert_close(terms["rho_hat"].detach(), 0.9 * prior + 0.1 * batch)


def test_unknown_penalty_rejected(model_and_data):
    model, x = model_and_data
    with pytest.raises(ValueError, match="unknown penalty"):
        sparse_autoencoder_loss(model, x, 0.1, 3.0, 0.0, penalty="l2")
