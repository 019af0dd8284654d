"""Pixel blocks: find an input enlarged by nearest-neighbour interpolation and re-interpolate it smoothly.

Beyond the papers. A picture shrunk and enlarged again by the nearest-neighbour rule (the default of
`torch.nn.functional.interpolate`, a thumbnail or a digital zoom blown up, a low-resolution sensor shown at
a display's size) is made of flat blocks of p x p pixels: inside a block neighbours are equal, so the
luminance's mean absolute difference between neighbouring columns, taken down the whole image (the
column profile f), is a comb: large at the block boundaries every p pixels, the noise floor between them.
Fusion rules and the latent path keep every step of that staircase, and a deblurring filter sharpens it.

Measure (pixel_grid), for each axis: the period p is the strongest peak of the profile's power spectrum
between periods 1.9 and 7.5 px (zero-padded 16 times, so a non-integer p, as from a shrink by 0.27, is read
to within about 0.005 px), and the phase the one of 24 offsets whose boundaries ceil(phase + k p) - 1 hold
the most of the profile's excess over its floor (the median between boundaries). The comb's contrast is
that share against the share the boundaries' count would hold by chance:
    c = (sum_boundaries e / sum e - n_b / n) / (1 - n_b / n),   e = max(f - floor, 0),
about 1 for pixel blocks (0.5 to 0.95 once noise of std 0.05 or a JPEG coding of quality 40 is added on
top), near 0 for a photograph, whose edges fall anywhere. A comb of period p is also one of p / 2 with
empty teeth: the longest period among the equally strong ones is taken. An input counts as enlarged when
both axes reach `pixel_min` at periods within 10 % of each other. Three look-alikes are kept apart: a
JPEG's 8 x 8 grid puts a comb at 8, 4, 2.67 and 2 px, which the 8-px comb explains as well (such an axis
reads 0); an interlaced frame's doubled lines comb one axis only; a linear enlargement of a noisy picture
combs weakly (0.16 to 0.68 on the validation photos, shrunk by 0.5 and 0.27 with noise of std 0.03
before). Calibration (the shipped `pixel_min` 0.75): the largest contrast of the weaker axis over all
1,000 clean inputs of the shared benchmark is 0.47 at a long side of 512 and 0.55 at native size (old
TNO thermal frames, line-doubled); over the 1,056 inputs of both bench generators' cells and the main
section other than the cross-check's `pixelate` cells 0.68 (a linear enlargement with impulse and ISO
noise); every input of those `pixelate` cells reads 0.76 or more.

Undo (depixelate): each block's mean (which also averages away noise added after the enlargement) is a
sample of the small picture at the block's centre; a bicubic interpolation through those samples, at the
block centres' positions (cv2.remap), gives the smooth enlargement the picture would have had, which the
deblurring stage may then sharpen as it does any soft input.
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

from allfuse.color import to_gray
from allfuse.types import Image

PERIODS = (1.9, 7.5)  # the block sizes looked for, px (a JPEG's own 8 x 8 blocks lie above)
JPEG_BLOCK = 8  # px: a JPEG codec's block grid
PADDING = 16  # zero-padding of the profile's FFT: the period's resolution
PHASES = 24  # offsets tried within one period
CANDIDATES = 3  # spectral peaks tried per axis
JPEG_SHARE = 0.5  # a comb whose 8-px subset keeps this share of its contrast is a JPEG codec's (fit_axis)
TIE = 0.05  # grids whose contrasts differ by less are equally good (fit_axis)
AGREEMENT = 0.1  # the two axes' periods differ by at most this fraction: blocks are (nearly) square


class AxisGrid(NamedTuple):
    """The block grid found along one axis: comb contrast, period (px) and boundary positions (index i: a
    boundary between pixels i and i + 1)."""

    contrast: float
    period: float
    boundaries: np.ndarray


PixelGrid = tuple[AxisGrid, AxisGrid]  # along the columns (x) and along the rows (y)


def diff_profile(g: np.ndarray, axis: int) -> np.ndarray:
    """Mean absolute difference between neighbours along `axis` (1: columns), over the other axis."""
    return np.abs(np.diff(g, axis=axis)).mean(axis=1 - axis)


def spectral_periods(f: np.ndarray, k: int = CANDIDATES) -> list[float]:
    """The periods of the k strongest peaks of the profile's power spectrum within PERIODS."""
    n = len(f)
    power = np.abs(np.fft.rfft((f - f.mean()) * np.hanning(n), n=PADDING * n)) ** 2
    freqs = np.fft.rfftfreq(PADDING * n)
    band = (freqs >= 1 / PERIODS[1]) & (freqs <= 1 / PERIODS[0])
    if not band.any():
        return []
    # local maxima within the band, strongest first
    inside = np.flatnonzero(band)
    peaks = [i for i in inside if power[i] >= power[i - 1] and power[i] >= power[min(i + 1, len(power) - 1)]]
    peaks.sort(key=lambda i: -power[i])
    return [1.0 / freqs[i] for i in peaks[:k]]


def boundaries(n: int, period: float, phase: float) -> np.ndarray:
    """Boundary positions ceil(phase + k period) - 1 within [0, n)."""
    b = np.ceil(phase + np.arange(int(n / period) + 2) * period).astype(np.int64) - 1
    return np.unique(b[(b >= 0) & (b < n)])


def comb_contrast(f: np.ndarray, b: np.ndarray) -> float:
    """Module doc: the boundaries' share of the profile's excess over its floor, against chance."""
    n = len(f)
    if len(b) == 0 or len(b) >= n:
        return 0.0
    inner = np.ones(n, bool)
    inner[b] = False
    e = np.maximum(f - np.median(f[inner]), 0.0)
    total = float(e.sum())
    if total <= 0:
        return 0.0
    frac = len(b) / n
    return (float(e[b].sum()) / total - frac) / (1 - frac)


def best_comb(f: np.ndarray, period: float) -> AxisGrid:
    """The phase whose boundaries at this period give the highest comb contrast."""
    best = AxisGrid(0.0, period, np.zeros(0, np.int64))
    for phase in np.arange(PHASES) * (period / PHASES):
        b = boundaries(len(f), period, phase)
        c = comb_contrast(f, b)
        if c > best.contrast:
            best = AxisGrid(c, period, b)
    return best


def fit_axis(f: np.ndarray) -> AxisGrid:
    """The best block grid along one axis (module doc, "Measure"). A comb of period p is also one of
    period p / 2 whose every other boundary is empty, and as strong by this contrast: of the grids within
    TIE of the best, the one of the longest period is taken (and twice and three times every spectral
    peak are tried, as a harmonic can outshine its fundamental). A comb the 8-px grid of a JPEG codec
    explains as well (its blocks' edges recur every 8 px, so its harmonics at 4, 2.67 and 2 px show too) is
    the codec's, not pixel blocks: contrast 0."""
    periods = {p * k for p in spectral_periods(f) for k in (1, 2, 3) if p * k <= PERIODS[1]}
    grids = [best_comb(f, p) for p in sorted(periods)]
    if not grids:
        return AxisGrid(0.0, 0.0, np.zeros(0, np.int64))
    top = max(g.contrast for g in grids)
    best = max((g for g in grids if g.contrast >= top - TIE), key=lambda g: g.period)
    if best.contrast > 0 and best_comb(f, JPEG_BLOCK).contrast >= JPEG_SHARE * best.contrast:
        return AxisGrid(0.0, best.period, best.boundaries)
    return best


def pixel_grid(image: Image) -> PixelGrid:
    """The block grid along the columns and along the rows of an image's luminance."""
    g = np.asarray(to_gray(np.asarray(image, np.float32)), np.float32)
    if min(g.shape) < 16:
        empty = AxisGrid(0.0, 0.0, np.zeros(0, np.int64))
        return empty, empty
    return fit_axis(diff_profile(g, 1)), fit_axis(diff_profile(g, 0))


def is_enlarged(grid: PixelGrid, min_contrast: float) -> bool:
    """Both axes show a comb of at least `min_contrast`, of periods within AGREEMENT of each other (an
    interlaced video frame's doubled lines make a comb along one axis only)."""
    (cx, px, _), (cy, py, _) = grid
    return min(cx, cy) >= min_contrast and abs(px - py) <= AGREEMENT * max(px, py)


def block_edges(b: np.ndarray, n: int) -> np.ndarray:
    """Start of every block along an axis, and n at the end."""
    return np.unique(np.concatenate([[0], b + 1, [n]]))


def depixelate(image: Image, grid: PixelGrid) -> Image:
    """Module doc, "Undo": block means re-interpolated bicubically through the block centres."""
    x = np.asarray(image, np.float32)
    h, w = x.shape[:2]
    ex, ey = block_edges(grid[0].boundaries, w), block_edges(grid[1].boundaries, h)
    cx, cy = (ex[:-1] + ex[1:] - 1) / 2.0, (ey[:-1] + ey[1:] - 1) / 2.0
    planes = x if x.ndim == 3 else x[..., None]
    sums = np.add.reduceat(np.add.reduceat(planes, ey[:-1], axis=0), ex[:-1], axis=1)
    small = (sums / np.outer(np.diff(ey), np.diff(ex))[..., None]).astype(np.float32)
    mx = np.interp(np.arange(w), cx, np.arange(len(cx))).astype(np.float32)
    my = np.interp(np.arange(h), cy, np.arange(len(cy))).astype(np.float32)
    map_x, map_y = np.meshgrid(mx, my)
    out = cv2.remap(small, map_x, map_y, interpolation=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    return np.clip(out.reshape(x.shape), 0.0, 1.0).astype(np.float32)
