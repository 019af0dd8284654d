"""Check the in-memory images handed to the fusion API and bring them to float32 [0, 1].

One policy for every entry point that takes arrays (`FusionPipeline.__call__`, `baselines.fuse`,
`baselines.restore`); files go through `allfuse.io` instead.

* dtype: uint8 is divided by 255, uint16 by 65535 (each input by its own range, so a uint8 image and a
  float image can be fused together); bool becomes 0 / 1; float must be finite and lie in [0, 1] (round-off
  up to 1e-3 outside is clipped). Other integer types are refused: their range is unknown.
* shape: (H, W) is gray, (H, W, 3) RGB, (H, W, 1) is taken as gray; anything else is refused.

Every refusal is a ValueError whose message starts with the input it is about, e.g. ``images[1]: ...``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from allfuse.types import Image

# How far outside [0, 1] a float input may stray (round-off of earlier processing) before it is refused.
RANGE_TOL = 1e-3
# The integer dtypes whose range is known: divided by their peak.
INTEGER_PEAKS = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


def check_image(x: np.ndarray, where: str = "image") -> Image:
    """Return x as float32 (H, W) or (H, W, 3) in [0, 1], converting uint8/uint16/bool by their range."""
    a = np.asarray(x)
    a = _to_float(a, where)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 3)):
        raise ValueError(f"{where}: expected shape (H, W), (H, W, 1) or (H, W, 3), got {a.shape}{_hint(a)}")
    if a.size == 0:
        raise ValueError(f"{where}: the image is empty (shape {a.shape})")
    bad = int(a.size - np.count_nonzero(np.isfinite(a)))
    if bad:
        raise ValueError(f"{where}: {bad} NaN or infinite value(s); images must be finite, in [0, 1]")
    lo, hi = float(a.min()), float(a.max())
    if lo < -RANGE_TOL or hi > 1.0 + RANGE_TOL:
        scale = "; 0-255 data: divide by 255 or pass uint8" if 1.0 < hi <= 255.5 and lo > -0.5 else ""
        raise ValueError(f"{where}: float values must lie in [0, 1], got [{lo:.4g}, {hi:.4g}]{scale}")
    if lo < 0.0 or hi > 1.0:
        a = np.clip(a, 0.0, 1.0)
    return a.astype(np.float32, copy=False)  # float32 in range: the array itself, no copy of a large image


def _to_float(a: np.ndarray, where: str) -> np.ndarray:
    """Float values of an array: integers of known range divided by their peak, bool as 0 / 1."""
    if a.dtype == np.bool_:
        return a.astype(np.float32)
    if a.dtype in INTEGER_PEAKS:
        return a.astype(np.float32) / INTEGER_PEAKS[a.dtype]
    if np.issubdtype(a.dtype, np.integer):
        raise ValueError(
            f"{where}: dtype {a.dtype} has no known range; pass uint8 (0-255), uint16 (0-65535) "
            "or float in [0, 1]"
        )
    if not np.issubdtype(a.dtype, np.floating):
        raise ValueError(
            f"{where}: expected an image array (uint8, uint16, bool or float), got dtype {a.dtype}"
        )
    return a


def _hint(a: np.ndarray) -> str:
    """What to do about a shape that is close to an image's."""
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[2] > 4:
        return " (channels first? use x.transpose(1, 2, 0))"
    if a.ndim == 3 and a.shape[2] == 4:
        return " (RGBA: drop the alpha channel with x[..., :3])"
    return ""


def check_images(images: Sequence[np.ndarray]) -> list[Image]:
    """Check a fusion input list: at least two images (see `check_image`), all of one H x W."""
    if isinstance(images, np.ndarray):
        raise ValueError(
            f"fusion needs a sequence of at least 2 images, got an array of shape {images.shape}"
        )
    images = list(images)
    if len(images) < 2:
        raise ValueError(f"fusion needs a sequence of at least 2 images, got {len(images)} image(s)")
    xs = [check_image(x, f"images[{i}]") for i, x in enumerate(images)]
    sizes = [x.shape[:2] for x in xs]
    if len(set(sizes)) > 1:
        listed = ", ".join(f"{h}x{w}" for h, w in sizes)
        raise ValueError(f"images differ in size (H x W): {listed}")
    return xs
