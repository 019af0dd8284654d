"""How the deblurring stage's PSF models fare on the blurs of every degradation generator, after fusion.

    OMP_NUM_THREADS=1 python bench/deblur_generators.py [--model allfuse-reg] [--tasks vif,mef,mff]
        [--generators bench,albumentations,imagenet_c] [--pairs 3] [--max-side 512] [--data ../shared/data]
        [--out bench/results/deblur_generators.md]

`bench/deblur_headroom.py` measures the stage on the validation bench's own PSFs, which is where its
choices (the blind kernel, the weaker regularizer near a Gaussian) were made. This bench asks whether they
hold on blurs written by other code: every blur family of the three generators (bench/degrade.py,
bench/degrade_alb.py, bench/degrade_c.py; downscaling and ImageNet-C's zoom and glass blur included, which
are no convolution with one kernel), at both strengths, on the first validation pairs of each task
(splits.json "val", never trained on). Each variant's deblurred inputs are fused by the task's teacher
rule (the classical fusion that makes the models' targets: gff, laplacian, focus) and scored by Qabf
against the CLEAN sources, so the column differences are the restoration's alone, before the latent path.

Variants (allfuse.deblur's steps):
* input       — no deblurring: the rule on the blurred inputs.
* gaussian    — the stage with the elliptic Gaussian PSF fitted to the edge widths (`kernel_tasks` off).
* one-balance — the blind kernel, every kernel deconvolved at the stage's `balance` (`smooth_balance` off).
* shipped     — the model folder's stage as it is.
* peak        — `shipped` with each blind kernel re-anchored at its peak (the maximum of the kernel
                smoothed by a 1 px Gaussian) instead of its centroid (allfuse.blindpsf.clean_kernel): a
                kernel has no absolute position, and a one-sided streak (ImageNet-C's motion blur, whose
                weight sits at its start) displaces the image by its centroid, which the deconvolution
                keeps. Not shipped for every kernel: a symmetric kernel's peak is anywhere on it (a
                polygonal aperture's bright rim); `shipped` anchors only a one-sided streak there
                (allfuse.deblur, step 9: `streak_skew`).
* unsharp     — no deblurring stage: the unsharp mask of the `upsample` chains (allfuse.baselines), the
                generic sharpening several chains win with; a reference, not a stage variant.

The summary lines count, per generator, the cells in which `shipped` scores at least as high as
`gaussian` and as `input`, and name the others.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import degrade
import degrade_alb
import degrade_c
import numpy as np
from cases import SHARED, deblur_stage, degrade_case, validation_pairs
from machine import command_line, emit, machine_line
from scoring import score

from allfuse import baselines
from allfuse.blindpsf import at_peak, deblur_by_kernel
from allfuse.deblur import (
    deblur_image,
    deblur_inputs,
    edge_samples,
    input_kernels,
    input_psfs,
    kernel_balance,
)
from allfuse.tasks import CLASSICAL_DEFAULT

GENERATORS = {"bench": degrade, "albumentations": degrade_alb, "imagenet_c": degrade_c}
BLURS = {
    "bench": ("gauss_blur", "defocus", "motion"),
    "albumentations": ("gauss_blur", "aniso_blur", "defocus", "motion", "downscale"),
    "imagenet_c": ("gaussian_blur", "defocus_blur", "motion_blur", "zoom_blur", "glass_blur"),
}
VARIANTS = ("input", "gaussian", "one-balance", "shipped", "peak", "unsharp")


def stage_variants(cfg) -> dict:
    """The deblurring stage configurations compared (module doc); None: no stage."""
    return {
        "input": None,
        "gaussian": replace(cfg, kernel_tasks=()),
        "one-balance": replace(cfg, smooth_balance=0.0),
        "shipped": cfg,
        "peak": cfg,
        "unsharp": None,
    }


def peak_deblurred(images: list[np.ndarray], cfg, task: str) -> list[np.ndarray]:
    """The shipped stage's deconvolution (allfuse.deblur.deblur_inputs) with every blind kernel at_peak."""
    measured = [edge_samples(x) for x in images]
    psfs = input_psfs(images, cfg, task, (), measured)
    kernels = input_kernels(images, psfs, cfg, task, measured)
    return [
        deblur_by_kernel(x, at_peak(k), kernel_balance(k, cfg, task))
        if k is not None
        else x
        if np.ndim(p) == 0 and not p
        else deblur_image(x, p, cfg.balance)
        for x, p, k in zip(images, psfs, kernels, strict=True)
    ]


def fused(variant: str, stage, images: list[np.ndarray], task: str) -> np.ndarray:
    """The teacher rule's fusion of the inputs as `variant` restores them."""
    if variant == "unsharp":
        images = [baselines.restore("upsample", x) for x in images]
    elif variant == "peak":
        images = peak_deblurred(images, stage, task)
    elif stage is not None:
        images = deblur_inputs(images, stage, task)[0]
    return baselines.fuse(CLASSICAL_DEFAULT[task], images, task)


def cell_scores(pairs: list, generator, family: str, strength: str, stages: dict, task: str) -> list[float]:
    """Mean Qabf against the clean sources of each variant over the pairs (VARIANTS order)."""
    rows = []
    for pair in pairs:
        images = degrade_case(pair, family, strength, generator).degraded
        outs = {v: fused(v, stages[v], images, task) for v in VARIANTS}
        rows.append([s["Qabf"] for s in score(outs, pair.images, ["Qabf"]).values()])
    return list(np.mean(rows, axis=0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="allfuse-reg", help="the model folder whose deblur.json is `shipped`")
    ap.add_argument("--tasks", default="vif,mef,mff")
    ap.add_argument("--generators", default=",".join(GENERATORS))
    ap.add_argument("--pairs", type=int, default=3, help="validation pairs per task (0: all)")
    ap.add_argument("--max-side", type=int, default=512)
    ap.add_argument("--data", type=Path, default=SHARED)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    gens = args.generators.split(",")
    unknown = [g for g in gens if g not in GENERATORS]
    if unknown:
        ap.error(f"unknown generator(s) {', '.join(unknown)}; choose from {', '.join(GENERATORS)}")
    cfg = deblur_stage(args.model)
    stages = stage_variants(cfg)
    lines = ["# Deblurring across generators", "", f"    {command_line('bench/deblur_generators.py')}", ""]
    lines += [f"{machine_line()} Stage: {args.model}'s deblur.json.", ""]
    t0 = time.time()
    tally: dict[str, list[str]] = {g: [] for g in gens}  # cells where shipped falls behind
    counts = dict.fromkeys(gens, 0)
    for task in args.tasks.split(","):
        pairs = validation_pairs(args.data, task, args.pairs, args.max_side)
        rule = CLASSICAL_DEFAULT[task]
        lines += [f"### {task.upper()}: {len(pairs)} validation pairs per cell, fused by `{rule}`, Qabf", ""]
        lines += ["| generator | family | strength | " + " | ".join(VARIANTS) + " |"]
        lines += ["|---|---|---|" + "---:|" * len(VARIANTS)]
        for gen in gens:
            for family in BLURS[gen]:
                for strength in degrade.STRENGTHS:
                    scores = cell_scores(pairs, GENERATORS[gen], family, strength, stages, task)
                    q = dict(zip(VARIANTS, scores, strict=True))
                    cells = [f"**{v:.4f}**" if v == max(q.values()) else f"{v:.4f}" for v in q.values()]
                    lines.append(f"| {gen} | {family} | {strength} | " + " | ".join(cells) + " |")
                    print(lines[-1], flush=True)
                    counts[gen] += 1
                    behind = max(q["gaussian"], q["input"]) - q["shipped"]
                    if behind > 0:
                        other = "gaussian" if q["gaussian"] >= q["input"] else "input"
                        tally[gen].append(f"{task}/{family}/{strength} {-behind:+.4f} vs {other}")
        lines.append("")
    for gen in gens:
        held = counts[gen] - len(tally[gen])
        listed = ", ".join(tally[gen]) or "none"
        lines.append(
            f"INFO  {gen}: shipped at least as high as gaussian and input in {held}/{counts[gen]} cells; "
            f"below in: {listed}"
        )
    lines += ["", f"{time.time() - t0:.0f} s."]
    emit(lines, args.out)


if __name__ == "__main__":
    main()
