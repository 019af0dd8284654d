"""Statistical and information fusion metrics on luminance: EN, SD, SF, AG, MI, CC, SCD, SSIM, VIF.

Every function takes gray float64 images on the 0-255 scale (luminance of [0, 1] RGB times 255) because
that is the scale of the de-facto public reference, the numpy `Evaluator` of CDDFuse
(Zhaozixiang1228/MMIF-CDDFuse, utils/Evaluator.py), and several values (SD, SF, AG, VIF's noise
variance) depend on it. Multi-source metrics accept any number of sources >= 2 and reduce over them
the way CDDFuse reduces over its two (a sum for MI, SCD and VIF, a mean for CC; SSIM is a mean here).
"""

from collections.abc import Sequence

import numpy as np
from skimage.metrics import structural_similarity

from allfuse.metrics.filters import filter_valid, gaussian_kernel1d

LEVELS = 256  # histogram bins for EN and MI: one per 8-bit gray level


def quantize(x: np.ndarray) -> np.ndarray:
    """Histogram bin (0..255) of each pixel: round to the nearest gray level, clip to range."""
    return np.clip(np.rint(x), 0, LEVELS - 1).astype(np.int64)


def entropy(f: np.ndarray) -> float:
    """EN: Shannon entropy of the 256-bin gray histogram, in bits (CDDFuse `EN`)."""
    p = np.bincount(quantize(f).ravel(), minlength=LEVELS) / f.size
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def standard_deviation(f: np.ndarray) -> float:
    """SD: population standard deviation of the gray levels (0-255 scale)."""
    return float(np.std(f))


def spatial_frequency(f: np.ndarray) -> float:
    """SF = sqrt(RF^2 + CF^2): RMS of horizontal and vertical first differences (0-255 scale)."""
    rf2 = np.mean((f[:, 1:] - f[:, :-1]) ** 2)
    cf2 = np.mean((f[1:, :] - f[:-1, :]) ** 2)
    return float(np.sqrt(rf2 + cf2))


def average_gradient(f: np.ndarray) -> float:
    """AG: mean of sqrt((Gx^2 + Gy^2) / 2), central differences inside, one-sided at the border."""
    gy, gx = np.gradient(f)  # same stencil as CDDFuse's explicit loops
    return float(np.mean(np.sqrt((gx * gx + gy * gy) / 2.0)))


def _mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    """MI of two images from their 256x256 joint histogram, in nats."""
    joint = np.bincount((quantize(a) * LEVELS + quantize(b)).ravel(), minlength=LEVELS * LEVELS)
    pab = joint.reshape(LEVELS, LEVELS) / a.size
    pa, pb = pab.sum(axis=1), pab.sum(axis=0)
    i, j = np.nonzero(pab)
    return float(np.sum(pab[i, j] * np.log(pab[i, j] / (pa[i] * pb[j]))))


def mutual_information(f: np.ndarray, sources: Sequence[np.ndarray]) -> float:
    """MI: sum over sources of MI(F, S), natural log (nats), 256 gray-level bins.

    Matches CDDFuse, which calls sklearn.metrics.mutual_info_score (natural log) on integer gray
    images; so MI(F, F) = EN(F) * ln 2 per source, and two sources give twice that.
    """
    return sum(_mutual_information(f, s) for s in sources)


def _is_flat(x: np.ndarray) -> bool:
    """Constant up to float round-off (e.g. F - (2F)/2), relative to the image's magnitude."""
    return float(np.ptp(x)) <= 1e-9 * max(1.0, float(np.abs(x).max()))


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two images; 0 when either is constant (no linear information)."""
    if _is_flat(a) or _is_flat(b):
        return 0.0
    da, db = a - a.mean(), b - b.mean()
    return float(np.sum(da * db) / np.sqrt(np.sum(da * da) * np.sum(db * db)))


def correlation_coefficient(f: np.ndarray, sources: Sequence[np.ndarray]) -> float:
    """CC: mean over sources of corr(F, S) (CDDFuse `CC`: (rAF + rBF) / 2)."""
    return float(np.mean([correlation(f, s) for s in sources]))


def sum_of_correlations_of_differences(f: np.ndarray, sources: Sequence[np.ndarray]) -> float:
    """SCD (Aslantas & Bendes 2015): sum_i corr(F - D_i, S_i), D_i = mean of the other sources.

    For two sources this is corr(F - B, A) + corr(F - A, B), exactly CDDFuse `SCD`.
    """
    total = sum(sources)
    k = len(sources)
    return sum(correlation(f - (total - s) / (k - 1), s) for s in sources)


def ssim(f: np.ndarray, sources: Sequence[np.ndarray]) -> float:
    """SSIM: mean over sources of skimage SSIM(F, S) with data_range=255 (7x7 uniform window).

    CDDFuse reports the SUM over its two sources (so its tables are twice this). Its original call
    left data_range to an old skimage default (2.0 for floats on a 0-255 scale, a de-facto C ~ 0);
    later ports and we use the standard data_range=255, i.e. K1=0.01, K2=0.03 of Wang et al. 2004.
    NaN for images under 7 px a side.
    """
    if min(f.shape) < 7:
        return float("nan")
    return float(np.mean([structural_similarity(f, s, data_range=255.0) for s in sources]))


def _vif_scale(ref: np.ndarray, dist: np.ndarray, k: np.ndarray) -> tuple[float, float]:
    """One scale of pixel-domain VIF: (information preserved, information in the reference)."""
    sigma_nsq, eps = 2.0, 1e-10  # HVS noise variance for the 0-255 scale
    mu1, mu2 = filter_valid(ref, k), filter_valid(dist, k)
    s11 = np.maximum(filter_valid(ref * ref, k) - mu1 * mu1, 0.0)
    s22 = np.maximum(filter_valid(dist * dist, k) - mu2 * mu2, 0.0)
    s12 = filter_valid(ref * dist, k) - mu1 * mu2
    # Sheikh & Bovik distortion channel dist = g * ref + v, with CDDFuse's guards on degenerate windows.
    g = s12 / (s11 + eps)
    sv = s22 - g * s12
    flat_ref = s11 < eps
    g[flat_ref] = 0.0
    sv[flat_ref] = s22[flat_ref]
    s11 = np.where(flat_ref, 0.0, s11)
    flat_dist = s22 < eps
    g[flat_dist] = 0.0
    sv[flat_dist] = 0.0
    neg = g < 0
    sv[neg] = s22[neg]
    g[neg] = 0.0
    sv = np.maximum(sv, eps)
    num = np.sum(np.log10(1.0 + g * g * s11 / (sv + sigma_nsq)))
    den = np.sum(np.log10(1.0 + s11 / sigma_nsq))
    return float(num), float(den)


def vif_pair(ref: np.ndarray, dist: np.ndarray) -> float:
    """Multi-scale pixel-domain VIF(ref -> dist) over 4 scales, CDDFuse `compare_viff`.

    Returns 1.0 when the reference carries no information (0/0), as CDDFuse does; NaN when the image
    is too small for four scales (a side under 41 px).
    """
    if min(ref.shape) < 41:
        return float("nan")
    num = den = 0.0
    for scale in range(1, 5):
        n = 2 ** (5 - scale) + 1  # window 17, 9, 5, 3
        k = gaussian_kernel1d(n, n / 5.0)
        if scale > 1:
            ref, dist = filter_valid(ref, k)[::2, ::2], filter_valid(dist, k)[::2, ::2]
        a, b = _vif_scale(ref, dist, k)
        num, den = num + a, den + b
    return num / den if den > 0 else 1.0


def visual_information_fidelity(f: np.ndarray, sources: Sequence[np.ndarray]) -> float:
    """VIF for fusion: sum over sources of VIF(S -> F), as CDDFuse's `VIFF`.

    CDDFuse names it after Han et al. 2013 (VIFF) but computes, per source, the multi-scale
    pixel-domain VIF of Sheikh & Bovik (4 Gaussian scales, sigma_n^2 = 2) and sums; published IVIF
    tables use that code, so we do too. Scale: 0-255. F == S gives 1 per source, a flat F gives 0.
    """
    return sum(vif_pair(s, f) for s in sources)
