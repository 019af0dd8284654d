"""The evaluation report's bar plots: the y-axis starts at 0 (or below the lowest bar), so bars show."""

import math

import pytest

from allfuse.evaluate import EvalResult
from allfuse.report import bar_figure, bar_limits


def test_bar_limits_include_zero() -> None:
    lo, hi = bar_limits([20.3, 24.1, 22.0])
    assert lo == 0.0 and hi > 24.1
    lo, hi = bar_limits([-3.0, 2.0])
    assert lo < -3.0 and hi > 2.0
    lo, hi = bar_limits([-3.0, -1.0, math.nan])
    assert lo < -3.0 and hi == 0.0
    assert bar_limits([math.nan, math.inf]) == (0.0, 1.0)


@pytest.mark.parametrize(("values", "negative"), [((20.4, 23.9), False), ((-0.2, 0.3), True)])
def test_every_bar_is_visible(values: tuple[float, float], negative: bool) -> None:
    # TNO's BRISQUE means (about 20-24) used to sit below an axis that started at 30
    result = EvalResult(methods=["gff", "allfuse-reg"], metric_names=["BRISQUE"])
    result.means = {"TNO": {m: {"BRISQUE": v} for m, v in zip(result.methods, values, strict=True)}}
    fig = bar_figure(result, "BRISQUE")
    ax = fig.axes[0]
    lo, hi = ax.get_ylim()
    assert (lo < min(values)) if negative else lo == 0.0
    assert hi > max(values)
    for bar in ax.patches:  # each bar runs from 0 to its value, inside the axis
        assert lo <= min(0.0, bar.get_y() + bar.get_height()) and max(0.0, bar.get_height()) <= hi
