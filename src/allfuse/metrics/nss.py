"""Natural-scene statistics shared by BRISQUE and NIQE: MSCN coefficients and AGGD fits.

References: Mittal, Moorthy & Bovik, "No-reference image quality assessment in the spatial domain"
(BRISQUE, TIP 2012); Mittal, Soundararajan & Bovik, "Making a completely blind image quality analyzer"
(NIQE, SPL 2013). The two fits below reproduce the feature code each shipped model was fitted with:
`aggd_fit_root` the `brisque` package, `aggd_fit_grid` scikit-video (itself after the MATLAB releases).
"""

import numpy as np
from scipy import optimize, special

from allfuse.metrics.filters import filter_same, gaussian_kernel1d

# Grid search for the AGGD shape as in scikit-video: np.arange(0.2, 10, 0.001) (MATLAB's 0.2:0.001:10
# without its last point), with rho(a) = Gamma(2/a)^2 / (Gamma(1/a) Gamma(3/a)) tabulated on it.
SHAPE_GRID = np.arange(0.2, 10, 0.001)


def _rho(alpha: np.ndarray | float) -> np.ndarray:
    """Generalised-Gaussian moment ratio Gamma(2/a)^2 / (Gamma(1/a) Gamma(3/a)), increasing in a."""
    a = np.asarray(alpha, dtype=np.float64)
    return np.exp(2 * special.gammaln(2 / a) - special.gammaln(1 / a) - special.gammaln(3 / a))


RHO_GRID = _rho(SHAPE_GRID)
ArrayOrFloat = np.ndarray | float


def mscn(x: np.ndarray, c: float) -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients (x - mu) / (sigma + c).

    mu and sigma^2 are local moments under a 7x7 Gaussian (sigma 7/6) with zero padding, as both the
    BRISQUE MATLAB code (filter2 'same') and the two Python packages do. c = 1 on the 0-255 scale.
    """
    k = gaussian_kernel1d(7, 7.0 / 6.0)
    mu = filter_same(x, k, "zero")
    sigma = np.sqrt(np.abs(filter_same(x * x, k, "zero") - mu * mu))
    return (x - mu) / (sigma + c)


def _rhat_norm(
    left_ms: ArrayOrFloat, right_ms: ArrayOrFloat, mean_abs: ArrayOrFloat, mean_sq: ArrayOrFloat
) -> ArrayOrFloat:
    """Bias-corrected moment ratio R-hat that the AGGD shape is matched to (Lasmar et al. 2009)."""
    gam = np.sqrt(left_ms) / np.sqrt(right_ms)
    rhat = mean_abs**2 / mean_sq
    return rhat * (gam**3 + 1) * (gam + 1) / (gam**2 + 1) ** 2


def aggd_fit_grid(v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """scikit-video `aggd_features` on each row of v (N, M): (alpha, beta_left, beta_right).

    Left = negative values, right = values >= 0; alpha is the grid value minimising
    (rho(a) - R-hat)^2, and the first grid value when R-hat is undefined (an all-zero row).
    """
    neg = v < 0
    sq = v * v
    n_left = neg.sum(axis=1)
    n_right = v.shape[1] - n_left
    with np.errstate(invalid="ignore", divide="ignore"):
        left_rms = np.where(n_left > 0, np.sqrt(np.sum(sq * neg, axis=1) / np.maximum(n_left, 1)), 0.0)
        right_rms = np.where(n_right > 0, np.sqrt(np.sum(sq * ~neg, axis=1) / np.maximum(n_right, 1)), 0.0)
        target = _rhat_norm(left_rms**2, right_rms**2, np.mean(np.abs(v), axis=1), np.mean(sq, axis=1))
    # RHO_GRID is increasing: the squared-distance argmin is one of the two neighbours of the target.
    finite = np.isfinite(target)
    t = np.where(finite, target, 0.0)
    idx = np.clip(np.searchsorted(RHO_GRID, t), 1, len(RHO_GRID) - 1)
    idx = np.where(np.abs(RHO_GRID[idx - 1] - t) <= np.abs(RHO_GRID[idx] - t), idx - 1, idx)
    alpha = SHAPE_GRID[np.where(finite, idx, 0)]
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
