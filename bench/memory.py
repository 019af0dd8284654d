"""Peak memory (RSS) and seconds of fusing large pairs: 1, 4, 12 and 24 megapixels, each in a fresh process.

    OMP_NUM_THREADS=1 python bench/memory.py [--sizes 1,4,12,24] [--untiled 1,4] [--out FILE.md]

A pair is the multi-focus demo pair resized (bicubic) to 4:3 at each size and written as PNG. Each run is
a child process doing what `allfuse fuse A.png B.png -o F.png` does (load allfuse-reg, read both PNGs,
fuse, write the PNG); its peak RSS comes from the kernel's rusage of that child (os.wait4), so it counts
everything: Python, torch, the models, the decoded images and the fusion. The gate is off (`gate=False`):
the demo pair is clean, and the gate would hand it to the classical rule; a degraded pair takes the latent
path measured here (with its mirrored pass, allfuse.pipeline.MIRROR). Rows:
  default          the model's own path (latent path at long side <= 512, refiner at full size), tiled
                   above 1024 x 1024 (allfuse.tiled; the 1 MP pair, 1155 x 866, is just below);
  --work-side 0    the whole path (encoder, DiT, decoder, refiner) at full size, tiled the same way;
  --tile-pixels 0  the untiled path, for comparison (only at the --untiled sizes: it grows with the image);
  64 x 64          the fixed cost: everything loaded, a tiny pair fused.
Wall time on a shared machine is noisy; the seconds are one run each.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import machine_line

RESULTS = Path(__file__).parent / "results"


def child(a: str, b: str, out: str, flags: dict[str, int]) -> None:
    """The measured process: load the model, read the pair, fuse, write; print the seconds as JSON."""
    t0 = time.perf_counter()
    from allfuse import FusionPipeline
    from allfuse.io import read_image, write_image

    pipe = FusionPipeline.from_pretrained("allfuse-reg")
    t1 = time.perf_counter()
    images = [read_image(a), read_image(b)]
    t2 = time.perf_counter()
    fused = pipe(images, task="mff", gate=False, **flags)  # the latent path (module doc)
    t3 = time.perf_counter()
    write_image(out, fused)
    print(json.dumps({"load": t1 - t0, "read": t2 - t1, "fuse": t3 - t2, "write": time.perf_counter() - t3}))


def size_of(megapixels: float) -> tuple[int, int]:
    """(W, H) at 4:3 with about this many megapixels."""
    w = round(math.sqrt(megapixels * 1e6 * 4 / 3))
    return w, round(w * 3 / 4)


def write_pair(folder: Path, size: tuple[int, int]) -> tuple[Path, Path]:
    """The demo pair resized to `size`, as two PNGs."""
    import cv2
    import numpy as np

    from allfuse.demo import demo_pair
    from allfuse.io import write_image

    paths = []
    for name, x in zip(("near", "far"), demo_pair("mff"), strict=True):
        big = np.clip(cv2.resize(x, size, interpolation=cv2.INTER_CUBIC), 0, 1)
        paths.append(write_image(folder / f"{name}_{size[0]}x{size[1]}.png", big))
    return paths[0], paths[1]


def measure(pair: tuple[Path, Path], out: Path, flags: dict[str, int]) -> dict[str, float]:
    """Run one child; its peak RSS (GB) from wait4 and its seconds."""
    cmd = [sys.executable, __file__, "--child", str(pair[0]), str(pair[1]), str(out), json.dumps(flags)]
    logs = out.with_suffix(".out"), out.with_suffix(".err")
    with open(logs[0], "w") as stdout, open(logs[1], "w") as stderr:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=stderr)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage: ru_maxrss in KiB
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"child failed ({proc.returncode}): {logs[1].read_text().strip()[-2000:]}")
    seconds = json.loads(logs[0].read_text().strip().splitlines()[-1])
    return {"peak_gb": usage.ru_maxrss / 2**20, "wall": wall, **seconds}


def main() -> None:
    """Print the table and write it to --out."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1,4,12,24", help="megapixels, comma-separated")
    ap.add_argument("--untiled", default="1,4", help="sizes also run untiled (--tile-pixels 0)")
    ap.add_argument("--out", type=Path, default=RESULTS / "memory.md")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child[:3], json.loads(args.child[3]))
        return
    sizes = [float(s) for s in args.sizes.split(",")]
    untiled = {float(s) for s in args.untiled.split(",") if s}
    modes = {
        "default": {},
        "--work-side 0": {"work_side": 0},
        "--tile-pixels 0 (untiled)": {"tile_pixels": 0},
    }
    threads = os.environ.get("OMP_NUM_THREADS", "all cores")
    lines = [
        machine_line(),
        f"Command: `OMP_NUM_THREADS={threads} python bench/memory.py --sizes {args.sizes} "
        f"--untiled {args.untiled}`. Model allfuse-reg, the multi-focus demo pair resized (4:3), "
        "gate off (the latent path).",
        "Peak RSS of the whole process (Python, torch, models, both decoded inputs, output); seconds: "
        "fusion alone / whole process (load, read, fuse, write the PNG).",
        "",
        "| pair | mode | peak RSS GB | fuse s | process s |",
        "|---|---|---:|---:|---:|",
    ]
    print("\n".join(lines), flush=True)
    with tempfile.TemporaryDirectory(prefix="allfuse-memory-") as tmp:
        folder = Path(tmp)
        jobs = [(64 / 1e6, "default", {})]
        for mp in sizes:
            jobs += [(mp, m, f) for m, f in modes.items() if "untiled" not in m or mp in untiled]
        pairs: dict[float, tuple[Path, Path]] = {}
        for mp, mode, flags in jobs:
            size = (64, 64) if mp < 0.01 else size_of(mp)
            if mp not in pairs:
                pairs = {mp: write_pair(folder, size)}  # one size on disk at a time
            r = measure(pairs[mp], folder / "fused.png", flags)
            label = f"{size[0]}x{size[1]} ({size[0] * size[1] / 1e6:.1f} MP)"
            row = f"| {label} | {mode} | {r['peak_gb']:.2f} | {r['fuse']:.1f} | {r['wall']:.1f} |"
            lines.append(row)
            print(row, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
