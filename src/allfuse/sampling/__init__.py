"""Samplers: solvers of a velocity function and the model-facing `sample_latent` entry; the time convention,
the prior p0 and the velocity <-> data conversions are `allfuse.flow`'s, shared with the objective."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from allfuse.config import SamplerConfig
from allfuse.flow import predicts_data, prior_latent, velocity_from_data
from allfuse.sampling.solvers import (
    CountingVelocity,
    Sample,
    VelocityFn,
    bridge,
    euler,
    midpoint,
    midpoint_reuse,
    stochastic,
    time_grid,
)

__all__ = [
    "CountingVelocity",
    "Sample",
    "VelocityFn",
    "bridge",
    "euler",
    "midpoint",
    "midpoint_reuse",
    "sample_latent",
    "solve",
    "stochastic",
    "time_grid",
    "velocity_fn",
]


def solve(cfg: SamplerConfig, v: VelocityFn, x0: Tensor, generator: torch.Generator | None = None) -> Sample:
    """Run the solver named by cfg.method from x0 (t = 0) to t = 1."""
    if cfg.method == "euler":
        return euler(v, x0, cfg.steps)
    if cfg.method == "midpoint":
        return midpoint(v, x0, cfg.steps)
    if cfg.method == "midpoint_reuse":
        return midpoint_reuse(v, x0, cfg.steps)
    if cfg.method == "stochastic":
        return stochastic(v, x0, cfg.steps, cfg.g, cfg.reuse_velocity, generator)
    return bridge(v, x0, cfg.steps, cfg.bridge_sigma, generator)


def velocity_fn(
    model: nn.Module,
    conds: Sequence[Tensor],
    prompt: Tensor | None = None,
    prompt_mask: Tensor | None = None,
) -> VelocityFn:
    """Close a flow FusionDiT over its conditions: v(x, t) = model(conds, prompt, mask, x, t).sample,
    converted from the predicted clean latent for an x-prediction model (ModelConfig.predict = "data")."""
    data = predicts_data(model)

    def v(x: Tensor, t: Tensor) -> Tensor:
        out = model(conds, prompt, prompt_mask, x=x, t=t).sample
        return velocity_from_data(out, x, t).to(out.dtype) if data else out

    return v


@torch.no_grad()
def sample_latent(
    model: nn.Module,
    conds: Sequence[Tensor],
    prompt: Tensor | None = None,
    prompt_mask: Tensor | None = None,
    cfg: SamplerConfig | None = None,
    generator: torch.Generator | None = None,
) -> Sample:
    """Fused latent from a FusionDiT: cfg.passes calls for a regression model (each after the first on
    the last output as both inputs, or with ModelConfig.pass_cond on [last output, mean of the inputs]
    and marked as a later pass), cfg's solver for a flow model."""
    cfg = cfg or SamplerConfig()
    net_cfg = getattr(model, "module", model).cfg  # unwrap DDP or tiling
    if not net_cfg.timestep:
        z = model(conds, prompt, prompt_mask).sample
        mean = torch.stack(list(conds)).mean(0) if net_cfg.pass_cond and cfg.passes > 1 else None
        for _ in range(cfg.passes - 1):
            z = model(
                [z, z if mean is None else mean.to(z.dtype)], prompt, prompt_mask, later_pass=True
            ).sample
        return Sample(z, cfg.passes)
    if cfg.method == "bridge" and predicts_data(model):
        raise ValueError("the bridge sampler needs a velocity-prediction model (ModelConfig.predict)")
    x0 = prior_latent(cfg.prior, conds, generator)
    return solve(cfg, velocity_fn(model, conds, prompt, prompt_mask), x0, generator)
