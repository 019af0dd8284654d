"""Impulse-noise stage: a switching median filter on each input that measures speckled, first of all the
stages (pipeline.restore_inputs).

Beyond the papers. Impulse noise, values thrown to an extreme one pixel at a time (a sensor's dead and hot
pixels, bit errors of a transmission, salt and pepper), is not Gaussian: non-local means (allfuse.denoise)
and the DiT, which learned the training generator's Gaussian and Poisson noise, leave it, and every fusion
rule carries a speck of one input into the output. The cross-check generator's `impulse` and `iso_noise`
families (bench/degrade_alb.py: albumentations' SaltAndPepper and ISONoise; neither the training generator
nor the validation bench's draws such noise) measure it (figures in the models' cards).

Detect (per channel; the switching median of Sun & Neuvo, 1994, with an isolation test as its switch): a
value stands out by a margin when it lies more than that margin above the second largest of its 8
neighbours or below the second smallest. The second, not the first: two impulses side by side still count;
and a line one pixel wide keeps two like neighbours along it, so it never stands out (its two end pixels
do, and go when the stage fires). Remove: the values standing out by `threshold` only are replaced by their
3 x 3 median; every other value stays exactly as it was (a plain median filter would blur the whole image).

Fire: only on an input whose fraction of values standing out by more than `detect` (0.3, a stricter test
than the removal's) is at least `fire`, each input on its own. The stricter test separates speckled inputs
from clean and from Gaussian-noisy ones, whose outliers stand out by less: on the 1,000 clean images of the
shared benchmark's pairs (long side 512) its largest fraction is 0.078 % (MFI-WHU/85, the crossings of a
chain-link fence; at 0.2 it reads 0.51 %), under the bench's and the cross-check's Gaussian noise 0.047 %
(validation pairs; a strongly noisy, dark visible image of the bench's main section read 0.69 % at 0.2);
salt and pepper over 1 % of the pixels reads 0.60-1.7 %, over 4-6 % 2.2-4.9 %. So `fire` 0.25 % sits three
times above every clean image. Once an input fires, its values standing out by more than `threshold` (0.2)
are replaced: on the cross-check's impulse cells removal from 0.3 instead left allfuse-reg's Qabf lower
(strong salt and pepper: infrared + visible 0.540 against 0.570, multi-focus 0.687 against 0.714; a
scratch comparison).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from allfuse.types import TASKS, Image, TaskStageConfig

# the 8 neighbours of a pixel, as (dy, dx)
NEIGHBOURS = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0))
MEASURE_PIXELS = 1 << 18  # a larger plane's fraction is measured on STRIPS bands of rows of this many pixels
STRIPS = 8


@dataclass(frozen=True)
class ImpulseConfig(TaskStageConfig):
    """The impulse-noise stage of a model folder (impulse.json; module doc)."""

    threshold: float = 0.2  # the margin (in [0, 1] values) by which a value stands out to be replaced
    detect: float = 0.3  # ... to count towards an input's fraction, which decides whether it is filtered
    fire: float = 0.0025  # the fraction of such values from which an input is filtered
    tasks: tuple[str, ...] = TASKS

    def __post_init__(self) -> None:
        ok = 0 < self.threshold < 1 and 0 < self.detect < 1 and 0 < self.fire < 1
        if not ok or not set(self.tasks) <= set(TASKS):
            raise ValueError(
                f"bad impulse config: need 0 < threshold, detect, fire < 1 and tasks among "
                f"{', '.join(TASKS)}: {self}"
            )


def planes(image: Image) -> list[np.ndarray]:
    """An image's channels as float32 planes."""
    x = np.asarray(image, np.float32)
    return [x] if x.ndim == 2 else [np.ascontiguousarray(x[..., c]) for c in range(x.shape[2])]


def impulse_mask(plane: np.ndarray, threshold: float) -> np.ndarray:
    """Where a plane's value stands out of its 8 neighbours by more than `threshold`: above the second
    largest of them or below the second smallest (module doc). Borders are reflected."""
    p = np.asarray(plane, np.float32)
    h, w = p.shape
    q = np.pad(p, 1, mode="reflect") if min(h, w) > 1 else np.pad(p, 1, mode="edge")
    hi1 = np.full_like(p, -np.inf)
    hi2 = hi1.copy()
    lo1 = np.full_like(p, np.inf)
    lo2 = lo1.copy()
    for dy, dx in NEIGHBOURS:  # a running top two and bottom two: no (8, H, W) stack in memory
        n = q[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
        hi2 = np.maximum(hi2, np.minimum(hi1, n))
        hi1 = np.maximum(hi1, n)
        lo2 = np.minimum(lo2, np.maximum(lo1, n))
        lo1 = np.minimum(lo1, n)
    return (p > hi2 + threshold) | (p < lo2 - threshold)


def impulse_fraction(image: Image, threshold: float = ImpulseConfig.detect) -> float:
    """The fraction of an image's values (all channels) that impulse_mask flags; on a plane of more than
    MEASURE_PIXELS pixels, measured on STRIPS evenly spaced bands of rows that hold that many together (each
    with a row of context above and below), so measuring costs the same from 512² on."""
    fractions = []
    for p in planes(image):
        h, w = p.shape
        rows = max(1, MEASURE_PIXELS // (w * STRIPS))
        if h * w <= MEASURE_PIXELS or rows * STRIPS >= h:
            fractions.append(impulse_mask(p, threshold).mean())
            continue
        flagged = 0
        for y0 in np.linspace(0, h - rows, STRIPS).round().astype(int):
            a, b = max(0, y0 - 1), min(h, y0 + rows + 1)
            flagged += impulse_mask(p[a:b], threshold)[y0 - a : y0 - a + rows].sum()
        fractions.append(flagged / (rows * STRIPS * w))
    return float(np.mean(fractions))


def remove_impulses(image: Image, threshold: float = ImpulseConfig.threshold) -> np.ndarray:
    """The image with its flagged values replaced by their 3 x 3 median (per channel); all others kept."""
    x = np.asarray(image, np.float32)
    out = []
    for p in planes(x):
        mask = impulse_mask(p, threshold)
        out.append(np.where(mask, cv2.medianBlur(p, 3), p) if mask.any() else p)
    return out[0] if x.ndim == 2 else np.stack(out, axis=2)


def impulse_inputs(images: Sequence[Image], task: str, cfg: ImpulseConfig) -> tuple[list[Image], list[float]]:
    """The inputs, each one whose fraction of values standing out by cfg.detect reaches cfg.fire through
    remove_impulses at cfg.threshold (the others the same arrays); and each input's fraction (0.0 for all
    when the task is not one of the stage's)."""
    if task not in cfg.tasks:
        return list(images), [0.0] * len(images)
    fractions = [impulse_fraction(x, cfg.detect) for x in images]
    out = [
        remove_impulses(x, cfg.threshold) if f >= cfg.fire else x
        for x, f in zip(images, fractions, strict=True)
    ]
    return out, fractions
