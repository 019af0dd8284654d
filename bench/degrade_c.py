"""A third, independent degradation generator for the cross-check: the common corruptions of ImageNet-C.

Hendrycks & Dietterich (2019, "Benchmarking Neural Network Robustness to Common Corruptions and
Perturbations", ICLR) defined the corruptions most robustness studies of the field now use, each at five
severities. `bench/degrade.py` was written for this project and `bench/degrade_alb.py` draws from an
augmentation library; this module writes the paper's corruptions once more, from its formulas and its
severity tables (a third code base, sharing neither with the other two nor with `allfuse.data`). It also
brings kinds of damage neither of the other generators has: multiplicative (speckle) noise and photon-count
(shot) noise at a fixed count, glass blur (local pixel scrambling between two blurs), a one-sided motion
streak, zoom blur, a fractal fog added rather than blended, snow flakes streaked over a brightened image,
HSV brightness and saturation shifts, and contrast pulled toward each channel's mean.
`python bench/quality.py --sections families --generator imagenet_c` scores the models on it (INFO lines:
the acceptance checks are defined on `bench/degrade.py`).

Strengths: `mild` is the paper's severity 1 and `strong` its severity 3 (its blur radii were set for 224 px
crops; the bench's images have a long side of 512, so its blurs are about half as strong here as there,
while its noise, which is per pixel, keeps its strength: severity 1 Gaussian noise already has a std of
20/255). Its `frost` (photographs of frost shipped with the paper's code), `spatter` and `elastic_transform`
(a geometric warp: a registration error no restoration can undo against the clean sources) are not drawn.

Like the other generators it never imports `allfuse`. Images are float32 in [0, 1], (H, W) or (H, W, 3);
each is coded to 8 bits, corrupted, and returned as float32, as a capture's file would be. Corruptions that
need colour (snow, fog, brightness, saturation) get a gray image as three equal channels and return its
BT.601 luminance. Routing follows `bench/degrade.py`: for VIF the scene and colour families hit the visible
image only; every family hits all MEF/MFF sources. Each source is drawn on its own seed (the same severity,
another random realization and, for motion blur, another direction).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import degrade
import numpy as np
from degrade import Strength

SEVERITY: dict[Strength, int] = {"mild": 1, "strong": 3}  # the paper's severity (1-5) of each strength

# The paper's per-severity parameters (severities 1-5), as listed with its corruptions.
GAUSSIAN_NOISE = (0.08, 0.12, 0.18, 0.26, 0.38)  # std
SHOT_NOISE = (60, 25, 12, 5, 3)  # photons at white
IMPULSE_NOISE = (0.03, 0.06, 0.09, 0.17, 0.27)  # share of salt and pepper
SPECKLE_NOISE = (0.15, 0.2, 0.35, 0.45, 0.6)  # std of the multiplicative noise
GAUSSIAN_BLUR = (1, 2, 3, 4, 6)  # std, px
GLASS_BLUR = ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2))  # std, reach, rounds
DEFOCUS_BLUR = ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5))  # disc radius, anti-alias std
MOTION_BLUR = ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15))  # streak length, std of its weights
ZOOM_BLUR = (
    np.arange(1, 1.11, 0.01),
    np.arange(1, 1.16, 0.01),
    np.arange(1, 1.21, 0.02),
    np.arange(1, 1.26, 0.02),
    np.arange(1, 1.31, 0.03),
)  # zoom factors averaged
# mean and std of the flake field, its zoom, threshold, streak length and std, and the blend of the image
SNOW = (
    (0.1, 0.3, 3, 0.5, 10, 4, 0.8),
    (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
    (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
    (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
    (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55),
)
FOG = ((1.5, 2.0), (2.0, 2.0), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4))  # fractal's weight, its decay
BRIGHTNESS = (0.1, 0.2, 0.3, 0.4, 0.5)  # added to HSV value
CONTRAST = (0.4, 0.3, 0.2, 0.1, 0.05)  # share of each channel's distance to its mean kept
SATURATE = ((0.3, 0.0), (0.1, 0.0), (2.0, 0.0), (5.0, 0.1), (20.0, 0.2))  # HSV saturation: s * a + b
PIXELATE = (0.6, 0.5, 0.4, 0.3, 0.25)  # scale of the box-filtered copy
JPEG = (25, 18, 15, 10, 7)  # quality


def level(table: Sequence, strength: Strength):
    """The entry of a per-severity table for a strength."""
    return table[SEVERITY[strength] - 1]


# ------------------------------------------------------------------------------------------- helpers


def clipped_zoom(x: np.ndarray, factor: float) -> np.ndarray:
    """The centre of the image enlarged by `factor` (bicubic) and cropped back to the image's size."""
    h, w = x.shape[:2]
    ch, cw = max(1, int(np.ceil(h / factor))), max(1, int(np.ceil(w / factor)))
    top, left = (h - ch) // 2, (w - cw) // 2
    crop = x[top : top + ch, left : left + cw]
    big = cv2.resize(
        crop, (max(w, round(cw * factor)), max(h, round(ch * factor))), interpolation=cv2.INTER_CUBIC
    )
    t, s = (big.shape[0] - h) // 2, (big.shape[1] - w) // 2
    return big[t : t + h, s : s + w]


def disc_kernel(radius: float, alias_std: float) -> np.ndarray:
    """A flat disc of `radius` px, smoothed by a Gaussian of `alias_std` (the paper's anti-aliasing)."""
    r = int(np.ceil(radius))
    size = 2 * r + 1 if radius > 8 else 2 * r + 3
    c = np.arange(size) - size // 2
    yy, xx = np.meshgrid(c, c, indexing="ij")
    k = (xx**2 + yy**2 <= radius**2).astype(np.float32)
    k = cv2.GaussianBlur(k, (0, 0), alias_std)
    return k / k.sum()


def streak_kernel(length: float, std: float, angle: float) -> np.ndarray:
    """A one-sided motion streak: weights exp(-t^2 / 2 std^2) at t = 0..length px along `angle` (radians),
    splatted bilinearly. Its weight sits at the start, so the blurred image also shifts a little (a camera
    that moved during the exposure, as ImageMagick's motion blur the paper used)."""
    t = np.arange(0, int(length) + 1, dtype=np.float64)
    w = np.exp(-(t**2) / (2 * std**2))
    r = int(np.ceil(length)) + 1
    k = np.zeros((2 * r + 1, 2 * r + 1))
    degrade.splat(k, r + t * np.cos(angle), r + t * np.sin(angle), w)
    return (k / k.sum()).astype(np.float32)


def convolve(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Every channel convolved with a normalized kernel, reflecting at the borders."""
    k = np.ascontiguousarray(kernel[::-1, ::-1], np.float32)
    return cv2.filter2D(x, -1, k, borderType=cv2.BORDER_REFLECT)


def plasma_fractal(side: int, decay: float, rng: np.random.Generator) -> np.ndarray:
    """A side x side fractal height map in [0, 1] by the diamond-square algorithm (side a power of 2):
    each halving of the step adds random offsets `decay` ** 2 times weaker (the paper's fog: its offsets'
    reach w is drawn as w * uniform(-w, w), w divided by `decay` at each level)."""
    grid = np.zeros((side, side), np.float64)
    step, scale = side, 100.0**2
    while step >= 2:
        half = step // 2
        # squares: each square's centre from its four corners
        corners = grid[0:side:step, 0:side:step]
        mean = (
            corners
            + np.roll(corners, -1, 0)
            + np.roll(corners, -1, 1)
            + np.roll(np.roll(corners, -1, 0), -1, 1)
        ) / 4
        grid[half:side:step, half:side:step] = mean + rng.uniform(-scale, scale, mean.shape)
        # diamonds: the edge midpoints from their four neighbours
        ltsum = grid[0:side:step, 0:side:step] + np.roll(grid[0:side:step, 0:side:step], -1, 1)
        centres = grid[half:side:step, half:side:step]
        grid[0:side:step, half:side:step] = (ltsum + centres + np.roll(centres, 1, 0)) / 4 + rng.uniform(
            -scale, scale, centres.shape
        )
        ttsum = grid[0:side:step, 0:side:step] + np.roll(grid[0:side:step, 0:side:step], -1, 0)
        grid[half:side:step, 0:side:step] = (ttsum + centres + np.roll(centres, 1, 1)) / 4 + rng.uniform(
            -scale, scale, centres.shape
        )
        step, scale = half, scale / decay**2
    grid -= grid.min()
    return grid / max(grid.max(), 1e-12)


def to_hsv(x: np.ndarray) -> np.ndarray:
    """RGB float [0, 1] to OpenCV's float HSV (H in degrees, S and V in [0, 1])."""
    return cv2.cvtColor(np.ascontiguousarray(x, np.float32), cv2.COLOR_RGB2HSV)


def from_hsv(x: np.ndarray) -> np.ndarray:
    """Inverse of to_hsv."""
    return cv2.cvtColor(np.ascontiguousarray(x, np.float32), cv2.COLOR_HSV2RGB)


# ------------------------------------------------------------------------------------------ corruptions
# Each takes a float32 image in [0, 1] (gray or RGB, RGB for the colour ones), a strength and an rng.


def gaussian_noise(x, s, rng):
    return x + rng.normal(0.0, level(GAUSSIAN_NOISE, s), x.shape)


def shot_noise(x, s, rng):
    c = level(SHOT_NOISE, s)
    return rng.poisson(np.clip(x, 0, 1) * c) / c


def impulse_noise(x, s, rng):
    amount = level(IMPULSE_NOISE, s)
    u = rng.random(x.shape)
    out = x.copy()
    out[u < amount / 2] = 0.0
    out[u > 1 - amount / 2] = 1.0
    return out


def speckle_noise(x, s, rng):
    return x + x * rng.normal(0.0, level(SPECKLE_NOISE, s), x.shape)


def gaussian_blur(x, s, rng):
    return cv2.GaussianBlur(x, (0, 0), level(GAUSSIAN_BLUR, s), borderType=cv2.BORDER_REFLECT)


def glass_blur(x, s, rng):
    """Blur, then move each pixel to a random place within `reach` px, `rounds` times, then blur again: the
    paper swaps pixels one at a time along the image; here every pixel takes a random neighbour's value at
    once (a frosted pane's local scrambling, vectorized)."""
    std, reach, rounds = level(GLASS_BLUR, s)
    h, w = x.shape[:2]
    out = cv2.GaussianBlur(x, (0, 0), std)
    yy, xx = np.mgrid[0:h, 0:w]
    for _ in range(rounds):
        dy, dx = rng.integers(-reach, reach, (2, h, w))
        out = out[np.clip(yy + dy, 0, h - 1), np.clip(xx + dx, 0, w - 1)]
    return cv2.GaussianBlur(out, (0, 0), std)


def defocus_blur(x, s, rng):
    return convolve(x, disc_kernel(*level(DEFOCUS_BLUR, s)))


def motion_blur(x, s, rng):
    length, std = level(MOTION_BLUR, s)
    return convolve(x, streak_kernel(length, std, np.deg2rad(rng.uniform(-45, 45))))


def zoom_blur(x, s, rng):
    factors = level(ZOOM_BLUR, s)
    out = x.astype(np.float64)
    for z in factors:
        out = out + clipped_zoom(x, float(z))
    return out / (len(factors) + 1)


def snow(x, s, rng):
    """Flakes: a Gaussian field enlarged, thresholded and streaked at a steep angle, added with its half-turn
    copy over the image blended toward a brightened gray of itself (x is RGB)."""
    mean, std, zoom, thresh, length, streak_std, keep = level(SNOW, s)
    h, w = x.shape[:2]
    flakes = clipped_zoom(rng.normal(mean, std, (h, w)).astype(np.float32), zoom)
    flakes[flakes < thresh] = 0.0
    flakes = convolve(
        np.clip(flakes, 0, 1), streak_kernel(length, streak_std, np.deg2rad(rng.uniform(-135, -45)))
    )
    gray = cv2.cvtColor(np.ascontiguousarray(x, np.float32), cv2.COLOR_RGB2GRAY)[..., None]
    out = keep * x + (1 - keep) * np.maximum(x, gray * 1.5 + 0.5)
    return out + flakes[..., None] + np.rot90(flakes, 2)[..., None]


def fog(x, s, rng):
    """A fractal added to the image, then the image scaled back so that its old maximum keeps its place
    (x is RGB)."""
    weight, decay = level(FOG, s)
    h, w = x.shape[:2]
    side = 1 << int(np.ceil(np.log2(max(h, w, 2))))
    haze = plasma_fractal(side, decay, rng)[:h, :w, None]
    top = float(x.max())
    return (x + weight * haze) * top / (top + weight)


def brightness(x, s, rng):
    hsv = to_hsv(x)
    hsv[..., 2] = np.clip(hsv[..., 2] + level(BRIGHTNESS, s), 0, 1)
    return from_hsv(hsv)


def contrast(x, s, rng):
    means = x.mean(axis=(0, 1), keepdims=True)
    return (x - means) * level(CONTRAST, s) + means


def saturate(x, s, rng):
    a, b = level(SATURATE, s)
    hsv = to_hsv(x)
    hsv[..., 1] = np.clip(hsv[..., 1] * a + b, 0, 1)
    return from_hsv(hsv)


def pixelate(x, s, rng):
    h, w = x.shape[:2]
    c = level(PIXELATE, s)
    small = cv2.resize(x, (max(1, int(w * c)), max(1, int(h * c))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


def jpeg(x, s, rng):
    u8 = np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)
    bgr = u8 if u8.ndim == 2 else cv2.cvtColor(u8, cv2.COLOR_RGB2BGR)
    _, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, level(JPEG, s)])
    out = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    out = out if out.ndim == 2 else cv2.cvtColor(out, cv2.COLOR_BGR2RGB)
    return out.astype(np.float32) / 255.0


Corruption = Callable[[np.ndarray, Strength, np.random.Generator], np.ndarray]
CORRUPTIONS: dict[str, Corruption] = {
    "gaussian_noise": gaussian_noise,
    "shot_noise": shot_noise,
    "impulse_noise": impulse_noise,
    "speckle_noise": speckle_noise,
    "gaussian_blur": gaussian_blur,
    "glass_blur": glass_blur,
    "defocus_blur": defocus_blur,
    "motion_blur": motion_blur,
    "zoom_blur": zoom_blur,
    "snow": snow,
    "fog": fog,
    "brightness": brightness,
    "contrast": contrast,
    "saturate": saturate,
    "pixelate": pixelate,
    "jpeg": jpeg,
}
FAMILIES: tuple[str, ...] = tuple(CORRUPTIONS)
STRENGTHS = degrade.STRENGTHS  # mild, strong
TASK_FAMILIES: dict[str, tuple[str, ...]] = {t: FAMILIES for t in ("vif", "mef", "mff")}
VISIBLE_ONLY = frozenset({"snow", "fog", "brightness", "saturate"})
NEEDS_COLOUR = frozenset({"snow", "fog", "brightness", "saturate"})
EXCLUSIVE = frozenset({"brightness", "contrast"})
# Physical order: scene -> exposure -> optics -> sensor -> resampling -> codec.
ORDER: tuple[str, ...] = (
    "fog", "snow", "brightness", "contrast", "saturate", "gaussian_blur", "defocus_blur", "motion_blur",
    "zoom_blur", "glass_blur", "gaussian_noise", "shot_noise", "speckle_noise", "impulse_noise", "pixelate",
    "jpeg",
)  # fmt: skip


def targets(task: str, family: str, n: int) -> list[int]:
    """Which sources a family hits: for VIF (source 0 = IR) the scene and colour families hit the visible
    image only; everything else, and every family for MEF/MFF, hits all sources."""
    return list(range(1, n)) if task == "vif" and family in VISIBLE_ONLY else list(range(n))


def apply(image: np.ndarray, family: str, strength: Strength, seed: int) -> np.ndarray:
    """One source through one corruption, seeded; float32 [0, 1] in the image's own shape, coded to 8 bits
    before and after."""
    rng = np.random.default_rng(seed)
    x = np.round(np.clip(np.asarray(image, np.float32), 0.0, 1.0) * 255.0) / 255.0
    x = x.astype(np.float32)
    gray = x.ndim == 2
    if gray and family in NEEDS_COLOUR:
        x = np.repeat(x[..., None], 3, axis=2)
    out = np.asarray(CORRUPTIONS[family](x, strength, rng), np.float32)
    if gray and out.ndim == 3:
        out = out @ np.array([0.299, 0.587, 0.114], np.float32)
    return (np.round(np.clip(out, 0.0, 1.0) * 255.0) / 255.0).astype(np.float32)


def plan(
    task: str, family: str, strength: Strength | None, rng: np.random.Generator
) -> list[tuple[str, Strength]]:
    """The (family, strength) steps of one capture: bench/degrade.py's plan over this generator's families."""
    return degrade.plan(task, family, strength, rng, TASK_FAMILIES, ORDER, EXCLUSIVE)


def degrade_pair(
    images: Sequence[np.ndarray], task: str, family: str, strength: Strength | None, seed: int
) -> tuple[list[np.ndarray], list[str]]:
    """Degrade the sources of one capture (bench/degrade.py's contract); the images and the steps taken."""
    return degrade.degrade_each(images, task, family, strength, seed, plan, targets, apply)
