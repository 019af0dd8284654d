"""Fitting the clean-input gate (allfuse.gate) of a model folder.

    allfuse train-gate MODEL_FOLDER RUN_DIR [samples=1800 clean_share=0.3 ...]
    allfuse export RUN_DIR MODEL_FOLDER          # adds gate.json (the run's tasks) to the folder

1. Samples (`samples.jsonl`, appended one line per sample, so an interrupted run resumes where it stopped):
   a random TRAINING pair of a task (the validation pairs of splits.json are never loaded), its long side
   capped to `max_side` and scaled by a random factor in [min_scale, 1], degraded by the training generator
   (allfuse.data.pipeline: the ops and ranges the DiT was trained on, one to three of them; `data_overrides`
   changes its PipelineConfig, e.g. `ir_weather_blur`) or, in `clean_share` of the samples, left clean.
   Each sample is fused twice, by the model (its whole default path) and by the teacher's rule on the
   inputs as the gate sees them (after the deblurring stage and the corrector), both scored against the
   CLEAN sources (Qabf, VIF), as are their mixes at BLENDS (step 4), and its FEATURES are recorded.
   Samples recorded with other FEATURES (an older version) are measured again on the same inputs, which a
   sample's seed and index determine; their scores are kept. At inference a pair deblocked at JPEG
   quality 50 or less takes the latent path whatever the gate says, and a deconvolved one gets no blend
   (FusionPipeline.gate_decision); such samples are still drawn and fitted like the others.
2. Fit, per task: a ridge logistic regression (Newton's method on standardized features) of P(the pair is
   clean). Not of "the rule scores better": on the training generator's degradations the rule, after the
   deblurring stage and the corrector, often scores better than the model, but the validation bench's
   degradations (other formulas, `bench/degrade.py`) are not those, and a gate fitted on that label sent
   degraded validation pairs to the rule and lost up to 0.16 Qabf on them. What transfers is "clean":
   the rule is the teacher, so on a clean pair it gives what the model was trained to give.
3. Threshold, per task: the P(clean) above which the rule fuses, chosen among THRESHOLDS by 5-fold
   cross-validation grouped by scene (a scene's samples are never both fitted and scored) to maximize
   the mean gain of the choice, g = dQabf + vif_weight * dVIF (rule minus model; degraded pairs that
   pass the gate count with their loss). The out-of-fold choices' gains, per task and for clean and
   degraded samples, are in `report.json`.
4. Blend, per task, for the pairs below the threshold: the two fusions are also scored mixed, at the rule
   weights BLENDS, and a second ridge logistic regression gives P(the rule scores better), each sample
   weighted by |g| (a near tie teaches little). The rule's weight in the output rises linearly from 0 at
   P = blend_from to blend_top at P = 1; (blend_from, blend_top) are chosen among BLEND_FROM x BLEND_TOP by
   the same grouped cross-validation, g interpolated between the scored weights; blend_top = 0 (no
   blend) wins ties. A hard switch on this label did not transfer (step 2); a mix loses less where the
   label is wrong, and on the samples mixes often beat both fusions (the model's softer, cleaner detail
   and the rule's sharper edges). Samples of older runs, without scored blends, get no blend.
   Only for `blend_tasks` (default: VIF and MFF). On the validation bench, blends for multi-exposure
   pairs cost those with strong JPEG up to 0.03 Qabf, with a higher BRISQUE. A VIF blend fitted while the
   training generator's low exposure was noiseless cost infrared + visible pairs with a dark visible image
   0.16 to 0.25 Qabf: on a clean dark image the guided filter's fusion often scores better, on a dark and
   noisy one (a real dim capture, as the bench's) it does not, and `low_exposure` adds that noise.
5. For `squares_tasks`, both regressions (steps 2 and 4) also weigh each standardized feature's square
   (allfuse.gate.TaskGate.squares). On the infrared + visible samples of allfuse-reg's stage 15 that raised
   the cross-validated gain (g +0.0172 -> +0.0190) and lost on the validation bench (VIF family mean
   -0.0005), so the shipped gates are linear.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from allfuse.gate import FEATURES, GateConfig, TaskGate, pair_features, rule_fusion
from allfuse.types import TASKS

GATE_REPORT = "report.json"
SAMPLES_FILE = "samples.jsonl"
THRESHOLDS = tuple(np.round(np.arange(0.5, 0.96, 0.05), 2))  # candidate thresholds of step 3
BLENDS = (0.25, 0.5, 0.75)  # rule weights at which each sample's blend of the two fusions is also scored
WEIGHTS = (0.0, *BLENDS, 1.0)  # every scored rule weight: 0 = the model's fusion, 1 = the rule's
BLEND_FROM = (0.3, 0.4, 0.5, 0.6, 0.7)  # candidate P(rule better) where the blend starts (step 4)
BLEND_TOP = (0.0, 0.25, 0.5, 0.75, 1.0)  # candidate rule weights the blend reaches at P(rule better) = 1
FOLDS = 5


@dataclass(frozen=True)
class GateTrainConfig:
    """A gate run: whose pipeline it gates, the samples it draws and how it is fitted."""

    model: str  # model folder (or embedded name): its whole default path is what the rule competes with
    out_dir: str = "runs/gate"
    # pair folders (searched a few levels deep); their splits.json validation pairs are skipped
    data: tuple[str, ...] = ("../shared/data",)
    samples: int = 1800
    clean_share: float = 0.3  # share of samples left undegraded
    max_side: int = 512  # long side the pairs are capped to (the models' latent path works at 512)
    min_scale: float = 0.6  # each pair is further scaled by a random factor in [min_scale, 1]
    vif_weight: float = 0.5  # g = dQabf + vif_weight * dVIF, the gain that picks the threshold
    l2: float = 1.0  # ridge weight on the standardized coefficients
    tasks: tuple[str, ...] = TASKS
    # overrides of the training generator's allfuse.data.pipeline.PipelineConfig (e.g. ir_weather_blur)
    data_overrides: dict = dataclasses.field(default_factory=dict)
    # tasks whose gate may blend (step 4); the others switch only. Chosen on the validation bench: for VIF
    # and MEF the blends fitted on the training generator lost there (module doc, step 4)
    blend_tasks: tuple[str, ...] = ("vif", "mff")
    # tasks whose regressions also see the squared standardized features (allfuse.gate.TaskGate.squares)
    squares_tasks: tuple[str, ...] = ()
    seed: int = 1
    threads: int = 0  # torch threads, 0 = torch's default

    def __post_init__(self) -> None:
        from allfuse.data.pipeline import PipelineConfig

        try:
            PipelineConfig(**self.data_overrides)
        except (TypeError, ValueError) as e:
            raise ValueError(f"bad gate run: data_overrides {self.data_overrides}: {e}") from None
        ok = (
            self.samples > 0
            and 0 <= self.clean_share <= 1
            and 0 < self.min_scale <= 1
            and self.max_side >= 64
        )
        if (
            not ok
            or self.l2 < 0
            or self.vif_weight < 0
            or not set(self.tasks) <= set(TASKS)
            or not set(self.blend_tasks) <= set(TASKS)
            or not set(self.squares_tasks) <= set(TASKS)
            or not self.tasks
        ):
            raise ValueError(
                "bad gate run: need samples > 0, 0 <= clean_share <= 1, 0 < min_scale <= 1, max_side >= 64, "
                f"l2 >= 0, vif_weight >= 0 and tasks, blend_tasks, squares_tasks among {', '.join(TASKS)}: "
                f"{self}"
            )


def sample_inputs(k: int, cfg: GateTrainConfig, pool, depth) -> tuple[str, int, list, list, list]:
    """Sample k's task, pair index, clean and degraded inputs and ops: a function of cfg.seed and k only."""
    import cv2

    from allfuse.data.pipeline import PipelineConfig, degrade_pair, sample_ops

    rng = np.random.default_rng([cfg.seed, k])
    task = cfg.tasks[k % len(cfg.tasks)]
    idx = pool.indices(task)
    if not idx:
        raise ValueError(f"no {task} training pairs under {', '.join(cfg.data)}")
    i = idx[int(rng.integers(len(idx)))]
    images, _ = pool.load(i, task)
    scale = float(rng.uniform(cfg.min_scale, 1.0))

    def resize(a: np.ndarray) -> np.ndarray:
        a = np.asarray(a, np.float32) / 255.0
        h, w = a.shape[:2]
        size = (max(16, round(w * scale)), max(16, round(h * scale)))
        return a if size == (w, h) else np.clip(cv2.resize(a, size, interpolation=cv2.INTER_AREA), 0, 1)

    clean = [resize(a) for a in images]
    ops: list[tuple[str, int]] = []
    degraded = [c.copy() for c in clean]
    if rng.random() >= cfg.clean_share:
        data_cfg = PipelineConfig(**cfg.data_overrides)
        ops = sample_ops(task, rng, data_cfg)
        out, _ = degrade_pair(clean, task, ops, rng, data_cfg, depth)
        degraded = [np.clip(np.asarray(x, np.float32), 0, 1) for x in out]
    return task, int(i), clean, degraded, ops


def draw_sample(k: int, cfg: GateTrainConfig, pool, pipe, depth) -> dict:
    """Sample k of the run (a function of cfg.seed and k only): degrade, fuse twice, score, measure."""
    from allfuse import metrics
    from allfuse.color import to_gray

    task, i, clean, degraded, ops = sample_inputs(k, cfg, pool, depth)
    seen = pipe.gate_inputs(degraded, task)
    rule = rule_fusion(seen, task)
    model = pipe(degraded, task=task, gate=False)
    if model.ndim == 2:
        rule = to_gray(rule)
    names = ["Qabf", "VIF"]
    blends = {f"{a:g}": metrics.compute((1 - a) * model + a * rule, clean, names=names) for a in BLENDS}
    return {
        "k": k,
        "task": task,
        "pair": i,
        "scene": f"{pool.pairs[i].dataset}/{pool.pairs[i].name}",
        "ops": [[op, level] for op, level in ops],
        "features": pair_features(seen).tolist(),
        "model": metrics.compute(model, clean, names=names),
        "rule": metrics.compute(rule, clean, names=names),
        "blends": blends,
    }


def measure_again(records: list[dict], cfg: GateTrainConfig, pool, pipe, depth) -> None:
    """Samples whose features another version measured (another FEATURES): measure them again, in place,
    on the same inputs (sample_inputs is deterministic); their fusions' scores do not depend on the
    features and are kept."""
    for r in records:
        if len(r["features"]) != len(FEATURES):
            task, i, _, degraded, _ = sample_inputs(r["k"], cfg, pool, depth)
            if (task, i) != (r["task"], r["pair"]):
                raise ValueError(f"sample {r['k']} is not the one this run draws: start a new run folder")
            r["features"] = pair_features(pipe.gate_inputs(degraded, task)).tolist()


def read_samples(path: Path) -> list[dict]:
    """The samples recorded so far; a last line cut short by a killed run is dropped (and rewritten)."""
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    records = []
    for n, line in enumerate(lines):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if n != len(lines) - 1:
                raise ValueError(f"{path}: line {n + 1} is not a sample") from None
            path.write_text("".join(json.dumps(r) + "\n" for r in records))  # before appending after it
    return records


def collect_samples(cfg: GateTrainConfig, path: Path, until: int | None = None) -> list[dict]:
    """Step 1 (module doc): append samples to `path` until it holds cfg.samples (or `until`); all of them."""
    import torch

    from allfuse.data.depth import get_depth_provider
    from allfuse.data.sources import PairPool
    from allfuse.pipeline import FusionPipeline

    records = read_samples(path)
    stop = cfg.samples if until is None else min(until, cfg.samples)
    stale = any(len(r["features"]) != len(FEATURES) for r in records[:stop])
    if len(records) < stop or stale:
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        pool = PairPool(list(cfg.data), max_side=cfg.max_side)
        pipe = FusionPipeline.from_pretrained(cfg.model)
        depth = get_depth_provider("heuristic")
        if stale:
            print(f"measuring the features of {path} again ({len(FEATURES)} per sample)", flush=True)
            measure_again(records, cfg, pool, pipe, depth)
            tmp = path.with_suffix(".tmp")
            tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
            tmp.replace(path)
        t0, start = time.perf_counter(), len(records)
        with path.open("a") as f:
            for k in range(start, stop):
                records.append(draw_sample(k, cfg, pool, pipe, depth))
                f.write(json.dumps(records[-1]) + "\n")
                f.flush()
                if (k + 1) % 50 == 0 or k + 1 == stop:
                    rate = (time.perf_counter() - t0) / (k + 1 - start)
                    print(f"sample {k + 1}/{cfg.samples} ({rate:.2f} s each)", flush=True)
    return records[:stop]


def gains(records: Sequence[dict], vif_weight: float) -> np.ndarray:
    """g of each sample (module doc, step 3) at each rule weight of WEIGHTS, (n, len(WEIGHTS)): the blend's
    score minus the model's; samples without scored blends (older runs) get them interpolated linearly, and
    fit_gate fits no blend on them."""

    def score(s: dict) -> float:
        return float(np.nan_to_num(s["Qabf"]) + vif_weight * np.nan_to_num(s["VIF"]))

    out = np.zeros((len(records), len(WEIGHTS)))
    for n, r in enumerate(records):
        ends = score(r["model"]), score(r["rule"])
        blends = r.get("blends") or {}
        mid = [score(blends[f"{a:g}"]) if f"{a:g}" in blends else np.interp(a, (0, 1), ends) for a in BLENDS]
        out[n] = np.array([ends[0], *mid, ends[1]]) - ends[0]
    return out


def gain_at(g: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Each sample's gain at its rule weight, interpolated between the scored WEIGHTS."""
    return np.array([np.interp(w, WEIGHTS, row) for row, w in zip(g, weight, strict=True)])


def blend_weight(p_better: np.ndarray, start: float, top: float) -> np.ndarray:
    """The rule's weight of the blend (allfuse.gate.TaskGate.rule_weight) at P(the rule scores better)."""
    return top * np.clip((p_better - start) / (1.0 - start), 0.0, 1.0)


def standardization(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and scale of samples x; a constant column (one task only) gets scale 1, no weight."""
    mean, scale = x.mean(axis=0), x.std(axis=0)
    return mean, np.where(scale > 1e-9, scale, 1.0)


def fit_logistic(x: np.ndarray, y: np.ndarray, w: np.ndarray, l2: float) -> tuple[np.ndarray, ...]:
    """Weighted ridge logistic regression by Newton's method on standardized features: (mean, scale,
    coefficients, bias)."""
    mean, scale = standardization(x)
    z = np.c_[(x - mean) / scale, np.ones(len(x))]
    ridge = l2 * np.diag(np.r_[np.ones(z.shape[1] - 1), 0.0])
    beta = np.zeros(z.shape[1])
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-z @ beta))
        grad = z.T @ (w * (p - y)) + ridge @ beta
        hess = (z * (w * p * (1 - p))[:, None]).T @ z + ridge + 1e-9 * np.eye(z.shape[1])
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    return mean, scale, beta[:-1], beta[-1]


def probabilities(model: tuple[np.ndarray, ...], x: np.ndarray) -> np.ndarray:
    """P(label) of each row of x under a fit_logistic model."""
    mean, scale, coef, bias = model
    return 1.0 / (1.0 + np.exp(-(((x - mean) / scale) @ coef + bias)))


def cross_validate(
    x: np.ndarray, y: np.ndarray, groups: Sequence[str], l2: float, seed: int, w: np.ndarray | None = None
) -> np.ndarray:
    """Out-of-fold probabilities of labels y (sample weights w, default 1), FOLDS folds grouped by scene."""
    w = np.ones(len(x)) if w is None else w
    names = sorted(set(groups))
    fold_of = dict(zip(names, np.random.default_rng(seed).integers(FOLDS, size=len(names)), strict=True))
    fold = np.array([fold_of[s] for s in groups])
    p = np.zeros(len(x))
    for k in range(FOLDS):
        train = fold != k
        if not train.any():  # too few scenes for the folds: no out-of-fold estimate
            p[:] = 0.5
            continue
        p[~train] = probabilities(fit_logistic(x[train], y[train], w[train], l2), x[~train])
    return p


def summarize(records: Sequence[dict], weight: np.ndarray, g: np.ndarray, vif_weight: float) -> dict:
    """Mean Qabf and VIF gain of a rule weight per sample (1: the rule, 0: the model, between: a blend):
    overall, per task, clean and degraded, with the shares of samples given to the rule and blended."""
    q = gains(records, 0.0)  # vif_weight 0: the Qabf part alone
    qa, ga = gain_at(q, weight), gain_at(g, weight)
    v = (ga - qa) / vif_weight if vif_weight else np.zeros(len(records))
    tasks = np.array([r["task"] for r in records])
    clean = np.array([not r["ops"] for r in records])
    groups = {"all": np.ones(len(records), bool), "clean": clean, "degraded": ~clean}
    groups |= {t: tasks == t for t in TASKS if (tasks == t).any()}
    return {
        name: {
            "n": int(m.sum()),
            "rule_share": round(float((weight[m] >= 1).mean()), 4),
            "blend_share": round(float(((weight[m] > 0) & (weight[m] < 1)).mean()), 4),
            "Qabf_gain": round(float(qa[m].mean()), 5),
            "VIF_gain": round(float(v[m].mean()), 5),
            "best_possible_Qabf_gain": round(float(q[m].max(axis=1).mean()), 5),
        }
        for name, m in groups.items()
        if m.any()
    }


def fit_blend(
    x: np.ndarray, g: np.ndarray, scenes: Sequence[str], gated: np.ndarray, cfg: GateTrainConfig
) -> tuple[dict, np.ndarray, dict]:
    """Step 4 (module doc) for one task: the blend's TaskGate fields, its out-of-fold rule weights of the
    samples the gate leaves to the model (`gated` False), and the cross-validated gain of each candidate."""
    better = (g[:, -1] > 0).astype(np.float64)
    size = np.abs(g[:, -1])
    w = size / size.mean() if size.mean() > 0 else np.ones(len(x))
    q = cross_validate(x, better, scenes, cfg.l2, cfg.seed, w)
    table, best, weight = {}, (-np.inf, 0.0, BLEND_FROM[0]), np.zeros(len(x))
    for top in BLEND_TOP:  # ascending: a tie keeps the smaller blend
        for start in BLEND_FROM:
            a = np.where(gated, 1.0, blend_weight(q, start, top))
            gain = float(gain_at(g, a).mean())
            table[f"{start:.1f}/{top:.2f}"] = round(gain, 5)
            if gain > best[0] + 1e-9:
                best, weight = (gain, top, start), a
    _, top, start = best
    fields = {"blend_weights": (), "blend_bias": 0.0, "blend_from": 0.5, "blend_top": 0.0}
    if top > 0:
        _, _, coef, bias = fit_logistic(x, better, w, cfg.l2)
        fields = {
            "blend_weights": tuple(float(c) for c in coef),
            "blend_bias": float(bias),
            "blend_from": start,
            "blend_top": top,
        }
    return fields, weight, table


def with_squares(x: np.ndarray) -> np.ndarray:
    """Features (n, len(FEATURES)) and their squares after standardization over these samples, as
    allfuse.gate.TaskGate.standardized expands one pair's (fit_logistic then finds the same means and
    scales for the first len(FEATURES) columns)."""
    mean, scale = standardization(x)
    return np.c_[x, ((x - mean) / scale) ** 2]


def feature_names(squares: bool) -> tuple[str, ...]:
    """Names of a TaskGate's coefficients."""
    return FEATURES + tuple(f"{f}^2" for f in FEATURES) if squares else FEATURES


def fit_gate(records: Sequence[dict], cfg: GateTrainConfig) -> tuple[GateConfig, dict]:
    """Steps 2-4 (module doc), task by task: the gate and its report."""
    x = np.array([r["features"] for r in records], dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != len(FEATURES):
        raise ValueError(f"samples have {x.shape[-1]} features, this version measures {len(FEATURES)}")
    g = gains(records, cfg.vif_weight)
    tasks = np.array([r["task"] for r in records])
    scenes = np.array([r["scene"] for r in records])
    clean = np.array([not r["ops"] for r in records], dtype=np.float64)
    cv_weight, fit_weight = np.zeros(len(x)), np.zeros(len(x))
    scored = all(r.get("blends") for r in records)  # samples of older runs have no scored blends
    gates, by_threshold, by_blend = {}, {}, {}
    for task in cfg.tasks:
        m = tasks == task
        if not m.any():
            raise ValueError(f"no {task} samples to fit the gate on")
        xt = with_squares(x[m]) if task in cfg.squares_tasks else x[m]
        p = cross_validate(xt, clean[m], list(scenes[m]), cfg.l2, cfg.seed)
        gain = {float(t): float((g[m, -1] * (p >= t)).mean()) for t in THRESHOLDS}
        threshold = max(gain, key=gain.get)  # type: ignore[arg-type]
        mean, scale, coef, bias = fit_logistic(xt, clean[m], np.ones(m.sum()), cfg.l2)
        if scored and task in cfg.blend_tasks:
            blend, cv_weight[m], by_blend[task] = fit_blend(xt, g[m], list(scenes[m]), p >= threshold, cfg)
        else:
            blend, cv_weight[m] = {}, (p >= threshold).astype(np.float64)
        gates[task] = TaskGate(
            weights=tuple(float(c) for c in coef),
            bias=float(bias),
            mean=tuple(float(v) for v in mean),
            scale=tuple(float(v) for v in scale),
            threshold=threshold,
            squares=task in cfg.squares_tasks,
            **blend,
        )
        fit_weight[m] = [gates[task].rule_weight(f)[1] for f in x[m]]
        by_threshold[task] = {f"{t:.2f}": round(v, 5) for t, v in gain.items()}
    report = {
        "samples": len(records),
        "thresholds": {t: gates[t].threshold for t in cfg.tasks},
        "blends": {t: {"from": gates[t].blend_from, "top": gates[t].blend_top} for t in cfg.tasks},
        "cross_validated_gain_by_threshold": by_threshold,
        "cross_validated_gain_by_blend": by_blend,
        "cross_validated": summarize(records, cv_weight, g, cfg.vif_weight),
        "fitted_on_all": summarize(records, fit_weight, g, cfg.vif_weight),
        "coefficients": {
            t: dict(
                sorted(
                    zip(
                        feature_names(gates[t].squares), (round(w, 4) for w in gates[t].weights), strict=True
                    ),
                    key=lambda i: -abs(i[1]),
                )
            )
            for t in cfg.tasks
        },
    }
    return GateConfig(tasks=gates), report


def train_gate(cfg: GateTrainConfig, until: int | None = None) -> Path:
    """Collect (or resume) the samples, fit, write gate.json and report.json into cfg.out_dir; with
    `until` below cfg.samples, stop after that many samples without fitting."""
    from allfuse.io import atomic_write_text
    from allfuse.model_folder import GATE_CONFIG

    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "run.json", json.dumps(dataclasses.asdict(cfg), indent=2))
    records = collect_samples(cfg, out / SAMPLES_FILE, until)
    if len(records) < cfg.samples:
        print(f"{len(records)} of {cfg.samples} samples in {out / SAMPLES_FILE}; run again to go on")
        return out
    gate, report = fit_gate(records, cfg)
    atomic_write_text(out / GATE_CONFIG, json.dumps({"gate": gate.to_dict()}, indent=2))
    atomic_write_text(out / GATE_REPORT, json.dumps(report, indent=2))
    cv = report["cross_validated"]
    for name, row in cv.items():
        print(
            f"{name:9s} n={row['n']:5d}  rule {row['rule_share']:.2f}  blend {row['blend_share']:.2f}  "
            f"Qabf {row['Qabf_gain']:+.4f}  "
            f"VIF {row['VIF_gain']:+.4f}  (best possible Qabf {row['best_possible_Qabf_gain']:+.4f})"
        )
    print(
        "thresholds (cross-validated): " + ", ".join(f"{t} {g.threshold:.2f}" for t, g in gate.tasks.items())
    )
    print(
        "blends (cross-validated, from P(rule better) / top weight): "
        + ", ".join(f"{t} {g.blend_from:.1f} / {g.blend_top:.2f}" for t, g in gate.tasks.items())
    )
    return out
