"""Reconstruction losses and metrics of the tokenizer: L1, SSIM, image-gradient L1, KL, PSNR.

Conventions: images are (B, 3, H, W) float in [0, 1] (data range 1). SSIM uses an 11x11 Gaussian window
(sigma 1.5), C1 = 0.01^2, C2 = 0.03^2, 'valid' windows only, computed per RGB channel and averaged — the
same numbers as ``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=1, channel_axis=-1)``. PSNR is over all pixels and channels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Separable-normalised 2D Gaussian window (1, 1, size, size)."""
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).float()[None, None]


def ssim_map(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-pixel SSIM (B, C, H-10, W-10) between images in [0, 1] (Wang et al. 2004, Gaussian window)."""
    x, y = x.float(), y.float()
    c = x.shape[1]
    w = _gaussian_window().to(x.device).expand(c, 1, 11, 11)
    mu_x, mu_y = F.conv2d(x, w, groups=c), F.conv2d(y, w, groups=c)
    sxx = F.conv2d(x * x, w, groups=c) - mu_x**2
    syy = F.conv2d(y * y, w, groups=c) - mu_y**2
    sxy = F.conv2d(x * y, w, groups=c) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    return ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean SSIM per image (B,)."""
    return ssim_map(x, y).mean(dim=(1, 2, 3))


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
