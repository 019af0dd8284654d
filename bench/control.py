"""Does a DiTFuse model follow brightness and contrast instructions? (DiTFuse Sect. III-B2, control data.)

    OMP_NUM_THREADS=1 python bench/control.py [--model allfuse-ditfuse] [--pairs 20] [--max-side 256]
        [--cfg-text S] [--cfg-image S] [--data ../shared/data] [--out bench/results/control.md]

What runs: the first --pairs validation pairs of `splits.json` (never trained on), taken in turn from the
three tasks, clean, area-downscaled to long side --max-side. Each pair is fused with plain fusion (base) and
with every control level, in two prompt forms:
  * tagged: ``[CONTROL]. <LEVEL>.`` + the template + the level's first training paraphrase;
  * untagged: a paraphrase of the bank's held-out split (never used in training), without any tag; the
    pipeline reads the level from the words (allfuse.data.prompts.read_intent) and gives the model the
    level's training wording, so this form measures the reading of unseen wordings on top of the model.
Same seed and steps for every level, so only the prompt differs. Per pair: mean luminance (BT.601 gray)
and RMS contrast (its standard deviation). A pair passes brightness when LIGHT-- < LIGHT- < base < LIGHT+ <
LIGHT++ strictly, contrast when CONTRAST- < base < CONTRAST+. Target (issue #15): >= 90 % of pairs for both
prompt forms.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np
from cases import SHARED, TASKS, validation_pairs
from machine import command_line, emit, machine_line

from allfuse import FusionPipeline
from allfuse.color import to_gray
from allfuse.data.control import GAMMA
from allfuse.data.prompts import phrases, tagged_prompt

LIGHT = ("LIGHT--", "LIGHT-", "base", "LIGHT+", "LIGHT++")
CONTRAST = ("CONTRAST-", "base", "CONTRAST+")
LEVELS = (*GAMMA, "CONTRAST+", "CONTRAST-")
TARGET = 0.9


def prompts(level: str, k: int) -> dict[str, str]:
    """The tagged prompt and the k-th held-out untagged paraphrase asking for `level`."""
    held = phrases("control", level, "held_out")
    return {
        "tagged": tagged_prompt("CONTROL", level, phrases("control", level)[0]),
        "untagged": held[k % len(held)],
    }


def stats(x: np.ndarray) -> tuple[float, float]:
    """Mean luminance and RMS contrast of an image in [0, 1]."""
    g = to_gray(np.asarray(x, np.float32))
    return float(g.mean()), float(g.std())


def ordered(values: dict[str, float], order: tuple[str, ...]) -> bool:
    """Whether values increase strictly along `order`."""
    v = [values[k] for k in order]
    return all(a < b for a, b in itertools.pairwise(v))


def main() -> None:
    """Fuse every pair at every level in both prompt forms; print rates and mean luminance per level."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="allfuse-ditfuse")
    ap.add_argument("--pairs", type=int, default=20)
    ap.add_argument("--max-side", type=int, default=256)
    ap.add_argument("--steps", type=int, default=None, help="sampler steps (default: the model's)")
    ap.add_argument("--cfg-text", type=float, default=None, help="text guidance (default: the model's)")
    ap.add_argument("--cfg-image", type=float, default=None, help="image guidance (default: the model's)")
    ap.add_argument("--data", type=Path, default=SHARED)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if not (args.data / "splits.json").is_file():
        sys.exit(f"{args.data}: no splits.json (the shared benchmark data is needed)")
    pipe = FusionPipeline.from_pretrained(args.model)
    per_task = [validation_pairs(args.data, t, args.pairs, args.max_side) for t in TASKS]
    pairs = [p for group in zip(*per_task, strict=False) for p in group][: args.pairs]
    forms = ("tagged", "untagged")
    lum = {f: {lv: [] for lv in (*LEVELS, "base")} for f in forms}
    rms = {f: {lv: [] for lv in (*LEVELS, "base")} for f in forms}
    passed = {f: {"brightness": 0, "contrast": 0} for f in forms}
    misread = {f: 0 for f in forms}
    t0 = time.perf_counter()
    guide = {"steps": args.steps, "cfg_text": args.cfg_text, "cfg_image": args.cfg_image}
    for k, pair in enumerate(pairs):
        base = stats(pipe(pair.images, task=pair.task, **guide))
        for form in forms:
            m, s = {"base": base[0]}, {"base": base[1]}
            for level in LEVELS:
                res = pipe.run(pair.images, prompts(level, k)[form], task=pair.task, **guide)
                misread[form] += res.intent.subtag != level
                m[level], s[level] = stats(res.image)
            for lv in m:
                lum[form][lv].append(m[lv])
                rms[form][lv].append(s[lv])
            passed[form]["brightness"] += ordered(m, LIGHT)
            passed[form]["contrast"] += ordered(s, CONTRAST)
        print(f"{pair.name}: done ({time.perf_counter() - t0:.0f} s)", flush=True)
    n = len(pairs)
    cmd = command_line("bench/control.py")
    lines = [
        "# Control: brightness and contrast levels",
        "",
        f"    {cmd}",
        "",
        f"{machine_line().rstrip('.')}. Model `{args.model}`, {n} clean validation pairs (long side "
        f"{args.max_side}), seed 0, {time.perf_counter() - t0:.0f} s in all.",
        "",
        "| prompt form | brightness ordered | contrast ordered | prompts read as another level |",
        "|---|---:|---:|---:|",
    ]
    verdicts = []
    for form in forms:
        b, c = passed[form]["brightness"] / n, passed[form]["contrast"] / n
        lines.append(
            f"| {form} | {b:.0%} ({passed[form]['brightness']}/{n}) | {c:.0%} "
            f"({passed[form]['contrast']}/{n}) | {misread[form]}/{n * len(LEVELS)} |"
        )
        for what, rate in (("brightness", b), ("contrast", c)):
            ok = "PASS" if rate >= TARGET else "FAIL"
            verdicts.append(f"{ok}  {form} {what} ordered on {rate:.0%} of pairs (target >= {TARGET:.0%})")
    lines += ["", "Mean over pairs, per level (luminance / RMS contrast):", ""]
    lines += ["| prompt form | " + " | ".join((*LIGHT, "CONTRAST-", "CONTRAST+")) + " |"]
    lines += ["|---|" + "---:|" * (len(LIGHT) + 2)]
    for form in forms:
        cells = [
            f"{np.mean(lum[form][lv]):.3f} / {np.mean(rms[form][lv]):.3f}"
            for lv in (*LIGHT, "CONTRAST-", "CONTRAST+")
        ]
        lines.append(f"| {form} | " + " | ".join(cells) + " |")
    lines += ["", *verdicts]
    emit(lines, args.out)


if __name__ == "__main__":
    main()
