"""TAEF2: the tiny autoencoder of the FLUX.2 latent space (f=8, z=32), as a Tokenizer.

Our own modules, laid out so their state dicts match the published ``taef2_encoder.pth`` /
``taef2_decoder.pth`` (madebyollin/taesd, MIT): a plain sequence of 3x3 convs and residual blocks of three
convs, 64 channels, stride-2 convs down and nearest-neighbour upsampling; the lowest-resolution blocks add a
1x1 -> GroupNorm(4) -> ReLU -> 1x1 branch (x + branch(x)) before the block, and the decoder input goes
through a soft clamp 3 * tanh(z / 3). Images are [0, 1] on both sides. The weights are never bundled: pass
the folder that holds the two .pth files.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from allfuse.tokenizer.base import CroppedDecode, Precision, autocast, check_image_batch, pad_to_multiple
from allfuse.tokenizer.klvae import fingerprint_module

STATS_FILE = Path(__file__).parent / "weights" / "taef2_latent_stats.json"
WIDTH = 64


def _conv(c_in: int, c_out: int, stride: int = 1, bias: bool = True) -> nn.Conv2d:
    """3x3 conv, padding 1."""
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=bias)


class SoftClamp(nn.Module):
    """3 * tanh(z / 3): keeps out-of-range latents from blowing up the decoder."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(z / 3) * 3


class TinyBlock(nn.Module):
    """relu(conv(relu(conv(relu(conv(x))))) + x), optionally after x += pool(x) (the FLUX.2 variant)."""

    def __init__(self, c: int, with_pool: bool = False):
        super().__init__()
        self.conv = nn.Sequential(_conv(c, c), nn.ReLU(), _conv(c, c), nn.ReLU(), _conv(c, c))
        self.pool = None
        if with_pool:
            hidden = 4 * c
            self.pool = nn.Sequential(
                nn.Conv2d(c, hidden, 1, bias=False),
                nn.GroupNorm(4, hidden),
                nn.ReLU(),
                nn.Conv2d(hidden, c, 1, bias=False),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            x = x + self.pool(x)
        return F.relu(self.conv(x) + x)


def taef2_encoder(latent_channels: int = 32) -> nn.Sequential:
    """Image [0,1] (B,3,H,W) -> raw FLUX.2 latent (B,32,H/8,W/8); indices match taef2_encoder.pth."""
    c = WIDTH
    layers: list[nn.Module] = [_conv(3, c), TinyBlock(c)]
    for stage in range(3):
        pool = stage == 2  # the lowest resolution gets the pooling branch
        layers += [_conv(c, c, stride=2, bias=False), *(TinyBlock(c, pool) for _ in range(3))]
    layers.append(_conv(c, latent_channels))
    return nn.Sequential(*layers)


def taef2_decoder(latent_channels: int = 32) -> nn.Sequential:
    """Raw FLUX.2 latent -> image (B,3,8h,8w); indices match taef2_decoder.pth."""
    c = WIDTH
    layers: list[nn.Module] = [SoftClamp(), _conv(latent_channels, c), nn.ReLU()]
    for stage in range(3):
        layers += [*(TinyBlock(c, stage == 0) for _ in range(3))]
        layers += [nn.Upsample(scale_factor=2), _conv(c, c, bias=False)]
    layers += [TinyBlock(c), _conv(c, 3)]
    return nn.Sequential(*layers)


class TAEF2Tokenizer(CroppedDecode):
    """TAEF2 as a Tokenizer; latents normalised per channel (stats in weights/taef2_latent_stats.json)."""

    downsample = 8
    channels = 32

    def __init__(self, folder: str | Path, precision: Precision = "fp32"):
        folder = Path(folder)
        self.name = "taef2"
        self.precision: Precision = precision
        self.encoder, self.decoder = taef2_encoder(), taef2_decoder()
        for module, file in ((self.encoder, "taef2_encoder.pth"), (self.decoder, "taef2_decoder.pth")):
            sd = torch.load(folder / file, map_location="cpu", weights_only=True)
            module.load_state_dict({k: v.float() for k, v in sd.items()})
            module.eval().requires_grad_(False)
        shift, scale = torch.zeros(32), torch.ones(32)
        if STATS_FILE.is_file():
            stats = json.loads(STATS_FILE.read_text())
            shift, scale = torch.tensor(stats["shift"]), torch.tensor(stats["scale"])
        self.shift, self.scale = shift.reshape(1, -1, 1, 1), scale.reshape(1, -1, 1, 1)

    @torch.inference_mode()
    def encode_raw(self, x: torch.Tensor) -> torch.Tensor:
        """Un-normalised FLUX.2-space latents (what the published encoder outputs)."""
        check_image_batch(x)
        with autocast(self.precision, x.device):
            return self.encoder(pad_to_multiple(x.float(), 8)).float()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) [0, 1] -> normalised latents (B, 32, ceil(H/8), ceil(W/8))."""
        return (self.encode_raw(x) - self.shift) * self.scale

    def decode_train(self, z: torch.Tensor) -> torch.Tensor:
        """Differentiable, unclipped decode (frozen weights) for pixel losses."""
        with autocast(self.precision, z.device):
            return self.decoder(z.float() / self.scale + self.shift).float()

    def fingerprint(self) -> str:
        """Hash of both halves' weights and the normalisation: the latent-cache key."""
        both = nn.ModuleDict({"enc": self.encoder, "dec": self.decoder})
        extra = {
            "shift": self.shift.flatten().tolist(),
            "scale": self.scale.flatten().tolist(),
            "p": self.precision,
        }
        return fingerprint_module(both, extra)


def fit_taef2_stats(folder: str | Path, data_root: Path | None, n_batches: int = 16, seed: int = 0) -> dict:
    """Per-channel mean/std of raw TAEF2 latents over random training crops; writes STATS_FILE."""
    from allfuse.io import atomic_write_text
    from allfuse.tokenizer.data import CropSampler, training_images

    tok = TAEF2Tokenizer(folder)
    sampler = CropSampler(training_images(data_root), 128, 0.15, seed)
    z = torch.cat([tok.encode_raw(sampler.batch(8)) for _ in range(n_batches)])  # (N, 32, 16, 16)
    m = z.transpose(0, 1).reshape(32, -1).double()
    doc = {
        "about": f"raw TAEF2 latent stats over {n_batches * 8} random 128x128 training crops (seed {seed})",
        "shift": [round(float(v), 6) for v in m.mean(1)],
        "scale": [round(float(v), 6) for v in 1 / m.std(1)],
    }
    atomic_write_text(STATS_FILE, json.dumps(doc, indent=1) + "\n")
    return doc
