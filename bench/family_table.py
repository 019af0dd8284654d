"""One table of a families run: per degradation family and task, a model's Qabf margin over the best chain.

    python bench/family_table.py bench/results/quality_val_families.json [MORE.json ...]
        [--model allfuse-reg] [--against best|rule]

Reads the JSON that `bench/quality.py --sections families --out X.md` writes beside X.md (any generator;
a later file's tasks replace an earlier one's, so a run re-made with `--tasks vif` can stand in for that
task of an all-task run) and prints the markdown table the README's "Measured quality" quotes: one row per
family, one column per task, each cell "mild / strong" as the model's Qabf minus the best
restore-then-fuse chain's of that cell (`--against rule`: minus the best chain that fuses with the
teacher's rule), losses in bold; a last row counts the families a task loses at either strength. It
computes nothing new: every number is a difference of two numbers in the files, so the table and the
files' PASS/FAIL/INFO lines agree.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

TASK_ORDER = ("vif", "mef", "mff")
STRENGTH_ORDER = ("mild", "strong")


def model_qabf(cell: dict, model: str) -> float:
    """The model's Qabf in one cell; KeyError naming the models the cell has when it is not one of them."""
    models = cell["models"]
    if model not in models:
        raise KeyError(f"model {model!r} is not in this run (it has: {', '.join(models)})")
    value = models[model]
    return float(value["Qabf"] if isinstance(value, dict) else value)


def margins(run: dict, model: str, against: str = "best") -> dict[str, dict[str, dict[str, float]]]:
    """task -> family -> strength -> the model's Qabf minus the chain's (`best_chain` or
    `teacher_rule_chain`), from a families JSON as bench/quality.py writes it."""
    key = {"best": "best_chain", "rule": "teacher_rule_chain"}[against]
    out: dict[str, dict[str, dict[str, float]]] = {}
    for task, cells in run["families"].items():
        if task == "summary":
            continue
        for name, cell in cells.items():
            family, strength = name.split(":")
            out.setdefault(task, {}).setdefault(family, {})[strength] = model_qabf(cell, model) - cell[key][1]
    return out


def lost_counts(m: dict[str, dict[str, dict[str, float]]]) -> dict[str, tuple[int, int]]:
    """task -> (families lost at either strength, margin <= 0 as in bench/quality.py; families)."""
    return {t: (sum(min(v.values()) <= 0 for v in fams.values()), len(fams)) for t, fams in m.items()}


def table(m: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    """The markdown rows: families in first-seen order, tasks in TASK_ORDER, '—' where a task has no such
    family; a loss (margin <= 0) in bold."""
    tasks = [t for t in TASK_ORDER if t in m] + [t for t in m if t not in TASK_ORDER]
    families: list[str] = []
    for t in tasks:
        families += [f for f in m[t] if f not in families]

    def cell(t: str, f: str) -> str:
        if f not in m[t]:
            return "—"
        parts = []
        for s in (s for s in STRENGTH_ORDER if s in m[t][f]):
            v = m[t][f][s]
            text = f"{v:+.3f}" if abs(v) >= 0.001 else f"{v:+.4f}"  # a near-tie keeps its sign readable
            parts.append(f"**{text}**" if v <= 0 else text)
        return " / ".join(parts)

    lines = ["| family | " + " | ".join(t.upper() for t in tasks) + " |", "|---|" + "---:|" * len(tasks)]
    lines += [f"| {f} | " + " | ".join(cell(t, f) for t in tasks) + " |" for f in families]
    counts = lost_counts(m)
    lines.append("| families lost | " + " | ".join(f"{counts[t][0]} of {counts[t][1]}" for t in tasks) + " |")
    return lines


def load(paths: list[Path]) -> dict:
    """The families sections of several runs as one: a later file's tasks (cells and `summary`) replace an
    earlier one's."""
    cells: dict[str, dict] = {}
    summary: dict[str, dict] = {}
    for path in paths:
        run = json.loads(path.read_text())
        if "families" not in run:
            raise SystemExit(f"{path}: no families section (run bench/quality.py --sections families)")
        cells |= {t: c for t, c in run["families"].items() if t != "summary"}
        summary |= run["families"].get("summary", {})
    return {"families": cells | {"summary": summary}}


def merged(paths: list[Path], model: str, against: str = "best") -> dict[str, dict[str, dict[str, float]]]:
    """margins() of several families runs, a later file's tasks replacing an earlier one's."""
    return margins(load(paths), model, against)


def overview(run: dict, model: str) -> list[str]:
    """One line per figure of a run's verdict: families lost against the best chain and against the best
    chain with the teacher's rule, and per task the mean Qabf over all cells against the best single
    chain's (the `over all` INFO lines of bench/quality.py)."""
    counts = {a: lost_counts(margins(run, model, a)).values() for a in ("best", "rule")}
    total = {a: sum(lost for lost, _ in c) for a, c in counts.items()}
    n = sum(fams for _, fams in counts["best"])
    lines = [
        f"{model}: {total['best']} of {n} families lost to the best chain, {total['rule']} to the best "
        "chain with the teacher's rule"
    ]
    for task in (t for t in TASK_ORDER if t in run["families"].get("summary", {})):
        s = run["families"]["summary"][task]
        parts = []
        for metric in ("Qabf", "VIF"):
            name, chain = s["best_chain"][metric]
            parts.append(f"{metric} {s['models'][model][metric]:.3f} vs {chain:.3f} ({name})")
        lines.append(f"{task.upper()} over all {s['cells']} cells, mean " + ", ".join(parts))
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("json", type=Path, nargs="+", help="families runs' JSON (quality.py --out X.md: X.json)")
    ap.add_argument("--model", default="allfuse-reg")
    ap.add_argument("--against", choices=("best", "rule"), default="best")
    ap.add_argument("--overview", action="store_true", help="also print the run's verdict lines")
    args = ap.parse_args()
    run = load(args.json)
    print("\n".join(table(margins(run, args.model, args.against))))
    if args.overview:
        print("", *overview(run, args.model), sep="\n")


if __name__ == "__main__":
    main()
