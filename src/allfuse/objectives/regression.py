"""Regression objective (MMAIF Sect. 3.4.1): no timestep, one call, MSE to the target latent."""

from __future__ import annotations

from torch import Tensor, nn

from allfuse.config import ObjectiveConfig
from allfuse.objectives.batch import LatentBatch, finish_loss
from allfuse.objectives.pixel import Decoder


def regression_loss(
    model: nn.Module, batch: LatentBatch, cfg: ObjectiveConfig, decode: Decoder | None = None, *_: object
) -> tuple[Tensor, dict[str, float]]:
    """MMAIF Eq. (8) + lambda Eq. (9) (Eq. 10) + the MoE balance loss -> (loss, logged scalars). Called as
    every objective is (objectives.OBJECTIVES); a generator after decode is ignored: regression draws none."""
    out = model(batch.conds, batch.prompt, batch.prompt_mask)
    # MMAIF Eq. (8): L_reg = |f(Z0m, Z1m, P) - Z_GT|^2
    mse = (out.sample.float() - batch.target.float()).pow(2).mean()
    return finish_loss(mse, out.sample, out.balance_loss, batch, cfg, decode)
