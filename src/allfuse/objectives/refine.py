"""The refiner's training loss (train.refine): L1 + Sobel-gradient L1 to the fusion target (MMAIF Eq. (9)'s
form), optionally (1 - SSIM) and SwinFusion's texture loss against the clean sources; the module doc of
allfuse.train.refine explains each term."""

from __future__ import annotations

import torch

from allfuse.data.samples import SAMPLE_KINDS
from allfuse.objectives.pixel import texture_loss
from allfuse.ops import sobel_magnitude, sobel_xy, ssim

GRAD_MODES = {"magnitude": sobel_magnitude, "xy": sobel_xy}
# Kinds whose output should hold the clean sources' edges: fusion, and M3 (its clean pair is the image
# twice). Not control / seg, whose targets change the image on purpose.
TEXTURE_KINDS = ("vif", "mef", "mff", "m3")


def refine_loss(
    out: torch.Tensor,
    target: torch.Tensor,
    grad_weight: float,
    grad_mode: str = "magnitude",
    ssim_weight: float = 0.0,
    texture_weight: float = 0.0,
    clean: tuple[torch.Tensor, torch.Tensor] | None = None,
    texture_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict]:
    """L1 + gradient L1 (+ SSIM) against the fusion target, + the texture loss against the clean sources
    `clean` on the samples `texture_mask` (B,) selects (module doc)."""
    l1 = (out - target).abs().mean()
    grad_of = GRAD_MODES[grad_mode]
    grad = (grad_of(out) - grad_of(target)).abs().mean()
    loss = l1 + grad_weight * grad
    logs = {"l1": l1.item(), "grad": grad.item()}
    if ssim_weight:
        s = ssim(out, target).mean()
        loss = loss + ssim_weight * (1 - s)
        logs["ssim"] = s.item()
    if texture_weight:
        if clean is None:
            raise ValueError("texture_weight needs the clean sources")
        tex = texture_loss(out, clean, texture_mask)
        loss = loss + texture_weight * tex
        logs["texture"] = tex.item()
    return loss, {"loss": loss.item(), **logs}


def texture_mask(task_id: torch.Tensor, kinds: tuple[str, ...] = TEXTURE_KINDS) -> torch.Tensor:
    """1.0 for the samples of `kinds`, else 0.0, (B,)."""
    ids = torch.tensor([SAMPLE_KINDS.index(k) for k in kinds])
    return torch.isin(task_id, ids).float()
