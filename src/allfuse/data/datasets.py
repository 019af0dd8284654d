"""Torch datasets: on-the-fly synthesis from pair folders (the training default) and written shards.

Both return the same dict per item:
  ``a``, ``b``, ``target``: (3, H, W) float32 in [0, 1] (gray replicated to 3 channels);
  ``clean_a``, ``clean_b``: the clean pair the inputs were degraded from, same form (M3: the image twice);
  ``task_id``: int64 index of the sample kind in `SAMPLE_KINDS` (vif, mef, mff, m3, control, seg);
  ``prompt``: the DiTFuse tagged prompt or the natural instruction (``prompt_style``);
  ``meta``: JSON text of the sample's metadata (a string, so the default collate keeps it per item);
  ``mask``: (1, H, W) float32, the class a seg sample names (its overlay), zeros for other kinds;
  ``has_mask``: bool, whether ``mask`` is known (seg samples synthesized on the fly; written shards keep
  the overlaid target only, so their seg samples say False);
  ``label``: (1, H, W) int64, every pixel's class index into ``classes`` where known (seg samples
  synthesized on the fly), else -1;
  ``classes``: the label set of ``label`` joined by "|" (first "background"), "" when unknown.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from allfuse.data.pipeline import PipelineConfig
from allfuse.data.samples import FUSION_KINDS, SAMPLE_KINDS, Sample, Sources, control_probs, make_sample
from allfuse.data.sources import ImagePool, PairPool, Teacher, classical_teacher
from allfuse.data.synth_cli import FILES as SHARD_FILES  # a, b, target, clean_a, clean_b
from allfuse.io import read_image
from allfuse.types import Image

PromptStyle = Literal["tagged", "natural"]
# Relative frequency of each sample kind; DiTFuse trains mostly on M3 and seg, MMAIF on fusion only.
DEFAULT_MIX: dict[str, float] = {"vif": 1.0, "mef": 1.0, "mff": 1.0, "m3": 1.0, "control": 0.5, "seg": 0.5}


@dataclass(frozen=True)
class MixConfig:
    """Which sample kinds to synthesize and how often, plus the degradation pipeline settings."""

    kinds: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_MIX))
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    prompt_style: PromptStyle = "tagged"
    split: Literal["train", "held_out"] = "train"  # held_out: evaluation prompts never seen in training

    def __post_init__(self) -> None:
        """Reject unknown kinds, all-zero mixes and unknown prompt styles/splits."""
        if self.prompt_style not in ("tagged", "natural") or self.split not in ("train", "held_out"):
            raise ValueError(f"prompt_style {self.prompt_style!r} / split {self.split!r} not recognised")
        bad = set(self.kinds) - set(SAMPLE_KINDS)
        if bad:
            raise ValueError(f"unknown sample kinds {sorted(bad)}; choose from {', '.join(SAMPLE_KINDS)}")
        if not any(w > 0 for w in self.kinds.values()):
            raise ValueError("the mix needs at least one kind with a positive weight")


def to_chw(x: Image) -> torch.Tensor:
    """(H, W) or (H, W, 3) float image -> (3, H, W) float32 tensor, gray replicated."""
    x = np.asarray(x, np.float32)
    rgb = np.repeat(x[..., None], 3, axis=2) if x.ndim == 2 else x
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))


def as_item(
    a: Image,
    b: Image,
    target: Image,
    kind: str,
    prompt: str,
    meta: dict,
    clean: Sequence[Image],
    mask: np.ndarray | None = None,
    label: np.ndarray | None = None,
    classes: Sequence[str] = (),
) -> dict:
    """The dict every dataset returns (see module docstring)."""
    h, w = np.asarray(target).shape[:2]
    m = np.zeros((1, h, w), np.float32) if mask is None else (mask[None] > 0).astype(np.float32)
    lab = np.full((1, h, w), -1, np.int64) if label is None else np.asarray(label, np.int64)[None]
    return {
        "label": torch.from_numpy(np.ascontiguousarray(lab)),
        "classes": "|".join(classes) if label is not None else "",
        "mask": torch.from_numpy(m),
        "has_mask": torch.tensor(mask is not None),
        "a": to_chw(a),
        "b": to_chw(b),
        "target": to_chw(target),
        "clean_a": to_chw(clean[0]),
        "clean_b": to_chw(clean[1]),
        "task_id": torch.tensor(SAMPLE_KINDS.index(kind), dtype=torch.int64),
        "prompt": prompt,
        "meta": json.dumps(meta, default=float),
    }


class SynthDataset(Dataset):
    """Synthesizes sample i on the fly: deterministic in (seed, epoch, i), so every epoch repeats exactly
    unless `set_epoch` (or `epoch=`) shifts it. Kinds without material are dropped from the mix (fusion
    kinds need pairs of that task; m3/control/seg always work, from bundled images or synthetic scenes).
    """

    def __init__(
        self,
        data: Sequence[str | os.PathLike] = (),
        mix: MixConfig | None = None,
        length: int = 10_000,
        seed: int = 0,
        epoch: int = 0,
        images: Sequence[str | os.PathLike] = (),
        teacher: Teacher = classical_teacher,
        labels: Sequence[str | os.PathLike] = (),
        seg_real: float = 0.5,
        control_weights: Mapping[str, float] | None = None,
    ) -> None:
        """data: pair folders (searched 3 levels deep); images: natural-image folders for M3 (default:
        scikit-image samples); teacher: (clean images, task) -> fusion target; labels: label trees for seg
        (allfuse.data.seg.label_folders), drawn for a `seg_real` share of seg samples; control_weights:
        relative weight of each control level in control samples (missing levels weigh 1)."""
        self.mix = mix or MixConfig()
        pairs = PairPool(data, teacher) if data else None
        self.sources = Sources(
            pairs,
            ImagePool(images),
            self.mix.pipeline,
            self.mix.split,
            labels=tuple(map(str, labels)),
            seg_real=seg_real,
            control_weights=dict(control_weights or {}),
        )
        control_probs(self.sources.control_weights)  # a bad level name fails here, not in a worker
        have = set(pairs.tasks()) if pairs else set()
        self.kinds = [k for k, w in self.mix.kinds.items() if w > 0 and (k not in FUSION_KINDS or k in have)]
        if not self.kinds:
            raise ValueError(
                f"nothing to synthesize: mix {dict(self.mix.kinds)} but pair tasks found: {sorted(have)}"
            )
        w = np.asarray([self.mix.kinds[k] for k in self.kinds], float)
        self.weights = w / w.sum()
        self.length, self.seed, self.epoch = int(length), int(seed), int(epoch)

    def __len__(self) -> int:
        """Samples per epoch."""
        return self.length

    def set_epoch(self, epoch: int) -> None:
        """Shift every sample to a new realization (call once per epoch for fresh data)."""
        self.epoch = int(epoch)

    def kind_of(self, index: int) -> str:
        """The sample kind of item `index` (its own stream, independent of the sample's content)."""
        if len(self.kinds) == 1:
            return self.kinds[0]
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch, index, 1]))  # own stream
        return self.kinds[int(rng.choice(len(self.kinds), p=self.weights))]

    def sample(self, index: int) -> Sample:
        """The full `Sample` (clean images included) of item `index`."""
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} samples")
        return make_sample(self.kind_of(index), self.sources, self.seed, index, self.epoch)

    def __getitem__(self, index: int) -> dict:
        """Item `index` as tensors (see module docstring)."""
        s = self.sample(index)
        prompt = s.prompt if self.mix.prompt_style == "tagged" else s.instruction
        return as_item(
            s.degraded[0],
            s.degraded[1],
            s.target,
            s.kind,
            prompt,
            s.meta,
            s.clean,
            s.mask,
            s.label,
            s.classes,
        )


class ShardDataset(Dataset):
    """Reads a folder written by `allfuse synth` (meta.jsonl + PNGs), returning the same dict."""

    def __init__(self, folder: str | os.PathLike, prompt_style: PromptStyle = "tagged") -> None:
        """Index the samples listed in `folder`/meta.jsonl whose images exist."""
        self.folder = Path(folder)
        meta = self.folder / "meta.jsonl"
        if not meta.is_file():
            raise FileNotFoundError(f"{meta}: not a synth shard folder (no meta.jsonl)")
        rows = [json.loads(line) for line in meta.read_text("utf-8").splitlines() if line.strip()]
        self.rows = sorted(rows, key=lambda r: r["index"])
        self.prompt_style = prompt_style

    def __len__(self) -> int:
        """Number of written samples."""
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        """Sample i (in index order) as tensors."""
        row = self.rows[i]
        files = row["files"]
        a, b, t, ca, cb = (read_image(self.folder / files[k], "rgb") for k in SHARD_FILES)
        prompt = row["prompt"] if self.prompt_style == "tagged" else row["instruction"]
        return as_item(a, b, t, row["kind"], prompt, row, (ca, cb))
