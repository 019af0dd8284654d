"""What a contrast stretch of a flat input does to a model's fusion, by stretch factor: the evidence behind
the exposure stage's stretch (allfuse.exposure, "Stretch"), and what the shipped stage chooses.

    OMP_NUM_THREADS=1 python bench/contrast_stretch.py [--model allfuse-reg] [--tasks vif,mff] [--pairs 3]
        [--max-side 512] [--data ../shared/data] [--out bench/results/contrast_stretch.md]

The first --pairs validation pairs per task (splits.json "val", never trained on), long side capped at
--max-side, flattened by the validation bench's `low_contrast` family (bench/degrade.py: every value pulled
toward the image's median luminance; the infrared image of an infrared + visible pair, every input of a
multi-focus pair) at both strengths. Per pair: the factor that would undo the loss (the clean input's
luminance range over the flattened one's), the factor the model's stage picks (allfuse.exposure
stretch_factor), and the model's Qabf against the clean sources with the flattened inputs stretched by a
fixed factor k beforehand (`stretch`, about the black point, which goes where the stage puts it; k = 1:
none) and the stage switched off, then with its own stage.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from cases import SHARED, degrade_case, validation_pairs
from degrade import STRENGTHS, targets
from machine import command_line, emit, machine_line
from scoring import score

from allfuse import FusionPipeline
from allfuse.exposure import gained_inputs, luma_levels, per_input, stretch, stretch_factors

FACTORS = (1.0, 1.5, 2.0, 2.5, 3.0, 3.5)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="allfuse-reg", help="a model name or folder")
    p.add_argument("--tasks", default="vif,mff", help="comma-separated tasks")
    p.add_argument("--pairs", type=int, default=3, help="validation pairs per task")
    p.add_argument("--max-side", type=int, default=512, help="cap on the long side (px)")
    p.add_argument("--data", type=Path, default=SHARED, help="the shared benchmark's data folder")
    p.add_argument("--out", type=Path, default=None, help="also write the report here (markdown)")
    return p.parse_args()


def span(x) -> float:
    """An image's luminance range, p99.5 - p0.5."""
    black, white, _ = luma_levels(x, 99.5)
    return white - black


def main() -> None:
    args = parse_args()
    t0 = time.perf_counter()
    pipe = FusionPipeline.from_pretrained(args.model)
    if pipe.exposure is None:
        raise SystemExit(f"{args.model}: no exposure stage")
    off = FusionPipeline.from_pretrained(args.model)
    cfg = pipe.exposure
    off.exposure = dataclasses.replace(
        cfg, stretch_high={}, stretch_low={}, stretch_target={}, stretch_black={}
    )
    head = " | ".join(f"k {k:g}" for k in FACTORS)
    lines = [
        "# Exposure stage: stretching flat inputs",
        "",
        f"    {command_line('bench/contrast_stretch.py')}",
        "",
        machine_line(),
        "",
        f"Model {args.model}; Qabf against the clean sources. `lost`: the factor that undoes the loss, per "
        "flattened input; `stage`: the factor the shipped stage picks; `k`: the flattened inputs stretched "
        "by k, the stage's stretch off; `shipped`: the model with its own stage.",
        "",
    ]
    for task in args.tasks.split(","):
        pairs = validation_pairs(args.data, task, args.pairs, args.max_side)
        lines += [
            f"## {task.upper()}",
            "",
            f"| pair | strength | lost | stage | {head} | shipped |",
            "|---|---|---|---|" + "---:|" * (len(FACTORS) + 1),
        ]
        for strength in STRENGTHS:
            for pair in pairs:
                case = degrade_case(pair, "low_contrast", strength)
                hit = targets(task, "low_contrast", len(pair.images))
                lost = [span(pair.images[i]) / span(case.degraded[i]) for i in hit]
                gained = gained_inputs(case.degraded, task, pipe.exposure)[0]  # the stretch follows the gain
                stage = [stretch_factors(gained, task, pipe.exposure)[i] for i in hit]
                outs = {
                    f"k {k:g}": off(
                        [
                            stretch(x, k, cfg.percentile, per_input(cfg.stretch_black[task], i))
                            if i in hit
                            else x
                            for i, x in enumerate(case.degraded)
                        ],
                        task=task,
                    )
                    for k in FACTORS
                }
                outs["shipped"] = pipe(case.degraded, task=task)
                q = score(outs, pair.images, ["Qabf"])
                cells = " | ".join(f"{q[name]['Qabf']:.4f}" for name in outs)
                lines.append(
                    f"| {pair.name} | {strength} | {' / '.join(f'{v:.2f}' for v in lost)} | "
                    f"{' / '.join(f'{v:.2f}' for v in stage)} | {cells} |"
                )
        lines.append("")
    lines.append(f"_{time.perf_counter() - t0:.0f} s_")
    emit(lines, args.out)


if __name__ == "__main__":
    main()
