"""A second, independent degradation generator for the cross-check: albumentations' transforms.

`bench/degrade.py` was written for this project, and the classical stages' thresholds were chosen while
looking at its cells. A score that holds only on one generator is a narrow win. This module draws the same
kinds of damage from another code base, the albumentations library (Buslaev et al. 2020, the usual
augmentation library of the field), with its own formulas: fog as blended bright blobs rather than a depth-
based transmission, rain as slanted drops over a dimmed and box-blurred image, snow as bleached highlights
(its `texture` method tints colour images: not used), generalized-Gaussian and disc kernels, additive Gaussian
noise, brightness and gamma shifts, its contrast loss (a gain below 1: it scales contrast about black), JPEG;
and kinds of damage `bench/degrade.py` does not have: a loss of resolution enlarged back linearly
(`downscale`) or by nearest neighbour (`pixelate`: pixel blocks), impulse noise (`impulse`: salt and pepper)
and a colour sensor's high-ISO noise (`iso_noise`); the training generator draws none of the last three.
`python bench/quality.py --sections families --generator albumentations` scores the models on it (INFO
lines: the acceptance checks are defined on `bench/degrade.py`).

Like `bench/degrade.py` it never imports `allfuse` (so not the training generator). Images are float32 in [0,
1], (H, W) or (H, W, 3); each is coded to 8 bits, degraded, and returned as float32, as a capture's file would
be. Transforms that need colour (fog, rain, snow, ISO noise) get a gray image as three equal channels and
return its BT.601 luminance. Routing follows `bench/degrade.py`: for VIF the weather, fog and exposure
families and ISO noise (a colour camera's) hit the visible image only; every family hits all MEF/MFF sources.
Each source is drawn on its own (parameters within the strength's range and the random realization differ
between the sources of a pair, as between two captures).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from typing import Any

import cv2
import degrade
import numpy as np
from degrade import Strength

# the transforms of a family at a strength, applied in order, from the albumentations module A
Maker = Callable[[Any, Strength], list]

# Each family's transforms; ranges are per strength (mild, strong) at the bench's long side of 512 px.
MAKERS: dict[str, Maker] = {
    "noise": lambda A, s: [A.GaussNoise(std_range={"mild": (0.03, 0.05), "strong": (0.07, 0.10)}[s], p=1.0)],
    # impulse noise: a fraction of the pixels set to black or white (dead and hot pixels, bit errors)
    "impulse": lambda A, s: [
        A.SaltAndPepper(amount={"mild": (0.01, 0.02), "strong": (0.04, 0.06)}[s], p=1.0)
    ],
    # a colour sensor's noise at high ISO: per-pixel hue shifts and luminance noise
    "iso_noise": lambda A, s: [
        A.ISONoise(color_shift=(0.02, 0.05), intensity={"mild": (0.2, 0.4), "strong": (0.6, 0.9)}[s], p=1.0)
    ],
    "gauss_blur": lambda A, s: [
        A.GaussianBlur(sigma_limit={"mild": (1.0, 1.5), "strong": (2.0, 2.8)}[s], p=1.0)
    ],
    # generalized Gaussian (beta: box-like to peaked), anisotropic and rotated
    "aniso_blur": lambda A, s: [
        A.AdvancedBlur(
            blur_limit={"mild": (7, 11), "strong": (13, 19)}[s],
            sigma_x_limit={"mild": (0.5, 1.8), "strong": (1.5, 3.0)}[s],
            sigma_y_limit={"mild": (0.5, 1.8), "strong": (1.5, 3.0)}[s],
            noise_limit=(1.0, 1.0),
            p=1.0,
        )
    ],
    "defocus": lambda A, s: [
        A.Defocus(radius={"mild": (2, 3), "strong": (4, 6)}[s], alias_blur=(0.1, 0.3), p=1.0)
    ],
    "motion": lambda A, s: [A.MotionBlur(blur_limit={"mild": (5, 9), "strong": (11, 17)}[s], p=1.0)],
    "fog": lambda A, s: [A.RandomFog(fog_coef_range={"mild": (0.3, 0.45), "strong": (0.6, 0.8)}[s], p=1.0)],
    "rain": lambda A, s: [A.RandomRain(rain_type={"mild": "drizzle", "strong": "heavy"}[s], p=1.0)],
    "snow": lambda A, s: [
        A.RandomSnow(snow_point_range={"mild": (0.1, 0.2), "strong": (0.25, 0.35)}[s], method="bleach", p=1.0)
    ],
    # a darker capture (gamma > 1 in percent) and the sensor noise that comes with it
    "low_light": lambda A, s: [
        A.RandomGamma(gamma_limit={"mild": (180, 220), "strong": (260, 320)}[s], p=1.0),
        A.GaussNoise(std_range=(0.01, 0.02), p=1.0),
    ],
    "over_exposure": lambda A, s: [
        A.RandomBrightnessContrast(
            brightness_limit={"mild": (0.25, 0.35), "strong": (0.45, 0.6)}[s],
            contrast_limit=(0.0, 0.2),
            p=1.0,
        )
    ],
    # albumentations' contrast loss: x' = (1 + a) x with a < 0 (its contrast scales about black, so a
    # flatter picture is also a darker one)
    "low_contrast": lambda A, s: [
        A.RandomBrightnessContrast(
            brightness_limit=(0.0, 0.0),
            contrast_limit={"mild": (-0.5, -0.35), "strong": (-0.75, -0.6)}[s],
            p=1.0,
        )
    ],
    "jpeg": lambda A, s: [A.ImageCompression(quality_range={"mild": (30, 45), "strong": (10, 20)}[s], p=1.0)],
    "downscale": lambda A, s: [
        A.Downscale(
            scale_range={"mild": (0.5, 0.5), "strong": (0.25, 0.3)}[s],
            interpolation_pair={"downscale": cv2.INTER_AREA, "upscale": cv2.INTER_LINEAR},
            p=1.0,
        )
    ],
    # the same loss of resolution enlarged back by nearest neighbour: pixel blocks
    "pixelate": lambda A, s: [
        A.Downscale(
            scale_range={"mild": (0.5, 0.5), "strong": (0.25, 0.3)}[s],
            interpolation_pair={"downscale": cv2.INTER_AREA, "upscale": cv2.INTER_NEAREST},
            p=1.0,
        )
    ],
}
FAMILIES: tuple[str, ...] = tuple(MAKERS)
STRENGTHS = degrade.STRENGTHS  # mild, strong
TASK_FAMILIES: dict[str, tuple[str, ...]] = {t: FAMILIES for t in ("vif", "mef", "mff")}
VISIBLE_ONLY = frozenset({"fog", "rain", "snow", "low_light", "over_exposure", "iso_noise"})
NEEDS_COLOUR = frozenset({"fog", "rain", "snow", "iso_noise"})
EXCLUSIVE = frozenset({"low_light", "over_exposure"})
# what `mix` draws from: every family but low contrast and pixelate, which came later, so that the mix
# cells stay the captures their earlier runs scored
MIX_FAMILIES: dict[str, tuple[str, ...]] = {
    t: tuple(f for f in fams if f not in ("low_contrast", "pixelate")) for t, fams in TASK_FAMILIES.items()
}
# Physical order: scene -> exposure -> optics -> sensor -> resampling -> codec.
ORDER: tuple[str, ...] = (
    "fog", "rain", "snow", "low_light", "over_exposure", "low_contrast", "gauss_blur", "aniso_blur",
    "defocus", "motion", "noise", "impulse", "iso_noise", "downscale", "pixelate", "jpeg",
)  # fmt: skip


@functools.cache
def albumentations() -> Any:
    """The albumentations module, imported on first use (it is optional: `pip install -e ".[bench]"`, and
    it takes seconds to import); a clear error when it is missing."""
    # albumentations asks PyPI for a newer version when imported, unless told not to: no network here
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    try:
        import albumentations as alb
    except ImportError:
        raise SystemExit(
            'the albumentations generator needs the albumentations package: pip install -e ".[bench]"'
        ) from None
    return alb


def targets(task: str, family: str, n: int) -> list[int]:
    """Which sources a family hits: for VIF (source 0 = IR) the scene and exposure families and ISO
    noise hit the visible image only; everything else, and every family for MEF/MFF, hits all sources."""
    return list(range(1, n)) if task == "vif" and family in VISIBLE_ONLY else list(range(n))


def apply(image: np.ndarray, family: str, strength: Strength, seed: int) -> np.ndarray:
    """One source through one family's transforms, seeded; float32 [0, 1] in the image's own shape."""
    A = albumentations()
    x = np.asarray(image, np.float32)
    u8 = np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)
    gray = u8.ndim == 2
    if gray and family in NEEDS_COLOUR:
        u8 = np.repeat(u8[..., None], 3, axis=2)
    out = A.Compose(MAKERS[family](A, strength), seed=seed)(image=u8)["image"]
    if out.ndim == 3 and gray:
        out = cv2.cvtColor(out, cv2.COLOR_RGB2GRAY)
    return out.astype(np.float32) / 255.0


def plan(
    task: str, family: str, strength: Strength | None, rng: np.random.Generator
) -> list[tuple[str, Strength]]:
    """The (family, strength) steps of one capture: bench/degrade.py's plan over this generator's families."""
    return degrade.plan(task, family, strength, rng, TASK_FAMILIES, ORDER, EXCLUSIVE, MIX_FAMILIES)


def degrade_pair(
    images: Sequence[np.ndarray], task: str, family: str, strength: Strength | None, seed: int
) -> tuple[list[np.ndarray], list[str]]:
    """Degrade the sources of one capture (bench/degrade.py's contract); the images and the steps taken."""
    return degrade.degrade_each(images, task, family, strength, seed, plan, targets, apply)
