"""Segmentation targets (DiTFuse Sect. III-B2): the fused image with a translucent blue overlay on the named
class. Labels come from a dataset's label masks when it has them, else from `synthetic_scene`, a generator
of textured shapes of known classes (DiTFuse builds its seg pairs with M3; so do we for synthetic scenes).

Label folders: a pair folder may hold ``labels/`` (or ``label``, ``masks``, ``seg``) with one index PNG per
stem (0 = background) and ``classes.txt`` (one class name per line; line i names index i).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image as PILImage

from allfuse.types import Image

OVERLAY_RGB = np.array([0.05, 0.25, 1.0], np.float32)
OVERLAY_ALPHA = 0.6
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star")
LABEL_DIRS = ("labels", "label", "masks", "seg")


def overlay(image: Image, mask: np.ndarray, alpha: float = OVERLAY_ALPHA) -> Image:
    """RGB image with `mask` pixels blended toward blue: (1 - alpha) * x + alpha * blue."""
    x = np.asarray(image, np.float32)
    rgb = np.repeat(x[..., None], 3, axis=2) if x.ndim == 2 else x.copy()
    m = mask.astype(bool)
    rgb[m] = (1.0 - alpha) * rgb[m] + alpha * OVERLAY_RGB
    return rgb


def not_blue(rgb: np.ndarray) -> np.ndarray:
    """Cap the blue channel below the others so the blue overlay stays visible on every surface."""
    out = rgb.astype(np.float32).copy()
    out[2] = min(out[2], 0.85 * max(out[0], out[1]))
    return out


def texture(
    shape: tuple[int, int], gen: np.random.Generator, base: np.ndarray, held_out: bool = False
) -> np.ndarray:
    """A colour field (H, W, 3): base colour, band-limited noise and an optional pattern. Training scenes
    use fine noise (scale 2-12 px) and stripes; held-out scenes (`held_out`) coarse noise (14-24 px) and
    checkerboards or rings, patterns no training scene has."""
    h, w = shape
    scale = gen.uniform(14.0, 24.0) if held_out else gen.uniform(2.0, 12.0)
    noise = cv2.GaussianBlur(gen.standard_normal((h, w)).astype(np.float32), (0, 0), scale)
    noise /= max(float(np.abs(noise).max()), 1e-6)
    field = base[None, None, :] + 0.18 * noise[..., None]
    if gen.random() < 0.5:
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        period = gen.uniform(6.0, 24.0)
        if not held_out:
            angle = gen.uniform(0, np.pi)
            pattern = np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period)
        elif gen.random() < 0.5:
            pattern = np.sign(np.sin(np.pi * xx / period) * np.sin(np.pi * yy / period))
        else:
            cy, cx = gen.uniform(0, h), gen.uniform(0, w)
            pattern = np.sin(2 * np.pi * np.hypot(yy - cy, xx - cx) / period)
        field += 0.08 * pattern[..., None]
    return np.clip(field, 0.0, 1.0).astype(np.float32)


def shape_mask(kind: str, shape: tuple[int, int], cx: float, cy: float, r: float, rot: float) -> np.ndarray:
    """Filled mask (H, W) uint8 of one shape centred at (cx, cy) with radius r."""
    mask = np.zeros(shape, np.uint8)
    if kind == "circle":
        cv2.circle(mask, (round(cx), round(cy)), round(r), 1, -1)
        return mask
    n, inner = {"square": (4, None), "triangle": (3, None), "star": (5, 0.45)}[kind]
    angles = rot + np.arange(n * (2 if inner else 1)) * np.pi / (n if inner else n / 2)
    radii = np.where(np.arange(len(angles)) % 2 == 1, r * inner, r) if inner else np.full(len(angles), r)
    pts = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1)
    cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
    return mask


def synthetic_scene(
    rng: np.random.Generator, size: tuple[int, int] = (128, 128), held_out: bool = False
) -> tuple[Image, np.ndarray, tuple[str, ...]]:
    """A textured background with 3-6 textured shapes; returns (RGB, label (H, W) int, class names).

    Label 0 is background and label i is ``SHAPES[i - 1]``; later shapes occlude earlier ones. `held_out`
    scenes (evaluation) use textures no training scene has (see `texture`).
    """
    h, w = size
    gen = np.random.default_rng(int(rng.integers(0, 2**31 - 1)))
    image = texture((h, w), gen, not_blue(gen.uniform(0.2, 0.8, 3)), held_out)
    label = np.zeros((h, w), np.int32)
    for _ in range(int(gen.integers(3, 7))):
        k = int(gen.integers(len(SHAPES)))
        r = gen.uniform(0.08, 0.2) * min(h, w)
        m = shape_mask(
            SHAPES[k], (h, w), gen.uniform(r, w - r), gen.uniform(r, h - r), r, gen.uniform(0, np.pi)
        )
        fill = texture((h, w), gen, not_blue(gen.uniform(0.05, 0.95, 3)), held_out)
        image = np.where(m[..., None] > 0, fill, image)
        label[m > 0] = k + 1
    return image, label, ("background", *SHAPES)


def label_folders(pair_root: Path, label_roots: Sequence[str | os.PathLike] = ()) -> list[Path]:
    """Where a pair folder's labels may be: the folder itself, then, for each label root (a tree kept apart
    from the data, e.g. ``tools/label_objects.py``'s output), ``ROOT/<task>/<DATASET>`` and ``ROOT/<DATASET>``
    for a pair folder ``.../<task>/<DATASET>``."""
    out = [pair_root]
    for root in map(Path, label_roots):
        out += [root / pair_root.parent.name / pair_root.name, root / pair_root.name]
    return out


def find_labels(
    pair_root: Path, stem: str, label_roots: Sequence[str | os.PathLike] = ()
) -> tuple[Path, tuple[str, ...]] | None:
    """The label mask of a pair (by stem) and the dataset's class names, from the first folder of
    `label_folders` that has both."""
    for here in label_folders(pair_root, label_roots):
        names = here / "classes.txt"
        if not names.is_file():
            continue
        for d in LABEL_DIRS:
            hits = sorted((here / d).glob(f"{stem}.*")) if (here / d).is_dir() else []
            if hits:
                return hits[0], tuple(n.strip() for n in names.read_text().splitlines() if n.strip())
    return None


def read_label(path: Path) -> np.ndarray:
    """An index mask (H, W) int32 from a PNG (palette or gray values are the class indices)."""
    with PILImage.open(path) as im:
        return np.asarray(im if im.mode in ("P", "L", "I", "I;16") else im.convert("L")).astype(np.int32)


def present_classes(label: np.ndarray, names: tuple[str, ...], min_pixels: int = 16) -> list[int]:
    """Non-background class indices covering at least `min_pixels` pixels."""
    idx, counts = np.unique(label, return_counts=True)
    return [int(i) for i, c in zip(idx, counts, strict=True) if i > 0 and i < len(names) and c >= min_pixels]


# Reading a segmentation output back (inference): a model trained on `overlay` targets draws the class
# tinted toward OVERLAY_RGB. Against the plain fusion of the same inputs (and noise), the tint of each
# pixel is the blend weight a of output = (1 - a) base + a OVERLAY_RGB, solved by least squares over RGB.

MIN_TINT_RANGE = 0.02  # squared RGB distance to the overlay colour below which a pixel's tint is unknowable


def overlay_alpha(output: Image, base: Image) -> np.ndarray:
    """Per-pixel blend weight (H, W) in [0, 1] toward OVERLAY_RGB that turns `base` into `output` (the
    least-squares inverse of `overlay`); 0 where base is already about the overlay colour."""
    y, x = (np.asarray(v, np.float32) for v in (output, base))
    y, x = (np.repeat(v[..., None], 3, axis=2) if v.ndim == 2 else v for v in (y, x))
    d = OVERLAY_RGB - x  # (H, W, 3): the direction a tint moves a pixel
    den = (d * d).sum(axis=2)
    a = ((y - x) * d).sum(axis=2) / np.maximum(den, MIN_TINT_RANGE)
    return np.where(den >= MIN_TINT_RANGE, np.clip(a, 0.0, 1.0), 0.0).astype(np.float32)


def mask_from_overlay(
    output: Image, base: Image, alpha: float = OVERLAY_ALPHA, smooth: int = 5
) -> np.ndarray:
    """The pixels a segmentation output tints (H, W) bool: `overlay_alpha` averaged over smooth x smooth px
    (a generated image's colours are noisy), at least half the training overlay's alpha."""
    a = overlay_alpha(output, base)
    if smooth > 1:
        a = cv2.blur(a, (smooth, smooth), borderType=cv2.BORDER_REFLECT)
    return a >= alpha / 2
