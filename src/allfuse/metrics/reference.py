"""Pixel-fidelity metrics: MSE/PSNR of the fused image against its sources, and against a reference.

Against the sources (no ground truth, as DiTFuse Tab. I): luminance in [0, 1],
MSE = mean_i mean((F - S_i)^2) and PSNR = 20 log10(255 / sqrt(MSE)). That peak of 255 over a [0, 1]
MSE is the convention of the Python port of Tang et al.'s fusion evaluation (`analysis_MSE`,
`analysis_PSNR`) that fusion papers copy; it is why DiTFuse reports MSE ~ 0.02-0.06 next to
PSNR ~ 60-67 dB. It equals the textbook PSNR in [0, 1] plus 20 log10(255) = 48.13 dB.

Against a reference (a synthesized ground truth): the textbook definitions on [0, 1], over all channels
when fused and reference are both RGB, else on luminance: MSE_ref, PSNR_ref = 10 log10(1 / MSE_ref),
SSIM_ref = skimage SSIM with data_range = 1 (7x7 uniform window, per channel then averaged).
"""

from collections.abc import Sequence

import numpy as np
from skimage.metrics import structural_similarity

PEAK_SOURCES = 255.0  # the fusion-literature peak over a [0, 1] MSE (see module docstring)


def mse_sources(f: np.ndarray, sources: Sequence[np.ndarray]) -> float:
    """MSE: mean over sources of the per-pixel squared error, luminance in [0, 1]."""
    return float(np.mean([np.mean((f - s) ** 2) for s in sources]))


def psnr_sources(f: np.ndarray, sources: Sequence[np.ndarray]) -> float:
    """PSNR against the sources, 20 log10(255 / sqrt(MSE)) with MSE in [0, 1]; inf when F == all S."""
    mse = mse_sources(f, sources)
    return float(10.0 * np.log10(PEAK_SOURCES**2 / mse)) if mse > 0 else float("inf")


def mse_reference(f: np.ndarray, ref: np.ndarray) -> float:
    """MSE_ref in [0, 1] units, over every channel."""
    return float(np.mean((f - ref) ** 2))


def psnr_reference(f: np.ndarray, ref: np.ndarray) -> float:
    """PSNR_ref = 10 log10(1 / MSE_ref) in dB, peak 1; inf when F == reference."""
    mse = mse_reference(f, ref)
    return float(10.0 * np.log10(1.0 / mse)) if mse > 0 else float("inf")


def ssim_reference(f: np.ndarray, ref: np.ndarray) -> float:
    """SSIM_ref (Wang et al. 2004 constants, data_range = 1); RGB averaged over channels; NaN under 7 px."""
    if min(f.shape[:2]) < 7:
        return float("nan")
    channel_axis = -1 if f.ndim == 3 else None
    return float(structural_similarity(f, ref, data_range=1.0, channel_axis=channel_axis))
