"""A small learned denoiser: a residual U-Net that predicts the noise of an sRGB image and subtracts it.

Beyond the papers. The denoising stage (allfuse.denoise) replaces an input that measures noisy by a
filtered one; non-local means (Buades, Coll & Morel 2005) is its classical filter. A convolutional denoiser
trained on noisy/clean patches (DnCNN, Zhang et al. 2017: residual learning, y = x - R(x)) keeps more
texture at the same noise removal, and a U-Net's downsampled levels (Ronneberger et al. 2015; used for
denoising in e.g. FFDNet and NAFNet) give it the reach a strong, low-light noise needs at a fraction of a
full-resolution network's cost: three levels at 1, 1/2 and 1/4 of the pixels.

The network is blind (no noise-level input): the stage measures the noise to decide whether to denoise at
all, and the network reads the level from the image, as DnCNN-B does. It runs on 3 channels; a gray image
goes in as three equal channels and comes out as their mean. The last convolution starts at zero, so an
untrained denoiser is the identity. Trained by allfuse.train.denoiser.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class DenoiserConfig:
    """Channel widths of the U-Net's three levels and the convolutions per level."""

    width: int = 32
    depth: int = 2

    def __post_init__(self) -> None:
        if self.width < 4 or self.depth < 1:
            raise ValueError(f"bad denoiser config: need width >= 4 and depth >= 1: {self}")

    def to_dict(self) -> dict:
        """JSON-ready form (denoiser.json's "denoiser" entry)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> DenoiserConfig:
        """Inverse of to_dict; an unknown key is a TypeError naming it."""
        return cls(**values)


def convs(cin: int, cout: int, n: int) -> nn.Sequential:
    """n 3x3 convolutions with ReLU, the first from cin channels."""
    layers: list[nn.Module] = []
    for i in range(n):
        layers += [nn.Conv2d(cin if i == 0 else cout, cout, 3, padding=1), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class Denoiser(nn.Module):
    """y = x - R(x), R a three-level U-Net (module doc); x (B, 3, H, W) in [0, 1], any H, W."""

    MULTIPLE = 4  # H and W are padded to a multiple of this (two stride-2 levels)

    def __init__(self, cfg: DenoiserConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or DenoiserConfig()
        w, d = self.cfg.width, self.cfg.depth
        self.enc1 = convs(3, w, d)
        self.down1 = nn.Conv2d(w, 2 * w, 2, stride=2)
        self.enc2 = convs(2 * w, 2 * w, d)
        self.down2 = nn.Conv2d(2 * w, 4 * w, 2, stride=2)
        self.mid = convs(4 * w, 4 * w, d + 1)
        self.up2 = nn.ConvTranspose2d(4 * w, 2 * w, 2, stride=2)
        self.dec2 = convs(2 * w, 2 * w, d)
        self.up1 = nn.ConvTranspose2d(2 * w, w, 2, stride=2)
        self.dec1 = convs(w, w, d)
        self.out = nn.Conv2d(w, 3, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ph, pw = (-h) % self.MULTIPLE, (-w) % self.MULTIPLE
        z = nn.functional.pad(x, (0, pw, 0, ph), mode="reflect") if ph or pw else x
        e1 = self.enc1(z)
        e2 = self.enc2(self.down1(e1))
        m = self.mid(self.down2(e2))
        d2 = self.dec2(self.up2(m) + e2)  # additive skips (a U-Net's concatenation, at half the cost)
        d1 = self.dec1(self.up1(d2) + e1)
        return (z - self.out(d1))[..., :h, :w]
