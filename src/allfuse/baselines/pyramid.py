"""Laplacian-pyramid fusion (Burt & Adelson 1983; Burt & Kolczynski 1993): max-abs detail, mean base."""

from collections.abc import Sequence

import cv2
import numpy as np

from allfuse.baselines.simple import select_max_abs
from allfuse.baselines.sources import stack_sources, unstack
from allfuse.types import Image, Task

MAX_LEVELS = 5


def pyramid_levels(h: int, w: int, max_levels: int = MAX_LEVELS) -> int:
    """Number of detail levels that keep the coarsest band at least ~8 px on its short side."""
    return int(np.clip(int(np.log2(max(min(h, w), 2))) - 3, 1, max_levels))


def laplacian_pyramid(x: np.ndarray, levels: int) -> list[np.ndarray]:
    """Detail bands from fine to coarse, then the low-pass base; x (H, W) float32."""
    bands, g = [], x
    for _ in range(levels):
        down = cv2.pyrDown(g)
        bands.append(g - cv2.pyrUp(down, dstsize=(g.shape[1], g.shape[0])))
        g = down
    return [*bands, g]


def collapse_pyramid(bands: list[np.ndarray]) -> np.ndarray:
    """Inverse of laplacian_pyramid (exact up to float round-off)."""
    g = bands[-1]
    for band in reversed(bands[:-1]):
        g = cv2.pyrUp(g, dstsize=(band.shape[1], band.shape[0])) + band
    return g


def fuse_laplacian(images: Sequence[np.ndarray], task: Task | None = None) -> Image:
    """Fuse luminance in a Laplacian pyramid (max-abs on detail bands, mean on the base); DeepFuse chroma."""
    s = stack_sources(images, rgb_route=False)
    levels = pyramid_levels(*s.luma.shape[1:])
    pyramids = [laplacian_pyramid(y, levels) for y in s.luma]
    per_level = zip(*(p[:-1] for p in pyramids), strict=True)  # levels x N detail bands
    fused = [select_max_abs(np.stack(bands)) for bands in per_level]
    fused.append(np.mean([p[-1] for p in pyramids], axis=0))
    return unstack(collapse_pyramid(fused)[..., None], s)
