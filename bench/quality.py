"""Validation quality: allfuse models vs every restore-then-fuse chain vs plain classical fusion.

    OMP_NUM_THREADS=1 python bench/quality.py --out bench/results/quality_val.md

Sections (--sections, all by default):

* main      — the first --pairs validation pairs per task (splits.json "val", never trained on), long
              side capped at --max-side, each degraded with a random mix of 2-3 of the bench's OWN
              degradation families (bench/degrade.py, not the training generator). Scored against the clean
              sources (Qabf, VIF, SF, AG, SSIM, BRISQUE) and against the teacher target, the task's classical
              default fusion of the CLEAN pair (PSNR_ref, SSIM_ref). Rows: the models, the best chain per
              metric, the best plain classical fusion per metric, and the teacher on the clean pair.
* clean     — every validation pair (--clean-pairs) undegraded: model Qabf vs the teacher's; for context
              also every plain classical fusion and each source alone (what the metrics reward when
              nothing is degraded: on infrared + visible pairs the infrared image alone can out-score
              the teacher on Qabf).
* families  — per task, each family alone at two strengths (and `mix`) on --family-pairs pairs: Qabf of
              each model vs the best chain of that cell, and (INFO, not an acceptance check) vs the best
              chain that fuses with the task's teacher rule: a model trained to restore and then fuse as
              that rule does can lose the first comparison by the rule choice alone (every chain's Qabf
              and VIF per cell is in the JSON). Then, per task, all cells taken as one test set (INFO):
              each model's mean Qabf and VIF over them against the ONE chain with the best such mean, as a
              held-out set of mixed damage scores a method.
* identity  — well-exposed sharp photos fused with themselves (PSNR, mean shift), and a dark night image.
              --identity-set wide adds scikit-image's gray photographs (textures, a page, the moon, coins)
              and the in-focus crops of every MFF validation pair: its line is INFO, the acceptance check
              is defined on the 10 photos of the default set.

--generator albumentations draws the families section's damage from a second, independent code base
(bench/degrade_alb.py: albumentations' fog, rain, snow, kernels, noise, exposure, JPEG and downscaling;
`pip install -e ".[bench]"`), a cross-check that a win is not one generator's: its lines are INFO, the
acceptance checks are defined on bench/degrade.py. --generator imagenet_c is a third one: ImageNet-C's
common corruptions (Hendrycks & Dietterich 2019), written here from the paper (bench/degrade_c.py).

Acceptance checks print as PASS/FAIL lines with margins, again together at the end. BRISQUE is compared
with --brisque-baseline (the JSON of an earlier run). --out writes markdown (with the command line) and
JSON beside it; nothing else is written. The JSON also holds, for the main section and every family cell,
each pair's scores of each model and of that pair's best chain (`per_pair`), to trace a mean to its pairs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import degrade
import degrade_alb
import degrade_c
import numpy as np
from cases import SHARED, TASKS, degrade_case, identity_photos, night_image, validation_pairs
from degrade import MIX, STRENGTHS
from scoring import (
    CHAINS,
    MAIN_METRICS,
    PLAIN,
    SOURCE_METRICS,
    Method,
    best_of,
    best_table,
    classical_outputs,
    gate_summary,
    load_models,
    margin,
    mean_rows,
    metric_table,
    over_cells,
    pair_rows,
    psnr,
    run_models,
    score,
)

from allfuse import baselines
from allfuse.tasks import CLASSICAL_DEFAULT, guess_task

SECTIONS = ("main", "clean", "families", "identity")
GENERATORS = {
    "bench": degrade,
    "albumentations": degrade_alb,
    "imagenet_c": degrade_c,
}  # --generator: the families' degradations
BRISQUE_BASELINE = Path(__file__).resolve().parent / "results" / "quality_val_before.json"
SHARPNESS_TOLERANCE = 0.15  # SF and AG within 15 % of the teacher fusion of the clean pair
CLEAN_QABF_TOLERANCE = 0.02
ALLOWED_FAMILY_FAILURES = 2
SUMMARY_METRICS = ["Qabf", "VIF"]  # what the families section scores (its cells' table: Qabf)
IDENTITY_PSNR, IDENTITY_SHIFT = 35.0, 1.0  # dB, and |mean shift| in 1/255 steps


class Report:
    """Lines printed as they come (flushed) and kept for the markdown file; checks also kept apart."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.checks: list[str] = []

    def say(self, *lines: str) -> None:
        """Print lines and keep them."""
        for line in lines:
            print(line, flush=True)
            self.lines.append(line)

    def check(self, ok: bool, text: str) -> None:
        """Print and keep one PASS/FAIL line."""
        line = f"{'PASS' if ok else 'FAIL'}  {text}"
        self.say(line)
        self.checks.append(line)


def brisque_checks(report: Report, section: str, task: str, rows: dict, baseline: dict | None) -> None:
    """BRISQUE of each model now vs in the baseline run (lower is better), per task."""
    for model in (m for m in rows if m.startswith("allfuse")):
        now = rows[model]["BRISQUE"]
        before = (baseline or {}).get(section, {}).get(task, {}).get("rows", {}).get(model, {}).get("BRISQUE")
        if before is None:
            report.say(f"INFO  {section} {task} {model} BRISQUE {now:.2f} (no baseline to compare with)")
        else:
            text = f"{section} {task} {model} BRISQUE {now:.2f} vs before {before:.2f}"
            report.check(now <= before, f"{text} (margin {before - now:+.2f}, lower is better)")


def main_task(task: str, args: argparse.Namespace, models: dict[str, Method], report: Report) -> dict:
    """One task of the main section: each pair degraded by a mix, fused by every method, scored."""
    pairs = validation_pairs(args.data, task, args.pairs, args.max_side)
    report.say("", f"### main — {task.upper()}: {len(pairs)} validation pairs, mix of 2-3 families", "")
    per_case, teacher, secs = [], [], {m: 0.0 for m in models}
    for pair in pairs:
        case = degrade_case(pair, MIX, None)
        outs, s = run_models(models, case.degraded, task)
        secs = {m: secs[m] + s[m] / len(pairs) for m in models}
        outs.update(classical_outputs(case.degraded, task))
        per_case.append(score(outs, pair.images, MAIN_METRICS, pair.target))
        teacher.append(score({"teacher": pair.target}, pair.images, SOURCE_METRICS))
        cells = ", ".join(f"{m} {per_case[-1][m]['Qabf']:.3f}" for m in models)
        chain = max(per_case[-1][c]["Qabf"] for c in CHAINS)
        # per pair, so a sharpness deficit can be traced to the degradations that cause it
        sharp = ", ".join(f"{m} {per_case[-1][m]['SF']:.1f}" for m in models)
        report.say(
            f"- {pair.name} [{' + '.join(case.steps)}] Qabf: {cells}, best chain {chain:.3f}; "
            f"SF: {sharp}, teacher on clean {teacher[-1]['teacher']['SF']:.1f}"
        )
    rows = mean_rows(per_case)
    ref = mean_rows(teacher)["teacher"]
    shown = {m: rows[m] for m in models} | {"teacher on CLEAN pair (reference)": ref}
    report.say("", *metric_table(shown, MAIN_METRICS, secs), "", *best_table(rows, MAIN_METRICS), "")
    return {
        "pairs": [p.name for p in pairs],
        "rows": rows,
        "teacher_clean": ref,
        "seconds_per_pair": secs,
        "best_chain": {n: best_of(rows, CHAINS, n) for n in MAIN_METRICS},
        "best_plain": {n: best_of(rows, PLAIN, n) for n in MAIN_METRICS},
        "per_pair": pair_rows([p.name for p in pairs], per_case, list(models), CHAINS),
    }


def main_checks(task: str, result: dict, models: dict[str, Method], report: Report) -> None:
    """Acceptance (i) Qabf and VIF above the best chain, (ii) SF and AG within 15 % of the teacher."""
    rows, ref = result["rows"], result["teacher_clean"]
    for model in models:
        for metric in ("Qabf", "VIF"):
            name, value = best_of(rows, CHAINS, metric)
            m = margin(metric, rows[model][metric], value)
            text = f"main {task} {model} {metric} {rows[model][metric]:.4f} vs best chain {name} {value:.4f}"
            report.check(m > 0, f"{text} (margin {m:+.4f})")
        for metric in ("SF", "AG"):
            v = rows[model][metric]
            ratio = v / ref[metric]
            text = f"main {task} {model} {metric} {v:.3f} vs teacher on clean {ref[metric]:.3f}"
            limit = f"allowed ±{100 * SHARPNESS_TOLERANCE:.0f} %"
            ok = abs(ratio - 1) <= SHARPNESS_TOLERANCE
            report.check(ok, f"{text} ({100 * (ratio - 1):+.1f} %, {limit})")


def main_section(
    args: argparse.Namespace, models: dict[str, Method], report: Report, baseline: dict | None
) -> dict:
    """Degraded (mix) validation pairs: every method, every metric, acceptance (i)-(iii)."""
    out = {}
    for task in args.tasks:
        out[task] = main_task(task, args, models, report)
        main_checks(task, out[task], models, report)
        brisque_checks(report, "main", task, out[task]["rows"], baseline)
    return out


def clean_section(
    args: argparse.Namespace, models: dict[str, Method], report: Report, baseline: dict | None
) -> dict:
    """Undegraded validation pairs: model Qabf within 0.02 of the teacher's, acceptance (iv)."""
    out, names = {}, ("Qabf", "SF", "AG", "BRISQUE")
    for task in args.tasks:
        pairs = validation_pairs(args.data, task, args.clean_pairs, args.max_side)
        per_case = []
        alone = [f"source {i + 1} alone" for i in range(2)]
        for pair in pairs:
            outs = run_models(models, pair.images, task)[0] | {"teacher": pair.target}
            outs |= {f: baselines.fuse(f, list(pair.images), task) for f in PLAIN}
            outs |= dict(zip(alone, pair.images, strict=False))
            per_case.append(score(outs, pair.images, names))
        rows = mean_rows(per_case)
        report.say("", f"### clean — {task.upper()}: {len(pairs)} validation pairs, no degradation", "")
        report.say(*metric_table({k: rows[k] for k in [*models, "teacher"]}, names), "")
        rule, rule_q = best_of(rows, PLAIN, "Qabf")
        src, src_q = best_of(rows, alone, "Qabf")
        context = f"best plain rule {rule} {rule_q:.4f}, {src} {src_q:.4f}"
        report.say(f"Context, Qabf on the same pairs: {context}.", "")
        for model in models:
            q, qt = rows[model]["Qabf"], rows["teacher"]["Qabf"]
            text = f"clean {task} {model} Qabf {q:.4f} vs teacher {qt:.4f}"
            ok = q - qt >= -CLEAN_QABF_TOLERANCE
            report.check(ok, f"{text} (margin {q - qt:+.4f}, allowed -{CLEAN_QABF_TOLERANCE})")
        brisque_checks(report, "clean", task, rows, baseline)
        out[task] = {"pairs": [p.name for p in pairs], "rows": rows}
    return out


def family_cell(pairs: list, family: str, strength: str, models: dict[str, Method], generator=None) -> dict:
    """Mean Qabf and VIF of the models and of every chain over the pairs degraded by one family at one
    strength (by `generator`, None: bench/degrade.py); the best chain by Qabf overall and the best that
    fuses with the task's teacher rule (CLASSICAL_DEFAULT)."""
    per_case = []
    for pair in pairs:
        case = degrade_case(pair, family, strength, generator)
        outs = run_models(models, case.degraded, pair.task)[0]
        outs.update(classical_outputs(case.degraded, pair.task, plain=False))
        per_case.append(score(outs, pair.images, SUMMARY_METRICS))
    rows = mean_rows(per_case)
    task = pairs[0].task
    teacher_chains = [c for c in CHAINS if c.endswith(f"+{CLASSICAL_DEFAULT[task]}")]
    return {
        "best_chain": list(best_of(rows, CHAINS, "Qabf")),
        "teacher_rule_chain": list(best_of(rows, teacher_chains, "Qabf")),
        "chains": {c: rows[c]["Qabf"] for c in CHAINS},
        "models": {m: rows[m]["Qabf"] for m in models},
        "vif": {"chains": {c: rows[c]["VIF"] for c in CHAINS}, "models": {m: rows[m]["VIF"] for m in models}},
        "per_pair": pair_rows([p.name for p in pairs], per_case, list(models), CHAINS),
    }


def summary_lines(task: str, summary: dict) -> list[str]:
    """INFO lines: each model's mean Qabf and VIF over a task's cells against the one chain with the best
    mean of each (scoring.over_cells), as a held-out set of mixed damage scores a method."""
    lines = []
    for metric in SUMMARY_METRICS:
        name, value = summary["best_chain"][metric]
        scores = ", ".join(
            f"{m} {row[metric]:.4f} ({margin(metric, row[metric], value):+.4f})"
            for m, row in summary["models"].items()
        )
        lines.append(
            f"INFO  families {task} over all {summary['cells']} cells, mean {metric}: {scores}; "
            f"best single chain {name} {value:.4f}"
        )
    return lines


def families_section(args: argparse.Namespace, models: dict[str, Method], report: Report) -> dict:
    """Each family alone at two strengths (and mix), per task: Qabf vs the best chain, acceptance (v)."""
    out: dict[str, dict] = {}
    worst: dict[str, dict[str, float]] = {m: {} for m in models}  # model -> "task/family" -> min margin
    # the same against the best chain that fuses as the teacher does: what restoration alone is up against
    worst_teacher: dict[str, dict[str, float]] = {m: {} for m in models}
    above: set[str] = set()  # "task/family" cells whose best chain out-scores the teacher's clean fusion
    summary: dict[str, dict] = {}  # task -> its cells as one test set (over_cells)
    gen = GENERATORS[args.generator]
    cross = gen is not degrade  # a cross-check generator: INFO lines, not acceptance checks
    if gen is degrade_alb:
        degrade_alb.albumentations()  # fails here, clearly, when it is not installed
    for task in args.tasks:
        pairs = validation_pairs(args.data, task, args.family_pairs, args.max_side)
        fams = [f for f in args.families if f == MIX or f in gen.TASK_FAMILIES[task]]
        # What the models imitate, on the same pairs: a chain above it asks for more than the target.
        teacher = float(np.mean([score({"t": p.target}, p.images, ["Qabf"])["t"]["Qabf"] for p in pairs]))
        report.say(
            "",
            f"### families — {task.upper()}: {len(pairs)} pairs per cell, Qabf vs clean sources"
            + (f", degraded by {args.generator} (bench/{gen.__name__}.py)" if cross else ""),
            "",
            f"The teacher's fusion of the clean pairs (the models' training target) scores Qabf "
            f"{teacher:.4f} on them; a best chain marked ^ scores above it.",
            "",
        )
        head = " | ".join(f"{m} | Δ | Δ rule" for m in models)
        report.say(
            f"Δ: against the best chain; Δ rule: against the best chain that fuses with the teacher's rule "
            f"({CLASSICAL_DEFAULT[task]}), the chain a model must beat by restoration alone.",
            "",
            f"| family | strength | best chain | Qabf | with {CLASSICAL_DEFAULT[task]} | Qabf | {head} | s |",
            "|---|---|---|---:|---|---:|" + "---:|" * (3 * len(models) + 1),
        )
        out[task], rows = {}, []
        for fam in fams:
            for st in STRENGTHS:
                t0 = time.perf_counter()
                cell = family_cell(pairs, fam, st, models, gen)
                (name, value), (rule_name, rule_value) = cell["best_chain"], cell["teacher_rule_chain"]
                cells = []
                for m, q in cell["models"].items():
                    key = f"{task}/{fam}"
                    worst[m][key] = min(worst[m].get(key, math.inf), q - value)
                    worst_teacher[m][key] = min(worst_teacher[m].get(key, math.inf), q - rule_value)
                    cells.append(f"{q:.4f} | {q - value:+.4f} | {q - rule_value:+.4f}")
                secs = time.perf_counter() - t0
                mark = " ^" if value > teacher else ""
                if mark:
                    above.add(f"{task}/{fam}")
                report.say(
                    f"| {fam} | {st} | {name}{mark} | {value:.4f} | {rule_name} | {rule_value:.4f} | "
                    f"{' | '.join(cells)} | {secs:.0f} |"
                )
                out[task][f"{fam}:{st}"] = cell | {"teacher_clean": teacher}
                qabf, vif = cell["models"] | cell["chains"], cell["vif"]["models"] | cell["vif"]["chains"]
                rows.append({n: {"Qabf": qabf[n], "VIF": vif[n]} for n in qabf})
        summary[task] = over_cells(rows, list(models), CHAINS)
        report.say("", *summary_lines(task, summary[task]))
    out["summary"] = summary
    report.say("")
    for m, cells in worst.items():
        failing = {k: v for k, v in cells.items() if v <= 0}
        listed = (
            ", ".join(
                f"{k} {v:+.4f}{' ^' if k in above else ''}"
                for k, v in sorted(failing.items(), key=lambda kv: kv[1])
            )
            or "none"
        )
        text = f"families {m}: Qabf below the best chain in {len(failing)}/{len(cells)} (task, family) cells"
        rule = f"worst of the two strengths; allowed {ALLOWED_FAMILY_FAILURES}"
        if cross:
            won = sum(v > 0 for v in cells.values())
            report.say(f"INFO  {text} ({args.generator}; won {won}/{len(cells)}): {listed}")
        else:
            report.check(len(failing) <= ALLOWED_FAMILY_FAILURES, f"{text} ({rule}): {listed}")
        behind = {k: v for k, v in worst_teacher[m].items() if v <= 0}
        listed = ", ".join(f"{k} {v:+.4f}" for k, v in sorted(behind.items(), key=lambda kv: kv[1])) or "none"
        report.say(
            f"INFO  families {m}: Qabf below the best chain that fuses with the teacher's rule in "
            f"{len(behind)}/{len(cells)} cells: {listed}"
        )
    if above:
        report.say(
            "^ in some cell of that family the best chain scores above the teacher's fusion of the clean "
            "pairs: a model that restored its inputs perfectly and then fused them as its teacher does "
            "would still lose there.",
        )
    return out


def self_fusion(fn: Method, x: np.ndarray, task: str) -> tuple[float, float, float]:
    """PSNR (peak 1) of fusing x with itself, the mean shift in 1/255 steps, and the output mean."""
    y = fn([x, x], task)
    return psnr(y, x), 255.0 * float(y.mean() - x.mean()), float(y.mean())


def identity_section(args: argparse.Namespace, models: dict[str, Method], report: Report) -> dict:
    """Photos fused with themselves (task mff and auto), acceptance (vi); and a dark night image."""
    wide = args.identity_set == "wide"
    photos, out = identity_photos(args.data, args.max_side, wide=wide), {"photos": {}, "night": {}}
    report.say("", f"### identity — {len(photos)} sharp, well-exposed photos fused with themselves", "")
    head = "| photo | size | model | PSNR mff | shift mff ×255 | auto → | PSNR auto | shift auto ×255 |"
    report.say(head, "|---|---|---|---:|---:|---|---:|---:|")
    fails: dict[str, list[str]] = {m: [] for m in models}
    for name, x in photos:
        auto = guess_task([x, x])
        for m, fn in models.items():
            p, s, _ = self_fusion(fn, x, "mff")
            pa, sa, _ = (p, s, None) if auto == "mff" else self_fusion(fn, x, auto)
            out["photos"][f"{name} / {m}"] = {"mff": [p, s], "auto": [auto, pa, sa]}
            if min(p, pa) < IDENTITY_PSNR or max(abs(s), abs(sa)) > IDENTITY_SHIFT:
                fails[m].append(name)
            size = "x".join(map(str, x.shape[:2][::-1]))
            report.say(f"| {name} | {size} | {m} | {p:.2f} | {s:+.2f} | {auto} | {pa:.2f} | {sa:+.2f} |")
    report.say("")
    for m, bad in fails.items():
        rule = f">= {IDENTITY_PSNR:.0f} dB and |shift| <= {IDENTITY_SHIFT:.0f}/255 (task mff and auto)"
        text = f"identity {m}: {len(photos) - len(bad)}/{len(photos)} photos {rule}"
        if wide:  # beyond the acceptance set: reported, not checked
            report.say(f"INFO  {text} (wide set); failing: {', '.join(bad) or 'none'}")
        else:
            report.check(not bad, f"{text}; failing: {', '.join(bad) or 'none'}")
    name, x = night_image(args.data, args.max_side)
    report.say("", f"Dark night image ({name}, mean {x.mean():.3f}) fused with itself:")
    report.say(f"(task auto picks {guess_task([x, x])} for a photo fused with itself)")
    for m, fn in models.items():
        for task in ("mff", "mef"):
            p, s, mean = self_fusion(fn, x, task)
            out["night"][f"{m} / {task}"] = [p, s, mean]
            report.say(
                f"- {m} task {task}: PSNR {p:.2f} dB, mean {x.mean():.3f} → {mean:.3f} (shift {s:+.1f}/255)"
            )
    return out


def parse_args() -> argparse.Namespace:
    """Command-line options; names are checked against the one list of each."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sections", default=",".join(SECTIONS), help="subset of " + ",".join(SECTIONS))
    ap.add_argument("--tasks", default=",".join(TASKS), help="subset of vif,mef,mff")
    ap.add_argument("--models", default="allfuse-reg,allfuse-fm")
    ap.add_argument("--pairs", type=int, default=6, help="main: first N validation pairs per task (by name)")
    ap.add_argument("--clean-pairs", type=int, default=0, help="clean: pairs per task, 0 = all")
    ap.add_argument("--family-pairs", type=int, default=3, help="families: pairs per task and cell")
    ap.add_argument("--families", default="all", help="subset of the generator's families (and mix), or all")
    ap.add_argument(
        "--generator", default="bench", choices=tuple(GENERATORS), help="the families section's degradations"
    )
    ap.add_argument(
        "--identity-set",
        default="acceptance",
        choices=("acceptance", "wide"),
        help="identity: the acceptance check's 10 photos, or a wider set reported as INFO (module doc)",
    )
    ap.add_argument("--max-side", type=int, default=512, help="long side cap of the test images, px")
    ap.add_argument("--data", type=Path, default=SHARED)
    ap.add_argument("--brisque-baseline", type=Path, default=BRISQUE_BASELINE, help="JSON of an earlier run")
    ap.add_argument("--out", type=Path, default=None, help="write markdown here and JSON beside it")
    args = ap.parse_args()
    args.sections = [s for s in args.sections.split(",") if s]
    args.tasks = [t for t in args.tasks.split(",") if t]
    if args.generator != "bench" and args.sections != ["families"]:
        ap.error(f"--generator {args.generator} draws the families section only: use --sections families")
    families = (*GENERATORS[args.generator].FAMILIES, MIX)
    args.families = list(families) if args.families == "all" else [f for f in args.families.split(",") if f]
    choices = [(args.sections, SECTIONS, "section"), (args.tasks, TASKS, "task")]
    for given, valid, what in [*choices, (args.families, families, "family")]:
        bad = [g for g in given if g not in valid]
        if bad:
            ap.error(f"unknown {what}(s) {bad}; choose from {', '.join(valid)}")
    return args


def baseline_note(args: argparse.Namespace, baseline: dict | None) -> str:
    """Which BRISQUE baseline is used, and the settings it was run with where they differ from ours."""
    if baseline is None:
        return "BRISQUE baseline: none"
    keys = ("pairs", "clean_pairs", "max_side")
    then, now = baseline["args"], shown_args(args)
    differ = [f"{k} {then.get(k)} (now {now[k]})" for k in keys if then.get(k) != now[k]]
    note = f"; it ran with different settings: {', '.join(differ)}" if differ else ""
    return f"BRISQUE baseline: {shown_path(args.brisque_baseline)}{note}"


def shown_path(path: str | Path) -> str:
    """A path as reports show it: relative to the repository (or its parent, for ../shared); never the
    machine's absolute path."""
    p, repo = Path(path).resolve(), Path(__file__).resolve().parents[1]
    if p.is_relative_to(repo):
        return str(p.relative_to(repo))
    return str(Path("..") / p.relative_to(repo.parent)) if p.is_relative_to(repo.parent) else p.name


def shown_args(args: argparse.Namespace) -> dict[str, str]:
    """The run's options as strings, paths shown by `shown_path`."""
    return {k: shown_path(v) if isinstance(v, Path) else str(v) for k, v in vars(args).items()}


def main() -> None:
    """Run the chosen sections, the acceptance summary, and write the outputs."""
    args = parse_args()
    if not (args.data / "splits.json").is_file():
        raise SystemExit(
            f"{args.data}/splits.json is absent: this benchmark needs the shared validation pairs"
        )
    threads = os.environ.get("OMP_NUM_THREADS")
    command = (
        (f"OMP_NUM_THREADS={threads} " if threads else "")
        + "python bench/quality.py "
        + " ".join(sys.argv[1:])
    )
    baseline = json.loads(args.brisque_baseline.read_text()) if args.brisque_baseline.is_file() else None
    report = Report()
    report.say(f"# Validation quality\n\n    {command}\n", baseline_note(args, baseline))
    models = load_models([m for m in args.models.split(",") if m])
    results: dict = {"command": command, "args": shown_args(args), "seconds": {}}
    runners = {
        "main": lambda: main_section(args, models, report, baseline),
        "clean": lambda: clean_section(args, models, report, baseline),
        "families": lambda: families_section(args, models, report),
        "identity": lambda: identity_section(args, models, report),
    }
    for section in args.sections:
        t0 = time.perf_counter()
        results[section] = runners[section]()
        results["seconds"][section] = time.perf_counter() - t0
        gates = gate_summary()
        if gates:
            report.say("", *gates)
            results.setdefault("gate", {})[section] = gates
        report.say(f"\n_{section}: {results['seconds'][section]:.0f} s_")
        write(args.out, report, results)
    report.say("", "## Acceptance summary", "", *report.checks, "")
    report.say("Seconds per section: " + ", ".join(f"{k} {v:.0f}" for k, v in results["seconds"].items()))
    results["checks"] = report.checks
    write(args.out, report, results)


def write(out: Path | None, report: Report, results: dict) -> None:
    """Markdown and JSON of everything so far (rewritten after each section)."""
    if out is None:
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(report.lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    main()
