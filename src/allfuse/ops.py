"""Image operators on torch tensors, one home each: Gaussian kernel and blur, SSIM, Sobel.

Images are (B, C, H, W) float. The numpy filters of the metrics, which follow the published evaluators'
border conventions, live in `allfuse.metrics.filters`, the numpy guided filter in `allfuse.baselines.guided`.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

# SSIM constants of Wang et al. 2004 for data range 1: C1 = (K1 L)^2, C2 = (K2 L)^2, K1 = 0.01, K2 = 0.03.
SSIM_C1, SSIM_C2 = 0.01**2, 0.03**2
SSIM_RADIUS, SSIM_SIGMA = 5, 1.5  # the 11 x 11 Gaussian window, sigma 1.5


def gaussian_kernel1d(
    radius: int, sigma: float, dtype: torch.dtype = torch.float32, device: torch.device | None = None
) -> Tensor:
    """Taps exp(-k^2 / (2 sigma^2)) for k = -radius .. radius, normalised to sum 1, (2 radius + 1,)."""
    k = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    g = torch.exp(-0.5 * (k / sigma) ** 2)
    return g / g.sum()


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian low-pass of (B, C, H, W), edge-replicated, radius 3 sigma, in float32.

    Where no gradient is needed on the CPU it runs in OpenCV, ~10x faster than a depthwise convolution
    (bf16 under autocast included); the torch path (GPU, or a gradient) gives the same numbers (a test)."""
    r = max(1, round(3 * sigma))
    if x.device.type == "cpu" and not (torch.is_grad_enabled() and x.requires_grad):
        planes = x.detach().float().flatten(0, 1).numpy()
        out = np.empty_like(planes)
        for i, plane in enumerate(planes):
            out[i] = cv2.GaussianBlur(plane, (2 * r + 1, 2 * r + 1), sigma, borderType=cv2.BORDER_REPLICATE)
        return torch.from_numpy(out).view(x.shape)
    x = x.float()
    k = gaussian_kernel1d(r, sigma, device=x.device)
    c = x.shape[1]
    x = F.pad(x, (r, r, r, r), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def ssim_map(x: Tensor, y: Tensor) -> Tensor:
    """Per-pixel SSIM (B, C, H-10, W-10) of images in [0, 1]: Wang et al. 2004, Eq. (13), per channel.

    11x11 Gaussian window (sigma 1.5), 'valid' windows only, population (co)variances: the numbers of
    ``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1)``."""
    x, y = x.float(), y.float()
    c = x.shape[1]
    g = gaussian_kernel1d(SSIM_RADIUS, SSIM_SIGMA, torch.float64)
    size = 2 * SSIM_RADIUS + 1
    w = (g[:, None] * g[None, :]).float().to(x.device).expand(c, 1, size, size)  # (C, 1, 11, 11)
    mu_x, mu_y = F.conv2d(x, w, groups=c), F.conv2d(y, w, groups=c)
    sxx = F.conv2d(x * x, w, groups=c) - mu_x**2
    syy = F.conv2d(y * y, w, groups=c) - mu_y**2
    sxy = F.conv2d(x * y, w, groups=c) - mu_x * mu_y
    num = (2 * mu_x * mu_y + SSIM_C1) * (2 * sxy + SSIM_C2)
    return num / ((mu_x**2 + mu_y**2 + SSIM_C1) * (sxx + syy + SSIM_C2))


def ssim(x: Tensor, y: Tensor) -> Tensor:
    """Mean SSIM per image (B,), over pixels and channels (`ssim_map`)."""
    return ssim_map(x, y).mean(dim=(1, 2, 3))


def sobel_xy(x: Tensor) -> Tensor:
    """(d/dx, d/dy) of every channel with 3x3 Sobel kernels and replicate padding: (B, C, 2, H, W)."""
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=x.device, dtype=x.dtype)
    kernels = torch.stack([kx, kx.T])[:, None].repeat(x.shape[1], 1, 1, 1)  # (2C, 1, 3, 3)
    g = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernels, groups=x.shape[1])  # (B, 2C, H, W)
    return g.reshape(x.shape[0], x.shape[1], 2, *x.shape[-2:])


def sobel_magnitude(x: Tensor) -> Tensor:
    """|d/dx| + |d/dy| of every channel with 3x3 Sobel kernels and replicate padding, (B, C, H, W)."""
    return sobel_xy(x).abs().sum(dim=2)
