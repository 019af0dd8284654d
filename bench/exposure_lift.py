"""Which clean multi-exposure brackets the exposure stage's lift touches, and what it does to their fusion.

    OMP_NUM_THREADS=1 python bench/exposure_lift.py [--models allfuse-reg,allfuse-fm] [--max-side 512]
        [--data ../shared/data] [--out bench/results/exposure_lift.md]

Every multi-exposure pair of the shared benchmark (training and validation scenes alike: the lift has no
learned part; its one number, the target, is set in allfuse.exposure, not here), CLEAN, long side capped at
--max-side. For each pair: the brightest input's mean luminance after the headroom gain and the exponent
of the lift (FusionPipeline.exposure_curve; 1 = untouched). For each lifted pair, each model's fusion with
its shipped exposure stage and with the lift switched off (the same folder, `lift` emptied), Qabf and VIF
against the pair's own clean sources: what the lift costs or gives a bracket that needed none.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
from cases import SHARED, shrink
from machine import command_line, emit, machine_line
from scoring import score

from allfuse import FusionPipeline
from allfuse.exposure import gained_inputs, mean_luma
from allfuse.io import find_pairs

METRICS = ["Qabf", "VIF"]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--models", default="allfuse-reg,allfuse-fm", help="comma-separated model names or folders"
    )
    p.add_argument("--max-side", type=int, default=512, help="cap on the long side (px)")
    p.add_argument("--data", type=Path, default=SHARED, help="the shared benchmark's data folder")
    p.add_argument("--out", type=Path, default=None, help="also write the report here (markdown)")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    t0 = time.perf_counter()
    folders = (
        sorted(d for d in (args.data / "mef").iterdir() if d.is_dir()) if (args.data / "mef").is_dir() else []
    )
    pairs = [p for folder in folders for p in find_pairs(folder) if p.task == "mef"]
    if not pairs:
        raise SystemExit(f"{args.data / 'mef'}: no multi-exposure pairs")
    lines = [
        "# Exposure stage: the lift on clean multi-exposure brackets",
        "",
        f"    {command_line('bench/exposure_lift.py')}",
        "",
        machine_line(),
        "",
    ]
    for name in args.models.split(","):
        pipe = FusionPipeline.from_pretrained(name)
        cfg = pipe.exposure
        if cfg is None or "mef" not in cfg.lift:
            lines += [f"{name}: no lift for multi-exposure pairs.", ""]
            continue
        off = FusionPipeline.from_pretrained(name)
        off.exposure = dataclasses.replace(cfg, lift={})
        rows, deltas = [], []
        for pair in pairs:
            images = [shrink(x, args.max_side) for x in pair.load()[0]]
            g = pipe.exposure_curve(images, "mef")[1]  # behind the stages before it, as a fusion has it
            if g == 1.0:
                continue
            sc = score({"on": pipe(images, task="mef"), "off": off(images, task="mef")}, images, METRICS)
            d = [sc["on"][m] - sc["off"][m] for m in METRICS]
            deltas.append(d)
            bright = max(mean_luma(x) for x in gained_inputs(images, "mef", cfg)[0])
            rows.append(
                f"| {pair.name} | {bright:.3f} | {g:.2f} | "
                + " | ".join(f"{sc['off'][m]:.4f} | {sc['on'][m]:.4f}" for m in METRICS)
                + " |"
            )
        lines += [
            f"## {name} (lift target {cfg.lift['mef']:g}, exponent at least {cfg.min_gamma:.3g})",
            "",
            f"Lifted: {len(rows)} of {len(pairs)} clean brackets.",
            "",
            "| pair | brightest mean | exponent | Qabf off | Qabf on | VIF off | VIF on |",
            "|---|---:|---:|---:|---:|---:|---:|",
            *rows,
            "",
        ]
        if deltas:
            mean = np.mean(deltas, axis=0)
            up = [sum(d[i] > 0 for d in deltas) for i in range(len(METRICS))]
            lines += [
                "Lift on - off: "
                + ", ".join(
                    f"{m} mean {mean[i]:+.4f} (up on {up[i]} of {len(deltas)})" for i, m in enumerate(METRICS)
                ),
                "",
            ]
    lines.append(f"_{time.perf_counter() - t0:.0f} s_")
    emit(lines, args.out)


if __name__ == "__main__":
    main()
