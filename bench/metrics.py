"""Seconds per 640x480 pair for every metric, and for the whole suite.

    python bench/metrics.py [--data ../shared/data] [--repeat 3]

Scores an average fusion of a real MSRS pair (RGB visible + gray IR, 640x480) when the shared data is
beside the repo, else a synthetic pair of the same size. Each metric is timed on inputs prepared once
(best of --repeat runs); the last lines time `compute()` end to end, preparation included. Target:
the whole suite <= 2 s per pair on the 2-core dev machine. Learned IQA is timed only when its weights
are in $ALLFUSE_IQA_WEIGHTS.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from allfuse.io import read_image
from allfuse.metrics import METRICS, available, compute, prepare

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def load_pair(data: Path) -> tuple[np.ndarray, np.ndarray, str]:
    """A 640x480 (visible RGB, IR gray) pair: the first MSRS pair if present, else synthetic."""
    vi_dir, ir_dir = data / "ivif" / "MSRS" / "vi", data / "ivif" / "MSRS" / "ir"
    if vi_dir.is_dir() and ir_dir.is_dir():
        vi_path = sorted(vi_dir.iterdir())[0]
        ir_path = next(ir_dir.glob(vi_path.stem + ".*"))
        return read_image(vi_path, "rgb"), read_image(ir_path, "gray"), f"MSRS {vi_path.stem}"
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:480, 0:640] / 640.0
    base = 0.5 + 0.25 * np.sin(40 * xx) * np.cos(30 * yy)
    vi = np.clip(base[..., None] + rng.normal(0, 0.05, (480, 640, 3)), 0, 1)
    ir = np.clip(1 - base + rng.normal(0, 0.05, (480, 640)), 0, 1)
    return vi.astype(np.float32), ir.astype(np.float32), "synthetic"


def best_time(fn, repeat: int) -> float:
    """Best wall time of `repeat` calls, in seconds."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    """Time each available metric on one pair and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    vi, ir, label = load_pair(args.data)
    fused = np.clip(0.5 * vi + 0.5 * ir[..., None], 0, 1)
    print(f"pair: {label}, {vi.shape[1]}x{vi.shape[0]}, fused = average (RGB), sources = [RGB, gray]")
    x = prepare(fused, [vi, ir])
    total = 0.0
    for name in available():
        seconds = best_time(lambda name=name: METRICS[name].fn(x), args.repeat)
        total += seconds
        print(f"{name:10s} {seconds:7.3f} s   {METRICS[name].fn(x):.4f}")
    print(f"{'sum':10s} {total:7.3f} s")
    end_to_end = best_time(lambda: compute(fused, [vi, ir]), args.repeat)
    print(f"{'compute()':10s} {end_to_end:7.3f} s   (all metrics, input checks and luminance included)")


if __name__ == "__main__":
    main()
