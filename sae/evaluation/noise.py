"""Input corruption for denoising autoencoders: the model sees corrupt(x) and must reconstruct x."""

from __future__ import annotations

import torch
from torch import Tensor

from sae.core.config import NOISES


def corrupt(x: Tensor, kind: str, level: float, generator: torch.Generator | None = None,
            clip: tuple[float, float] | None = (0.0, 1.0)) -> Tensor:
    """A corrupted copy of x (m, n).

    gaussian: x + level * N(0, 1), then clipped to ``clip`` (the classic denoising example uses level 0.4
    on [0, 1] images); masking: each input set to 0 with probability ``level``. ``none`` returns x itself.
    """
    if kind == "none" or level == 0:
        return x
    if kind == "gaussian":
        noisy = x + level * torch.randn(x.shape, generator=generator, dtype=x.dtype)
        return noisy.clamp_(*clip) if clip is not None else noisy
    if kind == "masking":
        keep = torch.rand(x.shape, generator=generator, dtype=x.dtype) >= level
        return x * keep
    raise ValueError(f"unknown noise {kind!r}; use one of {', '.join(NOISES)}")


def psnr(clean: Tensor, estimate: Tensor, data_range: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio per sample in dB: 10 log10(range^2 / mean_j (x_j - y_j)^2). (m, n) -> (m,)."""
    mse = (clean - estimate).pow(2).mean(dim=1)
    return 10.0 * torch.log10(data_range ** 2 / mse.clamp_min(torch.finfo(mse.dtype).tiny))
