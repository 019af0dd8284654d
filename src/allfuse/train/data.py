"""Training data shared by the DiT loop (train.loop) and the refiner loop (train.refine): the endless
synthesis stream, its exactly resumable sampler, per-step random streams, and the frozen tokenizer and text
encoder that turn batches into latents."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from allfuse.objectives import LatentBatch
from allfuse.objectives.batch import SegLabels
from allfuse.train.config import TrainConfig


class EpochDataset(Dataset):
    """Index k of an endless stream = item k % n of epoch k // n (each epoch draws new degradations)."""

    def __init__(self, ds: Dataset, n: int) -> None:
        self.ds, self.n = ds, n

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, k: int) -> dict:
        self.ds.set_epoch(k // self.n)  # type: ignore[attr-defined]  # per worker copy: deterministic
        return self.ds[k % self.n]


class StepSampler(Sampler[int]):
    """Sample indices for micro-batches start, start+1, ...: a fresh permutation per epoch, the global
    batch split across ranks. A pure function of (seed, micro-batch), so a resumed run sees the same data."""

    def __init__(self, n: int, batch: int, rank: int, world: int, seed: int, start: int) -> None:
        self.n, self.batch, self.rank, self.world, self.seed, self.start = n, batch, rank, world, seed, start

    def __iter__(self) -> Iterator[int]:
        micro, perms = self.start, {}
        while True:
            first = (micro * self.world + self.rank) * self.batch  # position in the endless stream
            for pos in range(first, first + self.batch):
                epoch = pos // self.n
                if epoch not in perms:
                    perms = {
                        epoch: torch.randperm(
                            self.n, generator=torch.Generator().manual_seed(self.seed * 100_003 + epoch)
                        )
                    }
                yield epoch * self.n + int(perms[epoch][pos % self.n])
            micro += 1


def step_seed(seed: int, step: int, rank: int, micro: int) -> int:
    """The seed of one micro-batch's random streams: a function of (seed, step, rank, micro) only."""
    return ((seed * 1_000_003 + step) * 1009 + rank) * 17 + micro


def step_generator(seed: int, step: int, rank: int, micro: int) -> torch.Generator:
    """The random stream of one micro-batch (flow times, noise): independent of how the run was split."""
    return torch.Generator().manual_seed(step_seed(seed, step, rank, micro))


def build_dataset(cfg: TrainConfig, seed: int) -> Dataset:
    """The on-the-fly synthesis dataset of cfg.data (allfuse.data.datasets.SynthDataset)."""
    from allfuse.data.datasets import MixConfig, SynthDataset

    mix = MixConfig(
        kinds=dict(cfg.data.kinds), pipeline=cfg.data.pipeline(), prompt_style=cfg.data.prompt_style
    )  # type: ignore[arg-type]
    data = [d for d in cfg.data.data if Path(d).exists()]
    for key in ("images", "labels"):
        missing = [d for d in getattr(cfg.data, key) if not Path(d).is_dir()]
        if missing:
            raise FileNotFoundError(f"data.{key}: no such folder {missing[0]}")
    return SynthDataset(
        data=data,
        mix=mix,
        length=cfg.data.length,
        seed=seed,
        images=cfg.data.images,
        labels=cfg.data.labels,
        seg_real=cfg.data.seg_real,
        control_weights=cfg.data.control_weights,
    )


def training_dataset(cfg: TrainConfig, seed: int) -> Dataset:
    """The DiT loop's dataset: build_dataset, through cfg.stages_from's stages when it names a model."""
    ds = build_dataset(cfg, seed)
    if not cfg.stages_from:
        return ds
    from allfuse.stages import InputStages

    return StagedDataset(ds, InputStages.from_folder(cfg.stages_from))


class StagedDataset(Dataset):
    """A synthesis dataset whose fusion samples' degraded inputs pass through a model's pre-fusion stages
    (allfuse.stages: JPEG deblocking, stripe removal, denoising, exposure gain, deblurring, input
    corrector), each for the tasks it runs for, as FusionPipeline runs them before its DiT; M3, control
    and seg samples pass as they are. A grey input (three equal channels, an infrared image) is staged as
    one channel, as the pipeline sees it. The target and clean sources are unchanged."""

    def __init__(self, ds: Dataset, stages) -> None:
        self.ds, self.stages = ds, stages

    def __len__(self) -> int:
        return len(self.ds)  # type: ignore[arg-type]

    def set_epoch(self, epoch: int) -> None:
        self.ds.set_epoch(epoch)  # type: ignore[attr-defined]

    def sample(self, index: int):
        """The underlying dataset's Sample (unstaged: its clean sources and target are what validation
        scores against)."""
        return self.ds.sample(index)  # type: ignore[attr-defined]

    def __getitem__(self, index: int) -> dict:
        from allfuse.data.samples import SAMPLE_KINDS
        from allfuse.types import TASKS

        item = self.ds[index]
        task = SAMPLE_KINDS[int(item["task_id"])]
        if task not in TASKS:
            return item
        images = []
        for key in ("a", "b"):
            x = item[key].permute(1, 2, 0).numpy()
            grey = bool((x[..., 0] == x[..., 1]).all() and (x[..., 1] == x[..., 2]).all())
            images.append(np.ascontiguousarray(x[..., 0] if grey else x))
        for key, y in zip(("a", "b"), self.stages.restore(images, task), strict=True):
            y = np.clip(np.asarray(y, np.float32), 0.0, 1.0)
            y = np.repeat(y[..., None], 3, axis=2) if y.ndim == 2 else y
            item[key] = torch.from_numpy(np.ascontiguousarray(y.transpose(2, 0, 1)))
        return item


class Frozen:
    """The frozen tokenizer and text encoder: batches of images/prompts -> a LatentBatch."""

    def __init__(self, cfg: TrainConfig) -> None:
        from allfuse.text import load_text_encoder
        from allfuse.tokenizer import load_tokenizer

        self.tok = load_tokenizer(cfg.tokenizer, precision="bf16" if cfg.bf16 else "fp32")
        prompt = cfg.arch == "joint" or cfg.model.prompt  # a JointDiT reads the prompt unless there is none
        self.text = None if cfg.text_encoder == "none" or not prompt else load_text_encoder(cfg.text_encoder)

    def model_config(self, cfg: TrainConfig):
        """The FusionDiT config matched to the tokenizer's channels and the text encoder's width."""
        m = dataclasses.replace(cfg.model, latent_channels=self.tok.channels, prompt=self.text is not None)
        if self.text is not None:
            m = dataclasses.replace(m, text_dim=self.text.dim)
        return m

    def fit(self, cfg: TrainConfig) -> TrainConfig:
        """`cfg` with its network's config (cfg.arch's) matched to the tokenizer and the text encoder."""
        if cfg.arch == "fusion":
            return dataclasses.replace(cfg, model=self.model_config(cfg))
        dim = self.text.dim if self.text is not None else cfg.joint.text_dim
        joint = dataclasses.replace(cfg.joint, latent_channels=self.tok.channels, text_dim=dim)
        return dataclasses.replace(cfg, joint=joint)

    @torch.no_grad()
    def latents(self, batch: dict) -> LatentBatch:
        """Encode degraded inputs and target; embed prompts; keep the target image for the pixel loss."""
        # .clone(): the tokenizer encodes in inference mode; autograd may save these tensors
        conds = [self.tok.encode(batch["a"]).clone(), self.tok.encode(batch["b"]).clone()]
        prompt = mask = None
        if self.text is not None:
            prompt, mask = (t.clone() for t in self.text.encode(list(batch["prompt"])))
        target = self.tok.encode(batch["target"]).clone()
        masks, has_mask = batch.get("mask"), batch.get("has_mask")
        pixels = [batch["a"], batch["b"]]
        seg = self.seg_labels(batch)
        return LatentBatch(conds, target, prompt, mask, [batch["target"]], masks, has_mask, pixels, seg)

    def seg_labels(self, batch: dict) -> SegLabels | None:
        """The batch's dense seg labels in one label set (the union of the samples' own sets, in order of
        appearance), with the text tokens of its names; None without labelled samples or a text encoder."""
        label = batch.get("label")
        if label is None or self.text is None or not bool((label >= 0).any()):
            return None
        sets = [tuple(c.split("|")) if c else () for c in batch["classes"]]
        names = tuple(dict.fromkeys(n for s in sets for n in s))
        out = torch.full_like(label, -1)
        allowed = torch.zeros(len(sets), len(names), dtype=torch.bool)
        for i, own in enumerate(sets):
            if not own:
                continue
            lookup = torch.tensor([names.index(n) for n in own])
            known = label[i] >= 0
            out[i][known] = lookup[label[i][known]]
            allowed[i, lookup] = True
        text, text_mask = (t.clone() for t in self.text.encode(list(names)))
        return SegLabels(out, allowed, text, text_mask, names)

    def decode_for_loss(self, z: torch.Tensor) -> torch.Tensor:
        """Differentiable decode (frozen weights) for the auxiliary pixel loss, MMAIF Eq. (9)."""
        return self.tok.decode_train(z).to(z.device)  # the tokenizer may sit on another device
