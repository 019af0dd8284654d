"""Methods and scores of bench/quality.py: allfuse models, restore-then-fuse chains, plain classical fusion.

Chains are every restoration x fusion of `allfuse.baselines` (5 x 7 = 35); each restoration of each
input is computed once per case and reused by all seven fusions (the same result as
`baselines.fuse("nlm+gff", ...)`, without restoring seven times).
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sequence

import numpy as np

from allfuse import baselines, metrics
from allfuse.baselines.registry import FUSIONS, RESTORATIONS

Method = Callable[[list[np.ndarray], str], np.ndarray]
Row = dict[str, float]
SOURCE_METRICS = ("Qabf", "VIF", "SF", "AG", "SSIM", "BRISQUE")  # against the clean sources
TARGET_METRICS = ("PSNR_ref", "SSIM_ref")  # against the teacher fusion of the clean pair
MAIN_METRICS = SOURCE_METRICS + TARGET_METRICS
CHAINS = tuple(f"{r}+{f}" for r in RESTORATIONS for f in FUSIONS)
PLAIN = tuple(FUSIONS)


def load_models(names: Sequence[str]) -> dict[str, Method]:
    """allfuse models by name: regression in one call, flow matching with midpoint-reuse at 5 steps, a
    DiTFuse joint model with its own sampler, steps and guidance (plain fusion prompt)."""
    from allfuse.pipeline import FusionPipeline

    out: dict[str, Method] = {}
    for name in names:
        try:
            pipe = FusionPipeline.from_pretrained(name)
        except FileNotFoundError as e:
            print(f"skipping {name}: {e}", flush=True)
            continue
        kw = {"sampler": "midpoint_reuse", "steps": 5} if getattr(pipe.cfg.model, "timestep", False) else {}
        out[name] = functools.partial(run_pipeline, pipe, name, kw)
    return out


GATE_CHOICES: dict[str, list[float]] = {}  # model -> its gate's rule weights (1: the rule alone) so far


def run_pipeline(pipe, name: str, kw: dict, images: list[np.ndarray], task: str) -> np.ndarray:
    """pipe(images, task=task, **kw), noting in GATE_CHOICES what a clean-input gate chose."""
    if getattr(pipe, "gate", None) is not None:
        GATE_CHOICES.setdefault(name, []).append(pipe.gate_choice(images, task)[2])
    return pipe(images, task=task, **kw)


def gate_summary() -> list[str]:
    """One line per gated model: how many of the fusions since the last call its gate gave to the rule, and
    how many it blended with the rule (and the mean weight of the rule there)."""
    lines = []
    for name, w in GATE_CHOICES.items():
        mixed = [x for x in w if 0 < x < 1]
        blend = ""
        if mixed:
            blend = f"; it blended {len(mixed)} with the rule (mean rule weight {np.mean(mixed):.2f})"
        lines.append(
            f"- {name}'s clean-input gate gave {sum(x >= 1 for x in w)} of {len(w)} fusions to the classical "
            f"rule{blend}"
        )
    GATE_CHOICES.clear()
    return lines


def run_models(models: dict[str, Method], images: list[np.ndarray], task: str) -> tuple[dict, Row]:
    """Each model's fusion of the images, and its seconds."""
    outputs, secs = {}, {}
    for name, fn in models.items():
        t0 = time.perf_counter()
        outputs[name] = fn(images, task)
        secs[name] = time.perf_counter() - t0
    return outputs, secs


def classical_outputs(images: list[np.ndarray], task: str, plain: bool = True) -> dict[str, np.ndarray]:
    """Every restore-then-fuse chain (each restoration run once per input) and, if asked, plain fusions."""
    out = {}
    for r in RESTORATIONS:
        restored = [baselines.restore(r, x) for x in images]
        for f in FUSIONS:
            out[f"{r}+{f}"] = baselines.fuse(f, restored, task)
    if plain:
        out.update({f: baselines.fuse(f, images, task) for f in FUSIONS})
    return out


def score(
    outputs: dict[str, np.ndarray],
    sources: list[np.ndarray],
    names: Sequence[str],
    target: np.ndarray | None = None,
) -> dict[str, Row]:
    """Metrics of each output against the clean sources (and the target, for *_ref metrics)."""
    return {m: metrics.compute(x, sources, names=list(names), reference=target) for m, x in outputs.items()}


def mean_rows(per_case: list[dict[str, Row]]) -> dict[str, Row]:
    """Mean over cases of each method's metrics, ignoring non-finite values."""
    acc: dict[str, dict[str, list[float]]] = {}
    for case in per_case:
        for method, row in case.items():
            for k, v in row.items():
                acc.setdefault(method, {}).setdefault(k, []).append(v)
    return {
        m: {k: float(np.mean([v for v in vs if math.isfinite(v)] or [math.nan])) for k, vs in row.items()}
        for m, row in acc.items()
    }


def pair_rows(
    names: Sequence[str], per_case: list[dict[str, Row]], methods: Sequence[str], chains: Sequence[str]
) -> dict[str, dict]:
    """Per pair: each of `methods`' scores and the best of `chains` by Qabf (its name and scores), so a
    section's or a cell's mean can be traced to the pairs that make it."""

    def qabf(c: str, case: dict[str, Row]) -> float:
        q = case[c]["Qabf"]
        return q if math.isfinite(q) else -math.inf

    out = {}
    for name, case in zip(names, per_case, strict=True):
        best = max(chains, key=lambda c: qabf(c, case))
        out[name] = {m: case[m] for m in methods} | {"best chain": {"name": best, **case[best]}}
    return out


def over_cells(cells: Sequence[dict[str, Row]], models: Sequence[str], chains: Sequence[str]) -> dict:
    """A task's whole families section as one test set, the way a held-out set scores a method: each
    method's mean of each metric over the cells (every family and strength counting once), against the ONE
    chain with the best such mean per metric (a per-cell best chain changes from cell to cell)."""
    rows = mean_rows(list(cells))
    metric_names = sorted({k for row in rows.values() for k in row})
    return {
        "cells": len(cells),
        "models": {m: rows[m] for m in models},
        "best_chain": {k: list(best_of(rows, chains, k)) for k in metric_names},
    }


def better(metric: str, a: float, b: float) -> bool:
    """Whether value a beats value b on a metric (its direction from the metric registry)."""
    return a > b if metrics.METRICS[metric].higher_is_better else a < b


def best_of(rows: dict[str, Row], candidates: Sequence[str], metric: str) -> tuple[str, float]:
    """The candidate with the best mean value of a metric, and that value."""
    best = None
    for name in candidates:
        v = rows[name][metric]
        if math.isfinite(v) and (best is None or better(metric, v, best[1])):
            best = (name, v)
    return best if best is not None else ("-", math.nan)


def margin(metric: str, value: float, reference: float) -> float:
    """Signed margin of a value over a reference, positive when the value is better."""
    return value - reference if metrics.METRICS[metric].higher_is_better else reference - value


def arrow(metric: str) -> str:
    """↑ or ↓: the metric's good direction."""
    return "↑" if metrics.METRICS[metric].higher_is_better else "↓"


def fmt(v: float) -> str:
    """A table cell: 4 significant digits, '-' when undefined."""
    return f"{v:.4g}" if math.isfinite(v) else "-"


def metric_table(rows: dict[str, Row], names: Sequence[str], secs: Row | None = None) -> list[str]:
    """A markdown table: one row per method, one column per metric (and s/img when given)."""
    head = "| method | " + " | ".join(f"{n} {arrow(n)}" for n in names) + (" | s/img |" if secs else " |")
    lines = [head, "|---|" + "---:|" * (len(names) + (1 if secs else 0))]
    for m, r in rows.items():
        cells = " | ".join(fmt(r.get(n, math.nan)) for n in names)
        lines.append(f"| {m} | {cells} |" + (f" {secs[m]:.2f} |" if secs and m in secs else ""))
    return lines


def best_table(rows: dict[str, Row], names: Sequence[str]) -> list[str]:
    """Per metric: the best chain and the best plain classical fusion, with their values."""
    lines = ["| metric | best chain | value | best plain classical | value |", "|---|---|---:|---|---:|"]
    for n in names:
        (c, cv), (p, pv) = best_of(rows, CHAINS, n), best_of(rows, PLAIN, n)
        lines.append(f"| {n} {arrow(n)} | {c} | {cv:.4g} | {p} | {pv:.4g} |")
    return lines


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB, peak 1."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)
