"""JPEG deblocking: the first classical stage, before stripe removal (pipeline.restore_inputs). It also
re-interpolates inputs made of pixel blocks (enlarged by nearest neighbour; `pixel_tasks`, allfuse.depixel),
first: such an input is not also deblocked as a JPEG.

Beyond the papers. A JPEG codec quantizes each 8 x 8 block's DCT coefficients; at low quality the blocks'
edges and the ringing around sharp edges are what a fusion rule and the latent path then carry into the
output (the validation bench's JPEG cells: bench/degrade.py, libjpeg at luma quality 35-42 and 14-18).
Noise filters do not see it: the non-local-means chains score as the degraded inputs there.

Measure (jpeg_quality): an image that went through a JPEG codec keeps the codec's quantization lattice in
its luminance's block DCT: on the 8-pixel grid the codec used, each coefficient (u, v) sits close to a
multiple of the quantization step Q(u, v). The grid's offset along each axis is the one at which 8-px
segments hold the least of their AC energy at high frequencies (grid_phase; a coded block's were quantized
away). For every IJG quality q from 5 to 95 (ITU-T T.81 Annex K's luminance table scaled as libjpeg scales
it, the tables OpenCV, Pillow and most cameras write) the lattice fit of 14 low-frequency coefficients is
the share of the coefficients larger than Q/2 that lie within 1 (8-bit units) of a multiple of Q, less the
share a value off any lattice would get by chance (2 / Q). The best q and its fit are the estimate: the
true table beats its divisors' by the chance term and its multiples' by the share. It reads the quality of
every bench JPEG image of the 9 validation pairs checked to within 1 (14-18 and 35-42), and scikit-image
photos coded at 15-75 by OpenCV, also cropped off the grid, and at 10-60 by Pillow
(tests/test_deblock.py); a dark or smooth image (few large coefficients) fits less: the bench's JPEG
images fit 0.18-0.90, the lowest a strongly over-exposed multi-focus pair (many saturated, flat blocks).
Many of the shared benchmark's images are JPEG files of quality 74 (all of RoadScene, most of MFI-WHU and
Lytro at their native size; fits 0.3-0.7), which `max_quality` leaves alone; at the benches' long side of
512 none of the 1,000 clean images measures as a JPEG of quality 60 or less with a fit of `min_fit` or
more, at native size one does (an MSRS infrared night frame: quality 40, fit 0.17; MSRS frames fit
0.10-0.33 at qualities 40-80, weak lattices of an earlier coding). A JPEG whose tones were stretched after
decoding measures as the lower quality its stretched blocks look like: the bench's over-exposure of
RoadScene's quality-74 visible images reads as 52-56 when strong, with fits of 0.15-0.23 on 3 of the 6
such images of its families and main section, which are then deblocked (and score higher Qabf: the
allfuse-reg model card), and as 63-65 when mild.

Deblock (deblock_image): re-application of JPEG (Nosratinia 2001): the image is shifted by (dy, dx) on a
`shifts` x `shifts` grid of offsets within the 8 x 8 block (8: all 64), encoded and decoded at the
estimated quality, shifted back, and the results averaged. Each shifted coding removes what does not fit
its own grid; the average keeps what they agree on, the image's content, and smooths the block edges and
ringing of the original grid. Colour images are re-coded in colour (4:2:0, as the codec that made them
most likely did).

An input is deblocked when its fit is at least `min_fit` and its quality at most `max_quality`; each input
is measured on its own (the cameras of a pair need not share a codec). Run first: the codec is the last
step of a capture, so it is undone before anything else. Cost (bench/latency.py, 2 cores): measuring a
pair 0.03 s at 512² and at 1024² (at most PHASE_SEGMENTS segments and MAX_BLOCKS blocks are read);
deblocking two colour inputs 0.23 s at 512² and 0.79 s at 1024², paid only by low-quality JPEGs. Images
of more than BAND rows are re-coded in bands (deblock_image), so memory stays bounded: a 12 MP colour JPEG
of quality 30 took 7.7 s and 0.27 GB above the image itself (/usr/bin/time, 2 cores; 1.3 GB re-coded
whole).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np
import scipy.fft

from allfuse.depixel import PixelGrid, depixelate, is_enlarged, pixel_grid
from allfuse.types import TASKS, Image, TaskStageConfig

# ITU-T T.81 Annex K, Table K.1: the luminance quantization table that libjpeg scales by quality.
LUMA_TABLE = np.array(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    np.float64,
)
# The first 14 AC coefficients in zigzag order: large enough in natural images to show the lattice.
POSITIONS = (
    (0, 1),
    (1, 0),
    (2, 0),
    (1, 1),
    (0, 2),
    (0, 3),
    (1, 2),
    (2, 1),
    (3, 0),
    (4, 0),
    (3, 1),
    (2, 2),
    (1, 3),
    (0, 4),
)
QUALITIES = range(5, 96)
# The orthonormal 8-point DCT-II as a matrix: row k is sqrt(2/8) c_k cos(pi (2n + 1) k / 16), c_0 = 1/sqrt(2).
DCT8 = scipy.fft.dct(np.eye(8, dtype=np.float32), axis=0, norm="ortho")
MAX_BLOCKS = 4096  # blocks read per image to estimate its quality (evenly strided)
PHASE_SEGMENTS = 8192  # 8-px segments per offset and axis read to find the block grid
MIN_COEFFS = 20  # a coefficient position with fewer large values does not count
TOLERANCE = 1.0  # 8-bit units: how far from the lattice a coefficient may sit (decoder rounding)
MIN_SIDE = 32  # px: a smaller image has too few blocks to measure
BAND = 512  # rows: larger images are deblocked in bands of this many rows (a multiple of 16)
MARGIN = 32  # rows of each band's neighbours it is re-coded with (a multiple of 16)


@dataclass(frozen=True)
class DeblockConfig(TaskStageConfig):
    """The JPEG deblocking stage of a model folder (deblock.json; module doc)."""

    max_quality: int = 60  # deblock inputs that measure as JPEGs of at most this IJG quality
    min_fit: float = 0.15  # ... with a lattice fit of at least this (module doc)
    shifts: int = 8  # the re-coded offsets are a shifts x shifts grid within the 8 x 8 block (1, 2, 4 or 8)
    tasks: tuple[str, ...] = TASKS
    # the tasks whose inputs enlarged by nearest neighbour are re-interpolated (allfuse.depixel); none by
    # default, so a deblock.json written before it keeps its behaviour
    pixel_tasks: tuple[str, ...] = ()
    pixel_min: float = 0.75  # ... when the pixel blocks' comb reaches this contrast along both axes

    def __post_init__(self) -> None:
        ok = 1 <= self.max_quality <= 100 and 0 < self.min_fit < 1 and self.shifts in (1, 2, 4, 8)
        ok = ok and set(self.pixel_tasks) <= set(TASKS) and 0 < self.pixel_min < 1
        if not ok or not set(self.tasks) <= set(TASKS):
            raise ValueError(
                f"bad deblock config: need 1 <= max_quality <= 100, 0 < min_fit < 1, shifts in 1, 2, 4, 8, "
                f"tasks and pixel_tasks among {', '.join(TASKS)} and 0 < pixel_min < 1: {self}"
            )

    @property
    def all_tasks(self) -> tuple[str, ...]:
        """The tasks the stage runs for: JPEG deblocking, pixel blocks or both."""
        return tuple(t for t in TASKS if t in self.tasks or t in self.pixel_tasks)


def quality_table(quality: int) -> np.ndarray:
    """libjpeg's luminance quantization table at an IJG quality (1-100): Table K.1 scaled by 5000 / q
    below 50 and by 200 - 2 q from 50 on, rounded, clipped to 1-255."""
    scale = 5000.0 / quality if quality < 50 else 200.0 - 2.0 * quality
    return np.clip(np.floor((LUMA_TABLE * scale + 50.0) / 100.0), 1.0, 255.0)


def jpeg_luma(values: np.ndarray, color: bool) -> np.ndarray:
    """The codec's luminance (ITU-R BT.601 weights, as JPEG's YCbCr) of colour values (..., 3) or gray
    values in [0, 1], in 8-bit units, level-shifted by 128 (float32)."""
    x = np.asarray(values, np.float32)
    if color:
        x = x @ np.array([0.299, 0.587, 0.114], np.float32)
    return x * np.float32(255.0) - np.float32(128.0)


def grid_phase(image: np.ndarray, segments: int = PHASE_SEGMENTS) -> tuple[int, int]:
    """The (row, column) offset of the 8-px block grid, each axis on its own: the offset at which 8-px
    segments along that axis hold the least of their AC energy at high frequencies (k >= 4 of the 1-D
    DCT-II), on an even sample of at most `segments` segments per offset (a coded block's high frequencies
    were quantized away; a segment straddling the grid sees the codec's block edge as one). Only the
    sampled lines are read (no full-size copy of a large image)."""
    out = []
    for axis in (0, 1):
        lines = image if axis == 1 else np.swapaxes(image, 0, 1)  # segments run along axis 1 of `lines`
        n = (lines.shape[1] - 7) // 8  # whole segments at every offset
        rows = jpeg_luma(lines[:: max(1, lines.shape[0] * n // segments)], image.ndim == 3)
        best, phase = np.inf, 0
        for d in range(8):
            c = np.abs(rows[:, d : d + 8 * n].reshape(-1, 8) @ DCT8.T)
            share = float(c[:, 4:].sum() / max(c[:, 1:].sum(), 1e-9))
            if share < best:
                best, phase = share, d
        out.append(phase)
    return out[0], out[1]


def block_dct(image: np.ndarray, phase: tuple[int, int], max_blocks: int = MAX_BLOCKS) -> np.ndarray:
    """(N, 8, 8) orthonormal 2-D DCT-II of the luminance of whole blocks on the grid (JPEG's FDCT), at
    most `max_blocks` of them, on an even lattice of block rows and columns; only those blocks are read."""
    rows, cols = (image.shape[0] - phase[0]) // 8, (image.shape[1] - phase[1]) // 8
    step = max(1, int(np.ceil(np.sqrt(rows * cols / max_blocks))))
    ys = phase[0] + 8 * np.arange(0, rows, step)
    xs = phase[1] + 8 * np.arange(0, cols, step)
    idx = np.arange(8)
    pixels = image[(ys[:, None] + idx)[:, None, :, None], (xs[:, None] + idx)[None, :, None, :]]
    blocks = jpeg_luma(pixels, image.ndim == 3)
    return scipy.fft.dctn(blocks.reshape(-1, 8, 8).astype(np.float64), axes=(1, 2), norm="ortho")


def position_fits(values: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """One coefficient position's lattice fit for each quantization step: the share of the values above
    step / 2 within TOLERANCE of a multiple of the step, less the share by chance (2 TOLERANCE / step); 0
    for a step below 3 or fewer than MIN_COEFFS such values."""
    v, q = np.abs(values)[None, :], steps[:, None]
    large = v > q / 2
    near = large & (np.abs(v - q * np.round(v / q)) <= TOLERANCE)
    count = large.sum(axis=1)
    fits = near.sum(axis=1) / np.maximum(count, 1) - 2.0 * TOLERANCE / steps
    return np.where((steps >= 3) & (count >= MIN_COEFFS), fits, 0.0)


@functools.cache
def position_steps() -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """Per position of POSITIONS, its distinct quantization steps over QUALITIES and, per quality, the
    index of its step (many qualities share a step, so each is scored once). Built once: allocating the
    tables on every call left the heap such that the torch work after took some 50,000 more page faults
    at 1024² (bench/latency.py's last column)."""
    tables = np.stack([quality_table(q) for q in QUALITIES])
    return tuple(np.unique(tables[:, u, v], return_inverse=True) for u, v in POSITIONS)


def jpeg_quality(image: Image) -> tuple[int, float]:
    """(IJG quality, lattice fit) of the JPEG coding an image most likely went through (module doc); a fit
    near 0 means no JPEG lattice was found (quality 0 when none fits at all)."""
    x = np.asarray(image)
    if min(x.shape[:2]) < MIN_SIDE:
        return 0, 0.0
    coeffs = block_dct(x, grid_phase(x))
    fits = np.zeros(len(QUALITIES))
    for (u, v), (steps, which) in zip(POSITIONS, position_steps(), strict=True):
        fits += position_fits(coeffs[:, u, v], steps)[which]
    fits /= len(POSITIONS)
    best = int(np.argmax(fits))
    return (QUALITIES[best], float(fits[best])) if fits[best] > 0 else (0, 0.0)


def encode_decode(image: np.ndarray, quality: int) -> np.ndarray:
    """One JPEG round trip of a [0, 1] float image through OpenCV's libjpeg at an IJG quality (4:2:0)."""
    u8 = np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
    color = u8.ndim == 3
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(u8, cv2.COLOR_RGB2BGR) if color else u8, [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    )
    if not ok:
        raise RuntimeError("OpenCV failed to encode a JPEG")
    out = cv2.imdecode(buf, cv2.IMREAD_COLOR if color else cv2.IMREAD_GRAYSCALE)
    return (cv2.cvtColor(out, cv2.COLOR_BGR2RGB) if color else out).astype(np.float32) / 255.0


def recode_mean(image: np.ndarray, quality: int, offsets: Sequence[tuple[int, int]]) -> np.ndarray:
    """Sum over `offsets` (dy, dx) of the image shifted by them (edges padded by reflection), coded and
    decoded at `quality` and shifted back (float64)."""
    h, w = image.shape[:2]
    extra = ((0, 0),) if image.ndim == 3 else ()
    acc = np.zeros(image.shape, np.float64)
    for dy, dx in offsets:
        padded = np.pad(image, ((dy, 8), (dx, 8), *extra), mode="reflect")
        acc += encode_decode(padded, quality)[dy : dy + h, dx : dx + w]
    return acc


def deblock_image(image: Image, quality: int, shifts: int = 8, band: int = BAND) -> Image:
    """Re-application of JPEG (Nosratinia 2001): the mean of the image re-coded at `quality` on a shifts x
    shifts grid of offsets within the block (each shifted, coded, shifted back; edges padded by
    reflection). The codings run in parallel threads (libjpeg releases the GIL), one per CPU core. An image
    of more than `band` rows is done in bands of `band` rows (a multiple of 16) with MARGIN rows of its
    neighbours on each side: a coding is local to its 16 x 16 colour block and the decoder's chroma
    upsampling reads one more sample, so the bands give the whole image's result in bounded memory."""
    if band % 16 or band <= 0:
        raise ValueError(f"deblock_image: band must be a positive multiple of 16 rows, got {band}")
    x = np.asarray(image, np.float32)
    h = x.shape[0]
    step = 8 // shifts
    offsets = [(dy, dx) for dy in range(0, 8, step) for dx in range(0, 8, step)]
    workers = max(1, os.cpu_count() or 1)
    if h <= band + 2 * MARGIN:  # the offsets in parallel
        chunks = [offsets[i::workers] for i in range(min(workers, len(offsets)))]
        with ThreadPoolExecutor(max_workers=len(chunks)) as pool:
            total = sum(pool.map(lambda c: recode_mean(x, quality, c), chunks))
        return np.clip(total / len(offsets), 0.0, 1.0).astype(np.float32)
    out = np.empty_like(x)

    def run(y0: int) -> None:  # one band, all offsets; its margins start on the 16-px grid
        y1, top = min(h, y0 + band), max(0, y0 - MARGIN)
        part = recode_mean(x[top : min(h, y1 + MARGIN)], quality, offsets) / len(offsets)
        out[y0:y1] = np.clip(part[y0 - top : y1 - top], 0.0, 1.0)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(run, range(0, h, band)))
    return out


def pixel_grids(images: Sequence[Image], task: str, cfg: DeblockConfig) -> list[PixelGrid | None]:
    """Each input's pixel-block grid (allfuse.depixel) when it measures as enlarged by nearest neighbour
    (cfg.pixel_min along both axes) and the task is one of cfg.pixel_tasks; None otherwise."""
    if task not in cfg.pixel_tasks:
        return [None] * len(images)
    grids = [pixel_grid(x) for x in images]
    return [g if is_enlarged(g, cfg.pixel_min) else None for g in grids]


def deblock_choices(
    images: Sequence[Image], task: str, cfg: DeblockConfig, grids: Sequence[PixelGrid | None] | None = None
) -> list[int]:
    """The quality deblock_inputs deblocks each input at (0: left as it is): an input that measures as a
    JPEG of quality at most cfg.max_quality with a lattice fit of at least cfg.min_fit, unless it is made of
    pixel blocks (`grids`, pixel_grids' when None: its re-interpolation smooths the codec's blocks too)."""
    if task not in cfg.tasks:
        return [0] * len(images)
    if grids is None:
        grids = pixel_grids(images, task, cfg)
    fits = [jpeg_quality(x) if g is None else (0, 0.0) for x, g in zip(images, grids, strict=True)]
    return [q if fit >= cfg.min_fit and 0 < q <= cfg.max_quality else 0 for q, fit in fits]


def deblock_inputs(
    images: Sequence[Image], task: str, cfg: DeblockConfig, grids: Sequence[PixelGrid | None] | None = None
) -> tuple[list[Image], list[int]]:
    """The inputs, each one made of pixel blocks re-interpolated (allfuse.depixel) and each other one that
    measures as a JPEG of quality at most cfg.max_quality deblocked at that quality (the same array
    otherwise); and the qualities deblocked at (0: left as it is or re-interpolated; deblock_choices).
    `grids`: pixel_grids' for these inputs, measured when None."""
    if grids is None:
        grids = pixel_grids(images, task, cfg)
    used = deblock_choices(images, task, cfg, grids)
    out = [
        depixelate(x, g) if g is not None else deblock_image(x, q, cfg.shifts) if q else x
        for x, g, q in zip(images, grids, used, strict=True)
    ]
    return out, used
