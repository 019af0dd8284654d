"""Where a one-sided motion streak's blind kernel is anchored, and what each anchor restores.

    OMP_NUM_THREADS=1 python bench/streak_anchor.py [--model allfuse-reg] [--tasks vif,mef,mff]
        [--pairs 8] [--severities 1,2,3] [--reaches 0.9,1,1.1,1.2,1.32] [--gate-pairs 5]
        [--gates 0.4:2,0.3:3.5,0.3:2.5,0.3:3,0.3:2] [--max-side 512] [--data ../shared/data]
        [--out bench/results/streak_anchor.md]

ImageNet-C's motion blur (bench/degrade_c.py `streak_kernel`, after ImageMagick's) weighs a streak most at
its start, so the blurred image is displaced by the streak's centroid. A blind kernel has no absolute
position: allfuse.blindpsf centres it on its centroid, and deconvolving by it keeps the displacement. The
deblurring stage (allfuse.deblur, step 9) moves a kernel that measures as a one-sided streak to its start,
`streak_start` stds of its weight along its long axis before its centroid (allfuse.blindpsf.at_start).
This bench chooses that reach on TRAINING pairs (splits.json "val" left out: the validation pairs score
the models): the first input of every ninth training pair of one dataset per task (RoadScene, MEFB,
MFI-WHU), blurred by ImageNet-C's streak at each severity in a random direction (seeded per pair), coded to
8 bits. Its blind kernel is the shipped stage's (the model folder's deblur.json), deconvolved at the
stage's balance for that kernel, anchored at:

* input    — no deconvolution: the blurred input.
* centroid — the kernel as estimated.
* peak     — the maximum of the kernel smoothed by 1 px (allfuse.blindpsf.at_peak).
* start R  — R stds before the centroid (allfuse.blindpsf.at_start), for each reach R.

Every anchor is applied to every estimate (the stage's shape test, which decides whether a kernel is
anchored at all, is not applied here). Scores: luminance PSNR (dB) against the clean input, mean over the
pairs; `shipped` is the stage as the folder sets it, shape test included.

The second table asks what the shape test (allfuse.deblur.streak_test on allfuse.blindpsf.streak_shape:
a skewness of at least `streak_skew` at an elongation of at least `streak_elongation`, or of
`streak_long_skew` from `streak_long_elongation` on) lets through, for the folder's test and for single
thresholds (`--gates skew:elongation,...`). Every ELEVENTH training pair from the eighth on, `--gate-pairs`
of each dataset of the task (RoadScene and MSRS, MEFB, MFI-WHU and Lytro), degraded by every blur family of
the three generators (bench/degrade.py, bench/degrade_alb.py, bench/degrade_c.py) at both strengths, each
input through the stage's blind kernel estimate. A case is caught when every kernel of it passes the test
(all the inputs' for multi-exposure pairs). For the caught cases, the inputs' mean luminance PSNR against
their clean sources with every kernel anchored at its start minus without anchoring: the gain on
ImageNet-C's motion streaks (what the step is for) and the loss on every other blur (false alarms).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import degrade
import degrade_alb
import degrade_c
import numpy as np
from cases import SHARED, deblur_stage, shrink
from machine import command_line, emit, machine_line

from allfuse.blindpsf import at_peak, at_start, streak_shape, wiener_kernel
from allfuse.color import to_gray
from allfuse.deblur import anchored, deblur_inputs, input_kernels, input_psfs, kernel_balance, streak_test
from allfuse.io import find_pairs

DATASETS = {"vif": "ivif/RoadScene", "mef": "mef/MEFB", "mff": "mff/MFI-WHU"}
GATE_DATASETS = {
    "vif": ("ivif/RoadScene", "ivif/MSRS"),
    "mef": ("mef/MEFB",),
    "mff": ("mff/MFI-WHU", "mff/Lytro"),
}
BLURS = {
    "bench": (degrade, ("gauss_blur", "defocus", "motion")),
    "albumentations": (degrade_alb, ("gauss_blur", "aniso_blur", "defocus", "motion", "downscale")),
    "imagenet_c": (degrade_c, ("gaussian_blur", "defocus_blur", "motion_blur", "zoom_blur", "glass_blur")),
}
STREAK = ("imagenet_c", "motion_blur")


def training_pairs(data: Path, folder: str, start: int, step: int, count: int) -> list:
    """Every `step`-th training pair (splits.json "val" left out) of a dataset folder from `start`, up to
    `count`."""
    val = set(json.loads((data / "splits.json").read_text())["val"].get(folder.split("/")[1], []))
    return [p for p in find_pairs(data / folder) if p.name not in val][start::step][:count]


def training_inputs(data: Path, task: str, count: int, max_side: int) -> list[tuple[str, np.ndarray]]:
    """(name, first input as float gray) of every ninth training pair of the task's dataset, up to count."""
    folder = DATASETS[task]
    return [
        (f"{folder.split('/')[1]}/{p.name}", to_gray(shrink(p.load()[0][0], max_side)).astype(np.float64))
        for p in training_pairs(data, folder, 5, 9, count)
    ]


def psnr(x: np.ndarray, clean: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((np.asarray(x, np.float64) - clean) ** 2)))


def anchor_scores(clean: np.ndarray, streak: np.ndarray, cfg, task: str, reaches: list[float]) -> list[float]:
    """PSNR of the streaked input and of its deconvolution at each anchor (module doc's columns)."""
    soft = np.round(np.clip(degrade_c.convolve(clean.astype(np.float32), streak), 0, 1) * 255) / 255
    soft = soft.astype(np.float32)
    found = input_kernels([soft], input_psfs([soft], cfg, task), cfg, task)[0]
    if found is None:  # measured sharp, or the task keeps the Gaussian: every anchor is the input
        return [psnr(soft, clean)] * (len(reaches) + 4)
    balance = kernel_balance(found, cfg, task)
    kernels = [found, at_peak(found), *(at_start(found, r) for r in reaches), anchored(found, cfg)]
    return [psnr(soft, clean)] + [psnr(wiener_kernel(soft, k, balance), clean) for k in kernels]


def shape_tests(cfg, gates: list[tuple[float, float]]) -> list[tuple[str, Callable[[float, float], bool]]]:
    """(label, test of a kernel's (skew, elongation)): the folder's (allfuse.deblur.streak_test), then each
    (skew, elongation) threshold pair of `gates`."""
    tests = [("the folder's", lambda skew, elongation: streak_test(skew, elongation, cfg))]
    for g in gates:
        tests.append(
            (f"skew ≥ {g[0]:g}, elongation ≥ {g[1]:g}", lambda sk, el, g=g: sk >= g[0] and el >= g[1])
        )
    return tests


def caught(shapes: list[tuple[float, float]], test: Callable[[float, float], bool]) -> bool:
    """A case is caught when every kernel of it passes the test (module doc)."""
    return bool(shapes) and all(test(*shape) for shape in shapes)


def gate_case(clean: list, task: str, soft: list, cfg, tests: list) -> tuple[list, float]:
    """([(skew, elongation) of each blind kernel], mean luminance PSNR gain of the inputs with every kernel
    anchored at its start against none anchored; 0 when no test catches the case)."""
    found = input_kernels(soft, input_psfs(soft, cfg, task), cfg, task)
    shapes = [streak_shape(k) for k in {id(k): k for k in found if k is not None}.values()]
    if not any(caught(shapes, test) for _, test in tests):
        return shapes, 0.0
    every, none = replace(cfg, streak_skew=1e-9, streak_elongation=1.0), replace(cfg, streak_skew=0.0)
    scores = []
    for stage in (every, none):
        restored = deblur_inputs(soft, stage, task)[0]
        scores.append(np.mean([psnr(to_gray(x), to_gray(c)) for x, c in zip(restored, clean, strict=True)]))
    return shapes, float(scores[0] - scores[1])


def gate_cases(args, cfg, tests: list) -> list[tuple[bool, list, float]]:
    """(an ImageNet-C streak?, the kernels' shapes, the gain of anchoring them at their start) per case of
    the second table (module doc)."""
    cases = []
    for task in args.tasks.split(","):
        pairs = [p for f in GATE_DATASETS[task] for p in training_pairs(args.data, f, 7, 11, args.gate_pairs)]
        for pair in pairs:
            clean = [shrink(x, args.max_side) for x in pair.load()[0]]
            for name, (generator, families) in BLURS.items():
                for family, strength in ((f, s) for f in families for s in degrade.STRENGTHS):
                    seed = degrade.seed_for(pair.name, family, strength)
                    soft, _ = generator.degrade_pair(clean, task, family, strength, seed)
                    cases.append(((name, family) == STREAK, *gate_case(clean, task, soft, cfg, tests)))
    return cases


def gate_table(cases: list, tests: list) -> list[str]:
    """One row per shape test: streaks caught, other blurs let through, and what anchoring did to each."""
    streaks = [c for c in cases if c[0] and c[1]]
    others = [c for c in cases if not c[0] and c[1]]
    lines = [
        "| shape test | streaks caught | gain, dB | other blurs passed | loss, dB |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, test in tests:
        hit = [c for c in streaks if caught(c[1], test)]
        false = [c for c in others if caught(c[1], test)]
        gain, loss = sum(c[2] for c in hit), sum(c[2] for c in false)
        counts = f"{len(hit)} of {len(streaks)} | {gain:+.1f} | {len(false)} of {len(others)} | {loss:+.1f}"
        lines.append(f"| {label} | {counts} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="allfuse-reg", help="the model folder whose deblur.json is the stage")
    ap.add_argument("--tasks", default="vif,mef,mff")
    ap.add_argument("--pairs", type=int, default=8, help="training pairs per task")
    ap.add_argument("--severities", default="1,2,3", help="ImageNet-C severities (1-5)")
    ap.add_argument("--reaches", default="0.9,1,1.1,1.2,1.32")
    ap.add_argument("--gate-pairs", type=int, default=5, help="training pairs per dataset for the shape test")
    ap.add_argument("--gates", default="0.4:2,0.3:3.5,0.3:2.5,0.3:3,0.3:2", help="skew:elongation thresholds")
    ap.add_argument("--max-side", type=int, default=512)
    ap.add_argument("--data", type=Path, default=SHARED)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    cfg = deblur_stage(args.model)
    reaches = [float(r) for r in args.reaches.split(",")]
    columns = ["input", "centroid", "peak", *(f"start {r:g}" for r in reaches), "shipped"]
    lines = [
        "# Anchoring a one-sided streak's blind kernel",
        "",
        f"    {command_line('bench/streak_anchor.py')}",
    ]
    lines += [
        "",
        f"{machine_line()} Stage: {args.model}'s deblur.json (streak_start {cfg.streak_start:g}).",
        "",
    ]
    lines += ["Luminance PSNR (dB) against the clean input, mean over the pairs; best anchor in bold.", ""]
    lines += [
        "| task | severity | pairs | " + " | ".join(columns) + " |",
        "|---|---:|---:|" + "---:|" * len(columns),
    ]
    t0 = time.time()
    for task in args.tasks.split(","):
        inputs = training_inputs(args.data, task, args.pairs, args.max_side)
        for severity in (int(s) for s in args.severities.split(",")):
            length, std = degrade_c.MOTION_BLUR[severity - 1]
            rows = []
            for name, clean in inputs:
                rng = np.random.default_rng(degrade.seed_for(name, "motion_blur", str(severity)))
                streak = degrade_c.streak_kernel(length, std, np.deg2rad(rng.uniform(-45, 45)))
                rows.append(anchor_scores(clean, streak, cfg, task, reaches))
            mean = np.mean(rows, axis=0)
            best = int(np.argmax(mean[:-1]))
            cells = [f"**{v:.2f}**" if i == best else f"{v:.2f}" for i, v in enumerate(mean)]
            lines.append(f"| {task} | {severity} | {len(rows)} | " + " | ".join(cells) + " |")
            print(lines[-1], flush=True)
    if args.gate_pairs > 0:
        gates = [tuple(float(v) for v in g.split(":")) for g in args.gates.split(",")]
        tests = shape_tests(cfg, gates)
        cases = gate_cases(args, cfg, tests)
        lines += [
            "",
            f"### Shape test: {len(cases)} cases (training pair x blur family x strength)",
            "",
        ]
        lines += gate_table(cases, tests)
    lines += ["", f"{time.time() - t0:.0f} s."]
    emit(lines, args.out)


if __name__ == "__main__":
    main()
