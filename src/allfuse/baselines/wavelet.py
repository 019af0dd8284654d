"""Discrete-wavelet fusion (Li, Manjunath & Mitra 1995): max-abs detail coefficients, mean approximation."""

from collections.abc import Sequence

import numpy as np
import pywt

from allfuse.baselines.simple import select_max_abs
from allfuse.baselines.sources import stack_sources, unstack
from allfuse.types import Image, Task

WAVELET = "db2"
MAX_LEVEL = 3


def fuse_dwt(images: Sequence[np.ndarray], task: Task | None = None) -> Image:
    """Fuse luminance in a db2 DWT (3 levels at most): max-abs on details, mean on approximation."""
    s = stack_sources(images, rgb_route=False)
    h, w = s.luma.shape[1:]
    level = max(1, min(MAX_LEVEL, pywt.dwt_max_level(min(h, w), WAVELET)))
    # Each entry: [cA, (cH, cV, cD) coarsest, ..., (cH, cV, cD) finest]; symmetric padding inverts exactly.
    decs = [pywt.wavedec2(y.astype(np.float64), WAVELET, mode="symmetric", level=level) for y in s.luma]
    fused = [np.mean([d[0] for d in decs], axis=0)]
    for k in range(1, level + 1):
        fused.append(tuple(select_max_abs(np.stack([d[k][j] for d in decs])) for j in range(3)))
    y = pywt.waverec2(fused, WAVELET, mode="symmetric")[:h, :w]  # odd sizes come back one larger
    return unstack(y[..., None], s)
