"""Blind estimation of a blur kernel from one blurred image, and Wiener-Hunt deconvolution by it.

Beyond the papers. The deblurring stage (allfuse.deblur) fits a Gaussian to the widths of an image's edges;
a shake path or a polygonal aperture is no Gaussian, and deconvolving by the Gaussian of its measured width
restores little of it. Here the kernel itself is estimated, as blind deconvolution does it (Cho & Lee 2009,
"Fast motion deblurring"; Xu, Zheng & Jia 2013, "Unnatural L0 sparse representation for natural image
deblurring"; Pan, Hu, Su & Yang 2014, "Deblurring text images via L0-regularized intensity and gradient
prior"), alternating two least-squares problems, coarse to fine:

1. Latent image, kernel k fixed (Xu et al. Eq. 2, with the L0 norm of the gradient as prior):
       x = argmin ||k * x - y||^2 + lam ||grad x||_0,
   solved by half-quadratic splitting: with an auxiliary gradient field g and a weight beta growing from
   2 lam by a factor KAPPA to BETA_MAX, g = grad x where |grad x|^2 >= lam / beta and 0 elsewhere, then
   in closed form
       x = F^-1[ (conj(K) Y + beta (conj(Dx) Gx + conj(Dy) Gy)) / (|K|^2 + beta (|Dx|^2 + |Dy|^2)) ]
   (K, Dx, Dy: the transfer functions of k and of the forward differences). The L0 prior keeps the few
   strong edges a kernel can be read from and flattens the rest.
2. Kernel, x fixed, in the gradient domain (Cho & Lee Eq. 9, Tikhonov-regularized):
       k = argmin sum_d ||d x * k - d y||^2 + gamma ||k||^2,
       K = sum_d conj(F(d x)) F(d y) / (sum_d |F(d x)|^2 + gamma),
   then cut to its support (size x size), negative values and values below 1/20 of its peak set to 0, only
   its heaviest 8-connected piece kept, normalized to sum 1 and centred on its centroid (a kernel shifted
   by a pixel would shift the image: the estimate has no absolute position).
3. Coarse to fine: the kernel size and the image shrink by sqrt(2) per level down to a kernel of about
   MIN_SIZE px, each level starting from the previous level's kernel enlarged; lam decays by 1.1 per
   iteration (down to 1e-4) so finer edges join in as the kernel sharpens.

Gradients within 2 kernel sizes of the (reflect-padded) border are left out of step 2: the padding's mirror
symmetry would otherwise show in the kernel as a line. The estimate is read on the window of at most
`side` x `side` px of the image with the most gradient energy (the crop's FFTs are what it costs: about a
second at 384 px). Noise is not modelled: the deblurring stage runs after the denoising stage.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch

from allfuse.color import restore_luminance
from allfuse.types import Image

MIN_SIZE = 5  # px, the kernel size at the coarsest level
LAMBDA = 4e-3  # the L0 weight at each level's start (Pan et al. 2014's value for natural images)
LAMBDA_MIN = 1e-4
GAMMA = 2.0  # the kernel step's Tikhonov weight (on gradient spectra of [0, 1] images)
KAPPA = 2.0  # the splitting weight's growth per inner iteration
BETA_MAX = 1e3  # (Pan et al. go to 1e5: the same kernels here, a third more transforms)
ITERATIONS = 4  # alternations per level
CUT = 1 / 20  # kernel values below this fraction of the peak are set to 0


def edge_window(gray: np.ndarray, side: int) -> np.ndarray:
    """The side x side window (or the whole image, if smaller) with the largest sum of Sobel magnitude."""
    h, w = gray.shape
    sh, sw = min(side, h), min(side, w)
    if (sh, sw) == (h, w):
        return gray
    mag = cv2.magnitude(cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1))
    sums = cv2.integral(mag)  # (h + 1, w + 1)
    box = sums[sh:, sw:] - sums[:-sh, sw:] - sums[sh:, :-sw] + sums[:-sh, :-sw]
    top, left = np.unravel_index(int(np.argmax(box)), box.shape)
    return gray[top : top + sh, left : left + sw]


def otf(kernel: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """The real-FFT transfer function of a kernel on a periodic grid of `shape`, its centre at the origin."""
    kh, kw = kernel.shape
    grid = torch.zeros(shape, dtype=kernel.dtype)
    grid[:kh, :kw] = kernel
    grid = torch.roll(grid, (-(kh // 2), -(kw // 2)), dims=(0, 1))
    return torch.fft.rfft2(grid)


def gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Periodic forward differences along x and y (what otf([[1, -1]]) and otf([[1], [-1]]) apply)."""
    return torch.roll(x, -1, 1) - x, torch.roll(x, -1, 0) - x


def latent_step(
    y: torch.Tensor, k_otf: torch.Tensor, lam: float, dx: torch.Tensor, dy: torch.Tensor
) -> torch.Tensor:
    """Step 1 of the module doc: the L0-gradient latent image for a kernel, by half-quadratic splitting."""
    shape = tuple(y.shape)
    num_k = torch.conj(k_otf) * torch.fft.rfft2(y)
    den_k = k_otf.abs() ** 2
    den_d = dx.abs() ** 2 + dy.abs() ** 2
    x, beta = y, 2 * lam
    while beta < BETA_MAX:
        gx, gy = gradients(x)
        small = gx * gx + gy * gy < lam / beta
        gx, gy = gx.masked_fill(small, 0), gy.masked_fill(small, 0)
        # conj(Dx) F(gx) + conj(Dy) F(gy) = F(Dx^T gx + Dy^T gy): the differences' adjoints (backward
        # differences, negated) in the image domain, one transform instead of two
        div = torch.roll(gx, 1, 1) - gx + torch.roll(gy, 1, 0) - gy
        num = num_k + beta * torch.fft.rfft2(div)
        x = torch.fft.irfft2(num / (den_k + beta * den_d), s=shape)
        beta *= KAPPA
    return x


def kernel_step(x: torch.Tensor, y: torch.Tensor, size: int, mask: torch.Tensor) -> np.ndarray:
    """Step 2 of the module doc: the kernel that best maps the latent image's gradients onto the blurred
    image's, cut to size x size and cleaned (clean_kernel)."""
    num = torch.zeros((), dtype=torch.complex64)
    den = torch.zeros((), dtype=torch.float32)
    for gx, gy in zip(gradients(x), gradients(y), strict=True):
        fx, fy = torch.fft.rfft2(gx * mask), torch.fft.rfft2(gy * mask)
        num = num + torch.conj(fx) * fy
        den = den + fx.abs() ** 2
    k = torch.fft.irfft2(num / (den + GAMMA), s=tuple(x.shape))
    r = size // 2
    k = torch.roll(k, (r, r), dims=(0, 1))[:size, :size]
    return clean_kernel(k.numpy().astype(np.float64))


def clean_kernel(k: np.ndarray) -> np.ndarray:
    """A kernel estimate made a PSF: values below CUT of its peak (and negative ones) zeroed, only its
    heaviest 8-connected piece kept, normalized, centred on its centroid; a delta when nothing is left."""
    k = np.where(k >= CUT * max(float(k.max()), 0.0), k, 0.0) if k.max() > 0 else np.zeros_like(k)
    if not k.any():
        k[k.shape[0] // 2, k.shape[1] // 2] = 1.0
        return k
    count, labels = cv2.connectedComponents((k > 0).astype(np.uint8), connectivity=8)
    if count > 2:
        mass = np.bincount(labels.ravel(), weights=k.ravel())
        mass[0] = 0.0
        k = np.where(labels == int(np.argmax(mass)), k, 0.0)
    k = k / k.sum()
    rows, cols = np.indices(k.shape)
    c = k.shape[0] // 2
    shift = np.float32([[1, 0, c - float((k * cols).sum())], [0, 1, c - float((k * rows).sum())]])
    k = cv2.warpAffine(k.astype(np.float32), shift, k.shape[::-1], flags=cv2.INTER_LINEAR).astype(np.float64)
    k = np.clip(k, 0.0, None)
    return k / k.sum()


def estimate_kernel(gray: np.ndarray, size: int, side: int = 384) -> np.ndarray:
    """The blur kernel (size x size, size odd, sum 1, float64) of a blurred gray image in [0, 1], read on
    its most textured side x side window (module doc)."""
    if size < 3 or size % 2 == 0:
        raise ValueError(f"a blur kernel's size must be odd and at least 3, got {size}")
    window = edge_window(np.asarray(gray, dtype=np.float32), side)
    levels = max(1, math.ceil(math.log(size / MIN_SIZE) / math.log(math.sqrt(2))) + 1)
    kernel: np.ndarray | None = None
    for level in range(levels - 1, -1, -1):
        scale = math.sqrt(0.5) ** level
        ks = max(3, round(size * scale) | 1)
        y = (
            window
            if level == 0
            else cv2.resize(window, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        )
        pad = min(ks, y.shape[0] - 1, y.shape[1] - 1)
        y = cv2.copyMakeBorder(y, pad, pad, pad, pad, cv2.BORDER_REFLECT)
        if kernel is None:  # a small round blob to start from
            kernel = np.zeros((ks, ks))
            kernel[ks // 2 - 1 : ks // 2 + 2, ks // 2 - 1 : ks // 2 + 2] = [[1, 2, 1], [2, 4, 2], [1, 2, 1]]
        else:
            kernel = np.clip(cv2.resize(kernel, (ks, ks), interpolation=cv2.INTER_LINEAR), 0.0, None)
        kernel = kernel / kernel.sum()
        t = torch.from_numpy(y.astype(np.float32))
        mask = torch.zeros_like(t)
        mask[2 * pad : -2 * pad or None, 2 * pad : -2 * pad or None] = 1.0
        shape = tuple(t.shape)
        dx = otf(torch.tensor([[1.0, -1.0]]), shape)
        dy = otf(torch.tensor([[1.0], [-1.0]]), shape)
        lam = LAMBDA
        for _ in range(ITERATIONS):
            x = latent_step(t, otf(torch.from_numpy(kernel.astype(np.float32)), shape), lam, dx, dy)
            kernel = kernel_step(x, t, ks, mask)
            lam = max(lam / 1.1, LAMBDA_MIN)
    assert kernel is not None
    return kernel


def wiener_kernel(plane: np.ndarray, kernel: np.ndarray, balance: float) -> np.ndarray:
    """Wiener-Hunt deconvolution of one (H, W) plane in [0, 1] by a sampled kernel with a Laplacian
    regularizer, X = conj(K) Y / (|K|^2 + balance |L|^2) (the filter of allfuse.deblur's step 3), reflect-
    padded by twice the kernel's size against wrap-around, clipped to [0, 1], float32."""
    h, w = plane.shape
    pad = min(2 * kernel.shape[0], h - 1, w - 1)
    y = cv2.copyMakeBorder(np.asarray(plane, dtype=np.float32), pad, pad, pad, pad, cv2.BORDER_REFLECT)
    shape = y.shape
    k_otf = otf(torch.from_numpy(np.asarray(kernel, dtype=np.float64)), shape)
    lap = torch.zeros(shape, dtype=torch.float64)
    lap[0, 0], lap[0, 1], lap[1, 0], lap[0, -1], lap[-1, 0] = 4.0, -1.0, -1.0, -1.0, -1.0
    l_otf = torch.fft.rfft2(lap)
    filt = torch.conj(k_otf) / (k_otf.abs() ** 2 + balance * l_otf.abs() ** 2)
    x = torch.fft.irfft2(torch.fft.rfft2(torch.from_numpy(y.astype(np.float64))) * filt, s=shape)
    return x[pad : pad + h, pad : pad + w].clamp(0, 1).numpy().astype(np.float32)


def deblur_by_kernel(image: Image, kernel: np.ndarray, balance: float) -> Image:
    """`wiener_kernel` of a gray image; of a colour image's luminance only, the change added to every
    channel (allfuse.color.restore_luminance), clipped to [0, 1]."""
    return restore_luminance(image, lambda plane: wiener_kernel(plane, kernel, balance))
