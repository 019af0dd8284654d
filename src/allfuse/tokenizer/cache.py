"""On-disk latent cache for training sets: encode each image once, reuse the latent afterwards.

Layout: ``root/<tokenizer fingerprint>/<k[:2]>/<k>.safetensors``. The fingerprint hashes the tokenizer's
weights, config and precision, so a retrained or differently configured tokenizer gets a fresh folder and
stale latents are never returned. Entries are keyed by the image file (resolved path, size, mtime) or by a
hash of the pixels; writes are atomic (temp file + rename), so parallel workers can share a cache.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from allfuse.io import atomic_write_text, read_image
from allfuse.tokenizer.base import Tokenizer


class LatentCache:
    """Latents of `tokenizer` stored under `root`; `hits`/`misses` count lookups."""

    def __init__(self, root: str | os.PathLike, tokenizer: Tokenizer):
        self.tokenizer = tokenizer
        fp = tokenizer.fingerprint()  # type: ignore[attr-defined]
        self.dir = Path(root) / fp
        self.hits = 0
        self.misses = 0
        meta = self.dir / "tokenizer.json"
        if not meta.is_file():
            doc = {"name": tokenizer.name, "fingerprint": fp, "downsample": tokenizer.downsample}
            atomic_write_text(meta, json.dumps({**doc, "channels": tokenizer.channels}) + "\n")

    def encode_file(self, path: str | os.PathLike) -> torch.Tensor:
        """Latent (c, h, w) of an image file (read as RGB); re-encoded when the file changes."""
        p = Path(path).resolve()
        st = p.stat()
        key = _hash(f"file:{p}:{st.st_size}:{st.st_mtime_ns}".encode())
        return self._get(key, lambda: torch.from_numpy(read_image(p, channels="rgb")).permute(2, 0, 1))

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """Latent (c, h, w) of one image (3, H, W) in [0, 1], keyed by a hash of its float32 pixels."""
        x = image.detach().float().contiguous().cpu()
        key = _hash(str(tuple(x.shape)).encode() + x.numpy().tobytes())
        return self._get(key, lambda: x)

    def _get(self, key: str, load) -> torch.Tensor:
        """Return the cached latent for `key`, encoding `load()` and storing it on a miss."""
        file = self.dir / key[:2] / f"{key}.safetensors"
        if file.is_file():
            self.hits += 1
            return load_file(str(file))["z"]
        self.misses += 1
        x = load()  # (3, H, W)
        z = self.tokenizer.encode(x[None].float())[0].contiguous()  # (c, h, w)
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_name(f".{file.name}.{os.getpid()}.tmp")
        save_file({"z": z, "hw": torch.tensor(x.shape[-2:])}, str(tmp))
        tmp.replace(file)
        return z

    def __len__(self) -> int:
        """Number of cached latents."""
        return sum(1 for _ in self.dir.glob("*/*.safetensors"))


def _hash(b: bytes) -> str:
    """sha256 hex of bytes."""
    return hashlib.sha256(b).hexdigest()
