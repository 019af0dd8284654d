"""Write evaluation results as CSV, Markdown tables, JSON and an HTML report with grids and plots.

The report's bar plots are SVG written here (no plotting library).
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Literal

from allfuse import metrics
from allfuse.evaluate import EvalResult
from allfuse.io import atomic_write_text, write_image

Format = Literal["md", "csv", "json", "html"]
FORMATS: tuple[Format, ...] = ("md", "csv", "json", "html")


def parse_formats(spec: str) -> list[Format]:
    """Parse 'md,csv,json,html' (or 'all') into a list of formats."""
    items = [s.strip().lower() for s in spec.split(",") if s.strip()]
    if items == ["all"]:
        return list(FORMATS)
    bad = [s for s in items if s not in FORMATS]
    if bad or not items:
        raise ValueError(f"unknown format(s) {bad or spec!r}; choose from {', '.join(FORMATS)}")
    return items  # type: ignore[return-value]


def write_report(result: EvalResult, out: Path, formats: Iterable[Format]) -> list[Path]:
    """Write each requested format under `out`; return the files written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        if fmt == "csv":
            written.append(atomic_write_text(out / "per_image.csv", to_csv(result)))
        elif fmt == "md":
            written.append(atomic_write_text(out / "results.md", to_markdown(result)))
        elif fmt == "json":
            written.append(atomic_write_text(out / "results.json", to_json(result)))
        elif fmt == "html":
            written.append(write_html(result, out))
    return written


def to_csv(result: EvalResult) -> str:
    """One row per (dataset, pair, method), one column per metric."""
    buf = io.StringIO()
    fields = ["dataset", "pair", "method", "task", *result.metric_names]
    w = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for row in result.rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return buf.getvalue()


def to_json(result: EvalResult) -> str:
    """`{"datasets": {DATASET: {METHOD: {METRIC: mean}}}}` plus the problems met (NaN written as null)."""
    clean = {
        ds: {m: {k: (v if math.isfinite(v) else None) for k, v in d.items()} for m, d in md.items()}
        for ds, md in result.means.items()
    }
    return json.dumps({"datasets": clean, "problems": result.problems}, indent=2) + "\n"


def _arrow(name: str) -> str:
    """The direction arrow of a metric's column header."""
    return "↑" if metrics.METRICS[name].higher_is_better else "↓"


def _best(values: dict[str, float], name: str) -> float | None:
    """The best finite value of one column, by the metric's direction."""
    finite = [v for v in values.values() if math.isfinite(v)]
    if not finite:
        return None
    return max(finite) if metrics.METRICS[name].higher_is_better else min(finite)


def _fmt(v: float) -> str:
    """Four significant figures, enough for every metric's published precision."""
    return "nan" if not math.isfinite(v) else f"{v:.4g}"


def to_markdown(result: EvalResult) -> str:
    """Paper-style tables: one per dataset, best per column in bold, arrows for direction."""
    lines = ["# Evaluation", ""]
    for ds, by_method in result.means.items():
        names = [n for n in result.metric_names if any(n in d for d in by_method.values())]
        lines += [
            f"## {ds}",
            "",
            "| Method | " + " | ".join(f"{n} {_arrow(n)}" for n in names) + " |",
            "|---|" + "---:|" * len(names),
        ]
        best = {n: _best({m: d.get(n, math.nan) for m, d in by_method.items()}, n) for n in names}
        for method, d in by_method.items():
            cells = []
            for n in names:
                v = d.get(n, math.nan)
                cells.append(f"**{_fmt(v)}**" if best[n] is not None and v == best[n] else _fmt(v))
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        lines.append("")
    if result.problems:
        lines += ["## Problems", "", *[f"- {p}" for p in result.problems], ""]
    return "\n".join(lines)


def bar_limits(values: Iterable[float]) -> tuple[float, float]:
    """y-axis limits of a bar plot: from 0 (or below the lowest bar, when one is negative) to above the
    highest, so every bar shows its full length; non-finite values are left out."""
    finite = [v for v in values if math.isfinite(v)]
    lo, hi = min([0.0, *finite]), max([0.0, *finite])
    pad = 0.05 * (hi - lo) or 1.0
    return (lo - pad if lo < 0 else 0.0), (hi + pad if hi > 0 or lo == 0 else 0.0)


# SVG bar-plot geometry in px, and matplotlib's "tab10" colours (one per method, cycling).
PLOT_TOP, PLOT_HEIGHT, PLOT_LEFT, GROUP_WIDTH = 30, 180, 56, 110
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def axis_ticks(lo: float, hi: float, most: int = 6) -> list[float]:
    """Round tick values in [lo, hi], 1, 2 or 5 times a power of ten apart: the finest with <= `most`."""
    mag = 10.0 ** math.floor(math.log10((hi - lo) / most))
    steps = (m * mag for m in (1, 2, 5, 10, 20))  # 20 * mag > 2 (hi - lo) / most: never too many
    grids = ([k * s for k in range(math.ceil(lo / s - 1e-9), math.floor(hi / s + 1e-9) + 1)] for s in steps)
    return next(g for g in grids if len(g) <= most)


def _y_scale(lo: float, hi: float) -> Callable[[float], float]:
    """Map a value to its SVG y coordinate: hi at the top of the plot, lo at its bottom."""
    return lambda v: PLOT_TOP + (hi - v) / (hi - lo) * PLOT_HEIGHT


def _text(x: float, y: float, text: str, anchor: str = "start") -> str:
    """An SVG text element, escaped."""
    return f"<text x='{x:.1f}' y='{y:.1f}' text-anchor='{anchor}'>{html.escape(text)}</text>"


def _svg_axes(lo: float, hi: float, datasets: list[str]) -> list[str]:
    """Plot frame, horizontal grid lines with their values, dataset names under their groups."""
    y_of, right = _y_scale(lo, hi), PLOT_LEFT + GROUP_WIDTH * max(1, len(datasets))
    parts = [
        f"<rect class='plot' x='{PLOT_LEFT}' y='{PLOT_TOP}' width='{right - PLOT_LEFT}' "
        f"height='{PLOT_HEIGHT}' fill='none' stroke='#999'/>"
    ]
    for t in axis_ticks(lo, hi):
        parts.append(
            f"<line x1='{PLOT_LEFT}' x2='{right}' y1='{y_of(t):.2f}' y2='{y_of(t):.2f}' stroke='#ddd'/>"
        )
        parts.append(_text(PLOT_LEFT - 4, y_of(t) + 4, _fmt(t), "end"))
    for j, ds in enumerate(datasets):
        parts.append(_text(PLOT_LEFT + (j + 0.5) * GROUP_WIDTH, PLOT_TOP + PLOT_HEIGHT + 16, ds, "middle"))
    zero = y_of(0.0)
    parts.append(
        f"<line class='zero' x1='{PLOT_LEFT}' x2='{right}' y1='{zero:.2f}' y2='{zero:.2f}' stroke='#333'/>"
    )
    return parts


def _svg_bars(
    values: list[list[float]], methods: list[str], datasets: list[str], lo: float, hi: float
) -> list[str]:
    """One bar per finite value (methods x datasets), from 0 to the value, with a tooltip."""
    y_of, width = _y_scale(lo, hi), 0.8 * GROUP_WIDTH / max(1, len(methods))
    parts = []
    for i, (method, row) in enumerate(zip(methods, values, strict=True)):
        for j, (ds, v) in enumerate(zip(datasets, row, strict=True)):
            if not math.isfinite(v):
                continue
            top, bottom = sorted((y_of(v), y_of(0.0)))
            x = PLOT_LEFT + (j + 0.1) * GROUP_WIDTH + i * width
            parts.append(
                f"<rect class='bar' x='{x:.2f}' y='{top:.2f}' width='{width:.2f}' height='{bottom - top:.2f}'"
                f" fill='{COLORS[i % len(COLORS)]}' data-value='{float(v)!r}'>"
                f"<title>{html.escape(f'{method}, {ds}: {_fmt(v)}')}</title></rect>"
            )
    return parts


def bar_svg(result: EvalResult, name: str) -> str:
    """Grouped bars as SVG for one metric: datasets on x, one bar per method, the y axis from 0."""
    datasets, methods = list(result.means), result.methods
    values = [[result.means[ds].get(m, {}).get(name, math.nan) for ds in datasets] for m in methods]
    lo, hi = bar_limits(v for row in values for v in row)
    plot_width = GROUP_WIDTH * max(1, len(datasets))
    legend_x = PLOT_LEFT + plot_width + 12
    width = legend_x + 24 + 7 * max((len(m) for m in methods), default=0)
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{PLOT_TOP + PLOT_HEIGHT + 26}'"
        f" font-family='sans-serif' font-size='11' role='img' aria-label='{html.escape(name)} per method'>",
        _text(PLOT_LEFT + plot_width / 2, 18, f"{name} {_arrow(name)}", "middle"),
        *_svg_axes(lo, hi, datasets),
        *_svg_bars(values, methods, datasets, lo, hi),
    ]
    for i, method in enumerate(methods):
        y = PLOT_TOP + 14 * i
        parts.append(
            f"<rect x='{legend_x}' y='{y}' width='10' height='10' fill='{COLORS[i % len(COLORS)]}'/>"
        )
        parts.append(_text(legend_x + 14, y + 9, method))
    return "\n".join([*parts, "</svg>", ""])


def write_html(result: EvalResult, out: Path) -> Path:
    """A self-contained report folder: report.html, img/ grids (inputs | each method), plots/*.svg."""
    parts = [
        "<!doctype html><meta charset='utf-8'><title>allfuse evaluation</title>",
        "<style>body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}img{max-width:220px}"
        ".grid td{text-align:center;font-size:12px}</style><h1>allfuse evaluation</h1>",
    ]
    for ds, by_method in result.means.items():
        names = [n for n in result.metric_names if any(n in d for d in by_method.values())]
        parts.append(
            f"<h2>{html.escape(ds)}</h2><table><tr><th>Method</th>"
            + "".join(f"<th>{html.escape(n)} {_arrow(n)}</th>" for n in names)
            + "</tr>"
        )
        best = {n: _best({m: d.get(n, math.nan) for m, d in by_method.items()}, n) for n in names}
        for method, d in by_method.items():
            values = [d.get(n, math.nan) for n in names]
            cells = "".join(
                f"<td><b>{_fmt(v)}</b></td>" if v == best[n] else f"<td>{_fmt(v)}</td>"
                for n, v in zip(names, values, strict=True)
            )
            parts.append(f"<tr><th>{html.escape(method)}</th>{cells}</tr>")
        parts.append("</table>")
        parts.append(_grid_html(result, ds, out))
    parts.append("<h2>Metrics</h2>")
    for name in result.metric_names:
        rel = f"plots/{name}.svg"
        atomic_write_text(out / rel, bar_svg(result, name))
        parts.append(f"<img src='{html.escape(rel)}' alt='{html.escape(name)}' style='max-width:100%'>")
    if result.problems:
        parts.append(
            "<h2>Problems</h2><ul>" + "".join(f"<li>{html.escape(p)}</li>" for p in result.problems) + "</ul>"
        )
    return atomic_write_text(out / "report.html", "\n".join(parts))


def _grid_html(result: EvalResult, dataset: str, out: Path) -> str:
    """Rows of thumbnails for the kept samples of one dataset: inputs, then each method."""
    rows = []
    for s in (s for s in result.samples if s.dataset == dataset):
        cells = []
        for i, src in enumerate(s.sources):
            rel = f"img/{dataset}/{s.name}_input{i + 1}.png"
            write_image(out / rel, src)
            cells.append(f"<td><img src='{html.escape(rel)}'><br>input {i + 1}</td>")
        for method, fused in s.outputs.items():
            rel = f"img/{dataset}/{s.name}_{re.sub(r'[^A-Za-z0-9_.-]+', '_', method)}.png"  # a folder path
            write_image(out / rel, fused)
            cells.append(f"<td><img src='{html.escape(rel)}'><br>{html.escape(method)}</td>")
        rows.append(f"<tr><th>{html.escape(s.name)}</th>{''.join(cells)}</tr>")
    return f"<table class='grid'>{''.join(rows)}</table>" if rows else ""
