"""Run fusion methods x datasets x metrics and collect per-image scores and per-dataset means."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from allfuse import baselines, metrics
from allfuse.io import ImageError, Pair, scan_pairs
from allfuse.types import Image, Task

# A fusion method as evaluation sees it: sources + task -> fused image.
FuseFn = Callable[[Sequence[Image], Task | None], Image]


@dataclass
class Sample:
    """What the report shows of one pair: its sources and each method's output (kept small)."""

    dataset: str
    name: str
    sources: list[Image]
    outputs: dict[str, Image] = field(default_factory=dict)


@dataclass
class EvalResult:
    """Per-image rows, per-dataset means, kept thumbnails and the problems met on the way."""

    rows: list[dict[str, object]] = field(default_factory=list)
    means: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    metric_names: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)


def baseline_fn(method: str) -> FuseFn:
    """Wrap a classical baseline as a FuseFn (checks the name now, not on the first pair)."""
    if baselines.get_method(method).kind == "restoration":
        raise ValueError(f"{method!r} restores but does not fuse: chain it with a fusion, e.g. {method}+gff")
    return lambda images, task: baselines.fuse(method, images, task)


def method_fns(names: Sequence[str]) -> dict[str, FuseFn]:
    """FuseFns by name: classical methods and chains, and models (allfuse-reg, allfuse-fm or a model
    folder), each model loaded once. Every name is checked before any model loads."""
    from allfuse.baselines.registry import valid_names
    from allfuse.model_folder import EMBEDDED, read_model_config, resolve_model_folder

    models = [n for n in names if n in EMBEDDED or (n not in baselines.METHODS and Path(n).is_dir())]
    for name in names:
        if name in models:
            read_model_config(resolve_model_folder(name))  # no model there, or a bad config.json
        elif name in baselines.METHODS or "+" in name:
            baseline_fn(name)
        else:
            raise ValueError(
                f"unknown method {name!r}; {valid_names()}; models: {', '.join(EMBEDDED)} or a model folder"
            )
    return {n: model_fn(n) if n in models else baseline_fn(n) for n in dict.fromkeys(names)}


def model_fn(name: str) -> FuseFn:
    """Load a model (an embedded name or a model folder) once and wrap it as a FuseFn with its defaults."""
    from allfuse.pipeline import FusionPipeline

    pipe = FusionPipeline.from_pretrained(name)
    return lambda images, task: pipe(images, task=task or "auto")


def resolve_metric_names(spec: str | Sequence[str]) -> list[str] | None:
    """Turn 'all' or a comma list into metric names (None = every available metric)."""
    if isinstance(spec, str):
        if spec.strip().lower() == "all":
            return None
        spec = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [n for n in spec if n not in metrics.METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {', '.join(metrics.METRICS)}")
    return list(spec)


def _thumbnail(x: Image, max_side: int = 256) -> Image:
    """Downscale by striding-free area averaging so report grids stay small."""
    h, w = x.shape[:2]
    step = max(1, math.ceil(max(h, w) / max_side))
    if step == 1:
        return x
    hh, ww = (h // step) * step, (w // step) * step
    y = x[:hh, :ww].reshape(hh // step, step, ww // step, step, *x.shape[2:])
    return y.mean(axis=(1, 3)).astype(np.float32)


def evaluate(
    data_dirs: Sequence[str | Path],
    methods: dict[str, FuseFn],
    metric_names: list[str] | None = None,
    limit: int | None = None,
    keep_samples: int = 4,
    progress: bool = True,
) -> EvalResult:
    """Score every method on every pair of every dataset; bad files are reported and skipped."""
    result = EvalResult(methods=list(methods))
    jobs: list[Pair] = []
    for d in data_dirs:
        try:
            scan = scan_pairs(d)
        except (ImageError, OSError) as e:
            result.problems.append(str(e))
            continue
        result.problems.extend(scan.problems)
        jobs.extend(scan.pairs[:limit] if limit else scan.pairs)
    kept: dict[str, int] = {}
    for pair in tqdm(jobs, desc="eval", unit="pair", disable=not progress):
        _evaluate_pair(pair, methods, metric_names, result, keep=kept.get(pair.dataset, 0) < keep_samples)
        kept[pair.dataset] = kept.get(pair.dataset, 0) + 1
    result.means = dataset_means(result.rows, result.methods)
    seen = {k for r in result.rows for k in r if k not in ("dataset", "pair", "method", "task")}
    result.metric_names = [m for m in metrics.METRICS if m in seen]
    return result


def _evaluate_pair(
    pair: Pair, methods: dict[str, FuseFn], names: list[str] | None, result: EvalResult, keep: bool
) -> None:
    """Fuse one pair with every method and append one row of scores per method."""
    try:
        sources, reference = pair.load()
    except ImageError as e:
        result.problems.append(str(e))
        return
    sample = Sample(pair.dataset, pair.name, [_thumbnail(s) for s in sources]) if keep else None
    for method, fn in methods.items():
        try:
            fused = fn(sources, pair.task)
            scores = metrics.compute(fused, sources, names=names, reference=reference)
        except Exception as e:  # one failing method must not end the whole evaluation
            result.problems.append(f"{pair.sources[0]}: {method} failed ({type(e).__name__}: {e})")
            continue
        result.rows.append(
            {"dataset": pair.dataset, "pair": pair.name, "method": method, "task": pair.task or "", **scores}
        )
        if sample is not None:
            sample.outputs[method] = _thumbnail(fused)
    if sample is not None:
        result.samples.append(sample)


def dataset_means(
    rows: list[dict[str, object]], methods: list[str]
) -> dict[str, dict[str, dict[str, float]]]:
    """Mean of each metric over the finite per-image values, per dataset and method."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for row in rows:
        ds, m = str(row["dataset"]), str(row["method"])
        acc = out.setdefault(ds, {}).setdefault(m, {})
        for k, v in row.items():
            if k in ("dataset", "pair", "method", "task"):
                continue
            acc.setdefault(k, []).append(float(v))  # type: ignore[attr-defined, arg-type]
    for ds in out:
        ordered = {m: out[ds][m] for m in methods if m in out[ds]}
        out[ds] = {m: {k: _finite_mean(v) for k, v in d.items()} for m, d in ordered.items()}  # type: ignore[arg-type]
    return out


def _finite_mean(values: list[float]) -> float:
    """Mean over finite values (an infinite PSNR of an identical image is skipped); NaN when none."""
    a = np.asarray(values, dtype=np.float64)
    a = a[np.isfinite(a)]
    return float(a.mean()) if a.size else float("nan")
