"""Shared test input: a scikit-image photo area-resized to a square, float32 in [0, 1] (resizing also removes
any JPEG block lattice the bundled file had)."""

import numpy as np
from skimage import data
from skimage.transform import resize


def resized_photo(name: str, side: int) -> np.ndarray:
    """scikit-image's photo `name` resized (anti-aliased) to side x side, gray or colour as it comes."""
    x = getattr(data, name)().astype(np.float32) / 255.0
    return resize(x, (side, side) if x.ndim == 2 else (side, side, 3), anti_aliasing=True).astype(np.float32)
