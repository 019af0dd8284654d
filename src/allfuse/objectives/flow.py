"""Flow-matching objective (MMAIF Eq. 2 / 11), with latent priors and an I2SB-style bridge (Tab. 6 j-m).

Time convention (one for all of allfuse): t = 0 is the prior p0, t = 1 the data (the fused latent),
  Z_t = (1 - t) Z0 + t Z1 [+ sigma sqrt(t (1 - t)) eps],   target v = Z1 - Z0,
so samplers integrate from t = 0 to t = 1 as in Algorithm 1. (MMAIF's text after Eq. 2 writes
Z_t = t Z0 + (1 - t) Z1, which contradicts its own target Z1 - Z0 and Algorithm 1; we follow the latter.)
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from allfuse.config import ObjectiveConfig
from allfuse.objectives.batch import LatentBatch, finish_loss
from allfuse.objectives.pixel import Decoder
from allfuse.sampling import predicts_data, prior_latent, randn_like, velocity_from_data


def sample_time(cfg: ObjectiveConfig, n: int, generator: torch.Generator | None = None) -> Tensor:
    """Training times (n,): uniform on [0, 1] or logit-normal sigmoid(N(mean, std))."""
    device = generator.device if generator is not None else None
    if cfg.time_sampling == "uniform":
        return torch.rand(n, generator=generator, device=device)
    normal = torch.randn(n, generator=generator, device=device)
    return torch.sigmoid(cfg.logit_mean + cfg.logit_std * normal)


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
    tt = t.view(-1, 1, 1, 1).to(z1.dtype)
    z0 = prior_latent(cfg.prior, batch.conds, generator)  # (B, C, h, w)
    zt = (1 - tt) * z0 + tt * z1
    if cfg.bridge_sigma > 0:  # Brownian bridge between the latent prior and the data
        eps = randn_like(z1, generator)
        zt = zt + cfg.bridge_sigma * (tt * (1 - tt)).sqrt() * eps
    out = model(batch.conds, batch.prompt, batch.prompt_mask, x=zt, t=t)
    v = velocity_from_data(out.sample, zt, t) if data else out.sample.float()
    # MMAIF Eq. (2)/(11): |v(Z_t, t, c) - (Z1 - Z0)|^2
    mse = (v - (z1 - z0).float()).pow(2).mean()
    # Predicted clean latent: Z1~ = Z_t + (1 - t) v on the straight path; Zp + v for the bridge (Zp known).
    if data:
        z1_hat = out.sample.float()
    else:
        z1_hat = z0 + v if cfg.bridge_sigma > 0 else zt + (1 - tt) * v
    loss, logs = finish_loss(mse, z1_hat, out.balance_loss, batch, cfg, decode)
    logs["t_mean"] = t.mean().item()
    return loss, logs
