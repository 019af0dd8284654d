"""M3, multi-degradation masked image modelling (DiTFuse Sect. III-B2, Fig. 4).

One clean natural image is duplicated into two views and tiled into blocks of 32, 64 or 128 px (aligned in
both views). Each block is degraded in exactly one view (75 %) or in both (25 %), with an op drawn per
block and per view: a uniform-noise mask (the block replaced by noise), Gaussian noise (sigma 10..35 on the
0-255 scale), salt-and-pepper (1..3 % of pixels) or blur (kernel 3..11, Gaussian, box or median).
The target is the clean image.
"""

from __future__ import annotations

from collections import Counter

import cv2
import numpy as np

from allfuse.types import Image

BLOCK_SIZES = (32, 64, 128)
M3_OPS = ("uniform", "gaussian", "salt_pepper", "blur")
BLUR_KINDS = ("gaussian", "box", "median")
BOTH_FRACTION = 0.25


def blur_region(image: Image, y: int, x: int, bh: int, bw: int, k: int, kind: str) -> np.ndarray:
    """Blur one block using its surroundings as context (no seam at the block border)."""
    h, w = image.shape[:2]
    y0, x0, y1, x1 = max(0, y - k), max(0, x - k), min(h, y + bh + k), min(w, x + bw + k)
    region = np.ascontiguousarray(image[y0:y1, x0:x1])
    if kind == "gaussian":
        out = cv2.GaussianBlur(region, (k, k), 0)
    elif kind == "box":
        out = cv2.blur(region, (k, k))
    else:  # median: OpenCV needs 8-bit input for k > 5
        out = cv2.medianBlur(np.round(region * 255).astype(np.uint8), k).astype(np.float32) / 255.0
    return out[y - y0 : y - y0 + bh, x - x0 : x - x0 + bw]


def degrade_block(image: Image, y: int, x: int, bh: int, bw: int, op: str, gen: np.random.Generator) -> None:
    """Degrade image[y:y+bh, x:x+bw] in place with one M3 op (image is a private copy)."""
    block = image[y : y + bh, x : x + bw]
    if op == "uniform":
        block[...] = gen.random(block.shape, dtype=np.float32)
    elif op == "gaussian":
        sigma = gen.uniform(10.0, 35.0) / 255.0
        block[...] = np.clip(block + gen.normal(0.0, sigma, block.shape), 0.0, 1.0)
    elif op == "salt_pepper":
        hit = gen.random((bh, bw)) < gen.uniform(0.01, 0.03)
        vals = (gen.random(int(hit.sum())) < 0.5).astype(np.float32)
        block[hit] = vals[:, None] if block.ndim == 3 else vals
    else:
        k = int(gen.choice([3, 5, 7, 9, 11]))
        block[...] = blur_region(image, y, x, bh, bw, k, BLUR_KINDS[int(gen.integers(3))])


def m3_pair(image: Image, rng: np.random.Generator, block: int | None = None) -> tuple[Image, Image, dict]:
    """Two complementary degraded views of `image` and a summary (block size, op counts, shared blocks)."""
    x = np.asarray(image, np.float32)
    h, w = x.shape[:2]
    sizes = [s for s in BLOCK_SIZES if s <= min(h, w)] or [min(h, w)]
    bs = int(block or sizes[int(rng.integers(len(sizes)))])
    views = [x.copy(), x.copy()]
    gen = np.random.default_rng(int(rng.integers(0, 2**31 - 1)))
    counts: Counter[str] = Counter()
    n_both = n_blocks = 0
    for y in range(0, h, bs):
        for x0 in range(0, w, bs):
            bh, bw = min(bs, h - y), min(bs, w - x0)
            both = gen.random() < BOTH_FRACTION
            who = (0, 1) if both else (int(gen.integers(2)),)
            for v in who:
                op = M3_OPS[int(gen.integers(len(M3_OPS)))]
                degrade_block(views[v], y, x0, bh, bw, op, gen)
                counts[op] += 1
            n_both += both
            n_blocks += 1
    meta = {"block": bs, "blocks": n_blocks, "both": n_both, "ops": dict(sorted(counts.items()))}
    return views[0], views[1], meta
