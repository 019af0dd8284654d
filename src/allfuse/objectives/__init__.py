"""Training objectives: functions of (model, batch, cfg) that return (loss, logged scalars)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from allfuse.config import ObjectiveConfig, ObjectiveKind
from allfuse.objectives.batch import LatentBatch
from allfuse.objectives.flow import flow_loss
from allfuse.objectives.pixel import Decoder, fusion_pixel_loss
from allfuse.objectives.regression import regression_loss

__all__ = [
    "OBJECTIVES",
    "Decoder",
    "LatentBatch",
    "compute_loss",
    "flow_loss",
    "fusion_pixel_loss",
    "regression_loss",
]


# What compute_loss calls for ObjectiveConfig.kind; each is called as objective(model, batch, cfg, decode,
# generator) and returns (loss, logged scalars).
OBJECTIVES: dict[ObjectiveKind, Callable[..., tuple[Tensor, dict[str, float]]]] = {
    "regression": regression_loss,
    "flow": flow_loss,
}


def compute_loss(
    model: nn.Module, batch: LatentBatch, cfg: ObjectiveConfig, *args: Any
) -> tuple[Tensor, dict[str, float]]:
    """The objective cfg.kind names (OBJECTIVES): regression (Eq. 8-10) or flow matching (Eq. 11 + 10);
    args are the objective's optional decode and generator, as flow_loss takes them."""
    return OBJECTIVES[cfg.kind](model, batch, cfg, *args)
