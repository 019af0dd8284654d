"""Write evaluation results as CSV, Markdown tables, JSON and an HTML report with grids and plots."""

from __future__ import annotations

import csv
import html
import io
import json
import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from allfuse import metrics
from allfuse.evaluate import EvalResult
from allfuse.io import atomic_write_text, write_image

if TYPE_CHECKING:
    from matplotlib.figure import Figure

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


def bar_figure(result: EvalResult, name: str) -> Figure:
    """Grouped bars: datasets on x, one bar per method, for one metric."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(result.means)
    n = max(1, len(result.methods))
    fig, ax = plt.subplots(figsize=(1.6 + 1.2 * len(datasets), 2.8), dpi=90)
    every = []
    for i, method in enumerate(result.methods):
        vals = [result.means[ds].get(method, {}).get(name, math.nan) for ds in datasets]
        vals = [v if math.isfinite(v) else math.nan for v in vals]
        every += vals
        ax.bar([j + (i - (n - 1) / 2) * 0.8 / n for j in range(len(datasets))], vals, 0.8 / n, label=method)
    ax.set_ylim(*bar_limits(every))
    ax.set_xticks(range(len(datasets)), datasets)
    ax.set_title(f"{name} {_arrow(name)}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _bar_plot(result: EvalResult, name: str, path: Path) -> None:
    """Write the bar plot of one metric as PNG."""
    import matplotlib.pyplot as plt

    fig = bar_figure(result, name)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())


def write_html(result: EvalResult, out: Path) -> Path:
    """A self-contained report folder: report.html, img/ grids (inputs | each method), plots/ per metric."""
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
            cells = "".join(
                f"<td>{'<b>' if d.get(n, math.nan) == best[n] else ''}{_fmt(d.get(n, math.nan))}</td>"
                for n in names
            )
            parts.append(f"<tr><th>{html.escape(method)}</th>{cells}</tr>")
        parts.append("</table>")
        parts.append(_grid_html(result, ds, out))
    parts.append("<h2>Metrics</h2>")
    for name in result.metric_names:
        rel = f"plots/{name}.png"
        _bar_plot(result, name, out / rel)
        parts.append(f"<img src='{rel}' alt='{html.escape(name)}' style='max-width:420px'>")
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
