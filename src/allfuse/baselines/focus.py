"""Multi-focus fusion by a focus-measure decision map (the classical MFF pipeline, e.g. Liu et al. 2017).

1. Focus measure: sum-modified-Laplacian, SML (Nayar & Nakagawa 1994), of each source's luminance.
2. Decision map: per pixel, the source with the largest SML (any number of sources).
3. Consistency: connected regions smaller than MIN_AREA of the image are removed and refilled from the
   nearest surviving region (small-region removal, as Liu et al. 2017 do with 1 % of the area).
4. Refinement: each one-hot map is guided-filtered along the mean source luminance; with one shared guide
   the refined maps still sum to one (the filter is linear), giving soft seams that follow image edges.
Colour: the weights apply to R, G and B alike when every source is colour (the sharp source's own colours);
otherwise luminance is fused and chroma follows the DeepFuse rule.
"""

from collections.abc import Sequence

import cv2
import numpy as np
from scipy import ndimage

from allfuse.baselines.gff import normalize_weights
from allfuse.baselines.guided import box_mean, guided_filter
from allfuse.baselines.sources import stack_sources, unstack
from allfuse.types import Image, Task

SML_RADIUS = 4  # 9 x 9 focus window
MIN_AREA = 0.01  # regions smaller than this fraction of the image are relabelled
GUIDE_RADIUS, GUIDE_EPS = 4, 0.01


def sum_modified_laplacian(y: np.ndarray, radius: int = SML_RADIUS) -> np.ndarray:
    """Nayar's SML: window mean of |d2I/dx2| + |d2I/dy2| (3-tap second differences); y (H, W)."""
    k = np.array([[-1.0, 2.0, -1.0]], dtype=np.float32)
    ml = np.abs(cv2.filter2D(y, cv2.CV_32F, k, borderType=cv2.BORDER_REFLECT))
    ml += np.abs(cv2.filter2D(y, cv2.CV_32F, k.T, borderType=cv2.BORDER_REFLECT))
    return box_mean(ml, radius)


def remove_small_regions(labels: np.ndarray, n: int, min_area: int) -> np.ndarray:
    """Relabel connected regions smaller than min_area pixels from their nearest large region."""
    keep = np.zeros(labels.shape, dtype=bool)
    for label in range(n):
        comp, count = ndimage.label(labels == label)
        if count == 0:
            continue
        big = np.bincount(comp.ravel()) >= min_area
        big[0] = False  # component 0 is everything that is not this label
        keep |= big[comp]
    if not keep.any():
        return labels
    _, (rows, cols) = ndimage.distance_transform_edt(~keep, return_indices=True)
    return labels[rows, cols]


def focus_weights(luma: np.ndarray) -> np.ndarray:
    """Soft per-source weights (N, H, W) from luminances (N, H, W): SML argmax, cleanup, guided filter."""
    n, h, w = luma.shape
    labels = np.stack([sum_modified_laplacian(y) for y in luma]).argmax(axis=0)
    labels = remove_small_regions(labels, n, max(1, round(MIN_AREA * h * w)))
    guide = luma.mean(axis=0)
    maps = [guided_filter(guide, (labels == k).astype(np.float64), GUIDE_RADIUS, GUIDE_EPS) for k in range(n)]
    return normalize_weights(np.stack(maps))


def fuse_focus(images: Sequence[np.ndarray], task: Task | None = None) -> Image:
    """Multi-focus fusion: SML decision map, small-region cleanup, guided-filter refinement, weighted sum."""
    s = stack_sources(images, rgb_route=True)
    w = focus_weights(s.luma)  # (N, H, W)
    return unstack(np.einsum("nhw,nhwc->hwc", w, s.planes), s)
