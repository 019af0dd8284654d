"""Which multi-focus inputs the exposure stage's veil stretch reads as veiled: the evidence behind its
thresholds and its place after the input corrector (allfuse.exposure, "Veil"), and what it does to the model.

    OMP_NUM_THREADS=1 python bench/veil.py [--model allfuse-reg] [--model-pairs 3] [--max-side 512]
        [--data ../shared/data] [--out bench/results/veil.md]

1. Every clean input of the shared benchmark (training and validation pairs alike: nothing is fitted here,
   a threshold is checked), long side capped at --max-side, as it comes: its dark-channel floor
   (allfuse.exposure.dark_floor) per kind of input, how many inputs of a mean luminance of 0.4 or more
   (the stage's `stretch_mean`) combine a floor from veil_dark[0] with a range below veil_range[0], and,
   for the multi-focus inputs, how many of their copies flattened toward their median luminance (keeping
   0.6 and 0.45 of every distance, the two ends of the validation bench's mild `low_contrast`) would.
2. Every clean multi-focus pair through the model's stages: how many inputs the veil reads (weight above 0)
   where it runs, after the corrector, and where it would run without the corrector.
3. The multi-focus validation pairs (splits.json "val"), degraded by the families that flatten or veil a
   picture, of both bench generators at both strengths (bench/degrade.py: low contrast toward the median,
   depth-varying haze; bench/degrade_alb.py: albumentations' contrast loss, a gain below 1, and its fog):
   the same two counts and the mean factor of the inputs read.
4. The model's Qabf against the clean sources on the first --model-pairs of those pairs, with the veil
   stretch and with it switched off (the rest of the stage as shipped).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import degrade_alb
import numpy as np
from cases import SHARED, degrade_case, shrink, validation_pairs
from degrade import STRENGTHS
from machine import command_line, emit, machine_line
from scoring import score

from allfuse import FusionPipeline
from allfuse.color import to_gray
from allfuse.exposure import dark_floor, luma_range, veil_plan
from allfuse.io import find_pairs

TASK = "mff"
CELLS = (("bench", "low_contrast"), ("bench", "haze"), ("albumentations", "low_contrast"))
CELLS += (("albumentations", "fog"),)
GENERATORS = {"bench": None, "albumentations": degrade_alb}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="allfuse-reg", help="a model name or folder with a veil stretch")
    p.add_argument("--model-pairs", type=int, default=3, help="validation pairs the model itself fuses")
    p.add_argument("--max-side", type=int, default=512, help="cap on the long side (px)")
    p.add_argument("--data", type=Path, default=SHARED, help="the shared benchmark's data folder")
    p.add_argument("--out", type=Path, default=None, help="also write the report here (markdown)")
    return p.parse_args()


def readings(
    pipe: FusionPipeline, off: FusionPipeline, images: list[np.ndarray]
) -> tuple[list[float], list[float]]:
    """The veil's factor for each input as the stages run it (after the corrector), and its factor had it
    run on what the stages before the corrector leave (`off`: the same stages without the veil stretch)."""
    seen = pipe.stages.restore_gain(images, TASK)
    before = off.stages.restore(images, TASK, True, False)  # every stage but the corrector and the veil
    return list(seen.unveiled), [veil_plan(im, TASK, pipe.exposure, i)[0] for i, im in enumerate(before)]


def flattened(x: np.ndarray, keep: float) -> np.ndarray:
    """Every value pulled toward the image's median luminance, `keep` of the distance left (8 bits)."""
    med = float(np.median(to_gray(x)))
    return np.clip(np.round((med + keep * (x - med)) * 255.0) / 255.0, 0.0, 1.0).astype(np.float32)


def floors_section(args: argparse.Namespace, cfg) -> list[str]:
    """Section 1: the dark-channel floors of the clean inputs, by kind."""
    kinds: dict[str, list[tuple[float, float, float]]] = {}
    flat: dict[float, list[bool]] = {0.6: [], 0.45: []}
    (d0, _), (r0, _) = cfg.veil_dark[TASK], cfg.veil_range[TASK]

    def reads(x: np.ndarray) -> bool:
        r, mean, _ = luma_range(x, cfg)
        return mean >= cfg.stretch_mean and r < r0 and dark_floor(x) >= d0

    for task, names in (("vif", ("infrared", "visible")), ("mef", ("exposure",) * 2), (TASK, ("input",) * 2)):
        for folder in sorted(args.data.glob(f"{'ivif' if task == 'vif' else task}/*")):
            for p in find_pairs(folder):
                for name, x in zip(names, p.load()[0], strict=True):
                    x = shrink(x, args.max_side)
                    r, mean, _ = luma_range(x, cfg)
                    kinds.setdefault(f"{task.upper()} {name}", []).append((dark_floor(x), r, mean))
                    if task == TASK:
                        for keep, got in flat.items():
                            got.append(reads(flattened(x, keep)))
    lines = [
        "## Dark-channel floor of the clean inputs of the shared benchmark",
        "",
        f"| inputs | n | floor p50 | floor p95 | floor max | read as veiled (mean >= {cfg.stretch_mean:g}, "
        f"floor >= {d0:g}, range < {r0:g}) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for kind, rows in kinds.items():
        a = np.array(rows)
        hit = int(np.sum((a[:, 2] >= cfg.stretch_mean) & (a[:, 0] >= d0) & (a[:, 1] < r0)))
        p50, p95, top = np.percentile(a[:, 0], (50, 95, 100))
        lines.append(f"| {kind} | {len(a)} | {p50:.3f} | {p95:.3f} | {top:.3f} | {hit} |")
    lines += [""]
    for keep, got in flat.items():
        lines.append(
            f"- multi-focus inputs flattened toward their median, keeping {keep:g}: {sum(got)}/{len(got)} "
            f"read as veiled ({sum(got) / len(got):.0%})"
        )
    return [*lines, ""]


def count(factors: list[float]) -> str:
    read = [k for k in factors if k > 1.0]
    mean = f", mean factor {np.mean(read):.2f}" if read else ""
    return f"{len(read)}/{len(factors)}{mean}"


def main() -> None:
    args = parse_args()
    t0 = time.perf_counter()
    pipe = FusionPipeline.from_pretrained(args.model)
    if pipe.exposure is None or TASK not in pipe.exposure.veil_dark:
        raise SystemExit(f"{args.model}: no veil stretch for multi-focus pairs")
    cfg = pipe.exposure
    off = FusionPipeline.from_pretrained(args.model)
    off.exposure = dataclasses.replace(cfg, veil_dark={}, veil_range={})
    lines = [
        "# Exposure stage: the veil stretch of multi-focus inputs",
        "",
        f"    {command_line('bench/veil.py')}",
        "",
        machine_line(),
        "",
        f"Model {args.model}: veil read from a dark-channel floor of {cfg.veil_dark[TASK][0]:g} (fully at "
        f"{cfg.veil_dark[TASK][1]:g}) below a luminance range of {cfg.veil_range[TASK][0]:g} (fully at "
        f"{cfg.veil_range[TASK][1]:g}). `as run`: inputs the stage stretches, after the input corrector; "
        "`no corrector`: inputs it would stretch without the corrector before it.",
        "",
        *floors_section(args, cfg),
        "## Clean multi-focus pairs of the shared benchmark, through the model's stages",
        "",
        "| dataset | pairs | as run | no corrector |",
        "|---|---:|---|---|",
    ]
    by_set: dict[str, tuple[list[float], list[float]]] = {}
    for folder in sorted(args.data.glob(f"{TASK}/*")):
        for p in find_pairs(folder):
            if p.task != TASK:
                continue
            images = [shrink(x, args.max_side) for x in p.load()[0]]
            run, bare = readings(pipe, off, images)
            got = by_set.setdefault(folder.name, ([], []))
            got[0].extend(run)
            got[1].extend(bare)
    for name, (run, bare) in by_set.items():
        lines.append(f"| {name} | {len(run) // 2} | {count(run)} | {count(bare)} |")
    pairs = validation_pairs(args.data, TASK, 0, args.max_side)
    lines += [
        "",
        f"## {len(pairs)} multi-focus validation pairs, degraded",
        "",
        "| generator | family | strength | as run | no corrector |",
        "|---|---|---|---|---|",
    ]
    for gen, family in CELLS:
        for strength in STRENGTHS:
            run, bare = [], []
            for pair in pairs:
                case = degrade_case(pair, family, strength, GENERATORS[gen])
                r, b = readings(pipe, off, case.degraded)
                run += r
                bare += b
            lines.append(f"| {gen} | {family} | {strength} | {count(run)} | {count(bare)} |")
    lines += [
        "",
        f"## The model on the first {args.model_pairs} of them: Qabf against the clean sources",
        "",
        "| generator | family | strength | pair | veil stretch | switched off |",
        "|---|---|---|---|---:|---:|",
    ]
    for gen, family in CELLS:
        for strength in STRENGTHS:
            for pair in pairs[: args.model_pairs]:
                case = degrade_case(pair, family, strength, GENERATORS[gen])
                q = score(
                    {"on": pipe(case.degraded, task=TASK), "off": off(case.degraded, task=TASK)},
                    pair.images,
                    ["Qabf"],
                )
                on, no = q["on"]["Qabf"], q["off"]["Qabf"]
                lines.append(f"| {gen} | {family} | {strength} | {pair.name} | {on:.4f} | {no:.4f} |")
    lines += ["", f"_{time.perf_counter() - t0:.0f} s_"]
    emit(lines, args.out)


if __name__ == "__main__":
    main()
