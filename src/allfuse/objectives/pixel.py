"""The auxiliary pixel-space fusion loss of MMAIF Eq. (9), computed through the tokenizer's decoder."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from allfuse.config import AuxMode
from allfuse.ops import sobel_magnitude

Decoder = Callable[[Tensor], Tensor]  # decode(z (B, C, h, w)) -> image (B, 3, H, W)


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
