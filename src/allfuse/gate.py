"""Clean-input gate: a pair that measures clean is fused by the teacher's classical rule, not the latent path.

Beyond the papers. The models learn to imitate a classical fusion of CLEAN pairs (the teacher,
`allfuse.tasks.CLASSICAL_DEFAULT`: guided filtering for infrared + visible, a Laplacian pyramid for
exposures, a focus map for focus stacks) from degraded inputs. On inputs that are already clean the
imitation can only lose: the f = 8 latent path drops fine edges that the refiner recovers only in part,
and on the validation bench's clean pairs allfuse-reg scored 0.04 to 0.05 Qabf below the teacher's own
fusion. So after the deblurring stage and the input corrector, the pair's degradation is measured and, when
it measures clean, the teacher's rule fuses it; otherwise the model does.

"Clean" is learned, not hand-set: per task, a logistic regression over whole-image statistics of the pair
(noise, edge width, JPEG blockiness, dark channel, exposure, contrast, stripes, impulses, percentiles:
`FEATURES`, each statistic's min and max over the inputs) gives P(the pair is clean). It is fitted on
TRAINING pairs, clean or degraded by the training generator (`allfuse.data`), and its threshold is the one
whose choices scored best against the clean sources in cross-validation (`allfuse.train.gate`). The
weights, the feature standardization and the thresholds live in the model folder's `gate.json`.

Below the threshold the gate can blend: a second regression, of P(the rule scores better), sets the rule's
weight in a mix of the two fusions (`TaskGate.rule_weight`; fitted and chosen the same way, step 4 of
allfuse.train.gate). A mix hedges where the detector is unsure, and often scores above both fusions.

A gate is a detector trained on one generator's degradations: a degradation that measures clean (a mild
one, or one unlike the training generator's) goes to the rule, which fuses it as it is.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from allfuse.color import is_color, to_gray
from allfuse.deblur import edge_width
from allfuse.types import TASKS, Image

# Per-input statistics; a pair's features are each statistic's min and max over its inputs (order-free).
IMAGE_FEATURES = (
    "noise",  # robust noise std of the luminance (wavelet MAD, Donoho), x 255
    "width",  # median edge width (allfuse.deblur.edge_width), px
    "block",  # JPEG blockiness: log gradient ratio at the strongest 8-px column/row phase
    "dark",  # mean dark channel (min over RGB, 15 px min filter)
    "mean",  # mean luminance
    "low",  # share of pixels below 0.03
    "high",  # share of pixels above 0.97
    "contrast",  # std of the luminance
    "stripes",  # log std of the row and column profile detail, relative to the image's
    "impulse",  # share of pixels 0.1 brighter than their 5 x 5 median (rain streaks, snow flakes)
    "p1",  # 1st percentile of the luminance: over-exposure lifts the blacks
    "p99",  # 99th percentile: an under-exposed capture has no highlights, a dark scene usually has some
)
FEATURES = tuple(f"{k}_{m}" for k in IMAGE_FEATURES for m in ("min", "max"))
NO_WIDTH = 0.85  # edge width of an image with too few edges to measure: a sharp capture's
GATE_SIDE = 512  # px: larger inputs are measured area-downscaled to this long side (the fitted samples')


def noise_std(gray: np.ndarray) -> float:
    """Noise std (in [0, 1] units): Donoho & Johnstone's (1994) median absolute deviation of the finest
    diagonal wavelet detail / 0.6745, on Haar coefficients computed directly (skimage.restoration.
    estimate_sigma applies the same estimator to a full db2 transform); robust to edges and texture."""
    g = gray[: gray.shape[0] // 2 * 2, : gray.shape[1] // 2 * 2]
    hh = (g[0::2, 0::2] - g[0::2, 1::2] - g[1::2, 0::2] + g[1::2, 1::2]) / 2.0
    return float(np.median(np.abs(hh)) / 0.6745)


def blockiness(gray: np.ndarray) -> float:
    """log(mean |step| across the strongest 8-px phase / mean |step| elsewhere), max over columns and rows;
    about 0 without block coding, whatever the grid's offset."""
    out = 0.0
    for axis in (0, 1):
        d = np.abs(np.diff(gray, axis=axis)).mean(axis=1 - axis)  # mean step between neighbour lines
        n = d.size // 8 * 8
        if n < 16:
            continue
        phase = d[:n].reshape(-1, 8).mean(axis=0)
        k = int(np.argmax(phase))
        rest = (phase.sum() - phase[k]) / 7
        out = max(out, math.log((phase[k] + 1e-4) / (rest + 1e-4)))
    return out


def stripe_level(gray: np.ndarray) -> float:
    """log of the std of the column- and row-mean profiles' detail (minus a 15-px smoothing) over the
    luminance's own fine detail: fixed-pattern stripes raise the first, not the second."""
    fine = float(np.std(gray - cv2.blur(gray, (3, 3)))) + 1e-4
    out = []
    for axis in (0, 1):
        p = gray.mean(axis=axis).astype(np.float32)
        smooth = cv2.blur(p.reshape(1, -1), (15, 1), borderType=cv2.BORDER_REFLECT).ravel()
        out.append(float(np.std(p - smooth)))
    return math.log(max(out) / fine + 1e-4)


def image_features(image: Image) -> np.ndarray:
    """The IMAGE_FEATURES of one image in [0, 1], (H, W) or (H, W, 3)."""
    x = np.asarray(image, np.float32)
    g = np.ascontiguousarray(to_gray(x), dtype=np.float32)
    darkest = cv2.min(cv2.min(x[..., 0], x[..., 1]), x[..., 2]) if is_color(x) else g  # 30x x.min(axis=2)
    dark = cv2.erode(darkest, np.ones((15, 15), np.uint8))
    width = edge_width(g)
    med = cv2.medianBlur(g, 5)
    return np.array(
        [
            noise_std(g) * 255.0,
            NO_WIDTH if width is None else width,
            blockiness(g),
            float(dark.mean()),
            float(g.mean()),
            float((g < 0.03).mean()),
            float((g > 0.97).mean()),
            float(g.std()),
            stripe_level(g),
            float((g - med > 0.1).mean()),
            *np.percentile(g, (1, 99)).tolist(),
        ],
        dtype=np.float64,
    )


def pair_features(images: Sequence[Image]) -> np.ndarray:
    """FEATURES of a set of inputs: each image statistic's min and max over them.
    Inputs with a long side above GATE_SIDE are measured area-downscaled to it: the gate is fitted at that
    size, and noise and edge widths in pixels depend on the scale."""
    per = np.stack([image_features(shrink(x)) for x in images])
    return np.stack([per.min(axis=0), per.max(axis=0)], axis=1).ravel()


def pair_noise(images: Sequence[Image]) -> float:
    """The lower noise std of a set of inputs, in 1/255 steps, measured as the gate measures it (each
    input's luminance at a long side of at most GATE_SIDE): a noisy capture makes every input noisy, while
    fine texture raises one image's estimate alone."""
    return min(noise_std(to_gray(shrink(x))) for x in images) * 255.0


def shrink(image: Image) -> Image:
    """An image area-downscaled to long side GATE_SIDE (unchanged when it is not larger)."""
    x = np.asarray(image, np.float32)
    h, w = x.shape[:2]
    f = GATE_SIDE / max(h, w)
    if f >= 1:
        return x
    return cv2.resize(x, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)


def rule_fusion(
    images: Sequence[Image], task: str, tile_pixels: int = 0, noisy: tuple[str, float] = ("", 0.0)
) -> np.ndarray:
    """The teacher's classical fusion (allfuse.tasks.CLASSICAL_DEFAULT) of 2+ images, (H, W, 3) float32;
    `noisy` = (rule, r): with r > 0, that classical rule's fusion mixed in by r (allfuse.denoise, "Rule":
    a strongly noisy pair). On images of more than `tile_pixels` pixels (0 = never) tile by tile, blended
    as the refiner's tiles (allfuse.tiled), so memory stays bounded."""
    import torch

    from allfuse.models.refine import classical_source
    from allfuse.tiled import as_batch, refine_tiled

    rule, weight = noisy

    def fused(ims: list[Image]) -> np.ndarray:
        out = classical_source(ims, task)
        if weight <= 0.0:
            return out
        from allfuse import baselines

        other = np.asarray(baselines.fuse(rule, ims, task), np.float32)
        other = np.repeat(other[..., None], 3, axis=2) if other.ndim == 2 else other
        return other if weight >= 1.0 else out + np.float32(weight) * (other - out)

    h, w = np.asarray(images[0]).shape[:2]
    if not tile_pixels or h * w <= tile_pixels:
        return fused(list(images))

    def tile(y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
        return as_batch(fused([im[y0:y1, x0:x1] for im in images]), torch.device("cpu"))

    return refine_tiled(None, tile, images, tile_pixels, torch.device("cpu"))


@dataclass(frozen=True)
class TaskGate:
    """One task's fitted gate: P(clean) = sigmoid(w . (f - mean) / scale + bias); the rule fuses from
    `threshold` on. Below it, an optional blend: P(the rule scores better) = sigmoid(blend_weights . (f -
    mean) / scale + blend_bias) sets the rule's weight in a mix of the two fusions, rising linearly from 0
    at P = blend_from to blend_top at P = 1 (blend_top = 0, the default: no blend)."""

    weights: tuple[float, ...]
    bias: float
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    threshold: float = 0.5
    blend_weights: tuple[float, ...] = ()
    blend_bias: float = 0.0
    blend_from: float = 0.5
    blend_top: float = 0.0
    # True: both regressions also see each feature's square after standardization (z^2, z = (f - mean) /
    # scale over the first len(FEATURES) entries), so P can rise at both ends of a feature's range; the
    # vectors then hold 2 * len(FEATURES) entries (the features, then their squares)
    squares: bool = False

    def __post_init__(self) -> None:
        n = len(FEATURES) * (2 if self.squares else 1)
        ok = len(self.weights) == len(self.mean) == len(self.scale) == n and all(s > 0 for s in self.scale)
        finite = all(map(math.isfinite, (*self.weights, self.bias, *self.blend_weights, self.blend_bias)))
        if not ok or not 0 < self.threshold < 1 or not finite:
            raise ValueError(
                f"needs {n} finite weights (one per feature: {', '.join(FEATURES)}; and one per square with "
                "squares), as many means and positive scales, and 0 < threshold < 1"
            )
        blend_ok = len(self.blend_weights) in (0, n) and 0 <= self.blend_from < 1 and 0 <= self.blend_top <= 1
        if not blend_ok or (self.blend_top > 0 and not self.blend_weights):
            raise ValueError(
                f"a blend needs {n} finite blend_weights (or none, with blend_top 0), 0 <= blend_from < 1 "
                "and 0 <= blend_top <= 1"
            )

    def standardized(self, feats: np.ndarray) -> np.ndarray:
        """One pair's features (len(FEATURES) of them), expanded by their squares if the gate has them and
        standardized as in the fit."""
        f = np.asarray(feats, np.float64)
        if self.squares:
            n = len(FEATURES)
            f = np.r_[f, ((f - np.asarray(self.mean[:n])) / np.asarray(self.scale[:n])) ** 2]
        return (f - np.asarray(self.mean)) / np.asarray(self.scale)

    def probability(self, feats: np.ndarray) -> float:
        """P(the pair is clean) for one pair's features."""
        return sigmoid(float(np.dot(self.weights, self.standardized(feats))) + self.bias)

    def rule_weight(self, feats: np.ndarray) -> tuple[float, float]:
        """P(clean) and the rule's weight in the output for one pair's features: 1 from the threshold on
        (the rule alone), else the blend's weight (0: the model alone)."""
        p = self.probability(feats)
        if p >= self.threshold:
            return p, 1.0
        if self.blend_top <= 0:
            return p, 0.0
        q = sigmoid(float(np.dot(self.blend_weights, self.standardized(feats))) + self.blend_bias)
        return p, self.blend_top * min(1.0, max(0.0, (q - self.blend_from) / (1.0 - self.blend_from)))


def sigmoid(z: float) -> float:
    """The logistic function, safe for any finite z."""
    return float(1.0 / (1.0 + math.exp(-float(np.clip(z, -50, 50)))))


@dataclass(frozen=True)
class GateConfig:
    """A model folder's gate (gate.json): one TaskGate per task it gates; other tasks always use the model."""

    tasks: dict[str, TaskGate] = field(default_factory=dict)
    features: tuple[str, ...] = FEATURES

    def __post_init__(self) -> None:
        if tuple(self.features) != FEATURES:
            raise ValueError(
                f"bad gate config: fitted on features {list(self.features)}, this version "
                f"measures {list(FEATURES)}"
            )
        if not set(self.tasks) <= set(TASKS):
            raise ValueError(f"bad gate config: tasks must be among {', '.join(TASKS)}: {sorted(self.tasks)}")

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {
            "features": list(self.features),
            "tasks": {
                t: {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(g).items()}
                for t, g in self.tasks.items()
            },
        }

    @classmethod
    def from_dict(cls, values: dict) -> GateConfig:
        """Inverse of to_dict; unknown keys are a TypeError naming them."""
        v = dict(values)
        features = tuple(v.pop("features", FEATURES))
        if features != FEATURES:  # before the per-task vectors, whose lengths follow from it
            cls(features=features)
        tasks = {}
        for t, g in dict(v.pop("tasks", {})).items():
            g = dict(g)
            for k in ("weights", "mean", "scale", "blend_weights"):
                if k in g:
                    g[k] = tuple(g[k])
            try:
                tasks[t] = TaskGate(**g)
            except (TypeError, ValueError) as e:
                raise ValueError(f"task {t}: {e}") from None
        return cls(tasks=tasks, features=features, **v)
