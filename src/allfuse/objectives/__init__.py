"""Training objectives: functions of (model, batch, cfg) that return (loss, logged scalars)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from allfuse.config import ObjectiveConfig
from allfuse.objectives.batch import LatentBatch
from allfuse.objectives.flow import flow_loss
from allfuse.objectives.pixel import Decoder, fusion_pixel_loss
from allfuse.objectives.regression import regression_loss

__all__ = [
    "Decoder",
    "LatentBatch",
    "compute_loss",
    "flow_loss",
    "fusion_pixel_loss",
    "regression_loss",
]


def compute_loss(
    model: nn.Module,
    batch: LatentBatch,
    cfg: ObjectiveConfig,
    decode: Decoder | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """Dispatch on cfg.kind: regression (Eq. 8-10) or flow matching (Eq. 11 + 10)."""
    if cfg.kind == "regression":
        return regression_loss(model, batch, cfg, decode)
    return flow_loss(model, batch, cfg, decode, generator)
