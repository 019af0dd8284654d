"""Reconstruction losses and metrics of the tokenizer: image-gradient L1, KL, PSNR (SSIM: `allfuse.ops`).

Conventions: images are (B, 3, H, W) float in [0, 1] (data range 1). PSNR is over all pixels and channels.
"""

from __future__ import annotations

import torch


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """PSNR in dB per image (B,), data range 1; x is clipped to [0, 1] first (as a saved image would be)."""
    mse = (x.float().clamp(0, 1) - y.float()).pow(2).mean(dim=(1, 2, 3))
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-12))


def gradient_l1(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """L1 between horizontal and vertical finite differences: the edge term (cf. MMAIF Eq. 9)."""
    dx = (x[..., :, 1:] - x[..., :, :-1]) - (y[..., :, 1:] - y[..., :, :-1])
    dy = (x[..., 1:, :] - x[..., :-1, :]) - (y[..., 1:, :] - y[..., :-1, :])
    return dx.abs().mean() + dy.abs().mean()


def kl_per_element(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, 1)), averaged over all latent elements."""
    return 0.5 * (mean.float().pow(2) + logvar.float().exp() - 1 - logvar.float()).mean()
