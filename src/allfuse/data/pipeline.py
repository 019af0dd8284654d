"""Task-aware degradation of an image pair (MMAIF Sect. 3.1): crop geometry, op sampling, routing.

Pair order follows `allfuse.io.LAYOUTS`: VIF (ir, vi), MEF (under, over), MFF (near, far). Routing:
  * VIF: weather (rain, haze, snow) and low or high exposure go on the visible image, while the IR image
    of the pair gets a mild Gaussian blur instead of the weather (with probability `ir_weather_blur`, 1 by
    default as in MMAIF); IR stripes go on the IR image; low
    contrast on one image picked at random; a blur on one image at random with probability `blur_one` (0
    by default); every other op on both.
  * MFF: low or high exposure on one image or both (picked at random); everything else on both.
  * MEF: every op on both.
Ops applied to both images share parameters (one scene, one camera); random realizations of sensor noise
(noise, ir_stripes) differ between the two images, weather layers are shared.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from allfuse.data.degradations import apply_op
from allfuse.data.depth import DepthProvider, get_depth_provider
from allfuse.data.severity import EXCLUSIVE, LEVELS, OP_NAMES, ORDER, TASK_OPS, WEATHER_OPS, sample_params
from allfuse.data.weather import HazeVariety
from allfuse.types import Image

Aspect = tuple[int, int]
INDEPENDENT_NOISE = ("noise", "ir_stripes")  # per-image realizations
BLUR_OPS = ("gaussian_blur", "motion_blur", "downsample")  # what `blur_one` may put on one image only


@dataclass(frozen=True)
class PipelineConfig:
    """How pairs are cropped and degraded; fields override, unknown keys are errors."""

    size: int = 128  # training size: output is size x size, or long side = size with keep_aspect
    aspects: tuple[Aspect, ...] = ((16, 9), (4, 3), (1, 1))
    keep_aspect: bool = False  # True: output keeps the crop's aspect (short side a multiple of 8)
    min_scale: float = 0.6  # crop side as a fraction of the largest crop of that aspect
    # Fraction of fusion samples whose two inputs are one well-exposed, sharp image twice (the teacher's
    # fusion of the clean pair), itself the target: such an input learns to pass through unchanged.
    self_pairs: float = 0.0
    n_ops: tuple[int, ...] = (1, 2, 3)  # MMAIF: n in {1, 2, 3}
    n_weights: tuple[float, ...] | None = None  # uniform when None
    op_weights: Mapping[str, float] = field(default_factory=dict)  # relative; missing ops weigh 1, 0 drops
    levels: tuple[int, ...] = LEVELS
    depth: str = "heuristic"  # depth provider spec for haze (see depth.get_depth_provider)
    # VIF: probability that a weather op on the visible image comes with a mild blur of the IR image (MMAIF
    # Sect. 3.1 always blurs it; a real thermal camera in haze or rain often stays sharp)
    ir_weather_blur: float = 1.0
    # VIF: probability that a blur op (gaussian_blur, motion_blur, downsample) hits one image only, the IR or
    # the visible one at random, instead of both: two cameras with their own optics. With the MMAIF
    # protocol alone an IR image is blurred by itself only beside weather on the visible one, and a model
    # can learn to read a soft IR image as "the visible one is veiled". At 0 no number is drawn for it.
    blur_one: float = 0.0
    # Probability that a haze departs from the plain model: tinted airlight, a depth mixed with a random
    # layout, patchy scattering (weather.HazeVariety); at 0 no number is drawn for it.
    haze_variety: float = 0.0
    # Probability that a multi-focus sample is instead one real scene twice: the visible image of a random
    # infrared + visible pair (street scenes of other cameras, some at night), itself the clean source and
    # the target, degraded like a self pair. Our multi-focus sources are all bright daylight scenes. Not for
    # multi-exposure samples: one exposure twice is not a bracket. At 0 no number is drawn for it.
    scene_self_pairs: float = 0.0
    # Probability that a multi-exposure or multi-focus sample is made gray before it is degraded: its clean
    # sources and target replaced by their BT.601 luminance in all three channels (a monochrome camera, a
    # scanned page). Every shared multi-exposure and multi-focus pair is in colour, and a gray scene has no
    # dark channel of its own (the corrector's haze prior, allfuse.models.correct). At 0 no number is drawn.
    gray: float = 0.0

    def __post_init__(self) -> None:
        """Refuse unknown op names, negative weights in op_weights (a typo would silently do nothing) and an
        ir_weather_blur, blur_one, haze_variety, scene_self_pairs or gray outside [0, 1]."""
        for name in ("ir_weather_blur", "blur_one", "haze_variety", "scene_self_pairs", "gray"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        bad = sorted(set(self.op_weights) - set(OP_NAMES))
        if bad:
            raise ValueError(f"op_weights: unknown degradation(s) {bad}; choose from {', '.join(OP_NAMES)}")
        if any(w < 0 for w in self.op_weights.values()):
            raise ValueError(f"op_weights must be >= 0: {dict(self.op_weights)}")


@dataclass(frozen=True)
class CropBox:
    """A crop of the source (pixels) and the output size it is resized to."""

    y: int
    x: int
    h: int
    w: int
    out_h: int
    out_w: int
    aspect: str

    def apply(self, image: Image) -> Image:
        """Crop and resize one image (area filter when shrinking, cubic when enlarging); uint8 -> [0, 1]."""
        crop = np.asarray(image)[self.y : self.y + self.h, self.x : self.x + self.w]
        crop = crop.astype(np.float32) / 255.0 if crop.dtype == np.uint8 else crop.astype(np.float32)
        shrink = self.out_h * self.out_w < self.h * self.w
        out = cv2.resize(
            crop, (self.out_w, self.out_h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC
        )
        return np.clip(out, 0.0, 1.0).astype(np.float32)

    def as_dict(self) -> dict:
        """JSON-ready description."""
        return {
            "y": self.y,
            "x": self.x,
            "h": self.h,
            "w": self.w,
            "out": [self.out_h, self.out_w],
            "aspect": self.aspect,
        }


def output_size(size: int, ratio: float, portrait: bool, keep_aspect: bool) -> tuple[int, int]:
    """(out_h, out_w) for a crop of aspect `ratio` (long/short >= 1)."""
    if not keep_aspect:
        return size, size
    short = max(8, round(size / ratio / 8) * 8)
    return (size, short) if portrait else (short, size)


def sample_crop(h: int, w: int, rng: np.random.Generator, cfg: PipelineConfig) -> CropBox:
    """Random aspect-ratio crop (orientation follows the source) at a random scale and position."""
    a, b = cfg.aspects[int(rng.integers(len(cfg.aspects)))]
    ratio = max(a, b) / min(a, b)
    portrait = h > w
    ch, cw = (ratio, 1.0) if portrait else (1.0, ratio)  # crop shape in units of its short side
    full = min(h / ch, w / cw)
    # Never enlarge a crop past the source's own resolution when the source is large enough: an
    # upscaled crop is blurred, target included, and would teach that blur is the norm.
    lowest = max(cfg.min_scale, min(1.0, cfg.size / full))
    unit = full * rng.uniform(lowest, 1.0)
    crop_h, crop_w = max(1, min(h, round(unit * ch))), max(1, min(w, round(unit * cw)))
    y = int(rng.integers(0, h - crop_h + 1))
    x = int(rng.integers(0, w - crop_w + 1))
    out_h, out_w = output_size(cfg.size, ratio, portrait, cfg.keep_aspect)
    return CropBox(y, x, crop_h, crop_w, out_h, out_w, f"{a}:{b}")


def sample_ops(task: str, rng: np.random.Generator, cfg: PipelineConfig) -> list[tuple[str, int]]:
    """Draw n distinct ops of the task's set (mutually exclusive ones never together), with levels."""
    n_w = np.asarray(cfg.n_weights or [1.0] * len(cfg.n_ops), float)
    n = int(cfg.n_ops[rng.choice(len(cfg.n_ops), p=n_w / n_w.sum())])
    pool = [op for op in TASK_OPS[task] if cfg.op_weights.get(op, 1.0) > 0]
    chosen: list[str] = []
    while len(chosen) < n and pool:
        w = np.asarray([cfg.op_weights.get(op, 1.0) for op in pool], float)
        op = pool[rng.choice(len(pool), p=w / w.sum())]
        chosen.append(op)
        blocked = set().union(*(g for g in EXCLUSIVE if op in g)) | {op}
        pool = [o for o in pool if o not in blocked]
    chosen.sort(key=ORDER.index)
    return [(op, int(cfg.levels[rng.integers(len(cfg.levels))])) for op in chosen]


def route(task: str, op: str, rng: np.random.Generator) -> tuple[int, ...]:
    """Which images of the pair an op goes on (see module docstring)."""
    if task == "vif":
        if op in WEATHER_OPS or op in ("low_exposure", "high_exposure"):
            return (1,)
        if op == "ir_stripes":
            return (0,)
        if op == "low_contrast":
            return ((0,), (1,))[int(rng.integers(2))]
    if task == "mff" and op in ("low_exposure", "high_exposure"):
        return ((0,), (1,), (0, 1))[int(rng.integers(3))]
    return (0, 1)


def pair_depth(images: Sequence[Image], task: str, provider: DepthProvider) -> np.ndarray:
    """Depth of the clean pair: from the visible image for VIF, from the pair's mean otherwise."""
    if task == "vif":
        return provider(images[1])
    a, b = (np.asarray(x, np.float32) for x in images)
    if a.ndim != b.ndim:
        a, b = (x if x.ndim == 3 else np.repeat(x[..., None], 3, axis=2) for x in (a, b))
    return provider(0.5 * (a + b))


def degrade_pair(
    images: Sequence[Image],
    task: str,
    ops: Sequence[tuple[str, int]],
    rng: np.random.Generator,
    cfg: PipelineConfig | None = None,
    depth_provider: DepthProvider | None = None,
) -> tuple[list[Image], list[dict]]:
    """Apply `ops` (name, level) to the pair with task routing; returns the images and one record per op."""
    cfg = cfg or PipelineConfig()
    out = [np.asarray(x, np.float32) for x in images]
    records: list[dict] = []
    depth = None
    for op, level in ops:
        targets = route(task, op, rng)
        if task == "vif" and op in BLUR_OPS and cfg.blur_one > 0 and rng.random() < cfg.blur_one:
            targets = ((0,), (1,))[int(rng.integers(2))]  # one camera's optics or shake
        params = sample_params(op, level, rng)
        kw: dict[str, object] = {}
        variety = None
        if op == "haze":
            if depth is None:
                depth = pair_depth(images, task, depth_provider or get_depth_provider(cfg.depth))
            kw["depth"] = depth
            if cfg.haze_variety > 0 and rng.random() < cfg.haze_variety:
                variety = HazeVariety.draw(rng)
                kw["depth"], kw["beta_field"] = variety.maps(depth)
                kw["tint"] = variety.tint
        per_image = {}
        for i in targets:
            p = dict(params, seed=params["seed"] + i) if op in INDEPENDENT_NOISE else params
            out[i], per_image[i] = apply_op(op, out[i], rng, p, **kw)
        record = {"op": op, "level": level, "images": list(targets), "params": per_image[targets[0]]}
        if variety is not None:
            record["variety"] = variety.as_dict()
        if op in INDEPENDENT_NOISE and len(targets) > 1:
            record["seed_rule"] = "image i uses seed + i"
        records.append(record)
        # MMAIF Sect. 3.1: the IR image of a weather-degraded pair gets a mild blur instead (below 1, only
        # sometimes; at 1 no number is drawn, so the random stream is the one it always was).
        if (
            task == "vif"
            and op in WEATHER_OPS
            and (cfg.ir_weather_blur >= 1 or rng.random() < cfg.ir_weather_blur)
        ):
            out[0], p = apply_op("gaussian_blur", out[0], rng, 1)
            records.append({"op": "gaussian_blur", "level": 1, "images": [0], "params": p, "ir_for": op})
    return out, records
