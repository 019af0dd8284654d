"""Caching for text encoders: an in-memory LRU plus an optional on-disk store.

Key = sha256(encoder id + NUL + exact prompt text): no normalisation, so different spellings are
different entries, and a different encoder (other weights, tokenizer or max_length) never shares entries.
Each disk entry is one safetensors file holding the unpadded (L, D) token embeddings; since the encoder
computes each prompt without padding, cached and fresh results are bit-identical.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from allfuse.text.encoder import HFTextEncoder, pad_tokens


class CachedTextEncoder:
    """Wraps an encoder with `encode_each`; misses are encoded together in one batched call."""

    def __init__(
        self, encoder: HFTextEncoder, cache_dir: str | os.PathLike | None = None, max_items: int = 4096
    ):
        self.encoder = encoder
        self.dim = encoder.dim
        self.id = encoder.id
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.max_items = max_items
        self.memory: OrderedDict[str, torch.Tensor] = OrderedDict()
        self.stats = {"memory": 0, "disk": 0, "encoded": 0}

    def key(self, prompt: str) -> str:
        """Cache key of a prompt for this encoder."""
        return hashlib.sha256(f"{self.id}\0{prompt}".encode()).hexdigest()

    def encode(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(tokens (B, L, D), mask (B, L)), from the caches where possible."""
        keys = [self.key(p) for p in prompts]
        found: dict[str, torch.Tensor] = {}
        missing: dict[str, str] = {}  # key -> prompt, de-duplicated
        for k, p in zip(keys, prompts, strict=True):
            if k in found or k in missing:
                continue
            t = self._lookup(k)
            if t is None:
                missing[k] = p
            else:
                found[k] = t
        if missing:
            fresh = self.encoder.encode_each(list(missing.values()))
            self.stats["encoded"] += len(fresh)
            for k, t in zip(missing, fresh, strict=True):
                self._store(k, t)
                found[k] = t
        return pad_tokens([found[k] for k in keys], self.dim)

    def _lookup(self, k: str) -> torch.Tensor | None:
        """Memory first, then disk (promoting to memory)."""
        if k in self.memory:
            self.memory.move_to_end(k)
            self.stats["memory"] += 1
            return self.memory[k]
        if self.cache_dir is not None:
            f = self.cache_dir / k[:2] / f"{k}.safetensors"
            if f.is_file():
                t = load_file(str(f))["tokens"]
                self._remember(k, t)
                self.stats["disk"] += 1
                return t
        return None

    def _store(self, k: str, t: torch.Tensor) -> None:
        """Into memory, and atomically onto disk when a cache_dir is set."""
        self._remember(k, t)
        if self.cache_dir is not None:
            f = self.cache_dir / k[:2] / f"{k}.safetensors"
            f.parent.mkdir(parents=True, exist_ok=True)
            tmp = f.with_name(f".{f.name}.{os.getpid()}.tmp")
            save_file({"tokens": t.contiguous()}, str(tmp), metadata={"encoder": self.id})
            tmp.replace(f)

    def _remember(self, k: str, t: torch.Tensor) -> None:
        """Insert into the LRU, evicting the least recently used beyond max_items."""
        self.memory[k] = t
        self.memory.move_to_end(k)
        while len(self.memory) > self.max_items:
            self.memory.popitem(last=False)
