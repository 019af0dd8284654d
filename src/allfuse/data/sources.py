"""Where clean training material comes from: fusion pairs in folders (with teacher targets), natural images.

Decoded images and teacher fusions are kept in an LRU cache per pool: an epoch revisits each pair many
times with different crops and degradations, and the teacher fuses each clean pair once (MMAIF Sect. 3.1:
the GT is made on the clean pair, then only resized/cropped like the inputs). Pairs larger than
``max_side`` (default 1024 px, long side) are area-downscaled first, and cached pairs are stored as uint8
(a 1024x683 RGB pair with its target takes 6 MB), so a cache of every benchmark pair fits in memory.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

from allfuse.io import IMAGE_SUFFIXES, ImageError, Pair, find_layout, read_image, scan_pairs
from allfuse.types import Image

Teacher = Callable[[Sequence[Image], str], Image]
BUILTIN_IMAGES = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "camera",
    "coins",
    "immunohistochemistry",
    "brick",
)


def classical_teacher(images: Sequence[Image], task: str) -> Image:
    """Fusion target from the best classical method of the task (`allfuse.tasks.CLASSICAL_DEFAULT`)."""
    from allfuse import baselines
    from allfuse.tasks import CLASSICAL_DEFAULT

    return baselines.fuse(CLASSICAL_DEFAULT[task], list(images), task)


def teacher_name(teacher: Teacher) -> str:
    """A readable name of a teacher for metadata."""
    if teacher is classical_teacher:
        return "classical:CLASSICAL_DEFAULT"
    return getattr(teacher, "__name__", type(teacher).__name__)


def shrink(x: Image, max_side: int | None) -> Image:
    """Area-downscale so the long side is at most `max_side` (no-op when it already is, or None)."""
    h, w = x.shape[:2]
    if max_side is None or max(h, w) <= max_side:
        return x
    s = max_side / max(h, w)
    return cv2.resize(x, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def to_u8(x: Image) -> np.ndarray:
    """Float [0, 1] -> uint8 (cache storage; `CropBox.apply` converts back)."""
    return np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


class LRU:
    """A tiny least-recently-used cache keyed by int."""

    def __init__(self, size: int) -> None:
        """Keep at most `size` entries (0 disables caching)."""
        self.size = size
        self.items: OrderedDict[int, object] = OrderedDict()

    def get(self, key: int, make: Callable[[], object]) -> object:
        """Cached value of `key`, built by `make` on a miss."""
        if key in self.items:
            self.items.move_to_end(key)
            return self.items[key]
        value = make()
        if self.size > 0:
            self.items[key] = value
            while len(self.items) > self.size:
                self.items.popitem(last=False)
        return value


def find_pair_folders(root: Path, max_depth: int = 3) -> list[Path]:
    """Every folder at most `max_depth` levels below `root` (itself included) that has a pair layout."""
    found = []
    root = Path(root)
    for dirpath, dirnames, _ in os.walk(root):
        here = Path(dirpath)
        depth = len(here.relative_to(root).parts)
        dirnames.sort()
        if depth >= max_depth:
            dirnames.clear()
        try:
            find_layout(here)
        except ImageError:
            continue
        found.append(here)
        dirnames.clear()  # a pair folder's sub-folders are its sources
    return found


SPLITS_FILE = "splits.json"  # {"val": {DATASET: [pair names]}}: pairs no training may draw


def validation_pairs(root: str | os.PathLike) -> set[tuple[str, str]]:
    """(dataset, pair name) of every validation pair named by the splits.json in `root` or in one of its
    three nearest parents (a dataset folder inside the shared tree is covered too); empty without one."""
    here = Path(root).resolve()
    found = [d / SPLITS_FILE for d in (here, *here.parents[:3]) if (d / SPLITS_FILE).is_file()]
    if not found:
        return set()
    path = found[0]
    try:
        val = json.loads(path.read_text()).get("val", {})
        return {(str(ds), str(name)) for ds, names in val.items() for name in names}
    except (ValueError, AttributeError, TypeError) as e:
        raise ValueError(f"{path}: not a splits file ({{'val': {{DATASET: [names]}}}}): {e}") from None


class PairPool:
    """Fusion pairs found under folders, each with a task; loads clean pairs and teacher targets lazily.

    A root with a `splits.json` (see `validation_pairs`) keeps its validation pairs out of the pool unless
    `include_validation`: models are scored on those scenes, so no training run may see them."""

    def __init__(
        self,
        roots: Sequence[str | os.PathLike],
        teacher: Teacher = classical_teacher,
        cache: int = 1024,  # every shared pair: an evicted pair is decoded and teacher-fused again
        max_side: int | None = 1024,
        include_validation: bool = False,
    ) -> None:
        """Scan every pair folder under `roots`; pairs whose task cannot be inferred keep task None."""
        self.pairs: list[Pair] = []
        self.excluded: list[Pair] = []  # validation pairs left out
        for root in roots:
            skip = set() if include_validation else validation_pairs(root)
            for folder in find_pair_folders(Path(root)):
                for pair in scan_pairs(folder).pairs:
                    held = (pair.dataset, pair.name) in skip
                    (self.excluded if held else self.pairs).append(pair)
        self.teacher = teacher
        self.max_side = max_side
        self._cache = LRU(cache)

    def indices(self, task: str) -> list[int]:
        """Pairs usable for `task` (their own task, or unknown)."""
        return [i for i, p in enumerate(self.pairs) if p.task in (task, None)]

    def tasks(self) -> list[str]:
        """Fusion tasks that have at least one pair."""
        return [t for t in ("vif", "mef", "mff") if self.indices(t)]

    def load(self, i: int, task: str) -> tuple[list[np.ndarray], np.ndarray]:
        """Clean sources and the teacher's fusion of pair i as uint8, long side <= max_side (cached)."""

        def make() -> tuple[list[np.ndarray], np.ndarray]:
            images, _ = self.pairs[i].load()
            images = [shrink(x, self.max_side) for x in images]
            return [to_u8(x) for x in images], to_u8(self.teacher(images, task))

        return self._cache.get(i, make)  # type: ignore[return-value]


class ImagePool:
    """Natural images for M3/control: files under folders, or scikit-image's bundled samples when none."""

    def __init__(
        self, roots: Sequence[str | os.PathLike] = (), cache: int = 64, include_validation: bool = False
    ) -> None:
        """Collect image files recursively (sorted); without roots, use scikit-image sample images. A file
        of a validation pair (`<DATASET>/<source>/<NAME>.ext` named by a splits.json, `validation_pairs`)
        is left out unless `include_validation`, as PairPool does."""
        self.paths: list[Path] = []
        self.excluded: list[Path] = []
        for root in roots:
            skip = set() if include_validation else validation_pairs(root)
            for p in sorted(Path(root).rglob("*")):
                if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file():
                    held = (p.parent.parent.name, p.stem) in skip
                    (self.excluded if held else self.paths).append(p)
        self.names = [str(p) for p in self.paths] or [f"skimage:{n}" for n in BUILTIN_IMAGES]
        self._cache = LRU(cache)

    def __len__(self) -> int:
        """Number of images."""
        return len(self.names)

    def load(self, i: int) -> Image:
        """Image i as float32 [0, 1] (gray or RGB), cached."""

        def make() -> Image:
            if self.paths:
                return read_image(self.paths[i])
            import skimage.data

            x = getattr(skimage.data, BUILTIN_IMAGES[i])()
            return (
                (np.asarray(x, np.float32) / 255.0)[..., :3]
                if x.ndim == 3
                else np.asarray(x, np.float32) / 255.0
            )

        return self._cache.get(i, make)  # type: ignore[return-value]
