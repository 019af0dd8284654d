"""Periodic validation: sample held-in synthetic pairs with the EMA network (FusionDiT or JointDiT), score
them, save a grid."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from allfuse import metrics
from allfuse.devices import autocast
from allfuse.io import atomic_write_text, write_image
from allfuse.sampling import sample_latent
from allfuse.sampling.joint import sample_guided

if TYPE_CHECKING:
    from allfuse.train.config import TrainConfig
    from allfuse.train.data import Frozen

VAL_SEED_OFFSET = 1_000_003  # the validation stream never overlaps the training stream
VAL_METRICS = ["SF", "AG", "Qabf", "SSIM", "PSNR_ref", "SSIM_ref"]


def _hwc(x: torch.Tensor) -> np.ndarray:
    """(3, H, W) tensor -> (H, W, 3) float32 array."""
    return x.detach().float().permute(1, 2, 0).cpu().numpy()


@torch.no_grad()
def validate(
    model: torch.nn.Module, frozen: Frozen, cfg: TrainConfig, step: int, out: Path
) -> dict[str, float]:
    """Fuse cfg.data.val_pairs fixed samples; metrics against the clean sources and the target."""
    from allfuse.train.data import training_dataset

    ds = training_dataset(cfg, cfg.seed + VAL_SEED_OFFSET)
    model.eval()
    scores: dict[str, list[float]] = {}
    rows = []
    for i in range(min(cfg.data.val_pairs, len(ds))):  # type: ignore[arg-type]
        s = ds.sample(i)  # type: ignore[attr-defined]
        item = ds[i]
        batch = {k: (v[None] if isinstance(v, torch.Tensor) else [v]) for k, v in item.items()}
        lb = frozen.latents(batch).to(next(model.parameters()).device)
        gen = torch.Generator().manual_seed(i)
        with autocast(lb.conds[0].device, cfg.bf16):
            if cfg.arch == "joint":  # with the guidance scales a model folder of this run would use
                scales = (cfg.guidance.text, cfg.guidance.image)
                z = sample_guided(model, lb.conds, lb.prompt, lb.prompt_mask, cfg.sampler, *scales, gen).x
            else:
                z = sample_latent(model, lb.conds, lb.prompt, lb.prompt_mask, cfg.sampler, gen).x
        fused = _hwc(frozen.tok.decode(z.float())[0])
        r = metrics.compute(fused, list(s.clean), names=VAL_METRICS, reference=_hwc(item["target"]))
        for k, v in r.items():
            scores.setdefault(k, []).append(v)
        if len(rows) < 4:
            rows.append(
                np.concatenate([_hwc(item["a"]), _hwc(item["b"]), fused, _hwc(item["target"])], axis=1)
            )
    means = {k: float(np.nanmean([x for x in v if np.isfinite(x)] or [np.nan])) for k, v in scores.items()}
    write_image(out / "samples" / f"step_{step:08d}.png", np.concatenate(rows, axis=0))
    with open(out / "val.jsonl", "a") as f:
        f.write(json.dumps({"step": step, **means}) + "\n")
    atomic_write_text(out / "val_latest.json", json.dumps({"step": step, **means}, indent=2))
    return means
