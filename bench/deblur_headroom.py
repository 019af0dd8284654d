"""How much of the validation bench's blur the deblurring stage undoes, and how much a known PSF would.

    OMP_NUM_THREADS=1 python bench/deblur_headroom.py [--model allfuse-reg] [--tasks vif,mef,mff]
        [--pairs 6] [--max-side 512] [--data ../shared/data] [--out bench/results/deblur_headroom.md]

The validation pairs (splits.json "val"), each blurred by one of the bench's blur families at two
strengths (bench/degrade.py: elliptic Gaussian, polygonal defocus, curved camera shake). For each pair's
FIRST input, the luminance restored by each method is scored against the clean source's: PSNR (dB) and SF
as a share of the clean source's SF (sharpness recovered; above 1 is ringing or noise). No fusion: this
measures the restoration stage alone, before the latent path.

Methods:
* input   — the blurred input as it is.
* shipped — the model folder's deblurring stage (allfuse.deblur: Gaussian PSF fitted to the edge widths,
            Wiener-Hunt deconvolution with a Laplacian regularizer).
* tv      — the same Gaussian PSF, deconvolved with a total-variation prior instead (half-quadratic splitting,
            Wang, Yang, Yin & Zhang 2008; the sparse-gradient deconvolution of Krishnan & Fergus 2009 at
            exponent 1): min_x (lam / 2) ||k * x - y||^2 + ||grad x||_1.
* blind   — a blind kernel estimate instead of the Gaussian (coarse to fine; at each scale the latent image
            by the L0 gradient prior of Xu, Zheng & Jia 2013, "Unnatural L0 sparse representation for
            natural image deblurring", the kernel by least squares on gradients as in Cho & Lee 2009, "Fast
            motion deblurring"), then Wiener-Hunt deconvolution with it.
* oracle  — the TRUE kernel the bench blurred with, Wiener-Hunt deconvolution at the stage's balance: what
            knowing the PSF would give (not available to any method).

The gap between `shipped` and `oracle` is the headroom of a better PSF; the gap between `oracle` and the
clean source what any deconvolution at that balance leaves.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import degrade
import numpy as np
from cases import SHARED, validation_pairs
from machine import command_line, emit, machine_line
from scipy import fft as sfft

from allfuse.color import to_gray
from allfuse.deblur import deblur_inputs, input_psfs, psf_covariance
from allfuse.model_folder import load_deblur, resolve_model_folder

FAMILIES = ("gauss_blur", "defocus", "motion")
METHODS = ("input", "shipped", "tv", "blind", "oracle")
LAPLACIAN = np.array([[0, -1, 0], [-1, 4, -1], [0, -1, 0]], np.float64)
DX, DY = np.array([[0, -1, 1]], np.float64), np.array([[0], [-1], [1]], np.float64)
BLIND_SIZE = 31  # px, the blind kernel's support (the bench's strong shake spans up to about 27 px)


def otf(kernel: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The real FFT of a kernel zero-padded to `shape` with its centre moved to the origin."""
    kh, kw = kernel.shape
    p = np.zeros(shape)
    p[:kh, :kw] = kernel
    return sfft.rfft2(np.roll(p, (-(kh // 2), -(kw // 2)), (0, 1)))


def padded(gray: np.ndarray, kernel: np.ndarray) -> tuple[np.ndarray, int]:
    """The image reflect-padded by the kernel's size + 8 px (against wrap-around), and that margin."""
    p = kernel.shape[0] + 8
    return np.pad(gray.astype(np.float64), p, mode="reflect"), p


def wiener(gray: np.ndarray, kernel: np.ndarray, balance: float) -> np.ndarray:
    """Wiener-Hunt deconvolution by a sampled kernel: conj(K) Y / (|K|^2 + balance |L|^2)."""
    g, p = padded(gray, kernel)
    k, lap = otf(kernel, g.shape), otf(LAPLACIAN, g.shape)
    x = sfft.irfft2(np.conj(k) * sfft.rfft2(g) / (np.abs(k) ** 2 + balance * np.abs(lap) ** 2), s=g.shape)
    return np.clip(x[p:-p, p:-p], 0.0, 1.0)


def splitting_solve(data: tuple, dx: np.ndarray, dy: np.ndarray, wx: np.ndarray, wy: np.ndarray, beta: float):
    """The x step of half-quadratic splitting, in closed form: (lam K* Y + beta D* w) / (lam |K|^2 +
    beta |D|^2), with `data` = (lam K* Y, lam |K|^2, |D|^2) and w = (wx, wy) the split gradients."""
    num, den_k, den_d = data
    return (num + beta * (np.conj(dx) * sfft.rfft2(wx) + np.conj(dy) * sfft.rfft2(wy))) / (
        den_k + beta * den_d
    )


def tv_deconv(gray: np.ndarray, kernel: np.ndarray, lam: float = 2000.0) -> np.ndarray:
    """TV deconvolution by half-quadratic splitting: w = shrink(grad x, 1 / beta), then x in closed form,
    (lam K* Y + beta D* w) / (lam |K|^2 + beta |D|^2), beta from 1 to 256 by 2 sqrt(2) (Krishnan & Fergus)."""
    g, p = padded(gray, kernel)
    k, dx, dy = otf(kernel, g.shape), otf(DX, g.shape), otf(DY, g.shape)
    data = (lam * np.conj(k) * sfft.rfft2(g), lam * np.abs(k) ** 2, np.abs(dx) ** 2 + np.abs(dy) ** 2)
    fx, beta = data[0] / (data[1] + 0.02 * lam * data[2]), 1.0
    while beta <= 256.0:
        gx, gy = sfft.irfft2(dx * fx, s=g.shape), sfft.irfft2(dy * fx, s=g.shape)
        wx = np.sign(gx) * np.maximum(np.abs(gx) - 1.0 / beta, 0.0)
        wy = np.sign(gy) * np.maximum(np.abs(gy) - 1.0 / beta, 0.0)
        fx = splitting_solve(data, dx, dy, wx, wy, beta)
        beta *= 2.0 * np.sqrt(2.0)
    return np.clip(sfft.irfft2(fx, s=g.shape)[p:-p, p:-p], 0.0, 1.0)


def gaussian_kernel(cov: np.ndarray) -> np.ndarray:
    """A sampled Gaussian PSF of covariance `cov` (x then y, px^2), radius 4 stds + 1."""
    r = int(np.ceil(4.0 * np.sqrt(max(float(np.linalg.eigvalsh(cov).max()), 1e-6)))) + 1
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1].astype(np.float64)
    inv = np.linalg.inv(cov + 1e-6 * np.eye(2))
    k = np.exp(-0.5 * (inv[0, 0] * xx * xx + 2 * inv[0, 1] * xx * yy + inv[1, 1] * yy * yy))
    return k / k.sum()


def clean_kernel(k: np.ndarray, floor: float = 0.05) -> np.ndarray:
    """A kernel estimate made a PSF: negatives and values below `floor` of its peak zeroed, components
    holding less than 10 % of the mass dropped, normalized, shifted so its centroid is the centre (a shifted
    kernel would shift the deconvolved image)."""
    k = np.maximum(k, 0.0)
    if k.max() <= 0:
        k = np.zeros_like(k)
        k[k.shape[0] // 2, k.shape[1] // 2] = 1.0
        return k
    k[k < floor * k.max()] = 0.0
    n, labels = cv2.connectedComponents((k > 0).astype(np.uint8), connectivity=8)
    mass = np.array([k[labels == i].sum() for i in range(1, n)])
    k = k * np.isin(labels, 1 + np.flatnonzero(mass >= 0.1 * mass.sum()))
    k /= k.sum()
    yy, xx = np.mgrid[: k.shape[0], : k.shape[1]]
    c = k.shape[0] // 2
    dy, dx = round(float((k * yy).sum()) - c), round(float((k * xx).sum()) - c)
    return np.roll(k, (-dy, -dx), (0, 1))


def l0_latent(blurred: np.ndarray, kernel: np.ndarray, lam: float, beta_max: float = 1e4) -> np.ndarray:
    """min_x ||k * x - y||^2 + lam ||grad x||_0 by half-quadratic splitting (Xu, Zheng & Jia 2013): gradients
    below sqrt(lam / beta) set to zero, then x in closed form, beta from 2 lam doubling to beta_max."""
    shape = blurred.shape
    k, dx, dy = otf(kernel, shape), otf(DX, shape), otf(DY, shape)
    fy = sfft.rfft2(blurred)
    data = (np.conj(k) * fy, np.abs(k) ** 2, np.abs(dx) ** 2 + np.abs(dy) ** 2)
    fx, beta = fy, 2.0 * lam
    while beta < beta_max:
        gx, gy = sfft.irfft2(dx * fx, s=shape), sfft.irfft2(dy * fx, s=shape)
        small = gx * gx + gy * gy < lam / beta
        gx[small], gy[small] = 0.0, 0.0
        fx = splitting_solve(data, dx, dy, gx, gy, beta)
        beta *= 2.0
    return sfft.irfft2(fx, s=shape)


def kernel_from_latent(latent: np.ndarray, blurred: np.ndarray, size: int, gamma: float = 0.01) -> np.ndarray:
    """The kernel that best maps the latent image's gradients to the blurred image's (least squares with a
    ridge of `gamma` times the mean gradient power; Cho & Lee 2009), cropped to size x size, made a PSF."""
    shape = blurred.shape
    dx, dy = otf(DX, shape), otf(DY, shape)
    fl, fb = sfft.rfft2(latent), sfft.rfft2(blurred)
    lx, ly = dx * fl, dy * fl
    power = np.abs(lx) ** 2 + np.abs(ly) ** 2
    num = np.conj(lx) * dx * fb + np.conj(ly) * dy * fb
    k = np.fft.fftshift(sfft.irfft2(num / (power + gamma * power.mean()), s=shape))
    cy, cx, h = shape[0] // 2, shape[1] // 2, size // 2
    return clean_kernel(k[cy - h : cy + h + 1, cx - h : cx + h + 1])


def blind_kernel(gray: np.ndarray, size: int = BLIND_SIZE, iters: int = 5, lam: float = 2e-3) -> np.ndarray:
    """Coarse-to-fine blind kernel estimate: scales 1/sqrt(2) apart down to a 5 px kernel; at each, `iters`
    rounds of latent (l0_latent, lam shrinking by 1.1 to at least 5e-4) and kernel (kernel_from_latent), the
    kernel upsampled to the next scale."""
    scales, s, k_size = [], 1.0, size
    while k_size >= 5:
        scales.append((s, k_size))
        s /= np.sqrt(2.0)
        k_size = round(size * s) | 1
    kernel = None
    for s, k_size in reversed(scales):
        h, w = gray.shape
        small = (
            cv2.resize(gray, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA) if s < 1 else gray
        )
        blurred = np.pad(small.astype(np.float64), k_size, mode="reflect")
        if kernel is None:
            kernel = np.zeros((k_size, k_size))
            kernel[k_size // 2, k_size // 2] = 1.0
        else:
            kernel = clean_kernel(cv2.resize(kernel, (k_size, k_size), interpolation=cv2.INTER_LINEAR), 0.0)
        weight = lam
        for _ in range(iters):
            kernel = kernel_from_latent(l0_latent(blurred, kernel, weight), blurred, k_size)
            weight = max(weight / 1.1, 5e-4)
    return kernel


def spatial_frequency(x: np.ndarray) -> float:
    """SF of a [0, 1] image in 8-bit units: sqrt of the mean squared row and column differences."""
    return 255.0 * float(np.sqrt(np.mean(np.diff(x, axis=1) ** 2) + np.mean(np.diff(x, axis=0) ** 2)))


def restore(method: str, images: list[np.ndarray], task: str, cfg, true_kernel: np.ndarray) -> np.ndarray:
    """The first input's luminance restored by `method` (module doc)."""
    gray = to_gray(images[0]).astype(np.float64)
    if method == "input":
        return gray
    if method == "shipped":
        return to_gray(deblur_inputs(images, cfg, task)[0][0]).astype(np.float64)
    if method == "oracle":
        return wiener(gray, true_kernel / true_kernel.sum(), cfg.balance)
    if method == "blind":
        return wiener(gray, blind_kernel(gray), cfg.balance)
    psf = input_psfs(images, cfg, task)[0]
    if np.ndim(psf) == 0 and not psf:  # the stage keeps the input: so does its prior's variant
        return gray
    return tv_deconv(gray, gaussian_kernel(psf_covariance(psf)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="allfuse-reg", help="the model folder whose deblur.json is `shipped`")
    ap.add_argument("--tasks", default="vif,mef,mff")
    ap.add_argument("--pairs", type=int, default=6, help="validation pairs per task (0: all)")
    ap.add_argument("--max-side", type=int, default=512)
    ap.add_argument("--data", type=Path, default=SHARED)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    cfg = load_deblur(resolve_model_folder(args.model))
    if cfg is None:
        raise SystemExit(f"{args.model} has no deblurring stage (deblur.json)")
    lines = ["# Deblurring headroom", "", f"    {command_line('bench/deblur_headroom.py')}", ""]
    lines += [f"{machine_line()} Stage: {args.model}'s deblur.json.", ""]
    t0 = time.time()
    for task in args.tasks.split(","):
        pairs = validation_pairs(args.data, task, args.pairs, args.max_side)
        lines += [f"### {task.upper()}: first input of {len(pairs)} validation pairs", ""]
        lines += ["| family | strength | " + " | ".join(f"PSNR {m}" for m in METHODS) + " | "
                  + " | ".join(f"SF {m}" for m in METHODS) + " |"]  # fmt: skip
        lines += ["|---|---|" + "---:|" * (2 * len(METHODS))]
        for family in FAMILIES:
            for strength in degrade.STRENGTHS:
                scores = []
                for pair in pairs:
                    seed = degrade.seed_for(pair.name, family, strength)
                    # the kernel degrade_pair draws: a single family's plan takes nothing from the stream
                    kernel = degrade.SPECS[family][0](strength, np.random.default_rng(seed), pair.images)[
                        "kernel"
                    ]
                    images, _ = degrade.degrade_pair(pair.images, task, family, strength, seed)
                    clean = to_gray(pair.images[0]).astype(np.float64)
                    outs = [restore(m, images, task, cfg, kernel) for m in METHODS]
                    psnrs = [10 * np.log10(1.0 / np.mean((o - clean) ** 2)) for o in outs]
                    scores.append(psnrs + [spatial_frequency(o) / spatial_frequency(clean) for o in outs])
                mean = np.mean(scores, axis=0)
                cells = [f"{v:.2f}" for v in mean]
                lines.append(f"| {family} | {strength} | " + " | ".join(cells) + " |")
                print(lines[-1], flush=True)
        lines.append("")
    lines.append(f"{time.time() - t0:.0f} s.")
    emit(lines, args.out)


if __name__ == "__main__":
    main()
