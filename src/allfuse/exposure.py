"""Exposure stage: undo a whole-pair under-exposure by the headroom it leaves, then lift a bracket whose
brightest member is dark (pipeline.restore_inputs).

Beyond the papers. A capture under-exposed by a factor k in linear light shows, in display values
I = (k L) ** (1 / gamma), the clean picture times k ** (1 / gamma): a gain in display values as well (a power
law commutes with a gain). So its brightest pixels sit far below the top of the range, and one gain g,
the headroom's inverse, brings it back: the classical "auto levels" step. A gamma curve that pulls the
mean to a set value (0.45) instead lost Qabf on the bench's under-exposed multi-focus and multi-exposure
pairs (MFF mild 0.454 -> 0.385, MEF 0.446 -> 0.431) where the full gain wins (0.514 and 0.535).

Measure: the `percentile` (99.5) of the luminance of all inputs pooled, p. One gain for the whole pair:
the over-exposed member of a multi-exposure pair sets it, so a dark bracket member stays dark (and its
pair gets no gain when nothing is wrong). Gain: g = target / p, at most `max_gain`, ramped in log-gain from
none at p = high to all of it at p = low, so that no input jumps at a threshold:
    w = clip((high - p) / (high - low), 0, 1),   g = min(max_gain, target / p) ** w
Every input is multiplied by g and clipped to [0, 1] (colours keep their hue). The amplified sensor noise
is the DiT's to remove; the input corrector (allfuse.models.correct) runs after this stage.

Thresholds, per task, from the shared benchmark's clean pairs (all 500, full size): the lowest pooled p99.5
is 0.958 on the 98 multi-exposure pairs (an over-exposed member always reaches the top) and 0.549 on the
140 multi-focus pairs (MFI-WHU/88, a dim scene); `high` sits below each (0.9 and 0.54), so no clean pair of
either task gets a gain. The ramps are short (down to `low` 0.8 and 0.48): the latent path answers a
half-brightened pair worst. On the validation bench's three mildly under-exposed multi-focus pairs
(bench/quality.py families, allfuse-reg), a gain of 1.25 gave Qabf 0.527 / 0.420 / 0.348 and the full gain
of about 2 gave 0.482 / 0.502 / 0.551 (no gain: 0.518 / 0.435 / 0.409); a ramp from 0.54 to 0.40 left the
cell at 0.420, this one gives 0.488 (no stage: 0.454).

Lift (`lift`, per task; the shipped models: multi-exposure pairs, target 0.45). A tone curve that darkens
the whole bracket, I' = I ** k with k > 1 (a darker camera or editing curve; albumentations' RandomGamma),
leaves the white point where it was, so the headroom above sees little or nothing; but it pulls every
mid-tone down, the over-exposed member's too, and the brightest member of a bracket is the one meant to
show the shadows. So after the gain, when the brightest input's mean luminance m is below the target T,
every input goes through x ** g (each channel) with g = log T / log m, the curve that takes the value m
to T, and g >= `min_gamma` (1/3); g is 1 at m = T, so no pair jumps at a threshold.
On the shared benchmark's 98 clean multi-exposure pairs (long side 512), it lifts 9 dark scenes; their
fusion by allfuse-reg against their own sources: Qabf up on 7 (mean +0.013), VIF up on all 9 (+0.083)
(bench/results/exposure_lift.md). On the validation bench's multi-exposure cells (bench/quality.py
families, allfuse-reg): the cross-check generator's gamma-darkened cells 0.515 -> 0.571 (mild) and
0.362 -> 0.453 (strong), the mean of its 26 cells 0.4478 -> 0.4546; the bench's own generator, whose low
light is mostly the gain undone above, 0.5116 -> 0.5105: its one dark validation scene is lifted in every
cell, and with it the noise left in its shadows (noise and low-light cells -0.005 to -0.006). The noise
after a lift is the DiT's to remove, as after a gain.

Infrared + visible pairs are not in the shipped tasks: a night scene's visible image is as dark, and as
far from the top of its range, as a daytime one under-exposed (MSRS night images: p99.5 0.47-0.65; the
bench's under-exposed daytime visible images: 0.21-0.58), and brightening a night scene costs Qabf against
its clean (dark) sources (a gamma to mean 0.45 on six MSRS night pairs: -0.04 to -0.07 clean, -0.02 to
-0.06 under the bench's noise).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Self

import numpy as np

from allfuse.color import to_gray
from allfuse.types import TASKS, Image


@dataclass(frozen=True)
class ExposureConfig:
    """The exposure stage of a model folder (exposure.json; module doc). `high` and `low` name, per task it
    runs for, the pooled percentile from which the gain starts and at which it is complete."""

    high: dict[str, float] = field(default_factory=lambda: {"mef": 0.9, "mff": 0.54})
    low: dict[str, float] = field(default_factory=lambda: {"mef": 0.8, "mff": 0.48})
    percentile: float = 99.5
    target: float = 0.95  # the pooled percentile after the full gain
    max_gain: float = 4.0
    # per task: the mean luminance the brightest input is lifted to by a gamma curve after the gain (module
    # doc, "Lift"); none by default, so a folder whose exposure.json predates it keeps its behaviour
    lift: dict[str, float] = field(default_factory=dict)
    min_gamma: float = 1 / 3  # the strongest lift's exponent

    def __post_init__(self) -> None:
        tasks = set(self.high)
        ok = tasks == set(self.low) and tasks <= set(TASKS) and 50 <= self.percentile <= 100
        ok = ok and 0 < self.target <= 1 and self.max_gain >= 1
        ok = ok and set(self.lift) <= set(TASKS) and all(0 < v < 1 for v in self.lift.values())
        ok = ok and 0 < self.min_gamma <= 1
        if not ok or any(not 0 < self.low[t] < self.high[t] <= 1 for t in tasks):
            raise ValueError(
                "bad exposure config: need the same tasks (among "
                f"{', '.join(TASKS)}) in high and low, 0 < low < high <= 1 for each, a percentile in "
                f"[50, 100], 0 < target <= 1, max_gain >= 1, lift targets in (0, 1) for tasks among "
                f"those and 0 < min_gamma <= 1: {self}"
            )

    @property
    def tasks(self) -> tuple[str, ...]:
        """The tasks the stage runs for (a gain, a lift or both)."""
        return tuple(sorted(set(self.high) | set(self.lift)))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "high": dict(self.high),
            "low": dict(self.low),
            "percentile": self.percentile,
            "target": self.target,
            "max_gain": self.max_gain,
            "lift": dict(self.lift),
            "min_gamma": self.min_gamma,
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Self:
        """Inverse of to_dict; unknown keys are a TypeError naming them."""
        return cls(**values)


def headroom(images: Sequence[Image], percentile: float) -> float:
    """The `percentile` of the luminance of all images pooled, in [0, 1]."""
    pooled = np.concatenate([np.asarray(to_gray(np.asarray(im, np.float32))).ravel() for im in images])
    return float(np.percentile(pooled, percentile))


def mean_luma(im: Image) -> float:
    """Mean luminance of one image."""
    return float(np.mean(to_gray(np.asarray(im, np.float32))))


def lift_gamma(images: Sequence[Image], task: str, cfg: ExposureConfig) -> float:
    """The exponent of the stage's lift for these (already gained) inputs: 1.0 when the task has no lift or
    the brightest input's mean luminance m reaches the lift's target T, else log T / log m (the curve
    x ** g that takes m to T), at least cfg.min_gamma."""
    if task not in cfg.lift:
        return 1.0
    m = max(mean_luma(im) for im in images)
    if m >= cfg.lift[task]:
        return 1.0
    return max(cfg.min_gamma, math.log(cfg.lift[task]) / math.log(max(m, 1e-6)))


def exposure_gain(images: Sequence[Image], task: str, cfg: ExposureConfig) -> float:
    """The gain the stage applies to every input of this pair (1.0: none, or the task is not one of its)."""
    if task not in cfg.high:
        return 1.0
    high, low = cfg.high[task], cfg.low[task]
    p = headroom(images, cfg.percentile)
    w = min(1.0, max(0.0, (high - p) / (high - low)))
    if w == 0.0:
        return 1.0
    return math.exp(w * math.log(min(cfg.max_gain, cfg.target / max(p, 1e-6))))


def gained_inputs(
    images: Sequence[Image], task: str, cfg: ExposureConfig
) -> tuple[list[Image], float, float]:
    """The inputs times the stage's gain, clipped to [0, 1] (the lift not yet applied); the gain and the
    exponent of the lift those gained inputs ask for."""
    gain = exposure_gain(images, task, cfg)
    out = list(images)
    if gain != 1.0:
        out = [np.clip(np.asarray(im, np.float32) * np.float32(gain), 0.0, 1.0) for im in out]
    return out, gain, lift_gamma(out, task, cfg)


def expose_inputs(images: Sequence[Image], task: str, cfg: ExposureConfig) -> tuple[list[Image], float]:
    """The inputs times the stage's gain, clipped to [0, 1], then through its lift (each channel to the
    power lift_gamma); and the gain."""
    out, gain, g = gained_inputs(images, task, cfg)
    if g != 1.0:
        out = [np.power(np.clip(np.asarray(im, np.float32), 0.0, 1.0), np.float32(g)) for im in out]
    return out, gain
