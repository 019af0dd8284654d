"""The one list of classical baselines: fusion methods, restorations and "restore then fuse" chains."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Literal

import numpy as np

from allfuse.baselines.exposure import fuse_mertens
from allfuse.baselines.focus import fuse_focus
from allfuse.baselines.gff import fuse_gff
from allfuse.baselines.pyramid import fuse_laplacian
from allfuse.baselines.restoration import deblur_rl, deblur_wiener, dehaze_dcp, denoise_nlm, upsample_sharpen
from allfuse.baselines.simple import fuse_average, fuse_max
from allfuse.baselines.wavelet import fuse_dwt
from allfuse.inputs import check_images
from allfuse.types import TASKS, Image, Task

Kind = Literal["fusion", "restoration", "chain"]
ALL_TASKS: tuple[Task, ...] = TASKS  # type: ignore[assignment]


@dataclass(frozen=True)
class Baseline:
    """A named classical method; fn is (images, task) -> image for fusion/chain, (image) -> image else."""

    name: str
    kind: Kind
    tasks: tuple[Task, ...]  # the tasks it is meant for (informative; fuse() does not enforce it)
    description: str
    fn: Callable[..., Image]


FUSIONS: dict[str, Baseline] = {
    b.name: b
    for b in (
        Baseline("average", "fusion", ALL_TASKS, "pixel-wise mean", fuse_average),
        Baseline("max", "fusion", ("vif",), "pixel-wise choose-max of luminance", fuse_max),
        Baseline("laplacian", "fusion", ALL_TASKS, "Laplacian pyramid, max-abs detail", fuse_laplacian),
        Baseline("dwt", "fusion", ALL_TASKS, "db2 wavelet, max-abs detail", fuse_dwt),
        Baseline("gff", "fusion", ALL_TASKS, "guided-filter fusion (Li et al. 2013)", fuse_gff),
        Baseline("mertens", "fusion", ("mef",), "exposure fusion (Mertens et al. 2007)", fuse_mertens),
        Baseline("focus", "fusion", ("mff",), "SML decision map + guided filter", fuse_focus),
    )
}

RESTORATIONS: dict[str, Baseline] = {
    b.name: b
    for b in (
        Baseline("nlm", "restoration", ALL_TASKS, "non-local means denoising", denoise_nlm),
        Baseline("dcp", "restoration", ALL_TASKS, "dark channel prior dehazing", dehaze_dcp),
        Baseline("rl", "restoration", ALL_TASKS, "Richardson-Lucy deblurring, Gaussian PSF", deblur_rl),
        Baseline("wiener", "restoration", ALL_TASKS, "Wiener deblurring, Gaussian PSF", deblur_wiener),
        Baseline("upsample", "restoration", ALL_TASKS, "unsharp mask for resampled input", upsample_sharpen),
    )
}


def run_chain(
    restorations: tuple[str, ...], fusion: str, images: Sequence[np.ndarray], task: Task | None = None
) -> Image:
    """Restore every source with each restoration in turn, then fuse them."""
    xs = check_images(images)
    for name in restorations:
        xs = [RESTORATIONS[name].fn(x) for x in xs]
    return FUSIONS[fusion].fn(xs, task)


def make_chain(name: str) -> Baseline:
    """Build the chain 'restoration[+restoration...]+fusion' from its name."""
    *restorations, fusion = name.split("+")
    bad = [r for r in restorations if r not in RESTORATIONS]
    if not restorations or bad or fusion not in FUSIONS:
        raise ValueError(f"unknown method {name!r}; {valid_names()}")
    description = f"{' then '.join(restorations)}, then {FUSIONS[fusion].description}"
    return Baseline(
        name, "chain", FUSIONS[fusion].tasks, description, partial(run_chain, tuple(restorations), fusion)
    )


# Every restoration x fusion pair is listed; longer chains (nlm+dcp+gff) are built from their names.
CHAINS: dict[str, Baseline] = {f"{r}+{f}": make_chain(f"{r}+{f}") for r in RESTORATIONS for f in FUSIONS}

METHODS: dict[str, Baseline] = {**FUSIONS, **RESTORATIONS, **CHAINS}


def valid_names() -> str:
    """Human-readable list of method names for error messages."""
    return (
        f"fusion methods: {', '.join(FUSIONS)}; restorations: {', '.join(RESTORATIONS)}; "
        "chains: restoration[+restoration...]+fusion, e.g. nlm+gff"
    )


def get_method(name: str) -> Baseline:
    """Look a method up by name, building chains on the fly; ValueError lists the valid names."""
    if name in METHODS:
        return METHODS[name]
    if "+" in name:
        return make_chain(name)
    raise ValueError(f"unknown method {name!r}; {valid_names()}")


def fuse(method: str, images: Sequence[np.ndarray], task: Task | None = None) -> Image:
    """Fuse >= 2 same-size images with a classical method or chain; RGB if any input is.

    Images are float in [0, 1], uint8, uint16 or bool (converted by their range), (H, W), (H, W, 1) or
    (H, W, 3); anything else is refused with a ValueError naming the input (allfuse.inputs)."""
    if task is not None and task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose from {', '.join(TASKS)} or None")
    baseline = get_method(method)
    if baseline.kind == "restoration":
        raise ValueError(
            f"{method!r} restores one image: call restore({method!r}, image), or chain it: {method}+gff"
        )
    return baseline.fn(check_images(images), task)


def restore(method: str, image: np.ndarray) -> Image:
    """Apply a restoration, or several joined by '+' (e.g. 'nlm+dcp'), to one image."""
    names = method.split("+")
    bad = [n for n in names if n not in RESTORATIONS]
    if bad:
        raise ValueError(f"unknown restoration {method!r}; choose from {', '.join(RESTORATIONS)}")
    for name in names:
        image = RESTORATIONS[name].fn(image)
    return image
