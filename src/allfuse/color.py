"""Colour conventions shared by metrics and baselines (ITU-R BT.601, full range, float in [0, 1])."""

from collections.abc import Callable

import numpy as np

from allfuse.types import Image

# BT.601 luma weights: the convention of the IVIF literature (MATLAB rgb2gray / rgb2ycbcr luma).
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def to_gray(x: np.ndarray) -> Image:
    """Return luminance (H, W) of a gray or RGB image, float32."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 2:
        return x
    if x.ndim == 3 and x.shape[2] == 1:
        return x[..., 0]
    if x.ndim == 3 and x.shape[2] == 3:
        return x @ LUMA
    raise ValueError(f"expected (H, W) or (H, W, 3) image, got shape {x.shape}")


def restore_luminance(image: np.ndarray, restore: Callable[[np.ndarray], np.ndarray]) -> Image:
    """`restore` of a gray image; of a colour image's luminance only, the change added to every channel
    (sharpness lives in the luminance, which every fusion metric scores: one pass instead of three, and no
    colour fringes from a filter's ringing in the chroma), clipped to [0, 1]. float32."""
    x = np.asarray(image, dtype=np.float32)
    if x.ndim == 2:
        return restore(x)
    lum = to_gray(x)
    change = restore(lum) - lum
    return np.clip(x + change[..., None], 0.0, 1.0)


def rgb_to_ycbcr(x: np.ndarray) -> Image:
    """Full-range BT.601 RGB -> YCbCr; chroma centred on 0.5."""
    x = np.asarray(x, dtype=np.float32)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = 0.5 + (b - y) / 1.772
    cr = 0.5 + (r - y) / 1.402
    return np.stack([y, cb, cr], axis=-1).astype(np.float32)


def ycbcr_to_rgb(x: np.ndarray) -> Image:
    """Inverse of rgb_to_ycbcr, clipped to [0, 1]."""
    x = np.asarray(x, dtype=np.float32)
    y, cb, cr = x[..., 0], x[..., 1] - 0.5, x[..., 2] - 0.5
    r = y + 1.402 * cr
    g = y - 0.714136 * cr - 0.344136 * cb
    b = y + 1.772 * cb
    return np.clip(np.stack([r, g, b], axis=-1), 0.0, 1.0).astype(np.float32)


def is_color(x: np.ndarray, tol: float = 1.0 / 255.0) -> bool:
    """True when an image has 3 channels that are not all (near) equal."""
    if x.ndim != 3 or x.shape[2] != 3:
        return False
    return bool(np.abs(x[..., 0] - x[..., 1]).max() > tol or np.abs(x[..., 1] - x[..., 2]).max() > tol)
