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
`side` x `side` px of the image with the most gradient energy, reflect-padded to sizes whose FFT is fast
(fast_pad; the crop's FFTs are most of what it costs: about 0.35 s for a 13 px kernel at 384 px on two
cores of an AMD EPYC, `bench/latency.py`'s deblurring line). Noise is not modelled: the deblurring stage
runs after the denoising stage.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
from scipy.fft import next_fast_len

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


def fast_sides(h: int, w: int, pad: int) -> tuple[int, int]:
    """The padded sides of an h x w plane reflect-padded by `pad` px on each side, grown (by more reflection
    below and to the right) to sizes whose FFT is fast (factors 2, 3, 5, 7, 11): a side with a large prime
    factor transforms many times slower (410 x 410 px, 2 x 5 x 41, took 15 times as long as 432 x 432 in
    float32 on the bench machine), and no longer than a reflection reaches (2 n + pad - 1)."""
    return tuple(min(next_fast_len(n + 2 * pad), 2 * n + pad - 1) for n in (h, w))


def fast_pad(plane: np.ndarray, pad: int) -> np.ndarray:
    """`plane` reflect-padded (cv2.BORDER_REFLECT) to fast_sides: `pad` px above and to the left."""
    h, w = plane.shape
    ph, pw = fast_sides(h, w, pad)
    return cv2.copyMakeBorder(plane, pad, ph - h - pad, pad, pw - w - pad, cv2.BORDER_REFLECT)


def frequencies(shape: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The real-FFT grid's frequencies (cycles per px) of a plane of `shape`: fy as a column, fx as a row."""
    return torch.fft.fftfreq(shape[0])[:, None], torch.fft.rfftfreq(shape[1])[None, :]


def laplacian_response(fy: torch.Tensor, fx: torch.Tensor) -> torch.Tensor:
    """|L| of the 4-neighbour Laplacian at these frequencies (real, even): the Wiener filters' regularizer."""
    return (2 - 2 * torch.cos(2 * math.pi * fx)) + (2 - 2 * torch.cos(2 * math.pi * fy))


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
    """Step 1 of the module doc: the L0-gradient latent image for a kernel, by half-quadratic splitting.
    The differences are taken by slices into buffers kept across iterations (torch.roll and masked_fill
    allocate: a third of the time at 420 px)."""
    shape = tuple(y.shape)
    num_k = torch.conj(k_otf) * torch.fft.rfft2(y)
    den_k = k_otf.abs() ** 2
    den_d = dx.abs() ** 2 + dy.abs() ** 2
    x, beta = y, 2 * lam
    gx, gy, div = torch.empty_like(y), torch.empty_like(y), torch.empty_like(y)
    while beta < BETA_MAX:
        # periodic forward differences (gradients(x))
        torch.sub(x[:, 1:], x[:, :-1], out=gx[:, :-1])
        torch.sub(x[:, :1], x[:, -1:], out=gx[:, -1:])
        torch.sub(x[1:], x[:-1], out=gy[:-1])
        torch.sub(x[:1], x[-1:], out=gy[-1:])
        keep = gx * gx + gy * gy >= lam / beta
        gx.mul_(keep)
        gy.mul_(keep)
        # conj(Dx) F(gx) + conj(Dy) F(gy) = F(Dx^T gx + Dy^T gy): the differences' adjoints (backward
        # differences, negated) in the image domain, one transform instead of two:
        # div = roll(gx, 1, 1) - gx + roll(gy, 1, 0) - gy
        torch.sub(gx[:, :-1], gx[:, 1:], out=div[:, 1:])
        torch.sub(gx[:, -1:], gx[:, :1], out=div[:, :1])
        div[1:] += gy[:-1]
        div[:1] += gy[-1:]
        div -= gy
        num = torch.fft.rfft2(div).mul_(beta).add_(num_k)
        x = torch.fft.irfft2(num.div_(den_k + beta * den_d), s=shape)
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


def long_axis(kernel: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float, float]:
    """A kernel's weight along its long axis: its centroid (x, y), the axis's unit vector (x, y) pointing
    toward its light end (the side its weight trails off to), its stds along and across the axis (px),
    and |skewness| along it."""
    k = np.asarray(kernel, dtype=np.float64)
    k = k / k.sum()
    rows, cols = np.indices(k.shape).astype(np.float64)
    centre = np.array([(k * cols).sum(), (k * rows).sum()])
    dx, dy = cols - centre[0], rows - centre[1]
    cov = np.array([[(k * dx * dx).sum(), (k * dx * dy).sum()], [(k * dx * dy).sum(), (k * dy * dy).sum()]])
    var, axes = np.linalg.eigh(cov)
    if var[1] <= 0:
        return centre, np.array([1.0, 0.0]), 0.0, 0.0, 0.0
    axis = axes[:, 1]
    skew = float((k * (axis[0] * dx + axis[1] * dy) ** 3).sum()) / float(var[1]) ** 1.5
    axis = axis if skew >= 0 else -axis  # a positive skew: the tail, the light end, lies along +axis
    return centre, axis, float(np.sqrt(var[1])), float(np.sqrt(max(float(var[0]), 0.0))), abs(skew)


def streak_shape(kernel: np.ndarray) -> tuple[float, float]:
    """(|skewness| of a kernel's weight along its long axis, the ratio of its stds along and across that
    axis): a one-sided streak, heavy at one end (a motion that dwelt at its start, ImageNet-C's motion
    blur), is long and skewed; a Gaussian, a disk or a shake path of even speed is symmetric or compact."""
    _, _, along, across, skew = long_axis(kernel)
    if along <= 0:
        return 0.0, 1.0
    return skew, along / max(across, 1e-6)


def centred_at(kernel: np.ndarray, x: float, y: float) -> np.ndarray:
    """A kernel moved (bilinearly) so that its point (x, y) is its centre, on a canvas grown (odd, square) to
    hold the move; normalized."""
    c = kernel.shape[0] // 2
    grow = math.ceil(max(abs(c - x), abs(c - y)))
    k = np.pad(np.asarray(kernel, dtype=np.float32), grow)
    moved = cv2.warpAffine(
        k, np.float32([[1, 0, c - x], [0, 1, c - y]]), k.shape[::-1], flags=cv2.INTER_LINEAR
    )
    return np.clip(moved, 0.0, None).astype(np.float64) / float(moved.sum())


def at_peak(kernel: np.ndarray) -> np.ndarray:
    """A kernel moved so that its peak (the maximum of the kernel smoothed by a 1 px Gaussian) is its centre
    (centred_at)."""
    smooth = cv2.GaussianBlur(np.asarray(kernel, dtype=np.float32), (0, 0), 1.0)
    py, px = np.unravel_index(int(np.argmax(smooth)), smooth.shape)
    return centred_at(kernel, float(px), float(py))


def at_start(kernel: np.ndarray, reach: float) -> np.ndarray:
    """A one-sided streak moved so that its start is its centre (centred_at): the point `reach` stds of its
    weight along its long axis before its centroid, on its heavy side. A half-Gaussian streak (ImageNet-C's
    motion blur: weights exp(-t^2 / 2 s^2) from t = 0) has its centroid 0.80 s past its start and a std of
    0.60 s along it, so its start lies 1.32 stds before the centroid; a blind estimate is smoother than the
    truth (allfuse.deblur, step 9, measures the reach that restores best)."""
    centre, axis, along, _, _ = long_axis(kernel)
    x, y = centre - reach * along * axis
    return centred_at(kernel, float(x), float(y))


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
        h, w = y.shape
        pad = min(ks, h - 1, w - 1)
        y = fast_pad(y, pad)
        if kernel is None:  # a small round blob to start from
            kernel = np.zeros((ks, ks))
            kernel[ks // 2 - 1 : ks // 2 + 2, ks // 2 - 1 : ks // 2 + 2] = [[1, 2, 1], [2, 4, 2], [1, 2, 1]]
        else:
            kernel = np.clip(cv2.resize(kernel, (ks, ks), interpolation=cv2.INTER_LINEAR), 0.0, None)
        kernel = kernel / kernel.sum()
        t = torch.from_numpy(y.astype(np.float32))
        mask = torch.zeros_like(t)
        # the image's own pixels (rows and columns pad to pad + h, pad + w of the padded plane), less `pad` px
        # along their border (module doc)
        mask[2 * pad : max(h, 2 * pad), 2 * pad : max(w, 2 * pad)] = 1.0
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


def gaussian_distance(kernel: np.ndarray) -> float:
    """How far a kernel is from a Gaussian: ||k - g|| / ||g|| (L2 over its samples), g the sampled Gaussian
    of k's own centroid and second moments (normalized to sum 1). On the validation bench's blurs the
    estimates measure 0.09 to 0.16 for a mild Gaussian blur, 0.17 to 0.57 for a polygonal aperture and 0.2 to
    1.1 for a shake path (`bench/results/deblur_headroom.md`; used by `allfuse.deblur`, step 8)."""
    k = np.asarray(kernel, dtype=np.float64)
    k = k / k.sum()
    rows, cols = np.indices(k.shape, dtype=np.float64)
    my, mx = float((k * rows).sum()), float((k * cols).sum())
    dy, dx = rows - my, cols - mx
    cov = np.array([[(k * dx * dx).sum(), (k * dx * dy).sum()], [(k * dx * dy).sum(), (k * dy * dy).sum()]])
    inv = np.linalg.inv(cov + 1e-3 * np.eye(2))  # a delta's zero covariance made invertible
    g = np.exp(-0.5 * (inv[0, 0] * dx * dx + 2 * inv[0, 1] * dx * dy + inv[1, 1] * dy * dy))
    g /= g.sum()
    return float(np.linalg.norm(k - g) / np.linalg.norm(g))


def wiener_kernel(plane: np.ndarray, kernel: np.ndarray, balance: float) -> np.ndarray:
    """Wiener-Hunt deconvolution of one (H, W) plane in [0, 1] by a sampled kernel with a Laplacian
    regularizer, X = conj(K) Y / (|K|^2 + balance |L|^2) (the filter of allfuse.deblur's step 3), reflect-
    padded by twice the kernel's size against wrap-around (to fast FFT sizes: fast_pad), clipped to [0, 1],
    float32."""
    h, w = plane.shape
    pad = min(2 * kernel.shape[0], h - 1, w - 1)
    y = fast_pad(np.asarray(plane, dtype=np.float32), pad)
    shape = y.shape
    k_otf = otf(torch.from_numpy(np.asarray(kernel, dtype=np.float32)), shape)
    lap = laplacian_response(*frequencies(shape))
    filt = torch.conj(k_otf) / (k_otf.abs() ** 2 + balance * lap * lap)
    x = torch.fft.irfft2(torch.fft.rfft2(torch.from_numpy(y)) * filt, s=shape)
    return x[pad : pad + h, pad : pad + w].clamp(0, 1).numpy()


def deblur_by_kernel(image: Image, kernel: np.ndarray, balance: float) -> Image:
    """`wiener_kernel` of a gray image; of a colour image's luminance only, the change added to every
    channel (allfuse.color.restore_luminance), clipped to [0, 1]."""
    return restore_luminance(image, lambda plane: wiener_kernel(plane, kernel, balance))
