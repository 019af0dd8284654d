"""Our KL-VAE as a Tokenizer: padding, latent normalisation, precision; saving and loading.

On disk a tokenizer is two files side by side: ``NAME.safetensors`` (the network's state dict, fp16 to
stay small) and ``NAME.json`` ({"kind": "klvae", "config": VAEConfig fields, "meta": {...}}). The latent
normalisation (per-channel scale and shift) is part of the config.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from allfuse.io import atomic_write_text
from allfuse.tokenizer.base import CroppedDecode, Precision, autocast, check_image_batch, pad_to_multiple
from allfuse.tokenizer.vae import KLVAE, VAEConfig


class VAETokenizer(CroppedDecode):
    """Tokenizer over a KLVAE: encode = normalised posterior mean; decode ignores `cond` (for now)."""

    def __init__(self, model: KLVAE, precision: Precision = "bf16", name: str = "klvae"):
        self.model = model.eval().requires_grad_(False).to(memory_format=torch.channels_last)
        self.precision: Precision = precision
        self.name = name
        self.downsample = model.cfg.downsample
        self.channels = model.cfg.latent_channels
        c = self.channels
        self.scale = _per_channel(model.cfg.scale, c)  # (1, c, 1, 1)
        self.shift = _per_channel(model.cfg.shift, c)

    @property
    def device(self) -> torch.device:
        """Device of the network's weights."""
        return next(self.model.parameters()).device

    @torch.inference_mode()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> normalised latents (B, c, ceil(H/f), ceil(W/f)), float32."""
        check_image_batch(x)
        x = pad_to_multiple(x.to(self.device, torch.float32), self.downsample)
        with autocast(self.precision, self.device):
            mean, _ = self.model.moments(x.contiguous(memory_format=torch.channels_last))
        return ((mean.float() - self.shift.to(mean.device)) * self.scale.to(mean.device)).contiguous()

    def decode_train(self, z: torch.Tensor) -> torch.Tensor:
        """Differentiable decode (frozen weights, gradients reach z), unclipped: for pixel losses."""
        z = z.to(self.device, torch.float32) / self.scale.to(self.device) + self.shift.to(self.device)
        with autocast(self.precision, self.device):
            x = self.model.decoder(z.contiguous(memory_format=torch.channels_last))
        return x.float()

    def fingerprint(self) -> str:
        """Hash of weights + config + precision: the latent-cache key of this tokenizer."""
        return fingerprint_module(self.model, {"cfg": self.model.cfg.to_dict(), "precision": self.precision})


def _per_channel(v: Sequence[float], c: int) -> torch.Tensor:
    """A scalar or per-channel list -> (1, c, 1, 1) float32."""
    t = torch.tensor(list(v), dtype=torch.float32)
    if t.numel() == 1:
        t = t.expand(c)
    if t.numel() != c:
        raise ValueError(f"latent scale/shift must have 1 or {c} values, got {t.numel()}")
    return t.reshape(1, c, 1, 1).clone()


def fingerprint_module(model: torch.nn.Module, extra: dict) -> str:
    """sha256 (16 hex) over a module's state dict bytes and a JSON-able dict."""
    h = hashlib.sha256(json.dumps(extra, sort_keys=True).encode())
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


@torch.inference_mode()
def fit_latent_stats(model: KLVAE, batches: Sequence[torch.Tensor], precision: Precision = "bf16") -> None:
    """Set model.cfg.scale/shift so posterior means of `batches` get zero mean, unit variance per channel."""
    device = next(model.parameters()).device
    s1 = s2 = None
    n = 0
    for x in batches:
        with autocast(precision, device):
            mean, _ = model.moments(x.to(device))
        m = mean.float().transpose(0, 1).reshape(mean.shape[1], -1).double()  # (c, N)
        s1 = m.sum(1) if s1 is None else s1 + m.sum(1)
        s2 = (m**2).sum(1) if s2 is None else s2 + (m**2).sum(1)
        n += m.shape[1]
    mu = s1 / n
    std = (s2 / n - mu**2).clamp_min(1e-12).sqrt()
    model.cfg.shift = [round(float(v), 6) for v in mu]
    model.cfg.scale = [round(float(v), 6) for v in 1.0 / std]


def save_vae(model: KLVAE, path: str | Path, meta: dict | None = None) -> Path:
    """Write NAME.safetensors (fp16 weights) and NAME.json (config + meta); returns the .safetensors path."""
    path = Path(path).with_suffix(".safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    save_file(sd, str(tmp))
    tmp.replace(path)
    doc = {"kind": "klvae", "config": model.cfg.to_dict(), "meta": meta or {}}
    atomic_write_text(path.with_suffix(".json"), json.dumps(doc, indent=2) + "\n")
    return path


def load_vae(path: str | Path) -> KLVAE:
    """Read a KLVAE saved by `save_vae` (weights upcast to float32)."""
    path = Path(path).with_suffix(".safetensors")
    doc = json.loads(path.with_suffix(".json").read_text())
    if doc.get("kind") != "klvae":
        raise ValueError(f"{path.with_suffix('.json')}: not a klvae tokenizer config")
    model = KLVAE(VAEConfig.from_dict(doc["config"]))
    sd = {k: v.float() for k, v in load_file(str(path)).items()}
    model.load_state_dict(sd)
    return model
