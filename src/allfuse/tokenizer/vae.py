"""Our KL-VAE tokenizer (MMAIF Sect. 3.2): f=8, z=16 by default, built for CPU speed.

Why this shape: every full-resolution 3x3 conv costs H*W*C^2*9 multiply-adds, which dominates a CPU budget
of ~1 s per megapixel. So no layer runs at full resolution: the encoder starts with a 2x2 pixel-unshuffle
(3 -> 12 channels at H/2) and the decoder ends with a conv to 12 channels + pixel-shuffle. Widths grow as
resolution falls, so each stage costs about the same. Residual blocks have no normalisation (GroupNorm is
slow on CPU and not needed at this depth): conv3x3 -> SiLU -> conv3x3 with a zero-initialised second conv,
so an untrained block is the identity and the stack trains stably without norms.

Every resolution change also has a parameter-free shortcut (as in DC-AE's "residual autoencoding"):
space-to-channel + channel averaging on the way down, channel repetition + channel-to-space on the way up,
and the same at the latent head and the decoder stem. The convs then learn residuals around a fixed
down/up-sampler. Measured in a 400-step pilot (batch 16, crops 128): 27.7 dB held-out PSNR with the
shortcuts against 21.0 dB for the same kind of stack without them (smaller widths, 32/64/128).
Constraint: neighbouring widths must divide each other's 4x (e.g. 48, 96, 192 with z=16).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from einops import reduce, repeat
from torch import nn


@dataclass
class VAEConfig:
    """Architecture of the KL-VAE; `widths` are channels at H/2, H/4, H/8 (f=8) — one per stage."""

    latent_channels: int = 16
    widths: tuple[int, ...] = (48, 96, 192)  # stage i runs at H / 2**(i+1)
    enc_blocks: tuple[int, ...] = (2, 2, 1)
    dec_blocks: tuple[int, ...] = (3, 3, 2)  # listed shallow to deep, like widths
    # latent normalisation, fitted after training on the training set: z = (mean - shift) * scale
    scale: list[float] = field(default_factory=lambda: [1.0])
    shift: list[float] = field(default_factory=lambda: [0.0])

    @property
    def downsample(self) -> int:
        """Spatial reduction factor f: 2 per stage."""
        return 2 ** len(self.widths)

    def to_dict(self) -> dict:
        """JSON-friendly dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> VAEConfig:
        """Inverse of `to_dict`; unknown keys are errors."""
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown VAEConfig keys: {sorted(unknown)}")
        d = dict(d)
        for k in ("widths", "enc_blocks", "dec_blocks"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)


class ResBlock(nn.Module):
    """x + conv(silu(conv(x))); the second conv starts at zero so the block starts as the identity."""

    def __init__(self, c: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.silu(self.conv1(x)))


def match_channels(x: torch.Tensor, c_out: int) -> torch.Tensor:
    """Parameter-free channel change: average groups of channels (fewer) or repeat each channel (more)."""
    c = x.shape[1]
    if c % c_out == 0:
        return reduce(x, "b (g k) h w -> b g h w", "mean", g=c_out)
    if c_out % c == 0:
        return repeat(x, "b c h w -> b (c k) h w", k=c_out // c)
    raise ValueError(f"cannot match {c} channels to {c_out} without parameters")


class Down(nn.Module):
    """Stride-2 conv plus a space-to-channel shortcut (DC-AE residual autoencoding): (c, H) -> (c', H/2)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, stride=2, padding=1)
        self.c_out = c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.silu(x)) + match_channels(F.pixel_unshuffle(x, 2), self.c_out)


class Up(nn.Module):
    """Conv to 4c' + pixel-shuffle, plus a channel-to-space shortcut: (c, h) -> (c', 2h)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, 4 * c_out, 3, padding=1)
        self.c_out = c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(self.conv(F.silu(x)) + match_channels(x, 4 * self.c_out), 2)


class Encoder(nn.Module):
    """Image (B,3,H,W) in [0,1] -> posterior moments (B, 2z, H/f, W/f): mean and log-variance."""

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        w = cfg.widths
        self.z = cfg.latent_channels
        self.stem = nn.Conv2d(12, w[0], 3, padding=1)  # after 2x2 pixel-unshuffle
        stages = []
        for i, (c, n) in enumerate(zip(w, cfg.enc_blocks, strict=True)):
            layers: list[nn.Module] = [Down(w[i - 1], c)] if i > 0 else []
            stages.append(nn.Sequential(*layers, *(ResBlock(c) for _ in range(n))))
        self.stages = nn.Sequential(*stages)
        self.head = nn.Conv2d(w[-1], 2 * cfg.latent_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pixel_unshuffle(x * 2 - 1, 2)  # (B, 12, H/2, W/2)
        h = self.stages(self.stem(x) + match_channels(x, self.stem.out_channels))  # (B, w[-1], H/f, W/f)
        moments = self.head(F.silu(h))  # (B, 2z, H/f, W/f)
        shortcut = torch.cat([match_channels(h, self.z), torch.zeros_like(moments[:, self.z :])], dim=1)
        return moments + shortcut


class Decoder(nn.Module):
    """Latent (B,z,h,w) -> image (B,3,f*h,f*w); upsampling by conv to 4x channels + pixel-shuffle."""

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        w = cfg.widths[::-1]  # deepest first
        nb = cfg.dec_blocks[::-1]
        self.stem = nn.Conv2d(cfg.latent_channels, w[0], 3, padding=1)
        stages = []
        for i, (c, n) in enumerate(zip(w, nb, strict=True)):
            c_out = w[i + 1] if i + 1 < len(w) else 3
            stages.append(nn.Sequential(*(ResBlock(c) for _ in range(n)), Up(c, c_out)))
        self.stages = nn.Sequential(*stages)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.stem(z) + match_channels(z, self.stem.out_channels)  # (B, w[-1], h, w)
        return self.stages(h) * 0.5 + 0.5  # (B, 3, H, W), about [0, 1]


class KLVAE(nn.Module):
    """The network: encoder + decoder. Sampling, losses and normalisation live outside."""

    def __init__(self, cfg: VAEConfig | None = None):
        super().__init__()
        self.cfg = cfg or VAEConfig()
        self.encoder = Encoder(self.cfg)
        self.decoder = Decoder(self.cfg)

    def moments(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and log-variance (clamped), each (B, z, H/f, W/f); H, W multiples of f."""
        mean, logvar = self.encoder(x).chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def forward(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training pass: sample z from the posterior, decode; returns (recon, mean, logvar)."""
        mean, logvar = self.moments(x)
        eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype)
        z = mean + torch.exp(0.5 * logvar) * eps
        return self.decoder(z), mean, logvar
