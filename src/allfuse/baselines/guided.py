"""The guided filter (He, Sun & Tang, ECCV 2010 / TPAMI 2013) on box filters, gray guide.

Shared by guided-filter fusion (weight refinement), the focus baseline (decision-map refinement) and dark
channel prior dehazing (transmission refinement). Float64 inside: GFF's detail setting eps = 1e-6 is far
below float32's resolution of E[I^2] - E[I]^2.
"""

import cv2
import numpy as np


def box_mean(x: np.ndarray, r: int) -> np.ndarray:
    """Mean over a (2r+1) x (2r+1) window, reflected borders; works on (H, W) or (H, W, C)."""
    return cv2.boxFilter(x, -1, (2 * r + 1, 2 * r + 1), normalize=True, borderType=cv2.BORDER_REFLECT)


def guided_filter(guide: np.ndarray, src: np.ndarray, r: int, eps: float) -> np.ndarray:
    """Filter src (H, W) or (H, W, C) edge-aware along a gray guide (H, W); returns float64."""
    p = np.asarray(src, dtype=np.float64)
    if p.ndim == 3:
        return np.stack([guided_filter(guide, p[..., c], r, eps) for c in range(p.shape[2])], axis=-1)
    i = np.asarray(guide, dtype=np.float64)
    # He et al. 2010, Algorithm 1: a local linear model q = a * I + b fitted in every window.
    mean_i, mean_p = box_mean(i, r), box_mean(p, r)
    var_i = box_mean(i * i, r) - mean_i * mean_i
    cov_ip = box_mean(i * p, r) - mean_i * mean_p
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return box_mean(a, r) * i + box_mean(b, r)
