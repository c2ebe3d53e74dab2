"""Each mistaken objective computes what it claims and, trained, does the damage its explanation describes."""

import inspect

import numpy as np
import pytest
import torch

from sae import ModelConfig, SparseAutoencoder, TrainConfig, Trainer, sparse_autoencoder_loss
from sae.experiments import mistakes as M
from sae.data import load_dataset
from sae.core.loss import LOSS_TERMS
from sae.evaluation.metrics import dead_units, hidden_activations, lifetime_sparsity, reconstruction_errors

RHO, BETA, LAMBDA = 0.05, 3.0, 1e-4
CONFIG = TrainConfig(rho=RHO, beta=BETA, weight_decay=LAMBDA, optimizer="lbfgs", max_iter=200, seed=0)
SHAPE = ModelConfig(64, 25)
LOSSES = [m.loss for m in M.MISTAKES.values() if m.loss is not None]


@pytest.fixture(scope="module")
def X():
    return load_dataset("digits").X


_trained: dict = {}


def trained(X, loss):
    """Train (once per loss) the 64-25 model on sklearn digits with UFLDL's 8x8 settings."""
    if loss not in _trained:
        trainer = Trainer(X, SHAPE, CONFIG, loss=loss)
        _trained[loss] = (trainer, trainer.run())
    return _trained[loss]


@pytest.fixture(scope="module")
def correct(X):
    trainer, snap = trained(X, sparse_autoencoder_loss)
    assert snap.status == "finished"
    return trainer.model


def fresh_model(seed=0):
    model = SparseAutoencoder(64, 25)
    model.reset_parameters(torch.Generator().manual_seed(seed))
    return model


# ------------------------------------------------------------------ contract
def test_registry_entries():
    assert set(M.MISTAKES) >= {"rho_hat_scalar", "kl_per_activation", "kl_on_reconstruction", "linear_encoder",
                               "batch_mean_score"}
    for name, m in M.MISTAKES.items():
        assert m.name == name and m.title and m.look_at
        assert 1 <= m.explanation.count(". ") + 1 <= 3  # one or two sentences (plus a parenthesis at most)
    assert M.MISTAKES["batch_mean_score"].loss is None


@pytest.mark.parametrize("loss", LOSSES, ids=lambda f: f.__name__)
def test_same_signature_and_terms_as_the_correct_loss(loss, X):
    assert list(inspect.signature(loss).parameters) == list(inspect.signature(sparse_autoencoder_loss).parameters)
    x = torch.as_tensor(np.array(X[:100]))
    terms = loss(fresh_model(), x, RHO, BETA, LAMBDA, "kl")
    assert set(terms) >= {*LOSS_TERMS, "rho_hat"}
    assert terms["rho_hat"].shape == (25,)
    with pytest.raises(ValueError, match="KL"):
        loss(fresh_model(), x, RHO, BETA, LAMBDA, "l1")


@pytest.mark.parametrize("loss", [M.rho_hat_scalar_loss, M.kl_per_activation_loss, M.kl_on_reconstruction_loss],
                         ids=lambda f: f.__name__)
def test_only_the_sparsity_term_differs(loss, X):
    x = torch.as_tensor(np.array(X[:100]))
    model = fresh_model()
    wrong, right = loss(model, x, RHO, BETA, LAMBDA), sparse_autoencoder_loss(model, x, RHO, BETA, LAMBDA)
    for k in ("reconstruction", "weight_decay"):
        assert float(wrong[k].detach()) == pytest.approx(float(right[k].detach()), rel=1e-6)
    torch.testing.assert_close(wrong["rho_hat"], right["rho_hat"])
    parts = wrong["reconstruction"] + wrong["sparsity"] + wrong["weight_decay"]
    assert float(wrong["total"].detach()) == pytest.approx(float(parts.detach()), rel=1e-6)
    wrong["total"].backward()  # trainable by autograd
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def kl(rho, q):
    return rho * np.log(rho / q) + (1 - rho) * np.log((1 - rho) / (1 - q))


def test_penalties_match_their_formulas(X):
    model = fresh_model()
    x = torch.as_tensor(np.array(X[:100]))
    with torch.no_grad():
        x_hat, a = (t.double().numpy() for t in model(x))
    with torch.no_grad():
        scalar = M.rho_hat_scalar_loss(model, x, RHO, BETA, LAMBDA)["sparsity"]
        per_act = M.kl_per_activation_loss(model, x, RHO, BETA, LAMBDA)["sparsity"]
        on_out = M.kl_on_reconstruction_loss(model, x, RHO, BETA, LAMBDA)["sparsity"]
    assert float(scalar) == pytest.approx(BETA * kl(RHO, a.mean()), rel=1e-4)  # beta KL(rho || mean of all a)
    assert float(per_act) == pytest.approx(BETA * kl(RHO, a).sum(1).mean(), rel=1e-4)
    assert float(on_out) == pytest.approx(BETA * kl(RHO, x_hat.mean(0)).sum(), rel=1e-4)


# ------------------------------------------------------------------ (a) scalar rho_hat
def test_scalar_rho_hat_lets_units_sit_far_from_rho(X, correct):
    trainer, snap = trained(X, M.rho_hat_scalar_loss)
    assert snap.status == "finished"
    right = hidden_activations(correct, X)
    wrong = hidden_activations(trainer.model, X)
    r_right, r_wrong = right.mean(0), wrong.mean(0)
    assert r_right.std() < 0.01 and np.abs(r_right - RHO).max() < 0.02  # correct: every unit near rho
    assert r_wrong.std() > 20 * r_right.std()  # measured ~0.15 vs ~0.001
    assert np.abs(r_wrong - RHO).max() > 0.2  # some units far above rho ...
    assert len(dead_units(wrong)) >= 5 and len(dead_units(right)) == 0  # ... and others never fire
    assert abs(r_wrong.mean() - RHO) < 0.25 * np.abs(r_wrong - RHO).max()  # while the layer mean stays close


# ------------------------------------------------------------------ (b) KL on every activation
def test_kl_per_activation_removes_selectivity(X, correct):
    trainer, snap = trained(X, M.kl_per_activation_loss)
    assert snap.status == "finished"
    right = hidden_activations(correct, X)
    wrong = hidden_activations(trainer.model, X)
    assert np.abs(wrong - RHO).mean() < 0.5 * np.abs(right - RHO).mean()  # activations pulled towards rho
    assert wrong.std(0).mean() < 0.3 * right.std(0).mean()  # per-unit variance collapses (~0.02 vs ~0.12)
    assert lifetime_sparsity(wrong).mean() < 0.5 * lifetime_sparsity(right).mean()  # no selectivity
    assert (wrong > 0.5).mean() < 0.2 * (right > 0.5).mean()  # units no longer fire strongly on anything


# ------------------------------------------------------------------ (c) KL on the reconstruction
def test_kl_on_reconstruction_harms_reconstruction(X, correct):
    trainer, snap = trained(X, M.kl_on_reconstruction_loss)
    assert snap.status == "finished"
    right, wrong = reconstruction_errors(correct, X).mean(), reconstruction_errors(trainer.model, X).mean()
    assert wrong > 4 * right  # measured ~5.6 vs ~0.57
    assert np.abs(hidden_activations(trainer.model, X).mean(0) - RHO).mean() > 0.2  # hidden layer not sparse


# ------------------------------------------------------------------ (d) linear encoder
def test_linear_encoder_gives_nan(X):
    model = fresh_model()
    terms = M.linear_encoder_loss(model, torch.as_tensor(np.array(X)), RHO, BETA, LAMBDA)
    assert (terms["rho_hat"] < 0).any()  # a mean of W1 x + b1 below zero ...
    assert torch.isnan(terms["total"]) and torch.isnan(terms["sparsity"])  # ... and the log of it is NaN
    assert torch.isfinite(terms["reconstruction"])


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_linear_encoder_trainer_reports_divergence(X, optimizer):
    trainer = Trainer(X, SHAPE, TrainConfig(rho=RHO, beta=BETA, weight_decay=LAMBDA, optimizer=optimizer,
                                            max_iter=50, epochs=2, seed=0), loss=M.linear_encoder_loss)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    snap = trainer.run()
    assert snap.status == "diverged" and "NaN" in snap.reason
    assert snap.step == 0
    for k, v in trainer.model.state_dict().items():  # the Trainer kept the last sound weights
        torch.testing.assert_close(v, before[k])


# ------------------------------------------------------------------ (e) batch-mean anomaly score
def test_batch_mean_scores_cannot_single_out_an_outlier(X, correct):
    data = np.array(X[:256])
    outlier = 37
    data[outlier] = 1.0 - data[outlier]  # an inverted digit: nothing like the training data
    batch = 64
    wrong = M.batch_mean_scores(correct, data, batch_size=batch)
    right = reconstruction_errors(correct, data)
    assert wrong.shape == right.shape == (256,)
    for start in range(0, 256, batch):  # one value per batch, the batch's mean error
        assert np.all(wrong[start:start + batch] == wrong[start])
        assert wrong[start] == pytest.approx(right[start:start + batch].mean(), rel=1e-6)
    assert np.sum(wrong == wrong[outlier]) == batch  # the outlier ties with its 63 batch-mates
    assert np.argmax(right) == outlier  # the per-sample score ranks it first ...
    assert right[outlier] > 2 * np.sort(right)[-2]  # ... by a wide margin
    np.testing.assert_allclose(M.batch_mean_scores(correct, data, batch_size=1), right, rtol=1e-6)


# ------------------------------------------------------------------ (f) softmax output
def test_softmax_output_cannot_reconstruct(X, correct):
    trainer, snap = trained(X, M.softmax_output_loss)
    assert snap.status == "finished"
    history = trainer.history()
    assert history["reconstruction"][-1] < history["reconstruction"][0]  # it was optimised ...
    x_hat = M.softmax_reconstructions(trainer.model, X)
    np.testing.assert_allclose(x_hat.sum(1), 1.0, rtol=1e-5)  # ... but each reconstruction sums to 1
    wrong = 0.5 * ((x_hat - X) ** 2).sum(1)
    assert wrong.mean() == pytest.approx(history["reconstruction"][-1], rel=1e-3)
    # any x_hat on the plane sum = 1 is at least |sum(x) - 1| / sqrt(n) away from x: no weights can do better
    bound = 0.5 * (X.sum(1) - 1.0) ** 2 / X.shape[1]
    assert np.all(wrong >= bound - 1e-5)
    right = reconstruction_errors(correct, X).mean()
    assert bound.mean() > 4 * right  # the bound alone is far above the sigmoid decoder's error (~2.7 vs ~0.57)
    assert wrong.mean() > 10 * right


def test_side_helpers_for_the_page():
    from sae.experiments.mistake_compare import Side
    from sae.training.status import RunStatus

    A = np.array([[0.9, 0.0, 0.5], [0.8, 0.05, 0.0]])
    common = dict(label="x", reason="", history={}, W1=np.zeros((3, 4)), activations=A, errors=np.zeros(2), summary={})
    ok = Side(status=RunStatus.FINISHED, rho_hat=np.array([0.85, 0.025, 0.25]), **common)
    assert not ok.diverged and ok.dead_units().tolist() == [1] and ok.rho_hat_out_of_range() == (0, 0)
    bad = Side(status="diverged", rho_hat=np.array([-0.2, 1.5, 2.0]), **common)
    assert bad.diverged and bad.dead_units().tolist() == [] and bad.rho_hat_out_of_range() == (1, 2)
