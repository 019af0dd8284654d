"""Edge-based fusion metrics: Qabf (Xydeas & Petrovic 2000), Nabf (Kumar's modified artifact measure),
Qcv (Chen & Varshney 2007).

Inputs are gray float64 images on the 0-255 scale: Nabf's edge threshold Td = 2 and Qabf's rule for
equal edge strengths assume it (Qabf is otherwise scale-free; Qcv stretches every image to 0-255
itself). Each function accepts any number of sources >= 2 and weights the per-source terms by that
source's edge strength, which reduces to the published two-source formulas.
"""

from collections.abc import Sequence

import numpy as np

from allfuse.metrics.filters import block_sums, sobel


def _strength_angle_qabf(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sobel strength and orientation, zero padding, exactly as CDDFuse computes them.

    CDDFuse convolves (not correlates) with the Sobel x kernel, so its x response is -dx; the angle is
    atan(dy / -dx), pi/2 where dx == 0. The sign matters because the orientation term compares raw
    angles without wrapping, so it is kept to reproduce published values.
    """
    dx, dy = sobel(x, border="zero")
    g = np.sqrt(dx * dx + dy * dy)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(dx == 0, np.pi / 2, np.arctan(dy / -dx))
    return g, a


def _edge_preservation(gs: np.ndarray, as_: np.ndarray, gf: np.ndarray, af: np.ndarray) -> np.ndarray:
    """Q^{SF}: sigmoid-mapped preservation of edge strength and orientation from S into F."""
    tg, kg, dg = 0.9994, -15.0, 0.5
    ta, ka, da = 0.9879, -22.0, 0.8
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(gs > gf, gf / gs, gs / gf)
    # Where gS == gF CDDFuse uses gF itself as the ratio. On 0-255 integer images a nonzero Sobel
    # strength is >= 1, so that only saturates the sigmoid; max(gF, 1) reproduces it exactly there and
    # stops float images from being penalised for exactly copied gentle gradients (gF < 1).
    ratio = np.where(gs == gf, np.where(gf > 0, np.maximum(gf, 1.0), 0.0), ratio)
    orient = 1.0 - np.abs(as_ - af) / (np.pi / 2)
    return tg / (1.0 + np.exp(kg * (ratio - dg))) * (ta / (1.0 + np.exp(ka * (orient - da))))


def qabf(f: np.ndarray, sources: Sequence[np.ndarray]) -> float:
    """Qabf: edge-strength-weighted mean of per-pixel edge preservation, CDDFuse `Qabf`.

    Qabf = sum_i sum_px Q^{S_i F} g_{S_i} / sum_i sum_px g_{S_i}, in [0, 0.9753]: F == S gives
    Tg * Ta / (1 + e^{-4.4}) = 0.97533 at every edge pixel stronger than a few gray levels.
    """
    gf, af = _strength_angle_qabf(f)
    num = den = 0.0
    for s in sources:
        gs, as_ = _strength_angle_qabf(s)
        num += float(np.sum(_edge_preservation(gs, as_, gf, af) * gs))
        den += float(np.sum(gs))
    return num / den if den > 0 else float("nan")


def _strength_angle_kumar(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sobel/8 strength and orientation atan(gv / gh) (0 where both vanish), mirrored border.

    As in the reference code, gv = -dx / 8 and gh = -dy / 8 (convolution, not correlation), with +0.0
    for exact zeros: gh == 0 gives +-pi/2 by the sign of gv, and that sign must match to reproduce it.
    """
    dx, dy = sobel(x, border="mirror")
    gv, gh = (0.0 - dx) / 8.0, (0.0 - dy) / 8.0
    g = np.sqrt(gv * gv + gh * gh)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where((gv == 0) & (gh == 0), 0.0, np.arctan(gv / gh))
    return g, a


def nabf(f: np.ndarray, sources: Sequence[np.ndarray]) -> float:
    """Nabf: modified fusion-artifact rate (B. K. Shreyamsha Kumar), lower is better.

    Ported from the objective_fusion_perform_fn MATLAB code as in the Python ports used by fusion
    repos: Petrovic edge preservation Q^{SF} = sqrt(Qg * Qa), weights w_S = g_S^1.5 where g_S >= Td = 2
    (0-255 scale, Sobel/8) and wt_min = 0.001 elsewhere; artifacts are counted where F's edge is stronger
    than every source's: Nabf = sum_px [gF > max_i g_i] sum_i (1 - Q^{S_i F}) w_i / sum_px sum_i w_i.
    """
    td, wt_min, lg = 2.0, 0.001, 1.5
    nrg, kg, sg = 0.9999, 19.0, 0.5
    nra, ka, sa = 0.9995, 22.0, 0.5
    gf, af = _strength_angle_kumar(f)
    stronger = np.ones_like(gf, dtype=bool)
    loss = np.zeros_like(gf)
    wsum = 0.0
    for s in sources:
        gs, as_ = _strength_angle_kumar(s)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where((gs == 0) | (gf == 0), 0.0, np.minimum(gs, gf) / np.maximum(gs, gf))
        orient = np.abs(np.abs(as_ - af) - np.pi / 2) * 2.0 / np.pi
        qg = nrg / (1.0 + np.exp(-kg * (ratio - sg)))
        qa = nra / (1.0 + np.exp(-ka * (orient - sa)))
        w = np.where(gs >= td, gs**lg, wt_min)
        loss += (1.0 - np.sqrt(qg * qa)) * w
        wsum += float(np.sum(w))
        stronger &= gf > gs
    return float(np.sum(loss[stronger]) / wsum)


def _normalize_255(x: np.ndarray) -> np.ndarray:
    """Min-max stretch to [0, 255] (VIFB `normalize1`, without its rounding); constants map to 0."""
    lo, hi = float(x.min()), float(x.max())
    return (x - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(x)


def _mannos_sakrison(shape: tuple[int, int]) -> np.ndarray:
    """Mannos-Sakrison CSF on MATLAB `freqspace` scaled by size / 8, laid out for an unshifted FFT."""
    h, w = shape
    u = (np.arange(w) - w // 2) / 4.0  # freqspace (k - floor(n/2)) * 2/n, times n/8
    v = (np.arange(h) - h // 2) / 4.0
    r = np.sqrt(u[None, :] ** 2 + v[:, None] ** 2)
    csf = 2.6 * (0.0192 + 0.144 * r) * np.exp(-((0.144 * r) ** 1.1))
    return np.fft.ifftshift(csf)


def qcv(f: np.ndarray, sources: Sequence[np.ndarray], block: int = 16, alpha: float = 5.0) -> float:
    """Qcv (Chen & Varshney 2007) as in VIFB/Z. Liu's metricChen.m; lower is better, 0 when F == S.

    Each image is min-max stretched to 0-255; per 16x16 block, the saliency of S_i is sum g_{S_i}^5
    (Sobel, zero padding) and the dissimilarity is the mean squared CSF-filtered (Mannos-Sakrison)
    difference S_i - F. Qcv = sum_blocks sum_i lambda_i D_i / sum_blocks sum_i lambda_i.
    """
    fn = _normalize_255(f)
    csf = _mannos_sakrison(f.shape)
    num = den = 0.0
    for s in sources:
        sn = _normalize_255(s)
        dx, dy = sobel(sn, border="zero")
        saliency = block_sums(np.sqrt(dx * dx + dy * dy) ** alpha, block)
        diff = np.real(np.fft.ifft2(np.fft.fft2(sn - fn) * csf))
        dissimilarity = block_sums(diff * diff, block) / (block * block)
        num += float(np.sum(saliency * dissimilarity))
        den += float(np.sum(saliency))
    return num / den if den > 0 else float("nan")
