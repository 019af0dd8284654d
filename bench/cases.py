"""What bench/quality.py fuses: the held-out validation pairs (clean and degraded) and identity photos.

Validation pairs are the ones `splits.json` lists under "val" (never trained on), area-downscaled to a
capped long side; a case's degradation comes from bench/degrade.py (not the training generator), seeded
by (pair name, family, strength). The fusion target is the task's classical teacher on the CLEAN pair.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from degrade import Strength, degrade_pair, seed_for
from skimage import data as skdata

from allfuse import baselines
from allfuse.io import find_pairs
from allfuse.model_folder import load_deblur, resolve_model_folder
from allfuse.tasks import CLASSICAL_DEFAULT

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TASKS = ("vif", "mef", "mff")
# Well-exposed, sharp scikit-image photographs for the identity check (bundled, nothing is downloaded).
IDENTITY_PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "immunohistochemistry",
    "camera",
    "stereo_motorcycle",
)
# More of them for `--identity-set wide` (an INFO line, not the acceptance check): the bundled gray
# photographs (textures, a scanned page, a low-contrast moon, coins) and a retina's fundus photograph.
# Left out: `cat` (the `chelsea` photo again), `clock` (a blurred capture), `cell` (a fluorescence
# micrograph), `colorwheel` and `logo` (graphics), `hubble_deep_field` (a dark sky).
WIDE_PHOTOS = ("brick", "grass", "gravel", "moon", "page", "text", "coins", "retina")


@dataclass(frozen=True)
class CleanPair:
    """One validation pair at bench size, with the teacher fusion of its clean sources."""

    name: str  # "<dataset>/<stem>"
    task: str
    images: list[np.ndarray]
    target: np.ndarray


@dataclass(frozen=True)
class Case:
    """A clean pair and one degraded version of it."""

    pair: CleanPair
    degraded: list[np.ndarray]
    steps: list[str]  # e.g. ["haze:strong", "noise:mild"]


def shrink(x: np.ndarray, max_side: int) -> np.ndarray:
    """Area-downscale so the long side is at most max_side (unchanged when it already is)."""
    h, w = x.shape[:2]
    s = max_side / max(h, w)
    if s >= 1:
        return x
    return cv2.resize(x, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)


def validation_pairs(data: Path, task: str, limit: int, max_side: int) -> list[CleanPair]:
    """The first `limit` (0 = all) validation pairs of a task, sorted by name, with teacher targets."""
    split = json.loads((data / "splits.json").read_text())["val"]
    out = []
    for dataset, names in sorted(split.items()):
        folders = sorted(data.glob(f"*/{dataset}"))
        if not folders:
            raise FileNotFoundError(f"{data}: no folder for validation dataset {dataset!r}")
        for p in find_pairs(folders[0]):
            if p.task == task and p.name in names:
                out.append((f"{dataset}/{p.name}", p))
    out.sort(key=lambda t: t[0])
    pairs = []
    for name, p in out[: limit or None]:
        images = [shrink(x, max_side) for x in p.load()[0]]
        pairs.append(CleanPair(name, task, images, baselines.fuse(CLASSICAL_DEFAULT[task], images, task)))
    return pairs


def degrade_case(pair: CleanPair, family: str, strength: Strength | None, generator=None) -> Case:
    """Degrade a clean pair with one family (or 'mix'), seeded by (name, family, strength); `generator` is
    a module with degrade.py's `degrade_pair` (None: bench/degrade.py; bench/degrade_alb.py for the
    cross-check)."""
    seed = seed_for(pair.name, family, strength or "random")
    degraded, steps = (generator.degrade_pair if generator else degrade_pair)(
        pair.images, pair.task, family, strength, seed
    )
    return Case(pair, degraded, steps)


def sharpness_map(x: np.ndarray, window: int) -> np.ndarray:
    """Local Laplacian energy (mean of squared Laplacian over window x window) of the luminance."""
    lum = x if x.ndim == 2 else cv2.cvtColor(x, cv2.COLOR_RGB2GRAY)
    lap = cv2.Laplacian(lum.astype(np.float32), cv2.CV_32F, ksize=3)
    return cv2.boxFilter(lap * lap, -1, (window, window), borderType=cv2.BORDER_REFLECT)


def in_focus_crop(images: list[np.ndarray], size: int) -> np.ndarray:
    """The size x size crop, of whichever source, where it is sharpest relative to the other source."""
    size = min(size, *images[0].shape[:2])
    maps = [sharpness_map(x, size) for x in images]
    h, w = images[0].shape[:2]
    r = size // 2
    best = (-np.inf, None)
    for i, m in enumerate(maps):
        other = np.maximum.reduce([maps[j] for j in range(len(maps)) if j != i])
        ratio = np.log((m + 1e-6) / (other + 1e-6))[r : h - size + r + 1, r : w - size + r + 1]
        strong = m[r : h - size + r + 1, r : w - size + r + 1] >= np.median(m)  # detailed, not flat
        score = np.where(strong, ratio, -np.inf)
        y, x = np.unravel_index(np.argmax(score), score.shape)
        if score[y, x] > best[0]:
            best = (score[y, x], images[i][y : y + size, x : x + size])
    return np.ascontiguousarray(best[1])


def identity_photos(
    data: Path, max_side: int, mff_crops: int = 3, crop: int = 256, wide: bool = False
) -> list[tuple[str, np.ndarray]]:
    """scikit-image photographs plus in-focus crops of the first MFF validation pairs, float32 [0, 1]; with
    `wide`, also WIDE_PHOTOS and the in-focus crops of every MFF validation pair."""
    photos = []
    mff_crops = 0 if wide else mff_crops
    for name in IDENTITY_PHOTOS + (WIDE_PHOTOS if wide else ()):
        x = getattr(skdata, name)()
        x = x[0] if isinstance(x, tuple) else x  # stereo_motorcycle: (left, right, disparity)
        photos.append((name, shrink(x.astype(np.float32) / 255.0, max_side)))
    for p in validation_pairs(data, "mff", mff_crops, max_side):
        photos.append((f"{p.name} in-focus crop", in_focus_crop(p.images, crop)))
    return photos


def night_image(data: Path, max_side: int) -> tuple[str, np.ndarray]:
    """The under-exposed image of MEFB's 'Night' validation pair: a dark scene to fuse with itself."""
    for p in find_pairs(data / "mef" / "MEFB"):
        if p.name == "Night":
            return "MEFB/Night under", shrink(p.load()[0][0], max_side)
    raise FileNotFoundError(f"{data}/mef/MEFB: no 'Night' pair")


def deblur_stage(model: str):
    """The deblurring stage's settings (allfuse.deblur.DeblurConfig) of a model folder; exits when the
    folder has none (no deblur.json)."""
    cfg = load_deblur(resolve_model_folder(model))
    if cfg is None:
        raise SystemExit(f"{model} has no deblurring stage (deblur.json)")
    return cfg
