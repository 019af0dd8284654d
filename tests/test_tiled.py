"""The tiled path for large images: grids and blend weights, exact stages where tiling cannot change the
result, the pixel threshold, and on the shipped model a small difference to the untiled output with no
seam at any tile border."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_pipeline import TINY

import allfuse.pipeline as pipeline_module
from allfuse.demo import demo_pair
from allfuse.models import FusionDiT
from allfuse.pipeline import FusionPipeline, save_pretrained
from allfuse.tiled import (
    ALIGN,
    DEFAULT_TILE_PIXELS,
    BicubicTiles,
    Grid,
    as_batch,
    check_tile_pixels,
    decode_tiled,
    encode_tiled,
    refine_tiled,
    tile_overlap,
    tile_side,
)
from allfuse.tokenizer import load_tokenizer
from allfuse.train.config import load_train_config


@pytest.mark.parametrize(
    ("h", "w", "side", "align"), [(480, 640, 256, 16), (50, 700, 64, 8), (100, 90, 128, 1)]
)
def test_grid_covers_the_plane_and_its_weights_sum_to_one(h: int, w: int, side: int, align: int) -> None:
    grid = Grid.over(h, w, side, tile_overlap(side), align)
    total = np.zeros((h, w))
    for y0, y1, x0, x1, wt in grid:
        assert y0 % align == 0 and x0 % align == 0 and y1 - y0 <= side and x1 - x0 <= side
        total[y0:y1, x0:x1] += wt
    np.testing.assert_allclose(total, 1.0, atol=1e-6)
    assert tile_side(DEFAULT_TILE_PIXELS) == 512 and tile_side(100 * 100) == 96 and tile_overlap(512) == 32


def test_bicubic_tiles_equal_the_whole_upsampling() -> None:
    small = torch.rand(1, 3, 37, 53)
    whole = F.interpolate(small, size=(150, 201), mode="bicubic", align_corners=False).clamp(0, 1)
    tiles = BicubicTiles(small, (150, 201))
    out = torch.zeros_like(whole)
    for y0, y1, x0, x1, _ in Grid.over(150, 201, 64, 32, ALIGN):
        out[..., y0:y1, x0:x1] = tiles(y0, y1, x0, x1)
    torch.testing.assert_close(out, whole, atol=2e-6, rtol=0)


def test_tiles_change_nothing_for_a_local_tokenizer_and_no_refiner() -> None:
    tok = load_tokenizer("pixel-unshuffle-f8")  # each 8 x 8 cell on its own: tiling must be exact
    rng = np.random.default_rng(0)
    images = [rng.random((300, 451), dtype=np.float32), rng.random((300, 451, 3), dtype=np.float32)]
    cpu = torch.device("cpu")
    for x, z in zip(images, encode_tiled(tok, images, 128 * 128, cpu), strict=True):
        torch.testing.assert_close(z, tok.encode(as_batch(x, cpu)), atol=1e-5, rtol=0)
    z = tok.encode(as_batch(images[1], cpu))
    whole = tok.decode(z, size=(300, 451))[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(decode_tiled(tok, z, (300, 451), 128 * 128), whole, atol=1e-5)
    again = refine_tiled(
        None, lambda y0, y1, x0, x1: as_batch(whole[y0:y1, x0:x1], cpu), images, 96 * 96, cpu
    )
    np.testing.assert_allclose(again, whole, atol=1e-5)


def test_only_images_above_the_pixel_threshold_are_tiled(tmp_path: Path, monkeypatch) -> None:
    cfg = load_train_config("tiny-reg", [*TINY, "text_encoder=none", "model.prompt=false"])
    pipe = FusionPipeline.from_pretrained(save_pretrained(FusionDiT(cfg.model), cfg, tmp_path / "m"))
    tiled = []
    real = pipeline_module.fuse_large
    monkeypatch.setattr(pipeline_module, "fuse_large", lambda *a: tiled.append(a[3][0].shape) or real(*a))
    x = np.random.default_rng(1).random((96, 130), dtype=np.float32)
    pipe([x[:64, :128], x[:64, :128]], task="mff", tile_pixels=64 * 128)  # exactly the limit: whole
    assert tiled == []
    out = pipe([x[:65, :128], x[:65, :128]], task="mff", tile_pixels=64 * 128)  # one row more: tiled
    assert tiled == [(65, 128)] and out.shape == (65, 128)
    pipe([x, x], task="mff", tile_pixels=0)  # 0 = never
    assert len(tiled) == 1 and DEFAULT_TILE_PIXELS == 1024 * 1024  # up to 1024 x 1024: the whole path
    for bad in (-5, 1000):
        with pytest.raises(ValueError, match=f"tile_pixels {bad}: give at least 4096"):
            check_tile_pixels(bad)


def _column_steps(x: np.ndarray, axis: int) -> np.ndarray:
    """Mean |difference| between neighbouring columns (axis 1) or rows (axis 0) of a gray image."""
    return np.abs(np.diff(x, axis=axis)).mean(axis=1 - axis)


def test_tiled_output_is_close_to_untiled_and_shows_no_seam() -> None:
    """allfuse-reg on a 640 x 480 pair with the threshold forced down to 256 x 256: the encoder, decoder
    and refiner all run on 256 px tiles. The output stays close to the untiled one, and at every
    tile border neither its gradient nor the (tiled - untiled) difference jumps."""
    pipe = FusionPipeline.from_pretrained("allfuse-reg")
    ims = [np.clip(cv2.resize(x, (640, 480), interpolation=cv2.INTER_CUBIC), 0, 1) for x in demo_pair("mff")]
    whole = pipe(ims, task="mff")
    limit = 256 * 256
    tiled = pipe(ims, task="mff", tile_pixels=limit)
    diff = np.abs(tiled - whole)
    # measured on an AMD EPYC: max 0.041 (one spot; 0.037 without the input corrector, 0.024 on an Intel
    # Xeon), 99.9th percentile 0.013, mean 0.0014
    assert diff.max() < 0.06 and np.quantile(diff, 0.999) < 0.025 and diff.mean() < 0.003
    side = tile_side(limit)
    grid = Grid.over(480, 640, side, tile_overlap(side), ALIGN)
    a, b = whole.mean(axis=2), tiled.mean(axis=2)
    for axis, spans, size in ((1, grid.cols, 640), (0, grid.rows, 480)):
        borders = sorted({e for span in spans for e in span if 0 < e < size})
        assert borders  # the image really was cut
        ratio = _column_steps(b, axis) / _column_steps(a, axis)  # gradient, tiled / untiled
        step = _column_steps(b - a, axis)  # a seam is a jump of the difference between neighbours
        for e in borders:
            assert 0.9 < ratio[e - 1] < 1.1, (axis, e, ratio[e - 1])
            assert step[e - 1] < 4 * np.median(step), (axis, e, step[e - 1] / np.median(step))
    col = min(e for span in grid.cols for e in span if 0 < e < 640)
    seamed = b.copy()
    seamed[:, col:] += 0.005  # a control: a jump of 0.005 (about one grey level) is caught
    step = _column_steps(seamed - a, 1)
    assert step[col - 1] > 4 * np.median(step)
