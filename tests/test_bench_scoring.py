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
