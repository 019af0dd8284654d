"""diffusers ``AutoencoderKL`` from a local folder as a Tokenizer (optional: needs ``diffusers``).

The folder is what ``AutoencoderKL.save_pretrained`` writes (config.json + weights), e.g. the ``vae/``
subfolder of a Stable Diffusion or FLUX.1 snapshot. Nothing is downloaded (``local_files_only``). Images go
in as [0, 1] and are mapped to the [-1, 1] range diffusers VAEs expect; latents are the posterior mean,
normalised with the folder's own ``shift_factor`` / ``scaling_factor`` (z = (mean - shift) * scale).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from allfuse.tokenizer.base import CroppedDecode, Precision, autocast, check_image_batch, pad_to_multiple


class DiffusersVAETokenizer(CroppedDecode):
    """Wraps diffusers.AutoencoderKL; imported lazily so diffusers stays an optional extra."""

    def __init__(self, folder: str | Path, precision: Precision = "fp32"):
        try:
            from diffusers import AutoencoderKL
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("loading a diffusers AutoencoderKL needs `pip install diffusers`") from e
        self.folder = Path(folder)
        self.vae = AutoencoderKL.from_pretrained(str(self.folder), local_files_only=True).eval()
        self.vae.requires_grad_(False)
        cfg = self.vae.config
        self.name = f"diffusers:{self.folder.name}"
        self.precision: Precision = precision
        self.channels = int(cfg.latent_channels)
        self.downsample = 2 ** (len(cfg.block_out_channels) - 1)
        self.scale = float(getattr(cfg, "scaling_factor", 1.0) or 1.0)
        self.shift = float(getattr(cfg, "shift_factor", 0.0) or 0.0)

    @torch.inference_mode()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> normalised posterior mean."""
        check_image_batch(x)
        x = pad_to_multiple(x.float(), self.downsample) * 2 - 1
        with autocast(self.precision, x.device):
            mean = self.vae.encode(x).latent_dist.mean
        return (mean.float() - self.shift) * self.scale

    def decode_train(self, z: torch.Tensor) -> torch.Tensor:
        """Differentiable, unclipped decode (frozen weights) for pixel losses."""
        with autocast(self.precision, z.device):
            x = self.vae.decode(z.float() / self.scale + self.shift).sample
        return (x.float() + 1) / 2

    def fingerprint(self) -> str:
        """Hash of the folder's files (names, sizes, mtimes) and the precision."""
        h = hashlib.sha256(self.precision.encode())
        for p in sorted(self.folder.rglob("*")):
            if p.is_file():
                st = p.stat()
                h.update(f"{p.relative_to(self.folder)}:{st.st_size}:{st.st_mtime_ns}".encode())
        return h.hexdigest()[:16]
