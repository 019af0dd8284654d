"""Degraded-fusion quality: allfuse models vs restore-then-fuse chains vs plain classical fusion.

For every shared pair (up to --limit per dataset) a seeded degraded version is made with the training
pipeline's task-aware ops (n = 1..3, MMAIF Sect. 3.1); the fusion target is the classical teacher on
the CLEAN pair. Each method fuses the degraded pair; metrics are computed against the clean sources
(VIF or Qcv, Qabf, SSIM), no-reference (BRISQUE) and against the target (PSNR_ref, SSIM_ref).
Prints one paper-style table per task (best per column in bold) and writes JSON next to --out.

    python bench/quality.py --limit 6 --max-side 384 --ablations --out bench/results/quality.md

The shared pairs are the models' training pairs too (there are only 220); the degradations drawn here are
new (seeded by pair name, not by the training stream), the scenes are not.
"""

from __future__ import annotations

import argparse
import json
import math
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from allfuse import baselines, metrics
from allfuse.data.pipeline import PipelineConfig, degrade_pair, sample_ops
from allfuse.io import find_pairs
from allfuse.tasks import CLASSICAL_DEFAULT

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DATASETS = {
    "vif": ["ivif/TNO", "ivif/RoadScene", "ivif/MSRS"],
    "mef": ["mef/MEFB"],
    "mff": ["mff/Lytro", "mff/MFI-WHU"],
}
RESTORATIONS = ("nlm", "dcp", "rl", "wiener", "upsample")
Method = Callable[[list[np.ndarray], str], np.ndarray]


def task_metrics(task: str) -> list[str]:
    """MMAIF's per-task choice (Tab. 2/3): VIF for VIF, Qcv for MEF/MFF; plus Qabf, SSIM, BRISQUE."""
    return ["VIF" if task == "vif" else "Qcv", "Qabf", "SSIM", "BRISQUE", "PSNR_ref", "SSIM_ref"]


def shrink(x: np.ndarray, max_side: int) -> np.ndarray:
    """Area-downscale so the long side is at most max_side."""
    h, w = x.shape[:2]
    s = max_side / max(h, w)
    return x if s >= 1 else cv2.resize(x, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)


def make_cases(task: str, limit: int, max_side: int) -> list[dict]:
    """Seeded degraded versions of the shared pairs of one task, with their clean teacher targets."""
    cases = []
    for rel in DATASETS[task]:
        for pair in find_pairs(SHARED / rel)[:limit]:
            clean = [shrink(x, max_side) for x in pair.load()[0]]
            rng = np.random.default_rng(zlib.crc32(f"{rel}/{pair.name}".encode()))
            ops = sample_ops(task, rng, PipelineConfig())
            degraded, _ = degrade_pair(clean, task, ops, rng)
            target = baselines.fuse(CLASSICAL_DEFAULT[task], clean, task)
            cases.append(
                {
                    "name": f"{rel}/{pair.name}",
                    "clean": clean,
                    "degraded": degraded,
                    "target": target,
                    "ops": ops,
                }
            )
    return cases


def model_methods(
    names: list[str], ablations: bool = False, work_side: int | None = None
) -> dict[str, Method]:
    """allfuse models that exist here: reg (1 call), fm with midpoint-reuse 5 steps and Euler 100;
    with `ablations`, reg also without its refiner and without tiling; with `work_side`, reg also with
    its latent path run at that long side (0 = full size)."""
    from allfuse.pipeline import FusionPipeline

    out: dict[str, Method] = {}
    for name in names:
        try:
            pipe = FusionPipeline.from_pretrained(name)
        except FileNotFoundError as e:
            print(f"skipping {name}: {e}")
            continue
        if pipe.cfg.model.timestep:
            out[f"{name} mid-reuse 5"] = lambda ims, t, p=pipe: p(
                ims, task=t, sampler="midpoint_reuse", steps=5
            )
            out[f"{name} euler 100"] = lambda ims, t, p=pipe: p(ims, task=t, sampler="euler", steps=100)
        else:
            out[name] = lambda ims, t, p=pipe: p(ims, task=t)
            if ablations and pipe.refiner is not None:
                out[f"{name} (no refiner)"] = lambda ims, t, p=pipe: p(ims, task=t, refine=False)
            if ablations:
                out[f"{name} (no tiling)"] = lambda ims, t, p=pipe: p(ims, task=t, tile=0)
            if work_side is not None:
                side = f"work side {work_side}" if work_side else "full size"
                out[f"{name} ({side})"] = lambda ims, t, p=pipe: p(ims, task=t, work_side=work_side)
    return out


def score(method: Method, cases: list[dict], task: str) -> tuple[dict[str, float], float]:
    """Mean of each metric over the cases, and seconds per case."""
    names, acc, t0 = task_metrics(task), {}, time.perf_counter()
    for c in cases:
        fused = method(c["degraded"], task)
        r = metrics.compute(fused, c["clean"], names=names, reference=c["target"])
        for k, v in r.items():
            acc.setdefault(k, []).append(v)
    sec = (time.perf_counter() - t0) / max(1, len(cases))
    return {k: float(np.mean([x for x in v if math.isfinite(x)])) for k, v in acc.items()}, sec


def table(task: str, rows: dict[str, dict[str, float]], secs: dict[str, float]) -> str:
    """Markdown table, best per column in bold."""
    names = task_metrics(task)
    best = {}
    for n in names:
        vals = [r[n] for r in rows.values() if math.isfinite(r.get(n, math.nan))]
        best[n] = (max if metrics.METRICS[n].higher_is_better else min)(vals) if vals else None
    arrow = {n: "↑" if metrics.METRICS[n].higher_is_better else "↓" for n in names}
    lines = [
        f"### {task.upper()}",
        "",
        "| method | " + " | ".join(f"{n} {arrow[n]}" for n in names) + " | s/img |",
        "|---|" + "---:|" * (len(names) + 1),
    ]
    for m, r in rows.items():
        cells = [f"**{r[n]:.4g}**" if r.get(n) == best[n] else f"{r.get(n, math.nan):.4g}" for n in names]
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {secs[m]:.2f} |")
    return "\n".join(lines) + "\n"


def few_step_gap(task: str, rows: dict[str, dict[str, float]]) -> str:
    """Relative gap of each flow model's 5-step midpoint-reuse row to its Euler-100 row, per metric."""
    lines = []
    for name in rows:
        if not name.endswith(" mid-reuse 5"):
            continue
        few, ref = rows[name], rows.get(name.replace(" mid-reuse 5", " euler 100"))
        if ref is None:
            continue
        gaps = {n: abs(few[n] - ref[n]) / max(abs(ref[n]), 1e-12) for n in task_metrics(task)}
        cells = ", ".join(f"{n} {100 * g:.2f}%" for n, g in gaps.items())
        lines.append(f"{name[: -len(' mid-reuse 5')]}: 5-step vs Euler-100 gap: {cells}")
    return "\n".join(lines) + ("\n" if lines else "")


def main() -> None:
    """Run every task and print its table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=6, help="pairs per dataset")
    ap.add_argument("--max-side", type=int, default=384, help="long side of the test images, px")
    ap.add_argument("--models", default="allfuse-reg,allfuse-fm")
    ap.add_argument("--ablations", action="store_true", help="also reg without refiner / tiling")
    ap.add_argument(
        "--work-side",
        type=int,
        default=None,
        help="also reg with its latent path at this side (0 = full size)",
    )
    ap.add_argument("--tasks", default=",".join(DATASETS), help="comma-separated subset of vif,mef,mff")
    ap.add_argument("--out", type=Path, default=None, help="also write the tables here (and .json beside)")
    args = ap.parse_args()
    if not SHARED.is_dir():
        raise SystemExit(f"{SHARED} is absent: this benchmark needs the shared benchmark pairs")
    models = model_methods([m for m in args.models.split(",") if m], args.ablations, args.work_side)
    report, results = [], {}
    for task in (t for t in args.tasks.split(",") if t):
        cases = make_cases(task, args.limit, args.max_side)
        default = CLASSICAL_DEFAULT[task]
        rows, secs = {}, {}
        chains = {}
        for r in RESTORATIONS:
            chains[f"{r}+{default}"] = score(
                lambda ims, t, m=f"{r}+{default}": baselines.fuse(m, ims, t), cases, task
            )
        best_chain = max(chains, key=lambda k: chains[k][0]["PSNR_ref"])
        for name, fn in models.items():
            rows[name], secs[name] = score(fn, cases, task)
        rows[f"best chain: {best_chain}"], secs[f"best chain: {best_chain}"] = chains[best_chain]
        rows[f"classical: {default}"], secs[f"classical: {default}"] = score(
            lambda ims, t, m=default: baselines.fuse(m, ims, t), cases, task
        )
        report.append(
            f"{len(cases)} degraded pairs, long side <= {args.max_side}px\n\n"
            + table(task, rows, secs)
            + few_step_gap(task, rows)
        )
        results[task] = {
            "cases": len(cases),
            "rows": rows,
            "seconds": secs,
            "chains": {k: v[0] for k, v in chains.items()},
        }
        print(report[-1], flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(report))
        args.out.with_suffix(".json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
