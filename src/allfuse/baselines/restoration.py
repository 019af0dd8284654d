"""Classical single-image restoration: denoise (NLM), dehaze (DCP), deblur (RL, Wiener), sharpen (upsample).

Every function maps one image to one image of the same shape (gray stays gray, RGB stays RGB), float32 in
[0, 1], and is blind: it estimates what it needs (noise level, airlight) or assumes it (blur PSF, scale).
"""

import cv2
import numpy as np
from skimage.restoration import denoise_nl_means, estimate_sigma, richardson_lucy, wiener

from allfuse.baselines.guided import guided_filter
from allfuse.color import to_gray
from allfuse.inputs import check_image
from allfuse.types import Image

# Deblurring assumes a Gaussian PSF of this sigma (px): the mild defocus of the benchmark degradations.
BLUR_SIGMA = 1.5


NLM_PATCH, NLM_DISTANCE = 5, 6  # px: non-local means' patch side and search distance
NLM_REACH = NLM_DISTANCE + NLM_PATCH // 2  # px: how far from a pixel the pixels that set it lie
# h = 0.8 sigma with sigma passed in: scikit-image's advice for fast_mode (it subtracts 2 sigma^2)
NLM_STRENGTH = 0.8


def noise_sigma(image: np.ndarray) -> float:
    """Noise std of an image (gray or RGB, channels averaged): a wavelet MAD estimate (Donoho 1994)."""
    x = check_image(image)
    return float(estimate_sigma(x, channel_axis=-1 if x.ndim == 3 else None, average_sigmas=True))


def denoise_nlm(image: np.ndarray, sigma: float | None = None, strength: float = NLM_STRENGTH) -> Image:
    """Non-local means (Buades et al. 2005) for a noise std `sigma`, by default noise_sigma(image), with the
    filter parameter h = strength * sigma. A pixel depends on the pixels within NLM_REACH of it only, so
    crops of an image with that much margin, given the whole image's sigma, give the whole image's result
    (allfuse.denoise tiles large images so)."""
    x = check_image(image)
    axis = -1 if x.ndim == 3 else None
    sigma = noise_sigma(x) if sigma is None else sigma
    if not sigma > 0:
        return x
    y = denoise_nl_means(
        x,
        h=strength * sigma,
        sigma=sigma,
        fast_mode=True,
        patch_size=NLM_PATCH,
        patch_distance=NLM_DISTANCE,
        channel_axis=axis,
    )
    return np.clip(y, 0.0, 1.0).astype(np.float32)


def dark_channel(x: np.ndarray, patch: int = 15) -> np.ndarray:
    """He et al. 2009 Eq. (5): minimum over colour channels and a patch x patch window; (H, W)."""
    m = x.min(axis=-1) if x.ndim == 3 else x
    return cv2.erode(m.astype(np.float32), np.ones((patch, patch), np.uint8), borderType=cv2.BORDER_REFLECT)


def airlight(x: np.ndarray, dark: np.ndarray, top: float = 0.001) -> np.ndarray:
    """Atmospheric light: mean colour of the 0.1 % pixels with the brightest dark channel (C,) or ()."""
    k = max(1, round(top * dark.size))
    idx = np.argpartition(dark.ravel(), -k)[-k:]
    pixels = x.reshape(dark.size, -1)[idx]  # (k, C)
    return np.maximum(pixels.mean(axis=0), 1e-3).reshape(x.shape[2:])


def dehaze_dcp(image: np.ndarray, omega: float = 0.95, t0: float = 0.1) -> Image:
    """Dark channel prior dehazing (He, Sun & Tang, CVPR 2009) with guided-filter transmission."""
    x = check_image(image)
    return scene_radiance(x, *dcp_transmission(x, omega, t0))


def dcp_transmission(x: np.ndarray, omega: float = 0.95, t0: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """He et al.'s airlight A ((C,) or ()) and transmission t ((H, W), at least t0) of an image."""
    a = airlight(x, dark_channel(x))
    # He et al. Eq. (12): t = 1 - omega * dark(I / A); omega < 1 keeps a trace of haze for depth cues.
    t = 1.0 - omega * dark_channel(x / a)
    # Soft matting replaced by the guided filter (He et al. 2010, Sect. 4.3: r = 60 at 600 px, eps 1e-4).
    r = max(8, min(x.shape[:2]) // 8)
    return a, np.clip(guided_filter(to_gray(x), t, r, 1e-4), t0, 1.0)


def scene_radiance(x: np.ndarray, a: np.ndarray, t: np.ndarray) -> Image:
    """He et al. Eq. (22): J = (I - A) / t + A, t (H, W) already at least t0; clipped to [0, 1]."""
    t = t[..., None] if x.ndim == 3 else t
    return np.clip((x - a) / t + a, 0.0, 1.0).astype(np.float32)


def gaussian_psf(sigma: float = BLUR_SIGMA) -> np.ndarray:
    """Normalized 2-D Gaussian kernel, 2 * ceil(3 sigma) + 1 taps a side."""
    g = cv2.getGaussianKernel(2 * int(np.ceil(3 * sigma)) + 1, sigma, cv2.CV_64F)
    return g @ g.T


def _deconvolve(x: np.ndarray, fn, pad: int) -> Image:
    """Apply a per-plane deconvolution fn on a reflect-padded copy (no dark or wrapped borders)."""
    planes = x[..., None] if x.ndim == 2 else x
    out = []
    for c in range(planes.shape[2]):
        p = np.pad(planes[..., c].astype(np.float64), pad, mode="reflect")
        out.append(fn(p)[pad:-pad, pad:-pad])
    y = np.stack(out, axis=-1).reshape(x.shape)
    return np.clip(y, 0.0, 1.0).astype(np.float32)


def deblur_rl(image: np.ndarray, sigma: float = BLUR_SIGMA, num_iter: int = 15) -> Image:
    """Richardson-Lucy deconvolution (Richardson 1972; Lucy 1974) with an assumed Gaussian PSF."""
    x = check_image(image)
    psf = gaussian_psf(sigma)
    return _deconvolve(x, lambda p: richardson_lucy(p, psf, num_iter=num_iter, clip=False), psf.shape[0])


def deblur_wiener(image: np.ndarray, sigma: float = BLUR_SIGMA, balance: float = 0.02) -> Image:
    """Wiener-Hunt deconvolution (Laplacian regularizer, fixed balance) with an assumed Gaussian PSF."""
    x = check_image(image)
    psf = gaussian_psf(sigma)
    return _deconvolve(x, lambda p: wiener(p, psf, balance, clip=False), 2 * psf.shape[0])


def upsample_sharpen(image: np.ndarray, scale: int = 2) -> Image:
    """Stand-in for super-resolution of an image already resampled to size: a mild unsharp mask.

    The input is assumed to be a x`scale` down-then-up resampled image at its final size; the detail lost
    below the low resolution's Nyquist cannot come back, so this only re-steepens edges (radius scale/2,
    amount 0.5). On anti-aliased x2 down-up natural images it lowers the MSE to the original by ~4-20 %;
    on aliased (point-sampled) ones it raises it.
    """
    x = check_image(image)
    # Unsharp mask by hand: skimage 0.26's unsharp_mask returns NaNs for float32 RGB (channel_axis=-1).
    soft = cv2.GaussianBlur(x, (0, 0), scale / 2, borderType=cv2.BORDER_REFLECT).reshape(x.shape)
    return np.clip(x + 0.5 * (x - soft), 0.0, 1.0).astype(np.float32)
