"""Washed-out visible image: an infrared + visible fusion takes the infrared image's detail where the visible
image is near white.

Beyond the papers. Where a visible camera is washed out (glare, an over-exposed sky, snow, fog or haze lit
bright), its image holds little of the scene's structure: what detail it has there is the weather's (snow
streaks, a haze's mottle) or none at all. The latent path, trained to fuse as the teacher's rule fuses a
clean pair, keeps that pale layer over the infrared edges, softened, and the detail pick
(allfuse.pick) takes the rule's detail, which is the same mix. The infrared camera sees through glare and
most weather. So, as the last step of an infrared + visible fusion, in the band finer than a Gaussian of
BAND_SIGMA px the output's luminance detail moves toward the infrared image's:

    D(x) = Y(x) - G_s * Y(x)                                   (detail band, s = BAND_SIGMA)
    m = ramp(G_4 * Y_vis, BRIGHT[0] -> BRIGHT[1])             (how near white the visible image is)
    w = min(1, G_4 * D_ir^2 / (KAPPA G_4 * D_out^2))          (the infrared has detail of its own there)
    out' = out + m w (D_ir - D_out)                            (the same shift on every colour channel)

with G_a a Gaussian of std a px (G_4: BRIGHT_SIGMA, ENERGY_SIGMA), times a reading of the whole visible
image: ramp(its dark-channel floor, FLOOR[0] -> FLOOR[1]) (allfuse.exposure.dark_floor, He et al. 2009
Eq. 5, its 5th percentile). A bright region alone is no washout: a daylight road, a white car, a pale sky
carry the visible camera's own detail, and where the infrared image is soft or low in contrast its detail
is the poorer one (on the bench's low-contrast infrared images Qabf fell by 0.02 without the floor). What
washes a camera out lifts its darkest values with the rest: glare, whitening snow, an over-exposure, a
veil. The validation pairs' clean visible images read floors of 0.02 to 0.46 (daylight RoadScene frames
the highest), those under the benches' over-exposure, brightness, snow and strong haze 0.42 to 0.82.
The weight w keeps the visible image's own detail (a sign's lettering, a lit facade) wherever the
infrared image is flat beside it: the infrared's local detail energy must reach KAPPA of the output's for
its detail to take over wholly. Coarser than the band, brightness and colour stay the fusion's. The
restored infrared image's fine detail also carries what the stages left of its noise, and a gain's 8-bit
steps, which the latent path removes: so the step is scaled as the detail pick is, by the restored
pair's noise and the exposure stage's gain (FusionPipeline.pick_strength).

Measured effects on the validation bench are in the models' cards ("What the washout step changed").
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from allfuse.color import to_gray
from allfuse.exposure import dark_floor, ramp
from allfuse.tiled import row_bands
from allfuse.types import Image

BAND_SIGMA = 16.0  # px: the detail band is what a Gaussian of this std removes
BRIGHT = (0.7, 0.9)  # the visible image's smoothed luminance: no shift up to the first, full from the second
FLOOR = (0.45, 0.6)  # the visible image's dark-channel floor: no step up to the first, full from the second
BRIGHT_SIGMA = 4.0  # px: the smoothing of the visible image's luminance before the ramp
ENERGY_SIGMA = 4.0  # px: the window (Gaussian std) of the local detail energies
KAPPA = 0.25  # the infrared's detail energy, as a share of the output's, from which it takes over wholly
LOW_STEP = 4  # the band's low-pass runs at 1/LOW_STEP of the size (lowpass)
MARGIN = 96  # rows of context each side of a band (the filters reach 3 x 16 + 3 x 4 px; a multiple of 4)


def washout_weight(visible: Image) -> np.ndarray:
    """m: 0 where the visible image's luminance, smoothed by BRIGHT_SIGMA px, is BRIGHT[0] or darker, 1 from
    BRIGHT[1] on, linear between; (H, W) float32."""
    y = cv2.GaussianBlur(to_gray(np.asarray(visible, np.float32)), (0, 0), BRIGHT_SIGMA)
    lo, hi = BRIGHT
    return np.clip((y - lo) / (hi - lo), 0.0, 1.0)


def washed_share(visible: Image) -> float:
    """The share of the image where the visible image reads near white (the mean of washout_weight), what
    `allfuse fuse -v` prints."""
    return float(washout_weight(visible).mean())


def washed_level(visible: Image) -> float:
    """How washed out the visible image is as a whole: 0 up to a dark-channel floor (exposure.dark_floor)
    of FLOOR[0], 1 from FLOOR[1] on, linear between."""
    return ramp(dark_floor(visible), *FLOOR)


def infrared_detail(
    out: Image, images: Sequence[Image], band_pixels: int = 0, strength: float = 1.0
) -> np.ndarray:
    """The fusion `out` of (infrared, visible) = `images` with the infrared image's detail where the
    visible image is washed out (module doc), the shift times `strength` in [0, 1] and the visible image's
    washed_level; (H, W) or (H, W, 3) float32 in [0, 1] like `out`. Above
    `band_pixels` pixels (0 = never) it runs on bands of rows with MARGIN rows of context, in bounded
    memory; the result matches the whole-image one to float round-off away from the image's top and bottom
    MARGIN rows."""
    if len(images) != 2:
        raise ValueError(f"infrared_detail takes (infrared, visible), got {len(images)} images")
    o = np.asarray(out, np.float32)
    ir, vis = (np.asarray(x, np.float32) for x in images)
    if not o.shape[:2] == ir.shape[:2] == vis.shape[:2]:
        raise ValueError(f"fusion {o.shape}, infrared {ir.shape} and visible {vis.shape} differ in size")
    strength = strength * washed_level(vis) if strength > 0 else 0.0
    if strength <= 0:
        return o.copy()
    result = np.empty_like(o)
    for y0, y1, a, b in row_bands(*o.shape[:2], band_pixels, MARGIN, LOW_STEP):
        result[y0:y1] = _shifted(o[a:b], ir[a:b], vis[a:b], strength)[y0 - a : y1 - a]
    return result


def lowpass(y: np.ndarray) -> np.ndarray:
    """G_s * y for the band (s = BAND_SIGMA), taken at a quarter of the size: y padded by reflection to a
    multiple of LOW_STEP, area-downscaled by LOW_STEP, blurred by BAND_SIGMA / LOW_STEP, bilinear back
    (at 1024² a fortieth of the full-size blur's time; on a random image a mean difference below 1/1000)."""
    h, w = y.shape
    k = LOW_STEP
    padded = cv2.copyMakeBorder(y, 0, -h % k, 0, -w % k, cv2.BORDER_REFLECT_101)
    small = cv2.resize(padded, (padded.shape[1] // k, padded.shape[0] // k), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), BAND_SIGMA / k, borderType=cv2.BORDER_REFLECT_101)
    return cv2.resize(small, padded.shape[::-1], interpolation=cv2.INTER_LINEAR)[:h, :w]


def _shifted(o: np.ndarray, ir: np.ndarray, vis: np.ndarray, strength: float) -> np.ndarray:
    """infrared_detail on one piece."""
    m = washout_weight(vis)
    if not m.any():
        return o.copy()
    y_out, y_ir = to_gray(o), to_gray(ir)
    d_out, d_ir = y_out - lowpass(y_out), y_ir - lowpass(y_ir)
    e_out = cv2.GaussianBlur(d_out * d_out, (0, 0), ENERGY_SIGMA)
    e_ir = cv2.GaussianBlur(d_ir * d_ir, (0, 0), ENERGY_SIGMA)
    w = np.minimum(1.0, e_ir / (KAPPA * e_out + 1e-12))
    shift = strength * m * w * (d_ir - d_out)
    return np.clip(o + (shift[..., None] if o.ndim == 3 else shift), 0.0, 1.0).astype(np.float32)
