"""bench/scoring.py: per-pair rows of a section, so a mean can be traced to the pairs that make it."""

import math
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))
from test_bench_degrade import load_bench_module  # noqa: E402

S = load_bench_module(BENCH / "scoring.py")


def test_each_pair_keeps_the_models_scores_and_its_own_best_chain() -> None:
    per_case = [
        {"m": {"Qabf": 0.5, "VIF": 0.7}, "a+x": {"Qabf": 0.4, "VIF": 0.9}, "b+x": {"Qabf": 0.6, "VIF": 0.1}},
        {"m": {"Qabf": 0.3, "VIF": 0.2}, "a+x": {"Qabf": math.nan, "VIF": 0.5}, "b+x": {"Qabf": 0.2}},
    ]
    rows = S.pair_rows(["D/1", "D/2"], per_case, ["m"], ["a+x", "b+x"])
    assert list(rows) == ["D/1", "D/2"]
    assert rows["D/1"]["m"] == {"Qabf": 0.5, "VIF": 0.7}
    assert rows["D/1"]["best chain"] == {"name": "b+x", "Qabf": 0.6, "VIF": 0.1}  # best by Qabf, not VIF
    assert rows["D/2"]["best chain"]["name"] == "b+x"  # a chain scored NaN is never the best
    assert "a+x" not in rows["D/1"]  # only the models and the best chain, not all 35 chains


def test_over_cells_weighs_each_cell_once_and_names_one_chain_per_metric() -> None:
    cells = [
        {"m": {"Qabf": 0.5, "VIF": 0.6}, "a+x": {"Qabf": 0.6, "VIF": 0.2}, "b+x": {"Qabf": 0.2, "VIF": 0.8}},
        {"m": {"Qabf": 0.3, "VIF": 0.4}, "a+x": {"Qabf": 0.1, "VIF": 0.3}, "b+x": {"Qabf": 0.3, "VIF": 0.9}},
    ]
    got = S.over_cells(cells, ["m"], ["a+x", "b+x"])
    assert got["cells"] == 2
    assert math.isclose(got["models"]["m"]["Qabf"], 0.4) and math.isclose(got["models"]["m"]["VIF"], 0.5)
    # by Qabf the cells' winners differ (a+x, then b+x): over both, a+x has the best mean; by VIF, b+x
    assert got["best_chain"]["Qabf"][0] == "a+x" and math.isclose(got["best_chain"]["Qabf"][1], 0.35)
    assert got["best_chain"]["VIF"][0] == "b+x" and math.isclose(got["best_chain"]["VIF"][1], 0.85)
