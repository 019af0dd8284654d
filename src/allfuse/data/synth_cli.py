"""`allfuse synth`: write synthesized training samples (PNGs + meta.jsonl), list the ops, draw contact sheets.

Wire into `allfuse.cli` with ``add_synth_parser(subparsers)``; the parser's default ``func`` is `cmd_synth`.
Output layout: ``OUT/{index:06d}_{a,b,target,clean_a,clean_b}.png`` and ``OUT/meta.jsonl`` (one JSON object
per sample, sorted by index). Re-running skips samples already written (by index), so an interrupted run
resumes; sample i depends only on (seed, i), so the result is byte-identical either way.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from allfuse.data.control import CONTROLS
from allfuse.data.m3 import BLOCK_SIZES, M3_OPS
from allfuse.data.pipeline import PipelineConfig
from allfuse.data.samples import FUSION_KINDS, SAMPLE_KINDS, Sample, Sources, make_sample
from allfuse.data.seg import SHAPES
from allfuse.data.severity import SEVERITY_NAMES, TASK_OPS, WEATHER_OPS, describe_table
from allfuse.io import atomic_write_text, write_image

FILES = ("a", "b", "target", "clean_a", "clean_b")


def add_synth_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the `synth` subcommand."""
    p = subparsers.add_parser("synth", help="synthesize degraded training samples with targets and prompts")
    p.add_argument("--task", choices=SAMPLE_KINDS, help="sample kind to synthesize")
    p.add_argument(
        "--data",
        action="append",
        type=Path,
        help="pair folder(s) for vif/mef/mff/control/seg, natural-image folder(s) for m3; repeatable",
    )
    p.add_argument("--count", type=int, default=16, help="number of samples (indices 0..N-1)")
    p.add_argument("--seed", type=int, default=0, help="base seed: sample i depends on (seed, i) only")
    p.add_argument("--size", type=int, default=128, help="training size in pixels")
    p.add_argument("--keep-aspect", action="store_true", help="keep the crop aspect (long side = size)")
    p.add_argument("--n-ops", default="1,2,3", help="allowed numbers of degradations per pair")
    p.add_argument(
        "--depth", default="heuristic", help="haze depth: heuristic | depth-anything:/local/folder"
    )
    p.add_argument("--split", choices=("train", "held_out"), default="train", help="prompt paraphrase bank")
    p.add_argument("--out", type=Path, help="output folder")
    p.add_argument("--preview", type=Path, help="also write a contact sheet PNG of the first samples")
    p.add_argument("--preview-rows", type=int, default=6, help="rows in the contact sheet")
    p.add_argument("--preview-cell", type=int, default=112, help="tile size of the contact sheet, px")
    p.add_argument("--list", action="store_true", help="print every op, its parameter ranges and tasks")
    p.add_argument("--format", choices=("text", "json"), default="text", help="output format of --list")
    p.set_defaults(func=cmd_synth)
    return p


def catalogue() -> dict:
    """Everything `--list` prints: ops with per-level ranges, and per sample kind what it uses."""
    kinds: dict[str, dict] = {
        t: {"ops": list(TASK_OPS[t]), "weather_on": "visible (IR gets a mild blur)" if t == "vif" else "both"}
        for t in FUSION_KINDS
    }
    kinds["m3"] = {"ops": list(M3_OPS), "blocks": list(BLOCK_SIZES), "both_fraction": 0.25}
    kinds["control"] = {"controls": list(CONTROLS)}
    kinds["seg"] = {"synthetic_classes": list(SHAPES), "labels": "pair folder labels/ + classes.txt"}
    return {"levels": SEVERITY_NAMES, "ops": describe_table(), "tasks": kinds}


def print_list(fmt: str) -> None:
    """Print the catalogue as JSON or as a readable table."""
    cat = catalogue()
    if fmt == "json":
        print(json.dumps(cat, indent=2))
        return
    for row in cat["ops"]:
        where = " [weather]" if row["op"] in WEATHER_OPS else ""
        print(f"{row['op']}{where}  tasks: {', '.join(row['tasks'])}")
        for name, p in row["params"].items():
            ranges = "  ".join(f"{lvl}={v}" for lvl, v in p["levels"].items()) or "(random realization)"
            print(f"    {name:<9} {ranges}  {p['doc']}")
    for kind, info in cat["tasks"].items():
        print(f"task {kind}: {json.dumps(info)}")


def sources_for(args: argparse.Namespace) -> Sources:
    """Pair pool / image pool / pipeline settings from the arguments."""
    from allfuse.data.sources import ImagePool, PairPool

    n_ops = tuple(int(v) for v in str(args.n_ops).split(",") if v.strip())
    data = list(args.data or [])
    cfg = PipelineConfig(size=args.size, keep_aspect=args.keep_aspect, n_ops=n_ops, depth=args.depth)
    if args.task == "m3":
        return Sources(None, ImagePool(data), cfg, args.split)
    pairs = PairPool(data) if data else None
    if args.task in FUSION_KINDS and (pairs is None or args.task not in pairs.tasks()):
        raise ValueError(f"no {args.task} pairs under {[str(d) for d in data] or 'nothing'} (--data)")
    return Sources(pairs, ImagePool(), cfg, args.split)


def written_rows(out: Path) -> dict[int, dict]:
    """Rows of meta.jsonl whose files all exist (a torn last line is ignored)."""
    meta = out / "meta.jsonl"
    rows: dict[int, dict] = {}
    if not meta.is_file():
        return rows
    for line in meta.read_text("utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if all((out / f).is_file() for f in row.get("files", {}).values()):
            rows[int(row["index"])] = row
    return rows


def write_sample(out: Path, sample: Sample) -> dict:
    """Write one sample's PNGs; return its meta row."""
    i = sample.meta["index"]
    files = {k: f"{i:06d}_{k}.png" for k in FILES}
    images = dict(zip(FILES, (*sample.degraded, sample.target, *sample.clean), strict=True))
    for k, name in files.items():
        write_image(out / name, images[k])
    return {**sample.meta, "files": files}


def append_line(path: Path, row: dict) -> None:
    """Append one JSON line durably (flush + fsync)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row, default=float) + "\n")
        f.flush()
        os.fsync(f.fileno())


def write_shards(args: argparse.Namespace, src: Sources) -> int:
    """Write samples 0..count-1 not yet present; return how many were written now."""
    from tqdm import tqdm

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    rows = written_rows(out)
    atomic_write_text(
        out / "meta.jsonl", "".join(json.dumps(rows[i], default=float) + "\n" for i in sorted(rows))
    )
    todo = [i for i in range(args.count) if i not in rows]
    for i in tqdm(todo, desc=f"synth {args.task}", unit="sample", disable=not todo):
        row = write_sample(out, make_sample(args.task, src, args.seed, i))
        append_line(out / "meta.jsonl", row)
        rows[i] = row
    # Sorted by index: a resumed run ends byte-identical to an uninterrupted one.
    atomic_write_text(
        out / "meta.jsonl", "".join(json.dumps(rows[i], default=float) + "\n" for i in sorted(rows))
    )
    return len(todo)


def cmd_synth(args: argparse.Namespace) -> int:
    """Run `allfuse synth`: --list, or write samples and/or a contact sheet; 2 on a usage error."""
    if args.list:
        print_list(args.format)
        return 0
    if args.task is None or (args.out is None and args.preview is None):
        print("allfuse synth: error: --task and --out (or --preview) are required unless --list is given")
        return 2
    try:
        src = sources_for(args)
        if args.out is not None:
            n = write_shards(args, src)
            print(f"wrote {n} new {args.task} samples ({args.count - n} already present) -> {args.out}")
        if args.preview is not None:
            from allfuse.data.preview import write_contact_sheet

            rows = min(args.count, args.preview_rows)
            samples = [make_sample(args.task, src, args.seed, i) for i in range(rows)]
            write_contact_sheet(args.preview, samples, args.preview_cell, palette=True)
            print(f"contact sheet ({rows} samples) -> {args.preview}")
    except ValueError as e:
        print(f"allfuse synth: error: {e}")
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    """Standalone entry point (``python -m allfuse.data.synth_cli``) until the CLI wires `synth` in."""
    parser = argparse.ArgumentParser(prog="allfuse")
    add_synth_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
