"""Demo pairs synthesized from images bundled with scikit-image, for a machine without any dataset."""

import numpy as np
from scipy import ndimage
from skimage import data as skdata

from allfuse.types import Image, Task


def _scene() -> Image:
    """The scikit-image 'chelsea' photograph (300x451 RGB) as float32 in [0, 1]."""
    return skdata.chelsea().astype(np.float32) / 255.0


def _near_mask(h: int, w: int) -> np.ndarray:
    """A soft ellipse around the cat's head: the 'near' object of the multi-focus demo."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = ((yy - 0.45 * h) / (0.42 * h)) ** 2 + ((xx - 0.42 * w) / (0.30 * w)) ** 2
    return ndimage.gaussian_filter((r < 1.0).astype(np.float32), 4.0)


def demo_pair(task: Task = "mff") -> list[Image]:
    """Return a synthetic source pair for `task`: 'mff' (near/far focus) or 'mef' (under/over exposure)."""
    x = _scene()
    if task == "mff":
        blurred = ndimage.gaussian_filter(x, sigma=(3.0, 3.0, 0.0))
        m = _near_mask(*x.shape[:2])[..., None]
        near = m * x + (1 - m) * blurred  # object sharp, background out of focus
        far = m * blurred + (1 - m) * x
        return [near.astype(np.float32), far.astype(np.float32)]
    if task == "mef":
        under = np.clip(0.25 * x**1.6, 0, 1)
        over = np.clip(2.2 * x**0.7, 0, 1)
        return [under.astype(np.float32), over.astype(np.float32)]
    raise ValueError(f"no demo pair for task {task!r}: choose 'mff' or 'mef'")
