"""How much of the validation bench's blur the deblurring stage undoes, and how much a known PSF would.

    OMP_NUM_THREADS=1 python bench/deblur_headroom.py [--model allfuse-reg] [--tasks vif,mef,mff]
        [--pairs 6] [--max-side 512] [--data ../shared/data] [--out bench/results/deblur_headroom.md]

The validation pairs (splits.json "val"), each blurred by one of the bench's blur families at two
strengths (bench/degrade.py: elliptic Gaussian, polygonal defocus, curved camera shake). For each pair's
FIRST input, the luminance restored by each method is scored against the clean source's: PSNR (dB) and SF
as a share of the clean source's SF (sharpness recovered; above 1 is ringing or noise). No fusion: this
measures the restoration stage alone, before the latent path.

Methods:
* input    — the blurred input as it is.
* gaussian — the deblurring stage with the Gaussian PSF fitted to the edge widths (allfuse.deblur, steps
             1-6: `kernel_tasks` off), Wiener-Hunt deconvolution with a Laplacian regularizer.
* tv       — the same Gaussian PSF, deconvolved with a total-variation prior instead (half-quadratic
             splitting, Wang, Yang, Yin & Zhang 2008; the sparse-gradient deconvolution of Krishnan & Fergus
             2009 at exponent 1): min_x (lam / 2) ||k * x - y||^2 + ||grad x||_1.
* one-balance — the shipped stage's blind kernel (below), every kernel deconvolved at the stage's
             `balance` (`smooth_balance` off: allfuse.deblur, step 8).
* shipped  — the model folder's deblurring stage as it is: with the shipped models' `kernel_tasks`, the
             kernel estimated blind (allfuse.blindpsf: an L0-gradient latent image and a least-squares
             kernel, coarse to fine), then the same Wiener-Hunt filter, with the weaker regularizer of
             `smooth_balance` for a kernel close to a Gaussian.
* tv-shipped — the shipped stage's PSF (its blind kernel where it estimates one, else its Gaussian),
             deconvolved with the total-variation prior of `tv`: whether a sparser prior pays once the
             kernel is closer to the truth.
* oracle   — the TRUE kernel the bench blurred with, Wiener-Hunt deconvolution at the stage's balance: what
             knowing the PSF would give (not available to any method).
* tv-oracle — the TRUE kernel with the total-variation prior: the ceiling of that prior.

The last column is the range, over the pairs, of the shipped kernel's distance to a Gaussian
(allfuse.blindpsf.gaussian_distance; what `smooth_balance` reads; - where the stage keeps the input).

The gap between `shipped` and `oracle` is the headroom of a better kernel; the gap between `oracle` and the
clean source what any deconvolution at that balance leaves; `tv-shipped` against `tv-oracle` what a wrong
kernel costs the sharper prior.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import degrade
import numpy as np
from cases import SHARED, deblur_stage, validation_pairs
from machine import command_line, emit, machine_line
from scipy import fft as sfft

from allfuse.blindpsf import gaussian_distance, wiener_kernel
from allfuse.color import to_gray
from allfuse.deblur import deblur_inputs, input_kernels, input_psfs, psf_covariance

FAMILIES = ("gauss_blur", "defocus", "motion")
METHODS = ("input", "gaussian", "tv", "one-balance", "shipped", "tv-shipped", "oracle", "tv-oracle")
DX, DY = np.array([[0, -1, 1]], np.float64), np.array([[0], [-1], [1]], np.float64)


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


def spatial_frequency(x: np.ndarray) -> float:
    """SF of a [0, 1] image in 8-bit units: sqrt of the mean squared row and column differences."""
    return 255.0 * float(np.sqrt(np.mean(np.diff(x, axis=1) ** 2) + np.mean(np.diff(x, axis=0) ** 2)))


def restore(method: str, images: list[np.ndarray], task: str, cfg, true_kernel: np.ndarray) -> np.ndarray:
    """The first input's luminance restored by `method` (module doc)."""
    gray = to_gray(images[0]).astype(np.float64)
    if method == "input":
        return gray
    if method in ("gaussian", "one-balance", "shipped"):
        variants = {"gaussian": replace(cfg, kernel_tasks=()), "one-balance": replace(cfg, smooth_balance=0)}
        stage = variants.get(method, cfg)
        return to_gray(deblur_inputs(images, stage, task)[0][0]).astype(np.float64)
    if method == "oracle":
        return wiener_kernel(gray, true_kernel / true_kernel.sum(), cfg.balance).astype(np.float64)
    if method == "tv-oracle":
        return tv_deconv(gray, true_kernel / true_kernel.sum())
    psfs = input_psfs(images, cfg, task)
    if np.ndim(psfs[0]) == 0 and not psfs[0]:  # the stage keeps the input: so do its prior's variants
        return gray
    kernel = input_kernels(images, psfs, cfg, task)[0] if method == "tv-shipped" else None
    return tv_deconv(gray, gaussian_kernel(psf_covariance(psfs[0])) if kernel is None else kernel)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="allfuse-reg", help="the model folder whose deblur.json is `shipped`")
    ap.add_argument("--tasks", default="vif,mef,mff")
    ap.add_argument("--pairs", type=int, default=6, help="validation pairs per task (0: all)")
    ap.add_argument("--max-side", type=int, default=512)
    ap.add_argument("--data", type=Path, default=SHARED)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    cfg = deblur_stage(args.model)
    lines = ["# Deblurring headroom", "", f"    {command_line('bench/deblur_headroom.py')}", ""]
    lines += [f"{machine_line()} Stage: {args.model}'s deblur.json.", ""]
    t0 = time.time()
    for task in args.tasks.split(","):
        pairs = validation_pairs(args.data, task, args.pairs, args.max_side)
        lines += [f"### {task.upper()}: first input of {len(pairs)} validation pairs", ""]
        lines += ["| family | strength | " + " | ".join(f"PSNR {m}" for m in METHODS) + " | "
                  + " | ".join(f"SF {m}" for m in METHODS) + " | kernel distance |"]  # fmt: skip
        lines += ["|---|---|" + "---:|" * (2 * len(METHODS)) + "---:|"]
        for family in FAMILIES:
            for strength in degrade.STRENGTHS:
                scores, distances = [], []
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
                    found = input_kernels(images, input_psfs(images, cfg, task), cfg, task)[0]
                    if found is not None:
                        distances.append(gaussian_distance(found))
                mean = np.mean(scores, axis=0)
                cells = [f"{v:.2f}" for v in mean]
                cells.append(f"{min(distances):.2f}–{max(distances):.2f}" if distances else "-")
                lines.append(f"| {family} | {strength} | " + " | ".join(cells) + " |")
                print(lines[-1], flush=True)
        lines.append("")
    lines.append(f"{time.time() - t0:.0f} s.")
    emit(lines, args.out)


if __name__ == "__main__":
    main()
