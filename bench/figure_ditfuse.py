"""The abilities of a DiTFuse model in one figure (docs/ditfuse_abilities.png), one row per ability:

    OMP_NUM_THREADS=1 python bench/figure_ditfuse.py [--model allfuse-ditfuse] [--side 256]
        [--data ../shared/data] [--out docs/ditfuse_abilities.png]

  1. fusion: a validation infrared+visible pair (never trained on) and the plain fusion;
  2. control: the same pair at every brightness level and both contrast levels;
  3. segmentation: "segment the person" / "segment the car" on that pair, and a held-out synthetic scene;
  4. completion (DiTFuse Fig. 20, zero-shot): a validation photo under two random irregular masks (brush
     strokes filled with uniform noise; training masks are square blocks), with regions masked in one view
     and regions masked in both; the model fills both kinds. Shown: the two views, the jointly masked
     region (white), the output and the source.
All inputs come from the validation split or are drawn here; seed 0 throughout.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from cases import SHARED, validation_pairs
from PIL import Image, ImageDraw

from allfuse import FusionPipeline
from allfuse.data.control import CONTROLS
from allfuse.data.m3 import m3_pair
from allfuse.data.prompts import phrases, tagged_prompt
from allfuse.data.seg import synthetic_scene

CELL_TEXT = 16  # px of caption under each cell


def strokes(shape: tuple[int, int], rng: np.random.Generator, n: int) -> np.ndarray:
    """An irregular mask (H, W) bool of `n` thick random brush strokes."""
    h, w = shape
    m = np.zeros((h, w), np.uint8)
    for _ in range(n):
        pts = np.cumsum(rng.normal(0, 0.12 * min(h, w), (5, 2)), axis=0) + rng.uniform(0, 1, 2) * (w, h)
        cv2.polylines(m, [pts.astype(np.int32)], False, 1, thickness=int(rng.integers(8, 18)))
    return m > 0


def masked_views(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two views of `image` under independent stroke masks filled with uniform noise; and the joint mask."""
    views, masks = [], []
    for _ in range(2):
        m = strokes(image.shape[:2], rng, 6)
        v = image.copy()
        v[m] = rng.random(v[m].shape, dtype=np.float32)
        views.append(v)
        masks.append(m)
    return views[0], views[1], masks[0] & masks[1]


def to_rgb8(x: np.ndarray) -> np.ndarray:
    """[0, 1] gray or RGB -> uint8 RGB."""
    x = np.asarray(x, np.float32)
    x = np.repeat(x[..., None], 3, axis=2) if x.ndim == 2 else x
    return (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)


def grid(rows: list[list[tuple[np.ndarray, str]]], side: int) -> Image.Image:
    """Rows of captioned cells, each resized to height `side`."""
    cols = max(len(r) for r in rows)
    cell_w = side * 4 // 3
    out = Image.new("RGB", (cols * cell_w, len(rows) * (side + CELL_TEXT)), "white")
    draw = ImageDraw.Draw(out)
    for i, row in enumerate(rows):
        for j, (img, caption) in enumerate(row):
            im = Image.fromarray(to_rgb8(img))
            im.thumbnail((cell_w - 4, side))
            x, y = j * cell_w + (cell_w - im.width) // 2, i * (side + CELL_TEXT)
            out.paste(im, (x, y))
            draw.text((j * cell_w + 4, y + side + 2), caption, fill="black")
    return out


def main() -> None:
    """Run every ability on validation inputs and write the figure."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="allfuse-ditfuse")
    ap.add_argument("--side", type=int, default=256)
    ap.add_argument("--pair", default="RoadScene/FLIR_00018", help="the validation pair of rows 1-3")
    ap.add_argument("--data", type=Path, default=SHARED)
    ap.add_argument("--out", type=Path, default=Path("docs/ditfuse_abilities.png"))
    args = ap.parse_args()
    pipe = FusionPipeline.from_pretrained(args.model)
    pairs = {p.name: p for p in validation_pairs(args.data, "vif", 0, args.side)}
    pair = pairs[args.pair]
    ir, vis = pair.images
    fused = pipe(pair.images, task="vif")
    rows = [[(ir, "infrared"), (vis, "visible"), (fused, "fusion")]]
    control = [(fused, "base")]
    for level in CONTROLS:
        out = pipe(pair.images, tagged_prompt("CONTROL", level, phrases("control", level)[0]), task="vif")
        control.append((out, level))
    rows.append(control)
    seg = [(pipe(pair.images, f"segment the {c}", task="vif"), f"segment the {c}") for c in ("person", "car")]
    rng = np.random.default_rng(0)
    scene, _, _ = synthetic_scene(rng, (128, 128), held_out=True)
    a, b, _ = m3_pair(scene, rng)
    seg += [(a, "scene view 1"), (b, "scene view 2")]
    seg += [(pipe([a, b], f"segment the {s}", task="vif"), s) for s in ("circle", "star")]
    rows.append(seg)
    photo = pairs[sorted(pairs)[1]].images[1]
    v1, v2, joint = masked_views(photo, rng)
    done = pipe([v1, v2], tagged_prompt("FUSION", None, phrases("tasks", "m3")[0]), task="vif")
    rows.append(
        [
            (v1, "view 1"),
            (v2, "view 2"),
            (joint.astype(np.float32), "masked in both"),
            (done, "output"),
            (photo, "source"),
        ]
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    grid(rows, args.side // 2).save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
