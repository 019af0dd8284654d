"""Weather degradations (MMAIF Sect. 3.1): rain streaks, depth-based haze, snow. Same contract as
`degradations`: ``op(image, rng, spec) -> (image, params_used)``, pure, replayable from params.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from allfuse.data.depth import HeuristicDepth
from allfuse.data.kernels import finish, line_kernel
from allfuse.data.severity import Params, Spec, resolve, resolve_seeded
from allfuse.types import Image


def screen(x: np.ndarray, layer: np.ndarray, alpha: float) -> np.ndarray:
    """Screen-blend a [0, 1] light layer (H, W) onto an image: 1 - (1 - x)(1 - alpha * layer)."""
    lay = alpha * np.clip(layer, 0.0, 1.0)
    if x.ndim == 3:
        lay = lay[..., None]
    return 1.0 - (1.0 - x) * (1.0 - lay)


def streak_layer(
    shape: tuple[int, int], gen: np.random.Generator, density: float, length: float, angle: float
) -> np.ndarray:
    """Rain streaks: sparse random seeds smeared by a line kernel (motion blur), peak ~1."""
    h, w = shape
    n = max(1, round(density * h * w))
    seeds = np.zeros((h, w), np.float32)
    seeds[gen.integers(0, h, n), gen.integers(0, w, n)] = gen.uniform(0.4, 1.0, n)
    k = line_kernel(length, 90.0 - angle)  # angle is measured from the vertical
    streaks = cv2.filter2D(seeds, -1, k / k.max(), borderType=cv2.BORDER_CONSTANT)
    streaks = cv2.GaussianBlur(streaks, (0, 0), 0.6)  # a streak is ~1.5 px wide, not aliased
    return np.clip(streaks, 0.0, 1.0)


def rain(image: Image, rng: np.random.Generator, spec: Spec = 2) -> tuple[Image, Params]:
    """Rain: a near layer of long streaks and a far layer of finer ones, screen-blended, slight veil."""
    p, gen = resolve_seeded("rain", spec, rng)
    x = np.asarray(image, np.float32)
    h, w = x.shape[:2]
    length = max(3.0, p["length"] * min(h, w))
    near = streak_layer((h, w), gen, p["density"] * 0.4, length, p["angle"])
    far = streak_layer((h, w), gen, p["density"], length * 0.5, p["angle"]) * 0.6
    veiled = x * (1.0 - 0.1 * p["alpha"]) + 0.1 * p["alpha"] * 0.8  # rain scatters a little light
    return finish(screen(veiled, np.maximum(near, far), p["alpha"])), p


def haze(
    image: Image,
    rng: np.random.Generator,
    spec: Spec = 2,
    depth: np.ndarray | None = None,
    tint: Sequence[float] | None = None,
    beta_field: np.ndarray | None = None,
) -> tuple[Image, Params]:
    """Atmospheric scattering (Koschmieder): I * t + A * (1 - t), t = exp(-beta * d), d relative depth.

    `depth` (H, W) in [0, 1] (1 = far) comes from a depth provider; the offline heuristic is used when
    it is None. Depth is offset to [0.1, 1] so even the nearest point gets a trace of haze. `tint` (3,)
    scales the airlight per colour (a bluish or yellowish sky; a gray image takes its mean), `beta_field`
    (H, W) scales the scattering coefficient per pixel (a patchy veil); `HazeVariety` draws both.
    """
    p = resolve("haze", spec, rng)
    x = np.asarray(image, np.float32)
    d = HeuristicDepth()(x) if depth is None else np.asarray(depth, np.float32)
    if d.shape != x.shape[:2]:
        raise ValueError(f"depth shape {d.shape} does not match image {x.shape[:2]}")
    beta = p["beta"] if beta_field is None else p["beta"] * np.asarray(beta_field, np.float32)
    t = np.exp(-beta * (0.1 + 0.9 * d))
    air: float | np.ndarray = p["airlight"]
    if tint is not None:
        scale = np.asarray(tint, np.float32)
        air = p["airlight"] * (scale if x.ndim == 3 else float(scale.mean()))
    if x.ndim == 3:
        t = t[..., None]
    return finish(x * t + air * (1.0 - t)), p


def smooth_field(shape: tuple[int, int], seed: int, cells: int) -> np.ndarray:
    """A smooth random field (H, W) in [0, 1]: `cells` x `cells` uniform values, bicubically enlarged."""
    h, w = shape
    coarse = np.random.default_rng(seed).uniform(0.0, 1.0, (cells, cells)).astype(np.float32)
    field = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    lo, hi = float(field.min()), float(field.max())
    return (field - lo) / max(hi - lo, 1e-6)


@dataclass(frozen=True)
class HazeVariety:
    """How far a haze departs from the plain Koschmieder model of `haze`: a tinted airlight, a depth mixed
    with a random smooth layout (real depth is not the heuristic's ground plane: a fog bank, a valley, a
    street canyon) and a patchy scattering coefficient. Replays from its fields (`draw`, `maps`)."""

    tint: tuple[float, float, float]  # per-colour airlight scale
    depth_mix: float  # weight of the random layout in the depth, [0, 1)
    patch: float  # beta is scaled by 1 + patch * (2 f - 1), f a smooth field in [0, 1]
    seed: int  # of the two smooth fields
    cells: int  # their coarseness: cells per side

    @classmethod
    def draw(cls, rng: np.random.Generator) -> HazeVariety:
        """Tint up to +-8 % per colour, depth mix up to 0.6, patchiness up to 0.5, 2-6 cells."""
        tint = tuple(float(v) for v in 1.0 + rng.uniform(-0.08, 0.08, 3))
        return cls(
            tint,  # type: ignore[arg-type]
            float(rng.uniform(0.0, 0.6)),
            float(rng.uniform(0.0, 0.5)),
            int(rng.integers(2**31)),
            int(rng.integers(2, 7)),
        )

    def maps(self, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The varied depth (renormalized to [0, 1]) and the beta scale, both (H, W) float32."""
        shape = depth.shape[:2]
        layout = smooth_field(shape, self.seed, self.cells)
        mixed = (1.0 - self.depth_mix) * np.asarray(depth, np.float32) + self.depth_mix * layout
        lo, hi = float(mixed.min()), float(mixed.max())
        mixed = (mixed - lo) / max(hi - lo, 1e-6)
        patchy = smooth_field(shape, self.seed + 1, self.cells)
        return mixed.astype(np.float32), (1.0 + self.patch * (2.0 * patchy - 1.0)).astype(np.float32)

    def as_dict(self) -> dict:
        """JSON-ready form (a sample's record)."""
        return dataclasses.asdict(self)


def flake_layer(
    shape: tuple[int, int], gen: np.random.Generator, count: int, radius: float, streak: float, angle: float
) -> np.ndarray:
    """One depth layer of snow: soft round flakes of ~`radius` px, smeared `streak` px along the fall."""
    h, w = shape
    canvas = np.zeros((h, w), np.uint8)
    xs, ys = gen.integers(0, w, count), gen.integers(0, h, count)
    rs = np.maximum(1, np.round(radius * gen.uniform(0.6, 1.2, count))).astype(int)
    vals = gen.integers(110, 256, count)  # flakes are partly translucent
    for cx, cy, r, v in zip(xs, ys, rs, vals, strict=True):
        cv2.circle(canvas, (int(cx), int(cy)), int(r), int(v), -1, lineType=cv2.LINE_AA)
    layer = cv2.GaussianBlur(canvas.astype(np.float32) / 255.0, (0, 0), max(0.5, radius / 3.0))
    if streak >= 2.0:
        k = line_kernel(streak, 90.0 - angle)
        layer = cv2.filter2D(layer, -1, k / k.max(), borderType=cv2.BORDER_CONSTANT)
    return np.clip(layer, 0.0, 1.0)


def snow(image: Image, rng: np.random.Generator, spec: Spec = 2) -> tuple[Image, Params]:
    """Snow: three layers (few large near flakes, many small far ones), fall motion, whitening veil."""
    p, gen = resolve_seeded("snow", spec, rng)
    x = np.asarray(image, np.float32)
    h, w = x.shape[:2]
    side = min(h, w)
    layers = []
    for scale, share in ((1.0, 0.1), (0.55, 0.3), (0.3, 0.6)):  # near -> far
        count = max(1, round(p["density"] * share * h * w))
        radius = max(0.6, p["size"] * side * scale)
        layers.append(flake_layer((h, w), gen, count, radius, p["motion"] * side * scale, p["angle"]))
    flakes = np.maximum.reduce(layers)
    veiled = x * (1.0 - p["veil"]) + p["veil"] * 0.9
    return finish(screen(veiled, flakes, 0.95)), p
