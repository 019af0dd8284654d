"""Natural-scene statistics shared by BRISQUE and NIQE: MSCN coefficients and AGGD fits.

References: Mittal, Moorthy & Bovik, "No-reference image quality assessment in the spatial domain"
(BRISQUE, TIP 2012); Mittal, Soundararajan & Bovik, "Making a completely blind image quality analyzer"
(NIQE, SPL 2013). The fits below reproduce the feature code each shipped model was fitted with:
`aggd_fit_root` the `brisque` package, `aggd_fit_grid` scikit-video ("skvideo") and LIVE's MATLAB
release estimateaggdparam.m ("matlab").
"""

from typing import Literal

import numpy as np
from scipy import optimize, special

from allfuse.metrics.filters import filter_same, gaussian_kernel1d

Convention = Literal["skvideo", "matlab"]
ArrayOrFloat = np.ndarray | float


def _rho(alpha: np.ndarray | float) -> np.ndarray:
    """Generalised-Gaussian moment ratio Gamma(2/a)^2 / (Gamma(1/a) Gamma(3/a)), increasing in a."""
    a = np.asarray(alpha, dtype=np.float64)
    return np.exp(2 * special.gammaln(2 / a) - special.gammaln(1 / a) - special.gammaln(3 / a))


# Grids searched for the AGGD shape, with rho tabulated on them. MATLAB: gam = 0.2:0.001:10 (9801
# points); scikit-video: np.arange(0.2, 10, 0.001), the same without its last point.
SHAPE_GRIDS: dict[Convention, np.ndarray] = {
    "skvideo": np.arange(0.2, 10, 0.001),
    "matlab": 0.2 + 0.001 * np.arange(9801),
}
RHO_GRIDS: dict[Convention, np.ndarray] = {k: _rho(g) for k, g in SHAPE_GRIDS.items()}


def mscn(x: np.ndarray, c: float, border: str = "zero") -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients (x - mu) / (sigma + c).

    mu and sigma^2 are local moments under a 7x7 Gaussian (sigma 7/6). Zero padding is what the
    BRISQUE MATLAB code (filter2 'same') and the two Python packages use; the NIQE MATLAB release
    uses imfilter(..., 'replicate'). c = 1 on the 0-255 scale.
    """
    k = gaussian_kernel1d(7, 7.0 / 6.0)
    mu = filter_same(x, k, border)
    sigma = np.sqrt(np.abs(filter_same(x * x, k, border) - mu * mu))
    return (x - mu) / (sigma + c)


def _rhat_norm(
    left_ms: ArrayOrFloat, right_ms: ArrayOrFloat, mean_abs: ArrayOrFloat, mean_sq: ArrayOrFloat
) -> ArrayOrFloat:
    """Bias-corrected moment ratio R-hat that the AGGD shape is matched to (Lasmar et al. 2009)."""
    gam = np.sqrt(left_ms) / np.sqrt(right_ms)
    rhat = mean_abs**2 / mean_sq
    return rhat * (gam**3 + 1) * (gam + 1) / (gam**2 + 1) ** 2


def aggd_fit_grid(
    v: np.ndarray, convention: Convention = "skvideo"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AGGD fit of each row of v (N, M) by grid search: (alpha, beta_left, beta_right).

    alpha is the grid value minimising (rho(a) - R-hat)^2, the first one when R-hat is undefined.
    Left = negative values. Right = values >= 0 for scikit-video (`aggd_features`), > 0 for MATLAB
    (estimateaggdparam.m); a side without values has beta 0 (scikit-video) or NaN (MATLAB's mean([])).
    """
    neg = v < 0
    pos = v > 0 if convention == "matlab" else ~neg
    empty = np.nan if convention == "matlab" else 0.0
    sq = v * v
    n_left, n_right = neg.sum(axis=1), pos.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        left_rms = np.where(n_left > 0, np.sqrt(np.sum(sq * neg, axis=1) / np.maximum(n_left, 1)), empty)
        right_rms = np.where(n_right > 0, np.sqrt(np.sum(sq * pos, axis=1) / np.maximum(n_right, 1)), empty)
        target = _rhat_norm(left_rms**2, right_rms**2, np.mean(np.abs(v), axis=1), np.mean(sq, axis=1))
    grid, rho = SHAPE_GRIDS[convention], RHO_GRIDS[convention]
    # rho is increasing on the grid: the squared-distance argmin is one of the two neighbours of the target.
    finite = np.isfinite(target)
    t = np.where(finite, target, 0.0)
    idx = np.clip(np.searchsorted(rho, t), 1, len(rho) - 1)
    idx = np.where(np.abs(rho[idx - 1] - t) <= np.abs(rho[idx] - t), idx - 1, idx)
    alpha = grid[np.where(finite, idx, 0)]
    scale = np.sqrt(special.gamma(1 / alpha) / special.gamma(3 / alpha))
    return alpha, left_rms * scale, right_rms * scale


def aggd_fit_root(v: np.ndarray) -> tuple[float, float, float, float]:
    """AGGD fit of the `brisque` package: (alpha, mean, sigma_l^2, sigma_r^2); NaN for a flat input.

    alpha solves rho(alpha) = R-hat exactly (the package's scipy root from 0.2; here bracketed);
    left = negative values, right = values >= 0.
    """
    v = v.ravel()
    left, right = v[v < 0], v[v >= 0]
    if left.size == 0 or not np.any(right):
        return (float("nan"),) * 4
    left_ms, right_ms = float(np.mean(left * left)), float(np.mean(right * right))
    target = float(_rhat_norm(left_ms, right_ms, np.mean(np.abs(v)), np.mean(v * v)))
    lo, hi = 0.05, 100.0
    target = min(max(target, float(_rho(lo))), float(_rho(hi)))
    alpha = optimize.brentq(lambda a: float(_rho(a)) - target, lo, hi, xtol=1e-12)
    const = np.sqrt(special.gamma(1 / alpha) / special.gamma(3 / alpha))
    ratio = special.gamma(2 / alpha) / special.gamma(1 / alpha)
    mean = (np.sqrt(right_ms) - np.sqrt(left_ms)) * const * ratio
    return float(alpha), float(mean), left_ms, right_ms
