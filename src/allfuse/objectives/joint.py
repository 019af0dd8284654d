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
from allfuse.objectives.batch import LatentBatch, SegLabels


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


def dense_label_loss(logits: Tensor, seg: SegLabels) -> Tensor:
    """LSeg's training loss (Li et al. 2022, Sect. 3) on 4 px cells: cross-entropy of logits (B, K, h, w)
    against the labels' share of each cell (one-hot labels area-averaged, so boundary cells are soft), over
    each sample's own label set (others get no probability), half plain and half class-balanced (every
    label a sample shows weighs the same, so small shapes are not drowned by background). Samples without
    labels are left out; 0 (still in the graph) when none has any."""
    labels = seg.labels[:, 0]  # (B, H, W)
    keep = (labels >= 0).flatten(1).any(1)
    if not bool(keep.any()):
        return logits.sum() * 0.0
    k = logits.shape[1]
    onehot = F.one_hot(labels.clamp(min=0), k).permute(0, 3, 1, 2).float() * (labels >= 0)[:, None]
    target = F.adaptive_avg_pool2d(onehot, logits.shape[-2:])[keep]  # (B', K, h, w)
    known = target.sum(1)  # share of each cell that is labelled
    x = logits[keep].float().masked_fill(~seg.allowed[keep][:, :, None, None], -1e4)
    nll = -(target * F.log_softmax(x, dim=1)).sum(1)  # (B', h, w); 0 where nothing is labelled
    plain = nll.sum() / known.sum().clamp(min=1e-6)
    mass = target.sum((2, 3))  # (B', K) cells of each label
    per_label = (target * nll[:, None]).sum((2, 3)) / mass.clamp(min=1e-6)
    balanced = per_label[mass > 0].mean()
    return 0.5 * (plain + balanced)


def label_head_loss(model: nn.Module, batch: LatentBatch) -> tuple[Tensor, dict[str, float]]:
    """The loss of a label head trained alone on a frozen JointDiT: `dense_label_loss` of its logits on
    the batch's seg samples (the condition pass of the network runs without gradient)."""
    net = getattr(model, "module", model)
    if batch.seg is None or batch.pixels is None:
        zero = next(p for p in net.mask_head.parameters()).sum() * 0.0
        return zero, {"mask": 0.0, "loss": 0.0}
    logits = net.label_logits(
        batch.conds, batch.pixels, batch.prompt, batch.prompt_mask, batch.seg.text, batch.seg.text_mask
    )
    loss = dense_label_loss(logits, batch.seg)
    return loss, {"mask": loss.item(), "loss": loss.item()}
