r"""Mistakes that circulate in copied sparse-autoencoder code, as trainable objectives.

Each ``*_loss`` has the signature and named terms of ``sae.core.loss.sparse_autoencoder_loss``, so
``Trainer(X, model_config, train_config, loss=fn)`` trains it (through autograd) and the dashboard can
put it next to the correct objective. The correct one, for m samples and s hidden units, is

    J = (1/m) sum_i 1/2 ||x_hat_i - x_i||^2 + lambda/2 (||W1||^2 + ||W2||^2) + beta sum_j KL(rho || rho_hat_j),
    rho_hat_j = (1/m) sum_i a_ij                       one mean activation per hidden unit, shape (s,)

Every variant below keeps the reconstruction and weight-decay terms and changes only the sparsity term
(or, for the linear encoder and the softmax output, the network it is computed on). Every variant returns
as ``rho_hat`` the true per-unit mean activation (s,) of the hidden layer it computes, whatever its own
penalty looked at, so the dashboard's rho_hat plots show what the mistake does to the units.

The fifth mistake is not an objective: ``batch_mean_scores`` scores each sample by the mean loss of its
batch, the way an anomaly detector built on the training loss's ``loss.item()`` does.

``MISTAKES`` maps a short name to a :class:`Mistake` (title, explanation, loss or None, what to look at).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from sae.core.loss import kl_divergence, mean_activation
from sae.evaluation.metrics import reconstruction_errors
from sae.core.model import SparseAutoencoder, unit_activity

LossFunction = Callable[..., dict[str, Tensor]]


def _check_kl(penalty: str) -> None:
    if penalty != "kl":
        raise ValueError(f"this mistaken objective is a variant of the KL penalty; got penalty={penalty!r}.")


def _reconstruction(x_hat: Tensor, x: Tensor, target: Tensor | None) -> Tensor:
    """(1/m) sum_i 1/2 ||x_hat_i - t_i||^2, t = target or x. (m, n) -> scalar."""
    return 0.5 * (x_hat - (x if target is None else target)).pow(2).sum() / x.shape[0]


def _weight_decay(model: SparseAutoencoder, weight_decay: float) -> Tensor:
    """lambda/2 (||W1||^2 + ||W2||^2), biases not decayed."""
    return 0.5 * weight_decay * (model.encoder.weight.pow(2).sum() + model.decoder.weight.pow(2).sum())


def _unit_rho_hat(a: Tensor, activation: str, rho_hat_prior: Tensor | None, ema_decay: float) -> Tensor:
    """Per-unit rho_hat (s,) from a (m, s), blended with a running estimate as the correct loss does."""
    rho_hat = mean_activation(a, activation)
    if rho_hat_prior is not None:
        rho_hat = ema_decay * rho_hat_prior.detach() + (1.0 - ema_decay) * rho_hat
    return rho_hat


def _terms(reconstruction: Tensor, sparsity: Tensor, decay: Tensor, rho_hat: Tensor) -> dict[str, Tensor]:
    return {"total": reconstruction + sparsity + decay, "reconstruction": reconstruction,
            "sparsity": sparsity, "weight_decay": decay, "rho_hat": rho_hat}


def textbook_kl(rho: float, rho_hat: Tensor) -> Tensor:
    """KL(rho||rho_hat) written out as copied code writes it, without a clamp: NaN for rho_hat outside (0, 1).

    rho log(rho / rho_hat) + (1 - rho) log((1 - rho) / (1 - rho_hat)), elementwise. ``sae.core.loss.kl_divergence``
    is the same formula with rho_hat clamped to [eps, 1 - eps].
    """
    return rho * torch.log(rho / rho_hat) + (1.0 - rho) * torch.log((1.0 - rho) / (1.0 - rho_hat))


# ----------------------------------------------------------------------------------------------- (a)
def rho_hat_scalar_loss(model: SparseAutoencoder, x: Tensor, rho: float, beta: float, weight_decay: float,
                        penalty: str = "kl", *, target: Tensor | None = None, rho_hat_prior: Tensor | None = None,
                        ema_decay: float = 0.0) -> dict[str, Tensor]:
    r"""Mistake: one scalar rho_bar = (1/(m s)) sum_ij a_ij for the whole layer, penalised as beta KL(rho||rho_bar).

    This is the form copied code uses (``rho_hat = tf.reduce_mean(h)`` or ``torch.mean(a)`` with no axis,
    then ``beta * kl``): no factor s, so the penalty is also s times weaker than beta sum_j KL(rho||rho_hat_j).
    Only the layer's mean is held at rho, so units may split into always-on and never-on ones.
    Shapes: x (m, n); returned rho_hat is the per-unit (s,) mean (not penalised individually).
    """
    _check_kl(penalty)
    x_hat, a = model(x)
    rho_hat = _unit_rho_hat(a, model.activation, rho_hat_prior, ema_decay)
    sparsity = beta * kl_divergence(rho, rho_hat.mean())
    return _terms(_reconstruction(x_hat, x, target), sparsity, _weight_decay(model, weight_decay), rho_hat)


# ----------------------------------------------------------------------------------------------- (b)
def kl_per_activation_loss(model: SparseAutoencoder, x: Tensor, rho: float, beta: float, weight_decay: float,
                           penalty: str = "kl", *, target: Tensor | None = None,
                           rho_hat_prior: Tensor | None = None, ema_decay: float = 0.0) -> dict[str, Tensor]:
    r"""Mistake: KL against every single activation, beta sum_j (1/m) sum_i KL(rho||a_ij), instead of against rho_hat_j.

    Summed over units and averaged over samples, so it has the correct penalty's scale when all activations
    are equal. It pulls each a_ij towards rho, on every sample: units stop being selective (low variance
    across samples) instead of firing rarely and strongly. ``rho_hat_prior`` is ignored by the penalty.
    Shapes: x (m, n), a (m, s); returned rho_hat (s,).
    """
    _check_kl(penalty)
    x_hat, a = model(x)
    activity = unit_activity(a, model.activation)
    sparsity = beta * kl_divergence(rho, activity).sum() / x.shape[0]
    rho_hat = _unit_rho_hat(a, model.activation, rho_hat_prior, ema_decay)
    return _terms(_reconstruction(x_hat, x, target), sparsity, _weight_decay(model, weight_decay), rho_hat)


# ----------------------------------------------------------------------------------------------- (c)
def kl_on_reconstruction_loss(model: SparseAutoencoder, x: Tensor, rho: float, beta: float, weight_decay: float,
                              penalty: str = "kl", *, target: Tensor | None = None,
                              rho_hat_prior: Tensor | None = None, ema_decay: float = 0.0) -> dict[str, Tensor]:
    r"""Mistake: the KL penalty on the output layer, beta sum_k KL(rho||(1/m) sum_i x_hat_ik), not on the hidden layer.

    It drags each output pixel's mean towards rho, fighting the reconstruction (the data's pixel means are not
    rho), and leaves the hidden layer unconstrained. Shapes: x, x_hat (m, n); the penalised means are (n,);
    returned rho_hat is the hidden layer's (s,), which nothing here holds at rho.
    """
    _check_kl(penalty)
    x_hat, a = model(x)
    sparsity = beta * kl_divergence(rho, x_hat.mean(dim=0)).sum()
    rho_hat = _unit_rho_hat(a, model.activation, rho_hat_prior, ema_decay)
    return _terms(_reconstruction(x_hat, x, target), sparsity, _weight_decay(model, weight_decay), rho_hat)


# ----------------------------------------------------------------------------------------------- (d)
def linear_encoder_loss(model: SparseAutoencoder, x: Tensor, rho: float, beta: float, weight_decay: float,
                        penalty: str = "kl", *, target: Tensor | None = None, rho_hat_prior: Tensor | None = None,
                        ema_decay: float = 0.0) -> dict[str, Tensor]:
    r"""Mistake: no sigmoid in the encoder, a = W1 x + b1, under the KL penalty written out as in copied code.

    rho_hat_j = (1/m) sum_i a_ij is then any real number; for rho_hat_j < 0 the term log(rho / rho_hat_j) is the
    log of a negative number and for rho_hat_j > 1 so is log((1 - rho) / (1 - rho_hat_j)): the loss is NaN
    (``textbook_kl``). The model's own activation is bypassed (its encoder's pre-activation is used; the
    decoder is the model's). ``rho_hat_prior`` is ignored. Shapes: x (m, n), a (m, s); rho_hat (s,).
    """
    _check_kl(penalty)
    a = model.encoder(x)  # (m, s) pre-activation: the missing sigmoid
    x_hat = model.decode(a)
    rho_hat = a.mean(dim=0)
    sparsity = beta * textbook_kl(rho, rho_hat).sum()
    return _terms(_reconstruction(x_hat, x, target), sparsity, _weight_decay(model, weight_decay), rho_hat)


# ----------------------------------------------------------------------------------------------- (f)
def softmax_reconstructions(model: SparseAutoencoder, X) -> np.ndarray:
    """x_hat = softmax(W2 a + b2) over the n outputs, as ``softmax_output_loss`` trains it: (m, n) -> (m, n)."""
    X = torch.tensor(np.asarray(X, dtype=np.float32))  # a copy: X may be read-only
    with torch.no_grad():
        return torch.softmax(model.decoder(model.encode(X)), dim=1).numpy()


def softmax_output_loss(model: SparseAutoencoder, x: Tensor, rho: float, beta: float, weight_decay: float,
                        penalty: str = "kl", *, target: Tensor | None = None, rho_hat_prior: Tensor | None = None,
                        ema_decay: float = 0.0) -> dict[str, Tensor]:
    r"""Mistake: a softmax output layer, x_hat = softmax(W2 a + b2), for a reconstruction.

    Softmax makes the n outputs of a sample sum to 1, a probability distribution over pixels: an image whose
    pixels sum to S != 1 cannot be reproduced, whatever the weights. The hidden layer and its KL are correct.
    Shapes: x, x_hat (m, n); rho_hat (s,). See ``softmax_reconstructions`` for the trained model's output.
    """
    _check_kl(penalty)
    a = model.encode(x)
    x_hat = torch.softmax(model.decoder(a), dim=1)
    rho_hat = _unit_rho_hat(a, model.activation, rho_hat_prior, ema_decay)
    sparsity = beta * kl_divergence(rho, rho_hat).sum()
    return _terms(_reconstruction(x_hat, x, target), sparsity, _weight_decay(model, weight_decay), rho_hat)


# ----------------------------------------------------------------------------------------------- (e)
def batch_mean_scores(model: SparseAutoencoder, X, batch_size: int = 256) -> np.ndarray:
    """Mistake: each sample scored by its batch's mean loss (1/b) sum_{i in batch} 1/2 ||x_hat_i - x_i||^2.

    What an anomaly detector gets by assigning the training loss's ``loss.item()`` to every sample of the batch.
    Consecutive batches of ``batch_size`` rows; all samples of one batch get the same score, so an outlier only
    raises its whole batch. The correct score is ``sae.evaluation.metrics.reconstruction_errors``. (m, n) -> (m,).
    """
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a whole number >= 1, got {batch_size!r}.")
    errors = reconstruction_errors(model, X).astype(np.float64)
    scores = np.empty_like(errors)
    for start in range(0, len(errors), batch_size):
        scores[start:start + batch_size] = errors[start:start + batch_size].mean()
    return scores


# ----------------------------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class Mistake:
    """One circulating mistake, for a teaching page.

    Attributes:
        name: registry key.
        title: a few words.
        explanation: one or two sentences: what the code does wrong and what follows.
        loss: the mistaken objective (signature of ``sparse_autoencoder_loss``), or None if not an objective.
        look_at: what to compare against the correct objective to see the effect.
    """

    name: str
    title: str
    explanation: str
    loss: LossFunction | None
    look_at: str


MISTAKES: dict[str, Mistake] = {m.name: m for m in (
    Mistake("rho_hat_scalar", "ρ̂ as one scalar for the whole layer",
            "Copied code often averages the activations over samples and units into one number and penalises "
            "β·KL(ρ‖mean a). Only the layer's average is held at ρ, so single units may stay always on or "
            "never on while the average looks perfect.",
            rho_hat_scalar_loss,
            "The per-unit ρ̂ bars: their mean sits near ρ but their spread (std, min/max) is far larger than "
            "with the correct loss; count dense and dead units."),
    Mistake("kl_per_activation", "KL on every activation instead of on ρ̂_j",
            "Applying KL(ρ‖a_ij) to each activation pulls every activation of every sample towards ρ, instead "
            "of letting a unit fire strongly on a few samples and stay silent on the rest. Units lose their "
            "selectivity.",
            kl_per_activation_loss,
            "Each unit's activations across samples: their standard deviation (and lifetime sparsity) is far "
            "lower than with the correct loss; the activation histogram is one narrow bump at ρ."),
    Mistake("kl_on_reconstruction", "KL applied to the reconstruction",
            "The penalty is computed on the output x̂ instead of the hidden layer, so it drags every output "
            "pixel's mean towards ρ. Reconstruction suffers and the hidden layer is not made sparse at all.",
            kl_on_reconstruction_loss,
            "The reconstruction error (much higher than with the correct loss) and the hidden ρ̂, which "
            "nothing holds at ρ."),
    Mistake("linear_encoder", "Linear encoder under a KL penalty",
            "Without the sigmoid, a = W1 x + b1 is any real number, so ρ̂_j can be negative or above 1 and "
            "KL(ρ‖ρ̂_j) takes the log of a negative number: NaN. (A clamp hides the NaN but leaves those units "
            "without a gradient; KL needs activations in (0, 1): use L1 for unbounded units.)",
            linear_encoder_loss,
            "The training status: the Trainer stops at the first step with status \"diverged\" and a NaN "
            "loss; the initial ρ̂ already has negative entries."),
    Mistake("batch_mean_score", "Batch-mean loss as an anomaly score",
            "Scoring each sample by the mean loss of its batch gives every sample of a batch the same score, so "
            "an outlier only nudges its batch up and cannot be singled out. Score each sample by its own "
            "reconstruction error.",
            None,
            "Scores of one batch: all equal under batch_mean_scores; the per-sample reconstruction error ranks "
            "the outlier first."),
    Mistake("softmax_output", "Softmax output layer for a reconstruction",
            "Softmax makes each reconstruction's pixels sum to 1, as if the image were a probability "
            "distribution over pixels, so images whose pixels sum to anything else cannot be reproduced.",
            softmax_output_loss,
            "The reconstruction error stays far above the correct model's; every softmax_reconstructions row "
            "sums to 1 while the input rows do not."),
)}

__all__ = ["Mistake", "MISTAKES", "rho_hat_scalar_loss", "kl_per_activation_loss", "kl_on_reconstruction_loss",
           "linear_encoder_loss", "softmax_output_loss", "softmax_reconstructions", "batch_mean_scores",
           "textbook_kl"]
