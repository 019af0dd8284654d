"""MEF-SSIM (Ma, Zeng & Wang, "Perceptual quality assessment for multi-exposure image fusion", TIP 2015).

Follows the authors' MATLAB `mef_ms_ssim.m` / `mef_ssim.m` (as redistributed by MEFB): gray images on the
0-255 scale, 11x11 windows, K = 0.03, three scales with weights (0.0448, 0.2856, 0.3001) normalised.
The MATLAB code loops over every window; here every windowed quantity is a linear combination of
box- and Gaussian-filtered products of the inputs, so the same numbers come out of a few filters.
"""

from collections.abc import Sequence

import numpy as np

from allfuse.metrics.filters import box_valid, filter_valid, gaussian_kernel1d

WIN = 11
K = 0.03
SCALE_WEIGHTS = np.array([0.0448, 0.2856, 0.3001]) / (0.0448 + 0.2856 + 0.3001)
MATLAB_EPS = float(np.finfo(np.float64).eps)


def _downsample(x: np.ndarray) -> np.ndarray:
    """imfilter(x, ones(2)/4, 'symmetric', 'same') then x(1:2:end, 1:2:end): 2x2 block means."""
    x = np.pad(x, ((0, x.shape[0] % 2), (0, x.shape[1] % 2)), mode="edge")
    return 0.25 * (x[0::2, 0::2] + x[1::2, 0::2] + x[0::2, 1::2] + x[1::2, 1::2])


def _consistency_weights(cov: np.ndarray, ed: np.ndarray) -> np.ndarray:
    """Normalised per-source weights of the desired structure, from the structural consistency R."""
    n = WIN * WIN
    k = ed.shape[0]
    num = np.sqrt(n * np.maximum(cov.sum(axis=(0, 1)), 0.0))  # || sum_k x_k - mean ||
    den = sum(np.sqrt(n * np.maximum(cov[i, i], 0.0)) for i in range(k))  # sum_k || x_k - mu_k ||
    r = (num + MATLAB_EPS) / (den + MATLAB_EPS)
    r = np.clip(r, MATLAB_EPS, 1.0 - MATLAB_EPS)
    p = np.minimum(np.tan(np.pi / 2 * r), 10.0)
    w = (ed / WIN) ** p + MATLAB_EPS  # (K, H, W)
    return w / w.sum(axis=0)


def mef_ssim_single(seq: Sequence[np.ndarray], f: np.ndarray) -> float:
    """Single-scale MEF-SSIM: mean structure similarity of F to the desired patch built from `seq`."""
    n = WIN * WIN
    g = gaussian_kernel1d(WIN, 1.5)
    k = len(seq)
    mu = np.stack([box_valid(x, WIN) for x in seq])  # box means, (K, H', W')
    cov = np.empty((k, k, *mu.shape[1:]))  # box covariances of the sources
    gxx = np.empty_like(cov)  # Gaussian means of products x_k x_l
    for i in range(k):
        for j in range(i, k):
            cov[i, j] = cov[j, i] = box_valid(seq[i] * seq[j], WIN) - mu[i] * mu[j]
            gxx[i, j] = gxx[j, i] = filter_valid(seq[i] * seq[j], g)
    gx = np.stack([filter_valid(x, g) for x in seq])
    gxf = np.stack([filter_valid(x * f, g) for x in seq])
    mu_f = filter_valid(f, g)
    var_f = filter_valid(f * f, g) - mu_f * mu_f

    ed = np.sqrt(n * np.maximum(np.stack([cov[i, i] for i in range(k)]), 0.0)) + 0.001  # signal strength
    a = _consistency_weights(cov, ed) / ed  # rBlock = sum_k a_k (x_k - mu_k)
    # The desired patch r = c * rBlock, rescaled to the largest source signal strength.
    r_norm = np.sqrt(np.maximum(n * np.einsum("iyx,jyx,ijyx->yx", a, a, cov), 0.0))
    c = np.where(r_norm > 0, ed.max(axis=0) / np.where(r_norm > 0, r_norm, 1.0), 1.0)
    centred = gxx - mu[:, None] * gx[None, :] - mu[None, :] * gx[:, None] + mu[:, None] * mu[None, :]
    mu_r = c * np.einsum("iyx,iyx->yx", a, gx - mu)
    var_r = c * c * np.einsum("iyx,jyx,ijyx->yx", a, a, centred) - mu_r * mu_r
    cov_rf = c * np.einsum("iyx,iyx->yx", a, gxf - mu * mu_f) - mu_r * mu_f
    cst = (K * 255.0) ** 2
    q = (2.0 * cov_rf + cst) / (var_r + var_f + cst)
    return float(q.mean())


def mef_ssim(f: np.ndarray, sources: Sequence[np.ndarray]) -> float:
    """MEF-SSIM of fused gray F (0-255) against any number of gray sources; 1 when all equal F.

    NaN when the image is too small for three scales (a side under 44 px), where MATLAB returns -Inf.
    A negative per-scale score (anti-correlated structure) enters the weighted geometric mean as
    -|q|^w, where MATLAB's prod(Q.^w) would turn complex.
    """
    if min(f.shape) / 4 < WIN:
        return float("nan")
    seq = list(sources)
    scores = []
    for level in range(len(SCALE_WEIGHTS)):
        if level > 0:
            seq, f = [_downsample(x) for x in seq], _downsample(f)
        scores.append(mef_ssim_single(seq, f))
    q = np.array(scores)
    return float(np.prod(np.sign(q) * np.abs(q) ** SCALE_WEIGHTS))
