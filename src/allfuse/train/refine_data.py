"""The refiner's training data (train.refine): degraded pairs synthesized as the DiT's training did, run
through the frozen DiT and decoder, so the refiner learns on the decoded fusion it will see at inference."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch.utils.data import DataLoader

from allfuse.config import build_config
from allfuse.data.samples import SAMPLE_KINDS
from allfuse.devices import autocast
from allfuse.model_folder import load_corrector, read_training, resolve_model_folder
from allfuse.models import FusionDiT
from allfuse.sampling import sample_latent
from allfuse.sampling.tiling import TiledModel
from allfuse.train.config import DataConfig, TrainConfig, config_from_dict
from allfuse.train.correct import corrector_task
from allfuse.train.data import EpochDataset, Frozen, StagedDataset, StepSampler, build_dataset

if TYPE_CHECKING:
    from allfuse.train.refine import RefineTrainConfig

WORK_FACTOR = 2  # guided-upsampling steps: crop side / latent-path side
# The fusion rule of the refiner's classical source per sample kind (models/refine.py): an M3 sample's
# views are degraded block by block, so per pixel the sharper view is the right one, the focus rule's job.
CLASSICAL_TASK = {"vif": "vif", "mef": "mef", "mff": "mff", "m3": "mff"}


def classical_tasks(task_id: torch.Tensor) -> list[str]:
    """Sample kind indices (SAMPLE_KINDS) -> the task whose classical rule makes each sample's source."""
    kinds = [SAMPLE_KINDS[int(i)] for i in task_id.reshape(-1)]
    bad = sorted(set(kinds) - set(CLASSICAL_TASK))
    if bad:
        raise ValueError(
            f"a refiner with a classical source trains on {', '.join(CLASSICAL_TASK)} only, not {bad}"
        )
    return [CLASSICAL_TASK[k] for k in kinds]


class FrozenFusion:
    """The frozen DiT + tokenizer + text encoder of a model folder: batches -> decoded fusion."""

    def __init__(self, model: str, correct: bool = False) -> None:
        folder = resolve_model_folder(model)
        # with `correct`, inputs go through the folder's input corrector first, as in the pipeline
        self.corrector = load_corrector(folder) if correct else None
        if correct and self.corrector is None:
            raise ValueError(f"{model}: has no input corrector to train behind (correct=true)")
        if self.corrector is not None:
            self.corrector.eval().requires_grad_(False)
        self.cfg: TrainConfig = config_from_dict(read_training(folder)["dit"])
        if self.cfg.arch != "fusion":
            raise ValueError(f"{model}: a JointDiT; the refiner trains behind a FusionDiT (allfuse-reg/fm)")
        self.frozen = Frozen(self.cfg)
        self.dit = FusionDiT(self.cfg.model)
        self.dit.load_state_dict({k: v.float() for k, v in load_file(folder / "model.safetensors").items()})
        self.dit.eval().requires_grad_(False)
        # crops larger than the DiT's training window run tiled, exactly as the pipeline does at inference
        self.tiled = TiledModel(self.dit, max(4, self.cfg.data.size // self.frozen.tok.downsample))

    @torch.no_grad()
    def corrected(self, batch: dict) -> dict:
        """The batch with inputs a, b replaced by the corrector's output for the samples of the tasks it
        runs for (its config's `tasks`), as FusionPipeline does; the batch itself without a corrector."""
        if self.corrector is None:
            return batch
        kinds = [SAMPLE_KINDS[int(i)] for i in batch["task_id"].reshape(-1)]
        rows = [i for i, k in enumerate(kinds) if k in self.corrector.cfg.tasks]
        if not rows:
            return batch
        xs = [batch[k][rows].float() for k in ("a", "b")]
        outs = [y.clamp(0, 1) for y in self.corrector(xs, corrector_task(batch["task_id"].reshape(-1)[rows]))]
        new = {k: batch[k].clone() for k in ("a", "b")}
        for k, y in zip(("a", "b"), outs, strict=True):
            new[k][rows] = y.to(new[k].dtype)
        return {**batch, **new}

    @torch.no_grad()
    def decoded(self, batch: dict, generator: torch.Generator, factor: int = 1) -> torch.Tensor:
        """(B, 3, H, W) decoded fusion of a batch of degraded pairs; with factor > 1 the latent path runs
        on the inputs area-downscaled by it and the result is upscaled bicubic, as FusionPipeline's
        work_side does."""
        size = batch["a"].shape[-2:]
        if factor > 1:
            small = tuple(s // factor for s in size)
            batch = {
                **batch,
                **{k: F.interpolate(batch[k], size=small, mode="area") for k in ("a", "b", "target")},
            }
        lb = self.frozen.latents(batch)
        with autocast(lb.conds[0].device, self.cfg.bf16):
            z = sample_latent(self.tiled, lb.conds, lb.prompt, lb.prompt_mask, self.cfg.sampler, generator).x
        dec = self.frozen.tok.decode(z.float())
        if factor > 1:
            dec = F.interpolate(dec, size=size, mode="bicubic", align_corners=False).clamp(0, 1)
        return dec


def refiner_dataset(fusion: FrozenFusion, cfg: RefineTrainConfig, seed: int, factor: int = 1):
    data = dataclasses.replace(fusion.cfg.data, size=cfg.size * factor)
    if cfg.kinds is not None:
        data = dataclasses.replace(data, kinds=dict(cfg.kinds))
    if cfg.data_overrides:
        data = build_config(DataConfig, dict(cfg.data_overrides), prefix="data.", base=data)
    ds = build_dataset(dataclasses.replace(fusion.cfg, data=data), seed)
    if not cfg.stages:
        return ds
    from allfuse.stages import InputStages

    return StagedDataset(ds, InputStages.from_folder(cfg.model))


def work_batch_size(cfg: RefineTrainConfig) -> int:
    """Crops per guided-upsampling step: the pixel count of a normal step."""
    return max(1, cfg.batch_size // WORK_FACTOR**2)


def refiner_batches(fusion: FrozenFusion, cfg: RefineTrainConfig, factor: int, batch: int, start: int):
    """Endless batches of crops of factor * size px, from micro-batch `start` on (exact resume)."""
    base = refiner_dataset(fusion, cfg, cfg.seed + (factor - 1) * 104_729, factor)  # a stream per size
    loader = DataLoader(
        EpochDataset(base, len(base)),
        batch_size=batch,
        sampler=StepSampler(len(base), batch, 0, 1, cfg.seed, start),
        num_workers=cfg.workers,
        persistent_workers=cfg.workers > 0,
    )
    return iter(loader)
