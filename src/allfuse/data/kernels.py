"""Small shared helpers of the degradation ops: clipping, anti-aliased line (motion) and disk kernels."""

import cv2
import numpy as np

from allfuse.types import Image


def finish(x: np.ndarray) -> Image:
    """Clip to [0, 1] and return a fresh float32 array."""
    return np.clip(x, 0.0, 1.0).astype(np.float32)


def line_kernel(length: float, angle: float) -> np.ndarray:
    """Anti-aliased line of `length` px at `angle` degrees from the x axis (counter-clockwise), sum 1."""
    size = int(np.ceil(length)) | 1
    scale = 8  # draw 8x larger then area-downsample: sub-pixel anti-aliasing
    big = np.zeros((size * scale, size * scale), np.uint8)
    c = (size * scale - 1) / 2.0
    dx, dy = np.cos(np.deg2rad(angle)), -np.sin(np.deg2rad(angle))
    half = (length * scale - scale) / 2.0
    p0 = (round(c - dx * half), round(c - dy * half))
    p1 = (round(c + dx * half), round(c + dy * half))
    cv2.line(big, p0, p1, 255, thickness=scale, lineType=cv2.LINE_AA)
    k = cv2.resize(big.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
    return k / max(float(k.sum()), 1e-8)


def disk_kernel(radius: float) -> np.ndarray:
    """Anti-aliased uniform disk of `radius` px (a defocused lens's point spread function), sum 1."""
    size = 2 * int(np.ceil(radius)) + 1
    scale = 8  # draw 8x larger then area-downsample: sub-pixel anti-aliasing
    big = np.zeros((size * scale, size * scale), np.uint8)
    c = (size * scale - 1) / 2.0
    cv2.circle(big, (round(c), round(c)), max(1, round(radius * scale)), 255, -1, lineType=cv2.LINE_AA)
    k = cv2.resize(big.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
    return k / max(float(k.sum()), 1e-8)
