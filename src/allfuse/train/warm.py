"""Warm start: load a model folder's weights into a new network, also across regression -> flow.

A regression FusionDiT (MMAIF Sect. 3.4.1) and an x-prediction flow FusionDiT (ModelConfig.predict =
"data") differ only in the input embedding, which also sees the noisy latent Z_t, and the timestep
embedder. Copying every shared tensor, giving the Z_t columns of the input embedding zero weight and
zeroing the timestep embedder's output layer makes the flow model start as exactly the regression model
(its prediction of Z1 ignores Z_t and t), which then learns to use them.

The FFN experts can also be widened (`model.expert_hidden` above the donor's): each GLU's first h hidden
units are the donor's, the new ones keep this model's random gate and up weights and get zero down-projection
rows, so they add nothing until training moves those rows (the gradient reaching them is the new units'
activation times the block's error, not zero). The widened network computes exactly what the donor did: a
function-preserving growth of capacity (Net2Net, Chen et al. 2016, which widens by copying units instead).
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
    widened: set[str] = set()
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
        elif _widen_glu(key, src, dst):
            widened.add(key.split(".ffn.")[0])
        else:
            raise ValueError(f"warm start: {key} has shape {tuple(src.shape)}, this model {tuple(dst.shape)}")
    if widened:
        width = model.cfg.expert_hidden
        notes.append(f"FFN experts widened to {width} hidden units in {len(widened)} blocks")
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


def _widen_glu(key: str, src: Tensor, dst: Tensor) -> bool:
    """Copy a narrower GLU's weights into a wider one in place (module doc); False when `key` is not a GLU
    weight or the shapes differ otherwise than in the hidden width. Routed experts (MoEGLU) stack gate|up as
    (E, D, 2h) and down as (E, h, D); the shared GLU's nn.Linear weights are (2h, D) and (D, h)."""
    routed = key.endswith(".ffn.w_in") or key.endswith(".ffn.w_out")
    shared = key.endswith(".w_in.weight") or key.endswith(".w_out.weight")  # shared or dense GLU
    if ".ffn." not in key or not (routed or shared) or src.dim() != dst.dim():
        return False
    fused = key.endswith("w_in") or key.endswith("w_in.weight")  # gate and up, fused along the hidden axis
    axis = (2 if fused else 1) if routed else (0 if fused else 1)  # the hidden axis (docstring's shapes)
    same = [a == b for i, (a, b) in enumerate(zip(src.shape, dst.shape, strict=True)) if i != axis]
    if not all(same) or src.shape[axis] >= dst.shape[axis]:
        return False
    if fused:
        h, big = src.shape[axis] // 2, dst.shape[axis] // 2
        gate, up = src.to(dst.dtype).split(h, dim=axis)
        dst.narrow(axis, 0, h).copy_(gate)
        dst.narrow(axis, big, h).copy_(up)
    else:
        h = src.shape[axis]
        dst.narrow(axis, 0, h).copy_(src.to(dst.dtype))
        dst.narrow(axis, h, dst.shape[axis] - h).zero_()
    return True
