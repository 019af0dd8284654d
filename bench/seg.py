"""Text-driven segmentation of a DiTFuse model (DiTFuse Sect. III-B2, seg data): how well does the overlay
of ``[SEG] ... the X`` cover X?

    OMP_NUM_THREADS=1 python bench/seg.py [--model allfuse-ditfuse] [--scenes 24] [--size 128]
        [--labels LABEL_TREE] [--max-side 256] [--data ../shared/data] [--out bench/results/seg.md]

Two parts:
  * Synthetic scenes held out from training (allfuse.data.seg.synthetic_scene with held_out=True: coarse
    noise, checkerboards and rings, textures no training scene has), each given to the model as the two M3
    views training uses (allfuse.data.m3.m3_pair); every class present in a scene is asked for once, in
    turn with a tagged prompt and a held-out paraphrase. IoU of the predicted mask
    (JointResult.mask) with the true mask, mean per class, and the shares of the overlay on the named
    shape, the other shapes and the background (a model that finds shapes but not the named one puts
    much of it on the other shapes).
  * Real infrared+visible validation pairs (splits.json, never trained on) that have person/car labels in
    --labels (a tree as tools/label_objects.py writes it, checked by eye: docs/labels_contact_sheet.jpg):
    clean, long side --max-side, "segment the person/car". Precision = share of overlay pixels on the
    labelled objects (the issue's measure), plus recall and IoU. Labels cover the objects the labelling
    found, so an overlay on an unlabelled person counts against precision.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
from cases import SHARED, validation_pairs
from machine import command_line, emit, machine_line

from allfuse import FusionPipeline
from allfuse.data.m3 import m3_pair
from allfuse.data.prompts import phrases, tagged_prompt
from allfuse.data.seg import SHAPES, find_labels, read_label, synthetic_scene


def seg_prompt(cls: str, k: int, tagged: bool) -> str:
    """A tagged prompt (first training paraphrase) or the k-th held-out paraphrase, naming `cls`."""
    if tagged:
        return tagged_prompt("SEG", None, phrases("tasks", "seg")[0].replace("{cls}", cls))
    held = phrases("tasks", "seg", "held_out")
    return held[k % len(held)].replace("{cls}", cls)


def scores(pred: np.ndarray, true: np.ndarray) -> tuple[float, float, float]:
    """IoU, precision (share of predicted pixels that are true) and recall; 0 where undefined."""
    inter = float((pred & true).sum())
    union, npred, ntrue = float((pred | true).sum()), float(pred.sum()), float(true.sum())
    return (inter / union if union else 0.0, inter / npred if npred else 0.0, inter / ntrue if ntrue else 0.0)


def synthetic_part(pipe: FusionPipeline, n: int, size: int, steps: int | None) -> tuple[list[str], dict]:
    """IoU per class on held-out synthetic scenes, and where the overlay falls: on the named shape, on the
    other shapes, on the background (shares of all overlay pixels of the class's cases, pooled; does the
    model tell the shapes apart?) -> rows of a markdown table and the per-class mean IoU."""
    rng = np.random.default_rng(12345)  # not a training seed stream: scenes drawn here only
    ious: dict[str, list[float]] = {s: [] for s in SHAPES}
    where = {s: np.zeros(3) for s in SHAPES}  # overlay pixels on the named shape, other shapes, background
    k = 0
    for _ in range(n):
        image, label, names = synthetic_scene(rng, (size, size), held_out=True)
        a, b, _ = m3_pair(image, rng)
        for c in sorted(set(np.unique(label).tolist()) - {0}):
            true = label == c
            if true.sum() < 16:
                continue
            res = pipe.run([a, b], seg_prompt(names[c], k, tagged=k % 2 == 0), task="vif", steps=steps)
            ious[names[c]].append(scores(res.mask, true)[0])
            other = (label > 0) & ~true
            where[names[c]] += [(res.mask & m).sum() for m in (true, other, label == 0)]
            k += 1
    rows = [
        f"| {s} | {len(v)} | {np.mean(v):.3f} | "
        + " | ".join(f"{x / max(1.0, where[s].sum()):.2f}" for x in where[s])
        + " |"
        for s, v in ious.items()
        if v
    ]
    return rows, {s: float(np.mean(v)) for s, v in ious.items() if v}


def real_part(
    pipe: FusionPipeline, data: Path, labels: Path, max_side: int, steps: int | None
) -> tuple[list[str], list[str]]:
    """Precision/recall/IoU per class on labelled validation pairs: table rows and one line per case."""
    per: dict[str, list[tuple[float, float, float]]] = {}
    cases = []
    for k, pair in enumerate(validation_pairs(data, "vif", 0, max_side)):
        dataset, stem = pair.name.split("/")
        folders = sorted(data.glob(f"*/{dataset}"))
        found = find_labels(folders[0], stem, [labels]) if folders else None
        if found is None:
            continue
        path, names = found
        h, w = pair.images[0].shape[:2]
        label = cv2.resize(read_label(path).astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
        for c, cls in enumerate(names):
            true = label == c
            if c == 0 or true.sum() < 16:
                continue
            res = pipe.run(pair.images, seg_prompt(cls, k, tagged=True), task="vif", steps=steps)
            s = scores(res.mask, true)
            per.setdefault(cls, []).append(s)
            cases.append(f"- {pair.name} {cls}: precision {s[1]:.2f}, recall {s[2]:.2f}, IoU {s[0]:.2f}")
    rows = [
        f"| {cls} | {len(v)} | {np.mean([x[1] for x in v]):.3f} | {np.mean([x[2] for x in v]):.3f} | "
        f"{np.mean([x[0] for x in v]):.3f} |"
        for cls, v in per.items()
    ]
    return rows, cases


def main() -> None:
    """Run both parts and print (and with --out write) the tables."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="allfuse-ditfuse")
    ap.add_argument("--scenes", type=int, default=24)
    ap.add_argument("--size", type=int, default=128, help="side of the synthetic scenes, px")
    ap.add_argument("--labels", type=Path, default=None, help="label tree of person/car masks")
    ap.add_argument("--max-side", type=int, default=256)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--data", type=Path, default=SHARED)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    pipe = FusionPipeline.from_pretrained(args.model)
    t0 = time.perf_counter()
    cmd = command_line("bench/seg.py")
    model = f"Model `{args.model}`"
    if args.labels is not None:  # a local folder: the report names what it is, not where it was
        cmd = cmd.replace(str(args.labels), "LABELS")
        model += "; LABELS = `python tools/label_objects.py ../shared/data LABELS`"
    lines = ["# Segmentation from a prompt", "", f"    {cmd}", "", f"{machine_line().rstrip('.')}. {model}."]
    rows, _ = synthetic_part(pipe, args.scenes, args.size, args.steps)
    lines += [
        "",
        f"## Held-out synthetic scenes ({args.scenes} scenes, {args.size}²)",
        "",
        "| class | cases | mean IoU | overlay on the named shape | on other shapes | on the background |",
        "|---|---:|---:|---:|---:|---:|",
        *rows,
    ]
    if args.labels is not None:
        rows, cases = real_part(pipe, args.data, args.labels, args.max_side, args.steps)
        lines += [
            "",
            f"## Real infrared+visible validation pairs (labels: `{args.labels.name}`, long side "
            f"{args.max_side})",
            "",
            "| class | cases | precision (overlay on the object) | recall | IoU |",
            "|---|---:|---:|---:|---:|",
            *rows,
            "",
            *cases,
        ]
    lines += ["", f"_{time.perf_counter() - t0:.0f} s_"]
    emit(lines, args.out)


if __name__ == "__main__":
    main()
