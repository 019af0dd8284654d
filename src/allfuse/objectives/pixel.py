"""The auxiliary pixel-space fusion loss of MMAIF Eq. (9), computed through the tokenizer's decoder."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from allfuse.config import AuxMode

Decoder = Callable[[Tensor], Tensor]  # decode(z (B, C, h, w)) -> image (B, 3, H, W)


def sobel_xy(x: Tensor) -> Tensor:
    """(d/dx, d/dy) of every channel with 3x3 Sobel kernels and replicate padding: (B, C, 2, H, W)."""
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=x.device, dtype=x.dtype)
    kernels = torch.stack([kx, kx.T])[:, None].repeat(x.shape[1], 1, 1, 1)  # (2C, 1, 3, 3)
    g = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernels, groups=x.shape[1])  # (B, 2C, H, W)
    return g.reshape(x.shape[0], x.shape[1], 2, *x.shape[-2:])


def sobel_magnitude(x: Tensor) -> Tensor:
    """|d/dx| + |d/dy| of every channel with 3x3 Sobel kernels and replicate padding, (B, C, H, W)."""
    return sobel_xy(x).abs().sum(dim=2)


def texture_loss(fused: Tensor, sources: Sequence[Tensor], weights: Tensor | None = None) -> Tensor:
    """SwinFusion's texture loss (Ma et al. 2022, [29] in MMAIF): | |grad X~| - max_i |grad X_i| |_1, so the
    output keeps the strongest edge any source has, per pixel and channel; gray sources broadcast.
    `weights` (B,) weighs samples (mean over the batch of weight * per-sample mean)."""
    g_max = torch.stack([sobel_magnitude(s.to(fused.dtype).expand_as(fused)) for s in sources]).amax(dim=0)
    per_sample = (sobel_magnitude(fused) - g_max).abs().flatten(1).mean(dim=1)
    return per_sample.mean() if weights is None else (weights.to(per_sample.dtype) * per_sample).mean()


def fusion_pixel_loss(fused: Tensor, sources: Sequence[Tensor], mode: AuxMode = "sum") -> Tensor:
    """MMAIF Eq. (9): sum_i |X~ - X_i|_1 + |grad X~ - grad X_i|_1 (per-pixel means); gray sources broadcast.

    mode="max" is SwinFusion's form [29]: |X~ - max_i X_i|_1 + |grad X~ - max_i grad X_i|_1, which keeps
    the strongest edge of the inputs instead of their median."""
    srcs = [s.to(fused.dtype).expand_as(fused) for s in sources]
    if mode == "max":
        return (fused - torch.stack(srcs).amax(dim=0)).abs().mean() + texture_loss(fused, srcs)
    g_fused = sobel_magnitude(fused)
    loss = fused.new_zeros(())
    for s in srcs:
        loss = loss + (fused - s).abs().mean() + (g_fused - sobel_magnitude(s)).abs().mean()
    return loss
