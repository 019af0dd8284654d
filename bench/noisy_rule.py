"""Which classical rule fuses a strongly noisy infrared + visible pair best once it is denoised: the evidence
behind the denoising stage's rule (allfuse.denoise, "Rule"), and what the shipped stage does with it.

    OMP_NUM_THREADS=1 python bench/noisy_rule.py [--model allfuse-reg] [--pairs 0] [--other-pairs 20]
        [--model-pairs 8] [--max-side 512] [--data ../shared/data] [--out bench/results/noisy_rule.md]

Pairs: the infrared + visible validation pairs (splits.json "val", never trained on; --pairs, 0 = all) and,
as a second sensor set, the first --other-pairs pairs of each of TNO and MSRS (not validation pairs; only
classical rules are compared on them), long side capped at --max-side. Each is degraded by the `noise`
family of both bench generators (bench/degrade.py, bench/degrade_alb.py) at both strengths; noise hits
both images of a pair there. The model's stages restore the inputs (non-local means where an input
measures noisy), then the stage's rule and the teacher's rule (`gff`) fuse them; Qabf and VIF against the
clean sources. Rows are binned by the pair's noise, read on the degraded inputs as the stage reads it (the
lower of the two inputs' std, 1/255 steps), beside the rule weight the stage gave. Then the same for the
`low_light` family, which darkens and grains the visible image alone (the stage keeps the teacher there),
and the model itself on the first --model-pairs validation pairs: with its rule and with the rule
switched off.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import time
from pathlib import Path

import degrade_alb
import numpy as np
from cases import SHARED, CleanPair, degrade_case, shrink, validation_pairs
from degrade import STRENGTHS
from machine import command_line, emit, machine_line
from scoring import score

from allfuse import FusionPipeline, baselines
from allfuse.denoise import input_noise
from allfuse.io import find_pairs
from allfuse.tasks import CLASSICAL_DEFAULT

TASK = "vif"
GENERATORS = {"bench": None, "albumentations": degrade_alb}
OTHER = ("TNO", "MSRS")  # a second sensor set: other cameras than RoadScene's
BINS = (0.0, 4.5, 6.0, 7.5, 9.0, 10.5, 12.0, 13.5, 16.5, np.inf)  # pair noise, 1/255


def stage_args(doc: str, pairs: int, other: int, needs: str) -> argparse.Namespace:
    """The command line of the denoising stage's benches (this one, bench/noisy_strength.py): their own
    defaults for --pairs and --other-pairs; `needs` names what the model must have."""
    p = argparse.ArgumentParser(description=doc.split("\n")[0])
    p.add_argument("--model", default="allfuse-reg", help=f"a model name or folder with {needs}")
    p.add_argument("--pairs", type=int, default=pairs, help="validation pairs (0 = all)")
    p.add_argument("--other-pairs", type=int, default=other, help="pairs of each of TNO and MSRS")
    p.add_argument("--model-pairs", type=int, default=8, help="validation pairs the model itself fuses")
    p.add_argument("--max-side", type=int, default=512, help="cap on the long side (px)")
    p.add_argument("--data", type=Path, default=SHARED, help="the shared benchmark's data folder")
    p.add_argument("--out", type=Path, default=None, help="also write the report here (markdown)")
    return p.parse_args()


def other_pairs(data: Path, limit: int, max_side: int) -> list[CleanPair]:
    """The first `limit` pairs of each OTHER dataset that are not validation pairs (no teacher target)."""
    val = {n for names in json.loads((data / "splits.json").read_text())["val"].values() for n in names}
    out = []
    for dataset in OTHER:
        folders = sorted(data.glob(f"*/{dataset}"))
        if not folders:
            raise FileNotFoundError(f"{data}: no folder for dataset {dataset!r}")
        found = [p for p in find_pairs(folders[0]) if p.task == TASK and p.name not in val][:limit]
        for p in found:
            images = [shrink(x, max_side) for x in p.load()[0]]
            out.append(CleanPair(f"{dataset}/{p.name}", TASK, images, images[0]))
    return out


Row = tuple[float, float, float, float]


def rule_rows(pipe: FusionPipeline, pairs: list[CleanPair], family: str) -> list[Row]:
    """Per pair, generator and strength: (pair noise before denoising, the stage's rule weight, Qabf and VIF
    of the stage's rule minus the teacher's on the restored inputs)."""
    rule = pipe.denoise.rule
    rows = []
    for pair in pairs:
        for gen in GENERATORS.values():
            for strength in STRENGTHS:
                degraded = degrade_case(pair, family, strength, gen).degraded
                seen = pipe.stages.restore_gain(degraded, TASK)
                noise = min(input_noise(x) for x in degraded)
                outs = {
                    "rule": baselines.fuse(rule, seen.images, TASK),
                    "teacher": baselines.fuse(CLASSICAL_DEFAULT[TASK], seen.images, TASK),
                }
                s = score(outs, pair.images, ["Qabf", "VIF"])
                rows.append(
                    (
                        noise,
                        seen.rule_weight,
                        s["rule"]["Qabf"] - s["teacher"]["Qabf"],
                        s["rule"]["VIF"] - s["teacher"]["VIF"],
                    )
                )
    return rows


def binned(rows: list[Row]) -> list[str]:
    """A markdown table of rows binned by pair noise."""
    a = np.array(rows)
    lines = [
        "| pair noise (1/255) | captures | stage's rule weight | Δ Qabf | rule better | Δ VIF |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for lo, hi in itertools.pairwise(BINS):
        r = a[(a[:, 0] >= lo) & (a[:, 0] < hi)]
        if len(r):
            lines.append(
                f"| {lo:g}–{hi:g} | {len(r)} | {r[:, 1].mean():.2f} | {r[:, 2].mean():+.4f} | "
                f"{int(np.sum(r[:, 2] > 0))}/{len(r)} | {r[:, 3].mean():+.4f} |"
            )
    return lines


def main() -> None:
    args = stage_args(__doc__, 0, 20, "a denoising rule")
    t0 = time.perf_counter()
    pipe = FusionPipeline.from_pretrained(args.model)
    if pipe.denoise is None or not pipe.denoise.rule:
        raise SystemExit(f"{args.model}: no denoising stage with a rule")
    cfg = pipe.denoise
    val = validation_pairs(args.data, TASK, args.pairs, args.max_side)
    other = other_pairs(args.data, args.other_pairs, args.max_side)
    lines = [
        "# Denoising stage: the rule for strongly noisy infrared + visible pairs",
        "",
        f"    {command_line('bench/noisy_rule.py')}",
        "",
        machine_line(),
        "",
        f"Model {args.model}: rule `{cfg.rule}` from a pair noise of {cfg.rule_low:g}, alone from "
        f"{cfg.rule_high:g} (1/255). Δ: the rule `{cfg.rule}` minus the teacher's "
        f"`{CLASSICAL_DEFAULT[TASK]}`, both fusing the inputs the stages restored, Qabf and VIF against "
        "the clean sources; each pair captured by both generators at both strengths.",
        "",
    ]
    for title, pairs, family in (
        (f"`noise`, {len(val)} validation pairs (RoadScene)", val, "noise"),
        (f"`noise`, {len(other)} pairs of {' and '.join(OTHER)} (other cameras)", other, "noise"),
        (f"`low_light` (the visible image alone), {len(val)} validation pairs", val, "low_light"),
    ):
        lines += [f"## {title}", "", *binned(rule_rows(pipe, pairs, family)), ""]
    off = FusionPipeline.from_pretrained(args.model)
    off.denoise = dataclasses.replace(cfg, rule="")
    few = val[: args.model_pairs]
    lines += [
        f"## The model, {len(few)} validation pairs: Qabf / VIF against the clean sources",
        "",
        f"| generator | strength | {args.model} | rule off | nlm+{cfg.rule} | "
        f"nlm+{CLASSICAL_DEFAULT[TASK]} |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, gen in GENERATORS.items():
        for strength in STRENGTHS:
            per = []
            for pair in few:
                degraded = degrade_case(pair, "noise", strength, gen).degraded
                nlm = [baselines.restore("nlm", x) for x in degraded]
                outs = {
                    "shipped": pipe(degraded, task=TASK),
                    "off": off(degraded, task=TASK),
                    "chain": baselines.fuse(cfg.rule, nlm, TASK),
                    "teacher chain": baselines.fuse(CLASSICAL_DEFAULT[TASK], nlm, TASK),
                }
                per.append(score(outs, pair.images, ["Qabf", "VIF"]))
            cells = " | ".join(
                f"{np.mean([p[k]['Qabf'] for p in per]):.4f} / {np.mean([p[k]['VIF'] for p in per]):.3f}"
                for k in per[0]
            )
            lines.append(f"| {name} | {strength} | {cells} |")
    lines += ["", f"_{time.perf_counter() - t0:.0f} s_"]
    emit(lines, args.out)


if __name__ == "__main__":
    main()
