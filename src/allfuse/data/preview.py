"""Contact sheets of synthesized samples: clean a | clean b | degraded a | degraded b | target | prompt."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont

from allfuse.data.samples import Sample
from allfuse.types import Image

COLUMNS = ("clean a", "clean b", "degraded a", "degraded b", "target", "prompt")
HEADER = 18
GAP = 4


def to_rgb_u8(x: Image, cell: int) -> np.ndarray:
    """Letterbox an image into a cell x cell RGB uint8 tile (aspect kept, dark padding)."""
    x = np.asarray(x, np.float32)
    rgb = np.repeat(x[..., None], 3, axis=2) if x.ndim == 2 else x
    h, w = rgb.shape[:2]
    s = cell / max(h, w)
    small = cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    tile = np.full((cell, cell, 3), 24, np.uint8)
    y0, x0 = (cell - small.shape[0]) // 2, (cell - small.shape[1]) // 2
    tile[y0 : y0 + small.shape[0], x0 : x0 + small.shape[1]] = np.round(np.clip(small, 0, 1) * 255).astype(
        np.uint8
    )
    return tile


def font(size: int) -> ImageFont.ImageFont:
    """PIL's bundled font at a size (Pillow >= 10.1), else its fixed bitmap font."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:
        return ImageFont.load_default()


def prompt_lines(sample: Sample, width_chars: int) -> list[str]:
    """Wrapped text: kind, ops, then the natural instruction (the tagged prompt's requirement)."""
    ops = [f"{r['op']}:{r['level']}" for r in sample.meta.get("ops", []) if "ir_for" not in r]
    head = f"[{sample.kind}] " + (" ".join(ops) if ops else "")
    extra = sample.meta.get("control") or sample.meta.get("class") or ""
    if extra:
        head += f" {extra}"
    return [*textwrap.wrap(head, width_chars), *textwrap.wrap(sample.instruction, width_chars)]


def contact_sheet(samples: Sequence[Sample], cell: int = 128, text_width: int = 300) -> np.ndarray:
    """RGB uint8 grid, one row per sample, with a header row naming the columns."""
    n_img = len(COLUMNS) - 1
    width = n_img * (cell + GAP) + text_width
    height = HEADER + len(samples) * (cell + GAP)
    sheet = PILImage.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    small, tiny = font(12), font(11)
    for c, name in enumerate(COLUMNS):
        draw.text((c * (cell + GAP) + 4, 3), name, fill=(0, 0, 0), font=small)
    for r, s in enumerate(samples):
        y = HEADER + r * (cell + GAP)
        tiles = [*s.clean, *s.degraded, s.target]
        for c, x in enumerate(tiles):
            sheet.paste(PILImage.fromarray(to_rgb_u8(x, cell)), (c * (cell + GAP), y))
        lines = prompt_lines(s, text_width // 6)
        draw.multiline_text(
            (n_img * (cell + GAP) + 2, y + 2), "\n".join(lines[:9]), fill=(0, 0, 0), font=tiny, spacing=2
        )
    return np.asarray(sheet)


def write_contact_sheet(
    path: str | os.PathLike, samples: Sequence[Sample], cell: int = 128, palette: bool = False
) -> None:
    """Write a contact sheet PNG atomically; `palette` quantizes to 256 colours (small files for docs)."""
    sheet = contact_sheet(samples, cell)
    if not palette:
        from allfuse.io import write_image

        write_image(path, sheet.astype(np.float32) / 255.0)
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    PILImage.fromarray(sheet).quantize(256, dither=PILImage.Dither.FLOYDSTEINBERG).save(
        tmp, format="PNG", optimize=True
    )
    os.replace(tmp, path)
