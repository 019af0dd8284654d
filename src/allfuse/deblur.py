"""Blind deblurring of the inputs before fusion: estimate the pair's blur from its edges, deconvolve.

Beyond the papers. The DiT is trained to restore blur, but measured on the validation bench it hardly does:
a pair blurred by a Gaussian, defocus or shake PSF comes out about as soft as its inputs, and a plain
restore-then-fuse chain (fixed-PSF Wiener deconvolution, then a classical rule) beat it by 0.03 to 0.12 Qabf
in every mild blur cell (`bench/quality.py --sections families`). This stage does what that chain does,
but only where the inputs are blurred and with the blur measured, so sharp inputs pass untouched:

1. Blur estimate (Zhuo & Sim 2011, "Defocus map estimation from a single image"): at an edge blurred by a
   Gaussian of std s, re-blurring with a known s0 divides the gradient magnitude by
   R = |grad I| / |grad (G_s0 * I)| = sqrt(s^2 + s0^2) / s,  so  s = s0 / sqrt(R^2 - 1).
   Taken at Canny edges with a clear gradient, the median over an image is its edge width. Sharp photos
   measure about 0.85 px (optics and demosaicking are never a delta; measured on the training pairs,
   below), and the blur added on top is taken as  sigma = sqrt(s^2 - sharp_width^2).
2. A pair's blur is its SHARPER input's (the minimum over the inputs): a blur that hits a capture hits the
   whole rig (shake, a focus error on both sensors, a soft lens), while one soft input alone is that
   input's nature (thermal optics) or, for multi-focus pairs, the point of fusing. Multi-exposure pairs
   are the exception (step 5).
3. Below a measured width of `min_width` nothing is done. Above, every input is deconvolved with a
   Wiener-Hunt filter for a Gaussian PSF of that sigma and a Laplacian regularizer (Hunt 1973;
   scikit-image's `skimage.restoration.wiener` computes the same filter from a sampled PSF; a test
   compares the two):
   X = conj(H) Y / (|H|^2 + balance |L|^2),  H(f) = exp(-2 pi^2 sigma^2 |f|^2),  L = discrete Laplacian.
   Here the Gaussian's transfer function is analytic and the FFT is torch's, about 5 times faster than the
   scikit-image call at 1024 x 1024 (`bench/latency.py` shows the cost with the rest of the pipeline). A
   colour image's luminance is deconvolved and the change added to its three channels.
4. With `anisotropic` (the shipped models), the PSF is an elliptic Gaussian: at an edge whose gradient
   points along n = (cos theta, sin theta), a blur of covariance C widens the edge profile by the PSF's
   std along n, so s(theta)^2 = n^T C n. The median width in each of 4 bins of edge direction (0, 45, 90,
   135 degrees) gives 4 such equations for C's 3 entries, solved by least squares; sharp_width^2 comes off
   each of C's variances (its eigenvalues) and the filter's transfer function is H(f) = exp(-2 pi^2 f^T C f).
   A round blur is fitted round (axis ratio within about 1.1 on a photo blurred by sigma 2), an elliptic
   one along its axis (within about 6 degrees on the tests' photo). Shake, astigmatism and a lens soft in
   one direction blur unevenly. Measured on the validation bench's families (`bench/quality.py`; the
   bench's Gaussian blur is elliptic, its shake a curved path; the training generator's blur is round),
   against the round PSF, allfuse-reg: every Gaussian blur cell up by 0.012 to 0.044 Qabf, mild
   multi-focus motion blur by 0.032, defocus and the other motion cells within -0.002 to +0.004 (the model
   cards). A bin with fewer than MIN_BIN_EDGES edge pixels leaves the round PSF.

5. With `per_input` (the shipped models: multi-exposure pairs), each input is deconvolved by its own PSF,
   fitted to its own edges: all of them when the pair measures blurred (step 2), and on its own an input
   whose edge width reaches `solo_width` (1.3 px) while the other stays sharp. The exposures of a bracket
   are separate captures of one camera, and the long one is the one a hand shakes; the sharper input's PSF
   also fitted the other exposure's blur poorly when both were blurred. No input of the 83 multi-exposure
   training pairs measures above 1.15 px; of the clean infrared + visible and multi-focus inputs, 10 and
   20 % measure 1.12 px or more on their own (thermal optics, the visible cameras of TNO and MSRS, and the
   defocus a multi-focus pair is made of), so those pairs keep the pair's PSF. Measured on the cross-check
   generator (`bench/quality.py --generator albumentations`, whose blur draws each input's kernel on its
   own) and on the validation bench: the allfuse-reg model card.

6. With `fine_tasks` (the shipped models: multi-exposure and multi-focus pairs), a pair is deblurred from
   `fine_min_width` (1.0 px) on instead of min_width. Their clean inputs measure sharp: of the clean
   training pairs at a long side of 512 px, 2.4 % of the 83 multi-exposure and 9.2 % of the 120 multi-focus
   pairs measure 1.0 px or more (none and 1.7 % 1.12 or more), against 21 % of the 222 infrared + visible
   pairs (4.1 % at 1.12: thermal optics and the soft visible cameras of TNO and MSRS). A mild blur there
   measures 1.0 to 1.12 px, below min_width: the cross-check generator's mild anisotropic Gaussians, some of
   the validation bench's mild Gaussian blur and shake. An input that the JPEG deblocking stage re-coded
   keeps min_width (`coded`, from the pipeline): re-coding on shifted grids smooths an image, and
   deconvolving that smoothing brings the coding's residue back (a strongly coded exposure of the
   validation bench measured 1.0 to 1.12 px once deblocked, and its fusion lost 0.09 Qabf when deconvolved).
   Measured: the models' cards.

7. With `kernel_tasks`, an input the steps above deconvolve is deconvolved instead by a kernel estimated
   blind from the image (allfuse.blindpsf: an L0-gradient latent image and a least-squares kernel,
   alternated coarse to fine), of side 2 ceil(kernel_reach x the Gaussian's long std) + 1 px, read on the
   image the Gaussian was measured on: the sharper input for a pair's PSF, each input its own for
   `per_input`. A blur whose kernel would exceed kernel_max px keeps the Gaussian. On the bench's own
   PSFs (`bench/deblur_headroom.py`: a curved shake path, a polygonal aperture with a bright rim, an
   elliptic Gaussian; the first input of 6 validation pairs per task, luminance PSNR against the clean
   input) the estimated kernel restores shake by 0.7 to 4.4 dB more than the fitted Gaussian, strong
   defocus by 2.2 to 3.4 dB, mild defocus by 0.3 to 0.9 dB, Gaussian blur within -0.4 to +0.3 dB of it
   (the bench's `one-balance` column: the same regularizer as the Gaussian's; step 8). It costs about
   0.4 s for a 1024² pair on two cores (a 384 px window, `bench/latency.py`); inputs measured sharp pay
   nothing.
8. With `smooth_balance` (the shipped models), a blind kernel close to a Gaussian is deconvolved with a
   weaker regularizer: the balance goes geometrically from `smooth_balance` at a distance to a Gaussian
   (allfuse.blindpsf.gaussian_distance: the kernel against the Gaussian of its own second moments) of
   `smooth_near` or less to `balance` at `smooth_far` or more. A Gaussian's spectrum has no zeros and the
   estimate of one is close to the truth, so a weaker regularizer restores more of it without ringing; a
   shake path or a polygonal aperture has spectral zeros and its estimate errs more, and a weaker
   regularizer turns both into ringing (on the bench's strong defocus and shake, one balance of 0.005 for
   every kernel restored less than 0.02 did). On the bench's PSFs (`bench/deblur_headroom.py`: the first
   input of 6 validation pairs per task, `shipped` against `one-balance`, and the range of each cell's
   kernel distances): mild Gaussian blur +0.6 / +1.1 / +1.1 dB (VIF / MEF / MFF), strong +0.2 / +0.3 /
   +0.2, mild defocus +0.3 / +0.6 / +0.2, strong defocus and shake within -0.2 to +0.2 dB (multi-exposure
   with `wide_far`, below). An input the deblocking stage rebuilt keeps `balance` (`rebuilt`, from the
   pipeline: re-coded as a JPEG, or re-interpolated from its pixel blocks, allfuse.depixel): the softness
   of a rebuilt image is the rebuild's own, near a Gaussian, and a weaker regularizer brings back the
   coding's residue or the blocks' staircase with it. Fusion: the models' cards.
   With `wide_tasks` (the shipped models: multi-exposure pairs), the balance reaches `balance` only at a
   distance of `wide_far` (0.6) instead of smooth_far (0.3). Each exposure of a bracket is deconvolved by
   the kernel read on itself (step 5). Through allfuse-reg, on the validation bench's defocus and shake,
   Qabf rose by 0.008 to 0.022 and the VIF metric by 0.006 to 0.028; ImageNet-C's defocus rose by 0.016,
   its glass blur fell by 0.001 and 0.008. The luminance PSNR of a bracket's first exposure moved by -0.25
   to +0.30 dB over the blurs of the three generators (down on streaks and glass blur, up on defocus and
   shake). For the other tasks, whose pair shares one kernel read on the sharper input, the same change
   cost PSNR on strong defocus (-0.37 dB on infrared + visible pairs) and on straight streaks, and the VIF
   metric on their strong blurs. Measured: the models' cards.
9. With `streak_skew` (the shipped models: 0.4, with `streak_elongation` 2), a blind kernel that is a
   one-sided streak is anchored at its start (`streak_start`, the shipped models: 1.1) or its peak
   (streak_start 0) instead of its centroid. A kernel has no absolute position
   (allfuse.blindpsf.clean_kernel centres it on its centroid), and for a symmetric PSF or a shake path
   drawn at even speed the centroid is where the scene was. A streak heavy at one end is a motion that
   dwelt there (the weight decays along the path: ImageNet-C's motion blur, after ImageMagick's); the
   blurred image sits shifted toward that end by the centroid's offset, and deconvolving by the centred
   kernel keeps the shift, which every edge-based score of the clean scene counts as lost detail. The
   shape test (streak_test on allfuse.blindpsf.streak_shape): the skewness of the kernel's weight along its
   long axis at least streak_skew, and the ratio of its stds along and across that axis (its elongation) at
   least streak_elongation; or, with `streak_long_skew` (the shipped models: 0.3 from an elongation of
   `streak_long_elongation` 3.5), a lower skewness for a long kernel: the estimate of a long streak is
   smoothed along it, which flattens its skew (strong ImageNet-C streaks read 0.3 to 0.4 at elongations of 4
   to 7).
   On the blind kernels of the validation pairs (3 per task and cell; the generators of
   `bench/deblur_generators.py`, one estimate per deblurred input), 24 of the 32 estimates of ImageNet-C's
   motion streaks measured a skewness of 0.43 to 0.62 at a ratio of 2.5 to 6.7; of the bench's and
   albumentations' estimates (shake, defocus, Gaussian, straight motion), the skewed ones (0.4 and up, to
   1.08: a strong Gaussian blur's estimate with a tail) all had a ratio below 2. Every kernel re-anchored
   at its peak instead (the bench's `peak` column) lost up to 0.12 Qabf on the bench's shake and defocus:
   a symmetric kernel's peak can be anywhere on it (a polygonal aperture's bright rim).
   The start (allfuse.blindpsf.at_start) is the point streak_start stds of the kernel's weight along its
   long axis before its centroid, on its heavy side. A half-Gaussian streak starts 1.32 of its stds
   before its centroid; an estimate is smoother than the truth, and its peak, which a flat-topped streak
   does not mark, mostly stayed within a pixel of its centroid. `bench/streak_anchor.py` chose the reach
   on TRAINING pairs (8 per task, each first input blurred by ImageNet-C's streak at severities 1 to 3 in
   a random direction; luminance PSNR against the clean input, every anchor applied to every estimate):
   averaged over the 9 (task, severity) cells, the centroid gave 23.4 dB, the peak 25.2, the start at a
   reach of 0.9 / 1.0 / 1.1 / 1.2 / 1.32 29.6 / 30.3 / 30.7 / 30.6 / 30.0 (the blurred input 25.5). 1.1 is
   within 0.15 dB of the best reach at severity 1 and within 0.8 dB of it at severity 3, which wants a longer
   reach (`bench/results/streak_anchor.md`). The same bench counts what the shape test lets through, on
   training pairs under every blur family of the three generators (each case's inputs with every kernel
   anchored at its start against none): the shipped test catches 21 of 35 streaked cases (+127 dB summed
   over them; 17 without the long-kernel test, +107 dB) and takes 8 of 422 cases of other blurs for
   streaks, each of which then loses 0.6 to 6.4 dB (-24 dB summed: a symmetric kernel moved off its centre
   shifts the restoration). The long-kernel test alone let none of the 422 through (and none of 350 other
   estimates on another sample of training pairs, where it caught 5 more of 24 streak estimates; a scratch
   script). Through fusion: `bench/results/deblur_generators.md` and the models' cards.

A Gaussian is not every PSF (defocus is a disk, shake a path): without `kernel_tasks` the deconvolution is
partial there, as the chain's is. A straight motion streak is fitted as a thin ellipse along it, but its
spectrum has zeros a Gaussian lacks, so deconvolving harder along the streak also adds some ringing: on such
blurs the elliptic PSF does no better than the round one. Noise lowers the estimate (noise adds gradient at
every scale), so a noisy image is deblurred less, which is also what keeps the filter from amplifying noise.

Calibration (`sharp_width`, `min_width`): on the 425 training pairs at native size, the pair estimate s has
median 0.84 (0.86 with the long side capped to 512 px; 5th percentile 0.66, 10th 0.71), 95th percentile
1.08 and maximum 1.33. A pair is deblurred from s >= min_width = 1.12 on, which leaves about 97 % of the
clean training pairs untouched. sharp_width is 0.5, below even the sharpest clean pairs: a median edge
includes soft scene edges (shading), and the bench's defocus disks and shake paths are deconvolved too
little by the Gaussian of their measured width. Measured on the validation bench's blur and mix cells
(allfuse-reg, `bench/quality.py --sections families`): subtracting the clean pairs' median 0.85 px, 20 of
the 24 blur and mix cells scored 0.002 to 0.020 lower than with 0.5 (mild defocus of infrared + visible
and multi-exposure pairs 0.317 / 0.409 against 0.336 / 0.429), 2 higher (mild Gaussian blur and mild
mixes of multi-focus pairs, 0.584 / 0.490 against 0.572 / 0.482) and 2 the same; subtracting 1.0 px
restored less still (`allfuse-reg`'s model card).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from allfuse.blindpsf import (
    at_peak,
    at_start,
    deblur_by_kernel,
    estimate_kernel,
    fast_sides,
    frequencies,
    gaussian_distance,
    laplacian_response,
    streak_shape,
)
from allfuse.color import restore_luminance, to_gray
from allfuse.types import TASKS, Image, TaskStageConfig

REBLUR_SIGMA = 1.0  # s0 of the re-blur ratio, px
MIN_EDGE_GRADIENT = 0.1  # Sobel magnitude (of [0, 1] luminance) an edge pixel needs to be measured
MIN_EDGES = 200  # fewer measured edge pixels: no estimate (a flat or tiny image)
ORIENTATION_BINS = 4  # edge directions the elliptic PSF is fitted over: 0, 45, 90 and 135 degrees
MIN_BIN_EDGES = 50  # fewer edge pixels in a direction: no elliptic fit, the round PSF
BAND_PIXELS = 1 << 20  # edge_width measures large images in bands of rows of about this many pixels
BAND_MARGIN = 16  # rows of context above and below each band (the filters reach 4 px)
TILE = 1024  # px, wiener_gaussian transforms larger images in tiles of this side
TILE_MARGIN_SIGMAS = 8  # each tile's margin, in PSF sigmas (+ 16 px): the inverse filter's reach
MIN_KERNEL = 7  # px, the smallest side of a blind-estimated kernel (step 7)

EdgeSamples = tuple[np.ndarray, np.ndarray]  # edge_samples: each edge pixel's width (px) and direction


@dataclass(frozen=True)
class DeblurConfig(TaskStageConfig):
    """The blind deblurring stage of a model folder (deblur.json; module doc)."""

    sharp_width: float = 0.5  # px, subtracted in quadrature from the measured width (module doc)
    min_width: float = 1.12  # px, measured pair edge width below which the inputs pass untouched
    max_sigma: float = 4.0  # px, the deconvolution never assumes more blur than this
    balance: float = 0.02  # Wiener-Hunt regularization weight (the restore-then-fuse chains' value)
    tasks: tuple[str, ...] = ("vif", "mef", "mff")
    # the PSF an elliptic Gaussian fitted to the edge widths by edge orientation (module doc, step 4);
    # False (and folders written before it existed): a round Gaussian of the median width
    anisotropic: bool = False
    # tasks whose inputs are each deconvolved by their own PSF: every input when the pair measures blurred,
    # and on its own an input whose edge width reaches solo_width (module doc, step 5); () (and folders
    # written before it existed): every task by the pair's PSF
    per_input: tuple[str, ...] = ()
    solo_width: float = 1.3  # px
    # tasks whose clean inputs measure sharp, deblurred from fine_min_width on, except an input the JPEG
    # deblocking stage re-coded (module doc, step 6); () (and folders written before it existed): min_width
    fine_tasks: tuple[str, ...] = ()
    fine_min_width: float = 0.0  # px
    # tasks whose deconvolved inputs are deconvolved by a kernel estimated blind (module doc, step 7); ()
    # (and folders written before it existed): the Gaussian PSF
    kernel_tasks: tuple[str, ...] = ()
    kernel_reach: float = 4.0  # the kernel's half side, in stds of the Gaussian's long axis
    kernel_max: int = 41  # px, the largest kernel side estimated; a larger blur keeps the Gaussian
    kernel_side: int = 384  # px, the side of the most textured window the kernel is read on
    # the Wiener-Hunt balance of a blind kernel within smooth_near of a Gaussian (module doc, step 8),
    # rising geometrically to `balance` at smooth_far (an input the deblocking stage rebuilt keeps
    # `balance`); 0 (and folders written before it existed): `balance` for every kernel
    smooth_balance: float = 0.0
    smooth_near: float = 0.12
    smooth_far: float = 0.3
    # tasks whose blind kernels reach `balance` only at wide_far instead of smooth_far (module doc, step 8);
    # () (and folders written before it existed): smooth_far for every task
    wide_tasks: tuple[str, ...] = ()
    wide_far: float = 0.6
    # a blind kernel that is a one-sided streak, its skewness along its long axis at least streak_skew and
    # its std ratio at least streak_elongation (allfuse.blindpsf.streak_shape), is anchored at its peak
    # instead of its centroid (module doc, step 9); 0 (and folders written before it existed): every kernel
    # at its centroid
    streak_skew: float = 0.0
    streak_elongation: float = 2.0
    # such a streak anchored at its start instead, streak_start of its stds along its long axis before its
    # centroid (allfuse.blindpsf.at_start; module doc, step 9); 0 (and folders written before it existed):
    # at its peak
    streak_start: float = 0.0
    # a long kernel (elongation at least streak_long_elongation) read as a streak from a skewness of
    # streak_long_skew on (module doc, step 9); 0 (and folders written before it existed): no such test
    streak_long_skew: float = 0.0
    streak_long_elongation: float = 3.5

    def __post_init__(self) -> None:
        ok = (
            0 <= self.sharp_width < self.min_width <= self.solo_width
            and (not self.fine_tasks or self.sharp_width < self.fine_min_width <= self.min_width)
            and self.max_sigma > 0
            and self.balance > 0
            and self.kernel_reach > 0
            and self.kernel_max >= MIN_KERNEL
            and self.kernel_side >= 4 * self.kernel_max
            and 0 <= self.smooth_balance <= self.balance
            and 0 <= self.smooth_near < self.smooth_far
            and self.smooth_near < self.wide_far
            and self.streak_skew >= 0
            and self.streak_elongation >= 1
            and self.streak_start >= 0
            and self.streak_long_skew >= 0
            and self.streak_long_elongation >= self.streak_elongation
        )
        named = (self.tasks, self.per_input, self.fine_tasks, self.kernel_tasks, self.wide_tasks)
        tasks_ok = set().union(*named) <= set(TASKS)
        if not ok or not tasks_ok or not isinstance(self.anisotropic, bool):
            raise ValueError(
                "bad deblur config: need 0 <= sharp_width < min_width <= solo_width, sharp_width < "
                "fine_min_width <= min_width when fine_tasks are named, max_sigma > 0, balance > 0, "
                f"kernel_reach > 0, kernel_max >= {MIN_KERNEL}, kernel_side >= 4 kernel_max, "
                "0 <= smooth_balance <= balance, 0 <= smooth_near < smooth_far, smooth_near < wide_far, "
                "streak_skew >= 0, streak_elongation >= 1, streak_start >= 0, streak_long_skew >= 0, "
                "streak_long_elongation >= streak_elongation, tasks, per_input, fine_tasks, "
                f"kernel_tasks and wide_tasks among {', '.join(TASKS)} and anisotropic true or false: {self}"
            )


def edge_width(image: Image, band_pixels: int = BAND_PIXELS) -> float | None:
    """Median Gaussian edge width s (px) of an image at its Canny edges by the re-blur gradient ratio
    (module doc, step 1); None when it has fewer than MIN_EDGES measurable edge pixels. Measured in bands
    of rows of about `band_pixels` pixels (overlapping by BAND_MARGIN rows, each row counted once), so a
    large image costs a few band-sized maps, not several image-sized ones."""
    samples = edge_samples(image, band_pixels)
    return None if samples is None else float(np.median(samples[0]))


def edge_samples(image: Image, band_pixels: int = BAND_PIXELS) -> EdgeSamples | None:
    """The Gaussian edge width s (px) at each measurable Canny edge pixel of an image and the direction
    of its gradient (radians), measured in bands of rows as edge_width says; None when there are fewer
    than MIN_EDGES."""
    x = np.asarray(image, dtype=np.float32)
    h, w = x.shape[:2]
    rows = max(1, band_pixels // max(w, 1))
    ratios, angles = [], []
    for top in range(0, h, rows):
        a, b = max(top - BAND_MARGIN, 0), min(top + rows + BAND_MARGIN, h)
        idx, r, theta = edge_ratios(to_gray(x[a:b]))
        own = (idx >= (top - a) * w) & (idx < (min(top + rows, h) - a) * w)  # the band's own rows
        ratios.append(r[own])
        angles.append(theta[own])
    ratio, angle = np.concatenate(ratios), np.concatenate(angles)
    keep = ratio > 1.0001  # R <= 1: not a blurred step (noise, texture finer than s0)
    if keep.sum() < MIN_EDGES:
        return None
    return REBLUR_SIGMA / np.sqrt(ratio[keep] ** 2 - 1.0), angle[keep]


def edge_ratios(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The measurable Canny edge pixels of a luminance image (flat indices), their re-blur gradient
    ratios R = |grad I| / |grad (G_s0 * I)| and their gradient directions atan2(dy, dx) (x to the right,
    y down)."""
    g = np.ascontiguousarray(gray, dtype=np.float32)
    dx, dy = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)
    g0 = cv2.magnitude(dx, dy)
    edges = cv2.Canny(cv2.GaussianBlur(cv2.convertScaleAbs(g, alpha=255.0), (0, 0), 1.0), 30, 80)
    idx = np.flatnonzero(cv2.bitwise_and(edges, (g0 > MIN_EDGE_GRADIENT).view(np.uint8)))
    g1 = sobel_magnitude(cv2.GaussianBlur(g, (0, 0), REBLUR_SIGMA))
    ratio = g0.ravel()[idx] / np.maximum(g1.ravel()[idx], 1e-6)
    return idx, ratio, np.arctan2(dy.ravel()[idx], dx.ravel()[idx])


def edge_covariance(widths: np.ndarray, angles: np.ndarray) -> np.ndarray | None:
    """The covariance (2 x 2, x then y, px^2) of the elliptic Gaussian whose edge widths best fit the
    measured ones by gradient direction (module doc, step 4): the median width in each of ORIENTATION_BINS
    bins of direction (modulo pi) is the PSF's std along that direction, n^T C n = s(theta)^2 with
    n = (cos theta, sin theta), solved for C's three entries by least squares. None when a bin has fewer
    than MIN_BIN_EDGES edge pixels (the fit would rest on too few)."""
    step = np.pi / ORIENTATION_BINS
    centres = np.arange(ORIENTATION_BINS) * step
    # the nearest bin centre of each direction, modulo pi (a gradient and its opposite: the same edge)
    nearest = np.round(np.mod(angles, np.pi) / step).astype(np.int64) % ORIENTATION_BINS
    variances = []
    for k in range(ORIENTATION_BINS):
        chosen = widths[nearest == k]
        if chosen.size < MIN_BIN_EDGES:
            return None
        variances.append(float(np.median(chosen)) ** 2)
    c, s = np.cos(centres), np.sin(centres)
    design = np.stack([c * c, 2 * s * c, s * s], axis=1)
    xx, xy, yy = np.linalg.lstsq(design, np.asarray(variances), rcond=None)[0]
    return np.array([[xx, xy], [xy, yy]])


def sobel_magnitude(g: np.ndarray) -> np.ndarray:
    """|grad g| by 3 x 3 Sobel, float32."""
    return cv2.magnitude(cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3))


def pair_blur(images: Sequence[Image], cfg: DeblurConfig) -> float:
    """The blur sigma (px) to deconvolve a set of inputs by: the sharper input's edge width s beyond
    cfg.sharp_width, sqrt(s^2 - sharp_width^2); 0 when s < cfg.min_width or no input can be measured
    (module doc, steps 1-2). The round PSF whatever cfg.anisotropic says (pair_psf)."""
    return float(pair_psf(images, replace(cfg, anisotropic=False)))


def pair_psf(
    images: Sequence[Image],
    cfg: DeblurConfig,
    task: str = "",
    coded: Sequence[bool] = (),
    measured: Sequence[EdgeSamples | None] | None = None,
) -> float | np.ndarray:
    """The Gaussian PSF to deconvolve a set of inputs by: 0.0 when they are sharp (pair_blur; the sharper
    input below its min_width: min_widths); else the round PSF's sigma (pair_blur), or with cfg.anisotropic
    the elliptic PSF fitted to the sharper input's edges (edge_covariance) less sharp_width^2 along each
    axis, each variance within [0, max_sigma^2] (module doc, step 4): a 2 x 2 covariance; the round PSF
    when the fit fails. `task` and `coded` (the inputs the JPEG deblocking stage re-coded) set the
    thresholds (step 6); `measured`, the inputs' edge_samples when already taken."""
    limits = min_widths(cfg, len(images), task, coded)
    measured = [edge_samples(x) for x in images] if measured is None else measured
    sharper = sharper_input(measured)
    if sharper is None:
        return 0.0
    samples = measured[sharper]
    assert samples is not None
    return samples_psf(samples, cfg) if float(np.median(samples[0])) >= limits[sharper] else 0.0


def sharper_input(measured: Sequence[EdgeSamples | None]) -> int | None:
    """The index of the input with the smallest median edge width among those measured (edge_samples; None
    for an input too flat to measure), None when none is."""
    widths = [float(np.median(m[0])) if m is not None else math.inf for m in measured]
    sharper = int(np.argmin(widths))
    return None if widths[sharper] == math.inf else sharper


def min_widths(cfg: DeblurConfig, n: int, task: str = "", coded: Sequence[bool] = ()) -> list[float]:
    """Each of n inputs' min_width for a task (module doc, step 6): cfg.fine_min_width for a task of
    cfg.fine_tasks, except for an input the JPEG deblocking stage re-coded (`coded`: one flag per input,
    () for none), cfg.min_width otherwise."""
    flags = list(coded) or [False] * n
    if len(flags) != n:
        raise ValueError(f"deblur: {len(flags)} coded flags for {n} inputs")
    fine = task in cfg.fine_tasks
    return [cfg.fine_min_width if fine and not c else cfg.min_width for c in flags]


def samples_psf(samples: EdgeSamples, cfg: DeblurConfig) -> float | np.ndarray:
    """The PSF one input's edge samples (edge_samples) give, blurred or not: the round PSF's sigma,
    sqrt(s^2 - sharp_width^2) of the median width s, at most max_sigma; with cfg.anisotropic the elliptic
    fit's covariance (pair_psf), the round PSF when the fit fails."""
    width = float(np.median(samples[0]))
    sigma = min(math.sqrt(max(width**2 - cfg.sharp_width**2, 0.0)), cfg.max_sigma)
    cov = edge_covariance(*samples) if cfg.anisotropic else None
    if cov is None:
        return sigma
    variances, axes = np.linalg.eigh(cov)
    variances = np.clip(variances - cfg.sharp_width**2, 0.0, cfg.max_sigma**2)
    if not variances.any():  # a fit at odds with the median width: keep the round PSF
        return sigma
    return axes @ np.diag(variances) @ axes.T


def input_psfs(
    images: Sequence[Image],
    cfg: DeblurConfig,
    task: str = "",
    coded: Sequence[bool] = (),
    measured: Sequence[EdgeSamples | None] | None = None,
) -> list[float | np.ndarray]:
    """The PSF each input is deconvolved by (0.0: kept). For a task of cfg.per_input, each input's own
    (samples_psf) when the pair measures blurred (its sharper measurable input at its min_width or more)
    or when the input's own edge width reaches solo_width; for any other task the pair's (pair_psf), the
    same for every input (module doc, steps 2, 5 and 6; `coded` and `measured` as pair_psf's)."""
    measured = [edge_samples(x) for x in images] if measured is None else measured
    if task not in cfg.per_input:
        return [pair_psf(images, cfg, task, coded, measured)] * len(images)
    limits = min_widths(cfg, len(images), task, coded)
    widths = [float(np.median(m[0])) if m is not None else math.inf for m in measured]
    sharper = sharper_input(measured)
    blurred = sharper is not None and widths[sharper] >= limits[sharper]
    return [
        samples_psf(m, cfg) if m is not None and (blurred or w >= cfg.solo_width) else 0.0
        for m, w in zip(measured, widths, strict=True)
    ]


def psf_covariance(psf: float | np.ndarray) -> np.ndarray:
    """A Gaussian PSF as its 2 x 2 covariance (x then y, px^2): a number is a round PSF's std."""
    if np.ndim(psf) == 0:
        return np.eye(2) * float(psf) ** 2
    cov = np.asarray(psf, dtype=np.float64)
    if cov.shape != (2, 2) or not np.allclose(cov, cov.T) or np.linalg.eigvalsh(cov).min() < -1e-9:
        raise ValueError(f"a Gaussian PSF is a std or a symmetric 2 x 2 covariance >= 0, got {psf!r}")
    return cov


def psf_axes(psf: float | np.ndarray) -> tuple[float, float, float]:
    """A Gaussian PSF's std along its long axis and across it (px) and the long axis's direction, degrees in
    [0, 180) clockwise from horizontal (image rows go down); a round PSF's direction is 0."""
    variances, axes = np.linalg.eigh(psf_covariance(psf))
    stds = np.sqrt(np.clip(variances, 0.0, None))
    degrees = float(np.degrees(np.arctan2(axes[1, 1], axes[0, 1]))) % 180.0 if stds[1] > stds[0] else 0.0
    return float(stds[1]), float(stds[0]), degrees


def wiener_gaussian(image: Image, sigma: float | np.ndarray, balance: float, tile: int = TILE) -> Image:
    """Wiener-Hunt deconvolution of an (H, W) or (H, W, C) float image in [0, 1] by a Gaussian PSF (std
    `sigma` px, or a 2 x 2 covariance for an elliptic one: psf_covariance) with a Laplacian regularizer
    (module doc, step 3); reflect-padded against wrap-around, clipped to [0, 1], float32. One channel at a
    time, and on images larger than tile x tile in tiles of that size, each transformed with a margin of
    TILE_MARGIN_SIGMAS * (the PSF's largest std) + 16 px of its surroundings of which only the tile is
    kept (overlap-save), so the spectra held are one tile's."""
    x = np.asarray(image, dtype=np.float32)
    cov = psf_covariance(sigma)
    planes = x[..., None] if x.ndim == 2 else x
    h, w = planes.shape[:2]
    margin = math.ceil(TILE_MARGIN_SIGMAS * psf_axes(cov)[0]) + 16
    out = np.empty_like(planes)
    for c in range(planes.shape[2]):
        for top in range(0, h, tile):
            for left in range(0, w, tile):
                a, b = max(top - margin, 0), min(top + tile + margin, h)
                l, r = max(left - margin, 0), min(left + tile + margin, w)
                y = wiener_plane(planes[a:b, l:r, c], cov, balance)
                out[top : top + tile, left : left + tile, c] = y[
                    top - a : top - a + tile, left - l : left - l + tile
                ]
    return out[..., 0] if x.ndim == 2 else out


def wiener_plane(plane: np.ndarray, cov: np.ndarray, balance: float) -> np.ndarray:
    """`wiener_gaussian` of one (H, W) plane, whole, for a PSF of covariance `cov` (psf_covariance)."""
    h, w = plane.shape
    pad = min(math.ceil(4 * psf_axes(cov)[0]) + 8, h - 1, w - 1)
    ph, pw = fast_sides(h, w, pad)
    fy, fx = frequencies((ph, pw))
    # the Gaussian's transfer function, exp(-2 pi^2 f^T C f): real and even, so conj(H) = H
    (cxx, cxy), (_, cyy) = cov.tolist()
    otf = torch.exp(-2 * math.pi**2 * (cxx * fx * fx + 2 * cxy * fx * fy + cyy * fy * fy))
    lap = laplacian_response(fy, fx)
    filt = otf / (otf * otf + balance * lap * lap)
    del otf, lap
    t = torch.from_numpy(np.ascontiguousarray(plane, dtype=np.float32))
    t = F.pad(t[None, None], (pad, pw - w - pad, pad, ph - h - pad), mode="reflect")[0, 0]
    y = torch.fft.irfft2(torch.fft.rfft2(t) * filt, s=(ph, pw))
    return y[pad : pad + h, pad : pad + w].clamp(0, 1).numpy()


def deblur_image(image: Image, sigma: float | np.ndarray, balance: float) -> Image:
    """`wiener_gaussian` of a gray image; of a colour image's luminance only, the change added to every
    channel (allfuse.color.restore_luminance), clipped to [0, 1]."""
    return restore_luminance(image, lambda plane: wiener_gaussian(plane, sigma, balance))


def deblur_inputs(
    images: Sequence[Image],
    cfg: DeblurConfig,
    task: str = "",
    coded: Sequence[bool] = (),
    rebuilt: Sequence[bool] = (),
) -> tuple[list[Image], list[float | np.ndarray]]:
    """The inputs, each deconvolved by its PSF (input_psfs; the same image where that is 0), and the PSFs:
    a sigma, or an elliptic PSF's covariance. `coded` flags the inputs the JPEG deblocking stage re-coded
    (module doc, step 6); `rebuilt` those it re-coded or re-interpolated from pixel blocks, which a blind
    kernel deconvolves at `balance` (step 8)."""
    flags = list(rebuilt) or [False] * len(images)
    if len(flags) != len(images):
        raise ValueError(f"deblur: {len(flags)} rebuilt flags for {len(images)} inputs")
    measured = [edge_samples(x) for x in images]
    psfs = input_psfs(images, cfg, task, coded, measured)
    kernels = input_kernels(images, psfs, cfg, task, measured)
    out = [
        x
        if np.ndim(p) == 0 and not p
        else deblur_image(x, p, cfg.balance)
        if k is None
        else deblur_by_kernel(x, anchored(k, cfg), cfg.balance if r else kernel_balance(k, cfg, task))
        for x, p, k, r in zip(images, psfs, kernels, flags, strict=True)
    ]
    return out, psfs


def streak_test(skew: float, elongation: float, cfg: DeblurConfig) -> bool:
    """Whether a blind kernel of this shape (allfuse.blindpsf.streak_shape) is read as a one-sided streak
    (module doc, step 9): a skewness along its long axis of at least cfg.streak_skew at an elongation of at
    least cfg.streak_elongation, or, for a long kernel (elongation at least cfg.streak_long_elongation), of
    at least cfg.streak_long_skew (when set); never when cfg.streak_skew is 0."""
    if cfg.streak_skew <= 0:
        return False
    if skew >= cfg.streak_skew and elongation >= cfg.streak_elongation:
        return True
    return 0 < cfg.streak_long_skew <= skew and elongation >= cfg.streak_long_elongation


def anchored(kernel: np.ndarray, cfg: DeblurConfig) -> np.ndarray:
    """A blind kernel as it is deconvolved by (module doc, step 9): a one-sided streak (streak_test) moved to
    its start (cfg.streak_start stds before its centroid, allfuse.blindpsf.at_start) or, with streak_start
    0, to its peak; any other kernel as estimated (centred on its centroid)."""
    if not streak_test(*streak_shape(kernel), cfg):
        return kernel
    return at_start(kernel, cfg.streak_start) if cfg.streak_start > 0 else at_peak(kernel)


def kernel_balance(kernel: np.ndarray, cfg: DeblurConfig, task: str = "") -> float:
    """The Wiener-Hunt balance a blind kernel of `task` is deconvolved with (module doc, step 8):
    `smooth_balance` for a kernel within `smooth_near` of a Gaussian, `balance` from `smooth_far` on
    (`wide_far` for a task of cfg.wide_tasks), geometric between; `balance` when smooth_balance is 0."""
    if cfg.smooth_balance <= 0:
        return cfg.balance
    far = cfg.wide_far if task in cfg.wide_tasks else cfg.smooth_far
    t = (gaussian_distance(kernel) - cfg.smooth_near) / (far - cfg.smooth_near)
    return float(cfg.smooth_balance * (cfg.balance / cfg.smooth_balance) ** min(max(t, 0.0), 1.0))


def kernel_size(psf: float | np.ndarray, cfg: DeblurConfig) -> int | None:
    """The side of the blind kernel for a Gaussian PSF (step 7): 2 ceil(kernel_reach x its long std) + 1,
    at least MIN_KERNEL; None when 0 (sharp) or above cfg.kernel_max."""
    long_std = psf_axes(psf)[0]
    if long_std <= 0:
        return None
    size = max(MIN_KERNEL, 2 * math.ceil(cfg.kernel_reach * long_std) + 1)
    return size if size <= cfg.kernel_max else None


def input_kernels(
    images: Sequence[Image],
    psfs: Sequence[float | np.ndarray],
    cfg: DeblurConfig,
    task: str = "",
    measured: Sequence[EdgeSamples | None] | None = None,
) -> list[np.ndarray | None]:
    """The blind-estimated kernel each input is deconvolved by instead of its Gaussian PSF (step 7), None
    where the Gaussian stays (a task not in cfg.kernel_tasks, a sharp input, a blur above kernel_max): for
    a task of cfg.per_input each input's own, else the one read on the sharper input, for every input
    (`measured` as pair_psf's)."""
    sizes = [kernel_size(p, cfg) if task in cfg.kernel_tasks else None for p in psfs]
    if not any(sizes):
        return [None] * len(images)
    if task in cfg.per_input:
        return [
            None if n is None else estimate_kernel(to_gray(x), n, cfg.kernel_side)
            for x, n in zip(images, sizes, strict=True)
        ]
    source = sharper_input([edge_samples(x) for x in images] if measured is None else measured)
    size = sizes[0]  # the pair's PSF: the same for every input
    if source is None or size is None:
        return [None] * len(images)
    kernel = estimate_kernel(to_gray(np.asarray(images[source], dtype=np.float32)), size, cfg.kernel_side)
    return [kernel] * len(images)
