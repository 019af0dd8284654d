"""The joint DiT's objective (DiTFuse Eq. 4-5): flow matching from Gaussian noise with classifier-free
guidance dropout of the text and the images, on `allfuse.flow`'s convention (t = 0 prior, t = 1 data,
Z_t = (1 - t) Z0 + t Z1, v = Z1 - Z0). The network (allfuse.models.joint) knows nothing about either."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from allfuse.config import GuidanceConfig, ObjectiveConfig
from allfuse.flow import as_velocity, interpolate, randn_like, sample_time, velocity_target
from allfuse.objectives.batch import LatentBatch


def guidance_dropout(
    b: int, p_text: float, p_image: float, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Per-sample CFG dropout (drop_text, drop_image), each (B,) bool, from one uniform draw: with p_image
    the images AND the text go (the unconditional branch), with p_text the text alone (the image branch).
    These are the two branches the sampler asks for (InstructPix2Pix Sect. 3.4 drops text only, image only
    and both; image-only dropout feeds no branch of Eq. (3), so it is left out)."""
    device = generator.device if generator is not None else None
    u = torch.rand(b, generator=generator, device=device)
    drop_image = u < p_image
    return drop_image | (u < p_image + p_text), drop_image


def joint_flow_loss(
    model: nn.Module,
    conds: Sequence[Tensor],  # N x (B, C, H, W) input latents
    text: Tensor | None,  # (B, L, text_dim)
    text_mask: Tensor | None,  # (B, L) bool
    target: Tensor,  # (B, C, H, W) Z1, the latent to generate
    cfg: ObjectiveConfig | None = None,  # time sampling (logit-normal by default)
    p_text: float = 0.1,
    p_image: float = 0.1,
    generator: torch.Generator | None = None,
) -> Tensor:
    """DiTFuse Eq. (4)-(5) = MMAIF Eq. (2)/(11) from Gaussian noise: |v(Z_t, t, c) - (Z1 - Z0)|^2 with
    t ~ logit-normal and CFG condition dropout (`guidance_dropout`)."""
    cfg = cfg or ObjectiveConfig()
    b = target.shape[0]
    t = sample_time(cfg, b, generator).to(target.device)  # (B,)
    z0 = randn_like(target, generator)  # p0 = N(0, I)
    zt = interpolate(z0, target, t)  # DiTFuse Eq. (4): Z_t = (1 - t) Z0 + t Z1
    drop_text, drop_image = (d.to(target.device) for d in guidance_dropout(b, p_text, p_image, generator))
    out = model(conds, text, text_mask, zt, t, drop_text, drop_image)
    # DiTFuse Eq. (5): |v_theta(Z_t, t, c) - (Z1 - Z0)|^2
    return (as_velocity(model, out.float(), zt, t) - velocity_target(z0, target)).pow(2).mean()


def joint_loss(
    model: nn.Module,
    batch: LatentBatch,
    cfg: ObjectiveConfig,
    guidance: GuidanceConfig,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """`joint_flow_loss` of a training batch with the run's dropout rates -> (loss, logged scalars)."""
    loss = joint_flow_loss(
        model,
        batch.conds,
        batch.prompt,
        batch.prompt_mask,
        batch.target,
        cfg,
        guidance.drop_text,
        guidance.drop_image,
        generator,
    )
    return loss, {"mse": loss.item(), "loss": loss.item()}
