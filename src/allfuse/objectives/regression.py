"""Regression objective (MMAIF Sect. 3.4.1): no timestep, one call, MSE to the target latent."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from allfuse.config import ObjectiveConfig
from allfuse.objectives.batch import LatentBatch, finish_loss
from allfuse.objectives.pixel import Decoder


def regression_loss(
    model: nn.Module,
    batch: LatentBatch,
    cfg: ObjectiveConfig,
    decode: Decoder | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """MMAIF Eq. (8) + lambda Eq. (9) (Eq. 10) + the MoE balance loss -> (loss, logged scalars). With
    cfg.refeed, that share of the batch (drawn from `generator`) first goes through the model once without
    gradient and trains on its own output as both inputs (`refeed_inputs`)."""
    if cfg.refeed > 0:
        conds, later = refeed_inputs(model, batch, cfg.refeed, generator)
        out = model(conds, batch.prompt, batch.prompt_mask, later_pass=later.to(batch.target.device))
    else:
        out = model(batch.conds, batch.prompt, batch.prompt_mask)
    # MMAIF Eq. (8): L_reg = |f(Z0m, Z1m, P) - Z_GT|^2
    mse = (out.sample.float() - batch.target.float()).pow(2).mean()
    return finish_loss(mse, out.sample, out.balance_loss, batch, cfg, decode)


def refeed_inputs(
    model: nn.Module, batch: LatentBatch, share: float, generator: torch.Generator | None
) -> tuple[list[Tensor], Tensor]:
    """(inputs, picked): the batch's input latents with a random `share` of its samples replaced by
    z = f(inputs, P), the model's own output (no gradient), in every input slot (with ModelConfig.pass_cond:
    [z, mean of the inputs]), and the (B,) bool mask of those samples (the model's `later_pass`): the
    second pass of SamplerConfig.passes = 2 learns to take the first pass's partial restoration towards the
    same target."""
    b = batch.target.shape[0]
    pick = torch.rand(b, generator=generator) < share
    if not bool(pick.any()):
        return batch.conds, pick
    idx = pick.nonzero().squeeze(1).to(batch.target.device)
    prompt = None if batch.prompt is None else batch.prompt[idx]
    mask = None if batch.prompt_mask is None else batch.prompt_mask[idx]
    with torch.no_grad():
        z = model([c[idx] for c in batch.conds], prompt, mask).sample.detach().to(batch.conds[0].dtype)
    fed = [z] * len(batch.conds)
    net_cfg = getattr(getattr(model, "module", model), "cfg", None)
    if net_cfg is not None and net_cfg.pass_cond:  # the later pass sees [z, mean of the inputs]
        if len(batch.conds) != 2:
            raise ValueError(
                f"a pass-conditioned second pass takes 2 inputs, the batch has {len(batch.conds)}"
            )
        fed = [z, torch.stack([c[idx] for c in batch.conds]).mean(0)]
    out = []
    for c, new in zip(batch.conds, fed, strict=True):
        c = c.clone()
        c[idx] = new
        out.append(c)
    return out, pick
