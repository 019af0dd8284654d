"""Training and held-out images for the tokenizer, and random crops from them.

Held-out rule (fixed here, in one place): the validation pairs that ``shared/data/splits.json`` names
(no model of this project trains on them) are held out, both of their images; in a data folder without a
splits.json, the pairs are sorted by name and every 5th pair (index 4, 9, 14, ...) is. Of scikit-image's
bundled colour images, ``HELDOUT_SKIMAGE`` are held out. Held-out images are never read by training;
``bench/tokenizer.py`` scores centre 256x256 crops of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from allfuse.data.sources import validation_pairs
from allfuse.io import read_image, scan_pairs

DATASETS = ("ivif/TNO", "ivif/RoadScene", "ivif/MSRS", "mef/MEFB", "mff/Lytro", "mff/MFI-WHU")
GRAY_DATASETS = ("ivif/TNO",)  # both images gray; only used as gray training material
HOLDOUT_EVERY = 5
# scikit-image files (inside skimage/data, no download) held out from training, used by the benchmark
HELDOUT_SKIMAGE = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png")
EXCLUDED_SKIMAGE = ("motorcycle_right.png",)  # near-duplicate of a held-out image
TRAIN_SKIMAGE = (
    "hubble_deep_field.jpg", "ihc.png", "retina.jpg", "color.png",  # colour
    "camera.png", "brick.png", "grass.png", "gravel.png", "moon.png", "coins.png", "page.png",  # gray
    "text.png", "clock_motion.png",
)  # fmt: skip


@dataclass(frozen=True)
class ImageEntry:
    """One image file, whether it is colour, and which pair/dataset it came from."""

    path: Path
    colour: bool
    dataset: str


def skimage_dir() -> Path:
    """Folder of the images bundled inside the installed scikit-image package."""
    import skimage.data

    return Path(skimage.data.__file__).parent


def split_dataset(root: Path, dataset: str) -> tuple[list[ImageEntry], list[ImageEntry]]:
    """(train, heldout) images of one dataset folder. Held out: the validation pairs a splits.json names
    (allfuse.data.sources.validation_pairs), which no model trains on; without one, every 5th pair."""
    folder = root / dataset
    if not folder.is_dir():
        return [], []
    pairs = sorted(scan_pairs(folder).pairs, key=lambda p: p.name)
    validation = validation_pairs(root)
    train, held = [], []
    for i, pair in enumerate(pairs):
        if validation:
            out = held if (pair.dataset, pair.name) in validation else train
        else:
            out = held if i % HOLDOUT_EVERY == HOLDOUT_EVERY - 1 else train
        for src, role in zip(pair.sources, _roles(dataset), strict=True):
            colour = dataset not in GRAY_DATASETS and role != "ir"
            out.append(ImageEntry(Path(src), colour, dataset))
    return train, held


def _roles(dataset: str) -> tuple[str, str]:
    """Names of the two sources of a pair in the order scan_pairs returns them."""
    return ("ir", "vi") if dataset.startswith("ivif") else ("a", "b")


def training_images(data_root: Path | None) -> list[ImageEntry]:
    """All training images: the non-held-out pairs of shared/data plus scikit-image's training files."""
    out: list[ImageEntry] = []
    if data_root is not None:
        for ds in DATASETS:
            out += split_dataset(data_root, ds)[0]
    sk = skimage_dir()
    for name in TRAIN_SKIMAGE:
        if (sk / name).is_file():
            out.append(ImageEntry(sk / name, read_image(sk / name).ndim == 3, "skimage"))
    return out


def heldout_images(data_root: Path | None) -> list[ImageEntry]:
    """Held-out colour images (benchmark material): the held-out pairs' colour images + HELDOUT_SKIMAGE."""
    out: list[ImageEntry] = []
    if data_root is not None:
        for ds in DATASETS:
            out += [e for e in split_dataset(data_root, ds)[1] if e.colour]
    sk = skimage_dir()
    out += [ImageEntry(sk / n, True, "skimage") for n in HELDOUT_SKIMAGE if (sk / n).is_file()]
    return out


def centre_crop(x: np.ndarray, size: int) -> np.ndarray:
    """Centre crop (H, W, C) to at most size x size."""
    h, w = x.shape[:2]
    t, l = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return x[t : t + size, l : l + size]


def heldout_crops(data_root: Path | None, size: int = 256) -> tuple[list[str], torch.Tensor]:
    """Names and centre crops (N, 3, size, size) of the held-out colour images that are large enough."""
    names, crops = [], []
    for e in heldout_images(data_root):
        x = read_image(e.path, channels="rgb")
        if min(x.shape[:2]) < size:
            continue
        names.append(f"{e.dataset}/{e.path.parent.name}/{e.path.name}")
        crops.append(torch.from_numpy(np.ascontiguousarray(centre_crop(x, size))).permute(2, 0, 1))
    return names, torch.stack(crops)


class CropSampler:
    """Random augmented crops from images held in RAM as uint8 (flips, 90-degree turns, downscaling)."""

    def __init__(self, entries: list[ImageEntry], crop: int, gray_fraction: float, seed: int):
        self.crop = crop
        self.gray_fraction = gray_fraction
        self.colour = [_to_uint8(read_image(e.path, channels="rgb")) for e in entries if e.colour]
        self.gray = [_to_uint8(read_image(e.path, channels="rgb")) for e in entries if not e.colour]
        self.rng = np.random.default_rng(seed)

    def state(self) -> dict:
        """The generator state, for exact resume."""
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        """Restore the generator state saved by `state`."""
        self.rng.bit_generator.state = state

    def batch(self, n: int) -> torch.Tensor:
        """(n, 3, crop, crop) float32 in [0, 1]."""
        return torch.from_numpy(np.stack([self._one() for _ in range(n)])).permute(0, 3, 1, 2).float() / 255

    def _one(self) -> np.ndarray:
        import cv2

        r = self.rng
        pool = self.gray if (self.gray and r.random() < self.gray_fraction) else self.colour
        x = pool[r.integers(len(pool))]
        h, w = x.shape[:2]
        # random scale in [s_min, 1]: more variety of detail frequencies than the native resolution alone
        s_min = max(self.crop / min(h, w), 0.5)
        s = r.uniform(min(s_min, 1.0), 1.0)
        side = min(round(self.crop / s), h, w)
        t, l = r.integers(h - side + 1), r.integers(w - side + 1)
        x = x[t : t + side, l : l + side]
        if side != self.crop:
            x = cv2.resize(x, (self.crop, self.crop), interpolation=cv2.INTER_AREA)
        if r.random() < 0.5:
            x = x[:, ::-1]
        x = np.rot90(x, r.integers(4))
        return np.ascontiguousarray(x)


def _to_uint8(x: np.ndarray) -> np.ndarray:
    """float [0, 1] -> uint8 (keeps the in-RAM training set small)."""
    return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)
