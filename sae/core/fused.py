r"""Hand-derived forward and backward pass of the sparse autoencoder objective (the fast path).

Backpropagation as in the UFLDL notes, with batch-size-scaled deltas, written with in-place
operations into buffers allocated once, so one training step is a dozen tensor calls and no
autograd graph. For a batch X (m, n), W1 (s, n), W2 (n, s):

    Z1 = X W1^T + b1,    A = f(Z1)                        (m, s)
    Z2 = A W2^T + b2,    X_hat = g(Z2)                    (m, n)
    D3 = (X_hat - X) * g'(Z2)                             (m, n)   output deltas (times m)
    sparsity_delta_j = beta (-rho / rho_hat_j + (1 - rho) / (1 - rho_hat_j)) * d(activity)/da         (KL)
                     = beta sign(a_ij)                                                                 (L1)
    D2 = (D3 W2 + sparsity_delta) * f'(Z1)                (m, s)   hidden deltas (times m)
    dJ/dW2 = D3^T A / m + lambda W2,   dJ/db2 = sum_i D3 / m
    dJ/dW1 = D2^T X / m + lambda W1,   dJ/db1 = sum_i D2 / m

f' and g' are applied with ATen's fused sigmoid/tanh/threshold backward kernels, in place.

Matmul kernels. torch sends float32 matmuls to MKL, which on AMD CPUs runs its AVX2 code. On an AMD
CPU with AVX-512 (Zen 4 and later) oneDNN, the other kernel library inside torch, runs AVX-512 code
there: 240 vs 110 GFLOP/s a core on this project's Zen 4 machine. So, where :mod:`sae.core.cpu` says
oneDNN is the faster library (AVX-512, not Intel), minibatch products of at least ``ONEDNN_MIN_MACS``
multiply-adds go to oneDNN (``torch._C._nn.mkldnn_linear``, strict float32: no bf16/tf32), paying a copy
of each operand into its layout; smaller products stay with MKL, whose call costs less. On CPUs without
AVX-512 (Zen 3: oneDNN has AVX2 code only, the copies made a 784->196 step 1.2-1.9x slower) and on Intel
CPUs (where MKL runs AVX-512 itself) every product stays with MKL. :func:`takes_onednn` is the rule.
Results agree within float32 rounding either way (tests/core/test_fused.py).
``mkldnn_linear`` is a private torch API, reached through :mod:`sae.core.torch_private`: where that
module chose its fallback (a torch without it, or ``SAE_NO_PRIVATE_TORCH=1``) every product takes the
MKL path.

Layouts. Minibatches come one sample per row. A big full batch (L-BFGS) can instead be given one
sample per column, X^T (n, m), as UFLDL's MATLAB code holds its data: every matrix above is then
computed transposed (Z1^T = W1 X^T + b1, ...; dJ/dW2 as (A^T D3)^T), a layout in which MKL runs
these skinny products (one side only s = 25 wide) 15-25% faster on 10,000 x 64 patches.

Results equal autograd's within float32 rounding (tests/core/test_fused.py) and pass the float64
gradient check. Supported: sigmoid / tanh / relu hidden units, sigmoid / linear decoders,
KL and L1 penalties, rho_hat from the batch. Anything else (TopK, a moving-average rho_hat)
goes through autograd.
"""

from __future__ import annotations

import torch
from torch import Tensor

from sae.core import torch_private
from sae.core.cpu import onednn_is_faster_here
from sae.core.loss import kl_divergence
from sae.core.model import SparseAutoencoder
from sae.core.torch_private import onednn_linear as _onednn

ONEDNN_MIN_MACS = 4_000_000  # m n s below this: MKL's cheaper call wins over oneDNN's faster kernel


def onednn_available() -> bool:
    """Whether big float32 minibatch products may go to oneDNN (see :mod:`sae.core.torch_private`)."""
    return torch_private.onednn_available()


def takes_onednn(m: int, n: int, s: int, dtype: torch.dtype = torch.float32) -> bool:
    """The default choice of :class:`FusedObjective` for a minibatch x (m, n) and s hidden units (samples in rows):
    oneDNN for float32 products of at least ``ONEDNN_MIN_MACS`` multiply-adds on a CPU where oneDNN is the faster
    library (:func:`sae.core.cpu.onednn_is_faster_here`), if the private kernel is in use; MKL otherwise."""
    return (dtype == torch.float32 and m * n * s >= ONEDNN_MIN_MACS and onednn_is_faster_here()
            and onednn_available())


def supports(model: SparseAutoencoder, penalty: str, rho_hat_mode: str = "batch") -> bool:
    """Whether the fused pass covers this model and objective."""
    return penalty in ("kl", "l1") and not model.config.topk and rho_hat_mode == "batch"


class FusedObjective:
    """Loss terms and gradients of J for one model, with buffers reused across calls.

    ``loss_and_grad(x, rho, beta, weight_decay)`` writes dJ/dtheta into each parameter's ``.grad``
    and returns the terms (0-d tensors) plus ``rho_hat`` (s,), like ``sparse_autoencoder_loss``.
    """

    def __init__(self, model: SparseAutoencoder, penalty: str = "kl", onednn: bool | None = None) -> None:
        """``onednn``: None chooses per call (:func:`takes_onednn`); True or False forces the kernels (True: where
        the private kernel is in use)."""
        self.model = model
        self.onednn = onednn
        self.penalty = penalty
        self.activation = model.config.activation
        self.linear_decoder = model.config.decoder_activation == "linear"
        self._layout: tuple | None = None  # (m, dtype, samples in columns) of the buffers
        for p in model.parameters():
            if p.grad is None or p.grad.shape != p.shape:
                p.grad = torch.zeros_like(p)

    def _buffers(self, m: int, dtype: torch.dtype, columns: bool) -> None:
        if (m, dtype, columns) == self._layout:
            return
        s, n = self.model.encoder.weight.shape
        shape_s, shape_n = ((s, m), (n, m)) if columns else ((m, s), (m, n))
        self._A = torch.empty(shape_s, dtype=dtype)   # hidden activations
        self._D2 = torch.empty(shape_s, dtype=dtype)  # hidden deltas
        self._Xh = torch.empty(shape_n, dtype=dtype)  # reconstruction
        self._D3 = torch.empty(shape_n, dtype=dtype)  # output deltas
        self._G2 = torch.empty(s, n, dtype=dtype) if columns else None  # dJ/dW2 transposed
        self._layout = (m, dtype, columns)

    @torch.no_grad()
    def loss_and_grad(self, x: Tensor, rho: float, beta: float, weight_decay: float,
                      target: Tensor | None = None, values: bool = True, *,
                      samples_in_columns: bool = False) -> dict[str, Tensor]:
        """Terms of J on x (m, n) (reconstructing ``target`` if given); gradients land in each ``p.grad``.

        With ``values=False`` only ``reconstruction`` and ``rho_hat`` are returned: the gradient does not
        need the values of the sparsity and weight-decay terms, and on small models computing them costs
        a fifth of a step (the trainer asks for them only on the steps it records).
        With ``samples_in_columns=True``, x (and target) are (n, m): one sample per column (see the
        module docstring); terms and gradients are the same.
        """
        columns = samples_in_columns
        m = x.shape[1] if columns else x.shape[0]
        self._buffers(m, x.dtype, columns)
        W1, b1 = self.model.encoder.weight, self.model.encoder.bias
        W2, b2 = self.model.decoder.weight, self.model.decoder.bias
        A, D2, Xh, D3 = self._A, self._D2, self._Xh, self._D3
        sample_dim = 1 if columns else 0
        s_units, n = W1.shape
        if columns or x.dtype != torch.float32:
            onednn = False
        elif self.onednn is None:
            onednn = takes_onednn(m, n, s_units, x.dtype)
        else:
            onednn = self.onednn and onednn_available()
        per_unit = (lambda v: v[:, None]) if columns else (lambda v: v)  # a (s,) or (n,) vector against A or Xh
        aten = torch.ops.aten
        # Deltas are kept unscaled; the 1/m is applied inside the gradient matmuls (addmm's alpha).
        if columns:
            torch.addmm(b1[:, None], W1, x, out=A)  # A^T = f(W1 X^T + b1)
        elif onednn:
            A = _onednn(x, W1, b1)
        else:
            torch.addmm(b1, x, W1.t(), out=A)  # A = f(X W1^T + b1)
        if self.activation == "sigmoid":
            A.sigmoid_()
        elif self.activation == "tanh":
            A.tanh_()
        else:
            A.clamp_(min=0.0)

        if columns:
            torch.addmm(b2[:, None], W2, A, out=Xh)
        elif onednn:
            Xh = _onednn(A, W2, b2)
        else:
            torch.addmm(b2, A, W2.t(), out=Xh)
        if not self.linear_decoder:
            Xh.sigmoid_()
        torch.sub(Xh, x if target is None else target, out=D3)  # x_hat - x
        flat = D3.view(-1)
        reconstruction = flat.dot(flat) * (0.5 / m)  # 1/(2m) sum_i ||x_hat_i - x_i||^2
        if not self.linear_decoder:
            aten.sigmoid_backward.grad_input(D3, Xh, grad_input=D3)  # * g'(z2) = x_hat (1 - x_hat)

        rho_hat = A.mean(dim=sample_dim)
        if self.activation == "tanh":
            rho_hat = (rho_hat + 1.0) * 0.5  # measured on (a + 1) / 2
        if columns:
            torch.mm(W2.t(), D3, out=D2)
        elif onednn:
            D2 = _onednn(D3, W2.t())  # D3 W2
        else:
            torch.mm(D3, W2, out=D2)
        if self.penalty == "kl":
            eps = torch.finfo(x.dtype).eps
            r = rho_hat.clamp(eps, 1.0 - eps)
            # dKL/drho_hat = -rho/r + (1 - rho)/(1 - r) = (r - rho) / (r (1 - r)), zero where the clamp bit
            # (as autograd: hardtanh_backward passes the gradient only strictly inside (eps, 1 - eps))
            dkl = (r - rho).div_(torch.addcmul(r, r, r, value=-1.0))
            aten.hardtanh_backward.grad_input(dkl, rho_hat, eps, 1.0 - eps, grad_input=dkl)
            D2.add_(per_unit(dkl), alpha=beta * (0.5 if self.activation == "tanh" else 1.0))  # tanh: d((a+1)/2)/da
            sparsity = beta * kl_divergence(rho, rho_hat).sum() if values else None
        else:  # l1: beta/m sum |a|, d/da = beta/m sign(a)
            sparsity = beta * A.abs().sum() / m if values else None
            D2.add_(torch.sign(A), alpha=beta)
        if self.activation == "sigmoid":
            aten.sigmoid_backward.grad_input(D2, A, grad_input=D2)  # * a (1 - a)
        elif self.activation == "tanh":
            aten.tanh_backward.grad_input(D2, A, grad_input=D2)  # * (1 - a^2)
        else:
            aten.threshold_backward.grad_input(D2, A, 0.0, grad_input=D2)  # * [a > 0]

        if columns:  # (A^T D3)^T: the long sum over samples runs faster with the s-wide side on the left
            torch.addmm(W2.t(), A, D3.t(), beta=weight_decay, alpha=1.0 / m, out=self._G2)
            W2.grad.copy_(self._G2.t())
            torch.addmm(W1, D2, x.t(), beta=weight_decay, alpha=1.0 / m, out=W1.grad)
        elif onednn:
            torch.add(_onednn(D3.t(), A.t()).mul_(1.0 / m), W2, alpha=weight_decay, out=W2.grad)
            torch.add(_onednn(D2.t(), x.t()).mul_(1.0 / m), W1, alpha=weight_decay, out=W1.grad)
        else:
            torch.addmm(W2, D3.t(), A, beta=weight_decay, alpha=1.0 / m, out=W2.grad)  # D3'A/m + lambda W2
            torch.addmm(W1, D2.t(), x, beta=weight_decay, alpha=1.0 / m, out=W1.grad)  # D2'X/m + lambda W1
        torch.mean(D3, dim=sample_dim, out=b2.grad)
        torch.mean(D2, dim=sample_dim, out=b1.grad)
        if not values:
            return {"reconstruction": reconstruction, "rho_hat": rho_hat}
        w1, w2 = W1.view(-1), W2.view(-1)
        decay = 0.5 * weight_decay * (w1.dot(w1) + w2.dot(w2))
        return {"total": reconstruction + sparsity + decay, "reconstruction": reconstruction,
                "sparsity": sparsity, "weight_decay": decay, "rho_hat": rho_hat}
