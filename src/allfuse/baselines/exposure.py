"""Exposure fusion (Mertens, Kautz & Van Reeth, Pacific Graphics 2007) through OpenCV's MergeMertens.

Weights per pixel = contrast^wc * saturation^ws * well-exposedness^we, blended in a Laplacian pyramid.
Colour: all-colour inputs are fused in RGB natively. When any input is gray (VIF, or gray MEF), each
source's luminance is stacked to three channels and fused with the saturation weight off — a gray image
has zero saturation and would otherwise get zero weight — then chroma follows the DeepFuse rule.
The task tunes the weight exponents: MFF keeps contrast only (a focus measure), VIF drops saturation.
"""

from collections.abc import Sequence

import cv2
import numpy as np

from allfuse.baselines.sources import stack_sources, unstack
from allfuse.types import Image, Task

# (contrast, saturation, exposedness) exponents; None = no task given, the paper's defaults.
WEIGHTS: dict[Task | None, tuple[float, float, float]] = {
    None: (1.0, 1.0, 1.0),
    "mef": (1.0, 1.0, 1.0),
    "mff": (1.0, 0.0, 0.0),
    "vif": (1.0, 0.0, 1.0),
}


def merge_mertens(rgb: np.ndarray, weights: tuple[float, float, float]) -> np.ndarray:
    """Run cv2 MergeMertens on (N, H, W, 3) RGB in [0, 1]; returns (H, W, 3) RGB float32, unclipped."""
    merge = cv2.createMergeMertens(*weights)
    # OpenCV scales every input by 1/255 and reads BGR (its contrast weight uses BGR->gray).
    bgr = [np.ascontiguousarray(x[..., ::-1] * 255.0, dtype=np.float32) for x in rgb]
    return merge.process(bgr)[..., ::-1]


def fuse_mertens(images: Sequence[np.ndarray], task: Task | None = None) -> Image:
    """Mertens exposure fusion; RGB natively, luminance (saturation weight off) when any input is gray."""
    s = stack_sources(images, rgb_route=True)
    wc, ws, we = WEIGHTS[task]
    if s.planes.shape[-1] == 3:
        return unstack(merge_mertens(s.planes, (wc, ws, we)), s)
    gray3 = np.repeat(s.planes, 3, axis=-1)  # (N, H, W, 3)
    fused = merge_mertens(gray3, (wc, 0.0, we)).mean(axis=-1, keepdims=True)
    return unstack(fused, s)
