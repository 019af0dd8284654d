"""How strongly non-local means should filter a noisy infrared + visible input: the evidence behind the
denoising stage's strengths (allfuse.denoise, "Strength"), and what the shipped setting does to the model.

    OMP_NUM_THREADS=1 python bench/noisy_strength.py [--model allfuse-reg] [--pairs 20] [--other-pairs 10]
        [--model-pairs 8] [--max-side 512] [--data ../shared/data] [--out bench/results/noisy_strength.md]

Pairs: the first --pairs infrared + visible validation pairs (splits.json "val", never trained on) and, as
a second sensor set, the first --other-pairs pairs of each of TNO and MSRS (not validation pairs; only the
stage's classical fusion is scored on them), long side capped at --max-side. Each is degraded by the
`noise` family of both bench generators (bench/degrade.py, bench/degrade_alb.py) at both strengths, which
hits both images of a pair (a noisy capture), and by `low_light`, which darkens and grains the visible
image alone beside a clean infrared one (both pair sets). The model's stages restore the inputs with the
filter parameter h set to each of STRENGTHS times the noise sigma for every pair, then the pipeline's
classical fusion (the teacher's rule, or the stage's rule for a strongly noisy pair:
allfuse.gate.rule_fusion) fuses them; Qabf, VIF and BRISQUE against the clean sources. Then the model
itself on the first --model-pairs validation pairs, with its shipped strengths and with every input
filtered at the `nlm+...` chains' strength (allfuse.baselines.restoration.NLM_STRENGTH, 0.8).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
from cases import degrade_case, validation_pairs
from degrade import STRENGTHS as LEVELS
from machine import command_line, emit, machine_line
from noisy_rule import GENERATORS, OTHER, TASK, other_pairs, stage_args
from scoring import score

from allfuse import FusionPipeline
from allfuse.baselines.restoration import NLM_STRENGTH
from allfuse.gate import rule_fusion

STRENGTHS = (0.5, 0.6, 0.8, 1.2, 1.5)  # h / sigma
METRICS = ("Qabf", "VIF", "BRISQUE")
DIGITS = (4, 3, 1)


def at_strength(model: str, k: float) -> FusionPipeline:
    """The model with its denoising stage filtering every pair at strength k."""
    pipe = FusionPipeline.from_pretrained(model)
    pipe.denoise = dataclasses.replace(pipe.denoise, strength=k, pair_strength=0.0)
    return pipe


def cell(rows: list[dict[str, float]]) -> str:
    """The mean Qabf / VIF / BRISQUE of some scored outputs."""
    return " / ".join(f"{np.mean([r[m] for r in rows]):.{d}f}" for m, d in zip(METRICS, DIGITS, strict=True))


def stage_table(pipes: dict[float, FusionPipeline], pairs: list, family: str) -> list[str]:
    """Rows per generator and level: the mean Qabf / VIF / BRISQUE of the pipeline's classical fusion of
    the inputs each strength restored."""
    lines = [
        "| generator | level | " + " | ".join(f"h = {k:g} σ" for k in pipes) + " |",
        "|---|---|" + "---:|" * len(pipes),
    ]
    for name, gen in GENERATORS.items():
        for level in LEVELS:
            per: dict[float, list] = {k: [] for k in pipes}
            for pair in pairs:
                degraded = degrade_case(pair, family, level, gen).degraded
                for k, pipe in pipes.items():
                    seen = pipe.stages.restore_gain(degraded, TASK)
                    fused = rule_fusion(seen.images, TASK, noisy=pipe.noisy_rule(seen.rule_weight))
                    per[k].append(score({"x": fused}, pair.images, METRICS)["x"])
            lines.append(f"| {name} | {level} | " + " | ".join(cell(per[k]) for k in pipes) + " |")
    return lines


def main() -> None:
    args = stage_args(__doc__, 20, 10, "a denoising stage")
    t0 = time.perf_counter()
    pipe = FusionPipeline.from_pretrained(args.model)
    if pipe.denoise is None:
        raise SystemExit(f"{args.model}: no denoising stage")
    cfg = pipe.denoise
    pipes = {k: at_strength(args.model, k) for k in STRENGTHS}
    val = validation_pairs(args.data, TASK, args.pairs, args.max_side)
    other = other_pairs(args.data, args.other_pairs, args.max_side)
    lines = [
        "# Denoising stage: how strongly non-local means filters a noisy infrared + visible input",
        "",
        f"    {command_line('bench/noisy_strength.py')}",
        "",
        machine_line(),
        "",
        f"Model {args.model}: shipped strength h = {cfg.strength:g} σ, and {cfg.pair_strength:g} σ for a "
        f"pair all of whose inputs measure noisy (0: none); the chains' {NLM_STRENGTH:g} σ. Each cell: Qabf "
        "/ VIF / BRISQUE against the clean sources of the pipeline's classical fusion of the inputs the "
        "stages restored with every pair filtered at that strength (mean over the pairs; Qabf and VIF "
        "higher, BRISQUE lower is better).",
        "",
    ]
    others = f"{len(other)} {' and '.join(OTHER)} pairs (other cameras)"
    for title, pairs, family in (
        (f"`noise` (both images), {len(val)} validation pairs (RoadScene)", val, "noise"),
        (f"`noise` (both images), {others}", other, "noise"),
        (f"`low_light` (the visible image alone), {len(val)} validation pairs", val, "low_light"),
        (f"`low_light` (the visible image alone), {others}", other, "low_light"),
    ):
        lines += [f"## {title}", "", *stage_table(pipes, pairs, family), ""]
    one = at_strength(args.model, NLM_STRENGTH)
    few = val[: args.model_pairs]
    lines += [
        f"## The model, {len(few)} validation pairs: Qabf / VIF / BRISQUE against the clean sources",
        "",
        f"| family | generator | level | {args.model} | every input at {NLM_STRENGTH:g} σ |",
        "|---|---|---|---:|---:|",
    ]
    for family in ("noise", "low_light"):
        for name, gen in GENERATORS.items():
            for level in LEVELS:
                per = []
                for pair in few:
                    degraded = degrade_case(pair, family, level, gen).degraded
                    outs = {"shipped": pipe(degraded, task=TASK), "one": one(degraded, task=TASK)}
                    per.append(score(outs, pair.images, METRICS))
                cells = " | ".join(cell([p[k] for p in per]) for k in per[0])
                lines.append(f"| {family} | {name} | {level} | {cells} |")
    lines += ["", f"_{time.perf_counter() - t0:.0f} s_"]
    emit(lines, args.out)


if __name__ == "__main__":
    main()
