"""Bounded memory on large images: the encoder, decoder, upsampling and refiner on overlapping tiles.

FusionPipeline runs an image of at most `tile_pixels` pixels (default 1024 x 1024) through its path whole;
a larger one goes through `fuse_large`, where every stage that would work on more than `tile_pixels`
pixels runs on a grid of overlapping square tiles (512 px, or smaller when tile_pixels is):

  inputs (H, W)  --area-->  work size  --encoder, tiled-->  latents  --DiT, latent windows-->  latent
  --decoder, tiled-->  work size  --bicubic, per tile-->  full size  --refiner with the inputs, tiled-->  out

Neighbouring tiles overlap by 1/16 of the side, at least 32 px, and are blended with separable linear
ramps normalised to sum to 1 everywhere (a partition of unity), as the DiT's latent windows are blended
(allfuse.sampling.tiling), so no tile border shows. Encoder tiles start on the latent grid, refiner tiles
on the refiner's own 16 px grid, so a tile sees the same pixel phases as the whole image. The upsampling
from the work size applies, per tile, the rows of the bicubic operator F.interpolate uses (align_corners
False), so it equals the untiled upsampling to float round-off. The DiT runs on latent windows of its
training size, as always; when the latent path itself is tiled, the pipeline runs it in fp32 on the CPU:
oneDNN compiles and keeps a bf16 kernel per matrix shape, and the MoE's expert batches take a new shape
at almost every window, which at 12 MP held about 1 GB (bench/memory.py).

Peak memory is then the inputs and the output (arrays the caller holds anyway) plus one tile's working set
(bench/memory.py). What tiling changes: the encoder and decoder pad at tile borders (blended away), and
the refiner's channel attention averages over its whole input, so it runs twice: a first pass over the
tiles collects its whole-image channel means, the second uses them (WholeImagePooling). The output stays
within a few hundredths of the untiled one, with no seam (tests/test_tiled.py).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from allfuse.devices import autocast
from allfuse.models.layers import NAFBlock
from allfuse.models.refine import DampedRefiner, Refiner
from allfuse.sampling.tiling import ramp, window_starts

DEFAULT_TILE_PIXELS = 1024 * 1024  # above this many pixels a stage runs tiled
TILE_SIDE = 512  # px, the tiles' side when tile_pixels allows it (measured: below)
MIN_TILE_SIDE = 64  # px: smaller tiles would be mostly overlap
ALIGN = 16  # px: tile starts are multiples of this (the latent grid, f = 8, and the refiner's 16 px grid)

LatentFn = Callable[[list[Tensor]], Tensor]  # condition latents -> fused latent (the DiT and its sampler)
TileFn = Callable[[int, int, int, int], Tensor]  # (y0, y1, x0, x1) -> (1, 3, y1 - y0, x1 - x0)
ClassicalFn = Callable[[list[np.ndarray]], np.ndarray]  # input tiles -> the classical source of their fusion


def row_bands(h: int, w: int, band_pixels: int, margin: int, step: int = 1) -> Iterator[tuple[int, ...]]:
    """Bands of rows for a whole-image filter run in bounded memory: (y0, y1, a, b) per band, rows y0:y1
    its own and a:b the rows it is computed on (margin rows of context each side, cut at the image's
    edges). One band of all h rows when band_pixels is 0 or h x w <= band_pixels; otherwise bands of about
    band_pixels pixels, a multiple of `step` rows (a pyramid's 2**levels)."""
    rows = h if not band_pixels or h * w <= band_pixels else max(step, band_pixels // w // step * step)
    for y0 in range(0, h, rows):
        y1 = min(h, y0 + rows)
        yield y0, y1, max(0, y0 - margin), min(h, y1 + margin)


def check_tile_pixels(tile_pixels: int | None) -> None:
    """Refuse a tile size below 64 x 64 px (0 = never tile, None = the default)."""
    if tile_pixels is not None and tile_pixels != 0 and tile_pixels < MIN_TILE_SIDE**2:
        side = MIN_TILE_SIDE
        raise ValueError(
            f"tile_pixels {tile_pixels}: give at least {side**2} ({side} x {side}), or 0 = never tile"
        )


def tile_side(tile_pixels: int) -> int:
    """Side of the square tiles, px: TILE_SIDE, or the largest multiple of ALIGN whose square fits in a
    smaller tile_pixels.

    At 2048 x 1536 (2 cores), 512 px tiles ran the default path in 4.1 s (untiled 3.8 s) and the full-size
    latent path in 13.0 s (untiled 16.2 s: smaller working sets stay in cache), 1024 px tiles in 6.6 s and
    20.3 s; the largest difference to the untiled output was 0.016 / 0.034 with 512 px tiles, 0.027 / 0.027
    with 1024 px ones."""
    return max(MIN_TILE_SIDE, min(TILE_SIDE, math.isqrt(tile_pixels) // ALIGN * ALIGN))


def tile_overlap(side: int) -> int:
    """Overlap of neighbouring tiles, px: 1/16 of the side, at least 32, a multiple of ALIGN."""
    return math.ceil(max(32, side // 16) / ALIGN) * ALIGN


def spans(size: int, window: int, overlap: int, align: int = 1) -> list[tuple[int, int]]:
    """Windows [start, stop) covering [0, size): starts on multiples of `align`, at most `window` long,
    neighbours overlapping by >= overlap."""
    units, wu, ou = math.ceil(size / align), max(1, window // align), math.ceil(overlap / align)
    return [(s * align, min((s + wu) * align, size)) for s in window_starts(units, wu, min(ou, wu - 1))]


def blend_weights(spans_: Sequence[tuple[int, int]], size: int, overlap: int) -> list[np.ndarray]:
    """Per window, 1-D weights over its span: linear ramps over `overlap` at both ends, normalised so the
    windows' weights sum to 1 at every position."""
    raw = [ramp(b - a, overlap).numpy().astype(np.float64) for a, b in spans_]
    total = np.zeros(size)
    for (a, b), r in zip(spans_, raw, strict=True):
        total[a:b] += r
    return [(r / total[a:b]).astype(np.float32) for (a, b), r in zip(spans_, raw, strict=True)]


@dataclass(frozen=True)
class Grid:
    """Overlapping windows over an H x W plane with separable blend weights that sum to 1 everywhere."""

    rows: list[tuple[int, int]]
    cols: list[tuple[int, int]]
    row_weights: list[np.ndarray]
    col_weights: list[np.ndarray]

    @classmethod
    def over(cls, h: int, w: int, side: int, overlap: int, align: int = 1) -> Grid:
        """The grid of windows of `side` (overlapping by `overlap`) over an h x w plane."""
        rows, cols = spans(h, side, overlap, align), spans(w, side, overlap, align)
        return cls(rows, cols, blend_weights(rows, h, overlap), blend_weights(cols, w, overlap))

    def __iter__(self) -> Iterator[tuple[int, int, int, int, np.ndarray]]:
        """(y0, y1, x0, x1, weights (y1 - y0, x1 - x0)) per window, row by row."""
        for (y0, y1), wy in zip(self.rows, self.row_weights, strict=True):
            for (x0, x1), wx in zip(self.cols, self.col_weights, strict=True):
                yield y0, y1, x0, x1, wy[:, None] * wx[None, :]


def as_batch(image: np.ndarray, device: torch.device) -> Tensor:
    """(h, w) or (h, w, 3) float32 array (a crop) -> (1, 3, h, w) tensor on `device`, gray replicated."""
    t = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
    t = t[None, None].expand(1, 3, -1, -1) if t.ndim == 2 else t.permute(2, 0, 1)[None]
    return t.contiguous().to(device)


def area_downscale(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """F.interpolate(..., mode="area") of a (H, W) or (H, W, 3) array to `size`, without copying it whole."""
    t = torch.from_numpy(image)
    t = t[None, None] if t.ndim == 2 else t.permute(2, 0, 1)[None]  # a view: HWC is channels-last
    out = F.interpolate(t, size=size, mode="area")[0]
    return out[0].numpy() if image.ndim == 2 else out.permute(1, 2, 0).numpy()


def bicubic_matrix(n_in: int, n_out: int) -> Tensor:
    """(n_out, n_in): the 1-D operator of F.interpolate(mode="bicubic", align_corners=False), n_in -> n_out;
    bicubic is separable, so an image resizes as M_y @ X @ M_x^T."""
    eye = torch.eye(n_in).view(1, n_in, n_in, 1)  # channel c = unit vector c along the resized axis
    return F.interpolate(eye, size=(n_out, 1), mode="bicubic", align_corners=False)[0, :, :, 0].T


class BicubicTiles:
    """Tiles of F.interpolate(small, size, mode="bicubic", align_corners=False).clamp(0, 1), each computed
    from the few rows and columns of `small` it depends on."""

    def __init__(self, small: Tensor, size: tuple[int, int]) -> None:
        self.small = small[0].float()  # (3, h, w)
        self.my = bicubic_matrix(small.shape[-2], size[0]).to(small.device)  # (H, h)
        self.mx = bicubic_matrix(small.shape[-1], size[1]).to(small.device)  # (W, w)

    def __call__(self, y0: int, y1: int, x0: int, x1: int) -> Tensor:
        """The (1, 3, y1 - y0, x1 - x0) tile at rows y0:y1, columns x0:x1 of the upsampled image."""
        my, mx = self.my[y0:y1], self.mx[x0:x1]
        r0, r1 = _support(my)
        c0, c1 = _support(mx)
        tile = torch.einsum("yh,chw,xw->cyx", my[:, r0:r1], self.small[:, r0:r1, c0:c1], mx[:, c0:c1])
        return tile[None].clamp(0, 1)


def _support(m: Tensor) -> tuple[int, int]:
    """[first, last + 1) of the columns of m that hold any non-zero weight."""
    cols = torch.nonzero(m.abs().sum(dim=0)).flatten()
    return int(cols[0]), int(cols[-1]) + 1


def encode_tiled(tok, images: Sequence[np.ndarray], tile_pixels: int, device: torch.device) -> list[Tensor]:
    """Latents (1, C, ceil(H/f), ceil(W/f)) of (H, W[, 3]) arrays, encoded tile by tile and blended."""
    f = tok.downsample
    h, w = images[0].shape[:2]
    side = tile_side(tile_pixels)
    grid = Grid.over(math.ceil(h / f), math.ceil(w / f), side // f, tile_overlap(side) // f)
    out = [torch.zeros(1, tok.channels, math.ceil(h / f), math.ceil(w / f), device=device) for _ in images]
    for a, b, c, d, wt in grid:
        weight = torch.from_numpy(wt).to(device)
        for z, im in zip(out, images, strict=True):
            tile = as_batch(im[a * f : min(b * f, h), c * f : min(d * f, w)], device)
            z[..., a:b, c:d] += tok.encode(tile).float() * weight
    return out


def decode_tiled(tok, z: Tensor, size: tuple[int, int], tile_pixels: int) -> np.ndarray:
    """The (H, W, 3) float32 image of latent z (1, C, h, w), decoded tile by tile and blended."""
    f, (h, w) = tok.downsample, size
    side = tile_side(tile_pixels)
    out = np.zeros((h, w, 3), np.float32)
    for y0, y1, x0, x1, wt in Grid.over(h, w, side, tile_overlap(side), align=f):
        zt = z[..., y0 // f : math.ceil(y1 / f), x0 // f : math.ceil(x1 / f)]
        tile = tok.decode(zt, size=(y1 - y0, x1 - x0))  # (1, 3, y1 - y0, x1 - x0)
        out[y0:y1, x0:x1] += tile[0].permute(1, 2, 0).float().cpu().numpy() * wt[..., None]
    return np.clip(out, 0.0, 1.0, out=out)


class WholeImagePooling:
    """Let the refiner's channel attention see whole-image statistics while it runs on tiles.

    A NAFBlock's simplified channel attention is `sca(mean of its features over H, W)`; on a tile that mean
    is the tile's own. While `recording`, each attention layer's pooled input is summed over the tiles,
    weighted by `share` (the tile's part of the blend weights, so the shares sum to 1); once `replay`ing,
    every layer gets that sum, the whole image's mean, instead of its tile's. Measured on the demo pair at
    2048 x 1536, this cuts the largest difference to the untiled output from 0.101 to 0.016 (mean 0.0041
    to 0.0010). The hooks go when the context ends."""

    def __init__(self, refiner: Refiner | DampedRefiner) -> None:
        self.layers = [m.sca for m in refiner.modules() if isinstance(m, NAFBlock)]
        self.sums: list[Tensor | float] = [0.0] * len(self.layers)
        self.replaying, self.share, self.hooks = False, 0.0, []

    def __enter__(self) -> WholeImagePooling:
        self.hooks = [layer.register_forward_pre_hook(self._hook(i)) for i, layer in enumerate(self.layers)]
        return self

    def __exit__(self, *exc: object) -> None:
        for hook in self.hooks:
            hook.remove()

    def _hook(self, i: int) -> Callable:
        def pooled(module: torch.nn.Module, args: tuple[Tensor, ...]) -> tuple[Tensor, ...] | None:
            if self.replaying:
                return (torch.as_tensor(self.sums[i]).to(args[0].dtype),)
            self.sums[i] = self.sums[i] + args[0].float() * self.share  # (1, C, 1, 1)
            return None

        return pooled


def refine_tiled(
    refiner: Refiner | DampedRefiner | None,
    fused: TileFn,
    images: Sequence[np.ndarray],
    tile_pixels: int,
    device: torch.device,
    classical: ClassicalFn | None = None,
) -> np.ndarray:
    """(H, W, 3) float32: the refiner (or, without one, the fused image itself) tile by tile, blended; the
    refiner runs twice, the first pass collecting its whole-image channel statistics (WholeImagePooling).
    `classical`: input tiles -> the classical source of a refiner that blends one (models/refine.py), made
    per tile (twice: memory stays bounded, and the rules are local up to their coarsest blur)."""
    h, w = images[0].shape[:2]
    side = tile_side(tile_pixels)
    grid = Grid.over(h, w, side, tile_overlap(side), align=ALIGN)

    def run(y0: int, y1: int, x0: int, x1: int) -> Tensor:
        tile = fused(y0, y1, x0, x1)
        if refiner is None:
            return tile
        crops = [im[y0:y1, x0:x1] for im in images]
        xs = [as_batch(im, device) for im in crops]
        extra = as_batch(classical(crops), device) if classical is not None else None
        with autocast(device):
            return refiner(tile, xs, extra).float().clamp(0, 1)

    out = np.zeros((h, w, 3), np.float32)
    with WholeImagePooling(refiner) if refiner is not None else contextlib.nullcontext() as pooling:
        if pooling is not None:
            for y0, y1, x0, x1, wt in grid:
                pooling.share = float(wt.sum(dtype=np.float64)) / (h * w)
                run(y0, y1, x0, x1)
            pooling.replaying = True
        for y0, y1, x0, x1, wt in grid:
            tile = run(y0, y1, x0, x1)
            out[y0:y1, x0:x1] += tile[0].permute(1, 2, 0).float().cpu().numpy() * wt[..., None]
    return np.clip(out, 0.0, 1.0, out=out)


def fuse_large(
    tok,
    latent: LatentFn,
    refiner: Refiner | DampedRefiner | None,
    images: Sequence[np.ndarray],
    work: tuple[int, int],
    tile_pixels: int,
    device: torch.device,
    classical: ClassicalFn | None = None,
    mirror: bool = False,
) -> np.ndarray:
    """FusionPipeline's path for images of more than tile_pixels pixels (module doc): checked (H, W[, 3])
    float32 inputs, the latent path at size `work` -> (H, W, 3) float32 in [0, 1]; `classical` as for
    refine_tiled; with `mirror`, the decoded fusion is averaged with the latent path's on the left-right
    mirrored inputs, mirrored back (allfuse.pipeline.MIRROR)."""
    h, w = images[0].shape[:2]
    small = work != (h, w)
    xw = [area_downscale(im, work) for im in images] if small else list(images)

    def decoded(xs: list[np.ndarray]) -> Tensor:  # encode, DiT, decode at the work size, tiled if large
        if work[0] * work[1] > tile_pixels:
            z = latent(encode_tiled(tok, xs, tile_pixels, device))
            return torch.from_numpy(decode_tiled(tok, z, work, tile_pixels)).permute(2, 0, 1)[None].to(device)
        z = latent([tok.encode(as_batch(x, device)).clone() for x in xs])
        return tok.decode(z, cond=[as_batch(x, device) for x in xs], size=work)

    dec = decoded(xw)
    if mirror:
        dec = 0.5 * (dec + decoded([np.ascontiguousarray(x[:, ::-1]) for x in xw]).flip(-1))
    if small:
        tiles: TileFn = BicubicTiles(dec, (h, w))
    else:

        def tiles(y0: int, y1: int, x0: int, x1: int) -> Tensor:
            return dec[..., y0:y1, x0:x1]

    return refine_tiled(refiner, tiles, images, tile_pixels, device, classical)
