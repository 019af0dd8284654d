"""Local-window filters shared by the metrics, with MATLAB's boundary conventions spelled out.

All functions take and return float64 arrays. "valid" means MATLAB's `filter2(..., 'valid')`: only the
positions where the window fits entirely inside the image.
"""

import cv2
import numpy as np

# cv2 names for the MATLAB/scipy padding conventions used by the published metric code.
BORDERS = {
    "zero": cv2.BORDER_CONSTANT,  # MATLAB filter2/conv2 'same', scipy convolve2d 'same'
    "replicate": cv2.BORDER_REPLICATE,  # MATLAB imfilter(..., 'replicate')
    "mirror": cv2.BORDER_REFLECT_101,  # numpy pad 'reflect': edge pixel not repeated
}


def gaussian_kernel1d(size: int, sigma: float) -> np.ndarray:
    """1-D factor of MATLAB `fspecial('gaussian', size, sigma)` (the 2-D kernel is its outer product)."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    k = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return k / k.sum()


def filter_same(x: np.ndarray, k: np.ndarray, border: str = "zero") -> np.ndarray:
    """Correlate with the separable kernel outer(k, k), output the size of `x`."""
    return cv2.sepFilter2D(x, cv2.CV_64F, k, k, borderType=BORDERS[border])


def filter_valid(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Correlate with outer(k, k), keeping only positions where the window fits (MATLAB 'valid')."""
    r = len(k) // 2
    y = cv2.sepFilter2D(x, cv2.CV_64F, k, k, borderType=cv2.BORDER_REFLECT_101)
    return y[r : x.shape[0] - r, r : x.shape[1] - r]


def box_valid(x: np.ndarray, size: int) -> np.ndarray:
    """Mean over size x size windows, 'valid' positions only."""
    r = size // 2
    y = cv2.boxFilter(x, cv2.CV_64F, (size, size), normalize=True, borderType=cv2.BORDER_REFLECT_101)
    return y[r : x.shape[0] - r, r : x.shape[1] - r]


def sobel(x: np.ndarray, border: str = "zero") -> tuple[np.ndarray, np.ndarray]:
    """Sobel responses (dx, dy) = correlation with [[-1,0,1],[-2,0,2],[-1,0,1]] and its transpose.

    Edge metrics branch on `dx == 0` (orientation pi/2), so responses under 1e-9 in magnitude, i.e.
    float round-off on 0-255 data such as (a / 255) * 255, are snapped to exactly 0: integer images
    behave as in the reference code and float images do not depend on summation order.
    """
    mode = {"zero": "constant", "mirror": "reflect", "replicate": "edge"}[border]
    p = np.pad(x, 1, mode=mode)
    rows = p[:-2] + 2.0 * p[1:-1] + p[2:]  # vertical [1, 2, 1] smoothing, (H, W + 2)
    cols = p[:, :-2] + 2.0 * p[:, 1:-1] + p[:, 2:]  # horizontal smoothing, (H + 2, W)
    dx = rows[:, 2:] - rows[:, :-2]
    dy = cols[2:, :] - cols[:-2, :]
    dx[np.abs(dx) < 1e-9] = 0.0
    dy[np.abs(dy) < 1e-9] = 0.0
    return dx, dy


def block_sums(x: np.ndarray, size: int) -> np.ndarray:
    """Sums over non-overlapping size x size blocks; partial blocks are zero-padded (MATLAB blkproc)."""
    h, w = x.shape
    bh, bw = -(-h // size), -(-w // size)
    p = np.zeros((bh * size, bw * size), dtype=np.float64)
    p[:h, :w] = x
    return p.reshape(bh, size, bw, size).sum(axis=(1, 3))
