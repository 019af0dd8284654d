"""The flow-matching convention of allfuse, in one module that the objective and the samplers both use
(minRF's rf.py keeps its loss and its sampler side by side for the same reason).

Time convention: t = 0 is the prior p0, t = 1 the data (the fused latent),
  Z_t = (1 - t) Z0 + t Z1 [+ sigma sqrt(t (1 - t)) eps],   target v = dZ/dt = Z1 - Z0,
so samplers integrate from t = 0 to t = 1 as in MMAIF Algorithm 1. (MMAIF's text after Eq. 2 writes
Z_t = t Z0 + (1 - t) Z1, which contradicts its own target Z1 - Z0 and Algorithm 1; we follow the latter.)
A network predicts either v (velocity) or Z1 (x-prediction, ModelConfig.predict = "data"); the conversions
between the two are here too.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from allfuse.config import ObjectiveConfig, PriorKind

# x-prediction: 1 - t is clipped here so v = (Z1 - Z_t) / (1 - t) stays finite near the data end (JiT's 0.05).
T_GAP_MIN = 0.05


def randn_like(ref: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Standard normal noise shaped like ref, drawn on the generator's device, moved to ref's device."""
    device = generator.device if generator is not None else ref.device
    return torch.randn(ref.shape, generator=generator, device=device, dtype=ref.dtype).to(ref.device)


def sample_time(cfg: ObjectiveConfig, n: int, generator: torch.Generator | None = None) -> Tensor:
    """Training times (n,): uniform on [0, 1] or logit-normal sigmoid(N(mean, std))."""
    device = generator.device if generator is not None else None
    if cfg.time_sampling == "uniform":
        return torch.rand(n, generator=generator, device=device)
    normal = torch.randn(n, generator=generator, device=device)
    return torch.sigmoid(cfg.logit_mean + cfg.logit_std * normal)


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


def _per_sample(t: Tensor, x: Tensor) -> Tensor:
    """Times (B,) shaped (B, 1, ..., 1) to broadcast over x (B, ...), in x's dtype."""
    return t.view(-1, *([1] * (x.dim() - 1))).to(x.dtype)


def interpolate(
    z0: Tensor, z1: Tensor, t: Tensor, sigma: float = 0.0, generator: torch.Generator | None = None
) -> Tensor:
    """Z_t (B, ...) at times t (B,): the straight path (MMAIF Eq. 2), plus the I2SB-style Brownian bridge
    noise sigma sqrt(t (1 - t)) eps when sigma > 0 (Tab. 6 j-m)."""
    tt = _per_sample(t, z1)
    zt = (1 - tt) * z0 + tt * z1
    if sigma > 0:
        zt = zt + sigma * (tt * (1 - tt)).sqrt() * randn_like(z1, generator)
    return zt


def velocity_target(z0: Tensor, z1: Tensor) -> Tensor:
    """MMAIF Eq. (2)/(11): the regression target v = Z1 - Z0, float32."""
    return (z1 - z0).float()


def data_from_velocity(v: Tensor, x: Tensor, t: Tensor) -> Tensor:
    """Clean latent predicted from a velocity on the straight path: Z1~ = Z_t + (1 - t) v."""
    return x + (1 - _per_sample(t, x)) * v


def data_from_start(z0: Tensor, v: Tensor) -> Tensor:
    """Clean latent predicted from a velocity and a known start Z0 (the bridge's latent prior): Z0 + v."""
    return z0 + v


def velocity_from_data(z1: Tensor, x: Tensor, t: Tensor | float) -> Tensor:
    """Velocity of the straight path through x at time t towards a predicted clean latent z1:
    v = (Z1 - Z_t) / (1 - t), from Z_t = (1 - t) Z0 + t Z1 and v = Z1 - Z0 (MMAIF Eq. 2)."""
    t = torch.as_tensor(t, device=x.device, dtype=torch.float32)
    gap = (1 - t).clamp_min(T_GAP_MIN)
    gap = gap.view(-1, *([1] * (x.dim() - 1))) if gap.dim() else gap
    return (z1.float() - x.float()) / gap


def gaussian_score(x: Tensor, vel: Tensor, t: float) -> Tensor:
    """Score of p_t for a N(0, I) prior from the velocity: (t v - x) / ((1 - t)^2 + t (1 - t))."""
    return (t * vel - x) / ((1 - t) ** 2 + t * (1 - t))


def predicts_data(model: nn.Module) -> bool:
    """True for an x-prediction flow model (ModelConfig.predict = "data"); DDP-wrapped models too."""
    cfg = getattr(getattr(model, "module", model), "cfg", None)
    return getattr(cfg, "predict", "velocity") == "data"


def as_velocity(model: nn.Module, out: Tensor, x: Tensor, t: Tensor | float) -> Tensor:
    """A network's output as a velocity: as is, or (Z1~ - Z_t) / (1 - t) for an x-prediction model."""
    return velocity_from_data(out, x, t).to(out.dtype) if predicts_data(model) else out
