"""What an objective reads from a training batch, and the loss terms every objective shares."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from allfuse.config import ObjectiveConfig
from allfuse.objectives.pixel import Decoder, fusion_pixel_loss


@dataclass
class SegLabels:
    """Dense labels of a batch's seg samples for a label head (allfuse.models.joint.LabelHead): every
    pixel's index into one label set `names` shared by the batch, and which labels each sample may take."""

    labels: Tensor  # (B, 1, H, W) int64 into names; -1 where unknown (every pixel of a non-seg sample)
    allowed: Tensor  # (B, K) bool: the labels of each sample's own set (synthetic shapes, person/car, ...)
    text: Tensor  # (K, L, text_dim): text-encoder tokens of the K names
    text_mask: Tensor  # (K, L) bool
    names: tuple[str, ...]

    def to(self, device: torch.device | str) -> SegLabels:
        """The same labels with every tensor on `device`."""
        return SegLabels(
            self.labels.to(device),
            self.allowed.to(device),
            self.text.to(device),
            self.text_mask.to(device),
            self.names,
        )


@dataclass
class LatentBatch:
    """A batch in latent space; `sources` (clean source images) are needed only for the aux pixel loss."""

    conds: list[Tensor]  # N x (B, C, h, w): degraded input latents, N >= 2
    target: Tensor  # (B, C, h, w): ground-truth fused latent
    prompt: Tensor | None = None  # (B, L, D_text) prompt token embeddings
    prompt_mask: Tensor | None = None  # (B, L) bool, True = real token
    sources: list[Tensor] | None = None  # N x (B, 1 or 3, H, W) in [0, 1], H = 8 h
    masks: Tensor | None = None  # (B, 1, H, W) in [0, 1]: the class a seg sample names
    has_mask: Tensor | None = None  # (B,) bool: which samples' masks are known
    pixels: list[Tensor] | None = None  # N x (B, 3, H, W) in [0, 1]: the degraded inputs, H = 8 h
    seg: SegLabels | None = None  # dense labels of the seg samples (a label head learns them)

    def to(self, device: torch.device | str) -> LatentBatch:
        """The batch with every tensor on `device` (the same tensors when they are there already)."""
        return LatentBatch(
            [c.to(device) for c in self.conds],
            self.target.to(device),
            None if self.prompt is None else self.prompt.to(device),
            None if self.prompt_mask is None else self.prompt_mask.to(device),
            None if self.sources is None else [s.to(device) for s in self.sources],
            None if self.masks is None else self.masks.to(device),
            None if self.has_mask is None else self.has_mask.to(device),
            None if self.pixels is None else [x.to(device) for x in self.pixels],
            None if self.seg is None else self.seg.to(device),
        )


def finish_loss(
    main: Tensor,
    clean_latent: Tensor,
    balance: Tensor,
    batch: LatentBatch,
    cfg: ObjectiveConfig,
    decode: Decoder | None,
) -> tuple[Tensor, dict[str, float]]:
    """MMAIF Eq. (10): total = main + lambda aux(decode(clean_latent)) + w_bal balance; and the log dict."""
    total = main + cfg.balance_weight * balance
    logs = {"mse": main.item(), "balance": balance.item()}
    if cfg.aux_weight > 0:
        if decode is None or batch.sources is None:
            raise ValueError("aux_weight > 0 needs a decoder and batch.sources")
        aux = fusion_pixel_loss(decode(clean_latent).float(), batch.sources, cfg.aux_mode)
        total = total + cfg.aux_weight * aux
        logs["aux"] = aux.item()
    logs["loss"] = total.item()
    return total, logs
