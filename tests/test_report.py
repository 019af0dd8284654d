"""The evaluation report's SVG bar plots: the y-axis starts at 0 (or below the lowest bar), so bars show."""

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from allfuse.evaluate import EvalResult
from allfuse.report import axis_ticks, bar_limits, bar_svg, write_html

SVG = "{http://www.w3.org/2000/svg}"


def test_bar_limits_include_zero() -> None:
    lo, hi = bar_limits([20.3, 24.1, 22.0])
    assert lo == 0.0 and hi > 24.1
    lo, hi = bar_limits([-3.0, 2.0])
    assert lo < -3.0 and hi > 2.0
    lo, hi = bar_limits([-3.0, -1.0, math.nan])
    assert lo < -3.0 and hi == 0.0
    assert bar_limits([math.nan, math.inf]) == (0.0, 1.0)


def test_axis_ticks_are_round_and_inside() -> None:
    assert axis_ticks(0.0, 25.3) == [0.0, 5.0, 10.0, 15.0, 20.0, 25.0]
    assert axis_ticks(-0.225, 0.33) == pytest.approx([-0.2, -0.1, 0.0, 0.1, 0.2, 0.3])
    assert axis_ticks(0.0, 1.0) == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert axis_ticks(-3.15, 0.0) == pytest.approx([-3.0, -2.0, -1.0, 0.0])


def result_of(means: dict[str, dict[str, float]], metric: str = "BRISQUE") -> EvalResult:
    """An EvalResult with one metric: {dataset: {method: value}}."""
    methods = list(dict.fromkeys(m for by_method in means.values() for m in by_method))
    result = EvalResult(methods=methods, metric_names=[metric])
    result.means = {ds: {m: {metric: v} for m, v in by_method.items()} for ds, by_method in means.items()}
    return result


def bars(svg: str) -> tuple[list[ET.Element], float, tuple[float, float]]:
    """Parse the SVG (it must be well-formed XML): its bars, the y of 0 and the plot's (top, bottom)."""
    root = ET.fromstring(svg)
    plot = root.find(f"{SVG}rect[@class='plot']")
    zero = float(root.find(f"{SVG}line[@class='zero']").get("y1"))
    top = float(plot.get("y"))
    return root.findall(f"{SVG}rect[@class='bar']"), zero, (top, top + float(plot.get("height")))


@pytest.mark.parametrize(("values", "negative"), [((20.4, 23.9), False), ((-0.2, 0.3), True)])
def test_every_bar_is_visible(values: tuple[float, float], negative: bool) -> None:
    # TNO's BRISQUE means (about 20-24) used to sit below an axis that started at 30
    means = {"TNO": dict(zip(["gff", "avg"], values, strict=True))}
    found, zero, (top, bottom) = bars(bar_svg(result_of(means), "BRISQUE"))
    assert len(found) == 2
    assert (top < zero < bottom) if negative else zero == pytest.approx(bottom, abs=0.01)
    per_unit = []
    for bar, v in zip(found, values, strict=True):
        y, h = float(bar.get("y")), float(bar.get("height"))
        assert float(bar.get("data-value")) == v
        assert top <= y and y + h <= bottom + 0.01  # inside the plot
        edge = y + h if v > 0 else y  # each bar runs from 0 to its value
        assert edge == pytest.approx(zero, abs=0.01)
        per_unit.append(h / abs(v))
    assert per_unit[0] == pytest.approx(per_unit[1], rel=1e-3)  # lengths proportional to the values


def test_missing_values_get_no_bar_and_names_are_escaped() -> None:
    means = {"TNO": {"<gff>": 1.5, "a&b": math.nan}, "M3FD": {"<gff>": 2.0, "a&b": 3.0}}
    svg = bar_svg(result_of(means), "BRISQUE")
    found, _, _ = bars(svg)
    assert sorted(float(b.get("data-value")) for b in found) == [1.5, 2.0, 3.0]
    assert "&lt;gff&gt;" in svg and "a&amp;b" in svg and "BRISQUE ↓" in svg


def test_html_report_links_one_svg_per_metric(tmp_path: Path) -> None:
    result = result_of({"TNO": {"gff": 21.0, "avg": 23.5}})
    html = write_html(result, tmp_path).read_text()
    assert "<img src='plots/BRISQUE.svg'" in html and "<td><b>21</b></td>" in html  # lower is better
    found, _, _ = bars((tmp_path / "plots" / "BRISQUE.svg").read_text())
    assert len(found) == 2
