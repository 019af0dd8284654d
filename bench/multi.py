"""More than two inputs: 3- and 4-image exposure brackets and focus stacks synthesized from the shared
validation pairs; the models (fused in steps, allfuse.stacks) against classical methods on the same inputs.

    OMP_NUM_THREADS=1 python bench/multi.py [--limit 6] [--max-side 384] [--out bench/results/multi.md]

Stacks, from validation pairs (splits.json "val": never trained on), area-downscaled to --max-side:
  MEF (MEFB)     [under, mid, over], mid = sqrt(under * over): half-way in stops for a power-law camera
                 response; 4 inputs: under^(2/3) over^(1/3) and under^(1/3) over^(2/3) in between.
  MFF (MFI-WHU)  [near, mid, far], mid = Gaussian blur (sigma 1.5 px) of (near + far) / 2: in focus
                 nowhere; 4 inputs: the 2/3-1/3 and 1/3-2/3 blends, each blurred so.
Scores against the stack's own inputs, mean over pairs: Qabf, SF, and MEF-SSIM for MEF. The models fuse
a stack in steps of two (tree: ((a, b), (c, d)); chain: (((a, b), c), d); both ((a, b), c) for three);
the classical methods take every input at once. "pair" rows fuse only the original two inputs (scored
against the same stack), to show what the extra inputs add.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from allfuse import baselines, metrics
from allfuse.io import find_pairs
from allfuse.stacks import fuse_stack

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
RESULTS = Path(__file__).parent / "results"
DATASETS = {"mef": "MEFB", "mff": "MFI-WHU"}
CLASSICAL = {
    "mef": ("laplacian", "mertens", "gff", "average"),
    "mff": ("focus", "gff", "laplacian", "average"),
}
METRICS = {"mef": ("Qabf", "MEF-SSIM", "SF"), "mff": ("Qabf", "SF")}
MID_BLUR = 1.5  # px, the mid-focus image's blur


def shrink(x: np.ndarray, max_side: int) -> np.ndarray:
    """Area-downscale so the long side is at most max_side."""
    h, w = x.shape[:2]
    s = max_side / max(h, w)
    return x if s >= 1 else cv2.resize(x, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)


def validation_pairs(data: Path, task: str, limit: int, max_side: int) -> list[tuple[str, list[np.ndarray]]]:
    """The first `limit` validation pairs of the task's dataset, by name, downscaled."""
    dataset = DATASETS[task]
    names = set(json.loads((data / "splits.json").read_text())["val"][dataset])
    folder = next(data.glob(f"*/{dataset}"))
    pairs = sorted((p for p in find_pairs(folder) if p.name in names), key=lambda p: p.name)[:limit]
    return [(p.name, [shrink(x, max_side) for x in p.load()[0]]) for p in pairs]


def stack(task: str, a: np.ndarray, b: np.ndarray, n: int) -> list[np.ndarray]:
    """n = 3 or 4 inputs between a and b (module doc)."""
    ts = [i / (n - 1) for i in range(1, n - 1)]  # 1/2, or 1/3 and 2/3
    if task == "mef":  # geometric interpolation of the exposures
        mids = [np.clip(a, 1e-4, 1) ** (1 - t) * np.clip(b, 1e-4, 1) ** t for t in ts]
    else:  # blends of the two focus planes, blurred: sharp nowhere
        mids = [cv2.GaussianBlur(((1 - t) * a + t * b).astype(np.float32), (0, 0), MID_BLUR) for t in ts]
    return [a, *(m.astype(np.float32) for m in mids), b]


def methods(task: str, models: list[str]) -> dict[str, Callable[[list[np.ndarray]], np.ndarray]]:
    """Name -> fuser of a list of inputs."""
    from allfuse.pipeline import FusionPipeline

    out: dict[str, Callable] = {}
    for name in models:
        pipe = FusionPipeline.from_pretrained(name)

        def step(xs: list[np.ndarray], p=pipe) -> np.ndarray:
            return p(xs, task=task)

        out[f"{name} (tree)"] = lambda xs, s=step: fuse_stack(s, xs, 2, "tree")
        out[f"{name} (chain)"] = lambda xs, s=step: fuse_stack(s, xs, 2, "chain")
        out[f"{name} (pair)"] = lambda xs, s=step: s([xs[0], xs[-1]])
    for m in CLASSICAL[task]:
        out[m] = lambda xs, m=m: baselines.fuse(m, xs, task)
    return out


def run_task(task: str, models: list[str], limit: int, max_side: int) -> list[str]:
    """Markdown lines of the task's table."""
    pairs = validation_pairs(SHARED, task, limit, max_side)
    names = METRICS[task]
    fusers = methods(task, models)
    scores: dict[str, dict[int, list[list[float]]]] = {m: {3: [], 4: []} for m in fusers}
    seconds: dict[str, list[float]] = {m: [] for m in fusers}
    for pair_name, (a, b) in pairs:
        for n in (3, 4):
            xs = stack(task, a, b, n)
            for m, fuse in fusers.items():
                if n == 3 and m.endswith("(chain)"):
                    continue  # the same as the tree for three inputs
                t0 = time.perf_counter()
                fused = fuse(xs)
                if n == 3:
                    seconds[m].append(time.perf_counter() - t0)
                r = metrics.compute(fused, xs, names=list(names))
                scores[m][n].append([r[k] for k in names])
        print(f"  {task} {pair_name}: done", flush=True)
    h, w = pairs[0][1][0].shape[:2]
    head = " / ".join(names)
    lines = [
        f"### {task.upper()}: {len(pairs)} {DATASETS[task]} validation pairs (first: {w}x{h})",
        "",
        f"| method | 3 inputs: {head} | 4 inputs: {head} | s per 3-stack |",
        "|---|---:|---:|---:|",
    ]
    best = {n: np.nanmax([np.nanmean(v[n], axis=0) for v in scores.values() if v[n]], axis=0) for n in (3, 4)}
    for m in fusers:
        cells = []
        for n in (3, 4):
            if not scores[m][n]:
                cells.append("(= tree)")
                continue
            mean = np.nanmean(scores[m][n], axis=0)
            cells.append(" / ".join(_cell(v, v == best[n][i]) for i, v in enumerate(mean)))
        secs = f"{np.mean(seconds[m]):.2f}" if seconds[m] else "(= tree)"
        lines.append(f"| {m} | {cells[0]} | {cells[1]} | {secs} |")
    return [*lines, ""]


def _cell(v: float, best: bool) -> str:
    s = f"{v:.4f}" if abs(v) < 10 else f"{v:.2f}"
    return f"**{s}**" if best else s


def main() -> None:
    """Print the tables and write them to --out."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=6, help="validation pairs per task")
    ap.add_argument("--max-side", type=int, default=384)
    ap.add_argument("--models", default="allfuse-reg,allfuse-fm")
    ap.add_argument("--out", type=Path, default=RESULTS / "multi.md")
    args = ap.parse_args()
    models = [m for m in args.models.split(",") if m]
    threads = os.environ.get("OMP_NUM_THREADS", "all cores")
    lines = [
        f"Command: `OMP_NUM_THREADS={threads} python bench/multi.py --limit {args.limit} "
        f"--max-side {args.max_side}` ({time.strftime('%Y-%m-%d')}). Stacks, scores: bench/multi.py's doc.",
        "Best per column in bold. Models fuse in steps of two; classical methods take all inputs at once.",
        "",
    ]
    for task in ("mef", "mff"):
        lines += run_task(task, models, args.limit, args.max_side)
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
