"""Flow-matching objective (MMAIF Eq. 2 / 11), with latent priors and an I2SB-style bridge (Tab. 6 j-m).

The time convention, path, target and conversions are `allfuse.flow`'s, shared with the samplers.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from allfuse.config import ObjectiveConfig
from allfuse.flow import (
    data_from_start,
    data_from_velocity,
    interpolate,
    predicts_data,
    prior_latent,
    sample_time,
    velocity_from_data,
    velocity_target,
)
from allfuse.objectives.batch import LatentBatch, finish_loss
from allfuse.objectives.pixel import Decoder


def flow_loss(
    model: nn.Module,
    batch: LatentBatch,
    cfg: ObjectiveConfig,
    decode: Decoder | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """MMAIF Eq. (11) + lambda aux on the predicted clean latent (Eq. 10) + the MoE balance loss.

    An x-prediction model (predict = "data") is trained with the same velocity loss, its velocity derived
    as (Z1~ - Z_t) / (1 - t) (Li & He 2025 found this v-loss best for x-prediction)."""
    data = predicts_data(model)
    if data and cfg.bridge_sigma > 0:
        raise ValueError("x-prediction (ModelConfig.predict='data') is defined for the straight path only")
    z1 = batch.target  # (B, C, h, w)
    t = sample_time(cfg, z1.shape[0], generator).to(z1.device)  # (B,)
    z0 = prior_latent(cfg.prior, batch.conds, generator)  # (B, C, h, w)
    zt = interpolate(z0, z1, t, cfg.bridge_sigma, generator)
    out = model(batch.conds, batch.prompt, batch.prompt_mask, x=zt, t=t)
    v = velocity_from_data(out.sample, zt, t) if data else out.sample.float()
    # MMAIF Eq. (2)/(11): |v(Z_t, t, c) - (Z1 - Z0)|^2
    mse = (v - velocity_target(z0, z1)).pow(2).mean()
    # Predicted clean latent: Z_t + (1 - t) v on the straight path; Zp + v for the bridge (Zp known).
    if data:
        z1_hat = out.sample.float()
    else:
        z1_hat = data_from_start(z0, v) if cfg.bridge_sigma > 0 else data_from_velocity(v, zt, t)
    loss, logs = finish_loss(mse, z1_hat, out.balance_loss, batch, cfg, decode)
    logs["t_mean"] = t.mean().item()
    return loss, logs
