"""Pixel-wise fusion rules: the average and the choose-max of luminance."""

from collections.abc import Sequence

import numpy as np

from allfuse.baselines.sources import stack_sources, unstack
from allfuse.types import Image, Task


def fuse_average(images: Sequence[np.ndarray], task: Task | None = None) -> Image:
    """Mean of the sources: per RGB channel when all are colour, else luminance + DeepFuse chroma."""
    s = stack_sources(images, rgb_route=True)
    return unstack(s.planes.mean(axis=0), s)  # (H, W, C)


def fuse_max(images: Sequence[np.ndarray], task: Task | None = None) -> Image:
    """Choose-max of luminance per pixel (bright IR targets win); chroma by the DeepFuse rule."""
    s = stack_sources(images, rgb_route=False)
    return unstack(s.planes.max(axis=0), s)  # (H, W, 1)


def select_max_abs(coeffs: np.ndarray) -> np.ndarray:
    """Per position, keep the coefficient of largest magnitude across sources; (N, ...) -> (...)."""
    pick = np.abs(coeffs).argmax(axis=0)[None]
    return np.take_along_axis(coeffs, pick, axis=0)[0]
