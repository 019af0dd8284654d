"""Degradation ops as pure functions: ``op(image, rng, spec) -> (image, params_used)``.

MMAIF Sect. 3.1 (real-world degradation pipeline). `spec` is a severity level 1..3 (parameters drawn from
`severity.TABLE` with `rng`) or an explicit parameter mapping (a replay: `rng` is then unused). Random
realizations (noise, streak positions) come from the ``seed`` parameter, so ``op(x, rng, params)`` with
the returned params reproduces the output exactly. Inputs are never modified; outputs are float32 in
[0, 1] with the input's shape, (H, W) or (H, W, 3).
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from allfuse.data.kernels import disk_kernel, finish, line_kernel
from allfuse.data.severity import Params, Spec, resolve, resolve_seeded
from allfuse.data.weather import haze, rain, snow
from allfuse.types import Image

Op = Callable[..., tuple[Image, Params]]
INTERPOLATIONS = (cv2.INTER_AREA, cv2.INTER_LINEAR, cv2.INTER_CUBIC)


def gaussian_blur(image: Image, rng: np.random.Generator, spec: Spec = 2) -> tuple[Image, Params]:
    """Optical blur: an isotropic Gaussian, or (``kernel`` 1) a defocus disk of radius 2 sigma, whose
    standard deviation is the same sigma but which erases mid frequencies harder and, through the side
    lobes of its spectrum, leaves some fine texture ringing, as a real defocused lens does."""
    p = resolve("gaussian_blur", spec, rng)
    x = np.asarray(image, np.float32)
    if int(p["kernel"]) == 1:
        out = cv2.filter2D(x, -1, disk_kernel(2.0 * p["sigma"]), borderType=cv2.BORDER_REFLECT)
    else:
        out = cv2.GaussianBlur(x, (0, 0), p["sigma"], borderType=cv2.BORDER_REFLECT)
    return finish(out), p


def motion_blur(image: Image, rng: np.random.Generator, spec: Spec = 2) -> tuple[Image, Params]:
    """Linear camera-shake blur: convolution with a line kernel of random length and angle."""
    p = resolve("motion_blur", spec, rng)
    k = line_kernel(p["length"], p["angle"])
    out = cv2.filter2D(np.asarray(image, np.float32), -1, k, borderType=cv2.BORDER_REFLECT)
    return finish(out), p


def downsample(image: Image, rng: np.random.Generator, spec: Spec = 2) -> tuple[Image, Params]:
    """Downscale by 2 or 4 (area/bilinear/bicubic), then bicubic back to the input size."""
    p = resolve("downsample", spec, rng)
    x = np.asarray(image, np.float32)
    h, w = x.shape[:2]
    f = p["factor"]
    small = cv2.resize(
        x, (max(1, round(w / f)), max(1, round(h / f))), interpolation=INTERPOLATIONS[int(p["down"])]
    )
    return finish(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)), p


def noise(image: Image, rng: np.random.Generator, spec: Spec = 2) -> tuple[Image, Params]:
    """Sensor noise: Poisson shot noise (``peak`` photons at white) plus additive Gaussian noise.

    The shot noise uses its Gaussian limit, variance x / peak (the Poisson-Gaussian sensor model of Foi
    et al. 2008; accurate for the table's peak >= 80): one normal draw of variance x / peak + sigma^2.
    """
    p, gen = resolve_seeded("noise", spec, rng)
    x = np.clip(np.asarray(image, np.float32), 0.0, 1.0)
    std = np.sqrt(x / np.float32(p["peak"]) + np.float32(p["sigma"] ** 2))
    return finish(x + std * gen.standard_normal(x.shape, dtype=np.float32)), p


def jpeg(image: Image, rng: np.random.Generator, spec: Spec = 2) -> tuple[Image, Params]:
    """JPEG round trip (OpenCV, 4:2:0 chroma for colour): 8x8 block artifacts and ringing."""
    p = resolve("jpeg", spec, rng)
    x = np.asarray(image, np.float32)
    q = np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)
    bgr = cv2.cvtColor(q, cv2.COLOR_RGB2BGR) if q.ndim == 3 else q
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(p["quality"])])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    dec = cv2.imdecode(buf, cv2.IMREAD_COLOR if q.ndim == 3 else cv2.IMREAD_GRAYSCALE)
    dec = cv2.cvtColor(dec, cv2.COLOR_BGR2RGB) if q.ndim == 3 else dec
    return finish(dec.astype(np.float32) / 255.0), p


def low_exposure(image: Image, rng: np.random.Generator, spec: Spec = 2) -> tuple[Image, Params]:
    """Under-exposure as a camera records it: ``gain * x ** gamma`` with gain < 1, gamma > 1 (shadows sink
    first), then the sensor's noise at that light level and an 8-bit encoding.

    A dim exposure collects few photons, so a real under-exposed image is also a noisy one. The noise is
    Poisson-Gaussian on the dim signal y (Foi et al. 2008, as in `noise`): variance y / peak + sigma^2,
    with fewer photons (``peak`` at white) the darker the level. The 8-bit rounding then crushes the
    shadows' few remaining codes, as a JPEG or PNG from the camera does.
    """
    p, gen = resolve_seeded("low_exposure", spec, rng)
    y = np.float32(p["gain"]) * np.power(
        np.clip(np.asarray(image, np.float32), 0.0, 1.0), np.float32(p["gamma"])
    )
    std = np.sqrt(y / np.float32(p["peak"]) + np.float32(p["sigma"] ** 2))
    noisy = np.clip(y + std * gen.standard_normal(y.shape, dtype=np.float32), 0.0, 1.0)
    return finish(np.round(noisy * 255.0) / 255.0), p


def high_exposure(image: Image, rng: np.random.Generator, spec: Spec = 2) -> tuple[Image, Params]:
    """Over-exposure: ``gain * x ** gamma`` with gain > 1, gamma < 1, clipped (highlights saturate)."""
    p = resolve("high_exposure", spec, rng)
    return finish(p["gain"] * np.power(np.clip(image, 0.0, 1.0), p["gamma"])), p


def low_contrast(image: Image, rng: np.random.Generator, spec: Spec = 2) -> tuple[Image, Params]:
    """Contrast loss: every value moves toward a gray ``pivot``, keeping ``factor`` of its distance."""
    p = resolve("low_contrast", spec, rng)
    return finish(p["pivot"] + p["factor"] * (np.asarray(image, np.float32) - p["pivot"])), p


def ir_stripes(image: Image, rng: np.random.Generator, spec: Spec = 2) -> tuple[Image, Params]:
    """IR fixed-pattern noise: a random offset per column (non-uniform detector gain) plus Gaussian noise."""
    p, gen = resolve_seeded("ir_stripes", spec, rng)
    x = np.asarray(image, np.float64)
    h, w = x.shape[:2]
    cols = gen.normal(0.0, p["stripe"], size=w)
    cols -= 0.5 * p["stripe"] * np.abs(gen.standard_normal(w)) * (gen.random(w) < 0.1)  # a few dark columns
    shape = (1, w, 1) if x.ndim == 3 else (1, w)
    return finish(x + cols.reshape(shape) + gen.normal(0.0, p["noise"], size=(h, w, *x.shape[2:]))), p


# name -> op; every name of `severity.OP_NAMES`, nothing else.
OPS: dict[str, Op] = {
    "gaussian_blur": gaussian_blur,
    "motion_blur": motion_blur,
    "downsample": downsample,
    "noise": noise,
    "jpeg": jpeg,
    "rain": rain,
    "haze": haze,
    "snow": snow,
    "low_exposure": low_exposure,
    "high_exposure": high_exposure,
    "low_contrast": low_contrast,
    "ir_stripes": ir_stripes,
}


def apply_op(
    name: str, image: Image, rng: np.random.Generator, spec: Spec = 2, **kw: object
) -> tuple[Image, Params]:
    """Apply a registered op by name (``depth=`` is passed to haze)."""
    if name not in OPS:
        raise ValueError(f"unknown degradation {name!r}; choose from {', '.join(OPS)}")
    return OPS[name](image, rng, spec, **kw)
