"""Depth providers for depth-based haze (MMAIF Sect. 3.1 uses Depth-Anything; weights are optional here).

A provider maps an image to relative depth (H, W) float32 in [0, 1], 0 = nearest, 1 = farthest.

`HeuristicDepth` (the offline default) combines three monocular cues, each normalised by its 2nd/98th
percentiles, as ``d = v * (w0 + w_dark * dark + w_texture * (1 - texture))``, then smooths ``d``
edge-aware along the image (guided filter) so depth follows object outlines:
  * v, vertical position prior: in ground-plane scenes, rows higher in the frame are farther;
  * dark, the dark channel (He et al. 2009): per-pixel channel minimum, min-filtered. Far scene points and
    sky carry more airlight, so their darkest channel is brighter;
  * texture: local gradient energy at a coarse scale; distant surfaces show less resolvable texture (and
    are often out of focus), so low texture reads as far; textured foreground objects read as near.
The appearance cues modulate the vertical prior instead of adding to it: a bright, flat floor at the
bottom of the frame stays near (an additive mix called it far). It gives a plausible ordering (ground
near, horizon/sky far), not metric depth; `bench/synth.py` reports its Spearman correlation with real
stereo disparity (skimage `stereo_motorcycle`): vertical prior alone 0.66, this combination 0.71.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
from scipy.stats import spearmanr

from allfuse.baselines.guided import guided_filter
from allfuse.color import to_gray
from allfuse.types import Image

WORK_SIDE = 256  # cues are computed with the long side at most this many pixels


class DepthProvider(Protocol):
    """Anything that maps an image to relative depth in [0, 1] (1 = far)."""

    name: str

    def __call__(self, image: Image) -> np.ndarray: ...


def robust_unit(x: np.ndarray) -> np.ndarray:
    """Rescale so the 2nd..98th percentiles span [0, 1], clipped."""
    lo, hi = np.percentile(x, (2.0, 98.0))
    return np.clip((x - lo) / max(float(hi - lo), 1e-6), 0.0, 1.0)


@dataclass(frozen=True)
class HeuristicDepth:
    """Offline monocular depth from vertical position, dark channel and texture cues (see module doc)."""

    w0: float = 0.5
    w_dark: float = 0.25
    w_texture: float = 0.25
    name: str = "heuristic"

    def __call__(self, image: Image) -> np.ndarray:
        """Relative depth (H, W) float32 in [0, 1]."""
        x = np.asarray(image, np.float32)
        h, w = x.shape[:2]
        s = min(1.0, WORK_SIDE / max(h, w))
        small = cv2.resize(x, (max(8, round(w * s)), max(8, round(h * s))), interpolation=cv2.INTER_AREA)
        d = self.cues(small)
        return cv2.resize(d, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)

    def cues(self, x: np.ndarray) -> np.ndarray:
        """Combine the three cues at working resolution and smooth along the image."""
        h, w = x.shape[:2]
        side = min(h, w)
        gray = to_gray(x)
        vertical = np.broadcast_to(np.linspace(1.0, 0.0, h, dtype=np.float32)[:, None], (h, w))
        mins = x.min(axis=2) if x.ndim == 3 else x
        k = max(3, side // 16) | 1
        dark = cv2.erode(mins, np.ones((k, k), np.uint8))
        gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
        texture = cv2.GaussianBlur(np.sqrt(gx * gx + gy * gy), (0, 0), side / 16.0)
        appearance = self.w_dark * robust_unit(dark) + self.w_texture * (
            1.0 - robust_unit(np.log1p(20.0 * texture))
        )
        d = vertical * (self.w0 + appearance)
        d = guided_filter(gray, cv2.GaussianBlur(d, (0, 0), side / 32.0), max(2, side // 16), 1e-2)
        return robust_unit(d).astype(np.float32)


class DepthAnythingDepth:
    """Depth-Anything through `transformers`, from a local model folder (never downloads)."""

    def __init__(self, folder: str | Path) -> None:
        """Load the model lazily from `folder` (a transformers depth-estimation checkpoint)."""
        self.folder = Path(folder)
        if not (self.folder / "config.json").is_file():
            raise FileNotFoundError(f"{self.folder}: no config.json (expected a local Depth-Anything folder)")
        self.name = f"depth-anything:{self.folder.name}"
        self._model = None
        self._processor = None

    def _load(self) -> None:
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation  # optional dependency

        self._processor = AutoImageProcessor.from_pretrained(self.folder, local_files_only=True)
        self._model = AutoModelForDepthEstimation.from_pretrained(self.folder, local_files_only=True).eval()

    def __call__(self, image: Image) -> np.ndarray:
        """Relative depth (H, W) in [0, 1]; Depth-Anything predicts inverse depth, so it is flipped."""
        import torch

        if self._model is None:
            self._load()
        x = np.asarray(image, np.float32)
        rgb = np.repeat(x[..., None], 3, axis=2) if x.ndim == 2 else x
        inputs = self._processor(images=(rgb * 255).astype(np.uint8), return_tensors="pt")
        with torch.no_grad():
            pred = self._model(**inputs).predicted_depth  # (1, h, w) relative inverse depth
        inv = cv2.resize(pred[0].float().numpy(), (x.shape[1], x.shape[0]), interpolation=cv2.INTER_LINEAR)
        return (1.0 - robust_unit(inv)).astype(np.float32)


def get_depth_provider(spec: str | None = None) -> DepthProvider:
    """'heuristic' (default) or 'depth-anything:/local/folder'."""
    if spec in (None, "", "heuristic"):
        return HeuristicDepth()
    if spec.startswith("depth-anything:"):
        return DepthAnythingDepth(spec.split(":", 1)[1])
    raise ValueError(f"unknown depth provider {spec!r}; use 'heuristic' or 'depth-anything:/path/to/folder'")


def disparity_spearman(provider: DepthProvider, step: int = 4) -> float:
    """Spearman correlation of provider depth with true depth ordering (-disparity) on stereo_motorcycle."""
    from skimage.data import stereo_motorcycle

    left, _, disp = stereo_motorcycle()
    depth = provider(left.astype(np.float32) / 255.0)
    valid = np.isfinite(disp) & (disp > 0)
    sub = np.zeros_like(valid)
    sub[::step, ::step] = True
    m = valid & sub
    return float(spearmanr(depth[m], -disp[m])[0])
