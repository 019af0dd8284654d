"""Control targets (DiTFuse Sect. III-B2): brightness in four levels and contrast up/down, applied to the
fusion target. Every transform is a fixed, strictly monotone tone curve per channel, so pixel order is kept:
  * LIGHT++ / LIGHT+ / LIGHT- / LIGHT--: gamma curve x ** g with g = 0.5, 0.75, 1.35, 2.0;
  * CONTRAST+: a normalised sigmoid S-curve (gain 6) centred on the image's mean luminance;
  * CONTRAST-: linear compression toward the mean luminance, keeping 60 % of the distance.
"""

from __future__ import annotations

import numpy as np

from allfuse.color import to_gray
from allfuse.types import Image

GAMMA: dict[str, float] = {"LIGHT++": 0.5, "LIGHT+": 0.75, "LIGHT-": 1.35, "LIGHT--": 2.0}
SIGMOID_GAIN = 6.0
CONTRAST_KEEP = 0.6
CONTROLS: tuple[str, ...] = (*GAMMA, "CONTRAST+", "CONTRAST-")


def s_curve(x: np.ndarray, mid: float, gain: float = SIGMOID_GAIN) -> np.ndarray:
    """Sigmoid through (0, 0) and (1, 1), steepest at `mid`: raises contrast around it."""

    def sig(v: np.ndarray | float) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-gain * (np.asarray(v, np.float64) - mid)))

    lo, hi = sig(0.0), sig(1.0)
    return (sig(x) - lo) / (hi - lo)


def apply_control(image: Image, control: str) -> Image:
    """Apply a control tag's tone curve to an image in [0, 1]."""
    x = np.clip(np.asarray(image, np.float32), 0.0, 1.0)
    if control in GAMMA:
        out = np.power(x, GAMMA[control])
    elif control == "CONTRAST+":
        out = s_curve(x, float(to_gray(x).mean()))
    elif control == "CONTRAST-":
        m = float(to_gray(x).mean())
        out = m + CONTRAST_KEEP * (x - m)
    else:
        raise ValueError(f"unknown control {control!r}; choose from {', '.join(CONTROLS)}")
    return np.clip(out, 0.0, 1.0).astype(np.float32)
