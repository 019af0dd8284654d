"""Learned no-reference IQA (MUSIQ, CLIP-IQA, MANIQA, LIQE): only from weights in a local folder.

Nothing is downloaded and nothing is approximated under these names. A metric is available when its
exported model sits in the folder given by `iqa_weights=` or the ALLFUSE_IQA_WEIGHTS variable, as
`<name>.pt2` (torch.export) or `<name>.pt` (TorchScript), name lower-case:

    <folder>/musiq.pt2   <folder>/clip-iqa.pt2   <folder>/maniqa.pt2   <folder>/liqe.pt2

The model maps a float32 tensor (1, 3, H, W), RGB in [0, 1], to a score tensor; the score is its
mean. Export it once from any implementation (e.g. a pretrained pyiqa model, with dynamic H and W) on
a machine that has the weights. Exported programs need no architecture code here, which keeps these
metrics offline and honest.
"""

import functools
import os
from pathlib import Path

import numpy as np

from allfuse.types import Image

ENV_VAR = "ALLFUSE_IQA_WEIGHTS"
LEARNED_IQA = ("MUSIQ", "CLIP-IQA", "MANIQA", "LIQE")
SUFFIXES = (".pt2", ".pt")  # torch.export program, then TorchScript


class WeightsUnavailable(RuntimeError):
    """A learned metric was requested but its weights are not in the local weights folder."""


def weights_dir(iqa_weights: str | Path | None = None) -> Path | None:
    """The local weights folder: the argument, else $ALLFUSE_IQA_WEIGHTS, else None."""
    folder = iqa_weights if iqa_weights is not None else os.environ.get(ENV_VAR)
    return Path(folder) if folder else None


def weights_file(name: str, folder: Path | None) -> Path | None:
    """Path of `name`'s exported model in `folder` (.pt2 preferred over .pt), else None."""
    if folder is None:
        return None
    for suffix in SUFFIXES:
        path = folder / f"{name.lower()}{suffix}"
        if path.is_file():
            return path
    return None


def missing_message(name: str, folder: Path | None) -> str:
    """Explain where the weights of a learned metric must be put."""
    where = f"in {folder}" if folder is not None else f"(no folder given: pass iqa_weights= or set {ENV_VAR})"
    return (
        f"{name} needs local weights: an exported model '{name.lower()}.pt2' (torch.export) or "
        f"'{name.lower()}.pt' (TorchScript) mapping a (1, 3, H, W) RGB tensor in [0, 1] to a score, "
        f"{where}. allfuse never downloads model weights."
    )


@functools.lru_cache(maxsize=4)
def _load(path: str, mtime_ns: int):
    """Load an exported scorer once per file version (mtime is part of the cache key)."""
    import torch

    if path.endswith(".pt2"):
        return torch.export.load(path).module()
    return torch.jit.load(path, map_location="cpu").eval()


def score(name: str, fused: Image, folder: Path | None) -> float:
    """Run the exported scorer for `name` on an (H, W) or (H, W, 3) image in [0, 1]."""
    path = weights_file(name, folder)
    if path is None:
        raise WeightsUnavailable(missing_message(name, folder))
    import torch  # heavy: only when a learned metric actually runs

    model = _load(str(path), path.stat().st_mtime_ns)
    rgb = np.repeat(fused[..., None], 3, axis=-1) if fused.ndim == 2 else fused
    x = torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32)).permute(2, 0, 1)[None]
    with torch.no_grad():
        return float(model(x).float().mean())
