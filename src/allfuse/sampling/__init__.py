"""Samplers: solvers of a velocity function, the prior p0, and the model-facing `sample_latent` entry."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from allfuse.config import PriorKind, SamplerConfig
from allfuse.sampling.solvers import (
    CountingVelocity,
    Sample,
    VelocityFn,
    bridge,
    euler,
    midpoint,
    midpoint_reuse,
    randn_like,
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
    "predicts_data",
    "prior_latent",
    "sample_latent",
    "solve",
    "stochastic",
    "time_grid",
    "velocity_fn",
    "velocity_from_data",
]

# x-prediction: 1 - t is clipped here so v = (Z1 - Z_t) / (1 - t) stays finite near the data end (JiT's 0.05).
T_GAP_MIN = 0.05


def predicts_data(model: nn.Module) -> bool:
    """True for an x-prediction flow model (ModelConfig.predict = "data"); DDP-wrapped models too."""
    cfg = getattr(getattr(model, "module", model), "cfg", None)
    return getattr(cfg, "predict", "velocity") == "data"


def velocity_from_data(z1: Tensor, x: Tensor, t: Tensor | float) -> Tensor:
    """Velocity of the straight path through x at time t towards a predicted clean latent z1:
    v = (Z1 - Z_t) / (1 - t), from Z_t = (1 - t) Z0 + t Z1 and v = Z1 - Z0 (MMAIF Eq. 2)."""
    t = torch.as_tensor(t, device=x.device, dtype=torch.float32)
    gap = (1 - t).clamp_min(T_GAP_MIN)
    gap = gap.view(-1, *([1] * (x.dim() - 1))) if gap.dim() else gap
    return (z1.float() - x.float()) / gap


def prior_latent(
    kind: PriorKind, conds: Sequence[Tensor], generator: torch.Generator | None = None
) -> Tensor:
    """p0 (MMAIF Tab. 6 j-l): N(0, I) noise, the first or second input latent, or the inputs' mean."""
    if kind == "gaussian":
        return randn_like(conds[0], generator)
    if kind == "first":
        return conds[0]
    if kind == "second":
        return conds[1]
    return torch.stack(list(conds)).mean(dim=0)


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
    """Fused latent from a FusionDiT: one call for a regression model, cfg's solver for a flow model."""
    if not getattr(model, "module", model).cfg.timestep:  # unwrap DDP
        return Sample(model(conds, prompt, prompt_mask).sample, 1)
    cfg = cfg or SamplerConfig()
    if cfg.method == "bridge" and predicts_data(model):
        raise ValueError("the bridge sampler needs a velocity-prediction model (ModelConfig.predict)")
    x0 = prior_latent(cfg.prior, conds, generator)
    return solve(cfg, velocity_fn(model, conds, prompt, prompt_mask), x0, generator)
