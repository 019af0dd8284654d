"""Guided-filter fusion, GFF (Li, Kang & Hu, "Image Fusion With Guided Filtering", IEEE TIP 2013).

Colour: saliency and guide are each source's BT.601 luminance (the paper's gray-guide variant); when every
source is colour the weights apply to R, G and B alike, otherwise luminance is fused and chroma follows the
DeepFuse rule (see `sources`).
"""

from collections.abc import Sequence

import cv2
import numpy as np

from allfuse.baselines.guided import box_mean, guided_filter
from allfuse.baselines.sources import stack_sources, unstack
from allfuse.types import Image, Task

BASE_RADIUS = 15  # the paper's 31 x 31 average filter
SALIENCY_RADIUS, SALIENCY_SIGMA = 5, 5.0  # r_g, sigma_g
R1, EPS1 = 45, 0.3  # guided filter for base-layer weights
R2, EPS2 = 7, 1e-6  # guided filter for detail-layer weights


def saliency(y: np.ndarray) -> np.ndarray:
    """GFF Eq. (3)-(4): |3x3 Laplacian| smoothed by an 11 x 11 Gaussian (sigma 5); y (H, W)."""
    lap = np.abs(cv2.Laplacian(y, cv2.CV_32F, ksize=1, borderType=cv2.BORDER_REFLECT))
    k = 2 * SALIENCY_RADIUS + 1
    return cv2.GaussianBlur(lap, (k, k), SALIENCY_SIGMA, borderType=cv2.BORDER_REFLECT)


def normalize_weights(w: np.ndarray) -> np.ndarray:
    """Clip guided-filter overshoot below 0 and make weights sum to one over sources; (N, H, W)."""
    w = np.maximum(w, 0.0)
    total = w.sum(axis=0, keepdims=True)
    return np.where(total > 1e-12, w / np.maximum(total, 1e-12), 1.0 / w.shape[0])


def gff_weights(luma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Base and detail weight maps (N, H, W) each, from source luminances (N, H, W)."""
    s = np.stack([saliency(y) for y in luma])
    # GFF Eq. (5): P_n = 1 where source n is the most salient (ties: every tied source gets 1).
    p = (s == s.max(axis=0, keepdims=True)).astype(np.float64)
    # GFF Eq. (6): refine P_n with the guided filter, the source itself as guide.
    w_base = np.stack([guided_filter(y, pn, R1, EPS1) for y, pn in zip(luma, p, strict=True)])
    w_detail = np.stack([guided_filter(y, pn, R2, EPS2) for y, pn in zip(luma, p, strict=True)])
    return normalize_weights(w_base), normalize_weights(w_detail)


def fuse_gff(images: Sequence[np.ndarray], task: Task | None = None) -> Image:
    """Guided-filter fusion: two-scale split, saliency maps, guided-filter-refined base/detail weights."""
    st = stack_sources(images, rgb_route=True)
    w_base, w_detail = gff_weights(st.luma)  # (N, H, W) each
    fused = np.zeros(st.planes.shape[1:], dtype=np.float64)  # (H, W, C)
    for x, wb, wd in zip(st.planes, w_base, w_detail, strict=True):
        # GFF Eq. (1)-(2): base = 31 x 31 mean, detail = the rest; Eq. (7)-(8): weighted recombination.
        base = box_mean(x, BASE_RADIUS).reshape(x.shape)
        fused += wb[..., None] * base + wd[..., None] * (x - base)
    return unstack(fused, st)
