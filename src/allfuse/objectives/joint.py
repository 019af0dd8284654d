"""The joint DiT's objective (DiTFuse Eq. 4-5): flow matching from Gaussian noise with classifier-free
guidance dropout of the text and the images, on `allfuse.flow`'s convention (t = 0 prior, t = 1 data,
Z_t = (1 - t) Z0 + t Z1, v = Z1 - Z0). The network (allfuse.models.joint) knows nothing about either."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
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
    masks: Tensor | None = None,  # (B, 1, H_px, W_px): the class seg samples name; needs a mask head
    has_mask: Tensor | None = None,  # (B,) bool: which samples' masks count
) -> Tensor | tuple[Tensor, Tensor]:
    """DiTFuse Eq. (4)-(5) = MMAIF Eq. (2)/(11) from Gaussian noise: |v(Z_t, t, c) - (Z1 - Z0)|^2 with
    t ~ logit-normal and CFG condition dropout (`guidance_dropout`). With `masks`: (flow loss, mask loss)
    from the same forward, the mask head's `mask_loss` over the samples that have a mask and kept their
    text and images (a dropped prompt names no class)."""
    cfg = cfg or ObjectiveConfig()
    b = target.shape[0]
    t = sample_time(cfg, b, generator).to(target.device)  # (B,)
    z0 = randn_like(target, generator)  # p0 = N(0, I)
    zt = interpolate(z0, target, t)  # DiTFuse Eq. (4): Z_t = (1 - t) Z0 + t Z1
    drop_text, drop_image = (d.to(target.device) for d in guidance_dropout(b, p_text, p_image, generator))
    out = model(conds, text, text_mask, zt, t, drop_text, drop_image, with_mask=masks is not None)
    out, logits = out if masks is not None else (out, None)
    # DiTFuse Eq. (5): |v_theta(Z_t, t, c) - (Z1 - Z0)|^2
    flow = (as_velocity(model, out.float(), zt, t) - velocity_target(z0, target)).pow(2).mean()
    if logits is None or masks is None:
        return flow
    keep = ~(drop_text | drop_image)
    if has_mask is not None:
        keep = keep & has_mask.to(keep.device).bool()
    return flow, mask_loss(logits.float(), masks, keep)


def mask_loss(logits: Tensor, masks: Tensor, keep: Tensor) -> Tensor:
    """Binary cross-entropy + soft Dice (Milletari et al. 2016) of mask logits (B, 1, h, w) against masks
    (B, 1, H, W) area-averaged to (h, w) (soft targets at the head's 4 px cells), over the samples `keep`
    (B,) selects; 0 (still in the graph) when it selects none."""
    if not bool(keep.any()):
        return logits.sum() * 0.0
    target = F.adaptive_avg_pool2d(masks.float(), logits.shape[-2:])[keep]
    x = logits[keep]
    bce = F.binary_cross_entropy_with_logits(x, target)
    p = torch.sigmoid(x)
    inter, total = (p * target).sum((1, 2, 3)), (p + target).sum((1, 2, 3))
    dice = 1.0 - (2.0 * inter + 1.0) / (total + 1.0)
    return bce + dice.mean()


def joint_loss(
    model: nn.Module,
    batch: LatentBatch,
    cfg: ObjectiveConfig,
    guidance: GuidanceConfig,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """`joint_flow_loss` of a training batch with the run's dropout rates -> (loss, logged scalars). A
    model with a mask head also learns the batch's seg masks, weighted by cfg.mask_weight."""
    net = getattr(model, "module", model)  # under DistributedDataParallel
    masks = batch.masks if getattr(net, "mask_head", None) is not None and cfg.mask_weight > 0 else None
    out = joint_flow_loss(
        model,
        batch.conds,
        batch.prompt,
        batch.prompt_mask,
        batch.target,
        cfg,
        guidance.drop_text,
        guidance.drop_image,
        generator,
        masks,
        batch.has_mask,
    )
    if isinstance(out, tuple):
        flow, seg = out
        loss = flow + cfg.mask_weight * seg
        return loss, {"mse": flow.item(), "mask": seg.item(), "loss": loss.item()}
    return out, {"mse": out.item(), "loss": out.item()}
