"""What the clean-input gate's three overrides do, pair by pair (FusionPipeline.gate_decision).

    OMP_NUM_THREADS=1 python bench/gate_overrides.py [--models allfuse-reg,allfuse-fm] [--tasks vif,mef,mff]
        [--pairs 3] [--max-side 512] [--data ../shared/data] [--out bench/results/gate_overrides.md]

The gate measures a pair after the restoration stages. Two of them can repair a degradation so well that
the pair then measures clean (or clean enough for the gate's blend) although it was not: the JPEG
deblocking stage and the deblurring stage. A third, the input corrector, can change the inputs of a pair
unevenly, and the rule then fuses a patchwork of two corrections. The pipeline overrides the gate there:
a pair with an input deblocked at JPEG quality REPAIRED_JPEG or lower takes the latent path alone, and a
deconvolved or unevenly corrected pair (allfuse.pipeline.uneven_correction) below the gate's threshold
gets no blend. This bench shows, on the validation pairs (never trained on), what that choice is worth
against the gate's own choice.

Cases: every single-family cell of the three degradation generators (bench/degrade.py,
bench/degrade_alb.py and bench/degrade_c.py, each family at both strengths, `--pairs` pairs per task)
and the main sections' mixed-degradation pairs (6 per task). Each case is restored by the model's stages,
as the pipeline does, and the gate's choice WITHOUT the overrides is taken (its P(clean) and the rule's
weight w). Rows:

* deblocked — an input deblocked at quality REPAIRED_JPEG or lower, w > 0: the gate's choice (the rule,
  or the blend) against the latent path alone (what the override gives).
* deconvolved, blended — an input deconvolved (and none deblocked at that quality), 0 < w < 1: the blend
  against the latent path alone (the override).
* corrected unevenly, blended — the input corrector changed the inputs unevenly (and neither override
  above applies), 0 < w < 1: the blend against the latent path alone (the override).
* deconvolved, clean — the second row's case with w = 1: the rule (what the pipeline keeps) against the
  latent path.
* not repaired, blended — no such repair, 0 < w < 1: the blend (what the pipeline keeps) against the latent
  path alone, for comparison.

Each output is scored against the clean sources (Qabf, VIF, BRISQUE). Per row: cases, how many times the
latent path alone scores the higher Qabf and the lower BRISQUE, the mean and worst Qabf difference
(latent path minus the gate's choice), the mean VIF and BRISQUE differences. The gate's choice is
computed as the pipeline computed it before the overrides: the rule's fusion of the restored inputs mixed
into the latent path's output by w (allfuse.pipeline, `__call__`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import degrade
import degrade_alb
import degrade_c
import numpy as np
from cases import SHARED, degrade_case, validation_pairs
from machine import command_line, emit, machine_line
from scoring import score

from allfuse import FusionPipeline
from allfuse.color import is_color, to_gray
from allfuse.gate import rule_fusion
from allfuse.pipeline import gate_override

GENERATORS = {"bench": None, "albumentations": degrade_alb, "imagenet_c": degrade_c}
ROWS = (
    "deblocked",
    "deconvolved, blended",
    "corrected unevenly, blended",
    "deconvolved, clean",
    "not repaired, blended",
)
METRICS = ("Qabf", "VIF", "BRISQUE")


def category(deblocked: int, deblurred: bool, weight: float, corrected: tuple[float, ...] = ()) -> str | None:
    """The row a case belongs to (ROWS), or None when the gate gives it to the latent path anyway."""
    if weight <= 0:
        return None
    reason = gate_override(deblocked, deblurred, weight, corrected)
    if reason:
        return {"deblocked": ROWS[0], "deconvolved": ROWS[1]}.get(reason, ROWS[2])
    if deblurred:
        return ROWS[3]  # deconvolved, and the gate passes it as clean (weight 1)
    return ROWS[4] if weight < 1 else None


def cases(data: Path, task: str, pairs: int, max_side: int):
    """(label, pair, degraded inputs) of every single-family cell of the three generators and the main
    pairs."""
    for pair in validation_pairs(data, task, 6, max_side):
        yield f"main {pair.name}", pair, degrade_case(pair, "mix", None).degraded
    for name, gen in GENERATORS.items():
        for family in (gen or degrade).TASK_FAMILIES[task]:
            for strength in degrade.STRENGTHS:
                for pair in validation_pairs(data, task, pairs, max_side):
                    label = f"{name} {family} {strength} {pair.name}"
                    yield label, pair, degrade_case(pair, family, strength, gen).degraded


def measure(pipe: FusionPipeline, task: str, images: list[np.ndarray], clean: list[np.ndarray]):
    """The case's row and its two scored outputs (the gate's own choice, the latent path alone)."""
    checked = pipe.prepare(images, task)[0]
    seen = pipe.stages.restore_gain(checked, task)
    weight = pipe.gate_decision(seen.images, task)[1]  # the gate alone, no override
    row = category(seen.deblocked, seen.deblurred, weight, seen.corrected)
    if row is None:
        return None, {}
    model = pipe(images, task=task, gate=False)  # gray when every input is gray, as the pipeline's output
    rule = rule_fusion(seen.images, task)
    if not any(is_color(x) for x in checked):
        rule = to_gray(rule)
    gate = rule if weight >= 1 else (1.0 - weight) * model + weight * rule
    return row, score({"gate": gate, "model": model}, clean, list(METRICS))


def summary(rows: dict[str, list[dict]]) -> list[str]:
    """One table line per row: the latent path alone against the gate's own choice."""
    out = [
        "| cases | n | Qabf higher | mean ΔQabf | worst ΔQabf | mean ΔVIF | BRISQUE lower | mean ΔBRISQUE |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in ROWS:
        got = rows.get(name, [])
        if not got:
            out.append(f"| {name} | 0 | | | | | | |")
            continue
        d = {m: np.array([s["model"][m] - s["gate"][m] for s in got]) for m in METRICS}
        out.append(
            f"| {name} | {len(got)} | {int((d['Qabf'] > 0).sum())} | {d['Qabf'].mean():+.4f} | "
            f"{d['Qabf'].min():+.4f} | {d['VIF'].mean():+.4f} | {int((d['BRISQUE'] < 0).sum())} | "
            f"{d['BRISQUE'].mean():+.2f} |"
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="allfuse-reg,allfuse-fm")
    ap.add_argument("--tasks", default="vif,mef,mff")
    ap.add_argument("--pairs", type=int, default=3, help="validation pairs per family cell and task")
    ap.add_argument("--max-side", type=int, default=512)
    ap.add_argument("--data", type=Path, default=SHARED)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    lines = ["# The clean-input gate's overrides", "", f"    {command_line('bench/gate_overrides.py')}", ""]
    lines += [machine_line(), ""]
    lines += [
        "Δ: the latent path alone (what the override gives, for the first two rows) minus the gate's own "
        "choice (the rule, or its blend with the latent path).",
        "",
    ]
    t0 = time.time()
    for model in args.models.split(","):
        pipe = FusionPipeline.from_pretrained(model)
        every: dict[str, list[dict]] = {}
        for task in args.tasks.split(","):
            rows: dict[str, list[dict]] = {}
            for label, pair, images in cases(args.data, task, args.pairs, args.max_side):
                row, scored = measure(pipe, task, images, pair.images)
                if row is None:
                    continue
                rows.setdefault(row, []).append(scored)
                every.setdefault(row, []).append(scored)
                dq = scored["model"]["Qabf"] - scored["gate"]["Qabf"]
                print(f"{model} {task} {label}: {row}, ΔQabf {dq:+.4f}", flush=True)
            lines += [f"### {model}, {task.upper()}", "", *summary(rows), ""]
        lines += [f"### {model}, all tasks", "", *summary(every), ""]
    lines.append(f"{time.time() - t0:.0f} s.")
    emit(lines, args.out)


if __name__ == "__main__":
    main()
