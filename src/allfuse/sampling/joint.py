"""Sampling the joint DiT (DiTFuse, allfuse.models.joint): guided velocity functions for the solvers.

The condition (text + input images) of the joint sequence never sees the timestep or the target, so its
keys and values are computed once per image (`JointDiT.encode_condition`) and every solver step runs only
the timestep + target tokens against them (`forward_cached`). Classifier-free guidance with separate text
and image scales (InstructPix2Pix Eq. 3) stacks its three branches on the batch: one forward per step.
Large latents run on overlapping windows of the training size, batched in chunks, each with its own
cache, blended with the linear ramps of FusionDiT's tiled inference (allfuse.sampling.tiling) at every step.
Time convention: `allfuse.flow`'s (t = 0 noise, t = 1 data).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from allfuse.config import SamplerConfig
from allfuse.flow import as_velocity, randn_like
from allfuse.models.joint import MASK_CELLS, ConditionCache, JointDiT
from allfuse.sampling import Sample, solve
from allfuse.sampling.solvers import VelocityFn
from allfuse.sampling.tiling import ramp, window_starts

CACHE_BUDGET = 1 << 30  # bytes of condition keys/values kept across steps; above it, no cache
WINDOW_BATCH_TOKENS = 1 << 16  # sequence tokens (windows x branches x batch) in one windowed forward


def combine_guidance(
    v_full: Tensor, v_image: Tensor, v_uncond: Tensor, cfg_text: float, cfg_image: float
) -> Tensor:
    """InstructPix2Pix Eq. (3) (Brooks et al. 2023) on velocities:
    v = v(0, 0) + s_I (v(I, 0) - v(0, 0)) + s_T (v(I, T) - v(I, 0)); s = 1 is v(I, T) (Ho & Salimans 2022)."""
    return v_uncond + cfg_image * (v_image - v_uncond) + cfg_text * (v_full - v_image)


def guidance_branches(
    conds: Sequence[Tensor], text: Tensor | None, text_mask: Tensor | None
) -> tuple[list[Tensor], Tensor | None, Tensor | None, Tensor, Tensor]:
    """The three CFG branches stacked on the batch, (full, no text, no text and no images) -> conds, text,
    text_mask (3B, ...) and their drop_text, drop_image flags (3B,)."""
    b, device = conds[0].shape[0], conds[0].device
    three = [z.repeat(3, 1, 1, 1) for z in conds]
    text3 = None if text is None else text.repeat(3, 1, 1)
    mask3 = None if text_mask is None else text_mask.repeat(3, 1)
    flags = torch.tensor([[0, 0], [1, 0], [1, 1]], dtype=torch.bool, device=device).repeat_interleave(b, 0)
    return three, text3, mask3, flags[:, 0], flags[:, 1]


def guided_velocity(
    model: JointDiT, cache3: ConditionCache, x: Tensor, t: Tensor, cfg_text: float, cfg_image: float
) -> Tensor:
    """Guided velocity at x (B, C, H, W): ONE forward of the 3 branches cached from `guidance_branches`."""
    x3, t3 = x.repeat(3, 1, 1, 1), torch.as_tensor(t, device=x.device).expand(x.shape[0]).repeat(3)
    v_full, v_image, v_uncond = as_velocity(model, model.forward_cached(cache3, x3, t3), x3, t3).chunk(3)
    return combine_guidance(v_full, v_image, v_uncond, cfg_text, cfg_image)


def joint_velocity_fn(
    model: JointDiT,
    conds: Sequence[Tensor],
    text: Tensor | None,
    text_mask: Tensor | None,
    cfg_text: float = 1.0,
    cfg_image: float = 1.0,
    cache: bool = True,
) -> VelocityFn:
    """v(x, t) for the solvers of allfuse.sampling: with the condition cached once (cache=True) or the whole
    sequence at every call; three CFG branches in one batch unless both scales are 1."""
    guided = (cfg_text, cfg_image) != (1.0, 1.0)
    args = guidance_branches(conds, text, text_mask) if guided else (list(conds), text, text_mask, None, None)
    kept = model.encode_condition(*args) if cache else None

    def v(x: Tensor, t: Tensor) -> Tensor:
        if kept is not None and guided:
            return guided_velocity(model, kept, x, t, cfg_text, cfg_image)
        xs, ts = (x.repeat(3, 1, 1, 1), t.repeat(3)) if guided else (x, t)
        out = model.forward_cached(kept, xs, ts) if kept is not None else model(*args[:3], xs, ts, *args[3:])
        vel = as_velocity(model, out, xs, ts)
        return combine_guidance(*vel.chunk(3), cfg_text, cfg_image) if guided else vel

    return v


def image_tokens(model: JointDiT, latent: Tensor) -> int:
    """Tokens of one latent image (patch grid)."""
    return (latent.shape[-2] // model.cfg.patch_size) * (latent.shape[-1] // model.cfg.patch_size)


def condition_tokens(model: JointDiT, conds: Sequence[Tensor], text: Tensor | None) -> int:
    """Length of one condition: a leading token, the text, each image with its two boundary tokens."""
    return 1 + (0 if text is None else text.shape[1]) + len(conds) * (image_tokens(model, conds[0]) + 2)


def sequence_tokens(model: JointDiT, conds: Sequence[Tensor], text: Tensor | None) -> int:
    """Length of one joint sequence: condition, timestep token, target tokens."""
    return condition_tokens(model, conds, text) + 1 + image_tokens(model, conds[0])


def cache_bytes(model: JointDiT, conds: Sequence[Tensor], text: Tensor | None, branches: int) -> int:
    """Bytes the condition keys and values of one window take over every layer (float32 upper bound)."""
    seq = condition_tokens(model, conds, text)
    return 2 * model.cfg.depth * branches * conds[0].shape[0] * seq * model.cfg.hidden * 4


def windowed_velocity_fn(
    model: JointDiT,
    conds: Sequence[Tensor],  # N x (B, C, H, W)
    text: Tensor | None,
    text_mask: Tensor | None,
    cfg_text: float = 1.0,
    cfg_image: float = 1.0,
    window: int = 0,  # latent window side; 0 = the whole latent in one window
    overlap: int | None = None,  # latents shared by neighbouring windows; None = window // 8
) -> VelocityFn:
    """`joint_velocity_fn` on overlapping windows blended with linear ramps (allfuse.sampling.tiling), batched
    in chunks of WINDOW_BATCH_TOKENS, each window's condition cached unless all the caches together would
    exceed CACHE_BUDGET."""
    hh, ww = conds[0].shape[-2:]
    window = max(model.cfg.patch_size, window - window % model.cfg.patch_size) if window else 0  # patch grid
    branches = 1 if (cfg_text, cfg_image) == (1.0, 1.0) else 3
    if not window or (hh <= window and ww <= window):
        cache = cache_bytes(model, conds, text, branches) <= CACHE_BUDGET
        return joint_velocity_fn(model, conds, text, text_mask, cfg_text, cfg_image, cache)
    overlap = max(1, window // 8) if overlap is None else overlap
    kh, kw = min(window, hh), min(window, ww)
    spots = [(i, j) for i in window_starts(hh, kh, overlap) for j in window_starts(ww, kw, overlap)]
    one = [c[..., :kh, :kw] for c in conds]  # a window's shape, for the cost estimates
    # Every window has the same shape, so windows go through the model batched (window-major), one forward
    # per chunk of windows and step instead of one per window; chunks bound the activations of huge latents.
    per_window = branches * conds[0].shape[0] * sequence_tokens(model, one, text)
    size = max(1, WINDOW_BATCH_TOKENS // per_window)
    chunks = [spots[k : k + size] for k in range(0, len(spots), size)]
    cache = len(spots) * cache_bytes(model, one, text, branches) <= CACHE_BUDGET
    fns = []
    for chunk in chunks:
        crops = [torch.cat([z[..., i : i + kh, j : j + kw] for i, j in chunk]) for z in conds]
        texts = None if text is None else text.repeat(len(chunk), 1, 1)
        masks = None if text_mask is None else text_mask.repeat(len(chunk), 1)
        fns.append(joint_velocity_fn(model, crops, texts, masks, cfg_text, cfg_image, cache))
    weight = (ramp(kh, overlap)[:, None] * ramp(kw, overlap)[None, :]).to(conds[0].device)  # (kh, kw)
    norm = torch.zeros(hh, ww, device=conds[0].device)
    for i, j in spots:
        norm[i : i + kh, j : j + kw] += weight

    def v(x: Tensor, t: Tensor) -> Tensor:
        b = x.shape[0]
        out = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
        for chunk, fn in zip(chunks, fns, strict=True):
            xs = torch.cat([x[..., i : i + kh, j : j + kw] for i, j in chunk])
            ts = torch.as_tensor(t, device=x.device).expand(b).repeat(len(chunk))
            for (i, j), vw in zip(chunk, fn(xs, ts).float().split(b), strict=True):
                out[..., i : i + kh, j : j + kw] += vw * weight
        return (out / norm).to(x.dtype)

    return v


@torch.no_grad()
def sample_guided(
    model: JointDiT,
    conds: Sequence[Tensor],
    text: Tensor | None,
    text_mask: Tensor | None,
    cfg: SamplerConfig,
    cfg_text: float = 1.0,
    cfg_image: float = 1.0,
    generator: torch.Generator | None = None,
    window: int = 0,
) -> Sample:
    """The generated latent: cfg's solver (Euler, midpoint, ...) from Z0 ~ N(0, I) at t = 0 to t = 1 with
    the guided, cached (and, for latents larger than `window`, windowed) velocity. Odd latent sides are
    replicate-padded to the patch grid and the result cropped back, as FusionDiT does."""
    if cfg.prior != "gaussian" or cfg.method == "bridge":
        raise ValueError("the joint DiT samples from Gaussian noise: no latent prior, no bridge sampler")
    p, (hh, ww) = model.cfg.patch_size, conds[0].shape[-2:]
    pad = (0, -ww % p, 0, -hh % p)
    conds = [F.pad(z, pad, mode="replicate") if any(pad) else z for z in conds]
    v = windowed_velocity_fn(model, conds, text, text_mask, cfg_text, cfg_image, window)
    out = solve(cfg, v, randn_like(conds[0], generator), generator)
    return Sample(out.x[..., :hh, :ww], out.nfe)


@torch.no_grad()
def predict_mask(
    model: JointDiT,
    conds: Sequence[Tensor],  # N x (1, C, H, W)
    text: Tensor | None,
    text_mask: Tensor | None,
    window: int = 0,  # latent window side; 0 = the whole latent in one window
    pixels: Sequence[Tensor] | None = None,  # N x (1, 3, f H, f W): a label head's input images
    labels: tuple[Tensor, Tensor] | None = None,  # a label head's (K, L, text_dim) tokens and (K, L) mask
) -> Tensor:
    """The mask head's probability (1, 1, H * s, W * s), s = MASK_CELLS / patch, of the class the text
    names, or a label head's (`labels` and `pixels` given) softmax over its K labels (1, K, H * s, W * s):
    one condition pass per window of the training size (overlap window // 4, blended with linear ramps),
    batched. Odd latent sides are replicate-padded to the patch grid and cropped back."""
    p, (hh, ww) = model.cfg.patch_size, conds[0].shape[-2:]
    pad = (0, -ww % p, 0, -hh % p)
    conds = [F.pad(z, pad, mode="replicate") if any(pad) else z for z in conds]
    if labels is not None:
        if pixels is None:
            raise ValueError("a label head reads the input pixels too")
        f = pixels[0].shape[-1] // ww  # pixels per latent
        if pixels[0].shape[-2:] != (f * hh, f * ww):
            raise ValueError(
                f"pixels {tuple(pixels[0].shape[-2:])} are not latents {(hh, ww)} times a factor"
            )
        pixels = [F.pad(x, tuple(q * f for q in pad), mode="replicate") if any(pad) else x for x in pixels]
    hp, wp = conds[0].shape[-2:]
    s = MASK_CELLS // p  # mask cells per latent
    window = max(p, window - window % p) if window else max(hp, wp)
    kh, kw = min(window, hp), min(window, wp)
    overlap = max(p, window // 4)
    spots = [(i, j) for i in window_starts(hp, kh, overlap) for j in window_starts(wp, kw, overlap)]
    weight = (ramp(kh * s, overlap * s)[:, None] * ramp(kw * s, overlap * s)[None, :]).to(conds[0].device)
    k = 1 if labels is None else labels[0].shape[0]
    out = torch.zeros(1, k, hp * s, wp * s, device=conds[0].device)
    norm = torch.zeros(1, 1, hp * s, wp * s, device=conds[0].device)
    size = max(1, WINDOW_BATCH_TOKENS // condition_tokens(model, [c[..., :kh, :kw] for c in conds], text))
    for n in range(0, len(spots), size):
        chunk = spots[n : n + size]
        crops = [torch.cat([z[..., i : i + kh, j : j + kw] for i, j in chunk]) for z in conds]
        texts = None if text is None else text.repeat(len(chunk), 1, 1)
        masks = None if text_mask is None else text_mask.repeat(len(chunk), 1)
        if labels is None:
            probs = torch.sigmoid(model.predict_mask(crops, texts, masks).float())
        else:
            px = [
                torch.cat([x[..., i * f : (i + kh) * f, j * f : (j + kw) * f] for i, j in chunk])
                for x in pixels
            ]
            logits = model.label_logits(crops, px, texts, masks, *labels)
            probs = torch.softmax(logits.float(), dim=1)
        for (i, j), pw in zip(chunk, probs.split(1), strict=True):
            out[..., i * s : (i + kh) * s, j * s : (j + kw) * s] += pw * weight
            norm[..., i * s : (i + kh) * s, j * s : (j + kw) * s] += weight
    return (out / norm)[..., : hh * s, : ww * s]
