"""Warm start: load a model folder's weights into a new network, also across regression -> flow.

A regression FusionDiT (MMAIF Sect. 3.4.1) and an x-prediction flow FusionDiT (ModelConfig.predict =
"data") differ only in the input embedding, which also sees the noisy latent Z_t, and the timestep
embedder. Copying every shared tensor, giving the Z_t columns of the input embedding zero weight and
zeroing the timestep embedder's output layer makes the flow model start as exactly the regression model
(its prediction of Z1 ignores Z_t and t), which then learns to use them.
"""

from __future__ import annotations

import torch
from torch import Tensor

from allfuse.models import FusionDiT


@torch.no_grad()
def warm_start(model: FusionDiT, state: dict[str, Tensor]) -> list[str]:
    """Load `state` into `model`; return notes on what was mapped. Anything else that does not match is
    an error: unexpected keys, shape mismatches, missing keys outside the timestep embedder and the pass
    condition (both new, zero-initialised: the warm-started model computes what the donor did)."""
    own = model.state_dict()  # shares storage with the parameters: copy_ writes into the model
    notes: list[str] = []
    unexpected = sorted(set(state) - set(own))
    if unexpected:
        raise ValueError(f"warm start: the donor has weights this model lacks: {unexpected[:5]}")
    missing = sorted(set(own) - set(state))
    lacking = [k for k in missing if not k.startswith("t_embed.") and k != "pass_cond"]
    if lacking:
        raise ValueError(f"warm start: the donor lacks weights: {lacking[:5]}")
    for key, src in state.items():
        dst = own[key]
        if src.shape == dst.shape:
            dst.copy_(src.to(dst.dtype))
        elif key == "x_embed.weight" and model.cfg.timestep and _maps_regression(model, src, dst):
            p2 = model.cfg.patch_size**2
            ch = model.cfg.latent_channels
            # Input channels per patch pixel are [Z_t (ch), conditions]; einops "(p q c)": c is innermost.
            new = dst.view(dst.shape[0], p2, -1)
            new[:, :, :ch] = 0
            new[:, :, ch:] = src.to(dst.dtype).view(src.shape[0], p2, -1)
            notes.append("x_embed: regression weights on the conditions, zero on Z_t")
        else:
            raise ValueError(f"warm start: {key} has shape {tuple(src.shape)}, this model {tuple(dst.shape)}")
    if "pass_cond" in missing:
        torch.nn.init.zeros_(model.pass_cond)
        notes.append("pass_cond: new, zero")
    if any(k.startswith("t_embed.") for k in missing):
        torch.nn.init.zeros_(model.t_embed.mlp[-1].weight)  # type: ignore[union-attr]
        torch.nn.init.zeros_(model.t_embed.mlp[-1].bias)  # type: ignore[union-attr]
        notes.append("t_embed: new, output layer zeroed")
    return notes


def _maps_regression(model: FusionDiT, src: Tensor, dst: Tensor) -> bool:
    """A regression input embedding fits into this flow one: same width, Z_t columns missing."""
    extra = model.cfg.patch_size**2 * model.cfg.latent_channels
    return src.shape[0] == dst.shape[0] and src.shape[1] + extra == dst.shape[1]
