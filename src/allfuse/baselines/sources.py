"""How the classical methods route colour: what each one fuses, and how chroma comes back.

Two routes, chosen per method:

* **luma route** — the method fuses BT.601 luminance only; when any input is colour, Cb/Cr come back by
  the DeepFuse (Prabhakar et al., ICCV 2017) chroma rule: each source's Cb (and Cr) weighted by its
  distance from neutral grey, |Cb - 0.5|. Only colour inputs take part, so a VIF pair (gray IR + RGB
  visible) keeps exactly the visible image's chroma.
* **RGB route** — when *every* input is colour (MEF, MFF), methods that produce per-pixel weights (GFF,
  focus) apply them to R, G and B alike, which keeps the true colours of the selected source.

Output is RGB when any input is colour (`allfuse.color.is_color`), gray (H, W) otherwise — so TNO's gray
images stored as three equal channels fuse to gray.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from allfuse.color import is_color, rgb_to_ycbcr, to_gray, ycbcr_to_rgb
from allfuse.inputs import check_images
from allfuse.types import Image


@dataclass(frozen=True)
class Stack:
    """The sources of one fusion, in the form a method fuses them."""

    planes: np.ndarray  # (N, H, W, C): RGB (C=3) on the RGB route, luminance (C=1) on the luma route
    luma: np.ndarray  # (N, H, W) BT.601 luminance of every source (what focus/saliency measures look at)
    chroma: np.ndarray | None  # (K, H, W, 2) Cb/Cr of the K colour sources on the luma route, else None


def stack_sources(images: Sequence[np.ndarray], rgb_route: bool) -> Stack:
    """Check images (allfuse.inputs) and stack them; rgb_route=True fuses RGB when every input is colour."""
    xs = check_images(images)
    colour = [is_color(x) for x in xs]
    luma = np.stack([to_gray(x) for x in xs])  # (N, H, W)
    if rgb_route and all(colour):
        return Stack(planes=np.stack(xs), luma=luma, chroma=None)
    chroma = None
    if any(colour):
        chroma = np.stack([rgb_to_ycbcr(x)[..., 1:] for x, c in zip(xs, colour, strict=True) if c])
    return Stack(planes=luma[..., None], luma=luma, chroma=chroma)


def blend_chroma(chroma: np.ndarray) -> np.ndarray:
    """DeepFuse chroma rule: Cb/Cr of K sources weighted by |c - 0.5|; (K, H, W, 2) -> (H, W, 2)."""
    w = np.abs(chroma - 0.5)  # (K, H, W, 2)
    total = w.sum(axis=0)
    blended = (w * chroma).sum(axis=0) / np.maximum(total, 1e-12)
    return np.where(total > 1e-12, blended, 0.5).astype(np.float32)


def unstack(fused: np.ndarray, stack: Stack) -> Image:
    """Turn fused planes (H, W, C) back into an output image: RGB, gray, or luma + blended chroma."""
    fused = np.asarray(fused, dtype=np.float32)
    if fused.shape[-1] == 3:
        return np.clip(fused, 0.0, 1.0)
    y = np.clip(fused[..., 0], 0.0, 1.0)
    if stack.chroma is None:
        return y
    ycc = np.concatenate([y[..., None], blend_chroma(stack.chroma)], axis=-1)
    return ycbcr_to_rgb(ycc)
