"""bench/family_table.py: the README's per-family table is the families file's margins, and its loss count
is the bench's own FAIL/INFO count."""

import json
import re
from pathlib import Path

import pytest
from test_bench_degrade import load_bench_module

RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results"
T = load_bench_module(RESULTS.parent / "family_table.py")


def cell(best: float, rule: float, model: float, metrics: bool = False) -> dict:
    """One families cell as bench/quality.py writes it: a model's entry is its Qabf, or (metrics) a dict of
    metrics."""
    return {
        "best_chain": ["a+b", best],
        "teacher_rule_chain": ["a+gff", rule],
        "models": {"m": {"Qabf": model} if metrics else model},
    }


def test_margins_losses_and_missing_families():
    run = {
        "families": {
            "mef": {"haze:mild": cell(0.5, 0.4, 0.45), "haze:strong": cell(0.3, 0.3, 0.4, metrics=True)},
            "vif": {
                "haze:mild": cell(0.5, 0.5, 0.6),
                "haze:strong": cell(0.5, 0.5, 0.6),
                "ir_stripes:mild": cell(0.2, 0.1, 0.2, metrics=True),
                "ir_stripes:strong": cell(0.2, 0.2, 0.1995, metrics=True),
            },
            "summary": {},
        }
    }
    rows = T.table(T.margins(run, "m"))
    assert rows[0] == "| family | VIF | MEF |"  # tasks in VIF, MEF, MFF order whatever the file's order
    assert rows[2] == "| haze | +0.100 / +0.100 | **-0.050** / +0.100 |"
    # a tie is a loss (the bench's rule: margin <= 0); a near-tie keeps four decimals and its sign
    assert rows[3] == "| ir_stripes | **+0.0000** / **-0.0005** | — |"
    assert rows[4] == "| families lost | 1 of 2 | 1 of 1 |"
    rule = T.table(T.margins(run, "m", "rule"))
    assert rule[2] == "| haze | +0.100 / +0.100 | +0.050 / +0.100 |"
    with pytest.raises(KeyError, match="has: m"):
        T.margins(run, "allfuse-fm")


@pytest.mark.parametrize("name", ["quality_val_families", "quality_val_families6", "crosscheck_c_reg"])
def test_loss_count_matches_the_files_own_summary_line(name):
    """A shipped file's FAIL/INFO line counts the (task, family) cells lost at either strength; the table's
    last row must add up to the same number."""
    run = json.loads((RESULTS / f"{name}.json").read_text())
    lost = T.table(T.margins(run, "allfuse-reg"))[-1]
    total = sum(int(n) for n in re.findall(r"(\d+) of \d+", lost))
    md = (RESULTS / f"{name}.md").read_text().splitlines()
    line = next(x for x in md if "families allfuse-reg: Qabf below the best chain in" in x)
    assert total == int(re.search(r"in (\d+)/\d+", line).group(1))
    # and the overview's count against the teacher's-rule chain is the file's INFO line's
    rule = next(x for x in md if "below the best chain that fuses with the teacher's rule in" in x)
    want = re.search(r"in (\d+)/(\d+) cells", rule).groups()
    assert f"{want[0]} to the best chain with the teacher's rule" in T.overview(run, "allfuse-reg")[0]


def test_a_later_file_replaces_the_tasks_it_has(tmp_path):
    """A VIF-only re-run stands in for the VIF task of an all-task run; the other tasks stay."""
    whole = {"families": {t: {"haze:mild": cell(0.5, 0.5, 0.4)} for t in ("vif", "mef")}}
    vif = {"families": {"vif": {"haze:mild": cell(0.5, 0.5, 0.7)}, "summary": {}}}
    (tmp_path / "a.json").write_text(json.dumps(whole))
    (tmp_path / "b.json").write_text(json.dumps(vif))
    m = T.merged([tmp_path / "a.json", tmp_path / "b.json"], "m")
    assert m["vif"]["haze"]["mild"] == pytest.approx(0.2) and m["mef"]["haze"]["mild"] == pytest.approx(-0.1)
    (tmp_path / "c.json").write_text(json.dumps({"main": {}}))
    with pytest.raises(SystemExit, match="no families section"):
        T.merged([tmp_path / "c.json"], "m")
