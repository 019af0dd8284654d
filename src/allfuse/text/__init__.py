"""Text encoders (prompt -> token embeddings + mask) with caching.

from allfuse.text import load_text_encoder
enc = load_text_encoder()                  # all-MiniLM-L6-v2, offline, D = 384
tokens, mask = enc.encode(["fuse the infrared and visible images"])  # (1, L, 384), (1, L)
"""

from __future__ import annotations

import os
from pathlib import Path

from allfuse.text.cache import CachedTextEncoder
from allfuse.text.encoder import EncoderKind, HFTextEncoder, TextEncoder, minilm_folder


def load_text_encoder(
    name: str | os.PathLike = "default",
    kind: EncoderKind | None = None,
    cache_dir: str | os.PathLike | None = None,
    max_length: int | None = None,
) -> CachedTextEncoder:
    """'default'/'minilm' (bundled all-MiniLM-L6-v2) or a local Hugging Face folder (BERT-like or T5).

    `kind` defaults to 't5' when the folder's config says model_type t5, else 'bert'. `cache_dir` adds an
    on-disk cache beside the in-memory LRU. Nothing is downloaded.
    """
    if str(name) in ("default", "minilm", "all-MiniLM-L6-v2"):
        folder, kind = minilm_folder(), kind or "bert"
    else:
        folder = Path(name)
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"{folder}: not a local Hugging Face model folder (no config.json)")
        kind = kind or _guess_kind(folder)
    limit = max_length or (512 if kind == "t5" else 256)
    return CachedTextEncoder(HFTextEncoder(folder, kind, limit), cache_dir)


def _guess_kind(folder: Path) -> EncoderKind:
    """'t5' for T5-family configs (t5, mt5, umt5), else 'bert'."""
    import json

    model_type = json.loads((folder / "config.json").read_text()).get("model_type", "")
    return "t5" if "t5" in model_type else "bert"


__all__ = ["CachedTextEncoder", "HFTextEncoder", "TextEncoder", "load_text_encoder"]
