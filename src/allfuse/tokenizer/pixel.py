"""The identity tokenizer for ablations: pixel-unshuffle (space-to-depth), no learning, no loss.

An f x f patch of RGB becomes 3*f*f channels (f=8: 192 channels, exactly invertible). Latents are mapped
from [0, 1] to about [-1.7, 1.7] (x - 0.5) * 3.46, i.e. unit variance for uniformly distributed pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from allfuse.tokenizer.base import CroppedDecode, check_image_batch, pad_to_multiple

UNIT_SCALE = 12**0.5  # 1 / std of U(0, 1)


class PixelUnshuffleTokenizer(CroppedDecode):
    """Exact, parameter-free tokenizer: (B, 3, H, W) <-> (B, 3 f^2, H/f, W/f)."""

    def __init__(self, downsample: int = 8):
        self.downsample = downsample
        self.channels = 3 * downsample * downsample
        self.name = f"pixel-unshuffle-f{downsample}"

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Space-to-depth of the padded image, centred and scaled."""
        check_image_batch(x)
        return (
            F.pixel_unshuffle(pad_to_multiple(x.float(), self.downsample), self.downsample) - 0.5
        ) * UNIT_SCALE

    def decode_train(self, z: torch.Tensor) -> torch.Tensor:
        """Differentiable, unclipped depth-to-space (for pixel losses)."""
        return F.pixel_shuffle(z.float() / UNIT_SCALE + 0.5, self.downsample)

    def fingerprint(self) -> str:
        """Cache key: the name says everything."""
        return self.name
